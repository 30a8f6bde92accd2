//! Read-only access to a bbolt database image: meta selection, bounds-checked pages, buckets,
//! lookups and in-order cursors.
//!
//! The file is memory-mapped (or, for tests and fuzzing, held in a `Vec`), so memory stays bounded
//! for multi-GiB files: only the pages actually touched are paged in by the kernel. Every offset read
//! from the file is bounds-checked; malformed input yields an [`Error`], never a panic.
//!
//! [`Db`] and meta selection are here; `mapping.rs` holds the bytes, `page.rs` decodes pages and
//! their elements, `bucket.rs` has buckets and cursors.

use std::fs::File;
use std::path::Path;

use super::Error;
use super::format::{
    FIRST_DATA_PAGE, MAX_PAGE_SIZE, META_SIZE, MIN_PAGE_SIZE, Meta, MetaFault, PAGE_HEADER_SIZE,
    PageHeader,
};

mod bucket;
mod mapping;
mod page;

pub use bucket::{Bucket, Buckets, Cursor};
use mapping::{Bytes, map_file};
pub use page::{Entry, Page};

/// Deepest B+tree we accept; real bbolt trees are a handful of levels deep, so anything deeper is
/// a cycle or garbage.
pub(crate) const MAX_TREE_DEPTH: usize = 64;
/// Outcome of validating one of the two meta pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaState {
    /// The meta is valid.
    Valid(Meta),
    /// The meta page could not be read or failed validation.
    Invalid(MetaFault),
    /// The meta page lies beyond the end of the data.
    Missing,
}

/// A read-only bbolt database image.
pub struct Db {
    bytes: Bytes,
    /// Usable length (excludes e.g. a snapshot's SHA-256 trailer).
    len: usize,
    page_size: usize,
    meta: Meta,
    meta_page: u64,
    metas: [MetaState; 2],
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("len", &self.len)
            .field("page_size", &self.page_size)
            .field("meta", &self.meta)
            .field("meta_page", &self.meta_page)
            .finish()
    }
}

