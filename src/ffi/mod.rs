//! The C ABI: a thin layer over the safe Rust API. Every exported function checks its
//! arguments, calls into `crate::ring`, `crate::portmgr` or `crate::ringmaster`, and turns the `Result` into
//! a negated errno plus a thread-local message. Panics never cross into C.

// The C names (ring_client, portmgr_allocation ...) are the contract.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Error, Result};

pub mod portmgr;
pub mod remote;
pub mod ring;
pub mod ringmaster;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // Interior NULs cannot appear in a C string; replace rather than lose the message.
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// What the C side gets back from a failure: negated errno in the function's return type.
pub(crate) trait FromErrno {
    fn from_errno(errno: i32) -> Self;
}

impl FromErrno for i32 {
    fn from_errno(errno: i32) -> Self {
        -errno
    }
}

impl FromErrno for isize {
    fn from_errno(errno: i32) -> Self {
        -(errno as isize)
    }
}

/// Runs `body`, catching panics; on failure records the message and returns `-errno`.
/// A C program gets NSCLDAQ's whole behaviour (ring master, `tcp://` rings), so the
/// client layer is installed first (a single atomic load once it is).
pub(crate) fn guard<T: FromErrno>(body: impl FnOnce() -> Result<T>) -> T {
    crate::client::install();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            set_last_error(err.message());
            T::from_errno(err.errno())
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("internal error in daqflow (please report): {what}"));
            T::from_errno(libc::EIO)
        }
    }
}

/// Runs `body` for functions with no error channel (void or plain values); a panic
/// yields `fallback`.
pub(crate) fn guard_infallible<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Borrows a required C string argument as UTF-8.
///
/// # Safety
/// `ptr` must be NULL or point at a NUL-terminated string that outlives the call.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::new(libc::EINVAL, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let cstr = unsafe { CStr::from_ptr(ptr) };
    cstr.to_str().map_err(|_| Error::new(libc::EINVAL, format!("{what} is not valid UTF-8")))
}

/// Borrows an optional C string argument (NULL means "use the default").
///
/// # Safety
/// As for [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>> {
    // SAFETY: non-NULL here, and our caller's contract is str_arg's.
    if ptr.is_null() { Ok(None) } else { unsafe { str_arg(ptr, what) }.map(Some) }
}

/// Checks that a required out-pointer is not NULL.
pub(crate) fn out_arg<T>(ptr: *mut T, what: &str) -> Result<*mut T> {
    if ptr.is_null() { Err(Error::new(libc::EINVAL, format!("{what} is NULL"))) } else { Ok(ptr) }
}

/// A message for the most recent failure on the calling thread, or "" when none.
/// Valid until the next failing daqflow call on this thread. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn daqflow_last_error() -> *const c_char {
    guard_infallible(c"internal error".as_ptr(), || LAST_ERROR.with(|slot| slot.borrow().as_ptr()))
}

/// The library version, e.g. "1.0.0".
#[unsafe(no_mangle)]
pub extern "C" fn daqflow_version() -> *const c_char {
    static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    VERSION.as_ptr()
}
