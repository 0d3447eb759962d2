//! The feeder: copies one remote ring's byte stream into its local proxy ring, as the
//! proxy's producer, one whole item at a time.
//!
//! The proxy's single producer slot is the lock that keeps one feeder per (host, ring):
//! a second feeder finds it taken and leaves. Data goes straight from the socket into
//! reserved ring memory; only the bytes up to the last complete item are committed. The
//! tail of a partial item stays where it was read, just past the put pointer (nothing
//! else writes there), and the next reservation, which starts at the put pointer again,
//! covers it: no copy, no extra buffer.

use std::fs::File;
use std::io::{self, IoSliceMut, Write};
use std::time::{Duration, Instant};

use super::framing::Framer;
use super::source::Source;
use crate::error::{Error, Result};
use crate::ring::{self, CreateOptions, Producer, Span};

/// How long each network step may take (locating, connecting, the reply).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a busy or blocked feeder looks at its proxy ring's consumers.
const TICK: Duration = Duration::from_secs(1);
/// A feeder whose proxy has had no consumer for this long stops.
const IDLE_EXIT: Duration = Duration::from_secs(30);
/// Reconnection delays grow from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Bytes reserved per read: large enough that a fast stream needs few system calls.
const CHUNK: u64 = 1 << 20;

/// What to feed from where.
#[derive(Debug, Clone)]
pub struct Plan {
    pub host: String,
    pub portmgr_port: Option<u16>,
    pub ring: String,
    pub proxy: String,
}

/// How a feeder tells the process that started it whether it got going.
pub struct Ready(Option<File>);

/// The first word of the line a feeder reports.
pub const READY_OK: &str = "OK";
pub const READY_BUSY: &str = "BUSY";
pub const READY_ERROR: &str = "ERROR";

impl Ready {
    pub fn new(pipe: Option<File>) -> Ready {
        Ready(pipe)
    }

