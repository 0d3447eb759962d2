//! Attacks on issue 12's trust fixes by their second review.
//!
//! The port manager: a search for the processes holding a client's socket stayed queued
//! after its connection was dropped, so one user could fill the daemon's queue of
//! searches (4096) with searches of sockets long closed, and every other user's
//! set-user-ID client was then refused ("too many checks of processes are waiting").

mod portmgr_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use portmgr_support::{Daemon, raise_fd_limit};

fn have_python() -> bool {
    Command::new("python3").args(["-c", ""]).status().is_ok_and(|s| s.success())
}

/// `script` under python3 with the real uid `real` and the effective and saved uid
/// `effective` (a set-user-ID program's ids), the daemon's port and `args` after it.
fn python_as(script: &str, port: u16, args: &[&str], real: u32, effective: u32) -> Command {
    let mut command = Command::new("python3");
    command.args(["-c", script, &port.to_string()]).args(args);
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

/// The attacker (uid 54341) makes the searches for its sockets slow (children holding
/// many descriptors) and its LIST replies long (200 ports with long names, about 50 KB a
/// LIST). Then, 200 connections at a time, each: two LISTs that it does not read (with a
/// 4 KB receive buffer, the second reply no longer fits the kernel's buffers, so a little
/// of it stays in the daemon's), `GIMME x root` (a name not its own: a search is queued
/// and the GIMME waits for it), and a reset. The reset makes the write of the unsent
/// reply fail, and the daemon drops the connection while its search waits. The
/// connection is gone, its uid's count of open connections is down, and the search
/// stays queued: 24 rounds queue more than the daemon's 4096.
const ATTACKER: &str = r#"
import os, resource, socket, struct, sys, time
port, rounds = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
kids = []
for _ in range(4):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(min(hard, 20000) - 200)]
        os.write(w, b"x")
        time.sleep(600)
        os._exit(0)
    os.close(w); os.read(r, 1); os.close(r); kids.append(pid)
holds = []
for c in range(4):
    h = socket.create_connection(("127.0.0.1", port)); f = h.makefile("rb")
    for i in range(50):
        h.sendall(b"GIMME " + (b"a%03d" % (c * 50 + i)) * 60 + b" 54341\n")
        assert f.readline().startswith(b"OK")
    holds.append(h)
for _ in range(rounds):
    socks = []
    for _ in range(200):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port)); socks.append(s)
    for s in socks: s.sendall(b"LIST\nLIST\n")
    time.sleep(0.05)
    for s in socks: s.sendall(b"GIMME x root\n")
    time.sleep(0.05)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
    time.sleep(0.05)
print("done", flush=True)
sys.stdin.read()
for pid in kids: os.kill(pid, 9); os.waitpid(pid, 0)
"#;

/// A set-user-ID client (real uid 54342, effective 54343) asking for a port for its real
/// user: answered once its search is done.
const SETUID_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(20)
s.sendall(b"GIMME legit 54342\n")
print(s.makefile("rb").readline().decode("latin-1").strip(), flush=True)
"#;

#[test]
fn searches_of_dropped_connections_do_not_fill_the_queue() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to run clients as other uids");
        return;
    }
    if !have_python() {
        eprintln!("SKIPPED: no python3");
        return;
    }
    if raise_fd_limit() < 20_000 {
        eprintln!("SKIPPED: the descriptor limit is too low for the attacker's slow searches");
        return;
    }
    let daemon = Daemon::start("25001-25300", &[]);
    let mut attacker = python_as(ATTACKER, daemon.port, &["24"], 54341, 54341)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the attacker");
    let mut done = String::new();
    let _ = BufReader::new(attacker.stdout.take().expect("stdout")).read_line(&mut done);
    let legit = python_as(SETUID_CLIENT, daemon.port, &[], 54342, 54343).output().expect("run the client");
    // Its stdin closed: the attacker kills its children and exits.
    let _ = attacker.stdin.take().map(|mut stdin| stdin.write_all(b""));
    let _ = attacker.wait();
    assert_eq!(done.trim(), "done", "the attacker did not finish");
    let legit = String::from_utf8_lossy(&legit.stdout).trim().to_string();
    assert!(legit.starts_with("OK "), "the set-user-ID client was refused: {legit}");
}
