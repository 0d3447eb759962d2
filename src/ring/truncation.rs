//! Surviving a ring's object being truncated under its mapping.
//!
//! Rings are mode 0666 by default, so any user can `ftruncate` one; touching a mapped
//! page past the new end of the object is SIGBUS, which kills the process. Every ring
//! mapping is registered here, and a SIGBUS handler, installed on the first mapping,
//! replaces a mapping that faults with anonymous zeroed memory of the same size at the
//! same address (as Wayland compositors do for clients' shared memory). The faulting
//! access then completes on zeros, the mapping is marked `struck`, and the ring code
//! turns that into an error on the call that touched it. Faults anywhere else, and
//! SIGBUS sent by `kill`, go to the handler that was there before, or kill the process
//! as they would have without us.
//!
//! The handler may only do async-signal-safe work, so the registry is a fixed table of
//! atomics, claimed and freed without locks.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// Mappings guarded at once. A process past it (thousands of attached rings) keeps
/// working; its further mappings are simply not guarded.
const SLOTS: usize = 4096;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const LIVE: u8 = 2;
/// Being unregistered: not claimable until no handler can still be looking at it.
const DYING: u8 = 3;

/// Handlers inside `replace_mapping`. An entry is freed (and its mapping unmapped, and
/// the slot reused) only once this is zero, so a handler never reads an entry that is
/// half rewritten, nor maps zeros over memory that was already given back.
static BUSY: AtomicUsize = AtomicUsize::new(0);

struct Entry {
    state: AtomicU8,
    start: AtomicUsize,
    len: AtomicUsize,
    struck: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise the table
const EMPTY: Entry = Entry {
    state: AtomicU8::new(FREE),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    struck: AtomicBool::new(false),
};

static TABLE: [Entry; SLOTS] = [EMPTY; SLOTS];

/// What SIGBUS did before the handler was installed: written once, before the handler
/// can run, and only read afterwards.
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();
static INSTALL: Once = Once::new();
static INSTALL_FAILED: AtomicBool = AtomicBool::new(false);

/// The flag of an unguarded mapping: never set.
pub static NEVER_STRUCK: AtomicBool = AtomicBool::new(false);

/// A mapping's registration; dropped before the mapping is unmapped.
pub struct Guard {
    index: usize,
}

impl Guard {
    /// Registers `len` bytes at `start`. `None` when the table is full or the handler
    /// could not be installed: the mapping is then as exposed as it was without us.
    pub fn register(start: *const u8, len: usize) -> Option<Guard> {
        if !install() {
            return None;
        }
        let index = TABLE
            .iter()
            .position(|e| e.state.compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed).is_ok())?;
        let entry = &TABLE[index];
        entry.start.store(start as usize, Ordering::Relaxed);
        entry.len.store(len, Ordering::Relaxed);
        entry.struck.store(false, Ordering::Relaxed);
        entry.state.store(LIVE, Ordering::Release);
        Some(Guard { index })
    }

    /// Set once the mapping was truncated under us and holds zeros; a plain reference,
    /// so that the hot paths that look at it pay one load.
    pub fn struck_flag(&self) -> &'static AtomicBool {
        &TABLE[self.index].struck
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let state = &TABLE[self.index].state;
        // SeqCst with the handler's increment of BUSY and load of the state: either the
        // handler sees DYING and leaves the entry alone, or we see it busy and wait.
        state.store(DYING, Ordering::SeqCst);
        // A handler takes microseconds. The bound is for a child forked while another
        // thread was in one: the count it inherited never drops.
        let waiting = std::time::Instant::now();
        while BUSY.load(Ordering::SeqCst) != 0 && waiting.elapsed() < std::time::Duration::from_secs(1) {
            std::thread::yield_now();
        }
        state.store(FREE, Ordering::Release);
    }
}

/// Installs the handler once per process; false if that failed.
fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sigaction structs are plain data; the handler below only makes
        // async-signal-safe calls (mmap, sigaction, raise) and atomic loads and stores.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            // SA_ONSTACK: a thread that set up an alternate stack (Rust's main thread,
            // for its stack-overflow report) keeps using it.
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            // PREVIOUS is set before the handler that reads it can run.
            if PREVIOUS.set(old).is_ok() && libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) != 0 {
                INSTALL_FAILED.store(true, Ordering::Relaxed);
            }
        }
    });
    PREVIOUS.get().is_some() && !INSTALL_FAILED.load(Ordering::Relaxed)
}

extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; si_addr is meaningful for the
    // hardware fault codes only, which is checked first (for `kill -BUS` the same
    // bytes hold the sender's pid and uid).
    let fault = unsafe { (*info).si_code == libc::BUS_ADRERR }.then(|| unsafe { (*info).si_addr() } as usize);
    if let Some(address) = fault
        && replace_mapping(address)
    {
        return;
    }
    pass_on(signal, info, context);
}

/// Replaces the registered mapping holding `address` with zeroed anonymous memory.
fn replace_mapping(address: usize) -> bool {
    BUSY.fetch_add(1, Ordering::SeqCst);
    let replaced = replace_live_mapping(address);
    BUSY.fetch_sub(1, Ordering::SeqCst);
    replaced
}

/// `replace_mapping`, with BUSY held: the live entries stay as they are meanwhile.
fn replace_live_mapping(address: usize) -> bool {
    for entry in &TABLE {
        if entry.state.load(Ordering::SeqCst) != LIVE {
            continue;
        }
        let start = entry.start.load(Ordering::Relaxed);
        let len = entry.len.load(Ordering::Relaxed);
        if address < start || address - start >= len {
            continue;
        }
        // SAFETY: the range is a live mapping of ours (registered until just before it
        // is unmapped); MAP_FIXED swaps its pages atomically for private zeroed ones,
        // so the faulting access and every later one find memory there.
        let replaced = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if replaced == libc::MAP_FAILED {
            return false;
        }
        entry.struck.store(true, Ordering::Release);
        return true;
    }
    false
}

/// Hands the signal to the previous handler, or lets it do what it would have done.
fn pass_on(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS.get();
    let handler = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    // SAFETY: the kernel passes a valid siginfo. Codes up to 0 are signals sent by a
    // process (kill, sigqueue, tgkill); the others are faults, which repeat on return.
    let sent = unsafe { (*info).si_code } <= 0;
    if handler == libc::SIG_IGN && sent {
        return;
    }
    if let Some(previous) = previous.filter(|_| handler != libc::SIG_DFL && handler != libc::SIG_IGN) {
        // SAFETY: sigaction is async-signal-safe; the previous disposition was a handler
        // of the kind its flags say.
        unsafe {
            if previous.sa_flags & libc::SA_RESETHAND != 0 {
                // The kernel would have reset the disposition before calling it: a handler
                // that relies on that returns from a fault expecting the default action
                // next, and would otherwise be called for ever.
                reset(signal);
            }
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(handler);
                f(signal, info, context);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                f(signal);
            }
        }
        return;
    }
    // The default action (ignoring a fault is not possible: it would repeat forever).
    // SAFETY: sigaction and raise are async-signal-safe. A fault repeats on return and
    // now kills; a sent signal is raised again, blocked until we return, then kills.
    unsafe {
        reset(signal);
        if sent {
            libc::raise(signal);
        }
    }
}

/// Gives `signal` its default action.
unsafe fn reset(signal: libc::c_int) {
    // SAFETY: a zeroed sigaction with SIG_DFL is a valid disposition.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        libc::sigaction(signal, &default, std::ptr::null_mut());
    }
}
