//! Streams as etcd sends them (and broken ones) into part files, and the holdback hash.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::stream::HoldbackHasher;
use super::*;

/// Messages as etcd 3.4/3.5 send them: 32 KiB chunks counting down, then the SHA-256.
fn etcd_messages(db: &[u8], chunk: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut sent = 0;
    for c in db.chunks(chunk) {
        sent += c.len();
        out.push(((db.len() - sent) as u64, c.to_vec()));
    }
    out.push((0, Sha256::digest(db).to_vec()));
    out
}

struct Fake {
    messages: std::collections::VecDeque<Result<(u64, Vec<u8>), String>>,
}
impl Fake {
    fn new(messages: Vec<(u64, Vec<u8>)>) -> Self {
        Fake {
            messages: messages.into_iter().map(Ok).collect(),
        }
    }
}
impl ChunkSource for Fake {
    type Blob = Vec<u8>;
    async fn next_chunk(&mut self) -> Result<Option<(u64, Vec<u8>)>, String> {
        self.messages.pop_front().transpose()
    }
}

fn db(pages: usize) -> Vec<u8> {
    (0..pages * 4096).map(|i| (i * 7 % 251) as u8).collect()
}

async fn save(target: &Path, source: Fake) -> Result<Streamed, SaveError> {
    let (part, file, _) = PartFile::create(target)?;
    let streamed = stream_to_file(source, file, part.path(), &mut NoProgress).await?;
    part.commit()?;
    Ok(streamed)
}

#[tokio::test]
async fn saves_exactly_what_etcd_sends() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    let data = db(20);
    let s = save(&target, Fake::new(etcd_messages(&data, 32 * 1024)))
        .await
        .unwrap();
    let file = std::fs::read(&target).unwrap();
    assert_eq!(&file[..data.len()], &data[..]);
    assert_eq!(&file[data.len()..], Sha256::digest(&data).as_slice());
    assert_eq!(s.db_size, data.len() as u64);
    assert_eq!(s.file_size, data.len() as u64 + 32);
    assert_eq!(s.announced_db_size, Some(data.len() as u64));
    assert_eq!(s.messages, 4);
    assert!(!part_path(&target).exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn odd_chunking_and_trailer_split_across_messages() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    let data = db(3);
    let mut all = data.clone();
    all.extend_from_slice(&Sha256::digest(&data));
    // 5-byte messages: the trailer straddles several of them.
    let mut sent = 0usize;
    let msgs: Vec<_> = all
        .chunks(5)
        .map(|c| {
            sent += c.len();
            (data.len().saturating_sub(sent) as u64, c.to_vec())
        })
        .collect();
    let s = save(&target, Fake::new(msgs)).await.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), all);
    assert_eq!(s.sha256.as_slice(), Sha256::digest(&data).as_slice());
}

#[tokio::test]
async fn bad_trailer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    let data = db(4);
    let mut msgs = etcd_messages(&data, 32 * 1024);
    msgs.last_mut().unwrap().1[0] ^= 1;
    let err = save(&target, Fake::new(msgs)).await.unwrap_err();
    assert!(matches!(err, SaveError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("SHA-256 mismatch"));
    assert!(!target.exists());
    assert!(!part_path(&target).exists());
}

#[tokio::test]
async fn flipped_data_bit_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    let data = db(4);
    let mut msgs = etcd_messages(&data, 32 * 1024);
    msgs[0].1[100] ^= 0x80;
    let err = save(&target, Fake::new(msgs)).await.unwrap_err();
    assert!(matches!(err, SaveError::HashMismatch { .. }), "{err}");
    assert!(!target.exists());
}

#[tokio::test]
async fn stream_stopping_at_remaining_zero_is_truncated() {
    // The classic client bug: stopping when remaining_bytes hits 0 loses the trailer.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    let data = db(8);
    let mut msgs = etcd_messages(&data, 32 * 1024);
    msgs.pop();
    let err = save(&target, Fake::new(msgs)).await.unwrap_err();
    assert!(matches!(err, SaveError::Truncated { .. }), "{err}");
    assert!(!target.exists() && !part_path(&target).exists());
}

#[tokio::test]
async fn stream_cut_midway_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    let data = db(64);
    let mut msgs = etcd_messages(&data, 32 * 1024);
    // Lose a whole middle chunk but keep a valid-looking trailer of what was sent.
    msgs.remove(3);
    let err = save(&target, Fake::new(msgs)).await.unwrap_err();
    assert!(matches!(err, SaveError::Truncated { .. }), "{err}");
    assert!(!target.exists());
}

#[tokio::test]
async fn stream_error_is_reported_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    let data = db(16);
    let msgs = etcd_messages(&data, 32 * 1024);
    let mut fake = Fake::new(msgs[..1].to_vec());
    fake.messages.push_back(Err("connection reset".into()));
    let err = save(&target, fake).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the snapshot stream failed after 32768 bytes: connection reset"
    );
    assert!(!target.exists() && !part_path(&target).exists());
}

#[tokio::test]
async fn empty_stream_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    let err = save(&target, Fake::new(vec![])).await.unwrap_err();
    assert!(
        matches!(err, SaveError::Truncated { received: 0, .. }),
        "{err}"
    );
}

#[test]
fn leftover_part_is_removed_and_live_one_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.db");
    std::fs::write(part_path(&target), b"half a snapshot").unwrap();
    let (part, _file, leftover) = PartFile::create(&target).unwrap();
    assert_eq!(leftover, Leftover::Removed(15));
    // A second save while the first holds the lock is refused, and the first's file kept.
    let err = PartFile::create(&target).unwrap_err();
    assert!(matches!(err, SaveError::Busy { .. }), "{err}");
    assert!(part.path().exists());
    drop(part);
    assert!(!part_path(&target).exists());
}

#[test]
fn existing_target_is_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m.json");
    std::fs::write(&target, b"old").unwrap();
    write_atomically(&target, b"new").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    assert!(!part_path(&target).exists());
}

#[test]
fn missing_directory_is_a_clear_error() {
    let err = PartFile::create(Path::new("/nonexistent-dir-kubemaint/s.db")).unwrap_err();
    assert!(
        err.to_string().contains("check that the directory exists"),
        "{err}"
    );
}

#[test]
fn holdback_hasher_matches_plain_hash() {
    let data = db(2);
    let mut all = data.clone();
    all.extend_from_slice(&[9u8; 32]);
    for step in [1, 7, 31, 32, 33, 4096, 10000] {
        let mut h = HoldbackHasher::default();
        for c in all.chunks(step) {
            h.update(c);
        }
        let (n, sum, tail) = h.finish().unwrap();
        assert_eq!(n, data.len() as u64, "step {step}");
        assert_eq!(
            sum.as_slice(),
            Sha256::digest(&data).as_slice(),
            "step {step}"
        );
        assert_eq!(tail, [9u8; 32]);
    }
}
