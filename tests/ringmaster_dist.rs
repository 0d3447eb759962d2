//! The ring master's service files in dist/: the systemd unit passes `systemd-analyze
//! verify` (with nothing printed: it exits 0 on some errors) together with the port
//! manager's unit it is ordered after, and the init script starts, reports and stops it.

mod portmgr_support;
mod ringmaster_support;

use std::process::Command;

use portmgr_support::{DAEMON, TempDir};
use ringmaster_support::RINGMASTER;

const UNIT: &str = include_str!("../dist/ringmaster.service");
const PORTMGR_UNIT: &str = include_str!("../dist/daqportmgr.service");
const INIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/ringmaster.init");

#[test]
fn systemd_unit_verifies_and_follows_the_port_manager() {
    assert!(UNIT.contains("\nType=notify\n"), "the daemon signals readiness with sd_notify");
    assert!(UNIT.lines().any(|l| l.starts_with("After=") && l.contains("daqportmgr.service")));
    assert!(UNIT.lines().any(|l| l.starts_with("Wants=") && l.contains("daqportmgr.service")));
    let dir = TempDir::new("rm-unit");
    let portmgr_unit = PORTMGR_UNIT.replace("/usr/local/bin/daqportmgr", DAEMON);
    portmgr_support::assert_unit_verifies(
        &dir.0,
        "ringmaster.service",
        UNIT,
        "/usr/local/bin/ringmaster",
        RINGMASTER,
        &[("daqportmgr.service", portmgr_unit)],
    );
}

#[test]
fn systemd_unit_arguments_are_accepted_by_the_daemon() {
    let exec = UNIT.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/ringmaster"));
    let args: Vec<&str> = words.collect();
    let free = ringmaster_support::free_port();
    let portmgr = portmgr_support::Daemon::start(&format!("{free}-{free}"), &[]);
    let mut child = Command::new(RINGMASTER)
        .args(&args)
        .args(["--portmgr-port", &portmgr.port.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    ringmaster_support::eventually("registration", || ringmaster_support::ringmaster_port(portmgr.port).is_some());
    assert!(child.try_wait().unwrap().is_none(), "ringmaster rejected the unit's arguments {args:?}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(portmgr_support::wait_with_timeout(&mut child).success());
}

#[test]
fn init_script_starts_reports_and_stops() {
    let free = ringmaster_support::free_port();
    let portmgr = portmgr_support::Daemon::start(&format!("{free}-{free}"), &[]);
    let dir = TempDir::new("rm-init");
    let run = |action: &str| {
        let out = Command::new("sh")
            .arg(INIT)
            .arg(action)
            .env("DAEMON", RINGMASTER)
            .env("PIDFILE", dir.0.join("run/pid"))
            .env("LOGFILE", dir.0.join("log"))
            .env("DAEMON_ARGS", format!("--portmgr-port {}", portmgr.port))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(run("status").0, Some(3));
    let (code, text) = run("start");
    assert_eq!(code, Some(0), "{text}");
    let pid: i32 = std::fs::read_to_string(dir.0.join("run/pid")).unwrap().trim().parse().unwrap();
    let (code, text) = run("status");
    assert_eq!(code, Some(0));
    assert!(text.contains(&format!("running (pid {pid})")), "{text}");
    ringmaster_support::eventually("registration", || ringmaster_support::ringmaster_port(portmgr.port).is_some());
    let (code, text) = run("stop");
    assert_eq!(code, Some(0), "{text}");
    // SAFETY: kill(pid, 0) only probes for existence.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "ringmaster still running after stop");
    assert_eq!(run("status").0, Some(3));
    assert_eq!(run("bogus").0, Some(2));
    assert!(std::fs::read_to_string(dir.0.join("log")).unwrap().contains("ringmaster stopped"));
}
