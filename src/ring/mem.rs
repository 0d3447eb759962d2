//! The mapping of a ring's shared-memory object, and the only code that touches it.
//!
//! Other processes write this memory concurrently, so no `&[u8]` or `&mut` reference to
//! it is ever formed: shared words are read and written as atomics, data moves with
//! raw-pointer copies. Every access is bounds-checked against the mapping's length; the
//! offsets come from a validated `Geometry`, so a failed check is a bug in daqflow, not
//! bad input, and panics (turned into an error at the C boundary).

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::truncation::{Guard, NEVER_STRUCK};
use crate::error::{Error, Result};

/// The system's page size (4096 if it will not say).
pub fn page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(page)) if page > 0 => page as u64,
        _ => 4096,
    }
}

pub struct Mapping {
    // Declared first so it is dropped first: unregistered before the unmap.
    _guard: Option<Guard>,
    /// The guard's flag (or one never set): read on every put and get.
    struck: &'static AtomicBool,
    raw: MmapRaw,
    /// Offset of the last page, and a byte in it (in bounds for the mapping's life).
    last_page: u64,
    last_byte: *const AtomicU8,
}

// SAFETY: `last_byte` points into the mapping, which is shared memory accessed only
// atomically; it is as shareable between threads as `raw` is.
unsafe impl Send for Mapping {}
// SAFETY: every access through `&Mapping` is atomic or a raw-pointer copy made without a
// reference to the shared bytes, so concurrent use from threads is no different from
// concurrent use by the other processes that map the same object.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps all `len` bytes of `file`, shared and read-write (or read-only).
    pub fn new(file: &File, len: u64, writable: bool, name: &str) -> Result<Mapping> {
        let len_usize =
            usize::try_from(len).map_err(|_| Error::new(libc::EFBIG, format!("ring {name} is too large to map")))?;
        let mut options = MmapOptions::new();
        options.len(len_usize);
        let raw = if writable { options.map_raw(file) } else { options.map_raw_read_only(file) };
        let raw = raw.map_err(|e| Error::io(&e, format!("cannot map ring {name}")))?;
        let page = page_size();
        let last_page = len.saturating_sub(1) / page * page;
        let guard = Guard::register(raw.as_ptr(), raw.len());
        let struck = guard.as_ref().map_or(&NEVER_STRUCK, Guard::struck_flag);
        let mut mapping = Mapping { _guard: guard, struck, raw, last_page, last_byte: std::ptr::null() };
        mapping.last_byte = mapping.checked(last_page, 1, 1).cast_const().cast();
        Ok(mapping)
    }

    /// Whether the object was truncated under the mapping, which now reads as zeros
    /// (see `truncation`): whatever was read from it since is garbage.
    #[inline]
    pub fn struck(&self) -> bool {
        self.struck.load(Ordering::Acquire)
    }

    /// Offset of the mapping's last page.
    #[inline]
    pub fn last_page(&self) -> u64 {
        self.last_page
    }

    /// Reads a byte of the last page, which faults (and strikes the mapping) when the
    /// object was truncated anywhere before that page.
    #[inline]
    pub fn touch_last_page(&self) {
        // SAFETY: in bounds (checked when the mapping was made). Volatile, so that the
        // read is made though its value is not used; a torn or stale byte is harmless.
        unsafe { std::ptr::read_volatile(self.last_byte.cast::<u8>()) };
    }

    #[inline]
    pub fn len(&self) -> u64 {
        self.raw.len() as u64
    }

    #[inline]
    fn checked(&self, off: u64, len: u64, align: u64) -> *mut u8 {
        if !(off.checked_add(len).is_some_and(|end| end <= self.len()) && off % align == 0) {
            self.out_of_bounds(off, len);
        }
        // SAFETY: in bounds, checked above.
        unsafe { self.raw.as_mut_ptr().add(off as usize) }
    }

    #[cold]
    #[inline(never)]
    fn out_of_bounds(&self, off: u64, len: u64) -> ! {
        panic!("daqflow bug: access of {len} bytes at {off} in a {}-byte mapping", self.len())
    }

    #[inline]
    pub fn u64_at(&self, off: u64) -> &AtomicU64 {
        // SAFETY: aligned and in bounds (checked); the mapping outlives the reference and
        // is only ever accessed atomically at this offset.
        unsafe { AtomicU64::from_ptr(self.checked(off, 8, 8).cast()) }
    }

    #[inline]
    pub fn u32_at(&self, off: u64) -> &AtomicU32 {
        // SAFETY: as for `u64_at`.
        unsafe { AtomicU32::from_ptr(self.checked(off, 4, 4).cast()) }
    }

    #[inline]
    pub fn i32_at(&self, off: u64) -> &AtomicI32 {
        // SAFETY: as for `u64_at`.
        unsafe { AtomicI32::from_ptr(self.checked(off, 4, 4).cast()) }
    }

    /// A copy of the 80-byte header (the caller validates it).
    pub fn header(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        // SAFETY: source checked in bounds; destination is a local array.
        unsafe { std::ptr::copy_nonoverlapping(self.checked(0, 80, 1), out.as_mut_ptr(), 80) };
        out
    }

    /// Raw pointer to `len` bytes at `off`, for copies and zero-copy spans.
    #[inline]
    pub fn bytes(&self, off: u64, len: u64) -> *mut u8 {
        self.checked(off, len, 1)
    }

    /// Copies `dst.len()` bytes of the mapping at `off` into `dst`.
    #[inline]
    pub fn read(&self, off: u64, dst: &mut [u8]) {
        let src = self.checked(off, dst.len() as u64, 1);
        // SAFETY: source checked in bounds; the destination is a caller's slice, which
        // cannot overlap the mapping (no reference to shared memory is ever handed out).
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
    }

    /// Copies `src` into the mapping at `off`.
    #[inline]
    pub fn write(&self, off: u64, src: &[u8]) {
        let dst = self.checked(off, src.len() as u64, 1);
        // SAFETY: destination checked in bounds; source is a caller's slice.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
    }

    /// Copies `src` into the mapping at `off` with non-temporal stores for every aligned
    /// 16-byte piece (the ragged ends, under 16 bytes each, go through the cache): the
    /// lines go to memory without first being fetched from wherever a consumer last read
    /// them. Pieces of 16 rather than whole lines because a record need not start on a
    /// cache line (NSCLDAQ's data area begins 32 bytes into one): records whose sizes are
    /// multiples of 16 (1 KiB, 64 KiB) fetch no line at all; a ragged end fetches its
    /// line. The stores are weakly ordered: `fence_streams` must come before anything that
    /// makes them visible (a published pointer).
    #[cfg(target_arch = "x86_64")]
    pub fn stream(&self, off: u64, src: &[u8]) {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        const PIECE: usize = 16;
        let dst = self.checked(off, src.len() as u64, 1);
        let head = dst.align_offset(PIECE).min(src.len());
        let pieces = (src.len() - head) / PIECE;
        let tail = head + pieces * PIECE;
        // SAFETY: destination checked in bounds for all of `src.len()` bytes and source is
        // a caller's slice (no overlap, see `read`); `head`, `tail` and every piece lie
        // within both; `dst + head` is 16-byte aligned, as _mm_stream_si128 requires;
        // SSE2 is part of x86_64.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, head);
            for p in 0..pieces {
                let v = _mm_loadu_si128(src.as_ptr().add(head + p * PIECE).cast::<__m128i>());
                _mm_stream_si128(dst.add(head + p * PIECE).cast::<__m128i>(), v);
            }
            std::ptr::copy_nonoverlapping(src.as_ptr().add(tail), dst.add(tail), src.len() - tail);
        }
    }

    /// Orders every `stream` store before anything stored after this returns.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub fn fence_streams(&self) {
        // SAFETY: sfence has no operands and no effect but ordering; SSE is part of x86_64.
        unsafe { std::arch::x86_64::_mm_sfence() }
    }

    /// Elsewhere, an ordinary copy.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn stream(&self, off: u64, src: &[u8]) {
        self.write(off, src)
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    pub fn fence_streams(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_copy_writes_exactly_its_bytes_at_any_alignment() {
        let file = tempfile_in_shm();
        let len = 4096u64;
        file.set_len(len).expect("size");
        let map = Mapping::new(&file, len, true, "around-cache-test").expect("map");
        let src: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
        for off in 0..80u64 {
            for n in [0usize, 1, 15, 16, 17, 31, 32, 63, 64, 65, 100, 1024, 1025, 1500] {
                map.write(0, &vec![0xee; len as usize]);
                map.stream(off, &src[..n]);
                map.fence_streams();
                let mut back = vec![0u8; len as usize];
                map.read(0, &mut back);
                assert!(back[..off as usize].iter().all(|&b| b == 0xee), "before, off {off} n {n}");
                assert_eq!(&back[off as usize..off as usize + n], &src[..n], "off {off} n {n}");
                assert!(back[off as usize + n..].iter().all(|&b| b == 0xee), "after, off {off} n {n}");
            }
        }
    }

    /// Stream stores fault like ordinary ones on a page the object no longer has: the
    /// SIGBUS guard takes the fault and the mapping reports the truncation.
    #[test]
    fn a_streamed_copy_into_a_truncated_object_strikes_the_mapping() {
        let file = tempfile_in_shm();
        let len = 4 * page_size();
        file.set_len(len).expect("size");
        let map = Mapping::new(&file, len, true, "around-cache-truncated").expect("map");
        map.write(0, &vec![1u8; len as usize]);
        file.set_len(0).expect("truncate");
        map.stream(page_size() + 48, &vec![2u8; 2 * page_size() as usize]);
        map.fence_streams();
        assert!(map.struck());
    }

    /// A file of its own for each test (tests run in parallel, and one truncates its file).
    fn tempfile_in_shm() -> File {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = format!("/dev/shm/daqflow-mem-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).expect("create");
        let _ = std::fs::remove_file(&path);
        file
    }
}
