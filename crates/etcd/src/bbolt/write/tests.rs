//! The writer's output read back by a strict test-only reader and by [`crate::bbolt::Db`].

use super::*;
use crate::bbolt::format::BucketHeader as BH;
use crate::bbolt::format::{BRANCH_PAGE_FLAG, BranchElement, LEAF_PAGE_FLAG, LeafElement};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

type Db = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A strict test-only reader: checks page ids, bounds, no page reached twice, sorted keys,
/// branch keys equal to the child's first key, every page below the high-water mark used.
pub(crate) fn read_back(file: &[u8]) -> Db {
    let meta0 = Meta::parse(&file[16..80]).unwrap();
    meta0.validate().unwrap();
    let ps = meta0.page_size as usize;
    let meta1 = Meta::parse(&file[ps + 16..ps + 80]).unwrap();
    meta1.validate().unwrap();
    assert_eq!(file.len(), meta0.pgid as usize * ps);
    let fl = PageHeader::parse(&file[2 * ps..]).unwrap();
    assert_eq!((fl.id, fl.flags, fl.count), (2, FREELIST_PAGE_FLAG, 0));
    let mut seen = BTreeSet::from([0u64, 1, 2]);
    let mut db = Db::new();
    let mut top = Vec::new();
    walk(file, ps, meta0.root.root, &mut seen, &mut top, None);
    for (flags, k, v) in top {
        assert_eq!(flags, BUCKET_LEAF_FLAG);
        let h = BH::parse(&v).unwrap();
        let mut items = Vec::new();
        if h.root == 0 {
            leaf_items(&v[16..], &mut items);
        } else {
            walk(file, ps, h.root, &mut seen, &mut items, None);
        }
        let mut m = BTreeMap::new();
        for (f, kk, vv) in items {
            assert_eq!(f, 0);
            m.insert(kk, vv);
        }
        db.insert(k, m);
    }
    assert_eq!(
        seen.len() as u64,
        meta0.pgid,
        "every page used exactly once"
    );
    db
}

fn leaf_items(p: &[u8], out: &mut Vec<(u32, Vec<u8>, Vec<u8>)>) {
    let h = PageHeader::parse(p).unwrap();
    assert_eq!(h.flags, LEAF_PAGE_FLAG);
    for i in 0..h.count as usize {
        let at = 16 + i * 16;
        let e = LeafElement::parse(&p[at..]).unwrap();
        let k = at + e.pos as usize;
        let key = p[k..k + e.ksize as usize].to_vec();
        let val = p[k + e.ksize as usize..k + (e.ksize + e.vsize) as usize].to_vec();
        if let Some(last) = out.last() {
            assert!(last.1 < key, "sorted");
        }
        out.push((e.flags, key, val));
    }
}

fn walk(
    file: &[u8],
    ps: usize,
    pgid: u64,
    seen: &mut BTreeSet<u64>,
    out: &mut Vec<(u32, Vec<u8>, Vec<u8>)>,
    expect_first: Option<&[u8]>,
) {
    let p = &file[pgid as usize * ps..];
    let h = PageHeader::parse(p).unwrap();
    assert_eq!(h.id, pgid);
    for i in 0..=h.overflow as u64 {
        assert!(seen.insert(pgid + i), "page {} reached twice", pgid + i);
    }
    let before = out.len();
    if h.flags == BRANCH_PAGE_FLAG {
        assert!(h.count >= 1);
        for i in 0..h.count as usize {
            let at = 16 + i * 16;
            let e = BranchElement::parse(&p[at..]).unwrap();
            let k = &p[at + e.pos as usize..at + (e.pos + e.ksize) as usize];
            walk(file, ps, e.pgid, seen, out, Some(k));
        }
    } else {
        leaf_items(&p[..(h.overflow as usize + 1) * ps], out);
    }
    if let Some(first) = expect_first {
        assert_eq!(out[before].1.as_slice(), first);
    }
}

