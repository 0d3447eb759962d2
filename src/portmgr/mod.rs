//! Port manager: the wire protocol and the client (the daemon is daqflow-daemons'
//! `daqportmgr`).
//!
//! Wire compatible with NSCLDAQ's `DaqPortManager` (see docs/portmanager.md): servers
//! ask for a TCP port under a service name and hold it for as long as their connection
//! stays open; anyone may LIST the allocations.

pub mod client;
pub mod lines;
pub mod protocol;
pub mod refusal;
pub mod reply;
pub mod tcl;

pub use client::{Allocation, Client};
