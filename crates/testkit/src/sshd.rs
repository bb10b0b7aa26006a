//! A real SSH/SFTP server for tests: OpenSSH's own `sshd` on 127.0.0.1, run as the
//! current user from a scratch folder, with its own host key, one authorized client
//! key and `internal-sftp`. Nothing of the system's SSH set-up is read or changed
//! (its own config, keys, `PidFile`; the system `sshd` service is never touched).
//!
//! Why the real one: SFTP servers differ in what they accept (rename over a file,
//! packet sizes, times), and OpenSSH is what users run; a Rust mock would test the
//! client against itself.
//!
//! Login is by key only: password login without PAM checks the user's system
//! password, which a test cannot set without changing the machine's accounts.

use std::io::{Error, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// OpenSSH's server.
pub const SSHD: &str = "/usr/sbin/sshd";
/// How long the server may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A running `sshd`; killed (with its session processes) on drop.
#[derive(Debug)]
pub struct SshServer {
    dir: PathBuf,
    port: u16,
    user: String,
    host_key: String,
    child: Option<Child>,
}

impl SshServer {
    /// Starts a server keeping its keys, config and log in `dir` (created), with
    /// `<dir>/root` as a folder for replicas, on a free port of 127.0.0.1.
    pub fn start(dir: &Path) -> std::io::Result<SshServer> {
        std::fs::create_dir_all(dir.join("root"))?;
        // Privilege separation needs it; packages create it at boot only.
        std::fs::create_dir_all("/run/sshd")?;
        for (name, kind) in [
            ("host_ed25519", "ed25519"),
            ("client_ed25519", "ed25519"),
            ("stranger_ed25519", "ed25519"),
        ] {
            let key = dir.join(name);
            if !key.exists() {
                run(Command::new("ssh-keygen")
                    .args(["-q", "-t", kind, "-N", "", "-C", "", "-f"])
                    .arg(&key))?;
            }
        }
        std::fs::copy(dir.join("client_ed25519.pub"), dir.join("authorized_keys"))?;
        let host_key = std::fs::read_to_string(dir.join("host_ed25519.pub"))?
            .trim()
            .to_owned();
        let user = current_user()?;
        let config = config_text(dir, &user, false);
        std::fs::write(dir.join("sshd_config"), config)?;
        run(Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(dir.join("sshd_config")))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = SshServer {
            dir: dir.to_path_buf(),
            port,
            user,
            host_key,
            child: None,
        };
        server.launch()?;
        Ok(server)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as the `host:` key takes it.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The user to log in as (the current user).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The private key the server accepts.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_ed25519")
    }

    /// A valid private key the server does not accept.
    pub fn stranger_key(&self) -> PathBuf {
        self.dir.join("stranger_ed25519")
    }

    /// The server's public host key, `ssh-ed25519 AAAA…`.
    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    /// The server's `known_hosts` line (`[127.0.0.1]:PORT ssh-ed25519 AAAA…`).
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key)
    }

    /// A folder for replicas (absolute).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Bytes the server's session processes read and wrote so far (`rchar` +
    /// `wchar` of `/proc/<pid>/io`): any request at all moves it, so a test can tell
    /// that an idle client sends nothing.
    pub fn session_io(&self) -> u64 {
        let Some(child) = &self.child else {
            return 0;
        };
        descendants(child.id())
            .into_iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/io")).ok())
            .flat_map(|io| {
                io.lines()
                    .filter(|l| l.starts_with("rchar:") || l.starts_with("wchar:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Kills every session the server serves, by PID, leaving it listening: open
    /// connections drop (as when a NAT or firewall forgets them) and new ones work.
    pub fn drop_connections(&self) {
        if let Some(child) = &self.child {
            for pid in descendants(child.id()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// Stops the server and every session it serves: connections drop, as when a
    /// server reboots.
    pub fn stop(&mut self) {
        // Sessions first (children of the listener), then the listener, by PID.
        self.drop_connections();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, serving SFTP read-only when
    /// `read_only` (the login works, every change is refused as not permitted).
    pub fn restart_read_only(&mut self, read_only: bool) -> std::io::Result<()> {
        std::fs::write(
            self.dir.join("sshd_config"),
            config_text(&self.dir, &self.user, read_only),
        )?;
        self.restart()
    }

    /// Starts the server again on the same port, with the same keys and files.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.launch()
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))?;
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(self.dir.join("sshd_config"))
                .arg("-p")
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log.try_clone()?)
                .spawn()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            loop {
                if let Some(status) = child.try_wait()? {
                    // The port may still be held by the previous run's sockets.
                    if Instant::now() >= deadline {
                        return Err(Error::other(format!(
                            "sshd exited ({status}): {}",
                            self.log()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    self.child = Some(child);
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::new(
                        ErrorKind::TimedOut,
                        format!("sshd did not listen within {START_LIMIT:?}: {}", self.log()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server's `sshd_config`; `read_only` serves SFTP read-only (`internal-sftp -R`:
/// every change is refused with "permission denied").
fn config_text(dir: &Path, user: &str, read_only: bool) -> String {
    format!(
        "HostKey {dir}/host_ed25519\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         PidFile {dir}/sshd.pid\n\
         ListenAddress 127.0.0.1\n\
         StrictModes no\n\
         PermitRootLogin yes\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         AllowUsers {user}\n\
         Subsystem sftp internal-sftp{ro} -d {dir}/root\n\
         LogLevel VERBOSE\n",
        dir = dir.display(),
        ro = if read_only { " -R" } else { "" },
    )
}

/// Runs `cmd`, failing with its output when it fails.
fn run(cmd: &mut Command) -> std::io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::other(format!(
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// The current user's name.
fn current_user() -> std::io::Result<String> {
    let out = Command::new("id").arg("-un").output()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if name.is_empty() {
        return Err(Error::other("id -un printed no user name"));
    }
    Ok(name)
}

/// Every process below `pid` (children first found, then theirs), from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid …"; comm may hold spaces, so after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &parents {
            if pp == parent && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}
