//! The consumer side: copying gets, peek, skip, and zero-copy borrow/release.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::fence;
use super::handles::Claim;
use super::liveness::{alive, my_pid};
use super::shared::Shared;
use super::signal;
use super::slots;
use super::span::Span;
use super::wait::{self, POLL_SLICE, Ticket, WOKEN_SLICE, Waiter};
use super::{Idle, Role, installed_hooks};
use crate::error::{Error, Result};
use parking_lot::Mutex;

/// Reads that find less than this already available count as keeping pace.
const SMALL_BATCH: u64 = 4096;
/// Bytes consumed since the streak last ended (an announced sleep, or a wait that timed
/// out) from which the producer counts as streaming (see `wait::Waiter::streaming`):
/// a trickle of records never gets there, so its wake-up latency is the futex's.
const STREAMING: u64 = 64 << 10;
/// Rings of fewer data bytes than this never nap (see `Consumer::streaming`).
const NAP_ROOM: u64 = 64 << 10;

pub struct Consumer {
    ring: Shared,
    pid: i32,
    slot: u32,
    /// Our get pointer; the copy in shared memory is published from it.
    get: u64,
    /// Bytes known to be available (a lower bound), so small gets skip reloading the
    /// producer's pointer, whose cache line the producer keeps writing.
    avail_hint: u64,
    /// Bytes handed out by `borrow` and not yet released.
    borrowed: u64,
    /// The last read found only a small batch already there: we are keeping pace with
    /// the producer record by record (see `wait_for`).
    pacing: bool,
    /// Bytes consumed since the streak last ended (see `STREAMING`).
    streamed: u64,
    claim: Claim,
    /// Publish with plain stores (see `fence`).
    light: bool,
    attached: bool,
    /// The local ring master (if any) was told about us.
    announced: bool,
    /// What the client layer does while no data is there (a proxy ring's consumer
    /// restarts its feeder); behind a lock because inquiries that take `&self` look too.
    idle: Option<Box<Mutex<dyn Idle>>>,
}

impl Consumer {
    /// Attaches to ring `name`, or, with the client layer installed (see `Hooks`), to
    /// whatever ring it names elsewhere (`tcp://host/ring`).
    pub fn attach(name: &str) -> Result<Consumer> {
        let hooks = installed_hooks();
        if let Some(elsewhere) = hooks.and_then(|h| h.open_consumer(name)) {
            return elsewhere;
        }
        super::name::validate(name)?;
        let ring = Shared::open(name, true)?;
        let pid = my_pid();
        let (slot, get, claim) = slots::claim_consumer(&ring, pid)?;
        let mut consumer = Consumer {
            ring,
            pid,
            slot,
            get,
            avail_hint: 0,
            borrowed: 0,
            pacing: false,
            streamed: 0,
            claim,
            light: fence::light_publish(),
            attached: true,
            announced: false,
            idle: None,
        };
        if let Some(hooks) = hooks {
            // On failure the slot is given back as `consumer` drops.
            hooks.attached(name, Role::Consumer(slot))?;
            consumer.announced = true;
        }
        Ok(consumer)
    }

    pub fn name(&self) -> &str {
        self.ring.name()
    }

    /// Gives waits for data something to do while none is there (see `Idle`).
    pub fn on_idle(&mut self, idle: impl Idle + 'static) {
        self.idle = Some(Box::new(Mutex::new(idle)));
    }

    /// Called when no data is there (nothing at all without an `Idle`).
    #[inline]
    fn idle_tick(&self) {
        if let Some(idle) = &self.idle {
            idle.lock().idle(&|| self.orphaned());
        }
    }

    /// The ring has no live producer and is still the one its name names (a proxy
    /// that was replaced has a feeder of its own, or will get one from its consumers).
    fn orphaned(&self) -> bool {
        !alive(self.ring.producer().pid.load(Ordering::SeqCst)) && self.still_named()
    }

    /// The ring's name still names the object this consumer reads (see
    /// `Shared::still_named`).
    pub fn still_named(&self) -> bool {
        self.ring.still_named()
    }

    /// The attached object's owner, mode and identity (whatever its name names now).
    pub fn metadata(&self) -> Result<std::fs::Metadata> {
        self.ring.file.file.metadata().map_err(|e| Error::io(&e, format!("cannot stat ring {}", self.name())))
    }

