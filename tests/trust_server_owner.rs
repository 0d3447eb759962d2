//! Issue 12 follow-up: clients believed whatever answered on the port manager's port on
//! this host, and on the port it listed for the ring master. With daqportmgr down, or
//! bound to another address than 127.0.0.1, any user may listen there and list a "root"
//! RingMaster of their own (as anyone may with `-no-user-check`); with the ring master
//! gone, any user may take its port. Clients now ask the kernel who owns the server's
//! end of the connection and refuse an untrusted one, naming it.
//!
//! The impostors are listeners made and served by threads of this test whose file
//! system uid is `nobody`'s: the kernel records a socket's owner from that uid (the
//! listener's maker, then the accepting process), exactly as for nobody's own program.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::unistd::{Uid, geteuid, setfsuid};

const NOBODY: u32 = 65534;
const TIMEOUT: Duration = Duration::from_secs(5);

fn role_exe() -> PathBuf {
    let me = std::env::current_exe().expect("test executable path");
    me.parent().and_then(|deps| deps.parent()).expect("target dir").join("examples").join("remote_role")
}

/// A loopback listener owned, in the kernel's eyes, by `uid`.
fn listener_of(uid: u32) -> TcpListener {
    std::thread::spawn(move || {
        // Per thread: only sockets this short-lived thread makes are `uid`'s.
        setfsuid(Uid::from_raw(uid));
        TcpListener::bind("127.0.0.1:0").expect("bind")
    })
    .join()
    .expect("the listener's thread")
}

/// Serves every connection on `listener` with `answer` (request line to reply), counting
/// the requests (a client that connects and then refuses to talk has been told nothing).
/// Accepts as `owner`: the kernel makes an accepted socket the accepting process's.
fn serve(
    listener: TcpListener,
    owner: u32,
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        setfsuid(Uid::from_raw(owner));
        for stream in listener.incoming().flatten() {
            let (answer, counted) = (answer.clone(), counted.clone());
            std::thread::spawn(move || {
                let Ok(reader) = stream.try_clone() else { return };
                let mut stream = stream;
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { return };
                    counted.fetch_add(1, Ordering::SeqCst);
                    if stream.write_all(answer(&line).as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    count
}

/// A port manager listing one RingMaster "run by root" at `ring_master`.
fn port_manager(owner: u32, ring_master: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = listener_of(owner);
    let port = listener.local_addr().expect("address").port();
    let count = serve(listener, owner, move |line| {
        if line.trim() == "LIST" { format!("OK 1\r\n{ring_master} RingMaster root\r\n") } else { "FAIL no\r\n".into() }
    });
    (port, count)
}

/// A ring master that says OK to everything.
fn ring_master(owner: u32) -> (u16, Arc<AtomicUsize>) {
    let listener = listener_of(owner);
    let port = listener.local_addr().expect("address").port();
    (port, serve(listener, owner, |_| "OK\r\n".to_string()))
}

/// A port file naming `port`, in a directory of its own.
struct PortFile(PathBuf);

impl PortFile {
    fn new(tag: &str, port: u16) -> PortFile {
        let dir = std::env::temp_dir().join(format!("daqflow-trust-owner-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("listen.port"), port.to_string()).expect("port file");
        PortFile(dir)
    }

    fn path(&self) -> PathBuf {
        self.0.join("listen.port")
    }
}

impl Drop for PortFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates and removes `ring` in a process of its own, which finds the ring master
/// through `port_file`; panics if the create fails (an impostor must not make it fail).
fn create_ring(port_file: &PortFile, ring: &str, env: &[(&str, &str)]) {
    let out = Command::new(role_exe())
        .args(["create", ring])
        .env("DAQPORTMGR_PORTFILE", port_file.path())
        .env_remove("DAQFLOW_RINGMASTER")
        .env_remove("DAQFLOW_TRUSTED_USERS")
        .envs(env.iter().copied())
        .output()
        .expect("run remote_role");
    let _ = daqflow::ring::remove(ring);
    assert!(out.status.success(), "create {ring}: {}", String::from_utf8_lossy(&out.stderr));
}

fn skip(test: &str) -> bool {
    if !geteuid().is_root() {
        eprintln!("SKIPPED {test}: needs root to make sockets as another user");
        return true;
    }
    false
}

fn names_nobody(error: &daqflow::Error) -> bool {
    error.errno() == libc::EPERM && error.message().contains(&format!("uid {NOBODY}"))
}

#[test]
fn an_impostor_port_manager_is_not_believed() {
    if skip("an_impostor_port_manager_is_not_believed") {
        return;
    }
    let (rm_port, heard) = ring_master(NOBODY);
    let (pm_port, _) = port_manager(NOBODY, rm_port);
    let error = daqflow::portmgr::Client::connect(Some("127.0.0.1"), Some(pm_port)).expect_err("believed");
    assert!(names_nobody(&error), "{error}");
    let error = daqflow::ringmaster::client::find_port("localhost", Some(pm_port), TIMEOUT).expect_err("believed");
    assert!(names_nobody(&error), "{error}");
    // lsservices says who it found there.
    let port_file = PortFile::new("pm", pm_port);
    let out = Command::new(concat!(env!("DAQFLOW_PROGRAMS"), "/lsservices"))
        .env("DAQPORTMGR_PORTFILE", port_file.path())
        .output();
    let out = out.expect("run lsservices");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("nobody (uid 65534)"), "{stderr} {out:?}");
    // A ring's create works as with no port manager, and the "root" ring master it lists hears nothing.
    create_ring(&port_file, &format!("trust-owner-pm-{}", std::process::id()), &[]);
    assert_eq!(heard.load(Ordering::SeqCst), 0, "the impostor's ring master was told");
}

#[test]
fn an_impostor_on_the_listed_ring_master_port_is_not_believed() {
    if skip("an_impostor_on_the_listed_ring_master_port_is_not_believed") {
        return;
    }
    // Root's port manager still lists root's ring master; the port is someone else's now.
    let (rm_port, heard) = ring_master(NOBODY);
    let (pm_port, _) = port_manager(0, rm_port);
    let error = daqflow::ringmaster::Client::locate("localhost", Some(pm_port), TIMEOUT).expect_err("believed");
    assert!(names_nobody(&error), "{error}");
    let error =
        daqflow::ringmaster::Client::connect_addr(([127, 0, 0, 1], rm_port).into(), TIMEOUT).expect_err("believed");
    assert!(names_nobody(&error), "{error}");
    let port_file = PortFile::new("rm", pm_port);
    let ring = format!("trust-owner-rm-{}", std::process::id());
    create_ring(&port_file, &ring, &[]);
    assert_eq!(heard.load(Ordering::SeqCst), 0, "the impostor was told");
    // An account the operator names is trusted.
    create_ring(&port_file, &ring, &[("DAQFLOW_TRUSTED_USERS", "nobody")]);
    assert!(heard.load(Ordering::SeqCst) > 0, "the configured account's ring master was not used");
}
