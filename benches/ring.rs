//! Ring benchmark (`cargo bench --bench ring`, part of `make bench`).
//!
//! Measures, against references taken in the same run (docs/benchmarks.md says what each is and why):
//! - throughput on an 8 MiB ring (the NSCLDAQ default geometry), one producer to 1, 4
//!   and 16 consumers, records of 64 B, 1 KiB and 64 KiB; every consumer copies every
//!   byte out and checks a sequence number at both ends of each record;
//! - the same transfers under the legacy policy (zero-timeout put/get, 3 ms sleep on
//!   ETIMEDOUT, which is what NSCLDAQ's blocking amounts to);
//! - 64 B records 1 -> 1 with the batch put (`Producer::put_vectored`, BATCH_RECORDS
//!   records per call) beside the single put;
//! - FRIB's `nscldaq_ringbuffer` 0.8.9 (its 100 us polling), one producer and one consumer
//!   process at every record size, moving and checking the same stream: the helper
//!   program interop/src/bin/frib-bench.rs, which `make bench` builds (the library's
//!   own dependencies never include FRIB's crate);
//! - the copy limit at each record size: one thread stamping each record, copying it into
//!   an 8 MiB buffer (at the next offset, wrapping like a ring) and back out;
//! - M64: a single-thread memcpy of a 64 MiB buffer into another;
//! - per configuration, what waiting cost: futex waits and wakes, membarriers, yields and
//!   context switches per MB moved, on each side (`ring::wait_stats`, and getrusage).
//! - wake-up latency: a record every 200-300 us, stamped with CLOCK_MONOTONIC just before
//!   the put, measured when the consumer returns from its get with it.
//!
//! Producer and consumers are real processes sharing the ring through /dev/shm: this
//! binary re-executes itself with `CHILD_ARG` and a role. The producer runs on the first
//! allowed CPU, the consumers on the second (no pinning when only one CPU is allowed).
//! Every figure is the median of `REPS` repetitions with its min, max and spread
//! (max/min); repetitions are interleaved across configurations so that machine noise
//! hits all of them alike. The last table states each target of issue 13 and whether this
//! run met it. docs/benchmarks.md says what each reference is and how to read the tables.
//!
//! A benchmark reports, it does not judge: the process exits 0 whatever the figures. It
//! never hangs (every wait has a limit, children are killed on the way out and die with
//! us via PR_SET_PDEATHSIG) and removes every ring it creates, on error too.
//!
//! Environment, for trying changes (the figures are then less trustworthy):
//! `RING_BENCH_QUICK=1` moves 1/8 of the bytes with 3 repetitions;
//! `RING_BENCH_ONLY=64x1,64kx16,lat` runs only those throughput configurations
//! (record size x consumers) and/or the latency test (M64 and the copy limits always
//! run); adding `event`, `legacy`, `batch` or `frib` runs only those policies.
//! `RING_BENCH_FRIB=PATH` names the FRIB helper (default: frib-bench beside the
//! benchmark's target directory, where `make bench` builds it).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use daqflow::progress::{Progress, Stream};
use daqflow::ring::{self, Consumer, CreateOptions, Producer};

#[path = "support/child.rs"]
mod child;
use child::{Checker, stamp};

/// First argument of a child process; the next one is its role.
const CHILD_ARG: &str = "--ring-bench-child";
/// Prefix of every ring this benchmark creates: `ringbench-<pid>-<n>`.
const RING_PREFIX: &str = "ringbench-";

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Record sizes and consumer counts of the issue.
const RECORD_SIZES: [u64; 3] = [64, KIB, 64 * KIB];
const CONSUMER_COUNTS: [usize; 3] = [1, 4, 16];

/// NSCLDAQ's DEFAULT_POLLMS.
const LEGACY_POLL: Duration = Duration::from_millis(3);
/// Longest a child waits for one put or get (or, polling, without progress) before it
/// reports a stall: generous, since 16 consumers share one core with others' builds.
const CHILD_WAIT: Duration = Duration::from_secs(20);
/// Longest the coordinator waits for consumers to attach.
const ATTACH_WAIT: Duration = Duration::from_secs(20);
/// Hard cap on one run; children are killed past it.
const RUN_LIMIT: Duration = Duration::from_secs(180);
/// The consumer's own buffer: each get copies up to this much out of the ring.
const CONSUMER_BUF: usize = 256 * KIB as usize;
/// Records per batch put: 16 KiB of 64 B records, far below an eighth of the ring.
const BATCH_RECORDS: usize = 256;
/// The copy limit's stand-in for the ring: NSCLDAQ's default size.
const COPY_RING: usize = 8 * MIB as usize;
/// Bytes the latency producer streams before the timed records, so that every page of
/// the ring is mapped and faulted in both processes (a long-running DAQ ring is).
const LATENCY_WARMUP: u64 = 16 * MIB;
const LATENCY_RECORD: usize = 64;

/// Set by SIGINT/SIGTERM: the coordinator stops, kills its children and removes its ring.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static RING_SEQ: AtomicU32 = AtomicU32::new(0);
/// A child's 3 ms sleeps under the legacy policy (its only system calls while waiting).
static LEGACY_SLEEPS: AtomicU64 = AtomicU64::new(0);

type Res<T> = Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == CHILD_ARG) {
        let code = match child_main(&args[at + 1..]) {
            Ok(()) => 0,
            Err(e) => {
                // The coordinator reads this line and names the child in its report.
                println!("ERR {e}");
                let _ = std::io::stdout().flush();
                1
            }
        };
        std::process::exit(code);
    }
    if let Err(e) = coordinator() {
        eprintln!("ring bench: {e}");
    }
    // A benchmark reports; a missed target or a failed run is not a failed build.
}

// ----------------------------------------------------------------------------------
// Shared helpers

fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Policy {
    /// daqflow's blocking: sleep in the kernel, woken by the peer.
    Event,
    /// NSCLDAQ's: never block, re-check every 3 ms.
    Legacy,
    /// Event, with the producer putting BATCH_RECORDS records per call (put_vectored).
    Batch,
    /// FRIB's nscldaq_ringbuffer on both sides (its 100 us polling), in its own helper.
    Frib,
}

impl Policy {
    fn arg(self) -> &'static str {
        match self {
            Policy::Event => "event",
            Policy::Legacy => "legacy",
            Policy::Batch => "batch",
            Policy::Frib => "frib",
        }
    }
    fn parse(s: &str) -> Res<Policy> {
        match s {
            "event" => Ok(Policy::Event),
            "legacy" => Ok(Policy::Legacy),
            "batch" => Ok(Policy::Batch),
            other => Err(format!("unknown policy {other:?}")),
        }
    }
}

fn parse_num<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Res<T> {
    let s = args.get(i).ok_or_else(|| format!("missing argument {i} ({what})"))?;
    s.parse().map_err(|_| format!("bad {what} {s:?}"))
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Res<&'a str> {
    args.get(i).map(String::as_str).ok_or_else(|| format!("missing argument {i} ({what})"))
}

// ----------------------------------------------------------------------------------
// Child processes

fn child_main(args: &[String]) -> Res<()> {
    // Die with the coordinator, whatever kills it, so no child outlives a run.
    // SAFETY: prctl with these arguments only sets a process attribute.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    let role = arg(args, 0, "role")?;
    let cpu = arg(args, 1, "cpu")?;
    if cpu != "-" {
        pin(cpu.parse().map_err(|_| format!("bad cpu {cpu:?}"))?)?;
    }
    let rest = &args[2..];
    match role {
        "producer" => child_producer(rest),
        "consumer" => child_consumer(rest),
        "lat-producer" => child_lat_producer(rest),
        "lat-consumer" => child_lat_consumer(rest),
        "m64" => child_m64(rest),
        "copy" => child_copy(rest),
        "fx-producer" => child_fx(rest, true),
        "fx-consumer" => child_fx(rest, false),
        other => Err(format!("unknown child role {other:?}")),
    }
}

fn pin(cpu: usize) -> Res<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("cannot pin to cpu {cpu}: {e}"))
}

fn say(line: &str) -> Res<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| format!("cannot write to the coordinator: {e}"))
}

