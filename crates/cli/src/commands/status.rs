//! `tideline status`: for each database in the config, without contacting a running
//! replicator — the local position (the newest L0 file in the meta directory, which is
//! what replication resumes from), WAL and database sizes, the replica's newest TXID,
//! whether the replica is behind, and the requests the replicator made to the replica
//! since it started (S3; from the report it keeps in the meta directory).
//!
//! One database's problem (missing file, unreadable replica) is shown in its row and
//! does not hide the others.

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};
use tideline_engine::capture::wal_path;
use tideline_engine::config::DbConfig;
use tideline_engine::replicate::{RequestReport, destination_problem, read_request_report};
use tideline_engine::restore::list_levels;
use tideline_engine::storage::open_client;
use tideline_ltx::Txid;

use super::{human_bytes, print_json, table};
use crate::config::{ConfigArgs, find_db};
use crate::source::load_config;

/// `status` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Only this database (a path from the config)
    #[arg(value_name = "DB_PATH")]
    pub db: Option<String>,
}

/// One database's status.
#[derive(Debug)]
struct Status {
    path: String,
    replica: Option<String>,
    db_size: Option<u64>,
    wal_size: u64,
    local: Option<Txid>,
    remote: Option<Txid>,
    requests: Option<RequestReport>,
    error: Option<String>,
}

impl Status {
    /// Whether changes captured locally have not reached the replica.
    fn behind(&self) -> bool {
        self.error.is_none()
            && self
                .local
                .is_some_and(|l| self.remote.is_none_or(|r| r < l))
    }

    /// One word (or a few) for the table.
    fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("error: {e}");
        }
        if self.db_size.is_none() {
            return "database missing".into();
        }
        match (self.local, self.remote) {
            (None, None) => "not replicated yet".into(),
            (None, Some(_)) => "no local position (next start continues the replica)".into(),
            _ if self.behind() => "replica behind".into(),
            (Some(l), Some(r)) if r > l => "replica ahead".into(),
            _ => "in sync".into(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "replica": self.replica,
            "status": self.summary(),
            "local_txid": self.local.map(|t| t.to_string()),
            "replica_txid": self.remote.map(|t| t.to_string()),
            "behind": self.behind(),
            "db_size": self.db_size,
            "wal_size": self.wal_size,
            "requests": self.requests,
            "error": self.error,
        })
    }

    fn row(&self) -> Vec<String> {
        let txid = |t: Option<Txid>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
        vec![
            self.path.clone(),
            self.summary(),
            txid(self.local),
            txid(self.remote),
            self.db_size.map_or_else(|| "-".to_owned(), human_bytes),
            human_bytes(self.wal_size),
            self.requests.as_ref().map_or_else(
                || "-".to_owned(),
                |r| {
                    let c = &r.counts;
                    format!(
                        "{} since {} ({} put, {} get, {} list, {} delete; {} up, {} down)",
                        c.total(),
                        r.since,
                        c.put + c.multipart,
                        c.get + c.head,
                        c.list,
                        c.delete,
                        human_bytes(c.bytes_up),
                        human_bytes(c.bytes_down)
                    )
                },
            ),
        ]
    }
}

/// Prints the status of the configured databases.
pub async fn run(args: &Args) -> Result<()> {
    let config = load_config(&args.config)?;
    let dbs: Vec<&DbConfig> = match &args.db {
        Some(arg) => vec![find_db(&config, arg)?],
        None => config.dbs.iter().collect(),
    };
    let mut statuses = Vec::with_capacity(dbs.len());
    for db in dbs {
        statuses.push(status(db).await);
    }
    if args.json {
        print_json(&Value::Array(
            statuses.iter().map(Status::to_json).collect(),
        ));
    } else {
        let rows: Vec<Vec<String>> = statuses.iter().map(Status::row).collect();
        let headers = [
            "database",
            "status",
            "local_txid",
            "replica_txid",
            "db_size",
            "wal_size",
            "requests",
        ];
        print!("{}", table(&headers, &rows));
    }
    Ok(())
}

async fn status(db: &DbConfig) -> Status {
    let mut s = Status {
        path: db.path.display().to_string(),
        replica: db.replica.as_ref().map(|r| r.target.to_string()),
        db_size: std::fs::metadata(&db.path).ok().map(|m| m.len()),
        wal_size: std::fs::metadata(wal_path(&db.path)).map_or(0, |m| m.len()),
        local: None,
        remote: None,
        requests: read_request_report(&db.meta_path),
        error: None,
    };
    match local_txid(&db.meta_path.join("ltx").join("0")) {
        Ok(t) => s.local = t,
        Err(e) => s.error = Some(e),
    }
    let remote = async {
        let replica = db.require_replica().map_err(|e| e.to_string())?;
        let client = open_client(replica).map_err(|e| e.to_string())?;
        let levels = list_levels(client.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(problem) = destination_problem(&db.meta_path, &client.describe(), &levels) {
            return Err(problem.to_string());
        }
        Ok::<_, String>(levels.iter().flatten().map(|f| f.max_txid).max())
    };
    match remote.await {
        Ok(t) => s.remote = t,
        Err(e) => {
            s.error.get_or_insert(e);
        }
    }
    s
}

/// The position: the newest L0 file in the meta directory.
fn local_txid(l0_dir: &Path) -> Result<Option<Txid>, String> {
    tideline_engine::capture::list_l0(l0_dir)
        .map(|files| files.last().map(|(txid, _)| *txid))
        .map_err(|e| e.to_string())
}
