//! Shared by the interoperability tests and their peer programs: the byte stream every
//! peer writes and checks, the peers' line protocol, and the test side's handles on
//! peer processes, daemons and rings.
//!
//! Peers are separate processes, as they are at a site: each has its own pid in the
//! ring's records, and a peer that a ring master signals dies alone, visibly.

pub mod peer;
pub mod process;

/// Byte `i` of the stream every producer writes: splitmix64 of the 8-byte word it is in,
/// so no period shorter than the stream hides a lost, repeated or misplaced byte.
pub fn stream_byte(i: u64) -> u8 {
    let mut z = (i / 8).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> ((i % 8) * 8)) as u8
}

/// Fills `buf` with the stream from offset `start`.
pub fn fill(buf: &mut [u8], start: u64) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = stream_byte(start + k as u64);
    }
}

/// The first offset at which `buf`, read from stream offset `start`, differs from the
/// stream.
pub fn first_mismatch(buf: &[u8], start: u64) -> Option<u64> {
    buf.iter().enumerate().find(|&(k, &b)| b != stream_byte(start + k as u64)).map(|(k, _)| start + k as u64)
}

/// The string FRIB's `nscldaq_ringbuffer` refuses a ring with when its magic field is
/// anything but `NSCLRing` and zeros.
pub const FRIB_BAD_MAGIC: &str = "does not have the correct magic string for a ringbuffer";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_checked_at_every_byte() {
        let mut buf = vec![0u8; 4096];
        fill(&mut buf, 12345);
        assert_eq!(first_mismatch(&buf, 12345), None);
        buf[77] ^= 1;
        assert_eq!(first_mismatch(&buf, 12345), Some(12345 + 77));
        // Shifted by one byte (a lost or repeated byte) it no longer matches.
        assert_eq!(first_mismatch(&buf[1..], 12345), Some(12345));
    }
}
