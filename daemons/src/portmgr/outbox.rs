//! A connection's unsent replies, and the daemon-wide count of bytes they hold.
//!
//! A LIST reply can be large (every allocation, names up to `MAX_NAME` bytes), and a
//! client that asks and never reads would otherwise keep a private copy of it: thousands
//! of such connections once grew the daemon to gigabytes. Every connection that asks
//! between two changes of the allocations therefore queues the same shared snapshot,
//! and every byte held (small replies and each live snapshot, once) is counted in one
//! [`Budget`] that the event loop keeps under a limit by dropping stalled connections.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::rc::Rc;

/// The bytes the daemon holds in unsent replies, shared by every outbox and snapshot.
#[derive(Debug, Clone, Default)]
pub struct Budget(Rc<Cell<usize>>);

impl Budget {
    pub fn held(&self) -> usize {
        self.0.get()
    }

    fn add(&self, n: usize) {
        self.0.set(self.0.get().saturating_add(n));
    }

    fn sub(&self, n: usize) {
        self.0.set(self.0.get().saturating_sub(n));
    }
}

/// An immutable LIST reply; its bytes count against the budget while any copy lives.
#[derive(Debug)]
pub struct Snapshot {
    bytes: Vec<u8>,
    budget: Budget,
}

impl Snapshot {
    pub fn new(bytes: Vec<u8>, budget: &Budget) -> Rc<Snapshot> {
        budget.add(bytes.len());
        Rc::new(Snapshot { bytes, budget: budget.clone() })
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.budget.sub(self.bytes.len());
    }
}

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Rc<Snapshot>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => &s.bytes,
        }
    }
}

#[derive(Debug)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    sent: usize,
    /// Unsent bytes, shared snapshots included (what this client has not read).
    unsent: usize,
    budget: Budget,
}

impl Outbox {
    pub fn new(budget: &Budget) -> Outbox {
        Outbox { chunks: VecDeque::new(), sent: 0, unsent: 0, budget: budget.clone() }
    }

    pub fn unsent(&self) -> usize {
        self.unsent
    }

    /// Appends a small reply the caller writes into the buffer it is given.
    pub fn push(&mut self, reply: impl FnOnce(&mut Vec<u8>)) {
        if !matches!(self.chunks.back(), Some(Chunk::Owned(_))) {
            self.chunks.push_back(Chunk::Owned(Vec::new()));
        }
        if let Some(Chunk::Owned(buf)) = self.chunks.back_mut() {
            let before = buf.len();
            reply(buf);
            let added = buf.len() - before;
            self.unsent += added;
            self.budget.add(added);
        }
    }

    pub fn push_shared(&mut self, snapshot: Rc<Snapshot>) {
        self.unsent += snapshot.bytes.len();
        self.chunks.push_back(Chunk::Shared(snapshot));
    }

    /// Writes what `sink` takes. `Ok(true)` when everything queued is written.
    pub fn flush(&mut self, sink: &mut impl Write) -> io::Result<bool> {
        while let Some(front) = self.chunks.front() {
            let rest = &front.bytes()[self.sent..];
            if rest.is_empty() {
                self.pop_front();
                continue;
            }
            match sink.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    self.unsent -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn pop_front(&mut self) {
        if let Some(Chunk::Owned(buf)) = self.chunks.pop_front() {
            self.budget.sub(buf.len());
        }
        self.sent = 0;
    }

    /// Nothing more can be sent (the connection is gone or dropped).
    pub fn discard(&mut self) {
        while !self.chunks.is_empty() {
            self.pop_front();
        }
        self.unsent = 0;
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_snapshots_count_once_and_everything_is_returned() {
        let budget = Budget::default();
        let snapshot = Snapshot::new(vec![b'x'; 1000], &budget);
        let mut a = Outbox::new(&budget);
        let mut b = Outbox::new(&budget);
        a.push(|out| out.extend_from_slice(b"OK 1\r\n"));
        a.push_shared(snapshot.clone());
        b.push_shared(snapshot);
        assert_eq!(budget.held(), 1006);
        assert_eq!((a.unsent(), b.unsent()), (1006, 1000));
        let mut written = Vec::new();
        assert!(a.flush(&mut written).unwrap());
        assert_eq!(written.len(), 1006);
        assert_eq!(budget.held(), 1000, "b still holds the snapshot");
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
