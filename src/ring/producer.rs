//! The producer side: copying puts and zero-copy reserve/commit.
//!
//! Free space is D - 1 minus the largest backlog among attached consumers. Scanning
//! every consumer record on each put would dominate small records, so the producer keeps
//! a lower bound (`free_hint`): consumers only ever move forward, and a consumer that
//! joins starts at the put pointer, so space known free stays free until we use it.

use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::fence;
use super::handles::Claim;
use super::liveness::my_pid;
use super::shared::{JOINING, Shared};
use super::signal;
use super::slots;
use super::span::Span;
use super::store_choice::StoreChoice;
use super::wait::{self, POLL_SLICE, Ticket, WOKEN_SLICE, Waiter};
use super::{Role, installed_hooks};
use crate::error::{Error, Result};

/// How often a producer blocked on space looks for dead consumers holding it back.
const REAP_EVERY: Duration = Duration::from_millis(200);
/// A batch put publishes at least this often, so consumers copy out the start of a long
/// batch while the producer is still writing the rest of it.
const BATCH_PUBLISH: u64 = 64 * 1024;

pub struct Producer {
    ring: Shared,
    pid: i32,
    /// Our put pointer; the copy in shared memory is published from it.
    put: u64,
    free_hint: u64,
    /// Bytes handed out by `reserve` and not yet committed.
    reserved: u64,
    claim: Claim,
    /// Publish with plain stores (see `fence`).
    light: bool,
    attached: bool,
    /// The local ring master (if any) was told about us.
    announced: bool,
    /// Whether copies store through the cache or around it (see `store_choice`).
    stores: StoreChoice,
}

/// The result of one scan of the consumer records.
struct Scan {
    free: u64,
    /// Every consumer that holds space back will wake us when it reads.
    all_wake: bool,
    /// The consumer with the largest backlog: the one to wait for.
    slowest: Option<u32>,
}

impl Producer {
    pub fn attach(name: &str) -> Result<Producer> {
        let hooks = installed_hooks();
        if let Some(hooks) = hooks {
            hooks.may_produce(name)?;
        }
        super::name::validate(name)?;
        let ring = Shared::open(name, true)?;
        let pid = my_pid();
        let claim = slots::claim_producer(&ring, pid)?;
        let put = ring.put_pos()?;
        let ring_capacity = ring.geo.capacity();
        let mut producer = Producer {
            ring,
            pid,
            put,
            free_hint: 0,
            reserved: 0,
            claim,
            light: fence::light_publish(),
            attached: true,
            announced: false,
            stores: StoreChoice::new(ring_capacity),
        };
        if let Some(hooks) = hooks {
            // On failure the slot is given back as `producer` drops.
            hooks.attached(name, Role::Producer)?;
            producer.announced = true;
        }
        Ok(producer)
    }

    pub fn name(&self) -> &str {
        self.ring.name()
    }

    pub fn geometry(&self) -> &super::layout::Geometry {
        &self.ring.geo
    }

    fn scan(&self) -> Result<Scan> {
        let geo = &self.ring.geo;
        let mut worst = 0;
        let mut all_wake = true;
        let mut slowest = None;
        for (slot, record) in self.ring.consumers() {
            let pid = record.pid.load(Ordering::SeqCst);
            // A joiner (pid 0) may already have copied an older put pointer and be about
            // to start reading from it, so its position counts too (NSCLDAQ waits for
            // joiners instead). A joiner that died there is reaped in housekeeping.
            if pid < JOINING {
                continue;
            }
            let get = self.ring.get_pos(slot)?;
            let backlog = geo.backlog(self.put, get);
            if backlog >= worst {
                worst = backlog;
                slowest = Some(slot);
            }
            all_wake &= signal::wakes(record.pad, pid);
        }
        Ok(Scan { free: geo.capacity() - worst, all_wake, slowest })
    }