/// A put under `policy`. Event: the library blocks (bounded by CHILD_WAIT). Legacy:
/// zero timeout, sleep 3 ms on ETIMEDOUT and retry, as NSCLDAQ does.
fn put(p: &mut Producer, data: &[u8], policy: Policy) -> Res<()> {
    match policy {
        Policy::Event | Policy::Batch | Policy::Frib => p.put(data, Some(CHILD_WAIT)).map_err(|e| format!("put: {e}")),
        Policy::Legacy => {
            let mut since: Option<Instant> = None;
            loop {
                match p.put(data, Some(Duration::ZERO)) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.errno() == libc::ETIMEDOUT => {
                        let since = *since.get_or_insert_with(Instant::now);
                        if since.elapsed() > CHILD_WAIT {
                            return Err(format!("put: no space for {} s: {e}", CHILD_WAIT.as_secs()));
                        }
                        LEGACY_SLEEPS.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(LEGACY_POLL);
                    }
                    Err(e) => return Err(format!("put: {e}")),
                }
            }
        }
    }
}

/// A get of at least `min` bytes under `policy` (see `put`).
fn get(c: &mut Consumer, buf: &mut [u8], min: u64, policy: Policy) -> Res<usize> {
    match policy {
        Policy::Event | Policy::Batch | Policy::Frib => {
            c.get(buf, min, Some(CHILD_WAIT)).map_err(|e| format!("get: {e}"))
        }
        Policy::Legacy => {
            let mut since: Option<Instant> = None;
            loop {
                match c.get(buf, min, Some(Duration::ZERO)) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.errno() == libc::ETIMEDOUT => {
                        let since = *since.get_or_insert_with(Instant::now);
                        if since.elapsed() > CHILD_WAIT {
                            return Err(format!("get: no data for {} s: {e}", CHILD_WAIT.as_secs()));
                        }
                        LEGACY_SLEEPS.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(LEGACY_POLL);
                    }
                    Err(e) => return Err(format!("get: {e}")),
                }
            }
        }
    }
}

/// producer RING POLICY REC TOTAL: puts TOTAL/REC records; reports its start and end.
fn child_producer(args: &[String]) -> Res<()> {
    let name = arg(args, 0, "ring")?;
    let policy = Policy::parse(arg(args, 1, "policy")?)?;
    let rec: u64 = parse_num(args, 2, "record size")?;
    let total: u64 = parse_num(args, 3, "total bytes")?;
    let mut p = Producer::attach(name).map_err(|e| format!("producer attach: {e}"))?;
    ring::count_wait_stats(true);
    let records = total / rec;
    let cpu0 = child::cpu_us();
    let t0 = mono_ns();
    if policy == Policy::Batch {
        put_batches(&mut p, rec as usize, records)?;
    } else {
        let mut record: Vec<u8> = (0..rec).map(|i| i as u8).collect();
        for seq in 0..records {
            stamp(&mut record, seq);
            put(&mut p, &record, policy)?;
        }
    }
    let t1 = mono_ns();
    say(&format!("DONE {t0} {t1} {}", counts_now(cpu0)))
}

/// Puts `records` records of `rec` bytes, BATCH_RECORDS per put_vectored call.
fn put_batches(p: &mut Producer, rec: usize, records: u64) -> Res<()> {
    let mut buf: Vec<u8> = (0..rec * BATCH_RECORDS).map(|i| i as u8).collect();
    let mut seq = 0u64;
    while seq < records {
        let n = (records - seq).min(BATCH_RECORDS as u64) as usize;
        for (k, record) in buf.chunks_exact_mut(rec).take(n).enumerate() {
            stamp(record, seq + k as u64);
        }
        let batch: Vec<IoSlice> = buf.chunks_exact(rec).take(n).map(IoSlice::new).collect();
        let put = p.put_vectored(&batch, Some(CHILD_WAIT)).map_err(|e| format!("put_vectored: {e}"))?;
        if put != n {
            return Err(format!("put_vectored: only {put} of {n} records in {} s", CHILD_WAIT.as_secs()));
        }
        seq += n as u64;
    }
    Ok(())
}

/// What this child's waiting cost so far, as the numbers `Counts::parse` reads; CPU time
/// counts from `cpu0`.
fn counts_now(cpu0: u64) -> String {
    let w = ring::wait_stats();
    let (vol, invol, cpu_us) = child::context_switches_and_cpu();
    let cpu_us = cpu_us.saturating_sub(cpu0);
    Counts([
        w.waits_woken,
        w.waits_timed_out,
        w.waits_not_slept,
        w.wakes,
        w.wakes_for_nobody,
        w.membarriers,
        w.yields,
        LEGACY_SLEEPS.load(Ordering::Relaxed),
        vol,
        invol,
        w.naps,
        cpu_us,
    ])
    .to_string()
}

/// consumer RING POLICY REC TOTAL: reads and checks TOTAL bytes; reports when it had
/// them all and how many check words were wrong.
fn child_consumer(args: &[String]) -> Res<()> {
    let name = arg(args, 0, "ring")?;
    let policy = Policy::parse(arg(args, 1, "policy")?)?;
    let rec: u64 = parse_num(args, 2, "record size")?;
    let total: u64 = parse_num(args, 3, "total bytes")?;
    let total = total / rec * rec;
    let mut c = Consumer::attach(name).map_err(|e| format!("consumer attach: {e}"))?;
    ring::count_wait_stats(true);
    // Touch the buffer now so its page faults are not timed.
    let mut buf = vec![1u8; CONSUMER_BUF];
    let mut check = Checker::new(rec);
    let cpu0 = child::cpu_us();
    say("READY")?;
    let mut got = 0u64;
    while got < total {
        let want = (total - got).min(buf.len() as u64) as usize;
        let n = get(&mut c, &mut buf[..want], rec.min(want as u64), policy)?;
        check.feed(&buf[..n]);
        got += n as u64;
    }
    let t1 = mono_ns();
    say(&format!("DONE {t1} {} {}", check.bad, counts_now(cpu0)))
}

/// lat-producer RING POLICY SAMPLES: a warm-up stream, then one stamped 64-byte record
/// every 200-300 us.
fn child_lat_producer(args: &[String]) -> Res<()> {
    let name = arg(args, 0, "ring")?;
    let policy = Policy::parse(arg(args, 1, "policy")?)?;
    let samples: u64 = parse_num(args, 2, "samples")?;
    // Sleep close to what we ask: the default 50 us timer slack would blur the pacing.
    // SAFETY: prctl with these arguments only sets a process attribute.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
    let mut p = Producer::attach(name).map_err(|e| format!("producer attach: {e}"))?;
    let chunk = vec![0u8; 64 * KIB as usize];
    for _ in 0..LATENCY_WARMUP / chunk.len() as u64 {
        put(&mut p, &chunk, policy)?;
    }
    let mut record = [0u8; LATENCY_RECORD];
    // A cheap deterministic jitter (an LCG), so the period is not a fixed beat.
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    for seq in 0..samples {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_micros(200 + (rng >> 33) % 80));
        record[..8].copy_from_slice(&seq.to_le_bytes());
        let t = mono_ns();
        record[8..16].copy_from_slice(&t.to_le_bytes());
        put(&mut p, &record, policy)?;
    }
    say("DONE")
}

/// lat-consumer RING POLICY SAMPLES: reads the warm-up, then one record per get, and
/// reports each record's latency in nanoseconds.
fn child_lat_consumer(args: &[String]) -> Res<()> {
    let name = arg(args, 0, "ring")?;
    let policy = Policy::parse(arg(args, 1, "policy")?)?;
    let samples: u64 = parse_num(args, 2, "samples")?;
    let mut c = Consumer::attach(name).map_err(|e| format!("consumer attach: {e}"))?;
    let mut buf = vec![0u8; 64 * KIB as usize];
    say("READY")?;
    let mut warm = 0u64;
    while warm < LATENCY_WARMUP {
        let want = (LATENCY_WARMUP - warm).min(buf.len() as u64) as usize;
        warm += get(&mut c, &mut buf[..want], 1, policy)? as u64;
    }
    let mut lat = Vec::with_capacity(samples as usize);
    let mut record = [0u8; LATENCY_RECORD];
    for seq in 0..samples {
        let n = get(&mut c, &mut record, LATENCY_RECORD as u64, policy)?;
        let now = mono_ns();
        if n != LATENCY_RECORD {
            return Err(format!("short record: {n} bytes"));
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&record[..8]);
        if u64::from_le_bytes(w) != seq {
            return Err(format!("record {seq} arrived as {}", u64::from_le_bytes(w)));
        }
        w.copy_from_slice(&record[8..16]);
        lat.push(now.saturating_sub(u64::from_le_bytes(w)));
    }
    let mut line = String::with_capacity(lat.len() * 8 + 4);
    line.push_str("LAT");
    for v in lat {
        line.push(' ');
        line.push_str(&v.to_string());
    }
    say(&line)
}

