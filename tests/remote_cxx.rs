//! NSCLDAQ's C++ API on a remote ring: `CRingBuffer("tcp://A/ring", consumer)`, and
//! `CRingAccess::daqConsumeFrom` with the proxy ring's geometry set, in a program
//! compiled here against include/nscldaq and the in-tree library, run on host B, reads
//! whole, checked items put on host A.

mod remote_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use remote_support::{Net, release_dir, wait_output};

#[test]
fn cringbuffer_reads_a_ring_on_another_host_by_url() {
    let Some(mut net) = Net::new("cxx", 2) else { return };
    let Some(exe) = build_consumer(&net) else { return };
    let said = consume_from_a(&mut net, &exe, &[]);
    assert!(said.contains("attached\nitems 20000 "), "{said}");
}

/// The proxy ring daqConsumeFrom makes has the size and consumer slots asked for with
/// setProxyRingSize and setProxyMaxConsumers, and the consumer's usage is that ring's.
#[test]
fn cringaccess_makes_the_proxy_ring_it_was_asked_for() {
    let Some(mut net) = Net::new("acc", 2) else { return };
    let Some(exe) = build_consumer(&net) else { return };
    let said = consume_from_a(&mut net, &exe, &["--access"]);
    assert!(said.contains("attached\nitems 20000 "), "{said}");
    let proxy = said.lines().find_map(|l| l.strip_prefix("proxy ")).unwrap_or_else(|| panic!("no proxy line: {said}"));
    let figures: Vec<u64> = proxy.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(figures.len(), 2, "{proxy}");
    // 1 MiB asked for, rounded up as NSCLDAQ rounds a ring (to whole pages with the header).
    assert!((1 << 20..(1 << 20) + 65536).contains(&figures[0]), "data bytes of the proxy: {proxy}");
    assert_eq!(figures[1], 7, "consumer slots of the proxy: {proxy}");
}

/// Builds c-tests/peer_url_consumer.cpp; None (skipped) without a C++ compiler.
fn build_consumer(net: &Net) -> Option<PathBuf> {
    let top = env!("CARGO_MANIFEST_DIR");
    let lib = release_dir();
    let exe = net.hosts[1].state.join("url_consumer");
    let built = Command::new("g++")
        .args(["-std=c++11", "-O2", "-Wall", "-Werror"])
        .arg(format!("-I{top}/include"))
        .arg(format!("-I{top}/include/nscldaq"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("{top}/c-tests/peer_url_consumer.cpp"))
        .arg(format!("-L{}", lib.display()))
        .arg("-ldaqflow")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .output();
    let built = match built {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: no C++ compiler ({e})");
            return None;
        }
    };
    assert!(built.status.success(), "g++: {}", String::from_utf8_lossy(&built.stderr));
    Some(exe)
}

/// Runs the consumer (with `extra` arguments) on host B against a ring of host A that is
/// fed 20000 items; returns what it printed, after checking that it succeeded.
fn consume_from_a(net: &mut Net, exe: &Path, extra: &[&str]) -> String {
    net.start_daemons(0, true);
    net.start_daemons(1, true);
    let ring = format!("cxx{}", std::process::id());
    let made = net.run(0, &["create", &ring], Duration::from_secs(10));
    assert!(made.status.success(), "create: {}", String::from_utf8_lossy(&made.stderr));
    let url = format!("tcp://{}/{ring}", net.hosts[0].short);
    let args: Vec<&str> = std::iter::once(url.as_str()).chain(extra.iter().copied()).collect();
    let consumer = net.command(1, exe, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("consumer");
    // Variable sizes (24 B .. 70 KiB), every eighth byte-swapped; starts once the feeder's
    // sender is attached on A.
    let produced = net.run(0, &["produce", &ring, "0", "20000", "1"], Duration::from_secs(120));
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let out = wait_output(consumer, Duration::from_secs(120), "C++ consumer");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}\n{}\n{}", String::from_utf8_lossy(&out.stderr), net.log(1, "feeder.log"));
    said
}
