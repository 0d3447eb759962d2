//! Searches for the processes holding a client's socket, on a thread of their own.
//!
//! A search walks /proc (`holders`) and takes as long as the descriptors it reads: a user
//! holding tens of thousands made every search take hundreds of milliseconds. Run on the
//! event loop, that stalled every other client's GIMME behind each such search; here the
//! loop hands the search over, carries on serving everyone else, and finishes the GIMME
//! (the connection's later requests waiting behind it) when the answer comes back.
//!
//! Searches are taken from each uid (the socket's owner) in turn, and each uid may have
//! only a few waiting: one user asking for many cannot make another user's wait longer
//! than one search of each other user's.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use mio::Waker;

use super::peercred::{RealUser, Search};
use super::session::Key;

/// Searches one uid may have waiting or running; past it its GIMMEs are refused, to be
/// asked again (a client needs one per connection, when it names someone else).
pub const PER_UID: usize = 4;
/// Searches waiting in all: bounded memory whatever the number of users.
pub const QUEUED: usize = 1024;

/// A finished search, for the connection `key`.
#[derive(Debug)]
pub struct Done {
    pub key: Key,
    pub real: RealUser,
}

/// Why a search was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The socket's owner has `PER_UID` searches waiting already.
    Owner,
    /// `QUEUED` are waiting.
    Everyone,
}

#[derive(Debug, Default)]
struct Queue {
    /// Waiting searches of each uid, oldest first.
    waiting: HashMap<u32, VecDeque<(Key, Search)>>,
    /// The uids with searches waiting, in the order they are served (one each in turn).
    turns: VecDeque<u32>,
    /// Searches per uid, waiting or running.
    pending: HashMap<u32, usize>,
    queued: usize,
    stop: bool,
}

impl Queue {
    /// The next search, taken from the uid whose turn it is.
    fn next(&mut self) -> Option<(Key, Search)> {
        let uid = self.turns.pop_front()?;
        let waiting = self.waiting.get_mut(&uid)?;
        let job = waiting.pop_front();
        if waiting.is_empty() {
            self.waiting.remove(&uid);
        } else {
            self.turns.push_back(uid);
        }
        self.queued -= usize::from(job.is_some());
        job
    }

    fn finished(&mut self, uid: u32) {
        if let Some(count) = self.pending.get_mut(&uid) {
            *count -= 1;
            if *count == 0 {
                self.pending.remove(&uid);
            }
        }
    }
}

type Shared = Arc<(Mutex<Queue>, Condvar)>;

/// The scanner thread and its queue.
#[derive(Debug)]
pub struct Scanner {
    shared: Shared,
    results: Receiver<Done>,
    worker: Option<JoinHandle<()>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Queue> {
    // The worker holds the lock only to move queue entries, never across a search: a
    // panic cannot leave the queue half changed.
    shared.0.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scanner {
    /// Starts the thread; `waker` wakes the event loop when a search is done.
    pub fn start(waker: Waker, proc_root: PathBuf) -> io::Result<Scanner> {
        let shared: Shared = Arc::default();
        let (sender, results) = channel();
        let theirs = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("holder-search".into())
            .spawn(move || work(&theirs, &sender, &waker, &proc_root))?;
        Ok(Scanner { shared, results, worker: Some(worker) })
    }

    /// Queues a search for the connection `key`.
    pub fn submit(&self, key: Key, search: Search) -> Result<(), Busy> {
        let mut queue = lock(&self.shared);
        let pending = queue.pending.get(&search.owner).copied().unwrap_or(0);
        if pending >= PER_UID {
            return Err(Busy::Owner);
        }
        if queue.queued >= QUEUED {
            return Err(Busy::Everyone);
        }
        *queue.pending.entry(search.owner).or_default() += 1;
        queue.queued += 1;
        let waiting = queue.waiting.entry(search.owner).or_default();
        waiting.push_back((key, search));
        if waiting.len() == 1 {
            queue.turns.push_back(search.owner);
        }
        self.shared.1.notify_one();
        Ok(())
    }

    /// The searches finished since last asked.
    pub fn finished(&self) -> impl Iterator<Item = Done> + '_ {
        self.results.try_iter()
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_one();
        // At most one search (time-limited) to wait for.
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn work(shared: &Shared, results: &Sender<Done>, waker: &Waker, proc_root: &std::path::Path) {
    loop {
        let (key, search) = {
            let mut queue = lock(shared);
            loop {
                if queue.stop {
                    return;
                }
                if let Some(job) = queue.next() {
                    break job;
                }
                queue = shared.1.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let real = search.run(proc_root);
        lock(shared).finished(search.owner);
        if results.send(Done { key, real }).is_err() {
            return; // the daemon is gone
        }
        // A failed wake leaves the answer queued until the loop next wakes; nothing to
        // do about it here.
        let _ = waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(owner: u32) -> Search {
        Search { owner, inode: 1 }
    }

    #[test]
    fn each_uid_in_turn_and_a_few_each() {
        let (_sender, results) = channel();
        let shared = Shared::default();
        // No thread: the test takes the searches itself.
        let scanner = Scanner { shared, results, worker: None };
        for key in 0..PER_UID {
            assert_eq!(scanner.submit(key, search(1000)), Ok(()));
        }
        assert_eq!(scanner.submit(99, search(1000)), Err(Busy::Owner));
        assert_eq!(scanner.submit(100, search(2000)), Ok(()));
        let mut queue = lock(&scanner.shared);
        let order: Vec<Key> = std::iter::from_fn(|| queue.next().map(|(key, _)| key)).take(3).collect();
        assert_eq!(order, [0, 100, 1], "the second uid's search comes before the first uid's second");
        // Taken but not finished: still counted against the uid.
        drop(queue);
        assert_eq!(scanner.submit(101, search(1000)), Err(Busy::Owner));
        lock(&scanner.shared).finished(1000);
        assert_eq!(scanner.submit(101, search(1000)), Ok(()));
    }
}
