//! The heavy workloads: the two write workloads against a folder replica and an S3
//! replica (the same in-process S3 server on 127.0.0.1 as [`crate::s3`]), the restore
//! group against every destination both tools support:
//!
//! * **one big transaction** (`--tx-mb`, 64 MiB): the usual seeded database, then ONE
//!   transaction of ~1 KiB rows of ~2:1 compressible text, each row carrying a marker.
//!   The application's time for the whole transaction and for its COMMIT (writer
//!   impact), the lag from COMMIT returning until the replica holds a level-0 file with
//!   the marker (a watcher decodes every new L0 file once), the replicator's CPU
//!   seconds and peak RSS, and for S3 the uploads and bytes uploaded.
//! * **bulk load** (`--bulk-mb`, 256 MiB): transactions of 1000 rows (~1 MiB) as fast
//!   as possible, default auto-checkpoint: elapsed time, MB/s of row data, worst
//!   transaction (BEGIN to the end of COMMIT), lag of the last commit, CPU, RSS,
//!   uploads.
//! * **restore** of the large (`--big-mb`) and huge (`--huge-mb`) databases from a
//!   folder, S3, WebDAV (`rclone serve webdav`), Azure Blob Storage (`abs`, on
//!   Azurite), SFTP (OpenSSH's `sshd`), NATS (`nats-server -js`) and OSS (testkit's
//!   server, which checks OSS's signatures), all on 127.0.0.1; a server that cannot
//!   start (not installed) prints `no <type> rows: <why>` and its rows are skipped.
//!   Google Cloud Storage has no rows: its emulator (`gcp-storage-emulator`) serves one
//!   request at a time, so a restore that reads the next file ahead while the first,
//!   large download is unread times out, and it refuses Litestream's resumable uploads of files over
//!   16 MiB (`unexpected 308 response`); no figure from it would say anything about
//!   either tool on Google's servers.
//!   Each tool builds its own replica (`replicate -once`: initial sync until
//!   restorable), then a running replicator ships two small transactions a few seconds
//!   apart; `restore` latest and `restore -timestamp T` (a time between the two), both
//!   from the same config file, are timed with `/usr/bin/time` and checked by row
//!   count. `cp` + fsync of the same file is the physical limit printed beside (the
//!   better of two copies per round).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use tideline_engine::{ReplicaClient, list_levels, open_client};
use tideline_testkit::{
    AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer, NatsServer, OSS_ACCESS_KEY_ID,
    OSS_ACCESS_KEY_SECRET, OSS_BUCKET, OSS_REGION, OssServer, S3Server, SshServer, WebDavServer,
};

use crate::s3::{self, hex_text, unique};
use crate::watch::{Level0, Watch, block_on};
use crate::{Args, Proc, REPLICATORS, Replicator, median, median_spread, open, settle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Folder,
    S3,
    /// The restore group only: `rclone serve webdav` (when `rclone` is installed).
    WebDav,
    /// The restore group only: Azure Blob Storage on Azurite (when it is installed).
    Abs,
    /// The restore group only: OpenSSH's `sshd` (when it is installed).
    Sftp,
    /// The restore group only: `nats-server` with JetStream (when it is installed).
    Nats,
    /// The restore group only: testkit's OSS server.
    Oss,
}

/// The Azurite container every Azure Blob replica of the run lives in, one prefix each.
/// NATS has no prefixes: one bucket per replica.
const CONTAINER: &str = "bench";

/// The servers of the heavy groups, started once: S3 and OSS always; WebDAV, Azurite,
/// sshd and nats-server where they are installed (a server that cannot start loses
/// only its rows).
#[derive(Debug)]
pub struct Servers {
    pub s3: S3Server,
    pub webdav: Option<WebDavServer>,
    pub abs: Option<AzuriteServer>,
    pub sftp: Option<SshServer>,
    pub nats: Option<NatsServer>,
    pub oss: Option<OssServer>,
}

impl Servers {
    pub fn start(dir: &Path) -> Result<Servers> {
        let s3 = S3Server::start(&dir.join("heavy-s3-server"))?;
        let webdav = optional("WebDAV", || {
            WebDavServer::start(&dir.join("heavy-webdav-server")).map_err(Into::into)
        });
        let abs = optional("abs", || {
            let server = AzuriteServer::start(&dir.join("heavy-azurite-server"))?;
            block_on(server.create_container(CONTAINER))?;
            Ok(server)
        });
        let sftp = optional("sftp", || {
            SshServer::start(&dir.join("heavy-sshd-server")).map_err(Into::into)
        });
        let nats = optional("nats", || {
            NatsServer::start(&dir.join("heavy-nats-server")).map_err(Into::into)
        });
        let oss = optional("oss", || {
            OssServer::start(&dir.join("heavy-oss-server")).map_err(Into::into)
        });
        Ok(Servers {
            s3,
            webdav,
            abs,
            sftp,
            nats,
            oss,
        })
    }
}

