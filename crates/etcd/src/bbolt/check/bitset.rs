//! A fixed-size bit set over page ids: which pages a walk reached, which the freelist names.

/// Fixed-size bit set over page ids `[0, n)`.
pub(crate) struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub(crate) fn new(n: u64) -> Self {
        BitSet {
            words: vec![0; n.div_ceil(64) as usize],
        }
    }

    pub(crate) fn contains(&self, i: u64) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn insert(&mut self, i: u64) {
        if let Some(w) = self.words.get_mut((i / 64) as usize) {
            *w |= 1 << (i % 64);
        }
    }

    /// The lowest id in both sets.
    pub(crate) fn first_common(&self, other: &BitSet) -> Option<u64> {
        self.words
            .iter()
            .zip(&other.words)
            .enumerate()
            .find(|(_, (a, b))| *a & *b != 0)
            .map(|(i, (a, b))| i as u64 * 64 + u64::from((a & b).trailing_zeros()))
    }

    pub(crate) fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }
}