/// fx-producer|fx-consumer FILE SAMPLES: the raw futex reference for the wake-up
/// latency. Every 200-280 us the producer stamps event n's time in slot n % FX_SLOTS of
/// a shared file, bumps a futex word to n + 1 and wakes; the consumer always sleeps on
/// the word (no spinning) and reports every event's latency, including the ones a late
/// wake-up covers at once (as a ring consumer's records queue up), like lat-consumer.
fn child_fx(args: &[String], producer: bool) -> Res<()> {
    let path = arg(args, 0, "file")?;
    let samples: u64 = parse_num(args, 1, "samples")?;
    let file =
        std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(|e| format!("open {path}: {e}"))?;
    let map = memmap2::MmapOptions::new().len(4096).map_raw(&file).map_err(|e| format!("map {path}: {e}"))?;
    const FX_SLOTS: u64 = 500; // 8-byte stamps from offset 64: within the 4096-byte page
    // SAFETY: the mapping is 4096 bytes, page aligned, shared, and lives until we return;
    // both words are only ever accessed atomically.
    let seq = unsafe { std::sync::atomic::AtomicU32::from_ptr(map.as_mut_ptr().cast()) };
    // SAFETY: as above; 64 + 8 * (n % FX_SLOTS) + 8 <= 4096 and is 8-aligned.
    let stamp = |n: u64| unsafe {
        std::sync::atomic::AtomicU64::from_ptr(map.as_mut_ptr().add(64 + 8 * (n % FX_SLOTS) as usize).cast())
    };
    let futex = |op: libc::c_int, val: u32, ts: *const libc::timespec| {
        // SAFETY: `seq` is an aligned u32 in a live shared mapping; `ts` is null or valid.
        unsafe { libc::syscall(libc::SYS_futex, seq.as_ptr(), op, val, ts, 0usize, 0u32) };
    };
    if producer {
        // SAFETY: prctl with these arguments only sets a process attribute.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in 0..samples {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            std::thread::sleep(Duration::from_micros(200 + (rng >> 33) % 80));
            stamp(n).store(mono_ns(), Ordering::SeqCst);
            seq.fetch_add(1, Ordering::SeqCst);
            futex(libc::FUTEX_WAKE, i32::MAX as u32, std::ptr::null());
        }
        return say("DONE");
    }
    say("READY")?;
    let mut lat = Vec::with_capacity(samples as usize);
    let mut last = 0u32;
    let ts = libc::timespec { tv_sec: 0, tv_nsec: 100_000_000 };
    let mut since = Instant::now();
    while u64::from(last) < samples {
        let now_seq = seq.load(Ordering::SeqCst);
        if now_seq == last {
            if since.elapsed() > CHILD_WAIT {
                return Err(format!("no wake-up for {} s", CHILD_WAIT.as_secs()));
            }
            futex(libc::FUTEX_WAIT, last, &ts);
            continue;
        }
        let now = mono_ns();
        if now_seq - last >= FX_SLOTS as u32 {
            return Err(format!("fell {} events behind", now_seq - last));
        }
        for n in u64::from(last)..u64::from(now_seq) {
            lat.push(now.saturating_sub(stamp(n).load(Ordering::SeqCst)));
        }
        last = now_seq;
        since = Instant::now();
    }
    let mut line = String::from("LAT");
    for v in lat {
        line.push(' ');
        line.push_str(&v.to_string());
    }
    say(&line)
}

/// m64 COPIES: copies a 64 MiB buffer into another COPIES times; reports bytes/s.
fn child_m64(args: &[String]) -> Res<()> {
    let copies: u64 = parse_num(args, 0, "copies")?;
    const LEN: usize = 64 * MIB as usize;
    let src: Vec<u8> = (0..LEN).map(|i| (i * 7) as u8).collect();
    let mut dst = vec![0u8; LEN];
    // One untimed copy: every page of both buffers is faulted in before timing.
    dst.copy_from_slice(&src);
    let t0 = Instant::now();
    for _ in 0..copies {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    let secs = t0.elapsed().as_secs_f64();
    say(&format!("DONE {}", (copies * LEN as u64) as f64 / secs))
}

/// copy REC TOTAL: the copy limit. One thread stamps each record as the producer does,
/// copies it into an 8 MiB buffer at the next offset (wrapping, in two pieces, as in a
/// ring) and back out into a record-sized buffer; reports bytes/s. No other process, no
/// synchronisation: what one core does with the bytes when nothing else is in the way.
fn child_copy(args: &[String]) -> Res<()> {
    let rec: usize = parse_num(args, 0, "record size")?;
    let total: u64 = parse_num(args, 1, "total bytes")?;
    if !(16..=COPY_RING).contains(&rec) {
        return Err(format!("record size {rec} is outside 16..{COPY_RING}"));
    }
    let mut ring = vec![1u8; COPY_RING];
    let mut record: Vec<u8> = (0..rec).map(|i| i as u8).collect();
    let mut out = vec![1u8; rec];
    let records = total / rec as u64;
    let mut at = 0usize;
    let t0 = Instant::now();
    for seq in 0..records {
        stamp(&mut record, seq);
        let first = rec.min(COPY_RING - at);
        ring[at..at + first].copy_from_slice(&record[..first]);
        ring[..rec - first].copy_from_slice(&record[first..]);
        let ring = std::hint::black_box(&mut ring);
        out[..first].copy_from_slice(&ring[at..at + first]);
        out[first..].copy_from_slice(&ring[..rec - first]);
        std::hint::black_box(&mut out);
        at = (at + rec) % COPY_RING;
    }
    let secs = t0.elapsed().as_secs_f64();
    say(&format!("DONE {}", (records * rec as u64) as f64 / secs))
}

// ----------------------------------------------------------------------------------
// Coordinator side: rings and children that clean up after themselves

/// A ring this run created; removed on drop, on every path out.
struct RingGuard {
    name: String,
}

impl RingGuard {
    fn create() -> Res<RingGuard> {
        let name = format!("{RING_PREFIX}{}-{}", std::process::id(), RING_SEQ.fetch_add(1, Ordering::Relaxed));
        // Zeros: the NSCLDAQ defaults, 8 MiB of data and 100 consumer slots.
        ring::create(&name, CreateOptions { data_bytes: 0, max_consumers: 0, mode: 0o600 })
            .map_err(|e| format!("cannot create ring {name}: {e}"))?;
        Ok(RingGuard { name })
    }
}

impl Drop for RingGuard {
    fn drop(&mut self) {
        if let Err(e) = ring::remove(&self.name) {
            eprintln!("ring bench: cannot remove ring {}: {e}", self.name);
        }
    }
}

/// Rings (and futex files) left by an earlier run that was killed (SIGKILL leaves no
/// chance to clean up): ours by name, and their creator is gone.
fn remove_stale_rings() {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else { return };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let Some(rest) = name.strip_prefix(RING_PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        let dead =
            matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH));
        if !dead {
            continue;
        }
        let removed = if name.ends_with("-futex") {
            std::fs::remove_file(entry.path()).is_ok()
        } else {
            ring::remove(&name).is_ok()
        };
        if removed {
            eprintln!("ring bench: removed stale {name} (its creator, pid {pid}, is gone)");
        }
    }
}

struct Kid {
    role: String,
    child: Child,
    lines: VecDeque<String>,
    eof: bool,
}

/// The children of one run. Their stdout lines come through one channel (a reader
/// thread each); dropping the set kills and reaps whoever is still running.
struct Kids {
    kids: Vec<Kid>,
    tx: Sender<(usize, Option<String>)>,
    rx: Receiver<(usize, Option<String>)>,
    deadline: Instant,
}

impl Kids {
    fn new(limit: Duration) -> Kids {
        let (tx, rx) = mpsc::channel();
        Kids { kids: Vec::new(), tx, rx, deadline: Instant::now() + limit }
    }