/// Accessors for the optional servers: [`restore_dests`] offers a destination only
/// when its server started, so a missing one here is a bug in the bench.
macro_rules! running {
    ($($name:ident: $ty:ty),* $(,)?) => {
        impl Servers {
            $(fn $name(&self) -> &$ty {
                self.$name
                    .as_ref()
                    .expect(concat!(stringify!($name), " rows run only when its server started"))
            })*
        }
    };
}

running!(
    webdav: WebDavServer,
    abs: AzuriteServer,
    sftp: SshServer,
    nats: NatsServer,
    oss: OssServer,
);

/// `start()`'s server, or `None` after saying why its rows are skipped.
fn optional<T>(what: &str, start: impl FnOnce() -> Result<T>) -> Option<T> {
    match start() {
        Ok(server) => Some(server),
        Err(e) => {
            eprintln!("no {what} rows: {e:#}");
            None
        }
    }
}

impl Dest {
    fn name(self) -> &'static str {
        match self {
            Dest::Folder => "folder",
            Dest::S3 => "s3",
            Dest::WebDav => "webdav",
            Dest::Abs => "abs",
            Dest::Sftp => "sftp",
            Dest::Nats => "nats",
            Dest::Oss => "oss",
        }
    }
}

/// One run's replica: a folder inside the run directory or a prefix on the server.
struct Target<'a> {
    dest: Dest,
    servers: &'a Servers,
    prefix: String,
    run: PathBuf,
}

