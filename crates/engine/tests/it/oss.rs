//! The Alibaba Cloud OSS replica against testkit's local OSS server (no OSS emulator
//! exists; it checks every request's OSS Signature V4 against one key pair, the scheme
//! Litestream's OSS SDK signs with): the replica contract in Litestream's layout, exact
//! creation times from object metadata, listing pages, a restore streaming many large
//! files, and errors named for what to fix.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tideline_engine::config::Sensitive;
use tideline_engine::storage::oss::OssReplica;
use tideline_engine::storage::{RemoteFailure, ReplicaClient, ReplicaError, open_client};
use tideline_engine::{Error, ErrorCode};
use tideline_ltx::Txid;
use tideline_testkit::{OSS_ACCESS_KEY_SECRET, OssServer};

use crate::replica_contract::{contract, ltx};

fn client(server: &OssServer, path: &str) -> Arc<OssReplica> {
    Arc::new(OssReplica::new(&server.oss_config(path)).unwrap())
}

fn remote_failure(e: &ReplicaError) -> &RemoteFailure {
    match e {
        ReplicaError::Remote { failure, .. } => failure,
        other => panic!("not a remote error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_replica_meets_the_contract_in_litestreams_layout() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let server = OssServer::start(&dir.path().join("oss")).unwrap();
    // Through the config's dispatch, as the replicator opens it.
    let opened = open_client(&server.replica_config("db/app.db")).unwrap();
    assert_eq!(
        opened.describe(),
        format!("oss://tideline/db/app.db (endpoint {})", server.endpoint()),
        "no secret in the description"
    );
    contract(opened, &scratch).await;
    assert_eq!(server.signatures().1, 0, "every request signed correctly");

    // Litestream's layout, `<path>/<level %04x>/<min>-<max>.ltx`, with the creation
    // time in `x-oss-meta-litestream-timestamp`.
    let key = "db/app.db/0009/0000000000000001-0000000000000001.ltx";
    assert!(
        server.keys().contains(&key.to_owned()),
        "{:?}",
        server.keys()
    );
    assert_eq!(
        server
            .metadata(key, "x-oss-meta-litestream-timestamp")
            .as_deref(),
        Some("2027-01-15T08:00:00.001Z")
    );
    // A listing gives LastModified; an exact one reads each object's metadata.
    let fresh = client(&server, "db/app.db");
    let exact = fresh.list_exact(1).await.unwrap();
    assert_eq!(
        exact[0].created_at,
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_003)
    );
    let counts = fresh.request_counts().unwrap();
    assert_eq!((counts.list, counts.head), (1, exact.len() as u64));
    assert!(client(&server, "db").list(9).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_listings_follow_every_page_and_an_idle_writer_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = OssServer::start(&dir.path().join("oss")).unwrap();
    let writer = client(&server, "paged");
    for txid in 1..=7 {
        let (src, t) = ltx(dir.path(), txid, txid, 1);
        writer
            .write(0, Txid(txid), Txid(txid), t, &src)
            .await
            .unwrap();
    }
    let paged = OssReplica::with_list_page(&server.oss_config("paged"), Some(2)).unwrap();
    let l0 = paged.list(0).await.unwrap();
    assert_eq!(
        l0.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(paged.request_counts().unwrap().list, 4, "7 keys, 2 a page");
    // The writer's own listing is cached: idle, nothing is sent.
    writer.list(0).await.unwrap();
    let idle = writer.request_counts().unwrap();
    for _ in 0..5 {
        assert_eq!(writer.list(0).await.unwrap().len(), 7);
    }
    assert_eq!(writer.request_counts().unwrap(), idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_restores_many_large_files_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = OssServer::start(&dir.path().join("oss")).unwrap();
    let c: Arc<dyn ReplicaClient> = client(&server, "many");
    crate::replica_contract::restore_many_large_files(c, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_errors_name_what_to_fix_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = OssServer::start(&dir.path().join("oss")).unwrap();
    let (src, t) = ltx(dir.path(), 1, 1, 1);

    // A wrong secret: the server refuses the signature; the keys to check are named.
    let mut cfg = server.oss_config("db");
    cfg.access_key_secret = Sensitive::new("not-the-secret".to_owned());
    let e = OssReplica::new(&cfg)
        .unwrap()
        .write(0, Txid(1), Txid(1), t, &src)
        .await
        .unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::WrongCredentials { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("SignatureDoesNotMatch"), "{msg}");
    assert!(msg.contains("access-key-id and secret-access-key"), "{msg}");
    assert!(msg.contains("OSS_ACCESS_KEY_SECRET"), "{msg}");
    assert!(
        !msg.contains("not-the-secret") && !msg.contains(OSS_ACCESS_KEY_SECRET),
        "{msg}"
    );
    assert!(e.needs_config_fix());
    assert_eq!(Error::Replica(e).code(), ErrorCode::WrongCredentials);

    // A bucket that does not exist: named, with the key to fix.
    let mut cfg = server.oss_config("db");
    cfg.bucket = "no-such-bucket".into();
    let missing = OssReplica::new(&cfg).unwrap();
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
    // Creating it (tests and set-up tools only) makes the same client work.
    missing.create_bucket().await.unwrap();
    missing.write(0, Txid(1), Txid(1), t, &src).await.unwrap();

    // An endpoint where nothing listens: unreachable, waited for.
    let mut cfg = server.oss_config("db");
    cfg.endpoint = Some("http://127.0.0.1:9".into());
    let e = OssReplica::new(&cfg).unwrap().list(0).await.unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::Unreachable(_)),
        "{e}"
    );
    assert!(!e.needs_config_fix());
}
