//! Full structural check of a bbolt image, optionally feeding every entry to a visitor.
//!
//! Re-implements bbolt's `tx.Check` (etcd-io/bbolt `tx_check.go`) without trusting the freelist:
//! every page reached from the root is in `[2, hwm)`, inside the file, carries its own id, is a
//! branch or leaf page, and is reached once; keys strictly increase within each bucket and stay in
//! the range their parent branch assigns; nested and inline buckets are well-formed. If a freelist
//! is persisted, it is parsed and cross-checked (reachable-but-free, neither-reachable-nor-free).
//! The walk stops at the first fault, which names the page and the file offset.
//!
//! The entry point, the visitor and the freelist are here; `walker.rs` walks the trees,
//! `bitset.rs` holds the page sets.

use super::format::{
    FIRST_DATA_PAGE, FREELIST_COUNT_OVERFLOW, FREELIST_PAGE_FLAG, PGID_NO_FREELIST, le_u64,
};
use super::{Db, Entry, Error, MetaState, Page};

mod bitset;
mod walker;

pub(crate) use bitset::BitSet;
use walker::Walker;

/// Receives every entry of every bucket, in key order, during [`check`].
///
/// A visitor that can [`fork`](Visitor::fork) lets the walk hand the second half of a big bucket
/// to a second thread: a snapshot is one huge `key` bucket, and one core cannot pull a gigabyte
/// through page faults, the CRC and the key map as fast as two.
pub trait Visitor<'a>: Send {
    /// `path` is the chain of bucket names containing `entry`; it is empty for the root bucket,
    /// whose entries are the top-level buckets. A nested bucket's entry is delivered before its
    /// contents.
    fn entry(&mut self, path: &[&'a [u8]], entry: &Entry<'a>);

    /// A fresh visitor for a run of entries that all come after every entry this one sees (they
    /// are visited concurrently, then handed back through [`join`](Visitor::join)). `None`, the
    /// default, keeps the walk on one thread.
    fn fork(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// Called on each side of a split, on that side's thread, once its half is walked: the place
    /// for per-half work that should also run in parallel (sorting, say).
    fn half_done(&mut self) {}

    /// Absorbs `later`, a visitor from [`fork`](Visitor::fork) that saw the entries right after
    /// the last one this visitor saw.
    fn join(&mut self, later: Self)
    where
        Self: Sized,
    {
        let _ = later;
    }
}

/// A visitor that ignores everything (pure structural check).
impl<'a> Visitor<'a> for () {
    fn entry(&mut self, _: &[&'a [u8]], _: &Entry<'a>) {}

    fn fork(&self) -> Option<Self> {
        Some(())
    }
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
///
/// If the visitor can fork, the second half of the first big bucket (three levels or more) is
/// walked on a second thread; faults, statistics and visitor state come out as from one walk.
pub fn check<'a, V: Visitor<'a>>(db: &'a Db, visitor: &mut V) -> Result<Stats, Error> {
    match walk(db, visitor, true) {
        // Two threads meet faults out of walk order (the back thread walks backwards; a page
        // reached from both shows only at the merge). Faults are rare: the structural walk alone
        // again on one thread names the first one, as a sequential check would.
        Err((fault, true)) => Err(walk(db, &mut (), false).err().map_or(fault, |(f, _)| f)),
        Err((fault, false)) => Err(fault),
        Ok(stats) => Ok(stats),
    }
}

/// The walk behind [`check`]; a fault comes with whether a bucket was split across threads.
fn walk<'a, V: Visitor<'a>>(
    db: &'a Db,
    visitor: &mut V,
    may_split: bool,
) -> Result<Stats, (Error, bool)> {
    let hwm = db.meta().pgid;
    let mut stats = Stats {
        hwm_pages: hwm,
        page_size: db.page_size() as u64,
        ..Stats::default()
    };
    for (i, m) in db.metas().iter().enumerate() {
        match m {
            MetaState::Valid(_) => {}
            MetaState::Invalid(f) => stats
                .warnings
                .push(format!("meta page {i} is invalid: {f}")),
            MetaState::Missing => stats.warnings.push(format!("meta page {i} is missing")),
        }
    }
    let mut reachable = BitSet::new(hwm);
    reachable.insert(0);
    reachable.insert(1);
    stats.used_pages = 2;
    let freed = load_freelist(db, &mut reachable, &mut stats).map_err(|e| (e, false))?;
    let mut w = Walker {
        db,
        visitor,
        reachable,
        freed: freed.as_ref(),
        path: Vec::new(),
        stats,
        may_split,
        split: false,
    };
    w.walk_bucket(db.root(), 0).map_err(|e| (e, w.split))?;
    if let Some(freed) = &freed {
        for id in FIRST_DATA_PAGE..hwm {
            if !w.reachable.contains(id) && !freed.contains(id) {
                return Err((Error::UnreachableUnfreed { pgid: id }, w.split));
            }
        }
    }
    w.stats.free_pages = hwm - w.stats.used_pages;
    Ok(w.stats)
}

/// Parses and marks a persisted freelist page; returns the set of free page ids.
fn load_freelist(
    db: &Db,
    reachable: &mut BitSet,
    stats: &mut Stats,
) -> Result<Option<BitSet>, Error> {
    let id = db.meta().freelist;
    if id == PGID_NO_FREELIST {
        return Ok(None);
    }
    stats.freelist_persisted = true;
    if id < FIRST_DATA_PAGE {
        return Err(Error::MetaPageReferenced { pgid: id });
    }
    let page = db.page(id)?;
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
    mark(reachable, None, stats, &page, db.page_size())?;
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
    let hwm = db.meta().pgid;
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
    Ok(Some(freed))
}

/// Records `page` (and its overflow) as reachable; faults on a second reference.
fn mark(
    reachable: &mut BitSet,
    freed: Option<&BitSet>,
    stats: &mut Stats,
    page: &Page<'_>,
    page_size: usize,
) -> Result<(), Error> {
    let pages = u64::from(page.header.overflow) + 1;
    for i in 0..pages {
        let id = page.id + i;
        if reachable.contains(id) {
            return Err(Error::MultipleReferences {
                pgid: id,
                offset: id * page_size as u64,
            });
        }
        if let Some(f) = freed
            && f.contains(id)
        {
            return Err(Error::ReachableFreed { pgid: id });
        }
        reachable.insert(id);
    }
    stats.used_pages += pages;
    stats.overflow_pages += pages - 1;
    Ok(())
}

impl Stats {
    /// Adds the counts of a walk over a disjoint part of the tree.
    fn absorb(&mut self, other: Stats) {
        self.used_pages += other.used_pages;
        self.branch_pages += other.branch_pages;
        self.leaf_pages += other.leaf_pages;
        self.overflow_pages += other.overflow_pages;
        self.buckets += other.buckets;
        self.inline_buckets += other.inline_buckets;
        self.entries += other.entries;
        self.max_depth = self.max_depth.max(other.max_depth);
        self.warnings.extend(other.warnings);
    }
}
