//! The replica client contract, checked against every backend that runs here: the
//! folder replica on a real directory, the in-memory replica, and the S3 replica
//! against a real S3 server on 127.0.0.1 (with its caching, multipart, error and
//! fault behaviour).

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tideline_engine::Error;
use tideline_engine::config::{ReplicaConfig, ReplicaTarget};
use tideline_engine::restore::{IntegrityCheck, Target, restore};
use tideline_engine::storage::file::FileReplica;
use tideline_engine::storage::memory::MemoryReplica;
use tideline_engine::storage::s3::S3Replica;
use tideline_engine::storage::{ReplicaClient, ReplicaError, S3Failure};
use tideline_ltx::{Decoder, Encoder, FLAG_NO_CHECKSUM, Header, Txid};
use tideline_testkit::{ACCESS_KEY, BUCKET, Op, REGION, S3Server, SECRET_KEY};

pub(crate) fn ltx(dir: &Path, min: u64, max: u64, fill: u8) -> (std::path::PathBuf, SystemTime) {
    let ts = 1_800_000_000_000 + max as i64;
    let h = Header {
        flags: FLAG_NO_CHECKSUM,
        page_size: 512,
        commit: 2,
        min_txid: Txid(min),
        max_txid: Txid(max),
        timestamp: ts,
        ..Header::default()
    };
    let mut enc = Encoder::new(Vec::new(), h).unwrap();
    if min == 1 {
        enc.write_page(1, &[fill; 512]).unwrap();
    }
    enc.write_page(2, &[fill; 512]).unwrap();
    let path = dir.join(format!("src-{min}-{max}.ltx"));
    fs::write(&path, enc.finish().unwrap().0).unwrap();
    (path, UNIX_EPOCH + Duration::from_millis(ts as u64))
}

