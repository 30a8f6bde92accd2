//! The Protocol Buffers wire format, and the few etcd messages kubemaint reads and writes.
//!
//! One encoder and one zero-copy decoder serve every message: [`mvcc`] (the values etcd keeps in
//! bbolt, decoded for every key of a snapshot, so decoding borrows and never allocates) and
//! [`raft`] (the WAL and `.snap` records restore writes and checks).
//!
//! Written by hand rather than generated with prost: restore's output must equal etcd's bytes, and
//! etcd's gogoproto code writes non-nullable scalar fields even when they are zero, which proto3
//! code generators leave out; and the bbolt values are decoded in place, borrowing from the
//! memory-mapped file.

pub mod mvcc;
pub mod raft;

use std::fmt;

/// Why bytes are not a valid protobuf message (or not the message expected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A varint runs past the end, is longer than 10 bytes or overflows 64 bits.
    BadVarint,
    /// A field runs past the end of the message.
    Truncated,
    /// Wire types 3/4 (groups) or 6/7 are not valid here.
    BadWireType(u8),
    /// Field number 0.
    ZeroField,
    /// A field number beyond 32 bits.
    FieldNumberTooLarge,
    /// A known field has a different wire type than its message says (the field is named).
    WrongType(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadVarint => f.write_str("malformed varint"),
            DecodeError::Truncated => f.write_str("field runs past the end of the message"),
            DecodeError::BadWireType(w) => write!(f, "unsupported wire type {w}"),
            DecodeError::ZeroField => f.write_str("field number 0"),
            DecodeError::FieldNumberTooLarge => f.write_str("field number too large"),
            DecodeError::WrongType(field) => write!(f, "{field} has the wrong wire type"),
        }
    }
}

impl std::error::Error for DecodeError {}

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

/// Reads a varint at `*pos`, advancing it.
#[inline]
pub fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let c = *b.get(*pos).ok_or(DecodeError::BadVarint)?;
        *pos += 1;
        if shift == 63 && c > 1 {
            return Err(DecodeError::BadVarint);
        }
        v |= u64::from(c & 0x7f) << shift;
        if c < 0x80 {
            return Ok(v);
        }
    }
    Err(DecodeError::BadVarint)
}

/// One field's value; `Bytes` borrows from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 1 (8 bytes) or 5 (4 bytes), little-endian.
    Fixed(u64),
}

impl<'a> Field<'a> {
    /// The varint, or [`DecodeError::WrongType`] naming `what`.
    pub fn varint(self, what: &'static str) -> Result<u64, DecodeError> {
        match self {
            Field::Varint(v) => Ok(v),
            _ => Err(DecodeError::WrongType(what)),
        }
    }

    /// The bytes, or [`DecodeError::WrongType`] naming `what`.
    pub fn bytes(self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        match self {
            Field::Bytes(b) => Ok(b),
            _ => Err(DecodeError::WrongType(what)),
        }
    }
}

/// The `(field number, value)` pairs of a message, in order; ends after the first fault.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Iterates the fields of the message `b`.
pub fn fields(b: &[u8]) -> Fields<'_> {
    Fields { buf: b, pos: 0 }
}

impl<'a> Fields<'a> {
    #[inline]
    fn read(&mut self) -> Result<(u32, Field<'a>), DecodeError> {
        let b = self.buf;
        let pos = &mut self.pos;
        let key = get_varint(b, pos)?;
        let field = u32::try_from(key >> 3).map_err(|_| DecodeError::FieldNumberTooLarge)?;
        if field == 0 {
            return Err(DecodeError::ZeroField);
        }
        let value = match (key & 7) as u8 {
            0 => Field::Varint(get_varint(b, pos)?),
            2 => {
                let len = get_varint(b, pos)?;
                if len > (b.len() - *pos) as u64 {
                    return Err(DecodeError::Truncated);
                }
                let s = &b[*pos..*pos + len as usize];
                *pos += len as usize;
                Field::Bytes(s)
            }
            1 => {
                let s: [u8; 8] = b
                    .get(*pos..*pos + 8)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(DecodeError::Truncated)?;
                *pos += 8;
                Field::Fixed(u64::from_le_bytes(s))
            }
            5 => {
                let s: [u8; 4] = b
                    .get(*pos..*pos + 4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(DecodeError::Truncated)?;
                *pos += 4;
                Field::Fixed(u64::from(u32::from_le_bytes(s)))
            }
            w => return Err(DecodeError::BadWireType(w)),
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Field<'a>), DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let item = self.read();
        if item.is_err() {
            self.pos = self.buf.len(); // nothing after a fault can be trusted
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(b: &[u8]) -> Result<Vec<(u32, Field<'_>)>, DecodeError> {
        fields(b).collect()
    }

    #[test]
    fn decodes_every_wire_type() {
        let mut m = Vec::new();
        put_uvarint_field(&mut m, 1, 300);
        put_bytes_field(&mut m, 2, b"abc");
        m.extend_from_slice(&[(3 << 3) | 1, 1, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[(4 << 3) | 5, 2, 0, 0, 0]);
        assert_eq!(
            all(&m).unwrap(),
            [
                (1, Field::Varint(300)),
                (2, Field::Bytes(b"abc")),
                (3, Field::Fixed(1)),
                (4, Field::Fixed(2)),
            ]
        );
    }

    #[test]
    fn rejects_garbage_naming_the_fault() {
        for (bytes, want) in [
            (&[0x0a, 0x05, 1][..], DecodeError::Truncated),
            (&[0x08], DecodeError::BadVarint),
            (&[0x10, 0xff], DecodeError::BadVarint),
            (&[0xff; 11], DecodeError::BadVarint),
            // 10th byte above 1: more than 64 bits.
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                DecodeError::BadVarint,
            ),
            (&[0x0b], DecodeError::BadWireType(3)),
            (&[0x00], DecodeError::ZeroField),
            (
                &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
                DecodeError::FieldNumberTooLarge,
            ),
            (&[0x09, 1, 2, 3], DecodeError::Truncated),
            (&[0x0d, 1, 2, 3], DecodeError::Truncated),
        ] {
            assert_eq!(all(bytes), Err(want), "{bytes:02x?}");
        }
        // The iterator ends after a fault.
        assert_eq!(fields(&[0x00, 0x08, 0x01]).count(), 1);
    }

    #[test]
    fn typed_accessors_name_the_field() {
        assert_eq!(
            Field::Varint(1).bytes("Entry.data"),
            Err(DecodeError::WrongType("Entry.data"))
        );
        assert_eq!(
            DecodeError::WrongType("Entry.data").to_string(),
            "Entry.data has the wrong wire type"
        );
        assert_eq!(
            Field::Bytes(b"x").varint("Entry.term"),
            Err(DecodeError::WrongType("Entry.term"))
        );
    }

    proptest! {
        #[test]
        fn varint_roundtrip(v in any::<u64>()) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut pos = 0;
            prop_assert_eq!(get_varint(&b, &mut pos), Ok(v));
            prop_assert_eq!(pos, b.len());
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = all(&b);
        }
    }
}
