//! Attacks on the port manager found by the review of the issue 12 changes, closed:
//! refused GIMMEs cost root's log a bounded amount whoever sends them (16 KB of log per
//! remote connection, 23 MB/s from one remote loop, before), one local user cannot take
//! every connection (4096 idle ones locked root out, before), a user holds no more ports
//! under its uid than under its name (twice the limit, before), and a socket handed to a
//! root process after its GIMME was written is not root's (the port was root's, before).

mod portmgr_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portmgr_support::{Daemon, other_address, raise_fd_limit};

/// Any host may GIMME: the refusal ("Only local applications get ports") is logged with
/// the application name quoted in full, escaped (up to 4 bytes per byte sent), and that
/// line is not under the rate limit of the other lines about connections. Measured: 16 KB
/// of root's log per remote connection, 23 MB/s from one remote loop.
#[test]
fn a_remote_host_cannot_fill_the_log_with_refused_gimmes() {
    let Some(ip) = other_address() else {
        eprintln!("SKIPPED: no non-loopback IPv4 address to connect from");
        return;
    };
    let daemon = Daemon::start("24001-24010", &[]);
    let target = SocketAddr::new(ip, daemon.port);
    let mut request = b"GIMME ".to_vec();
    request.extend(std::iter::repeat_n(0xffu8, 4000));
    request.extend_from_slice(b" x\n");
    let start = Instant::now();
    let connections = 300;
    for _ in 0..connections {
        let mut c = TcpStream::connect(target).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        c.write_all(&request).expect("send");
        let mut reply = Vec::new();
        let _ = c.read_to_end(&mut reply);
    }
    let elapsed = start.elapsed().as_secs() + 1;
    std::thread::sleep(Duration::from_millis(200));
    let log = daemon.read("log").len() as u64;
    eprintln!("{log} bytes logged for {connections} refused remote GIMMEs in {elapsed} s");
    // What the other lines about connections may cost: 200 at once, 20 a second, a few
    // hundred bytes each.
    assert!(log <= (200 + 20 * elapsed) * 600, "{log} bytes logged in {elapsed} s");
}

/// The connection cap is global; a local user may not take all of it: one unprivileged
/// user's 4100 idle connections (IPv6 loopback) must leave root served.
#[test]
fn one_local_user_cannot_take_every_connection() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to run a client as another uid");
        return;
    }
    if raise_fd_limit() < 9000 {
        eprintln!("SKIPPED: the descriptor limit is too low for 4096 connections");
        return;
    }
    let daemon = Daemon::start("24031-24040", &[]);
    let script = format!(
        "ulimit -n 8192 || exit 1; for i in $(seq 4100); do exec {{fd}}<>/dev/tcp/::1/{} || break; done; echo held; \
         sleep 60",
        daemon.port
    );
    let mut hog = Command::new("bash")
        .args(["-c", &script])
        .uid(54321)
        .gid(54321)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run bash as uid 54321");
    let mut held = [0u8; 5];
    let _ = hog.stdout.as_mut().map(|out| out.read_exact(&mut held));
    let mut root = TcpStream::connect(daemon.addr()).expect("connect");
    root.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let served = root.write_all(b"LIST\n").is_ok() && {
        let mut reply = [0u8; 8];
        matches!(root.read(&mut reply), Ok(n) if n > 0)
    };
    let _ = hog.kill();
    let _ = hog.wait();
    assert_eq!(&held, b"held\n", "the other user could not open its connections");
    assert!(served, "root was refused a connection while uid 54321 held 4096 idle ones");
}

