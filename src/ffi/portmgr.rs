//! C ABI for the port manager client: argument checks over `crate::portmgr::Client`.
//!
//! The safety contract of every function is the header's: NULL or valid pointers,
//! NUL-terminated strings, handles from portmgr_open used by one thread at a time.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{CString, c_char, c_int};
use std::time::Duration;

use super::{guard, guard_infallible, opt_str_arg, out_arg, str_arg};
use crate::error::{Error, Result};
use crate::portmgr::Client;

/// A connection to a port manager (opaque). The ports allocated through it stay
/// allocated until portmgr_close.
pub struct portmgr {
    client: Client,
    /// portmgr_refusal's answer, kept so the pointer it returns stays valid.
    refusal: Option<CString>,
}

/// One allocation as the server lists it.
#[repr(C)]
pub struct portmgr_allocation {
    pub port: c_int,
    /// As LISTed by the server (the second and later of one name carry _1, _2 ...).
    pub application: *mut c_char,
    pub user: *mut c_char,
}

/// The connection behind a handle.
///
/// # Safety
/// `pm` is NULL or a handle from portmgr_open not yet closed, which no other thread uses
/// while the result lives.
unsafe fn handle<'a>(pm: *mut portmgr) -> Result<&'a mut portmgr> {
    // SAFETY: per our contract, NULL (as_mut says None) or a live, unshared handle.
    unsafe { pm.as_mut() }.ok_or_else(|| Error::new(libc::EINVAL, "portmgr handle is NULL"))
}

/// Text from the server as a C string (a NUL inside would cut it short).
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{fffd}")).unwrap_or_default()
}

/// As [`c_text`], handed to C to free with portmgr_list_free.
fn c_string(text: &str) -> *mut c_char {
    c_text(text).into_raw()
}

/// Connects to the port manager on host (NULL: "localhost"; a name, an IPv4 or an IPv6
/// address) at port (<= 0: the number in the port file, $DAQPORTMGR_PORTFILE or
/// /var/tmp/daqportmgr/listen.port, else 30000). Waits at most 5 s for the connection.
/// -ECONNREFUSED (or the connect errno) when no server answers, -EHOSTUNREACH when the
/// host name does not resolve, -EPERM when the server on this host is run by an account
/// this process does not trust (root, DAQFLOW_TRUSTED_USERS, its own user).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_open(host: *const c_char, port: c_int, out: *mut *mut portmgr) -> c_int {
    guard(|| {
        let out = out_arg(out, "out")?;
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let host = unsafe { opt_str_arg(host, "host") }?;
        let port = if port <= 0 {
            None
        } else {
            Some(u16::try_from(port).map_err(|_| Error::new(libc::EINVAL, format!("port {port} is not a TCP port")))?)
        };
        let client = Client::connect(host, port)?;
        // SAFETY: `out` is non-NULL (checked) and valid for a write, per the contract.
        unsafe { *out = Box::into_raw(Box::new(portmgr { client, refusal: None })) };
        Ok(0)
    })
}

/// The port portmgr_open uses when given port <= 0: the number in the port file
/// ($DAQPORTMGR_PORTFILE, else /var/tmp/daqportmgr/listen.port), or 30000 when there is
/// no such file. -EINVAL when the file does not hold a port number.
#[unsafe(no_mangle)]
pub extern "C" fn portmgr_default_port() -> c_int {
    guard(|| crate::portmgr::client::default_port().map(c_int::from))
}

/// How long each request waits for the server's reply: timeout_ms > 0, or -1 to wait
/// forever (default 5000). 0 is -EINVAL: every request waits for its reply.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_set_timeout(pm: *mut portmgr, timeout_ms: c_int) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from portmgr_open not yet closed, used by one thread at a time, per the contract.
        let pm = unsafe { handle(pm) }?;
        let timeout = match timeout_ms {
            -1 => None,
            ms if ms > 0 => Some(Duration::from_millis(ms as u64)),
            ms => return Err(Error::new(libc::EINVAL, format!("timeout_ms {ms}: use -1 or a positive value"))),
        };
        pm.client.set_timeout(timeout);
        Ok(0)
    })
}

/// Allocates a port for application under the calling user's name and stores it in
/// *port_out. The port stays allocated until portmgr_close (or the process exits).
/// -EADDRNOTAVAIL no free ports; -EPERM the server only gives ports to local programs;
/// -EACCES the server does not believe we are the calling user; -EEXIST the server
/// refuses a second allocation of one name by one user (FRIB's portman); -EIO another
/// refusal (the server's words: portmgr_refusal); -ETIMEDOUT no reply;
/// -EPROTO a reply that is not the protocol; -EINVAL a name with a control character
/// (a line break, TAB, ...) or too long for the server's 4096-byte request line (both
/// refused before sending; the handle keeps its ports). After -ETIMEDOUT, -EPROTO or a
/// broken connection the handle is shut down (the server releases its ports; a late
/// reply can never be taken for the answer to a later request) and every later call on
/// it fails with -EPIPE: close it and open a new one. A server may also close the
/// connection after refusing (portmgr_usable says so).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_allocate(pm: *mut portmgr, application: *const c_char, port_out: *mut c_int) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from portmgr_open not yet closed, used by one thread at a time, per the contract.
        let pm = unsafe { handle(pm) }?;
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let application = unsafe { str_arg(application, "application") }?;
        let port_out = out_arg(port_out, "port_out")?;
        let port = pm.client.allocate(application)?;
        // SAFETY: `port_out` is non-NULL (checked) and valid for a write, per the contract.
        unsafe { *port_out = c_int::from(port) };
        Ok(0)
    })
}

