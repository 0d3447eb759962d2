//! Shared by the tests/ringmaster_*.rs files: a real daqportmgr on a port of its own, a
//! real ringmaster registered with it, rings that clean up after themselves, and raw
//! slot reads that do not disturb the ring (unlike `ring::usage`, which frees dead
//! clients' slots itself).
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daqflow::ring::{self, CreateOptions};

use crate::portmgr_support::{self, Raw, TIMEOUT, TempDir};

pub const RINGMASTER: &str = concat!(env!("DAQFLOW_PROGRAMS"), "/ringmaster");

/// A port manager and a ring master registered with it; both killed on drop.
pub struct Master {
    pub portmgr: portmgr_support::Daemon,
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub dir: TempDir,
}

impl Master {
    pub fn start(extra: &[&str]) -> Master {
        Master::start_limited(extra, None)
    }

    /// As `start`, with the daemon's descriptor limit (soft and hard) set to `fds`.
    pub fn start_limited(extra: &[&str], fds: Option<u64>) -> Master {
        // A pool of one port that is free now: parallel tests each get their own.
        let free = free_port();
        let portmgr = portmgr_support::Daemon::start(&format!("{free}-{free}"), &[]);
        let dir = TempDir::new("rm");
        let log = dir.0.join("ringmaster.log");
        let ready = ReadySocket::new(&dir.0);
        let child =
            spawn_limited(portmgr.port, &log, extra, fds, Some(&ready.path), Some(&portmgr.path("listen.port")));
        let mut master = Master { portmgr, child, port: 0, log, dir };
        ready.wait(&mut master.child, &master.log);
        master.port = ringmaster_port(master.portmgr.port)
            .unwrap_or_else(|| panic!("ringmaster ready but not registered: {}", master.log_text()));
        master
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn connect(&self) -> Raw {
        Raw::new(TcpStream::connect(self.addr()).expect("connect to ringmaster"))
    }

    /// REGISTERs `ring`, as its creator does when it finds this ring master (this test
    /// process does not: it looks for the port manager at the standard place).
    pub fn register(&self, ring: &str) {
        self.connect().ask(&format!("REGISTER {ring}\n"), "OK\r\n");
    }

    /// The names in this ring master's LIST, in its order.
    pub fn listed(&self) -> Vec<String> {
        let mut c = self.connect();
        c.ask("LIST\n", "OK\r\n");
        let line = c.line();
        let rings = daqflow::ringmaster::protocol::parse_list_line(line.trim_end().as_bytes())
            .unwrap_or_else(|| panic!("LIST line is not a Tcl list: {line:?}"));
        rings.into_iter().map(|(name, _)| name).collect()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text`.
    pub fn wait_log(&self, text: &str) {
        let start = Instant::now();
        while !self.log_text().contains(text) {
            assert!(start.elapsed() < TIMEOUT, "the log never said {text:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM; true if it exited with status 0.
    pub fn stop(&mut self) -> bool {
        // SAFETY: kill(2) on a child we started and have not reaped.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        portmgr_support::wait_with_timeout(&mut self.child).success()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        // The log lives in a directory removed with us: a failed test shows it here.
        if std::thread::panicking() {
            eprintln!("--- ringmaster log ---\n{}--- end of ringmaster log ---", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(portmgr_port: u16, log: &Path, extra: &[&str]) -> Child {
    spawn_limited(portmgr_port, log, extra, None, None, None)
}

/// `notify`: a NOTIFY_SOCKET to hear READY=1 on. `port_file`: what the daemon's own
/// library takes for the local port manager (as a program on its host would), so that
/// it could find the daemon itself.
fn spawn_limited(
    portmgr_port: u16,
    log: &Path,
    extra: &[&str],
    fds: Option<u64>,
    notify: Option<&Path>,
    port_file: Option<&Path>,
) -> Child {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(RINGMASTER);
    command.env_remove("DAQFLOW_RINGMASTER");
    if let Some(file) = port_file {
        command.env("DAQPORTMGR_PORTFILE", file);
    }
    if let Some(fds) = fds {
        // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit { rlim_cur: fds, rlim_max: fds };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    if let Some(notify) = notify {
        command.env("NOTIFY_SOCKET", notify);
    }
    command
        .arg("--portmgr-port")
        .arg(portmgr_port.to_string())
        .arg("--log")
        .arg(log)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ringmaster")
}

/// A port nobody listens on at the moment, below the kernel's ephemeral range (32768 up):
/// a port the kernel chose could be handed out again at once as the local port of some
/// other test's outgoing connection, and the ring master could then not listen on it.
/// Each call in this process gives another port; the pid spreads parallel test binaries.
/// Never the port manager's default port: this process's own ring attaches look for a
/// port manager there, and would find a ring master given it and fail on its replies.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20000;
    const SPAN: u32 = 12000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(97) % SPAN;
    for _ in 0..SPAN {
        let port = (FIRST + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if port == daqflow::portmgr::protocol::DEFAULT_LISTEN_PORT {
            continue;
        }
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// The test's end of systemd's readiness protocol. A ring master is ready for clients
/// when it says READY=1, not when the port manager lists it: the port manager lists the
/// port as it hands it out, and only then can the ring master listen on it, so a client
/// that connects in between is refused.
pub struct ReadySocket {
    socket: UnixDatagram,
    /// For `NOTIFY_SOCKET`.
    pub path: PathBuf,
}

impl ReadySocket {
    pub fn new(dir: &Path) -> ReadySocket {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the readiness socket");
        // Short waits, so a daemon that died at start is noticed at once.
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("readiness socket timeout");
        ReadySocket { socket, path }
    }

    /// Waits for READY=1 from `child` (whose log is `log`).
    pub fn wait(&self, child: &mut Child, log: &Path) {
        let log_text = || std::fs::read_to_string(log).unwrap_or_default();
        let start = Instant::now();
        let mut buf = [0u8; 256];
        loop {
            if let Ok(n) = self.socket.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
                    return;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ringmaster exited at start ({status}): {}", log_text());
            }
            assert!(start.elapsed() < TIMEOUT, "ringmaster never said it was ready: {}", log_text());
        }
    }
}

/// The port of the first RingMaster the port manager LISTs.
pub fn ringmaster_port(portmgr_port: u16) -> Option<u16> {
    let mut client = daqflow::portmgr::Client::connect(Some("127.0.0.1"), Some(portmgr_port)).ok()?;
    client.list().ok()?.into_iter().find(|a| a.application == "RingMaster").map(|a| a.port)
}

/// A ring for one test (`rm-<test>-<pid>`), removed on drop.
pub struct TestRing(pub String);

impl TestRing {
    pub fn new(test: &str, data: u64, consumers: u32) -> TestRing {
        let name = format!("rm-{test}-{}", std::process::id());
        let _ = ring::remove(&name);
        ring::create(&name, CreateOptions { data_bytes: data, max_consumers: consumers, ..Default::default() })
            .expect("create ring");
        TestRing(name)
    }

    pub fn s(&self) -> &str {
        &self.0
    }

    /// The pid in a consumer slot, read straight from the shared memory.
    pub fn consumer_pid(&self, slot: u32) -> i32 {
        self.pid_at(96 + 16 * u64::from(slot) + 8)
    }

    pub fn producer_pid(&self) -> i32 {
        self.pid_at(80 + 8)
    }

    fn pid_at(&self, offset: u64) -> i32 {
        let file = std::fs::File::open(format!("/dev/shm/{}", self.0)).expect("open ring file");
        let mut word = [0u8; 4];
        file.read_exact_at(&mut word, offset).expect("read slot");
        i32::from_le_bytes(word)
    }
}

impl Drop for TestRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

/// examples/ring_role (built by `cargo test` next to the test binaries).
pub fn role_exe() -> PathBuf {
    let me = std::env::current_exe().expect("test executable path");
    me.parent().and_then(|deps| deps.parent()).expect("target dir").join("examples").join("ring_role")
}

/// A process attached to `ring` as a consumer and waiting for data; returns it and its
/// slot.
pub fn consumer_process(ring: &str) -> (KillOnDrop, u32) {
    let mut child = Command::new(role_exe())
        .args(["consume", ring, "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ring_role");
    let mut out = child.stdout.take().expect("stdout");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).expect("read ring_role") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    let slot = text
        .strip_prefix("attached ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("ring_role said {text:?}"));
    (KillOnDrop(child), slot)
}

/// Polls `condition` until it holds or the timeout passes.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A connection from 127.0.0.2: loopback, but not one of the local addresses.
pub fn connect_from_127_0_0_2(port: u16) -> Raw {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let fd = socket::socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    socket::bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 2, 0)).unwrap();
    let stream = TcpStream::from(fd);
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    socket::connect(stream.as_raw_fd(), &socket::SockaddrStorage::from(target)).unwrap();
    Raw::new(stream)
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A child process killed and reaped when the test ends, even by a panic (a helper left
/// running would hold the test's output pipes open and stall the run).
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
