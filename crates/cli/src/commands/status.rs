//! `tideline status`: for each database in the config, without contacting a running
//! replicator — the local position (the newest L0 file in the meta directory, which is
//! what replication resumes from), WAL and database sizes, the replica's newest TXID,
//! whether the replica is behind, and the requests the replicator made to the replica
//! since it started (S3; from the report it keeps in the meta directory).
//!
//! One database's problem (missing file, unreadable replica) is shown in its row and
//! does not hide the others. Gaps and overlaps in a replica's levels (the check of
//! `validation:`) are listed under the table.

use anyhow::Result;
use serde_json::{Value, json};
use tideline_engine::DatabaseReport;
use tideline_engine::config::DbConfig;
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

/// How `status` shows one database's [`DatabaseReport`].
trait Show {
    fn to_json(&self) -> Value;
    fn row(&self) -> Vec<String>;
    fn summary_text(&self) -> String;
}

impl Show for DatabaseReport {
    fn summary_text(&self) -> String {
        match &self.error {
            Some(e) => format!("error: {}", e.message),
            None => self.summary().to_string(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "path": self.path.display().to_string(),
            "replica": self.replica,
            "status": self.summary_text(),
            "local_txid": self.local_txid.map(|t| t.to_string()),
            "replica_txid": self.replica_txid.map(|t| t.to_string()),
            "behind": self.behind(),
            "db_size": self.db_size,
            "wal_size": self.wal_size,
            "requests": self.requests,
            "error": self.error.as_ref().map(|e| &e.message),
            "error_code": self.error.as_ref().map(|e| e.code),
            "replica_problems": self.replica_problems,
        })
    }

    fn row(&self) -> Vec<String> {
        let txid = |t: Option<Txid>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
        vec![
            self.path.display().to_string(),
            self.summary_text(),
            txid(self.local_txid),
            txid(self.replica_txid),
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
    let dbs: Vec<DbConfig> = match &args.db {
        Some(arg) => vec![find_db(&config, arg)?],
        None => tideline_engine::databases_of(&config)?,
    };
    let mut statuses = Vec::with_capacity(dbs.len());
    for db in &dbs {
        statuses.push(DatabaseReport::read(db).await);
    }
    if args.json {
        print_json(&Value::Array(statuses.iter().map(Show::to_json).collect()));
    } else {
        let rows: Vec<Vec<String>> = statuses.iter().map(Show::row).collect();
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
        for s in statuses.iter().filter(|s| !s.replica_problems.is_empty()) {
            println!(
                "\n{}: the replica's levels are not contiguous:",
                s.path.display()
            );
            for p in &s.replica_problems {
                println!("  {p}");
            }
        }
    }
    Ok(())
}