    fn spawn(&mut self, role: &str, cpu: Option<usize>, args: &[String]) -> Res<usize> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this benchmark's executable: {e}"))?;
        self.spawn_program(&exe, Some(CHILD_ARG), role, cpu, args)
    }

    /// A child running `exe [first] ROLE CPU ARGS...` that speaks this file's line protocol.
    fn spawn_program(
        &mut self,
        exe: &std::path::Path,
        first: Option<&str>,
        role: &str,
        cpu: Option<usize>,
        args: &[String],
    ) -> Res<usize> {
        let cpu = cpu.map_or("-".to_string(), |c| c.to_string());
        let mut child = Command::new(exe)
            .args(first)
            .arg(role)
            .arg(cpu)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the {role} process: {e}"))?;
        let idx = self.kids.len();
        let Some(out) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the {role} process has no stdout pipe"));
        };
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => {
                        if tx.send((idx, Some(l))).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send((idx, None));
        });
        self.kids.push(Kid {
            role: format!("{role} #{idx} (pid {})", child.id()),
            child,
            lines: VecDeque::new(),
            eof: false,
        });
        Ok(idx)
    }

    fn status_of(&mut self, i: usize) -> String {
        let kid = &mut self.kids[i];
        for _ in 0..50 {
            if let Ok(Some(st)) = kid.child.try_wait() {
                return describe(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        "still running".to_string()
    }

    /// Waits for one line starting with `prefix` from each of `who`; returns the rest
    /// of each line. An `ERR` line, an early exit or the run's deadline is an error.
    fn expect(&mut self, who: &[usize], prefix: &str, limit: Option<Duration>) -> Res<Vec<String>> {
        let deadline = limit.map_or(self.deadline, |l| self.deadline.min(Instant::now() + l));
        let mut got: Vec<Option<String>> = vec![None; who.len()];
        loop {
            for (slot, &i) in who.iter().enumerate() {
                if got[slot].is_some() {
                    continue;
                }
                if let Some(line) = self.kids[i].lines.pop_front() {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        got[slot] = Some(rest.trim_start().to_string());
                    } else if let Some(err) = line.strip_prefix("ERR ") {
                        return Err(format!("{} failed: {err}", self.kids[i].role));
                    } else {
                        return Err(format!("{} said {line:?}, expected {prefix}", self.kids[i].role));
                    }
                } else if self.kids[i].eof {
                    let st = self.status_of(i);
                    return Err(format!("{} ended ({st}) before saying {prefix}", self.kids[i].role));
                }
            }
            if got.iter().all(Option::is_some) {
                return Ok(got.into_iter().flatten().collect());
            }
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Err("interrupted".to_string());
            }
            let now = Instant::now();
            if now >= deadline {
                let late: Vec<&str> = who
                    .iter()
                    .zip(&got)
                    .filter(|(_, g)| g.is_none())
                    .map(|(&i, _)| self.kids[i].role.as_str())
                    .collect();
                return Err(format!("timed out waiting for {prefix} from {}", late.join(", ")));
            }
            match self.rx.recv_timeout((deadline - now).min(Duration::from_millis(100))) {
                Ok((i, Some(line))) => self.kids[i].lines.push_back(line),
                Ok((i, None)) => self.kids[i].eof = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err("lost every child's output".to_string()),
            }
        }
    }

    /// Waits for every child to exit successfully.
    fn finish(&mut self) -> Res<()> {
        for i in 0..self.kids.len() {
            loop {
                match self.kids[i].child.try_wait() {
                    Ok(Some(st)) if st.success() => break,
                    Ok(Some(st)) => return Err(format!("{} {}", self.kids[i].role, describe(st))),
                    Ok(None) if Instant::now() < self.deadline && !INTERRUPTED.load(Ordering::Relaxed) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Ok(None) => return Err(format!("{} did not exit in time", self.kids[i].role)),
                    Err(e) => return Err(format!("cannot wait for {}: {e}", self.kids[i].role)),
                }
            }
        }
        Ok(())
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        for kid in &mut self.kids {
            if let Ok(None) = kid.child.try_wait() {
                let _ = kid.child.kill();
            }
            let _ = kid.child.wait();
        }
    }
}

fn describe(st: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => format!("ended: {st}"),
    }
}

/// A child's waiting costs, in the order `counts_now` writes them: futex waits woken,
/// timed out, not slept; wakes that woke someone, wakes for nobody; membarriers; yields;
/// the legacy policy's 3 ms sleeps; voluntary and involuntary context switches.
#[derive(Clone, Copy, Default)]
struct Counts([u64; 12]);

impl Counts {
    const LEN: usize = 12;

    /// The counts that end a DONE line after `skip` other numbers.
    fn parse(line: &str, skip: usize, who: &str) -> Res<Counts> {
        let v = nums(line, skip + Counts::LEN, who)?;
        let mut c = Counts::default();
        c.0.copy_from_slice(&v[skip..skip + Counts::LEN]);
        Ok(c)
    }
    fn add(&mut self, other: &Counts) {
        self.0.iter_mut().zip(other.0).for_each(|(a, b)| *a += b);
    }
    /// Sleeps: futex waits that slept (woken or not) and the legacy policy's sleeps.
    fn sleeps(&self) -> u64 {
        self.0[0] + self.0[1] + self.0[7]
    }
    fn wakes(&self) -> u64 {
        self.0[3] + self.0[4]
    }
    /// Every system call made to wait or wake: futex, membarrier, sched_yield, nanosleep.
    fn syscalls(&self) -> u64 {
        self.0[..8].iter().sum::<u64>() + self.naps()
    }
    /// A streaming consumer's naps (timed sleeps nobody wakes).
    fn naps(&self) -> u64 {
        self.0[10]
    }
    /// CPU time, user and system, microseconds.
    fn cpu_us(&self) -> u64 {
        self.0[11]
    }
    fn voluntary_switches(&self) -> u64 {
        self.0[8]
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&words.join(" "))
    }
}

/// One throughput run: the rate and what waiting cost each side.
struct Run {
    rate: f64,
    megabytes: f64,
    producer: Counts,
    /// Summed over every consumer.
    consumers: Counts,
    host: Host,
}

/// What the host did around one run, to tell its slow stretches from the ring's: the
/// round trip of a cache line between the two CPUs just before the run, and the share of
/// the run's CPU time the hypervisor gave to someone else (steal, /proc/stat).
#[derive(Clone, Copy, Default)]
struct Host {
    bounce_ns: f64,
    /// Copy rate of both CPUs at once over one CPU alone (see `core_share_probe`).
    pair: f64,
    steal_pct: f64,
}

/// Whether the two vCPUs share a physical core just now: each copies within its own
/// cache-resident buffers, first one alone, then both at once; returns the pair's mean
/// rate over the solo rate. About 1 on two cores, about 0.5 when the hypervisor runs both
/// vCPUs as the two hyperthreads of one core (then every two-process figure halves while
/// a one-thread reference such as the copy limit does not).
fn core_share_probe(cpus: Cpus) -> f64 {
    const BUF: usize = 256 * KIB as usize;
    const COPIES: u32 = 200;
    let (Some(a), Some(b)) = (cpus.producer, cpus.consumer) else { return 0.0 };
    let copy_rate = |cpu: usize, start: &std::sync::Barrier| -> f64 {
        let (mut x, mut y) = (vec![1u8; BUF], vec![2u8; BUF]);
        if pin(cpu).is_err() {
            return 0.0;
        }
        start.wait();
        let t0 = Instant::now();
        for i in 0..COPIES {
            if i % 2 == 0 { x.copy_from_slice(&y) } else { y.copy_from_slice(&x) }
        }
        std::hint::black_box((&x, &y));
        (COPIES as usize * BUF) as f64 / t0.elapsed().as_secs_f64().max(1e-9)
    };
    let (one, two) = (std::sync::Barrier::new(1), std::sync::Barrier::new(2));
    let solo = std::thread::scope(|s| s.spawn(|| copy_rate(a, &one)).join().unwrap_or(0.0));
    let pair = std::thread::scope(|s| {
        let (ta, tb) = (s.spawn(|| copy_rate(a, &two)), s.spawn(|| copy_rate(b, &two)));
        (ta.join().unwrap_or(0.0) + tb.join().unwrap_or(0.0)) / 2.0
    });
    if solo > 0.0 { pair / solo } else { 0.0 }
}

/// A cache-line round trip at least this long means the two vCPUs sit on different dies
/// (measured here: 52-90 ns on one die, 300-440 ns apart).
const APART_NS: f64 = 150.0;

