//! The service files in dist/: the systemd unit passes `systemd-analyze verify` (whose
//! exit status alone is not enough: it exits 0 on some errors, so its output must be
//! empty), and the plain init script starts, reports and stops the daemon.

mod portmgr_support;

use std::process::Command;

use portmgr_support::{DAEMON, TempDir};

const UNIT: &str = include_str!("../dist/daqportmgr.service");
const INIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/daqportmgr.init");

#[test]
fn systemd_unit_verifies_cleanly() {
    assert!(UNIT.contains("\nType=notify\n"), "the daemon signals readiness with sd_notify");
    let dir = TempDir::new("unit");
    // The unit names the installed binary; point it at the one just built.
    portmgr_support::assert_unit_verifies(&dir.0, "daqportmgr.service", UNIT, "/usr/local/bin/daqportmgr", DAEMON, &[]);
}

#[test]
fn tmpfiles_entry_creates_a_private_state_directory() {
    let entry = include_str!("../dist/daqportmgr.tmpfiles");
    let lines: Vec<&str> = entry.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    // The directory of the default port file, root's and writable by no one else, so no
    // user can create it first (the daemon would refuse to start).
    assert_eq!(lines, ["d /var/tmp/daqportmgr 0755 root root -"]);
    assert_eq!(daqflow::portmgr::protocol::DEFAULT_PORT_FILE, "/var/tmp/daqportmgr/listen.port");
    assert!(UNIT.contains("\nUMask=0022\n"), "the unit must not make group-writable state directories");
}

#[test]
fn systemd_unit_arguments_are_accepted_by_the_daemon() {
    let exec = UNIT.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/daqportmgr"));
    let dir = TempDir::new("unit-args");
    // The unit's switches, with the files moved into a scratch directory.
    let mut args: Vec<String> = words.map(String::from).collect();
    if let Some(i) = args.iter().position(|a| a == "-pidfile") {
        args[i + 1] = dir.0.join("pid").display().to_string();
    }
    let port_file = dir.0.join("listen.port");
    let mut child = Command::new(DAEMON)
        .args(&args)
        .args(["-listen", "0", "-portfile"])
        .arg(&port_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !port_file.exists() {
        assert!(child.try_wait().unwrap().is_none(), "daqportmgr rejected the unit's arguments {args:?}");
        assert!(start.elapsed() < portmgr_support::TIMEOUT);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(portmgr_support::wait_with_timeout(&mut child).success());
}

#[test]
fn init_script_starts_reports_and_stops() {
    let dir = TempDir::new("init");
    let run = |action: &str| {
        let out = Command::new("sh")
            .arg(INIT)
            .arg(action)
            .env("DAEMON", DAEMON)
            .env("PIDFILE", dir.0.join("pid"))
            .env("LOGFILE", dir.0.join("log"))
            .env(
                "DAEMON_ARGS",
                format!("-listen 0 -ports 29000-29009 -portfile {}", dir.0.join("listen.port").display()),
            )
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(run("status").0, Some(3));
    let (code, text) = run("start");
    assert_eq!(code, Some(0), "{text}");
    let pid: i32 = std::fs::read_to_string(dir.0.join("pid")).unwrap().trim().parse().unwrap();
    let (code, text) = run("status");
    assert_eq!(code, Some(0));
    assert!(text.contains(&format!("running (pid {pid})")), "{text}");
    // The script says started once the pid file is there; the daemon writes listen.port
    // just after it.
    let start = std::time::Instant::now();
    let port: u16 = loop {
        if let Some(port) = std::fs::read_to_string(dir.0.join("listen.port")).ok().and_then(|t| t.trim().parse().ok())
        {
            break port;
        }
        assert!(start.elapsed() < portmgr_support::TIMEOUT, "daqportmgr started but wrote no listen.port");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut client = daqflow::portmgr::Client::connect(Some("127.0.0.1"), Some(port)).unwrap();
    assert!(client.list().unwrap().is_empty());
    let (code, text) = run("stop");
    assert_eq!(code, Some(0), "{text}");
    // SAFETY: kill(pid, 0) only probes for existence.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "daqportmgr still running after stop");
    assert_eq!(run("status").0, Some(3));
    assert_eq!(run("bogus").0, Some(2));
}