    /// The ring's object as attached, for checks on what was actually opened (its ACL).
    pub fn file(&self) -> &std::fs::File {
        &self.ring.file.file
    }

    pub fn slot(&self) -> u32 {
        self.slot
    }

    pub fn geometry(&self) -> &super::layout::Geometry {
        &self.ring.geo
    }

    #[inline]
    fn check_owner(&self) -> Result<()> {
        if self.claim.holds(self.ring.consumer(self.slot).pid, self.pid) { Ok(()) } else { Err(self.disconnected()) }
    }

    #[cold]
    fn disconnected(&self) -> Error {
        // A truncated ring reads as zeros, which looks like a freed slot.
        if let Err(e) = self.ring.truncation() {
            return e;
        }
        Error::new(
            libc::ENOTCONN,
            format!(
                "this consumer was disconnected from ring {} (slot {} was freed by someone else)",
                self.name(),
                self.slot
            ),
        )
    }

    /// Bytes available to read now.
    #[inline]
    pub fn available(&self) -> Result<u64> {
        self.check_owner()?;
        let n = self.ring.geo.backlog(self.ring.put_pos()?, self.get);
        // Legacy consumers (CRingItem) poll this instead of waiting in the ring.
        if n == 0 {
            self.idle_tick();
            // Nothing comes any more into a ring truncated past its records, and nothing
            // read here faults: a poller must learn it from somewhere.
            self.ring.intact_through(self.get, 0)?;
        }
        Ok(n)
    }

    #[inline]
    fn refresh(&mut self) -> Result<u64> {
        self.avail_hint = self.available()?;
        Ok(self.avail_hint)
    }

    #[inline]
    fn never_satisfied(&self, min: u64) -> Result<()> {
        let capacity = self.ring.geo.capacity();
        if min > capacity {
            return Err(Error::new(
                libc::EMSGSIZE,
                format!("waiting for {min} bytes can never end: ring {} holds at most {capacity}", self.name()),
            ));
        }
        Ok(())
    }

    /// Waits until at least `min` bytes are available; returns how many are. `spent` of
    /// the caller's `timeout` has already passed (a pacing nap).
    fn wait_data(&mut self, min: u64, timeout: Option<Duration>, spent: Duration) -> Result<u64> {
        self.check_owner()?;
        let mut waiter = DataWaiter { consumer: self, min, slept: false };
        let ready = wait::wait(timeout.map(|t| t.saturating_sub(spent)), &mut waiter);
        // A wait that slept, or that waited in vain (its timeout may end during its naps,
        // before any sleep: it would nap on for ever, and never reach the sleep's
        // housekeeping), ends the streak; a poll that finds nothing only caught up.
        if waiter.slept || (matches!(ready, Ok(None)) && timeout != Some(Duration::ZERO)) {
            self.streamed = 0;
        }
        match ready? {
            Some(avail) => {
                self.avail_hint = avail;
                Ok(avail)
            }
            None => {
                // A poller (timeout 0) of a ring truncated past its records learns it here.
                self.ring.intact_through(self.get, 0)?;
                Err(Error::new(
                    libc::ETIMEDOUT,
                    format!(
                        "timed out after {} ms waiting for {min} bytes from ring {}",
                        timeout.unwrap_or_default().as_millis(),
                        self.name()
                    ),
                ))
            }
        }
    }

    /// Bytes available for a read of `min..=max`: known ones when they already cover
    /// `max` (the common small read), else a fresh look, waiting when `min > 0`.
    ///
    /// A consumer that keeps pace with a producer of small records would otherwise load
    /// the producer's pointer after every few records, and each load costs the producer
    /// a cache miss on its next store. Pausing first (a yield, about a microsecond) lets a batch
    /// build up; it is done only while batches are small and arrive without waiting, so
    /// a sleeping consumer's wake-up is not delayed. A call that cannot wait (`min == 0` or
    /// a zero timeout) is a poll and returns at once: its caller paces itself (NSCLDAQ's
    /// clients sleep 3 ms), and a pause it did not ask for would be the library's.
    #[inline]
    fn wait_for(&mut self, min: u64, max: u64, timeout: Option<Duration>) -> Result<u64> {
        if self.avail_hint >= max && max > 0 {
            self.check_owner()?;
            return Ok(self.avail_hint);
        }
        // A yield, not a spin: it pauses us when we have the core to ourselves, and hands
        // the core to another consumer when several share it.
        let mut napped = Duration::ZERO;
        if self.pacing
            && min > 0
            && timeout != Some(Duration::ZERO)
            && wait::yield_alone()
            && self.streaming()
            && wait::nap_fits(timeout, Duration::ZERO)
        {
            // A streaming producer puts a few hundred KiB during a nap: read them in one
            // go, far behind the lines it is writing, rather than a few records at a time
            // right behind it (each look at its pointer costs it a miss, about 300 ns when
            // the host puts the two vCPUs on different dies). The nap is part of the wait,
            // so it counts against the timeout.
            let start = Instant::now();
            super::stats::nap(wait::NAP);
            napped = start.elapsed();
        }
        let avail = if min == 0 { self.refresh()? } else { self.wait_data(min, timeout, napped)? };
        self.pacing = avail < SMALL_BATCH;
        Ok(avail)
    }

