//! The ringmaster daemon: compatible with NSCLDAQ's Tcl `RingMaster` (see
//! docs/ringmaster.md). Local clients announce the ring slots they claim and release, so
//! the daemon can free a dead client's slots when its connection closes; anyone allowed
//! may LIST the rings it knows (those present at its start and those registered since,
//! see `known`), and hosts allowed by `--allow-remote` may ask for a ring's data as a
//! byte stream (REMOTE) of the rings they may read (see `readers`). Its protocol and
//! client are the library's (`daqflow::ringmaster`).

pub mod access;
pub mod acl;
pub mod known;
pub mod noise;
pub mod peer;
pub mod readers;
pub mod sender;
pub mod server;
pub mod session;
pub mod shared;
pub mod streams;

pub use server::Config;
