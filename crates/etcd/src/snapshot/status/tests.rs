//! The status figures against hand-built databases, the live-key tally and the CRC pieces.

use super::visitor::{KeyRevision, Run, crc32c_append, tally_live};
use super::*;
use crate::bbolt::Entry;
use crate::bbolt::check::Visitor;
use crate::bbolt::write::{DbWriter, WriteOptions};
use crate::proto::mvcc::tests::encode_kv;
use proptest::prelude::*;
use std::collections::BTreeMap;

const USER_KEYS: [&str; 6] = [
    "/registry/pods/demo/web-1",
    "/registry/pods/demo/web-2",
    "/registry/configmaps/kube-system/kubeadm-config",
    "/registry/apiregistration.k8s.io/apiservices/v1.apps",
    "/registry/leases/kube-node-lease/node-1",
    "/compact_rev_key",
];

/// A bucket `key` replaying `ops` (user key index, value size or `None` for a deletion) at
/// revisions 2, 3, ..., on small pages so that a few thousand revisions make three levels.
fn history_db(ops: &[(usize, Option<usize>)]) -> Db {
    let opts = WriteOptions {
        page_size: 1024,
        ..WriteOptions::default()
    };
    let mut w = DbWriter::new(std::io::Cursor::new(Vec::new()), opts).unwrap();
    w.begin_bucket(b"key", 0).unwrap();
    let filler = [b'x'; 200];
    for (i, &(k, size)) in ops.iter().enumerate() {
        let main = i as i64 + 2;
        let mut rev = main.to_be_bytes().to_vec();
        rev.push(b'_');
        rev.extend_from_slice(&0i64.to_be_bytes());
        let kv = KeyValue {
            key: USER_KEYS[k].as_bytes(),
            mod_revision: main,
            value: &filler[..size.unwrap_or(0)],
            ..KeyValue::default()
        };
        if size.is_none() {
            rev.push(b't');
        }
        w.put(&rev, &encode_kv(&kv)).unwrap();
    }
    w.end_bucket().unwrap();
    w.begin_bucket(b"meta", 0).unwrap();
    w.put(b"consistent_index", &9u64.to_be_bytes()).unwrap();
    w.end_bucket().unwrap();
    let (out, _) = w.finish().unwrap();
    Db::from_bytes(out.into_inner()).unwrap()
}

/// Whether the walk splits bucket `key` across two threads.
fn splits(db: &Db) -> bool {
    struct Joins(usize);
    impl<'a> Visitor<'a> for Joins {
        fn entry(&mut self, _: &[&'a [u8]], _: &Entry<'a>) {}
        fn fork(&self) -> Option<Self> {
            Some(Joins(0))
        }
        fn join(&mut self, later: Self) {
            self.0 += 1 + later.0;
        }
    }
    let mut v = Joins(0);
    check::check(db, &mut v).unwrap();
    v.0 > 0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Live keys and bytes per resource equal a replay of the history, and two threads give
    /// exactly the figures one does.
    #[test]
    fn live_keys_match_a_replay_on_one_and_two_threads(
        ops in prop::collection::vec((0..USER_KEYS.len(), prop::option::weighted(0.8, 0..200usize)), 1500..3000)
    ) {
        let db = history_db(&ops);
        prop_assert!(splits(&db), "bucket key was not split; make the history longer");
        let sequential = status(&db, &StatusOptions { parallel: false, ..StatusOptions::default() }).unwrap();
        let parallel = status(&db, &StatusOptions::default()).unwrap();
        prop_assert_eq!(&sequential, &parallel);

        let mut last: BTreeMap<usize, Option<usize>> = BTreeMap::new();
        for &(k, size) in &ops {
            last.insert(k, size);
        }
        let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (k, size) in &last {
            let resource = match USER_KEYS[*k].split('/').nth(2) {
                Some(r) if USER_KEYS[*k].starts_with("/registry/") && r.contains('.') => {
                    format!("{r}/{}", USER_KEYS[*k].split('/').nth(3).unwrap_or_default())
                }
                Some(r) if USER_KEYS[*k].starts_with("/registry/") => r.to_string(),
                _ => "(other)".to_string(),
            };
            let e = want.entry(resource).or_default();
            if let Some(size) = size {
                e.0 += 1;
                e.1 += *size as u64;
            }
        }
        let got: BTreeMap<String, (u64, u64)> = parallel
            .resources
            .iter()
            .map(|r| (r.resource.clone(), (r.keys, r.bytes)))
            .collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(parallel.live_keys, last.values().filter(|s| s.is_some()).count() as u64);
        prop_assert_eq!(parallel.revisions, ops.len() as u64);
        prop_assert_eq!(parallel.revision, ops.len() as i64 + 1);
    }
}

#[test]
fn runs_keep_the_last_revision_of_keys_whose_hashes_collide() {
    let rev = |hash, key: &'static [u8], live| KeyRevision {
        hash,
        key,
        size: key.len() as u64,
        resource: 0,
        live,
    };
    // Two different keys under one hash, spread over two runs.
    let mut runs = vec![
        Run {
            revisions: vec![rev(7, b"a", true), rev(7, b"b", true), rev(3, b"c", true)],
            sorted: false,
        },
        Run {
            revisions: vec![rev(7, b"a", false), rev(9, b"d", true), rev(7, b"b", true)],
            sorted: false,
        },
    ];
    let mut live = vec![(0, 0)];
    // Live: b (its last revision, in run 2), c, d; a was deleted in run 2.
    assert_eq!(tally_live(&mut runs, &mut live), 3);
    assert_eq!(live[0], (3, 3));
}

#[test]
fn humanize_matches_go_humanize() {
    assert_eq!(humanize_bytes(0), "0 B");
    assert_eq!(humanize_bytes(9), "9 B");
    assert_eq!(humanize_bytes(10), "10 B");
    assert_eq!(humanize_bytes(94208), "94 kB");
    assert_eq!(humanize_bytes(2_100_000), "2.1 MB");
    assert_eq!(humanize_bytes(1_000_000_000), "1.0 GB");
    assert_eq!(humanize_bytes(20480), "20 kB");
}

#[test]
fn crc_matches_the_crc32_instruction_path_for_every_piece_size() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + i / 7) as u8).collect();
    let mut ours = 0x1234_5678;
    let mut reference = 0x1234_5678;
    let mut at = 0;
    for len in [0, 1, 7, 17, 511, 512, 513, 1000, 2047, 64, 3] {
        let piece = &data[at..at + len];
        ours = crc32c_append(ours, piece);
        reference = crc32c::crc32c_append(reference, piece);
        assert_eq!(ours, reference, "after a piece of {len} bytes");
        at += len;
    }
    assert_eq!(crc32c_append(0, b"123456789"), 0xe306_9283);
}

#[test]
fn rev_keys() {
    let mut k = Vec::new();
    k.extend_from_slice(&5i64.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&1i64.to_be_bytes());
    assert_eq!(
        parse_rev_key(&k, 0).unwrap(),
        (Rev { main: 5, sub: 1 }, false)
    );
    k.push(b't');
    assert!(parse_rev_key(&k, 0).unwrap().1);
    assert!(parse_rev_key(&k[..10], 0).is_err());
}