pub(crate) async fn contract(client: Arc<dyn ReplicaClient>, scratch: &Path) {
    assert!(
        client.list(0).await.unwrap().is_empty(),
        "empty replica lists nothing"
    );
    assert!(matches!(
        client.list(10).await,
        Err(ReplicaError::BadLevel(10))
    ));

    // Written out of order, listed in TXID order, with size and creation time.
    let mut written = Vec::new();
    for (level, min, max) in [(0u8, 3u64, 3u64), (0, 2, 2), (9, 1, 1), (1, 1, 3)] {
        let (src, t) = ltx(scratch, min, max, min as u8);
        let info = client
            .write(level, Txid(min), Txid(max), t, &src)
            .await
            .unwrap();
        assert_eq!(info.size, fs::metadata(&src).unwrap().len());
        assert_eq!(info.created_at, t);
        written.push(info);
    }
    let l0 = client.list(0).await.unwrap();
    assert_eq!(l0.iter().map(|f| f.min_txid.0).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(l0[0], written[1]);
    assert_eq!(client.list(9).await.unwrap(), vec![written[2].clone()]);

    // Whole and ranged reads return the bytes written.
    let src = fs::read(ltx(scratch, 2, 2, 2).0).unwrap();
    // Readers block, so they are used on blocking threads (as restore does).
    let (c, f) = (Arc::clone(&client), l0[0].clone());
    let whole = tokio::task::spawn_blocking(move || {
        let mut whole = Vec::new();
        c.open(&f).unwrap().read_to_end(&mut whole).unwrap();
        Decoder::new(c.open(&f).unwrap()).unwrap().finish().unwrap();
        whole
    })
    .await
    .unwrap();
    assert_eq!(whole, src);
    assert_eq!(
        client.read_range(&l0[0], 10..20).await.unwrap(),
        src[10..20]
    );
    assert_eq!(
        client.read_range(&l0[0], 100..u64::MAX).await.unwrap(),
        src[100..]
    );

    // Restore through the client: snapshot 1-1 then the L1 1-3 reaches furthest.
    let out = scratch.join("restored.db");
    let r = restore(
        Arc::clone(&client),
        Target::Latest,
        &out,
        IntegrityCheck::None,
    )
    .await
    .unwrap();
    assert_eq!(r.txid, Txid(3));
    assert_eq!(fs::read(&out).unwrap(), [[1u8; 512], [1u8; 512]].concat());
    // TXID 2: snapshot 1-1 plus L0 2-2 (1-3 overshoots).
    let r = restore(
        Arc::clone(&client),
        Target::Txid(Txid(2)),
        &out,
        IntegrityCheck::None,
    )
    .await
    .unwrap();
    assert_eq!(r.txid, Txid(2));
    assert_eq!(fs::read(&out).unwrap(), [[1u8; 512], [2u8; 512]].concat());
    // TXID 4 does not exist.
    let r = restore(
        Arc::clone(&client),
        Target::Txid(Txid(4)),
        &out,
        IntegrityCheck::None,
    )
    .await;
    assert!(matches!(r, Err(Error::Plan(_))), "{r:?}");

    // Deleting is idempotent; reading a deleted file says which one is missing.
    client.delete(&l0).await.unwrap();
    client.delete(&l0).await.unwrap();
    assert!(client.list(0).await.unwrap().is_empty());
    let (c, f) = (Arc::clone(&client), l0[0].clone());
    let err = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        match c.open(&f) {
            // S3 opens lazily: the missing file shows on the first read.
            Ok(mut r) => {
                let e = r.read_to_end(&mut buf).expect_err("deleted");
                *e.into_inner()
                    .expect("a replica error")
                    .downcast::<ReplicaError>()
                    .expect("a replica error")
            }
            Err(e) => e,
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(err, ReplicaError::NotFound { level: 0, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("0000000000000002-0000000000000002.ltx"),
        "{err}"
    );
    assert!(client.read_range(&l0[0], 0..1).await.is_err());
}

/// A restore merges every file of its plan at once: 14 files of 1 MiB, more than a
/// remote client's transfer permits and each larger than a reader's queue, must all be
/// read at once without one reader waiting on another's permit.
pub(crate) async fn restore_many_large_files(client: Arc<dyn ReplicaClient>, dir: &Path) {
    use rusqlite::Connection;
    use tideline_engine::capture::{Database, DbOptions};
    use tideline_engine::restore::{IntegrityCheck, Target, restore};

    let path = dir.join("many.db");
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
    let out = dir.join("out.db");
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

#[tokio::test]
async fn memory_replica_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(MemoryReplica::new()), dir.path()).await;
}

#[tokio::test]
async fn file_replica_meets_the_contract_in_litestreams_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("replica");
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let client = Arc::new(FileReplica::new(&root));
    assert_eq!(client.describe(), format!("file://{}", root.display()));
    contract(client.clone(), &scratch).await;

    // Litestream's layout: decimal level directories, mtime = header timestamp.
    let snap = root.join("ltx/9/0000000000000001-0000000000000001.ltx");
    let mtime = fs::metadata(&snap).unwrap().modified().unwrap();
    assert_eq!(mtime, UNIX_EPOCH + Duration::from_millis(1_800_000_000_001));
    assert!(
        root.join("ltx/1/0000000000000001-0000000000000003.ltx")
            .is_file()
    );

    // Temporary files, other names and directories are not LTX files.
    fs::write(
        root.join("ltx/9/0000000000000001-0000000000000005.ltx.tmp"),
        b"partial",
    )
    .unwrap();
    fs::write(root.join("ltx/9/notes.txt"), b"x").unwrap();
    fs::create_dir_all(root.join("ltx/9/0000000000000001-0000000000000009.ltx")).unwrap();
    assert_eq!(client.list(9).await.unwrap().len(), 1);
}

/// An S3 client for the test server, from a URL as `tideline` takes it.
fn s3_client(server: &S3Server, path: &str, secret: &str) -> Arc<S3Replica> {
    let url = format!(
        "s3://{BUCKET}/{path}?endpoint={}&region={REGION}&forcePathStyle=true",
        server.endpoint()
    );
    let secret = secret.to_string();
    let env = move |k: &str| match k {
        "LITESTREAM_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_string()),
        "LITESTREAM_SECRET_ACCESS_KEY" => Some(secret.clone()),
        _ => None,
    };
    let cfg = ReplicaConfig::from_url_with_env(&url, &env).unwrap();
    let ReplicaTarget::S3(s3) = &cfg.target else {
        panic!("not an S3 config: {cfg:?}")
    };
    Arc::new(S3Replica::new(s3).unwrap())
}

fn s3_failure(e: &ReplicaError) -> &S3Failure {
    match e {
        ReplicaError::S3 { failure, .. } => failure,
        other => panic!("not an S3 error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_replica_meets_the_contract_in_litestreams_s3_layout() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, "backups/app.db", SECRET_KEY);
    assert_eq!(
        client.describe(),
        format!(
            "s3://{BUCKET}/backups/app.db (endpoint {})",
            server.endpoint()
        )
    );
    contract(client.clone(), &scratch).await;

    // Litestream's S3 layout: `<path>/<level as %04x>/<min>-<max>.ltx`.
    assert!(
        server
            .object_path("backups/app.db/0009/0000000000000001-0000000000000001.ltx")
            .is_file()
    );
    assert!(
        server
            .object_path("backups/app.db/0001/0000000000000001-0000000000000003.ltx")
            .is_file()
    );
    // A fresh client lists from the server: LIST gives the upload time, and the
    // exact listing reads the header timestamp back from `litestream-timestamp`.
    let fresh = s3_client(&server, "backups/app.db", SECRET_KEY);
    let listed = fresh.list(9).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_ne!(
        listed[0].created_at,
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_001)
    );
    let exact = fresh.list_exact(9).await.unwrap();
    assert_eq!(
        exact[0].created_at,
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_001)
    );
    assert!(fresh.request_counts().unwrap().head >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_listing_is_cached_and_an_idle_replica_makes_no_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, "db", SECRET_KEY);
    // A client that has not written (a reader) asks the server every time: someone
    // else may be writing.
    assert!(client.list(0).await.unwrap().is_empty());
    assert!(client.list(0).await.unwrap().is_empty());
    assert_eq!(server.total_requests(), 2, "{:?}", server.counts());

    let (src, t) = ltx(dir.path(), 1, 1, 7);
    client.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    let (src, t) = ltx(dir.path(), 2, 2, 8);
    client.write(0, Txid(2), Txid(2), t, &src).await.unwrap();
    // A client that writes is the replica's writer: one more LIST, then its own
    // writes keep the cached listing true.
    for _ in 0..10 {
        let l0 = client.list(0).await.unwrap();
        assert_eq!(l0.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(), [1, 2]);
    }
    let counts = server.counts();
    assert_eq!(counts.get(&Op::List), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&Op::Put), Some(&2), "{counts:?}");
    client
        .delete(&client.list(0).await.unwrap()[..1])
        .await
        .unwrap();
    assert_eq!(client.list(0).await.unwrap().len(), 1);
    assert_eq!(server.counts().get(&Op::DeleteObjects), Some(&1));

    // The client's counters agree with the server's.
    let mine = client.request_counts().unwrap();
    assert_eq!(mine.list, 3);
    assert_eq!(mine.put, 2);
    assert_eq!(mine.delete, 1);
    assert_eq!(mine.total(), server.total_requests());
    assert!(mine.bytes_up > 0);
    assert_eq!(mine.bytes_up, server.bytes_in());

    // Idle: nothing at all.
    let before = server.total_requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.total_requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_multipart_uploads_and_chunked_reads_round_trip_large_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, "big", SECRET_KEY);
    // 11 MiB + 3 bytes of non-repeating data: three parts at the 5 MiB minimum.
    let mut data = Vec::with_capacity(11 << 20);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while data.len() < (11 << 20) + 3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate((11 << 20) + 3);
    let src = dir.path().join("big.ltx");
    fs::write(&src, &data).unwrap();
    let t = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
    let info = client.write(9, Txid(1), Txid(5), t, &src).await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    let counts = server.counts();
    assert_eq!(counts.get(&Op::CreateMultipart), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&Op::UploadPart), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&Op::CompleteMultipart), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&Op::Put), None, "{counts:?}");
    assert_eq!(
        fs::read(server.object_path("big/0009/0000000000000001-0000000000000005.ltx")).unwrap(),
        data
    );
    // The timestamp survives multipart uploads too.
    let fresh = s3_client(&server, "big", SECRET_KEY);
    assert_eq!(fresh.list_exact(9).await.unwrap()[0].created_at, t);

    // A whole-file read comes in 4 MiB ranged chunks, in order.
    let gets_before = server.counts().get(&Op::Get).copied().unwrap_or(0);
    let client2 = Arc::clone(&client);
    let info2 = info.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        client2.open(&info2).unwrap().read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(read == data, "whole read differs");
    assert_eq!(
        server.counts().get(&Op::Get).copied().unwrap_or(0) - gets_before,
        3
    );
    let mid = (8 << 20) - 5..(8 << 20) + 5;
    assert_eq!(
        client
            .read_range(&info, mid.start as u64..mid.end as u64)
            .await
            .unwrap(),
        data[mid]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_errors_name_what_to_fix_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = S3Server::start(&dir.path().join("s3")).unwrap();

    let wrong = s3_client(&server, "db", "not-the-secret");
    let err = wrong.list(0).await.unwrap_err();
    assert!(
        matches!(s3_failure(&err), S3Failure::WrongCredentials { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("wrong credentials"), "{text}");
    assert!(text.contains(&format!("s3://{BUCKET}/db")), "{text}");
    assert!(text.contains(&server.endpoint()), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");

    let url = format!(
        "s3://no-such-bucket/db?endpoint={}&region={REGION}&forcePathStyle=true",
        server.endpoint()
    );
    let env = |k: &str| match k {
        "LITESTREAM_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_string()),
        "LITESTREAM_SECRET_ACCESS_KEY" => Some(SECRET_KEY.to_string()),
        _ => None,
    };
    let cfg = ReplicaConfig::from_url_with_env(&url, &env).unwrap();
    let ReplicaTarget::S3(s3) = &cfg.target else {
        unreachable!()
    };
    let missing = S3Replica::new(s3).unwrap();
    let err = missing.check().await.unwrap_err();
    assert_eq!(s3_failure(&err), &S3Failure::NoSuchBucket, "{err}");
    assert!(err.to_string().contains("no-such-bucket"), "{err}");

    // Throttling and server errors are retried with backoff…
    let client = s3_client(&server, "db", SECRET_KEY);
    let (src, t) = ltx(dir.path(), 1, 1, 1);
    server.fail_next(2, 503);
    client.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    assert_eq!(server.counts().get(&Op::Put), Some(&3));
    server.fail_next(1, 500);
    assert_eq!(client.list_exact(0).await.unwrap().len(), 1);
    // …until the retries run out, which is named.
    server.fail_next(50, 503);
    let (src2, t2) = ltx(dir.path(), 2, 2, 2);
    let err = client
        .write(0, Txid(2), Txid(2), t2, &src2)
        .await
        .unwrap_err();
    assert_eq!(s3_failure(&err), &S3Failure::Throttled, "{err}");
    server.fail_next(0, 503);

    // A server whose clock differs, and keys without permission, are named as such.
    server.fail_next_with(1, 403, "RequestTimeTooSkewed");
    let err = client.list_exact(0).await.unwrap_err();
    assert_eq!(s3_failure(&err), &S3Failure::ClockSkew, "{err}");
    assert!(err.to_string().contains("clock"), "{err}");
    server.fail_next_with(1, 403, "AccessDenied");
    let err = client.list_exact(0).await.unwrap_err();
    assert_eq!(s3_failure(&err), &S3Failure::AccessDenied, "{err}");
    assert!(err.to_string().contains("s3:PutObject"), "{err}");

    // A stopped server is unreachable, named with the endpoint.
    server.stop();
    let err = client.check().await.unwrap_err();
    assert!(
        matches!(s3_failure(&err), S3Failure::Unreachable(_)),
        "{err}"
    );
    assert!(
        err.to_string().contains("cannot reach the endpoint"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_cut_by_a_server_restart_is_retried_and_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, "db", SECRET_KEY);
    assert!(client.list(0).await.unwrap().is_empty());
    let (src, t) = ltx(dir.path(), 1, 1, 1);

    server.hold(Op::Put);
    let c = Arc::clone(&client);
    let src2 = src.clone();
    let upload = tokio::spawn(async move { c.write(0, Txid(1), Txid(1), t, &src2).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.held() == 0 {
        assert!(std::time::Instant::now() < deadline, "upload never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The server dies mid-upload and stays down through the client's retries.
    server.stop();
    let err = upload.await.unwrap().unwrap_err();
    assert!(
        matches!(s3_failure(&err), S3Failure::Unreachable(_)),
        "{err}"
    );
    assert!(
        !server
            .object_path("db/0000/0000000000000001-0000000000000001.ltx")
            .exists(),
        "a cut upload left an object"
    );
    // Back up: the same file uploads again, once.
    server.restart().unwrap();
    client.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    let l0 = client.list(0).await.unwrap();
    assert_eq!(l0.len(), 1);
    assert_eq!(
        fs::read(server.object_path("db/0000/0000000000000001-0000000000000001.ltx")).unwrap(),
        fs::read(&src).unwrap()
    );
}