/// The server's own reason when the last portmgr_allocate on pm got a FAIL reply (e.g.
/// "no free ports"): returns 1 and points *reason at it (valid until the next call on pm).
/// Returns 0, leaving *reason alone, when that allocation succeeded or failed otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_refusal(pm: *mut portmgr, reason: *mut *const c_char) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from portmgr_open not yet closed, used by one thread at a time, per the contract.
        let pm = unsafe { handle(pm) }?;
        let reason = out_arg(reason, "reason")?;
        pm.refusal = pm.client.refusal().map(c_text);
        Ok(match &pm.refusal {
            Some(text) => {
                // SAFETY: `reason` is non-NULL (checked) and valid for a write, per the contract.
                unsafe { *reason = text.as_ptr() };
                1
            }
            None => 0,
        })
    })
}

/// 1 while pm's connection is open and usable, 0 once it is gone: shut down after a
/// failure (-ETIMEDOUT, -EPROTO, a broken connection) or closed by the server after a
/// refusal (NSCLDAQ's server hangs up after an invalid request or a non-local GIMME, FRIB's
/// portman after every refusal, -EADDRNOTAVAIL included). A handle that is gone holds no
/// ports any more and every later call on it fails with -EPIPE: close it and open a new
/// one. -EINVAL when pm is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_usable(pm: *mut portmgr) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from portmgr_open not yet closed, used by one thread at a time, per the
        // contract.
        let pm = unsafe { handle(pm) }?;
        Ok(c_int::from(pm.client.is_usable()))
    })
}

/// Every allocation on the server, in the server's order: *list gets an array of
/// *count entries (NULL when there are none). Free it with portmgr_list_free.
/// -ETIMEDOUT or -EPROTO (also part way through the list) shut the handle down, and
/// later calls fail with -EPIPE, as for portmgr_allocate.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_list(
    pm: *mut portmgr,
    list: *mut *mut portmgr_allocation,
    count: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from portmgr_open not yet closed, used by one thread at a time, per the contract.
        let pm = unsafe { handle(pm) }?;
        let list = out_arg(list, "list")?;
        let count = out_arg(count, "count")?;
        let allocations = pm.client.list()?;
        let n = allocations.len();
        let array: Box<[portmgr_allocation]> = allocations
            .iter()
            .map(|a| portmgr_allocation {
                port: c_int::from(a.port),
                application: c_string(&a.application),
                user: c_string(&a.user),
            })
            .collect();
        // SAFETY: both out-pointers are non-NULL (checked) and valid for a write, per the contract.
        unsafe {
            *list = if n == 0 { std::ptr::null_mut() } else { Box::into_raw(array).cast() };
            *count = n;
        }
        Ok(0)
    })
}

/// Frees what portmgr_list returned. NULL is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_list_free(list: *mut portmgr_allocation, count: usize) {
    if list.is_null() {
        return;
    }
    guard_infallible((), || {
        // SAFETY: `list` and `count` come from portmgr_list, which boxed exactly this slice
        // and made every string with CString::into_raw.
        let array = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(list, count)) };
        for entry in array.iter() {
            for text in [entry.application, entry.user] {
                if !text.is_null() {
                    // SAFETY: portmgr_list made it with CString::into_raw; freed once here.
                    drop(unsafe { CString::from_raw(text) });
                }
            }
        }
    })
}

/// The port of service run by user (NULL: the calling user), matching the listed name
/// exactly; -ENOENT when nothing matches.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_find_server(
    pm: *mut portmgr,
    service: *const c_char,
    user: *const c_char,
    port_out: *mut c_int,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or a handle from portmgr_open not yet closed, used by one thread at a time, per the contract.
        let pm = unsafe { handle(pm) }?;
        // SAFETY: NULL or NUL-terminated strings, per the contract; str_arg checks NULL.
        let service = unsafe { str_arg(service, "service") }?;
        // SAFETY: as for `service`.
        let user = unsafe { opt_str_arg(user, "user") }?;
        let port_out = out_arg(port_out, "port_out")?;
        let port = pm.client.find_server(service, user)?;
        // SAFETY: `port_out` is non-NULL (checked) and valid for a write, per the contract.
        unsafe { *port_out = c_int::from(port) };
        Ok(0)
    })
}

/// Closes the connection; the server releases every port this handle holds. NULL is
/// allowed. Returns 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn portmgr_close(pm: *mut portmgr) -> c_int {
    if pm.is_null() {
        return 0;
    }
    guard(|| {
        // SAFETY: a handle from portmgr_open, not used again by the caller.
        drop(unsafe { Box::from_raw(pm) });
        Ok(0)
    })
}
