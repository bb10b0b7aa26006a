//! The WebDAV replica against a real WebDAV server (`rclone serve webdav` on
//! 127.0.0.1): the replica contract in Litestream's layout, the listing cache, large
//! files, errors named for what to fix, and a server that goes away and comes back.

use std::fs;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tideline_engine::config::{ReplicaConfig, ReplicaTarget};
use tideline_engine::storage::webdav::WebDavReplica;
use tideline_engine::storage::{RemoteFailure, ReplicaClient, ReplicaError};
use tideline_engine::{Error, ErrorCode};
use tideline_ltx::Txid;
use tideline_testkit::{WEBDAV_PASSWORD, WebDavServer};

use crate::replica_contract::{contract, ltx};

fn client_for(url: &str) -> Arc<WebDavReplica> {
    let cfg = ReplicaConfig::from_url_with_env(url, &|_| None).unwrap();
    let ReplicaTarget::WebDav(w) = &cfg.target else {
        panic!("not a WebDAV config: {cfg:?}")
    };
    Arc::new(WebDavReplica::new(w).unwrap())
}

fn remote_failure(e: &ReplicaError) -> &RemoteFailure {
    match e {
        ReplicaError::Remote { failure, .. } => failure,
        other => panic!("not a remote error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_replica_meets_the_contract_in_litestreams_layout() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    let client = client_for(&server.replica_url("backups/app db"));
    assert_eq!(
        client.describe(),
        format!("{}/backups/app db/", server.url()),
        "no password in the description"
    );
    contract(client.clone(), &scratch).await;

    // Litestream's layout: `<path>/ltx/<level>/<min>-<max>.ltx`, nothing left behind.
    let root = server.root().join("backups/app db/ltx");
    assert!(
        root.join("9/0000000000000001-0000000000000001.ltx")
            .is_file()
    );
    assert!(
        root.join("1/0000000000000001-0000000000000003.ltx")
            .is_file()
    );
    let leftovers: Vec<_> = fs::read_dir(root.join("0"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A fresh client lists from the server: WebDAV gives the upload time, and the
    // exact listing reads the LTX header's timestamp.
    let fresh = client_for(&server.replica_url("backups/app db"));
    let exact = fresh.list_exact(9).await.unwrap();
    assert_eq!(
        exact[0].created_at,
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_001)
    );
    // Temporary files and other names are not LTX files.
    fs::write(
        root.join("9/0000000000000001-0000000000000005.ltx.tmp"),
        b"partial",
    )
    .unwrap();
    fs::write(root.join("9/notes.txt"), b"x").unwrap();
    assert_eq!(fresh.list(9).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_listing_is_cached_and_an_idle_replica_makes_no_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    let client = client_for(&server.replica_url("db"));
    // A reader asks the server every time.
    assert!(client.list(0).await.unwrap().is_empty());
    assert!(client.list(0).await.unwrap().is_empty());
    assert_eq!(client.request_counts().unwrap().list, 2);

    for txid in 1..=2 {
        let (src, t) = ltx(dir.path(), txid, txid, 7);
        client
            .write(0, Txid(txid), Txid(txid), t, &src)
            .await
            .unwrap();
    }
    for _ in 0..10 {
        let l0 = client.list(0).await.unwrap();
        assert_eq!(l0.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(), [1, 2]);
    }
    let counts = client.request_counts().unwrap();
    assert_eq!(counts.list, 3, "one listing for the writer, then its cache");
    assert_eq!(counts.put, 2, "{counts:?}");
    client
        .delete(&client.list(0).await.unwrap()[..1])
        .await
        .unwrap();
    assert_eq!(client.list(0).await.unwrap().len(), 1);
    let after = client.request_counts().unwrap();
    assert_eq!((after.delete, after.list), (1, 3));
    // The folders were made once: a later write makes no MKCOL.
    let (src, t) = ltx(dir.path(), 3, 3, 9);
    client.write(0, Txid(3), Txid(3), t, &src).await.unwrap();
    let third = client.request_counts().unwrap();
    assert_eq!(third.multipart, after.multipart + 1, "only the MOVE");
    assert!(third.bytes_up > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_large_files_stream_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    let client = client_for(&server.replica_url("big"));
    let src = dir.path().join("big.bin");
    let data: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&src, &data).unwrap();
    let info = client
        .write(
            9,
            Txid(1),
            Txid(7),
            UNIX_EPOCH + Duration::from_secs(1),
            &src,
        )
        .await
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
    let on_server = server
        .root()
        .join("big/ltx/9/0000000000000001-0000000000000007.ltx");
    assert!(fs::read(&on_server).unwrap() == data, "stored as sent");

    let reader_client = client_for(&server.replica_url("big"));
    let listed = reader_client.list(9).await.unwrap();
    assert_eq!(listed[0].size, data.len() as u64);
    let file = listed[0].clone();
    let c = Arc::clone(&reader_client);
    let back = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        c.open(&file).unwrap().read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(back == data, "read back as stored");
    let part = reader_client
        .read_range(&listed[0], 1000..1100)
        .await
        .unwrap();
    assert_eq!(part, data[1000..1100]);
    let counts = reader_client.request_counts().unwrap();
    assert!(counts.bytes_down >= data.len() as u64 + 100, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_errors_name_what_to_fix_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    let (src, t) = ltx(dir.path(), 1, 1, 1);

    let wrong = server
        .replica_url("db")
        .replace(WEBDAV_PASSWORD, "not-the-password");
    let e = client_for(&wrong)
        .write(0, Txid(1), Txid(1), t, &src)
        .await
        .unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::WrongCredentials { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("webdav-username and webdav-password"), "{msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");
    assert!(e.needs_config_fix());
    assert_eq!(Error::Replica(e).code(), ErrorCode::WrongCredentials);

    // The server goes away: unreachable, named; it comes back: the same client writes.
    let client = client_for(&server.replica_url("db"));
    client.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    server.stop();
    let (src2, t2) = ltx(dir.path(), 2, 2, 2);
    let e = client
        .write(0, Txid(2), Txid(2), t2, &src2)
        .await
        .unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::Unreachable(_)),
        "{e}"
    );
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
    assert!(!e.needs_config_fix(), "a server that is down is waited for");
    assert_eq!(Error::Replica(e).code(), ErrorCode::DestinationUnreachable);
    server.restart().unwrap();
    client.write(0, Txid(2), Txid(2), t2, &src2).await.unwrap();
    let l0 = client_for(&server.replica_url("db")).list(0).await.unwrap();
    assert_eq!(l0.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(), [1, 2]);
}

/// A restore merges every file of its plan at once; more files than the client's
/// transfer permits, each larger than a reader's queue, must not wait on each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_of_many_large_files_streams_them_all_at_once() {
    use rusqlite::Connection;
    use tideline_engine::capture::{Database, DbOptions};
    use tideline_engine::restore::{IntegrityCheck, Target, restore};

    let dir = tempfile::tempdir().unwrap();
    let server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    let client = client_for(&server.replica_url("many"));
    let path = dir.path().join("many.db");
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    let mut db = Database::open(&path, DbOptions::default()).unwrap();
    let mut now = std::time::SystemTime::now();
    for i in 0..14i64 {
        c.execute(
            "INSERT INTO b VALUES (?1, randomblob(1048576))",
            rusqlite::params![i],
        )
        .unwrap();
        now += Duration::from_millis(10);
        let cap = db.sync(now).unwrap().unwrap();
        client
            .write(
                0,
                cap.info.min_txid,
                cap.info.max_txid,
                cap.info.created_at,
                &cap.path,
            )
            .await
            .unwrap();
    }
    assert!(client.list(0).await.unwrap().len() >= 14);
    let out = dir.path().join("out.db");
    let restored = tokio::time::timeout(
        Duration::from_secs(60),
        restore(client.clone(), Target::Latest, &out, IntegrityCheck::Full),
    )
    .await
    .expect("the restore finishes (no reader waits on another's permit)")
    .unwrap();
    assert_eq!(
        restored.txid,
        client.list(0).await.unwrap().last().unwrap().max_txid
    );
    let n: i64 = Connection::open(&out)
        .unwrap()
        .query_row("SELECT count(*) FROM b", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 14);
}
