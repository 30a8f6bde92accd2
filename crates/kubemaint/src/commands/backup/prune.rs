//! `kubemaint backup prune --from DEST [retention flags] [--dry-run]`.

use clap::Args;
use kubemaint_core::retention::RunOutcome;
use serde::Serialize;

use super::open_store;
use super::retention::{RetentionArgs, print_decisions};
use crate::exit::{CodedError, SUCCESS};
use crate::global::GlobalArgs;
use crate::output::print_machine;

/// Arguments of `backup prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The destination: a directory or s3://bucket/prefix.
    #[arg(long, value_name = "DEST")]
    pub from: String,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Show what would be deleted and why; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    destination: String,
    dry_run: bool,
    decisions: &'a [kubemaint_core::retention::Decision],
    deleted: &'a [String],
}

/// Runs `backup prune`.
pub async fn run(args: PruneArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let store = open_store(&args.from)?;
    let policy = args.retention.policy(store.kind());
    if policy.is_empty() {
        return Err(CodedError::usage(
            "no retention rule given: use --keep-last/--keep-hourly/--keep-daily/--keep-weekly/--keep-monthly/--max-age",
        ));
    }
    let listing = kubemaint_backup::prune::list(store.as_ref()).await?;
    let decisions = kubemaint_backup::prune::decide(
        &listing,
        &policy,
        jiff::Timestamp::now(),
        RunOutcome::Succeeded,
    );
    let deleted = if args.dry_run {
        Vec::new()
    } else {
        kubemaint_backup::prune::apply(store.as_ref(), &listing, &decisions).await?
    };
    let out = Output {
        destination: store.location(),
        dry_run: args.dry_run,
        decisions: &decisions,
        deleted: &deleted,
    };
    if !print_machine(global.output, &out)? {
        println!(
            "Retention for {}{}:",
            store.location(),
            if args.dry_run {
                " (dry run: nothing deleted)"
            } else {
                ""
            }
        );
        print_decisions(&decisions, args.dry_run);
    }
    Ok(SUCCESS)
}
