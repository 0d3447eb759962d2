//! Port manager: the wire protocol, the client and the daqportmgr daemon.
//!
//! Wire compatible with NSCLDAQ's `DaqPortManager` (see docs/portmanager.md): servers
//! ask for a TCP port under a service name and hold it for as long as their connection
//! stays open; anyone may LIST the allocations.

pub mod client;
pub mod holders;
pub mod lines;
pub mod listing;
pub mod log;
pub mod outbox;
pub mod peercred;
pub mod pool;
pub mod probe;
pub mod protocol;
pub mod ratelimit;
pub mod refusal;
pub mod reply;
pub mod scanner;
pub mod sdnotify;
pub mod server;
pub mod session;
pub mod statefiles;
pub mod tcl;

pub use client::{Allocation, Client};
pub use pool::PortRange;
pub use server::Config;
