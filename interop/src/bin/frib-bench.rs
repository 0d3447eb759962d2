//! The FRIB reference of `make bench` (benches/ring.rs runs it as a child): FRIB's
//! `nscldaq_ringbuffer` 0.8.9 moving the benchmark's own stream, so its figure sits beside
//! daqflow's from the same run. It lives here, in the never-published interop crate, so
//! that FRIB's crate (LGPL) never enters the library's dependencies.
//!
//! ```text
//! frib-bench producer|consumer CPU RING POLICY RECORD TOTAL
//! ```
//! CPU is a CPU to pin to, or `-`; POLICY is ignored (it is always FRIB's). It speaks
//! benches/ring.rs's line protocol: a consumer says `READY` once attached and
//! `DONE END_NS BAD_WORDS COUNTS...` when it has every byte; a producer says
//! `DONE START_NS END_NS COUNTS...`; a failure is `ERR why` and status 1. COUNTS are the
//! benchmark's twelve counters: FRIB's crate is not instrumented, so the ring's are 0; the
//! context switches (its sleeps) and the CPU time are its own.
//!
//! Both sides use FRIB's crate as its documentation shows, with its 100 us polling: the
//! producer `timed_put`s each record; the consumer `timed_get`s what is there, up to
//! 256 KiB (as the benchmark's daqflow consumer gets at least one record and up to 256 KiB).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nscldaq_ringbuffer::ringbuffer::{RingBufferMap, consumer, producer};

#[path = "../../../benches/support/child.rs"]
mod child;

/// As the benchmark: the longest any one transfer may wait.
const PATIENCE: Duration = Duration::from_secs(20);
/// FRIB's own poll period, the one its blocking calls use.
const POLL: Duration = Duration::from_micros(100);
const CONSUMER_BUF: usize = 256 * 1024;

fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| format!("cannot write to the benchmark: {e}"))
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The counters, with the CPU time since `cpu0` (microseconds).
fn counts(cpu0: u64) -> String {
    let (vol, invol, cpu_us) = child::context_switches_and_cpu();
    let cpu_us = cpu_us.saturating_sub(cpu0);
    // The ring's waiting counts (FRIB's crate has none), the context switches, naps, CPU time.
    format!("0 0 0 0 0 0 0 0 {vol} {invol} 0 {cpu_us}")
}

fn pin(cpu: &str) -> Result<(), String> {
    if cpu == "-" {
        return Ok(());
    }
    let n: usize = cpu.parse().map_err(|_| format!("bad cpu {cpu:?}"))?;
    if n >= libc::CPU_SETSIZE as usize {
        return Err(format!("cpu {n} is out of range"));
    }
    // SAFETY: a zeroed cpu_set_t is an empty set (plain integers, no invalid bit pattern).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit of `set`; `n` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(n, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size given.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(format!("cannot pin to cpu {n}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn number(args: &[String], i: usize, what: &str) -> Result<u64, String> {
    let s = args.get(i).ok_or_else(|| format!("missing {what}"))?;
    s.parse().map_err(|_| format!("bad {what} {s:?}"))
}

fn run(args: &[String]) -> Result<(), String> {
    // Die with the benchmark, whatever kills it.
    // SAFETY: prctl with these arguments only sets a process attribute.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    let role = args.first().ok_or("missing role")?.as_str();
    pin(args.get(1).ok_or("missing cpu")?)?;
    let ring = args.get(2).ok_or("missing ring")?;
    let rec = number(args, 4, "record size")?;
    let total = number(args, 5, "total bytes")?;
    if rec < 16 {
        return Err(format!("record size {rec} is under 16 bytes"));
    }
    let map = Arc::new(Mutex::new(RingBufferMap::new(&format!("/dev/shm/{ring}"))?));
    match role {
        "producer" => {
            let mut p = producer::Producer::attach(&map).map_err(|e| producer::error_string(&e))?;
            let mut record: Vec<u8> = (0..rec).map(|i| i as u8).collect();
            let cpu0 = child::cpu_us();
            let t0 = mono_ns();
            for seq in 0..total / rec {
                child::stamp(&mut record, seq);
                p.timed_put(&record, PATIENCE).map_err(|e| format!("put: {}", producer::error_string(&e)))?;
            }
            let t1 = mono_ns();
            say(&format!("DONE {t0} {t1} {}", counts(cpu0)))
        }
        "consumer" => {
            let mut c = consumer::Consumer::attach(&map).map_err(|e| consumer::error_string(&e))?;
            let mut buf = vec![1u8; CONSUMER_BUF];
            let mut check = child::Checker::new(rec);
            let total = total / rec * rec;
            let cpu0 = child::cpu_us();
            say("READY")?;
            let mut got = 0u64;
            let mut since = Instant::now();
            while got < total {
                let want = (total - got).min(buf.len() as u64) as usize;
                // Waits up to one poll period for `want` bytes, then takes what is there.
                match c.timed_get(&mut buf[..want], POLL) {
                    Ok(n) if n > 0 => {
                        check.feed(&buf[..n]);
                        got += n as u64;
                        since = Instant::now();
                    }
                    Ok(_) | Err(consumer::Error::Timeout) if since.elapsed() < PATIENCE => {}
                    Ok(_) | Err(consumer::Error::Timeout) => {
                        return Err(format!("no data for {} s after {got} bytes", PATIENCE.as_secs()));
                    }
                    Err(e) => return Err(format!("get: {}", consumer::error_string(&e))),
                }
            }
            let t1 = mono_ns();
            say(&format!("DONE {t1} {} {}", check.bad, counts(cpu0)))
        }
        other => Err(format!("unknown role {other:?}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        let _ = say(&format!("ERR {e}"));
        std::process::exit(1);
    }
}
