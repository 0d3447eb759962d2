//! A feeder killed while its consumers only poll the proxy, as NSCLDAQ's CRingItem does
//! (asking how much data is there every few milliseconds, never waiting in the ring):
//! they restart it themselves, with no new attach, and the stream goes on.

mod remote_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use remote_support::{Net, wait_output};

/// Zombie children of `parent` (`ip netns exec` execs into the role: its pid is the role's).
fn zombies_of(parent: u32) -> usize {
    let parent = parent.to_string();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
                .filter(|stat| {
                    let rest: Vec<&str> =
                        stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
                    rest.first() == Some(&"Z") && rest.get(1) == Some(&parent.as_str())
                })
                .count()
        })
        .unwrap_or(0)
}

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
    // The restart (a double fork from inside the consumer) left it no zombie child.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", consumer.id())).unwrap_or_default();
    assert!(comm.starts_with("remote_role"), "pid {} is {comm:?}, not the consumer", consumer.id());
    assert_eq!(zombies_of(consumer.id()), 0, "the consumer has zombie children");
    std::fs::write(&stop, b"").expect("stop file");
    let produced = wait_output(producer, Duration::from_secs(60), "producer");
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let out = wait_output(consumer, Duration::from_secs(60), "consumer");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let last = said.lines().last().unwrap_or_default();
    assert!(last.starts_with("items ") && !last.starts_with("items 0 "), "{said}");
}
