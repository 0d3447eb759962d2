//! A piece of ring memory handed out by the zero-copy calls.

/// `len` bytes at `ptr` inside a ring's data area. The memory is shared with other
/// processes: use it only through raw-pointer copies, and only until the matching
/// `commit` or `release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub ptr: *mut u8,
    pub len: usize,
}
