//! daqflow's port manager client against FRIB's real port manager, `portman` 0.2.3 from
//! crates.io (its Rust replacement for NSCLDAQ's Tcl server), installed by the first test
//! that needs it with `cargo install` into the build's temporary directory.
//!
//! FRIB's server answers differently from NSCLDAQ's: LF line ends, `FAIL - reason` and a
//! hang-up after every refusal, LIST lines that are not Tcl-quoted, duplicates refused.
//! The client must report the same errors for the same refusals.

mod portmgr_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use daqflow::portmgr::client::calling_user;
use daqflow::portmgr::{Allocation, Client};
use portmgr_support::TIMEOUT;

const PORTMAN_VERSION: &str = "0.2.3";

/// The installed `portman` binary; installs it once per build directory.
fn portman() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    INSTALLED
        .get_or_init(|| {
            let _one = LOCK.lock();
            let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("frib-portman-{PORTMAN_VERSION}"));
            let binary = root.join("bin/portman");
            if !binary.exists() {
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                // --locked: the versions FRIB released it with (its clap is pinned too).
                let out = Command::new(cargo)
                    .args(["install", "--locked", "--quiet", "--version", PORTMAN_VERSION, "portman", "--root"])
                    .arg(&root)
                    .arg("--target-dir")
                    .arg(root.join("build"))
                    .output()
                    .expect("run cargo install");
                assert!(
                    out.status.success() && binary.exists(),
                    "cargo install portman {PORTMAN_VERSION} failed (crates.io must be reachable): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            binary
        })
        .clone()
}

/// A running `portman`, killed on drop.
struct Portman {
    child: Child,
    port: u16,
}

