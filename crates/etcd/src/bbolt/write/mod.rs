//! A bbolt file writer that bulk-loads sorted buckets into fresh, compact B+trees.
//!
//! What it writes is what bbolt (etcd-io/bbolt v1.3.x, used by etcd 3.4/3.5) reads: two meta pages
//! (0 and 1) with FNV-1a checksums, an empty freelist page (2) as a fresh `db.init()` has, then the
//! data pages, written bottom-up and in order: every bucket's leaves, then its branch levels, then
//! the root bucket's tree. Nothing is free, so the file is already defragmented. Pages are filled
//! to `fill_percent` of a page (etcd's defrag uses 0.9); an element that does not fit alone spills
//! into overflow pages as bbolt does. A bucket whose contents fit in one leaf of at most a quarter
//! page is stored inline in its parent, exactly when bbolt's `Bucket.inlineable` would inline it.
//! Only top-level buckets are supported (etcd has no nested buckets).
//!
//! [`DbWriter`] (buckets, meta and freelist pages) is here; `tree.rs` builds each B+tree.

use std::io::{Seek, SeekFrom, Write};

use super::format::{
    BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, BucketHeader, DEFAULT_PAGE_SIZE, FREELIST_PAGE_FLAG,
    MAGIC, META_PAGE_FLAG, META_SIZE, Meta, PAGE_HEADER_SIZE, PageHeader, VERSION,
};

mod tree;

use tree::{Finished, Sink, TreeBuilder};

/// bbolt's `MaxKeySize`.
pub const MAX_KEY_SIZE: usize = 32768;
/// bbolt's `MaxValueSize`.
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// Page id of the (empty) freelist page.
const FREELIST_PGID: u64 = 2;
/// Most elements kept together in a leaf larger than one page (bbolt's `minKeysPerPage * 2`).
const MAX_OVERSIZED_ELEMENTS: usize = 4;
/// First page id used for tree pages.
const FIRST_TREE_PGID: u64 = 3;

/// Writer settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteOptions {
    /// Page size; use the source file's (4096 on amd64).
    pub page_size: u32,
    /// Fraction of a page filled before starting the next one (bbolt clamps to 0.1..=1.0).
    pub fill_percent: f64,
    /// Transaction id written to meta page 0; page 1 gets `txid - 1`, as `Tx.WriteTo` does.
    pub txid: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            page_size: DEFAULT_PAGE_SIZE,
            fill_percent: 0.9,
            txid: 2,
        }
    }
}

/// Writer faults.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// I/O on the output.
    #[error("writing the bbolt file")]
    Io(#[from] std::io::Error),
    /// Keys or bucket names were not strictly ascending.
    #[error(
        "bbolt writer: {what} {key:?} is not after the previous one; input must be sorted and unique"
    )]
    Unsorted {
        /// "key" or "bucket".
        what: &'static str,
        /// Printable key.
        key: String,
    },
    /// Key or value too large for bbolt.
    #[error("bbolt writer: {0}")]
    TooLarge(String),
    /// API misuse (put outside a bucket, nested begin, ...).
    #[error("bbolt writer: {0}")]
    Usage(&'static str),
    /// Invalid options.
    #[error("bbolt writer: page size {0} is not a power of two between 1024 and 16 MiB")]
    PageSize(u32),
}

/// Figures about the written file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Top-level buckets.
    pub buckets: u64,
    /// Inline buckets among them.
    pub inline_buckets: u64,
    /// Key/value pairs written (all buckets).
    pub keys: u64,
    /// Leaf pages (counting each overflow run once).
    pub leaf_pages: u64,
    /// Branch pages.
    pub branch_pages: u64,
    /// Pages in the file (the meta `pgid` high-water mark).
    pub total_pages: u64,
    /// Bytes of the file.
    pub file_size: u64,
}
/// Streams top-level buckets (in ascending name order) with their keys (in ascending order)
/// into a new bbolt file.
///
/// ```text
/// let mut w = DbWriter::new(file, WriteOptions::default())?;
/// w.begin_bucket(b"key", 0)?; w.put(k, v)?; ...; w.end_bucket()?;
/// let stats = w.finish()?; // then fsync the file
/// ```
pub struct DbWriter<W: Write + Seek> {
    sink: Sink<W>,
    opts: WriteOptions,
    threshold: usize,
    root: TreeBuilder,
    current: Option<(Vec<u8>, u64, TreeBuilder)>,
}

