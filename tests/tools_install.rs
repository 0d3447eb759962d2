//! `make install-tools-files` into a scratch prefix: the manual pages land where `man`
//! finds them, the systemd units where systemd looks, with the prefix's paths, and pass
//! `systemd-analyze verify` (its output must be empty: it exits 0 on some errors); the
//! ring master, when its files are in dist/, is ordered after the port manager; the init
//! scripts run the installed daemon; uninstall leaves no file behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PORTMGR: &str = concat!(env!("DAQFLOW_PROGRAMS"), "/daqportmgr");

struct Prefix(PathBuf);

impl Prefix {
    fn new(tag: &str) -> Prefix {
        let dir = std::env::temp_dir().join(format!("daqflow-tools-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Prefix(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make(target: &str, vars: &[String]) -> Output {
    // Under `make check` the parent make's jobserver settings would leak into this one.
    let out = Command::new("make")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .args(["--no-print-directory", "-C", ROOT, target])
        .args(vars)
        .output()
        .expect("make is needed");
    assert!(out.status.success(), "make {target}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn dist_has(file: &str) -> bool {
    Path::new(ROOT).join("dist").join(file).exists()
}

/// `systemd-analyze verify` of `units`; its combined output.
fn verify(units: &[PathBuf]) -> String {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .output()
        .expect("systemd-analyze is needed for this test (Debian: apt-get install systemd)");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The values of `key=` in a unit, split into words.
fn unit_words(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
        .flat_map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect()
}

#[test]
fn pages_and_service_files_install_where_they_belong() {
    let prefix = Prefix::new("install");
    let p = prefix.0.display().to_string();
    make("install-tools-files", &[format!("PREFIX={p}")]);

    let mut expected = vec![
        "etc/init.d/daqportmgr",
        "lib/systemd/system/daqportmgr.service",
        "lib/tmpfiles.d/daqportmgr.conf",
        "share/man/man1/lsservices.1",
        "share/man/man1/ringbuffer.1",
        "share/man/man3/daqflow.3",
        "share/man/man8/daqportmgr.8",
        "share/man/mann/portAllocator.n",
        "share/man/mann/ring.n",
    ];
    let ringmaster = dist_has("ringmaster.service");
    if ringmaster {
        expected.extend(["lib/systemd/system/ringmaster.service"]);
    } else {
        eprintln!("NOTE: dist/ringmaster.service is not in this tree; only the port manager's unit is checked");
    }
    if dist_has("ringmaster.init") {
        expected.push("etc/init.d/ringmaster");
    }
    if Path::new(ROOT).join("man/ringmaster.8").exists() {
        expected.push("share/man/man8/ringmaster.8");
    }
    expected.sort();
    assert_eq!(files_under(&prefix.0), expected);

    // man finds every page in the installed tree, by section.
    for (section, page) in [
        ("1", "ringbuffer"),
        ("1", "lsservices"),
        ("3", "daqflow"),
        ("8", "daqportmgr"),
        ("n", "ring"),
        ("n", "portAllocator"),
    ] {
        let out = Command::new("man").args(["-M", &format!("{p}/share/man"), "-w", section, page]).output();
        let Ok(out) = out else {
            eprintln!("SKIPPED: man is not installed, so the installed pages were not looked up");
            break;
        };
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(found, format!("{p}/share/man/man{section}/{page}.{section}"), "man -w {section} {page}");
    }

    // The units name the prefix's programs, and verify cleanly once those exist.
    let unit_dir = prefix.path("lib/systemd/system");
    let portmgr_unit = std::fs::read_to_string(unit_dir.join("daqportmgr.service")).unwrap();
    assert!(portmgr_unit.contains(&format!("\nExecStart={p}/bin/daqportmgr ")), "{portmgr_unit}");
    assert!(portmgr_unit.contains(&format!("file://{p}/share/doc/daqflow/portmanager.md")), "{portmgr_unit}");
    assert!(!portmgr_unit.lines().any(|l| !l.starts_with('#') && l.contains("/usr/local")), "{portmgr_unit}");
    std::fs::create_dir_all(prefix.path("bin")).unwrap();
    std::os::unix::fs::symlink(PORTMGR, prefix.path("bin/daqportmgr")).unwrap();
    let mut units = vec![unit_dir.join("daqportmgr.service")];
    if ringmaster {
        let built = Path::new(PORTMGR).with_file_name("ringmaster");
        std::os::unix::fs::symlink(&built, prefix.path("bin/ringmaster")).unwrap();
        let unit = std::fs::read_to_string(unit_dir.join("ringmaster.service")).unwrap();
        assert!(
            unit_words(&unit, "After").iter().any(|u| u == "daqportmgr.service"),
            "ringmaster must start after the port manager:\n{unit}"
        );
        let pulls: Vec<String> = ["Requires", "Wants", "BindsTo"].iter().flat_map(|k| unit_words(&unit, k)).collect();
        assert!(pulls.iter().any(|u| u == "daqportmgr.service"), "ringmaster must pull in the port manager:\n{unit}");
        units.push(unit_dir.join("ringmaster.service"));
    }
    let output = verify(&units);
    assert!(output.trim().is_empty(), "systemd-analyze verify:\n{output}");

    // The init script runs the installed daemon by default (its DAEMON path was rewritten).
    let state = prefix.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let init = |action: &str| {
        let out = Command::new("sh")
            .arg(prefix.path("etc/init.d/daqportmgr"))
            .arg(action)
            .env_remove("DAEMON")
            .env("PIDFILE", state.join("pid"))
            .env("LOGFILE", state.join("log"))
            .env(
                "DAEMON_ARGS",
                format!("-listen 0 -ports 29010-29019 -portfile {}", state.join("listen.port").display()),
            )
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    assert_eq!(init("status").0, Some(3));
    let (code, text) = init("start");
    assert_eq!(code, Some(0), "{text}");
    // The script says started once the pid file is there; the daemon writes listen.port
    // just after it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !state.join("listen.port").exists() {
        assert!(std::time::Instant::now() < deadline, "the installed init script did not start {p}/bin/daqportmgr");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (code, text) = init("stop");
    assert_eq!(code, Some(0), "{text}");
    if dist_has("ringmaster.init") {
        let script = std::fs::read_to_string(prefix.path("etc/init.d/ringmaster")).unwrap();
        let required = script.lines().find(|l| l.starts_with("# Required-Start:")).unwrap_or_default();
        assert!(
            required.contains("daqportmgr"),
            "the ringmaster init script must start after daqportmgr: {required:?}"
        );
        assert!(Command::new("sh").arg("-n").arg(prefix.path("etc/init.d/ringmaster")).status().unwrap().success());
    }

    std::fs::remove_dir_all(&state).unwrap();
    std::fs::remove_dir_all(prefix.path("bin")).unwrap();
    make("uninstall-tools-files", &[format!("PREFIX={p}")]);
    assert_eq!(files_under(&prefix.0), Vec::<String>::new(), "left behind by uninstall");
}

#[test]
fn destdir_stages_files_that_name_the_final_prefix() {
    let stage = Prefix::new("destdir");
    let d = stage.0.display().to_string();
    make("install-tools-files", &["PREFIX=/opt/daq".to_string(), format!("DESTDIR={d}")]);
    let unit = std::fs::read_to_string(stage.path("opt/daq/lib/systemd/system/daqportmgr.service")).unwrap();
    assert!(unit.contains("\nExecStart=/opt/daq/bin/daqportmgr "), "{unit}");
    let init = std::fs::read_to_string(stage.path("opt/daq/etc/init.d/daqportmgr")).unwrap();
    assert!(init.contains("DAEMON=${DAEMON:-/opt/daq/bin/daqportmgr}"), "{init}");
    assert!(stage.path("opt/daq/share/man/man1/ringbuffer.1").exists());
    make("uninstall-tools-files", &["PREFIX=/opt/daq".to_string(), format!("DESTDIR={d}")]);
    assert_eq!(files_under(&stage.0), Vec::<String>::new());
}
