//! Recognising a producer that uses FRIB's Rust crate `nscldaq_ringbuffer`. Its free
//! space lacks NSCLDAQ's one-byte gap, so it can fill a ring to the last byte, and a full
//! ring looks empty to every consumer: what they had not read is lost. `status` warns
//! about such a producer, and only when it can tell: a producer that is not daqflow's (its
//! record has no daqflow tag, `ring::producer_is_daqflow`) may as well be NSCLDAQ's C++
//! class, which keeps the gap.
//!
//! FRIB's crate is linked statically into each program, so no library name shows it; its
//! text does: every program that opens a ring with it holds the message its
//! `RingBufferMap::new` refuses a ring with.

use std::fs::File;
use std::io::Read;

/// Text of FRIB's `RingBufferMap::new` (nscldaq_ringbuffer 0.8.9), kept reversed so
/// that this program does not hold it and look like one of FRIB's itself.
const MARKER_REVERSED: &[u8] = b"reffubgnir a rof gnirts cigam tcerroc eht evah ton seod ";
/// Executables are read this far at most. The text is in .rodata, which comes before
/// the debug sections: 64 KiB into FRIB's ring master and into a test program of 9 MiB.
const MAX_SCAN: u64 = 64 << 20;
const CHUNK: usize = 1 << 20;

/// Whether process `pid` runs a program built with FRIB's crate. False when that cannot
/// be read (another user's process without privilege, a process gone).
pub fn is_frib_program(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match File::open(format!("/proc/{pid}/exe")) {
        Ok(file) => contains(file.take(MAX_SCAN), &marker()),
        Err(_) => false,
    }
}

fn marker() -> Vec<u8> {
    MARKER_REVERSED.iter().rev().copied().collect()
}

/// Whether `reader` holds `needle`, read in chunks that overlap by its length.
fn contains(mut reader: impl Read, needle: &[u8]) -> bool {
    let keep = needle.len() - 1;
    let mut buf = vec![0u8; CHUNK + keep];
    let mut have = 0;
    loop {
        let mut end = false;
        while have < buf.len() {
            match reader.read(&mut buf[have..]) {
                Ok(0) | Err(_) => {
                    end = true;
                    break;
                }
                Ok(n) => have += n,
            }
        }
        if buf[..have].windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        if end {
            return false;
        }
        // The tail that could start a match continues into the next chunk.
        let tail = have - keep;
        buf.copy_within(tail..have, 0);
        have = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn found_across_reads_and_chunks() {
        let marker = marker();
        // (Not compared whole: this test program would then hold the text.)
        assert!(marker.starts_with(b" does not have") && marker.ends_with(b"for a ringbuffer"));
        let mut text = vec![b'x'; 3 * CHUNK];
        let at = CHUNK - 10;
        text[at..at + marker.len()].copy_from_slice(&marker);
        for step in [1, 7, CHUNK, 3 * CHUNK] {
            assert!(contains(Trickle(&text, step), &marker), "step {step}");
        }
        assert!(!contains(Trickle(&text[..at + marker.len() - 1], 4096), &marker));
        assert!(!contains(Trickle(b"", 1), &marker));
    }

    #[test]
    fn this_program_is_not_frib() {
        assert!(!is_frib_program(std::process::id() as i32));
        assert!(!is_frib_program(-1));
    }
}