/// Round trips of one cache line between threads pinned to the producer's and the
/// consumers' CPUs, ns each (median of 5 bursts): what every pointer a peer reads costs.
fn bounce_probe(cpus: Cpus) -> f64 {
    const TRIPS: u64 = 2000;
    let (Some(a), Some(b)) = (cpus.producer, cpus.consumer) else { return 0.0 };
    let line = AtomicU64::new(0);
    // Both sides are threads of their own, so the coordinator's own affinity stays as it was.
    let bursts = std::thread::scope(|s| {
        s.spawn(|| {
            if pin(b).is_err() {
                return;
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            for i in 0..5 * TRIPS {
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    if Instant::now() > deadline {
                        return;
                    }
                    std::hint::spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        });
        s.spawn(|| {
            let mut bursts = Vec::new();
            if pin(a).is_err() {
                return bursts;
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            'bursts: for burst in 0..5 {
                let t0 = Instant::now();
                for k in 0..TRIPS {
                    let i = burst * TRIPS + k;
                    line.store(2 * i + 1, Ordering::Release);
                    while line.load(Ordering::Acquire) != 2 * i + 2 {
                        if Instant::now() > deadline {
                            break 'bursts;
                        }
                        std::hint::spin_loop();
                    }
                }
                bursts.push(t0.elapsed().as_nanos() as f64 / TRIPS as f64);
            }
            bursts
        })
        .join()
        .unwrap_or_default()
    });
    median_of(bursts).unwrap_or(0.0)
}

/// Steal ticks (USER_HZ) of `cpus` so far, from /proc/stat; 0 where it cannot be read.
fn steal_ticks(cpus: Cpus) -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0 };
    let wanted: Vec<String> = [cpus.producer, cpus.consumer].iter().flatten().map(|c| format!("cpu{c}")).collect();
    stat.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            // user nice system idle iowait irq softirq steal
            let want = if wanted.is_empty() { name == "cpu" } else { wanted.iter().any(|c| c == name) };
            if want { w.nth(7)?.parse::<u64>().ok() } else { None }
        })
        .sum()
}

/// Steal over a run of `secs` as a percentage of the CPU time of `cpus`.
fn steal_pct(cpus: Cpus, ticks: u64, secs: f64) -> f64 {
    let n = [cpus.producer, cpus.consumer].iter().flatten().count().max(1) as f64;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100).max(1) as f64;
    100.0 * ticks as f64 / hz / (secs * n).max(1e-9)
}

fn nums(line: &str, n: usize, what: &str) -> Res<Vec<u64>> {
    let v: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    if v.len() < n { Err(format!("bad {what} report {line:?}")) } else { Ok(v) }
}

// ----------------------------------------------------------------------------------
// Runs

#[derive(Clone, Copy)]
struct Cpus {
    producer: Option<usize>,
    consumer: Option<usize>,
}

fn choose_cpus() -> Cpus {
    let allowed: Vec<usize> = match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect(),
        Err(_) => Vec::new(),
    };
    if allowed.len() >= 2 {
        Cpus { producer: Some(allowed[0]), consumer: Some(allowed[1]) }
    } else {
        // One CPU (or unknown): pinning would change nothing but the figures' meaning.
        Cpus { producer: None, consumer: None }
    }
}

/// The FRIB reference's helper: `$RING_BENCH_FRIB`, else frib-bench in the target
/// directory this benchmark runs from (target/release/deps/ring-* -> target/release).
fn frib_helper() -> Res<PathBuf> {
    let path = match std::env::var_os("RING_BENCH_FRIB") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().map_err(|e| format!("cannot find this benchmark's executable: {e}"))?;
            exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join("frib-bench")).unwrap_or_default()
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "FRIB reference not built ({} is missing: `make bench` builds it with \
             `cargo build --release -p daqflow-interop --bin frib-bench`)",
            path.display()
        ))
    }
}

/// One throughput run: payload bytes/s from the producer's first put until the last
/// consumer had every byte. The FRIB policy runs FRIB's crate on both sides, in its
/// helper program, on a ring daqflow creates (FRIB's own create makes rings NSCLDAQ
/// refuses).
fn throughput_run(cpus: Cpus, policy: Policy, rec: u64, consumers: usize, total: u64) -> Res<Run> {
    let frib = if policy == Policy::Frib { Some(frib_helper()?) } else { None };
    let bounce_ns = bounce_probe(cpus);
    let pair = core_share_probe(cpus);
    let (steal0, t0) = (steal_ticks(cpus), Instant::now());
    let ring = RingGuard::create()?;
    let mut kids = Kids::new(RUN_LIMIT);
    let args = |_: ()| vec![ring.name.clone(), policy.arg().to_string(), rec.to_string(), total.to_string()];
    let spawn = |kids: &mut Kids, role: &str, cpu: Option<usize>| match &frib {
        Some(exe) => kids.spawn_program(exe, None, role, cpu, &args(())),
        None => kids.spawn(role, cpu, &args(())),
    };
    let mut cons = Vec::new();
    for _ in 0..consumers {
        cons.push(spawn(&mut kids, "consumer", cpus.consumer)?);
    }
    // Every consumer must hold a slot before the first byte, or it would miss data.
    kids.expect(&cons, "READY", Some(ATTACH_WAIT))?;
    let prod = spawn(&mut kids, "producer", cpus.producer)?;
    let line = kids.expect(&[prod], "DONE", None)?.remove(0);
    let p = nums(&line, 2, "producer")?;
    let producer = Counts::parse(&line, 2, "producer")?;
    let mut end = p[1];
    let mut all = Counts::default();
    for line in kids.expect(&cons, "DONE", None)? {
        let c = nums(&line, 2, "consumer")?;
        if c[1] != 0 {
            return Err(format!("DATA CHECK FAILED: a consumer saw {} bad check words", c[1]));
        }
        end = end.max(c[0]);
        all.add(&Counts::parse(&line, 2, "consumer")?);
    }
    kids.finish()?;
    let host = Host {
        bounce_ns,
        pair,
        steal_pct: steal_pct(cpus, steal_ticks(cpus).saturating_sub(steal0), t0.elapsed().as_secs_f64()),
    };
    let bytes = total / rec * rec;
    let rate = bytes as f64 / (end.saturating_sub(p[0]).max(1) as f64 / 1e9);
    Ok(Run { rate, megabytes: bytes as f64 / 1e6, producer, consumers: all, host })
}

fn copy_run(cpus: Cpus, rec: u64, total: u64) -> Res<f64> {
    let mut kids = Kids::new(RUN_LIMIT);
    let k = kids.spawn("copy", cpus.producer, &[rec.to_string(), total.to_string()])?;
    let line = kids.expect(&[k], "DONE", None)?.remove(0);
    kids.finish()?;
    line.trim().parse().map_err(|_| format!("bad copy report {line:?}"))
}

fn latency_run(cpus: Cpus, policy: Policy, samples: u64) -> Res<Vec<u64>> {
    let ring = RingGuard::create()?;
    let mut kids = Kids::new(RUN_LIMIT);
    let args = vec![ring.name.clone(), policy.arg().to_string(), samples.to_string()];
    let con = kids.spawn("lat-consumer", cpus.consumer, &args)?;
    kids.expect(&[con], "READY", Some(ATTACH_WAIT))?;
    let prod = kids.spawn("lat-producer", cpus.producer, &args)?;
    let line = kids.expect(&[con], "LAT", None)?.remove(0);
    kids.expect(&[prod], "DONE", None)?;
    kids.finish()?;
    let lat = nums(&line, samples as usize, "latency")?;
    Ok(lat)
}

