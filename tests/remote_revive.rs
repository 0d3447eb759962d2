//! A feeder killed while its consumers only poll the proxy, as NSCLDAQ's CRingItem does
//! (asking how much data is there every few milliseconds, never waiting in the ring):
//! they restart it themselves, with no new attach, and the stream goes on.

mod remote_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use remote_support::{Net, wait_output};

#[test]
fn polling_consumers_restart_a_killed_feeder() {
    let Some(mut net) = Net::new("rev", 2) else { return };
    net.start_daemons(0, true);
    net.start_daemons(1, true);
    let ring = format!("rev{}", std::process::id());
    assert!(net.run(0, &["create", &ring], Duration::from_secs(10)).status.success());
    let url = format!("tcp://{}/{ring}", net.hosts[0].name);
    let proxy = format!("{}.{ring}", net.hosts[0].name);
    let stop = net.hosts[0].state.join("stop");
    let consumer = net.spawn(1, &["consume", &url, "gaps", "polling"]);
    let producer = net
        .command(0, &remote_support::role_exe(), &["produce", &ring, "2000", "100000000", "1"])
        .env("DF_STOP", &stop)
        .env("DF_PAUSE_US", "500")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("producer");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut feeder = -1;
    while feeder <= 0 {
        assert!(Instant::now() < deadline, "no feeder\n{}", net.log(1, "feeder.log"));
        std::thread::sleep(Duration::from_millis(200));
        feeder = net.producer_pid(1, &proxy);
    }
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(feeder), nix::sys::signal::Signal::SIGKILL).expect("kill feeder");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = net.producer_pid(1, &proxy);
        if now > 0 && now != feeder {
            break;
        }
        assert!(Instant::now() < deadline, "nobody restarted the feeder\n{}", net.log(1, "feeder.log"));
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&stop, b"").expect("stop file");
    let produced = wait_output(producer, Duration::from_secs(60), "producer");
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let out = wait_output(consumer, Duration::from_secs(60), "consumer");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let last = said.lines().last().unwrap_or_default();
    assert!(last.starts_with("items ") && !last.starts_with("items 0 "), "{said}");
}
