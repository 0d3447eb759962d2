//! Shared-memory rings, binary compatible with NSCLDAQ 12.0: one producer, many
//! consumers, each consumer reading every byte at its own pace.
//!
//! Layout and arithmetic follow NSCLDAQ exactly (see `layout`); what daqflow adds lives
//! in bytes NSCLDAQ never uses, so legacy and daqflow clients share a ring at the same
//! time. Blocking is event driven (`wait`), dead clients are found without a daemon
//! (`slots`), and every header and pointer read from shared memory is checked.

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