impl Db {
    /// Opens the whole file at `path` as a bbolt database.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        Self::from_file(&file, path, len)
    }

    /// Opens the first `len` bytes of `file` (e.g. a snapshot without its 32-byte trailer).
    /// `path` is only used in error messages.
    pub fn from_file(file: &File, path: &Path, len: u64) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file_len = file.metadata().map_err(io)?.len();
        if len > file_len {
            return Err(Error::TooSmall {
                len: file_len,
                needed: len,
            });
        }
        let bytes = if file_len == 0 {
            Bytes::Owned(Vec::new())
        } else {
            Bytes::Mapped(map_file(file).map_err(io)?)
        };
        let len = usize::try_from(len).map_err(|_| Error::TooSmall {
            len: file_len,
            needed: len,
        })?;
        Self::from_bytes_inner(bytes, len)
    }

    /// Opens an in-memory image (tests, fuzzing, small files).
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, Error> {
        let len = data.len();
        Self::from_bytes_inner(Bytes::Owned(data), len)
    }

    fn from_bytes_inner(bytes: Bytes, len: usize) -> Result<Self, Error> {
        let data = &bytes.as_slice()[..len];
        let min = PAGE_HEADER_SIZE + META_SIZE;
        if data.len() < min {
            return Err(Error::TooSmall {
                len: data.len() as u64,
                needed: min as u64,
            });
        }
        let meta0 = read_meta(data, 0);
        // bbolt takes the page size from page 0's meta; if that one is damaged it probes for the
        // second meta page at every plausible page size.
        let page_size = match meta0 {
            MetaState::Valid(m) => m.page_size,
            _ => probe_page_size(data).ok_or(Error::NoValidMeta {
                meta0: describe(meta0),
                meta1: "not found at any page size between 1 KiB and 16 MiB".into(),
            })?,
        };
        if !page_size.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(Error::BadPageSize(page_size));
        }
        let ps = page_size as usize;
        let meta1 = read_meta(data, ps);
        let metas = [meta0, meta1];
        // bbolt's `db.meta()`: prefer the higher txid if it validates, else the other one.
        let (a, b) = match (meta0, meta1) {
            (MetaState::Valid(m0), MetaState::Valid(m1)) if m1.txid > m0.txid => (1, 0),
            _ => (0, 1),
        };
        let (meta_page, meta) = match (metas[a], metas[b]) {
            (MetaState::Valid(m), _) => (a as u64, m),
            (_, MetaState::Valid(m)) => (b as u64, m),
            _ => {
                return Err(Error::NoValidMeta {
                    meta0: describe(meta0),
                    meta1: describe(meta1),
                });
            }
        };
        if meta.page_size != page_size {
            return Err(Error::BadPageSize(meta.page_size));
        }
        let needed = meta.pgid.saturating_mul(ps as u64);
        if needed > len as u64 {
            return Err(Error::Truncated {
                len: len as u64,
                needed,
                pgid: meta.pgid,
                page_size,
            });
        }
        if meta.pgid < FIRST_DATA_PAGE + 1 {
            return Err(Error::BadMeta {
                meta_page,
                what: format!(
                    "high-water mark {} leaves no room for a root page",
                    meta.pgid
                ),
            });
        }
        if meta.root.root < FIRST_DATA_PAGE || meta.root.root >= meta.pgid {
            return Err(Error::BadMeta {
                meta_page,
                what: format!(
                    "root page {} outside [{FIRST_DATA_PAGE}, {})",
                    meta.root.root, meta.pgid
                ),
            });
        }
        Ok(Db {
            bytes,
            len,
            page_size: ps,
            meta,
            meta_page,
            metas,
        })
    }

    /// The raw bytes of the image (without any excluded trailer).
    pub fn data(&self) -> &[u8] {
        &self.bytes.as_slice()[..self.len]
    }

    /// The selected (current) meta.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Which meta page (0 or 1) is current.
    pub fn meta_page(&self) -> u64 {
        self.meta_page
    }

    /// Validation state of meta page 0 and meta page 1.
    pub fn metas(&self) -> [MetaState; 2] {
        self.metas
    }

    /// Page size in bytes.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Logical size of the database: `meta.pgid * page_size` (bbolt `Tx.Size`).
    pub fn size(&self) -> u64 {
        self.meta.pgid * self.page_size as u64
    }

    /// Length of the image in bytes (may exceed [`Db::size`] for a raw `member/snap/db`).
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// Whether the image is empty (never true for an opened database).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads page `id`, checking that it and its overflow lie below the high-water mark and that
    /// its header carries its own id.
    pub fn page(&self, id: u64) -> Result<Page<'_>, Error> {
        let hwm = self.meta.pgid;
        if id >= hwm {
            return Err(Error::PageOutOfRange { pgid: id, hwm });
        }
        let ps = self.page_size as u64;
        let offset = id * ps; // id < hwm and hwm * ps <= len, so no overflow
        let data = self.data();
        let hdr = PageHeader::parse(&data[offset as usize..])
            .ok_or(Error::PageOutOfRange { pgid: id, hwm })?;
        if hdr.id != id {
            return Err(Error::PageIdMismatch {
                pgid: id,
                found: hdr.id,
                offset,
            });
        }
        let pages = u64::from(hdr.overflow) + 1;
        if id + pages > hwm {
            return Err(Error::OverflowOutOfRange {
                pgid: id,
                overflow: hdr.overflow,
                hwm,
                offset,
            });
        }
        let end = (id + pages) * ps;
        Ok(Page {
            id,
            header: hdr,
            data: &data[offset as usize..end as usize],
            offset,
        })
    }

    /// Hints the CPU to start loading page `id`'s header (a no-op for ids out of range): a walk
    /// calls it for the next sibling so that the cache miss overlaps the current page's work.
    #[allow(unsafe_code)]
    pub(crate) fn prefetch(&self, id: u64) {
        if id >= self.meta.pgid {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let at = self.data()[(id * self.page_size as u64) as usize..].as_ptr();
            // SAFETY: a prefetch is only a hint; it never faults and does not read into Rust
            // values. `at` points inside the mapping (id < pgid and pgid pages fit in it).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    at.cast::<i8>(),
                );
            }
        }
    }

    /// The root bucket, whose entries are the top-level buckets.
    pub fn root(&self) -> Bucket<'_> {
        Bucket {
            db: self,
            header: self.meta.root,
            inline: None,
        }
    }

    /// The top-level bucket `name`, if present.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'_>>, Error> {
        self.root().bucket(name)
    }

    /// Value of `key` in top-level bucket `bucket`, if both exist.
    pub fn get(&self, bucket: &[u8], key: &[u8]) -> Result<Option<&[u8]>, Error> {
        match self.bucket(bucket)? {
            Some(b) => b.get(key),
            None => Ok(None),
        }
    }

    /// Iterates the top-level buckets in name order.
    pub fn buckets(&self) -> Buckets<'_> {
        Buckets {
            cursor: self.root().cursor(),
        }
    }

    /// Upper bound on page visits by one cursor: a well-formed tree visits each page once.
    fn max_visits(&self) -> u64 {
        self.meta.pgid
    }
}

fn read_meta(data: &[u8], page_offset: usize) -> MetaState {
    let start = page_offset + PAGE_HEADER_SIZE;
    match data.get(start..start + META_SIZE).and_then(Meta::parse) {
        None => MetaState::Missing,
        Some(m) => match m.validate() {
            Ok(()) => MetaState::Valid(m),
            Err(f) => MetaState::Invalid(f),
        },
    }
}

fn probe_page_size(data: &[u8]) -> Option<u32> {
    (0..15).map(|i| MIN_PAGE_SIZE << i).find(
        |&ps| matches!(read_meta(data, ps as usize), MetaState::Valid(m) if m.page_size == ps),
    )
}

fn describe(m: MetaState) -> String {
    match m {
        MetaState::Valid(_) => "valid".into(),
        MetaState::Invalid(f) => f.to_string(),
        MetaState::Missing => "beyond end of file".into(),
    }
}
