//! `kubemaint etcd snapshot verify`: SHA-256 trailer and full bbolt/etcd structure; the first fault
//! is named with its file offset and page. Exit codes as [`crate::exit::SNAPSHOT_EXIT_CODES`]:
//! 0 valid, 1 damaged, 2 the file cannot be opened.

use anyhow::Context;
use clap::Args;
use kubemaint_etcd::snapshot::{StatusOptions, TrailerCheck, verify};

use crate::exit::{FAILURE, SUCCESS};
use crate::global::GlobalArgs;
use crate::output::print_machine;

/// Arguments of `etcd snapshot verify`.
#[derive(Debug, Args)]
#[command(after_help = crate::exit::SNAPSHOT_EXIT_CODES)]
pub struct VerifyArgs {
    /// The snapshot file.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Accept a file without SHA-256 trailer (a raw `member/snap/db` copy), checking structure only
    /// (etcdutl's `--skip-hash-check`).
    #[arg(long)]
    pub skip_hash_check: bool,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    file: String,
    valid: bool,
    #[serde(flatten)]
    report: &'a kubemaint_etcd::snapshot::VerifyReport,
}

/// Runs `etcd snapshot verify`.
pub fn run(args: VerifyArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    super::open_snapshot_path(&args.file)?;
    let report = verify(&args.file, &StatusOptions::default())
        .with_context(|| format!("cannot check {}", args.file.display()))?;
    let valid = report.is_valid(args.skip_hash_check);
    let out = Output {
        file: args.file.display().to_string(),
        valid,
        report: &report,
    };
    if !print_machine(global.output, &out)? {
        let name = args.file.display();
        println!("{name}: {}", if valid { "valid" } else { "INVALID" });
        match &report.trailer {
            TrailerCheck::Valid { sha256 } => println!("  SHA-256 trailer: ok ({sha256})"),
            TrailerCheck::Mismatch { expected, actual } => println!(
                "  SHA-256 trailer: MISMATCH: the trailer says {expected}, the content hashes to {actual}; the file is corrupt"
            ),
            TrailerCheck::Missing => println!(
                "  SHA-256 trailer: missing (size is not 32 mod 512): a raw member/snap/db copy or a truncated snapshot{}",
                if args.skip_hash_check {
                    "; accepted because of --skip-hash-check"
                } else {
                    "; pass --skip-hash-check to accept a raw member/snap/db"
                }
            ),
        }
        match (&report.fault, &report.status) {
            (Some(f), _) => {
                let mut at = Vec::new();
                if let Some(p) = f.page {
                    at.push(format!("page {p}"));
                }
                if let Some(o) = f.offset {
                    at.push(format!("offset {o}"));
                }
                let at = if at.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", at.join(", "))
                };
                println!("  structure: first fault{at}: {}", f.message);
            }
            (None, Some(s)) => println!(
                "  structure: ok ({} pages of {} B, {} free; revision {}, {} live keys, compacted at {})",
                s.used_pages + s.free_pages,
                s.page_size,
                s.free_pages,
                s.revision,
                s.live_keys,
                s.compact_revision
            ),
            (None, None) => {}
        }
        for w in &report.warnings {
            println!("  warning: {w}");
        }
        if !valid && report.fault.is_none() && report.trailer == TrailerCheck::Missing {
            println!(
                "  next: if this is a copy of a stopped member's member/snap/db, re-run with --skip-hash-check; a snapshot file without trailer was cut short"
            );
        } else if !valid {
            println!(
                "  next: do not restore from this file; take a new snapshot (`kubemaint etcd snapshot save`) or use another backup"
            );
        }
    }
    Ok(if valid { SUCCESS } else { FAILURE })
}
