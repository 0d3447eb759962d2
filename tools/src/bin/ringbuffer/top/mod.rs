//! `ringbuffer top`: a live view of this host's rings. It samples each ring's pointers
//! (read-only, through `ring::Watch`) as often as their moves need (`rates::Pace`: every
//! millisecond to every 16); every refresh it turns the samples into rates and redraws
//! the screen, at once when the window is resized.

mod rates;
mod render;
mod terminal;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use daqflow::ring::Watch;

use crate::rings::{command_of, local_names};
use rates::{Pace, Rates, Tracker};
use render::{ConsumerView, Entry, RingView};
pub use terminal::Exit;
use terminal::Terminal;

struct Watched {
    watch: Watch,
    tracker: Tracker,
    pace: Pace,
    /// When the next sample is due.
    due: Instant,
    /// The last window's rates; None until one whole window has been watched.
    rates: Option<Rates>,
    /// Set when a sample failed (a corrupt pointer): shown, and the ring reopened.
    error: Option<String>,
}

/// The rings being watched and those that could not be opened, by name.
#[derive(Default)]
struct Rings {
    watched: BTreeMap<String, Watched>,
    broken: BTreeMap<String, String>,
}

impl Rings {
    /// Follows the rings matching `pattern` as they are created, removed or formatted.
    fn refresh(&mut self, pattern: &str, now: Instant) -> Result<(), String> {
        let names = local_names(pattern).map_err(|e| e.to_string())?;
        self.watched.retain(|name, w| names.contains(name) && w.error.is_none() && w.watch.is_current());
        self.broken.clear();
        for name in names {
            if self.watched.contains_key(&name) {
                continue;
            }
            match Watch::open(&name) {
                Ok(watch) => {
                    let mut tracker = Tracker::new(now);
                    if let Ok(p) = watch.sample() {
                        tracker.observe(p);
                    }
                    let pace = Pace::new();
                    let due = now + pace.period();
                    self.watched.insert(name, Watched { watch, tracker, pace, due, rates: None, error: None });
                }
                Err(e) if e.errno() == libc::ENOENT => {}
                Err(e) => {
                    self.broken.insert(name, e.to_string());
                }
            }
        }
        Ok(())
    }

    /// Samples the rings whose sample is due, or nearly (within half their period, so
    /// that rings sampled equally often are sampled together, in one wake-up).
    fn sample(&mut self, now: Instant) {
        for w in self.watched.values_mut().filter(|w| w.error.is_none() && w.due <= now + w.pace.period() / 2) {
            match w.watch.sample() {
                Ok(p) => {
                    let data_bytes = p.data_bytes;
                    let moved = w.tracker.observe(p);
                    w.due = now + w.pace.after(moved, data_bytes);
                }
                Err(e) => w.error = Some(e.to_string()),
            }
        }
    }

    /// When the next sample is due; None when no ring is being sampled.
    fn next_due(&self) -> Option<Instant> {
        self.watched.values().filter(|w| w.error.is_none()).map(|w| w.due).min()
    }

    /// Rings opened at the last refresh get their first rates here, over a whole window.
    fn take_rates(&mut self, now: Instant) {
        for w in self.watched.values_mut() {
            w.rates = Some(w.tracker.take(now));
        }
    }

    fn entries(&self) -> Vec<Entry> {
        let mut entries: BTreeMap<&str, Entry> = BTreeMap::new();
        for (name, w) in &self.watched {
            let entry = match (&w.error, w.tracker.last()) {
                (Some(error), _) => Entry::Broken { name: name.clone(), error: error.clone() },
                (None, None) => continue,
                (None, Some(p)) => Entry::Ring(RingView {
                    name: name.clone(),
                    data_bytes: p.data_bytes,
                    producer_pid: p.producer_pid,
                    producer_rate: w.rates.as_ref().map(|r| r.producer),
                    consumers: p
                        .consumers
                        .iter()
                        .map(|c| ConsumerView {
                            slot: c.slot,
                            pid: c.pid,
                            command: command_of(c.pid),
                            backlog: p.backlog(c.get),
                            rate: w.rates.as_ref().and_then(|r| r.consumers.get(&(c.slot, c.pid)).copied()),
                        })
                        .collect(),
                }),
            };
            entries.insert(name, entry);
        }
        for (name, error) in &self.broken {
            entries.insert(name, Entry::Broken { name: name.clone(), error: error.clone() });
        }
        entries.into_values().collect()
    }
}

fn draw(terminal: &Terminal, rings: &Rings, pattern: &str, interval: Duration) -> Result<(), String> {
    let (cols, rows) = terminal.size();
    let entries = rings.entries();
    let matching = if pattern == "*" { String::new() } else { format!(" matching {pattern}") };
    let rings = if entries.len() == 1 { "1 ring".to_string() } else { format!("{} rings", entries.len()) };
    let title = format!("ringbuffer top: {rings}{matching}, every {} ms; q or Ctrl-C quits", interval.as_millis());
    terminal.write(&render::paint(&render::screen(&title, &entries, cols, rows)))
}

/// Runs the view until `q`, Ctrl-C or SIGTERM; the terminal is restored however it ends.
pub fn run(interval: Duration, pattern: &str) -> Result<Exit, String> {
    let terminal = Terminal::take()?;
    let mut rings = Rings::default();
    let mut next_frame = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_frame {
            rings.take_rates(now);
            rings.refresh(pattern, now)?;
            next_frame = now + interval;
            draw(&terminal, &rings, pattern, interval)?;
        } else if terminal.resized() {
            draw(&terminal, &rings, pattern, interval)?;
        }
        rings.sample(Instant::now());
        let wake = rings.next_due().map_or(next_frame, |due| due.min(next_frame));
        let wait = wake.saturating_duration_since(Instant::now());
        if let Some(exit) = terminal.wait(wait)? {
            return Ok(exit);
        }
    }
}
