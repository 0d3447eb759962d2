//! Ring master: the NSCLDAQ RingMaster protocol and its client (the daemon is
//! daqflow-daemons' `ringmaster`).
//!
//! Compatible with NSCLDAQ's Tcl `RingMaster` (see docs/ringmaster.md): local clients
//! announce the ring slots they claim and release; anyone allowed may LIST the rings it
//! knows, and allowed hosts may ask for a ring's data as a byte stream (REMOTE).

pub mod client;
pub mod protocol;

pub use client::Client;
pub use protocol::{RingUsage, Role};
