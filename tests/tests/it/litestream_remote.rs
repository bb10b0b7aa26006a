//! Tideline and Litestream 0.5.17 over remote destinations, both directions, on real
//! servers on 127.0.0.1 — an S3 server that checks SigV4 signatures, a WebDAV server
//! (`rclone serve webdav`), an Azure Blob Storage server (Azurite, checking Shared
//! Key signatures) and an OSS server (testkit's, checking OSS Signature V4 for both
//! tools, as no OSS emulator exists): each restores (latest, at TXIDs and at a timestamp) what the other
//! replicated and compacted, and an idle replicator makes no requests.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tideline_e2e::{Litestream, app, checkpointed, litestream, rows, write};
use tideline_engine::config::{DbConfig, ReplicaConfig};
use tideline_engine::replicate::{Event, EventSink, ReplicateSettings, replicate_to};
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_engine::storage::{ReplicaClient, open_client};
use tideline_engine::time::format_rfc3339;
use tideline_ltx::Txid;
use tideline_testkit::{
    ACCESS_KEY, AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer, BUCKET, OSS_ACCESS_KEY_ID,
    OSS_ACCESS_KEY_SECRET, OSS_BUCKET, OSS_REGION, OssServer, REGION, S3Server, SECRET_KEY,
    WEBDAV_PASSWORD, WEBDAV_USER, WebDavServer,
};
use tokio::sync::oneshot;

const PATH: &str = "backups/app.db";

/// A destination both tools replicate to: its replica URL, the replica section of a
/// Litestream config, the names of a level's files on the server, and (where the
/// server counts them) its requests.
trait Remote {
    fn url(&self) -> String;
    fn litestream_replica(&self) -> String;
    /// The file names in level `level`, as the server holds them.
    fn level_names(&self, level: u8) -> Vec<String>;
    fn total_requests(&self) -> Option<u64>;
    /// Tideline's config of this replica (by default, from its URL).
    fn replica_config(&self) -> ReplicaConfig {
        let env = |k: &str| match k {
            "LITESTREAM_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_string()),
            "LITESTREAM_SECRET_ACCESS_KEY" => Some(SECRET_KEY.to_string()),
            _ => None,
        };
        ReplicaConfig::from_url_with_env(&self.url(), &env).unwrap()
    }
    /// What `litestream restore` restores from (by default, the replica URL); `scratch`
    /// is a folder for any file it needs.
    fn litestream_source(&self, _scratch: &Path) -> Vec<String> {
        vec![self.url()]
    }
    /// How far from any upload a `-timestamp` must be for Litestream, which takes a
    /// file's creation time from the server's listing, to see the same files as
    /// Tideline, which reads the LTX header.
    fn time_margin(&self) -> Duration {
        Duration::from_millis(300)
    }
}

impl Remote for S3Server {
    fn url(&self) -> String {
        format!(
            "s3://{BUCKET}/{PATH}?endpoint={}&region={REGION}&forcePathStyle=true",
            self.endpoint()
        )
    }
    fn litestream_replica(&self) -> String {
        format!(
            "type: s3\n      bucket: {BUCKET}\n      path: {PATH}\n      endpoint: {}\n      region: {REGION}\n      force-path-style: true\n      access-key-id: {ACCESS_KEY}\n      secret-access-key: {SECRET_KEY}",
            self.endpoint()
        )
    }
    /// Litestream's S3 layout: `<path>/<level %04x>/<min>-<max>.ltx`.
    fn level_names(&self, level: u8) -> Vec<String> {
        names_in(&self.object_path(&format!("{PATH}/{level:04x}")))
    }
    fn total_requests(&self) -> Option<u64> {
        Some(S3Server::total_requests(self))
    }
}

impl Remote for WebDavServer {
    fn url(&self) -> String {
        self.replica_url(PATH)
    }
    fn litestream_replica(&self) -> String {
        format!(
            "type: webdav\n      webdav-url: {}\n      webdav-username: {WEBDAV_USER}\n      webdav-password: {WEBDAV_PASSWORD}\n      path: {PATH}",
            self.url()
        )
    }
    /// Litestream's WebDAV layout: `<path>/ltx/<level>/<min>-<max>.ltx`.
    fn level_names(&self, level: u8) -> Vec<String> {
        names_in(&self.root().join(format!("{PATH}/ltx/{level}")))
    }
    fn total_requests(&self) -> Option<u64> {
        None
    }
    /// WebDAV dates (`getlastmodified`) have whole seconds.
    fn time_margin(&self) -> Duration {
        Duration::from_millis(1300)
    }
}

