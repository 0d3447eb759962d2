//! The user named in GIMME must be the client's (the socket's owner, the real user of the
//! process holding it, anyone for root), unless -no-user-check.

mod portmgr_support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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
    if uid == 0 {
        // Root may claim any user: `su` without `-` keeps $USER, which Python clients send.
        c.ask("GIMME app no-such-user-anywhere\n", "OK 29007\r\n");
        c.ask("GIMME app\n", "OK 29006\r\n");
        eprintln!("root: refusals are checked with other users below");
        return;
    }
    c.ask("GIMME app root\n", &refusal("root", uid));
    c.ask("GIMME app no-such-user-anywhere\n", &refusal("no-such-user-anywhere", uid));
    c.ask("GIMME app\n", &refusal("", uid));
    // A refusal keeps the connection and its ports.
    assert_eq!(c.list().len(), 2);
    let log = daemon.read("log");
    assert!(log.contains("Unable to allocate a port for app run by root because: user root"), "{log}");
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
    let out =
        Command::new("bash").args(["-c", &script]).uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw()).output().unwrap();
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
    let Some(users) = Users::create(1) else { return };
    let daemon = Daemon::start("29000-29009", &[]);
    let (name, uid) = (&users.names[0], users.uids[0]);
    let script = [
        format!("GIMME app 0{uid}"),
        format!("GIMME app +{uid}"),
        format!("GIMME app \"{name} \""),
        format!("GIMME app {uid}"),
        format!("GIMME app {name}"),
    ];
    let out = users.helper.run_as(uid, daemon.port, &script);
    assert_eq!(
        out,
        [
            refusal(&format!("0{uid}"), uid),
            refusal(&format!("+{uid}"), uid),
            refusal(&format!("{name} "), uid),
            "OK 29009\r\n".into(),
            "OK 29008\r\n".into()
        ]
    );
}

/// A small C client, compiled by the test so it can run as other users and as a setuid
/// program: `helper PORT LINE...` connects to 127.0.0.1:PORT, sends each line and prints
/// each reply line; `helper -fd N LINE...` does the same on inherited descriptor N;
/// `helper -exec PORT PROGRAM ARGS...` connects and executes PROGRAM with the socket on
/// descriptor 3. It reports its real and effective uids on stderr.
const HELPER_C: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int connect_to(const char *port) {
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); exit(2); }
    return fd;
}

int main(int argc, char **argv) {
    int fd, i = 2;
    char c;
    fprintf(stderr, "ids %u %u\n", (unsigned)getuid(), (unsigned)geteuid());
    if (argc > 3 && strcmp(argv[1], "-exec") == 0) {
        fd = connect_to(argv[2]);
        if (dup2(fd, 3) < 0) { perror("dup2"); return 2; }
        execv(argv[3], argv + 3);
        perror("execv");
        return 2;
    }
    if (argc > 2 && strcmp(argv[1], "-fd") == 0) { fd = atoi(argv[2]); i = 3; }
    else if (argc > 1) fd = connect_to(argv[1]);
    else return 2;
    for (; i < argc; i++) {
        if (write(fd, argv[i], strlen(argv[i])) < 0 || write(fd, "\n", 1) != 1) { perror("write"); return 2; }
        do {
            if (read(fd, &c, 1) != 1) { fprintf(stderr, "connection closed\n"); return 3; }
            putchar(c);
        } while (c != '\n');
    }
    return 0;
}
"#;

struct Helper {
    dir: portmgr_support::TempDir,
    plain: PathBuf,
}

impl Helper {
    fn build() -> Option<Helper> {
        let dir = portmgr_support::TempDir::new("pmusers");
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let source = dir.0.join("helper.c");
        std::fs::write(&source, HELPER_C).unwrap();
        let plain = dir.0.join("helper");
        match Command::new("cc").arg("-o").arg(&plain).arg(&source).output() {
            Ok(out) if out.status.success() => Some(Helper { dir, plain }),
            Ok(out) => panic!("cc failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => {
                eprintln!("no C compiler ({e}); skipping");
                None
            }
        }
    }

    /// A copy of the helper that runs with the effective uid `owner` (set-user-ID).
    fn setuid_copy(&self, owner: u32) -> PathBuf {
        let path = self.dir.0.join(format!("helper-setuid-{owner}"));
        std::fs::copy(&self.plain, &path).unwrap();
        std::os::unix::fs::chown(&path, Some(owner), None).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o4755)).unwrap();
        path
    }

    /// Runs `program args` as `uid` (its group the same number); the reply lines, and the
    /// real and effective uids it ran with.
    fn run(program: &Path, uid: u32, args: &[String]) -> (Vec<String>, (u32, u32)) {
        let out = Command::new(program).args(args).uid(uid).gid(uid).output().expect("run the helper");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "helper {args:?}: {stderr}");
        let ids = stderr.lines().next().and_then(|l| l.strip_prefix("ids ")).expect("ids line");
        let ids: Vec<u32> = ids.split(' ').map(|n| n.parse().unwrap()).collect();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (stdout.split_inclusive('\n').map(str::to_string).collect(), (ids[0], ids[1]))
    }

    /// The replies to `lines`, sent by the plain helper running as `uid`.
    fn run_as(&self, uid: u32, port: u16, lines: &[String]) -> Vec<String> {
        let args: Vec<String> = std::iter::once(port.to_string()).chain(lines.iter().cloned()).collect();
        Helper::run(&self.plain, uid, &args).0
    }
}

