//! How NSCLDAQ's unmodified C++ programs talk to a ring master, emulated on the wire
//! (facts from NSCLDAQ's CRingMaster, CRingBuffer and CRingAccess; no code of theirs):
//!
//! - the port is the first `RingMaster` in the port manager's LIST, whatever its user;
//!   the connection goes to the host's IPv4 address (127.0.0.1 for localhost);
//! - requests are `CONNECT {ring} producer|consumer.N pid {CRingBuffer:: client
//!   connection}`, `DISCONNECT {ring} type pid`, `REGISTER ring`, `UNREGISTER ring`,
//!   `LIST`, `REMOTE ring`, each ending in LF;
//! - replies are read one byte at a time up to LF and compared whole: `OK\r\n`,
//!   `OK BINARY FOLLOWS\r\n`; anything else throws (a FAIL in a destructor aborted);
//! - `create` of a name that is a ring already asks LIST and looks for the text
//!   `{<ring> `: found, it throws EEXIST; not found, it adopts the ring (REGISTER);
//! - a feeder gets the REMOTE socket as its stdin (the parent closes its copy without a
//!   shutdown) and reads NSCLDAQ ring items from it: a little-endian u32 size that
//!   includes itself, a u32 type, the body.

mod portmgr_support;
mod ringmaster_support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use daqflow::ring::{Consumer, Producer};
use ringmaster_support::{Master, TestRing, eventually};

const COMMENT: &str = "CRingBuffer:: client connection";

/// NSCLDAQ's CRingMaster, as it behaves on the wire.
struct CppRingMaster {
    socket: TcpStream,
    /// After REMOTE: its destructor then closes without a shutdown.
    data: bool,
}

impl CppRingMaster {
    fn new(portmgr_port: u16) -> CppRingMaster {
        // CPortManager::getPortUsage, then the first entry named RingMaster.
        let mut pm = TcpStream::connect(("127.0.0.1", portmgr_port)).unwrap();
        pm.write_all(b"LIST\n").unwrap();
        let header = read_line(&mut pm);
        let n: usize = header.trim_end().strip_prefix("OK ").unwrap().parse().unwrap();
        let lines: Vec<String> = (0..n).map(|_| read_line(&mut pm)).collect();
        let port: u16 = lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w[1] == "RingMaster")
            .map(|w| w[0].parse().unwrap())
            .expect("no RingMaster: the C++ client throws ECONNREFUSED");
        let socket = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        CppRingMaster { socket, data: false }
    }

    fn send(&mut self, line: &str) {
        self.socket.write_all(line.as_bytes()).unwrap();
    }

    /// `simpleTransaction`: the reply must be exactly OK CR LF.
    fn simple(&mut self, line: &str) {
        self.send(line);
        assert_eq!(read_line(&mut self.socket), "OK\r\n", "reply to {line:?}");
    }

    fn notify_producer_connection(&mut self, ring: &str) {
        self.simple(&format!("CONNECT {{{ring}}} producer {} {{{COMMENT}}}\n", std::process::id()));
    }

    fn notify_consumer_connection(&mut self, ring: &str, slot: u32) {
        self.simple(&format!("CONNECT {{{ring}}} consumer.{slot} {} {{{COMMENT}}}\n", std::process::id()));
    }

    fn notify_producer_disconnection(&mut self, ring: &str) {
        self.simple(&format!("DISCONNECT {{{ring}}} producer {}\n", std::process::id()));
    }

    fn notify_consumer_disconnection(&mut self, ring: &str, slot: u32) {
        self.simple(&format!("DISCONNECT {{{ring}}} consumer.{slot} {}\n", std::process::id()));
    }

    fn request_usage(&mut self) -> String {
        self.send("LIST\n");
        assert_eq!(read_line(&mut self.socket), "OK\r\n");
        read_line(&mut self.socket)
    }

    /// `CRingBuffer::create`'s test of a name that is a ring already: listed, EEXIST
    /// (false); not listed, adopted with notifyCreate (true).
    fn create_existing_ring(&mut self, ring: &str) -> bool {
        let usage = self.request_usage();
        assert!(usage.ends_with("\r\n"));
        if usage.contains(&format!("{{{ring} ")) {
            return false;
        }
        self.simple(&format!("REGISTER {ring}\n"));
        true
    }

    /// The socket, now a data connection; the feeder gets a copy of it.
    fn request_data(&mut self, ring: &str) -> TcpStream {
        self.send(&format!("REMOTE {ring}\n"));
        assert_eq!(read_line(&mut self.socket), "OK BINARY FOLLOWS\r\n");
        self.data = true;
        self.socket.try_clone().unwrap()
    }
}

impl Drop for CppRingMaster {
    fn drop(&mut self) {
        if !self.data {
            let _ = self.socket.shutdown(Shutdown::Both);
        }
    }
}

/// `getLine`: one byte at a time up to and including LF.
fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = s.read(&mut b).unwrap();
        assert_eq!(n, 1, "EOF after {:?}", String::from_utf8_lossy(&line));
        line.push(b[0]);
        if b[0] == b'\n' {
            return String::from_utf8_lossy(&line).into_owned();
        }
    }
}

