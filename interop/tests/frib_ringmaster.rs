//! FRIB's ring master, `nscldaq_ringmaster` 0.2.16 (installed from crates.io by `make
//! check`, named by `$FRIB_RINGMASTER`), serving daqflow's clients: they tell it about
//! their attaches and detaches as they would NSCLDAQ's, wait for data and go, and it never
//! signals them. It finds its port through daqflow's daqportmgr (private port and state).
//!
//! FRIB's ring master maps every registered ring on LIST; a ring it cannot parse is
//! dropped and each client registered on it is sent SIGTERM.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daqflow::ringmaster::{Client, RingUsage};
use daqflow_interop::process::{Peer, PortManager, RingName, TIMEOUT, TempDir, daqflow_program, wait_until_sleeping};

const DAQFLOW: &str = env!("CARGO_BIN_EXE_daqflow-peer");
const TOTAL: &str = "4000000";

/// FRIB's ring master, killed on drop (its log shown if the test failed).
struct FribRingMaster {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl FribRingMaster {
    /// None when `$FRIB_RINGMASTER` is not set (outside `make check`).
    fn start(portmgr: &PortManager) -> Option<FribRingMaster> {
        let program = std::env::var_os("FRIB_RINGMASTER")?;
        let dir = TempDir::new("frib-rm");
        let log = dir.0.join("ringmaster.log");
        let child = Command::new(&program)
            .args(["--portman-port", &portmgr.port.to_string(), "--directory", "/dev/shm", "--log-file"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.to_string_lossy()));
        let mut master = FribRingMaster { child, log, _dir: dir };
        // Ready once the port manager lists it and it answers a LIST.
        let start = Instant::now();
        while master.list(portmgr).is_none() {
            if let Ok(Some(status)) = master.child.try_wait() {
                panic!("FRIB's ring master exited at start ({status}): {}", master.log_text());
            }
            assert!(start.elapsed() < TIMEOUT, "FRIB's ring master never answered: {}", master.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(master)
    }

    fn list(&self, portmgr: &PortManager) -> Option<Vec<(String, RingUsage)>> {
        Client::locate("localhost", Some(portmgr.port), Duration::from_secs(5)).ok()?.list().ok()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("FRIB's ring master died ({status}): {}", self.log_text());
        }
    }
}

impl Drop for FribRingMaster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- FRIB ring master log ---\n{}--- end ---", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ring`'s line of the ring master's LIST. If it is missing, the ring master has
/// dropped the ring and signals its clients: the failure says what became of `clients`.
fn listed(master: &FribRingMaster, portmgr: &PortManager, ring: &RingName, clients: &mut [&mut Peer]) -> RingUsage {
    let rings = master.list(portmgr).expect("FRIB's ring master answers LIST");
    if let Some((_, usage)) = rings.iter().find(|(n, _)| n == ring.s()) {
        return usage.clone();
    }
    // It signals them after its reply.
    std::thread::sleep(Duration::from_millis(200));
    let fates: Vec<String> = clients
        .iter_mut()
        .map(|c| {
            let state = c.state();
            format!("{}: {state}", c.label)
        })
        .collect();
    let names: Vec<&String> = rings.iter().map(|(n, _)| n).collect();
    panic!("{} is no longer in FRIB's ring master's LIST {names:?}; {}", ring.s(), fates.join(", "))
}

fn ringbuffer(portfile: &str, args: &[&str]) {
    let out = Command::new(daqflow_program("ringbuffer"))
        .args(args)
        .env("DAQPORTMGR_PORTFILE", portfile)
        .env_remove("DAQFLOW_RINGMASTER")
        .output()
        .unwrap();
    assert!(out.status.success(), "ringbuffer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn daqflow_clients_attach_wait_and_detach_under_frib_s_ring_master_unsignalled() {
    let portmgr = PortManager::start();
    let Some(mut master) = FribRingMaster::start(&portmgr) else {
        eprintln!("SKIPPED: FRIB_RINGMASTER is not set (make check installs nscldaq_ringmaster 0.2.16 and sets it)");
        return;
    };
    let portfile = portmgr.port_file().display().to_string();
    let env = [("DAQPORTMGR_PORTFILE", portfile.as_str()), ("DAQFLOW_RINGMASTER", "on")];

    // Created by daqflow's tool, which REGISTERs it with the ring master.
    let ring = RingName::new("frib-rm");
    ringbuffer(&portfile, &["create", "--datasize=64k", "--maxconsumers=4", ring.s()]);
    assert!(listed(&master, &portmgr, &ring, &mut []).consumers.is_empty());

    // A consumer attaches (CONNECT) and waits for data; the ring master still reads the
    // ring and lists it.
    let mut consumer = Peer::start("daqflow consumer", DAQFLOW, &["consume", ring.s(), "1000", TOTAL, "--hold"], &env);
    consumer.expect("attached");
    wait_until_sleeping(consumer.pid());
    let usage = listed(&master, &portmgr, &ring, &mut [&mut consumer]);
    assert_eq!(usage.consumers, [(consumer.pid(), 0)]);

    // A producer attaches (CONNECT), feeds it, and both stay attached for a LIST.
    let mut producer = Peer::start(
        "daqflow producer",
        DAQFLOW,
        &["produce", ring.s(), "1000", TOTAL, "--consumers", "1", "--hold"],
        &env,
    );
    producer.expect("attached");
    producer.expect("done");
    consumer.expect("done");
    let usage = listed(&master, &portmgr, &ring, &mut [&mut consumer, &mut producer]);
    assert_eq!((usage.producer_pid, usage.consumers.clone()), (producer.pid(), vec![(consumer.pid(), 0)]), "{usage:?}");

    // They detach (DISCONNECT) and exit by themselves: never signalled.
    consumer.finish().assert_success();
    producer.finish().assert_success();
    let usage = listed(&master, &portmgr, &ring, &mut []);
    assert_eq!((usage.producer_pid, usage.consumers.len()), (-1, 0), "{usage:?}");
    master.assert_running();

    ringbuffer(&portfile, &["delete", ring.s()]);
    let rings = master.list(&portmgr).expect("LIST after the delete");
    assert!(rings.iter().all(|(n, _)| n != ring.s()), "{rings:?}");
}