impl Target<'_> {
    fn replica_dir(&self) -> PathBuf {
        self.run.join("replica")
    }

    /// Where level-0 files land (layouts differ: `ltx/0` in folders and on WebDAV and
    /// SFTP servers' disks, `0000` on S3; Azure, NATS and OSS objects in a listing).
    fn level0(&self) -> Result<Level0> {
        Ok(match self.dest {
            Dest::Folder => Level0::Dir(self.replica_dir().join("ltx/0")),
            Dest::S3 => Level0::Dir(s3::l0_dir(&self.servers.s3, &self.prefix)),
            Dest::WebDav => Level0::Dir(self.webdav_root().join("ltx/0")),
            Dest::Sftp => Level0::Dir(self.sftp_root().join("ltx/0")),
            Dest::Abs | Dest::Nats | Dest::Oss => Level0::Client(self.client()?),
        })
    }

    /// The config file both tools replicate with (and restore from): the one place
    /// each destination's replica section is written.
    fn config(&self, db: &Path) -> Result<PathBuf> {
        let replica = match self.dest {
            Dest::S3 => return s3::config(&self.run, db, &self.servers.s3, &self.prefix),
            Dest::Folder => format!("url: file://{}", self.replica_dir().display()),
            Dest::WebDav => format!("url: {}", self.servers.webdav().replica_url(&self.prefix)),
            Dest::Abs => {
                let server = self.servers.abs();
                format!(
                    "type: abs\n      account-name: {AZURITE_ACCOUNT}\n      account-key: {AZURITE_KEY}\n      bucket: {CONTAINER}\n      path: {}\n      endpoint: {}",
                    self.prefix,
                    server.endpoint()
                )
            }
            Dest::Sftp => {
                let server = self.servers.sftp();
                format!(
                    "type: sftp\n      host: {}\n      user: {}\n      path: {}\n      key-path: {}\n      host-key: {}",
                    server.host_port(),
                    server.user(),
                    self.sftp_root().display(),
                    server.client_key().display(),
                    server.host_key()
                )
            }
            Dest::Nats => {
                let server = self.servers.nats();
                block_on(server.create_bucket(&self.prefix))?;
                format!("url: {}", server.replica_url(&self.prefix))
            }
            Dest::Oss => format!(
                "type: oss\n      bucket: {OSS_BUCKET}\n      path: {}\n      region: {OSS_REGION}\n      endpoint: {}\n      access-key-id: {OSS_ACCESS_KEY_ID}\n      secret-access-key: {OSS_ACCESS_KEY_SECRET}",
                self.prefix,
                self.servers.oss().endpoint()
            ),
        };
        let path = self.run.join(format!("{}.yml", self.prefix));
        fs::write(
            &path,
            format!(
                "dbs:\n  - path: {}\n    replica:\n      {replica}\n",
                db.display()
            ),
        )?;
        Ok(path)
    }

    /// (uploads, bytes uploaded) so far; counted on S3 only.
    fn sent(&self) -> (u64, u64) {
        match self.dest {
            Dest::S3 => s3::sent(&self.servers.s3),
            _ => (0, 0),
        }
    }

    /// Removes the run's files, keeping the replicator's log beside them
    /// (`<prefix>.log`) for a look at what it did.
    fn cleanup(&self) {
        for r in REPLICATORS {
            let _ = fs::rename(
                self.run.join(format!("{}.log", r.name())),
                self.run.with_extension("log"),
            );
        }
        let _ = fs::remove_dir_all(&self.run);
        match self.dest {
            Dest::S3 => {
                let _ = fs::remove_dir_all(self.servers.s3.object_path(&self.prefix));
            }
            Dest::WebDav => {
                let _ = fs::remove_dir_all(self.webdav_root());
            }
            Dest::Sftp => {
                let _ = fs::remove_dir_all(self.sftp_root());
            }
            Dest::Abs | Dest::Nats | Dest::Oss => {
                if let Err(e) = self.delete_objects() {
                    eprintln!("  (left objects under {}: {e:#})", self.prefix);
                }
            }
            Dest::Folder => {}
        }
    }

    /// The files of a WebDAV replica, on the server's disk.
    fn webdav_root(&self) -> PathBuf {
        self.servers.webdav().root().join(&self.prefix)
    }

    /// The SFTP replica's path (absolute, below the server's root), on the same disk.
    fn sftp_root(&self) -> PathBuf {
        self.servers.sftp().root().join(&self.prefix)
    }

    /// The engine's client for an object-store replica (its objects are not plain
    /// files on the server's disk: listed and deleted through it).
    fn client(&self) -> Result<Arc<dyn ReplicaClient>> {
        let cfg = match self.dest {
            Dest::Abs => self.servers.abs().replica_config(CONTAINER, &self.prefix),
            Dest::Nats => self.servers.nats().replica_config(&self.prefix),
            Dest::Oss => self.servers.oss().replica_config(&self.prefix),
            other => bail!("{} replicas are files on disk", other.name()),
        };
        Ok(open_client(&cfg)?)
    }

    /// Deletes every object of an object-store replica, level by level.
    fn delete_objects(&self) -> Result<()> {
        let c = self.client()?;
        block_on(async {
            for files in list_levels(c.as_ref()).await? {
                c.delete(&files).await?;
            }
            Ok(())
        })
    }
}

/// Starts `r` on `db` (config file) and waits (bounded) for its first level-0 file.
fn start(a: &Args, r: Replicator, t: &Target, db: &Path) -> Result<Option<Proc>> {
    let Some(bin) = a.bin(r) else {
        return Ok(None);
    };
    let cfg = t.config(db)?;
    let p = Proc::start_config(bin, &cfg, &t.run.join(format!("{}.log", r.name())))?;
    if !t.level0()?.wait_any(Duration::from_secs(120)) {
        bail!(
            "{} wrote no level-0 file to {} {} within 120 s",
            r.name(),
            t.dest.name(),
            t.prefix
        );
    }
    settle();
    Ok(Some(p))
}

/// Row text: a marker, then hex to ~`ROW` bytes.
const ROW: usize = 1000;

fn row(s: &mut String, x: &mut u64, mark: u64) {
    s.clear();
    s.push_str(&format!("lagmark:{mark:010} "));
    hex_text(s, x, ROW);
}

/// Figures of the one-big-transaction and bulk-load runs.
#[derive(Debug, Default, Clone)]
pub struct Write {
    /// Whole transaction (big tx) or whole load (bulk), seconds.
    pub elapsed_s: f64,
    /// Row data written per second (bulk).
    pub mb_s: f64,
    /// The big transaction's COMMIT, or the load's worst transaction (BEGIN to the end
    /// of COMMIT), ms.
    pub commit_ms: f64,
    /// COMMIT (of the last transaction) returning → the replica holds it.
    pub lag_ms: f64,
    pub cpu_s: f64,
    pub rss_mib: f64,
    pub uploads: f64,
    pub mb_up: f64,
}

