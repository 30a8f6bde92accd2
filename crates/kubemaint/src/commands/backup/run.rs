//! `kubemaint backup run --to DEST`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use kubemaint_backup::Store;
use kubemaint_backup::crypto::Encrypt;
use kubemaint_backup::pipeline::EncodeOptions;
use kubemaint_backup::prune;
use kubemaint_backup::run::{RunError, SourceInfo, write_backup};
use kubemaint_backup::store::StoreOptions;
use kubemaint_core::retention::{Decision, Policy, RunOutcome};
use kubemaint_etcd::client::config::ConnectionConfig;
use kubemaint_etcd::client::{self, Selected};
use kubemaint_etcd::save::manifest::{ManifestMember, SourceMember};
use serde::Serialize;
use tokio::sync::watch;

use super::retention::{RetentionArgs, print_decisions};
use super::{human_bytes, open_store_with};
use crate::commands::etcd::connection::ConnectionArgs;
use crate::exit::{CodedError, SUCCESS};
use crate::global::GlobalArgs;
use crate::output::print_machine;

/// Arguments of `backup run`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kubemaint backup run --kubeadm --to /var/backups/etcd --recipient age1... --keep-last 3 --keep-daily 7
  AWS_ENDPOINT_URL=https://s3.example.net AWS_REGION=eu-1 kubemaint backup run --kubeadm \\
      --to s3://backups/etcd/prod --passphrase-file /etc/kubemaint/pass --keep-daily 14 --keep-monthly 6

The snapshot streams from etcd through its SHA-256 check, zstd and age straight into DEST
(no local copy); the manifest is written last, so an interrupted run leaves no backup listed.
Retention runs only after a successful backup; a failed run deletes nothing.
Two backups taken in the same second get IDs etcd-...Z and etcd-...Z-2.")]
pub struct RunArgs {
    #[command(flatten)]
    pub backup: BackupFlags,
}

/// What a backup run needs, shared by `backup run` and `backup schedule`.
#[derive(Debug, Args)]
pub struct BackupFlags {
    /// Where to store the backup: a directory or s3://bucket/prefix.
    #[arg(long, value_name = "DEST")]
    pub to: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub encryption: EncryptArgs,
    /// zstd compression level (1-19).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// zstd worker threads (default: the number of CPUs, at most 4).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
    /// Read the snapshot from etcd at most this fast, in KiB per second (spares a busy
    /// member's disk and the network; default: no limit).
    #[arg(long, value_name = "KIB_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rate_kib: Option<u64>,
    /// S3 multipart part size in MiB (5-5120; parts upload 4 at a time).
    #[arg(long, value_name = "MIB", default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=5120))]
    pub part_size_mib: u64,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Show what retention would delete, but delete nothing.
    #[arg(long)]
    pub dry_run_retention: bool,
}

/// Encryption flags.
#[derive(Debug, Clone, Args)]
#[command(
    next_help_heading = "Encryption (age; strongly recommended: a snapshot holds every Secret)"
)]
pub struct EncryptArgs {
    /// Encrypt to this age recipient (age1...); repeatable.
    #[arg(long = "recipient", short = 'r', value_name = "AGE1...")]
    pub recipients: Vec<String>,
    /// File of age recipients, one per line; repeatable.
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,
    /// Encrypt to the passphrase on this file's first line (instead of recipients).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl EncryptArgs {
    /// The encryption settings, or `None` (with a loud warning printed).
    pub fn load(&self) -> anyhow::Result<Option<Encrypt>> {
        let e = Encrypt::from_args(
            &self.recipients,
            &self.recipients_file,
            self.passphrase_file.as_deref(),
        )
        .map_err(|e| CodedError::usage(e.to_string()))?;
        if e.is_none() {
            eprintln!(
                "WARNING: this backup is NOT encrypted. An etcd snapshot holds every Secret of the cluster (tokens, keys, passwords) in clear; anyone who can read the destination can read them. Use --recipient age1... (age-keygen) or --passphrase-file FILE."
            );
        }
        Ok(e)
    }
}

