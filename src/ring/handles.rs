//! Which handle in this process owns which slot. The pid in a slot cannot tell two
//! handles of one process apart: after a forced disconnect, a new attach from the same
//! process may get the same slot back, and the old handle must not come back to life
//! with it. Each claim revokes any older handle of this process on that slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use parking_lot::Mutex;

/// (device, inode) of the ring's object, and the slot (`PRODUCER` for the producer).
type Key = (u64, u64, u32);
pub const PRODUCER: u32 = u32::MAX;

static OWNERS: Mutex<Vec<(Key, Arc<AtomicBool>)>> = Mutex::new(Vec::new());

/// A handle's claim on a slot; `revoked` once another handle of this process took it.
pub struct Claim {
    key: Key,
    revoked: Arc<AtomicBool>,
}

impl Claim {
    /// Registers a claim just made on `slot`, revoking this process's older one.
    pub fn new(dev: u64, ino: u64, slot: u32) -> Claim {
        let key = (dev, ino, slot);
        let revoked = Arc::new(AtomicBool::new(false));
        let mut owners = OWNERS.lock();
        if let Some(entry) = owners.iter_mut().find(|(k, _)| *k == key) {
            entry.1.store(true, Ordering::Relaxed);
            entry.1 = revoked.clone();
        } else {
            owners.push((key, revoked.clone()));
        }
        Claim { key, revoked }
    }

    #[inline]
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }

    /// Whether the slot whose pid word is `slot_pid` is still this handle's: it still
    /// carries our pid, and no later handle of this process has claimed it.
    #[inline]
    pub fn holds(&self, slot_pid: &AtomicI32, pid: i32) -> bool {
        slot_pid.load(Ordering::SeqCst) == pid && !self.revoked()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        OWNERS.lock().retain(|(k, flag)| !(*k == self.key && Arc::ptr_eq(flag, &self.revoked)));
    }
}
