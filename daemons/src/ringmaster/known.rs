//! The rings the ring master knows, kept as NSCLDAQ's RingMaster keeps them: the rings
//! present when it started, plus those REGISTERed since, less those UNREGISTERed or gone.
//!
//! LIST shows these and no others, because clients can tell: NSCLDAQ's C++
//! `CRingBuffer::create` of a name that is already a ring asks LIST, fails with EEXIST
//! when the ring is listed, and adopts it (REGISTER) when it is not. A ring master that
//! listed every ring in /dev/shm made that create fail. Operators still see every ring
//! with `ringbuffer status`, which reads /dev/shm itself.

use std::collections::BTreeSet;

use parking_lot::Mutex;

use daqflow::error::Result;
use daqflow::ring;

/// Above this many names, a REGISTER first forgets the rings that are gone, so names
/// registered and removed without UNREGISTER (and with no LIST to prune them) cannot pile
/// up: what is left is bounded by what /dev/shm holds.
const PRUNE_AT: usize = 1024;

#[derive(Default)]
pub struct Known {
    names: Mutex<BTreeSet<String>>,
}

impl Known {
    /// Adds every ring now in /dev/shm whose header reads (NSCLDAQ's daemon took those
    /// whose usage it could read); returns how many it did not know yet. Fails, adding
    /// nothing, when short of descriptors: a ring left out for that would be taken for
    /// a new one by NSCLDAQ's create.
    pub fn enumerate(&self) -> Result<usize> {
        let mut present = Vec::new();
        for name in ring::list()? {
            match ring::peek_usage(&name) {
                Ok(_) => present.push(name),
                Err(e) if matches!(e.errno(), libc::EMFILE | libc::ENFILE) => return Err(e),
                Err(_) => {}
            }
        }
        let mut names = self.names.lock();
        Ok(present.into_iter().filter(|name| names.insert(name.clone())).count())
    }

    /// Adds `name` (a ring the caller has checked); true if it was not known yet.
    pub fn register(&self, name: &str) -> bool {
        let mut names = self.names.lock();
        if names.len() >= PRUNE_AT {
            names.retain(|name| !gone(name));
        }
        names.insert(name.to_string())
    }

    /// Forgets `name`; true if it was known.
    pub fn unregister(&self, name: &str) -> bool {
        self.names.lock().remove(name)
    }

    /// The known rings that are still there, sorted by name; the others are forgotten
    /// (NSCLDAQ's daemon pruned its list the same way on each LIST).
    pub fn current(&self) -> Vec<String> {
        let mut names = self.names.lock();
        names.retain(|name| !gone(name));
        names.iter().cloned().collect()
    }
}

/// Whether the ring is no longer there. A ring we may not read (another user's, mode
/// 0600) is still there.
fn gone(name: &str) -> bool {
    matches!(ring::exists(name), Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_rings_are_pruned() {
        let known = Known::default();
        let name = format!("known-unit-none-{}", std::process::id());
        assert!(known.register(&name));
        assert!(!known.register(&name));
        assert!(known.current().is_empty(), "a name with no ring is forgotten on listing");
        assert!(!known.unregister(&name));
        assert!(known.register(&name) && known.unregister(&name));
    }
}
