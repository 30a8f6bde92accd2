//! The raft snapshot file `member/snap/<term>-<index>.snap` that etcd 3.4/3.5 restore writes.
//!
//! Format (release-3.4/3.5 `etcdserver/api/snap/snapshotter.go`): a `snappb.Snapshot{crc=1, data=2}`
//! whose `data` is a marshalled `raftpb.Snapshot` and `crc` its CRC-32C. The raft snapshot's data is
//! the v2 store serialised as JSON (`v2store.Save()`); etcd 3.4 and 3.5 read cluster membership from
//! it (`membership.RaftCluster.Recover`), so this file is what tells them who the members are.
//! We generate the exact JSON a fresh v2 store holds after restore's `AddMember` calls.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::ids::{Member, go_json_string};
use crate::proto::raft::RaftSnapshot;
use crate::proto::{self, Field};

/// Capacity of the v2 store's event history ring (`v2store.newWatchHub(1000)`).
const EVENT_HISTORY_CAPACITY: usize = 1000;
/// Go's zero `time.Time` as `encoding/json` prints it.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Faults in a `.snap` file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapError {
    /// The outer message does not decode.
    #[error("snap file is not a snappb.Snapshot: {0}")]
    Decode(String),
    /// The CRC does not match.
    #[error("snap file CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// Stored.
        stored: u32,
        /// Computed.
        computed: u32,
    },
}

/// File name etcd uses: `%016x-%016x.snap` of term and index.
pub fn file_name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

fn node(path: &str, index: u64, value: &str, children: Option<&str>) -> String {
    format!(
        "{{\"Path\":{},\"CreatedIndex\":{index},\"ModifiedIndex\":{index},\"ExpireTime\":\"{ZERO_TIME}\",\"Value\":{},\"Children\":{}}}",
        go_json_string(path),
        go_json_string(value),
        children.unwrap_or("null")
    )
}

/// The v2 store JSON after restore adds `members` (ascending ID order) to a fresh store: each member
/// creates `/0/members/<hexid>/raftAttributes` at store index 1, 2, ….
pub fn v2_store_json(members: &[Member]) -> String {
    let n = members.len();
    // Children maps are printed with sorted keys (Go encodes maps sorted); members created in ID order.
    let mut by_key: Vec<(String, usize)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.hex_id(), i))
        .collect();
    by_key.sort();
    let member_dirs: Vec<String> = by_key
        .iter()
        .map(|(hex, i)| {
            let m = &members[*i];
            let idx = *i as u64 + 1;
            let dir = format!("/0/members/{hex}");
            let attrs = node(
                &format!("{dir}/raftAttributes"),
                idx,
                &m.raft_attributes_json(),
                None,
            );
            format!(
                "{}:{}",
                go_json_string(hex),
                node(
                    &dir,
                    idx,
                    "",
                    Some(&format!("{{\"raftAttributes\":{attrs}}}"))
                )
            )
        })
        .collect();
    let members_dir = node(
        "/0/members",
        1,
        "",
        Some(&format!("{{{}}}", member_dirs.join(","))),
    );
    let zero = node("/0", 0, "", Some(&format!("{{\"members\":{members_dir}}}")));
    let one = node("/1", 0, "", Some("{}"));
    let root = node("/", 0, "", Some(&format!("{{\"0\":{zero},\"1\":{one}}}")));

    let mut events: Vec<String> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let idx = i + 1;
            format!(
                "{{\"action\":\"create\",\"node\":{{\"key\":{},\"value\":{},\"modifiedIndex\":{idx},\"createdIndex\":{idx}}}}}",
                go_json_string(&format!("/0/members/{}/raftAttributes", m.hex_id())),
                go_json_string(&m.raft_attributes_json())
            )
        })
        .collect();
    events.resize(EVENT_HISTORY_CAPACITY.max(n), "null".to_string());
    format!(
        concat!(
            "{{\"Root\":{root},\"WatcherHub\":{{\"EventHistory\":{{\"Queue\":{{\"Events\":[{events}],",
            "\"Size\":{n},\"Front\":0,\"Back\":{back},\"Capacity\":{cap}}},\"StartIndex\":1,\"LastIndex\":{n}}}}},",
            "\"CurrentIndex\":{n},\"Stats\":{{\"getsSuccess\":0,\"getsFail\":0,\"setsSuccess\":0,\"setsFail\":0,",
            "\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\"createSuccess\":{n},",
            "\"createFail\":0,\"compareAndSwapSuccess\":0,\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,",
            "\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":0}},\"CurrentVersion\":2}}"
        ),
        root = root,
        events = events.join(","),
        n = n,
        back = n % EVENT_HISTORY_CAPACITY,
        cap = EVENT_HISTORY_CAPACITY,
    )
}

