//! The walk itself: every page of every bucket checked and marked once, entries fed to the
//! visitor in key order, and a big bucket cut into pieces walked from both ends on two threads.

use super::bitset::BitSet;
use super::{Stats, Visitor, mark};
use crate::bbolt::format::FIRST_DATA_PAGE;
use crate::bbolt::read::MAX_TREE_DEPTH;
use crate::bbolt::{Bucket, Db, Error, Page};

pub(super) struct Walker<'a, 'v, 'f, V> {
    pub(super) db: &'a Db,
    pub(super) visitor: &'v mut V,
    pub(super) reachable: BitSet,
    pub(super) freed: Option<&'f BitSet>,
    pub(super) path: Vec<&'a [u8]>,
    pub(super) stats: Stats,
    /// Whether this walker may hand half of a big bucket to a second thread. Only the first
    /// walker does, and not while a split is under way, so at most two threads run at once.
    pub(super) may_split: bool,
    /// Whether a split happened (faults are then looked for again on one thread).
    pub(super) split: bool,
}

/// A piece of a big bucket for one thread: grandchildren `grandchildren` of the root's child
/// `child`. Pieces are small enough (about 1/[`SPLIT_PIECES`] of the bucket) that the two threads
/// finish close together whatever the pages cost.
#[derive(Debug, Clone)]
struct Piece {
    child: usize,
    grandchildren: std::ops::Range<usize>,
}

/// How many pieces a split bucket is cut into.
const SPLIT_PIECES: usize = 48;

/// What the second thread of a split hands back: its first fault, the pages it reached, its
/// counts, and the joined visitor of the pieces it walked (if any).
type SecondHalf<V> = (Result<(), Error>, BitSet, Stats, Option<V>);

