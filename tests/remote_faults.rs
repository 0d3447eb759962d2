//! A remote pipeline under fire: the feeder, the sender (the ring master serving it),
//! a consumer and a link are killed or cut mid-stream. Nothing may hang, the pipeline
//! must recover (a killed feeder is restarted by the consumers already waiting on its
//! proxy), and every item that arrives must be whole and in order.

mod remote_support;

use std::time::{Duration, Instant};

use remote_support::{Net, wait_output};

fn summary(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string()
}

/// Waits until host `i`'s proxy has a producer other than `old`; returns it.
fn new_feeder(net: &Net, i: usize, proxy: &str, old: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pid = net.producer_pid(i, proxy);
        if pid > 0 && pid != old {
            return pid;
        }
        assert!(Instant::now() < deadline, "no feeder on host {i} replaced {old}\n{}", net.log(i, "feeder.log"));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kills_and_cut_links() {
    let Some(mut net) = Net::new("flt", 3) else { return };
    for i in 0..3 {
        net.start_daemons(i, true);
    }
    let ring = format!("flt{}", std::process::id());
    assert!(net.run(0, &["create", &ring], Duration::from_secs(10)).status.success());
    let url = format!("tcp://{}/{ring}", net.hosts[0].name);
    let proxy = format!("{}.{ring}", net.hosts[0].name);
    let stop = net.hosts[0].state.join("stop");
    let b1 = net.spawn(1, &["consume", &url, "gaps"]);
    let c1 = net.spawn(2, &["consume", &url, "gaps"]);
    let producer = net
        .command(0, &remote_support::role_exe(), &["produce", &ring, "0", "100000000", "2"])
        .env("DF_STOP", &stop)
        .env("DF_PAUSE_US", "200")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("producer");
    let feeder_b = new_feeder(&net, 1, &proxy, -1);
    std::thread::sleep(Duration::from_secs(2));

    // The feeder dies with only its consumer, blocked in a get, left: that consumer
    // starts another by itself (NSCLDAQ waits for a new attach, which may never come).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(feeder_b), nix::sys::signal::Signal::SIGKILL)
        .expect("kill feeder");
    let feeder_b = new_feeder(&net, 1, &proxy, feeder_b);
    std::thread::sleep(Duration::from_secs(2));
    // A consumer joining the restarted pipeline shares its feeder.
    let b2 = net.spawn(1, &["consume", &url, "gaps"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(net.producer_pid(1, &proxy), feeder_b, "one feeder per proxy\n{}", net.log(1, "feeder.log"));

    // The sending side dies (the ring master and its senders): feeders reconnect to the
    // ring master that comes back.
    net.kill_ringmaster(0);
    std::thread::sleep(Duration::from_secs(2));
    net.start_ringmaster(0);
    std::thread::sleep(Duration::from_secs(8));

    // A consumer dies mid-stream; another joins on its host.
    let mut c1 = c1;
    c1.kill().expect("kill consumer");
    let _ = c1.wait();
    let c2 = net.spawn(2, &["consume", &url, "gaps"]);
    std::thread::sleep(Duration::from_secs(2));

    // The link to B goes down for longer than keepalive allows, then comes back; a short
    // cut on C is ridden out by TCP itself.
    net.link(1, false);
    net.link(2, false);
    std::thread::sleep(Duration::from_secs(3));
    net.link(2, true);
    std::thread::sleep(Duration::from_secs(17));
    net.link(1, true);
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(net.producer_pid(1, &proxy), feeder_b, "B's feeder reconnects by itself\n{}", net.log(1, "feeder.log"));

    std::fs::write(&stop, b"").expect("stop file");
    let produced = wait_output(producer, Duration::from_secs(120), "producer");
    assert!(produced.status.success(), "producer: {}", String::from_utf8_lossy(&produced.stderr));
    eprintln!("{}", summary(&produced));
    for (name, child) in [("B1", b1), ("B2", b2), ("C2", c2)] {
        let out = wait_output(child, Duration::from_secs(180), name);
        let line = summary(&out);
        eprintln!("{name}: {line}");
        assert!(
            out.status.success(),
            "{name}: {}\n{line}\nfeeder log B:\n{}\nfeeder log C:\n{}",
            String::from_utf8_lossy(&out.stderr),
            net.log(1, "feeder.log"),
            net.log(2, "feeder.log")
        );
        assert!(line.contains("items ") && !line.contains("items 0 "), "{name} got nothing: {line}");
    }
    eprintln!("feeder log B:\n{}\nfeeder log C:\n{}", net.log(1, "feeder.log"), net.log(2, "feeder.log"));
}
