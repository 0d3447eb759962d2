//! Issue 12.5 and 12.6a: what a hostile client can make daqportmgr hold, and whose a
//! GIMME is when its client has already gone.

mod portmgr_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use daqflow::portmgr::client::calling_user;
use portmgr_support::{Daemon, Raw, other_address, raise_fd_limit};

/// A connection whose receive buffer is a few KiB, so that what it does not read stays
/// in the daemon instead of in the kernel (as with a client on a slow or hostile link).
fn slow_reader(addr: SocketAddr) -> TcpStream {
    // SAFETY: plain socket(2); the result is checked and then owned.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size: libc::c_int = 2048;
    // SAFETY: valid fd; the option value is a c_int of the stated size.
    let rc =
        unsafe { libc::setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, (&size as *const libc::c_int).cast(), 4) };
    assert_eq!(rc, 0);
    let stream = TcpStream::from(fd);
    let SocketAddr::V4(v4) = addr else { panic!("IPv4 only") };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: valid fd and a sockaddr_in of the stated size.
    let rc = unsafe {
        libc::connect(raw, (&sin as *const libc::sockaddr_in).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t)
    };
    assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
    stream
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `count` allocations with the longest names allowed, 64 per connection (the default
/// most one connection may hold).
fn hold_long_names(daemon: &Daemon, count: usize) -> Vec<Raw> {
    let me = calling_user();
    let mut holders = Vec::new();
    for i in 0..count {
        if i % 64 == 0 {
            holders.push(daemon.connect());
        }
        let name = format!("{i:04}{}", "n".repeat(251));
        holders.last_mut().expect("a holder").gimme(&name, &me);
    }
    holders
}

fn gimme_time(daemon: &Daemon) -> Duration {
    let mut c = daemon.connect();
    let start = Instant::now();
    c.gimme("probe", &calling_user());
    start.elapsed()
}

#[test]
fn names_and_holdings_are_bounded() {
    let daemon = Daemon::start("23001-23200", &["-max-per-user", "70"]);
    let me = calling_user();
    let mut c = daemon.connect();
    let long = "a".repeat(256);
    c.ask(&format!("GIMME {long} {me}\n"), "FAIL {the application name is longer than 255 bytes}\r\n");
    let long_user = "u".repeat(256);
    c.ask(&format!("GIMME app {long_user}\n"), "FAIL {the user name is longer than 255 bytes}\r\n");
    c.gimme(&long[..255], &me);
    for i in 1..64 {
        c.gimme(&format!("s{i}"), &me);
    }
    c.ask(&format!("GIMME more {me}\n"), "FAIL {this connection already holds 64 ports, the most one may}\r\n");
    let mut other = daemon.connect();
    for i in 0..6 {
        other.gimme(&format!("t{i}"), &me);
    }
    other.ask(&format!("GIMME t6 {me}\n"), &format!("FAIL {{user {me} already holds 70 ports, the most one may}}\r\n"));
    drop(c);
    daemon.eventually("64 released", || daemon.read("ports.txt").lines().count() == 6);
    other.gimme("t6", &me);
}

#[test]
fn clients_that_never_read_their_lists_cost_the_daemon_little() {
    if raise_fd_limit() < 1000 {
        eprintln!("SKIPPED: descriptor hard limit below 1000");
        return;
    }
    let daemon = Daemon::start("23201-23457", &["-max-per-user", "1000"]);
    let _holders = hold_long_names(&daemon, 256);
    let unloaded = gimme_time(&daemon);
    let before = rss_kib(daemon.pid());
    // 300 clients each ask for the 69 KB list 40 times (more than the kernel's buffers
    // take) and never read a byte.
    let mut flood = Vec::new();
    for _ in 0..300 {
        let mut s = slow_reader(daemon.addr());
        s.write_all(&b"LIST\n".repeat(40)).expect("send LISTs");
        flood.push(s);
    }
    // The first GIMME waits for the daemon to take in the flood that came before it; the
    // next ones show what the stalled clients cost while they sit there.
    let first = gimme_time(&daemon);
    let loaded = (0..5).map(|_| gimme_time(&daemon)).max().expect("five GIMMEs");
    // Everything sent has been read by now: the GIMME came after it, on the same loop.
    let grown = rss_kib(daemon.pid()).saturating_sub(before);
    eprintln!(
        "daemon grew {grown} KiB for 300 stalled clients; GIMME {unloaded:?} unloaded, {first:?} behind the flood, \
         then at most {loaded:?}"
    );
    // Private copies would be 300 x 64-133 KB; shared, the snapshot is counted once and
    // each connection costs its socket and a few small buffers.
    assert!(grown < 8 * 1024, "the daemon grew {grown} KiB");
    // Generous: the machine running the tests is shared and noisy.
    assert!(loaded < unloaded * 20 + Duration::from_millis(50), "GIMME took {loaded:?} (unloaded {unloaded:?})");
}

#[test]
fn stalled_clients_are_dropped_past_the_total() {
    let daemon = Daemon::start("23501-23756", &["-max-buffered", "300000", "-max-per-user", "1000"]);
    let _holders = hold_long_names(&daemon, 192);
    let mut toggler = daemon.connect();
    let mut stalled = Vec::new();
    // Each client's LISTs see another set of allocations, so no two clients share a
    // snapshot: 40 of them hold at least 40 x 52 KB, several times the budget.
    for i in 0..40 {
        toggler.gimme(&format!("toggle{i}"), &calling_user());
        let mut s = slow_reader(daemon.addr());
        // Enough LISTs to fill the kernel's buffers, so the rest waits in the daemon.
        s.write_all(&b"LIST\n".repeat(100)).expect("send LISTs");
        stalled.push(s);
        // Wait for the daemon to answer it (a GIMME on the same loop) before changing
        // the list again.
        toggler.ask("LIST\n", "");
        let _ = toggler.line();
        for _ in 0..192 + i + 1 {
            let _ = toggler.line();
        }
    }
    daemon.eventually("the drop logged", || daemon.read("log").contains("did not read their replies dropped"));
    // The oldest stalled client was dropped: reading it ends before its reply does.
    let mut first = stalled.remove(0);
    first.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut got = Vec::new();
    let ended = loop {
        let mut chunk = [0u8; 65536];
        match first.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) => panic!("reading the dropped client: {e} after {} bytes", got.len()),
        }
    };
    let replies = got.windows(8).filter(|w| w == b"OK 193\r\n").count();
    assert!(ended && replies < 100, "read {} bytes, {replies} replies", got.len());
    // The newest stalled client still gets its whole reply.
    let last = stalled.pop().expect("a stalled client");
    let mut last = Raw::new(last);
    let header = last.line();
    assert_eq!(header, "OK 232\r\n");
    assert!(gimme_time(&daemon) < Duration::from_secs(5));
}

