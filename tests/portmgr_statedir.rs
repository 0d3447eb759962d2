//! The daemon may run as root with its state directory in world-writable /var/tmp: it
//! must never write through a name someone else planted. It refuses a state directory
//! another user owns or can write in, and in its own directory it replaces planted
//! symlinks instead of following them.

mod portmgr_support;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use portmgr_support::{Daemon, TempDir, wait_with_timeout};

const PRECIOUS: &[u8] = b"precious, not a port number\n";
/// Every name the daemon creates or replaces in its state directory.
const PLANTED: [&str; 5] = [".ports.txt.swap", "ports.txt", "listen.port.tmp", "listen.port", "log"];

fn plant(dir: &Path, victim: &Path) {
    for name in PLANTED {
        symlink(victim, dir.join(name)).expect("plant a symlink");
    }
}

/// Starts the daemon on `dir` and expects a refusal at startup, with `victim` untouched.
fn expect_refusal(dir: &Path, victim: &Path, why: &str) {
    let mut child = Daemon::spawn(dir, "29100-29109", &[]);
    let status = wait_with_timeout(&mut child);
    let mut err = String::new();
    let _ = child.stderr.take().map(|mut e| std::io::Read::read_to_string(&mut e, &mut err));
    assert_eq!(status.code(), Some(1), "daqportmgr started in a {why} directory: {err}");
    assert!(err.contains("refusing to use state directory") && err.contains(why), "{err}");
    assert_eq!(std::fs::read(victim).unwrap(), PRECIOUS, "the symlink target was written");
}

#[test]
fn a_world_writable_state_directory_is_refused() {
    let victims = TempDir::new("victim");
    let victim = victims.0.join("victim");
    std::fs::write(&victim, PRECIOUS).unwrap();
    let dir = TempDir::new("shared-state");
    plant(&dir.0, &victim);
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    expect_refusal(&dir.0, &victim, "lets others write");
}

#[test]
fn a_state_directory_owned_by_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to give a directory to another user");
        return;
    }
    let victims = TempDir::new("victim");
    let victim = victims.0.join("victim");
    std::fs::write(&victim, PRECIOUS).unwrap();
    let dir = TempDir::new("foreign-state");
    plant(&dir.0, &victim);
    // nobody (65534) stands for the local user who created /var/tmp/daqportmgr first.
    std::os::unix::fs::chown(&dir.0, Some(65534), Some(65534)).unwrap();
    expect_refusal(&dir.0, &victim, "owned by uid 65534");
}

#[test]
fn planted_symlinks_in_the_state_directory_are_not_followed() {
    let victims = TempDir::new("victim");
    let victim = victims.0.join("victim");
    std::fs::write(&victim, PRECIOUS).unwrap();
    let dir = TempDir::new("planted");
    plant(&dir.0, &victim);
    let child = Daemon::spawn(&dir.0, "29110-29119", &[]);
    let mut daemon = Daemon { child, port: 0, dir };
    daemon.eventually("listen.port to be a file", || {
        std::fs::symlink_metadata(daemon.path("listen.port")).is_ok_and(|m| m.file_type().is_file())
    });
    daemon.port = daemon.read("listen.port").trim().parse().expect("listen.port holds the port");
    let mut client = daemon.connect();
    let port = client.gimme("app", &daqflow::portmgr::client::calling_user());
    assert_eq!(daemon.read("ports.txt"), format!("{port}\tapp\t{}\n", daqflow::portmgr::client::calling_user()));
    drop(client);
    assert!(daemon.stop().success());
    assert_eq!(std::fs::read(&victim).unwrap(), PRECIOUS, "the symlink target was written");
    for name in ["ports.txt", "listen.port"] {
        assert!(std::fs::symlink_metadata(daemon.path(name)).unwrap().file_type().is_file(), "{name}");
    }
}
