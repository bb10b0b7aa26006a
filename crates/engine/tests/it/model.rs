//! Model test: random transactions against a real SQLite database, captured by the
//! engine, with checkpoints at random points; the application-visible state after
//! every TXID and at random times is recorded, and restoring the replica at each of
//! them must give that state (the latest byte for byte). Seeded, so a failure replays.
//! Run on the folder of L0 files, and on S3, WebDAV and SFTP replicas (real servers on
//! 127.0.0.1) that every captured file is uploaded to.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tideline_engine::capture::Captured;
use tideline_engine::capture::{Database, DbOptions, default_meta_dir};
use tideline_engine::config::{ReplicaConfig, ReplicaTarget};
use tideline_engine::restore::{IntegrityCheck, Target, restore};
use tideline_engine::storage::file::FileReplica;
use tideline_engine::storage::s3::S3Replica;
use tideline_engine::storage::{ReplicaClient, open_client};
use tideline_ltx::Txid;
use tideline_testkit::{ACCESS_KEY, BUCKET, REGION, S3Server, SECRET_KEY, WebDavServer};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One random transaction of a random kind.
fn random_transaction(c: &Connection, rng: &mut Rng) {
    let tx = c.unchecked_transaction().unwrap();
    for _ in 0..1 + rng.below(4) {
        match rng.below(10) {
            0..=3 => {
                let n = 1 + rng.below(50);
                for _ in 0..n {
                    let len = rng.below(400) as usize;
                    tx.execute("INSERT INTO kv(k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v", (rng.below(5000) as i64, "v".repeat(len))).unwrap();
                }
            }
            4 => {
                tx.execute(
                    "INSERT INTO blobs(b) VALUES (?1)",
                    [vec![rng.below(256) as u8; 1 + rng.below(20_000) as usize]],
                )
                .unwrap();
            }
            5 | 6 => {
                tx.execute(
                    "UPDATE kv SET v = v || 'x' WHERE k % ?1 = 0",
                    [1 + rng.below(50) as i64],
                )
                .unwrap();
            }
            7 => {
                tx.execute(
                    "DELETE FROM kv WHERE k % ?1 = ?2",
                    (2 + rng.below(30) as i64, rng.below(2) as i64),
                )
                .unwrap();
            }
            8 => {
                tx.execute("DELETE FROM blobs WHERE id IN (SELECT id FROM blobs ORDER BY random() LIMIT 3)", []).unwrap();
            }
            _ => {
                let name = format!("extra{}", rng.below(3));
                tx.execute_batch(&format!("CREATE TABLE IF NOT EXISTS {name}(x); INSERT INTO {name} VALUES (randomblob(100));")).unwrap();
            }
        }
    }
    tx.commit().unwrap();
    if rng.below(40) == 0 {
        // Shrinks the database: pages past the new end must disappear on restore.
        c.execute_batch("VACUUM").unwrap();
    }
}

