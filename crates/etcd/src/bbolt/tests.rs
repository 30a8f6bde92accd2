//! Reader and checker tests on synthetic images built by a tiny test-only page builder, with
//! proptest for round-trips and for "never panics" on damaged input.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::format::*;
use super::{Db, Error, check};

type Buckets = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Builds a bbolt image: `per_leaf` entries per leaf, `fanout` children per branch; buckets
/// with at most `inline_max` entries are stored inline.
struct Builder {
    ps: usize,
    pages: Vec<u8>,
    next: u64,
    per_leaf: usize,
    fanout: usize,
    inline_max: usize,
}

impl Builder {
    fn new(ps: usize, per_leaf: usize, fanout: usize, inline_max: usize) -> Self {
        Builder {
            ps,
            pages: vec![0; 2 * ps],
            next: 2,
            per_leaf: per_leaf.max(1),
            fanout: fanout.max(2),
            inline_max,
        }
    }

    fn alloc(&mut self, size: usize) -> (u64, usize) {
        let n = size.div_ceil(self.ps).max(1);
        let id = self.next;
        self.next += n as u64;
        self.pages.resize(self.next as usize * self.ps, 0);
        (id, n)
    }

    fn leaf_bytes(id: u64, entries: &[(u32, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let n = entries.len();
        let mut b = vec![0u8; PAGE_HEADER_SIZE + n * LEAF_ELEMENT_SIZE];
        for (i, (flags, k, v)) in entries.iter().enumerate() {
            let at = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
            LeafElement {
                flags: *flags,
                pos: (b.len() - at) as u32,
                ksize: k.len() as u32,
                vsize: v.len() as u32,
            }
            .encode(&mut b[at..]);
            b.extend_from_slice(k);
            b.extend_from_slice(v);
        }
        PageHeader {
            id,
            flags: LEAF_PAGE_FLAG,
            count: n as u16,
            overflow: 0,
        }
        .encode(&mut b);
        b
    }

    fn put_page(&mut self, mut bytes: Vec<u8>) -> u64 {
        let (id, n) = self.alloc(bytes.len());
        bytes[0..8].copy_from_slice(&id.to_le_bytes());
        bytes[12..16].copy_from_slice(&((n - 1) as u32).to_le_bytes());
        let off = id as usize * self.ps;
        self.pages[off..off + bytes.len()].copy_from_slice(&bytes);
        id
    }

    fn tree(&mut self, entries: &[(u32, Vec<u8>, Vec<u8>)]) -> u64 {
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        if entries.is_empty() {
            let id = self.put_page(Self::leaf_bytes(0, &[]));
            return id;
        }
        for chunk in entries.chunks(self.per_leaf) {
            let id = self.put_page(Self::leaf_bytes(0, chunk));
            level.push((chunk[0].1.clone(), id));
        }
        while level.len() > 1 {
            let mut up = Vec::new();
            for chunk in level.chunks(self.fanout) {
                let n = chunk.len();
                let mut b = vec![0u8; PAGE_HEADER_SIZE + n * BRANCH_ELEMENT_SIZE];
                for (i, (k, child)) in chunk.iter().enumerate() {
                    let at = PAGE_HEADER_SIZE + i * BRANCH_ELEMENT_SIZE;
                    BranchElement {
                        pos: (b.len() - at) as u32,
                        ksize: k.len() as u32,
                        pgid: *child,
                    }
                    .encode(&mut b[at..]);
                    b.extend_from_slice(k);
                }
                PageHeader {
                    id: 0,
                    flags: BRANCH_PAGE_FLAG,
                    count: n as u16,
                    overflow: 0,
                }
                .encode(&mut b);
                let id = self.put_page(b);
                up.push((chunk[0].0.clone(), id));
            }
            level = up;
        }
        level[0].1
    }

    fn build(mut self, buckets: &Buckets) -> Vec<u8> {
        let mut top = Vec::new();
        for (name, kvs) in buckets {
            let entries: Vec<_> = kvs
                .iter()
                .map(|(k, v)| (0u32, k.clone(), v.clone()))
                .collect();
            let mut value = vec![0u8; BUCKET_HEADER_SIZE];
            if entries.len() <= self.inline_max {
                value.extend(Self::leaf_bytes(0, &entries));
            } else {
                let root = self.tree(&entries);
                BucketHeader { root, sequence: 7 }.encode(&mut value);
            }
            top.push((BUCKET_LEAF_FLAG, name.clone(), value));
        }
        let root = self.tree(&top);
        for (i, txid) in [(0usize, 10u64), (1, 9)] {
            let off = i * self.ps;
            PageHeader {
                id: i as u64,
                flags: META_PAGE_FLAG,
                count: 0,
                overflow: 0,
            }
            .encode(&mut self.pages[off..]);
            Meta {
                magic: MAGIC,
                version: VERSION,
                page_size: self.ps as u32,
                flags: 0,
                root: BucketHeader { root, sequence: 0 },
                freelist: PGID_NO_FREELIST,
                pgid: self.next,
                txid,
                checksum: 0,
            }
            .with_checksum()
            .encode(&mut self.pages[off + PAGE_HEADER_SIZE..]);
        }
        self.pages
    }
}

fn sample() -> Buckets {
    let mut b = Buckets::new();
    let key: BTreeMap<_, _> = (0..200u32)
        .map(|i| (i.to_be_bytes().to_vec(), vec![b'v'; (i % 7) as usize * 10]))
        .collect();
    b.insert(b"key".to_vec(), key);
    let mut meta = BTreeMap::new();
    meta.insert(b"consistent_index".to_vec(), 5u64.to_be_bytes().to_vec());
    b.insert(b"meta".to_vec(), meta);
    let mut big = BTreeMap::new();
    big.insert(b"huge".to_vec(), vec![7u8; 10_000]);
    big.insert(b"small".to_vec(), b"s".to_vec());
    b.insert(b"big".to_vec(), big);
    b.insert(b"empty".to_vec(), BTreeMap::new());
    b
}

/// An entry as delivered: bucket path, key, value.
type Delivered = (Vec<Vec<u8>>, Vec<u8>, Vec<u8>);

/// Records every entry the check delivers, in order; with `fork`, lets big buckets be walked on
/// two threads and counts the joins.
#[derive(Debug, Default)]
struct Collect {
    fork: bool,
    /// How many more forks to grant (unlimited if `None`).
    fork_budget: Option<std::cell::Cell<usize>>,
    entries: Vec<Delivered>,
    joins: usize,
    halves_done: usize,
}

impl<'a> check::Visitor<'a> for Collect {
    fn entry(&mut self, path: &[&'a [u8]], e: &super::Entry<'a>) {
        let path = path.iter().map(|p| p.to_vec()).collect();
        self.entries.push((path, e.key.to_vec(), e.value.to_vec()));
    }

    fn fork(&self) -> Option<Self> {
        if let Some(budget) = &self.fork_budget {
            if budget.get() == 0 {
                return None;
            }
            budget.set(budget.get() - 1);
        }
        self.fork.then(|| Collect {
            fork: true,
            ..Collect::default()
        })
    }

    fn half_done(&mut self) {
        self.halves_done += 1;
    }

    fn join(&mut self, later: Self) {
        self.entries.extend(later.entries);
        self.joins += 1 + later.joins;
        self.halves_done += later.halves_done;
    }
}

/// Walks `db` on one thread and with forks allowed: same entries in the same order, same counts.
fn check_both_ways(db: &Db) -> (Result<check::Stats, Error>, Collect) {
    let mut one = Collect::default();
    let sequential = check::check(db, &mut one);
    let mut two = Collect {
        fork: true,
        ..Collect::default()
    };
    let parallel = check::check(db, &mut two);
    match (&sequential, &parallel) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "stats differ between one and two threads"),
        // The same first fault, however the work was split.
        (a, b) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
    }
    if sequential.is_ok() {
        assert!(
            one.entries == two.entries,
            "entries differ between one and two threads"
        );
    }
    (parallel, two)
}

#[test]
fn a_big_bucket_is_walked_on_two_threads_like_on_one() {
    let mut input = sample();
    let key: BTreeMap<_, _> = (0..3000u32)
        .map(|i| (i.to_be_bytes().to_vec(), vec![b'v'; (i % 13) as usize * 9]))
        .collect();
    input.insert(b"key".to_vec(), key);
    let img = Builder::new(4096, 3, 4, 1).build(&input);
    let db = Db::from_bytes(img).unwrap();
    let (stats, two) = check_both_ways(&db);
    let stats = stats.unwrap();
    assert!(two.joins >= 1, "the key bucket was not split");
    assert_eq!(two.halves_done, 2);
    assert_eq!(stats.entries, 3000 + 1 + 2);
    assert_eq!(stats.used_pages + stats.free_pages, stats.hwm_pages);
}

#[test]
fn when_forks_run_out_the_first_thread_walks_the_rest() {
    let mut input = sample();
    let key: BTreeMap<_, _> = (0..3000u32)
        .map(|i| (i.to_be_bytes().to_vec(), vec![b'w'; (i % 5) as usize]))
        .collect();
    input.insert(b"key".to_vec(), key);
    let db = Db::from_bytes(Builder::new(4096, 3, 4, 1).build(&input)).unwrap();
    let mut one = Collect::default();
    let want = check::check(&db, &mut one).unwrap();
    let mut two = Collect {
        fork: true,
        fork_budget: Some(std::cell::Cell::new(2)),
        ..Collect::default()
    };
    assert_eq!(check::check(&db, &mut two).unwrap(), want);
    assert!(two.joins >= 1);
    assert!(one.entries == two.entries);
}

#[test]
fn page_sets_find_their_first_common_page() {
    let mut a = check::BitSet::new(300);
    let mut b = check::BitSet::new(300);
    a.insert(5);
    a.insert(190);
    b.insert(6);
    assert_eq!(a.first_common(&b), None);
    b.insert(190);
    b.insert(250);
    assert_eq!(a.first_common(&b), Some(190));
    a.union_with(&b);
    assert!(a.contains(250) && a.contains(6) && a.contains(5));
}

fn read_all(db: &Db) -> Result<Buckets, Error> {
    let mut out = Buckets::new();
    for r in db.buckets() {
        let (name, bucket) = r?;
        let mut kvs = BTreeMap::new();
        for e in bucket.cursor() {
            let e = e?;
            kvs.insert(e.key.to_vec(), e.value.to_vec());
        }
        out.insert(name.to_vec(), kvs);
    }
    Ok(out)
}

#[test]
fn roundtrip_multi_level_overflow_and_inline() {
    let input = sample();
    let img = Builder::new(4096, 4, 3, 1).build(&input);
    let db = Db::from_bytes(img).unwrap();
    assert_eq!(db.meta_page(), 0);
    assert_eq!(read_all(&db).unwrap(), input);
    for (name, kvs) in &input {
        for (k, v) in kvs {
            assert_eq!(db.get(name, k).unwrap(), Some(v.as_slice()));
        }
        assert_eq!(db.get(name, b"\xff\xff\xff\xff\xff").unwrap(), None);
        assert_eq!(db.get(name, b"").unwrap(), None);
    }
    assert!(db.bucket(b"nope").unwrap().is_none());
    let stats = check::check(&db, &mut ()).unwrap();
    assert!(stats.max_depth >= 4, "{stats:?}");
    assert!(stats.overflow_pages >= 2, "{stats:?}");
    assert_eq!(stats.inline_buckets, 2); // "empty" (0 entries) and "meta" (1 entry)
    assert_eq!(stats.free_pages, 0);
}

#[test]
fn falls_back_to_other_meta_and_rejects_both_bad() {
    let mut img = Builder::new(4096, 4, 3, 1).build(&sample());
    img[PAGE_HEADER_SIZE + 48] ^= 1; // txid of meta 0 (the newer one) -> checksum mismatch
    let db = Db::from_bytes(img.clone()).unwrap();
    assert_eq!(db.meta_page(), 1);
    assert!(check::check(&db, &mut ()).unwrap().warnings.len() == 1);
    img[4096 + PAGE_HEADER_SIZE] ^= 1; // magic of meta 1
    assert!(matches!(
        Db::from_bytes(img).unwrap_err(),
        Error::NoValidMeta { .. }
    ));
}

#[test]
fn page_size_probe_when_meta0_is_damaged() {
    let mut img = Builder::new(16384, 4, 3, 1).build(&sample());
    img[PAGE_HEADER_SIZE] ^= 0xff;
    let db = Db::from_bytes(img).unwrap();
    assert_eq!(db.page_size(), 16384);
    assert_eq!(read_all(&db).unwrap(), sample());
}

#[test]
fn truncated_image_is_reported() {
    let img = Builder::new(4096, 4, 3, 1).build(&sample());
    let n = img.len() - 4096;
    assert!(matches!(
        Db::from_bytes(img[..n].to_vec()).unwrap_err(),
        Error::Truncated { .. }
    ));
}

#[test]
fn header_id_mismatch_is_located() {
    let img = Builder::new(4096, 4, 3, 1).build(&sample());
    let db = Db::from_bytes(img.clone()).unwrap();
    let root = db.meta().root.root;
    let mut bad = img;
    bad[root as usize * 4096] ^= 0x40;
    let db = Db::from_bytes(bad).unwrap();
    let e = check::check(&db, &mut ()).unwrap_err();
    assert_eq!(e.page(), Some(root));
    assert_eq!(e.offset(), Some(root * 4096));
    assert!(matches!(e, Error::PageIdMismatch { .. }));
}

/// Points a branch's second child at its first child: a page reached twice.
#[test]
fn page_reached_twice_and_key_order() {
    let img = Builder::new(4096, 4, 3, 1).build(&sample());
    let db = Db::from_bytes(img.clone()).unwrap();
    let kb = db.bucket(b"key").unwrap().unwrap();
    let root = db.page(kb.header().root).unwrap();
    assert!(root.is_branch());
    let (_, first) = root.branch(0).unwrap();
    let at = root.offset as usize + PAGE_HEADER_SIZE + BRANCH_ELEMENT_SIZE + 8;
    let mut bad = img.clone();
    bad[at..at + 8].copy_from_slice(&first.to_le_bytes());
    let db2 = Db::from_bytes(bad).unwrap();
    let e = check::check(&db2, &mut ()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::MultipleReferences { .. } | Error::KeyOutOfRange { .. }
        ),
        "{e}"
    );
    // The cursor alone also refuses to yield keys out of order.
    let kb2 = db2.bucket(b"key").unwrap().unwrap();
    assert!(kb2.cursor().any(|r| r.is_err()));

