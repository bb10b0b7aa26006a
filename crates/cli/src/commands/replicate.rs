//! `tideline replicate`: continuous replication of the databases in a config file, or of
//! one database given as `DB_PATH REPLICA_URL`, until SIGINT/SIGTERM — or, with `-exec`,
//! until the command it runs exits.
//!
//! Shutdown follows Litestream: on a signal the exec command (if any) gets the same
//! signal and is waited for first, so the application's last writes are still captured;
//! then replication stops gracefully (final capture and upload, retried for
//! `shutdown-sync-timeout`). A second signal during that final upload stops at once;
//! nothing is lost, since unshipped L0 files stay in the meta directory and are shipped
//! on the next start. The exec command is started once every database is open, as
//! Litestream starts it after its store is open.
//!
//! Exit status: 0 after a signal; with `-exec`, the command's own exit code (Litestream
//! only distinguishes 0 and 1).

use std::process::ExitStatus;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tideline_engine::config::{Config, DbConfig, LogLevel, ReplicaConfig};
use tideline_engine::open_client;
use tideline_engine::{ControlInbox, Event, EventSink, ReplicateSettings, replicate_controlled};
use tideline_engine::{IntegrityCheck, Overwrite, RestoreOptions, Target, restore_to};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{ConfigArgs, absolute};
use crate::logging;
use crate::source::log_warnings;

/// `replicate` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Run CMD through the shell alongside replication; stop when it exits, with its
    /// exit code (overrides the config's exec:)
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Capture and ship pending changes once, then exit
    #[arg(long)]
    pub once: bool,
    /// With -once: force a snapshot (not supported yet; ignored with a warning)
    #[arg(long)]
    pub force_snapshot: bool,
    /// With -once: enforce retention (not supported yet; ignored with a warning)
    #[arg(long)]
    pub enforce_retention: bool,
    /// Restore each missing database from its replica before replicating
    #[arg(long)]
    pub restore_if_db_not_exists: bool,
    /// Log level: trace, debug, info, warn or error (overrides LOG_LEVEL and the config)
    #[arg(long, value_name = "LEVEL", value_parser = logging::parse_level)]
    pub log_level: Option<LogLevel>,
    /// Replicate this database (with REPLICA_URL) instead of those in the config
    #[arg(value_name = "DB_PATH")]
    pub db_path: Option<String>,
    /// Where to replicate DB_PATH: file:///backups/db, s3://bucket/db, …
    #[arg(value_name = "REPLICA_URL")]
    pub replica_url: Option<String>,
}

/// Runs replication; returns the process exit code.
pub async fn run(args: &Args) -> Result<i32> {
    // Catch signals before anything else, so an early Ctrl-C is a graceful stop rather
    // than the default immediate exit.
    let mut signals = Signals::new()?;
    let mut config = load(args)?;
    log_warnings(&config);
    // The databases of `dir:` entries, as found now (watched ones follow later).
    config.dbs = tideline_engine::databases_of(&config)?;
    let exec = check(args, &config)?;
    for db in &config.dbs {
        if (args.restore_if_db_not_exists || db.restore_if_db_not_exists) && !db.path.exists() {
            restore_missing(db).await?;
        }
    }
    info!(
        "tideline {} replicating {} database(s){}",
        env!("CARGO_PKG_VERSION"),
        config.dbs.len(),
        if args.once { " once" } else { "" }
    );
    // Kept until replication ends: dropping them stops the endpoints.
    let _metrics = serve_metrics(&config).await;
    let (_socket, inbox) = serve_control(args, &config).await?;
    let _mcp = serve_mcp(&config).await;
    let mut run = Running::start(args, &config, inbox);
    let mut child = None;
    if let Some(cmd) = &exec {
        if !run.wait_open(&mut signals).await? {
            return Ok(0);
        }
        child = Some(spawn_exec(cmd)?);
    }
    let outcome = tokio::select! {
        res = wait_replication(&mut run.replication) => Outcome::Finished(res),
        sig = signals.recv() => Outcome::Signal(sig),
        status = wait_child(&mut child) => Outcome::Exited(status),
    };
    run.conclude(outcome, child, &mut signals).await
}

