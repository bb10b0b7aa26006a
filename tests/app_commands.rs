//! The app's commands through Tauri's IPC layer on the mock runtime, with the real
//! command handlers and a real engine on a temporary directory: add a database, see it
//! reach "in sync" (by the pushed `db-status` events), restore points and a restored
//! copy, pause/resume, settings, errors as `{code, message}`, persistence, removal; and
//! the Azure Blob, OSS and NATS destinations against their real servers (Azurite, a
//! signature-checking OSS server, nats-server): named errors from "Test connection", a
//! NATS backup restored, through a server outage.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tauri::Listener;
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{WebviewWindow, WebviewWindowBuilder};

fn invoke(wv: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        wv,
        InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

fn code(r: Result<Value, Value>) -> String {
    let err = r.expect_err("the command fails");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{err}"
    );
    err["code"].as_str().unwrap().to_owned()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    tideline_testkit::wait_until(what, Duration::from_secs(20), || f().then_some(()));
}

fn rows(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// The app with its settings in `config_dir`, its `db-status` events, and a window.
fn app_in(config_dir: &Path) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let app = tideline_app::configure(mock_builder())
        .build(mock_context(noop_assets()))
        .unwrap();
    tideline_app::setup_state_in(app.handle(), config_dir.to_owned()).unwrap();
    let wv = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, wv)
}

/// The database's view in the list.
fn listed(wv: &WebviewWindow<MockRuntime>) -> Value {
    invoke(wv, "list_databases", json!({})).unwrap()[0].clone()
}

