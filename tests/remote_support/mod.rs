//! Hosts for remote-ring tests: network namespaces joined by veth pairs, each with its
//! own /dev/shm (a directory bind-mounted over it in every process we start there), its
//! own /etc/hosts (`ip netns exec` binds /etc/netns/NS/hosts), its own daqportmgr on the
//! standard port and, when asked, its own ringmaster.
//!
//! Topology: host 0 ("a") is joined to every other host by its own veth pair and
//! subnet; the others reach only host 0. Everything is torn down on drop: the processes
//! in our namespaces, the namespaces, /etc/netns/NS and the shm directories.
#![allow(dead_code)] // each test file uses its own subset

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn release_dir() -> PathBuf {
    let me = std::env::current_exe().expect("test executable path");
    me.parent().and_then(|deps| deps.parent()).expect("target dir").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    release_dir().join(name)
}

pub fn role_exe() -> PathBuf {
    release_dir().join("examples").join("remote_role")
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

pub struct Host {
    pub ns: String,
    /// Its name, as every host's /etc/hosts knows it (fully qualified).
    pub name: String,
    pub short: String,
    pub shm: PathBuf,
    pub state: PathBuf,
    /// The interface to host 0 (or, on host 0, none).
    pub link: Option<String>,
}

pub struct Net {
    pub hosts: Vec<Host>,
    daemons: Vec<(usize, &'static str, Child)>,
}

/// Runs a command in `host`: its /dev/shm and port file, its network.
const WRAP: &str = r#"mount --bind "$DF_SHM" /dev/shm && exec "$@""#;

impl Net {
    /// `n` hosts (2 or 3), or `None` with a message when namespaces cannot be made here.
    pub fn new(test: &str, n: usize) -> Option<Net> {
        let tag = format!("{}{}", &test[..test.len().min(3)], std::process::id() % 100_000);
        let names = ["a", "b", "c"];
        let mut net = Net { hosts: Vec::new(), daemons: Vec::new() };
        for (i, letter) in names.iter().take(n).enumerate() {
            let ns = format!("df-{tag}-{letter}");
            if let Err(e) = ip(&["netns", "add", &ns]) {
                eprintln!(
                    "SKIPPED {test}: cannot create network namespaces here ({e}); these tests need root and `ip netns`"
                );
                return None;
            }
            let shm = PathBuf::from(format!("/dev/shm/df-{tag}-{letter}.shmdir"));
            let state = std::env::temp_dir().join(format!("df-{tag}-{letter}"));
            let _ = fs::remove_dir_all(&shm);
            let _ = fs::remove_dir_all(&state);
            fs::create_dir_all(&shm).expect("shm dir");
            fs::create_dir_all(&state).expect("state dir");
            let short = format!("h{letter}{tag}");
            net.hosts.push(Host {
                ns,
                name: format!("{short}.dfnet.test"),
                short,
                shm,
                state,
                link: (i > 0).then(|| format!("v{tag}{letter}")),
            });
        }
        if let Err(e) = net.wire() {
            eprintln!("SKIPPED {test}: cannot wire network namespaces ({e})");
            return None;
        }
        Some(net)
    }

    /// The address of host `i` as the host at the other end of its link sees it.
    pub fn addr(&self, i: usize, seen_from: usize) -> String {
        match (i, seen_from) {
            (0, j) => format!("10.91.{j}.1"),
            (i, _) => format!("10.91.{i}.2"),
        }
    }

    fn wire(&mut self) -> Result<(), String> {
        for h in &self.hosts {
            ip(&["-n", &h.ns, "link", "set", "lo", "up"])?;
        }
        for i in 1..self.hosts.len() {
            let (a, h) = (&self.hosts[0], &self.hosts[i]);
            let link = h.link.clone().unwrap_or_default();
            let peer = format!("{link}0");
            ip(&["link", "add", &peer, "netns", &a.ns, "type", "veth", "peer", "name", &link, "netns", &h.ns])?;
            ip(&["-n", &a.ns, "addr", "add", &format!("10.91.{i}.1/24"), "dev", &peer])?;
            ip(&["-n", &h.ns, "addr", "add", &format!("10.91.{i}.2/24"), "dev", &link])?;
            ip(&["-n", &a.ns, "link", "set", &peer, "up"])?;
            ip(&["-n", &h.ns, "link", "set", &link, "up"])?;
        }
        for (j, h) in self.hosts.iter().enumerate() {
            let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
            for (i, other) in self.hosts.iter().enumerate() {
                let reachable = i == j || i == 0 || j == 0;
                if reachable {
                    let addr = if i == j && j == 0 { "10.91.1.1".to_string() } else { self.addr(i, j) };
                    hosts.push_str(&format!("{addr} {} {}\n", other.name, other.short));
                }
            }
            let dir = PathBuf::from(format!("/etc/netns/{}", h.ns));
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            fs::write(dir.join("hosts"), hosts).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// A command to run inside host `i`.
    pub fn command(&self, i: usize, program: &Path, args: &[&str]) -> Command {
        let h = &self.hosts[i];
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &h.ns, "sh", "-c", WRAP, "sh"]).arg(program).args(args);
        cmd.env("DF_SHM", &h.shm)
            .env("DAQPORTMGR_PORTFILE", h.state.join("listen.port"))
            .env("DAQFLOW_FEEDER_LOG", h.state.join("feeder.log"))
            .env_remove("DAQFLOW_FEEDER")
            .env_remove("DAQFLOW_RINGMASTER");
        cmd
    }

    /// Runs a role to completion within `limit`.
    pub fn run(&self, i: usize, args: &[&str], limit: Duration) -> Output {
        let child = self
            .command(i, &role_exe(), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn role");
        wait_output(child, limit, &format!("{args:?} on host {i}"))
    }

    pub fn spawn(&self, i: usize, args: &[&str]) -> Child {
        self.command(i, &role_exe(), args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn role")
    }

    /// Starts host `i`'s port manager (and ring master, when `ringmaster`), waiting until
    /// the ring master listens.
    pub fn start_daemons(&mut self, i: usize, ringmaster: bool) {
        let h = &self.hosts[i];
        let portmgr = self
            .command(
                i,
                &bin("daqportmgr"),
                &[
                    "-listen",
                    "30000",
                    "-portfile",
                    &h.state.join("listen.port").to_string_lossy(),
                    "-pidfile",
                    &h.state.join("portmgr.pid").to_string_lossy(),
                    "-log",
                    &h.state.join("portmgr.log").to_string_lossy(),
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daqportmgr");
        self.daemons.push((i, "daqportmgr", portmgr));
        self.wait_until(i, "port manager", |net| net.answering(i));
        if ringmaster {
            self.start_ringmaster(i);
        }
    }

    /// Starts host `i`'s ring master and waits until it listens. The port manager lists
    /// it as it hands it the port, a moment before it listens, so a listing alone may
    /// send a client to a port that refuses it; the log line comes after the listen.
    pub fn start_ringmaster(&mut self, i: usize) {
        self.start_ringmaster_with(i, &[]);
    }

    /// As `start_ringmaster`, with more arguments for the daemon.
    pub fn start_ringmaster_with(&mut self, i: usize, extra: &[&str]) {
        let log = self.hosts[i].state.join("ringmaster.log");
        let listening = |net: &Net| net.log(i, "ringmaster.log").matches("registered as RingMaster on port").count();
        let before = listening(self);
        let rm = self
            .command(
                i,
                &bin("ringmaster"),
                &[&["--portmgr-port", "30000", "--log", &log.to_string_lossy()], extra].concat(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringmaster");
        self.daemons.push((i, "ringmaster", rm));
        self.wait_until(i, "ring master", |net| listening(net) > before && net.services(i).contains("RingMaster"));
    }

    /// Kills host `i`'s ring master (SIGKILL: it dies as a crash would).
    pub fn kill_ringmaster(&mut self, i: usize) {
        if let Some(pos) = self.daemons.iter().position(|(h, name, _)| *h == i && *name == "ringmaster") {
            let (_, _, mut child) = self.daemons.remove(pos);
            // `ip netns exec` execs through sh into the daemon: the child's pid is the daemon.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The port manager answers (lsservices reads the port file and LISTs).
    fn answering(&self, i: usize) -> bool {
        self.command(i, &bin("lsservices"), &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn services(&self, i: usize) -> String {
        let out = self.command(i, &bin("lsservices"), &[]).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    fn wait_until(&self, i: usize, what: &str, ready: impl Fn(&Net) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "{what} on host {i} did not come up; logs in {}",
                self.hosts[i].state.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn link(&self, i: usize, up: bool) {
        let h = &self.hosts[i];
        ip(&["-n", &h.ns, "link", "set", h.link.as_deref().unwrap_or("lo"), if up { "up" } else { "down" }])
            .expect("link set");
    }

    /// The pid of the producer of `ring` on host `i` (-1: none).
    pub fn producer_pid(&self, i: usize, ring: &str) -> i32 {
        let out = self.run(i, &["producer-pid", ring], Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(-1)
    }

    /// Every file in host `i`'s /dev/shm.
    pub fn shm_files(&self, i: usize) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.hosts[i].shm)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn log(&self, i: usize, file: &str) -> String {
        fs::read_to_string(self.hosts[i].state.join(file)).unwrap_or_default()
    }
}

/// Waits until a `consume` role says it is attached (its first line), so that it reads
/// every item put from then on; fails the test if it ends or stays silent instead. The
/// rest of its output stays in the pipe for `wait_output`.
pub fn wait_attached(child: &mut Child, what: &str, limit: Duration) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::io::Read;
    use std::os::fd::AsFd;
    let deadline = Instant::now() + limit;
    let out = child.stdout.as_mut().expect("the role's stdout is piped");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: not attached within {limit:?}; said {:?}", String::from_utf8_lossy(&line));
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, ms).unwrap_or(0) == 0 {
            continue;
        }
        match out.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            Ok(_) => panic!("{what}: ended before attaching; said {:?}", String::from_utf8_lossy(&line)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: reading its output: {e}"),
        }
    }
    assert_eq!(String::from_utf8_lossy(&line), "attached\n", "{what}");
}

/// Waits for a child with a deadline; a hang kills it and fails the test.
pub fn wait_output(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect output"),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!(
                    "{what}: did not finish within {limit:?} (hang)\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, _, child) in &mut self.daemons {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for (_, _, child) in &mut self.daemons {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for h in &self.hosts {
            // Whatever still runs in our namespaces was started by this test (feeders).
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &h.ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            let _ = ip(&["netns", "del", &h.ns]);
            let _ = fs::remove_dir_all(format!("/etc/netns/{}", h.ns));
            let _ = fs::remove_dir_all(&h.shm);
            if std::env::var_os("DF_KEEP_LOGS").is_none() {
                let _ = fs::remove_dir_all(&h.state);
            }
        }
    }
}
