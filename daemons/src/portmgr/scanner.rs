//! Searches for the processes holding a client's socket, on a thread of their own.
//!
//! A search walks /proc (`holders`) and takes as long as the descriptors it reads: a user
//! holding tens of thousands made every search take hundreds of milliseconds. Run on the
//! event loop, that stalled every other client's GIMME behind each such search; here the
//! loop hands the search over, carries on serving everyone else, and finishes the GIMME
//! (the connection's later requests waiting behind it) when the answer comes back.
//!
//! A few threads search at once, each uid (the socket's owner) has at most one search
//! running, and uids with searches waiting are served in turn: a user whose own searches
//! are slow (it holds tens of thousands of descriptors, and only the processes with the
//! owner's ids are read) occupies one thread, and other users' searches run on the
//! others. A connection waits for at most one search, and a dropped connection's search
//! is forgotten (`Scanner::cancel`), so what waits is bounded by the connections a uid may
//! have open (`server::MAX_PER_LOCAL_USER`), and by `QUEUED` in all.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use mio::Waker;

use super::Key;
use super::peercred::{RealUser, Search};

/// Searches waiting in all: as many as the default connection cap, so only a daemon run
/// with a larger one can ever refuse a search for this.
pub const QUEUED: usize = 4096;
/// Searches running at once: different users' (one each).
const THREADS: usize = 4;

/// A finished search, for the connection `key`.
#[derive(Debug)]
pub struct Done {
    pub key: Key,
    pub real: RealUser,
}

/// A search was not queued: `QUEUED` are waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

#[derive(Debug, Default)]
struct Queue {
    /// Waiting searches of each uid, oldest first.
    waiting: HashMap<u32, VecDeque<(Key, Search)>>,
    /// The uids with searches waiting, in the order they are served (one each in turn).
    turns: VecDeque<u32>,
    /// The uids with a search running.
    running: HashSet<u32>,
    queued: usize,
    stop: bool,
}

impl Queue {
    /// The next search: the first waiting uid's in turn that has none running.
    fn next(&mut self) -> Option<(Key, Search)> {
        let at = self.turns.iter().position(|uid| !self.running.contains(uid))?;
        let uid = self.turns.remove(at)?;
        let waiting = self.waiting.get_mut(&uid)?;
        let job = waiting.pop_front()?;
        if waiting.is_empty() {
            self.waiting.remove(&uid);
        } else {
            self.turns.push_back(uid);
        }
        self.queued -= 1;
        self.running.insert(uid);
        Some(job)
    }

    fn finished(&mut self, uid: u32) {
        self.running.remove(&uid);
    }

    /// Forgets the waiting search of `key`, a connection of `owner`'s that is gone.
    fn cancel(&mut self, key: Key, owner: u32) {
        let Some(waiting) = self.waiting.get_mut(&owner) else {
            return;
        };
        let before = waiting.len();
        waiting.retain(|(waiting_key, _)| *waiting_key != key);
        self.queued -= before - waiting.len();
        if waiting.is_empty() {
            self.waiting.remove(&owner);
            self.turns.retain(|&uid| uid != owner);
        }
    }
}

type Shared = Arc<(Mutex<Queue>, Condvar)>;

/// The scanner threads and their queue.
#[derive(Debug)]
pub struct Scanner {
    shared: Shared,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Queue> {
    // The worker holds the lock only to move queue entries, never across a search: a
    // panic cannot leave the queue half changed.
    shared.0.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scanner {
    /// Starts the threads; `waker` wakes the event loop when a search is done.
    pub fn start(waker: Waker, proc_root: PathBuf) -> io::Result<Scanner> {
        let (sender, results) = channel();
        let mut scanner = Scanner { shared: Shared::default(), results, workers: Vec::new() };
        let waker = Arc::new(waker);
        for _ in 0..THREADS {
            let (shared, sender, waker, proc_root) =
                (Arc::clone(&scanner.shared), sender.clone(), Arc::clone(&waker), proc_root.clone());
            let worker = std::thread::Builder::new()
                .name("holder-search".into())
                .spawn(move || work(&shared, &sender, &waker, &proc_root))?;
            scanner.workers.push(worker);
        }
        Ok(scanner)
    }

    /// Queues a search for the connection `key`.
    pub fn submit(&self, key: Key, search: Search) -> Result<(), Busy> {
        let mut queue = lock(&self.shared);
        if queue.queued >= QUEUED {
            return Err(Busy);
        }
        queue.queued += 1;
        let waiting = queue.waiting.entry(search.owner).or_default();
        waiting.push_back((key, search));
        if waiting.len() == 1 {
            queue.turns.push_back(search.owner);
        }
        self.shared.1.notify_one();
        Ok(())
    }

    /// The connection `key` of the socket owner `owner` is gone: its search, if still
    /// waiting, is not run. Without this, a client that made the daemon drop its
    /// connection (a reset while replies were unsent) left the search queued, and could
    /// queue as many as it liked, one connection after another, until every other user's
    /// search was refused.
    pub fn cancel(&self, key: Key, owner: u32) {
        lock(&self.shared).cancel(key, owner);
    }

    /// The searches finished since last asked.
    pub fn finished(&self) -> impl Iterator<Item = Done> + '_ {
        self.results.try_iter()
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_all();
        // At most one search (time-limited) per thread to wait for.
        for worker in self.workers.drain(..) {
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
        // Another search of this uid may now run, on any thread.
        shared.1.notify_all();
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
    fn one_search_per_uid_at_a_time_and_uids_in_turn() {
        let (_sender, results) = channel();
        let shared = Shared::default();
        // No thread: the test takes the searches itself.
        let scanner = Scanner { shared, results, workers: Vec::new() };
        for key in 0..3 {
            assert_eq!(scanner.submit(key, search(1000)), Ok(()));
        }
        assert_eq!(scanner.submit(100, search(2000)), Ok(()));
        assert_eq!(scanner.submit(101, search(3000)), Ok(()));
        let mut queue = lock(&scanner.shared);
        let order: Vec<Key> = std::iter::from_fn(|| queue.next().map(|(key, _)| key)).collect();
        assert_eq!(order, [0, 100, 101], "one running per uid; the others' searches run beside it");
        queue.finished(2000);
        assert_eq!(queue.next(), None, "uid 1000's next waits for its first to finish");
        queue.finished(1000);
        assert_eq!(queue.next().map(|(key, _)| key), Some(1));
        queue.queued = QUEUED;
        drop(queue);
        assert_eq!(scanner.submit(102, search(4000)), Err(Busy), "bounded");
    }

    #[test]
    fn a_gone_connections_search_is_not_run() {
        let (_sender, results) = channel();
        let scanner = Scanner { shared: Shared::default(), results, workers: Vec::new() };
        for key in 0..3 {
            assert_eq!(scanner.submit(key, search(1000)), Ok(()));
        }
        assert_eq!(scanner.submit(100, search(2000)), Ok(()));
        scanner.cancel(1, 1000);
        scanner.cancel(100, 2000);
        scanner.cancel(7, 1000); // not waiting: nothing to do
        let mut queue = lock(&scanner.shared);
        assert_eq!(queue.queued, 2, "the cancelled ones no longer count");
        assert_eq!(queue.turns, [1000], "a uid with nothing waiting has no turn");
        assert_eq!(queue.next().map(|(key, _)| key), Some(0));
        queue.finished(1000);
        assert_eq!(queue.next().map(|(key, _)| key), Some(2));
        queue.finished(1000);
        assert_eq!(queue.next(), None);
        assert_eq!(queue.queued, 0);
    }
}
