//! NSCLDAQ's C++ API on a remote ring: `CRingBuffer("tcp://A/ring", consumer)` in a
//! program compiled here against include/nscldaq and the in-tree library, run on host B,
//! reads whole, checked items put on host A.

mod remote_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use remote_support::{Net, release_dir, wait_output};

#[test]
fn cringbuffer_reads_a_ring_on_another_host_by_url() {
    let Some(mut net) = Net::new("cxx", 2) else { return };
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
            return;
        }
    };
    assert!(built.status.success(), "g++: {}", String::from_utf8_lossy(&built.stderr));
    net.start_daemons(0, true);
    net.start_daemons(1, true);
    let ring = format!("cxx{}", std::process::id());
    assert!(net.run(0, &["create", &ring], Duration::from_secs(10)).status.success());
    let url = format!("tcp://{}/{ring}", net.hosts[0].short);
    let consumer = net.command(1, &exe, &[&url]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("consumer");
    // Variable sizes (24 B .. 70 KiB), every eighth byte-swapped; starts once the feeder's
    // sender is attached on A.
    let produced = net.run(0, &["produce", &ring, "0", "20000", "1"], Duration::from_secs(120));
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let out = wait_output(consumer, Duration::from_secs(120), "C++ consumer");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}\n{}", String::from_utf8_lossy(&out.stderr), net.log(1, "feeder.log"));
    assert!(said.contains("attached\nitems 20000 "), "{said}");
}
