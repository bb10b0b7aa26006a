//! Tideline and Litestream 0.5.17 over remote destinations, both directions, on real
//! servers on 127.0.0.1 — an S3 server that checks SigV4 signatures, a WebDAV server
//! (`rclone serve webdav`), an Azure Blob Storage server (Azurite, checking Shared Key
//! signatures), a NATS server with JetStream (`nats-server -js`, its object store), a
//! Google Cloud Storage emulator (`gcp-storage-emulator`, which both reach
//! through `STORAGE_EMULATOR_HOST`) an OSS server (testkit's, checking OSS Signature V4 for both tools, as no OSS
//! emulator exists) and OpenSSH's sshd: each restores (latest, at TXIDs and at a timestamp)
//! what the other replicated and compacted, the `tideline` binary restores from
//! Litestream's own config file, each tool takes over the other's replica, and an idle
//! replicator makes no requests. One generic flow per check; a destination is a
//! [`Remote`].

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tideline_e2e::{Litestream, app, checkpointed, litestream, rows, write};
use tideline_engine::config::{DbConfig, ReplicaConfig, Sensitive, SftpParts};
use tideline_engine::replicate::{Event, EventSink, ReplicateSettings, replicate_to};
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_engine::storage::{ReplicaClient, open_client};
use tideline_engine::time::format_rfc3339;
use tideline_ltx::Txid;
use tideline_testkit::{
    ACCESS_KEY, AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer, BUCKET, GcsServer, NatsServer,
    OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET, OSS_REGION, OssServer, REGION, S3Server,
    SECRET_KEY, SshServer, WEBDAV_PASSWORD, WEBDAV_USER, WebDavServer,
};
use tokio::sync::oneshot;

use crate::replicator::Tideline;

const PATH: &str = "backups/app.db";

/// A destination both tools replicate to: its replica URL, the replica section of a
/// Litestream config, the names of a level's files on the server, and (where the
/// server counts them) its requests.
trait Remote {
    fn url(&self) -> String;
    fn litestream_replica(&self) -> String;
    /// The file names in level `level`, as the server holds them.
    fn level_names(&self, level: u8) -> Vec<String>;
    /// A count of the server's work that only grows while something talks to it (S3:
    /// requests; SSH: bytes moved by live sessions), where the server keeps one.
    fn activity(&self) -> Option<u64>;
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
    /// Environment variables a process of either tool needs for this destination.
    fn litestream_env(&self) -> Vec<(String, String)> {
        Vec::new()
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
    fn activity(&self) -> Option<u64> {
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
    fn activity(&self) -> Option<u64> {
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
    fn activity(&self) -> Option<u64> {
        None
    }
    fn replica_config(&self) -> ReplicaConfig {
        AzuriteServer::replica_config(self, CONTAINER, PATH)
    }
    /// An abs URL has no place for the endpoint (in Litestream too): a config file.
    fn litestream_source(&self, scratch: &Path) -> Vec<String> {
        config_file_source(scratch, &self.litestream_replica())
    }
}

/// SFTP on OpenSSH's sshd, the replica in a folder below the server's root (an
/// absolute path: the test user's login folder is not that root).
impl Remote for SshServer {
    fn url(&self) -> String {
        format!(
            "sftp://{}@{}{}",
            self.user(),
            self.host_port(),
            self.root().join(PATH).display()
        )
    }
    fn litestream_replica(&self) -> String {
        format!(
            "type: sftp\n      host: {}\n      user: {}\n      path: {}\n      key-path: {}\n      host-key: {}",
            self.host_port(),
            self.user(),
            self.root().join(PATH).display(),
            self.client_key().display(),
            self.host_key()
        )
    }
    /// Litestream's SFTP layout: `<path>/ltx/<level>/<min>-<max>.ltx`.
    fn level_names(&self, level: u8) -> Vec<String> {
        names_in(&self.root().join(format!("{PATH}/ltx/{level}")))
    }
    /// Bytes moved by live sessions (probe sessions that end only lower the sum).
    fn activity(&self) -> Option<u64> {
        Some(self.session_io())
    }
    fn replica_config(&self) -> ReplicaConfig {
        ReplicaConfig::sftp(&SftpParts {
            host: self.host_port(),
            user: self.user().to_owned(),
            path: self.root().join(PATH).display().to_string(),
            password: Sensitive::new(String::new()),
            key_path: self.client_key().display().to_string(),
            host_key: self.host_key().to_owned(),
            concurrent_writes: None,
        })
        .unwrap()
    }
    /// The key path and host key are config keys only.
    fn litestream_source(&self, scratch: &Path) -> Vec<String> {
        config_file_source(scratch, &self.litestream_replica())
    }
    /// File times on SFTP have whole seconds.
    fn time_margin(&self) -> Duration {
        Duration::from_millis(1300)
    }
}

/// `litestream restore` arguments that read the replica from a config file, for
/// destinations whose URL cannot say everything (an endpoint, a host key).
fn config_file_source(scratch: &Path, replica_yaml: &str) -> Vec<String> {
    let config = scratch.join("litestream-restore.yml");
    let db = scratch.join("app.db");
    fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      {replica_yaml}\n",
            db.display()
        ),
    )
    .unwrap();
    vec![
        "-config".into(),
        config.display().to_string(),
        db.display().to_string(),
    ]
}

/// The bucket both tools use on the Google Cloud Storage emulator.
const GS_BUCKET: &str = "litestream";

impl Remote for GcsServer {
    fn url(&self) -> String {
        self.replica_url(GS_BUCKET, PATH)
    }
    fn litestream_replica(&self) -> String {
        format!("type: gs\n      bucket: {GS_BUCKET}\n      path: {PATH}")
    }
    /// Litestream's GCS layout: objects `<path>/ltx/<level>/<min>-<max>.ltx`, listed by
    /// that prefix.
    fn level_names(&self, level: u8) -> Vec<String> {
        let c = open_client(&self.replica_config(GS_BUCKET, PATH)).unwrap();
        let files = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(c.list(level))
        })
        .unwrap();
        files.iter().map(|f| f.filename()).collect()
    }
    fn activity(&self) -> Option<u64> {
        None
    }
    fn replica_config(&self) -> ReplicaConfig {
        GcsServer::replica_config(self, GS_BUCKET, PATH)
    }
    /// Litestream's gs client has no endpoint key: Go's storage library reads the
    /// emulator from `STORAGE_EMULATOR_HOST`.
    fn litestream_env(&self) -> Vec<(String, String)> {
        vec![("STORAGE_EMULATOR_HOST".into(), self.emulator_host())]
    }
}