/// A /dev/shm file of this run that is not a ring (the raw futex reference); removed on drop.
struct ShmFile {
    path: String,
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn futex_run(cpus: Cpus, samples: u64) -> Res<Vec<u64>> {
    let path =
        format!("/dev/shm/{RING_PREFIX}{}-{}-futex", std::process::id(), RING_SEQ.fetch_add(1, Ordering::Relaxed));
    let file = std::fs::File::create(&path).map_err(|e| format!("cannot create {path}: {e}"))?;
    let guard = ShmFile { path };
    file.set_len(4096).map_err(|e| format!("cannot size {}: {e}", guard.path))?;
    let mut kids = Kids::new(RUN_LIMIT);
    let args = vec![guard.path.clone(), samples.to_string()];
    let con = kids.spawn("fx-consumer", cpus.consumer, &args)?;
    kids.expect(&[con], "READY", Some(ATTACH_WAIT))?;
    let prod = kids.spawn("fx-producer", cpus.producer, &args)?;
    let line = kids.expect(&[con], "LAT", None)?.remove(0);
    kids.expect(&[prod], "DONE", None)?;
    kids.finish()?;
    nums(&line, samples as usize, "latency")
}

fn m64_run(cpus: Cpus, copies: u64) -> Res<f64> {
    let mut kids = Kids::new(RUN_LIMIT);
    let k = kids.spawn("m64", cpus.producer, &[copies.to_string()])?;
    let line = kids.expect(&[k], "DONE", None)?.remove(0);
    kids.finish()?;
    line.trim().parse().map_err(|_| format!("bad m64 report {line:?}"))
}

// ----------------------------------------------------------------------------------
// Statistics and the report

/// Figures of one configuration across repetitions; failed runs are counted, not hidden.
#[derive(Default)]
struct Series {
    values: Vec<f64>,
    errors: Vec<String>,
}

impl Series {
    fn add(&mut self, r: Res<f64>) {
        match r {
            Ok(v) => self.values.push(v),
            Err(e) => {
                eprintln!("ring bench: run failed: {e}");
                self.errors.push(e)
            }
        }
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    fn median(&self) -> Option<f64> {
        let v = self.sorted();
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }
    /// max/min, with at least two figures.
    fn spread(&self) -> Option<f64> {
        let v = self.sorted();
        (v.len() >= 2 && v[0] > 0.0).then(|| v[v.len() - 1] / v[0])
    }
    /// "median [min, max] xspread" with values divided by `scale`.
    fn show(&self, scale: f64, prec: usize) -> String {
        let v = self.sorted();
        let mut s = match self.median() {
            None => "no data".to_string(),
            Some(m) => format!("{:.p$} [{:.p$}, {:.p$}]", m / scale, v[0] / scale, v[v.len() - 1] / scale, p = prec),
        };
        if let Some(spread) = self.spread() {
            s.push_str(&format!(" x{spread:.2}"));
        }
        if !self.errors.is_empty() {
            s.push_str(&format!(" ({} failed)", self.errors.len()));
        }
        s
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Scale {
    reps: usize,
    /// Bytes per throughput run by record size, for 1 consumer; more consumers move less
    /// (see `bytes_for`).
    bytes: [u64; 3],
    m64_copies: u64,
    lat_samples: u64,
}

/// A throughput case as RING_BENCH_ONLY names it: record size and consumers, e.g. 1kx4.
fn case_name(rec: u64, consumers: usize) -> String {
    let size = if rec >= KIB { format!("{}k", rec / KIB) } else { rec.to_string() };
    format!("{size}x{consumers}")
}

fn bytes_for(scale: &Scale, size_idx: usize, consumers: usize) -> u64 {
    // n consumers copy n times the stream on one shared core: a shorter stream keeps a
    // repetition to seconds while still cycling the 8 MiB ring dozens of times.
    let b = scale.bytes[size_idx];
    if consumers >= 16 {
        b / 4
    } else if consumers >= 4 {
        b / 2
    } else {
        b
    }
}

fn fmt_size(rec: u64) -> String {
    if rec >= KIB { format!("{} KiB", rec / KIB) } else { format!("{rec} B") }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "FAIL (no data)",
    }
}

/// Policies in table order: index into `Tables::tput`.
const POLICIES: [Policy; 4] = [Policy::Event, Policy::Legacy, Policy::Batch, Policy::Frib];

/// Whether `policy` runs for `rec` x `consumers`: the batch put is the 64 B 1 -> 1 case of
/// issue 13, FRIB's crate the 1 -> 1 reference.
fn applies(policy: Policy, rec: u64, consumers: usize) -> bool {
    match policy {
        Policy::Event | Policy::Legacy => true,
        Policy::Batch => rec == 64 && consumers == 1,
        Policy::Frib => consumers == 1,
    }
}

/// Per-MB waiting costs of one run, as printed (COST_COLUMNS): producer sleeps and
/// wakes, consumers' sleeps and wakes, then for both sides: futex waits that returned at
/// once, naps, yields, membarriers, every system call to wait or wake, voluntary context
/// switches; last, each side's CPU time as a share of the run's (not per MB).
fn per_mb(run: &Run) -> [f64; COSTS] {
    let mb = run.megabytes.max(1e-9);
    let secs = (run.megabytes * 1e6 / run.rate.max(1e-9)).max(1e-9);
    let (p, c) = (&run.producer, &run.consumers);
    let both = |k: usize| (p.0[k] + c.0[k]) as f64 / mb;
    [
        p.sleeps() as f64 / mb,
        p.wakes() as f64 / mb,
        c.sleeps() as f64 / mb,
        c.wakes() as f64 / mb,
        both(2),
        (p.naps() + c.naps()) as f64 / mb,
        both(6),
        both(5),
        (p.syscalls() + c.syscalls()) as f64 / mb,
        (p.voluntary_switches() + c.voluntary_switches()) as f64 / mb,
        100.0 * p.cpu_us() as f64 / secs / 1e6,
        100.0 * c.cpu_us() as f64 / secs / 1e6,
    ]
}

const COSTS: usize = 12;
/// One repetition's rate, its costs per MB and what the host did meanwhile.
type RepCosts = (f64, [f64; COSTS], Host);
const COST_COLUMNS: [&str; COSTS] = [
    "P sleeps", "P wakes", "C sleeps", "C wakes", "no sleep", "naps", "yields", "membar", "syscalls", "csw", "P cpu%",
    "C cpu%",
];

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn coordinator() -> Res<()> {
    install_interrupt_handler();
    remove_stale_rings();
    let quick = std::env::var_os("RING_BENCH_QUICK").is_some_and(|v| v != "0");
    let scale = if quick {
        Scale { reps: 3, bytes: [32 * MIB, 128 * MIB, 128 * MIB], m64_copies: 4, lat_samples: 2000 }
    } else {
        Scale { reps: 5, bytes: [256 * MIB, GIB, GIB], m64_copies: 16, lat_samples: 5000 }
    };
    let only: Option<Vec<String>> =
        std::env::var("RING_BENCH_ONLY").ok().map(|v| v.split(',').map(|w| w.trim().to_ascii_lowercase()).collect());
    let wanted = |what: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| w == what));
    let named_policy = |w: &String| POLICIES.iter().any(|p| p.arg() == w);
    let policy_wanted =
        |p: Policy| only.as_ref().is_none_or(|o| !o.iter().any(named_policy) || o.iter().any(|w| w == p.arg()));
    let cpus = choose_cpus();
    let t_start = Instant::now();
    eprintln!(
        "ring bench: {} repetitions; producer on {}, consumers on {} (progress on stderr, table at the end)",
        scale.reps,
        cpus.producer.map_or("any CPU".to_string(), |c| format!("CPU {c}")),
        cpus.consumer.map_or("any CPU".to_string(), |c| format!("CPU {c}")),
    );
    if policy_wanted(Policy::Frib) {
        if let Err(e) = frib_helper() {
            eprintln!("ring bench: {e}; the FRIB column will say so");
        }
    }