    /// Bytes that can be put now without blocking.
    pub fn available_space(&self) -> Result<u64> {
        self.check_owner()?;
        let free = self.scan()?.free.saturating_sub(self.reserved);
        if free == 0 {
            // See `wait_space_slow`: legacy producers poll this instead of waiting.
            self.ring.intact_through(self.put, 0)?;
        }
        Ok(free)
    }

    #[inline]
    fn check_owner(&self) -> Result<()> {
        if self.claim.holds(self.ring.producer().pid, self.pid) { Ok(()) } else { Err(self.disconnected()) }
    }

    #[cold]
    fn disconnected(&self) -> Error {
        // A truncated ring reads as zeros, which looks like a freed slot.
        if let Err(e) = self.ring.truncation() {
            return e;
        }
        Error::new(
            libc::ENOTCONN,
            format!("this producer was disconnected from ring {} (its slot was freed by someone else)", self.name()),
        )
    }

    #[inline]
    fn too_big(&self, len: u64) -> Result<()> {
        let capacity = self.ring.geo.capacity();
        if len > capacity {
            return Err(Error::new(
                libc::EMSGSIZE,
                format!("{len} bytes can never fit in ring {}: it holds at most {capacity}", self.name()),
            ));
        }
        Ok(())
    }

    /// Waits until `len` bytes are free (after anything reserved).
    #[inline]
    fn wait_space(&mut self, need: u64, timeout: Option<Duration>) -> Result<()> {
        if need <= self.free_hint { Ok(()) } else { self.wait_space_slow(need, timeout) }
    }

    #[inline(never)]
    fn wait_space_slow(&mut self, need: u64, timeout: Option<Duration>) -> Result<()> {
        self.check_owner()?;
        let mut waiter = SpaceWaiter {
            producer: self,
            need,
            all_wake: false,
            slowest: None,
            asked: None,
            last_reap: Instant::now(),
        };
        let waited = wait::wait(timeout, &mut waiter);
        waiter.withdraw();
        match waited? {
            Some(free) => {
                self.free_hint = free;
                Ok(())
            }
            None => {
                // No consumer frees space in a ring truncated past its records, and a
                // poller (timeout 0) never reaches the wait's check of the size.
                self.ring.intact_through(self.put, 0)?;
                Err(Error::new(
                    libc::ETIMEDOUT,
                    format!(
                        "timed out after {} ms waiting for {need} bytes of space in ring {}",
                        timeout.unwrap_or_default().as_millis(),
                        self.name()
                    ),
                ))
            }
        }
    }

