//! C ABI for what tcp://host/ring consumers need beyond ring_attach_consumer: the
//! geometry of the proxy rings this process creates, and whether a host is this one.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int};

use super::{guard, guard_infallible, str_arg};
use crate::remote::geometry;

/// Bound on resolving a host name for ring_host_is_local.
const RESOLVE_TIMEOUT: std::time::Duration = crate::remote::feeder::STEP_TIMEOUT;

/// Sets the data bytes and consumer slots of the proxy rings this process creates from
/// now on when it attaches a consumer to tcp://host/ring (0: the default, as for
/// ring_create; checked when a proxy is created). A proxy ring that already exists
/// keeps its geometry, whoever created it. Initially RING_DEFAULT_DATA_BYTES and
/// RING_DEFAULT_MAX_CONSUMERS.
#[unsafe(no_mangle)]
pub extern "C" fn ring_set_proxy_geometry(data_bytes: u64, max_consumers: u32) {
    guard_infallible((), || geometry::set(data_bytes, max_consumers))
}

/// The values ring_set_proxy_geometry last set. Either pointer may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_proxy_geometry(data_bytes: *mut u64, max_consumers: *mut u32) {
    guard_infallible((), || {
        let (bytes, consumers) = geometry::get();
        // SAFETY: each pointer is NULL or valid for a write, per the contract.
        unsafe {
            if let Some(out) = data_bytes.as_mut() {
                *out = bytes;
            }
            if let Some(out) = max_consumers.as_mut() {
                *out = consumers;
            }
        }
    })
}

/// 1 when host names this host (localhost, one of its names, a loopback address or
/// one of its interfaces' addresses): a consumer of tcp://host/ring then reads the
/// ring itself, with no proxy. 0 for another host; -EHOSTUNREACH when host does not
/// resolve, -ETIMEDOUT when the resolver gives no answer within 5 s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ring_host_is_local(host: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: a NUL-terminated string, per the contract.
        let host = unsafe { str_arg(host, "host") }?;
        crate::hosts::resolve_within(host, RESOLVE_TIMEOUT).map(|(_, local)| c_int::from(local))
    })
}