impl<'a, V: Visitor<'a>> Walker<'a, '_, '_, V> {
    fn mark(&mut self, page: &Page<'a>) -> Result<(), Error> {
        mark(
            &mut self.reachable,
            self.freed,
            &mut self.stats,
            page,
            self.db.page_size(),
        )
    }

    pub(super) fn walk_bucket(&mut self, bucket: Bucket<'a>, nesting: usize) -> Result<(), Error> {
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

    /// Checks and marks page `pgid` as reached at `depth` (root of its bucket = 1).
    fn enter(&mut self, pgid: u64, depth: usize, nesting: usize) -> Result<Page<'a>, Error> {
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
        Ok(page)
    }

    /// Checks that a non-leaf page is a branch with elements; counts it.
    fn expect_branch(&mut self, page: &Page<'a>) -> Result<(), Error> {
        if !page.is_branch() {
            return Err(Error::UnexpectedPageType {
                pgid: page.id,
                flags: page.header.flags,
                offset: page.offset,
            });
        }
        if page.count() == 0 {
            return Err(Error::EmptyBranch {
                pgid: page.id,
                offset: page.offset,
            });
        }
        self.stats.branch_pages += 1;
        Ok(())
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
        let page = self.enter(pgid, depth, nesting)?;
        if page.is_leaf() {
            self.stats.leaf_pages += 1;
            // Nested buckets below this leaf count the pages above them toward the depth limit,
            // which bounds the recursion as a whole.
            return self.walk_leaf(page, min_closed, max_open, prev, nesting + depth);
        }
        self.expect_branch(&page)?;
        if depth == 1
            && self.may_split
            && let Some(pieces) = self.plan_pieces(&page)
            && let Some(later) = self.visitor.fork()
        {
            return self.walk_split(&page, &pieces, later, min_closed, max_open, prev, nesting);
        }
        self.walk_children(
            &page,
            0..page.count(),
            min_closed,
            max_open,
            depth,
            prev,
            nesting,
        )
    }

    /// Checks branch element `i`'s key against the previous key and the range its parent gives.
    fn check_branch_key(
        page: &Page<'a>,
        i: usize,
        key: &[u8],
        prev_key: Option<&[u8]>,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
    ) -> Result<(), Error> {
        let offset = page.offset + (16 + i * 16) as u64;
        let order = |what| Error::KeyOutOfRange {
            pgid: page.id,
            index: i,
            offset,
            what,
        };
        if let Some(p) = prev_key
            && p >= key
        {
            return Err(Error::KeyOrder {
                pgid: page.id,
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
        Ok(())
    }

    /// Walks children `range` of branch `page` (the range's first key is checked against the
    /// key before it, so pieces together check exactly what one walk does).
    #[allow(clippy::too_many_arguments)]
    fn walk_children(
        &mut self,
        page: &Page<'a>,
        range: std::ops::Range<usize>,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
        depth: usize,
        prev: &mut Option<&'a [u8]>,
        nesting: usize,
    ) -> Result<(), Error> {
        let n = page.count();
        let mut prev_key: Option<&[u8]> = match range.start {
            0 => None,
            i => Some(page.branch(i - 1)?.0),
        };
        let (mut key, mut child) = page.branch(range.start)?;
        for i in range {
            Self::check_branch_key(page, i, key, prev_key, min_closed, max_open)?;
            let next = if i + 1 < n {
                Some(page.branch(i + 1)?)
            } else {
                None
            };
            let child_max = next.map(|(k, _)| k).or(max_open);
            if let Some((_, c)) = next {
                self.db.prefetch(c);
            }
            self.walk_page(child, Some(key), child_max, depth + 1, prev, nesting)?;
            prev_key = Some(key);
            if let Some((k, c)) = next {
                key = k;
                child = c;
            }
        }
        Ok(())
    }

    /// Cuts a bucket's root branch into [`Piece`]s of about equal numbers of grandchildren, or
    /// `None` if the bucket is too small (its children are leaves) to be worth a thread. Any
    /// fault met here is left for the walk itself to report.
    fn plan_pieces(&self, root: &Page<'a>) -> Option<Vec<Piece>> {
        let n = root.count();
        if n < 2 {
            return None;
        }
        let mut counts = Vec::with_capacity(n);
        for i in 0..n {
            let (_, id) = root.branch(i).ok()?;
            let child = self.db.page(id).ok()?;
            if !child.is_branch() || child.count() == 0 {
                return None;
            }
            counts.push(child.count());
        }
        let size = counts.iter().sum::<usize>().div_ceil(SPLIT_PIECES).max(1);
        let mut pieces = Vec::new();
        for (child, &count) in counts.iter().enumerate() {
            for start in (0..count).step_by(size) {
                pieces.push(Piece {
                    child,
                    grandchildren: start..(start + size).min(count),
                });
            }
        }
        Some(pieces)
    }

    /// Walks one piece: the child's own checks come with its first piece.
    fn walk_piece(
        &mut self,
        root: &Page<'a>,
        piece: &Piece,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
        prev: &mut Option<&'a [u8]>,
        nesting: usize,
    ) -> Result<(), Error> {
        let i = piece.child;
        let (key, id) = root.branch(i)?;
        let child_max = match i + 1 < root.count() {
            true => Some(root.branch(i + 1)?.0),
            false => max_open,
        };
        let child = if piece.grandchildren.start == 0 {
            let prev_key = match i {
                0 => None,
                _ => Some(root.branch(i - 1)?.0),
            };
            Self::check_branch_key(root, i, key, prev_key, min_closed, max_open)?;
            let child = self.enter(id, 2, nesting)?;
            self.expect_branch(&child)?;
            child
        } else {
            self.db.page(id)?
        };
        self.walk_children(
            &child,
            piece.grandchildren.clone(),
            Some(key),
            child_max,
            2,
            prev,
            nesting,
        )
    }

    /// Walks a big bucket on two threads: this one takes pieces from the front with its own
    /// visitor, a second one takes them from the back, each with a fresh fork (`later` first),
    /// and joins those in order. They meet wherever the work splits evenly. The first fault in walk
    /// order wins; a page reached from both threads is a double reference.
    #[allow(clippy::too_many_arguments)]
    fn walk_split(
        &mut self,
        root: &Page<'a>,
        pieces: &[Piece],
        later: V,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
        prev: &mut Option<&'a [u8]>,
        nesting: usize,
    ) -> Result<(), Error> {
        // The last piece is the second thread's from the start, so that a split always uses it.
        let last = pieces.len() - 1;
        let queue = std::sync::Mutex::new(0..last);
        let take = |from_back: bool| {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            if from_back { q.next_back() } else { q.next() }
        };
        let close = || {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            q.start = q.end;
        };
        // One fresh visitor per piece the second thread may take, forked here where our visitor
        // is at hand; if forks run out, it stops taking pieces and this thread walks the rest.
        let mut spare: Vec<V> = std::iter::once(later)
            .chain(std::iter::from_fn(|| self.visitor.fork()).take(last))
            .collect();
        let (db, freed, path) = (self.db, self.freed, self.path.clone());
        let (hwm, page_size) = (self.stats.hwm_pages, self.stats.page_size);
        let take = &take;
        let second = move || -> SecondHalf<V> {
            let mut reachable = BitSet::new(hwm);
            let mut stats = Stats {
                hwm_pages: hwm,
                page_size,
                ..Stats::default()
            };
            // Pieces walked from the back, each with its own visitor; joined in order below.
            let mut walked: Vec<V> = Vec::new();
            let mut result = Ok(());
            let mut next = Some(last);
            while let (Some(p), Some(mut v)) = (next, spare.pop()) {
                let mut w = Walker {
                    db,
                    visitor: &mut v,
                    reachable,
                    freed,
                    path: path.clone(),
                    stats,
                    may_split: false,
                    split: false,
                };
                let r = w.walk_piece(root, &pieces[p], min_closed, max_open, &mut None, nesting);
                (reachable, stats) = (w.reachable, w.stats);
                walked.push(v);
                if r.is_err() {
                    // Pieces before this one are left to the front thread, whose faults come first.
                    result = r;
                    break;
                }
                next = if spare.is_empty() { None } else { take(true) };
            }
            let mut joined = walked.pop();
            if let Some(v) = &mut joined {
                while let Some(next) = walked.pop() {
                    v.join(next);
                }
                v.half_done();
            }
            (result, reachable, stats, joined)
        };
        self.split = true;
        self.may_split = false;
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("bbolt-walk".into())
                .spawn_scoped(scope, second);
            let mut first = Ok(());
            while let Some(p) = take(false) {
                first = self.walk_piece(root, &pieces[p], min_closed, max_open, prev, nesting);
                if first.is_err() {
                    close();
                    break;
                }
            }
            if handle.is_err() && first.is_ok() {
                // No second thread to be had: this one takes its piece too.
                first = self.walk_piece(root, &pieces[last], min_closed, max_open, prev, nesting);
            }
            self.visitor.half_done();
            let Ok(handle) = handle else { return first };
            let (second, reachable, stats, joined) = match handle.join() {
                Ok(half) => half,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            first?;
            second?;
            if let Some(id) = self.reachable.first_common(&reachable) {
                return Err(Error::MultipleReferences {
                    pgid: id,
                    offset: id * page_size,
                });
            }
            self.reachable.union_with(&reachable);
            self.stats.absorb(stats);
            if let Some(v) = joined {
                self.visitor.join(v);
            }
            self.may_split = true;
            Ok(())
        })
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
