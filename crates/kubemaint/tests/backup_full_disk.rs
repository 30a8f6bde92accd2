//! A full local disk (a 1 MiB tmpfs the test mounts; the tests run as root) under `backup run`
//! and `backup fetch`, with a real etcd 3.5.1: a clear error naming the lack of space, exit 1,
//! nothing half-written at a final path (no `.part` left, no manifest without its data), and
//! the backup already in the store neither deleted by retention nor touched.
//!
//! Needs `kubemaint-lab prepare` and root (for `mount -t tmpfs`); fails naming what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A small tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk and must run as root: {}",
            text(&out)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_full_disk_is_named_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let full = Tmpfs::mount(&dir.path().join("small"), "1m");
    let etcd = start_etcd(&dir.path().join("src"), None);
    seed(&etcd, 10);
    let pki = etcd.pki.dir.display().to_string();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "full disk passphrase\n").unwrap();
    let pass_s = pass.display().to_string();
    let store = full.0.join("backups");
    let store_s = store.display().to_string();
    let run = |to: &str| {
        kubemaint(
            &[],
            &[
                "backup",
                "run",
                "--to",
                to,
                "--endpoints",
                &etcd.client_url,
                "--pki-dir",
                &pki,
                "--passphrase-file",
                &pass_s,
                "--keep-last",
                "1",
                "-o",
                "json",
            ],
        )
    };

    // A small backup fits.
    let out = run(&store_s);
    assert!(out.status.success(), "{}", text(&out));
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first_id = first["backup"]["id"].as_str().unwrap().to_string();
    let before = names(&store);
    assert_eq!(before.len(), 2, "{before:?}");
    let first_bytes: Vec<Vec<u8>> = before
        .iter()
        .map(|n| std::fs::read(store.join(n)).unwrap())
        .collect();

    // ~4 MB that does not compress much: the next one does not fit in 1 MiB.
    seed_incompressible(&etcd, 4, 1_000_000);
    let out = run(&store_s);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No space left on device") && stderr.contains("check free space"),
        "{}",
        text(&out)
    );
    assert!(stderr.contains("nothing was deleted"), "{}", text(&out));
    // The first backup is still there, byte for byte, and still the only one listed.
    assert_eq!(names(&store), before, "{}", text(&out));
    for (n, bytes) in before.iter().zip(&first_bytes) {
        assert_eq!(&std::fs::read(store.join(n)).unwrap(), bytes, "{n}");
    }
    assert_eq!(list_ids(&[], &store_s), [first_id]);

    // Fetching a big backup onto the full disk: nothing at the final path, no .part.
    let roomy = dir.path().join("roomy");
    let out = run(&roomy.display().to_string());
    assert!(out.status.success(), "{}", text(&out));
    let big: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let target = full.0.join("restore.db");
    let out = kubemaint(
        &[],
        &[
            "backup",
            "fetch",
            big["backup"]["id"].as_str().unwrap(),
            "--from",
            &roomy.display().to_string(),
            "--passphrase-file",
            &pass_s,
            "--to",
            &target.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No space left on device"),
        "{}",
        text(&out)
    );
    assert_eq!(names(&full.0), ["backups"], "{}", text(&out));
}
