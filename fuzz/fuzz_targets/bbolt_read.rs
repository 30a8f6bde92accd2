//! Feeds arbitrary bytes to the bbolt reader, the structural check, the cursors, lookups, the
//! etcd status pass and the offline HashKV. Any panic, overflow or hang is a bug: malformed input
//! must come back as an error.
#![no_main]

use kubemaint_etcd::bbolt::{Db, check};
use kubemaint_etcd::snapshot::{StatusOptions, hash_kv, status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(db) = Db::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = check::check(&db, &mut ());
    let _ = status(&db, &StatusOptions::default());
    let _ = hash_kv(&db, 0);
    for b in db.buckets().take(16) {
        let Ok((name, bucket)) = b else { break };
        for e in bucket.cursor().take(10_000) {
            if e.is_err() {
                break;
            }
        }
        let _ = db.get(name, b"consistent_index");
        let _ = bucket.get(&[0, 0, 0, 0, 0, 0, 0, 1, b'_', 0, 0, 0, 0, 0, 0, 0, 0]);
    }
});
