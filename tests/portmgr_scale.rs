//! A thousand connections holding the whole default-sized range, plus idle ones.

mod portmgr_support;

use std::collections::HashSet;

use daqflow::portmgr::client::calling_user;
use portmgr_support::{Daemon, raise_fd_limit};

#[test]
fn a_thousand_held_connections() {
    // 1000 holders + 200 idle here, as many in the daemon (which raises its own limit).
    if raise_fd_limit() < 1300 {
        eprintln!("descriptor hard limit below 1300; skipping");
        return;
    }
    // One user holds the whole pool here: past the default of 256 per user.
    let daemon = Daemon::start("27001-28000", &["-max-per-user", "1001"]);
    let me = calling_user();
    let mut idle: Vec<_> = (0..200).map(|_| daemon.connect()).collect();
    let mut holders: Vec<_> = (0..1000).map(|_| daemon.connect()).collect();
    let mut ports = HashSet::new();
    for (i, c) in holders.iter_mut().enumerate() {
        let port = c.gimme(&format!("svc{}", i % 10), &me);
        assert_eq!(port as usize, 28000 - i, "highest first");
        ports.insert(port);
    }
    assert_eq!(ports.len(), 1000);
    holders[0].ask(&format!("GIMME more {me}\n"), "FAIL {no free ports}\r\n");
    let listed = idle[0].list();
    assert_eq!(listed.len(), 1000);
    assert!(listed.contains(&format!("27001 svc9 {me}")), "{:?}", &listed[..3]);
    assert!(listed.contains(&format!("27991 svc9_99 {me}")), "{:?}", &listed[..3]);
    assert_eq!(daemon.read("ports.txt").lines().count(), 1000);
    // Half go away: exactly their ports come back.
    let released: HashSet<u16> = (0..500).map(|i| 28000 - 2 * i as u16).collect();
    let mut i = 0;
    holders.retain(|_| {
        i += 1;
        (i - 1) % 2 == 1
    });
    daemon.eventually("500 releases", || daemon.read("ports.txt").lines().count() == 500);
    let still: HashSet<u16> =
        daemon.read("ports.txt").lines().map(|l| l.split('\t').next().unwrap().parse().unwrap()).collect();
    assert!(still.is_disjoint(&released));
    drop(holders);
    drop(idle);
    daemon.eventually("all released", || daemon.read("ports.txt").is_empty());
    let after = daemon.connect().gimme("after", &me);
    assert!((27001..=28000).contains(&after), "{after}");
}
