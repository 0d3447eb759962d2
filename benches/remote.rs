//! Remote ring throughput (`cargo bench --bench remote`, part of `make bench`).
//!
//! Two hosts (network namespaces joined by a veth pair, each with its own daqportmgr
//! and ringmaster, as in tests/remote_*.rs). 64 KiB ring items go from a producer on A
//! through A's ring, A's ring master (REMOTE sender), the network, B's feeder and proxy
//! ring to a consumer on B that checks every byte. The reference, in the same run: the
//! same items written down a plain TCP socket from A to B and read and checked the same
//! way. Figure: items bytes per second at the consumer, from its first item to the end;
//! median of REPS repetitions with min and max, the two transfers interleaved. Target of
//! issue 6: remote >= 0.7 x plain TCP.
//!
//! Needs root and `ip netns` (skips with a message otherwise) and the helper program
//! examples/remote_role (`make bench` builds it). A benchmark reports, it does not judge.

#[path = "../tests/remote_support/mod.rs"]
mod remote_support;

use std::time::Duration;

use remote_support::{Net, role_exe, wait_output};

const REPS: usize = 5;
const ITEM: u64 = 64 * 1024;
const ITEMS: u64 = 16 * 1024; // 1 GiB per transfer

fn rate(out: &std::process::Output, what: &str) -> Option<f64> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let mut words = line.split_whitespace();
    let (mut bytes, mut secs) = (None, None);
    while let Some(w) = words.next() {
        match w {
            "bytes" => bytes = words.next().and_then(|v| v.parse::<f64>().ok()),
            "secs" => secs = words.next().and_then(|v| v.parse::<f64>().ok()),
            _ => {}
        }
    }
    match (bytes, secs, out.status.success()) {
        (Some(b), Some(s), true) if s > 0.0 && b >= (ITEM * ITEMS) as f64 => Some(b / s),
        _ => {
            eprintln!("{what} failed: {line}\n{}", String::from_utf8_lossy(&out.stderr));
            None
        }
    }
}

fn plain_tcp(net: &Net) -> Option<f64> {
    let receiver = net.spawn(1, &["tcp-recv", "5599"]);
    std::thread::sleep(Duration::from_millis(300));
    let to = format!("{}:5599", net.addr(1, 0));
    let sent = net.run(0, &["tcp-send", &to, &ITEM.to_string(), &ITEMS.to_string()], Duration::from_secs(120));
    if !sent.status.success() {
        eprintln!("tcp-send failed: {}", String::from_utf8_lossy(&sent.stderr));
    }
    rate(&wait_output(receiver, Duration::from_secs(120), "tcp-recv"), "plain TCP")
}

fn remote(net: &Net, ring: &str) -> Option<f64> {
    let url = format!("tcp://{}/{ring}", net.hosts[0].name);
    let consumer = net.spawn(1, &["consume", &url]);
    let produced = net.run(0, &["produce", ring, &ITEM.to_string(), &ITEMS.to_string(), "1"], Duration::from_secs(180));
    if !produced.status.success() {
        eprintln!("producer failed: {}", String::from_utf8_lossy(&produced.stderr));
    }
    rate(&wait_output(consumer, Duration::from_secs(180), "consumer"), "remote ring")
}

fn summary(name: &str, mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        println!("{name:<28} no result");
        return None;
    }
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    println!(
        "{name:<28} {:>8.0} MB/s   (min {:.0}, max {:.0}, {} runs)",
        median / 1e6,
        v[0] / 1e6,
        v[v.len() - 1] / 1e6,
        v.len()
    );
    Some(median)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !role_exe().exists() {
        println!("remote bench SKIPPED: {} is missing (cargo build --release --examples)", role_exe().display());
        return;
    }
    let Some(mut net) = Net::new("bench", 2) else {
        println!("remote bench SKIPPED: network namespaces unavailable (needs root and ip netns)");
        return;
    };
    net.start_daemons(0, true);
    net.start_daemons(1, true);
    let ring = format!("rbench{}", std::process::id());
    if !net.run(0, &["create", &ring], Duration::from_secs(10)).status.success() {
        println!("remote bench: cannot create the ring");
        return;
    }
    println!(
        "remote ring vs plain TCP between two network namespaces, {} KiB items, {} MiB per run",
        ITEM / 1024,
        (ITEM * ITEMS) >> 20
    );
    let (mut tcp, mut ring_rates) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        tcp.extend(plain_tcp(&net));
        ring_rates.extend(remote(&net, &ring));
    }
    let t = summary("plain TCP (reference)", tcp);
    let r = summary("tcp://A/ring at B", ring_rates);
    if let (Some(t), Some(r)) = (t, r) {
        println!("ratio remote / plain TCP     {:.2}   (target >= 0.70)", r / t);
    }
}
