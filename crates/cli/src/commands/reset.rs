//! `tideline reset`: drops a database's local replication state (its local LTX files),
//! like `litestream reset`, for recovering from damaged or missing local files. The
//! database and the replica are not touched; the next replication writes a fresh
//! snapshot of the database.

use anyhow::{Context, Result};
use tideline_engine::config::DbConfig;
use tideline_engine::{Reset, reset_local_state};

use crate::config::{ConfigArgs, absolute, find_db};
use crate::source::load_config;

/// `reset` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the local LTX files that would be removed without deleting them
    #[arg(long)]
    pub dry_run: bool,
    /// The database whose local state to reset
    #[arg(value_name = "DB_PATH")]
    pub db: String,
}

/// Resets the local state. As in Litestream, the config file is read only when
/// `-config` names one (for the database's `meta-path`); otherwise the meta directory
/// is the default one beside the database.
pub fn run(args: &Args) -> Result<()> {
    let db = if args.config.config.is_some() {
        find_db(&load_config(&args.config)?, &args.db)?
    } else {
        crate::logging::init(None, None);
        DbConfig::new(absolute(&args.db)?)
    };
    let reset = reset_local_state(&db.path, &db.meta_path, args.dry_run)
        .with_context(|| format!("cannot reset {}", db.path.display()))?;
    let state = match reset {
        Reset::NoState { meta_dir } => {
            println!("No local state to reset for {}", db.path.display());
            println!("Meta directory does not exist: {}", meta_dir.display());
            return Ok(());
        }
        Reset::Removed(state) => state,
    };
    if args.dry_run {
        println!(
            "Dry run: local state would be reset for: {}",
            db.path.display()
        );
        println!("Would remove: {}", state.ltx_dir.display());
        if state.files.is_empty() {
            println!("No local LTX files would be removed.");
            return Ok(());
        }
        println!("Files that would be removed:");
        for f in &state.files {
            println!("  {}", f.display());
        }
        println!("No files were removed.");
        return Ok(());
    }
    println!("Resetting local state for: {}", db.path.display());
    println!(
        "Removed: {} ({} files)",
        state.ltx_dir.display(),
        state.files.len()
    );
    println!("Reset complete. Next replication sync will create a fresh snapshot.");
    Ok(())
}