#[test]
fn azure_oss_and_nats_destinations_over_their_real_servers() {
    use tideline_testkit::{
        AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer, NatsLogin, NatsServer, OSS_ACCESS_KEY_ID,
        OSS_ACCESS_KEY_SECRET, OSS_BUCKET, OSS_REGION, OssServer,
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_app, wv) = app_in(&tmp.path().join("config"));
    let tested = |dest: &Value, keys: Value| {
        invoke(
            &wv,
            "test_destination",
            json!({"destination": dest, "keys": keys}),
        )
    };

    // Azure Blob Storage on Azurite: the account key right, wrong, or missing; a
    // container that does not exist.
    let azurite = AzuriteServer::start(&tmp.path().join("azurite")).unwrap();
    tauri::async_runtime::block_on(azurite.create_container("backups")).unwrap();
    let abs = |container: &str| json!({"kind": "abs", "account_name": AZURITE_ACCOUNT, "container": container, "path": "app", "endpoint": azurite.endpoint()});
    let key = |k: &str| json!({ "account_key": k });
    let ok = tested(&abs("backups"), key(AZURITE_KEY)).unwrap();
    assert_eq!(ok["replica_txid"], Value::Null);
    assert!(
        ok["destination"]
            .as_str()
            .unwrap()
            .starts_with("abs://devstoreaccount1@backups/app"),
        "{ok}"
    );
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleQ==";
    let err = tested(&abs("backups"), key(wrong)).unwrap_err();
    assert_eq!(err["code"], json!("wrong_credentials"), "{err}");
    assert!(
        !err.to_string().contains(wrong),
        "keys never come back: {err}"
    );
    assert_eq!(
        code(tested(&abs("missing"), key(AZURITE_KEY))),
        "no_such_bucket"
    );
    assert_eq!(
        code(tested(&abs("Bad_Name"), key(AZURITE_KEY))),
        "invalid_input"
    );

    // OSS on a server that checks OSS's signatures.
    let oss = OssServer::start(&tmp.path().join("oss")).unwrap();
    let oss_dest = |bucket: &str| json!({"kind": "oss", "bucket": bucket, "path": "app", "region": OSS_REGION, "endpoint": oss.endpoint()});
    let oss_keys =
        |secret: &str| json!({"access_key_id": OSS_ACCESS_KEY_ID, "secret_access_key": secret});
    let ok = tested(&oss_dest(OSS_BUCKET), oss_keys(OSS_ACCESS_KEY_SECRET)).unwrap();
    assert_eq!(ok["replica_txid"], Value::Null);
    assert_eq!(
        code(tested(&oss_dest(OSS_BUCKET), oss_keys("not-the-secret"))),
        "wrong_credentials"
    );
    assert_eq!(
        code(tested(
            &oss_dest("missing"),
            oss_keys(OSS_ACCESS_KEY_SECRET)
        )),
        "no_such_bucket"
    );

    // NATS with a user and password: right, wrong, a bucket that does not exist.
    let locked = NatsServer::start_with(
        &tmp.path().join("nats-locked"),
        NatsLogin::UserPassword("ann".into(), "nats-pw".into()),
    )
    .unwrap();
    tauri::async_runtime::block_on(locked.create_bucket("backups")).unwrap();
    let nats = |server: &NatsServer, bucket: &str| json!({"kind": "nats", "server": server.addr().to_string(), "bucket": bucket, "username": "ann", "creds": ""});
    let password = |p: &str| json!({ "password": p });
    tested(&nats(&locked, "backups"), password("nats-pw")).unwrap();
    let err = tested(&nats(&locked, "backups"), password("wrong-nats-pw")).unwrap_err();
    assert_eq!(err["code"], json!("wrong_credentials"), "{err}");
    assert!(!err.to_string().contains("wrong-nats-pw"), "{err}");
    assert_eq!(
        code(tested(&nats(&locked, "missing"), password("nats-pw"))),
        "no_such_bucket"
    );

    // A database backed up to NATS (no login, so no keychain is needed): in sync,
    // restored, through the server going away and coming back.
    let mut open = NatsServer::start(&tmp.path().join("nats-open")).unwrap();
    tauri::async_runtime::block_on(open.create_bucket("app")).unwrap();
    let db = tmp.path().join("nats.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let dest = json!({"kind": "nats", "server": open.addr().to_string(), "bucket": "app"});
    let added = invoke(
        &wv,
        "add_database",
        json!({"path": db, "destination": dest, "keys": null}),
    )
    .unwrap();
    assert_eq!(
        added["destination"],
        json!(format!("nats://{}/app", open.addr()))
    );
    wait_until("in sync on NATS", || {
        let v = listed(&wv);
        v["state"] == "in_sync" && v["replica_txid"].is_u64()
    });
    open.stop();
    conn.execute_batch("INSERT INTO t VALUES (2);").unwrap();
    let _ = invoke(&wv, "sync_now", json!({"path": db}));
    wait_until("the outage named", || {
        listed(&wv)["error"]["code"] == "destination_unreachable"
    });
    open.restart().unwrap();
    conn.execute_batch("INSERT INTO t VALUES (3);").unwrap();
    wait_until("in sync again after the outage", || {
        let _ = invoke(&wv, "sync_now", json!({"path": db}));
        let v = listed(&wv);
        v["state"] == "in_sync" && v["error"].is_null()
    });
    let out = tmp.path().join("from-nats.db");
    invoke(
        &wv,
        "restore_copy",
        json!({"path": db, "txid": null, "output": out}),
    )
    .unwrap();
    assert_eq!(rows(&out), 3);
    invoke(&wv, "remove_database", json!({"path": db})).unwrap();

    // "Import a Litestream config…" with a NATS replica: added and backed up.
    tauri::async_runtime::block_on(open.create_bucket("imported")).unwrap();
    let db2 = tmp.path().join("imported.db");
    rusqlite::Connection::open(&db2)
        .unwrap()
        .execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
    let yml = tmp.path().join("litestream.yml");
    std::fs::write(
        &yml,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      url: nats://{}/imported\n",
            db2.display(),
            open.addr()
        ),
    )
    .unwrap();
    let imported = invoke(&wv, "import_config", json!({"path": yml})).unwrap();
    assert_eq!(imported[0][0]["name"], json!("imported.db"), "{imported}");
    wait_until("the imported database in sync", || {
        let v = listed(&wv);
        v["state"] == "in_sync" && v["replica_txid"].is_u64()
    });
    let out = tmp.path().join("from-import.db");
    invoke(
        &wv,
        "restore_copy",
        json!({"path": db2, "txid": null, "output": out}),
    )
    .unwrap();
    assert_eq!(rows(&out), 2);
}

