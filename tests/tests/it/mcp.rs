//! `mcp-addr:`, as an agent uses it: the official MCP client (rmcp) connects to a
//! replicating `tideline`, finds Litestream 0.5.17's tools with the same names and
//! arguments as Litestream's own MCP server lists them, restores the database through
//! `litestream_restore` (checked row for row), reads positions through
//! `litestream_status`, and gets a failing command's error as an error result.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use tideline_e2e::{Litestream, app, free_port, litestream, rows, tideline_bin, write};

/// Connects (retrying while the server starts, bounded).
async fn connect(port: u16, log: &Path) -> RunningService<RoleClient, ClientConfig> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let transport =
            StreamableHttpClientTransport::from_uri(format!("http://127.0.0.1:{port}/"));
        match ClientConfig::default().serve(transport).await {
            Ok(client) => return client,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no MCP server on {port}: {e}\n{}",
                fs::read_to_string(log).unwrap_or_default()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tool name → (required arguments, all arguments).
async fn tools(
    client: &RunningService<RoleClient, ClientConfig>,
) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for tool in client.list_all_tools().await.unwrap() {
        let schema = serde_json::Value::Object((*tool.input_schema).clone());
        let mut required: Vec<String> = schema["required"]
            .as_array()
            .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        let mut all: Vec<String> = schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        required.sort();
        all.sort();
        out.insert(tool.name.to_string(), (required, all));
    }
    out
}

async fn call(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    args: serde_json::Value,
) -> (bool, String) {
    let params = CallToolRequestParams::new(tool.to_owned())
        .with_arguments(serde_json::from_value(args).unwrap());
    let result: CallToolResult = client.call_tool(params).await.unwrap();
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    (result.is_error != Some(true), text)
}

fn config(d: &Path, name: &str, port: u16, db: &Path, replica: &Path) -> std::path::PathBuf {
    let cfg = d.join(name);
    fs::write(
        &cfg,
        format!(
            "mcp-addr: 127.0.0.1:{port}\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    \
             replica:\n      path: {}\n      sync-interval: 100ms\n",
            db.display(),
            replica.display()
        ),
    )
    .unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_restores_through_the_mcp_tools_litestream_names() {
    let tl = tideline_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&c, 0, 120);
    let replica = d.join("replica");
    let port = free_port();
    let cfg = config(d, "t.yml", port, &db, &replica);
    let log = d.join("t.log");
    let proc = Litestream::replicate(&tl, &cfg, log.clone());
    let client = connect(port, &log).await;
    let ours = tools(&client).await;
    let names: Vec<&str> = ours.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "litestream_databases",
            "litestream_info",
            "litestream_ltx",
            "litestream_reset",
            "litestream_restore",
            "litestream_status",
            "litestream_version",
        ]
    );

    // Restore through the tool, with the replicator's config by default.
    let out = d.join("restored.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = fs::remove_file(&out);
        let (ok, text) = call(
            &client,
            "litestream_restore",
            serde_json::json!({ "path": db.to_str().unwrap(), "o": out.to_str().unwrap() }),
        )
        .await;
        if ok && rows(&out) == 120 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restore through MCP: {ok} {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, text) = call(&client, "litestream_status", serde_json::json!({})).await;
    assert!(
        ok && text.contains(db.to_str().unwrap()) && text.contains("in sync"),
        "{text}"
    );
    let (ok, text) = call(&client, "litestream_version", serde_json::json!({})).await;
    assert!(ok && text.starts_with("tideline "), "{text}");
    let (ok, text) = call(
        &client,
        "litestream_ltx",
        serde_json::json!({ "path": db.to_str().unwrap() }),
    )
    .await;
    assert!(ok && text.contains("0000000000000001"), "{text}");
    // A failing command answers with its error, as an error result.
    let (ok, text) = call(
        &client,
        "litestream_restore",
        serde_json::json!({ "path": "/nowhere/x.db", "o": out.to_str().unwrap() }),
    )
    .await;
    assert!(!ok && text.contains("/nowhere/x.db"), "{text}");
    client.cancel().await.unwrap();
    proc.stop();

    // Litestream's own MCP server lists the same tools with the same arguments.
    let Some(ls) = litestream("an_agent_restores_through_the_mcp_tools_litestream_names") else {
        return;
    };
    let port = free_port();
    let cfg = config(d, "ls.yml", port, &db, &d.join("ls-replica"));
    let log = d.join("ls.log");
    let proc = Litestream::replicate(&ls, &cfg, log.clone());
    let client = connect(port, &log).await;
    let theirs = tools(&client).await;
    client.cancel().await.unwrap();
    proc.stop();
    assert_eq!(ours, theirs, "tool names and arguments");
}
