//! Buckets (rooted at a page or inline), exact lookups and in-order cursors that stop on
//! malformed data instead of looping.

use super::page::{Entry, Page};
use super::{Db, MAX_TREE_DEPTH};
use crate::bbolt::Error;
use crate::bbolt::format::{BUCKET_HEADER_SIZE, BucketHeader, LEAF_PAGE_FLAG, PageHeader};

/// A bucket: either rooted at a page, or inline (its single leaf page stored in the parent's value).
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    pub(super) db: &'a Db,
    pub(super) header: BucketHeader,
    pub(super) inline: Option<Page<'a>>,
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
    pub(super) cursor: Cursor<'a>,
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
