//! The blocking ring master client: against the real daemon, and against servers that
//! stall, hang up or answer garbage (each costs an error within the timeout, never a
//! hang), and the legacy refusals mapped to errno values.

mod portmgr_support;
mod ringmaster_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use daqflow::ring::{self, Producer};
use daqflow::ringmaster::{Client, RingUsage, Role};
use ringmaster_support::{Master, TestRing};

const T: Duration = Duration::from_secs(5);

#[test]
fn every_request_against_the_daemon() {
    let master = Master::start(&[]);
    let ring = TestRing::new("client", 65536, 4);
    let mut c = Client::locate("localhost", Some(master.portmgr.port), T).unwrap();
    assert_eq!(c.server().port(), master.port);
    let me = std::process::id() as i32;
    c.register(ring.s()).unwrap();
    c.connect(ring.s(), Role::Producer, me, "daqflow test").unwrap();
    c.connect(ring.s(), Role::Consumer(2), me, "daqflow test").unwrap();
    c.disconnect(ring.s(), Role::Consumer(2), me).unwrap();
    c.disconnect(ring.s(), Role::Producer, me).unwrap();
    let listing = c.list().unwrap();
    let ours = listing.iter().find(|(name, _)| name == ring.s()).expect("our ring is LISTed");
    assert_eq!(ours.1, RingUsage::from(&ring::usage(ring.s()).unwrap()));
    let err = c.register("no-such-ring-for-client").unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    // A refusal of that kind ends the connection (a legacy daemon may close after one).
    assert_eq!(c.list().unwrap_err().errno(), libc::EPIPE);
    let mut c = Client::locate("127.0.0.1", Some(master.portmgr.port), T).unwrap();
    c.unregister(ring.s()).unwrap();
    master.wait_log(&format!("CONNECT: ring {} consumer.2 pid {me} (daqflow test)", ring.s()));

    // REMOTE: the stream starts with the first byte put after the request.
    let mut producer = Producer::attach(ring.s()).unwrap();
    let c = Client::locate("localhost", Some(master.portmgr.port), T).unwrap();
    let mut stream = c.remote(ring.s()).unwrap();
    ringmaster_support::eventually("the sender", || ring::usage(ring.s()).unwrap().consumers.len() == 1);
    producer.put(b"hello, remote", Some(T)).unwrap();
    let mut got = [0u8; 13];
    stream.set_read_timeout(Some(T)).unwrap();
    stream.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello, remote");
    producer.detach().unwrap();
    let c = Client::locate("localhost", Some(master.portmgr.port), T).unwrap();
    assert_eq!(c.remote("no-such-ring-for-client").unwrap_err().errno(), libc::ENOENT);
}

#[test]
fn no_ring_master_is_connection_refused() {
    let portmgr = portmgr_support::Daemon::start("47000-47001", &[]);
    let err = Client::locate("localhost", Some(portmgr.port), T).unwrap_err();
    assert_eq!(err.errno(), libc::ECONNREFUSED, "{err}");
    drop(portmgr);
    // No port manager either.
    let port = ringmaster_support::free_port();
    assert_eq!(Client::locate("localhost", Some(port), T).unwrap_err().errno(), libc::ECONNREFUSED);
}

/// The port manager lists a ring master before it listens: a host's ring master that
/// is starting is waited for (remote attach, REMOTE, remote usage all locate it), one
/// that never listens is refused after the grace period, not at once and not for ever.
#[test]
fn a_listed_ring_master_that_is_starting_is_waited_for() {
    let portmgr = portmgr_support::Daemon::start("27960-27969", &[]);
    let (manager, listener) = portmgr_support::listen_as(&portmgr, "RingMaster");
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        let listener = TcpListener::bind(addr).unwrap();
        let _ = listener.accept();
    });
    let c = Client::locate("localhost", Some(portmgr.port), T).expect("the starting ring master is found");
    assert_eq!(c.server().port(), addr.port());
    late.join().unwrap();

    // Listed, never listening (it died before the port manager noticed).
    let started = Instant::now();
    let err = Client::locate("localhost", Some(portmgr.port), T).unwrap_err();
    assert_eq!(err.errno(), libc::ECONNREFUSED, "{err}");
    assert!(started.elapsed() >= daqflow::ringmaster::client::STARTING, "refused at once: {:?}", started.elapsed());
    drop(manager);
}

