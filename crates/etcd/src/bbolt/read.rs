//! Read-only access to a bbolt database image: meta selection, bounds-checked pages, buckets,
//! lookups and in-order cursors.
//!
//! The file is memory-mapped (or, for tests and fuzzing, held in a `Vec`), so memory stays bounded
//! for multi-GiB files: only the pages actually touched are paged in by the kernel. Every offset read
//! from the file is bounds-checked; malformed input yields an [`Error`], never a panic.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use super::Error;
use super::format::{
    BRANCH_ELEMENT_SIZE, BRANCH_PAGE_FLAG, BUCKET_HEADER_SIZE, BranchElement, BucketHeader,
    FIRST_DATA_PAGE, LEAF_ELEMENT_SIZE, LEAF_PAGE_FLAG, LeafElement, MAX_PAGE_SIZE, META_SIZE,
    MIN_PAGE_SIZE, Meta, MetaFault, PAGE_HEADER_SIZE, PageHeader,
};

/// Deepest B+tree we accept; real bbolt trees are a handful of levels deep, so anything deeper is
/// a cycle or garbage.
pub(crate) const MAX_TREE_DEPTH: usize = 64;

/// Bytes backing a [`Db`].
enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// Mappings at least this big drop their page-table entries on two threads (see `Drop for Bytes`).
const PARALLEL_RELEASE_MIN: usize = 256 << 20;

impl Drop for Bytes {
    /// Unmapping a big file mapping clears every page-table entry on one core (about 20 ms per
    /// gigabyte here, a tenth of a whole `snapshot status`); clearing each half on its own
    /// thread first halves that.
    fn drop(&mut self) {
        if let Bytes::Mapped(m) = self
            && m.len() >= PARALLEL_RELEASE_MIN
        {
            let half = (m.len() / 2) & !((2 << 20) - 1);
            std::thread::scope(|scope| {
                let second = std::thread::Builder::new()
                    .name("unmap".into())
                    .spawn_scoped(scope, || forget_pages(m, half, m.len() - half));
                forget_pages(m, 0, half);
                if second.is_err() {
                    forget_pages(m, half, m.len() - half);
                }
            });
        }
    }
}

/// Drops our page-table entries for `len` bytes at `offset` of a mapping about to be unmapped.
#[allow(unsafe_code)]
fn forget_pages(m: &Mmap, offset: usize, len: usize) {
    // SAFETY: the mapping is read-only and shared (`Mmap::map`), so MADV_DONTNEED only drops our
    // view: the file's pages stay in the page cache and a later access would fault the same bytes
    // back in. Nothing reads the mapping any more (this runs in `drop`).
    let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
}

/// Maps `file` read-only.
#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: memmap2 requires that the file is not modified (truncated or written) while mapped,
    // otherwise reads may observe changing bytes or fault. We map snapshot files and stopped
    // `member/snap/db` copies read-only; a concurrent writer is an operator error we document, and
    // every read through the map is bounds-checked against the length captured at open time, so a
    // change can at worst produce a parse error (or SIGBUS on truncation), never memory unsafety in
    // our own indexing.
    unsafe { Mmap::map(file) }
}

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

/// One page (with its overflow pages), or an inline bucket's page.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// Page id (0 for an inline page).
    pub id: u64,
    /// Decoded header.
    pub header: PageHeader,
    /// All bytes of the page including the header and overflow pages.
    pub data: &'a [u8],
    /// File offset of the first byte of `data`.
    pub offset: u64,
}

/// A decoded element of a leaf page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes (a bucket header, maybe followed by an inline page, if [`Entry::is_bucket`]).
    pub value: &'a [u8],
    /// Leaf element flags.
    pub flags: u32,
    /// File offset of the element header.
    pub offset: u64,
    /// File offset of the first value byte.
    pub value_offset: u64,
}

impl Entry<'_> {
    /// Whether this entry is a nested bucket.
    pub fn is_bucket(&self) -> bool {
        self.flags & super::format::BUCKET_LEAF_FLAG != 0
    }
}

impl<'a> Page<'a> {
    /// Number of elements.
    pub fn count(&self) -> usize {
        usize::from(self.header.count)
    }

    /// Whether this is a leaf page.
    pub fn is_leaf(&self) -> bool {
        self.header.flags == LEAF_PAGE_FLAG
    }

    /// Whether this is a branch page.
    pub fn is_branch(&self) -> bool {
        self.header.flags == BRANCH_PAGE_FLAG
    }

    fn element_fault(&self, index: usize, what: &'static str) -> Error {
        Error::BadElement {
            pgid: self.id,
            index,
            offset: self.offset + (PAGE_HEADER_SIZE + index * LEAF_ELEMENT_SIZE) as u64,
            what,
        }
    }