impl<W: Write + Seek> DbWriter<W> {
    /// Starts a file on `out` (positioned at 0; pages 0–2 are written by [`DbWriter::finish`]).
    pub fn new(mut out: W, opts: WriteOptions) -> Result<Self, WriteError> {
        let ps = opts.page_size;
        if !ps.is_power_of_two() || !(1024..=1 << 24).contains(&ps) {
            return Err(WriteError::PageSize(ps));
        }
        let page_size = ps as usize;
        out.write_all(&vec![0u8; page_size * FIRST_TREE_PGID as usize])?;
        let fill = opts.fill_percent.clamp(0.1, 1.0);
        Ok(DbWriter {
            sink: Sink {
                out,
                page_size,
                next_pgid: FIRST_TREE_PGID,
                scratch: Vec::with_capacity(page_size),
                stats: WriteStats::default(),
            },
            opts,
            threshold: ((page_size as f64) * fill) as usize,
            root: TreeBuilder::new(),
            current: None,
        })
    }

    /// Starts the next top-level bucket; names must be strictly ascending.
    pub fn begin_bucket(&mut self, name: &[u8], sequence: u64) -> Result<(), WriteError> {
        if self.current.is_some() {
            return Err(WriteError::Usage("begin_bucket inside an open bucket"));
        }
        if self.root.has_last && name <= self.root.last_key.as_slice() {
            return Err(WriteError::Unsorted {
                what: "bucket",
                key: String::from_utf8_lossy(name).into_owned(),
            });
        }
        if name.is_empty() || name.len() > MAX_KEY_SIZE {
            return Err(WriteError::TooLarge(format!(
                "bucket name of {} bytes",
                name.len()
            )));
        }
        self.current = Some((name.to_vec(), sequence, TreeBuilder::new()));
        Ok(())
    }

    /// Adds a key/value to the open bucket; keys must be strictly ascending.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), WriteError> {
        let Some((_, _, tree)) = self.current.as_mut() else {
            return Err(WriteError::Usage("put outside a bucket"));
        };
        tree.add(&mut self.sink, self.threshold, 0, key, value)
    }

    /// Closes the open bucket, writing its branch pages (or inlining it).
    pub fn end_bucket(&mut self) -> Result<(), WriteError> {
        let Some((name, sequence, tree)) = self.current.take() else {
            return Err(WriteError::Usage("end_bucket without begin_bucket"));
        };
        self.sink.stats.keys += tree.count;
        self.sink.stats.buckets += 1;
        let inline_max = self.sink.page_size / 4;
        let value = match tree.finish(&mut self.sink, self.threshold, Some(inline_max))? {
            Finished::Inline(page) => {
                self.sink.stats.inline_buckets += 1;
                let mut v = vec![0u8; BUCKET_HEADER_SIZE];
                BucketHeader { root: 0, sequence }.encode(&mut v);
                v.extend_from_slice(&page);
                v
            }
            Finished::Root(root) => {
                let mut v = vec![0u8; BUCKET_HEADER_SIZE];
                BucketHeader { root, sequence }.encode(&mut v);
                v
            }
        };
        self.root.add(
            &mut self.sink,
            self.threshold,
            BUCKET_LEAF_FLAG,
            &name,
            &value,
        )
    }

    /// Writes the root bucket's tree, the freelist and both meta pages, and flushes.
    /// The caller fsyncs the file.
    pub fn finish(mut self) -> Result<(W, WriteStats), WriteError> {
        if self.current.is_some() {
            return Err(WriteError::Usage("finish with an open bucket"));
        }
        let root = std::mem::replace(&mut self.root, TreeBuilder::new());
        let root_pgid = match root.finish(&mut self.sink, self.threshold, None)? {
            Finished::Root(p) => p,
            Finished::Inline(_) => unreachable!("root bucket is never inline"),
        };
        let ps = self.sink.page_size;
        let hwm = self.sink.next_pgid;
        let mut head = vec![0u8; ps * FIRST_TREE_PGID as usize];
        for (i, txid) in [self.opts.txid, self.opts.txid.saturating_sub(1)]
            .into_iter()
            .enumerate()
        {
            let page = &mut head[i * ps..(i + 1) * ps];
            PageHeader {
                id: i as u64,
                flags: META_PAGE_FLAG,
                count: 0,
                overflow: 0,
            }
            .encode(&mut page[..PAGE_HEADER_SIZE]);
            Meta {
                magic: MAGIC,
                version: VERSION,
                page_size: self.opts.page_size,
                flags: 0,
                root: BucketHeader {
                    root: root_pgid,
                    sequence: 0,
                },
                freelist: FREELIST_PGID,
                pgid: hwm,
                txid,
                checksum: 0,
            }
            .with_checksum()
            .encode(&mut page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE]);
        }
        PageHeader {
            id: FREELIST_PGID,
            flags: FREELIST_PAGE_FLAG,
            count: 0,
            overflow: 0,
        }
        .encode(&mut head[2 * ps..2 * ps + PAGE_HEADER_SIZE]);
        let out = &mut self.sink.out;
        out.flush()?;
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&head)?;
        out.flush()?;
        let mut stats = self.sink.stats;
        stats.total_pages = hwm;
        stats.file_size = hwm * ps as u64;
        Ok((self.sink.out, stats))
    }
}
#[cfg(test)]
mod tests;
