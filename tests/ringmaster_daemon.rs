//! The daemon's switches and life cycle: listen addresses, IPv6 loopback as local, usage
//! errors, log reopening on SIGHUP.

mod portmgr_support;
mod ringmaster_support;

use std::net::TcpStream;
use std::process::Command;

use portmgr_support::Raw;
use ringmaster_support::{Master, RINGMASTER};

#[test]
fn ipv6_loopback_is_local() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this host; skipping");
        return;
    }
    let master = Master::start(&[]);
    let mut c = Raw::new(TcpStream::connect(("::1", master.port)).unwrap());
    c.ask("CONNECT {fox} producer 5 {c}\n", "OK\r\n");
    c.ask("REGISTER no-such-ring-v6\n", "ERROR no-such-ring-v6 shared memory is either corrupt or does not exist\r\n");
}

#[test]
fn listen_limits_the_addresses() {
    let master = Master::start(&["--listen", "127.0.0.1"]);
    master.connect().ask("CONNECT {fox} producer 5 {c}\n", "OK\r\n");
    assert!(TcpStream::connect(("::1", master.port)).is_err(), "listening on ::1 too");
    let host_ip = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip());
    if let Ok(ip) = host_ip {
        if !ip.is_loopback() && !ip.is_unspecified() {
            assert!(TcpStream::connect((ip, master.port)).is_err(), "listening on {ip} too");
        }
    }
}

#[test]
fn usage_errors_exit_255() {
    for args in [
        &["--listen", "nowhere"][..],
        &["--allow-remote", "10.0.0.0/40"],
        &["--portmgr-port", "0"],
        &["--bogus"],
        &["--log"],
    ] {
        let out = Command::new(RINGMASTER).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: ringmaster"), "{args:?}");
    }
    let help = Command::new(RINGMASTER).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--allow-remote"));
}

#[test]
fn sighup_reopens_the_log() {
    let master = Master::start(&[]);
    let rotated = master.dir.0.join("ringmaster.log.1");
    std::fs::rename(&master.log, &rotated).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(master.pid(), libc::SIGHUP) };
    master.wait_log("log file reopened on SIGHUP");
    master.connect().ask("CONNECT {after-rotation} producer 5 {c}\n", "OK\r\n");
    master.wait_log("CONNECT: ring after-rotation");
    assert!(!std::fs::read_to_string(&rotated).unwrap().contains("after-rotation"));
}

#[test]
fn tells_systemd_when_ready_and_when_stopping() {
    use std::os::unix::net::UnixDatagram;
    let free = ringmaster_support::free_port();
    let portmgr = portmgr_support::Daemon::start(&format!("{free}-{free}"), &[]);
    let dir = portmgr_support::TempDir::new("rm-notify");
    let socket_path = dir.0.join("notify");
    let listener = UnixDatagram::bind(&socket_path).unwrap();
    listener.set_read_timeout(Some(portmgr_support::TIMEOUT)).unwrap();
    let mut child = ringmaster_support::KillOnDrop(
        Command::new(RINGMASTER)
            .args(["--portmgr-port", &portmgr.port.to_string(), "--log"])
            .arg(dir.0.join("log"))
            .env("NOTIFY_SOCKET", &socket_path)
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 256];
    let n = listener.recv(&mut buf).unwrap();
    assert_eq!(String::from_utf8_lossy(&buf[..n]), format!("READY=1\nMAINPID={}", child.id()));
    // Ready means registered and listening: clients find it and are served at once.
    let port = ringmaster_support::ringmaster_port(portmgr.port).expect("registered once ready");
    Raw::new(TcpStream::connect(("127.0.0.1", port)).unwrap()).ask("LIST\n", "OK\r\n");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = listener.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(portmgr_support::wait_with_timeout(&mut child).success());
}
