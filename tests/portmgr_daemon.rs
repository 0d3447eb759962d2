//! The daemon's life: switches, files, log, a refused second instance, SIGTERM, sd_notify.

mod portmgr_support;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use daqflow::portmgr::client::calling_user;
use portmgr_support::{DAEMON, Daemon, TIMEOUT, wait_with_timeout};

#[test]
fn state_files_and_log_lines() {
    let daemon = Daemon::start("29000-29009", &[]);
    let me = calling_user();
    assert_eq!(daemon.read("listen.port"), format!("{}\n", daemon.port));
    assert_eq!(daemon.read("daqportmgr.pid"), format!("{}\n", daemon.pid()));
    assert_eq!(daemon.read("ports.txt"), "");
    let mut c = daemon.connect();
    let port = c.gimme("{my app}", &me);
    // Written before the reply, replaced whole (no temporary file left behind).
    assert_eq!(daemon.read("ports.txt"), format!("{port}\tmy app\t{me}\n"));
    assert!(!daemon.path("ports.txt.tmp").exists());
    c.gimme("other", &me);
    drop(c);
    daemon.eventually("release", || daemon.read("ports.txt").is_empty());
    let mut bad = daemon.connect();
    bad.send(b"NONSENSE\n");
    bad.line();
    daemon.eventually("log lines", || daemon.read("log").contains("issued an illegal request: NONSENSE"));
    let log = daemon.read("log");
    for text in [
        "Connection accepted from 127.0.0.1".to_string(),
        format!("Port 29009 was allocated to my app run by {me}"),
        format!("Port 29008 was allocated to other run by {me}"),
        format!("Port 29009 was released by my app run by {me}"),
        "127.0.0.1 issued an illegal request: NONSENSE".to_string(),
    ] {
        assert!(log.contains(&text), "log lacks {text:?}:\n{log}");
    }
    // Read as NSCLDAQ's log.test reads its server's lines (tcllib's `log`): the level as
    // the first word, the date and time of day, the host as the sixth word, the message.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let levels: Vec<(&str, &str)> = log
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(words.len() > 6 && words[5] == host, "{line:?}");
            assert!(words[2].ends_with(',') && words[3].len() == 4, "date in {line:?}");
            assert_eq!(words[4].len(), 8, "time of day in {line:?}");
            assert_eq!(&line[9..10], " ", "the level padded as tcllib's log pads it: {line:?}");
            (words[0], line)
        })
        .collect();
    let level_of = |text: &str| levels.iter().find(|(_, line)| line.contains(text)).map(|(level, _)| *level);
    assert_eq!(level_of("Connection accepted from"), Some("info"));
    assert_eq!(level_of("was allocated to my app"), Some("info"));
    assert_eq!(level_of("was released by my app"), Some("info"));
    assert_eq!(level_of("issued an illegal request"), Some("alert"));
    assert_eq!(level_of("started"), Some("notice"));
    assert!(log.starts_with("notice    "), "{log}");
}

/// Contents and modification times of every file in the daemon's state directory.
fn snapshot(daemon: &Daemon) -> Vec<(String, Vec<u8>, i64, i64)> {
    let mut files: Vec<_> = std::fs::read_dir(&daemon.dir.0)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
                meta.mtime(),
                meta.mtime_nsec(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_second_instance_refuses_without_touching_any_file() {
    let daemon = Daemon::start("29000-29009", &[]);
    let mut c = daemon.connect();
    c.gimme("held", &calling_user());
    std::thread::sleep(Duration::from_millis(50)); // let the log flush settle
    let before = snapshot(&daemon);
    let names: Vec<&str> = before.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, [".ports.txt.swap", "daqportmgr.pid", "listen.port", "log", "ports.txt"]);
    let port = daemon.port.to_string();
    // The same port, then another port but the same files.
    for listen in [port.as_str(), "0"] {
        let mut second = Daemon::spawn(&daemon.dir.0, "29000-29009", &["-listen", listen]);
        let status = wait_with_timeout(&mut second);
        let mut err = String::new();
        std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!status.success(), "second instance on -listen {listen} started");
        assert!(err.contains("in use"), "-listen {listen}: {err}");
        assert_eq!(snapshot(&daemon), before, "-listen {listen} changed the running daemon's files");
    }
    // The first one is unharmed.
    assert_eq!(c.list().len(), 1);
}

#[test]
fn sigterm_exits_cleanly() {
    let mut daemon = Daemon::start("29000-29009", &[]);
    let mut c = daemon.connect();
    c.gimme("held", &calling_user());
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    c.expect_closed();
    assert!(!daemon.path("daqportmgr.pid").exists());
    assert_eq!(daemon.read("ports.txt"), "");
    let log = daemon.read("log");
    assert!(log.contains("Port 29009 was released by held"), "{log}");
    assert!(log.contains("daqportmgr stopping on SIGTERM"), "{log}");
    assert!(log.trim_end().ends_with("daqportmgr stopped"), "{log}");
}

