//! `tideline start`, `stop`, `register`, `unregister`, `list` and `info`: requests to a
//! running `tideline replicate` (or `litestream replicate`) over its control socket
//! (`socket:` in its config), with Litestream 0.5.17's flags and output.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;
use tideline_engine::ControlClient;
use tideline_engine::config::DEFAULT_SOCKET_PATH;

use super::print_json;

/// The flags every control command has.
#[derive(Debug, clap::Args)]
pub struct SocketArgs {
    /// Path to control socket
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET_PATH)]
    pub socket: PathBuf,
    /// Output raw JSON instead of human-readable text
    #[arg(long)]
    pub json: bool,
}

/// `start` / `stop` / `unregister` flags.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Maximum time to wait in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// The database's path
    #[arg(value_name = "DB_PATH")]
    pub db_path: String,
}

/// `unregister` flags.
#[derive(Debug, clap::Args)]
pub struct UnregisterArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print what would be unregistered without changing the daemon
    #[arg(long)]
    pub dry_run: bool,
}

/// `register` flags.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Replica URL (e.g., s3://bucket/prefix, file:///backup/path)
    #[arg(long, value_name = "URL")]
    pub replica: Option<String>,
}

/// `list` / `info` flags.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
    /// Maximum time to wait in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
}

fn client(socket: &SocketArgs, timeout: u64) -> Result<ControlClient> {
    if timeout == 0 {
        bail!("timeout must be greater than 0");
    }
    Ok(ControlClient::new(
        &socket.socket,
        Duration::from_secs(timeout),
    ))
}

/// The database path as the daemon should know it: absolute, from here.
fn absolute(db: &str) -> Result<String> {
    Ok(crate::config::absolute(db)?.to_string_lossy().into_owned())
}

/// `start` and `stop`: `state` is what the database is afterwards.
async fn start_stop(args: &DbArgs, stop: bool) -> Result<()> {
    let c = client(&args.socket, args.timeout)?;
    let db = absolute(&args.db_path)?;
    let out = if stop {
        c.stop(&db).await?
    } else {
        c.start(&db).await?
    };
    let state = if stop { "stopped" } else { "running" };
    let socket = args.socket.socket.display().to_string();
    if args.socket.json {
        print_json(&json!({
            "status": out.status, "db_path": out.path, "state": state,
            "txid": out.txid, "socket": socket,
        }));
    } else {
        println!("status: {}", out.status);
        println!("db_path: {}", out.path);
        println!("state: {state}");
        println!("txid: {}", out.txid);
        println!("socket: {socket}");
    }
    Ok(())
}

/// `tideline start DB`.
pub async fn start(args: &DbArgs) -> Result<()> {
    start_stop(args, false).await
}

/// `tideline stop DB`: returns after the daemon's final upload.
pub async fn stop(args: &DbArgs) -> Result<()> {
    start_stop(args, true).await
}

/// `tideline register -replica URL DB`.
pub async fn register(args: &RegisterArgs) -> Result<()> {
    let Some(replica) = args.replica.as_deref().filter(|r| !r.is_empty()) else {
        bail!("-replica is required: tideline register -replica s3://bucket/prefix /path/to/db");
    };
    let c = client(&args.db.socket, args.db.timeout)?;
    let out = c.register(&absolute(&args.db.db_path)?, replica).await?;
    let socket = args.db.socket.socket.display().to_string();
    if args.db.socket.json {
        print_json(&json!({
            "status": out.status, "db_path": out.path, "replica": replica, "socket": socket,
        }));
    } else {
        let status = if out.status == "already_registered" {
            "already registered"
        } else {
            out.status.as_str()
        };
        println!("status: {status}");
        println!("db_path: {}", out.path);
        println!("replica: {replica}");
        println!("socket: {socket}");
    }
    Ok(())
}

/// `tideline unregister DB`: returns after the daemon's final upload.
pub async fn unregister(args: &UnregisterArgs) -> Result<()> {
    let a = &args.db;
    let db = absolute(&a.db_path)?;
    let socket = a.socket.socket.display().to_string();
    if args.dry_run {
        println!("Dry run: unregister request preview");
        println!("  database: {db}");
        println!("  socket: {socket}");
        println!("  replicas: daemon-managed replica for this database");
        println!(
            "  final sync: daemon close will sync the database and replica before the command completes"
        );
        println!("  timeout: {}s", a.timeout);
        println!("No unregister request was sent.");
        return Ok(());
    }
    let out = client(&a.socket, a.timeout)?.unregister(&db).await?;
    if a.socket.json {
        print_json(&json!({
            "status": out.status, "db_path": out.path, "final_txid": out.txid, "socket": socket,
        }));
    } else {
        println!("status: {}", out.status);
        println!("db_path: {}", out.path);
        println!("final_txid: {}", out.txid);
        println!("socket: {socket}");
    }
    Ok(())
}

/// `tideline list`.
pub async fn list(args: &ListArgs) -> Result<()> {
    let dbs = client(&args.socket, args.timeout)?.list().await?;
    if args.socket.json {
        print_json(&json!({ "databases": dbs }));
    } else if dbs.is_empty() {
        println!("No databases configured");
    } else {
        for db in dbs {
            let synced = db.last_sync_at.as_deref().unwrap_or("never");
            println!("{} [{}] (last sync: {synced})", db.path, db.status);
        }
    }
    Ok(())
}

/// `tideline info`.
pub async fn info(args: &ListArgs) -> Result<()> {
    let info = client(&args.socket, args.timeout)?.info().await?;
    if args.socket.json {
        print_json(&json!(info));
    } else {
        println!("Tideline {}", info.version);
        println!("  PID:        {}", info.pid);
        println!("  Uptime:     {}", uptime(info.uptime_seconds));
        println!("  Started at: {}", info.started_at);
        println!("  Databases:  {}", info.database_count);
    }
    Ok(())
}

/// Go's `time.Duration` text of whole seconds: `1h2m3s`, `4m0s`, `12s`.
fn uptime(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uptime_reads_as_gos_durations() {
        assert_eq!(super::uptime(12), "12s");
        assert_eq!(super::uptime(240), "4m0s");
        assert_eq!(super::uptime(3723), "1h2m3s");
    }
}
