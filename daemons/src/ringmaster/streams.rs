//! REMOTE streams under way, counted per client and ring.
//!
//! Every stream holds a consumer slot of its ring and can hold its producer back. A
//! client needs one per ring (its feeder); without a bound one user or host could take
//! every slot of a ring, locking its other consumers out. Clients of this host are
//! counted per user (so users do not share a limit), others per address.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::peer::Key;

/// REMOTE streams of one ring one client may hold at once.
pub const MAX_STREAMS_PER_CLIENT: usize = 4;

#[derive(Debug, Default)]
pub struct Streams {
    held: Mutex<HashMap<(Key, String), usize>>,
}

/// A stream counted against its client; uncounted when dropped.
pub struct StreamTicket<'a> {
    streams: &'a Streams,
    key: (Key, String),
}

impl Drop for StreamTicket<'_> {
    fn drop(&mut self) {
        let mut held = lock(&self.streams.held);
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl Streams {
    /// Counts a stream of `ring` to `client`; `None` when it holds the most already.
    pub fn ticket(&self, client: Key, ring: &str) -> Option<StreamTicket<'_>> {
        let key = (client, ring.to_string());
        let mut held = lock(&self.held);
        let n = held.entry(key.clone()).or_insert(0);
        if *n >= MAX_STREAMS_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(StreamTicket { streams: self, key })
    }
}

/// A poisoned lock only means another thread panicked while counting; the counts stand.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_per_client_and_ring() {
        let streams = Streams::default();
        let (alice, bob) = (Key::User(1000), Key::User(1001));
        let held: Vec<_> = (0..MAX_STREAMS_PER_CLIENT).map(|_| streams.ticket(alice, "r").unwrap()).collect();
        assert!(streams.ticket(alice, "r").is_none());
        assert!(streams.ticket(alice, "s").is_some());
        assert!(streams.ticket(bob, "r").is_some());
        drop(held);
        assert!(streams.ticket(alice, "r").is_some());
    }
}
