//! The daemons' system calls that neither std nor nix wrap, each behind a safe function.
//! (What they share with the library goes through it; reading ring memory is the ring
//! core's business, except the ring master's send straight from a consumer's span.)

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{SystemTime, UNIX_EPOCH};

/// The local time now, formatted by strftime (`format`), as NSCLDAQ's logs write it;
/// the seconds since the epoch when the time zone cannot be applied.
pub fn local_time(format: &CStr) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as libc::time_t;
    let mut tm = libc::tm {
        tm_sec: 0,
        tm_min: 0,
        tm_hour: 0,
        tm_mday: 0,
        tm_mon: 0,
        tm_year: 0,
        tm_wday: 0,
        tm_yday: 0,
        tm_isdst: 0,
        tm_gmtoff: 0,
        tm_zone: std::ptr::null(),
    };
    // SAFETY: localtime_r reads one time_t and writes one tm, both ours; it is the
    // thread-safe variant (no shared static result).
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return now.to_string();
    }
    let mut buf = [0u8; 64];
    // SAFETY: strftime writes at most `buf.len()` bytes into `buf` and returns how many
    // (0 when the result does not fit); the format is NUL-terminated and `tm` was filled
    // in by localtime_r (its `tm_zone` points to the C library's static zone names).
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n.min(buf.len())]).into_owned()
}

/// Where an extended attribute is read from.
pub enum XattrOf<'a> {
    /// The file a path names, not following a symbolic link (lgetxattr).
    Path(&'a CStr),
    /// An open file (fgetxattr).
    File(BorrowedFd<'a>),
}

/// Reads the extended attribute `name` of `of` into `buf`: its length, or the error (ENODATA
/// when the file has none, ERANGE when it is larger than `buf`).
pub fn getxattr(of: XattrOf<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let n = match of {
        // SAFETY: both strings are NUL-terminated CStrs; the kernel writes at most
        // `buf.len()` bytes into `buf`, which is ours for the call.
        XattrOf::Path(path) => unsafe {
            libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        },
        // SAFETY: a descriptor borrowed for the call, a NUL-terminated name; the kernel
        // writes at most `buf.len()` bytes into `buf`.
        XattrOf::File(fd) => unsafe {
            libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        },
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
