//! The asymmetric fence that keeps publishing cheap.
//!
//! A publisher stores its pointer and then reads the peer's "sleepers" word; a waiter
//! stores "sleepers" and then reads the pointer. Without a full fence on both sides, x86
//! may let each load pass its own store and both sides miss each other: a lost wake-up.
//! A full fence on every put and get (a locked instruction) is what the hot path cannot
//! afford, so the cost moves to the side that is about to sleep anyway: the waiter calls
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which runs a full barrier on every CPU
//! currently running a registered process, and publishers need only plain stores.
//!
//! Publishers register their process once (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`,
//! Linux 4.16+). Where membarrier is missing or refused (old kernel, seccomp), publishers
//! use sequentially consistent stores instead, and a waiter whose membarrier fails falls
//! back to short sleep slices, so correctness never depends on it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering, compiler_fence};

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0u32, 0i32) }
}

/// Whether this process is registered, so its publishers may use plain stores.
pub fn light_publish() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let supported = membarrier(MEMBARRIER_CMD_QUERY);
        supported >= 0
            && supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED as libc::c_long != 0
            && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0
    })
}

/// The waiter's side: a full barrier on every CPU running a registered publisher.
/// False when it could not be done (then the waiter must not sleep long).
pub fn heavy() -> bool {
    super::stats::count(super::stats::Event::Membarrier);
    membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0
}

/// Publishes a put or get pointer. With `light`, a release store (a plain move on x86)
/// kept before the following sleepers check by the compiler; the hardware ordering is
/// the waiter's `heavy()` business.
#[inline]
pub fn publish(pointer: &AtomicU64, value: u64, light: bool) {
    if light {
        pointer.store(value, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
    } else {
        pointer.store(value, Ordering::SeqCst);
    }
}