#[test]
fn commands_over_a_real_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let config_dir = tmp.path().join("config");
    let db = tmp.path().join("app.db");
    let backup = tmp.path().join("backup");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);",
    )
    .unwrap();

    let app = tideline_app::configure(mock_builder())
        .build(mock_context(noop_assets()))
        .unwrap();
    tideline_app::setup_state_in(app.handle(), config_dir.clone()).unwrap();
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = Arc::clone(&events);
    app.listen("db-status", move |e| {
        seen.lock()
            .unwrap()
            .push(serde_json::from_str(e.payload()).unwrap())
    });
    let wv = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();

    // First run: nothing.
    assert_eq!(invoke(&wv, "list_databases", json!({})).unwrap(), json!([]));

    // Inspect: a database, a text file, a relative path.
    let info = invoke(&wv, "inspect_database", json!({"path": db})).unwrap();
    assert_eq!(info["is_wal"], json!(true));
    let notes = tmp.path().join("notes.txt");
    std::fs::write(&notes, "not a database, just some words here").unwrap();
    assert_eq!(
        code(invoke(&wv, "inspect_database", json!({"path": notes}))),
        "not_sqlite"
    );
    assert_eq!(
        code(invoke(&wv, "inspect_database", json!({"path": "rel.db"}))),
        "invalid_input"
    );

    // S3, against a real S3 server on 127.0.0.1: Test connection says what failed, by
    // code; right keys work.
    let server = tideline_testkit::S3Server::start(&tmp.path().join("s3")).unwrap();
    let s3 = |endpoint: &str, bucket: &str| json!({"kind": "s3", "endpoint": endpoint, "bucket": bucket, "path": "app", "region": "us-east-1"});
    let right = json!({"access_key_id": tideline_testkit::ACCESS_KEY, "secret_access_key": tideline_testkit::SECRET_KEY});
    let wrong =
        json!({"access_key_id": tideline_testkit::ACCESS_KEY, "secret_access_key": "very-secret"});
    let ok = s3(&server.endpoint(), tideline_testkit::BUCKET);
    let tested = invoke(
        &wv,
        "test_destination",
        json!({"destination": ok, "keys": right}),
    )
    .unwrap();
    assert_eq!(tested["replica_txid"], Value::Null);
    let err = invoke(
        &wv,
        "test_destination",
        json!({"destination": ok, "keys": wrong}),
    )
    .unwrap_err();
    assert_eq!(err["code"], json!("wrong_credentials"));
    assert!(
        !err.to_string().contains("very-secret"),
        "keys never come back: {err}"
    );
    assert_eq!(
        code(invoke(
            &wv,
            "test_destination",
            json!({"destination": s3(&server.endpoint(), "missing"), "keys": right})
        )),
        "no_such_bucket"
    );
    assert_eq!(
        code(invoke(
            &wv,
            "test_destination",
            json!({"destination": s3("http://127.0.0.1:9", "b"), "keys": right})
        )),
        "destination_unreachable"
    );
    // WebDAV, against a real server (rclone serve webdav): the same named errors; the
    // password travels as keys and never comes back.
    let mut dav_server = tideline_testkit::WebDavServer::start(&tmp.path().join("dav")).unwrap();
    let dav = |url: &str| json!({"kind": "webdav", "url": url, "path": "backups/app", "username": tideline_testkit::WEBDAV_USER});
    let dav_ok = dav(&dav_server.url());
    let password = |p: &str| json!({"password": p});
    let tested = invoke(
        &wv,
        "test_destination",
        json!({"destination": dav_ok, "keys": password(tideline_testkit::WEBDAV_PASSWORD)}),
    )
    .unwrap();
    assert_eq!(tested["replica_txid"], Value::Null);
    assert!(
        tested["destination"]
            .as_str()
            .unwrap()
            .contains("backups/app"),
        "{tested}"
    );
    let err = invoke(
        &wv,
        "test_destination",
        json!({"destination": dav_ok, "keys": password("wrong-dav-password")}),
    )
    .unwrap_err();
    assert_eq!(err["code"], json!("wrong_credentials"), "{err}");
    assert!(!err.to_string().contains("wrong-dav-password"), "{err}");
    assert_eq!(
        code(invoke(
            &wv,
            "test_destination",
            json!({"destination": dav(&format!("http://u:p@{}", &dav_server.url()[7..])), "keys": null})
        )),
        "invalid_input",
        "credentials in the URL would end up in the settings file"
    );
    dav_server.stop();
    assert_eq!(
        code(invoke(
            &wv,
            "test_destination",
            json!({"destination": dav_ok, "keys": password(tideline_testkit::WEBDAV_PASSWORD)})
        )),
        "destination_unreachable"
    );
    // SFTP: the form's mistakes are named before any connection.
    let sftp = json!({"kind": "sftp", "host": "backup@nas", "user": "backup", "path": "b", "key_path": "", "host_key": ""});
    assert_eq!(
        code(invoke(
            &wv,
            "test_destination",
            json!({"destination": sftp, "keys": null})
        )),
        "invalid_input"
    );

    // A keychain is there (null) or the reason it is not, in words.
    let kc = invoke(&wv, "keychain_status", json!({})).unwrap();
    assert!(
        kc.is_null() || kc.as_str().is_some_and(|m| m.contains("plain text")),
        "{kc}"
    );

    // Folder destinations: test, then add.
    let folder = json!({"kind": "folder", "path": backup});
    let tested = invoke(&wv, "test_destination", json!({"destination": folder})).unwrap();
    assert_eq!(tested["replica_txid"], Value::Null);
    let blocker = tmp.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let bad = json!({"kind": "folder", "path": blocker.join("backup")});
    assert_eq!(
        code(invoke(
            &wv,
            "add_database",
            json!({"path": db, "destination": bad})
        )),
        "destination_unavailable"
    );
    let added = invoke(
        &wv,
        "add_database",
        json!({"path": db, "destination": folder}),
    )
    .unwrap();
    assert_eq!(added["name"], json!("app.db"));
    assert_eq!(
        code(invoke(
            &wv,
            "add_database",
            json!({"path": db, "destination": folder})
        )),
        "already_added"
    );
    wait_until("in sync, pushed as an event", || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["state"] == "in_sync" && e["replica_txid"].is_u64())
    });
    let saved = std::fs::read_to_string(config_dir.join("tideline-app.json")).unwrap();
    assert!(saved.contains("app.db"), "{saved}");

    // More rows, synced now.
    conn.execute_batch("INSERT INTO t VALUES (4), (5);")
        .unwrap();
    invoke(&wv, "sync_now", json!({"path": db})).unwrap();
    wait_until("the new rows in sync", || {
        let list = invoke(&wv, "list_databases", json!({})).unwrap();
        list[0]["state"] == "in_sync" && list[0]["replica_txid"].as_u64() >= Some(2)
    });

    // Restore points and a restored copy of the first one and of the latest.
    let points = invoke(&wv, "restore_points", json!({"path": db})).unwrap();
    let points = points.as_array().unwrap();
    assert!(points.len() >= 2, "{points:?}");
    let first = points[0]["txid"].as_u64().unwrap();
    let out = invoke(&wv, "restore_copy", json!({"path": db, "txid": first})).unwrap();
    let out_path = out["output"].as_str().unwrap();
    assert!(out_path.contains("app-restored-"), "{out_path}");
    assert_eq!(rows(Path::new(out_path)), 3);
    let latest = tmp.path().join("latest.db");
    invoke(
        &wv,
        "restore_copy",
        json!({"path": db, "txid": null, "output": latest}),
    )
    .unwrap();
    assert_eq!(rows(&latest), 5);
    assert_eq!(
        code(invoke(
            &wv,
            "restore_copy",
            json!({"path": db, "output": latest})
        )),
        "output_exists"
    );

    // Pause and resume.
    let paused = invoke(&wv, "pause_database", json!({"path": db})).unwrap();
    assert_eq!(paused["state"], json!("paused"));
    assert_eq!(code(invoke(&wv, "sync_now", json!({"path": db}))), "paused");
    let resumed = invoke(&wv, "resume_database", json!({"path": db})).unwrap();
    assert_ne!(resumed["state"], json!("paused"));

    // In place, then undone from its safety copy. The test's own connection closes
    // first: the exclusive hold sees every other connection, this process's included.
    drop(conn);
    let done = invoke(&wv, "restore_in_place", json!({"path": db, "txid": first})).unwrap();
    assert_eq!(done["txid"], json!(first));
    assert_eq!(rows(&db), 3);
    let safety = done["safety_copy"].as_str().unwrap().to_owned();
    assert_eq!(rows(Path::new(&safety)), 5);
    let undone = invoke(
        &wv,
        "undo_restore",
        json!({"path": db, "safetyCopy": safety}),
    )
    .unwrap();
    assert_eq!(rows(&db), 5);
    assert_ne!(undone["safety_copy"], json!(safety));

    // Settings.
    let mut settings = invoke(&wv, "get_settings", json!({})).unwrap();
    settings["notifications"] = json!(false);
    invoke(&wv, "save_settings", json!({"settings": settings})).unwrap();
    assert_eq!(
        invoke(&wv, "get_settings", json!({})).unwrap()["notifications"],
        json!(false)
    );
    settings["sync_interval_ms"] = json!(1);
    assert_eq!(
        code(invoke(&wv, "save_settings", json!({"settings": settings}))),
        "invalid_input"
    );

    // Import a Litestream config: folder replicas are added, S3 ones are listed as not.
    let db2 = tmp.path().join("two.db");
    rusqlite::Connection::open(&db2)
        .unwrap()
        .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x);")
        .unwrap();
    let yml = tmp.path().join("litestream.yml");
    std::fs::write(
        &yml,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      type: file\n      path: {}\n  - path: {}\n    replica:\n      url: s3://bucket/x\n",
            db2.display(),
            tmp.path().join("backup2").display(),
            tmp.path().join("three.db").display(),
        ),
    )
    .unwrap();
    let imported = invoke(&wv, "import_config", json!({"path": yml})).unwrap();
    assert_eq!(imported[0].as_array().unwrap().len(), 1, "{imported}");
    assert_eq!(imported[0][0]["name"], json!("two.db"));
    assert!(
        imported[1][0].as_str().unwrap().contains("three.db"),
        "{imported}"
    );
    invoke(&wv, "remove_database", json!({"path": db2})).unwrap();

    // Remove: forgotten, backups kept.
    invoke(&wv, "remove_database", json!({"path": db})).unwrap();
    assert_eq!(invoke(&wv, "list_databases", json!({})).unwrap(), json!([]));
    assert!(backup.join("ltx").exists());
    assert_eq!(
        code(invoke(&wv, "sync_now", json!({"path": db}))),
        "not_found"
    );
    let saved = std::fs::read_to_string(config_dir.join("tideline-app.json")).unwrap();
    assert!(!saved.contains("app.db"), "{saved}");
}
