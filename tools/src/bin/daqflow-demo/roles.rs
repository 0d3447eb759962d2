//! The demo's producer and consumer processes.

use std::io::Write;
use std::time::{Duration, Instant};

use daqflow::ring::{Consumer, Producer};

use crate::discovery;
use crate::items::{self, BEGIN_RUN, END_RUN, HEADER, PHYSICS_EVENT};

/// Longest any single put or get may wait: a stuck peer fails the demo, never hangs it.
const STALL: Duration = Duration::from_secs(30);

/// How long the producer goes on: a number of bytes, or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Bytes(u64),
    Time(Duration),
}

impl Limit {
    /// `<n>MiB` or `<n>s`, as the demo passes it on a producer's command line.
    pub fn parse(text: &str) -> Option<Limit> {
        if let Some(mb) = text.strip_suffix("MiB") {
            mb.parse::<u64>().ok().filter(|&m| m > 0).and_then(|m| m.checked_mul(1 << 20)).map(Limit::Bytes)
        } else {
            let secs = text.strip_suffix('s')?.parse::<u64>().ok().filter(|&s| s > 0)?;
            Some(Limit::Time(Duration::from_secs(secs)))
        }
    }

    pub fn arg(&self) -> String {
        match self {
            Limit::Bytes(b) => format!("{}MiB", b >> 20),
            Limit::Time(t) => format!("{}s", t.as_secs()),
        }
    }

    fn reached(&self, sent: u64, start: Instant) -> bool {
        match *self {
            Limit::Bytes(b) => sent >= b,
            Limit::Time(t) => start.elapsed() >= t,
        }
    }
}

/// A producer's progress line on its stdout, read by the demo: `sent <bytes>`.
pub const SENT: &str = "sent ";
const SENT_EVERY: Duration = Duration::from_millis(50);

/// Advertises the ring under `service`, waits for `consumers` to attach, then puts
/// events until `limit`, between a begin-run and an end-run item, telling its progress.
pub fn produce(ring: &str, limit: Limit, service: &str, consumers: usize) -> Result<String, String> {
    let mut producer = Producer::attach(ring).map_err(|e| e.to_string())?;
    let advert = discovery::advertise(service, ring)?;
    // Consumers see only data put after they join.
    let deadline = Instant::now() + STALL;
    while daqflow::ring::usage(ring).map_err(|e| e.to_string())?.consumers.len() < consumers {
        if Instant::now() > deadline {
            return Err(format!("only some of {consumers} consumers attached within {STALL:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut item = Vec::with_capacity(16 * 1024);
    let put = |p: &mut Producer, item: &[u8]| p.put(item, Some(STALL)).map_err(|e| e.to_string());
    items::encode(&mut item, BEGIN_RUN, 0, HEADER + 8);
    put(&mut producer, &item)?;
    let start = Instant::now();
    let (mut seq, mut sent) = (0u64, 0u64);
    let mut told = start;
    while !limit.reached(sent, start) {
        let size = items::event_size(seq);
        items::encode(&mut item, PHYSICS_EVENT, seq, size);
        put(&mut producer, &item)?;
        sent += size as u64;
        seq += 1;
        if told.elapsed() >= SENT_EVERY {
            told = Instant::now();
            tell(&format!("{SENT}{sent}"))?;
        }
    }
    // The exact total, which the demo's summary uses.
    tell(&format!("{SENT}{sent}"))?;
    let secs = start.elapsed().as_secs_f64();
    items::encode(&mut item, END_RUN, seq, HEADER + 8);
    put(&mut producer, &item)?;
    producer.detach().map_err(|e| e.to_string())?;
    drop(advert);
    Ok(format!(
        "producer  pid {:>7}: {seq} events, {:.1} MB in {secs:.2} s = {:.0} MB/s",
        std::process::id(),
        sent as f64 / 1e6,
        sent as f64 / 1e6 / secs
    ))
}

/// A line to the demo, at once (stdout is a pipe, so it would otherwise wait in a buffer).
fn tell(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| format!("cannot tell the demo: {e}"))
}

/// Finds the ring through the producer's `service`, then reads items until the end-run
/// item, checking every event's size, order and bytes.
pub fn consume(service: &str) -> Result<String, String> {
    let (port, ring) = discovery::find_ring(service, STALL)?;
    let mut consumer = Consumer::attach(&ring).map_err(|e| e.to_string())?;
    let slot = consumer.slot();
    let mut body = vec![0u8; 64 * 1024];
    let (mut expect, mut bytes) = (0u64, 0u64);
    let mut start = Instant::now();
    loop {
        let mut head = [0u8; HEADER];
        consumer.get(&mut head, HEADER as u64, Some(STALL)).map_err(|e| format!("slot {slot}: {e}"))?;
        let (size, kind) = items::header(&head);
        if size < HEADER || size > body.len() {
            return Err(format!("slot {slot}: item of impossible size {size} after event {expect}"));
        }
        let body = &mut body[..size - HEADER];
        consumer.get(body, body.len() as u64, Some(STALL)).map_err(|e| format!("slot {slot}: {e}"))?;
        match kind {
            BEGIN_RUN => start = Instant::now(),
            PHYSICS_EVENT => {
                items::check_event(expect, size, body).map_err(|e| format!("slot {slot}: {e}"))?;
                expect += 1;
                bytes += size as u64;
            }
            END_RUN => {
                let sent = items::body_seq(body).unwrap_or(u64::MAX);
                if sent != expect {
                    return Err(format!("slot {slot}: producer sent {sent} events, {expect} arrived"));
                }
                break;
            }
            other => return Err(format!("slot {slot}: unknown item type {other}")),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    consumer.detach().map_err(|e| e.to_string())?;
    Ok(format!(
        "consumer  pid {:>7} slot {slot:>2} (found {ring} at port {port}): {expect} events, {:.1} MB in {secs:.2} s = {:.0} MB/s, every byte checked, in order",
        std::process::id(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs
    ))
}
