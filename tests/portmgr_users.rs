//! The user named in GIMME must own the client's socket, unless -no-user-check.

mod portmgr_support;

use std::os::unix::process::CommandExt;
use std::process::Command;

use daqflow::portmgr::client::calling_user;
use nix::unistd::{Uid, User, geteuid};
use portmgr_support::Daemon;

fn refusal(user: &str, uid: u32) -> String {
    let name = User::from_uid(Uid::from_raw(uid)).unwrap().map(|u| format!(", {}", u.name)).unwrap_or_default();
    format!("FAIL {{user {user} is not the owner of this connection (uid {uid}{name})}}\r\n")
}

#[test]
fn only_the_socket_owner_gets_ports() {
    let daemon = Daemon::start("29000-29009", &[]);
    let uid = geteuid().as_raw();
    let mut c = daemon.connect();
    c.ask(&format!("GIMME app {}\n", calling_user()), "OK 29009\r\n");
    // The decimal uid is the same user (for accounts without a passwd entry).
    c.ask(&format!("GIMME app {uid}\n"), "OK 29008\r\n");
    let impostor = if uid == 0 { "nobody" } else { "root" };
    c.ask(&format!("GIMME app {impostor}\n"), &refusal(impostor, uid));
    c.ask("GIMME app no-such-user-anywhere\n", &refusal("no-such-user-anywhere", uid));
    c.ask("GIMME app\n", &refusal("", uid));
    // A refusal keeps the connection and its ports.
    assert_eq!(c.list().len(), 2);
    let log = daemon.read("log");
    assert!(log.contains(&format!("Unable to allocate a port for app run by {impostor} because: user {impostor}")), "{log}");
}

#[test]
fn another_local_user_is_checked_too() {
    if !geteuid().is_root() {
        eprintln!("not root: cannot run a client as another user; skipping");
        return;
    }
    let Some(nobody) = User::from_name("nobody").unwrap() else {
        eprintln!("no user nobody; skipping");
        return;
    };
    let daemon = Daemon::start("29000-29009", &[]);
    // A shell client running as nobody, talking the raw protocol through bash's /dev/tcp.
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{}; printf 'GIMME app nobody\\nGIMME app root\\n' >&3; \
         read -r a <&3; read -r b <&3; printf '%s\\n%s\\n' \"$a\" \"$b\"",
        daemon.port
    );
    let out = Command::new("bash").args(["-c", &script]).uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let refused = refusal("root", nobody.uid.as_raw());
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("OK 29009\r\n{}\n", refused.trim_end_matches('\n')));
}

#[test]
fn the_check_can_be_switched_off() {
    let daemon = Daemon::start("29000-29009", &["-no-user-check"]);
    let mut c = daemon.connect();
    c.ask("GIMME app someone-else\n", "OK 29009\r\n");
    c.ask("LIST\n", "OK 1\r\n29009 app someone-else\r\n");
    assert!(daemon.read("log").contains("user verification off"));
}

#[test]
fn names_match_the_owner_byte_for_byte() {
    // The daemon compares with the owner's own name and decimal uid; it never resolves the
    // name a client sends (no passwd or LDAP lookup per request), so other spellings of
    // the number are not the owner.
    let daemon = Daemon::start("29000-29009", &[]);
    let uid = geteuid().as_raw();
    let mut c = daemon.connect();
    for other in [format!("0{uid}"), format!("+{uid}"), format!("{} ", calling_user()).replace(' ', "\\x20")] {
        let sent = other.replace("\\x20", " ");
        c.ask(&format!("GIMME app \"{other}\"\n"), &refusal(&sent, uid));
    }
    c.ask(&format!("GIMME app {uid}\n"), "OK 29009\r\n");
    c.ask(&format!("GIMME app {}\n", calling_user()), "OK 29008\r\n");
}
