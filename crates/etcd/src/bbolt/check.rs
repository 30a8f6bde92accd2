//! Full structural check of a bbolt image, optionally feeding every entry to a visitor.
//!
//! Re-implements bbolt's `tx.Check` (etcd-io/bbolt `tx_check.go`) without trusting the freelist:
//! every page reached from the root is in `[2, hwm)`, inside the file, carries its own id, is a
//! branch or leaf page, and is reached once; keys strictly increase within each bucket and stay in
//! the range their parent branch assigns; nested and inline buckets are well-formed. If a freelist
//! is persisted, it is parsed and cross-checked (reachable-but-free, neither-reachable-nor-free).
//! The walk stops at the first fault, which names the page and the file offset.

use super::format::{
    FIRST_DATA_PAGE, FREELIST_COUNT_OVERFLOW, FREELIST_PAGE_FLAG, PGID_NO_FREELIST, le_u64,
};
use super::read::MAX_TREE_DEPTH;
use super::{Bucket, Db, Entry, Error, MetaState, Page};

/// Receives every entry of every bucket, in key order, during [`check`].
pub trait Visitor<'a> {
    /// `path` is the chain of bucket names containing `entry`; it is empty for the root bucket,
    /// whose entries are the top-level buckets. A nested bucket's entry is delivered before its
    /// contents.
    fn entry(&mut self, path: &[&'a [u8]], entry: &Entry<'a>);
}

/// A visitor that ignores everything (pure structural check).
impl<'a> Visitor<'a> for () {
    fn entry(&mut self, _: &[&'a [u8]], _: &Entry<'a>) {}
}

/// Figures gathered by a successful [`check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// High-water mark: pages below it make up the database (`meta.pgid`).
    pub hwm_pages: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// Pages in use: both metas, the freelist (if persisted) and every reachable tree page
    /// including overflow pages.
    pub used_pages: u64,
    /// Pages below the high-water mark that are not in use (free or pending reuse).
    pub free_pages: u64,
    /// Branch pages reached.
    pub branch_pages: u64,
    /// Leaf pages reached (not counting inline pages).
    pub leaf_pages: u64,
    /// Overflow pages (continuations of big pages) reached.
    pub overflow_pages: u64,
    /// Buckets (including nested and inline, excluding the root bucket).
    pub buckets: u64,
    /// Inline buckets.
    pub inline_buckets: u64,
    /// Key/value entries (excluding bucket entries).
    pub entries: u64,
    /// Deepest page level seen (root = 1).
    pub max_depth: u64,
    /// Whether a freelist page is persisted (etcd normally runs with `NoFreelistSync`).
    pub freelist_persisted: bool,
    /// Problems that do not make the database unreadable (e.g. one damaged meta page).
    pub warnings: Vec<String>,
}

/// Walks the whole database; returns the first fault found, or the gathered [`Stats`].
pub fn check<'a, V: Visitor<'a>>(db: &'a Db, visitor: &mut V) -> Result<Stats, Error> {
    let hwm = db.meta().pgid;
    let mut w = Walker {
        db,
        visitor,
        reachable: BitSet::new(hwm),
        freed: None,
        path: Vec::new(),
        stats: Stats {
            hwm_pages: hwm,
            page_size: db.page_size() as u64,
            ..Stats::default()
        },
    };
    for (i, m) in db.metas().iter().enumerate() {
        match m {
            MetaState::Valid(_) => {}
            MetaState::Invalid(f) => w
                .stats
                .warnings
                .push(format!("meta page {i} is invalid: {f}")),
            MetaState::Missing => w.stats.warnings.push(format!("meta page {i} is missing")),
        }
    }
    w.reachable.insert(0);
    w.reachable.insert(1);
    w.stats.used_pages = 2;
    w.load_freelist()?;
    let root = db.root();
    w.walk_bucket(root, 0)?;
    if let Some(freed) = &w.freed {
        for id in FIRST_DATA_PAGE..hwm {
            if !w.reachable.contains(id) && !freed.contains(id) {
                return Err(Error::UnreachableUnfreed { pgid: id });
            }
        }
    }
    w.stats.free_pages = hwm - w.stats.used_pages;
    Ok(w.stats)
}

