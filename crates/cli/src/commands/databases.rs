//! `tideline databases`: the databases a config file lists, and where each one is
//! replicated. Replicas are shown by their `Display`, which never includes credentials.

use anyhow::Result;
use serde_json::json;

use super::{print_json, table};
use crate::config::ConfigArgs;
use crate::source::load_config;

/// `databases` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Lists the configured databases.
pub fn run(args: &Args) -> Result<()> {
    let config = load_config(&args.config)?;
    // `dir:` entries stand for the databases in their folders now.
    let listed = tideline_engine::databases_of(&config)?;
    if args.json {
        let dbs: Vec<_> = listed
            .iter()
            .map(|db| {
                json!({
                    "path": db.path.display().to_string(),
                    "meta_path": db.meta_path.display().to_string(),
                    "replica": db.replica.as_ref().map(|r| r.target.to_string()),
                    "replica_type": db.replica.as_ref().map(|r| r.target.kind()),
                })
            })
            .collect();
        print_json(&json!(dbs));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|db| {
            let replica = db
                .replica
                .as_ref()
                .map_or_else(|| "(none)".to_owned(), |r| r.target.to_string());
            vec![db.path.display().to_string(), replica]
        })
        .collect();
    print!("{}", table(&["path", "replica"], &rows));
    Ok(())
}
