//! `kubemaint backup run --to DEST`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use kubemaint_backup::crypto::Encrypt;
use kubemaint_backup::pipeline::EncodeOptions;
use kubemaint_backup::prune;
use kubemaint_backup::run::{SourceInfo, write_backup};
use kubemaint_core::retention::RunOutcome;
use kubemaint_etcd::client::{self, Selected};
use kubemaint_etcd::save::manifest::{ManifestMember, SourceMember};
use serde::Serialize;

use super::retention::{RetentionArgs, print_decisions};
use super::{human_bytes, open_store};
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
Retention runs only after a successful backup; a failed run deletes nothing.")]
pub struct RunArgs {
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

/// Runs `backup run`.
pub async fn run(args: RunArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let store = open_store(&args.to)?;
    let encrypt = args.encryption.load()?;
    let config = args.connection.clone().resolve()?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    // Fail on a bad destination (unreachable, credentials, bucket) before touching etcd.
    store.check().await.with_context(|| {
        format!(
            "the destination {} is not usable; no backup was taken",
            store.location()
        )
    })?;
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
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
    });
    let opts = EncodeOptions {
        level: args.level,
        threads,
        encrypt: encrypt.map(Arc::new),
    };
    let started = jiff::Timestamp::now();
    let stream = client.snapshot().await?;
    let manifest = match write_backup(
        stream,
        info,
        store.as_ref(),
        &opts,
        started,
        crate::commands::shutdown_signal(),
    )
    .await
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("The run failed: retention was not applied, nothing was deleted.");
            return Err(anyhow::Error::new(e).context(format!(
                "backup to {} failed; no backup was stored",
                store.location()
            )));
        }
    };

    let policy = args.retention.policy(store.kind());
    let listing = prune::list(store.as_ref()).await.with_context(|| {
        format!(
            "backup {} is stored, but listing {} for retention failed; nothing was deleted",
            manifest.id,
            store.location()
        )
    })?;
    let decisions = prune::decide(
        &listing,
        &policy,
        jiff::Timestamp::now(),
        RunOutcome::Succeeded,
    );
    let deleted = if args.dry_run_retention {
        Vec::new()
    } else {
        prune::apply(store.as_ref(), &listing, &decisions)
            .await
            .with_context(|| {
                format!(
                    "backup {} is stored, but retention could not delete everything it chose",
                    manifest.id
                )
            })?
    };
    let out = Output {
        backup: &manifest,
        destination: store.location(),
        retention: &decisions,
        deleted: &deleted,
        retention_dry_run: args.dry_run_retention,
    };
    if !print_machine(global.output, &out)? {
        println!("Backup {} stored in {}", manifest.id, store.location());
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
                if args.dry_run_retention {
                    " (dry run: nothing deleted)"
                } else {
                    ""
                }
            );
            print_decisions(&decisions, args.dry_run_retention);
        }
    }
    Ok(SUCCESS)
}