    let runs: Vec<(usize, usize, usize)> = (0..RECORD_SIZES.len())
        .flat_map(|si| (0..CONSUMER_COUNTS.len()).map(move |ci| (si, ci)))
        .filter(|&(si, ci)| wanted(&case_name(RECORD_SIZES[si], CONSUMER_COUNTS[ci])))
        .flat_map(|(si, ci)| (0..POLICIES.len()).map(move |pi| (pi, si, ci)))
        .filter(|&(pi, si, ci)| {
            policy_wanted(POLICIES[pi]) && applies(POLICIES[pi], RECORD_SIZES[si], CONSUMER_COUNTS[ci])
        })
        .collect();
    let sizes_used: Vec<usize> = (0..RECORD_SIZES.len()).filter(|&si| runs.iter().any(|&(_, s, _)| s == si)).collect();
    let lat_kinds = if wanted("lat") {
        1 + [Policy::Event, Policy::Legacy].iter().filter(|&&p| policy_wanted(p)).count()
    } else {
        0
    };
    let runs_per_rep = 1 + sizes_used.len() + runs.len() + lat_kinds;
    let total_runs = (runs_per_rep * scale.reps) as u64;
    let mut progress = Progress::new("ring bench", Stream::Stderr, Duration::from_secs(10));
    let mut runs_done = 0u64;
    let mut next_run = |progress: &mut Progress, rep: usize, what: &str| {
        let detail =
            format!("repetition {} of {}: {what} ({:.0} s)", rep + 1, scale.reps, t_start.elapsed().as_secs_f64());
        progress.update(runs_done, Some(total_runs), &detail);
        runs_done += 1;
    };
    let mut m64 = Series::default();
    let mut copy: [Series; 3] = Default::default();
    // [policy][size][consumers]: the rates, and each successful run's waiting costs.
    let grid = |_: ()| -> Vec<Vec<Vec<Series>>> {
        (0..POLICIES.len())
            .map(|_| {
                (0..RECORD_SIZES.len())
                    .map(|_| (0..CONSUMER_COUNTS.len()).map(|_| Series::default()).collect())
                    .collect()
            })
            .collect()
    };
    let mut tput = grid(());
    let mut costs: Vec<Vec<Vec<Vec<RepCosts>>>> =
        vec![vec![vec![Vec::new(); CONSUMER_COUNTS.len()]; RECORD_SIZES.len()]; POLICIES.len()];
    // [daqflow, legacy, raw futex]
    let mut lat_p50: [Series; 3] = Default::default();
    let mut lat_p99: [Series; 3] = Default::default();
    let mut lat_all: [Vec<u64>; 3] = Default::default();

    // Repetitions are the outer loop so that a noisy minute hits every configuration.
    for rep in 0..scale.reps {
        next_run(&mut progress, rep, "M64 memcpy reference");
        m64.add(m64_run(cpus, scale.m64_copies));
        for &si in &sizes_used {
            next_run(&mut progress, rep, &format!("copy limit, {}", fmt_size(RECORD_SIZES[si])));
            copy[si].add(copy_run(cpus, RECORD_SIZES[si], bytes_for(&scale, si, 1)));
        }
        for &(pi, si, ci) in &runs {
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Err("interrupted".to_string());
            }
            let (rec, nc, policy) = (RECORD_SIZES[si], CONSUMER_COUNTS[ci], POLICIES[pi]);
            next_run(&mut progress, rep, &format!("throughput {} {}", case_name(rec, nc), policy.arg()));
            let run = throughput_run(cpus, policy, rec, nc, bytes_for(&scale, si, nc));
            if let Ok(run) = &run {
                costs[pi][si][ci].push((run.rate, per_mb(run), run.host));
            }
            tput[pi][si][ci].add(run.map(|r| r.rate));
        }
        for pi in 0..3 {
            if !wanted("lat") {
                break;
            }
            if pi < 2 && !policy_wanted(POLICIES[pi]) {
                continue;
            }
            next_run(&mut progress, rep, &format!("latency {}", if pi < 2 { POLICIES[pi].arg() } else { "raw futex" }));
            let run = if pi < 2 {
                latency_run(cpus, POLICIES[pi], scale.lat_samples)
            } else {
                futex_run(cpus, scale.lat_samples)
            };
            match run {
                Ok(mut v) => {
                    v.sort_unstable();
                    lat_p50[pi].values.push(percentile(&v, 0.50) as f64);
                    lat_p99[pi].values.push(percentile(&v, 0.99) as f64);
                    lat_all[pi].extend_from_slice(&v);
                }
                Err(e) => {
                    progress.println(&format!("ring bench: latency run failed: {e}"));
                    lat_p50[pi].errors.push(e.clone());
                    lat_p99[pi].errors.push(e);
                }
            }
        }
        progress.println(&format!(
            "ring bench: repetition {} of {} done ({:.0} s)",
            rep + 1,
            scale.reps,
            t_start.elapsed().as_secs_f64()
        ));
    }
    progress.finish("");

