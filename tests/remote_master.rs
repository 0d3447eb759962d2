//! The library and a ring master advertised on the local port manager: CONNECT and
//! DISCONNECT around attach and detach, REGISTER and UNREGISTER around create and
//! remove, exactly as NSCLDAQ's C++ client words them; a ring master that talks garbage,
//! never answers or hangs up costs an error within the time box, never a hang, and
//! leaves no slot taken; without one everything works daemonless.
//!
//! One test function: the port manager is chosen through an environment variable,
//! which is process-wide.

mod common;
mod portmgr_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daqflow::portmgr::Client as PortManager;
use daqflow::ring::{self, Consumer, CreateOptions, Producer};
use portmgr_support::Daemon;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    Garbage,
    Silent,
    HangUp,
}

struct Fake {
    mode: Arc<Mutex<Mode>>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn start(listener: TcpListener) -> Fake {
        let mode = Arc::new(Mutex::new(Mode::Ok));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (m, l) = (mode.clone(), lines.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (m, l) = (m.clone(), l.clone());
                std::thread::spawn(move || {
                    if *m.lock().unwrap() == Mode::HangUp {
                        return;
                    }
                    let mut out = conn.try_clone().expect("clone");
                    for line in BufReader::new(conn).lines() {
                        let Ok(line) = line else { return };
                        l.lock().unwrap().push(line);
                        let reply: &[u8] = match *m.lock().unwrap() {
                            Mode::Ok => b"OK\r\n",
                            Mode::Garbage => b"\x01\x02 what {\r\n",
                            Mode::Silent => continue,
                            Mode::HangUp => return,
                        };
                        if out.write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Fake { mode, lines }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

fn timed<T>(limit: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let v = f();
    assert!(start.elapsed() < limit, "{what} took {:?}", start.elapsed());
    v
}

#[test]
fn ring_master_cooperation() {
    // `tcp://` names and ring master announcements are the client layer's.
    daqflow::client::install();
    let guard = common::RingName::new("master");
    let ring_name = guard.s().to_string();
    let dir = portmgr_support::TempDir::new("rmaster");
    let port_file = dir.0.join("listen.port");
    // SAFETY: this test binary has one test, so no other thread reads the environment.
    unsafe { std::env::set_var("DAQPORTMGR_PORTFILE", &port_file) };
    let pid = std::process::id();

    // No port manager at all: daemonless, at the cost of one refused connect.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(&port_file, format!("{closed}\n")).unwrap();
    timed(Duration::from_millis(500), "daemonless create/attach/remove", || {
        ring::create(&ring_name, CreateOptions { data_bytes: 65536, max_consumers: 4, ..Default::default() })
            .expect("create");
        let p = Producer::attach(&ring_name).expect("producer");
        let c = Consumer::attach(&ring_name).expect("consumer");
        c.detach().expect("detach");
        p.detach().expect("detach");
        ring::remove(&ring_name).expect("remove");
    });

    // A port file that names no port: no port manager, so daemonless too.
    std::fs::write(&port_file, "not a port\n").unwrap();
    ring::create(&ring_name, CreateOptions { data_bytes: 65536, max_consumers: 4, ..Default::default() })
        .expect("create with a junk port file");
    Consumer::attach(&ring_name).expect("consumer with a junk port file").detach().expect("detach");
    ring::remove(&ring_name).expect("remove with a junk port file");

    // A port manager with no ring master: the same.
    let pm = Daemon::start("47500-47599", &[]);
    std::fs::write(&port_file, format!("{}\n", pm.port)).unwrap();
    ring::create(&ring_name, CreateOptions { data_bytes: 65536, max_consumers: 4, ..Default::default() })
        .expect("create");
    Consumer::attach(&ring_name).expect("consumer").detach().expect("detach");
    ring::remove(&ring_name).expect("remove");

    // A ring master is advertised: every step is announced, in NSCLDAQ's words.
    let (manager, listener) = portmgr_support::listen_as(&pm, "RingMaster");
    let fake = Fake::start(listener);
    ring::create(&ring_name, CreateOptions { data_bytes: 65536, max_consumers: 4, ..Default::default() })
        .expect("create");
    let p = Producer::attach(&ring_name).expect("producer");
    let c0 = Consumer::attach(&ring_name).expect("consumer");
    let c1 = Consumer::attach(&ring_name).expect("consumer");
    c0.detach().expect("detach");
    drop(c1);
    p.detach().expect("detach");
    ring::remove(&ring_name).expect("remove");
    assert_eq!(
        fake.take(),
        vec![
            format!("REGISTER {ring_name}"),
            format!("CONNECT {{{ring_name}}} producer {pid} {{daqflow}}"),
            format!("CONNECT {{{ring_name}}} consumer.0 {pid} {{daqflow}}"),
            format!("CONNECT {{{ring_name}}} consumer.1 {pid} {{daqflow}}"),
            format!("DISCONNECT {{{ring_name}}} consumer.0 {pid}"),
            format!("DISCONNECT {{{ring_name}}} consumer.1 {pid}"),
            format!("DISCONNECT {{{ring_name}}} producer {pid}"),
            format!("UNREGISTER {ring_name}"),
        ]
    );

    // A ring master gone bad costs an error within the time box and keeps no slot.
    ring::create(&ring_name, CreateOptions { data_bytes: 65536, max_consumers: 4, ..Default::default() })
        .expect("create");
    for (mode, errno) in
        [(Mode::Garbage, libc::EPROTO), (Mode::Silent, libc::ETIMEDOUT), (Mode::HangUp, libc::ECONNRESET)]
    {
        fake.set(mode);
        let err = timed(Duration::from_secs(7), &format!("attach with a {mode:?} ring master"), || {
            Consumer::attach(&ring_name).map(|_| ()).expect_err("attach must fail")
        });
        assert_eq!(err.errno(), errno, "{mode:?}: {}", err.message());
        let err = timed(Duration::from_secs(7), "producer attach", || {
            Producer::attach(&ring_name).map(|_| ()).expect_err("fails")
        });
        assert_eq!(err.errno(), errno, "{mode:?}: {}", err.message());
        let usage = ring::usage(&ring_name).expect("usage");
        assert!(usage.consumers.is_empty() && usage.producer_pid == -1, "{mode:?} left a slot taken: {usage:?}");
    }
    // Detach while the ring master misbehaves: the slot is still given back.
    fake.set(Mode::Ok);
    let c = Consumer::attach(&ring_name).expect("consumer");
    fake.set(Mode::Silent);
    let err = timed(Duration::from_secs(7), "detach", || c.detach().expect_err("detach reports the ring master"));
    assert_eq!(err.errno(), libc::ETIMEDOUT, "{}", err.message());
    assert!(ring::usage(&ring_name).expect("usage").consumers.is_empty());

    // The ring master goes away (its allocation ends): daemonless again at once.
    fake.set(Mode::Ok);
    drop(manager);
    std::thread::sleep(Duration::from_millis(200));
    Consumer::attach(&ring_name).expect("attach once the ring master is gone").detach().expect("detach");

    // A ring master that is listed but not listening yet (it is starting): the attach
    // waits for it instead of failing.
    // (The first fake still listens on its port: take another, and list only that one.)
    let mut taken = Vec::new();
    let (manager, port) = loop {
        let mut manager = PortManager::connect(Some("127.0.0.1"), Some(pm.port)).expect("port manager");
        let port = manager.allocate("RingMaster").expect("allocate");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            break (manager, port);
        }
        taken.push(manager);
    };
    drop(taken);
    std::thread::sleep(Duration::from_millis(100));
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        Fake::start(TcpListener::bind(("127.0.0.1", port)).expect("bind the late ring master"))
    });
    let c = timed(Duration::from_secs(2), "attach while the ring master starts", || {
        Consumer::attach(&ring_name).expect("attach while the ring master starts")
    });
    let fake = late.join().expect("late ring master");
    c.detach().expect("detach");
    assert_eq!(
        fake.take(),
        vec![
            format!("CONNECT {{{ring_name}}} consumer.0 {pid} {{daqflow}}"),
            format!("DISCONNECT {{{ring_name}}} consumer.0 {pid}")
        ]
    );
    drop(manager);

    // Advertised, but nothing ever listens on its port (one whose death the port manager
    // has not seen yet): the same as none, after the wait for a starting one.
    let mut starting = PortManager::connect(Some("127.0.0.1"), Some(pm.port)).expect("port manager");
    // (the fake still listens on the port it had: the first allocations may be that one)
    let mut unbound = starting.allocate("RingMaster").expect("allocate");
    while std::net::TcpStream::connect(("127.0.0.1", unbound)).is_ok() {
        drop(starting);
        starting = PortManager::connect(Some("127.0.0.1"), Some(pm.port)).expect("port manager");
        let _taken = starting.allocate("taken").expect("allocate");
        unbound = starting.allocate("RingMaster").expect("allocate");
    }
    timed(Duration::from_secs(2), "attach with a ring master not listening yet", || {
        Consumer::attach(&ring_name).expect("attach beside a ring master not listening").detach().expect("detach");
    });
    drop(starting);
    ring::remove(&ring_name).expect("remove");
}
