//! The demo's producer and consumer processes.

use std::time::{Duration, Instant};

use daqflow::ring::{Consumer, Producer};

use crate::discovery;
use crate::items::{self, BEGIN_RUN, END_RUN, HEADER, PHYSICS_EVENT};

/// Longest any single put or get may wait: a stuck peer fails the demo, never hangs it.
const STALL: Duration = Duration::from_secs(30);

/// Advertises the ring under `service`, waits for `consumers` to attach, then puts
/// events until `bytes` have gone, between a begin-run and an end-run item.
pub fn produce(ring: &str, bytes: u64, service: &str, consumers: usize) -> Result<String, String> {
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
    while sent < bytes {
        let size = items::event_size(seq);
        items::encode(&mut item, PHYSICS_EVENT, seq, size);
        put(&mut producer, &item)?;
        sent += size as u64;
        seq += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    items::encode(&mut item, END_RUN, seq, HEADER + 8);
    put(&mut producer, &item)?;
    producer.detach().map_err(|e| e.to_string())?;
    drop(advert);
    Ok(format!("producer  pid {:>7}: {seq} events, {:.1} MB in {secs:.2} s = {:.0} MB/s", std::process::id(), sent as f64 / 1e6, sent as f64 / 1e6 / secs))
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
