//! The whole demo: starts a port manager, makes a uniquely named ring, starts the
//! consumers and the producer (which find each other through the port manager), shows
//! the allocations, `ringbuffer status` every second while data flows and a progress
//! line, collects every process's report, and removes the ring and stops the port
//! manager whatever happened.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use daqflow::portmgr::Client;
use daqflow::progress::{Progress, Stream};
use daqflow::ring::{self, CreateOptions};

use crate::portmgr::Daemon;
use crate::roles::{Limit, SENT};

pub struct Options {
    consumers: usize,
    limit: Limit,
}

impl Options {
    pub fn parse(args: &[&str]) -> Option<Options> {
        let mut options = Options { consumers: 3, limit: Limit::Time(Duration::from_secs(3)) };
        let (mut seconds, mut megabytes) = (false, false);
        let mut it = args.iter();
        while let Some(&flag) = it.next() {
            let value = it.next()?;
            match flag {
                "--consumers" => options.consumers = value.parse().ok().filter(|&n| (1..=100).contains(&n))?,
                "--megabytes" => {
                    options.limit = Limit::parse(&format!("{value}MiB"))?;
                    megabytes = true;
                }
                "--seconds" => {
                    options.limit = Limit::parse(&format!("{value}s"))?;
                    seconds = true;
                }
                _ => return None,
            }
        }
        if seconds && megabytes {
            return None;
        }
        Some(options)
    }
}

/// How often the demo shows `ringbuffer status` while data flows.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Removes the ring when the demo ends, however it ends.
struct RingGuard(String);

impl Drop for RingGuard {
    fn drop(&mut self) {
        let _ = ring::remove(&self.0);
    }
}

fn my_exe() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))
}

fn spawn(args: &[&str], daemon: &Daemon) -> Result<Child, String> {
    Command::new(my_exe()?)
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

/// The real `ringbuffer status` command (built next to the demo), as an operator runs it.
fn ringbuffer_status(name: &str) -> String {
    let exe = match my_exe() {
        Ok(exe) => exe.with_file_name("ringbuffer"),
        Err(e) => return e,
    };
    match Command::new(&exe).args(["status", name]).output() {
        Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        Err(e) => format!("cannot run {} (make all builds it): {e}\n", exe.display()),
    }
}

/// Reads the producer's output: `sent <bytes>` lines into `sent`, the rest returned.
fn read_producer(out: ChildStdout, sent: Arc<AtomicU64>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            match line.strip_prefix(SENT).and_then(|n| n.parse().ok()) {
                Some(n) => sent.store(n, Ordering::Relaxed),
                None => rest.push(line),
            }
        }
        rest
    })
}

/// Shows the ring while the producer runs: `ringbuffer status` every second and a
/// progress line.
fn watch(name: &str, producer: &mut Child, limit: Limit, sent: &AtomicU64) -> Result<(), String> {
    let mut progress = Progress::new("daqflow-demo", Stream::Stdout, STATUS_EVERY);
    let start = Instant::now();
    let mut next_status = start + STATUS_EVERY / 4;
    while producer.try_wait().map_err(|e| format!("producer: {e}"))?.is_none() {
        let now = Instant::now();
        let secs = now.duration_since(start).as_secs_f64();
        let bytes = sent.load(Ordering::Relaxed);
        if now >= next_status {
            next_status += STATUS_EVERY;
            progress.println(&format!("--- ringbuffer status {name}   ({secs:.1} s)\n{}", ringbuffer_status(name)));
        }
        let moved = format!("{:.0} MB put, {:.0} MB/s", bytes as f64 / 1e6, bytes as f64 / 1e6 / secs.max(1e-3));
        match limit {
            Limit::Time(t) => progress.update(
                now.duration_since(start).as_millis() as u64,
                Some(t.as_millis() as u64),
                &format!("{secs:.1} s of {} s, {moved}", t.as_secs()),
            ),
            Limit::Bytes(b) => progress.update(bytes, Some(b), &moved),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    progress.finish(&format!("data flow done after {:.1} s", start.elapsed().as_secs_f64()));
    Ok(())
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
    let mut producer = spawn(&["produce", &name, &options.limit.arg(), &service, &n], &daemon)?;
    let sent = Arc::new(AtomicU64::new(0));
    let reader = producer.stdout.take().map(|out| read_producer(out, sent.clone()));
    let what = match options.limit {
        Limit::Time(t) => format!("ring items for {} s", t.as_secs()),
        Limit::Bytes(b) => format!("{} MiB of ring items", b >> 20),
    };
    println!(
        "started {} consumer processes and a producer ({what}); the producer advertises {service}",
        options.consumers
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while ring::usage(&name).map_err(|e| e.to_string())?.consumers.len() < options.consumers {
        if Instant::now() > deadline {
            for c in children.iter_mut().chain(std::iter::once(&mut producer)) {
                let _ = c.kill();
                let _ = c.wait();
            }
            return Err("consumers did not find the ring within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    show_allocations(&daemon);
    watch(&name, &mut producer, options.limit, &sent)?;

    let mut failures = Vec::new();
    let produced = producer.wait().map_err(|e| format!("producer: {e}"))?;
    let report = reader.and_then(|r| r.join().ok()).unwrap_or_default().join("\n");
    let mut lines = Vec::new();
    if produced.success() {
        lines.push(report);
    } else {
        failures.push(format!("producer failed ({produced})"));
    }
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
    print!("--- ringbuffer status {name}   (at the end)\n{}", ringbuffer_status(&name));
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    let each = sent.load(Ordering::Relaxed) as f64;
    let total = each * options.consumers as f64;
    Ok(format!(
        "demo OK: {:.0} MB delivered to each of {} consumers ({:.0} MB delivered in all, {:.2} s wall, {:.0} MB/s aggregate); ring {name} removed, port manager stopped",
        each / 1e6,
        options.consumers,
        total / 1e6,
        secs,
        total / 1e6 / secs
    ))
}
