//! The one error type of the library: an errno value (what C callers get back,
//! negated) and a sentence for `daqflow_last_error()`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    errno: i32,
    message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// `errno` is a positive errno value (`libc::ENOENT`, ...).
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        Error { errno, message: message.into() }
    }

    /// An error from a failed system call, with what we were doing as context.
    pub fn sys(err: nix::errno::Errno, context: impl fmt::Display) -> Self {
        Error::new(err as i32, format!("{context}: {}", err.desc()))
    }

    /// An error from `std::io`, with what we were doing as context.
    pub fn io(err: &std::io::Error, context: impl fmt::Display) -> Self {
        Error::new(err.raw_os_error().unwrap_or(libc::EIO), format!("{context}: {err}"))
    }

    /// The errno for a failed socket read or write, including the failures std reports
    /// without one (a timeout, the peer closing mid-reply).
    pub fn errno_of(err: &std::io::Error) -> i32 {
        err.raw_os_error().unwrap_or(match err.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => libc::ETIMEDOUT,
            std::io::ErrorKind::UnexpectedEof => libc::ECONNRESET,
            _ => libc::EIO,
        })
    }

    pub fn errno(&self) -> i32 {
        self.errno
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
