//! Claiming, releasing and reclaiming client slots, with NSCLDAQ's protocol: a plain
//! load-test-store under the legacy fcntl lock, consumers passing through pid 0 while
//! they copy the put pointer.
//!
//! Dead clients: a slot whose pid names no process is freed by whoever notices (an
//! attach that finds no free slot, a producer blocked on space, `usage`). A slot at
//! pid 0 seen while *we* hold the lock belongs to a joiner that died mid-join, since a
//! live joiner holds the lock for the whole join; NSCLDAQ hung forever on those.

use std::sync::atomic::Ordering;

use super::handles::{self, Claim};
use super::liveness::alive;
use super::shared::{FREE, JOINING, Record, Shared};
use super::shm::RingLock;
use crate::error::{Error, Result};

/// A pid no client writes: -1 is free, 0 joining, > 0 a process. Anything else is debris
/// from a hostile or broken writer and would block the slot forever.
fn dead(pid: i32) -> bool {
    pid == JOINING || pid < FREE || (pid > 0 && !alive(pid))
}

/// Frees the slots of dead clients. The lock proves it is held.
pub fn reap_dead(ring: &Shared, _lock: &RingLock<'_>) -> usize {
    let mut freed = 0;
    let producer = ring.producer();
    let pid = producer.pid.load(Ordering::SeqCst);
    if dead(pid) {
        release_record(producer);
        freed += 1;
    }
    for (_, record) in ring.consumers() {
        let pid = record.pid.load(Ordering::SeqCst);
        if dead(pid) {
            release_record(record);
            freed += 1;
        }
    }
    if freed > 0 {
        // A blocked producer may now have room.
        ring.space_signal().notify();
    }
    freed
}

pub fn release_record(record: Record<'_>) {
    record.waker.store(0, Ordering::SeqCst);
    record.pid.store(FREE, Ordering::SeqCst);
}

/// Makes `me` the producer, keeping the put pointer (it survives producer restarts).
pub fn claim_producer(ring: &Shared, me: i32) -> Result<Claim> {
    let (dev, ino) = ring.file.identity()?;
    let lock = ring.lock()?;
    let producer = ring.producer();
    let mut pid = producer.pid.load(Ordering::SeqCst);
    if dead(pid) {
        reap_dead(ring, &lock);
        pid = producer.pid.load(Ordering::SeqCst);
    }
    if pid != FREE {
        return Err(Error::new(libc::EACCES, format!("ring {} already has a producer (pid {pid})", ring.name())));
    }
    ring.put_pos()?;
    producer.waker.store(me, Ordering::SeqCst);
    producer.pid.store(me, Ordering::SeqCst);
    // Sleeping consumers were polling for a legacy producer; let them see this one.
    ring.data_signal().wake();
    Ok(Claim::new(dev, ino, handles::PRODUCER))
}

/// Claims a consumer slot for `me`; returns (slot, initial get pointer).
pub fn claim_consumer(ring: &Shared, me: i32) -> Result<(u32, u64, Claim)> {
    let (dev, ino) = ring.file.identity()?;
    let lock = ring.lock()?;
    // NSCLDAQ takes the lowest free slot; so do we.
    let find = || (0..ring.geo.max_consumers).find(|&s| ring.consumer(s).pid.load(Ordering::SeqCst) == FREE);
    let slot = match find() {
        Some(slot) => slot,
        None => {
            reap_dead(ring, &lock);
            find().ok_or_else(|| {
                Error::new(
                    libc::ENOMEM,
                    format!("ring {} has no free consumer slot (all {} taken)", ring.name(), ring.geo.max_consumers),
                )
            })?
        }
    };
    let record = ring.consumer(slot);
    record.pid.store(JOINING, Ordering::SeqCst);
    // Copy the put pointer until it reads back unchanged: from then on the producer
    // counts our backlog from a pointer it really had.
    let start = loop {
        let put = match ring.put_pos() {
            Ok(put) => put,
            Err(e) => {
                release_record(record);
                return Err(e);
            }
        };
        record.pos.store(put, Ordering::SeqCst);
        if ring.producer().pos.load(Ordering::SeqCst) == put {
            break put;
        }
    };
    record.waker.store(me, Ordering::SeqCst);
    record.pid.store(me, Ordering::SeqCst);
    drop(lock);
    Ok((slot, start, Claim::new(dev, ino, slot)))
}

/// Gives back a slot if it is still this handle's. The store needs no lock to be safe
/// (nobody claims a slot that is not free), but the lock is taken when it can be had so
/// legacy peers see the same sequence they would from NSCLDAQ.
pub fn release_own(ring: &Shared, record: Record<'_>, me: i32, claim: &Claim) {
    let _lock = ring.lock_for(std::time::Duration::from_millis(500));
    if claim.holds(record.pid, me) {
        release_record(record);
    }
}