    /// Start and end of an element's key: `pos` counts from the element header at `at`
    /// (bbolt's layout for both leaf and branch elements); overflow is a fault, not a panic.
    fn key_span(
        &self,
        index: usize,
        at: usize,
        pos: u32,
        ksize: u32,
    ) -> Result<(usize, usize), Error> {
        let kstart = at
            .checked_add(pos as usize)
            .ok_or_else(|| self.element_fault(index, "key offset overflows"))?;
        let kend = kstart
            .checked_add(ksize as usize)
            .ok_or_else(|| self.element_fault(index, "key size overflows"))?;
        Ok((kstart, kend))
    }

    /// Leaf element `index` with its key and value, bounds-checked against the page span.
    pub fn leaf(&self, index: usize) -> Result<Entry<'a>, Error> {
        let at = PAGE_HEADER_SIZE + index * LEAF_ELEMENT_SIZE;
        let e = self
            .data
            .get(at..)
            .and_then(LeafElement::parse)
            .ok_or_else(|| self.element_fault(index, "element header beyond end of page"))?;
        let (kstart, kend) = self.key_span(index, at, e.pos, e.ksize)?;
        let vend = kend
            .checked_add(e.vsize as usize)
            .ok_or_else(|| self.element_fault(index, "value size overflows"))?;
        if vend > self.data.len() {
            return Err(self.element_fault(index, "key/value extend beyond end of page"));
        }
        Ok(Entry {
            key: &self.data[kstart..kend],
            value: &self.data[kend..vend],
            flags: e.flags,
            offset: self.offset + at as u64,
            value_offset: self.offset + kend as u64,
        })
    }

    /// Branch element `index`: its key and child page id, bounds-checked.
    pub fn branch(&self, index: usize) -> Result<(&'a [u8], u64), Error> {
        let at = PAGE_HEADER_SIZE + index * BRANCH_ELEMENT_SIZE;
        let e = self
            .data
            .get(at..)
            .and_then(BranchElement::parse)
            .ok_or_else(|| self.element_fault(index, "element header beyond end of page"))?;
        let (kstart, kend) = self.key_span(index, at, e.pos, e.ksize)?;
        if kend > self.data.len() {
            return Err(self.element_fault(index, "key extends beyond end of page"));
        }
        Ok((&self.data[kstart..kend], e.pgid))
    }

    /// Key of element `index`, for either page type.
    pub fn key(&self, index: usize) -> Result<&'a [u8], Error> {
        if self.is_branch() {
            Ok(self.branch(index)?.0)
        } else {
            Ok(self.leaf(index)?.key)
        }
    }

    /// Index of the first element whose key is `>= key` (binary search), or `count()`.
    fn lower_bound(&self, key: &[u8]) -> Result<usize, Error> {
        let (mut lo, mut hi) = (0usize, self.count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key(mid)? < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// A bucket: either rooted at a page, or inline (its single leaf page stored in the parent's value).
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    db: &'a Db,
    header: BucketHeader,
    inline: Option<Page<'a>>,
}

impl<'a> Bucket<'a> {
    /// Opens a bucket from a bucket-flagged leaf value; `offset` is the value's file offset.
    pub fn from_value(db: &'a Db, value: &'a [u8], offset: u64) -> Result<Self, Error> {
        let header = BucketHeader::parse(value).ok_or(Error::BadBucket {
            offset,
            what: "bucket value shorter than its 16-byte header",
        })?;
        let inline = if header.root == 0 {
            let data = &value[BUCKET_HEADER_SIZE..];
            let hdr = PageHeader::parse(data).ok_or(Error::BadBucket {
                offset,
                what: "inline bucket has no room for its page header",
            })?;
            if hdr.flags != LEAF_PAGE_FLAG {
                return Err(Error::BadBucket {
                    offset,
                    what: "inline bucket page is not a leaf page",
                });
            }
            Some(Page {
                id: 0,
                header: hdr,
                data,
                offset: offset + BUCKET_HEADER_SIZE as u64,
            })
        } else {
            None
        };
        Ok(Bucket { db, header, inline })
    }

    /// The bucket header (root page id, 0 if inline; sequence).
    pub fn header(&self) -> BucketHeader {
        self.header
    }

    /// Whether the bucket is stored inline in its parent.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// The inline page, if the bucket is inline.
    pub fn inline_page(&self) -> Option<Page<'a>> {
        self.inline
    }

    fn root_page(&self) -> Result<Page<'a>, Error> {
        match self.inline {
            Some(p) => Ok(p),
            None => {
                let p = self.db.page(self.header.root)?;
                check_tree_page(&p)?;
                Ok(p)
            }
        }
    }

    /// Finds the leaf entry whose key equals `key`.
    fn seek_exact(&self, key: &[u8]) -> Result<Option<Entry<'a>>, Error> {
        let mut page = self.root_page()?;
        for _ in 0..MAX_TREE_DEPTH {
            if page.is_leaf() {
                let i = page.lower_bound(key)?;
                if i < page.count() {
                    let e = page.leaf(i)?;
                    if e.key == key {
                        return Ok(Some(e));
                    }
                }
                return Ok(None);
            }
            if page.count() == 0 {
                return Err(Error::EmptyBranch {
                    pgid: page.id,
                    offset: page.offset,
                });
            }
            // Child whose first key is the greatest one <= key (bbolt's branch search).
            let i = page.lower_bound(key)?;
            let i = if i < page.count() && page.branch(i)?.0 == key {
                i
            } else {
                i.saturating_sub(1)
            };
            let (_, child) = page.branch(i)?;
            page = self.db.page(child)?;
            check_tree_page(&page)?;
        }
        Err(Error::TooDeep {
            pgid: page.id,
            max: MAX_TREE_DEPTH,
        })
    }

    /// Value of `key` (not a nested bucket) in this bucket.
    pub fn get(&self, key: &[u8]) -> Result<Option<&'a [u8]>, Error> {
        Ok(self
            .seek_exact(key)?
            .filter(|e| !e.is_bucket())
            .map(|e| e.value))
    }

    /// Nested bucket `name` of this bucket.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>, Error> {
        match self.seek_exact(name)? {
            Some(e) if e.is_bucket() => {
                Ok(Some(Bucket::from_value(self.db, e.value, e.value_offset)?))
            }
            _ => Ok(None),
        }
    }

    /// In-order cursor over all entries (key/values and nested-bucket entries).
    pub fn cursor(&self) -> Cursor<'a> {
        Cursor {
            db: self.db,
            start: Some(*self),
            stack: Vec::new(),
            visits: 0,
            prev: None,
            done: false,
        }
    }
}