/// Encodes a `.snap` file's bytes for a raft snapshot.
pub fn encode(snapshot: &RaftSnapshot) -> Vec<u8> {
    let body = snapshot.encode();
    let crc = crc32c::crc32c_append(0, &body);
    let mut out = Vec::with_capacity(body.len() + 16);
    proto::put_uvarint_field(&mut out, 1, u64::from(crc));
    proto::put_bytes_field(&mut out, 2, &body);
    out
}

/// Decodes a `.snap` file and checks its CRC. Never panics on arbitrary input.
pub fn decode(b: &[u8]) -> Result<RaftSnapshot, SnapError> {
    let mut crc = None;
    let mut data: Option<&[u8]> = None;
    for field in proto::fields(b) {
        match field.map_err(|e| SnapError::Decode(e.to_string()))? {
            (1, Field::Varint(c)) => crc = Some(c),
            (2, Field::Bytes(d)) => data = Some(d),
            _ => {}
        }
    }
    let data = data.ok_or_else(|| SnapError::Decode("no data field".into()))?;
    let computed = crc32c::crc32c_append(0, data);
    let stored = crc.unwrap_or(0) as u32;
    if crc != Some(u64::from(computed)) {
        return Err(SnapError::Crc { stored, computed });
    }
    RaftSnapshot::decode(data).map_err(|e| SnapError::Decode(e.to_string()))
}

/// Writes `bytes` to `path` (mode 0600, must not exist) and fsyncs it.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::build_membership;

    #[test]
    fn v2_json_has_etcd_shape() {
        let m = build_membership(
            "m1",
            "m1=http://127.0.0.1:2380,m2=http://127.0.0.2:2380",
            "etcd-cluster",
            &["http://127.0.0.1:2380".to_string()],
        )
        .unwrap();
        let j = v2_store_json(&m.members);
        // etcdutl 3.5.1 and etcdctl 3.4.23 both produce 6984 bytes for this cluster.
        assert_eq!(j.len(), 6984);
        assert!(j.starts_with(r#"{"Root":{"Path":"/","CreatedIndex":0,"ModifiedIndex":0,"ExpireTime":"0001-01-01T00:00:00Z","Value":"","Children":{"0":{"Path":"/0""#));
        assert!(
            j.contains(r#""Value":"{\"peerURLs\":[\"http://127.0.0.2:2380\"]}","Children":null"#)
        );
        assert!(j.ends_with(r#""expireCount":0,"watchers":0},"CurrentVersion":2}"#));
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["CurrentIndex"], 2);
        assert_eq!(
            v["Root"]["Children"]["0"]["Children"]["members"]["Children"]["b71f75320dc06a6c"]["CreatedIndex"],
            2
        );
    }

    #[test]
    fn snap_round_trip_and_crc() {
        let s = RaftSnapshot {
            data: b"{}".to_vec(),
            conf_state: crate::wal::voters(&[1, 2]),
            index: 2,
            term: 1,
        };
        let b = encode(&s);
        assert_eq!(decode(&b).unwrap(), s);
        let mut bad = b.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(decode(&bad), Err(SnapError::Crc { .. })));
        assert_eq!(file_name(1, 2), "0000000000000001-0000000000000002.snap");
    }
}