    /// Puts all of `data` or nothing.
    #[inline]
    pub fn put(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<()> {
        let len = data.len() as u64;
        if len == 0 || len > self.ring.geo.capacity() || self.reserved != 0 {
            return self.put_unusual(len);
        }
        self.check_owner()?;
        self.wait_space(len, timeout)?;
        let [(off, first), (wrap, rest)] = self.ring.geo.spans(self.put, len);
        self.stores.write(&self.ring.map, off, &data[..first as usize]);
        if rest > 0 {
            self.stores.write(&self.ring.map, wrap, &data[first as usize..]);
        }
        self.ring.intact_through(self.put, len)?;
        self.publish(len);
        Ok(())
    }

    /// Puts many records in one call, each whole and in order, publishing them together
    /// (one pointer store and at most one wake-up per `BATCH_PUBLISH` bytes instead of one
    /// per record). Returns how many records were put: all of them, unless `timeout`
    /// (which bounds the whole call) passed while waiting for space for the next one.
    /// Then the count says which records went and which did not; a call that could put
    /// none is `ETIMEDOUT`. Every record is checked before anything moves, so a record
    /// that could never fit fails the call (`EMSGSIZE`) with nothing put. An error after
    /// some records were published returns their count; the error (which is lasting:
    /// disconnected, ring corrupt) comes back from the next call.
    pub fn put_vectored(&mut self, records: &[IoSlice<'_>], timeout: Option<Duration>) -> Result<usize> {
        self.put_records(records.len(), |i| &records[i], timeout)
    }

    /// `put_vectored` over any indexable list of records (the C ABI's iovecs).
    pub(crate) fn put_records<'d>(
        &mut self,
        count: usize,
        record: impl Fn(usize) -> &'d [u8],
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let capacity = self.ring.geo.capacity();
        if let Some(i) = (0..count).find(|&i| record(i).len() as u64 > capacity) {
            return Err(Error::new(
                libc::EMSGSIZE,
                format!(
                    "record {i} of {count} ({} bytes) can never fit in ring {}: it holds at most {capacity}",
                    record(i).len(),
                    self.name()
                ),
            ));
        }
        self.put_unusual(0)?;
        self.check_owner()?;
        // The clock is read only when the call may wait, and then once: the timeout bounds
        // the whole call, however many waits it takes.
        let start = timeout.filter(|t| !t.is_zero()).map(|_| Instant::now());
        // Records before `published` are visible to consumers; the rest of those before
        // `i` are written and wait for the next publish.
        let mut published = 0;
        let mut pending = 0u64;
        let partial = |published: usize, e: Error| if published > 0 { Ok(published) } else { Err(e) };
        for i in 0..count {
            let data = record(i);
            let len = data.len() as u64;
            if pending + len > self.free_hint || pending >= BATCH_PUBLISH {
                if pending > 0 {
                    if let Err(e) = self.publish_checked(pending) {
                        return partial(published, e);
                    }
                    (published, pending) = (i, 0);
                }
                let left = match (timeout, start) {
                    (Some(t), Some(start)) => Some(t.saturating_sub(start.elapsed())),
                    (t, _) => t,
                };
                if let Err(e) = self.wait_space(len, left) {
                    return partial(published, e);
                }
            }
            let at = self.ring.geo.advance(self.put, pending);
            let [(off, first), (wrap, rest)] = self.ring.geo.spans(at, len);
            self.stores.write(&self.ring.map, off, &data[..first as usize]);
            if rest > 0 {
                self.stores.write(&self.ring.map, wrap, &data[first as usize..]);
            }
            pending += len;
        }
        if pending > 0 {
            if let Err(e) = self.publish_checked(pending) {
                return partial(published, e);
            }
        }
        Ok(count)
    }

    fn publish_checked(&mut self, len: u64) -> Result<()> {
        self.ring.intact_through(self.put, len)?;
        self.publish(len);
        Ok(())
    }

    /// The puts that move nothing: empty (fine), too big, or behind a reservation.
    #[cold]
    fn put_unusual(&self, len: u64) -> Result<()> {
        self.too_big(len)?;
        if self.reserved != 0 {
            // Reserved bytes come first in the stream; a put cannot jump ahead of them.
            return Err(Error::new(
                libc::EBUSY,
                format!("ring {}: commit the open reservation before putting", self.name()),
            ));
        }
        Ok(())
    }

    /// Reserves `len` bytes of ring memory to fill in place; returns one or two spans
    /// (two when the space wraps). Publish with `commit`.
    pub fn reserve(&mut self, len: u64, timeout: Option<Duration>) -> Result<[Span; 2]> {
        self.too_big(len)?;
        if self.reserved != 0 {
            return Err(Error::new(libc::EBUSY, format!("ring {}: a reservation is already open", self.name())));
        }
        self.check_owner()?;
        self.wait_space(len, timeout)?;
        self.reserved = len;
        Ok(self.ring.lend(self.put, len))
    }

    /// Publishes the first `len` bytes of the open reservation (the rest is dropped).
    pub fn commit(&mut self, len: u64) -> Result<()> {
        if len > self.reserved {
            return Err(Error::new(
                libc::EINVAL,
                format!("cannot commit {len} bytes: only {} are reserved in ring {}", self.reserved, self.name()),
            ));
        }
        // The reservation ends here even when the ring failed under it: its bytes are
        // lost then, and a reservation left open would turn every later call into EBUSY.
        self.reserved = 0;
        self.check_owner()?;
        self.ring.intact_through(self.put, len)?;
        if len > 0 {
            self.publish(len);
        }
        Ok(())
    }

    #[inline]
    fn publish(&mut self, len: u64) {
        self.put = self.ring.geo.advance(self.put, len);
        self.free_hint -= len;
        fence::publish(self.ring.producer().pos, self.put, self.light);
        self.ring.data_signal().notify();
    }

    /// Gives the producer slot back (also done on drop). The put pointer stays. An
    /// error telling the ring master comes back after the slot is released.
    pub fn detach(mut self) -> Result<()> {
        self.release()
    }

    /// Gives the producer slot back now but keeps the ring mapped until the handle is
    /// dropped (see `Consumer::leave`).
    pub fn leave(&mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        slots::let_go(&self.ring, Role::Producer, self.pid, &self.claim, &mut self.attached, self.announced)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

struct SpaceWaiter<'a> {
    producer: &'a Producer,
    need: u64,
    all_wake: bool,
    slowest: Option<u32>,
    /// The consumer asked to wake us, and the word we left it.
    asked: Option<(u32, u32)>,
    last_reap: Instant,
}

impl SpaceWaiter<'_> {
    /// Takes back our request once we no longer sleep on it.
    fn withdraw(&mut self) {
        if let Some((slot, word)) = self.asked.take() {
            self.producer.ring.space_request(slot).withdraw(word);
        }
    }

    /// Whether the consumer in `slot`, alone, keeps `need` bytes from being free.
    fn holds_back(&self, slot: u32) -> Result<bool> {
        let ring = &self.producer.ring;
        if ring.consumer(slot).pid.load(Ordering::SeqCst) < JOINING {
            return Ok(false);
        }
        let backlog = ring.geo.backlog(self.producer.put, ring.get_pos(slot)?);
        Ok(ring.geo.capacity() - backlog < self.need)
    }
}

impl<'a> Waiter<'a> for SpaceWaiter<'a> {
    type Ready = u64;

