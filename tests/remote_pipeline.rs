//! End to end across hosts (network namespaces): a producer on host A, consumers on
//! hosts B and C through tcp://A/ring, every item checked whole and in order.

mod remote_support;

use std::time::Duration;

use remote_support::{Net, wait_output};

fn line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string()
}

fn field(line: &str, name: &str) -> u64 {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    panic!("no {name} in {line:?}")
}

/// 1 GiB of items from A to consumers on B and C; B has two consumers that spell A's
/// name differently and must share one proxy ring and one feeder.
#[test]
fn one_gib_to_two_hosts() {
    let Some(mut net) = Net::new("pipe", 3) else { return };
    for i in 0..3 {
        net.start_daemons(i, true);
    }
    let ring = format!("gib{}", std::process::id());
    let out = net.run(0, &["create", &ring], Duration::from_secs(10));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a_short = format!("tcp://{}/{ring}", net.hosts[0].short);
    let a_long = format!("tcp://{}/{ring}", net.hosts[0].name.to_uppercase());
    let consumers = [(1, a_short.clone()), (1, a_long), (2, a_short)];
    let mut children: Vec<_> = consumers.iter().map(|(h, url)| net.spawn(*h, &["consume", url])).collect();
    // Two hosts, so two senders on A, however many consumers each host has. The producer
    // starts once both are there, which says nothing of B's second consumer: the first
    // one on B started the feeder, and one that attaches to the proxy after the first
    // items misses them. So every consumer is attached before the producer starts.
    for ((h, url), child) in consumers.iter().zip(children.iter_mut()) {
        remote_support::wait_attached(child, &format!("consumer of {url} on host {h}"), Duration::from_secs(60));
    }
    let count = "31000";
    let producer = net.spawn(0, &["produce", &ring, "0", count, "2"]);
    let produced = wait_output(producer, Duration::from_secs(600), "producer");
    assert!(produced.status.success(), "producer: {}", String::from_utf8_lossy(&produced.stderr));
    for ((h, url), child) in consumers.iter().zip(children) {
        let out = wait_output(child, Duration::from_secs(120), &format!("consumer of {url} on host {h}"));
        let summary = line(&out);
        assert!(
            out.status.success(),
            "consumer of {url} on host {h}: {}\n{summary}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("host {h} {url}: {summary}");
        assert_eq!(field(&summary, "items"), 31000, "{summary}");
        assert_eq!(field(&summary, "gaps"), 0, "{summary}");
        assert!(field(&summary, "bytes") >= 1 << 30, "{summary}");
    }
    let proxy = format!("{}.{ring}", net.hosts[0].name);
    assert_eq!(net.shm_files(1), vec![proxy.clone()], "host B: one proxy for both spellings");
    assert_eq!(net.shm_files(2), vec![proxy], "host C");
    let feeders = net.log(1, "feeder.log");
    eprintln!("feeder log on B:\n{feeders}");
}
