//! daqflow: NSCLDAQ-compatible shared-memory ring buffers and port manager, with a C ABI.
//!
//! The safe Rust API lives in [`ring`] and [`portmgr`]; [`ffi`] is the C ABI over it.

pub mod client;
pub mod environ;
pub mod error;
pub mod ffi;
pub mod hosts;
pub mod portmgr;
pub mod progress;
pub mod remote;
pub mod ring;
pub mod ringmaster;
pub mod server_owner;
pub mod sockdiag;
mod sys;
pub mod trust;

pub use error::{Error, Result};
