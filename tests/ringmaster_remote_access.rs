//! Issue 12, item 2, from another host (network namespaces): a host on this one's
//! subnet gets only the rings every user of this host may read, unless the operator
//! says otherwise (`--remote-rings all`).

mod remote_support;

use std::path::Path;
use std::time::Duration;

use daqflow::ring::{self, CreateOptions};
use remote_support::Net;

/// Makes ring `name` with `mode` in host `i`'s /dev/shm (made here, then moved there:
/// both are on the same tmpfs).
fn make_ring(net: &Net, i: usize, name: &str, mode: u32) {
    let _ = ring::remove(name);
    ring::create(name, CreateOptions { data_bytes: 64 * 1024, max_consumers: 4, mode }).expect("create ring");
    std::fs::rename(format!("/dev/shm/{name}"), net.hosts[i].shm.join(name)).expect("move the ring to its host");
}

/// The first reply line to `REMOTE ring` sent from host 1 to host 0's ring master, found
/// through host 0's port manager as any client finds it.
fn remote_from_host_1(net: &Net, ring: &str) -> String {
    let host0 = net.addr(0, 1);
    let script = format!(
        "exec 3<>/dev/tcp/{host0}/30000 || exit 9; printf 'LIST\\n' >&3; read -r ok n <&3; port=; \
         for i in $(seq \"${{n%$'\\r'}}\"); do read -r p s u <&3; [ \"$s\" = RingMaster ] && port=$p; done; \
         exec 4<>/dev/tcp/{host0}/$port || exit 8; printf 'REMOTE %s\\n' '{ring}' >&4; \
         IFS= read -r -t 10 line <&4; printf '%s\\n' \"${{line%$'\\r'}}\""
    );
    let child = net
        .command(1, Path::new("/bin/bash"), &["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bash in host 1");
    let out = remote_support::wait_output(child, Duration::from_secs(20), "REMOTE from host 1");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn another_host_gets_only_rings_every_user_may_read() {
    let Some(mut net) = Net::new("another_host_gets_only_rings_every_user_may_read", 2) else { return };
    let (public, private) = (format!("rmra-pub-{}", std::process::id()), format!("rmra-priv-{}", std::process::id()));
    make_ring(&net, 0, &public, 0o644);
    make_ring(&net, 0, &private, 0o600);
    net.start_daemons(0, false);
    net.start_ringmaster_with(0, &[]);
    assert_eq!(remote_from_host_1(&net, &private), format!("ERROR ring {private} is not readable by other hosts"));
    assert_eq!(remote_from_host_1(&net, &public), "OK BINARY FOLLOWS");
    let log = net.log(0, "ringmaster.log");
    assert!(
        log.contains(&format!("REMOTE {private} from {} refused: not readable by other hosts", net.addr(1, 0))),
        "{log}"
    );

    // The operator may serve every ring, as NSCLDAQ's daemon did.
    net.kill_ringmaster(0);
    net.start_ringmaster_with(0, &["--remote-rings", "all"]);
    assert_eq!(remote_from_host_1(&net, &private), "OK BINARY FOLLOWS");
}
