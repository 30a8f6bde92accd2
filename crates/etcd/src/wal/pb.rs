//! Hand-written protobuf encoding of the few small raft/WAL messages restore writes.
//!
//! Field numbers and presence rules follow etcd's gogoproto-generated code (release-3.4/3.5
//! `raft/raftpb/raft.proto`, `server/wal/walpb/record.proto`, `server/etcdserver/api/snap/snappb`,
//! `api/etcdserverpb/etcdserver.proto`): non-nullable scalar fields are always written, even when
//! zero; `bytes` fields and nullable messages only when present. Fields are written in field-number
//! order, as gogoproto does, so our bytes equal etcd's.

use std::fmt;

/// Appends a base-128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a varint field (wire type 0), always, even when zero.
pub fn put_uvarint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, u64::from(field) << 3);
    put_varint(out, v);
}

/// Appends a length-delimited field (wire type 2).
pub fn put_bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A protobuf decoding fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// A decoded field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 1 (8 bytes) or 5 (4 bytes); kept raw.
    Fixed(u64),
}

fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let Some(&c) = b.get(*pos) else {
            return Err(DecodeError("truncated varint".into()));
        };
        *pos += 1;
        if shift == 63 && c > 1 {
            return Err(DecodeError("varint overflows 64 bits".into()));
        }
        v |= u64::from(c & 0x7f) << shift;
        if c < 0x80 {
            return Ok(v);
        }
    }
    Err(DecodeError("varint longer than 10 bytes".into()))
}

/// Iterates `(field number, value)` pairs of a message; stops at the first fault.
pub fn fields(b: &[u8]) -> Result<Vec<(u32, FieldValue<'_>)>, DecodeError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        let key = get_varint(b, &mut pos)?;
        let field =
            u32::try_from(key >> 3).map_err(|_| DecodeError("field number too large".into()))?;
        if field == 0 {
            return Err(DecodeError("field number 0".into()));
        }
        let v = match key & 7 {
            0 => FieldValue::Varint(get_varint(b, &mut pos)?),
            2 => {
                let len = get_varint(b, &mut pos)?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| pos.checked_add(l))
                    .filter(|&e| e <= b.len())
                    .ok_or_else(|| {
                        DecodeError(format!("field {field}: length {len} past the end"))
                    })?;
                let s = &b[pos..end];
                pos = end;
                FieldValue::Bytes(s)
            }
            1 => {
                let s = b
                    .get(pos..pos + 8)
                    .ok_or_else(|| DecodeError("truncated fixed64".into()))?;
                pos += 8;
                FieldValue::Fixed(u64::from_le_bytes(s.try_into().expect("8 bytes")))
            }
            5 => {
                let s = b
                    .get(pos..pos + 4)
                    .ok_or_else(|| DecodeError("truncated fixed32".into()))?;
                pos += 4;
                FieldValue::Fixed(u64::from(u32::from_le_bytes(
                    s.try_into().expect("4 bytes"),
                )))
            }
            t => {
                return Err(DecodeError(format!(
                    "field {field}: unsupported wire type {t}"
                )));
            }
        };
        out.push((field, v));
    }
    Ok(out)
}

fn varint_of(v: FieldValue<'_>, what: &str) -> Result<u64, DecodeError> {
    match v {
        FieldValue::Varint(x) => Ok(x),
        _ => Err(DecodeError(format!("{what}: expected a varint"))),
    }
}

fn bytes_of<'a>(v: FieldValue<'a>, what: &str) -> Result<&'a [u8], DecodeError> {
    match v {
        FieldValue::Bytes(x) => Ok(x),
        _ => Err(DecodeError(format!("{what}: expected bytes"))),
    }
}

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
        for (f, v) in fields(b)? {
            let list = match f {
                1 => &mut cs.voters,
                2 => &mut cs.learners,
                _ => continue,
            };
            match v {
                FieldValue::Varint(x) => list.push(x),
                FieldValue::Bytes(packed) => {
                    let mut p = 0;
                    while p < packed.len() {
                        list.push(get_varint(packed, &mut p)?);
                    }
                }
                FieldValue::Fixed(_) => return Err(DecodeError("ConfState: bad wire type".into())),
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
        for (f, v) in fields(b)? {
            match f {
                1 => hs.term = varint_of(v, "HardState.term")?,
                2 => hs.vote = varint_of(v, "HardState.vote")?,
                3 => hs.commit = varint_of(v, "HardState.commit")?,
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
        for (f, v) in fields(b)? {
            match f {
                1 => e.entry_type = varint_of(v, "Entry.type")?,
                2 => e.term = varint_of(v, "Entry.term")?,
                3 => e.index = varint_of(v, "Entry.index")?,
                4 => e.data = Some(bytes_of(v, "Entry.data")?.to_vec()),
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
        for (f, v) in fields(b)? {
            match f {
                1 => c.id = varint_of(v, "ConfChange.id")?,
                2 => c.change_type = varint_of(v, "ConfChange.type")?,
                3 => c.node_id = varint_of(v, "ConfChange.node_id")?,
                4 => c.context = Some(bytes_of(v, "ConfChange.context")?.to_vec()),
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
        for (f, v) in fields(b)? {
            match f {
                1 => s.index = varint_of(v, "Snapshot.index")?,
                2 => s.term = varint_of(v, "Snapshot.term")?,
                3 => s.conf_state = Some(ConfState::decode(bytes_of(v, "Snapshot.conf_state")?)?),
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
        for (f, v) in fields(b)? {
            match f {
                1 => m.node_id = varint_of(v, "Metadata.NodeID")?,
                2 => m.cluster_id = varint_of(v, "Metadata.ClusterID")?,
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
        for (f, v) in fields(b)? {
            match f {
                1 => s.data = bytes_of(v, "Snapshot.data")?.to_vec(),
                2 => {
                    for (mf, mv) in fields(bytes_of(v, "Snapshot.metadata")?)? {
                        match mf {
                            1 => s.conf_state = ConfState::decode(bytes_of(mv, "conf_state")?)?,
                            2 => s.index = varint_of(mv, "SnapshotMetadata.index")?,
                            3 => s.term = varint_of(mv, "SnapshotMetadata.term")?,
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
    fn decode_rejects_garbage() {
        assert!(fields(&[0x0a, 0x05, 1]).is_err());
        assert!(fields(&[0x08]).is_err());
        assert!(fields(&[0x0b]).is_err());
        assert!(fields(&[0xff; 11]).is_err());
    }
}
