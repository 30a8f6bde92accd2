//! `kubemaint backup schedule` against a real etcd 3.5.1 (TLS, the lab's kubeadm-shaped PKI)
//! and a real Garage 2.5.0 on loopback: a seconds-level cron takes several backups in a row,
//! reports the runs it had to skip and applies retention; SIGTERM during an upload (S3
//! multipart, and a local directory) leaves nothing listed, no unfinished multipart upload and no
//! `.part` file, and the process exits 0. Also: a snapshot larger than several parts goes up
//! as a real multipart upload (the object's ETag says how many parts Garage assembled).
//!
//! Needs `kubemaint-lab prepare` and `scripts/build-garage.sh` (the tests fail, naming what is
//! missing, if they were not run).

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use kubemaint_lab::garage::Garage;

fn sigterm(child: &Child) {
    run_ok(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]));
}

fn wait_exit(child: &mut Child, log: &Path) -> std::process::ExitStatus {
    wait_for(
        "kubemaint backup schedule to exit after SIGTERM",
        Duration::from_secs(60),
        || child.try_wait().unwrap(),
        || std::fs::read_to_string(log).unwrap_or_default(),
    )
}

fn bucket_info(garage: &Garage) -> String {
    garage
        .cli(&["bucket", "info", &garage.bucket])
        .unwrap_or_else(|e| panic!("garage bucket info: {e}"))
}

