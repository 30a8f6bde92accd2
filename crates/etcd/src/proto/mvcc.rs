//! The two messages etcd stores in bbolt: `mvccpb.KeyValue` (values of bucket `key`) and
//! `etcdserverpb.AlarmMember` (keys of bucket `alarm`). Decoded in place: byte fields borrow from
//! the (memory-mapped) snapshot.

use super::{DecodeError, Field, fields};

/// A decoded `mvccpb.KeyValue`; byte fields borrow from the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyValue<'a> {
    /// Field 1: the user key.
    pub key: &'a [u8],
    /// Field 2: revision of the key's last creation.
    pub create_revision: i64,
    /// Field 3: revision of the key's last modification.
    pub mod_revision: i64,
    /// Field 4: number of modifications since creation.
    pub version: i64,
    /// Field 5: the value.
    pub value: &'a [u8],
    /// Field 6: lease id (0 = none).
    pub lease: i64,
}

impl<'a> KeyValue<'a> {
    /// Decodes a `mvccpb.KeyValue`; unknown fields are skipped, as protobuf requires.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut kv = KeyValue::default();
        for field in fields(b) {
            match field? {
                (1, Field::Bytes(s)) => kv.key = s,
                (2, Field::Varint(v)) => kv.create_revision = v as i64,
                (3, Field::Varint(v)) => kv.mod_revision = v as i64,
                (4, Field::Varint(v)) => kv.version = v as i64,
                (5, Field::Bytes(s)) => kv.value = s,
                (6, Field::Varint(v)) => kv.lease = v as i64,
                _ => {}
            }
        }
        Ok(kv)
    }
}

/// A decoded `etcdserverpb.AlarmMember`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmMember {
    /// Field 1: member id.
    pub member_id: u64,
    /// Field 2: `AlarmType` (0 NONE, 1 NOSPACE, 2 CORRUPT).
    pub alarm: u64,
}

impl AlarmMember {
    /// Decodes an `AlarmMember`.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut a = AlarmMember::default();
        for field in fields(b) {
            match field? {
                (1, Field::Varint(v)) => a.member_id = v,
                (2, Field::Varint(v)) => a.alarm = v,
                _ => {}
            }
        }
        Ok(a)
    }

    /// etcd's name for the alarm type.
    pub fn alarm_name(&self) -> String {
        match self.alarm {
            0 => "NONE".into(),
            1 => "NOSPACE".into(),
            2 => "CORRUPT".into(),
            n => format!("UNKNOWN({n})"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::put_varint;
    use proptest::prelude::*;

    /// Encodes a KeyValue the way gogoproto does (fields in order, zero values omitted).
    pub(crate) fn encode_kv(kv: &KeyValue<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let bytes = |out: &mut Vec<u8>, n: u64, s: &[u8]| {
            if !s.is_empty() {
                put_varint(out, n << 3 | 2);
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s);
            }
        };
        let var = |out: &mut Vec<u8>, n: u64, v: i64| {
            if v != 0 {
                put_varint(out, n << 3);
                put_varint(out, v as u64);
            }
        };
        bytes(&mut out, 1, kv.key);
        var(&mut out, 2, kv.create_revision);
        var(&mut out, 3, kv.mod_revision);
        var(&mut out, 4, kv.version);
        bytes(&mut out, 5, kv.value);
        var(&mut out, 6, kv.lease);
        out
    }

    #[test]
    fn decodes_a_real_etcd_tombstone_value() {
        // etcd-dump-db output for a tombstone: value = "\n\x153640412599896088633_9".
        let v = b"\n\x153640412599896088633_9";
        let kv = KeyValue::decode(v).unwrap();
        assert_eq!(kv.key, b"3640412599896088633_9");
        assert_eq!(kv.mod_revision, 0);
    }

    #[test]
    fn rejects_truncated_and_bad_wire_types() {
        assert_eq!(KeyValue::decode(b"\n\x05abc"), Err(DecodeError::Truncated));
        assert_eq!(KeyValue::decode(b"\x10\xff"), Err(DecodeError::BadVarint));
        assert_eq!(KeyValue::decode(b"\x0b"), Err(DecodeError::BadWireType(3)));
        assert_eq!(KeyValue::decode(b"\x00"), Err(DecodeError::ZeroField));
    }

    #[test]
    fn alarm_member() {
        let a = AlarmMember::decode(b"\x08\x96\x01\x10\x01").unwrap();
        assert_eq!(a.member_id, 150);
        assert_eq!(a.alarm_name(), "NOSPACE");
    }

    proptest! {
        #[test]
        fn kv_roundtrip(key in proptest::collection::vec(any::<u8>(), 0..64),
                        value in proptest::collection::vec(any::<u8>(), 0..300),
                        c in 0i64..i64::MAX, m in 0i64..i64::MAX, ver in 0i64..1000, lease in any::<i64>()) {
            let kv = KeyValue { key: &key, create_revision: c, mod_revision: m, version: ver, value: &value, lease };
            let enc = encode_kv(&kv);
            prop_assert_eq!(KeyValue::decode(&enc).unwrap(), kv);
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = KeyValue::decode(&b);
            let _ = AlarmMember::decode(&b);
        }
    }
}
