//! The test side: peer processes read line by line with time limits, daqflow's programs,
//! a private daqportmgr, scratch directories and rings that remove themselves.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bound on anything a test waits for; far above what any step takes.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// One of daqflow's programs: from `$DAQFLOW_BIN_DIR` (set by `make check`), else the
/// workspace's release build.
pub fn daqflow_program(name: &str) -> PathBuf {
    let dir = std::env::var_os("DAQFLOW_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release"));
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built (run make, or set DAQFLOW_BIN_DIR)", path.display());
    path
}

/// A peer process: its stdout lines arrive through a channel, its stderr is kept for the
/// failure message, its stdin is how the test tells a holding peer to detach.
pub struct Peer {
    pub label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

/// How a peer ended.
pub struct Outcome {
    pub label: String,
    pub status: ExitStatus,
    pub stderr: String,
}

impl Outcome {
    /// Panics unless the peer exited with status 0, saying whether a signal killed it.
    pub fn assert_success(&self) {
        if let Some(signal) = self.status.signal() {
            panic!("{} was killed by signal {signal}{}; stderr: {}", self.label, signal_name(signal), self.stderr);
        }
        assert!(self.status.success(), "{} failed ({}): {}", self.label, self.status, self.stderr);
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGKILL => " (SIGKILL)",
        _ => "",
    }
}

impl Peer {
    /// `program args...`, kept away from any ring master unless `env` says otherwise.
    pub fn start(label: &str, program: impl AsRef<std::ffi::OsStr>, args: &[&str], env: &[(&str, &str)]) -> Peer {
        let mut command = Command::new(program);
        command.env("DAQFLOW_RINGMASTER", "off");
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let stdin = child.stdin.take();
        Peer { label: label.to_string(), child, stdin, lines, stderr: Some(stderr) }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the next stdout line and checks that it starts with `prefix`; a peer
    /// that exits or says something else fails the test with its stderr.
    pub fn expect(&mut self, prefix: &str) -> String {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(line) if line.starts_with(prefix) => line,
            Ok(line) => panic!("{} said {line:?}, expected {prefix:?}", self.label),
            Err(RecvTimeoutError::Timeout) => panic!("{} did not say {prefix:?} within {TIMEOUT:?}", self.label),
            Err(RecvTimeoutError::Disconnected) => {
                let outcome = self.wait();
                outcome.assert_success();
                panic!("{} exited without saying {prefix:?}", self.label)
            }
        }
    }

    /// "running", or how it ended (a peer a ring master signalled shows it here).
    pub fn state(&mut self) -> String {
        match self.child.try_wait() {
            Ok(None) => "running".into(),
            Ok(Some(status)) => match status.signal() {
                Some(signal) => format!("killed by signal {signal}{}", signal_name(signal)),
                None => status.to_string(),
            },
            Err(e) => e.to_string(),
        }
    }

    /// Closes its stdin (a holding peer detaches) and waits for it to exit.
    pub fn finish(mut self) -> Outcome {
        self.wait()
    }

    fn wait(&mut self) -> Outcome {
        self.stdin = None;
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for a peer") {
                break status;
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!("{} did not exit within {TIMEOUT:?}", self.label);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        Outcome { label: self.label.clone(), status, stderr }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system temp directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("daqflow-interop-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A ring name of this test process, removed (whoever made it) on drop.
pub struct RingName(pub String);

impl RingName {
    pub fn new(tag: &str) -> RingName {
        let name = format!("interop-{tag}-{}", std::process::id());
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
        RingName(name)
    }

    pub fn s(&self) -> &str {
        &self.0
    }

    pub fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }

    /// Created by daqflow with `data_bytes` requested and `consumers` slots.
    pub fn create(tag: &str, data_bytes: u64, consumers: u32) -> RingName {
        let ring = RingName::new(tag);
        let options = daqflow::ring::CreateOptions { data_bytes, max_consumers: consumers, ..Default::default() };
        daqflow::ring::create(ring.s(), options).unwrap_or_else(|e| panic!("create {}: {e}", ring.s()));
        ring
    }
}

impl Drop for RingName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// A port nobody listens on now, below the kernel's ephemeral range and away from the
/// port manager's default, spread by pid so that parallel test programs differ.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = (std::process::id() as usize).wrapping_mul(131) % 10000;
    for _ in 0..10000 {
        let port = (20000 + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % 10000) as u16;
        if port != 30000 && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..30000")
}

/// daqflow's port manager on a port the kernel picks, with its state in a directory of
/// its own; killed on drop.
pub struct PortManager {
    child: Child,
    pub port: u16,
    pub dir: TempDir,
}

impl PortManager {
    /// Its pool is one free port: enough for one ring master.
    pub fn start() -> PortManager {
        let dir = TempDir::new("pm");
        let pool = free_port();
        let child = Command::new(daqflow_program("daqportmgr"))
            .args(["-ports", &format!("{pool}-{pool}"), "-listen", "0"])
            .arg("-log")
            .arg(dir.0.join("log"))
            .arg("-portfile")
            .arg(dir.0.join("listen.port"))
            .arg("-pidfile")
            .arg(dir.0.join("daqportmgr.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daqportmgr");
        let mut manager = PortManager { child, port: 0, dir };
        let start = Instant::now();
        manager.port = loop {
            // listen.port is written once the daemon serves.
            if let Some(port) = std::fs::read_to_string(manager.port_file()).ok().and_then(|t| t.trim().parse().ok()) {
                break port;
            }
            if let Ok(Some(status)) = manager.child.try_wait() {
                panic!("daqportmgr exited at start ({status})");
            }
            assert!(start.elapsed() < TIMEOUT, "daqportmgr did not start");
            std::thread::sleep(Duration::from_millis(5));
        };
        manager
    }

    /// What daqflow's clients read to find it (`DAQPORTMGR_PORTFILE`).
    pub fn port_file(&self) -> PathBuf {
        self.dir.0.join("listen.port")
    }
}

impl Drop for PortManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `pid` sleeps (a consumer inside its get, waiting for data).
pub fn wait_until_sleeping(pid: i32) {
    let start = std::time::Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name's closing parenthesis.
        if stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('S')) {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "process {pid} never waited");
        std::thread::sleep(Duration::from_millis(1));
    }
}
