//! The bytes behind a [`Db`](super::Db): a read-only file mapping (released on two threads when
//! big) or, for tests and fuzzing, an owned buffer.

use std::fs::File;

use memmap2::Mmap;

/// Bytes backing a [`Db`].
pub(super) enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    pub(super) fn as_slice(&self) -> &[u8] {
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
pub(super) fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: memmap2 requires that the file is not modified (truncated or written) while mapped,
    // otherwise reads may observe changing bytes or fault. We map snapshot files and stopped
    // `member/snap/db` copies read-only; a concurrent writer is an operator error we document, and
    // every read through the map is bounds-checked against the length captured at open time, so a
    // change can at worst produce a parse error (or SIGBUS on truncation), never memory unsafety in
    // our own indexing.
    unsafe { Mmap::map(file) }
}