struct Walker<'a, 'v, V> {
    db: &'a Db,
    visitor: &'v mut V,
    reachable: BitSet,
    freed: Option<BitSet>,
    path: Vec<&'a [u8]>,
    stats: Stats,
}

impl<'a, V: Visitor<'a>> Walker<'a, '_, V> {
    fn load_freelist(&mut self) -> Result<(), Error> {
        let id = self.db.meta().freelist;
        if id == PGID_NO_FREELIST {
            return Ok(());
        }
        self.stats.freelist_persisted = true;
        if id < FIRST_DATA_PAGE {
            return Err(Error::MetaPageReferenced { pgid: id });
        }
        let page = self.db.page(id)?;
        let bad = |what: String| Error::BadFreelist {
            pgid: id,
            offset: page.offset,
            what,
        };
        if page.header.flags != FREELIST_PAGE_FLAG {
            return Err(bad(format!(
                "page type is {}, not freelist",
                page.header.type_name()
            )));
        }
        self.mark(&page)?;
        let (count, start) = if page.header.count == FREELIST_COUNT_OVERFLOW {
            let n = page
                .data
                .get(16..24)
                .map(|b| le_u64(b, 0))
                .ok_or_else(|| bad("count word beyond end of page".into()))?;
            (n, 24usize)
        } else {
            (u64::from(page.header.count), 16usize)
        };
        let avail = ((page.data.len() - start) / 8) as u64;
        if count > avail {
            return Err(bad(format!(
                "{count} ids do not fit in the page (room for {avail})"
            )));
        }
        let hwm = self.db.meta().pgid;
        let mut freed = BitSet::new(hwm);
        for i in 0..count as usize {
            let fid = le_u64(page.data, start + i * 8);
            if fid < FIRST_DATA_PAGE || fid >= hwm {
                return Err(bad(format!("free id {fid} outside [2, {hwm})")));
            }
            if freed.contains(fid) {
                return Err(bad(format!("page {fid} freed twice")));
            }
            freed.insert(fid);
        }
        for i in 0..=u64::from(page.header.overflow) {
            if freed.contains(id + i) {
                return Err(Error::ReachableFreed { pgid: id + i });
            }
        }
        self.freed = Some(freed);
        Ok(())
    }

    /// Records `page` (and its overflow) as reachable; faults on a second reference.
    fn mark(&mut self, page: &Page<'a>) -> Result<(), Error> {
        let pages = u64::from(page.header.overflow) + 1;
        for i in 0..pages {
            let id = page.id + i;
            if self.reachable.contains(id) {
                return Err(Error::MultipleReferences {
                    pgid: id,
                    offset: id * self.db.page_size() as u64,
                });
            }
            if let Some(f) = &self.freed
                && f.contains(id)
            {
                return Err(Error::ReachableFreed { pgid: id });
            }
            self.reachable.insert(id);
        }
        self.stats.used_pages += pages;
        self.stats.overflow_pages += pages - 1;
        Ok(())
    }

    fn walk_bucket(&mut self, bucket: Bucket<'a>, nesting: usize) -> Result<(), Error> {
        if nesting > MAX_TREE_DEPTH {
            return Err(Error::TooDeep {
                pgid: bucket.header().root,
                max: MAX_TREE_DEPTH,
            });
        }
        let mut prev = None;
        match bucket.inline_page() {
            Some(page) => self.walk_leaf(page, None, None, &mut prev, nesting),
            None => self.walk_page(bucket.header().root, None, None, 1, &mut prev, nesting),
        }
    }

