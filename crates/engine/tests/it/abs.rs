//! The Azure Blob Storage replica against a real Blob service (Azurite on 127.0.0.1,
//! checking Shared Key signatures): the replica contract in Litestream's layout, the
//! listing cache, exact creation times from blob metadata, large files in one Put Blob
//! and in blocks, errors named for what to fix, and a server that goes away and comes
//! back.

use std::fs;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tideline_engine::config::AbsReplicaConfig;
use tideline_engine::storage::abs::{AbsLimits, AbsReplica};
use tideline_engine::storage::{RemoteFailure, ReplicaClient, ReplicaError, open_client};
use tideline_engine::{Error, ErrorCode};
use tideline_ltx::Txid;
use tideline_testkit::{AZURITE_KEY, AzuriteServer};

use crate::replica_contract::{contract, ltx};

const CONTAINER: &str = "backups";

async fn server(dir: &std::path::Path) -> AzuriteServer {
    let server = AzuriteServer::start(&dir.join("azurite")).unwrap();
    server.create_container(CONTAINER).await.unwrap();
    server
}

fn client(server: &AzuriteServer, path: &str) -> Arc<AbsReplica> {
    Arc::new(AbsReplica::new(&server.abs_config(CONTAINER, path)).unwrap())
}

fn remote_failure(e: &ReplicaError) -> &RemoteFailure {
    match e {
        ReplicaError::Remote { failure, .. } => failure,
        other => panic!("not a remote error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abs_replica_meets_the_contract_in_litestreams_layout() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let server = server(dir.path()).await;
    // Through the config's dispatch, as the replicator opens it.
    let opened = open_client(&server.replica_config(CONTAINER, "db/app.db")).unwrap();
    assert_eq!(
        opened.describe(),
        format!(
            "abs://devstoreaccount1@{CONTAINER}/db/app.db (endpoint {})",
            server.endpoint()
        ),
        "no key in the description"
    );
    contract(opened, &scratch).await;

    // Litestream's layout, `<path>/ltx/<level>/<min>-<max>.ltx`: a client of the
    // container's root sees the files one level down only under that name.
    let fresh = client(&server, "db/app.db");
    let snapshots = fresh.list(9).await.unwrap();
    assert_eq!(
        snapshots
            .iter()
            .map(|f| (f.min_txid.0, f.max_txid.0))
            .collect::<Vec<_>>(),
        [(1, 1)]
    );
    assert!(client(&server, "db").list(9).await.unwrap().is_empty());
    // A fresh listing gives the exact creation time: the LTX header's, from the blob's
    // `litestreamtimestamp` metadata, with no read of the file.
    assert_eq!(
        snapshots[0].created_at,
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_001)
    );
    let before = fresh.request_counts().unwrap();
    let exact = fresh.list_exact(1).await.unwrap();
    assert_eq!(
        exact[0].created_at,
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_003)
    );
    let after = fresh.request_counts().unwrap();
    assert_eq!((after.list - before.list, after.get), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abs_listing_is_cached_and_an_idle_replica_makes_no_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let client = client(&server, "db");
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
    // Deleting what is already gone is fine.
    let gone = ltx(dir.path(), 1, 1, 7);
    let info = tideline_engine::storage::FileInfo {
        level: 0,
        min_txid: Txid(1),
        max_txid: Txid(1),
        size: 0,
        created_at: gone.1,
    };
    client.delete(&[info]).await.unwrap();
    // Idle: nothing is sent at all.
    let idle = client.request_counts().unwrap();
    for _ in 0..5 {
        client.list(0).await.unwrap();
    }
    assert_eq!(client.request_counts().unwrap(), idle);
}

async fn round_trip(
    client: &Arc<AbsReplica>,
    reader: Arc<AbsReplica>,
    data: &[u8],
    src: &std::path::Path,
) {
    fs::write(src, data).unwrap();
    let info = client
        .write(
            9,
            Txid(1),
            Txid(7),
            UNIX_EPOCH + Duration::from_secs(1),
            src,
        )
        .await
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
    let listed = reader.list(9).await.unwrap();
    assert_eq!(listed[0].size, data.len() as u64);
    assert_eq!(listed[0].created_at, UNIX_EPOCH + Duration::from_secs(1));
    let file = listed[0].clone();
    let c = Arc::clone(&reader);
    let back = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        c.open(&file).unwrap().read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(back == data, "read back as stored");
    let part = reader.read_range(&listed[0], 1000..1100).await.unwrap();
    assert_eq!(part, data[1000..1100]);
    let tail = reader
        .read_range(&listed[0], data.len() as u64 - 10..data.len() as u64 + 50)
        .await
        .unwrap();
    assert_eq!(tail, data[data.len() - 10..], "clamped to the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abs_large_files_go_up_whole_or_in_blocks_and_stream_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let data: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    // One streamed Put Blob.
    let whole = client(&server, "whole");
    round_trip(
        &whole,
        client(&server, "whole"),
        &data,
        &dir.path().join("a.bin"),
    )
    .await;
    let counts = whole.request_counts().unwrap();
    assert_eq!((counts.put, counts.multipart), (1, 0), "{counts:?}");
    assert!(counts.bytes_up >= data.len() as u64);

    // Blocks: 3 MiB each above a 4 MiB threshold, then one block list.
    let cfg: AbsReplicaConfig = server.abs_config(CONTAINER, "blocks");
    let limits = AbsLimits {
        single_put_limit: 4 << 20,
        block_size: 3 << 20,
        ..AbsLimits::default()
    };
    let blocks = Arc::new(AbsReplica::with_limits(&cfg, limits).unwrap());
    round_trip(
        &blocks,
        client(&server, "blocks"),
        &data,
        &dir.path().join("b.bin"),
    )
    .await;
    let counts = blocks.request_counts().unwrap();
    assert_eq!((counts.put, counts.multipart), (7, 1), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abs_errors_name_what_to_fix_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server(dir.path()).await;
    let (src, t) = ltx(dir.path(), 1, 1, 1);

    // A wrong (but well-formed) key: the server refuses the signature.
    let wrong_key = "d3Jvbmcta2V5LW5vdC10aGUtb25lLWF6dXJpdGUtaGFz";
    let mut cfg = server.abs_config(CONTAINER, "db");
    cfg.account_key = Some(wrong_key.to_owned().into());
    let e = AbsReplica::new(&cfg)
        .unwrap()
        .write(0, Txid(1), Txid(1), t, &src)
        .await
        .unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::WrongCredentials { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("account-name and account-key"), "{msg}");
    assert!(msg.contains("sas-token"), "{msg}");
    assert!(
        !msg.contains(wrong_key) && !msg.contains(AZURITE_KEY),
        "{msg}"
    );
    assert!(e.needs_config_fix());
    assert_eq!(Error::Replica(e).code(), ErrorCode::WrongCredentials);

    // A container that does not exist: named, with the key to fix.
    let mut cfg = server.abs_config("no-such-container", "db");
    cfg.path = "db".into();
    let missing = AbsReplica::new(&cfg).unwrap();
    for e in [
        missing.list(0).await.unwrap_err(),
        missing
            .write(0, Txid(1), Txid(1), t, &src)
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(remote_failure(&e), RemoteFailure::NoSuchBucket(_)),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("\"no-such-container\" does not exist"),
            "{msg}"
        );
        assert!(msg.contains("bucket:"), "{msg}");
        assert!(
            e.needs_config_fix(),
            "a missing container is not waited for"
        );
        assert_eq!(Error::Replica(e).code(), ErrorCode::NoSuchBucket);
    }

    // The server goes away: unreachable, named; it comes back: the same client writes.
    let c = client(&server, "db");
    c.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    server.stop();
    let (src2, t2) = ltx(dir.path(), 2, 2, 2);
    let e = c.write(0, Txid(2), Txid(2), t2, &src2).await.unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::Unreachable(_)),
        "{e}"
    );
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
    assert!(!e.needs_config_fix(), "a server that is down is waited for");
    assert_eq!(Error::Replica(e).code(), ErrorCode::DestinationUnreachable);
    server.restart().unwrap();
    c.write(0, Txid(2), Txid(2), t2, &src2).await.unwrap();
    let l0 = client(&server, "db").list(0).await.unwrap();
    assert_eq!(l0.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(), [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abs_sas_tokens_authorize_without_a_key_and_never_show_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let with_sas = |token: String| {
        let mut cfg = server.abs_config(CONTAINER, "sas");
        cfg.account_key = None;
        cfg.sas_token = Some(token.into());
        Arc::new(AbsReplica::new(&cfg).unwrap())
    };
    // A full token: everything a replica does.
    let c = with_sas(server.account_sas("rwdlac"));
    let (src, t) = ltx(dir.path(), 1, 1, 3);
    c.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    let listed = c.list_fresh(0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].created_at, t);
    assert_eq!(
        c.read_range(&listed[0], 0..4).await.unwrap(),
        fs::read(&src).unwrap()[..4]
    );
    c.delete(&listed).await.unwrap();
    assert!(c.list_fresh(0).await.unwrap().is_empty());

    // A token whose signature is wrong: the credentials, named; the token not shown.
    let good = server.account_sas("rwdlac");
    let bad = good.replace("sig=", "sig=AAAA");
    let e = with_sas(bad.clone()).list(0).await.unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::WrongCredentials { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("sas-token"), "{msg}");
    assert!(!msg.contains("sig=") && !msg.contains(&bad), "{msg}");

    // A read-only token: writes are refused as a permission, not a login, problem.
    let e = with_sas(server.account_sas("rl"))
        .write(0, Txid(2), Txid(2), t, &src)
        .await
        .unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::AccessDenied(_)),
        "{e}"
    );
    assert_eq!(Error::Replica(e).code(), ErrorCode::AccessDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_to_a_missing_container_fails_at_start_naming_bucket() {
    use tideline_engine::config::DbConfig;
    use tideline_engine::replicate::{EventSink, ReplicateSettings, replicate_to};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);",
    )
    .unwrap();
    let server = AzuriteServer::start(&dir.path().join("azurite")).unwrap();
    let client = open_client(&server.replica_config("not-created", "app.db")).unwrap();
    let sink: EventSink = Arc::new(|_| {});
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        replicate_to(
            vec![(DbConfig::new(&db), client)],
            ReplicateSettings::default(),
            async {},
            sink,
        ),
    )
    .await
    .expect("fails at once, not waited for")
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoSuchBucket, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("\"not-created\" does not exist"), "{msg}");
    assert!(msg.contains("bucket:"), "{msg}");
    assert!(!msg.contains(AZURITE_KEY), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abs_listings_follow_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let writer = client(&server, "paged");
    for txid in 1..=7 {
        let (src, t) = ltx(dir.path(), txid, txid, 1);
        writer
            .write(0, Txid(txid), Txid(txid), t, &src)
            .await
            .unwrap();
    }
    let limits = AbsLimits {
        list_page: Some(2),
        ..AbsLimits::default()
    };
    let paged = AbsReplica::with_limits(&server.abs_config(CONTAINER, "paged"), limits).unwrap();
    let listed = paged.list(0).await.unwrap();
    assert_eq!(
        listed.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(
        paged.request_counts().unwrap().list,
        4,
        "pages of 2, 2, 2, 1"
    );
}

/// A restore merges every file of its plan at once; more files than the client's
/// transfer permits, each larger than a reader's queue, must not wait on each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_of_many_large_files_streams_them_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    crate::replica_contract::restore_many_large_files(client(&server, "many"), dir.path()).await;
}
