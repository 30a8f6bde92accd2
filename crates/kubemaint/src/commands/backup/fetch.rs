//! `kubemaint backup fetch ID --from DEST --to FILE`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{KeyArgs, check_id, human_bytes, open_store};
use crate::exit::{CodedError, SUCCESS};
use crate::global::GlobalArgs;
use crate::output::print_machine;

/// Arguments of `backup fetch`.
#[derive(Debug, Args)]
#[command(
    after_help = "The result is byte for byte the snapshot etcdctl would have saved (database +
SHA-256 trailer); every hash is checked and nothing is left at FILE on failure. A wrong key and
a corrupted object are told apart and named."
)]
pub struct FetchArgs {
    /// The backup ID (see `backup list`).
    #[arg(value_name = "ID")]
    pub id: String,
    /// The destination holding it: a directory or s3://bucket/prefix.
    #[arg(long, value_name = "DEST")]
    pub from: String,
    /// The snapshot file to write (FILE.part first, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Fetches a backup to a file; shared with `etcd snapshot restore ID --from DEST`.
pub async fn fetch_to(
    id: &str,
    from: &str,
    keys: &KeyArgs,
    to: &std::path::Path,
) -> anyhow::Result<kubemaint_backup::run::Fetched> {
    check_id(id)?;
    let store = open_store(from)?;
    let keys = Arc::new(keys.load()?);
    kubemaint_backup::run::fetch(store.as_ref(), id, keys, to)
        .await
        .map_err(|e| {
            use kubemaint_backup::pipeline::PipelineError as P;
            use kubemaint_backup::run::RunError as R;
            match e {
                R::Pipeline(P::NeedKey { .. } | P::WrongKey { .. }) => {
                    CodedError::usage(e.to_string())
                }
                other => anyhow::Error::new(other).context(format!(
                    "fetching {id} from {from} failed; nothing was written"
                )),
            }
        })
}

/// Runs `backup fetch`.
pub async fn run(args: FetchArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    if args.to.is_dir() {
        return Err(CodedError::usage(format!(
            "{} is a directory: give the snapshot's file name",
            args.to.display()
        )));
    }
    let fetched = fetch_to(&args.id, &args.from, &args.keys, &args.to).await?;
    if !print_machine(global.output, &fetched.manifest)? {
        println!(
            "Fetched {} to {} ({}, SHA-256 {} verified)",
            args.id,
            fetched.path.display(),
            human_bytes(fetched.streamed.file_size),
            fetched.manifest.sha256
        );
        println!(
            "  restore with: kubemaint etcd snapshot restore {} --data-dir DIR",
            fetched.path.display()
        );
    }
    Ok(SUCCESS)
}