#[test]
fn arguments_are_checked_before_anything_is_sent() {
    let (addr, server) = fake(|mut s| {
        // Only the valid request arrives.
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"CONNECT {r} consumer.1 5 {ok}\n");
        s.write_all(b"OK\r\n").unwrap();
    });
    let mut c = Client::connect_addr(addr, T).unwrap();
    assert_eq!(c.register("a b").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(c.connect("r", Role::Producer, 0, "x").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(c.connect("r", Role::Producer, 5, "a}b").unwrap_err().errno(), libc::EINVAL);
    assert_eq!(c.disconnect("r{", Role::Producer, 5).unwrap_err().errno(), libc::EINVAL);
    c.connect("r", Role::Consumer(1), 5, "ok").unwrap();
    server.join().unwrap();
}

/// A one-connection server running `f` on the accepted socket.
fn fake(f: impl FnOnce(TcpStream) + Send + 'static) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // A write that can never finish fails the test instead of hanging it.
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        f(s);
    });
    (addr, handle)
}

fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    line
}

#[test]
fn a_silent_server_times_out_and_the_handle_is_then_unusable() {
    let (addr, server) = fake(|mut s| {
        read_request(&mut s);
        // Never answers; waits for the client to give up.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let mut c = Client::connect_addr(addr, Duration::from_millis(300)).unwrap();
    let start = Instant::now();
    let err = c.list().unwrap_err();
    assert_eq!(err.errno(), libc::ETIMEDOUT, "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    assert_eq!(c.register("r").unwrap_err().errno(), libc::EPIPE);
    server.join().unwrap();
}

#[test]
fn a_server_that_hangs_up_is_an_error_not_a_spin() {
    let (addr, server) = fake(|mut s| {
        read_request(&mut s);
    });
    let mut c = Client::connect_addr(addr, T).unwrap();
    let start = Instant::now();
    assert_eq!(c.connect("r", Role::Producer, 5, "c").unwrap_err().errno(), libc::ECONNRESET);
    assert!(start.elapsed() < Duration::from_secs(3));
    server.join().unwrap();
}

#[test]
fn garbage_replies_are_protocol_errors() {
    for (reply, errno) in [
        (&b"WHAT\r\n"[..], libc::EPROTO),
        (b"OK\r\n{unbalanced\r\n", libc::EPROTO),
        (b"OK\r\n{r {1 2 3}}\r\n", libc::EPROTO),
        (b"FAIL - no\r\n", libc::EIO),
    ] {
        let (addr, server) = fake(move |mut s| {
            read_request(&mut s);
            s.write_all(reply).unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        let mut c = Client::connect_addr(addr, T).unwrap();
        let err = c.list().unwrap_err();
        assert_eq!(err.errno(), errno, "{:?}: {err}", String::from_utf8_lossy(reply));
        assert_eq!(c.list().unwrap_err().errno(), libc::EPIPE);
        drop(c);
        server.join().unwrap();
    }
    // An endless reply line: refused at the limit, not buffered without bound.
    let (addr, server) = fake(|mut s| {
        read_request(&mut s);
        let junk = vec![b'x'; 1 << 20];
        for _ in 0..8 {
            if s.write_all(&junk).is_err() {
                break;
            }
        }
    });
    let mut c = Client::connect_addr(addr, T).unwrap();
    assert_eq!(c.list().unwrap_err().errno(), libc::EPROTO);
    // Closed before the server is waited for: the broken handle has shut the connection
    // down but still holds it, and with its receive buffer full (a client slower than the
    // server) no more data reaches it to draw the reset that ends the server's write.
    drop(c);
    server.join().unwrap();
}

#[test]
fn legacy_refusals_map_to_errno_values() {
    for (reply, errno) in [
        ("ERROR Ring connections from remote hosts are forbidden\r\n", libc::EPERM),
        ("ERROR Invalid message format\r\n", libc::EINVAL),
        ("ERROR r shared memory is either corrupt or does not exist\r\n", libc::ENOENT),
        ("ERROR Ring registrations from remote hosts are forbidden\r\n", libc::EPERM),
        ("ERROR 10.0.0.2 already receives ring r 4 times\r\n", libc::EBUSY),
    ] {
        let (addr, server) = fake(move |mut s| {
            read_request(&mut s);
            s.write_all(reply.as_bytes()).unwrap();
        });
        let mut c = Client::connect_addr(addr, T).unwrap();
        let err = c.connect("r", Role::Producer, 5, "c").unwrap_err();
        assert_eq!(err.errno(), errno, "{reply:?}: {err}");
        server.join().unwrap();
    }
}

#[test]
fn remote_swallows_no_data_after_the_reply() {
    let (addr, server) = fake(|mut s| {
        assert_eq!(read_request(&mut s), b"REMOTE r");
        // The reply and the first data in one segment.
        s.write_all(b"OK BINARY FOLLOWS\r\n\x10\x00\x00\x00\x01\x00\x00\x00payload!").unwrap();
    });
    let c = Client::connect_addr(addr, T).unwrap();
    let mut stream = c.remote("r").unwrap();
    let mut data = Vec::new();
    stream.read_to_end(&mut data).unwrap();
    assert_eq!(data, b"\x10\x00\x00\x00\x01\x00\x00\x00payload!");
    server.join().unwrap();

    let (addr, server) = fake(|mut s| {
        read_request(&mut s);
        s.write_all(b"ERROR r does not exist\r\n").unwrap();
    });
    let err = Client::connect_addr(addr, T).unwrap().remote("r").unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    server.join().unwrap();

    // A reply trickled a byte at a time never outlasts the timeout.
    let (addr, server) = fake(|mut s| {
        read_request(&mut s);
        for _ in 0..100 {
            if s.write_all(b"O").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let start = Instant::now();
    let err = Client::connect_addr(addr, Duration::from_millis(500)).unwrap().remote("r").unwrap_err();
    assert_eq!(err.errno(), libc::ETIMEDOUT, "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
    server.join().unwrap();
}

/// A port manager that answers LIST with `header`, then one listing line every `every`.
fn dribbling_port_manager(header: &'static str, every: Duration) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else { return };
        let mut request = [0u8; 5];
        let _ = s.read_exact(&mut request);
        let _ = s.write_all(header.as_bytes());
        for port in 0.. {
            std::thread::sleep(every);
            if s.write_all(format!("{} Other root\n", 1000 + port % 60000).as_bytes()).is_err() || port > 100 {
                return;
            }
        }
    });
    (port, server)
}

#[test]
fn a_port_manager_listing_forever_costs_the_timeout_not_more() {
    // Each line comes well within the timeout, but the listing never ends: the whole
    // search is bounded, not each line of it.
    let (port, server) = dribbling_port_manager("OK 60000\n", Duration::from_millis(200));
    let started = Instant::now();
    let err = Client::locate("127.0.0.1", Some(port), Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.errno(), libc::ETIMEDOUT, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    drop(server);
    // More allocations than there are ports is garbage, refused before reading them.
    let (port, _server) = dribbling_port_manager("OK 4000000000\n", Duration::from_millis(1));
    let err = Client::locate("127.0.0.1", Some(port), T).unwrap_err();
    assert_eq!(err.errno(), libc::EPROTO, "{err}");
}