#[derive(Serialize)]
struct Output<'a> {
    backup: &'a kubemaint_backup::BackupManifest,
    destination: String,
    retention: &'a [kubemaint_core::retention::Decision],
    deleted: &'a [String],
    retention_dry_run: bool,
}

/// A run's settings, resolved and checked once (a scheduler reuses them for every run).
#[derive(Debug)]
pub struct Prepared {
    /// The destination.
    pub store: Box<dyn Store>,
    /// Compression, encryption, pacing.
    pub opts: EncodeOptions,
    /// How to reach etcd.
    pub config: ConnectionConfig,
    /// The retention policy for this destination.
    pub policy: Policy,
    /// Retention only reports.
    pub dry_run_retention: bool,
}

impl BackupFlags {
    /// Opens the destination, loads the keys and resolves the etcd connection; bad input is
    /// a usage error. Prints the warning when the backups will not be encrypted.
    pub fn prepare(self) -> anyhow::Result<Prepared> {
        let options = StoreOptions {
            part_size: (self.part_size_mib as usize) << 20,
        };
        let store = open_store_with(&self.to, &options)?;
        let encrypt = self.encryption.load()?;
        let config = self.connection.clone().resolve()?;
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
        });
        let policy = self.retention.policy(store.kind());
        Ok(Prepared {
            opts: EncodeOptions {
                level: self.level,
                threads,
                encrypt: encrypt.map(Arc::new),
                max_rate: self.max_rate_kib.map(|k| k * 1024),
            },
            store,
            config,
            policy,
            dry_run_retention: self.dry_run_retention,
        })
    }
}

/// A stored backup and what retention did after it.
#[derive(Debug)]
pub struct Taken {
    /// The backup.
    pub manifest: kubemaint_backup::BackupManifest,
    /// Retention's decisions.
    pub decisions: Vec<Decision>,
    /// The IDs deleted (none on a dry run).
    pub deleted: Vec<String>,
}

/// Why a run did not store a backup, or stored it but retention failed.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// Stopped by a signal before anything was stored; nothing is left behind.
    #[error("interrupted: the run was abandoned; nothing was stored and nothing deleted")]
    Cancelled,
    /// The run failed; nothing was stored and nothing deleted.
    #[error("backup to {location} failed; no backup was stored and retention deleted nothing")]
    Failed {
        /// The destination.
        location: String,
        /// The cause.
        source: anyhow::Error,
    },
    /// The backup was stored, retention failed.
    #[error("backup {id} is stored in {location}, but retention failed")]
    Retention {
        /// The backup.
        id: String,
        /// The destination.
        location: String,
        /// The cause.
        source: anyhow::Error,
    },
}