/// The container both tools use on Azurite.
const CONTAINER: &str = "litestream";

impl Remote for AzuriteServer {
    fn url(&self) -> String {
        self.replica_url(CONTAINER, PATH)
    }
    fn litestream_replica(&self) -> String {
        format!(
            "type: abs\n      account-name: {AZURITE_ACCOUNT}\n      account-key: {AZURITE_KEY}\n      bucket: {CONTAINER}\n      path: {PATH}\n      endpoint: {}",
            self.endpoint()
        )
    }
    /// Litestream's ABS layout: blobs `<path>/ltx/<level>/<min>-<max>.ltx`, listed by
    /// that prefix (blobs are not files on Azurite's disk).
    fn level_names(&self, level: u8) -> Vec<String> {
        let c = open_client(&self.replica_config(CONTAINER, PATH)).unwrap();
        let files = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(c.list(level))
        })
        .unwrap();
        files.iter().map(|f| f.filename()).collect()
    }
    fn total_requests(&self) -> Option<u64> {
        None
    }
    fn replica_config(&self) -> ReplicaConfig {
        AzuriteServer::replica_config(self, CONTAINER, PATH)
    }
    /// An abs URL has no place for the endpoint (in Litestream too): a config file.
    fn litestream_source(&self, scratch: &Path) -> Vec<String> {
        let config = scratch.join("litestream-restore.yml");
        let db = scratch.join("app.db");
        fs::write(
            &config,
            format!(
                "dbs:\n  - path: {}\n    replica:\n      {}\n",
                db.display(),
                self.litestream_replica()
            ),
        )
        .unwrap();
        vec![
            "-config".into(),
            config.display().to_string(),
            db.display().to_string(),
        ]
    }
}

impl Remote for OssServer {
    fn url(&self) -> String {
        format!("oss://{OSS_BUCKET}/{PATH}")
    }
    fn litestream_replica(&self) -> String {
        format!(
            "type: oss\n      bucket: {OSS_BUCKET}\n      path: {PATH}\n      region: {OSS_REGION}\n      endpoint: {}\n      access-key-id: {OSS_ACCESS_KEY_ID}\n      secret-access-key: {OSS_ACCESS_KEY_SECRET}",
            self.endpoint()
        )
    }
    /// Litestream's OSS layout, S3's: objects `<path>/<level %04x>/<min>-<max>.ltx`.
    fn level_names(&self, level: u8) -> Vec<String> {
        let prefix = format!("{PATH}/{level:04x}/");
        self.keys()
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect()
    }
    fn total_requests(&self) -> Option<u64> {
        None
    }
    fn replica_config(&self) -> ReplicaConfig {
        OssServer::replica_config(self, PATH)
    }
    /// The endpoint is not part of an oss URL (in Litestream too): a config file.
    fn litestream_source(&self, scratch: &Path) -> Vec<String> {
        let config = scratch.join("litestream-restore.yml");
        let db = scratch.join("app.db");
        let replica = self.litestream_replica();
        let text = format!(
            "dbs:\n  - path: {}\n    replica:\n      {replica}\n",
            db.display()
        );
        fs::write(&config, text).unwrap();
        vec![
            "-config".into(),
            config.display().to_string(),
            db.display().to_string(),
        ]
    }
}

/// The `.ltx` names in a folder.
fn names_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ltx"))
        .collect()
}

fn client(server: &dyn Remote) -> Arc<dyn ReplicaClient> {
    open_client(&server.replica_config()).unwrap()
}

