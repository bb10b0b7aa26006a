//! The fault suite: the real `tideline replicate` process, a real SQLite writer and real
//! file systems, with a fault at each durable step and around the destination:
//!
//! * a crash (abort, through the engine's fail points, `TIDELINE_FAILPOINT`) right
//!   after an L0 file is written and after it is renamed, before and after its upload,
//!   after the shipped position is stored, after a compaction and a snapshot upload, and
//!   before and after a retention delete — then a restart without the fail point;
//! * a full disk (ENOSPC on a small tmpfs) under the meta directory and under a folder
//!   replica: a clear error naming the path, the process keeps running and catches up
//!   by itself once there is space;
//! * a replica folder that vanishes and returns, and one a tmpfs is mounted over;
//! * a second replicator of the same database through another path, and Litestream
//!   0.5.17 running beside Tideline;
//! * an S3 server that stalls an upload.
//!
//! Every scenario ends the same way: the writer stops, the replicator catches up and is
//! stopped with SIGTERM, and the replica is restored at the latest position (byte for
//! byte equal to the database) and at several moments in between (row for row equal to
//! what the application had committed by then).
//!
//! Points in time are exact, not guessed: the writer commits in bursts, and after each
//! burst waits until the replicator has captured it (a local L0 file whose timestamp is
//! past the burst's last commit); the moment just after that timestamp, before the next
//! burst starts, must restore to exactly the rows of the burst. A burst the replicator
//! did not capture (it was down) yields no point.
//!
//! Mounting tmpfs needs root (CI runs as root); those scenarios fail, not skip, without it.
//! Linux only: tmpfs mounts, symlinks and signals by PID.

#![cfg(target_os = "linux")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tideline_engine::config::ReplicaConfig;
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_engine::storage::file::FileReplica;
use tideline_engine::storage::{ReplicaClient, open_client};
use tideline_testkit::{ACCESS_KEY, BUCKET, Op, REGION, S3Server, SECRET_KEY};

use tideline_e2e::tideline_bin as tideline;