    // ---- the tables
    let gb = 1e9;
    let m64_med = m64.median();
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let show_ratio = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.2}"));
    let (event, legacy, batch, frib) = (0, 1, 2, 3);
    line(String::new());
    line(format!(
        "daqflow ring benchmark: 8 MiB ring (NSCLDAQ default), producer {} / consumers {}, median [min, max] xspread of {} repetitions{}",
        cpus.producer.map_or("unpinned".to_string(), |c| format!("CPU {c}")),
        cpus.consumer.map_or("unpinned".to_string(), |c| format!("CPU {c}")),
        scale.reps,
        if quick { " (QUICK: fewer bytes)" } else { "" }
    ));
    line(format!("M64 memcpy reference (64 MiB -> 64 MiB, 1 thread): {} GB/s", m64.show(gb, 2)));
    line(String::new());
    line("Throughput, payload GB/s at the producer with every consumer copying and checking every byte".to_string());
    line(format!(
        "{:<7} {:>4}  {:<32} {:<32} {:>8} {:>7}",
        "record", "cons", "daqflow (event)", "legacy (3 ms polling)", "x legacy", "x M64"
    ));
    for (si, &rec) in RECORD_SIZES.iter().enumerate() {
        for (ci, &nc) in CONSUMER_COUNTS.iter().enumerate() {
            let (e, l) = (&tput[event][si][ci], &tput[legacy][si][ci]);
            line(format!(
                "{:<7} {:>4}  {:<32} {:<32} {:>8} {:>7}",
                fmt_size(rec),
                nc,
                e.show(gb, 2),
                l.show(gb, 2),
                show_ratio(ratio(e.median(), l.median())),
                show_ratio(ratio(e.median(), m64_med)),
            ));
        }
    }
    line(String::new());
    line(
        "1 -> 1 against the same run's other references, GB/s (FRIB: nscldaq_ringbuffer 0.8.9, 100 us polling;"
            .to_string(),
    );
    line("copy limit: one thread copying each record into an 8 MiB buffer and back out)".to_string());
    line(format!(
        "{:<7}  {:<32} {:<32} {:<32} {:>6} {:>6}",
        "record", "daqflow (event)", "FRIB crate", "copy limit", "x FRIB", "x copy"
    ));
    for (si, &rec) in RECORD_SIZES.iter().enumerate() {
        let (e, f) = (&tput[event][si][0], &tput[frib][si][0]);
        line(format!(
            "{:<7}  {:<32} {:<32} {:<32} {:>6} {:>6}",
            fmt_size(rec),
            e.show(gb, 2),
            f.show(gb, 2),
            copy[si].show(gb, 2),
            show_ratio(ratio(e.median(), f.median())),
            show_ratio(ratio(e.median(), copy[si].median())),
        ));
    }
    line(String::new());
    line("64 B records, million records/s".to_string());
    let mrec = 64.0 * 1e6;
    line(format!("  1 -> 1   single put {}", tput[event][0][0].show(mrec, 1)));
    line(format!(
        "           batch put  {} ({BATCH_RECORDS} records per put_vectored)",
        tput[batch][0][0].show(mrec, 1)
    ));
    line(format!("           FRIB crate {}", tput[frib][0][0].show(mrec, 1)));
    for (ci, &nc) in CONSUMER_COUNTS.iter().enumerate() {
        line(format!(
            "  1 -> {:<2}  daqflow {:<30} legacy {}",
            nc,
            tput[event][0][ci].show(mrec, 1),
            tput[legacy][0][ci].show(mrec, 1)
        ));
    }
    line(String::new());
    line("What waiting cost, per MB moved (medians over repetitions; consumers summed over all of them):".to_string());
    line(
        "sleeps = futex waits that slept (woken or timed out), or the legacy policy's 3 ms sleeps; wakes = futex"
            .to_string(),
    );
    line(
        "wakes; then both sides: no sleep = futex waits that returned at once (the word had moved), naps = a"
            .to_string(),
    );
    line(
        "streaming consumer's timed sleeps nobody wakes, yields, membar = membarriers, syscalls = all of those"
            .to_string(),
    );
    line(
        "(+ the legacy sleeps), csw = voluntary context switches; P cpu% and C cpu% = the CPU time the producer and"
            .to_string(),
    );
    line(
        "the consumers (summed) used, as % of the run's time (consumers share one CPU: near 100 = that CPU is full)."
            .to_string(),
    );
    line("FRIB's crate is not instrumented: its csw are its 100 us sleeps.".to_string());
    let header: Vec<String> = COST_COLUMNS.iter().map(|c| format!("{c:>9}")).collect();
    line(format!("{:<7} {:>4} {:<7}{}", "record", "cons", "policy", header.join("")));
    let cell = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    for (si, &rec) in RECORD_SIZES.iter().enumerate() {
        for (ci, &nc) in CONSUMER_COUNTS.iter().enumerate() {
            for (pi, policy) in POLICIES.iter().enumerate() {
                let runs = &costs[pi][si][ci];
                if runs.is_empty() {
                    continue;
                }
                let m: Vec<String> = (0..COSTS)
                    .map(|k| format!("{:>9}", cell(median_of(runs.iter().map(|r| r.1[k]).collect()))))
                    .collect();
                line(format!("{:<7} {:>4} {:<7}{}", fmt_size(rec), nc, policy.arg(), m.join("")));
            }
        }
    }
    line(
        "Each 1 -> 1 repetition, event (e), legacy (l), batch (b), FRIB (f): GB/s beside the host's cross-CPU cache-line"
            .to_string(),
    );
    line(
        "round trip (bounce, ns) and the two CPUs' copy rate together over one alone (pair: ~0.5 when the host runs"
            .to_string(),
    );
    line(
        "both vCPUs on one physical core) just before it, the hypervisor's steal during it (% of CPU time), costs per MB"
            .to_string(),
    );
    line(format!(
        "{:<7} {:>4} {:>7} {:>7} {:>5} {:>7}{}",
        "record",
        "run",
        "GB/s",
        "bounce",
        "pair",
        "steal%",
        header.join("")
    ));
    for (si, &rec) in RECORD_SIZES.iter().enumerate() {
        for (pi, policy) in POLICIES.iter().enumerate() {
            for (rep, (rate, c, host)) in costs[pi][si][0].iter().enumerate() {
                let m: Vec<String> = c.iter().map(|v| format!("{v:>9.2}")).collect();
                let run = format!("{}#{}", &policy.arg()[..1], rep + 1);
                line(format!(
                    "{:<7} {:>4} {:>7.2} {:>7.0} {:>5.2} {:>7.1}{}",
                    fmt_size(rec),
                    run,
                    rate / gb,
                    host.bounce_ns,
                    host.pair,
                    host.steal_pct,
                    m.join("")
                ));
            }
        }
    }
    line(String::new());
    line(format!(
        "1 -> 1 by where the host ran the two vCPUs just before each repetition (bounce < {APART_NS} ns: one die; else"
    ));
    line("dies apart): median GB/s [min, max] xspread (repetitions) of each group".to_string());
    line(format!("{:<7} {:<7} {:<36} {:<36}", "record", "policy", "one die", "dies apart"));
    for (si, &rec) in RECORD_SIZES.iter().enumerate() {
        for (pi, policy) in POLICIES.iter().enumerate() {
            let runs = &costs[pi][si][0];
            if runs.is_empty() {
                continue;
            }
            let group = |apart: bool| {
                let values: Vec<f64> =
                    runs.iter().filter(|(_, _, h)| (h.bounce_ns >= APART_NS) == apart).map(|(r, _, _)| *r).collect();
                let n = values.len();
                let s = Series { values, errors: Vec::new() };
                if n == 0 { "-".to_string() } else { format!("{} ({n})", s.show(gb, 2)) }
            };
            line(format!("{:<7} {:<7} {:<36} {:<36}", fmt_size(rec), policy.arg(), group(false), group(true)));
        }
    }
    line(String::new());
    line(format!(
        "Wake-up latency, us (put of a 64 B record every 200-280 us to a sleeping consumer; {} samples per repetition)",
        scale.lat_samples
    ));
    line(
        "(futex: raw cross-process futex wake in the same run, the floor for any sleeping consumer on this host)"
            .to_string(),
    );
    line(format!("{:<8} {:<30} {:<30} {:>10} {:>10}", "policy", "p50", "p99", "p99.9 all", "max all"));
    for (pi, name) in ["daqflow", "legacy", "futex"].iter().enumerate() {
        let mut all = lat_all[pi].clone();
        all.sort_unstable();
        line(format!(
            "{:<8} {:<30} {:<30} {:>10.1} {:>10.1}",
            name,
            lat_p50[pi].show(1e3, 1),
            lat_p99[pi].show(1e3, 1),
            percentile(&all, 0.999) as f64 / 1e3,
            all.last().copied().unwrap_or(0) as f64 / 1e3
        ));
    }
    line(String::new());
    line("Targets of issue 13 (this run; the benchmark reports, it does not fail)".to_string());
    let mut target = |ok: Option<bool>, what: String| line(format!("  {:<14} {what}", verdict(ok)));
    let one = 0; // index of 1 consumer
    for si in [1, 2] {
        let size = fmt_size(RECORD_SIZES[si]);
        let e = tput[event][si][one].median();
        let r = ratio(e, tput[legacy][si][one].median());
        target(r.map(|r| r >= 5.0), format!("1 -> 1, {size}: >= 5 x legacy ({} x)", show_ratio(r)));
        let r = ratio(e, tput[frib][si][one].median());
        target(r.map(|r| r >= 1.0), format!("1 -> 1, {size}: >= the FRIB crate ({} x FRIB)", show_ratio(r)));
    }
    let r = ratio(tput[event][2][one].median(), copy[2].median());
    target(r.map(|r| r >= 0.8), format!("1 -> 1, 64 KiB: >= 0.8 x the copy limit ({} x)", show_ratio(r)));
    let r = ratio(tput[event][0][one].median(), tput[legacy][0][one].median());
    target(r.map(|r| r >= 2.0), format!("1 -> 1, 64 B: >= 2 x legacy ({} x)", show_ratio(r)));
    let recs = tput[batch][0][one].median().map(|b| b / mrec);
    let single = tput[event][0][one].median().map(|b| b / mrec);
    let m = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    target(
        recs.map(|r| r >= 50.0),
        format!("1 -> 1, 64 B batch put: >= 50 M records/s ({} M/s; single put {} M/s)", m(recs), m(single)),
    );
    for (si, &rec) in RECORD_SIZES.iter().enumerate() {
        let spread = tput[event][si][one].spread();
        target(
            spread.map(|s| s <= 1.5),
            format!(
                "1 -> 1, {}: spread (max/min) <= 1.5 ({})",
                fmt_size(rec),
                spread.map_or("n/a".to_string(), |s| format!("{s:.2}"))
            ),
        );
    }
    let spread = tput[batch][0][one].spread();
    target(
        spread.map(|s| s <= 1.5),
        format!("1 -> 1, 64 B batch put: spread <= 1.5 ({})", spread.map_or("n/a".to_string(), |s| format!("{s:.2}"))),
    );
    let sixteen = CONSUMER_COUNTS.len() - 1;
    for (si, &rec) in RECORD_SIZES.iter().enumerate() {
        let r = ratio(tput[event][si][sixteen].median(), tput[legacy][si][sixteen].median());
        target(r.map(|r| r >= 1.5), format!("1 -> 16, {}: >= 1.5 x legacy ({} x)", fmt_size(rec), show_ratio(r)));
    }
    let r = ratio(lat_p50[0].median(), lat_p50[2].median());
    target(r.map(|r| r <= 1.1), format!("wake-up p50 <= 1.1 x raw futex p50 ({} x)", show_ratio(r)));
    let p99 = lat_p99[0].median().map(|v| v / 1e3);
    target(
        p99.map(|v| v <= 500.0),
        format!("wake-up p99 no worse than before: <= 500 us, issue 2's bound ({} us)", m(p99)),
    );
    let failed: usize = tput.iter().flatten().flatten().map(|s| s.errors.len()).sum::<usize>()
        + m64.errors.len()
        + copy.iter().map(|s| s.errors.len()).sum::<usize>()
        + lat_p50.iter().map(|s| s.errors.len()).sum::<usize>();
    line(format!("{} failed run(s); total time {:.0} s", failed, t_start.elapsed().as_secs_f64()));
    print!("{out}");
    let _ = std::io::stdout().flush();
    Ok(())
}

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C or a kill stops the run at the next check instead of killing us outright,
/// so that guards run: children are killed and rings removed.
fn install_interrupt_handler() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(SigHandler::Handler(on_interrupt), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            eprintln!("ring bench: cannot handle {sig}: {e} (an interrupted run may leave its ring behind)");
        }
    }
}