#[test]
fn connections_past_the_limit_are_closed_and_garbage_is_logged_at_a_bounded_rate() {
    let daemon = Daemon::start("23801-23810", &["-max-connections", "10"]);
    let mut open: Vec<Raw> = (0..10).map(|_| daemon.connect()).collect();
    open[9].gimme("tenth", &calling_user());
    let mut eleventh = daemon.connect();
    eleventh.expect_closed();
    drop(open);
    // Until the daemon has seen those ten go, a new connection is still one too many.
    let start = Instant::now();
    while TcpStream::connect(daemon.addr())
        .ok()
        .and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            s.write_all(b"LIST\n").ok()?;
            let mut reply = [0u8; 8];
            s.read(&mut reply).ok().filter(|&n| n > 0)
        })
        .is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(10), "the daemon still refuses connections");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Garbage from many connections: the first lines in full, then a bounded rate.
    let start = Instant::now();
    for _ in 0..600 {
        let mut c = daemon.connect();
        c.send(b"HELLO\n");
        let _ = c.line();
        c.expect_closed();
    }
    let elapsed = start.elapsed().as_secs() + 1;
    let log = daemon.read("log");
    let lines = (log.matches("issued an illegal request").count() + log.matches("Connection accepted").count()) as u64;
    eprintln!("{lines} lines logged for 600 garbage connections in {elapsed} s");
    // 200 at once, 20 a second after, a few of them for the connections before.
    assert!(lines >= 150, "{lines}");
    assert!(lines <= 200 + 20 * elapsed, "{lines} lines in {elapsed} s");
    let mut c = daemon.connect();
    c.send(b"AGAIN\n");
    let _ = c.line();
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = daemon.connect();
    c.send(b"LATER\n");
    let _ = c.line();
    daemon.eventually("the count of lines left out", || {
        daemon.read("log").contains("lines about connections not logged")
    });
}

/// Some TCP socket to `port` on IPv4 loopback is in FIN_WAIT1 (state 04 in /proc/net/tcp).
fn client_closing(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table.lines().any(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"04")
    })
}

/// Issue 12.5: a client of another user sends `GIMME app root` and closes at once while
/// the daemon is busy; its socket is then a TIME_WAIT socket the kernel reports as root's.
#[test]
fn a_gimme_from_a_client_that_has_gone_is_not_roots() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to run a client as another uid");
        return;
    }
    let daemon = Daemon::start("23901-23910", &[]);
    for round in 0..2 {
        // The daemon is busy: it accepts and reads only after the client has gone.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(daemon.pid(), libc::SIGSTOP) };
        let script =
            format!("exec 3<>/dev/tcp/127.0.0.1/{}; printf 'GIMME stolen{round} root\\n' >&3; exec 3>&-", daemon.port);
        let status = Command::new("bash").args(["-c", &script]).uid(54321).gid(54321).status();
        // Its FIN waits for the stopped daemon's side to be acknowledged (a retransmit,
        // about 200 ms); then the client's end is a TIME_WAIT socket.
        let start = Instant::now();
        while client_closing(daemon.port) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(daemon.pid(), libc::SIGCONT) };
        let status = status.expect("run bash as uid 54321");
        assert!(status.success(), "{status}");
        daemon.eventually("the GIMME handled", || daemon.read("log").contains(&format!("stolen{round} run by root")));
    }
    let log = daemon.read("log");
    assert!(!log.contains("was allocated to stolen"), "{log}");
    assert!(log.contains("no longer connected"), "{log}");
    // A client that stays connected is still known by the uid it had at accept.
    let mut c = daemon.connect();
    c.gimme("mine", "root");
}

#[test]
fn one_remote_host_cannot_take_every_connection() {
    let Some(ip) = other_address() else {
        eprintln!("SKIPPED: no non-loopback IPv4 address to connect from");
        return;
    };
    let daemon = Daemon::start("23951-23960", &["-max-connections", "100"]);
    let target = SocketAddr::new(ip, daemon.port);
    let mut open: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(target).expect("connect")).collect();
    let mut one_more = TcpStream::connect(target).expect("connect");
    one_more.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut byte = [0u8; 1];
    assert!(matches!(one_more.read(&mut byte), Ok(0) | Err(_)), "the 65th connection from {ip} was served");
    // Local servers still get ports; the host's connections still work.
    let mut local = daemon.connect();
    local.gimme("local", &calling_user());
    let mut first = Raw::new(open.remove(0));
    first.ask("LIST\n", "OK 1\r\n");
}
