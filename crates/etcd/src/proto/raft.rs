//! The raft, WAL and `.snap` messages restore writes and checks.
//!
//! Field numbers and presence rules follow etcd's gogoproto-generated code (release-3.4/3.5
//! `raft/raftpb/raft.proto`, `server/wal/walpb/record.proto`, `server/etcdserver/api/snap/snappb`,
//! `api/etcdserverpb/etcdserver.proto`): non-nullable scalar fields are always written, even when
//! zero; `bytes` fields and nullable messages only when present. Fields are written in field-number
//! order, as gogoproto does, so our bytes equal etcd's.

use super::{DecodeError, Field, fields, get_varint, put_bytes_field, put_uvarint_field};

/// `raftpb.ConfState`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfState {
    /// Voting members (field 1, repeated, not packed).
    pub voters: Vec<u64>,
    /// Learners (field 2).
    pub learners: Vec<u64>,
}

impl ConfState {
    /// Encodes; `auto_leave` (field 5, non-nullable bool) is always written as `false`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for &v in &self.voters {
            put_uvarint_field(&mut out, 1, v);
        }
        for &v in &self.learners {
            put_uvarint_field(&mut out, 2, v);
        }
        put_uvarint_field(&mut out, 5, 0);
        out
    }

    /// Decodes (packed or unpacked repeated fields).
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut cs = ConfState::default();
        for field in fields(b) {
            let (f, v) = field?;
            let list = match f {
                1 => &mut cs.voters,
                2 => &mut cs.learners,
                _ => continue,
            };
            match v {
                Field::Varint(x) => list.push(x),
                Field::Bytes(packed) => {
                    let mut p = 0;
                    while p < packed.len() {
                        list.push(get_varint(packed, &mut p)?);
                    }
                }
                Field::Fixed(_) => return Err(DecodeError::WrongType("ConfState.voters/learners")),
            }
        }
        Ok(cs)
    }

    /// The JSON etcd ≥ 3.5 keeps in `meta/confState` (Go `json.Marshal(raftpb.ConfState)`).
    pub fn to_json(&self) -> String {
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let mut s = String::from("{");
        if !self.voters.is_empty() {
            s.push_str(&format!("\"voters\":[{}],", list(&self.voters)));
        }
        if !self.learners.is_empty() {
            s.push_str(&format!("\"learners\":[{}],", list(&self.learners)));
        }
        s.push_str("\"auto_leave\":false}");
        s
    }
}

/// `raftpb.HardState`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardState {
    /// Field 1.
    pub term: u64,
    /// Field 2.
    pub vote: u64,
    /// Field 3.
    pub commit: u64,
}

impl HardState {
    /// Encodes all three fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_uvarint_field(&mut out, 1, self.term);
        put_uvarint_field(&mut out, 2, self.vote);
        put_uvarint_field(&mut out, 3, self.commit);
        out
    }

    /// Decodes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut hs = HardState::default();
        for field in fields(b) {
            let (f, v) = field?;
            match f {
                1 => hs.term = v.varint("HardState.term")?,
                2 => hs.vote = v.varint("HardState.vote")?,
                3 => hs.commit = v.varint("HardState.commit")?,
                _ => {}
            }
        }
        Ok(hs)
    }
}

/// `raftpb.EntryType::EntryConfChange`.
pub const ENTRY_CONF_CHANGE: u64 = 1;
/// `raftpb.ConfChangeType::ConfChangeAddNode`.
pub const CONF_CHANGE_ADD_NODE: u64 = 0;

/// `raftpb.Entry`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Field 1 (`EntryType`).
    pub entry_type: u64,
    /// Field 2.
    pub term: u64,
    /// Field 3.
    pub index: u64,
    /// Field 4, written only when present.
    pub data: Option<Vec<u8>>,
}

impl Entry {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_uvarint_field(&mut out, 1, self.entry_type);
        put_uvarint_field(&mut out, 2, self.term);
        put_uvarint_field(&mut out, 3, self.index);
        if let Some(d) = &self.data {
            put_bytes_field(&mut out, 4, d);
        }
        out
    }

    /// Decodes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut e = Entry::default();
        for field in fields(b) {
            let (f, v) = field?;
            match f {
                1 => e.entry_type = v.varint("Entry.type")?,
                2 => e.term = v.varint("Entry.term")?,
                3 => e.index = v.varint("Entry.index")?,
                4 => e.data = Some(v.bytes("Entry.data")?.to_vec()),
                _ => {}
            }
        }
        Ok(e)
    }
}

/// `raftpb.ConfChange`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfChange {
    /// Field 1.
    pub id: u64,
    /// Field 2 (`ConfChangeType`).
    pub change_type: u64,
    /// Field 3.
    pub node_id: u64,
    /// Field 4, written only when present.
    pub context: Option<Vec<u8>>,
}

impl ConfChange {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_uvarint_field(&mut out, 1, self.id);
        put_uvarint_field(&mut out, 2, self.change_type);
        put_uvarint_field(&mut out, 3, self.node_id);
        if let Some(c) = &self.context {
            put_bytes_field(&mut out, 4, c);
        }
        out
    }

    /// Decodes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut c = ConfChange::default();
        for field in fields(b) {
            let (f, v) = field?;
            match f {
                1 => c.id = v.varint("ConfChange.id")?,
                2 => c.change_type = v.varint("ConfChange.type")?,
                3 => c.node_id = v.varint("ConfChange.node_id")?,
                4 => c.context = Some(v.bytes("ConfChange.context")?.to_vec()),
                _ => {}
            }
        }
        Ok(c)
    }
}