/// Resolves when `cancel` turns true.
pub async fn cancelled(mut cancel: watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One backup: checks the destination, connects to etcd, streams the snapshot into the store
/// (manifest last), then applies retention. `cancel` turning true abandons the run cleanly
/// (the upload in flight is aborted, no object is listed as a backup).
pub async fn take(p: &Prepared, cancel: watch::Receiver<bool>) -> Result<Taken, TakeError> {
    let location = p.store.location();
    let failed = |source: anyhow::Error| TakeError::Failed {
        location: location.clone(),
        source,
    };
    let setup = async {
        // Fail on a bad destination (unreachable, credentials, bucket) before touching etcd.
        p.store.check().await.with_context(|| {
            format!("the destination {location} is not usable; no backup was taken")
        })?;
        let Selected {
            client,
            status,
            members,
            choice,
        } = client::connect_and_choose(&p.config).await?;
        Ok::<_, anyhow::Error>((client, status, members, choice))
    };
    let (mut client, status, members, choice) = tokio::select! {
        r = setup => r.map_err(failed)?,
        _ = cancelled(cancel.clone()) => return Err(TakeError::Cancelled),
    };
    let member_name = members
        .iter()
        .find(|m| m.id == status.member_id)
        .map(|m| m.name.clone())
        .unwrap_or_default();
    eprintln!(
        "Backing up from {} (member {} {:016x}, etcd {}): {}",
        client.endpoint, member_name, status.member_id, status.version, choice.reason
    );
    let info = SourceInfo {
        cluster_id: format!("{:016x}", status.cluster_id),
        etcd_version: status.version.clone(),
        revision: status.revision,
        source: SourceMember {
            endpoint: client.endpoint.to_string(),
            id: format!("{:016x}", status.member_id),
            name: member_name,
            was_leader: status.leader == status.member_id,
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
    };
    let started = jiff::Timestamp::now();
    let stream = tokio::select! {
        r = client.snapshot() => r.map_err(|e| failed(e.into()))?,
        _ = cancelled(cancel.clone()) => return Err(TakeError::Cancelled),
    };
    let manifest = match write_backup(
        stream,
        info,
        p.store.as_ref(),
        &p.opts,
        started,
        cancelled(cancel),
    )
    .await
    {
        Ok(m) => m,
        Err(RunError::Cancelled) => return Err(TakeError::Cancelled),
        Err(e) => return Err(failed(e.into())),
    };

    let retention = |source: anyhow::Error| TakeError::Retention {
        id: manifest.id.clone(),
        location: location.clone(),
        source,
    };
    let listing = prune::list(p.store.as_ref()).await.map_err(|e| {
        retention(
            anyhow::Error::new(e).context("listing for retention failed; nothing was deleted"),
        )
    })?;
    let decisions = prune::decide(
        &listing,
        &p.policy,
        jiff::Timestamp::now(),
        RunOutcome::Succeeded,
    );
    let deleted = if p.dry_run_retention {
        Vec::new()
    } else {
        prune::apply(p.store.as_ref(), &listing, &decisions)
            .await
            .map_err(|e| {
                retention(
                    anyhow::Error::new(e).context("could not delete everything retention chose"),
                )
            })?
    };
    Ok(Taken {
        manifest,
        decisions,
        deleted,
    })
}

/// Runs `backup run`.
pub async fn run(args: RunArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let p = args.backup.prepare()?;
    let (tx, rx) = watch::channel(false);
    let signals = tokio::spawn(async move {
        crate::commands::shutdown_signal().await;
        let _ = tx.send(true);
    });
    let result = take(&p, rx).await;
    signals.abort();
    let Taken {
        manifest,
        decisions,
        deleted,
    } = match result {
        Ok(t) => t,
        Err(TakeError::Cancelled) => {
            return Err(anyhow::Error::new(TakeError::Cancelled));
        }
        Err(e @ TakeError::Failed { .. }) => {
            eprintln!("The run failed: retention was not applied, nothing was deleted.");
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let policy = &p.policy;
    let out = Output {
        backup: &manifest,
        destination: p.store.location(),
        retention: &decisions,
        deleted: &deleted,
        retention_dry_run: p.dry_run_retention,
    };
    if !print_machine(global.output, &out)? {
        println!("Backup {} stored in {}", manifest.id, p.store.location());
        println!("  object     {}", manifest.object);
        println!(
            "  snapshot   {} ({} bytes), SHA-256 {} (checked against etcd's trailer)",
            human_bytes(manifest.file_size),
            manifest.file_size,
            manifest.sha256
        );
        println!(
            "  stored     {} ({:.1}% of the snapshot), zstd level {}, {}",
            human_bytes(manifest.stored_size),
            manifest.stored_size as f64 * 100.0 / manifest.file_size.max(1) as f64,
            manifest.compression.level,
            match &manifest.encryption {
                Some(e) if e.passphrase => "age-encrypted to a passphrase".to_string(),
                Some(e) => format!("age-encrypted to {} recipient(s)", e.recipients.len()),
                None => "NOT encrypted".to_string(),
            }
        );
        println!(
            "  from       cluster {}, member {} ({}), etcd {}, revision >= {}",
            manifest.cluster_id,
            manifest.source.name,
            manifest.source.endpoint,
            manifest.etcd_version,
            manifest.revision
        );
        println!("  took       {:.2}s", manifest.duration_seconds);
        if policy.is_empty() {
            println!("Retention: no policy given, nothing deleted");
        } else {
            println!(
                "Retention{}:",
                if p.dry_run_retention {
                    " (dry run: nothing deleted)"
                } else {
                    ""
                }
            );
            print_decisions(&decisions, p.dry_run_retention);
        }
    }
    Ok(SUCCESS)
}
