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
use super::liveness::{self, alive};
use super::shared::{FREE, JOINING, Shared};
use super::shm::RingLock;
use super::signal;
use super::{Role, installed_hooks};
use crate::error::{Error, Result};

/// A pid no client writes: -1 is free, 0 joining, > 0 a process. Anything else is debris
/// from a hostile or broken writer and would block the slot forever.
fn dead(pid: i32) -> bool {
    pid == JOINING || pid < FREE || (pid > 0 && !alive(pid))
}

/// Frees the slots of dead clients. The lock proves it is held.
pub fn reap_dead(ring: &Shared, _lock: &RingLock<'_>) -> usize {
    let mut freed = 0;
    if dead(ring.producer().pid.load(Ordering::SeqCst)) {
        release_producer(ring);
        freed += 1;
    }
    for (slot, record) in ring.consumers() {
        if dead(record.pid.load(Ordering::SeqCst)) {
            release_consumer(ring, slot);
            freed += 1;
        }
    }
    freed
}

/// Frees the producer's slot. Consumers asleep are woken: they slept long trusting
/// this producer to wake them, and must poll whoever comes next.
pub fn release_producer(ring: &Shared) {
    let producer = ring.producer();
    signal::set_producer_tag(producer.pad, None);
    producer.pid.store(FREE, Ordering::SeqCst);
    ring.data_signal().wake();
}

/// Frees a consumer's slot, waking the producer if it waits for this consumer's space.
pub fn release_consumer(ring: &Shared, slot: u32) {
    ring.consumer(slot).pid.store(FREE, Ordering::SeqCst);
    ring.space_request(slot).release();
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
    signal::set_producer_tag(producer.pad, Some(me));
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
                release_consumer(ring, slot);
                return Err(e);
            }
        };
        record.pos.store(put, Ordering::SeqCst);
        if ring.producer().pos.load(Ordering::SeqCst) == put {
            break put;
        }
    };
    record.pad.store(signal::consumer_word(me), Ordering::SeqCst);
    record.pid.store(me, Ordering::SeqCst);
    drop(lock);
    Ok((slot, start, Claim::new(dev, ino, slot)))
}

/// What a producer's or consumer's handle does as it lets go of its slot, once: the
/// client layer is told first (`announced`: it was told of the attach), the slot given back
/// whatever it said, and what it said returned. After fork() the child holds a copy of the
/// handle, and the slot is the parent's: nothing happens in the child.
pub fn let_go(ring: &Shared, role: Role, me: i32, claim: &Claim, attached: &mut bool, announced: bool) -> Result<()> {
    if !std::mem::take(attached) || liveness::my_pid() != me {
        return Ok(());
    }
    let told = match installed_hooks() {
        Some(hooks) if announced => hooks.detaching(ring.name(), role),
        _ => Ok(()),
    };
    let slot = match role {
        Role::Producer => None,
        Role::Consumer(slot) => Some(slot),
    };
    release_own(ring, slot, me, claim);
    told
}

/// Gives back a slot (the producer's when `slot` is `None`) if it is still this
/// handle's. The store needs no lock to be safe (nobody claims a slot that is not free),
/// but the lock is taken when it can be had so legacy peers see the same sequence they
/// would from NSCLDAQ.
pub fn release_own(ring: &Shared, slot: Option<u32>, me: i32, claim: &Claim) {
    let _lock = ring.lock_for(std::time::Duration::from_millis(500));
    let record = slot.map_or_else(|| ring.producer(), |slot| ring.consumer(slot));
    if claim.holds(record.pid, me) {
        release(ring, slot);
    }
}

/// Frees the producer's slot (`None`) or a consumer's.
pub fn release(ring: &Shared, slot: Option<u32>) {
    match slot {
        None => release_producer(ring),
        Some(slot) => release_consumer(ring, slot),
    }
}
