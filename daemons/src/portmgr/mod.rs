//! The daqportmgr daemon: wire compatible with NSCLDAQ's `DaqPortManager` (see
//! docs/portmanager.md). Its protocol and client are the library's
//! (`daqflow::portmgr`).

pub mod holders;
pub mod listing;
pub mod outbox;
pub mod peercred;
pub mod pool;
pub mod probe;
pub mod ratelimit;
pub mod scanner;
pub mod sdnotify;
pub mod server;
pub mod session;

pub use pool::PortRange;

/// The key of a connection in the daemon's table (and the owner of its ports in the pool).
pub type Key = usize;
pub use server::Config;
