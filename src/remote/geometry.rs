//! The size and consumer slots of the proxy rings this process creates for `tcp://`
//! consumers: NSCLDAQ's `CRingAccess::setProxyRingSize` and `setProxyMaxConsumers`.
//!
//! Process-wide, as NSCLDAQ's were; they shape only proxies created from now on by this
//! process (a proxy that exists keeps its geometry, whoever made it).

/// Mode of the proxies this process makes (by a consumer or by its feeder): only its
/// user (and root) can read or write.
pub const PROXY_MODE: u32 = 0o600;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::ring::{CreateOptions, DEFAULT_DATA_BYTES, DEFAULT_MAX_CONSUMERS};

static DATA_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_DATA_BYTES);
static MAX_CONSUMERS: AtomicU32 = AtomicU32::new(DEFAULT_MAX_CONSUMERS);

/// Sets the geometry of proxies created from now on; 0 means the default, as for
/// `ring::create`. Values are checked when a proxy is created.
pub fn set(data_bytes: u64, max_consumers: u32) {
    DATA_BYTES.store(data_bytes, Ordering::Relaxed);
    MAX_CONSUMERS.store(max_consumers, Ordering::Relaxed);
}

/// (data bytes, consumer slots) as last set.
pub fn get() -> (u64, u32) {
    (DATA_BYTES.load(Ordering::Relaxed), MAX_CONSUMERS.load(Ordering::Relaxed))
}

/// How to create a proxy ring now.
pub fn create_options() -> CreateOptions {
    let (data_bytes, max_consumers) = get();
    CreateOptions { data_bytes, max_consumers, ..CreateOptions::default() }
}