#[test]
fn a_cpp_program_creates_produces_consumes_and_removes() {
    let master = Master::start(&[]);
    // A ring this ring master was not told about (made by a process that did not find it).
    let ring = TestRing::new("cpp", 65536, 4);
    let mut rm = CppRingMaster::new(master.portmgr.port);
    // CRingBuffer::create adopts it; a second create is EEXIST.
    assert!(rm.create_existing_ring(ring.s()), "create of an unregistered ring failed with EEXIST");
    assert!(!rm.create_existing_ring(ring.s()), "create of a registered ring succeeded");
    let producer = Producer::attach(ring.s()).unwrap();
    rm.notify_producer_connection(ring.s());
    let consumer = Consumer::attach(ring.s()).unwrap();
    rm.notify_consumer_connection(ring.s(), consumer.slot());
    master.wait_log(&format!(
        "CONNECT: ring {} consumer.{} pid {} ({COMMENT})",
        ring.s(),
        consumer.slot(),
        std::process::id()
    ));
    // Destructors: DISCONNECT first, then release.
    rm.notify_consumer_disconnection(ring.s(), consumer.slot());
    consumer.detach().unwrap();
    rm.notify_producer_disconnection(ring.s());
    producer.detach().unwrap();
    // A destructor after the ring master forgot the client (or never knew it): OK too.
    rm.notify_consumer_disconnection(ring.s(), 3);
    // CRingBuffer::remove: UNREGISTER, then the shm is unlinked.
    rm.simple(&format!("UNREGISTER {}\n", ring.s()));
    drop(rm);
    master.wait_log("Socket connection lost from 127.0.0.1");
}

/// NSCLDAQ's `rmasterTests::existsAndIsRing`: a fresh shared-memory object, formatted
/// as a ring by `CRingBuffer::format` (daqflow's format, which the C++ header calls),
/// then `CRingBuffer::create` of it must succeed (adopting it) and `remove` too.
#[test]
fn nscldaq_exists_and_is_ring() {
    let master = Master::start(&[]);
    let name = format!("rm-isaring-{}", std::process::id());
    let ring = TestRing(name.clone()); // removed on drop whatever happens
    std::fs::write(format!("/dev/shm/{name}"), vec![0u8; 2 << 20]).unwrap();
    daqflow::ring::format(&name, 10).expect("CRingBuffer::format of a fresh object");
    let mut rm = CppRingMaster::new(master.portmgr.port);
    assert!(daqflow::ring::exists(&name).unwrap(), "isRing after format");
    assert!(rm.create_existing_ring(&name), "CRingBuffer::create threw EEXIST");
    // CRingBuffer::remove: UNREGISTER, then the unlink.
    rm.simple(&format!("UNREGISTER {name}\n"));
    daqflow::ring::remove(&name).unwrap();
    assert!(!rm.request_usage().contains(&format!("{{{name} ")));
    drop(ring);
}

/// An NSCLDAQ ring item: size (including the 8-byte header), type, body.
fn item(kind: u32, seq: u64, body_len: usize) -> Vec<u8> {
    let size = 8 + 8 + body_len;
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&(size as u32).to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend((0..body_len).map(|i| (seq as u8).wrapping_add(i as u8)));
    v
}

#[test]
fn an_nscldaq_feeder_reads_whole_ring_items_from_remote() {
    let master = Master::start(&[]);
    let ring = TestRing::new("feeder", 1024 * 1024, 4);
    let mut producer = Producer::attach(ring.s()).unwrap();
    // Items put before the feeder starts are not in its stream.
    producer.put(&item(30, u64::MAX, 100), Some(Duration::from_secs(5))).unwrap();
    // CRingAccess::startPipeline: the socket goes to the feeder (a dup as its stdin) and
    // the parent closes its own copy without shutting it down.
    let mut rm = CppRingMaster::new(master.portmgr.port);
    let stdin = rm.request_data(ring.s());
    drop(rm);
    eventually("the sender", || daqflow::ring::usage(ring.s()).map(|u| u.consumers.len() == 1).unwrap_or(false));
    const ITEMS: u64 = 20_000;
    let feeder = std::thread::spawn(move || {
        let mut stdin = stdin;
        stdin.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for seq in 0..ITEMS {
            let mut header = [0u8; 8];
            stdin.read_exact(&mut header).unwrap();
            let size = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
            let kind = u32::from_le_bytes(header[4..8].try_into().unwrap());
            let mut rest = vec![0u8; size - 8];
            stdin.read_exact(&mut rest).unwrap();
            let mut whole = header.to_vec();
            whole.extend_from_slice(&rest);
            assert_eq!(whole, item(kind, seq, size - 16), "item {seq}");
            assert_eq!(kind, 1 + (seq % 30) as u32);
        }
    });
    for seq in 0..ITEMS {
        producer
            .put(&item(1 + (seq % 30) as u32, seq, (seq * 37 % 3000) as usize), Some(Duration::from_secs(10)))
            .unwrap();
    }
    feeder.join().unwrap();
    producer.detach().unwrap();
}
