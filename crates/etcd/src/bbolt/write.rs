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

use std::io::{Seek, SeekFrom, Write};

use super::format::{
    BRANCH_ELEMENT_SIZE, BRANCH_PAGE_FLAG, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, BranchElement,
    BucketHeader, DEFAULT_PAGE_SIZE, FREELIST_PAGE_FLAG, LEAF_ELEMENT_SIZE, LEAF_PAGE_FLAG,
    LeafElement, MAGIC, META_PAGE_FLAG, META_SIZE, Meta, PAGE_HEADER_SIZE, PageHeader, VERSION,
};

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

/// Output plus page allocation.
struct Sink<W> {
    out: W,
    page_size: usize,
    next_pgid: u64,
    scratch: Vec<u8>,
    stats: WriteStats,
}

impl<W: Write> Sink<W> {
    /// Writes `page` (whose header id is patched here) padded to whole pages; returns its id.
    fn write_page(
        &mut self,
        mut page: Vec<u8>,
        flags: u16,
        count: u16,
    ) -> Result<(u64, Vec<u8>), WriteError> {
        let pgid = self.write_run(&mut page, &[], flags, count)?;
        page.clear();
        Ok((pgid, page))
    }

    /// Writes one page run made of `head` (header + element array, header patched here) and
    /// `body`, zero-padded to whole pages, without first joining them in memory.
    fn write_run(
        &mut self,
        head: &mut [u8],
        body: &[u8],
        flags: u16,
        count: u16,
    ) -> Result<u64, WriteError> {
        let pgid = self.next_pgid;
        let len = head.len() + body.len();
        let pages = len.div_ceil(self.page_size).max(1);
        PageHeader {
            id: pgid,
            flags,
            count,
            overflow: u32::try_from(pages - 1)
                .map_err(|_| WriteError::TooLarge("page run too long".into()))?,
        }
        .encode(&mut head[..PAGE_HEADER_SIZE]);
        self.out.write_all(head)?;
        self.out.write_all(body)?;
        let mut pad = pages * self.page_size - len;
        while pad > 0 {
            let n = pad.min(ZEROS.len());
            self.out.write_all(&ZEROS[..n])?;
            pad -= n;
        }
        self.next_pgid += pages as u64;
        Ok(pgid)
    }
}

/// Zeros for page padding.
static ZEROS: [u8; 4096] = [0; 4096];

/// Builds one B+tree bottom-up from elements given in key order.
struct TreeBuilder {
    /// Pending leaf elements: (flags, key offset, key len, value len) into `data`.
    elems: Vec<(u32, usize, usize, usize)>,
    data: Vec<u8>,
    /// (first key, page id) of each leaf written so far.
    leaves: Vec<(Vec<u8>, u64)>,
    last_key: Vec<u8>,
    has_last: bool,
    count: u64,
}

/// How a finished tree is referenced from its parent.
enum Finished {
    /// Inline page bytes (header id 0).
    Inline(Vec<u8>),
    /// Root page id.
    Root(u64),
}

impl TreeBuilder {
    fn new() -> Self {
        TreeBuilder {
            elems: Vec::new(),
            data: Vec::new(),
            leaves: Vec::new(),
            last_key: Vec::new(),
            has_last: false,
            count: 0,
        }
    }

    fn pending_size(&self) -> usize {
        PAGE_HEADER_SIZE + self.elems.len() * LEAF_ELEMENT_SIZE + self.data.len()
    }