impl Portman {
    /// `portman -l <a free port> -p base -n count`.
    fn start(base: u16, count: u16) -> Portman {
        let binary = portman();
        // One start at a time: two tests given the same free port would both find the
        // portman that won it, and share it.
        static STARTING: Mutex<()> = Mutex::new(());
        let _one = STARTING.lock();
        for _ in 0..20 {
            // portman cannot be told to pick its own port: take one the kernel picked
            // and hand it over (another process may take it meanwhile: then try again).
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut child = Command::new(&binary)
                .args(["-l", &port.to_string(), "-p", &base.to_string(), "-n", &count.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start portman");
            let start = Instant::now();
            while start.elapsed() < TIMEOUT {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken: portman panics on bind
                }
                if is_fresh_portman(port) && matches!(child.try_wait(), Ok(None)) {
                    return Portman { child, port };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("portman did not start");
    }

    fn client(&self) -> Client {
        Client::connect(Some("127.0.0.1"), Some(self.port)).expect("connect to portman")
    }

    /// The raw bytes of one exchange, up to the server hanging up or `lines` LFs read.
    fn raw(&self, from: Option<&str>, request: &str, lines: usize) -> String {
        let mut stream = match from {
            None => TcpStream::connect(("127.0.0.1", self.port)).unwrap(),
            Some(source) => connect_from(source, self.port),
        };
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while got.iter().filter(|&&b| b == b'\n').count() < lines {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
}

impl Drop for Portman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a fresh portman answers on `port`: its LIST of nothing, LF-terminated. Not
/// merely a connection: while it starts, another program may have taken the port, or a
/// connection to a port in the ephemeral range may connect to itself.
fn is_fresh_portman(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 5];
    stream.write_all(b"LIST\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"OK 0\n"
}

/// A TCP connection to the local `port` from the loopback address `source` (127.0.0.2
/// is not "local" to portman, which only takes 127.0.0.1).
fn connect_from(source: &str, port: u16) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    let SocketAddr::V4(source) = source else { unreachable!() };
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(source)).unwrap();
    let target = SockaddrIn::new(127, 0, 0, 1, port);
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &target).unwrap();
    TcpStream::from(fd)
}

fn listed(server: &Portman) -> Vec<Allocation> {
    server.client().list().expect("list")
}

#[test]
fn an_exhausted_pool_is_eaddrnotavail_with_the_servers_words() {
    let server = Portman::start(25100, 1);
    let me = calling_user();
    let mut holder = server.client();
    assert_eq!(holder.allocate("first").unwrap(), 25100);

    let mut late = server.client();
    let err = late.allocate("second").unwrap_err();
    assert_eq!(err.errno(), libc::EADDRNOTAVAIL, "{err}");
    assert!(err.message().contains("the server refused: No free ports available"), "{err}");
    assert_eq!(late.refusal(), Some("No free ports available"));
    // portman hung up: the handle says so instead of acting on a dead connection.
    assert!(!late.is_usable());
    assert_eq!(late.list().unwrap_err().errno(), libc::EPIPE);

    // The holder's port is untouched, and the raw reply is what the client read.
    assert!(holder.is_usable());
    assert_eq!(listed(&server), [Allocation { port: 25100, application: "first".into(), user: me.clone() }]);
    let raw = server.raw(None, &format!("GIMME other {me}\n"), 1);
    assert_eq!(raw, "FAIL - No free ports available\n");
}

#[test]
fn a_duplicate_name_is_eexist_and_costs_the_connection_its_ports() {
    let server = Portman::start(25200, 4);
    let mut client = server.client();
    let first = client.allocate("svc").unwrap();
    let other = client.allocate("other").unwrap();
    assert_ne!(first, other);
    let err = client.allocate("svc").unwrap_err();
    assert_eq!(err.errno(), libc::EEXIST, "{err}");
    assert_eq!(client.refusal(), Some("Duplicate port allocation attempted"));
    assert!(!client.is_usable());
    // portman released both ports when it hung up, as the handle now reports.
    let start = Instant::now();
    while !listed(&server).is_empty() {
        assert!(start.elapsed() < TIMEOUT, "portman kept the ports: {:?}", listed(&server));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn other_refusals_map_as_the_legacy_ones() {
    let server = Portman::start(25300, 4);
    // portman splits requests on whitespace: a name with a space is an invalid request,
    // as NSCLDAQ's `FAIL {Invalid request ...}` is EIO, and both hang up.
    let mut client = server.client();
    let err = client.allocate("my app").unwrap_err();
    assert_eq!(err.errno(), libc::EIO, "{err}");
    assert_eq!(client.refusal(), Some("invalid request"));
    assert!(!client.is_usable());
    assert_eq!(server.raw(None, "HELLO\n", 1), "FAIL - invalid request\n");

    // A peer other than 127.0.0.1 (its only local IPv4 address) is refused with a blank
    // line after the reason; the client maps it as NSCLDAQ's non-local refusal, EPERM.
    let raw = server.raw(Some("127.0.0.2"), "GIMME app user\n", 2);
    assert_eq!(raw, "FAIL - FAIL can only allocate to local senders\n\n");
    let refusal = daqflow::portmgr::refusal::Refusal::parse(raw.lines().next().unwrap().as_bytes()).unwrap();
    assert_eq!(refusal.errno(), libc::EPERM);
    assert!(refusal.hung_up);
}

#[test]
fn allocate_list_and_find_agree_with_portman() {
    let server = Portman::start(25400, 8);
    let me = calling_user();
    let mut a = server.client();
    let mut b = server.client();
    let mut wanted = vec![
        (a.allocate("RingMaster").unwrap(), "RingMaster"),
        (a.allocate("VMUSBReadout:1").unwrap(), "VMUSBReadout:1"),
        (b.allocate("ORDERER:fox:evb1").unwrap(), "ORDERER:fox:evb1"),
        (b.allocate("a{b").unwrap(), "a{b"),
    ];
    wanted.sort();
    let expected: Vec<Allocation> =
        wanted.iter().map(|&(port, name)| Allocation { port, application: name.into(), user: me.clone() }).collect();
    // portman lists by port; its lines are not Tcl lists (`a{b` is written as it is).
    let mut viewer = server.client();
    assert_eq!(viewer.list().unwrap(), expected);
    let raw = server.raw(None, "LIST\n", 5);
    let lines: Vec<String> = wanted.iter().map(|(port, name)| format!("{port} {name} {me}\n")).collect();
    // `a{b` went out as the Tcl list element `a\{b`, which portman keeps as it is.
    assert_eq!(raw, format!("OK 4\n{}", lines.concat()).replace(" a{b ", " a\\{b "));
    for (port, name) in &wanted {
        if *name != "a{b" {
            assert_eq!(viewer.find_server(name, Some(&me)).unwrap(), *port, "{name}");
        }
    }
    assert_eq!(viewer.find_server("RingMaster", Some("someone-else")).unwrap_err().errno(), libc::ENOENT);
    // lsservices (port from the port file, as for the local daemon) shows the same table.
    let dir = portmgr_support::TempDir::new("frib-ls");
    std::fs::write(dir.0.join("listen.port"), format!("{}\n", server.port)).unwrap();
    let out = Command::new(concat!(env!("DAQFLOW_PROGRAMS"), "/lsservices"))
        .env("DAQPORTMGR_PORTFILE", dir.0.join("listen.port"))
        .output()
        .expect("run lsservices");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<&str>> = table.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    let expected_rows: Vec<Vec<String>> =
        expected.iter().map(|a| vec![a.port.to_string(), a.application.clone(), me.clone()]).collect();
    assert_eq!(rows, expected_rows, "{table}");
    // A LIST leaves the connection usable (portman answers one request at a time).
    assert!(viewer.is_usable());
    drop(a);
    let start = Instant::now();
    while viewer.list().unwrap().len() != 2 {
        assert!(start.elapsed() < TIMEOUT, "portman did not release a's ports");
        std::thread::sleep(Duration::from_millis(5));
    }
}
