//! The library's environment variables, as a process may take them.
//!
//! A set-user-ID or set-group-ID program (or one given capabilities by its file) runs
//! with another account's rights in an environment its caller chose: a variable that
//! names a program to run, a file to write, or accounts to trust would let the caller
//! act as that account. Such a process (the kernel marks it AT_SECURE, as glibc's
//! `secure_getenv` does) takes none of them and uses the defaults, and passes none of
//! them on to the feeders it starts.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The prefix of every variable the library reads (DAQPORTMGR_PORTFILE is NSCLDAQ's).
const PREFIXES: [&str; 2] = ["DAQFLOW_", "DAQPORTMGR_"];

/// The value of the library's variable `name`, unless this process runs with rights
/// its caller does not have.
pub fn var_os(name: &str) -> Option<OsString> {
    if secure() { None } else { std::env::var_os(name) }
}

/// This process was started with more rights than its caller (set-user-ID, set-group-ID,
/// file capabilities).
pub fn secure() -> bool {
    crate::sys::at_secure()
}

/// The environment for a program this process starts: its own, without the library's
/// variables when `secure()` (they came from the caller), as `NAME=value` strings for execve.
pub fn for_child() -> Vec<CString> {
    let keep = |name: &OsString| !secure() || !PREFIXES.iter().any(|p| name.to_string_lossy().starts_with(p));
    std::env::vars_os()
        .filter(|(name, _)| keep(name))
        .filter_map(|(name, value)| {
            let mut entry = name.into_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            // A variable cannot hold a NUL; were one to, it is left out.
            CString::new(entry).ok()
        })
        .collect()
}
