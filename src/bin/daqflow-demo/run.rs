//! The whole demo: starts a port manager, makes a uniquely named ring, starts the
//! consumers and the producer (which find each other through the port manager), shows
//! the allocations and the ring's usage while data flows, collects every process's
//! report, and removes the ring and stops the port manager whatever happened.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daqflow::portmgr::Client;
use daqflow::ring::{self, CreateOptions};

use crate::portmgr::Daemon;

pub struct Options {
    consumers: usize,
    megabytes: u64,
}

impl Options {
    pub fn parse(args: &[&str]) -> Option<Options> {
        let mut options = Options { consumers: 3, megabytes: 256 };
        let mut it = args.iter();
        while let Some(&flag) = it.next() {
            let value = it.next()?;
            match flag {
                "--consumers" => options.consumers = value.parse().ok().filter(|&n| (1..=100).contains(&n))?,
                "--megabytes" => options.megabytes = value.parse().ok().filter(|&n| n > 0)?,
                _ => return None,
            }
        }
        Some(options)
    }
}

/// Removes the ring when the demo ends, however it ends.
struct RingGuard(String);

impl Drop for RingGuard {
    fn drop(&mut self) {
        let _ = ring::remove(&self.0);
    }
}

fn spawn(args: &[&str], daemon: &Daemon) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    Command::new(exe)
        .args(args)
        .env("DAQPORTMGR_PORTFILE", daemon.port_file())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {args:?}: {e}"))
}

fn show_allocations(daemon: &Daemon) {
    match Client::connect(None, Some(daemon.port)).and_then(|mut pm| pm.list()) {
        Ok(list) => {
            for a in list {
                println!("port manager: port {} allocated to {} run by {}", a.port, a.application, a.user);
            }
        }
        Err(e) => println!("port manager: {e}"),
    }
}

fn finish(child: Child, what: &str) -> Result<String, String> {
    let out = child.wait_with_output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("{what} failed ({})", out.status))
    }
}

fn show_usage(name: &str) {
    match ring::usage(name) {
        Ok(u) => {
            println!(
                "usage of {name}: {} data bytes, {} free for the producer (pid {}), backlogs max {} min {}",
                u.data_bytes, u.put_space, u.producer_pid, u.max_get, u.min_get
            );
            for c in &u.consumers {
                println!("    consumer slot {:>2} pid {:>7}: backlog {}", c.slot, c.pid, c.backlog);
            }
        }
        Err(e) => println!("usage of {name}: {e}"),
    }
}

pub fn run(options: &Options) -> Result<String, String> {
    let daemon = Daemon::start()?;
    println!("started daqportmgr on port {} (state in {})", daemon.port, daemon.dir.display());
    let name = format!("daqflow-demo-{}", std::process::id());
    ring::create(&name, CreateOptions::default()).map_err(|e| e.to_string())?;
    let _guard = RingGuard(name.clone());
    println!("created ring {name} (defaults: 8 MiB, 100 consumer slots, mode 0666) in /dev/shm");

    let service = format!("daqflow-demo:{name}");
    let mut children = Vec::new();
    for _ in 0..options.consumers {
        children.push(spawn(&["consume", &service], &daemon)?);
    }
    let start = Instant::now();
    let n = options.consumers.to_string();
    let producer = spawn(&["produce", &name, &options.megabytes.to_string(), &service, &n], &daemon)?;
    println!(
        "started {} consumer processes and a producer ({} MiB of ring items); the producer advertises {service}",
        options.consumers, options.megabytes
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while ring::usage(&name).map_err(|e| e.to_string())?.consumers.len() < options.consumers {
        if Instant::now() > deadline {
            for c in &mut children {
                let _ = c.kill();
            }
            return Err("consumers did not find the ring within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    show_allocations(&daemon);
    std::thread::sleep(Duration::from_millis(100));
    show_usage(&name);

    let mut failures = Vec::new();
    let mut lines = vec![finish(producer, "producer").unwrap_or_else(|e| {
        failures.push(e.clone());
        e
    })];
    for (i, c) in children.into_iter().enumerate() {
        match finish(c, &format!("consumer {i}")) {
            Ok(line) => lines.push(line),
            Err(e) => failures.push(e),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    for line in &lines {
        println!("{line}");
    }
    show_usage(&name);
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    let total = (options.megabytes << 20) as f64 * options.consumers as f64;
    Ok(format!(
        "demo OK: {} MiB delivered to each of {} consumers ({:.0} MB delivered in all, {:.2} s wall, {:.0} MB/s aggregate); ring {name} removed, port manager stopped",
        options.megabytes,
        options.consumers,
        total / 1e6,
        secs,
        total / 1e6 / secs
    ))
}
