//! `kubemaint etcd snapshot save FILE`: stream a snapshot from one healthy voting member,
//! check its SHA-256 trailer before it gets its name, and write a manifest beside it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use kubemaint_etcd::client::{self, Selected};
use kubemaint_etcd::save::manifest::{
    self, Manifest, ManifestMember, RevisionSource, SourceMember,
};
use kubemaint_etcd::save::{self, Leftover, PartFile, Progress, Streamed, fromfile};

use super::connection::ConnectionArgs;
use crate::exit::CodedError;
use crate::global::GlobalArgs;
use crate::output::print_machine;

/// Arguments of `etcd snapshot save`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kubemaint etcd snapshot save /var/backups/etcd.db --pki-dir /etc/kubernetes/pki --endpoints https://127.0.0.1:2379
  kubemaint etcd snapshot save /var/backups/etcd.db --kubeadm          # endpoint and certs from etcd.yaml
  ETCDCTL_CACERT=... ETCDCTL_CERT=... ETCDCTL_KEY=... kubemaint etcd snapshot save s.db --endpoints https://10.0.0.5:2379

Writes FILE.part (mode 0600), checks the SHA-256 trailer, fsyncs, renames it to FILE and writes
FILE.manifest.json. On any failure nothing is left at FILE.")]
pub struct SaveArgs {
    /// The snapshot file to write (replaced atomically if it exists).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Also compare the KV hash computed from the file with `HashKV` of every live member at the
    /// snapshot's revision.
    #[arg(long)]
    pub verify_hash_kv: bool,
    /// Do not draw a progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Print no summary (a caller such as `upgrade apply` reports the file itself).
    #[arg(skip)]
    pub quiet: bool,
}

/// A progress bar on a terminal, a line every few seconds otherwise.
enum Reporter {
    Bar(indicatif::ProgressBar),
    Lines {
        total: u64,
        started: Instant,
        last: Instant,
    },
    Quiet,
}

impl Progress for Reporter {
    fn start(&mut self, db_size: u64) {
        match self {
            Reporter::Bar(bar) => bar.set_length(db_size + save::TRAILER_LEN as u64),
            Reporter::Lines { total, .. } => *total = db_size + save::TRAILER_LEN as u64,
            Reporter::Quiet => {}
        }
    }
    fn advance(&mut self, received: u64) {
        match self {
            Reporter::Bar(bar) => bar.set_position(received),
            Reporter::Lines {
                total,
                started,
                last,
            } => {
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    eprintln!(
                        "received {} of {} ({}/s)",
                        human_bytes(received),
                        human_bytes(*total),
                        human_bytes((received as f64 / secs) as u64)
                    );
                }
            }
            Reporter::Quiet => {}
        }
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn reporter(args: &SaveArgs, global: &GlobalArgs) -> Reporter {
    if args.no_progress {
        return Reporter::Quiet;
    }
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Reporter::Bar(bar)
    } else if global.output.is_machine() {
        Reporter::Quiet
    } else {
        Reporter::Lines {
            total: 0,
            started: Instant::now(),
            last: Instant::now(),
        }
    }
}

/// Runs `etcd snapshot save`. Ctrl-C or SIGTERM at any point drops the work in progress, which
/// removes `FILE.part`; nothing is ever left at FILE.
pub async fn run(args: SaveArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let target = args.file.clone();
    tokio::select! {
        r = save(args, global) => r,
        _ = shutdown_signal() => Err(anyhow::anyhow!(
            "interrupted: nothing was written to {} (the partial .part file was removed)",
            target.display()
        )),
    }
}

/// Saves a snapshot to `file` as `etcd snapshot save` does (`.part`, SHA-256 trailer checked,
/// manifest), printing no summary, then checks the saved file as `etcd snapshot verify` does
/// (trailer and full bbolt structure). `upgrade apply` takes one before the control plane.
pub async fn save_verified(file: PathBuf, connection: ConnectionArgs) -> anyhow::Result<PathBuf> {
    let args = SaveArgs {
        file: file.clone(),
        connection,
        verify_hash_kv: false,
        no_progress: true,
        quiet: true,
    };
    let global = GlobalArgs {
        kubeconfig: None,
        context: None,
        output: crate::output::OutputFormat::Table,
        verbose: 0,
    };
    save(args, &global).await?;
    let report = kubemaint_etcd::snapshot::verify(
        &file,
        &kubemaint_etcd::snapshot::StatusOptions::default(),
    )
    .with_context(|| format!("cannot check the snapshot {}", file.display()))?;
    if !report.is_valid(false) {
        anyhow::bail!(
            "the snapshot {} was saved but does not verify (`kubemaint etcd snapshot verify {}` says why); not going on without a good backup",
            file.display(),
            file.display()
        );
    }
    Ok(file)
}

