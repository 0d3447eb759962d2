//! A consumer of a proxy ring restarting the proxy's feeder when it died.
//!
//! NSCLDAQ restarts a dead feeder only when a new consumer attaches, so consumers
//! already waiting on the proxy wait for ever if nobody new comes. A consumer attached
//! through a `tcp://` URL carries a `Revival`: while it waits for data it looks, at
//! most once a second, whether the proxy still has a live producer, and if not starts a
//! feeder without waiting for it (its report is picked up at a later look). Several
//! consumers doing this at once cost only feeders that find the slot taken and leave.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::feeder::{Plan, READY_ERROR};
use super::spawn::{self, READY_WAIT};

/// Between two looks at the proxy's producer.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// After a feeder that could not start (the host or its ring master down), the next
/// start waits longer, up to this: a dead host costs a fork now and then, not every second.
const FAILED_MAX: Duration = Duration::from_secs(8);

pub struct Revival {
    plan: Plan,
    next_look: Instant,
    /// The wait after the last feeder that failed to start.
    backoff: Duration,
    pending: Option<Pending>,
}

/// A feeder started by us whose report has not arrived yet: no other start meanwhile.
struct Pending {
    report: File,
    since: Instant,
    said: Vec<u8>,
}

/// What a pending feeder's report says so far.
enum Heard {
    Nothing,
    Started,
    Failed,
}

impl Revival {
    pub fn new(plan: Plan) -> Revival {
        Revival { plan, next_look: Instant::now() + LOOK_EVERY, backoff: LOOK_EVERY, pending: None }
    }

    /// Called while a consumer waits: starts a feeder when `orphaned` says the proxy has
    /// no live producer. Cheap until a look is due (one clock read).
    pub fn tick(&mut self, orphaned: &dyn Fn() -> bool) {
        let now = Instant::now();
        if now < self.next_look {
            return;
        }
        self.next_look = now + LOOK_EVERY;
        if let Some(pending) = &mut self.pending {
            match pending.hear() {
                Heard::Nothing if pending.since.elapsed() < READY_WAIT => return,
                Heard::Started => self.backoff = LOOK_EVERY,
                Heard::Nothing | Heard::Failed => {
                    self.next_look = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(FAILED_MAX);
                    self.pending = None;
                    return;
                }
            }
            self.pending = None;
        }
        if !orphaned() {
            return;
        }
        // A failure to even start one (no feeder program, no descriptors) is retried
        // at the next look, like a feeder that failed.
        match spawn::launch(&self.plan) {
            Ok(launched) => self.pending = Some(Pending { report: launched.report, since: now, said: Vec::new() }),
            Err(_) => {
                self.next_look = now + self.backoff;
                self.backoff = (self.backoff * 2).min(FAILED_MAX);
            }
        }
    }
}

impl Pending {
    /// Reads what the feeder reported so far, without waiting.
    fn hear(&mut self) -> Heard {
        let mut chunk = [0u8; 256];
        while !self.said.contains(&b'\n') && self.said.len() < 4096 {
            let mut poll = [PollFd::new(self.report.as_fd(), PollFlags::POLLIN)];
            if !matches!(nix::poll::poll(&mut poll, PollTimeout::ZERO), Ok(n) if n > 0) {
                return Heard::Nothing;
            }
            match self.report.read(&mut chunk) {
                // Gone without a word: it did not start.
                Ok(0) => return Heard::Failed,
                Ok(n) => self.said.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Heard::Failed,
            }
        }
        if self.said.starts_with(READY_ERROR.as_bytes()) { Heard::Failed } else { Heard::Started }
    }
}