/// A process this test started; killed (by its own PID) if still running when dropped.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits at most `limit` for the process to exit.
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    fn terminate(mut self, log: &Path) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let status = self.wait_for(Duration::from_secs(30));
        let status = status.unwrap_or_else(|| panic!("did not stop on SIGTERM:\n{}", read(log)));
        assert!(status.success(), "exited with {status}:\n{}", read(log));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Waits at most `limit` for `cond`, polling.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A tmpfs mounted by this test; unmounted when dropped, also when the test fails.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mount tmpfs on {} (this scenario needs root): {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file open must not leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` to the last byte with one file; returns it.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut size = chunk.len();
    // Smaller and smaller writes take the last partial blocks too.
    while size > 0 {
        match f.write(&chunk[..size]) {
            Ok(0) | Err(_) => size /= 2,
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
    path
}

/// The replica a scenario uses: how the config names it and a client to restore from.
struct Replica {
    yaml: String,
    client: Arc<dyn ReplicaClient>,
}

fn folder(path: &Path) -> Replica {
    Replica {
        yaml: format!("type: file\n      path: {}", path.display()),
        client: Arc::new(FileReplica::new(path)),
    }
}

fn s3(server: &S3Server) -> Replica {
    let url = format!(
        "s3://{BUCKET}/backups/app.db?endpoint={}&region={REGION}&forcePathStyle=true",
        server.endpoint()
    );
    let env = |k: &str| match k {
        "LITESTREAM_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_string()),
        "LITESTREAM_SECRET_ACCESS_KEY" => Some(SECRET_KEY.to_string()),
        _ => None,
    };
    Replica {
        yaml: format!(
            "type: s3\n      bucket: {BUCKET}\n      path: backups/app.db\n      endpoint: {}\n      region: {REGION}\n      force-path-style: true\n      access-key-id: {ACCESS_KEY}\n      secret-access-key: {SECRET_KEY}",
            server.endpoint()
        ),
        client: open_client(&ReplicaConfig::from_url_with_env(&url, &env).unwrap()).unwrap(),
    }
}

/// One scenario's database, config, log and replica.
struct Scene {
    dir: tempfile::TempDir,
    db: PathBuf,
    config: PathBuf,
    log: PathBuf,
    l0_dir: PathBuf,
    replica: Replica,
}

/// Short windows so compaction (1 s), snapshots (2 s) and L0 retention (1 s) all happen
/// within seconds; snapshots are kept an hour so every moment stays restorable.
fn scene(dir: tempfile::TempDir, meta: Option<&Path>, replica: Replica) -> Scene {
    let db = dir.path().join("app.db");
    let config = dir.path().join("tideline.yml");
    let meta_line = meta.map_or(String::new(), |m| {
        format!("    meta-path: {}\n", m.display())
    });
    fs::write(
        &config,
        format!(
            "levels:\n  - interval: 1s\nsnapshot:\n  interval: 2s\n  retention: 1h\nl0-retention: 1s\nl0-retention-check-interval: 1s\ndbs:\n  - path: {}\n{meta_line}    monitor-interval: 50ms\n    min-checkpoint-page-count: 64\n    replica:\n      {}\n      sync-interval: 50ms\n",
            db.display(),
            replica.yaml,
        ),
    )
    .unwrap();
    let c = Connection::open(&db).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    drop(c);
    let meta = meta.map_or_else(|| dir.path().join(".app.db-litestream"), Path::to_path_buf);
    Scene {
        log: dir.path().join("tideline.log"),
        l0_dir: meta.join("ltx").join("0"),
        db,
        config,
        dir,
        replica,
    }
}

impl Scene {
    /// `tideline replicate -config …` with `failpoint` armed (and `extra` flags).
    fn start(&self, failpoint: Option<&str>, extra: &[&str]) -> Proc {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(tideline());
        cmd.args(["replicate", "-config"])
            .arg(&self.config)
            .args(extra)
            .env_remove("TIDELINE_FAILPOINT")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null());
        if let Some(f) = failpoint {
            cmd.env("TIDELINE_FAILPOINT", f);
        }
        Proc(cmd.spawn().unwrap())
    }

    /// Runs `proc` (armed with `failpoint`) until it aborts there.
    fn expect_abort(&self, mut proc: Proc, failpoint: &str) {
        let status = proc.wait_for(Duration::from_secs(30));
        let log = read(&self.log);
        let status = status.unwrap_or_else(|| panic!("fail point {failpoint} never hit:\n{log}"));
        assert!(!status.success(), "exited cleanly past {failpoint}:\n{log}");
        let name = failpoint.split(':').next().unwrap();
        assert!(
            log.contains(&format!("fail point {name} hit")),
            "died of something else than {failpoint} ({status}):\n{log}"
        );
    }

    /// Waits (bounded) until the replica restores to `rows` rows.
    fn caught_up(&self, rt: &tokio::runtime::Runtime, rows: i64) {
        let out = self.dir.path().join("probe.db");
        let ok = eventually(Duration::from_secs(40), || {
            rt.block_on(restore(
                Arc::clone(&self.replica.client),
                Target::Latest,
                &out,
                IntegrityCheck::None,
            ))
            .is_ok()
                && count(&out) >= rows
        });
        assert!(
            ok,
            "replica did not catch up to {rows} rows:\n{}",
            read(&self.log)
        );
    }

    /// The end of every scenario: writer stopped, replicator caught up and stopped
    /// cleanly; restores at the latest position and at the writer's points in time.
    fn verify(&self, rt: &tokio::runtime::Runtime, writer: Writer, proc: Proc) {
        let (rows, points) = writer.stop();
        assert!(rows > 0, "the writer made progress");
        self.caught_up(rt, rows);
        proc.terminate(&self.log);
        verify_restores(
            rt,
            &self.replica.client,
            &self.db,
            self.dir.path(),
            rows,
            &points,
            &self.log,
        );
    }
}

/// Restores `client` at the latest position (byte for byte equal to `db`, which has
/// `rows` rows) and at up to twelve of `points` (row for row equal to the rows then);
/// also checks L0 TXIDs are contiguous. Returns the number of restores made.
fn verify_restores(
    rt: &tokio::runtime::Runtime,
    client: &Arc<dyn ReplicaClient>,
    db: &Path,
    dir: &Path,
    rows: i64,
    points: &[Point],
    log: &Path,
) -> usize {
    let levels = rt.block_on(list_levels(client.as_ref())).unwrap();
    let mut l0: Vec<u64> = levels[0].iter().map(|f| f.max_txid.0).collect();
    l0.sort_unstable();
    assert!(
        l0.windows(2).all(|w| w[1] == w[0] + 1),
        "L0 TXIDs have gaps: {l0:?}"
    );

    let out = dir.join("restored.db");
    rt.block_on(restore(
        Arc::clone(client),
        Target::Latest,
        &out,
        IntegrityCheck::Full,
    ))
    .unwrap_or_else(|e| panic!("restore latest: {e}\n{}", read(log)));
    let c = Connection::open(db).unwrap();
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0);
    let all = rows_of(db, i64::MAX);
    assert_eq!(all.len() as i64, rows);
    assert_eq!(
        rows_of(&out, i64::MAX),
        all,
        "latest restore differs row for row"
    );
    assert!(
        fs::read(&out).unwrap() == fs::read(db).unwrap(),
        "latest restore is not byte-identical"
    );

    // Up to twelve points spread over the run, first and last included.
    assert!(points.len() >= 2, "too few points in time: {points:?}");
    let step = points.len().div_ceil(12).max(1);
    let mut picked: Vec<&Point> = points.iter().step_by(step).collect();
    if picked.last() != points.last().as_ref() {
        picked.push(points.last().unwrap());
    }
    for (i, p) in picked.iter().enumerate() {
        let out = dir.join(format!("pit-{i}.db"));
        rt.block_on(restore(
            Arc::clone(client),
            Target::Time(p.at),
            &out,
            IntegrityCheck::Full,
        ))
        .unwrap_or_else(|e| panic!("restore at {p:?}: {e}\n{}", read(log)));
        let got = rows_of(&out, i64::MAX);
        assert_eq!(
            got.len() as i64,
            p.rows,
            "restore at {p:?} has {} rows (points {points:?})",
            got.len()
        );
        assert!(
            got == all[..p.rows as usize],
            "restore at {p:?} differs row for row"
        );
    }
    // The tally a report quotes: restores made, all of which matched.
    eprintln!(
        "verified: {rows} rows, {} restores ({} points in time of {}), 0 differed",
        1 + picked.len(),
        picked.len(),
        points.len()
    );
    1 + picked.len()
}

fn count(db: &Path) -> i64 {
    Connection::open(db)
        .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .unwrap_or(-1)
}

fn rows_of(db: &Path, below: i64) -> Vec<(i64, String)> {
    let c = Connection::open(db).unwrap();
    let mut s = c
        .prepare("SELECT id, v FROM t WHERE id < ?1 ORDER BY id")
        .unwrap();
    s.query_map([below], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A moment the replica must restore to exactly `rows` rows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    at: SystemTime,
    rows: i64,
}

/// The application: commits numbered rows in bursts, on its own connection.
struct Writer {
    stop: Arc<AtomicBool>,
    rows: Arc<AtomicI64>,
    points: Arc<Mutex<Vec<Point>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The newest local L0 file's timestamp (its mtime is the header timestamp).
fn newest_l0(dir: &Path) -> Option<SystemTime> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ltx"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

impl Writer {
    fn start(db: &Path, l0_dir: &Path) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let rows = Arc::new(AtomicI64::new(0));
        let points = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, rows, points) = (stop.clone(), rows.clone(), points.clone());
            let (db, l0_dir) = (db.to_owned(), l0_dir.to_owned());
            std::thread::spawn(move || {
                let c = Connection::open(&db).unwrap();
                c.busy_timeout(Duration::from_secs(10)).unwrap();
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut i = 0i64;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    for _ in 0..5 {
                        c.execute(
                            "INSERT INTO t(id, v) VALUES (?1, ?2)",
                            (i, format!("row {i} ").repeat(1 + (i % 30) as usize)),
                        )
                        .unwrap();
                        i += 1;
                        rows.store(i, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(3));
                    }
                    let end = SystemTime::now();
                    // Captured once a local L0 is newer than the last commit; the
                    // moment just after it (ms resolution) holds exactly this burst.
                    let captured = (0..40).find_map(|_| {
                        let t = newest_l0(&l0_dir).filter(|t| *t >= end);
                        if t.is_none() {
                            std::thread::sleep(Duration::from_millis(25));
                        }
                        t
                    });
                    if let Some(t) = captured {
                        let at = t + Duration::from_millis(5);
                        points.lock().unwrap().push(Point { at, rows: i });
                        // The next burst's files are all created after `at`: its
                        // first commit comes well after `at`, so even a capture whose
                        // clock was read just before `at` but whose WAL read was
                        // delayed (2 busy cores) cannot take it in.
                        while SystemTime::now() < at + Duration::from_millis(100) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(30));
                }
            })
        };
        Writer {
            stop,
            rows,
            points,
            thread: Some(thread),
        }
    }

    fn rows(&self) -> i64 {
        self.rows.load(Ordering::SeqCst)
    }

    /// Forgets the points recorded so far (moments no replica of ours holds).
    fn clear_points(&self) {
        self.points.lock().unwrap().clear();
    }

    fn points(&self) -> usize {
        self.points.lock().unwrap().len()
    }

    /// Stops the writer; returns the rows committed and the points in time.
    fn stop(mut self) -> (i64, Vec<Point>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        (self.rows(), self.points.lock().unwrap().clone())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Replicates until the fail point aborts the process, keeps writing while it is down,
/// restarts it without the fail point, and verifies every restore.
fn crash_at(failpoint: &str, s3_server: bool) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let server = s3_server.then(|| S3Server::start(&dir.path().join("s3")).unwrap());
    let replica = match &server {
        Some(s) => s3(s),
        None => folder(&dir.path().join("replica")),
    };
    let s = scene(dir, None, replica);
    let writer = Writer::start(&s.db, &s.l0_dir);
    let p = s.start(Some(failpoint), &[]);
    s.expect_abort(p, failpoint);
    // Down: the application goes on committing.
    let down = writer.rows();
    assert!(eventually(Duration::from_secs(10), || writer.rows() > down + 20));
    let p = s.start(None, &[]);
    let before = writer.points();
    assert!(
        eventually(Duration::from_secs(20), || writer.points() > before + 5),
        "no progress after the restart:\n{}",
        read(&s.log)
    );
    s.verify(&rt, writer, p);
    drop(server);
}

#[test]
fn crash_after_l0_written() {
    crash_at("l0-written:8", false);
}

#[test]
fn crash_after_l0_renamed() {
    crash_at("l0-renamed:8", false);
}

#[test]
fn crash_when_upload_starts() {
    crash_at("upload-started:8", false);
}

#[test]
fn crash_when_upload_finished() {
    crash_at("upload-finished:8", false);
}

#[test]
fn crash_when_s3_upload_starts() {
    crash_at("upload-started:8", true);
}

#[test]
fn crash_when_s3_upload_finished() {
    crash_at("upload-finished:8", true);
}

#[test]
fn crash_after_position_written() {
    crash_at("position-written", false);
}

#[test]
fn crash_after_compaction_uploaded() {
    crash_at("compaction-uploaded:2", false);
}

#[test]
fn crash_after_snapshot_uploaded() {
    crash_at("snapshot-uploaded:2", false);
}

#[test]
fn crash_after_s3_compaction_uploaded() {
    crash_at("compaction-uploaded:2", true);
}

#[test]
fn crash_after_s3_snapshot_uploaded() {
    crash_at("snapshot-uploaded:2", true);
}

/// Retention deletes only after a 10-minute grace in a running replicator, so the
/// deletes are driven by `-once -enforce-retention` (no grace), crashed before and
/// after its delete; replication then resumes.
#[test]
fn crash_around_retention_delete() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let replica = folder(&dir.path().join("replica"));
    let s = scene(dir, None, replica);
    let writer = Writer::start(&s.db, &s.l0_dir);
    let p = s.start(None, &[]);
    // Long enough for L1 windows to close over L0 files older than l0-retention.
    assert!(eventually(Duration::from_secs(20), || writer.points() >= 20));
    std::thread::sleep(Duration::from_millis(2500));
    p.terminate(&s.log);
    let before = rt.block_on(list_levels(s.replica.client.as_ref())).unwrap()[0].len();
    for fp in ["retention-delete-started", "retention-delete-finished"] {
        let p = s.start(Some(fp), &["-once", "-enforce-retention"]);
        s.expect_abort(p, fp);
    }
    let after = rt.block_on(list_levels(s.replica.client.as_ref())).unwrap()[0].len();
    assert!(
        after < before,
        "retention deleted no L0 file ({before} → {after})"
    );
    // Points before the deletes may now resolve only to L1 boundaries: verify the
    // ones made from here on (and the latest).
    let first = writer.points();
    let p = s.start(None, &[]);
    assert!(eventually(Duration::from_secs(20), || writer.points() > first + 4));
    let (rows, points) = writer.stop();
    s.caught_up(&rt, rows);
    p.terminate(&s.log);
    verify_restores(
        &rt,
        &s.replica.client,
        &s.db,
        s.dir.path(),
        rows,
        &points[first..],
        &s.log,
    );
}

/// Waits (bounded) until the log shows a disk-full error naming `path`, with the
/// process still running.
fn expect_enospc(s: &Scene, p: &mut Proc, path: &Path) {
    let ok = eventually(Duration::from_secs(20), || {
        let log = read(&s.log);
        log.lines().any(|l| {
            (l.contains("No space left") || l.contains("disk full") || l.contains("no space"))
                && l.contains(&*path.to_string_lossy())
        })
    });
    assert!(
        ok,
        "no clear disk-full error naming {}:\n{}",
        path.display(),
        read(&s.log)
    );
    if let Some(line) = read(&s.log).lines().find(|l| l.contains("No space left")) {
        eprintln!("disk-full status: {line}");
    }
    assert!(
        p.0.try_wait().unwrap().is_none(),
        "stopped on a full disk:\n{}",
        read(&s.log)
    );
}

#[test]
fn full_meta_directory() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta");
    let replica = folder(&dir.path().join("replica"));
    let s = scene(dir, Some(&meta), replica);
    // Mounted after the scene so that it is unmounted before the directory is removed.
    let _mount = Tmpfs::mount(&meta, "2m");
    let writer = Writer::start(&s.db, &s.l0_dir);
    let mut p = s.start(None, &[]);
    assert!(eventually(Duration::from_secs(20), || writer.points() >= 5));
    let filler = fill(&meta);
    expect_enospc(&s, &mut p, &meta);
    let full = writer.rows();
    assert!(eventually(Duration::from_secs(10), || writer.rows() > full + 20));
    fs::remove_file(&filler).unwrap();
    // No restart: it catches up by itself.
    let before = writer.points();
    assert!(
        eventually(Duration::from_secs(30), || writer.points() > before + 3),
        "did not resume after space came back:\n{}",
        read(&s.log)
    );
    s.verify(&rt, writer, p);
    // No partial L0 left behind by the failed writes.
    let partial: Vec<_> = fs::read_dir(&s.l0_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .map(|e| e.path())
        .collect();
    assert!(partial.is_empty(), "partial L0 files left: {partial:?}");
}

#[test]
fn full_replica_folder() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("disk");
    let replica_dir = root.join("replica");
    let replica = folder(&replica_dir);
    let s = scene(dir, None, replica);
    // Mounted after the scene so that it is unmounted before the directory is removed.
    let _mount = Tmpfs::mount(&root, "2m");
    let writer = Writer::start(&s.db, &s.l0_dir);
    let mut p = s.start(None, &[]);
    assert!(eventually(Duration::from_secs(20), || writer.points() >= 5));
    let filler = fill(&root);
    expect_enospc(&s, &mut p, &replica_dir);
    let full = writer.rows();
    assert!(eventually(Duration::from_secs(10), || writer.rows() > full + 20));
    fs::remove_file(&filler).unwrap();
    s.verify(&rt, writer, p);
}

/// LTX files anywhere under `dir`.
fn ltx_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".ltx") {
                out.push(p);
            }
        }
    }
    out
}

/// The replica folder is renamed away and back, then a tmpfs is mounted over it (the
/// replica looks empty) and unmounted: no new chain may start in either stand-in.
#[test]
fn replica_folder_vanishes_and_is_mounted_over() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let replica_dir = dir.path().join("replica");
    let away = dir.path().join("replica-away");
    let s = scene(dir, None, folder(&replica_dir));
    let writer = Writer::start(&s.db, &s.l0_dir);
    let p = s.start(None, &[]);
    assert!(eventually(Duration::from_secs(20), || writer.points() >= 5));

    fs::rename(&replica_dir, &away).unwrap();
    let n = writer.rows();
    assert!(eventually(Duration::from_secs(10), || writer.rows() > n + 30));
    std::thread::sleep(Duration::from_millis(500));
    let stray = ltx_files(&replica_dir);
    assert!(
        stray.is_empty(),
        "a new chain started in the vanished folder: {stray:?}"
    );
    let _ = fs::remove_dir_all(&replica_dir);
    fs::rename(&away, &replica_dir).unwrap();
    s.caught_up(&rt, writer.rows());

    {
        let mounted_at = read(&s.log).len();
        let _over = Tmpfs::mount(&replica_dir, "8m");
        let n = writer.rows();
        assert!(eventually(Duration::from_secs(10), || writer.rows() > n + 30));
        // The first upload onto the mount names it; the checks after it (the replica
        // matched again) say the destination holds no backup.
        let reported = eventually(Duration::from_secs(10), || {
            let log = read(&s.log);
            let tail = &log[log.len().min(mounted_at)..];
            tail.contains("mounted over") || tail.contains("destination missing or changed")
        });
        assert!(
            reported,
            "no error for the mount over the replica:\n{}",
            read(&s.log)
        );
        let stray = ltx_files(&replica_dir);
        assert!(
            stray.is_empty(),
            "a new chain started on the mount: {stray:?}\n{}",
            read(&s.log)
        );
    }
    let before = writer.points();
    assert!(eventually(Duration::from_secs(30), || writer.points() > before + 3));
    s.verify(&rt, writer, p);
}

/// The S3 server holds uploads for a few seconds while the application writes; once
/// released, everything ships and every restore matches.
#[test]
fn stalled_s3_upload() {
    stalled_s3(false);
}

/// The design's invariant under a stalled upload: capture goes on (every moment older
/// than one sync interval keeps its own restore point). It does not today: the run loop
/// awaits the upload, so capture stops until the PUT ends or its 60 s read timeout.
#[test]
fn stalled_s3_upload_does_not_stop_capture() {
    stalled_s3(true);
}

fn stalled_s3(capture_must_go_on: bool) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let s = scene(dir, None, s3(&server));
    let writer = Writer::start(&s.db, &s.l0_dir);
    let p = s.start(None, &[]);
    assert!(eventually(Duration::from_secs(20), || writer.points() >= 5));
    server.hold(Op::Put);
    assert!(
        eventually(Duration::from_secs(10), || server.held() > 0),
        "no upload was held"
    );
    let (n, rows) = (writer.points(), writer.rows());
    // Stalled for three seconds of application writes.
    let going_on = eventually(Duration::from_secs(3), || writer.points() > n + 5);
    assert!(eventually(Duration::from_secs(10), || writer.rows() > rows + 20));
    server.release();
    if capture_must_go_on {
        assert!(
            going_on,
            "capture stopped while an upload was held:\n{}",
            read(&s.log)
        );
    }
    s.verify(&rt, writer, p);
    drop(server);
}

/// Writes a second config for `db` (reached through another path) with its own meta
/// directory and replica folder.
fn other_config(dir: &Path, name: &str, db: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join(format!("{name}.yml"));
    let replica = dir.join(format!("{name}-replica"));
    fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    meta-path: {}\n    monitor-interval: 50ms\n    replica:\n      type: file\n      path: {}\n      sync-interval: 50ms\n",
            db.display(),
            dir.join(format!("{name}-meta")).display(),
            replica.display()
        ),
    )
    .unwrap();
    (config, replica)
}

/// A second `tideline replicate` of the same database through a symlinked directory,
/// with its own meta directory and replica, must refuse, naming the first; the first
/// replica still restores to the database.
#[test]
fn second_replicator_through_another_path() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let replica = folder(&dir.path().join("replica"));
    let s = scene(dir, None, replica);
    let writer = Writer::start(&s.db, &s.l0_dir);
    let p = s.start(None, &[]);
    assert!(eventually(Duration::from_secs(20), || writer.points() >= 3));

    let (config, second_replica) = other_config(s.dir.path(), "second", &link.join("app.db"));
    let log = s.dir.path().join("second.log");
    let out = fs::File::create(&log).unwrap();
    let mut second = Proc(
        Command::new(tideline())
            .args(["replicate", "-config"])
            .arg(&config)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let refused = eventually(Duration::from_secs(15), || {
        read(&log).contains("already being replicated")
    });
    let status = second.wait_for(Duration::from_secs(2));
    assert!(
        refused,
        "the second replicator did not refuse:\n{}",
        read(&log)
    );
    assert!(
        status.is_none_or(|s| !s.success()),
        "the second replicator exited cleanly:\n{}",
        read(&log)
    );
    drop(second);
    assert!(
        ltx_files(&second_replica).is_empty(),
        "the second replicator wrote a replica"
    );
    s.verify(&rt, writer, p);
}

/// Litestream 0.5.17 replicating the same database (same meta directory) when
/// Tideline starts on it: Tideline reports the L0 files it did not write (Litestream
/// keeps writing them at the TXIDs Tideline would use) instead of mixing two chains,
/// and after Litestream stops it continues, its own replica restoring to the database.
#[test]
fn litestream_beside_tideline() {
    let Some(bin) = tideline_e2e::litestream("litestream_beside_tideline") else {
        return;
    };
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let replica = folder(&dir.path().join("replica"));
    let s = scene(dir, None, replica);
    let writer = Writer::start(&s.db, &s.l0_dir);
    let ls_config = s.dir.path().join("litestream.yml");
    fs::write(
        &ls_config,
        format!(
            "dbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      type: file\n      path: {}\n      sync-interval: 100ms\n",
            s.db.display(),
            s.dir.path().join("ls-replica").display()
        ),
    )
    .unwrap();
    let ls = tideline_e2e::Litestream::replicate(&bin, &ls_config, s.dir.path().join("ls.log"));
    // Litestream is at work: its L0 files keep appearing in the meta directory.
    assert!(
        eventually(Duration::from_secs(20), || ltx_files(&s.l0_dir).len() >= 3),
        "Litestream wrote no L0 files"
    );
    // Tideline refuses to start on a meta directory another program is writing.
    let mut refused = s.start(None, &[]);
    let status = refused.wait_for(Duration::from_secs(30));
    assert!(
        status.is_some_and(|st| !st.success()),
        "tideline did not refuse:\n{}",
        read(&s.log)
    );
    assert!(
        read(&s.log).lines().any(|l| {
            // An error, not any line that happens to name Litestream.
            l.to_lowercase().contains("error")
                && l.contains("another replicator")
                && l.contains("Litestream")
        }),
        "tideline did not name what it found:\n{}",
        read(&s.log)
    );
    assert!(
        rt.block_on(list_levels(s.replica.client.as_ref()))
            .unwrap()
            .iter()
            .all(Vec::is_empty),
        "tideline shipped nothing"
    );
    // Killed, not stopped: Litestream 0.5.17 retries its shutdown sync without end
    // when the meta directory's L0 files are not its own.
    drop(ls);
    // Once Litestream is gone, tideline takes over: a new backup of its own, whose
    // moments are checked from its first capture on.
    let p = s.start(None, &[]);
    assert!(
        eventually(Duration::from_secs(30), || read(&s.log)
            .contains("captured TXID")),
        "tideline did not take over:\n{}",
        read(&s.log)
    );
    writer.clear_points();
    assert!(eventually(Duration::from_secs(30), || writer.points() >= 3));
    s.verify(&rt, writer, p);
}
