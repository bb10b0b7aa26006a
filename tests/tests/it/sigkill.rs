//! The `tideline replicate` process killed with SIGKILL at random moments (mid-capture,
//! mid-upload, mid-checkpoint) while the application keeps writing, and restarted:
//! nothing is lost or duplicated; the replica restores to exactly the database. Run on
//! a folder replica and on an S3 replica (a real S3 server on 127.0.0.1).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tideline_engine::config::ReplicaConfig;
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_engine::storage::file::FileReplica;
use tideline_engine::storage::{ReplicaClient, open_client};
use tideline_testkit::{ACCESS_KEY, BUCKET, REGION, S3Server, SECRET_KEY};

use tideline_e2e::tideline_bin as tideline;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, log: &Path) -> Proc {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        Command::new(tideline())
            .args(["replicate", "-config"])
            .arg(config)
            // Set but unusable, as on hosts with a corporate CA bundle: it must not
            // stop a plain-http loopback endpoint from working.
            .env("AWS_CA_BUNDLE", "/nonexistent/ca-bundle.pem")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_replicator_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("replica");
    let yaml = format!("type: file\n      path: {}", replica.display());
    run(dir, &yaml, Arc::new(FileReplica::new(&replica))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_replicator_loses_nothing_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let yaml = format!(
        "type: s3\n      bucket: {BUCKET}\n      path: backups/app.db\n      endpoint: {}\n      region: {REGION}\n      force-path-style: true\n      access-key-id: {ACCESS_KEY}\n      secret-access-key: {SECRET_KEY}",
        server.endpoint()
    );
    let url = format!(
        "s3://{BUCKET}/backups/app.db?endpoint={}&region={REGION}&forcePathStyle=true",
        server.endpoint()
    );
    let env = |k: &str| match k {
        "LITESTREAM_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_string()),
        "LITESTREAM_SECRET_ACCESS_KEY" => Some(SECRET_KEY.to_string()),
        _ => None,
    };
    let client = open_client(&ReplicaConfig::from_url_with_env(&url, &env).unwrap()).unwrap();
    let config = run(dir, &yaml, client).await;
    // `tideline status` shows what the last run cost in requests.
    let o = Command::new(tideline())
        .args(["status", "-config"])
        .arg(&config.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains(" put, ") && text.contains(" list, "),
        "{text}"
    );
    drop(server);
}

/// Runs the kill loop against the replica `replica_yaml` describes (read back through
/// `client`); returns the config path (and keeps the directory alive).
async fn run(
    dir: tempfile::TempDir,
    replica_yaml: &str,
    client: Arc<dyn ReplicaClient>,
) -> (PathBuf, tempfile::TempDir) {
    let db = dir.path().join("app.db");
    let log = dir.path().join("tideline.log");
    let config = dir.path().join("tideline.yml");
    fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    monitor-interval: 50ms\n    min-checkpoint-page-count: 64\n    replica:\n      {replica_yaml}\n      sync-interval: 50ms\n",
            db.display(),
        ),
    )
    .unwrap();
    let c = Connection::open(&db).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    drop(c);

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let writer = {
        let (stop, committed, db) = (Arc::clone(&stop), Arc::clone(&committed), db.clone());
        std::thread::spawn(move || {
            let c = Connection::open(&db).unwrap();
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                c.execute(
                    "INSERT INTO t(id, v) VALUES (?1, ?2)",
                    (i, format!("row {i} ").repeat(1 + (i % 50) as usize)),
                )
                .unwrap();
                committed.store(i + 1, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..6 {
        let p = start(&config, &log);
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
        // SIGKILL: no chance to clean up.
        drop(p);
    }
    // A last, clean run: catches up, then stops with SIGTERM after the writer stops.
    let mut p = start(&config, &log);
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = committed.load(Ordering::Relaxed);
    assert!(total > 200, "the writer made progress ({total} rows)");

    let out = dir.path().join("probe.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = restore(
            Arc::clone(&client),
            Target::Latest,
            &out,
            IntegrityCheck::None,
        )
        .await
        .is_ok()
            && Connection::open(&out)
                .unwrap()
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap()
                == total;
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica did not catch up to {total} rows:\n{}",
            fs::read_to_string(&log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(p.0.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "tideline did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "tideline exited with {status}:\n{}",
        fs::read_to_string(&log).unwrap()
    );

    // TXIDs in the replica are contiguous: nothing duplicated or skipped.
    let mut l0: Vec<u64> = list_levels(client.as_ref()).await.unwrap()[0]
        .iter()
        .map(|f| f.max_txid.0)
        .collect();
    l0.sort_unstable();
    assert!(
        l0.windows(2).all(|w| w[1] == w[0] + 1),
        "L0 TXIDs have gaps: {l0:?}"
    );
    assert_eq!(l0.first(), Some(&1));

    let out = dir.path().join("restored.db");
    restore(
        Arc::clone(&client),
        Target::Latest,
        &out,
        IntegrityCheck::Full,
    )
    .await
    .unwrap();
    let c = Connection::open(&db).unwrap();
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0);
    assert!(
        fs::read(&out).unwrap() == fs::read(&db).unwrap(),
        "restore after SIGKILLs is not byte-identical"
    );
    (config, dir)
}