/// The application's side of a write run: (figures, when its last COMMIT returned,
/// the marker that COMMIT carried).
type Writer<'a> = dyn Fn(&rusqlite::Connection) -> Result<(Write, Instant, u64)> + 'a;

/// Starts the replicator (if any) on a freshly seeded database; runs `write`, which
/// returns (figures, instant its last COMMIT returned, the marker it carried).
fn measured(
    a: &Args,
    r: Replicator,
    dest: Dest,
    servers: &Servers,
    dir: &Path,
    what: &str,
    write: &Writer<'_>,
) -> Result<Write> {
    let prefix = format!("{what}-{}-{}-{}", dest.name(), r.name(), unique());
    let (db, _, c) = crate::fresh(dir, &prefix)?;
    let t = Target {
        dest,
        servers,
        prefix: prefix.clone(),
        run: dir.join(&prefix),
    };
    let res = (|| {
        let proc = start(a, r, &t, &db)?;
        let watch = proc
            .as_ref()
            .map(|_| t.level0())
            .transpose()?
            .map(Watch::start);
        let (cpu0, _) = proc.as_ref().map_or((0.0, 0), Proc::usage);
        let (ups0, bytes0) = t.sent();
        let (mut w, done, mark) = write(&c)?;
        if let Some(watch) = &watch {
            let at = watch.wait(mark, Duration::from_secs(300), r.name())?;
            w.lag_ms = at.saturating_duration_since(done).as_secs_f64() * 1e3;
        }
        let (cpu1, rss) = proc.as_ref().map_or((0.0, 0), Proc::usage);
        let (ups1, bytes1) = t.sent();
        w.cpu_s = cpu1 - cpu0;
        w.rss_mib = rss as f64 / 1024.0;
        w.uploads = (ups1 - ups0) as f64;
        w.mb_up = (bytes1 - bytes0) as f64 / 1e6;
        if let Some(watch) = watch {
            watch.finish();
        }
        if let Some(p) = proc {
            p.stop();
        }
        Ok(w)
    })();
    drop(c);
    t.cleanup();
    res
}

/// ONE transaction of `mb` MiB.
pub fn big_tx(
    a: &Args,
    r: Replicator,
    dest: Dest,
    servers: &Servers,
    dir: &Path,
    mb: u64,
) -> Result<Write> {
    measured(a, r, dest, servers, dir, "bigtx", &|c| {
        let rows = mb * 1024 * 1024 / ROW as u64;
        let (mut s, mut x) = (String::with_capacity(ROW + 16), 0x2545_f491_4f6c_dd1du64);
        let t0 = Instant::now();
        let tx = c.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare("INSERT INTO t(k, v) VALUES (?1, ?2)")?;
            for i in 0..rows {
                row(&mut s, &mut x, 1);
                stmt.execute((i as i64 % 10_007, &s))?;
            }
        }
        let tc = Instant::now();
        tx.commit()?;
        let done = Instant::now();
        let w = Write {
            elapsed_s: done.duration_since(t0).as_secs_f64(),
            commit_ms: done.duration_since(tc).as_secs_f64() * 1e3,
            ..Write::default()
        };
        Ok((w, done, 1))
    })
}

/// `mb` transactions of 1000 rows (~1 MiB) each, as fast as possible.
pub fn bulk(
    a: &Args,
    r: Replicator,
    dest: Dest,
    servers: &Servers,
    dir: &Path,
    mb: u64,
) -> Result<Write> {
    measured(a, r, dest, servers, dir, "bulk", &|c| {
        let (mut s, mut x) = (String::with_capacity(ROW + 16), 0x2545_f491_4f6c_dd1du64);
        let mut stmt = c.prepare("INSERT INTO t(k, v) VALUES (?1, ?2)")?;
        let (mut worst, mut bytes) = (Duration::ZERO, 0usize);
        let t0 = Instant::now();
        let mut done = t0;
        for n in 1..=mb.max(1) {
            // The whole transaction, not just its COMMIT: a writer held off by a
            // replicator's lock waits at its first INSERT.
            let tc = Instant::now();
            c.execute_batch("BEGIN")?;
            for i in 0..1000 {
                row(&mut s, &mut x, n);
                bytes += s.len();
                stmt.execute((i % 10_007, &s))?;
            }
            c.execute_batch("COMMIT")?;
            done = Instant::now();
            worst = worst.max(done.duration_since(tc));
        }
        let secs = done.duration_since(t0).as_secs_f64();
        let w = Write {
            elapsed_s: secs,
            mb_s: bytes as f64 / 1e6 / secs,
            commit_ms: worst.as_secs_f64() * 1e3,
            ..Write::default()
        };
        Ok((w, done, mb.max(1)))
    })
}

