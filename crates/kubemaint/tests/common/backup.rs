//! A real Garage (S3) on loopback, age keys, and reading back what `backup` stored.

use std::path::{Path, PathBuf};

use kubemaint_lab::garage::Garage;

use super::run::{kubemaint, text};

/// Starts a real Garage with a bucket `etcd-backups`.
pub fn start_garage(dir: &Path) -> Garage {
    Garage::start(dir, "etcd-backups").unwrap_or_else(|e| panic!("cannot start Garage: {e}"))
}

/// The backup IDs `backup list` shows, newest first.
pub fn list_ids(env: &[(&str, String)], dest: &str) -> Vec<String> {
    let out = kubemaint(env, &["backup", "list", "--from", dest, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

/// An age x25519 identity written to `dir/key.txt` in age-keygen's file format (the key pair
/// comes from the age crate); returns the recipient and the file.
pub fn keygen(dir: &Path) -> (String, PathBuf) {
    let key = age::x25519::Identity::generate();
    let path = dir.join("key.txt");
    std::fs::write(
        &path,
        format!(
            "# public key: {}\n{}\n",
            key.to_public(),
            age::secrecy::ExposeSecret::expose_secret(&key.to_string())
        ),
    )
    .unwrap();
    (key.to_public().to_string(), path)
}

/// Waits for the wall clock to enter the next second: backup IDs have one-second resolution.
pub fn next_second() {
    let now = jiff::Timestamp::now().as_second();
    while jiff::Timestamp::now().as_second() == now {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// One sample of a Prometheus text file (`name{labels} value`), by metric name.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(name))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}