    /// The producer streams (see `STREAMING`) into a ring that holds what it puts during
    /// a nap. A nap lasts 70-90 us, in which a streaming producer puts a few hundred KiB:
    /// a smaller ring fills, the producer stops and must be woken (measured with 256-byte
    /// records: a 4 KiB ring moved 5x less with naps than without, 16 KiB about 2x less,
    /// 64 KiB and more as much or more).
    fn streaming(&self) -> bool {
        self.streamed >= STREAMING && self.ring.geo.data_bytes() >= NAP_ROOM
    }

    #[inline]
    fn spans(&self, n: u64) -> [(u64, u64); 2] {
        self.ring.geo.spans(self.get, n)
    }

    #[inline]
    fn copy_out(&self, buf: &mut [u8]) {
        let mut done = 0usize;
        for (off, n) in self.spans(buf.len() as u64) {
            self.ring.map.read(off, &mut buf[done..done + n as usize]);
            done += n as usize;
        }
    }

    #[inline]
    fn advance(&mut self, n: u64) {
        self.get = self.ring.geo.advance(self.get, n);
        self.avail_hint -= n;
        self.streamed = self.streamed.saturating_add(n);
        fence::publish(self.ring.consumer(self.slot).pos, self.get, self.light);
        if let Some(free) = self.ring.space_request(self.slot).pending(&self.ring.geo) {
            self.answer_space_request(free);
        }
    }

    /// The producer sleeps until we free `free` bytes: wake it if we have. Its put
    /// pointer stands still while it sleeps; a wild one is debris, so wake rather than
    /// trust it.
    #[cold]
    fn answer_space_request(&self, free: u64) {
        let geo = &self.ring.geo;
        let put = self.ring.producer().pos.load(Ordering::SeqCst);
        if !geo.contains(put) || geo.capacity() - geo.backlog(put, self.get) >= free {
            self.ring.space_request(self.slot).answer();
        }
    }

    #[inline]
    fn no_borrow(&self) -> Result<()> {
        if self.borrowed != 0 {
            return Err(Error::new(libc::EBUSY, format!("ring {}: release the borrowed data first", self.name())));
        }
        Ok(())
    }

    /// Waits for at least `min` bytes, then copies as many as are there, up to
    /// `buf.len()`, and consumes them. `min == 0` never waits.
    #[inline]
    pub fn get(&mut self, buf: &mut [u8], min: u64, timeout: Option<Duration>) -> Result<usize> {
        self.never_satisfied(min)?;
        self.no_borrow()?;
        let max = buf.len() as u64;
        if min > max {
            return Err(Error::new(libc::EINVAL, format!("minimum {min} exceeds the buffer size {max}")));
        }
        let avail = self.wait_for(min, max, timeout)?;
        let n = avail.min(max);
        self.copy_out(&mut buf[..n as usize]);
        self.ring.intact_through(self.get, n)?;
        self.advance(n);
        Ok(n as usize)
    }

    /// Copies up to `buf.len()` available bytes without consuming them; never waits.
    pub fn peek(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.no_borrow()?;
        let n = self.refresh()?.min(buf.len() as u64);
        self.copy_out(&mut buf[..n as usize]);
        self.ring.intact_through(self.get, n)?;
        Ok(n as usize)
    }

