//! How the producer's copies store into the ring: through the cache, or around it
//! (non-temporal stores), chosen by measuring what each gives end to end.
//!
//! Which is faster depends on where the host runs the two processes, and that changes
//! while they run. Measured on this project's 2-vCPU KVM guest (one producer and one
//! consumer thread, 64 KiB records, 8 MiB ring): with the vCPUs on one die, ordinary
//! stores move 33-40 GB/s and non-temporal ones 11-15 (the consumer then reads from
//! memory instead of the shared cache); with them on different dies (a cache line's
//! round trip between the CPUs takes ~300 ns instead of ~70), ordinary stores drop to
//! 2.7-3.7 GB/s, because each line the producer writes must first be fetched back from
//! the other die where the consumer last read it, while non-temporal stores, which fetch
//! nothing, still move 17-18 GB/s.
//!
//! Timing single copies does not tell them apart: a stream store costs the producer less
//! on either placement, and what it costs the consumer shows only once the ring has
//! filled. So the producer measures its own put rate, waits included, over epochs of
//! twice the ring's capacity (the second half only, when the ring's contents and caches
//! reflect the kind of store in use), and now and then spends an epoch on the other kind:
//! sooner when the rate of the kind in use collapses for two epochs running (the host
//! moved a vCPU; a single slow epoch is as likely the application pausing). A producer
//! that is not limited by the ring sees both kinds at the same rate and keeps its choice.
//!
//! A trial of the losing kind costs: an epoch of stream stores where ordinary ones move
//! 30 GB/s takes two to six times as long. So each trial that loses doubles the wait for
//! the next one (16 epochs, then 32, up to MAX_INTERVAL); a collapse still sends the next
//! epoch to the other kind at once.
//!
//! Single puts of fewer than MIN_LEN bytes always go through the cache: each is fenced on
//! its own before it is published, and a fence waits for the stream stores to reach
//! memory, about 200 ns here, which capped 1 KiB records at ~5 GB/s whatever the
//! placement (ordinary stores: 25-35 GB/s on one die, 3.6-4.3 apart). The small records
//! of a batch put do not take part either: streamed with one fence per batch, 64 B
//! records moved 3.4-3.8 GB/s on one die against 5.8-8.0 through the cache.

use std::time::Instant;

use super::mem::Mapping;

/// Single copies shorter than this always go through the cache.
const MIN_LEN: usize = 4096;
/// Epochs between two that use the kind not in use; fewer right after a switch, to
/// confirm it (one epoch is a few milliseconds at most).
const EXPLORE: u32 = 16;
const CONFIRM: u32 = 4;
/// The longest wait between trials after trials that lost (an epoch of an 8 MiB ring is
/// 16 MiB: 256 of them are about 0.1-1 s of streaming).
const MAX_INTERVAL: u32 = 256;
/// The other kind must be this much faster before the producer switches.
const HYSTERESIS: f64 = 1.15;
/// A rate below this share of the last one for the same kind sends the next epoch to
/// the other kind.
const COLLAPSE: f64 = 0.5;
/// Epochs at the start that are not measured.
const WARMING: u32 = 2;

pub struct StoreChoice {
    around_cache: bool,
    /// This epoch uses the kind not in use.
    exploring: bool,
    /// Bytes per second of the last measured epoch of [through the cache, around it].
    rate: [f64; 2],
    /// Half an epoch: the ring's capacity.
    half: u64,
    /// Bytes of large copies so far in this epoch.
    bytes: u64,
    /// When the measured half of this epoch began.
    second_half: Option<Instant>,
    /// Epochs left before the next that uses the kind not in use.
    until_explore: u32,
    /// Epochs between trials now (doubled by each trial that lost).
    interval: u32,
    /// Epochs not measured yet: the first ones include the ring's first fill and the
    /// caches warming up.
    warming: u32,
    /// The last epoch of the kind in use collapsed: the next one says whether the host
    /// moved a vCPU or the application paused.
    doubt: bool,
}

impl StoreChoice {
    pub fn new(capacity: u64) -> StoreChoice {
        StoreChoice {
            around_cache: false,
            exploring: false,
            rate: [0.0; 2],
            half: capacity.max(1),
            bytes: 0,
            second_half: None,
            until_explore: 1,
            interval: EXPLORE,
            warming: WARMING,
            doubt: false,
        }
    }

    /// Copies `data` into the ring at `off`, ready to be published.
    #[inline]
    pub fn write(&mut self, map: &Mapping, off: u64, data: &[u8]) {
        if data.len() < MIN_LEN {
            return map.write(off, data);
        }
        if self.around_now() {
            map.stream(off, data);
            map.fence_streams();
        } else {
            map.write(off, data);
        }
        self.bytes += data.len() as u64;
        if self.bytes >= self.half {
            self.epoch_step();
        }
    }

    /// Whether this epoch stores around the cache: the kind chosen, or the other one
    /// during a trial.
    fn around_now(&self) -> bool {
        self.around_cache != self.exploring
    }

