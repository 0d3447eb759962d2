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
pub mod sdnotify;
pub mod server;
pub mod session;

pub use pool::PortRange;
pub use server::Config;