/// Initial sync and restore (latest and point in time) figures of one tool.
#[derive(Debug, Default, Clone)]
pub struct Restore {
    pub sync_s: f64,
    pub sync_rss_mib: f64,
    pub latest_s: f64,
    pub latest_rss_mib: f64,
    pub pit_s: f64,
    pub pit_rss_mib: f64,
}

fn rows(db: &Path) -> Result<i64> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
}

/// RFC 3339 UTC, whole seconds, of `secs` since the epoch (the engine's formatter, the
/// one `tideline restore -timestamp` parses back).
fn rfc3339(secs: u64) -> String {
    tideline_engine::format_rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `r` builds its replica of `big` on `dest` and restores it, latest and at a time.
pub fn restore(
    a: &Args,
    r: Replicator,
    dest: Dest,
    servers: &Servers,
    dir: &Path,
    big: &Path,
) -> Result<Restore> {
    let bin = a.bin(r).context("restore needs a replicator")?;
    let prefix = format!("restore-{}-{}-{}", dest.name(), r.name(), unique());
    let t = Target {
        dest,
        servers,
        prefix: prefix.clone(),
        run: dir.join(&prefix),
    };
    fs::create_dir_all(&t.run)?;
    let res = sync_ship_restore(bin, r, &t, big);
    t.cleanup();
    res
}

/// The steps of [`restore`] inside the run directory `t.run`, which the caller removes.
fn sync_ship_restore(bin: &Path, r: Replicator, t: &Target, big: &Path) -> Result<Restore> {
    let db = t.run.join("big.db");
    fs::copy(big, &db)?;
    let base = rows(&db)?;
    let cfg = t.config(&db)?;
    let (sync_s, sync_rss) = s3::replicate_once(bin, &cfg, &t.run.join("sync.log"))?;
    let pit = ship_two(bin, r, t, &cfg, &db)?;
    let src_len = fs::metadata(big)?.len();
    let who = format!("{} {}", r.name(), t.dest.name());
    let (latest_s, latest_rss, out) = restore_run(bin, t, &cfg, &db, &[], "latest")?;
    let (len, n) = (fs::metadata(&out)?.len(), rows(&out)?);
    if len < src_len || n != base + 200 {
        bail!(
            "{who}: latest restore has {len} bytes (source {src_len}) and {n} rows (expected {})",
            base + 200
        );
    }
    remove_db(&out);
    let args = ["-timestamp".into(), rfc3339(pit)];
    let (pit_s, pit_rss, out) = restore_run(bin, t, &cfg, &db, &args, "pit")?;
    let n = rows(&out)?;
    if n != base + 100 {
        bail!(
            "{who}: restore at {} has {n} rows (expected {})",
            rfc3339(pit),
            base + 100
        );
    }
    remove_db(&out);
    Ok(Restore {
        sync_s,
        sync_rss_mib: sync_rss as f64 / 1024.0,
        latest_s,
        latest_rss_mib: latest_rss as f64 / 1024.0,
        pit_s,
        pit_rss_mib: pit_rss as f64 / 1024.0,
    })
}

/// A running replicator ships two small transactions a few seconds apart; the point
/// in time (epoch seconds) that lies between them.
fn ship_two(bin: &Path, r: Replicator, t: &Target, cfg: &Path, db: &Path) -> Result<u64> {
    let proc = Proc::start_config(bin, cfg, &t.run.join(format!("{}.log", r.name())))?;
    settle();
    let watch = Watch::start(t.level0()?);
    let c = open(db)?;
    let shipped = (|| {
        small_tx(&c, 1)?;
        watch.wait(1, Duration::from_secs(120), r.name())?;
        // A whole second after the first transaction landed, and a second before
        // the second one commits.
        let pit = (now_secs() + 1.0).floor();
        let deadline = Instant::now() + Duration::from_secs(5);
        while now_secs() < pit + 1.2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        small_tx(&c, 2)?;
        watch.wait(2, Duration::from_secs(120), r.name())?;
        Ok::<_, anyhow::Error>(pit as u64)
    })();
    watch.finish();
    proc.stop();
    drop(c);
    shipped
}

/// One transaction of 100 rows carrying marker `mark`.
fn small_tx(c: &rusqlite::Connection, mark: u64) -> Result<()> {
    let (mut s, mut x) = (String::new(), 0x1234_5678_9abc_def1u64 ^ mark);
    let tx = c.unchecked_transaction()?;
    for _ in 0..100 {
        row(&mut s, &mut x, mark);
        tx.execute("INSERT INTO t(v) VALUES (?1)", [&s])?;
    }
    tx.commit()?;
    Ok(())
}

/// Restores `db`'s replica as the config file `cfg` describes it (every destination
/// alike: an Azure endpoint or an SFTP key has no place in a URL) to
/// `restored-<tag>.db`: (seconds, peak RSS KiB, the file).
fn restore_run(
    bin: &Path,
    t: &Target,
    cfg: &Path,
    db: &Path,
    extra: &[String],
    tag: &str,
) -> Result<(f64, u64, PathBuf)> {
    let out = t.run.join(format!("restored-{tag}.db"));
    let log = t.run.join(format!("restore-{tag}.log"));
    let source = [
        "-config".into(),
        cfg.display().to_string(),
        db.display().to_string(),
    ];
    let (secs, rss) = s3::restore_to(bin, &source, &out, extra, &log)?;
    Ok((secs, rss, out))
}

/// Removes a restored database and the -wal and -shm files its check left.
fn remove_db(db: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", db.display()));
    }
}

