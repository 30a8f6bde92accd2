//! One bounds-checked page and the elements of its leaf and branch pages.

use crate::bbolt::Error;
use crate::bbolt::format::{
    BRANCH_ELEMENT_SIZE, BRANCH_PAGE_FLAG, BUCKET_LEAF_FLAG, BranchElement, LEAF_ELEMENT_SIZE,
    LEAF_PAGE_FLAG, LeafElement, PAGE_HEADER_SIZE, PageHeader,
};

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
        self.flags & BUCKET_LEAF_FLAG != 0
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
    pub(super) fn lower_bound(&self, key: &[u8]) -> Result<usize, Error> {
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
