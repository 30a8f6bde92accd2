//! bbolt on-disk format: constants and fixed-size structures.
//!
//! Shared by the read-only reader (`read.rs`) and the restore writer (`write.rs`). Layouts follow
//! etcd-io/bbolt `internal/common/{page,meta,bucket,types}.go` (see `docs` reference §2.4). All
//! integers are native-endian in bbolt; we support only little-endian files (every platform etcd
//! ships for except s390x) and recognise a big-endian file by its byte-swapped magic so we can say so.

/// Size in bytes of the page header (`id u64, flags u16, count u16, overflow u32`).
pub const PAGE_HEADER_SIZE: usize = 16;
/// Page flag: branch page (internal B+tree node).
pub const BRANCH_PAGE_FLAG: u16 = 0x01;
/// Page flag: leaf page.
pub const LEAF_PAGE_FLAG: u16 = 0x02;
/// Page flag: meta page (pages 0 and 1).
pub const META_PAGE_FLAG: u16 = 0x04;
/// Page flag: freelist page.
pub const FREELIST_PAGE_FLAG: u16 = 0x10;

/// Leaf element flag: the value is a bucket header (possibly followed by an inline page).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

/// bbolt magic number, as stored (native-endian) at the start of the meta payload.
pub const MAGIC: u32 = 0xED0C_DAED;
/// `MAGIC` as read from a file written on a big-endian machine (s390x).
pub const MAGIC_BYTE_SWAPPED: u32 = MAGIC.swap_bytes();
/// The only data-file version bbolt writes and accepts.
pub const VERSION: u32 = 2;

/// Size in bytes of the meta structure that follows the page header on pages 0 and 1.
pub const META_SIZE: usize = 64;
/// Offset, inside the meta structure, of the checksum; the FNV-1a-64 covers bytes `[0, 56)`.
pub const META_CHECKSUM_OFFSET: usize = 56;

/// Size in bytes of one branch page element (`pos u32, ksize u32, pgid u64`).
pub const BRANCH_ELEMENT_SIZE: usize = 16;
/// Size in bytes of one leaf page element (`flags u32, pos u32, ksize u32, vsize u32`).
pub const LEAF_ELEMENT_SIZE: usize = 16;
/// Size in bytes of a bucket header (`root pgid u64, sequence u64`) stored as a bucket's value.
pub const BUCKET_HEADER_SIZE: usize = 16;

/// `meta.freelist` value meaning "no freelist persisted" (etcd opens bbolt with `NoFreelistSync`).
pub const PGID_NO_FREELIST: u64 = u64::MAX;
/// A freelist page whose `count` equals this stores the real count in its first u64.
pub const FREELIST_COUNT_OVERFLOW: u16 = 0xFFFF;

/// Page size bbolt uses on amd64 (the OS page size; larger on some arm64/ppc64le kernels).
pub const DEFAULT_PAGE_SIZE: u32 = 4096;
/// Smallest page size probed when page 0's meta is unreadable (bbolt probes `1024 << i`).
pub const MIN_PAGE_SIZE: u32 = 1024;
/// Largest page size probed (`1024 << 14` = 16 MiB).
pub const MAX_PAGE_SIZE: u32 = 1024 << 14;

/// First page id that can hold data: pages 0 and 1 are the meta pages.
pub const FIRST_DATA_PAGE: u64 = 2;

/// Page header: the first 16 bytes of every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageHeader {
    /// Page id; bbolt requires it to equal the page's position (`offset / page_size`).
    pub id: u64,
    /// Exactly one of the `*_PAGE_FLAG` values.
    pub flags: u16,
    /// Number of elements (branch/leaf) or freelist ids.
    pub count: u16,
    /// Number of extra contiguous pages this page spans.
    pub overflow: u32,
}

impl PageHeader {
    /// Decodes a header from the first 16 bytes of `b`; `None` if `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < PAGE_HEADER_SIZE {
            return None;
        }
        Some(Self {
            id: le_u64(b, 0),
            flags: le_u16(b, 8),
            count: le_u16(b, 10),
            overflow: le_u32(b, 12),
        })
    }

    /// Encodes the header into the first 16 bytes of `out` (panics if `out` is shorter).
    pub fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..10].copy_from_slice(&self.flags.to_le_bytes());
        out[10..12].copy_from_slice(&self.count.to_le_bytes());
        out[12..16].copy_from_slice(&self.overflow.to_le_bytes());
    }

    /// Human name of the page type, for messages (`"branch"`, `"leaf"`, ... or `"unknown"`).
    pub fn type_name(&self) -> &'static str {
        match self.flags {
            BRANCH_PAGE_FLAG => "branch",
            LEAF_PAGE_FLAG => "leaf",
            META_PAGE_FLAG => "meta",
            FREELIST_PAGE_FLAG => "freelist",
            _ => "unknown",
        }
    }
}