    #[cold]
    fn epoch_step(&mut self) {
        let Some(start) = self.second_half else {
            self.second_half = Some(Instant::now());
            return;
        };
        if self.bytes < 2 * self.half {
            return;
        }
        let rate = (self.bytes - self.half) as f64 / start.elapsed().as_secs_f64().max(1e-9);
        self.bytes = 0;
        self.second_half = None;
        self.judge(rate);
    }

    /// Takes an epoch's measured rate (bytes per second) into account.
    fn judge(&mut self, rate: f64) {
        if self.warming > 0 {
            self.warming -= 1;
            return;
        }
        let used = self.around_now();
        let last = self.rate[used as usize];
        let collapsed = rate < COLLAPSE * last;
        if collapsed && !self.exploring && !std::mem::replace(&mut self.doubt, true) {
            // A producer paced by its application collapses just the same when it pauses,
            // and the other kind, tried next, would then win against the pause and be
            // kept: measure the kind in use once more, against the same reference.
            return;
        }
        self.doubt = false;
        self.rate[used as usize] = rate;
        if std::mem::take(&mut self.exploring) {
            if rate > HYSTERESIS * self.rate[self.around_cache as usize] {
                self.around_cache = used;
                self.until_explore = CONFIRM;
                self.interval = EXPLORE;
            } else {
                self.interval = (self.interval * 2).min(MAX_INTERVAL);
                self.until_explore = self.interval;
            }
            return;
        }
        if collapsed {
            self.interval = EXPLORE;
        }
        self.until_explore = if collapsed { 0 } else { self.until_explore.saturating_sub(1) };
        self.exploring = self.until_explore == 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds epochs whose rate depends on the kind of store used; returns the kinds used.
    fn run(choice: &mut StoreChoice, epochs: usize, through: f64, around: f64) -> Vec<bool> {
        (0..epochs)
            .map(|_| {
                let used = choice.around_now();
                choice.judge(if used { around } else { through });
                used
            })
            .collect()
    }

    #[test]
    fn the_kind_that_moves_more_end_to_end_wins_and_a_change_of_host_is_noticed() {
        let mut c = StoreChoice::new(8 << 20);
        // Dies apart: stream stores win after the warm-up and one trial.
        let used = run(&mut c, 6, 3e9, 17e9);
        assert_eq!(used, [false, false, false, true, true, true]);
        assert!(c.around_cache);
        // The vCPUs come together: stream stores now lose. The next trial of ordinary
        // stores (CONFIRM epochs after the switch) takes them back.
        let used = run(&mut c, 8, 40e9, 12e9);
        assert!(!c.around_cache, "{used:?}");
        assert!(used.iter().filter(|&&u| u).count() <= 4, "{used:?}");
        // Steady: one trial in EXPLORE epochs, lost, so the choice holds.
        let used = run(&mut c, 2 * EXPLORE as usize, 40e9, 12e9);
        assert!(!c.around_cache);
        assert!(used.iter().filter(|&&u| u).count() <= 2, "{used:?}");
        // A collapse of the kind in use that lasts two epochs sends the next to the other
        // kind (outside a trial: one may be due now).
        while c.exploring {
            run(&mut c, 1, 40e9, 12e9);
        }
        run(&mut c, 1, 3e9, 17e9);
        assert!(!c.exploring);
        run(&mut c, 1, 3e9, 17e9);
        assert!(c.exploring);
        run(&mut c, 1, 3e9, 17e9);
        assert!(c.around_cache);
    }

    #[test]
    fn a_pause_of_a_producer_paced_by_its_application_changes_nothing() {
        let mut c = StoreChoice::new(8 << 20);
        run(&mut c, 2 * EXPLORE as usize, 1e9, 1e9);
        assert!(!c.around_cache);
        for _ in 0..3 {
            // One epoch holds a pause of the application: both kinds would have done as badly.
            run(&mut c, 1, 1e8, 1e8);
            run(&mut c, 2 * EXPLORE as usize, 1e9, 1e9);
            assert!(!c.around_cache, "a pause switched the kind of store");
        }
    }

    #[test]
    fn trials_that_lose_come_ever_more_rarely_until_the_host_changes() {
        let mut c = StoreChoice::new(8 << 20);
        let used = run(&mut c, 2000, 40e9, 8e9);
        let trials = used.iter().filter(|&&u| u).count();
        // 16, 32, 64, 128, then every 256 epochs: 4 + 2000 / 256.
        assert!((5..=14).contains(&trials), "{trials} trials in 2000 epochs");
        assert!(!c.around_cache);
        // The vCPUs move apart: ordinary stores collapse, stream stores win at once.
        run(&mut c, 4, 3e9, 17e9);
        assert!(c.around_cache);
    }

    #[test]
    fn a_producer_not_limited_by_the_ring_keeps_its_choice() {
        let mut c = StoreChoice::new(8 << 20);
        let used = run(&mut c, 4 * EXPLORE as usize, 1e8, 1.05e8);
        assert!(!c.around_cache);
        assert!(used.iter().filter(|&&u| u).count() <= 5, "{used:?}");
    }
}
