//! A client of FRIB's `nscldaq_ringbuffer` 0.8.9 (the crate from crates.io, used as its
//! documentation shows): see `daqflow_interop::peer` for the arguments and output. RING
//! is a name in /dev/shm or a path.

use std::sync::{Arc, Mutex};

use daqflow_interop::peer::{self, Args, Op, PATIENCE};
use nscldaq_ringbuffer::ringbuffer::{RingBufferMap, consumer, producer};

fn path(ring: &str) -> String {
    if ring.starts_with('/') { ring.to_string() } else { format!("/dev/shm/{ring}") }
}

fn run(a: &Args) -> Result<(), String> {
    let ring = Arc::new(Mutex::new(RingBufferMap::new(&path(&a.ring))?));
    match a.op {
        Op::Produce => {
            let mut p = producer::Producer::attach(&ring).map_err(|e| producer::error_string(&e))?;
            peer::transfer(a, || {
                peer::wait_for_consumers(a.consumers, || {
                    Ok(ring.lock().map_err(|e| e.to_string())?.get_usage().consumer_usage.len())
                })?;
                peer::produce(a.record, a.total, |data| {
                    p.timed_put(data, PATIENCE).map(drop).map_err(|e| producer::error_string(&e))
                })
            })
        }
        Op::Consume => {
            let mut c = consumer::Consumer::attach(&ring).map_err(|e| consumer::error_string(&e))?;
            peer::transfer(a, || {
                peer::consume(a.record, a.total, |buf| {
                    c.timed_get(buf, PATIENCE).map_err(|e| consumer::error_string(&e))
                })
            })
        }
    }
    // Dropping the Producer or Consumer frees its slot, as FRIB's clients do.
}

fn main() {
    peer::main(run);
}
