//! Issue 12, items 3 and 4, across hosts (network namespaces): another user on the
//! producer's host registering the service RingMaster, or on the consumer's host
//! squatting the proxy ring of tcp://host/ring, must not decide what a consumer reads.
//! The attacker is the account `nobody`; the consumers and daemons run as root.

mod remote_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::User;
use remote_support::{Net, bin, role_exe, wait_output};

const SETPRIV: &str = "/usr/bin/setpriv";
const LIMIT: Duration = Duration::from_secs(90);

/// `nobody`'s uid and gid, or `None` (with a message) where the attack cannot be staged.
fn attacker(test: &str) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() || !Path::new(SETPRIV).exists() {
        eprintln!("SKIPPED {test}: needs root and {SETPRIV} to act as another user");
        return None;
    }
    let Ok(Some(nobody)) = User::from_name("nobody") else {
        eprintln!("SKIPPED {test}: no user nobody");
        return None;
    };
    Some((nobody.uid.as_raw(), nobody.gid.as_raw()))
}

fn open_to_all(dir: &Path, mode: u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `program args` on host `i` as `nobody`, with `shm` as its /dev/shm.
fn as_attacker(net: &Net, i: usize, (uid, gid): (u32, u32), shm: &Path, program: &Path, args: &[&str]) -> Command {
    let (uid, gid) = (format!("--reuid={uid}"), format!("--regid={gid}"));
    let mut all = vec![uid.as_str(), gid.as_str(), "--clear-groups", program.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let mut cmd = net.command(i, Path::new(SETPRIV), &all);
    cmd.env("DF_SHM", shm).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string()
}

fn items(out: &Output) -> u64 {
    let line = summary(out);
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "items" {
            return words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    panic!("no item count in {line:?}; stderr: {}", String::from_utf8_lossy(&out.stderr))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scratch directory on host `i` the attacker may write (its own /dev/shm, its logs).
fn scratch(net: &Net, i: usize, name: &str) -> PathBuf {
    let dir = net.hosts[i].state.join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    open_to_all(&dir, 0o1777);
    dir
}

/// `nobody` on host A runs a ring master of its own (the real program) over a /dev/shm
/// of its own, where its ring `ring` holds 5 items: consumers on B of tcp://A/ring must
/// read the producer's 40 items from root's ring master, never the impostor's; with only
/// the impostor there, the attach fails and says why.
#[test]
fn an_impostor_ring_master_is_not_used() {
    let Some(who) = attacker("an_impostor_ring_master_is_not_used") else { return };
    let Some(mut net) = Net::new("trm", 2) else { return };
    net.start_daemons(0, false);
    net.start_daemons(1, false);
    let ring = format!("imp{}", std::process::id());
    let url = format!("tcp://{}/{ring}", net.hosts[0].name);
    let fake_shm = scratch(&net, 0, "fake-shm");
    let logs = scratch(&net, 0, "impostor");
    let role = role_exe();

    let made = as_attacker(&net, 0, who, &fake_shm, &role, &["create", &ring]).output().expect("impostor's ring");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let log = logs.join("ringmaster.log");
    let impostor = as_attacker(
        &net,
        0,
        who,
        &fake_shm,
        &bin("ringmaster"),
        &["--portmgr-port", "30000", "--log", log.to_str().unwrap()],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("impostor ring master");
    let _impostor = KillOnDrop(impostor);
    wait_for("the impostor's registration", || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("registered as RingMaster")
    });
    let fake = as_attacker(&net, 0, who, &fake_shm, &role, &["produce", &ring, "100", "5", "1"])
        .spawn()
        .expect("impostor's producer");
    let _fake = KillOnDrop(fake);

    // Only the impostor: refused, with the reason.
    let out = net.run(1, &["consume", &url], LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "read the impostor's ring: {}", summary(&out));
    assert!(
        err.contains("run only by \"nobody\"")
            && err.contains("does not trust")
            && err.contains("DAQFLOW_TRUSTED_USERS"),
        "{err}"
    );
    let usage = net.run(1, &["usage", &url], LIMIT);
    assert_eq!(summary(&usage), format!("errno {}", libc::EPERM), "usage through the impostor");

    // Root's ring master too: it is the one used, although LIST puts nobody's first.
    net.start_ringmaster(0);
    assert!(net.run(0, &["create", &ring], LIMIT).status.success());
    let producer = net.spawn(0, &["produce", &ring, "100", "40", "1"]);
    let out = net.run(1, &["consume", &url], LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(items(&out), 40, "the consumer read the impostor's items: {}", summary(&out));
    assert!(wait_output(producer, LIMIT, "producer").status.success());
}

/// `nobody` on host B makes the proxy ring of tcp://A/ring first and feeds it 5 items of
/// its own: a consumer on B must read A's 30 items instead (through a proxy of its own),
/// and, when the attacker has taken that name too, fail saying so.
#[test]
fn a_squatted_proxy_is_not_read() {
    let Some(who) = attacker("a_squatted_proxy_is_not_read") else { return };
    let Some(mut net) = Net::new("tsq", 2) else { return };
    net.start_daemons(0, true);
    net.start_daemons(1, false);
    let ring = format!("sq{}", std::process::id());
    let url = format!("tcp://{}/{ring}", net.hosts[0].name);
    let proxy = format!("{}.{ring}", net.hosts[0].name);
    let own = format!("{proxy}.uid0");
    let b_shm = net.hosts[1].shm.clone();
    open_to_all(&b_shm, 0o1777);
    let role = role_exe();
    assert!(net.run(0, &["create", &ring], LIMIT).status.success());

    // Both names taken: a clear refusal, and nothing of the attacker's is read.
    for name in [&proxy, &own] {
        let made = as_attacker(&net, 1, who, &b_shm, &role, &["create", name]).output().expect("squat");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    let fake = as_attacker(&net, 1, who, &b_shm, &role, &["produce", &proxy, "100", "5", "1"])
        .spawn()
        .expect("squatter's feeder");
    let fake = KillOnDrop(fake);
    wait_for("the squatter's producer", || net.producer_pid(1, &proxy) > 0);
    let out = net.run(1, &["consume", &url], LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "read a squatted proxy: {}", summary(&out));
    assert!(err.contains("refusing to read") && err.contains(&format!("proxy ring {own} belongs to nobody")), "{err}");

    // The consumer's own name is free again: A's data, through it.
    std::fs::remove_file(b_shm.join(&own)).expect("unsquat");
    let producer = net.spawn(0, &["produce", &ring, "100", "30", "1"]);
    let out = net.run(1, &["consume", &url], LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(items(&out), 30, "the consumer read the squatter's items: {}", summary(&out));
    assert!(wait_output(producer, LIMIT, "producer").status.success());
    drop(fake);
}

/// Root's proxy of tcp://A/ring exists as an older daqflow made it, writable by anyone,
/// and `nobody` feeds it (or could overwrite it in place): a consumer on B reads A's
/// items through a proxy of its own instead.
#[test]
fn a_world_writable_proxy_is_not_read() {
    let Some(who) = attacker("a_world_writable_proxy_is_not_read") else { return };
    let Some(net) = proxied_net("tww") else { return };
    let ring = format!("ww{}", std::process::id());
    let proxy = format!("{}.{ring}", net.hosts[0].name);
    assert!(net.run(1, &["create", &proxy], LIMIT).status.success(), "root's world-writable proxy");
    let b_shm = net.hosts[1].shm.clone();
    let fake = as_attacker(&net, 1, who, &b_shm, &role_exe(), &["produce", &proxy, "100", "5", "1"])
        .spawn()
        .expect("attacker's feeder");
    let _fake = KillOnDrop(fake);
    wait_for("the attacker's producer", || net.producer_pid(1, &proxy) > 0);
    assert_eq!(read_through_b(&net, &ring), 30, "the consumer read the attacker's items");
}

/// Root's own proxy, mode 0600, fed by something that is not a daqflow feeder (here a
/// plain producer of root's): not what the URL names, so not read.
#[test]
fn a_proxy_fed_by_another_program_is_not_read() {
    let Some(net) = proxied_net("tnf") else { return };
    let ring = format!("nf{}", std::process::id());
    let proxy = format!("{}.{ring}", net.hosts[0].name);
    assert!(net.run(1, &["create", &proxy], LIMIT).status.success());
    open_to_all(&net.hosts[1].shm.join(&proxy), 0o600);
    let fake = KillOnDrop(net.spawn(1, &["produce", &proxy, "100", "5", "1"]));
    wait_for("the other producer", || net.producer_pid(1, &proxy) > 0);
    assert_eq!(read_through_b(&net, &ring), 30, "the consumer read another program's items");
    drop(fake);
}

/// Hosts A (port manager, ring master) and B (port manager), B's /dev/shm open to all.
fn proxied_net(tag: &str) -> Option<Net> {
    let mut net = Net::new(tag, 2)?;
    net.start_daemons(0, true);
    net.start_daemons(1, false);
    open_to_all(&net.hosts[1].shm, 0o1777);
    Some(net)
}

/// Creates `ring` on A, puts 30 items once B reads it through tcp://A/ring, and returns
/// how many items B's consumer read.
fn read_through_b(net: &Net, ring: &str) -> u64 {
    assert!(net.run(0, &["create", ring], LIMIT).status.success());
    let producer = net.spawn(0, &["produce", ring, "100", "30", "1"]);
    let out = net.run(1, &["consume", &format!("tcp://{}/{ring}", net.hosts[0].name)], LIMIT);
    let producer = KillOnDrop(producer);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(producer);
    items(&out)
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