/// Serves `/metrics` on the config's `addr:`. A port that cannot be had is logged and
/// replication goes on without metrics, as Litestream does: backups matter more.
async fn serve_metrics(config: &Config) -> Option<tideline_engine::MetricsServer> {
    let addr = config.addr.as_ref()?;
    match tideline_engine::serve_metrics(addr).await {
        Ok(server) => {
            info!("serving metrics on {}", server.url());
            Some(server)
        }
        Err(e) => {
            error!("{e}");
            None
        }
    }
}

/// Serves the MCP tools on `mcp-addr:`. A port that cannot be had is logged and
/// replication goes on, as Litestream does.
async fn serve_mcp(config: &Config) -> Option<crate::mcp::McpServer> {
    let addr = config.mcp_addr.as_ref()?;
    match crate::mcp::serve(addr, config.source.clone()).await {
        Ok(server) => {
            info!(
                "MCP server (Streamable HTTP) listening on http://{}/",
                server.addr
            );
            Some(server)
        }
        Err(e) => {
            error!("{e:#}");
            None
        }
    }
}

/// Serves the control socket of `socket:` (not with `-once`, which ends by itself).
/// A socket that cannot be served fails the start: the commands that need it would
/// otherwise fail later, far from the cause.
#[cfg(unix)]
async fn serve_control(
    args: &Args,
    config: &Config,
) -> Result<(Option<tideline_engine::ControlServer>, Option<ControlInbox>)> {
    let Some(socket) = config.socket.as_ref().filter(|_| !args.once) else {
        return Ok((None, None));
    };
    let (control, inbox) = tideline_engine::control();
    let server = tideline_engine::serve_control(socket, control).await?;
    info!("control socket listening on {}", server.path().display());
    Ok((Some(server), Some(inbox)))
}

/// No Unix sockets here: `socket:` is warned about and ignored.
#[cfg(not(unix))]
async fn serve_control(_: &Args, config: &Config) -> Result<((), Option<ControlInbox>)> {
    if config.socket.is_some() {
        warn!("socket: control sockets are Unix sockets, not available on this system; ignored");
    }
    Ok(((), None))
}

/// The flags and the config make sense together; returns the command to run beside
/// replication (`-exec`, else the config's `exec:`).
fn check(args: &Args, config: &Config) -> Result<Option<String>> {
    if !args.once && (args.force_snapshot || args.enforce_retention) {
        bail!("-force-snapshot and -enforce-retention only apply with -once");
    }
    let exec = args.exec.clone().or_else(|| config.exec.clone());
    if args.once && exec.is_some() {
        bail!(
            "cannot use -once with -exec (or an exec: line in the config): -once stops after \
             one sync, -exec runs until the command exits"
        );
    }
    if config.dbs.is_empty() && !watches(config) && exec.is_none() && config.socket.is_none() {
        let file = config
            .source
            .as_deref()
            .map_or_else(|| "the config".to_owned(), |p| p.display().to_string());
        bail!(
            "no databases to replicate in {file}: add a `dbs:` entry with a path and a \
             replica, or run `tideline replicate DB_PATH REPLICA_URL`"
        );
    }
    Ok(exec)
}

/// True if a `dir:` entry follows its folder (`watch: true`): replication then runs
/// even while no database is there yet (not with `-once`, which watches nothing).
fn watches(config: &Config) -> bool {
    config.dirs.iter().any(|d| d.watch)
}

/// Replication under way, and how to stop it.
struct Running {
    replication: Replication,
    stop: watch::Sender<bool>,
    /// How many databases have started.
    started: watch::Receiver<usize>,
    databases: usize,
}

