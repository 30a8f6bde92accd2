//! `kubemaint etcd snapshot restore`: a data dir that etcd 3.4/3.5 boots from, written natively
//! (no etcdutl), safely by default for Kubernetes.

use std::path::PathBuf;

use clap::Args;
use kubemaint_etcd::restore::{
    RestoreError, RestoreOptions, RestoreReport, RevisionFlags, restore,
};

use crate::exit::{CodedError, SUCCESS, USAGE};
use crate::global::GlobalArgs;
use crate::output::print_machine;

/// Arguments of `etcd snapshot restore` (etcdutl's flags, plus Kubernetes defaults and --dry-run).
#[derive(Debug, Args)]
#[command(after_help = crate::exit::SNAPSHOT_EXIT_CODES)]
pub struct RestoreArgs {
    /// The snapshot file (or a raw member/snap/db copy with --skip-hash-check), or a backup ID
    /// with --from.
    #[arg(value_name = "FILE|ID")]
    pub file: PathBuf,
    /// Restore backup ID from this destination (a directory or s3://bucket/prefix): it is
    /// fetched, decrypted, decompressed and verified first, next to the data dir.
    #[arg(long, value_name = "DEST")]
    pub from: Option<String>,
    #[command(flatten)]
    pub keys: crate::commands::backup::KeyArgs,
    /// Directory to create; must not exist or be empty (default: <name>.etcd).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Separate WAL directory; must not exist (default: <data-dir>/member/wal).
    #[arg(long, value_name = "DIR")]
    pub wal_dir: Option<PathBuf>,
    /// This member's name; must appear in --initial-cluster.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// All members, name=peer-url[,name=peer-url...] (default: <name>=http://localhost:2380).
    /// Use the same value for every member restored from the same snapshot.
    #[arg(long, value_name = "NAME=URL,...")]
    pub initial_cluster: Option<String>,
    /// Cluster token mixed into member IDs; same for every member.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// This member's peer URLs; must equal its --initial-cluster entry (default: http://localhost:2380).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Accept a file without a SHA-256 trailer, or skip checking it (a raw member/snap/db copy).
    #[arg(long)]
    pub skip_hash_check: bool,
    /// Add this much to the latest revision (requires --mark-compacted), as etcdutl ≥ 3.5.10.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub bump_revision: u64,
    /// Mark the bumped revision compacted so watches from older revisions fail and clients relist.
    #[arg(long)]
    pub mark_compacted: bool,
    /// Kubernetes defaults even without /registry/ keys: bump by max(1e9, latest revision), mark compacted.
    #[arg(long, conflicts_with = "no_kubernetes_defaults")]
    pub for_kubernetes: bool,
    /// Keep revisions as they are even when the snapshot holds /registry/ keys (etcdutl's behaviour).
    #[arg(long)]
    pub no_kubernetes_defaults: bool,
    /// Read and check everything, print what would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberOut {
    name: String,
    id: String,
    peer_urls: Vec<String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Output {
    dry_run: bool,
    data_dir: String,
    wal_dir: String,
    files: Vec<String>,
    name: String,
    member_id: String,
    cluster_id: String,
    members: Vec<MemberOut>,
    hash_verified: bool,
    snapshot_revision: u64,
    kubernetes_keys: bool,
    bump_revision: u64,
    compacted_revision: Option<u64>,
    restored_revision: u64,
    db_bytes: u64,
    source_db_bytes: u64,
    keys: u64,
    elapsed_seconds: f64,
    /// Staging dirs of interrupted restores removed first (or, dry run, to be removed).
    leftovers_removed: Vec<String>,
}

fn output(r: &RestoreReport) -> Output {
    let m = &r.membership;
    let bump = r.bump.unwrap_or(0);
    let restored = r.key_facts.latest_revision + bump;
    Output {
        dry_run: r.dry_run,
        data_dir: r.layout.data_dir.display().to_string(),
        wal_dir: r.layout.wal_dir.display().to_string(),
        files: r.files.iter().map(|p| p.display().to_string()).collect(),
        name: m.local_member().name.clone(),
        member_id: format!("{:x}", m.local_member().id),
        cluster_id: format!("{:x}", m.cluster_id),
        members: m
            .members
            .iter()
            .map(|x| MemberOut {
                name: x.name.clone(),
                id: format!("{:x}", x.id),
                peer_urls: x.peer_urls.clone(),
            })
            .collect(),
        hash_verified: r.hash_verified,
        snapshot_revision: r.key_facts.latest_revision,
        kubernetes_keys: r.key_facts.has_kubernetes_keys,
        bump_revision: bump,
        compacted_revision: r.bump.map(|_| restored),
        restored_revision: restored,
        db_bytes: r.db.file_size,
        source_db_bytes: r.source_size,
        keys: r.db.keys,
        elapsed_seconds: r.elapsed.as_secs_f64(),
        leftovers_removed: r
            .leftovers
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    }
}

/// Runs `etcd snapshot restore`, fetching a backup first when `--from` is given.
pub async fn run_any(mut args: RestoreArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let Some(from) = args.from.take() else {
        return run(args, global);
    };
    let id = args.file.to_string_lossy().into_owned();
    crate::commands::backup::check_id(&id)?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{id}.etcd")));
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The fetched snapshot sits beside the data dir (same file system, same permissions) and is
    // removed afterwards.
    let fetched = parent.join(format!(".{id}.fetched.db"));
    let _ = std::fs::remove_file(&fetched);
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = Remove(fetched.clone());
    eprintln!("Fetching backup {id} from {from}...");
    crate::commands::backup::fetch::fetch_to(&id, &from, &args.keys, &fetched).await?;
    args.data_dir = Some(data_dir);
    args.file = fetched;
    run(args, global)
}

/// Runs `etcd snapshot restore` on a snapshot file.
pub fn run(args: RestoreArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    super::open_snapshot_path(&args.file)?;
    let opts = RestoreOptions {
        snapshot: args.file.clone(),
        data_dir: args.data_dir,
        wal_dir: args.wal_dir,
        name: args.name,
        initial_cluster: args.initial_cluster,
        initial_cluster_token: args.initial_cluster_token,
        initial_advertise_peer_urls: args.initial_advertise_peer_urls,
        skip_hash_check: args.skip_hash_check,
        revision: RevisionFlags {
            bump_revision: args.bump_revision,
            mark_compacted: args.mark_compacted,
            for_kubernetes: args.for_kubernetes,
            no_kubernetes_defaults: args.no_kubernetes_defaults,
        },
        dry_run: args.dry_run,
    };
    if opts.skip_hash_check {
        eprintln!(
            "warning: --skip-hash-check: the snapshot's SHA-256 is not checked; a corrupt file may restore silently wrong data"
        );
    }
    let report = restore(&opts).map_err(|e| match e {
        // Bad flags or an occupied target: bad usage, nothing was written.
        RestoreError::Plan(_)
        | RestoreError::DataDirNotEmpty(_)
        | RestoreError::WalDirExists(_) => CodedError::wrap(USAGE, e),
        // A damaged snapshot (MissingHash, HashMismatch, Source, Unsupported) or a failed write:
        // exit 1, as `verify` and `status` do for a damaged file.
        other => anyhow::Error::new(other).context("restore failed; the target was not created"),
    })?;
    let out = output(&report);
    for dir in &out.leftovers_removed {
        eprintln!(
            "{} the staging dir of an interrupted restore (its process is gone): {dir}",
            if out.dry_run {
                "would remove"
            } else {
                "removed"
            }
        );
    }
    if !print_machine(global.output, &out)? {
        let verb = if out.dry_run {
            "would restore"
        } else {
            "restored"
        };
        println!(
            "{verb} {} into {} (member {} {}, cluster {})",
            args.file.display(),
            out.data_dir,
            out.name,
            out.member_id,
            out.cluster_id
        );
        for f in &out.files {
            println!("  {f}");
        }
        println!("  members:");
        for m in &out.members {
            println!("    {} {} {}", m.id, m.name, m.peer_urls.join(","));
        }
        println!(
            "  entries: {}  db: {} bytes (snapshot image {} bytes)  SHA-256: {}",
            if out.dry_run {
                "-".to_string()
            } else {
                out.keys.to_string()
            },
            out.db_bytes,
            out.source_db_bytes,
            if out.hash_verified {
                "verified"
            } else {
                "NOT checked"
            }
        );
        match out.compacted_revision {
            Some(c) => println!(
                "  revision: {} in the snapshot, bumped by {} to {} and marked compacted{}",
                out.snapshot_revision,
                out.bump_revision,
                c,
                if out.kubernetes_keys {
                    " (Kubernetes data: watch caches and informers will relist)"
                } else {
                    ""
                }
            ),
            None => println!(
                "  revision: {} (unchanged){}",
                out.snapshot_revision,
                if out.kubernetes_keys {
                    "; WARNING: Kubernetes data restored without a bump: clients may keep stale watch caches"
                } else {
                    ""
                }
            ),
        }
        if out.members.len() > 1 && !out.dry_run {
            println!(
                "  restore every other member from the same file with the same --initial-cluster and --initial-cluster-token, then start all members"
            );
        }
        if out.kubernetes_keys && !out.dry_run {
            println!(
                "  next: point etcd's --data-dir at {} with all kube-apiservers stopped, start etcd, then the API servers; restart scheduler, controller-manager and kubelets",
                out.data_dir
            );
        }
    }
    Ok(SUCCESS)
}
