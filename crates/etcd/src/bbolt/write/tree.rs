//! Page output and the bottom-up B+tree builder: leaves in key order, overflow runs as bbolt
//! makes them, then the branch levels.

use std::io::Write;

use super::{MAX_KEY_SIZE, MAX_OVERSIZED_ELEMENTS, MAX_VALUE_SIZE, WriteError, WriteStats};
use crate::bbolt::format::{
    BRANCH_ELEMENT_SIZE, BRANCH_PAGE_FLAG, BUCKET_LEAF_FLAG, BranchElement, LEAF_ELEMENT_SIZE,
    LEAF_PAGE_FLAG, LeafElement, PAGE_HEADER_SIZE, PageHeader,
};

/// Output plus page allocation.
pub(super) struct Sink<W> {
    pub(super) out: W,
    pub(super) page_size: usize,
    pub(super) next_pgid: u64,
    pub(super) scratch: Vec<u8>,
    pub(super) stats: WriteStats,
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
pub(super) struct TreeBuilder {
    /// Pending leaf elements: (flags, key offset, key len, value len) into `data`.
    pub(super) elems: Vec<(u32, usize, usize, usize)>,
    pub(super) data: Vec<u8>,
    /// (first key, page id) of each leaf written so far.
    pub(super) leaves: Vec<(Vec<u8>, u64)>,
    pub(super) last_key: Vec<u8>,
    pub(super) has_last: bool,
    pub(super) count: u64,
}

/// How a finished tree is referenced from its parent.
pub(super) enum Finished {
    /// Inline page bytes (header id 0).
    Inline(Vec<u8>),
    /// Root page id.
    Root(u64),
}

impl TreeBuilder {
    pub(super) fn new() -> Self {
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

    pub(super) fn add<W: Write>(
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
    pub(super) fn finish<W: Write>(
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
