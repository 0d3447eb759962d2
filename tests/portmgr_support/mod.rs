//! Shared by the tests/portmgr_*.rs files: starts the real daqportmgr binary with its own
//! state directory, and talks the raw protocol to it.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const DAEMON: &str = concat!(env!("DAQFLOW_PROGRAMS"), "/daqportmgr");
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh directory under the system temp directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("daqflow-{tag}-{}-{n}", std::process::id()));
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

/// A running daqportmgr in its own state directory; killed if the test did not stop it.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub dir: TempDir,
}

impl Daemon {
    /// Starts the daemon with a small range and `extra` switches; the kernel picks the
    /// listen port (`-listen 0`), which the daemon writes to listen.port.
    ///
    /// Ranges in the tests lie below the kernel's ephemeral ports (32768 up): the listen
    /// port, and any listener a test running beside it opens on port 0, come from there,
    /// and the daemon skips a port something listens on, so a range inside it would now
    /// and then hand out other ports than the tests expect.
    pub fn start(range: &str, extra: &[&str]) -> Daemon {
        let dir = TempDir::new("pm");
        let child = Daemon::spawn(&dir.0, range, extra);
        let mut daemon = Daemon { child, port: 0, dir };
        daemon.port = daemon.wait_for_port_file();
        daemon
    }

    pub fn spawn(dir: &Path, range: &str, extra: &[&str]) -> Child {
        Command::new(DAEMON)
            .args(Daemon::args(dir, range, extra))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start daqportmgr")
    }

    /// As `start`, inside `namespace`.
    pub fn start_in(namespace: &Namespace, tag: &str, range: &str, extra: &[&str]) -> Daemon {
        let dir = TempDir::new(tag);
        let child = namespace
            .command(DAEMON, &[])
            .args(Daemon::args(&dir.0, range, extra))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daqportmgr in the namespace");
        let mut daemon = Daemon { child, port: 0, dir };
        daemon.port = daemon.wait_for_port_file();
        daemon
    }

    /// The switches of a daemon with its state in `dir`, the ports of `range`, and `extra`.
    fn args(dir: &Path, range: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec!["-ports".into(), range.into()];
        if !extra.contains(&"-listen") {
            args.extend(["-listen".into(), "0".into()]);
        }
        args.extend([
            "-log".into(),
            dir.join("log").display().to_string(),
            "-portfile".into(),
            dir.join("listen.port").display().to_string(),
            "-pidfile".into(),
            dir.join("daqportmgr.pid").display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn wait_for_port_file(&mut self) -> u16 {
        let path = self.path("listen.port");
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Ok(port) = text.trim().parse::<u16>() {
                    // listen.port is written after the pid file, so the daemon is serving.
                    return port;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                let _ = self.child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("daqportmgr exited at start ({status}): {err}");
            }
            assert!(start.elapsed() < TIMEOUT, "daqportmgr did not write {}", path.display());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn connect(&self) -> Raw {
        Raw::new(TcpStream::connect(self.addr()).expect("connect to daqportmgr"))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        wait_with_timeout(&mut self.child)
    }

    /// Polls `condition` until it holds or the timeout passes.
    pub fn eventually(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let start = Instant::now();
        while !condition() {
            assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_with_timeout(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return status;
        }
        assert!(start.elapsed() < TIMEOUT, "process {} did not exit", child.id());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A raw protocol connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn new(stream: TcpStream) -> Raw {
        stream.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
        Raw { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send request");
    }

    /// Reads exactly `expected.len()` bytes and compares them with `expected`.
    pub fn expect(&mut self, expected: &[u8]) {
        while self.buf.len() < expected.len() {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading reply, have {:?}: {e}", String::from_utf8_lossy(&self.buf)),
            }
        }
        let got: Vec<u8> = self.buf.drain(..expected.len().min(self.buf.len())).collect();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expected));
    }

    /// Sends a request and expects a reply, byte for byte.
    pub fn ask(&mut self, request: &str, reply: &str) {
        self.send(request.as_bytes());
        self.expect(reply.as_bytes());
    }

    /// The next reply line, CR LF included.
    pub fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                return String::from_utf8_lossy(&line).into_owned();
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed; have {:?}", String::from_utf8_lossy(&self.buf)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading a line: {e}"),
            }
        }
    }

    /// Allocates a port and returns it.
    pub fn gimme(&mut self, app: &str, user: &str) -> u16 {
        self.send(format!("GIMME {app} {user}\n").as_bytes());
        let line = self.line();
        line.strip_prefix("OK ")
            .and_then(|p| p.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("GIMME {app} {user}: {line:?}"))
    }

    /// Sends LIST and returns the reply lines after the count.
    pub fn list(&mut self) -> Vec<String> {
        self.send(b"LIST\n");
        let header = self.line();
        let n: usize = header.strip_prefix("OK ").and_then(|n| n.trim_end().parse().ok()).expect("OK n");
        (0..n).map(|_| self.line().trim_end().to_string()).collect()
    }

    /// The server closes the connection (after any reply already read).
    pub fn expect_closed(&mut self) {
        assert!(self.buf.is_empty(), "unread reply bytes {:?}", String::from_utf8_lossy(&self.buf));
        let mut chunk = [0u8; 64];
        match self.stream.read(&mut chunk) {
            Ok(0) => {}
            Ok(n) => panic!("expected the server to close, got {:?}", String::from_utf8_lossy(&chunk[..n])),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the server to close: {e}"),
        }
    }