/// The per-user limit counts the name a GIMME sends, and a user is accepted under two
/// names (its login name and its uid in decimal), so each user holds twice the limit:
/// measured 512 of the default 1000 ports for one unprivileged user.
#[test]
fn a_user_holds_no_more_under_its_uid_than_under_its_name() {
    let uid = nix::unistd::getuid().as_raw();
    let Some(name) = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
    else {
        eprintln!("SKIPPED: this uid has no passwd name");
        return;
    };
    let daemon = Daemon::start("24011-24030", &["-max-per-user", "4"]);
    let mut c = daemon.connect();
    for i in 0..4 {
        c.gimme(&format!("app{i}"), &name);
    }
    c.send(format!("GIMME more {uid}\n").as_bytes());
    let reply = c.line();
    assert!(
        reply.starts_with("FAIL"),
        "user {name} got a fifth port as {uid}: {reply}"
    );
}

/// What another uid runs: python3 (skipped without it) with `script`, the daemon's port
/// as its first argument.
fn python(script: &str, port: u16) -> Command {
    let mut command = Command::new("python3");
    command.args(["-c", script, &port.to_string()]);
    command
}

/// The client decides when its GIMME is verified: with replies unread past the high-water
/// mark its requests wait, so it can write `GIMME app root`, hand the socket over
/// SCM_RIGHTS to a process whose real uid is 0 and which has the owner among its ids, and
/// let that process read: the /proc scan then finds only that holder, "real user root",
/// and root may claim anyone. Here the holder is a stand-in (root with euid 54321) for a
/// setuid-root program run by uid 54321 that sets its real uid to 0 and keeps 54321 in
/// its effective or saved uid while holding an inherited descriptor.
#[test]
fn a_socket_handed_to_a_root_process_after_writing_gimme_root_is_not_roots() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to run a client as another uid");
        return;
    }
    if Command::new("python3")
        .arg("-c")
        .arg("")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("SKIPPED: no python3");
        return;
    }
    let daemon = Daemon::start("24041-24140", &[]);
    let holder = r#"
import socket, array, sys
l = socket.socket(socket.AF_UNIX); l.bind("\0daqflow-review-" + sys.argv[1]); l.listen(1)
print("ready", flush=True)
c, _ = l.accept(); _, anc, _, _ = c.recvmsg(1, socket.CMSG_LEN(4))
fd = array.array("i"); fd.frombytes(anc[0][2][:4]); t = socket.socket(fileno=fd[0]); t.settimeout(5)
data = b""
try:
    while not data.endswith(b"\r\n") or data.count(b"\r\n") < 41:
        d = t.recv(65536)
        if not d: break
        data += d
except OSError: pass
print(data.rstrip().split(b"\r\n")[-1].decode("latin-1"), flush=True)
"#;
    let attacker = r#"
import socket, array, sys, time
port = int(sys.argv[1])
hold = socket.create_connection(("127.0.0.1", port)); f = hold.makefile("rb")
for i in range(60):
    hold.sendall(b"GIMME " + (b"a%02d" % i) * 80 + b" 54321\n"); f.readline()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(b"LIST\n" * 40 + b"GIMME handed root\n")
time.sleep(0.5)
u = socket.socket(socket.AF_UNIX); u.connect("\0daqflow-review-" + sys.argv[1])
u.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [s.fileno()]))])
s.close(); u.close(); time.sleep(3)
"#;
    let mut holder = python(holder, daemon.port);
    // SAFETY: only async-signal-safe setresuid(2) between fork and exec.
    unsafe {
        holder.pre_exec(|| {
            if libc::setresuid(0, 54321, 54321) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut holder = holder
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the holder");
    let mut out = holder.stdout.take().expect("stdout");
    let mut ready = [0u8; 6];
    out.read_exact(&mut ready).expect("the holder is listening");
    let status = python(attacker, daemon.port)
        .uid(54321)
        .gid(54321)
        .status()
        .expect("run the attacker as 54321");
    let mut last = String::new();
    let _ = out.read_to_string(&mut last);
    let _ = holder.wait();
    assert!(status.success(), "{status}");
    let log = daemon.read("log");
    assert!(
        !log.contains("allocated to handed run by root"),
        "uid 54321 got a port as root's: {last}"
    );
}
