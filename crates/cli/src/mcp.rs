//! `mcp-addr:`: Litestream's MCP server (Model Context Protocol over Streamable HTTP),
//! so an AI agent can look at and restore backups: the tools `litestream_databases`,
//! `litestream_info`, `litestream_restore`, `litestream_version`, `litestream_ltx`,
//! `litestream_status` and `litestream_reset`, with Litestream's names and arguments,
//! so an agent set up for Litestream works unchanged.
//!
//! Like Litestream's, each tool runs this program's own command (`tideline restore …`)
//! in a child process and answers with its output: an agent sees exactly what a person
//! sees at the terminal, a failing command answers with its error text, and a long
//! restore runs outside the replicating process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use tideline_engine::config::{ListenAddr, default_config_path};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The longest a tool's command may run (a restore of a large database included).
const TOOL_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Tool commands running at once; more wait.
const TOOLS_AT_ONCE: usize = 4;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 32;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct ConfigArg {
    /// Path to the config file. Optional.
    config: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct RestoreArgs {
    /// Database path or replica URL.
    path: String,
    /// Output path for the restored database. Optional.
    o: Option<String>,
    /// Path to the config file. Optional.
    config: Option<String>,
    /// Restore up to a specific transaction ID. Optional.
    txid: Option<String>,
    /// Restore to a specific point-in-time (RFC3339). Optional.
    timestamp: Option<String>,
    /// Number of files to download in parallel. Optional.
    parallelism: Option<String>,
    /// Return 0 if the database already exists. Optional.
    if_db_not_exists: Option<bool>,
    /// Return 0 if no backups found. Optional.
    if_replica_exists: Option<bool>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct PathArgs {
    /// Database path or replica URL.
    path: String,
    /// Path to the config file. Optional, ignored for replica URLs.
    config: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct StatusArgs {
    /// Path to the config file. Optional.
    config: Option<String>,
    /// Filter to a specific database path. Optional.
    path: Option<String>,
}

/// The tools, each a command of this program.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The program to run (this one).
    exe: PathBuf,
    /// The config the replicator was started with: the default of every tool.
    config: PathBuf,
    limit: Arc<Semaphore>,
    tool_router: ToolRouter<Self>,
}

fn is_url(path: &str) -> bool {
    path.contains("://")
}

#[tool_router]
impl Tools {
    fn new(exe: PathBuf, config: PathBuf) -> Tools {
        Tools {
            exe,
            config,
            limit: Arc::new(Semaphore::new(TOOLS_AT_ONCE)),
            tool_router: Self::tool_router(),
        }
    }

    fn config_of(&self, given: Option<String>) -> String {
        given
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| self.config.to_string_lossy().into_owned())
    }

    /// Runs `tideline ARGS…`; its output (stdout and stderr), as an error if it failed.
    async fn run(&self, args: Vec<String>) -> CallToolResult {
        let _permit = self.limit.acquire().await;
        let out = tokio::time::timeout(
            TOOL_TIMEOUT,
            tokio::process::Command::new(&self.exe)
                .args(&args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await;
        match out {
            Ok(Ok(o)) => {
                let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stderr));
                if o.status.success() {
                    CallToolResult::success(vec![ContentBlock::text(text)])
                } else {
                    CallToolResult::error(vec![ContentBlock::text(format!(
                        "{}: {}",
                        text.trim(),
                        o.status
                    ))])
                }
            }
            Ok(Err(e)) => CallToolResult::error(vec![ContentBlock::text(format!(
                "cannot run {}: {e}",
                self.exe.display()
            ))]),
            Err(_) => CallToolResult::error(vec![ContentBlock::text(format!(
                "tideline {} did not finish within {} minutes",
                args.first().map_or("", String::as_str),
                TOOL_TIMEOUT.as_secs() / 60
            ))]),
        }
    }

    #[tool(
        name = "litestream_databases",
        description = "List databases and their replicas as defined in the config file. The default path is /etc/litestream.yml but is not required."
    )]
    async fn databases(&self, Parameters(a): Parameters<ConfigArg>) -> CallToolResult {
        self.run(vec![
            "databases".into(),
            "-config".into(),
            self.config_of(a.config),
        ])
        .await
    }

    #[tool(
        name = "litestream_info",
        description = "Get a comprehensive summary of the replicator's current status including databases, replica positions and version information."
    )]
    async fn info(&self, Parameters(a): Parameters<ConfigArg>) -> CallToolResult {
        let config = self.config_of(a.config);
        let mut parts = vec!["=== Tideline Status Report ===".to_owned()];
        for (title, args) in [
            ("Version", vec!["version".to_owned()]),
            (
                "Databases",
                vec!["databases".into(), "-config".into(), config.clone()],
            ),
            (
                "Status",
                vec!["status".into(), "-config".into(), config.clone()],
            ),
        ] {
            let result = self.run(args).await;
            let text: String = result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect();
            if result.is_error == Some(true) {
                return result;
            }
            parts.push(format!("{title}:\n{}", text.trim_end()));
        }
        CallToolResult::success(vec![ContentBlock::text(parts.join("\n\n") + "\n")])
    }

    #[tool(
        name = "litestream_restore",
        description = "Restore a database from its replica: to the newest point, to a TXID, or to a point in time. Database path or replica URL."
    )]
    async fn restore(&self, Parameters(a): Parameters<RestoreArgs>) -> CallToolResult {
        let mut args = vec!["restore".to_owned()];
        let flag = |args: &mut Vec<String>, name: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                args.push(format!("-{name}"));
                args.push(v);
            }
        };
        flag(&mut args, "o", a.o);
        if !is_url(&a.path) {
            flag(&mut args, "config", Some(self.config_of(a.config)));
        }
        flag(&mut args, "txid", a.txid);
        flag(&mut args, "timestamp", a.timestamp);
        flag(&mut args, "parallelism", a.parallelism);
        if a.if_db_not_exists == Some(true) {
            args.push("-if-db-not-exists".into());
        }
        if a.if_replica_exists == Some(true) {
            args.push("-if-replica-exists".into());
        }
        args.push(a.path);
        self.run(args).await
    }

    #[tool(
        name = "litestream_version",
        description = "Get the version of the replicator."
    )]
    async fn version(&self) -> CallToolResult {
        self.run(vec!["version".into()]).await
    }

    #[tool(
        name = "litestream_ltx",
        description = "List the LTX files of a database's replica (database path or replica URL)."
    )]
    async fn ltx(&self, Parameters(a): Parameters<PathArgs>) -> CallToolResult {
        let mut args = vec!["ltx".to_owned()];
        if !is_url(&a.path) {
            args.push("-config".into());
            args.push(self.config_of(a.config));
        }
        args.push(a.path);
        self.run(args).await
    }

    #[tool(
        name = "litestream_status",
        description = "Show each database's local and replica positions (all databases of the config, or one)."
    )]
    async fn status(&self, Parameters(a): Parameters<StatusArgs>) -> CallToolResult {
        let mut args = vec!["status".into(), "-config".into(), self.config_of(a.config)];
        args.extend(a.path.filter(|p| !p.is_empty()));
        self.run(args).await
    }

    #[tool(
        name = "litestream_reset",
        description = "Drop a database's local replication state so the next sync writes a fresh snapshot (the replica is kept)."
    )]
    async fn reset(&self, Parameters(a): Parameters<PathArgs>) -> CallToolResult {
        self.run(vec![
            "reset".into(),
            "-config".into(),
            self.config_of(a.config),
            a.path,
        ])
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "Tideline MCP Server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Tideline replicates SQLite databases to backups (Litestream-compatible). \
                 The tools list databases and replicas, show positions, and restore.",
            )
    }
}

/// The running server; it stops when dropped.
#[derive(Debug)]
pub struct McpServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the tools on `addr`, their default config being `config` (else the default
/// config path).
pub async fn serve(addr: &ListenAddr, config: Option<PathBuf>) -> Result<McpServer> {
    let exe = std::env::current_exe().context("cannot find this program to run its tools")?;
    let config = config.unwrap_or_else(|| default_config_path(&|k| std::env::var(k).ok()));
    let host = if addr.host.is_empty() {
        "0.0.0.0"
    } else {
        addr.host.as_str()
    };
    let listener = TcpListener::bind((host, addr.port))
        .await
        .with_context(|| format!("mcp-addr: cannot listen on {addr}; choose a free port"))?;
    let local = listener.local_addr()?;
    let service = StreamableHttpService::new(
        move || Ok(Tools::new(exe.clone(), config.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let task = tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let svc = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                drop(permit);
            });
        }
    });
    Ok(McpServer { addr: local, task })
}