/// Restores with Litestream from the replica.
fn ls_restore(bin: &Path, server: &dyn Remote, out: &Path, extra: &[&str]) {
    let _ = fs::remove_file(out);
    let o = Command::new(bin)
        .arg("restore")
        .args(extra)
        .arg("-o")
        .arg(out)
        .args(server.litestream_source(out.parent().unwrap()))
        .env("LITESTREAM_ACCESS_KEY_ID", ACCESS_KEY)
        .env("LITESTREAM_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "litestream restore {extra:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn tl_restore(server: &dyn Remote, out: &Path, target: Target) -> Txid {
    restore(client(server), target, out, IntegrityCheck::Full)
        .await
        .unwrap()
        .txid
}

async fn l0_txids(server: &dyn Remote) -> Vec<Txid> {
    list_levels(client(server).as_ref()).await.unwrap()[0]
        .iter()
        .map(|f| f.max_txid)
        .collect()
}

/// Waits (bounded) until a restore of the replica has `want` rows.
async fn wait_rows(server: &dyn Remote, scratch: &Path, want: i64) {
    let out = scratch.join("probe.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if restore(client(server), Target::Latest, &out, IntegrityCheck::None)
            .await
            .is_ok()
            && rows(&out) == want
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica did not reach {want} rows within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&c, 0, 100);
    (dir, db, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated_to_s3() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated_to_s3") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    litestream_restores_what_tideline_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated_to_webdav() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated_to_webdav") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    litestream_restores_what_tideline_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated_to_oss() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated_to_oss") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = OssServer::start(&dir.path().join("oss")).unwrap();
    litestream_restores_what_tideline_replicated(&ls, &server, dir.path(), &db, c).await;
    let (accepted, rejected) = server.signatures();
    assert!(
        accepted > 0 && rejected == 0,
        "{accepted} signed, {rejected} refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated_to_abs() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated_to_abs") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = AzuriteServer::start(&dir.path().join("azurite")).unwrap();
    server.create_container(CONTAINER).await.unwrap();
    litestream_restores_what_tideline_replicated(&ls, &server, dir.path(), &db, c).await;
}

async fn litestream_restores_what_tideline_replicated(
    ls: &Path,
    server: &dyn Remote,
    dir: &Path,
    db: &Path,
    c: rusqlite::Connection,
) {
    let mut cfg = DbConfig::new(db);
    cfg.monitor_interval = Duration::from_millis(100);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let events = Arc::new(std::sync::Mutex::new(Vec::<Event>::new()));
    let sink: EventSink = {
        let events = Arc::clone(&events);
        Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
    };
    let tl_client = client(server);
    // Short compaction windows and snapshots, so this replica holds every level kind
    // Litestream must read: L0, L1, L2 and L9 snapshots past TXID 1.
    let mut settings = ReplicateSettings::default();
    settings.levels.levels = vec![Duration::from_secs(1), Duration::from_secs(2)];
    settings.levels.snapshot_interval = Duration::from_secs(3);
    let task = tokio::spawn(replicate_to(
        vec![(cfg, Arc::clone(&tl_client))],
        settings,
        async move {
            let _ = stop_rx.await;
        },
        sink,
    ));
    wait_rows(server, dir, 100).await;
    for k in 0..10 {
        write(&c, 1000 + k * 50, 50);
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    wait_rows(server, dir, 600).await;
    // The replica's newest TXID at any level (a snapshot can be ahead of the uploaded
    // L0 files: it is taken from the live database).
    let mid = list_levels(client(server).as_ref())
        .await
        .unwrap()
        .iter()
        .flatten()
        .map(|f| f.max_txid)
        .max()
        .unwrap();
    // A moment between the 600-row state and the next write, for -timestamp.
    tokio::time::sleep(server.time_margin()).await;
    let between = SystemTime::now();
    tokio::time::sleep(server.time_margin()).await;
    write(&c, 5000, 300);
    wait_rows(server, dir, 900).await;
    // Wait (bounded) for compactions and a snapshot past TXID 1.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let levels = list_levels(client(server).as_ref()).await.unwrap();
        if !levels[1].is_empty()
            && !levels[2].is_empty()
            && levels[9].iter().any(|f| f.max_txid > Txid(1))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no L1/L2/L9 from tideline: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Once settled (the last windows compacted, the last snapshot taken), an idle
    // replicator makes no requests at all.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = tl_client.request_counts().unwrap();
        let server_before = server.total_requests();
        tokio::time::sleep(Duration::from_secs(3)).await;
        if tl_client.request_counts().unwrap() == before {
            // (The probes above used their own clients; nothing else talks to it.)
            assert_eq!(server.total_requests(), server_before);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still making requests 30 s after the last write: {:?}",
            tl_client.request_counts()
        );
    }

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(
        !events.lock().unwrap().iter().any(Event::is_error),
        "{:?}",
        events.lock().unwrap()
    );
    drop(c);
    let want = checkpointed(db);

    let out = dir.join("ls.db");
    ls_restore(ls, server, &out, &[]);
    assert!(
        fs::read(&out).unwrap() == want,
        "litestream's restore of tideline's replica is not byte-identical"
    );
    ls_restore(ls, server, &out, &["-txid", &mid.to_string()]);
    let ours = dir.join("tl.db");
    tl_restore(server, &ours, Target::Txid(mid)).await;
    assert!(
        fs::read(&out).unwrap() == fs::read(&ours).unwrap(),
        "restores at TXID {mid} differ"
    );
    assert_eq!(rows(&out), 600);
    // By time: Litestream reads our `litestream-timestamp` metadata.
    ls_restore(ls, server, &out, &["-timestamp", &format_rfc3339(between)]);
    assert_eq!(rows(&out), 600, "litestream -timestamp");
    tl_restore(server, &ours, Target::Time(between)).await;
    assert_eq!(rows(&ours), 600, "tideline by time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_replicated_to_s3() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_to_s3") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    tideline_restores_what_litestream_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_replicated_to_webdav() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_to_webdav") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    tideline_restores_what_litestream_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_replicated_to_abs() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_to_abs") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = AzuriteServer::start(&dir.path().join("azurite")).unwrap();
    server.create_container(CONTAINER).await.unwrap();
    tideline_restores_what_litestream_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_replicated_to_oss() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_to_oss") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = OssServer::start(&dir.path().join("oss")).unwrap();
    tideline_restores_what_litestream_replicated(&ls, &server, dir.path(), &db, c).await;
    let (accepted, rejected) = server.signatures();
    assert!(
        accepted > 0 && rejected == 0,
        "{accepted} signed, {rejected} refused"
    );
    // The creation time is in OSS user metadata, as the SDK writes it.
    let key = format!("{PATH}/0009/{}", server.level_names(9)[0]);
    assert!(
        server
            .metadata(&key, "x-oss-meta-litestream-timestamp")
            .is_some(),
        "{key}"
    );
}

async fn tideline_restores_what_litestream_replicated(
    ls: &Path,
    server: &dyn Remote,
    dir: &Path,
    db: &Path,
    c: rusqlite::Connection,
) {
    let config = dir.join("litestream.yml");
    fs::write(
        &config,
        format!(
            "levels:\n  - interval: 2s\nsnapshot:\n  interval: 4s\n  retention: 1h\nl0-retention: 1h\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      {}\n      sync-interval: 100ms\n",
            db.display(),
            server.litestream_replica()
        ),
    )
    .unwrap();
    let proc = Litestream::replicate(ls, &config, dir.join("ls.log"));
    let mut between = None;
    for k in 0..25 {
        write(&c, 1000 + k * 20, 20);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if k == 12 {
            wait_rows(server, dir, 100 + 13 * 20).await;
            tokio::time::sleep(server.time_margin()).await;
            between = Some(SystemTime::now());
            tokio::time::sleep(server.time_margin()).await;
        }
    }
    wait_rows(server, dir, 600).await;
    // Wait (bounded) for a compaction level and a snapshot past TXID 1.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let levels = list_levels(client(server).as_ref()).await.unwrap();
        if !levels[1].is_empty() && levels[9].iter().any(|f| f.max_txid > Txid(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no L1/L9 from litestream:\n{}",
            fs::read_to_string(dir.join("ls.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proc.stop();
    drop(c);
    let want = checkpointed(db);
    // Litestream's layout of this destination, as we read it.
    let snapshots = server.level_names(9);
    assert!(
        snapshots.iter().any(|n| n.starts_with("0000000000000001-")),
        "{snapshots:?}"
    );

    let out = dir.join("tl.db");
    tl_restore(server, &out, Target::Latest).await;
    assert!(
        fs::read(&out).unwrap() == want,
        "tideline's restore of litestream's replica is not byte-identical"
    );
    let theirs = dir.join("ls.db");
    let ends = l0_txids(server).await;
    for txid in ends.iter().step_by(5) {
        ls_restore(ls, server, &theirs, &["-txid", &txid.to_string()]);
        tl_restore(server, &out, Target::Txid(*txid)).await;
        assert!(
            fs::read(&out).unwrap() == fs::read(&theirs).unwrap(),
            "TXID {txid}: restores differ"
        );
    }
    // By time: both read Litestream's metadata timestamps the same way.
    let t = format_rfc3339(between.unwrap());
    ls_restore(ls, server, &theirs, &["-timestamp", &t]);
    tl_restore(server, &out, Target::Time(between.unwrap())).await;
    assert_eq!(rows(&out), 100 + 13 * 20);
    assert!(
        fs::read(&out).unwrap() == fs::read(&theirs).unwrap(),
        "restores at {t} differ"
    );
}