/// Everything the application can see: each table's row count and content hash.
fn state(c: &Connection) -> String {
    let mut tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.retain(|t| !t.starts_with("_litestream"));
    tables
        .iter()
        .map(|t| format!("{t}:{:x}", checksum(c, t)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A content hash of a table, in rowid order.
fn checksum(c: &Connection, table: &str) -> u64 {
    let mut stmt = c
        .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
        .unwrap();
    let cols = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut n = 0u64;
    while let Some(row) = rows.next().unwrap() {
        n += 1;
        for i in 0..cols {
            let v: rusqlite::types::Value = row.get(i).unwrap();
            for b in format!("{v:?}").bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    h ^ n
}

fn s3_client(server: &S3Server) -> Arc<dyn ReplicaClient> {
    let url = format!(
        "s3://{BUCKET}/model?endpoint={}&region={REGION}&forcePathStyle=true",
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
    Arc::new(S3Replica::new(s3).unwrap())
}

/// Where the model's files go: the meta directory itself (read as a folder replica),
/// or uploaded, as replication would, to a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Meta,
    S3,
    WebDav,
    #[cfg(feature = "sftp")]
    Sftp,
    Abs,
    Gs,
    #[cfg(feature = "nats")]
    Nats,
    #[cfg(feature = "oss")]
    Oss,
}

fn run(seed: u64, steps: usize, dest: Dest) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The server lives as long as the run.
    let (client, _server): (Arc<dyn ReplicaClient>, Option<Box<dyn std::any::Any>>) = match dest {
        Dest::Meta => (Arc::new(FileReplica::new(default_meta_dir(&path))), None),
        Dest::S3 => {
            let server = S3Server::start(&dir.path().join("s3")).unwrap();
            (s3_client(&server), Some(Box::new(server)))
        }
        Dest::WebDav => {
            let server = WebDavServer::start(&dir.path().join("dav")).unwrap();
            let cfg =
                ReplicaConfig::from_url_with_env(&server.replica_url("model"), &|_| None).unwrap();
            (open_client(&cfg).unwrap(), Some(Box::new(server)))
        }
        #[cfg(feature = "sftp")]
        Dest::Sftp => {
            let server = tideline_testkit::SshServer::start(&dir.path().join("sshd")).unwrap();
            let cfg = tideline_engine::config::SftpReplicaConfig {
                host: server.host_port(),
                user: server.user().to_owned(),
                password: None,
                path: "model".to_owned(),
                key_path: Some(server.client_key()),
                host_key: Some(server.host_key().to_owned()),
                concurrent_writes: true,
            };
            let client = tideline_engine::storage::sftp::SftpReplica::new(&cfg).unwrap();
            (Arc::new(client), Some(Box::new(server)))
        }
        Dest::Abs => {
            let server =
                tideline_testkit::AzuriteServer::start(&dir.path().join("azurite")).unwrap();
            rt.block_on(server.create_container("model")).unwrap();
            let cfg = server.replica_config("model", "db");
            (open_client(&cfg).unwrap(), Some(Box::new(server)))
        }
        Dest::Gs => {
            let server = tideline_testkit::GcsServer::start(&dir.path().join("gcs")).unwrap();
            rt.block_on(server.create_bucket("model")).unwrap();
            let cfg = server.replica_config("model", "db");
            (open_client(&cfg).unwrap(), Some(Box::new(server)))
        }
        #[cfg(feature = "nats")]
        Dest::Nats => {
            let server = tideline_testkit::NatsServer::start(&dir.path().join("nats")).unwrap();
            rt.block_on(server.create_bucket("model")).unwrap();
            let cfg = server.replica_config("model");
            (open_client(&cfg).unwrap(), Some(Box::new(server)))
        }
        #[cfg(feature = "oss")]
        Dest::Oss => {
            let server = tideline_testkit::OssServer::start(&dir.path().join("oss")).unwrap();
            let cfg = server.replica_config("db");
            (open_client(&cfg).unwrap(), Some(Box::new(server)))
        }
    };
    // On a server, every captured L0 file is uploaded as replication would.
    let upload = |caps: &[&Captured]| {
        if dest != Dest::Meta {
            for c in caps {
                rt.block_on(client.write(
                    0,
                    c.info.min_txid,
                    c.info.max_txid,
                    c.info.created_at,
                    &c.path,
                ))
                .unwrap();
            }
        }
    };
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT); CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB);").unwrap();
    let opts = DbOptions {
        min_checkpoint_page_count: 40,
        busy_timeout: Duration::from_secs(5),
        ..DbOptions::default()
    };
    let mut db = Database::open(&path, opts).unwrap();
    let mut rng = Rng(seed);
    let mut at_txid: Vec<(Txid, String)> = Vec::new();
    let mut at_time: Vec<(SystemTime, String)> = Vec::new();
    // File timestamps are milliseconds; keep recorded times apart from them.
    let mut clock = SystemTime::now();
    let tick = |clock: &mut SystemTime| {
        *clock += Duration::from_millis(10);
        *clock
    };
    let first = db.sync(tick(&mut clock)).unwrap().unwrap();
    upload(&[&first]);
    at_txid.push((first.info.max_txid, state(&c)));
    for _ in 0..steps {
        for _ in 0..1 + rng.below(3) {
            random_transaction(&c, &mut rng);
        }
        let now = tick(&mut clock);
        if let Some(cap) = db.sync(now).unwrap() {
            upload(&[&cap]);
            let s = state(&c);
            at_txid.push((cap.info.max_txid, s.clone()));
            at_time.push((now + Duration::from_millis(5), s));
        }
        if rng.below(5) == 0
            && let Some(mode) = db.checkpoint_due(Instant::now())
        {
            let now = tick(&mut clock);
            let ck = db.checkpoint(mode, now, Instant::now()).unwrap();
            upload(&ck.captured.iter().collect::<Vec<_>>());
            if let Some(last) = ck.captured.last() {
                at_txid.push((last.info.max_txid, state(&c)));
            }
        }
    }

    let restore_to = |target: Target, out: &Path| {
        rt.block_on(restore(
            Arc::clone(&client),
            target,
            out,
            IntegrityCheck::None,
        ))
        .unwrap()
    };
    let out = dir.path().join("out.db");
    for (txid, want) in &at_txid {
        let r = restore_to(Target::Txid(*txid), &out);
        assert_eq!(r.txid, *txid);
        assert_eq!(
            &state(&Connection::open(&out).unwrap()),
            want,
            "seed {seed}: TXID {txid}"
        );
    }
    for (i, (t, want)) in at_time.iter().enumerate() {
        if i % 3 == 0 {
            restore_to(Target::Time(*t), &out);
            assert_eq!(
                &state(&Connection::open(&out).unwrap()),
                want,
                "seed {seed}: time #{i}"
            );
        }
    }
    // Our own bookkeeping write after a checkpoint is captured by the next sync.
    while let Some(cap) = db.sync(tick(&mut clock)).unwrap() {
        upload(&[&cap]);
    }
    rt.block_on(restore(
        Arc::clone(&client),
        Target::Latest,
        &out,
        IntegrityCheck::Full,
    ))
    .unwrap();
    drop(db);
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    assert!(
        fs::read(&out).unwrap() == fs::read(&path).unwrap(),
        "seed {seed}: latest is not byte-identical"
    );
}

#[test]
fn random_transactions_restore_at_every_txid_and_time() {
    for seed in [1, 2] {
        run(seed, 100, Dest::Meta);
    }
}

#[test]
fn random_transactions_restore_at_every_txid_and_time_from_s3() {
    // Fewer steps: each restore at TXID n downloads n files (no compaction here).
    run(3, 50, Dest::S3);
}

#[test]
fn random_transactions_restore_at_every_txid_and_time_from_webdav() {
    run(4, 50, Dest::WebDav);
}

#[cfg(feature = "sftp")]
#[test]
fn random_transactions_restore_at_every_txid_and_time_from_sftp() {
    run(5, 50, Dest::Sftp);
}

#[test]
fn random_transactions_restore_at_every_txid_and_time_from_abs() {
    run(6, 50, Dest::Abs);
}

#[test]
fn random_transactions_restore_at_every_txid_and_time_from_gs() {
    run(7, 50, Dest::Gs);
}

#[cfg(feature = "nats")]
#[test]
fn random_transactions_restore_at_every_txid_and_time_from_nats() {
    run(8, 50, Dest::Nats);
}

#[cfg(feature = "oss")]
#[test]
fn random_transactions_restore_at_every_txid_and_time_from_oss() {
    run(9, 50, Dest::Oss);
}
