//! Cross-process futex wait and wake on a 32-bit word in a MAP_SHARED mapping.
//! Not FUTEX_PRIVATE: the kernel must key the word by the shared object, so that a
//! wake in one process reaches a waiter in another.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use super::stats::{Event, count};

/// Sleeps while `*word == expected`, for at most `timeout`. Returns on a wake, a
/// timeout, a signal or a changed word alike: the caller re-checks its condition.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32; the timespec outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            0usize,
            0u32,
        )
    };
    count(match (rc, rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT)) {
        (0, _) => Event::WaitWoken,
        (_, true) => Event::WaitTimedOut,
        // EAGAIN: the word had changed; EINTR (a signal) counts as not slept through.
        _ => Event::WaitNotSlept,
    });
}

/// Wakes every process sleeping on `word`.
pub fn wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32.
    let woken =
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0usize, 0usize, 0u32) };
    count(if woken > 0 { Event::Wake } else { Event::WakeForNobody });
}