/// Bucket header: the value of a bucket-flagged leaf element, and the root of the meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketHeader {
    /// Root page id; `0` means an inline bucket whose page follows this header in the value.
    pub root: u64,
    /// The bucket's monotonically increasing sequence (`NextSequence`).
    pub sequence: u64,
}

impl BucketHeader {
    /// Decodes from the first 16 bytes of `b`; `None` if `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < BUCKET_HEADER_SIZE {
            return None;
        }
        Some(Self {
            root: le_u64(b, 0),
            sequence: le_u64(b, 8),
        })
    }

    /// Encodes into the first 16 bytes of `out` (panics if `out` is shorter).
    pub fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.root.to_le_bytes());
        out[8..16].copy_from_slice(&self.sequence.to_le_bytes());
    }
}

/// Meta structure (payload of pages 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Must be [`MAGIC`].
    pub magic: u32,
    /// Must be [`VERSION`].
    pub version: u32,
    /// Page size the file was written with.
    pub page_size: u32,
    /// Unused by bbolt (always 0).
    pub flags: u32,
    /// Root bucket (the bucket holding all top-level buckets).
    pub root: BucketHeader,
    /// Freelist page id, or [`PGID_NO_FREELIST`].
    pub freelist: u64,
    /// High-water mark: number of pages in use; logical DB size is `pgid * page_size`.
    pub pgid: u64,
    /// Transaction id that wrote this meta.
    pub txid: u64,
    /// FNV-1a-64 of the preceding 56 bytes.
    pub checksum: u64,
}

/// Why a meta page is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaFault {
    /// The magic is byte-swapped: the file was written on a big-endian machine.
    BigEndian,
    /// The magic is wrong: not a bbolt page.
    Magic(u32),
    /// Unsupported version.
    Version(u32),
    /// Stored checksum does not match the computed one.
    Checksum {
        /// Value stored in the meta.
        stored: u64,
        /// Value computed over bytes `[0, 56)`.
        computed: u64,
    },
}

impl std::fmt::Display for MetaFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaFault::BigEndian => write!(
                f,
                "magic is byte-swapped: the file was written on a big-endian machine, which is not supported"
            ),
            MetaFault::Magic(m) => write!(f, "bad magic {m:#010x} (expected {MAGIC:#010x})"),
            MetaFault::Version(v) => {
                write!(f, "unsupported bbolt version {v} (expected {VERSION})")
            }
            MetaFault::Checksum { stored, computed } => write!(
                f,
                "meta checksum mismatch: stored {stored:#018x}, computed {computed:#018x}"
            ),
        }
    }
}

impl Meta {
    /// Decodes the meta structure from `b` (the 64 bytes after a page header); `None` if shorter.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < META_SIZE {
            return None;
        }
        Some(Self {
            magic: le_u32(b, 0),
            version: le_u32(b, 4),
            page_size: le_u32(b, 8),
            flags: le_u32(b, 12),
            root: BucketHeader {
                root: le_u64(b, 16),
                sequence: le_u64(b, 24),
            },
            freelist: le_u64(b, 32),
            pgid: le_u64(b, 40),
            txid: le_u64(b, 48),
            checksum: le_u64(b, 56),
        })
    }

    /// Encodes all 64 bytes (including `self.checksum` as is) into `out` (panics if shorter).
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.magic.to_le_bytes());
        out[4..8].copy_from_slice(&self.version.to_le_bytes());
        out[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        out[12..16].copy_from_slice(&self.flags.to_le_bytes());
        self.root.encode(&mut out[16..32]);
        out[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        out[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        out[48..56].copy_from_slice(&self.txid.to_le_bytes());
        out[56..64].copy_from_slice(&self.checksum.to_le_bytes());
    }

    /// Computes the checksum bbolt stores: FNV-1a-64 over the encoded bytes `[0, 56)`.
    pub fn compute_checksum(&self) -> u64 {
        let mut buf = [0u8; META_SIZE];
        self.encode(&mut buf);
        fnv1a64(&buf[..META_CHECKSUM_OFFSET])
    }

    /// Returns a copy with `checksum` set to [`Meta::compute_checksum`].
    pub fn with_checksum(mut self) -> Self {
        self.checksum = self.compute_checksum();
        self
    }

    /// bbolt's `Meta.Validate`: magic, then version, then checksum.
    pub fn validate(&self) -> Result<(), MetaFault> {
        if self.magic == MAGIC_BYTE_SWAPPED {
            return Err(MetaFault::BigEndian);
        }
        if self.magic != MAGIC {
            return Err(MetaFault::Magic(self.magic));
        }
        if self.version != VERSION {
            return Err(MetaFault::Version(self.version));
        }
        let computed = self.compute_checksum();
        if self.checksum != computed {
            return Err(MetaFault::Checksum {
                stored: self.checksum,
                computed,
            });
        }
        Ok(())
    }
}

/// Branch page element: points to a child page whose subtree starts with `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BranchElement {
    /// Offset of the key from the start of this element.
    pub pos: u32,
    /// Key length.
    pub ksize: u32,
    /// Child page id.
    pub pgid: u64,
}

