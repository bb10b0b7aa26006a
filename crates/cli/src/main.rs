//! The `tideline` command: Litestream 0.5.17's command line over the Tideline engine,
//! so existing config files, scripts and replicas keep working.
//!
//! `main` rewrites Go-style flags ([`args`]), parses with clap (usage errors exit 2),
//! runs the subcommand and turns an error into `error: <what went wrong: why>` on
//! stderr with exit status 1. Each subcommand in [`commands`] is a few lines of glue
//! over engine functions.

mod args;
mod commands;
mod config;
mod logging;
mod mcp;
mod source;
mod time;

use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

#[cfg(unix)]
use crate::commands::control;
use crate::commands::{databases, ltx, replicate, reset, restore, status, version};

/// Continuous replication of SQLite databases, compatible with Litestream 0.5.
#[derive(Debug, Parser)]
#[command(
    name = "tideline",
    version,
    after_help = "Flags take one dash or two, as in Litestream: -config x.yml, --config x.yml \
                  and -config=x.yml are the same."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Replicate databases continuously (or once, with -once)
    Replicate(replicate::Args),
    /// Restore a database from its replica
    Restore(restore::Args),
    /// List the LTX files of a replica
    Ltx(ltx::Args),
    /// List the databases in the config file
    Databases(databases::Args),
    /// Drop a database's local replication state (the next sync writes a fresh snapshot)
    Reset(reset::Args),
    /// Show each configured database's local and replica positions
    Status(status::Args),
    /// Print the version
    Version(version::Args),
    /// Resume replication of a database stopped on a running daemon (control socket)
    #[cfg(unix)]
    Start(control::DbArgs),
    /// Stop replication of a database on a running daemon, after its final upload
    #[cfg(unix)]
    Stop(control::DbArgs),
    /// Add a database to a running daemon: -replica URL DB_PATH
    #[cfg(unix)]
    Register(control::RegisterArgs),
    /// Remove a database from a running daemon, after its final upload
    #[cfg(unix)]
    Unregister(control::UnregisterArgs),
    /// List the databases of a running daemon
    #[cfg(unix)]
    List(control::ListArgs),
    /// Show a running daemon's version, PID, uptime and database count
    #[cfg(unix)]
    Info(control::ListArgs),
}

fn main() {
    let argv = args::go_style(std::env::args_os(), &Cli::command());
    let cli = Cli::parse_from(argv);
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            1
        }
    };
    std::process::exit(code);
}

/// The whole chain, "cannot restore x from y: no backup …", with each cause once: the
/// engine's messages often carry their cause's text already (so that the app, which
/// shows one message, has it too).
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Cmd::Version(args) = &cli.command {
        version::run(args);
        return Ok(0);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        match &cli.command {
            Cmd::Replicate(args) => return replicate::run(args).await,
            Cmd::Restore(args) => restore::run(args).await?,
            Cmd::Ltx(args) => ltx::run(args).await?,
            Cmd::Databases(args) => databases::run(args)?,
            Cmd::Reset(args) => reset::run(args)?,
            Cmd::Status(args) => status::run(args).await?,
            Cmd::Version(args) => version::run(args),
            #[cfg(unix)]
            Cmd::Start(args) => control::start(args).await?,
            #[cfg(unix)]
            Cmd::Stop(args) => control::stop(args).await?,
            #[cfg(unix)]
            Cmd::Register(args) => control::register(args).await?,
            #[cfg(unix)]
            Cmd::Unregister(args) => control::unregister(args).await?,
            #[cfg(unix)]
            Cmd::List(args) => control::list(args).await?,
            #[cfg(unix)]
            Cmd::Info(args) => control::info(args).await?,
        }
        Ok(0)
    });
    // Dropping a runtime waits for blocking tasks without limit; after an interrupted
    // shutdown one may still be retrying. Every write the engine makes is atomic
    // (temporary file, then rename), so giving up on it after a moment is safe.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let io = std::io::Error::other("disk on fire");
        let inner = anyhow::Error::new(io).context("open x: disk on fire");
        let err = inner.context("cannot replicate x");
        assert_eq!(error_text(&err), "cannot replicate x: open x: disk on fire");
        let err = anyhow::anyhow!("no backup").context("cannot restore x");
        assert_eq!(error_text(&err), "cannot restore x: no backup");
    }

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = args::go_style(
            std::iter::once("tideline").chain(args.iter().copied()),
            &Cli::command(),
        );
        Cli::try_parse_from(argv)
    }

    #[test]
    fn litestream_command_lines_parse() {
        let cli = parse(&[
            "restore",
            "-config",
            "/etc/x.yml",
            "-o",
            "out.db",
            "-txid",
            "0000000000000003",
            "/data/app.db",
        ])
        .unwrap();
        let Cmd::Restore(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.output.as_deref(), Some(std::path::Path::new("out.db")));
        assert_eq!(r.txid, Some(tideline_ltx::Txid(3)));
        assert_eq!(
            r.config.config.as_deref(),
            Some(std::path::Path::new("/etc/x.yml"))
        );

        let cli = parse(&[
            "replicate",
            "-once",
            "-log-level",
            "debug",
            "-exec",
            "myapp -port 8080",
        ])
        .unwrap();
        let Cmd::Replicate(r) = cli.command else {
            panic!()
        };
        assert!(r.once);
        assert_eq!(r.exec.as_deref(), Some("myapp -port 8080"));

        let cli = parse(&["ltx", "-level", "all", "-json", "file:///r"]).unwrap();
        let Cmd::Ltx(l) = cli.command else { panic!() };
        assert_eq!(l.level, ltx::Level::All);
    }

    #[test]
    fn usage_errors() {
        let txid_and_time = parse(&[
            "restore",
            "-txid",
            "0000000000000003",
            "-timestamp",
            "2026-01-01T00:00:00Z",
            "db",
        ]);
        assert_eq!(
            txid_and_time.unwrap_err().kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
        let bad_txid = parse(&["restore", "-txid", "3", "db"])
            .unwrap_err()
            .to_string();
        assert!(bad_txid.contains("16 hex digits"), "{bad_txid}");
        let bad_time = parse(&["restore", "-timestamp", "yesterday", "db"])
            .unwrap_err()
            .to_string();
        assert!(bad_time.contains("RFC 3339"), "{bad_time}");
        assert!(parse(&["restore", "-integrity-check", "maybe", "db"]).is_err());
        assert!(parse(&["ltx", "-level", "12", "db"]).is_err());
    }
}
