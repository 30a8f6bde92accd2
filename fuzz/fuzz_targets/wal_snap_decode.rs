//! Feeds arbitrary bytes to the WAL segment decoder and the `.snap` decoder used to check what
//! restore writes. Malformed input must come back as an error, never a panic or a hang.
#![no_main]

use kubemaint_etcd::{proto, snap, wal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wal::read_segment(data);
    if let Some((&seed, rest)) = data.split_first() {
        let _ = wal::decode_segment(rest, u32::from(seed) * 0x0101_0101);
    }
    let _ = snap::decode(data);
    let _ = proto::raft::RaftSnapshot::decode(data);
    let _ = proto::raft::ConfState::decode(data);
});