impl Running {
    /// Starts replicating the config's databases, logging their events.
    fn start(args: &Args, config: &Config, inbox: Option<ControlInbox>) -> Running {
        let (started_tx, started) = watch::channel(0usize);
        let sink: EventSink = Arc::new(move |event: &Event| {
            if event.is_error() {
                error!("{event}");
            } else {
                info!("{event}");
            }
            if matches!(event, Event::Started { .. }) {
                started_tx.send_modify(|n| *n += 1);
            }
        });
        let (stop, mut stop_rx) = watch::channel(false);
        let shutdown = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        let mut settings = ReplicateSettings::from_config(config);
        settings.once = args.once;
        settings.force_snapshot = args.force_snapshot;
        settings.enforce_retention = args.enforce_retention;
        // No task at all for an exec-only config without a control socket: there is
        // nothing to wait for.
        let replication =
            (!config.dbs.is_empty() || watches(config) || inbox.is_some()).then(|| {
                tokio::spawn(replicate_controlled(
                    config.dbs.clone(),
                    config.dirs.clone(),
                    settings,
                    shutdown,
                    sink,
                    inbox,
                ))
            });
        Running {
            replication,
            stop,
            started,
            databases: config.dbs.len(),
        }
    }

    /// Waits until every database is open (the exec command starts then). False when
    /// a signal came first and replication was stopped.
    async fn wait_open(&mut self, signals: &mut Signals) -> Result<bool> {
        let want = self.databases;
        tokio::select! {
            _ = self.started.wait_for(|n| *n >= want) => Ok(true),
            res = wait_replication(&mut self.replication) => {
                // Replication ended before every database was open: a startup error.
                res?;
                bail!("replication stopped before it started");
            }
            sig = signals.recv() => {
                info!("{} received, shutting down", sig.name());
                let _ = self.stop.send(true);
                finish(&mut self.replication, signals).await?;
                Ok(false)
            }
        }
    }

    /// Stops what is still running after `outcome`; returns the exit code.
    async fn conclude(
        mut self,
        outcome: Outcome,
        child: Option<Child>,
        signals: &mut Signals,
    ) -> Result<i32> {
        let code = match outcome {
            Outcome::Finished(res) => {
                if let Some(child) = child {
                    stop_child(child, Sig::Terminate).await;
                }
                res?;
                info!("replication complete");
                return Ok(0);
            }
            Outcome::Signal(sig) => {
                info!("{} received, shutting down", sig.name());
                match child {
                    // The command exiting because of the signal is the expected
                    // outcome; any other failure is reported through the exit code.
                    Some(child) => stop_child(child, sig)
                        .await
                        .and_then(|s| s.code())
                        .filter(|c| ![0, 128 + 2, 128 + 15].contains(c))
                        .unwrap_or(0),
                    None => 0,
                }
            }
            Outcome::Exited(status) => {
                let status = status.context("cannot wait for the exec command")?;
                info!("exec command exited ({status}), shutting down");
                exit_code(status)
            }
        };
        let _ = self.stop.send(true);
        finish(&mut self.replication, signals).await?;
        info!("tideline shut down");
        Ok(code)
    }
}

type Replication = Option<JoinHandle<tideline_engine::Result<()>>>;

enum Outcome {
    Finished(Result<()>),
    Signal(Sig),
    Exited(std::io::Result<ExitStatus>),
}

/// The config file, or a one-database config from `DB_PATH REPLICA_URL`; starts
/// logging with its settings.
fn load(args: &Args) -> Result<Config> {
    match (&args.db_path, &args.replica_url) {
        (None, _) => {
            let config = args.config.load()?;
            logging::init(Some(&config.logging), args.log_level);
            Ok(config)
        }
        (Some(db), None) => bail!(
            "missing REPLICA_URL for {db}: run `tideline replicate DB_PATH REPLICA_URL`, or \
             list the database in a config file"
        ),
        (Some(db), Some(url)) => {
            if args.config.config.is_some() {
                bail!("cannot use -config with DB_PATH and REPLICA_URL: use one or the other");
            }
            logging::init(None, args.log_level);
            let mut db = DbConfig::new(absolute(db)?);
            db.replica = Some(ReplicaConfig::from_url(url)?);
            let mut config = Config::default();
            config.dbs.push(db);
            Ok(config)
        }
    }
}

