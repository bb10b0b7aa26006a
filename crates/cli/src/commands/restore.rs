//! `tideline restore`: rebuild a database from its replica, at the latest state, a TXID
//! or a point in time, with Litestream 0.5.17's flags.
//!
//! Where Litestream's behaviour is unhelpful this command says more, never less:
//!
//! * a `-timestamp` older than every restore point fails with the oldest one that
//!   exists, instead of "timestamp does not exist"; a `-timestamp` newer than every file
//!   restores the latest state before it (Litestream refuses it);
//! * a replica with no files at all is reported as such, with what to check;
//! * an existing output or a leftover `-wal`/`-shm`/`-journal` is refused, naming the
//!   file, unless `-force`. Either way the new database is written and checked
//!   (`-integrity-check`) beside the output before anything there is touched; the
//!   engine's [`output`](tideline_engine::output) module owns that policy and
//!   its order.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tideline_engine::FileInfo;
use tideline_engine::{
    IntegrityCheck, Overwrite, PlanError, RestoreOptions, Restored, Target, check_output,
    list_levels_for, plan, restore_plan_to,
};
use tideline_ltx::Txid;
use tracing::info;

use super::{file_json, print_json, table};
use crate::config::ConfigArgs;
use crate::source::resolve;
use crate::time::{format_rfc3339, parse_rfc3339};

/// `restore` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output path [default: the database path, when DB_PATH is given]
    #[arg(short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Restore up to this TXID, inclusive (16 hex digits; must end some LTX file)
    #[arg(long, value_name = "HEX16", value_parser = parse_txid, conflicts_with = "timestamp")]
    pub txid: Option<Txid>,
    /// Restore the newest state whose files were all created before this time
    /// (RFC 3339, e.g. 2026-01-02T15:04:05Z)
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub timestamp: Option<SystemTime>,
    /// Do nothing (exit 0) if the output already exists
    #[arg(long)]
    pub if_db_not_exists: bool,
    /// Do nothing (exit 0) if the replica has no matching backup
    #[arg(long)]
    pub if_replica_exists: bool,
    /// Print the files a restore would use, and restore nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite an existing output and remove its -wal, -shm and -journal files
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary (or, with -dry-run, the plan as JSON)
    #[arg(long)]
    pub json: bool,
    /// Check the restored database with SQLite before it replaces anything; on
    /// failure the output is left as it was
    #[arg(long, value_enum, default_value_t = Check::None, value_name = "MODE")]
    pub integrity_check: Check,
    /// Accepted for compatibility; LTX restores stream all their files at once
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub parallelism: usize,
    /// Follow mode (keep applying new files); not supported yet
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Poll interval of follow mode; not supported yet
    #[arg(long, value_name = "DURATION")]
    pub follow_interval: Option<String>,
    /// A database path from the config, or a replica URL (file:///…, s3://…; needs -o)
    #[arg(value_name = "DB_PATH|REPLICA_URL")]
    pub target: String,
}

/// `-integrity-check` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Check {
    /// No check.
    None,
    /// PRAGMA quick_check.
    Quick,
    /// PRAGMA integrity_check.
    Full,
}

impl Check {
    fn engine(self) -> IntegrityCheck {
        match self {
            Check::None => IntegrityCheck::None,
            Check::Quick => IntegrityCheck::Quick,
            Check::Full => IntegrityCheck::Full,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Check::None => "none",
            Check::Quick => "quick",
            Check::Full => "full",
        }
    }
}

fn parse_txid(s: &str) -> Result<Txid, String> {
    s.parse::<Txid>().map_err(|e| e.to_string())
}