/// Users made for a test with useradd (their group is their uid's number, which need
/// not exist) and removed again; `None` (the test skipped, with a message) when the test
/// cannot make users.
struct Users {
    names: Vec<String>,
    uids: Vec<u32>,
    helper: Helper,
}

impl Users {
    fn create(n: usize) -> Option<Users> {
        if !geteuid().is_root() {
            eprintln!("not root: cannot run clients as other users; skipping");
            return None;
        }
        let helper = Helper::build()?;
        let mut users = Users { names: Vec::new(), uids: Vec::new(), helper };
        // Unique on the host: tests of this process run at once, other processes beside.
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..n {
            let i = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("dfpm{}u{i}", std::process::id());
            // useradd takes a lock on /etc/passwd that another test may hold a moment.
            let mut made = false;
            for _ in 0..50 {
                let out = Command::new("useradd").args(["-r", "-M", "-N", "-s", "/usr/sbin/nologin", &name]).output();
                match out {
                    Err(e) => {
                        eprintln!("no useradd ({e}); skipping");
                        return None;
                    }
                    Ok(out) if out.status.success() => {
                        made = true;
                        break;
                    }
                    Ok(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
                }
            }
            assert!(made, "useradd {name} failed");
            users.names.push(name.clone());
            let user = User::from_name(&name).unwrap().expect("the user just made");
            users.uids.push(user.uid.as_raw());
        }
        Some(users)
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for name in &self.names {
            for _ in 0..50 {
                if Command::new("userdel").arg(name).status().is_ok_and(|s| s.success()) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

fn gimme(user: &str) -> String {
    format!("GIMME app {user}")
}

#[test]
fn a_setuid_program_may_claim_its_real_user() {
    // NSCLDAQ's C++ CPortManager sends the real uid's passwd name; in a setuid program
    // the socket belongs to the effective uid.
    let Some(users) = Users::create(2) else { return };
    let daemon = Daemon::start("29000-29009", &[]);
    let (real, effective) = (users.uids[0], users.uids[1]);
    let program = users.helper.setuid_copy(effective);
    let lines = [gimme(&users.names[0]), gimme(&users.names[1]), gimme(&real.to_string()), gimme("root")];
    let args: Vec<String> = std::iter::once(daemon.port.to_string()).chain(lines).collect();
    let (replies, ids) = Helper::run(&program, real, &args);
    if ids != (real, effective) {
        eprintln!("the set-user-ID bit had no effect here (ids {ids:?}, a nosuid file system?); skipping");
        return;
    }
    let refused = format!(
        "FAIL {{user root is not the owner of this connection (uid {effective}, {}) nor the real user of its process (uid {real}, {})}}\r\n",
        users.names[1], users.names[0]
    );
    assert_eq!(replies, ["OK 29009\r\n", "OK 29008\r\n", "OK 29007\r\n", &refused]);
    let log = daemon.read("log");
    assert!(log.contains(&format!("Port 29009 was allocated to app run by {}", users.names[0])), "{log}");
}

#[test]
fn a_user_claiming_another_is_refused_even_through_a_setuid_program() {
    let Some(users) = Users::create(2) else { return };
    let daemon = Daemon::start("29000-29009", &[]);
    let (me, other) = (users.uids[0], users.uids[1]);
    let replies =
        users.helper.run_as(me, daemon.port, &[gimme(&users.names[1]), gimme("root"), gimme(&users.names[0])]);
    assert_eq!(replies, [refusal(&users.names[1], me), refusal("root", me), "OK 29009\r\n".into()]);
    // The client connects, then executes a setuid program that inherits the socket (as
    // it would `su`, which waits for a password holding it): that process's effective
    // and saved uids are the other user's, but who wrote a request already sent cannot
    // be told, so only the socket's owner and the real uid count.
    let program = users.helper.setuid_copy(other);
    let mut args =
        vec!["-exec".to_string(), daemon.port.to_string(), program.display().to_string(), "-fd".into(), "3".into()];
    args.extend([gimme(&users.names[1]), gimme(&users.names[0])]);
    let (replies, ids) = Helper::run(&users.helper.plain, me, &args);
    assert_eq!(ids, (me, me));
    // (The first client has gone, and its port is the next one handed out.)
    assert_eq!(replies, [refusal(&users.names[1], me), "OK 29009\r\n".into()]);
}

#[test]
fn an_unnamed_uid_may_send_no_name_or_its_number() {
    if !geteuid().is_root() {
        eprintln!("not root: cannot run a client as another uid; skipping");
        return;
    }
    let uid =
        (4_100_000_000..4_100_100_000).find(|&u| User::from_uid(Uid::from_raw(u)).ok().flatten().is_none()).unwrap();
    let Some(helper) = Helper::build() else { return };
    let daemon = Daemon::start("29000-29009", &[]);
    // Tcl's portAllocator sends $tcl_platform(user), empty for such a uid: `GIMME app {}`.
    let replies =
        helper.run_as(uid, daemon.port, &[gimme("{}"), gimme(&uid.to_string()), gimme("root"), gimme("nobody")]);
    assert_eq!(
        replies,
        ["OK 29009\r\n".to_string(), "OK 29008\r\n".into(), refusal("root", uid), refusal("nobody", uid)]
    );
    daemon.eventually("the allocation to the empty user logged", || {
        daemon.read("log").contains("Port 29009 was allocated to app run by \n")
    });
}