/// `restore-if-db-not-exists`: restores a missing database from its replica; a replica
/// without a backup is fine (first start). A stale `-wal`/`-shm`/`-journal` left by the
/// missing database is refused ([`Overwrite::Refuse`]): SQLite would apply it to the
/// restored one.
async fn restore_missing(db: &DbConfig) -> Result<()> {
    let client = open_client(db.require_replica()?)?;
    let replica = client.describe();
    info!(
        "{} does not exist; restoring it from {replica}",
        db.path.display()
    );
    let opts = RestoreOptions::new(Overwrite::Refuse, IntegrityCheck::None);
    match restore_to(client, Target::Latest, &db.path, opts).await {
        Ok(restored) => {
            info!("restored {} at TXID {}", db.path.display(), restored.txid);
            Ok(())
        }
        Err(tideline_engine::Error::Plan(e)) if e.is_nothing_to_restore() => {
            info!(
                "no backup of {} in {replica} yet; starting fresh",
                db.path.display()
            );
            Ok(())
        }
        Err(e) => Err(e)
            .with_context(|| format!("cannot restore {} before replicating it", db.path.display())),
    }
}

/// Waits for replication to end; a second signal gives up on the final upload.
async fn finish(replication: &mut Replication, signals: &mut Signals) -> Result<()> {
    if replication.is_none() {
        return Ok(());
    }
    tokio::select! {
        res = wait_replication(replication) => res,
        sig = signals.recv() => bail!(
            "{} received again: stopped without waiting for the final upload; changes not \
             yet shipped stay in the meta directory and are shipped on the next start",
            sig.name()
        ),
    }
}

/// Waits for the replication task (forever if there is none); cancel-safe, and the
/// handle is cleared once it has completed so it is never polled again.
async fn wait_replication(replication: &mut Replication) -> Result<()> {
    let Some(handle) = replication else {
        return std::future::pending().await;
    };
    let res = handle.await;
    *replication = None;
    res.context("the replication task failed")?
        .context("replication failed")
}

/// Starts the exec command through the platform shell, sharing our stdio. The command
/// text is not logged: it may carry secrets expanded from the environment.
fn spawn_exec(cmd: &str) -> Result<Child> {
    let mut command = if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.arg("/C").arg(cmd);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(cmd);
        c
    };
    let child = command
        .spawn()
        .context("cannot start the exec command (is the shell available?)")?;
    info!("started the exec command (pid {})", child.id().unwrap_or(0));
    Ok(child)
}

async fn wait_child(child: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match child {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

/// Sends `sig` to the exec command and waits for it to exit.
async fn stop_child(mut child: Child, sig: Sig) -> Option<ExitStatus> {
    info!(
        "sending {} to the exec command and waiting for it to exit",
        sig.name()
    );
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        // No libc here (unsafe code is forbidden): kill(1) sends the signal.
        let sent = Command::new("kill")
            .arg(format!("-{}", sig.kill_name()))
            .arg(pid.to_string())
            .status()
            .await;
        if !sent.is_ok_and(|s| s.success()) {
            warn!("could not signal the exec command; killing it");
            let _ = child.start_kill();
        }
    }
    #[cfg(not(unix))]
    {
        let _ = sig;
        let _ = child.start_kill();
    }
    match child.wait().await {
        Ok(status) => Some(status),
        Err(e) => {
            warn!("cannot wait for the exec command: {e}");
            None
        }
    }
}

/// The exit code to pass on: the command's, or 128 + signal like a shell.
fn exit_code(status: ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    1
}

/// The signals that stop replication.
#[derive(Debug, Clone, Copy)]
enum Sig {
    Interrupt,
    Terminate,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Interrupt => "SIGINT",
            Sig::Terminate => "SIGTERM",
        }
    }

    #[cfg(unix)]
    fn kill_name(self) -> &'static str {
        match self {
            Sig::Interrupt => "INT",
            Sig::Terminate => "TERM",
        }
    }
}

/// Signal listeners, registered up front.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl Signals {
    fn new() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Signals {
                ctrl_c: tokio::signal::windows::ctrl_c().context("cannot listen for Ctrl-C")?,
            })
        }
    }

    async fn recv(&mut self) -> Sig {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Sig::Interrupt,
                _ = self.terminate.recv() => Sig::Terminate,
            }
        }
        #[cfg(windows)]
        {
            self.ctrl_c.recv().await;
            Sig::Interrupt
        }
    }
}