fn write(db: &Db, ps: u32) -> (Vec<u8>, WriteStats) {
    let mut w = DbWriter::new(
        Cursor::new(Vec::new()),
        WriteOptions {
            page_size: ps,
            ..WriteOptions::default()
        },
    )
    .unwrap();
    for (name, kv) in db {
        w.begin_bucket(name, 0).unwrap();
        for (k, v) in kv {
            w.put(k, v).unwrap();
        }
        w.end_bucket().unwrap();
    }
    let (c, s) = w.finish().unwrap();
    (c.into_inner(), s)
}

#[test]
fn empty_db_and_inline_buckets() {
    let mut db = Db::new();
    let (f, s) = write(&db, 4096);
    assert_eq!(s.total_pages, 4);
    assert_eq!(read_back(&f), db);
    db.insert(b"alarm".to_vec(), BTreeMap::new());
    db.insert(
        b"meta".to_vec(),
        BTreeMap::from([(b"term".to_vec(), vec![0, 0, 0, 0, 0, 0, 0, 1])]),
    );
    let (f, s) = write(&db, 4096);
    assert_eq!(s.inline_buckets, 2);
    assert_eq!(s.total_pages, 4);
    assert_eq!(read_back(&f), db);
}

#[test]
fn inline_limit_is_a_quarter_page() {
    // 16 header + 16 element + key 1 + value = 1024 exactly: inline; one byte more: not.
    for (vlen, inline) in [(991usize, 1u64), (992, 0)] {
        let db = Db::from([(
            b"b".to_vec(),
            BTreeMap::from([(b"k".to_vec(), vec![7u8; vlen])]),
        )]);
        let (f, s) = write(&db, 4096);
        assert_eq!(s.inline_buckets, inline, "vlen {vlen}");
        assert_eq!(read_back(&f), db);
    }
}

#[test]
fn large_trees_overflow_and_branches() {
    let mut key = BTreeMap::new();
    for i in 0..20_000u64 {
        let mut k = i.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend_from_slice(&0u64.to_be_bytes());
        key.insert(k, vec![(i % 251) as u8; (i % 300) as usize]);
    }
    // A few values larger than a page.
    key.insert(vec![0xff; 17], vec![1u8; 20_000]);
    key.insert(vec![0xfe; 17], vec![2u8; 4096]);
    let db = Db::from([(b"key".to_vec(), key), (b"lease".to_vec(), BTreeMap::new())]);
    let (f, s) = write(&db, 4096);
    assert!(s.branch_pages >= 2, "{s:?}");
    assert_eq!(read_back(&f), db);
    // Pages are well filled: data bytes over file bytes.
    let data: usize = db[b"key".as_slice()]
        .iter()
        .map(|(k, v)| k.len() + v.len() + 16)
        .sum();
    assert!(
        data as f64 / f.len() as f64 > 0.75,
        "fill {}",
        data as f64 / f.len() as f64
    );
}

#[test]
fn rejects_unsorted_input() {
    let mut w = DbWriter::new(Cursor::new(Vec::new()), WriteOptions::default()).unwrap();
    w.begin_bucket(b"b", 0).unwrap();
    w.put(b"b", b"").unwrap();
    assert!(matches!(w.put(b"a", b""), Err(WriteError::Unsorted { .. })));
    assert!(matches!(w.put(b"", b""), Err(WriteError::TooLarge(_))));
    w.end_bucket().unwrap();
    assert!(matches!(
        w.begin_bucket(b"a", 0),
        Err(WriteError::Unsorted { .. })
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    #[test]
    fn round_trips(
        db in proptest::collection::btree_map(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 1..12),
            proptest::collection::btree_map(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1500),
                0..120),
            0..6),
        ps in proptest::sample::select(vec![1024u32, 4096]),
    ) {
        let (f, _) = write(&db, ps);
        proptest::prop_assert_eq!(read_back(&f), db);
        // The reader's full structural check (bbolt `tx.Check` and more) agrees.
        let parsed = crate::bbolt::Db::from_bytes(f).unwrap();
        let st = crate::bbolt::check::check(&parsed, &mut ()).unwrap();
        proptest::prop_assert_eq!(st.free_pages, 0);
        proptest::prop_assert!(st.freelist_persisted && st.warnings.is_empty());
    }
}
