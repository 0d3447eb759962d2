//! A feeder whose proxy has had no consumer for 30 s stops, and leaves nothing behind:
//! no process, no producer slot in the proxy, no sender slot in the source ring on the
//! other host; a later consumer starts the pipeline again.

mod remote_support;

use std::time::{Duration, Instant};

use remote_support::Net;

fn usage(net: &Net, i: usize, what: &str) -> String {
    let out = net.run(i, &["usage", what], Duration::from_secs(30));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
}

#[test]
fn an_unread_proxy_stops_its_feeder_after_30_s() {
    let Some(mut net) = Net::new("idl", 2) else { return };
    net.start_daemons(0, true);
    net.start_daemons(1, true);
    let ring = format!("idl{}", std::process::id());
    assert!(net.run(0, &["create", &ring], Duration::from_secs(10)).status.success());
    let url = format!("tcp://{}/{ring}", net.hosts[0].name);
    let proxy = format!("{}.{ring}", net.hosts[0].name);
    let attached = net.run(1, &["attach", &url], Duration::from_secs(30));
    assert!(attached.status.success(), "{}", String::from_utf8_lossy(&attached.stderr));
    let left = Instant::now();
    let feeder = net.producer_pid(1, &proxy);
    assert!(feeder > 0 && running(feeder), "no feeder after the attach");
    // The feeder's sender on A holds a consumer slot of the source ring.
    let there = usage(&net, 0, &ring);
    assert!(there.starts_with("data ") && !there.ends_with("consumers"), "{there}");

    while running(feeder) {
        assert!(
            left.elapsed() < Duration::from_secs(45),
            "the feeder still runs {:?} after its last consumer left",
            left.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let stopped = left.elapsed();
    assert!(stopped >= Duration::from_secs(28), "the feeder stopped after only {stopped:?}");
    assert!(net.log(1, "feeder.log").contains("has had no consumer for 30 s"), "{}", net.log(1, "feeder.log"));
    // Nothing left: the proxy (kept, as NSCLDAQ keeps it) has no producer, and the
    // sender on A let its slot go.
    assert!(usage(&net, 1, &proxy).ends_with("producer -1 consumers"), "{}", usage(&net, 1, &proxy));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !usage(&net, 0, &ring).ends_with("consumers") {
        assert!(Instant::now() < deadline, "the sender on A kept its slot: {}", usage(&net, 0, &ring));
        std::thread::sleep(Duration::from_millis(200));
    }

    // A new consumer starts a new feeder.
    let again = net.spawn(1, &["consume", &url]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut second = -1;
    while second <= 0 {
        assert!(Instant::now() < deadline, "no feeder for the next consumer");
        std::thread::sleep(Duration::from_millis(200));
        second = net.producer_pid(1, &proxy);
    }
    assert_ne!(second, feeder);
    let produced = net.run(0, &["produce", &ring, "1000", "500", "1"], Duration::from_secs(60));
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let out = remote_support::wait_output(again, Duration::from_secs(60), "consumer");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("items 500 gaps 0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
