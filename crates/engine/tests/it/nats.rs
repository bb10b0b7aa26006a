//! The NATS replica against a real NATS server with JetStream (`nats-server -js` on
//! 127.0.0.1): the replica contract in Litestream's layout, the listing cache, exact
//! creation times from the `Litestream-Timestamp` object header, large files streamed
//! both ways, nkey logins, and errors named for what to fix (a missing bucket, a refused
//! password, token or nkey, the server down).

use std::fs;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tideline_engine::config::{NatsAuth, Sensitive};
use tideline_engine::storage::nats::NatsReplica;
use tideline_engine::storage::{RemoteFailure, ReplicaClient, ReplicaError, open_client};
use tideline_engine::{Error, ErrorCode};
use tideline_ltx::Txid;
use tideline_testkit::{NatsLogin, NatsServer};

use crate::replica_contract::{contract, ltx};

const BUCKET: &str = "backups";

async fn server(dir: &std::path::Path) -> NatsServer {
    let server = NatsServer::start(&dir.join("nats")).unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    server
}

fn client(server: &NatsServer) -> Arc<NatsReplica> {
    Arc::new(NatsReplica::new(&server.nats_config(BUCKET)))
}

fn remote_failure(e: &ReplicaError) -> &RemoteFailure {
    match e {
        ReplicaError::Remote { failure, .. } => failure,
        other => panic!("not a remote error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_replica_meets_the_contract_in_litestreams_layout() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let server = server(dir.path()).await;
    // Through the config's dispatch, as the replicator opens it.
    let opened = open_client(&server.replica_config(BUCKET)).unwrap();
    assert_eq!(
        opened.describe(),
        format!("nats://{}/{BUCKET}", server.addr())
    );
    contract(opened, &scratch).await;

    // A fresh client lists the exact creation time, the LTX header's, from the
    // object's `Litestream-Timestamp` header, with no read of the file.
    let fresh = client(&server);
    let snapshots = fresh.list(9).await.unwrap();
    assert_eq!(
        snapshots
            .iter()
            .map(|f| (f.min_txid.0, f.max_txid.0))
            .collect::<Vec<_>>(),
        [(1, 1)]
    );
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
async fn nats_listing_is_cached_and_an_idle_replica_makes_no_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let client = client(&server);
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
    assert_eq!(
        client.list_fresh(0).await.unwrap().len(),
        1,
        "deleted on the server"
    );
    // Deleting what is already gone is fine.
    let (_, t) = ltx(dir.path(), 1, 1, 7);
    let gone = tideline_engine::storage::FileInfo {
        level: 0,
        min_txid: Txid(1),
        max_txid: Txid(1),
        size: 0,
        created_at: t,
    };
    client.delete(&[gone]).await.unwrap();
    // Idle: nothing is sent at all.
    let idle = client.request_counts().unwrap();
    for _ in 0..5 {
        client.list(0).await.unwrap();
    }
    assert_eq!(client.request_counts().unwrap(), idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_large_files_stream_up_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let data: Vec<u8> = (0..32u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let src = dir.path().join("big.bin");
    fs::write(&src, &data).unwrap();
    let writer = client(&server);
    let started = Instant::now();
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
    let up = started.elapsed();
    assert_eq!(info.size, data.len() as u64);
    let reader = client(&server);
    let listed = reader.list(9).await.unwrap();
    assert_eq!(listed[0].size, data.len() as u64);
    assert_eq!(listed[0].created_at, UNIX_EPOCH + Duration::from_secs(1));
    let (file, c) = (listed[0].clone(), Arc::clone(&reader));
    let started = Instant::now();
    let back = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        c.open(&file).unwrap().read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    let down = started.elapsed();
    assert!(back == data, "read back as stored");
    let mb = data.len() as f64 / 1e6;
    eprintln!(
        "nats: 32 MiB up {:.1} MB/s, down {:.1} MB/s",
        mb / up.as_secs_f64(),
        mb / down.as_secs_f64()
    );
    let part = reader.read_range(&listed[0], 1000..1100).await.unwrap();
    assert_eq!(part, data[1000..1100]);
    let n = data.len() as u64;
    let tail = reader.read_range(&listed[0], n - 10..n + 50).await.unwrap();
    assert_eq!(tail, data[data.len() - 10..], "clamped to the end");
    assert!(
        reader
            .read_range(&listed[0], n + 1..n + 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_missing_bucket_and_a_down_server_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server(dir.path()).await;
    let (src, t) = ltx(dir.path(), 1, 1, 1);

    // A bucket that does not exist: named, not created.
    let missing = NatsReplica::new(&server.nats_config("no-such-bucket"));
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
        assert!(msg.contains("url: nats://"), "{msg}");
        assert!(e.needs_config_fix(), "a missing bucket is not waited for");
        assert_eq!(Error::Replica(e).code(), ErrorCode::NoSuchBucket);
    }

    // The server goes away: unreachable, named; it comes back: the same client writes.
    let c = client(&server);
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
    // A client that never connected: unreachable too.
    let e = client(&server).list(0).await.unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::Unreachable(_)),
        "{e}"
    );
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = c.write(0, Txid(2), Txid(2), t2, &src2).await {
        assert!(
            Instant::now() < deadline,
            "not written after the restart: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let l0 = client(&server).list(0).await.unwrap();
    assert_eq!(l0.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(), [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_wrong_password_or_token_names_the_keys_and_shows_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let login = NatsLogin::UserPassword("litestream".into(), "right-pass-1".into());
    let server = NatsServer::start_with(&dir.path().join("nats"), login).unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    client(&server)
        .list(0)
        .await
        .expect("the right password logs in");
    let mut cfg = server.nats_config(BUCKET);
    cfg.auth = NatsAuth::UserPassword {
        username: "litestream".into(),
        password: Sensitive::new("wrong-pass-2".into()),
    };
    let shown = format!("{:?}", NatsReplica::new(&cfg));
    assert!(!shown.contains("wrong-pass-2"), "{shown}");
    let e = NatsReplica::new(&cfg).list(0).await.unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::WrongCredentials { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("username and password"), "{msg}");
    assert!(
        !msg.contains("wrong-pass-2") && !msg.contains("right-pass-1"),
        "{msg}"
    );
    assert!(e.needs_config_fix());
    assert_eq!(Error::Replica(e).code(), ErrorCode::WrongCredentials);

    let dir = tempfile::tempdir().unwrap();
    let login = NatsLogin::Token("s3cret-token".into());
    let server = NatsServer::start_with(&dir.path().join("nats"), login).unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    client(&server)
        .list(0)
        .await
        .expect("the right token logs in");
    let mut cfg = server.nats_config(BUCKET);
    cfg.auth = NatsAuth::Token(Sensitive::new("not-the-token".into()));
    let e = NatsReplica::new(&cfg).list(0).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::WrongCredentials { .. }),
        "{e}"
    );
    assert!(msg.contains("check token"), "{msg}");
    assert!(
        !msg.contains("not-the-token") && !msg.contains("s3cret-token"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_nkey_seeds_sign_the_login_and_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start_with(&dir.path().join("nats"), NatsLogin::new_nkey()).unwrap();
    server.create_bucket(BUCKET).await.unwrap();
    let (src, t) = ltx(dir.path(), 1, 1, 1);
    let c = client(&server);
    c.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    assert_eq!(c.list_fresh(0).await.unwrap().len(), 1);

    let NatsLogin::Nkey(other) = NatsLogin::new_nkey() else {
        unreachable!()
    };
    let mut cfg = server.nats_config(BUCKET);
    cfg.auth = NatsAuth::Nkey(Sensitive::new(other.clone()));
    let e = NatsReplica::new(&cfg).list(0).await.unwrap_err();
    assert!(
        matches!(remote_failure(&e), RemoteFailure::WrongCredentials { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("check nkey"), "{msg}");
    assert!(!msg.contains(&other), "{msg}");
}

/// A restore merges every file of its plan at once; more files than the client's
/// transfer permits, each larger than a reader's queue, must not wait on each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_of_many_large_files_streams_them_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    crate::replica_contract::restore_many_large_files(client(&server), dir.path()).await;
}

/// A listing leaves no consumer behind: many more listings than the server's consumer
/// limit (1000 by default in nats-server 2.15) in a few seconds all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_listings_leave_no_consumers_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let c = client(&server);
    for i in 0..1200 {
        if let Err(e) = c.list_exact(0).await {
            panic!("listing {i}: {e}");
        }
    }
}

/// A read leaves no consumer behind either: more whole-file and ranged reads than the
/// server's consumer limit, in a few seconds, all succeed and return the file's bytes
/// (async-nats's own `get` keeps a consumer for 30 s after each read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_reads_leave_no_consumers_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let c = client(&server);
    let (src, t) = ltx(dir.path(), 1, 1, 7);
    c.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    let want = fs::read(&src).unwrap();
    let file = c.list_exact(0).await.unwrap().remove(0);
    for i in 0..1100 {
        if i % 2 == 0 {
            let c = Arc::clone(&c);
            let file = file.clone();
            let got = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                c.open(&file).unwrap().read_to_end(&mut out).map(|_| out)
            })
            .await
            .unwrap();
            assert_eq!(got.unwrap_or_else(|e| panic!("read {i}: {e}")), want);
        } else {
            let got = c.read_range(&file, 10..20).await;
            assert_eq!(
                got.unwrap_or_else(|e| panic!("read {i}: {e}")),
                want[10..20]
            );
        }
    }
}