/// The object-store bucket both tools use on nats-server.
const NATS_BUCKET: &str = "litestream";

impl Remote for NatsServer {
    fn url(&self) -> String {
        self.replica_url(NATS_BUCKET)
    }
    fn litestream_replica(&self) -> String {
        format!("type: nats\n      url: {}", self.url())
    }
    /// Litestream's NATS layout: objects `ltx/<level>/<min>-<max>.ltx` at the bucket's
    /// root, listed from the object store (they are not files on the server's disk).
    fn level_names(&self, level: u8) -> Vec<String> {
        let c = open_client(&NatsServer::replica_config(self, NATS_BUCKET)).unwrap();
        let files = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(c.list(level))
        })
        .unwrap();
        files.iter().map(|f| f.filename()).collect()
    }
    fn activity(&self) -> Option<u64> {
        None
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
    /// Every request the server checked the signature of.
    fn activity(&self) -> Option<u64> {
        let (accepted, rejected) = self.signatures();
        Some(accepted + rejected)
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

use tideline_e2e::tideline_bin;

/// Runs the `tideline` binary with `args` and returns its standard output as JSON.
fn tideline_json(server: &dyn Remote, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let o = Command::new(tideline_bin())
        .args(args)
        .envs(server.litestream_env())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tideline {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `tideline ltx` and `tideline status`, on Litestream's config file, see what this
/// destination holds: every file of every level, and the replica's newest TXID.
async fn cli_lists_and_reports(server: &dyn Remote, config: &Path, db: &Path) {
    let levels = list_levels(client(server).as_ref()).await.unwrap();
    let mut want: Vec<String> = levels.iter().flatten().map(|f| f.filename()).collect();
    let newest = levels.iter().flatten().map(|f| f.max_txid).max().unwrap();
    let (config, db) = (config.as_os_str(), db.as_os_str());
    let listed = tideline_json(
        server,
        &[
            "ltx".as_ref(),
            "-config".as_ref(),
            config,
            "--level".as_ref(),
            "all".as_ref(),
            "--json".as_ref(),
            db,
        ],
    );
    let mut got: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap().to_owned())
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "tideline ltx lists what the replica holds");
    let status = tideline_json(
        server,
        &[
            "status".as_ref(),
            "-config".as_ref(),
            config,
            "--json".as_ref(),
            db,
        ],
    );
    let text = status.to_string();
    assert!(
        text.contains(&format!("\"replica_txid\":\"{newest}\"")),
        "tideline status does not report the replica's newest TXID {newest}: {text}"
    );
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
        .envs(server.litestream_env())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated_to_gs() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated_to_gs") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = GcsServer::start(&dir.path().join("gcs")).unwrap();
    server.create_bucket(GS_BUCKET).await.unwrap();
    litestream_restores_what_tideline_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated_to_nats() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated_to_nats") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = NatsServer::start(&dir.path().join("nats")).unwrap();
    server.create_bucket(NATS_BUCKET).await.unwrap();
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
        let server_before = server.activity();
        tokio::time::sleep(Duration::from_secs(3)).await;
        if tl_client.request_counts().unwrap() == before {
            // (The probes above used their own clients; nothing else talks to it.)
            assert!(server.activity() <= server_before, "the server still works");
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
async fn tideline_restores_what_litestream_replicated_to_gs() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_to_gs") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = GcsServer::start(&dir.path().join("gcs")).unwrap();
    server.create_bucket(GS_BUCKET).await.unwrap();
    tideline_restores_what_litestream_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_replicated_to_nats() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_to_nats") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = NatsServer::start(&dir.path().join("nats")).unwrap();
    server.create_bucket(NATS_BUCKET).await.unwrap();
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
    let proc =
        Litestream::replicate_with_env(ls, &config, dir.join("ls.log"), &server.litestream_env());
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
    // The `tideline` binary, drop-in, with Litestream's own config file: its keys reach
    // this destination's client.
    let by_cli = dir.join("cli.db");
    let o = Command::new(tideline_bin())
        .envs(server.litestream_env())
        .arg("restore")
        .arg("-config")
        .arg(&config)
        .arg("-o")
        .arg(&by_cli)
        .arg(db)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tideline restore -config failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        fs::read(&by_cli).unwrap() == want,
        "the tideline binary's restore is not byte-identical"
    );
    cli_lists_and_reports(server, &config, db).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated_to_sftp() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated_to_sftp") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    litestream_restores_what_tideline_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_replicated_to_sftp() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_to_sftp") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    tideline_restores_what_litestream_replicated(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_the_others_s3_replica() {
    let Some(ls) = litestream("each_tool_takes_over_the_others_s3_replica") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    each_tool_takes_over_from_the_other(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_the_others_webdav_replica() {
    let Some(ls) = litestream("each_tool_takes_over_the_others_webdav_replica") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    each_tool_takes_over_from_the_other(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_the_others_abs_replica() {
    let Some(ls) = litestream("each_tool_takes_over_the_others_abs_replica") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = AzuriteServer::start(&dir.path().join("azurite")).unwrap();
    server.create_container(CONTAINER).await.unwrap();
    each_tool_takes_over_from_the_other(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_the_others_sftp_replica() {
    let Some(ls) = litestream("each_tool_takes_over_the_others_sftp_replica") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    each_tool_takes_over_from_the_other(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_the_others_gs_replica() {
    let Some(ls) = litestream("each_tool_takes_over_the_others_gs_replica") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = GcsServer::start(&dir.path().join("gcs")).unwrap();
    server.create_bucket(GS_BUCKET).await.unwrap();
    each_tool_takes_over_from_the_other(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_the_others_nats_replica() {
    let Some(ls) = litestream("each_tool_takes_over_the_others_nats_replica") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = NatsServer::start(&dir.path().join("nats")).unwrap();
    server.create_bucket(NATS_BUCKET).await.unwrap();
    each_tool_takes_over_from_the_other(&ls, &server, dir.path(), &db, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_the_others_oss_replica() {
    let Some(ls) = litestream("each_tool_takes_over_the_others_oss_replica") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = OssServer::start(&dir.path().join("oss")).unwrap();
    each_tool_takes_over_from_the_other(&ls, &server, dir.path(), &db, c).await;
}

/// The newest L0 TXID on the replica.
async fn newest_l0(server: &dyn Remote) -> Txid {
    l0_txids(server).await.into_iter().max().unwrap()
}

/// Tideline replicates, Litestream takes over the same database, meta directory and
/// replica, then Tideline takes over again: the TXIDs continue without a gap, and both
/// tools restore the whole history byte for byte.
async fn each_tool_takes_over_from_the_other(
    ls: &Path,
    server: &dyn Remote,
    dir: &Path,
    db: &Path,
    c: rusqlite::Connection,
) {
    let tl = Tideline::start(db, client(server));
    write(&c, 1000, 100);
    wait_rows(server, dir, 200).await;
    tl.stop().await;
    let after_tideline = newest_l0(server).await;

    let config = dir.join("litestream.yml");
    fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      {}\n      sync-interval: 100ms\n",
            db.display(),
            server.litestream_replica()
        ),
    )
    .unwrap();
    let proc =
        Litestream::replicate_with_env(ls, &config, dir.join("ls.log"), &server.litestream_env());
    for k in 0..5 {
        write(&c, 2000 + k * 20, 20);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_rows(server, dir, 300).await;
    proc.stop();
    let after_litestream = newest_l0(server).await;
    assert!(
        after_litestream > after_tideline,
        "litestream continued the TXIDs ({after_tideline} -> {after_litestream})"
    );

    write(&c, 3000, 100);
    let tl = Tideline::start(db, client(server));
    write(&c, 4000, 100);
    wait_rows(server, dir, 500).await;
    let events = tl.stop().await;
    assert!(
        matches!(events.first(), Some(Event::Started { txid: Some(t), .. }) if *t >= after_litestream),
        "tideline did not continue from litestream's position: {:?}",
        events.first()
    );
    drop(c);
    let want = checkpointed(db);

    let mut l0 = l0_txids(server).await;
    l0.sort();
    assert!(
        l0.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "L0 TXIDs have gaps: {l0:?}"
    );
    let out = dir.join("tl.db");
    tl_restore(server, &out, Target::Latest).await;
    assert!(
        fs::read(&out).unwrap() == want,
        "tideline's restore after the takeovers differs"
    );
    let theirs = dir.join("ls.db");
    ls_restore(ls, server, &theirs, &[]);
    assert!(
        fs::read(&theirs).unwrap() == want,
        "litestream's restore after the takeovers differs"
    );
}

/// A NATS replica section for a config file: the server of `port`, `bucket`, TLS with
/// the CA `ca` and, when given, a client certificate.
fn nats_tls_replica(
    port: u16,
    bucket: &str,
    ca: &Path,
    client: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> String {
    let mut s = format!(
        "type: nats\n      url: nats://127.0.0.1:{port}/{bucket}\n      tls: true\n      root-cas: [{}]\n      sync-interval: 100ms\n",
        ca.display()
    );
    if let Some((cert, key)) = client {
        s.push_str(&format!(
            "      client-cert: {}\n      client-key: {}\n",
            cert.display(),
            key.display()
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_over_mutual_tls_works_both_ways_and_a_wrong_ca_or_missing_client_cert_is_named() {
    let Some(ls) = litestream("nats_over_mutual_tls_works_both_ways") else {
        return;
    };
    let tl = tideline_bin();
    let (dir, db, c) = setup();
    let d = dir.path();
    let tls = tideline_testkit::make_tls(&d.join("tls")).unwrap();
    let server = NatsServer::start_tls(
        &d.join("nats"),
        tideline_testkit::nats::NatsLogin::Open,
        Some(tls.clone()),
    )
    .unwrap();
    let port = server.addr().port();
    for bucket in ["tl", "ls"] {
        server.create_bucket(bucket).await.unwrap();
    }
    let config = |name: &str, bucket: &str, ca: &Path, client| {
        let cfg = d.join(name);
        fs::write(
            &cfg,
            format!(
                "dbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      {}",
                db.display(),
                nats_tls_replica(port, bucket, ca, client)
            ),
        )
        .unwrap();
        cfg
    };
    let restore = |bin: &Path, cfg: &Path, out: &Path| {
        let _ = fs::remove_file(out);
        Command::new(bin)
            .args(["restore", "-config"])
            .arg(cfg)
            .arg("-o")
            .arg(out)
            .arg(&db)
            .output()
            .unwrap()
    };
    let wait_rows = |bin: &Path, cfg: &Path, out: &Path, want: i64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = restore(bin, cfg, out);
            if o.status.success() && rows(out) == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} restore over TLS: {}",
                bin.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let out = d.join("out.db");

    // Tideline replicates over mutual TLS; both tools restore it with the same config.
    let tl_cfg = config("tl.yml", "tl", &tls.ca, Some(&tls.client));
    let proc = Litestream::replicate(&tl, &tl_cfg, d.join("tl.log"));
    wait_rows(&tl, &tl_cfg, &out, 100);
    proc.stop();
    wait_rows(&ls, &tl_cfg, &out, 100);

    // Litestream replicates; Tideline restores.
    write(&c, 100, 25);
    let ls_cfg = config("ls.yml", "ls", &tls.ca, Some(&tls.client));
    let proc = Litestream::replicate(&ls, &ls_cfg, d.join("ls.log"));
    wait_rows(&tl, &ls_cfg, &out, 125);
    proc.stop();

    // A CA that did not sign the server's certificate, and no client certificate: each
    // refused with what to fix, nothing restored.
    let other = tideline_testkit::make_tls(&d.join("other-tls")).unwrap();
    let wrong_ca = config("wrong-ca.yml", "tl", &other.ca, Some(&tls.client));
    let o = restore(&tl, &wrong_ca, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !out.exists(), "{err}");
    assert!(
        err.contains("certificate") && err.contains("root-cas"),
        "{err}"
    );
    let no_client = config("no-client.yml", "tl", &tls.ca, None);
    let o = restore(&tl, &no_client, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !out.exists(), "{err}");
    assert!(err.contains("client-cert"), "{err}");
}
