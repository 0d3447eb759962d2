//! daqflow's daemons: `daqportmgr` (NSCLDAQ's port manager) and `ringmaster` (NSCLDAQ's
//! ring master), over the daqflow library.
//!
//! The wire protocols and clients are the library's (`daqflow::portmgr`,
//! `daqflow::ringmaster`), shared with every program that talks to these daemons; what
//! only a server needs (event loops, peer identification, limits, state files, logs)
//! lives here, so the C library carries none of it.

pub mod daemon;
pub mod log;
pub mod network;
pub mod portmgr;
pub mod ringmaster;
pub mod statefiles;
mod sys;