    fn walk_page(
        &mut self,
        pgid: u64,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
        depth: usize,
        prev: &mut Option<&'a [u8]>,
        nesting: usize,
    ) -> Result<(), Error> {
        if depth + nesting > MAX_TREE_DEPTH {
            return Err(Error::TooDeep {
                pgid,
                max: MAX_TREE_DEPTH,
            });
        }
        if pgid < FIRST_DATA_PAGE {
            return Err(Error::MetaPageReferenced { pgid });
        }
        let page = self.db.page(pgid)?;
        self.mark(&page)?;
        self.stats.max_depth = self.stats.max_depth.max(depth as u64);
        if page.is_leaf() {
            self.stats.leaf_pages += 1;
            // Nested buckets below this leaf count the pages above them toward the depth limit,
            // which bounds the recursion as a whole.
            return self.walk_leaf(page, min_closed, max_open, prev, nesting + depth);
        }
        if !page.is_branch() {
            return Err(Error::UnexpectedPageType {
                pgid,
                flags: page.header.flags,
                offset: page.offset,
            });
        }
        self.stats.branch_pages += 1;
        let n = page.count();
        if n == 0 {
            return Err(Error::EmptyBranch {
                pgid,
                offset: page.offset,
            });
        }
        let mut prev_branch_key: Option<&[u8]> = None;
        let (mut key, mut child) = page.branch(0)?;
        for i in 0..n {
            let offset = page.offset + (16 + i * 16) as u64;
            let order = |what| Error::KeyOutOfRange {
                pgid,
                index: i,
                offset,
                what,
            };
            if let Some(p) = prev_branch_key
                && p >= key
            {
                return Err(Error::KeyOrder {
                    pgid,
                    index: i,
                    offset,
                });
            }
            if i == 0
                && let Some(min) = min_closed
                && key < min
            {
                return Err(order("below the key"));
            }
            if let Some(max) = max_open
                && key >= max
            {
                return Err(order("not below the next key"));
            }
            let next = if i + 1 < n {
                Some(page.branch(i + 1)?)
            } else {
                None
            };
            let child_max = next.map(|(k, _)| k).or(max_open);
            self.walk_page(child, Some(key), child_max, depth + 1, prev, nesting)?;
            prev_branch_key = Some(key);
            if let Some((k, c)) = next {
                key = k;
                child = c;
            }
        }
        Ok(())
    }

    fn walk_leaf(
        &mut self,
        page: Page<'a>,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
        prev: &mut Option<&'a [u8]>,
        nesting: usize,
    ) -> Result<(), Error> {
        for i in 0..page.count() {
            let e = page.leaf(i)?;
            if let Some(p) = *prev
                && p >= e.key
            {
                return Err(Error::KeyOrder {
                    pgid: page.id,
                    index: i,
                    offset: e.offset,
                });
            }
            if let Some(min) = min_closed
                && e.key < min
            {
                return Err(Error::KeyOutOfRange {
                    pgid: page.id,
                    index: i,
                    offset: e.offset,
                    what: "below the key",
                });
            }
            if let Some(max) = max_open
                && e.key >= max
            {
                return Err(Error::KeyOutOfRange {
                    pgid: page.id,
                    index: i,
                    offset: e.offset,
                    what: "not below the next key",
                });
            }
            *prev = Some(e.key);
            self.visitor.entry(&self.path, &e);
            if e.is_bucket() {
                let child = Bucket::from_value(self.db, e.value, e.value_offset)?;
                self.stats.buckets += 1;
                if child.is_inline() {
                    self.stats.inline_buckets += 1;
                }
                self.path.push(e.key);
                self.walk_bucket(child, nesting + 1)?;
                self.path.pop();
            } else if self.path.is_empty() {
                return Err(Error::NotABucket { offset: e.offset });
            } else {
                self.stats.entries += 1;
            }
        }
        Ok(())
    }
}

/// Fixed-size bit set over page ids `[0, n)`.
struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    fn new(n: u64) -> Self {
        BitSet {
            words: vec![0; n.div_ceil(64) as usize],
        }
    }

    fn contains(&self, i: u64) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn insert(&mut self, i: u64) {
        if let Some(w) = self.words.get_mut((i / 64) as usize) {
            *w |= 1 << (i % 64);
        }
    }
}