/// Runs a restore.
pub async fn run(args: &Args) -> Result<()> {
    if args.follow || args.follow_interval.is_some() {
        bail!(
            "follow mode (-f, -follow-interval) is not supported by Tideline yet; restore \
             without it, and run the restore again (with -force) to catch up"
        );
    }
    let source = resolve(&args.target, &args.config)?;
    let out = source.output(args.output.clone())?;
    if args.if_db_not_exists && out.exists() {
        info!(
            "{} already exists, nothing restored (-if-db-not-exists)",
            out.display()
        );
        return Ok(());
    }
    let target = match (args.txid, args.timestamp) {
        (Some(txid), _) => Target::Txid(txid),
        (None, Some(t)) => Target::Time(t),
        (None, None) => Target::Latest,
    };

    let levels = list_levels_for(source.client.as_ref(), target)
        .await
        .with_context(|| format!("cannot list {}", source.replica))?;
    let files = match plan(&levels, target) {
        Ok(files) => files,
        Err(e) if e.is_nothing_to_restore() && args.if_replica_exists => {
            info!(
                "no matching backup in {}, nothing restored (-if-replica-exists)",
                source.replica
            );
            return Ok(());
        }
        Err(e) => return Err(explain(e, &source.replica)),
    };
    if args.dry_run {
        print_plan(&files, &out, &source.replica, args.json);
        return Ok(());
    }

    let overwrite = if args.force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    check_output(&out, overwrite)?;
    let stale: Vec<PathBuf> = tideline_engine::sidecars(&out)
        .into_iter()
        .filter(|s| s.exists())
        .collect();
    let started = Instant::now();
    let opts = RestoreOptions::new(overwrite, args.integrity_check.engine());
    let restored = restore_plan_to(source.client.clone(), files, &out, opts)
        .await
        .with_context(|| format!("cannot restore {} from {}", out.display(), source.replica))?;
    for sidecar in stale {
        info!("removed {} (-force)", sidecar.display());
    }
    print_restored(args, &out, &source.replica, &restored, started.elapsed());
    Ok(())
}

/// What was restored, as JSON (`-json`) or a log line.
fn print_restored(
    args: &Args,
    out: &Path,
    replica: &str,
    restored: &Restored,
    elapsed: std::time::Duration,
) {
    if args.json {
        print_json(&json!({
            "db_path": out.display().to_string(),
            "replica": replica,
            "txid": restored.txid.to_string(),
            "size": restored.bytes,
            "duration_ms": elapsed.as_millis() as u64,
            "integrity_check": args.integrity_check.name(),
        }));
    } else {
        info!(
            "restored {} at TXID {} from {replica} ({} pages, {} bytes) in {} ms",
            out.display(),
            restored.txid,
            restored.pages,
            restored.bytes,
            elapsed.as_millis()
        );
    }
}

/// A planning failure with what the command line can add: the replica's name, and
/// the flag that makes an empty replica fine.
fn explain(err: PlanError, replica: &str) -> anyhow::Error {
    match err {
        PlanError::NoBackup => anyhow!(
            "{replica}: {err}; pass -if-replica-exists to succeed when there is none (or run \
             `tideline replicate` first)"
        ),
        err => anyhow::Error::new(err).context(format!("cannot restore from {replica}")),
    }
}

fn print_plan(files: &[FileInfo], out: &Path, replica: &str, as_json: bool) {
    let txid = files.last().map(|f| f.max_txid.to_string());
    let size: u64 = files.iter().map(|f| f.size).sum();
    if as_json {
        print_json(&json!({
            "db_path": out.display().to_string(),
            "replica": replica,
            "txid": txid,
            "size": size,
            "files": files.iter().map(file_json).collect::<Vec<Value>>(),
        }));
        return;
    }
    println!(
        "restore {} from {replica} to TXID {} using {} file(s), {size} bytes:",
        out.display(),
        txid.unwrap_or_default(),
        files.len(),
    );
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            vec![
                f.level.to_string(),
                f.filename(),
                f.min_txid.to_string(),
                f.max_txid.to_string(),
                f.size.to_string(),
                format_rfc3339(f.created_at),
            ]
        })
        .collect();
    let headers = [
        "level", "filename", "min_txid", "max_txid", "size", "created",
    ];
    print!("{}", table(&headers, &rows));
}