    // Swap two keys' first bytes inside a leaf: keys out of order.
    let mut leaf = db.page(root.branch(0).unwrap().1).unwrap();
    while !leaf.is_leaf() {
        leaf = db.page(leaf.branch(0).unwrap().1).unwrap();
    }
    let k0 = leaf.leaf(0).unwrap();
    let k1 = leaf.leaf(1).unwrap();
    let mut bad = img;
    let (o0, o1) = (
        (k0.value_offset - k0.key.len() as u64) as usize,
        (k1.value_offset - k1.key.len() as u64) as usize,
    );
    let (a, b) = (bad[o0 + 3], bad[o1 + 3]);
    bad[o0 + 3] = b;
    bad[o1 + 3] = a;
    let db3 = Db::from_bytes(bad).unwrap();
    let e = check::check(&db3, &mut ()).unwrap_err();
    assert!(matches!(e, Error::KeyOrder { .. }), "{e}");
}

#[test]
fn freelist_is_cross_checked_when_persisted() {
    // Persist a freelist page claiming a reachable page is free.
    let mut img = Builder::new(4096, 4, 3, 1).build(&sample());
    let db = Db::from_bytes(img.clone()).unwrap();
    let hwm = db.meta().pgid;
    let reachable = db.meta().root.root;
    img.resize((hwm as usize + 1) * 4096, 0);
    let off = hwm as usize * 4096;
    PageHeader {
        id: hwm,
        flags: FREELIST_PAGE_FLAG,
        count: 1,
        overflow: 0,
    }
    .encode(&mut img[off..]);
    img[off + 16..off + 24].copy_from_slice(&reachable.to_le_bytes());
    for (i, txid) in [(0usize, 10u64), (1, 9)] {
        let mo = i * 4096 + PAGE_HEADER_SIZE;
        let mut m = Meta::parse(&img[mo..]).unwrap();
        m.freelist = hwm;
        m.pgid = hwm + 1;
        m.txid = txid;
        m.with_checksum().encode(&mut img[mo..]);
    }
    let db = Db::from_bytes(img).unwrap();
    let e = check::check(&db, &mut ()).unwrap_err();
    assert!(
        matches!(e, Error::ReachableFreed { pgid } if pgid == reachable),
        "{e}"
    );
}

