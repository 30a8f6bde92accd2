//! The backup pipeline end to end on a local directory, with synthetic snapshot streams
//! shaped exactly like etcd's (32 KiB chunks counting down, then the SHA-256 trailer). The
//! real-etcd proofs live in `crates/kubemaint/tests/backup_etcd.rs`.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use kubemaint_backup::crypto::{Decrypt, Encrypt};
use kubemaint_backup::pipeline::{EncodeOptions, PipelineError};
use kubemaint_backup::run::{RunError, SourceInfo, fetch, write_backup};
use kubemaint_backup::store::local::LocalStore;
use kubemaint_backup::{Store, prune};
use kubemaint_core::retention::{Policy, RunOutcome};
use kubemaint_etcd::save::ChunkSource;
use kubemaint_etcd::save::manifest::SourceMember;
use sha2::{Digest, Sha256};

struct Fake {
    messages: std::collections::VecDeque<Result<(u64, Vec<u8>), String>>,
}

impl ChunkSource for Fake {
    type Blob = Vec<u8>;
    async fn next_chunk(&mut self) -> Result<Option<(u64, Vec<u8>)>, String> {
        self.messages.pop_front().transpose()
    }
}

/// A compressible but not trivial "database": `pages` 4 KiB pages.
fn db(pages: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..pages * 4096)
        .map(|i| {
            if i % 64 < 48 {
                (i / 4096) as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

fn etcd_stream(db: &[u8]) -> Fake {
    let mut out = std::collections::VecDeque::new();
    let mut sent = 0;
    for c in db.chunks(32 * 1024) {
        sent += c.len();
        out.push_back(Ok(((db.len() - sent) as u64, c.to_vec())));
    }
    out.push_back(Ok((0, Sha256::digest(db).to_vec())));
    Fake { messages: out }
}

fn snapshot_file(db: &[u8]) -> Vec<u8> {
    let mut v = db.to_vec();
    v.extend_from_slice(&Sha256::digest(db));
    v
}

fn info() -> SourceInfo {
    SourceInfo {
        cluster_id: format!("{:016x}", 42u64),
        etcd_version: "3.5.1".into(),
        revision: 7,
        source: SourceMember {
            endpoint: "https://127.0.0.1:2379".into(),
            id: format!("{:016x}", 1u64),
            name: "m1".into(),
            was_leader: true,
        },
        members: vec![],
    }
}

fn opts(encrypt: Option<Encrypt>) -> EncodeOptions {
    EncodeOptions {
        level: 3,
        threads: 2,
        encrypt: encrypt.map(Arc::new),
        max_rate: None,
    }
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn never() -> std::future::Pending<()> {
    std::future::pending()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_round_trip_modes_and_listing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backups");
    let store = LocalStore::new(dest.clone());
    let data = db(300, 1);
    let m = write_backup(
        etcd_stream(&data),
        info(),
        &store,
        &opts(None),
        ts("2026-12-04T10:00:00Z"),
        never(),
    )
    .await
    .unwrap();
    assert_eq!(m.id, "etcd-20261204T100000Z");
    assert_eq!(m.db_size, data.len() as u64);
    assert_eq!(m.file_size, data.len() as u64 + 32);
    assert!(m.stored_size < m.file_size / 2, "{m:?}");
    assert!(m.encryption.is_none() && m.verified);
    // Modes: directory 0700, files 0600, no .part left.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dest), 0o700);
    let names: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for n in &names {
        assert_eq!(mode(&dest.join(n)), 0o600, "{n}");
    }
    let listing = prune::list(&store).await.unwrap();
    assert_eq!(listing.backups.len(), 1);
    assert!(listing.stray.is_empty());
    let out = dir.path().join("restored.db");
    let fetched = fetch(&store, &m.id, Arc::new(Decrypt::default()), &out)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), snapshot_file(&data));
    assert_eq!(fetched.streamed.db_size, data.len() as u64);
    assert_eq!(mode(&out), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_round_trips_and_wrong_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("b"));
    let data = db(64, 2);
    // Recipient.
    let key = age::x25519::Identity::generate();
    let key_file = dir.path().join("key.txt");
    std::fs::write(
        &key_file,
        format!(
            "{}\n",
            age::secrecy::ExposeSecret::expose_secret(&key.to_string())
        ),
    )
    .unwrap();
    let enc = Encrypt::from_args(&[key.to_public().to_string()], &[], None)
        .unwrap()
        .unwrap();
    let m = write_backup(
        etcd_stream(&data),
        info(),
        &store,
        &opts(Some(enc)),
        ts("2026-12-04T10:00:00Z"),
        never(),
    )
    .await
    .unwrap();
    assert!(m.object.ends_with(".db.zst.age"));
    let out = dir.path().join("r.db");
    let keys = Decrypt::from_args(std::slice::from_ref(&key_file), None).unwrap();
    fetch(&store, &m.id, Arc::new(keys), &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), snapshot_file(&data));
    std::fs::remove_file(&out).unwrap();

    // No key, wrong key: refused, naming the fault; nothing at the target.
    let err = fetch(&store, &m.id, Arc::new(Decrypt::default()), &out)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Pipeline(PipelineError::NeedKey { .. })),
        "{err}"
    );
    let other = age::x25519::Identity::generate();
    let other_file = dir.path().join("other.txt");
    std::fs::write(
        &other_file,
        format!(
            "{}\n",
            age::secrecy::ExposeSecret::expose_secret(&other.to_string())
        ),
    )
    .unwrap();
    let keys = Decrypt::from_args(std::slice::from_ref(&other_file), None).unwrap();
    let err = fetch(&store, &m.id, Arc::new(keys), &out)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Pipeline(PipelineError::WrongKey { .. })),
        "{err}"
    );
    assert!(err.to_string().starts_with("wrong key"), "{err}");
    assert!(!out.exists());

    // Passphrase.
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let enc = Encrypt::from_args(&[], &[], Some(&pass)).unwrap().unwrap();
    let m2 = write_backup(
        etcd_stream(&data),
        info(),
        &store,
        &opts(Some(enc)),
        ts("2026-12-04T11:00:00Z"),
        never(),
    )
    .await
    .unwrap();
    assert!(m2.encryption.as_ref().unwrap().passphrase);
    let keys = Decrypt::from_args(&[], Some(&pass)).unwrap();
    fetch(&store, &m2.id, Arc::new(keys), &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), snapshot_file(&data));
    std::fs::remove_file(&out).unwrap();
    let bad_pass = dir.path().join("bad");
    std::fs::write(&bad_pass, "wrong\n").unwrap();
    let keys = Decrypt::from_args(&[], Some(&bad_pass)).unwrap();
    let err = fetch(&store, &m2.id, Arc::new(keys), &out)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Pipeline(PipelineError::WrongKey { .. } | PipelineError::Decrypt { .. })
        ),
        "{err}"
    );

    // Both recipients and a passphrase: age forbids it, said up front.
    let err = Encrypt::from_args(&[key.to_public().to_string()], &[], Some(&pass)).unwrap_err();
    assert!(
        err.to_string().contains("both recipients and a passphrase"),
        "{err}"
    );
    // Debug output never shows the passphrase.
    let enc = Encrypt::from_args(&[], &[], Some(&pass)).unwrap().unwrap();
    assert!(!format!("{enc:?}").contains("horse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_object_is_named_even_with_the_right_key() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("b");
    let store = LocalStore::new(dest.clone());
    let data = db(64, 3);
    let key = age::x25519::Identity::generate();
    let key_file = dir.path().join("key.txt");
    std::fs::write(
        &key_file,
        format!(
            "{}\n",
            age::secrecy::ExposeSecret::expose_secret(&key.to_string())
        ),
    )
    .unwrap();
    let enc = Encrypt::from_args(&[key.to_public().to_string()], &[], None)
        .unwrap()
        .unwrap();
    let m = write_backup(
        etcd_stream(&data),
        info(),
        &store,
        &opts(Some(enc)),
        ts("2026-12-04T10:00:00Z"),
        never(),
    )
    .await
    .unwrap();
    let obj = dest.join(&m.object);
    let mut bytes = std::fs::read(&obj).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&obj, &bytes).unwrap();
    let out = dir.path().join("r.db");
    let keys = Decrypt::from_args(std::slice::from_ref(&key_file), None).unwrap();
    let err = fetch(&store, &m.id, Arc::new(keys), &out)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Pipeline(PipelineError::Corrupted { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("is corrupted"), "{err}");
    assert!(!out.exists() && !dir.path().join("r.db.part").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_streams_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("b");
    let store = LocalStore::new(dest.clone());
    let data = db(64, 4);
    // Bad trailer.
    let mut s = etcd_stream(&data);
    s.messages.back_mut().unwrap().as_mut().unwrap().1[0] ^= 1;
    let err = write_backup(
        s,
        info(),
        &store,
        &opts(None),
        ts("2026-12-04T10:00:00Z"),
        never(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("SHA-256 mismatch"), "{err}");
    // Stream error midway.
    let mut s = etcd_stream(&data);
    s.messages.truncate(3);
    s.messages.push_back(Err("connection reset".into()));
    let err = write_backup(
        s,
        info(),
        &store,
        &opts(None),
        ts("2026-12-04T10:00:01Z"),
        never(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("connection reset"), "{err}");
    // Cancelled.
    let err = write_backup(
        etcd_stream(&data),
        info(),
        &store,
        &opts(None),
        ts("2026-12-04T10:00:02Z"),
        async {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RunError::Cancelled), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dest)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_after_several_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("b"));
    let data = db(8, 5);
    for h in 0..5 {
        write_backup(
            etcd_stream(&data),
            info(),
            &store,
            &opts(None),
            ts(&format!("2026-12-04T1{h}:00:00Z")),
            never(),
        )
        .await
        .unwrap();
    }
    let listing = prune::list(&store).await.unwrap();
    assert_eq!(listing.backups.len(), 5);
    let policy = Policy {
        keep_last: 2,
        ..Policy::default()
    };
    let now = ts("2026-12-04T15:00:00Z");
    // A failed run deletes nothing.
    let d = prune::decide(&listing, &policy, now, RunOutcome::Failed);
    assert!(prune::apply(&store, &listing, &d).await.unwrap().is_empty());
    let d = prune::decide(&listing, &policy, now, RunOutcome::Succeeded);
    let deleted = prune::apply(&store, &listing, &d).await.unwrap();
    assert_eq!(
        deleted,
        [
            "etcd-20261204T120000Z",
            "etcd-20261204T110000Z",
            "etcd-20261204T100000Z"
        ]
    );
    let after = prune::list(&store).await.unwrap();
    let ids: Vec<_> = after.backups.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["etcd-20261204T140000Z", "etcd-20261204T130000Z"]);
    assert_eq!(store.list().await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backups_in_one_second_both_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("b"));
    let at = ts("2026-12-04T10:00:00.100Z");
    let mut ids = Vec::new();
    for seed in [1, 2, 3] {
        let m = write_backup(
            etcd_stream(&db(8, seed)),
            info(),
            &store,
            &opts(None),
            at,
            never(),
        )
        .await
        .unwrap();
        ids.push(m.id);
    }
    assert_eq!(
        ids,
        [
            "etcd-20261204T100000Z",
            "etcd-20261204T100000Z-2",
            "etcd-20261204T100000Z-3"
        ]
    );
    let listing = prune::list(&store).await.unwrap();
    assert_eq!(listing.backups.len(), 3);
    // Each still holds its own content.
    for (id, seed) in ids.iter().zip([1, 2, 3]) {
        let out = dir.path().join(format!("{id}.db"));
        fetch(&store, id, Arc::new(Decrypt::default()), &out)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), snapshot_file(&db(8, seed)));
    }
}
