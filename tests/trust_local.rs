//! Issue 12, item 3, on one host: a ring master that `nobody` registers with the port
//! manager (LIST puts it before root's) must not hear of other users' rings, nor stop
//! their creates and attaches; an operator can name the account to trust.

mod portmgr_support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::User;
use portmgr_support::{Daemon, TempDir};

const RINGMASTER: &str = concat!(env!("DAQFLOW_PROGRAMS"), "/ringmaster");

fn role_exe() -> PathBuf {
    let me = std::env::current_exe().expect("test executable path");
    me.parent().and_then(|deps| deps.parent()).expect("target dir").join("examples").join("remote_role")
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A ring master logging to `log`, as `user` (uid, gid) or as ourselves.
fn ring_master(pm: &Daemon, log: &Path, user: Option<(u32, u32)>) -> Running {
    let mut cmd = Command::new(RINGMASTER);
    cmd.args(["--portmgr-port", &pm.port.to_string(), "--log"]).arg(log);
    cmd.env("DAQPORTMGR_PORTFILE", pm.path("listen.port"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    let running = Running(cmd.spawn().expect("start ringmaster"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(log).unwrap_or_default().contains("registered as RingMaster") {
        assert!(
            Instant::now() < deadline,
            "the ring master did not register: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

/// Creates and attaches to `ring` in processes of their own, with `env`; removes it.
fn use_ring(pm: &Daemon, ring: &str, env: &[(&str, &str)]) {
    for step in ["create", "attach"] {
        let out = Command::new(role_exe())
            .args([step, ring])
            .env("DAQPORTMGR_PORTFILE", pm.path("listen.port"))
            .env_remove("DAQFLOW_RINGMASTER")
            .env_remove("DAQFLOW_TRUSTED_USERS")
            .envs(env.iter().copied())
            .output()
            .expect("run remote_role");
        if !out.status.success() {
            let _ = daqflow::ring::remove(ring);
            panic!("{step} {ring}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let _ = daqflow::ring::remove(ring);
}

fn connections(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().matches("New socket connection").count()
}

#[test]
fn an_impostor_ring_master_hears_nothing() {
    let nobody = match User::from_name("nobody") {
        Ok(Some(u)) if nix::unistd::geteuid().is_root() => (u.uid.as_raw(), u.gid.as_raw()),
        _ => {
            eprintln!(
                "SKIPPED an_impostor_ring_master_hears_nothing: needs root and a user nobody to act as another user"
            );
            return;
        }
    };
    let pm = Daemon::start("29120-29129", &[]);
    let dir = TempDir::new("trust");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let (real_log, fake_log) = (dir.0.join("root.log"), dir.0.join("nobody.log"));
    let ring = format!("trust-local-{}", std::process::id());
    let ring = ring.as_str();
    let _ = daqflow::ring::remove(ring);
    // The ring's own create goes to the ring master too.
    let create = || daqflow::ring::create(ring, daqflow::ring::CreateOptions::default());

    // Only the impostor: the rings work daemonless, and it hears of none of them.
    let impostor = ring_master(&pm, &fake_log, Some(nobody));
    let before = connections(&fake_log);
    // SAFETY: the only test of this binary, and no thread of it reads the environment
    // through libc meanwhile (the daemons it talks to are other processes); std's own environment reads, which
    // are all daqflow makes, hold the lock set_var takes.
    unsafe { std::env::set_var("DAQPORTMGR_PORTFILE", pm.path("listen.port")) };
    create().expect("create with only an impostor");
    let _ = daqflow::ring::remove(ring);
    use_ring(&pm, ring, &[]);
    assert_eq!(
        connections(&fake_log),
        before,
        "the impostor was told: {}",
        std::fs::read_to_string(&fake_log).unwrap_or_default()
    );

    // Root's too: root's hears, the impostor (first in LIST) still nothing.
    let _real = ring_master(&pm, &real_log, None);
    let real_before = connections(&real_log);
    use_ring(&pm, ring, &[]);
    assert_eq!(connections(&fake_log), before, "the impostor was told");
    assert!(connections(&real_log) > real_before, "root's ring master was not told");

    // An operator who names the account trusts it (LIST order then decides).
    use_ring(&pm, ring, &[("DAQFLOW_TRUSTED_USERS", "nobody")]);
    assert!(connections(&fake_log) > before, "the configured account's ring master was not used");
    drop(impostor);
}
