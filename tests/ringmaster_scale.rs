//! A thousand idle clients, each holding an announced slot, do not stop the daemon from
//! answering anyone, and all of them are still served.

mod portmgr_support;
mod ringmaster_support;

use std::time::{Duration, Instant};

use portmgr_support::raise_fd_limit;
use ringmaster_support::{Master, rss_kib};

#[test]
fn a_thousand_idle_connections() {
    if raise_fd_limit() < 1200 {
        eprintln!("descriptor hard limit below 1200; skipping");
        return;
    }
    let master = Master::start(&[]);
    let mut idle: Vec<_> = (0..1000).map(|_| master.connect()).collect();
    for (i, c) in idle.iter_mut().enumerate() {
        c.ask(&format!("CONNECT {{ring{}}} consumer.{} {} {{idle}}\n", i % 7, i % 100, 1_000_000 + i), "OK\r\n");
    }
    // A newcomer is answered at once.
    let start = Instant::now();
    master.connect().ask("LIST\n", "OK\r\n");
    assert!(start.elapsed() < Duration::from_secs(2), "LIST took {:?} with 1000 idle clients", start.elapsed());
    // Every idle one is still served.
    for c in idle.iter_mut().step_by(50) {
        c.ask("DISCONNECT {ring0} producer 1\n", "OK\r\n");
    }
    let rss = rss_kib(master.pid());
    assert!(rss < 256 * 1024, "1000 idle clients cost {rss} KiB");
    drop(idle);
    master.wait_log("Socket connection lost");
}
