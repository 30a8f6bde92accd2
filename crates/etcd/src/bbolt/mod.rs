//! bbolt (etcd's storage engine) on-disk format.
//!
//! * [`format`](mod@format): constants and fixed-size structures, shared by the reader and the restore writer.
//! * [`Db`] (in `read`): a read-only, bounds-checked reader over a memory map — meta selection,
//!   pages, buckets (nested and inline), overflow pages, lookups and in-order cursors. It never
//!   depends on the freelist (etcd runs bbolt with `NoFreelistSync`).
//! * [`check`]: a full structural walk (bbolt `tx.Check` and more) that reports the first fault
//!   precisely and can feed every entry to a [`check::Visitor`] in the same pass.

pub mod check;
pub mod format;
mod read;
pub mod write;

#[cfg(test)]
mod tests;

pub use read::{Bucket, Buckets, Cursor, Db, Entry, MetaState, Page};

use std::path::PathBuf;

/// Errors reading a bbolt image. Offsets are byte offsets in the file; `pgid` is a page id.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, inspected or mapped.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The image is too small to hold a meta page.
    #[error(
        "file is {len} bytes, at least {needed} are needed: this is not a bbolt database (or it is empty/truncated)"
    )]
    TooSmall {
        /// Actual length.
        len: u64,
        /// Needed length.
        needed: u64,
    },
    /// Neither meta page is valid.
    #[error(
        "no valid meta page: meta 0: {meta0}; meta 1: {meta1}. This is not a bbolt database or both meta pages are damaged"
    )]
    NoValidMeta {
        /// What is wrong with meta page 0.
        meta0: String,
        /// What is wrong with meta page 1.
        meta1: String,
    },
    /// The page size is not a power of two in 1 KiB..=16 MiB.
    #[error("unsupported page size {0}")]
    BadPageSize(u32),
    /// The meta's high-water mark points past the end of the data.
    #[error(
        "file is truncated: meta says {pgid} pages of {page_size} bytes ({needed} bytes) but only {len} bytes are present; re-copy the file or take a new snapshot"
    )]
    Truncated {
        /// Bytes present.
        len: u64,
        /// Bytes the meta requires.
        needed: u64,
        /// High-water mark.
        pgid: u64,
        /// Page size.
        page_size: u32,
    },
    /// The current meta is self-consistent but nonsensical.
    #[error("meta page {meta_page}: {what}")]
    BadMeta {
        /// 0 or 1.
        meta_page: u64,
        /// What is wrong.
        what: String,
    },
    /// A page id at or beyond the high-water mark was referenced.
    #[error("page {pgid}: out of range (high-water mark {hwm})")]
    PageOutOfRange {
        /// Referenced page.
        pgid: u64,
        /// High-water mark.
        hwm: u64,
    },
    /// The page header does not carry its own id.
    #[error("page {pgid} at offset {offset}: header says page {found}")]
    PageIdMismatch {
        /// Expected page id (position).
        pgid: u64,
        /// Id found in the header.
        found: u64,
        /// File offset of the page.
        offset: u64,
    },
    /// A page's overflow runs past the high-water mark.
    #[error(
        "page {pgid} at offset {offset}: overflow of {overflow} pages runs past high-water mark {hwm}"
    )]
    OverflowOutOfRange {
        /// Page id.
        pgid: u64,
        /// Overflow count in the header.
        overflow: u32,
        /// High-water mark.
        hwm: u64,
        /// File offset of the page.
        offset: u64,
    },
    /// A page element (or its key/value) does not fit in its page.
    #[error("page {pgid}, element {index} at offset {offset}: {what}")]
    BadElement {
        /// Page id (0 for an inline page).
        pgid: u64,
        /// Element index.
        index: usize,
        /// File offset of the element header.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A bucket value is malformed.
    #[error("bucket value at offset {offset}: {what}")]
    BadBucket {
        /// File offset of the bucket value.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A branch page has no elements.
    #[error("page {pgid} at offset {offset}: branch page with no elements")]
    EmptyBranch {
        /// Page id.
        pgid: u64,
        /// File offset of the page.
        offset: u64,
    },
    /// The tree is deeper than any real bbolt tree (a cycle or garbage).
    #[error("page {pgid}: tree deeper than {max} levels (cycle?)")]
    TooDeep {
        /// Page where the limit was hit.
        pgid: u64,
        /// The limit.
        max: usize,
    },
    /// A page reached through a tree pointer is neither a branch nor a leaf.
    #[error(
        "page {pgid} at offset {offset}: expected a branch or leaf page, found flags {flags:#06x}"
    )]
    UnexpectedPageType {
        /// Page id.
        pgid: u64,
        /// Flags found.
        flags: u16,
        /// File offset of the page.
        offset: u64,
    },
    /// A cursor visited more pages than exist: some page is referenced more than once.
    #[error(
        "page {pgid}: visited more pages than the database holds; some page is referenced twice"
    )]
    PageRevisited {
        /// Page being entered when the limit was exceeded.
        pgid: u64,
    },
    /// Keys are not strictly increasing.
    #[error(
        "page {pgid}, element {index} at offset {offset}: key is not greater than the previous key"
    )]
    KeyOrder {
        /// Page id.
        pgid: u64,
        /// Element index.
        index: usize,
        /// File offset of the element.
        offset: u64,
    },
    /// A key lies outside the range its parent branch assigns to the page.
    #[error("page {pgid}, element {index} at offset {offset}: key {what} of the parent branch")]
    KeyOutOfRange {
        /// Page id.
        pgid: u64,
        /// Element index.
        index: usize,
        /// File offset of the element.
        offset: u64,
        /// `"below the key"` or `"not below the next key"`.
        what: &'static str,
    },
    /// A top-level entry is a plain key/value instead of a bucket.
    #[error("top-level entry at offset {offset} is not a bucket")]
    NotABucket {
        /// File offset of the element.
        offset: u64,
    },
    /// A page is reachable from two places.
    #[error("page {pgid} at offset {offset}: referenced more than once")]
    MultipleReferences {
        /// Page id.
        pgid: u64,
        /// File offset of the page.
        offset: u64,
    },
    /// A tree pointer refers to a meta page.
    #[error("page {pgid}: tree pointer to a meta page")]
    MetaPageReferenced {
        /// Page id.
        pgid: u64,
    },
    /// A reachable page is also listed in the persisted freelist.
    #[error("page {pgid}: reachable but listed as free")]
    ReachableFreed {
        /// Page id.
        pgid: u64,
    },
    /// With a persisted freelist, a page is neither reachable nor free.
    #[error("page {pgid}: neither reachable nor free")]
    UnreachableUnfreed {
        /// Page id.
        pgid: u64,
    },
    /// The persisted freelist is malformed.
    #[error("freelist page {pgid} at offset {offset}: {what}")]
    BadFreelist {
        /// Freelist page id.
        pgid: u64,
        /// File offset.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

impl Error {
    /// Page id the error is about, if any.
    pub fn page(&self) -> Option<u64> {
        use Error::*;
        match self {
            PageOutOfRange { pgid, .. }
            | PageIdMismatch { pgid, .. }
            | OverflowOutOfRange { pgid, .. }
            | BadElement { pgid, .. }
            | EmptyBranch { pgid, .. }
            | TooDeep { pgid, .. }
            | UnexpectedPageType { pgid, .. }
            | PageRevisited { pgid }
            | KeyOrder { pgid, .. }
            | KeyOutOfRange { pgid, .. }
            | MultipleReferences { pgid, .. }
            | MetaPageReferenced { pgid }
            | ReachableFreed { pgid }
            | UnreachableUnfreed { pgid }
            | BadFreelist { pgid, .. } => Some(*pgid),
            BadMeta { meta_page, .. } => Some(*meta_page),
            _ => None,
        }
    }

    /// File offset the error is about, if known.
    pub fn offset(&self) -> Option<u64> {
        use Error::*;
        match self {
            PageIdMismatch { offset, .. }
            | OverflowOutOfRange { offset, .. }
            | BadElement { offset, .. }
            | BadBucket { offset, .. }
            | EmptyBranch { offset, .. }
            | UnexpectedPageType { offset, .. }
            | KeyOrder { offset, .. }
            | KeyOutOfRange { offset, .. }
            | NotABucket { offset }
            | MultipleReferences { offset, .. }
            | BadFreelist { offset, .. } => Some(*offset),
            Truncated { len, .. } => Some(*len),
            _ => None,
        }
    }
}
