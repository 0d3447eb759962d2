//! The Tcl `portAllocator` package (tcl/portallocator.c) over a fake libdaqflow whose every
//! result comes from the input: see c/harness.c.
#![no_main]

use libfuzzer_sys::fuzz_target;

unsafe extern "C" {
    fn df_fuzz_tcl_portallocator(data: *const u8, size: usize);
}

fuzz_target!(|data: &[u8]| {
    // SAFETY: the harness only reads `size` bytes from `data`, during the call.
    unsafe { df_fuzz_tcl_portallocator(data.as_ptr(), data.len()) }
});