/// `walpb.Snapshot` (the WAL's snapshot marker record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalSnapshot {
    /// Field 1.
    pub index: u64,
    /// Field 2.
    pub term: u64,
    /// Field 3 (etcd ≥ 3.5; nullable).
    pub conf_state: Option<ConfState>,
}

impl WalSnapshot {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_uvarint_field(&mut out, 1, self.index);
        put_uvarint_field(&mut out, 2, self.term);
        if let Some(cs) = &self.conf_state {
            put_bytes_field(&mut out, 3, &cs.encode());
        }
        out
    }

    /// Decodes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut s = WalSnapshot::default();
        for field in fields(b) {
            let (f, v) = field?;
            match f {
                1 => s.index = v.varint("Snapshot.index")?,
                2 => s.term = v.varint("Snapshot.term")?,
                3 => s.conf_state = Some(ConfState::decode(v.bytes("Snapshot.conf_state")?)?),
                _ => {}
            }
        }
        Ok(s)
    }
}

/// `etcdserverpb.Metadata`, the WAL metadata record's payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Field 1: this member's ID.
    pub node_id: u64,
    /// Field 2: the cluster ID.
    pub cluster_id: u64,
}

impl Metadata {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_uvarint_field(&mut out, 1, self.node_id);
        put_uvarint_field(&mut out, 2, self.cluster_id);
        out
    }

    /// Decodes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut m = Metadata::default();
        for field in fields(b) {
            let (f, v) = field?;
            match f {
                1 => m.node_id = v.varint("Metadata.NodeID")?,
                2 => m.cluster_id = v.varint("Metadata.ClusterID")?,
                _ => {}
            }
        }
        Ok(m)
    }
}

/// `raftpb.Snapshot` (data + metadata{conf_state, index, term}).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftSnapshot {
    /// Field 1: the v2 store JSON for etcd ≤ 3.7.
    pub data: Vec<u8>,
    /// Metadata field 1.
    pub conf_state: ConfState,
    /// Metadata field 2.
    pub index: u64,
    /// Metadata field 3.
    pub term: u64,
}

impl RaftSnapshot {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut md = Vec::new();
        put_bytes_field(&mut md, 1, &self.conf_state.encode());
        put_uvarint_field(&mut md, 2, self.index);
        put_uvarint_field(&mut md, 3, self.term);
        let mut out = Vec::with_capacity(self.data.len() + md.len() + 16);
        put_bytes_field(&mut out, 1, &self.data);
        put_bytes_field(&mut out, 2, &md);
        out
    }

    /// Decodes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut s = RaftSnapshot::default();
        for field in fields(b) {
            let (f, v) = field?;
            match f {
                1 => s.data = v.bytes("Snapshot.data")?.to_vec(),
                2 => {
                    for field in fields(v.bytes("Snapshot.metadata")?) {
                        let (mf, mv) = field?;
                        match mf {
                            1 => s.conf_state = ConfState::decode(mv.bytes("conf_state")?)?,
                            2 => s.index = mv.varint("SnapshotMetadata.index")?,
                            3 => s.term = mv.varint("SnapshotMetadata.term")?,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_change_bytes_match_etcd() {
        // Bytes of an entry written by `etcdutl snapshot restore` 3.5.1 (member m2 of a 2-member cluster).
        let ctx = br#"{"id":2533347876291518694,"peerURLs":["http://127.0.0.2:2380"],"name":"m2"}"#;
        let cc = ConfChange {
            id: 0,
            change_type: CONF_CHANGE_ADD_NODE,
            node_id: 2533347876291518694,
            context: Some(ctx.to_vec()),
        };
        let e = Entry {
            entry_type: ENTRY_CONF_CHANGE,
            term: 1,
            index: 1,
            data: Some(cc.encode()),
        };
        let enc = e.encode();
        assert_eq!(&enc[..9], b"\x08\x01\x10\x01\x18\x01\x22\x5b\x08");
        assert_eq!(enc.len(), 2 + 2 + 2 + 2 + 91);
        assert_eq!(Entry::decode(&enc).unwrap(), e);
        assert_eq!(ConfChange::decode(e.data.as_ref().unwrap()).unwrap(), cc);
    }

    #[test]
    fn conf_state_encoding_and_json() {
        let cs = ConfState {
            voters: vec![2533347876291518694, 13195394291058371180],
            learners: vec![],
        };
        assert_eq!(
            cs.encode(),
            b"\x08\xe6\xc1\xe2\x96\x8a\xcf\x90\x94\x23\x08\xec\xd4\x81\xee\xa0\xa6\xdd\x8f\xb7\x01\x28\x00"
        );
        assert_eq!(ConfState::decode(&cs.encode()).unwrap(), cs);
        assert_eq!(
            cs.to_json(),
            r#"{"voters":[2533347876291518694,13195394291058371180],"auto_leave":false}"#
        );
    }

    #[test]
    fn decode_names_a_field_of_the_wrong_type() {
        let mut b = Vec::new();
        put_bytes_field(&mut b, 2, b"x");
        assert_eq!(
            HardState::decode(&b),
            Err(DecodeError::WrongType("HardState.vote"))
        );
        assert_eq!(Entry::decode(&[0x0a, 0x05, 1]), Err(DecodeError::Truncated));
    }
}