/// Seconds to copy `src` and fsync the copy: the physical limit of a restore.
pub fn cp_fsync(src: &Path, dir: &Path) -> Result<f64> {
    let dst = dir.join("cp-fsync.db");
    let t = Instant::now();
    let mut i = fs::File::open(src)?;
    let mut o = fs::File::create(&dst)?;
    std::io::copy(&mut i, &mut o)?;
    o.flush()?;
    o.sync_all()?;
    let secs = t.elapsed().as_secs_f64();
    drop(o);
    fs::remove_file(&dst)?;
    Ok(secs)
}

/// A table cell: median, with the spread only where there are two rounds or more.
fn cell(v: &[f64], digits: usize) -> String {
    if v.is_empty() {
        "—".into()
    } else if v.len() >= 2 {
        median_spread(v, digits)
    } else {
        format!("{:.*}", digits, median(v))
    }
}

/// tideline's median over Litestream's, as a table cell.
fn ratio(l: &[f64], t: &[f64]) -> String {
    let (l, t) = (median(l), median(t));
    if l > 0.0 && !t.is_nan() {
        format!("{:.2}×", t / l)
    } else {
        "—".into()
    }
}

const TOOLS: [Replicator; 3] = [
    Replicator::None,
    Replicator::Litestream,
    Replicator::Tideline,
];

/// The two write workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BigTx,
    Bulk,
}

/// A table row: (name, figure, digits, with the no-replication column, S3 only).
type WriteFigure = (&'static str, fn(&Write) -> f64, usize, bool, bool);

impl Kind {
    /// How the progress line names it.
    fn label(self) -> &'static str {
        match self {
            Kind::BigTx => "one big transaction",
            Kind::Bulk => "bulk load",
        }
    }

    /// The heading of its table.
    fn title(self, a: &Args) -> String {
        match self {
            Kind::BigTx => format!("one {} MiB transaction", a.tx_mb),
            Kind::Bulk => format!("bulk load of {} MiB, 1000-row transactions", a.bulk_mb),
        }
    }

    /// One run of it with `r` against `dest`.
    fn run(
        self,
        a: &Args,
        r: Replicator,
        dest: Dest,
        servers: &Servers,
        dir: &Path,
    ) -> Result<Write> {
        match self {
            Kind::BigTx => big_tx(a, r, dest, servers, dir, a.tx_mb),
            Kind::Bulk => bulk(a, r, dest, servers, dir, a.bulk_mb),
        }
    }

    /// The rows of its table, the writer's own figures first.
    fn figures(self) -> Vec<WriteFigure> {
        let mut figures: Vec<WriteFigure> = match self {
            Kind::BigTx => vec![
                ("transaction time, s", |w| w.elapsed_s, 2, true, false),
                ("COMMIT, ms", |w| w.commit_ms, 1, true, false),
            ],
            Kind::Bulk => vec![
                ("elapsed, s", |w| w.elapsed_s, 2, true, false),
                ("MB/s (row data)", |w| w.mb_s, 1, true, false),
                ("worst transaction, ms", |w| w.commit_ms, 1, true, false),
            ],
        };
        figures.extend::<[WriteFigure; 5]>([
            ("lag after COMMIT, ms", |w| w.lag_ms, 0, false, false),
            ("replicator CPU s", |w| w.cpu_s, 2, false, false),
            ("replicator peak RSS, MiB", |w| w.rss_mib, 1, false, false),
            ("uploads", |w| w.uploads, 0, false, true),
            ("MB uploaded", |w| w.mb_up, 1, false, true),
        ]);
        figures
    }
}