    fn add<W: Write>(
        &mut self,
        sink: &mut Sink<W>,
        threshold: usize,
        flags: u32,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), WriteError> {
        if key.is_empty() || key.len() > MAX_KEY_SIZE {
            return Err(WriteError::TooLarge(format!(
                "key of {} bytes (bbolt allows 1..={MAX_KEY_SIZE})",
                key.len()
            )));
        }
        if value.len() > MAX_VALUE_SIZE {
            return Err(WriteError::TooLarge(format!(
                "value of {} bytes",
                value.len()
            )));
        }
        if self.has_last && key <= self.last_key.as_slice() {
            return Err(WriteError::Unsorted {
                what: "key",
                key: String::from_utf8_lossy(key).into_owned(),
            });
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.has_last = true;
        let elsize = LEAF_ELEMENT_SIZE + key.len() + value.len();
        if self.should_close(sink.page_size, threshold, elsize) {
            self.flush_leaf(sink)?;
        }
        let off = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.elems.push((flags, off, key.len(), value.len()));
        self.count += 1;
        Ok(())
    }

    /// Whether the pending leaf is closed before an element of `elsize` bytes is added.
    ///
    /// Small elements fill a page up to `threshold`. Elements too large for that go into an
    /// overflow run; like bbolt, which never splits a node of at most four elements, such a run
    /// takes up to four elements, and keeps taking them while its last page is poorly used, so
    /// large values waste no more space than etcd's own pages do.
    fn should_close(&self, page_size: usize, threshold: usize, elsize: usize) -> bool {
        let n = self.elems.len();
        let cur = self.pending_size();
        if n == 0 {
            return false;
        }
        if n >= 0xFFFE {
            return true;
        }
        if cur + elsize <= threshold {
            return false;
        }
        if n >= MAX_OVERSIZED_ELEMENTS {
            return true;
        }
        let run = cur.div_ceil(page_size) * page_size;
        cur as f64 >= run as f64 * (threshold as f64 / page_size as f64)
    }

    /// Encodes the pending elements as one leaf page (header left zero) into `buf`.
    fn encode_leaf(&self, buf: &mut Vec<u8>) {
        self.encode_elements(buf);
        buf.extend_from_slice(&self.data);
    }

    /// Header space and element array of the pending leaf into `buf`.
    fn encode_elements(&self, buf: &mut Vec<u8>) {
        let n = self.elems.len();
        let data_start = PAGE_HEADER_SIZE + n * LEAF_ELEMENT_SIZE;
        buf.clear();
        buf.resize(data_start, 0);
        for (i, &(flags, off, ksize, vsize)) in self.elems.iter().enumerate() {
            let at = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
            LeafElement {
                flags,
                pos: (data_start + off - at) as u32,
                ksize: ksize as u32,
                vsize: vsize as u32,
            }
            .encode(&mut buf[at..at + LEAF_ELEMENT_SIZE]);
        }
    }

    fn flush_leaf<W: Write>(&mut self, sink: &mut Sink<W>) -> Result<(), WriteError> {
        // Header and element array only; the key/value bytes are written straight from `data`.
        let mut head = std::mem::take(&mut sink.scratch);
        self.encode_elements(&mut head);
        let pgid = sink.write_run(
            &mut head,
            &self.data,
            LEAF_PAGE_FLAG,
            self.elems.len() as u16,
        )?;
        sink.scratch = head;
        sink.stats.leaf_pages += 1;
        let (_, off, klen, _) = self.elems[0];
        self.leaves
            .push((self.data[off..off + klen].to_vec(), pgid));
        self.elems.clear();
        self.data.clear();
        Ok(())
    }

    /// Finishes the tree; `inline_max` is the inline size limit (`None`: never inline).
    fn finish<W: Write>(
        mut self,
        sink: &mut Sink<W>,
        threshold: usize,
        inline_max: Option<usize>,
    ) -> Result<Finished, WriteError> {
        if self.leaves.is_empty() {
            let subbuckets = self.elems.iter().any(|e| e.0 & BUCKET_LEAF_FLAG != 0);
            if let Some(max) = inline_max
                && !subbuckets
                && self.pending_size() <= max
            {
                let mut buf = Vec::new();
                self.encode_leaf(&mut buf);
                PageHeader {
                    id: 0,
                    flags: LEAF_PAGE_FLAG,
                    count: self.elems.len() as u16,
                    overflow: 0,
                }
                .encode(&mut buf[..PAGE_HEADER_SIZE]);
                return Ok(Finished::Inline(buf));
            }
        }
        if !self.elems.is_empty() || self.leaves.is_empty() {
            if self.elems.is_empty() {
                // An empty non-inline tree is a single empty leaf (as `db.init` writes page 3).
                let buf = vec![0u8; PAGE_HEADER_SIZE];
                let (pgid, _) = sink.write_page(buf, LEAF_PAGE_FLAG, 0)?;
                sink.stats.leaf_pages += 1;
                return Ok(Finished::Root(pgid));
            }
            self.flush_leaf(sink)?;
        }
        let mut level = std::mem::take(&mut self.leaves);
        while level.len() > 1 {
            level = write_branch_level(sink, threshold, &level)?;
        }
        Ok(Finished::Root(level[0].1))
    }
}

/// Packs one level of (first key, child) pairs into branch pages; returns the level above.
fn write_branch_level<W: Write>(
    sink: &mut Sink<W>,
    threshold: usize,
    children: &[(Vec<u8>, u64)],
) -> Result<Vec<(Vec<u8>, u64)>, WriteError> {
    let mut parents = Vec::new();
    let mut start = 0;
    while start < children.len() {
        let mut size = PAGE_HEADER_SIZE;
        let mut end = start;
        while end < children.len() {
            let el = BRANCH_ELEMENT_SIZE + children[end].0.len();
            // At least two children per branch page, so every level shrinks.
            if end - start >= 2 && (size + el > threshold || end - start >= 0xFFFE) {
                break;
            }
            size += el;
            end += 1;
        }
        // Avoid leaving a lone child for the last page: take it here.
        if children.len() - end == 1 {
            end += 1;
        }
        let n = end - start;
        let data_start = PAGE_HEADER_SIZE + n * BRANCH_ELEMENT_SIZE;
        let mut buf = std::mem::take(&mut sink.scratch);
        buf.clear();
        buf.resize(data_start, 0);
        for (i, (key, pgid)) in children[start..end].iter().enumerate() {
            let at = PAGE_HEADER_SIZE + i * BRANCH_ELEMENT_SIZE;
            BranchElement {
                pos: (buf.len() - at) as u32,
                ksize: key.len() as u32,
                pgid: *pgid,
            }
            .encode(&mut buf[at..at + BRANCH_ELEMENT_SIZE]);
            buf.extend_from_slice(key);
        }
        let (pgid, buf) = sink.write_page(buf, BRANCH_PAGE_FLAG, n as u16)?;
        sink.scratch = buf;
        sink.stats.branch_pages += 1;
        parents.push((children[start].0.clone(), pgid));
        start = end;
    }
    Ok(parents)
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
pub(crate) mod tests {
    use super::*;
    use crate::bbolt::format::BucketHeader as BH;
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Cursor;

    type Db = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

    /// A strict test-only reader: checks page ids, bounds, no page reached twice, sorted keys,
    /// branch keys equal to the child's first key, every page below the high-water mark used.
    pub(crate) fn read_back(file: &[u8]) -> Db {
        let meta0 = Meta::parse(&file[16..80]).unwrap();
        meta0.validate().unwrap();
        let ps = meta0.page_size as usize;
        let meta1 = Meta::parse(&file[ps + 16..ps + 80]).unwrap();
        meta1.validate().unwrap();
        assert_eq!(file.len(), meta0.pgid as usize * ps);
        let fl = PageHeader::parse(&file[2 * ps..]).unwrap();
        assert_eq!((fl.id, fl.flags, fl.count), (2, FREELIST_PAGE_FLAG, 0));
        let mut seen = BTreeSet::from([0u64, 1, 2]);
        let mut db = Db::new();
        let mut top = Vec::new();
        walk(file, ps, meta0.root.root, &mut seen, &mut top, None);
        for (flags, k, v) in top {
            assert_eq!(flags, BUCKET_LEAF_FLAG);
            let h = BH::parse(&v).unwrap();
            let mut items = Vec::new();
            if h.root == 0 {
                leaf_items(&v[16..], &mut items);
            } else {
                walk(file, ps, h.root, &mut seen, &mut items, None);
            }
            let mut m = BTreeMap::new();
            for (f, kk, vv) in items {
                assert_eq!(f, 0);
                m.insert(kk, vv);
            }
            db.insert(k, m);
        }
        assert_eq!(
            seen.len() as u64,
            meta0.pgid,
            "every page used exactly once"
        );
        db
    }

    fn leaf_items(p: &[u8], out: &mut Vec<(u32, Vec<u8>, Vec<u8>)>) {
        let h = PageHeader::parse(p).unwrap();
        assert_eq!(h.flags, LEAF_PAGE_FLAG);
        for i in 0..h.count as usize {
            let at = 16 + i * 16;
            let e = LeafElement::parse(&p[at..]).unwrap();
            let k = at + e.pos as usize;
            let key = p[k..k + e.ksize as usize].to_vec();
            let val = p[k + e.ksize as usize..k + (e.ksize + e.vsize) as usize].to_vec();
            if let Some(last) = out.last() {
                assert!(last.1 < key, "sorted");
            }
            out.push((e.flags, key, val));
        }
    }

    fn walk(
        file: &[u8],
        ps: usize,
        pgid: u64,
        seen: &mut BTreeSet<u64>,
        out: &mut Vec<(u32, Vec<u8>, Vec<u8>)>,
        expect_first: Option<&[u8]>,
    ) {
        let p = &file[pgid as usize * ps..];
        let h = PageHeader::parse(p).unwrap();
        assert_eq!(h.id, pgid);
        for i in 0..=h.overflow as u64 {
            assert!(seen.insert(pgid + i), "page {} reached twice", pgid + i);
        }
        let before = out.len();
        if h.flags == BRANCH_PAGE_FLAG {
            assert!(h.count >= 1);
            for i in 0..h.count as usize {
                let at = 16 + i * 16;
                let e = BranchElement::parse(&p[at..]).unwrap();
                let k = &p[at + e.pos as usize..at + (e.pos + e.ksize) as usize];
                walk(file, ps, e.pgid, seen, out, Some(k));
            }
        } else {
            leaf_items(&p[..(h.overflow as usize + 1) * ps], out);
        }
        if let Some(first) = expect_first {
            assert_eq!(out[before].1.as_slice(), first);
        }
    }

    fn write(db: &Db, ps: u32) -> (Vec<u8>, WriteStats) {
        let mut w = DbWriter::new(
            Cursor::new(Vec::new()),
            WriteOptions {
                page_size: ps,
                ..WriteOptions::default()
            },
        )
        .unwrap();
        for (name, kv) in db {
            w.begin_bucket(name, 0).unwrap();
            for (k, v) in kv {
                w.put(k, v).unwrap();
            }
            w.end_bucket().unwrap();
        }
        let (c, s) = w.finish().unwrap();
        (c.into_inner(), s)
    }

    #[test]
    fn empty_db_and_inline_buckets() {
        let mut db = Db::new();
        let (f, s) = write(&db, 4096);
        assert_eq!(s.total_pages, 4);
        assert_eq!(read_back(&f), db);
        db.insert(b"alarm".to_vec(), BTreeMap::new());
        db.insert(
            b"meta".to_vec(),
            BTreeMap::from([(b"term".to_vec(), vec![0, 0, 0, 0, 0, 0, 0, 1])]),
        );
        let (f, s) = write(&db, 4096);
        assert_eq!(s.inline_buckets, 2);
        assert_eq!(s.total_pages, 4);
        assert_eq!(read_back(&f), db);
    }

    #[test]
    fn inline_limit_is_a_quarter_page() {
        // 16 header + 16 element + key 1 + value = 1024 exactly: inline; one byte more: not.
        for (vlen, inline) in [(991usize, 1u64), (992, 0)] {
            let db = Db::from([(
                b"b".to_vec(),
                BTreeMap::from([(b"k".to_vec(), vec![7u8; vlen])]),
            )]);
            let (f, s) = write(&db, 4096);
            assert_eq!(s.inline_buckets, inline, "vlen {vlen}");
            assert_eq!(read_back(&f), db);
        }
    }

    #[test]
    fn large_trees_overflow_and_branches() {
        let mut key = BTreeMap::new();
        for i in 0..20_000u64 {
            let mut k = i.to_be_bytes().to_vec();
            k.push(b'_');
            k.extend_from_slice(&0u64.to_be_bytes());
            key.insert(k, vec![(i % 251) as u8; (i % 300) as usize]);
        }
        // A few values larger than a page.
        key.insert(vec![0xff; 17], vec![1u8; 20_000]);
        key.insert(vec![0xfe; 17], vec![2u8; 4096]);
        let db = Db::from([(b"key".to_vec(), key), (b"lease".to_vec(), BTreeMap::new())]);
        let (f, s) = write(&db, 4096);
        assert!(s.branch_pages >= 2, "{s:?}");
        assert_eq!(read_back(&f), db);
        // Pages are well filled: data bytes over file bytes.
        let data: usize = db[b"key".as_slice()]
            .iter()
            .map(|(k, v)| k.len() + v.len() + 16)
            .sum();
        assert!(
            data as f64 / f.len() as f64 > 0.75,
            "fill {}",
            data as f64 / f.len() as f64
        );
    }

    #[test]
    fn rejects_unsorted_input() {
        let mut w = DbWriter::new(Cursor::new(Vec::new()), WriteOptions::default()).unwrap();
        w.begin_bucket(b"b", 0).unwrap();
        w.put(b"b", b"").unwrap();
        assert!(matches!(w.put(b"a", b""), Err(WriteError::Unsorted { .. })));
        assert!(matches!(w.put(b"", b""), Err(WriteError::TooLarge(_))));
        w.end_bucket().unwrap();
        assert!(matches!(
            w.begin_bucket(b"a", 0),
            Err(WriteError::Unsorted { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn round_trips(
            db in proptest::collection::btree_map(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 1..12),
                proptest::collection::btree_map(
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1500),
                    0..120),
                0..6),
            ps in proptest::sample::select(vec![1024u32, 4096]),
        ) {
            let (f, _) = write(&db, ps);
            proptest::prop_assert_eq!(read_back(&f), db);
            // The reader's full structural check (bbolt `tx.Check` and more) agrees.
            let parsed = crate::bbolt::Db::from_bytes(f).unwrap();
            let st = crate::bbolt::check::check(&parsed, &mut ()).unwrap();
            proptest::prop_assert_eq!(st.free_pages, 0);
            proptest::prop_assert!(st.freelist_persisted && st.warnings.is_empty());
        }
    }
}