    fn say(&mut self, line: &str) {
        if let Some(mut pipe) = self.0.take() {
            let _ = pipe.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// Why a pumping session ended.
enum End {
    /// The stream broke (closed, reset, timed out, garbage): reconnect. True when it
    /// had delivered whole items first.
    Lost(Error, bool),
    /// The proxy is gone or broken: stop.
    Done(String),
    /// Nobody has read the proxy for a while: stop, unless someone just came.
    Idle(String),
}

/// Runs a feeder until its proxy is no longer wanted. Errors before the first byte
/// flows are reported through `ready` and returned.
pub fn run(plan: &Plan, mut ready: Ready) -> Result<()> {
    let started = (|| {
        match ring::create(&plan.proxy, CreateOptions { mode: super::geometry::PROXY_MODE, ..CreateOptions::default() })
        {
            Err(e) if e.errno() != libc::EEXIST => return Err(e),
            _ => {}
        }
        Producer::attach(&plan.proxy)
    })();
    let mut producer = match started {
        Ok(p) => p,
        Err(e) if e.errno() == libc::EACCES => {
            // Another feeder holds the slot: it feeds this proxy already.
            ready.say(READY_BUSY);
            return Ok(());
        }
        Err(e) => {
            ready.say(&format!("{READY_ERROR} {} {}", e.errno(), e.message()));
            return Err(e);
        }
    };
    let mut source = match Source::open(&plan.host, plan.portmgr_port, &plan.ring, STEP_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            // Free the slot first: whoever reads the report may start another feeder.
            drop(producer);
            ready.say(&format!("{READY_ERROR} {} {}", e.errno(), e.message()));
            return Err(e);
        }
    };
    ready.say(READY_OK);
    let mut watch = Watch::new(&plan.proxy);
    // Reset only by a stream that delivered something: one that breaks at once (garbage,
    // an item larger than the proxy) is asked for again less and less often.
    let mut delay = RETRY_FIRST;
    loop {
        let why = match pump(&mut producer, &mut source, &mut watch) {
            End::Done(why) => return log_done(plan, &why),
            End::Idle(why) => match hand_over(plan, producer, &mut watch) {
                Some(kept) => {
                    producer = kept;
                    continue;
                }
                None => return log_done(plan, &why),
            },
            End::Lost(e, delivered) => {
                if delivered {
                    delay = RETRY_FIRST;
                }
                e
            }
        };
        log(plan, &format!("stream lost ({}); reconnecting in {} ms", why.message(), delay.as_millis()));
        source = loop {
            match watch.unwanted() {
                Some(End::Idle(why)) => match hand_over(plan, producer, &mut watch) {
                    Some(kept) => producer = kept,
                    None => return log_done(plan, &why),
                },
                Some(End::Done(why)) => return log_done(plan, &why),
                Some(End::Lost(..)) | None => {}
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(RETRY_MAX);
            match Source::open(&plan.host, plan.portmgr_port, &plan.ring, STEP_TIMEOUT) {
                Ok(s) => break s,
                Err(e) => log(plan, &format!("reconnecting: {}", e.message())),
            }
        };
        log(plan, "reconnected");
    }
}

fn log(plan: &Plan, what: &str) {
    eprintln!("daqflow-feeder {}/{} -> {}: {what}", plan.host, plan.ring, plan.proxy);
}

/// Gives the proxy's producer slot up, then looks once more for consumers: one that
/// attached before the slot was free may have seen our producer and started no feeder,
/// so we carry on for it (unless another feeder took the slot meanwhile). One that
/// attaches later sees no producer and starts a feeder itself.
fn hand_over(plan: &Plan, producer: Producer, watch: &mut Watch) -> Option<Producer> {
    let _ = producer.detach();
    let readers = ring::usage(&plan.proxy).is_ok_and(|u| u.consumers.iter().any(|c| c.pid > 0));
    let kept = if readers { Producer::attach(&plan.proxy).ok() } else { None };
    if kept.is_some() {
        log(plan, "a consumer came as we were stopping; carrying on");
        watch.reset();
    }
    kept
}

fn log_done(plan: &Plan, why: &str) -> Result<()> {
    log(plan, &format!("stopping: {why}"));
    Ok(())
}

/// Copies the stream into the proxy until it breaks or the proxy is no longer wanted.
fn pump(producer: &mut Producer, source: &mut Source, watch: &mut Watch) -> End {
    let capacity = producer.geometry().capacity();
    let mut framer = Framer::new(capacity);
    // Bytes of an unfinished item already in ring memory just past the put pointer.
    let mut pending: u64 = 0;
    let mut delivered = false;
    if let Err(e) = source.set_read_timeout(TICK) {
        return End::Lost(e, delivered);
    }
    loop {
        if let Some(end) = watch.due().then(|| watch.unwanted()).flatten() {
            return end;
        }
        // As much as is free, up to a chunk (or the rest of a large item), and at least
        // one byte past what is already there: waiting for a whole chunk of space would
        // stall on a proxy not much larger than a chunk.
        let most = (pending + framer.to_complete().unwrap_or(0).max(CHUNK)).min(capacity);
        let free = producer.available_space().unwrap_or(0);
        let want = if free > pending { most.min(free) } else { pending + 1 };
        // Back-pressure: this sleeps (on the ring's wake-ups) until consumers make room.
        let spans = match producer.reserve(want, Some(TICK)) {
            Ok(spans) => spans,
            Err(e) if e.errno() == libc::ETIMEDOUT => continue,
            Err(e) => return End::Done(format!("the proxy ring failed: {}", e.message())),
        };
        let mut fresh = past(spans, pending);
        // The stream is read straight into ring memory (no copy on the way); this and the
        // framer's look at the bytes read are the only references to ring memory formed
        // outside the ring core, each for one call.
        let mut bufs: Vec<IoSliceMut<'_>> = fresh
            .iter_mut()
            .filter(|s| s.len > 0)
            // SAFETY: each fresh span lies inside the reservation (`past` only shortens
            // them), which stays mapped while `producer` lives and is ours alone to
            // write until `commit`: consumers read only committed bytes, and the slices
            // are dropped before the commit below.
            .map(|s| IoSliceMut::new(unsafe { std::slice::from_raw_parts_mut(s.ptr, s.len) }))
            .collect();
        let read = source.read_vectored(&mut bufs);
        drop(bufs);
        let n = match read {
            Ok(0) => {
                let _ = producer.commit(0);
                return End::Lost(Error::new(libc::ECONNRESET, "the ring master closed the stream"), delivered);
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                let _ = producer.commit(0);
                continue;
            }
            Err(e) => {
                // A proxy truncated under the read gives EFAULT (the kernel's copy does
                // not raise SIGBUS): the commit tells it from a broken stream.
                if let Err(ring) = producer.commit(0) {
                    return End::Done(format!("the proxy ring failed: {}", ring.message()));
                }
                return End::Lost(Error::io(&e, "reading the stream"), delivered);
            }
        };
        let mut left = n;
        for span in fresh {
            let take = left.min(span.len);
            // SAFETY: inside the reservation, as above, and initialised: the first `n`
            // bytes of the fresh spans were just written by the read; nobody else writes
            // them before our commit, which comes after the slice is gone.
            let bytes = unsafe { std::slice::from_raw_parts(span.ptr, take) };
            if let Err(e) = framer.feed(bytes) {
                // Out of step with the items: nothing more from this stream is trusted.
                let _ = producer.commit(0);
                return End::Lost(e, delivered);
            }
            left -= take;
        }
        pending += n as u64;
        let whole = pending - framer.partial();
        if let Err(e) = producer.commit(whole) {
            return End::Done(format!("the proxy ring failed: {}", e.message()));
        }
        delivered |= whole > 0;
        pending -= whole;
    }
}

/// The part of a reservation after its first `skip` bytes.
fn past(spans: [Span; 2], skip: u64) -> [Span; 2] {
    let skip = skip as usize;
    let [a, b] = spans;
    // Pointer arithmetic only (no access): the spans stay inside the reservation, as the
    // reservation covers more than `skip` bytes.
    if skip < a.len {
        [Span { ptr: a.ptr.wrapping_add(skip), len: a.len - skip }, b]
    } else {
        let into_b = skip - a.len;
        [Span { ptr: b.ptr.wrapping_add(into_b), len: b.len - into_b }, Span { ptr: b.ptr, len: 0 }]
    }
}

/// Whether anyone still reads the proxy ring, checked once per tick.
struct Watch {
    proxy: String,
    last_check: Instant,
    last_reader: Instant,
}

impl Watch {
    fn new(proxy: &str) -> Watch {
        Watch { proxy: proxy.to_string(), last_check: Instant::now(), last_reader: Instant::now() }
    }

    fn due(&self) -> bool {
        self.last_check.elapsed() >= TICK
    }

    /// Why the feeder should stop, if it should (`Idle` or `Done`).
    fn unwanted(&mut self) -> Option<End> {
        self.last_check = Instant::now();
        match ring::usage(&self.proxy) {
            // Removed and made again: the consumers are on a ring we no longer feed.
            Ok(usage) if usage.producer_pid != std::process::id() as i32 => Some(End::Done(format!(
                "proxy ring {} was replaced (its producer is now {})",
                self.proxy, usage.producer_pid
            ))),
            Ok(usage) if usage.consumers.iter().any(|c| c.pid > 0) => {
                self.last_reader = Instant::now();
                None
            }
            Ok(_) if self.last_reader.elapsed() >= IDLE_EXIT => {
                Some(End::Idle(format!("proxy ring {} has had no consumer for {} s", self.proxy, IDLE_EXIT.as_secs())))
            }
            Ok(_) => None,
            Err(e) if e.errno() == libc::ENOENT => Some(End::Done(format!("proxy ring {} was removed", self.proxy))),
            Err(_) => None,
        }
    }

    fn reset(&mut self) {
        self.last_reader = Instant::now();
    }
}