const DESTS: [Dest; 2] = [Dest::Folder, Dest::S3];

/// The restore group's destinations at `mb` MiB: [`DESTS`], then WebDAV, Azure Blob
/// Storage, SFTP, NATS and OSS where their servers run; with `--quick`, the
/// types after WebDAV at `--big-mb` only (the smoke run stays short).
fn restore_dests(a: &Args, servers: &Servers, mb: u64) -> Vec<Dest> {
    let newer = !a.quick || mb == a.big_mb;
    let mut dests = DESTS.to_vec();
    for (dest, up) in [
        (Dest::WebDav, servers.webdav.is_some()),
        (Dest::Abs, newer && servers.abs.is_some()),
        (Dest::Sftp, newer && servers.sftp.is_some()),
        (Dest::Nats, newer && servers.nats.is_some()),
        (Dest::Oss, newer && servers.oss.is_some()),
    ] {
        if up {
            dests.push(dest);
        }
    }
    dests
}

/// `[dest][tool]` → one figure set per round.
type PerDest<T> = Vec<Vec<Vec<T>>>;

/// The big-transaction and bulk-load groups; prints their tables.
pub fn run_writes(a: &Args, servers: &Servers, dir: &Path) -> Result<()> {
    let kinds: Vec<Kind> = [(Kind::BigTx, a.big_tx), (Kind::Bulk, a.bulk)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    let mut res: Vec<PerDest<Write>> = vec![vec![vec![Vec::new(); 3]; 2]; kinds.len()];
    for round in 0..a.heavy_rounds {
        for (k, &kind) in kinds.iter().enumerate() {
            write_round(a, kind, servers, dir, round, &mut res[k])?;
        }
    }
    for (&kind, res) in kinds.iter().zip(&res) {
        print_writes(a, kind, res);
    }
    Ok(())
}

/// One round of `kind`: every tool against every destination, in turn.
fn write_round(
    a: &Args,
    kind: Kind,
    servers: &Servers,
    dir: &Path,
    round: usize,
    res: &mut PerDest<Write>,
) -> Result<()> {
    for (d, dest) in DESTS.into_iter().enumerate() {
        for (i, &r) in TOOLS.iter().enumerate() {
            eprintln!(
                "round {}: {} {}, {}",
                round + 1,
                kind.label(),
                dest.name(),
                r.name()
            );
            res[d][i].push(kind.run(a, r, dest, servers, dir)?);
        }
    }
    Ok(())
}

/// Prints the table of one write workload.
fn print_writes(a: &Args, kind: Kind, res: &PerDest<Write>) {
    println!(
        "\n{}, {} round(s); median (spread)\n",
        kind.title(a),
        a.heavy_rounds
    );
    println!("| workload | figure | none | litestream | tideline | ratio |");
    println!("|---|---|---:|---:|---:|---:|");
    let figures = kind.figures();
    for (d, dest) in DESTS.into_iter().enumerate() {
        for &(name, get, digits, with_none, s3_only) in &figures {
            if s3_only && dest != Dest::S3 {
                continue;
            }
            let v: Vec<Vec<f64>> = res[d]
                .iter()
                .map(|ws| ws.iter().map(get).collect())
                .collect();
            let none = if with_none {
                cell(&v[0], digits)
            } else {
                "—".into()
            };
            println!(
                "| {} | {name} | {none} | {} | {} | {} |",
                dest.name(),
                cell(&v[1], digits),
                cell(&v[2], digits),
                ratio(&v[1], &v[2])
            );
        }
    }
}

/// One size's restore results.
struct SizeRun {
    mb: u64,
    rounds: usize,
    /// The database's size in MB (10^6 bytes).
    db_mb: f64,
    /// cp + fsync seconds per round.
    cp: Vec<f64>,
    /// The destinations, in the order of `res`.
    dests: Vec<Dest>,
    res: PerDest<Restore>,
}

/// The restore group at the large and huge sizes; prints its table.
pub fn run_restores(a: &Args, servers: &Servers, dir: &Path) -> Result<()> {
    let mut sizes = vec![(a.big_mb, a.heavy_rounds)];
    if a.huge_mb != a.big_mb {
        sizes.push((a.huge_mb, 1));
    }
    let mut all = Vec::new();
    for &(mb, rounds) in &sizes {
        all.push(restore_size(a, servers, dir, mb, rounds)?);
    }
    println!(
        "\ninitial sync and restore (latest, and -timestamp between two later transactions); median (spread) where ≥ 2 rounds\n"
    );
    println!("| database | from | figure | cp+fsync | litestream | tideline | ratio |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for s in &all {
        print_restore_size(s);
    }
    Ok(())
}

/// Builds (or reuses) the `mb` MiB database and runs `rounds` rounds of restores on it.
fn restore_size(
    a: &Args,
    servers: &Servers,
    dir: &Path,
    mb: u64,
    rounds: usize,
) -> Result<SizeRun> {
    eprintln!("building a {mb} MiB database");
    let t = Instant::now();
    let big = s3::big_db(dir, mb)?;
    eprintln!("  ({:.1} s)", t.elapsed().as_secs_f64());
    let db_mb = fs::metadata(&big)?.len() as f64 / 1e6;
    let mut cp = Vec::new();
    let dests = restore_dests(a, servers, mb);
    let mut res: PerDest<Restore> = vec![vec![Vec::new(); 2]; dests.len()];
    for round in 0..rounds {
        // The physical limit: the better of two copies (the disk is shared).
        cp.push(cp_fsync(&big, dir)?.min(cp_fsync(&big, dir)?));
        for (d, &dest) in dests.iter().enumerate() {
            for (i, &r) in REPLICATORS.iter().enumerate() {
                eprintln!(
                    "round {}: {mb} MiB initial sync + restore, {}, {}",
                    round + 1,
                    dest.name(),
                    r.name()
                );
                match restore(a, r, dest, servers, dir, &big) {
                    Ok(figures) => res[d][i].push(figures),
                    // Litestream against a test server it cannot use: its cells stay
                    // empty, and the run says why. Tideline's failures end the run.
                    Err(e) if r == Replicator::Litestream => {
                        eprintln!(
                            "  litestream {} failed, its cells are left empty: {e:#}",
                            dest.name()
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(SizeRun {
        mb,
        rounds,
        db_mb,
        cp,
        dests,
        res,
    })
}

/// Prints one size's rows of the restore table.
fn print_restore_size(s: &SizeRun) {
    type Get = fn(&Restore) -> f64;
    let SizeRun {
        mb,
        rounds,
        db_mb,
        cp,
        dests,
        res,
    } = s;
    let cp_mbs: Vec<f64> = cp.iter().map(|s| db_mb / s.max(0.001)).collect();
    let figures: [(&str, Get, usize, Option<&Vec<f64>>); 8] = [
        ("initial sync until restorable, s", |r| r.sync_s, 2, None),
        ("initial sync peak RSS, MiB", |r| r.sync_rss_mib, 1, None),
        ("restore latest, s", |r| r.latest_s, 2, Some(cp)),
        ("restore latest, MB/s", |r| r.latest_s, 0, Some(&cp_mbs)),
        (
            "restore latest peak RSS, MiB",
            |r| r.latest_rss_mib,
            1,
            None,
        ),
        ("restore point in time, s", |r| r.pit_s, 2, Some(cp)),
        ("restore point in time, MB/s", |r| r.pit_s, 0, Some(&cp_mbs)),
        (
            "restore point in time peak RSS, MiB",
            |r| r.pit_rss_mib,
            1,
            None,
        ),
    ];
    for (d, dest) in dests.iter().enumerate() {
        for &(name, get, digits, cpv) in &figures {
            // MB/s rows share the seconds getter: the rate is the database over it.
            let per_s = name.ends_with("MB/s");
            let v: Vec<Vec<f64>> = res[d]
                .iter()
                .map(|rs| {
                    rs.iter()
                        .map(|r| {
                            if per_s {
                                db_mb / get(r).max(0.001)
                            } else {
                                get(r)
                            }
                        })
                        .collect()
                })
                .collect();
            let cpc = cpv.map_or("—".into(), |c| cell(c, digits));
            println!(
                "| {db_mb:.0} MB ({mb} MiB, {rounds} round(s)) | {} | {name} | {cpc} | {} | {} | {} |",
                dest.name(),
                cell(&v[0], digits),
                cell(&v[1], digits),
                ratio(&v[0], &v[1])
            );
        }
    }
}