impl BranchElement {
    /// Decodes from the first 16 bytes of `b`; `None` if shorter.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < BRANCH_ELEMENT_SIZE {
            return None;
        }
        Some(Self {
            pos: le_u32(b, 0),
            ksize: le_u32(b, 4),
            pgid: le_u64(b, 8),
        })
    }

    /// Encodes into the first 16 bytes of `out` (panics if shorter).
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.pos.to_le_bytes());
        out[4..8].copy_from_slice(&self.ksize.to_le_bytes());
        out[8..16].copy_from_slice(&self.pgid.to_le_bytes());
    }
}

/// Leaf page element: a key/value pair, or a bucket if `flags & BUCKET_LEAF_FLAG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeafElement {
    /// `0` or [`BUCKET_LEAF_FLAG`].
    pub flags: u32,
    /// Offset of the key from the start of this element; the value follows the key.
    pub pos: u32,
    /// Key length.
    pub ksize: u32,
    /// Value length.
    pub vsize: u32,
}

impl LeafElement {
    /// Decodes from the first 16 bytes of `b`; `None` if shorter.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < LEAF_ELEMENT_SIZE {
            return None;
        }
        Some(Self {
            flags: le_u32(b, 0),
            pos: le_u32(b, 4),
            ksize: le_u32(b, 8),
            vsize: le_u32(b, 12),
        })
    }

    /// Encodes into the first 16 bytes of `out` (panics if shorter).
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.flags.to_le_bytes());
        out[4..8].copy_from_slice(&self.pos.to_le_bytes());
        out[8..12].copy_from_slice(&self.ksize.to_le_bytes());
        out[12..16].copy_from_slice(&self.vsize.to_le_bytes());
    }

    /// Whether this element is a (sub-)bucket.
    pub fn is_bucket(&self) -> bool {
        self.flags & BUCKET_LEAF_FLAG != 0
    }
}

/// FNV-1a 64-bit hash (Go `hash/fnv.New64a`), used for meta checksums.
pub fn fnv1a64(data: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// Reads a little-endian u16 at `off` (panics if out of bounds).
pub fn le_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads a little-endian u32 at `off` (panics if out of bounds).
pub fn le_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian u64 at `off` (panics if out of bounds).
pub fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_known_vectors() {
        // Reference values of FNV-1a 64 (Go hash/fnv and the FNV spec test suite).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn meta_roundtrip_and_validate() {
        let m = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: 4096,
            flags: 0,
            root: BucketHeader {
                root: 3,
                sequence: 0,
            },
            freelist: PGID_NO_FREELIST,
            pgid: 4,
            txid: 7,
            checksum: 0,
        }
        .with_checksum();
        let mut buf = [0u8; META_SIZE];
        m.encode(&mut buf);
        let back = Meta::parse(&buf).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.validate(), Ok(()));
        let mut bad = back;
        bad.txid = 8;
        assert!(matches!(bad.validate(), Err(MetaFault::Checksum { .. })));
        bad.magic = MAGIC_BYTE_SWAPPED;
        assert_eq!(bad.validate(), Err(MetaFault::BigEndian));
    }

    #[test]
    fn element_roundtrips() {
        let h = PageHeader {
            id: 9,
            flags: LEAF_PAGE_FLAG,
            count: 3,
            overflow: 2,
        };
        let mut b = [0u8; 16];
        h.encode(&mut b);
        assert_eq!(PageHeader::parse(&b), Some(h));
        let l = LeafElement {
            flags: BUCKET_LEAF_FLAG,
            pos: 48,
            ksize: 3,
            vsize: 16,
        };
        l.encode(&mut b);
        assert_eq!(LeafElement::parse(&b), Some(l));
        assert!(l.is_bucket());
        let br = BranchElement {
            pos: 32,
            ksize: 5,
            pgid: 77,
        };
        br.encode(&mut b);
        assert_eq!(BranchElement::parse(&b), Some(br));
    }
}
