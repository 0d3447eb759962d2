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

#[test]
fn running_out_of_descriptors_delays_clients_but_loses_none() {
    // Room for about a dozen connections (each costs the daemon two descriptors).
    let master = Master::start_limited(&[], Some(40));
    let mut first: Vec<_> = (0..30).map(|_| master.connect()).collect();
    let mut waiting: Vec<_> = (0..10).map(|_| master.connect()).collect();
    for c in first.iter_mut().chain(waiting.iter_mut()) {
        c.send(b"LIST\n");
    }
    master.wait_log("cannot accept a connection");
    // Once the early ones leave, every waiting client is served.
    drop(first);
    for c in waiting.iter_mut() {
        c.expect(b"OK\r\n");
    }
}
