//! The usage of a ring on another host through its URL (what `ring_usage` and the Tcl
//! `ringbuffer usage` answer for tcp://host/ring): that host's ring master's LIST entry
//! for the ring. (A CRingBuffer consumer of the URL reports its proxy ring's usage, as
//! NSCLDAQ's daqConsumeFrom consumer did: tests/remote_cxx.rs.)

mod remote_support;

use std::time::Duration;

use remote_support::Net;

fn said(net: &Net, i: usize, what: &str) -> String {
    let out = net.run(i, &["usage", what], Duration::from_secs(30));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn usage_of_a_remote_ring_is_its_hosts_listing() {
    let Some(mut net) = Net::new("use", 3) else { return };
    net.start_daemons(0, true);
    net.start_daemons(1, false);
    // Host 2 runs a port manager but no ring master.
    net.start_daemons(2, false);
    let ring = format!("use{}", std::process::id());
    assert!(net.run(0, &["create", &ring], Duration::from_secs(10)).status.success());
    let here = said(&net, 0, &ring);
    assert!(here.starts_with("data 8391008 put 8391007 max 100 producer -1"), "{here}");
    let url = format!("tcp://{}/{ring}", net.hosts[0].name);
    assert_eq!(said(&net, 1, &url), here);
    // Another spelling of the host, its address.
    assert_eq!(said(&net, 1, &format!("tcp://{}/{ring}", net.addr(0, 1))), here);
    // Asking changed nothing there: no proxy here, no consumer there.
    assert!(!net.shm_files(1).iter().any(|f| f.contains(&ring)), "{:?}", net.shm_files(1));
    assert_eq!(said(&net, 0, &ring), here);
    assert_eq!(said(&net, 1, &format!("tcp://{}/no{ring}", net.hosts[0].name)), format!("errno {}", libc::ENOENT));
    assert_eq!(said(&net, 0, &format!("tcp://{}/{ring}", net.hosts[2].name)), format!("errno {}", libc::ECONNREFUSED));
}