fn buckets_strategy() -> impl Strategy<Value = Buckets> {
    let kv = prop::collection::btree_map(
        prop::collection::vec(any::<u8>(), 1..12),
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..40),
            1 => prop::collection::vec(any::<u8>(), 4000..9000),
        ],
        0..60,
    );
    prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..8), kv, 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn roundtrip_random(input in buckets_strategy(), per_leaf in 1usize..9, fanout in 2usize..5,
                        inline_max in 0usize..4, big_pages in any::<bool>()) {
        let ps = if big_pages { 8192 } else { 4096 };
        let img = Builder::new(ps, per_leaf, fanout, inline_max).build(&input);
        let db = Db::from_bytes(img).unwrap();
        prop_assert_eq!(read_all(&db).unwrap(), input.clone());
        check::check(&db, &mut ()).unwrap();
        check_both_ways(&db).0.unwrap();
        for (name, kvs) in &input {
            for (k, v) in kvs {
                prop_assert_eq!(db.get(name, k).unwrap(), Some(v.as_slice()));
            }
        }
    }

    #[test]
    fn damaged_images_never_panic(input in buckets_strategy(),
                                  flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                  cut in any::<prop::sample::Index>(), do_cut in any::<bool>()) {
        let mut img = Builder::new(4096, 3, 2, 1).build(&input);
        for (i, x) in flips {
            let at = i.index(img.len());
            img[at] ^= x | 1;
        }
        if do_cut {
            let n = cut.index(img.len());
            img.truncate(n);
        }
        if let Ok(db) = Db::from_bytes(img) {
            let _ = check::check(&db, &mut ());
            let _ = check_both_ways(&db);
            let _ = read_all(&db);
            for name in input.keys() {
                let _ = db.get(name, b"k");
            }
        }
    }
}