#[test]
fn readiness_and_stopping_are_notified() {
    let dir = portmgr_support::TempDir::new("notify");
    let socket_path = dir.0.join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut child = Command::new(DAEMON)
        .args(["-listen", "0", "-ports", "29000-29009", "-log", "-"])
        .arg("-portfile")
        .arg(dir.0.join("listen.port"))
        .arg("-pidfile")
        .arg(dir.0.join("pid"))
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 from the daemon");
    assert_eq!(String::from_utf8_lossy(&buf[..n]), format!("READY=1\nMAINPID={}", child.id()));
    // Ready means serving: the port file is there and the port answers.
    let port: u16 = std::fs::read_to_string(dir.0.join("listen.port")).unwrap().trim().parse().unwrap();
    let mut client = daqflow::portmgr::Client::connect(Some("localhost"), Some(port)).unwrap();
    assert!(client.list().unwrap().is_empty());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = socket.recv(&mut buf).expect("STOPPING=1 from the daemon");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(wait_with_timeout(&mut child).success());
}

#[test]
fn usage_errors_exit_255() {
    for args in [
        &["-bogus"][..],
        &["-listen"],
        &["-listen", "70000"],
        &["-ports", "30001-65537"],
        &["-ports", "0-10"],
        &["-ports", "abc"],
        &["-bind", "not-an-address"],
        &["-listen", "30500"], // inside the default range
    ] {
        let out = Command::new(DAEMON).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Usage: daqportmgr"), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    let help = Command::new(DAEMON).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for switch in ["-listen", "-ports", "-log", "-portfile", "-pidfile", "-bind", "-no-user-check"] {
        assert!(text.contains(switch), "--help lacks {switch}");
    }
}

#[test]
fn bind_address_limits_where_it_listens() {
    let daemon = Daemon::start("29000-29009", &["-bind", "127.0.0.1"]);
    assert!(daemon.connect().list().is_empty());
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = std::net::TcpStream::connect(("::1", daemon.port));
        assert!(v6.is_err(), "listening on ::1 despite -bind 127.0.0.1");
    }
}

#[test]
fn sighup_reopens_the_log_for_logrotate() {
    let mut daemon = Daemon::start("29000-29009", &[]);
    let mut c = daemon.connect();
    c.gimme("before", &calling_user());
    daemon.eventually("the first allocation logged", || daemon.read("log").contains("allocated to before"));
    // What logrotate does: rename the file, then SIGHUP.
    std::fs::rename(daemon.path("log"), daemon.path("log.1")).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.pid(), libc::SIGHUP) };
    daemon.eventually("a new log file", || daemon.read("log").contains("log file reopened on SIGHUP"));
    assert!(daemon.child.try_wait().unwrap().is_none(), "SIGHUP stopped the daemon");
    // The connection and its port survived; new lines go to the new file only.
    c.gimme("after", &calling_user());
    daemon.eventually("the second allocation logged", || daemon.read("log").contains("allocated to after"));
    assert!(daemon.read("log.1").contains("reopening log file"));
    assert!(!daemon.read("log.1").contains("after"));
    assert_eq!(c.list().len(), 2);
    assert!(daemon.stop().success());
}

#[test]
fn accept_failures_are_logged_at_most_once_a_second() {
    use std::os::unix::process::CommandExt;
    let dir = portmgr_support::TempDir::new("emfile");
    let mut command = Command::new(DAEMON);
    command.args(["-listen", "0", "-ports", "29000-29009", "-bind", "127.0.0.1", "-log"]).arg(dir.0.join("log"));
    command.arg("-portfile").arg(dir.0.join("listen.port")).arg("-pidfile").arg(dir.0.join("pid"));
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; the child runs nothing else before exec.
    unsafe {
        command.pre_exec(|| {
            // Room for the daemon's own descriptors and a few clients, no more.
            let limit = libc::rlimit { rlim_cur: 24, rlim_max: 24 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let child = command.spawn().unwrap();
    let mut daemon = Daemon { child, port: 0, dir };
    daemon.eventually("listen.port", || daemon.read("listen.port").trim().parse::<u16>().is_ok());
    daemon.port = daemon.read("listen.port").trim().parse().unwrap();
    // More connections than descriptors: the daemon retries accepting every 100 ms.
    let held: Vec<_> = (0..40).map(|_| std::net::TcpStream::connect(daemon.addr()).unwrap()).collect();
    daemon.eventually("an accept failure logged", || daemon.read("log").contains("cannot accept a connection"));
    std::thread::sleep(Duration::from_millis(1500));
    let log = daemon.read("log");
    let lines = log.matches("cannot accept a connection").count();
    assert!((1..=3).contains(&lines), "{lines} accept failure lines in 1.5 s:\n{log}");
    drop(held);
    assert!(daemon.stop().success());
}

/// Two port managers on one host (two demos at once) keep separate books over the same
/// ports: a port something already listens on is skipped, not handed out to a server
/// that would then fail to bind it; once it is let go it is handed out again.
#[test]
fn ports_another_program_listens_on_are_skipped() {
    // A two-port pool whose first port out (the higher) has a listener on it.
    let (held, low) = loop {
        let held = std::net::TcpListener::bind("0.0.0.0:0").expect("listen");
        let high = held.local_addr().expect("address").port();
        if std::net::TcpListener::bind(("0.0.0.0", high - 1)).is_ok() {
            break (held, high - 1);
        }
    };
    let daemon = Daemon::start(&format!("{low}-{}", low + 1), &[]);
    let mut c = daemon.connect();
    assert_eq!(
        c.gimme("first", &calling_user()),
        low,
        "port {}, which another program listens on, was handed out",
        low + 1
    );
    // With nothing else free the busy one is handed out all the same (it may be the
    // asker's own, registering again).
    assert_eq!(c.gimme("second", &calling_user()), low + 1);
    drop(held);
}