    /// Consumes `n` bytes without copying them; `ERANGE` if fewer are available.
    pub fn skip(&mut self, n: u64) -> Result<()> {
        self.no_borrow()?;
        let avail = self.refresh()?;
        if n > avail {
            return Err(Error::new(
                libc::ERANGE,
                format!("cannot skip {n} bytes in ring {}: only {avail} are available", self.name()),
            ));
        }
        if n > 0 {
            self.advance(n);
        }
        Ok(())
    }

    /// Waits for at least `min` bytes, then lends up to `max` of them in place (two
    /// spans when they wrap). Consume them with `release`.
    pub fn borrow(&mut self, min: u64, max: u64, timeout: Option<Duration>) -> Result<[Span; 2]> {
        self.never_satisfied(min)?;
        self.no_borrow()?;
        if min > max {
            return Err(Error::new(libc::EINVAL, format!("minimum {min} exceeds the maximum {max}")));
        }
        let avail = self.wait_for(min, max, timeout)?;
        let n = avail.min(max);
        // Zeros left by a truncation are not lent as data (the caller reads them later;
        // `release` checks again).
        self.ring.intact_through(self.get, n)?;
        self.borrowed = n;
        Ok(self.ring.lend(self.get, n))
    }

    /// Consumes the first `n` borrowed bytes and ends the borrow.
    pub fn release(&mut self, n: u64) -> Result<()> {
        if n > self.borrowed {
            return Err(Error::new(
                libc::EINVAL,
                format!("cannot release {n} bytes: only {} are borrowed from ring {}", self.borrowed, self.name()),
            ));
        }
        // The borrow ends here even when the ring failed under it (see the producer's
        // `commit`).
        let borrowed = std::mem::take(&mut self.borrowed);
        self.check_owner()?;
        self.ring.intact_through(self.get, borrowed)?;
        if n > 0 {
            self.advance(n);
        }
        Ok(())
    }

    /// Gives the slot back (also done on drop). An error telling the ring master comes
    /// back after the slot is released.
    pub fn detach(mut self) -> Result<()> {
        self.release_slot()
    }

    /// Gives the slot back now but keeps the ring mapped until the handle is dropped, so
    /// memory read through it stays readable (a view a caller still holds); every later
    /// operation fails as disconnected. Nothing in a forked child (the slot is the
    /// parent's).
    pub fn leave(&mut self) -> Result<()> {
        self.release_slot()
    }

    /// Also wakes the producer if our backlog was what held it back.
    fn release_slot(&mut self) -> Result<()> {
        let role = Role::Consumer(self.slot);
        slots::let_go(&self.ring, role, self.pid, &self.claim, &mut self.attached, self.announced)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.release_slot();
    }
}

struct DataWaiter<'a> {
    consumer: &'a Consumer,
    min: u64,
    /// A sleep was announced (the streak of streaming ends).
    slept: bool,
}

impl<'a> Waiter<'a> for DataWaiter<'a> {
    type Ready = u64;

    fn check(&mut self) -> Result<Option<u64>> {
        let c = self.consumer;
        let avail = c.ring.geo.backlog(c.ring.put_pos()?, c.get);
        Ok((avail >= self.min).then_some(avail))
    }

    /// A daqflow producer wakes us; anything else (a legacy producer, or none yet)
    /// must be polled for.
    fn slice(&self) -> Duration {
        let producer = self.consumer.ring.producer();
        if signal::wakes(producer.pad, producer.pid.load(Ordering::Relaxed)) { WOKEN_SLICE } else { POLL_SLICE }
    }

    /// A producer that asked us for space waits until we free an eighth of the ring, but
    /// we stop reading now: it is told to look again, since what it needs may already be
    /// free (else it sleeps until its backstop, while we sleep waiting for its data).
    fn announce(&mut self) -> Ticket<'a> {
        self.slept = true;
        let c = self.consumer;
        let request = c.ring.space_request(c.slot);
        if request.pending(&c.ring.geo).is_some() {
            request.answer();
        }
        Ticket { word: c.ring.producer().pad, expected: c.ring.data_signal().announce() }
    }

    fn streaming(&self) -> bool {
        self.consumer.streaming()
    }

    fn housekeeping(&mut self) -> Result<()> {
        self.consumer.check_owner()?;
        // A truncation past the records faults nowhere a sleeper looks, and no producer
        // can put into the ring any more: without this the wait would last for ever.
        self.consumer.ring.truncation()?;
        self.consumer.idle_tick();
        Ok(())
    }
}