/// Checks that a page reached through a tree pointer is a branch or leaf page.
fn check_tree_page(p: &Page<'_>) -> Result<(), Error> {
    if p.is_leaf() || p.is_branch() {
        Ok(())
    } else {
        Err(Error::UnexpectedPageType {
            pgid: p.id,
            flags: p.header.flags,
            offset: p.offset,
        })
    }
}

/// In-order iterator over a bucket's entries. Yields `Err` once and then stops on malformed data.
///
/// Guards against cycles: keys must strictly increase and the number of page visits is capped at
/// the high-water mark, so iteration over hostile input always terminates.
pub struct Cursor<'a> {
    db: &'a Db,
    start: Option<Bucket<'a>>,
    stack: Vec<(Page<'a>, usize)>,
    visits: u64,
    prev: Option<&'a [u8]>,
    done: bool,
}

impl<'a> Cursor<'a> {
    fn push(&mut self, page: Page<'a>) -> Result<(), Error> {
        if page.id != 0 {
            self.visits += 1;
            if self.visits > self.db.max_visits() {
                return Err(Error::PageRevisited { pgid: page.id });
            }
        }
        if self.stack.len() >= MAX_TREE_DEPTH {
            return Err(Error::TooDeep {
                pgid: page.id,
                max: MAX_TREE_DEPTH,
            });
        }
        self.stack.push((page, 0));
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Entry<'a>>, Error> {
        if let Some(b) = self.start.take() {
            let root = b.root_page()?;
            self.push(root)?;
        }
        loop {
            let Some((page, index)) = self.stack.last_mut() else {
                return Ok(None);
            };
            let page = *page;
            if *index >= page.count() {
                self.stack.pop();
                continue;
            }
            let i = *index;
            *index += 1;
            if page.is_leaf() {
                let e = page.leaf(i)?;
                if let Some(prev) = self.prev
                    && prev >= e.key
                {
                    return Err(Error::KeyOrder {
                        pgid: page.id,
                        index: i,
                        offset: e.offset,
                    });
                }
                self.prev = Some(e.key);
                return Ok(Some(e));
            }
            let (_, child) = page.branch(i)?;
            let child = self.db.page(child)?;
            check_tree_page(&child)?;
            self.push(child)?;
        }
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterator over top-level buckets: `(name, bucket)` in name order.
pub struct Buckets<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Iterator for Buckets<'a> {
    type Item = Result<(&'a [u8], Bucket<'a>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let e = match self.cursor.next()? {
            Ok(e) => e,
            Err(err) => return Some(Err(err)),
        };
        if !e.is_bucket() {
            self.cursor.done = true;
            return Some(Err(Error::NotABucket { offset: e.offset }));
        }
        let r = Bucket::from_value(self.cursor.db, e.value, e.value_offset).map(|b| (e.key, b));
        if r.is_err() {
            self.cursor.done = true;
        }
        Some(r)
    }
}