    pub fn half_close(&self) {
        self.stream.shutdown(Shutdown::Write).expect("shutdown");
    }
}

/// Raises this process's descriptor limit to its hard limit (a test holding 1000
/// connections needs more than the usual 1024).
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit with a pointer to our own struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

/// Checks that the systemd unit `unit` (installed as `name`, pointed at the binary just
/// built: `installed` replaced by `built`) passes `systemd-analyze verify` together with
/// `companions` (name, text), with nothing printed (it exits 0 on some errors, so the
/// output is what tells), and that a broken copy is reported, so the check can fail.
pub fn assert_unit_verifies(
    dir: &Path,
    name: &str,
    unit: &str,
    installed: &str,
    built: &str,
    companions: &[(&str, String)],
) {
    let original = unit;
    let unit = unit.replace(installed, built);
    assert_ne!(unit, original, "ExecStart of {name} does not name {installed}");
    let output = systemd_verify(dir, name, &unit, companions);
    assert!(output.trim().is_empty(), "systemd-analyze verify:\n{output}");
    let broken = unit.replace("Type=notify", "Type=notifyy");
    let output = systemd_verify(dir, name, &broken, companions);
    assert!(output.contains("notifyy"), "a bad Type= in {name} went unnoticed:\n{output}");
}

fn systemd_verify(dir: &Path, name: &str, unit: &str, companions: &[(&str, String)]) -> String {
    let mut files = Vec::new();
    for (file, text) in std::iter::once((name, unit)).chain(companions.iter().map(|(f, t)| (*f, t.as_str()))) {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .output()
        .expect("systemd-analyze is needed for this test (Debian: apt-get install systemd)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Allocates a port for `service` from the daemon and listens on it on 127.0.0.1, as a
/// server the tests fake would (taking another when something else holds that port).
/// The returned client holds the allocation: keep it as long as the service is listed.
pub fn listen_as(daemon: &Daemon, service: &str) -> (daqflow::portmgr::Client, std::net::TcpListener) {
    let mut manager = daqflow::portmgr::Client::connect(Some("127.0.0.1"), Some(daemon.port)).expect("port manager");
    loop {
        let port = manager.allocate(service).expect("allocate");
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return (manager, listener);
        }
    }
}

/// This host's first IPv4 address that is not loopback, to connect from as "another host".
pub fn other_address() -> Option<std::net::IpAddr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let ip = std::net::IpAddr::V4(ifa.address?.as_sockaddr_in()?.ip());
        (!ip.is_loopback()).then_some(ip)
    })
}

/// A network namespace of its own (named after `tag` and this process), its loopback
/// interface up with `addresses` (each with its prefix length) on it; deleted on drop.
/// `None` (the test skips, saying why) where namespaces cannot be made.
pub struct Namespace(String);

impl Namespace {
    pub fn new(tag: &str, addresses: &[impl AsRef<str>]) -> Option<Namespace> {
        let name = format!("{tag}-{}", std::process::id());
        let ip = |args: &[&str]| Command::new("ip").args(args).output().map(|o| o.status.success()).unwrap_or(false);
        if !ip(&["netns", "add", &name]) {
            eprintln!("SKIPPED: cannot create a network namespace here (needs root and `ip netns`)");
            return None;
        }
        let namespace = Namespace(name);
        assert!(ip(&["-n", &namespace.0, "link", "set", "lo", "up"]), "lo up");
        for address in addresses.iter().map(AsRef::as_ref) {
            // nodad: usable at once, not after duplicate address detection.
            assert!(ip(&["-n", &namespace.0, "addr", "add", address, "dev", "lo", "nodad"]), "add {address}");
        }
        Some(namespace)
    }

    /// `program args` run inside the namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.0, program]).args(args);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Whether an attack test whose python clients run as other uids and hold `descriptors`
/// descriptors can run here; says why not (the test then skips).
pub fn can_run_clients_as_others(descriptors: u64) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to run clients as other uids");
        return false;
    }
    if !have_python() {
        eprintln!("SKIPPED: no python3");
        return false;
    }
    if raise_fd_limit() < descriptors {
        eprintln!("SKIPPED: the descriptor limit is too low for {descriptors} descriptors per process");
        return false;
    }
    true
}

/// Whether python3 runs here (the attack tests' clients are python scripts).
pub fn have_python() -> bool {
    Command::new("python3").args(["-c", ""]).status().is_ok_and(|s| s.success())
}

/// `script` under python3, the daemon's port as its first argument.
pub fn python(script: &str, port: u16) -> Command {
    let mut command = Command::new("python3");
    command.args(["-c", script, &port.to_string()]);
    command
}

/// `python` with the real uid `real` and the effective and saved uid `effective` (a
/// set-user-ID program's ids).
pub fn python_as(script: &str, port: u16, real: u32, effective: u32) -> Command {
    let mut command = python(script, port);
    // SAFETY: only async-signal-safe calls (setgroups, setresgid, setresuid) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(real, effective, effective) == 0
                && libc::setresuid(real, effective, effective) == 0;
            if ok { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    command
}