/// True while Garage holds an unfinished multipart upload with at least one part stored.
fn upload_with_parts_in_flight(info: &str) -> bool {
    info.lines().any(|l| {
        l.contains("Size of unfinished multipart uploads")
            && !l.split('\t').nth(1).unwrap_or("").starts_with("0 B")
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_seconds_cron_takes_several_backups_reports_missed_runs_and_keeps_two() {
    let dir = tempfile::tempdir().unwrap();
    let garage = start_garage(&dir.path().join("garage"));
    let env = garage.env();
    let etcd = start_etcd(&dir.path().join("src"), None);
    seed(&etcd, 30);
    let pki = etcd.pki.dir.display().to_string();
    let dest = format!("s3://{}/scheduled", garage.bucket);
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "schedule test passphrase\n").unwrap();
    let metrics = dir.path().join("kubemaint_backup.prom");
    let log = dir.path().join("schedule.log");
    // Each run reads the snapshot in about 3 s, so an every-second cron always has
    // occurrences falling while a run is in flight: they must be skipped and reported.
    let rate_kib = (db_size(&etcd) / 3 / 1024).max(1).to_string();
    let mut child = kubemaint_cmd(
        &env,
        &[
            "backup",
            "schedule",
            "--cron",
            "* * * * * *",
            "--to",
            &dest,
            "--endpoints",
            &etcd.client_url,
            "--pki-dir",
            &pki,
            "--passphrase-file",
            &pass.display().to_string(),
            "--keep-last",
            "2",
            "--max-rate-kib",
            &rate_kib,
            "--metrics-file",
            &metrics.display().to_string(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();

    // Three successful runs in a row, none failed.
    wait_for(
        "three successful scheduled backups",
        Duration::from_secs(120),
        || {
            let m = read(&metrics);
            if let Some(failures) = metric(&m, "kubemaint_backup_failures_total") {
                assert_eq!(failures, 0.0, "{}", read(&log));
            }
            let runs = metric(&m, "kubemaint_backup_runs_total")?;
            metric(&m, "kubemaint_backup_last_success_timestamp_seconds")?;
            // The run counter moves at the start of a run: the third success is done when a
            // fourth run has started or the log says so.
            (runs >= 4.0 || read(&log).matches(" stored: ").count() >= 3).then_some(())
        },
        || format!("{}\n{}", read(&metrics), read(&log)),
    );
    sigterm(&child);
    let status = wait_exit(&mut child, &log);
    let log_text = read(&log);
    println!("{log_text}"); // shown with --nocapture
    assert_eq!(status.code(), Some(0), "{log_text}");
    assert!(log_text.matches(" stored: ").count() >= 3, "{log_text}");
    assert!(log_text.contains("missed "), "{log_text}");
    assert!(log_text.contains("stopped: "), "{log_text}");

    let m = read(&metrics);
    assert!(
        metric(&m, "kubemaint_backup_missed_runs_total").unwrap() >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "kubemaint_backup_failures_total"),
        Some(0.0),
        "{m}"
    );
    let stored = metric(&m, "kubemaint_backup_last_success_stored_bytes").unwrap();
    assert!(stored > 0.0, "{m}");
    let last = metric(&m, "kubemaint_backup_last_success_timestamp_seconds").unwrap();
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!(last <= now && now - last < 120.0, "{m}");

    // Retention kept the two newest; Garage holds exactly their four objects and no
    // unfinished upload (a run abandoned by the SIGTERM left nothing either).
    let ids = list_ids(&env, &dest);
    assert_eq!(ids.len(), 2, "{ids:?}\n{log_text}");
    assert!(
        log_text.contains(&format!("backup {} stored", ids[0])),
        "{log_text}"
    );
    wait_for(
        "Garage to hold exactly the two backups and no unfinished upload",
        Duration::from_secs(30),
        || {
            let info = bucket_info(&garage);
            (info
                .lines()
                .any(|l| l.contains("Objects:") && l.split_whitespace().any(|w| w == "4"))
                && !info.contains("Unfinished uploads"))
            .then_some(())
        },
        || bucket_info(&garage),
    );
}

#[test]
fn multipart_upload_and_sigterm_mid_upload_leave_nothing_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let garage = start_garage(&dir.path().join("garage"));
    let env = garage.env();
    let etcd = start_etcd(&dir.path().join("src"), None);
    // About 16 MB that zstd leaves at ~75%: three 5 MiB parts and more.
    seed_incompressible(&etcd, 16, 1_000_000);
    let pki = etcd.pki.dir.display().to_string();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "multipart test passphrase\n").unwrap();
    let pass_s = pass.display().to_string();
    let common = |dest: &str| -> Vec<String> {
        [
            "--to",
            dest,
            "--endpoints",
            &etcd.client_url,
            "--pki-dir",
            &pki,
            "--passphrase-file",
            &pass_s,
            "--part-size-mib",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // 1. A whole run: the object is assembled from several parts.
    let dest = format!("s3://{}/multi", garage.bucket);
    let mut args = vec![
        "backup".to_string(),
        "run".into(),
        "-o".into(),
        "json".into(),
    ];
    args.extend(common(&dest));
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kubemaint(&env, &args_ref);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored = v["backup"]["stored_size"].as_u64().unwrap();
    assert!(stored > 10 << 20, "{v}");
    let object = format!("multi/{}", v["backup"]["object"].as_str().unwrap());
    let etag = head_etag(&garage, &object);
    let parts: u64 = etag
        .trim_matches('"')
        .rsplit_once('-')
        .unwrap_or_else(|| panic!("not a multipart ETag: {etag}"))
        .1
        .parse()
        .unwrap();
    assert_eq!(
        parts,
        stored.div_ceil(5 << 20),
        "ETag {etag}, {stored} bytes"
    );
    // ... and it restores byte for byte: fetch checks every hash.
    let fetched = dir.path().join("fetched.db");
    let out = kubemaint(
        &env,
        &[
            "backup",
            "fetch",
            v["backup"]["id"].as_str().unwrap(),
            "--from",
            &dest,
            "--passphrase-file",
            &pass_s,
            "--to",
            &fetched.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // 2. SIGTERM while the scheduled run's multipart upload has parts stored.
    let rate_kib = (db_size(&etcd) / 8 / 1024).max(1).to_string();
    let dest = format!("s3://{}/interrupted", garage.bucket);
    let metrics = dir.path().join("m.prom");
    let log = dir.path().join("s3.log");
    let mut args = vec![
        "backup".to_string(),
        "schedule".into(),
        "--cron".into(),
        "* * * * * *".into(),
        "--max-rate-kib".into(),
        rate_kib.clone(),
        "--metrics-file".into(),
        metrics.display().to_string(),
        "--keep-last".into(),
        "1".into(),
    ];
    args.extend(common(&dest));
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = kubemaint_cmd(&env, &args_ref)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for(
        "a multipart upload with stored parts",
        Duration::from_secs(90),
        || upload_with_parts_in_flight(&bucket_info(&garage)).then_some(()),
        || format!("{}\n{}", bucket_info(&garage), read(&log)),
    );
    sigterm(&child);
    let status = wait_exit(&mut child, &log);
    let log_text = read(&log);
    println!("{log_text}");
    assert_eq!(status.code(), Some(0), "{log_text}");
    assert!(log_text.contains("abandoned"), "{log_text}");
    assert!(!log_text.contains(" stored: "), "{log_text}");
    assert!(list_ids(&env, &dest).is_empty());
    wait_for(
        "Garage to drop the aborted upload",
        Duration::from_secs(30),
        || (!bucket_info(&garage).contains("Unfinished uploads")).then_some(()),
        || bucket_info(&garage),
    );
    let m = read(&metrics);
    assert_eq!(metric(&m, "kubemaint_backup_runs_total"), Some(1.0), "{m}");
    assert_eq!(
        metric(&m, "kubemaint_backup_failures_total"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "kubemaint_backup_last_success_timestamp_seconds"),
        None,
        "{m}"
    );

    // 3. The same into a local directory: no .part file, nothing listed.
    let local = dir.path().join("local");
    let log = dir.path().join("local.log");
    let mut args = vec![
        "backup".to_string(),
        "schedule".into(),
        "--cron".into(),
        "* * * * * *".into(),
        "--max-rate-kib".into(),
        rate_kib,
    ];
    args.extend(common(&local.display().to_string()));
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = kubemaint_cmd(&[], &args_ref)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let part_size = |local: &Path| -> Option<u64> {
        std::fs::read_dir(local).ok()?.find_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let len = e.metadata().ok()?.len();
            (name.ends_with(".part") && len > 0).then_some(len)
        })
    };
    wait_for(
        "a .part file with data",
        Duration::from_secs(90),
        || part_size(&local),
        || read(&log),
    );
    sigterm(&child);
    let status = wait_exit(&mut child, &log);
    let log_text = read(&log);
    assert_eq!(status.code(), Some(0), "{log_text}");
    let left: Vec<_> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}\n{log_text}");
}

/// The ETag Garage reports for `object` (HEAD through object_store): `"MD5-N"` for an object
/// assembled from N parts.
fn head_etag(garage: &Garage, object: &str) -> String {
    use object_store::ObjectStoreExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&garage.endpoint)
        .with_region(kubemaint_lab::garage::REGION)
        .with_bucket_name(&garage.bucket)
        .with_access_key_id(&garage.key_id)
        .with_secret_access_key(&garage.secret)
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let meta = rt
        .block_on(store.head(&object_store::path::Path::from(object)))
        .unwrap_or_else(|e| panic!("HEAD {object}: {e}"));
    meta.e_tag.unwrap_or_else(|| panic!("no ETag for {object}"))
}
