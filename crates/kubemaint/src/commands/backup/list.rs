//! `kubemaint backup list --from DEST`.

use clap::Args;
use serde::Serialize;

use super::{human_bytes, open_store};
use crate::exit::SUCCESS;
use crate::global::GlobalArgs;
use crate::output::print_machine;

/// Arguments of `backup list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The destination: a directory or s3://bucket/prefix.
    #[arg(long, value_name = "DEST")]
    pub from: String,
}

#[derive(Serialize)]
struct Stray {
    name: String,
    size: u64,
}

#[derive(Serialize)]
struct Output<'a> {
    destination: String,
    backups: &'a [kubemaint_backup::BackupManifest],
    /// Objects belonging to no complete backup (interrupted uploads); never deleted automatically.
    stray: Vec<Stray>,
    unreadable: Vec<(String, String)>,
}

/// Runs `backup list`.
pub async fn run(args: ListArgs, global: &GlobalArgs) -> anyhow::Result<i32> {
    let store = open_store(&args.from)?;
    let listing = kubemaint_backup::prune::list(store.as_ref()).await?;
    let out = Output {
        destination: store.location(),
        backups: &listing.backups,
        stray: listing
            .stray
            .iter()
            .map(|o| Stray {
                name: o.name.clone(),
                size: o.size,
            })
            .collect(),
        unreadable: listing.unreadable.clone(),
    };
    if print_machine(global.output, &out)? {
        return Ok(SUCCESS);
    }
    if listing.backups.is_empty() {
        println!("No backups in {}", store.location());
    } else {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header([
            "ID",
            "CREATED",
            "REVISION",
            "SIZE",
            "STORED",
            "CLUSTER",
            "ETCD",
            "VERIFIED",
            "ENCRYPTED",
        ]);
        for m in &listing.backups {
            table.add_row([
                m.id.clone(),
                m.created.clone(),
                format!(">={}", m.revision),
                human_bytes(m.file_size),
                human_bytes(m.stored_size),
                m.cluster_id.clone(),
                m.etcd_version.clone(),
                if m.verified { "yes" } else { "no" }.to_string(),
                match &m.encryption {
                    Some(e) if e.passphrase => "passphrase".to_string(),
                    Some(e) => format!("{} recipient(s)", e.recipients.len()),
                    None => "NO".to_string(),
                },
            ]);
        }
        println!("{table}");
    }
    for s in &listing.stray {
        eprintln!(
            "note: {} ({}) belongs to no complete backup (an interrupted upload?); delete it by hand if unwanted",
            s.name,
            human_bytes(s.size)
        );
    }
    for (id, why) in &listing.unreadable {
        eprintln!("warning: {id}: {why}");
    }
    Ok(SUCCESS)
}
