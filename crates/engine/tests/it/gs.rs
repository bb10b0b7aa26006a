//! The Google Cloud Storage replica against a real JSON API server
//! (`gcp-storage-emulator` on 127.0.0.1, reached as `STORAGE_EMULATOR_HOST` names it):
//! the replica contract in Litestream's layout, the listing cache, exact creation times
//! from object metadata, large files streamed both ways, errors named for what to fix,
//! and a server that goes away and comes back.

use std::fs;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tideline_engine::config::GsReplicaConfig;
use tideline_engine::storage::gs::{GsLimits, GsReplica};
use tideline_engine::storage::{RemoteFailure, ReplicaClient, ReplicaError, open_client};
use tideline_engine::{Error, ErrorCode};
use tideline_ltx::Txid;
use tideline_testkit::GcsServer;

use crate::replica_contract::{contract, ltx};

const BUCKET: &str = "backups";

async fn server(dir: &std::path::Path) -> GcsServer {
    let server = GcsServer::start(&dir.join("gcs")).unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    server
}

fn client(server: &GcsServer, path: &str) -> Arc<GsReplica> {
    Arc::new(GsReplica::new(&server.gs_config(BUCKET, path)).unwrap())
}

fn remote_failure(e: &ReplicaError) -> &RemoteFailure {
    match e {
        ReplicaError::Remote { failure, .. } => failure,
        other => panic!("not a remote error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gs_replica_meets_the_contract_in_litestreams_layout() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let server = server(dir.path()).await;
    // Through the config's dispatch, as the replicator opens it.
    let opened = open_client(&server.replica_config(BUCKET, "db/app.db")).unwrap();
    assert_eq!(
        opened.describe(),
        format!("gs://{BUCKET}/db/app.db (emulator {})", server.endpoint())
    );
    contract(opened, &scratch).await;

    // Litestream's layout, `<path>/ltx/<level>/<min>-<max>.ltx`.
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
    // A fresh listing gives the exact creation time: the LTX header's, from the
    // object's `litestream-timestamp` metadata, with no read of the file.
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
async fn gs_listing_is_cached_and_an_idle_replica_makes_no_requests() {
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

/// A 20 MiB file goes up in one streamed multipart insert and comes back whole and in
/// ranges; prints the rates (debug build, emulator on 127.0.0.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gs_large_files_stream_up_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let data: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let src = dir.path().join("a.bin");
    fs::write(&src, &data).unwrap();
    let writer = client(&server, "large");
    let t0 = Instant::now();
    let info = writer
        .write(
            9,
            Txid(1),
            Txid(7),
            UNIX_EPOCH + Duration::from_secs(1),
            &src,
        )
        .await
        .unwrap();
    let up = t0.elapsed();
    assert_eq!(info.size, data.len() as u64);
    let counts = writer.request_counts().unwrap();
    assert_eq!(counts.put, 1, "{counts:?}");
    assert!(counts.bytes_up >= data.len() as u64);

    let reader = client(&server, "large");
    let listed = reader.list(9).await.unwrap();
    assert_eq!(listed[0].size, data.len() as u64);
    assert_eq!(listed[0].created_at, UNIX_EPOCH + Duration::from_secs(1));
    let file = listed[0].clone();
    let c = Arc::clone(&reader);
    let t1 = Instant::now();
    let back = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        c.open(&file).unwrap().read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    let down = t1.elapsed();
    assert!(back == data, "read back as stored");
    let part = reader.read_range(&listed[0], 1000..1100).await.unwrap();
    assert_eq!(part, data[1000..1100]);
    let tail = reader
        .read_range(&listed[0], data.len() as u64 - 10..data.len() as u64 + 50)
        .await
        .unwrap();
    assert_eq!(tail, data[data.len() - 10..], "clamped to the end");
    let mb = data.len() as f64 / 1e6;
    eprintln!(
        "gs emulator: upload {:.1} MB/s, download {:.1} MB/s ({mb:.0} MB)",
        mb / up.as_secs_f64(),
        mb / down.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gs_errors_name_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server(dir.path()).await;
    let (src, t) = ltx(dir.path(), 1, 1, 1);

    // A bucket that does not exist: named, with the key to fix.
    let missing = client_of(&server.gs_config("no-such-bucket", "db"));
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
        assert!(msg.contains("\"no-such-bucket\" does not exist"), "{msg}");
        assert!(msg.contains("bucket:"), "{msg}");
        assert!(e.needs_config_fix(), "a missing bucket is not waited for");
        assert_eq!(Error::Replica(e).code(), ErrorCode::NoSuchBucket);
    }

    // A key file that is not one: the variable named, nothing of the file shown.
    let bad = dir.path().join("sa.json");
    fs::write(
        &bad,
        r#"{"type":"service_account","client_email":"x@y","private_key":"-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n"}"#,
    )
    .unwrap();
    let cfg = GsReplicaConfig {
        bucket: BUCKET.into(),
        path: "db".into(),
        credentials_file: Some(bad),
        emulator: None,
    };
    let e = GsReplica::new(&cfg).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{msg}");
    assert!(
        msg.contains("private_key is not a PEM PKCS#8 RSA private key"),
        "{msg}"
    );
    assert!(!msg.contains("SECRETSECRET"), "{msg}");
    assert!(e.needs_config_fix());
    assert_eq!(Error::Replica(e).code(), ErrorCode::WrongCredentials);

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

fn client_of(cfg: &GsReplicaConfig) -> GsReplica {
    GsReplica::new(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_to_a_missing_gs_bucket_fails_at_start_naming_bucket() {
    use tideline_engine::config::DbConfig;
    use tideline_engine::replicate::{EventSink, ReplicateSettings, replicate_to};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);",
    )
    .unwrap();
    let server = GcsServer::start(&dir.path().join("gcs")).unwrap();
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
}

/// `maxResults` is sent and every object is listed. (gcp-storage-emulator has no paging:
/// it answers every object in one page with no `nextPageToken`; the follow-up pages are
/// tested against a stand-in in the client's unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gs_listings_with_a_page_size_list_everything() {
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
    let limits = GsLimits { list_page: Some(2) };
    let paged = GsReplica::with_limits(&server.gs_config(BUCKET, "paged"), limits).unwrap();
    let listed = paged.list(0).await.unwrap();
    assert_eq!(
        listed.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert!(paged.request_counts().unwrap().list >= 1);
}

/// A restore merges every file of its plan at once; more files than the client's
/// transfer permits, each larger than a reader's queue, must not wait on each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gs_restore_of_many_large_files_streams_them_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    crate::replica_contract::restore_many_large_files(client(&server, "many"), dir.path()).await;
}