async fn save(args: SaveArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let target = args.file.clone();
    let quiet = args.quiet;
    if target.as_os_str().is_empty() || target.to_string_lossy().ends_with('/') {
        return Err(CodedError::usage(format!(
            "FILE must be a file path, not {:?}",
            target.display()
        )));
    }
    if target.is_dir() {
        return Err(CodedError::usage(format!(
            "{} is a directory: give the snapshot's file name, e.g. {}/etcd-snapshot.db",
            target.display(),
            target.display()
        )));
    }
    let config = args.connection.clone().resolve()?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    tracing::info!(?config, "resolved etcd connection");

    // Claim FILE.part first: a bad directory or a concurrent save fails before any network work.
    let (part, file, leftover) = PartFile::create(&target)?;
    if let Leftover::Removed(n) = leftover {
        eprintln!(
            "Removed {} ({}) left by an interrupted save",
            part.path().display(),
            human_bytes(n)
        );
    }

    let Selected {
        mut client,
        status,
        members,
        choice,
    } = client::connect_and_choose(&config).await?;
    let member_name = members
        .iter()
        .find(|m| m.id == status.member_id)
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let is_leader = status.leader == status.member_id;
    eprintln!(
        "Taking the snapshot from {} (member {} {:016x}, etcd {}{}): {}",
        client.endpoint,
        if member_name.is_empty() {
            "?"
        } else {
            &member_name
        },
        status.member_id,
        status.version,
        if is_leader { ", leader" } else { "" },
        choice.reason
    );
    if config.endpoints.len() > 1 {
        for (ep, why) in &choice.passed_over {
            eprintln!("  not using {ep}: {why}");
        }
    }

    let mut progress = reporter(&args, global);
    let started = Instant::now();
    let stream = client.snapshot().await?;
    let transfer = save::stream_to_file(stream, file, part.path(), &mut progress);
    // etcdctl bounds `snapshot save` only when --command-timeout is given (etcd #10298).
    let bounded = async {
        if config.command_timeout_explicit {
            match tokio::time::timeout(config.command_timeout, transfer).await {
                Ok(r) => r.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!(
                    "the snapshot did not complete within --command-timeout {:?}; raise it or drop it (no limit by default)",
                    config.command_timeout
                )),
            }
        } else {
            transfer.await.map_err(anyhow::Error::from)
        }
    };
    let streamed: Streamed = bounded.await.inspect_err(|_| {
        if let Reporter::Bar(bar) = &progress {
            bar.abandon();
        }
    })?;
    let elapsed = started.elapsed();
    if let Reporter::Bar(bar) = &progress {
        bar.finish_and_clear();
    }

    // The revision is read from the file itself (etcd does not say it in the stream, etcd #9037).
    let from_file = fromfile::read_revision(part.path())?;
    let hash_kv = if args.verify_hash_kv {
        Some(verify_hash_kv(&config, part.path(), from_file.revision, &members).await?)
    } else {
        None
    };

    let manifest = Manifest {
        format: manifest::FORMAT.to_string(),
        file: target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        created: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        duration_seconds: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        written_by: format!("kubemaint {}", env!("CARGO_PKG_VERSION")),
        revision: from_file.revision,
        revision_source: RevisionSource::SnapshotFile,
        compact_revision: Some(from_file.compact_revision),
        db_size: streamed.db_size,
        file_size: streamed.file_size,
        sha256: hex(&streamed.sha256),
        cluster_id: format!("{:016x}", status.cluster_id),
        etcd_version: status.version.clone(),
        source: SourceMember {
            endpoint: client.endpoint.to_string(),
            id: format!("{:016x}", status.member_id),
            name: member_name,
            was_leader: is_leader,
        },
        members: members
            .iter()
            .map(|m| ManifestMember {
                id: format!("{:016x}", m.id),
                name: m.name.clone(),
                peer_urls: m.peer_urls.clone(),
                client_urls: m.client_urls.clone(),
                is_learner: m.is_learner,
            })
            .collect(),
        hash_kv,
    };

    // A manifest from an earlier snapshot at this path must never sit next to the new one.
    let manifest_path = manifest::manifest_path(&target);
    remove_if_exists(&manifest_path)?;
    let saved = part.commit()?;
    save::write_atomically(&manifest_path, &manifest.to_json()).with_context(|| {
        format!(
            "the snapshot {} is saved and verified, but its manifest could not be written",
            saved.display()
        )
    })?;

    if !quiet && !print_machine(global.output, &manifest)? {
        print_summary(&saved, &manifest_path, &manifest, &streamed, elapsed);
    }
    if let Some(check) = &manifest.hash_kv {
        let bad: Vec<_> = check
            .members
            .iter()
            .filter(|m| m.result != "match")
            .collect();
        if bad.iter().any(|m| m.result == "mismatch") {
            anyhow::bail!(
                "HashKV mismatch at revision {}: {}. The snapshot {} is kept (its SHA-256 is good), but the cluster's members disagree with it; investigate before relying on it",
                check.revision,
                bad.iter()
                    .map(|m| format!(
                        "{}: {}",
                        m.endpoint,
                        m.detail.as_deref().unwrap_or(&m.result)
                    ))
                    .collect::<Vec<_>>()
                    .join("; "),
                saved.display()
            );
        }
        if !bad.is_empty() {
            eprintln!(
                "warning: HashKV could not be compared on every member: {}",
                bad.iter()
                    .map(|m| format!(
                        "{}: {}",
                        m.endpoint,
                        m.detail.as_deref().unwrap_or(&m.result)
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }
    Ok(crate::exit::SUCCESS)
}

/// Asks every voting member (by its advertised client URL, else the endpoints given) for
/// `HashKV(revision)` and compares with the hash computed from the file.
async fn verify_hash_kv(
    config: &client::ConnectionConfig,
    file: &Path,
    revision: i64,
    members: &[client::MemberInfo],
) -> anyhow::Result<manifest::HashKvCheck> {
    let path = file.to_path_buf();
    let offline = tokio::task::spawn_blocking(move || fromfile::offline_hash_kv(&path, revision))
        .await
        .context("the offline HashKV task failed")??;
    let tls_configured = config.tls.cacert.is_some() || config.tls.client.is_some();
    let mut endpoints: Vec<client::Endpoint> = Vec::new();
    for m in members.iter().filter(|m| !m.is_learner) {
        if let Some(url) = m.client_urls.first()
            && let Ok(ep) = client::config::parse_endpoint(url, tls_configured)
        {
            endpoints.push(ep);
        }
    }
    if endpoints.is_empty() {
        endpoints = config.endpoints.clone();
    }
    let tls = if endpoints.iter().any(|e| e.tls) {
        Some(client::TlsMaterial::load(&config.tls)?)
    } else {
        None
    };
    let answers = futures::future::join_all(endpoints.iter().map(|ep| {
        let tls = tls.as_ref();
        async move {
            let answer = async {
                let mut c = client::MemberClient::connect(config, tls, ep).await?;
                let resp = c
                    .call(
                        "hash kv",
                        |mut cl| async move { cl.hash_kv(revision).await },
                    )
                    .await?;
                Ok::<_, client::ClientError>(fromfile::LiveHashKv {
                    member_id: resp.header().map_or(0, |h| h.member_id()),
                    hash: resp.hash(),
                    compact_revision: resp.compact_version(),
                })
            }
            .await
            .map_err(|e| e.to_string());
            (ep.to_string(), answer)
        }
    }))
    .await;
    Ok(fromfile::compare_hash_kv(&offline, answers))
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove the old {}", path.display())),
    }
}

fn print_summary(
    saved: &Path,
    manifest_path: &Path,
    m: &Manifest,
    streamed: &Streamed,
    elapsed: Duration,
) {
    let rate = streamed.file_size as f64 / elapsed.as_secs_f64().max(1e-3);
    println!("Snapshot saved at {}", saved.display());
    println!(
        "  revision   {}{}",
        m.revision,
        match m.revision_source {
            RevisionSource::SnapshotFile => "",
            RevisionSource::StatusBeforeSave => " (member's revision when the save started)",
        }
    );
    println!(
        "  size       {} ({} bytes; database {} bytes + 32-byte SHA-256 trailer)",
        human_bytes(streamed.file_size),
        streamed.file_size,
        streamed.db_size
    );
    println!("  sha256     {} (checked against the trailer)", m.sha256);
    println!(
        "  from       {} member {} ({}), etcd {}, cluster {}",
        m.source.endpoint, m.source.name, m.source.id, m.etcd_version, m.cluster_id
    );
    println!(
        "  took       {:.2}s ({}/s)",
        elapsed.as_secs_f64(),
        human_bytes(rate as u64)
    );
    if let Some(check) = &m.hash_kv {
        println!(
            "  hash-kv    file {} at revision {} (compact revision {})",
            check.file_hash, check.revision, check.compact_revision
        );
        for member in &check.members {
            println!(
                "             {} {}: {}{}",
                member.endpoint,
                member.id.as_deref().unwrap_or("?"),
                member.result,
                member
                    .detail
                    .as_deref()
                    .map_or_else(String::new, |d| format!(" ({d})"))
            );
        }
    }
    println!("  manifest   {}", manifest_path.display());
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