    fn check(&mut self) -> Result<Option<u64>> {
        let scan = self.producer.scan()?;
        self.all_wake = scan.all_wake;
        self.slowest = scan.slowest;
        if scan.free >= self.need {
            return Ok(Some(scan.free));
        }
        // Between the scan that chose it and the request, the consumer we asked may have
        // caught up (and gone to wait for data: it advances no more, so never answers),
        // left, or been replaced in its slot, while whoever holds us back now was not
        // asked. Taking the request back changes the word, so the sleep on it ends at
        // once and the next one asks the right consumer.
        if let Some((slot, _)) = self.asked {
            if !self.holds_back(slot)? {
                self.withdraw();
            }
        }
        Ok(None)
    }

    /// Sleeps until the slowest consumer has freed `need` bytes, or an eighth of the
    /// ring if that is more: refilling in big steps keeps wake-ups rare when consumers
    /// are slower than the producer. (Checks in between still use `need` alone.)
    /// Only the slowest consumer is asked: once it has freed enough, so has every other.
    fn announce(&mut self) -> Ticket<'a> {
        let ring = &self.producer.ring;
        let threshold = self.need.max(ring.geo.capacity() / 8).min(ring.geo.capacity());
        match self.slowest {
            Some(slot) => {
                if self.asked.is_some_and(|(asked, _)| asked != slot) {
                    self.withdraw();
                }
                let word = ring.space_request(slot).ask(&ring.geo, threshold);
                self.asked = Some((slot, word));
                Ticket { word: ring.consumer(slot).pad, expected: word }
            }
            // Nobody holds space back any more: the check that follows says so.
            None => {
                let word = ring.producer().pad;
                Ticket { word, expected: word.load(Ordering::SeqCst) }
            }
        }
    }

    fn slice(&self) -> Duration {
        if self.all_wake { WOKEN_SLICE } else { POLL_SLICE }
    }

    /// Frees the slots of consumers that died holding space (a dead consumer would
    /// otherwise stall the producer forever once the ring fills).
    fn housekeeping(&mut self) -> Result<()> {
        if self.last_reap.elapsed() >= REAP_EVERY {
            self.last_reap = Instant::now();
            self.producer.check_owner()?;
            // No consumer frees space in a truncated ring (see the consumer's wait).
            self.producer.ring.truncation()?;
            // A busy lock (a legacy peer attaching) only postpones reaping: the wait's
            // own timeout must hold, so never wait here for long.
            if let Ok(lock) = self.producer.ring.lock_for(Duration::from_millis(1)) {
                slots::reap_dead(&self.producer.ring, &lock);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::futex;
    use crate::ring::{Consumer, CreateOptions, create, remove};

    /// What the slowest consumer does after the producer's scan chose it and before the
    /// request reaches its word.
    #[derive(Debug, Clone, Copy)]
    enum Meanwhile {
        /// It reads everything, then waits for data: it never advances again to answer.
        CatchesUp,
        Leaves,
        /// It leaves and another consumer joins in its slot.
        LeavesAndIsReplaced,
    }

    /// Interleavings `wait::wait` cannot be made to hit on demand (found with a Spin
    /// model): the producer, asleep on the word of a consumer that no longer holds it
    /// back, slept until its 100 ms backstop while another consumer freed the space.
    #[test]
    fn the_consumer_asked_for_space_still_holds_it_back_or_the_producer_does_not_sleep() {
        /// Removes the ring on the way out, a failed assertion included.
        struct Scratch(String);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = remove(&self.0);
            }
        }
        let scratch = Scratch(format!("t-unit-asked-{}", std::process::id()));
        let name = scratch.0.clone();
        create(&name, CreateOptions { data_bytes: 4096, max_consumers: 3, ..Default::default() }).expect("create");
        let mut p = Producer::attach(&name).expect("producer");
        let cap = p.geometry().capacity();
        for meanwhile in [Meanwhile::CatchesUp, Meanwhile::Leaves, Meanwhile::LeavesAndIsReplaced] {
            let mut slow = Consumer::attach(&name).expect("slow consumer");
            let mut other = Consumer::attach(&name).expect("other consumer");
            // `slow` holds back everything, `other` all but 100 bytes: 200 bytes wait for both.
            p.put(&[1u8; 100], Some(Duration::ZERO)).expect("put");
            assert_eq!(other.get(&mut [0u8; 100], 100, Some(Duration::ZERO)).expect("get"), 100);
            p.put(&vec![2u8; cap as usize - 100], Some(Duration::ZERO)).expect("fill");
            let mut waiter = SpaceWaiter {
                producer: &p,
                need: 200,
                all_wake: false,
                slowest: None,
                asked: None,
                last_reap: Instant::now(),
            };
            assert_eq!(waiter.check().expect("check"), None);
            assert_eq!(waiter.slowest, Some(slow.slot()));
            let mut newcomer = None;
            match meanwhile {
                Meanwhile::CatchesUp => {
                    let mut buf = vec![0u8; cap as usize];
                    assert_eq!(slow.get(&mut buf, cap, Some(Duration::ZERO)).expect("drain"), cap as usize);
                }
                Meanwhile::Leaves => drop(slow),
                Meanwhile::LeavesAndIsReplaced => {
                    drop(slow);
                    newcomer = Some(Consumer::attach(&name).expect("newcomer"));
                }
            }
            let ticket = waiter.announce();
            assert_eq!(waiter.check().expect("check"), None, "`other` still holds 200 bytes back");
            let start = Instant::now();
            futex::wait(ticket.word, ticket.expected, Duration::from_secs(5));
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{meanwhile:?}: the producer slept on the word of a consumer that no longer holds it back"
            );
            waiter.withdraw();
            drop((other, newcomer));
        }
        drop(p);
        remove(&name).expect("remove");
        std::mem::forget(scratch);
    }
}
