//! Shared-memory rings, binary compatible with NSCLDAQ 12.0: one producer, many
//! consumers, each consumer reading every byte at its own pace.
//!
//! Layout and arithmetic follow NSCLDAQ exactly (see `layout`); what daqflow adds lives
//! in bytes NSCLDAQ never uses, so legacy and daqflow clients share a ring at the same
//! time. Blocking is event driven (`wait`), dead clients are found without a daemon
//! (`slots`), and every header and pointer read from shared memory is checked.

use std::sync::OnceLock;

use crate::error::Result;

mod admin;
mod consumer;
mod fence;
mod futex;
mod handles;
pub mod layout;
mod liveness;
mod mem;
mod name;
mod producer;
mod shared;
mod shm;
mod signal;
mod slots;
mod span;
mod stats;
mod store_choice;
mod truncation;
mod wait;
mod watch;

pub use admin::{
    ConsumerUsage, CreateOptions, DEFAULT_MODE, MAX_CONSUMERS_LIMIT, SlotCheck, Usage, create, disconnect_consumer,
    disconnect_producer, exists, format, list, peek_usage, producer_is_daqflow, release_if_gone, remove, usage,
};
pub use consumer::Consumer;
pub use layout::{DEFAULT_DATA_BYTES, DEFAULT_MAX_CONSUMERS};
pub use name::validate as validate_name;
pub use producer::Producer;
pub use span::Span;
pub use stats::{WaitStats, count_wait_stats, reset_wait_stats, wait_stats};
pub use watch::{ConsumerPosition, Positions, Watch};

// Hooks: what the layers above the ring core add around its operations.
//
// The core knows shared memory only. Announcing rings and clients to a ring master,
// opening `tcp://host/ring` names through a proxy, and restarting a proxy's feeder belong
// to the client layer (`crate::client`), which installs them here once, before its first
// ring operation. Without them (a ring master's own senders, a program that uses only the
// core) rings work daemonless and only local names open.

/// A client of a ring, as a ring master is told about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Producer,
    /// The consumer slot index.
    Consumer(u32),
}

/// The client layer's part in the core's operations. Every method but `open_consumer` is
/// told of a local ring by its validated name; an error fails the operation (the core
/// undoes what it did).
pub trait Hooks: Send + Sync {
    /// A consumer of `name` when it names a ring elsewhere (a URL), `None` for a name the
    /// core opens itself.
    fn open_consumer(&self, name: &str) -> Option<Result<Consumer>>;
    /// Whether a producer may attach to `name` (a URL names a ring it cannot produce into).
    fn may_produce(&self, name: &str) -> Result<()>;
    /// After `ring` was created.
    fn created(&self, ring: &str) -> Result<()>;
    /// Before `ring` is removed.
    fn removing(&self, ring: &str) -> Result<()>;
    /// After a client claimed `role` in `ring`.
    fn attached(&self, ring: &str, role: Role) -> Result<()>;
    /// Before a client releases `role` in `ring`.
    fn detaching(&self, ring: &str, role: Role) -> Result<()>;
}

/// Called while a consumer finds no data (from its waits and from `available`), with a
/// look at whether its ring has lost its producer: how a proxy ring's consumer restarts
/// the feeder. Must be cheap until it has something to do.
pub trait Idle: Send {
    fn idle(&mut self, orphaned: &dyn Fn() -> bool);
}

static HOOKS: OnceLock<&'static dyn Hooks> = OnceLock::new();

/// Installs the client layer's hooks; only the first call of a process counts.
pub fn install_hooks(hooks: &'static dyn Hooks) {
    let _ = HOOKS.set(hooks);
}

fn installed_hooks() -> Option<&'static dyn Hooks> {
    HOOKS.get().copied()
}
