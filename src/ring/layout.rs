//! The NSCLDAQ 12.0 shared-memory layout: where each header field and client record
//! lives, how a ring is sized, and the checks that make a header safe to use.
//!
//! Everything read from shared memory is untrusted: another local process may have
//! written anything there. `Geometry::parse` accepts only headers whose every offset
//! lies inside the mapping and whose sizes add up, so code holding a `Geometry` can
//! compute addresses without re-checking them.

use crate::error::{Error, Result};

/// Magic at offset 0. NSCLDAQ compares it as a C string; FRIB's crate also wants the
/// rest of the 32-byte field zero, so only a format ever writes bytes 8..31.
pub const MAGIC: &[u8; 9] = b"NSCLRing\0";
pub const HEADER_FIXED: u64 = 80;
pub const RECORD_BYTES: u64 = 16;
pub const PRODUCER_RECORD: u64 = 80;
pub const FIRST_CONSUMER_RECORD: u64 = 96;

const OFF_MAX_CONSUMERS: usize = 32;
const OFF_DATA_BYTES: usize = 40;
const OFF_PRODUCER: usize = 48;
const OFF_CONSUMERS: usize = 56;
const OFF_DATA: usize = 64;
const OFF_TOP: usize = 72;

/// In a client record, the 4 padding bytes: the only bytes of a ring that neither
/// NSCLDAQ nor FRIB's crates read or write, where daqflow keeps its wake-up state (see
/// `signal`). Nothing of daqflow's is in the header: FRIB's crate refuses a ring whose
/// magic field holds anything after `NSCLRing` but zeros.
pub const RECORD_PAD: u64 = 12;

/// Consumers beyond this make a header of megabytes; no DAQ setup needs that many. The
/// limit holds for headers read as much as for rings created: every walk of the
/// records (attach, usage, a blocked producer's scan) is bounded by it, however a
/// header was made.
pub const MAX_CONSUMERS_LIMIT: u32 = 1 << 20;

pub const DEFAULT_DATA_BYTES: u64 = 8 * 1024 * 1024;
pub const DEFAULT_MAX_CONSUMERS: u32 = 100;

/// The geometry of one ring, validated against the size of its mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub max_consumers: u32,
    /// Offset of the first data byte (`B`).
    pub data_offset: u64,
    /// Offset of the last data byte, inclusive (`T`).
    pub top: u64,
    /// Size of the mapping the geometry was checked against.
    pub map_len: u64,
}

/// Bytes taken by the header and the producer and consumer records.
pub fn header_bytes(max_consumers: u64) -> Option<u64> {
    max_consumers.checked_add(1)?.checked_mul(RECORD_BYTES)?.checked_add(HEADER_FIXED)
}

/// The size of the shared-memory object NSCLDAQ makes for a request: data plus header,
/// rounded up to whole pages.
pub fn object_size(data_bytes: u64, max_consumers: u32, page: u64) -> Option<u64> {
    let raw = data_bytes.checked_add(header_bytes(max_consumers as u64)?)?;
    raw.checked_add(page - 1).map(|v| v / page * page)
}

fn corrupt(why: String) -> Error {
    Error::new(libc::EBADMSG, why)
}

fn u64_at(bytes: &[u8; 80], off: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[off..off + 8]);
    u64::from_le_bytes(word)
}

impl Geometry {
    /// The geometry a format with `max_consumers` gives an object of `map_len` bytes.
    pub fn for_format(map_len: u64, max_consumers: u32) -> Result<Geometry> {
        let data_offset =
            header_bytes(max_consumers as u64).ok_or_else(|| Error::new(libc::EINVAL, "max consumers too large"))?;
        // Two data bytes at least: with the one-byte gap, anything less holds nothing.
        if map_len < data_offset + 2 {
            return Err(Error::new(
                libc::EINVAL,
                format!(
                    "{max_consumers} consumers need {data_offset} header bytes, which leaves no data area in a {map_len}-byte ring"
                ),
            ));
        }
        Ok(Geometry { max_consumers, data_offset, top: map_len - 1, map_len })
    }

    /// Checks an 80-byte header read from a mapping of `map_len` bytes.
    /// `Ok(None)`: no NSCLRing magic, so not a ring at all.
    pub fn parse(header: &[u8; 80], map_len: u64) -> Result<Option<Geometry>> {
        if &header[..MAGIC.len()] != MAGIC {
            return Ok(None);
        }
        let n = u64_at(header, OFF_MAX_CONSUMERS);
        let data_bytes = u64_at(header, OFF_DATA_BYTES);
        let producer = u64_at(header, OFF_PRODUCER);
        let consumers = u64_at(header, OFF_CONSUMERS);
        let data_offset = u64_at(header, OFF_DATA);
        let top = u64_at(header, OFF_TOP);
        let max_consumers = u32::try_from(n).ok().filter(|&n| n <= MAX_CONSUMERS_LIMIT).ok_or_else(|| {
            corrupt(format!("max consumers {n} is more than the {MAX_CONSUMERS_LIMIT} any ring may have"))
        })?;
        let expected_data = header_bytes(n).ok_or_else(|| corrupt(format!("max consumers {n} is absurd")))?;
        if producer != PRODUCER_RECORD || consumers != FIRST_CONSUMER_RECORD {
            return Err(corrupt(format!(
                "client records at {producer}/{consumers}, expected {PRODUCER_RECORD}/{FIRST_CONSUMER_RECORD}"
            )));
        }
        if data_offset != expected_data {
            return Err(corrupt(format!(
                "data offset {data_offset} does not follow {n} consumer records (expected {expected_data})"
            )));
        }
        if top >= map_len || top < data_offset.saturating_add(1) {
            return Err(corrupt(format!(
                "top offset {top} is outside the data area of a {map_len}-byte mapping starting at {data_offset}"
            )));
        }
        if data_offset.checked_add(data_bytes) != top.checked_add(1) {
            return Err(corrupt(format!(
                "data offset {data_offset} + data bytes {data_bytes} != top offset {top} + 1"
            )));
        }
        Ok(Some(Geometry { max_consumers, data_offset, top, map_len }))
    }

    /// The header bytes a format writes for this geometry (magic, then the six fields;
    /// bytes 9..31 zero, which also cleans what daqflow 1.0 kept there).
    pub fn encode(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[..MAGIC.len()].copy_from_slice(MAGIC);
        let fields = [
            (OFF_MAX_CONSUMERS, self.max_consumers as u64),
            (OFF_DATA_BYTES, self.data_bytes()),
            (OFF_PRODUCER, PRODUCER_RECORD),
            (OFF_CONSUMERS, FIRST_CONSUMER_RECORD),
            (OFF_DATA, self.data_offset),
            (OFF_TOP, self.top),
        ];
        for (off, value) in fields {
            out[off..off + 8].copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// `D`: bytes in the data area.
    #[inline]
    pub fn data_bytes(&self) -> u64 {
        self.top - self.data_offset + 1
    }

    /// The most bytes that can ever be outstanding (the one-byte gap keeps full != empty).
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.data_bytes() - 1
    }

    /// The byte range NSCLDAQ's fcntl lock covers.
    pub fn lock_len(&self) -> u64 {
        self.data_offset
    }

    #[inline]
    pub fn consumer_record(&self, slot: u32) -> u64 {
        FIRST_CONSUMER_RECORD + RECORD_BYTES * slot as u64
    }

    /// Whether `pos` is a valid put/get pointer.
    #[inline]
    pub fn contains(&self, pos: u64) -> bool {
        pos >= self.data_offset && pos <= self.top
    }

    /// Bytes a consumer at `get` has to read with the producer at `put`.
    #[inline]
    pub fn backlog(&self, put: u64, get: u64) -> u64 {
        if put >= get { put - get } else { (self.top - get + 1) + (put - self.data_offset) }
    }

    /// `pos` moved forward by `n` (n < D), wrapping at the top.
    #[inline]
    pub fn advance(&self, pos: u64, n: u64) -> u64 {
        let next = pos + n;
        if next > self.top { next - self.data_bytes() } else { next }
    }

    /// The (offset, length) pieces of `n` bytes starting at `pos`: two when they cross
    /// the top, the second starting at the data offset.
    #[inline]
    pub fn spans(&self, pos: u64, n: u64) -> [(u64, u64); 2] {
        let first = n.min(self.top - pos + 1);
        [(pos, first), (self.data_offset, n - first)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_measured_nscldaq_table() {
        // (request, N) -> (shm size, data offset, data bytes), from ring-format.md.
        let table = [
            (8 * 1024 * 1024, 100, 8_392_704, 1696, 8_391_008),
            (1024 * 1024, 10, 1_052_672, 256, 1_052_416),
            (65536, 4, 69_632, 160, 69_472),
            (4096, 2, 8_192, 128, 8_064),
        ];
        for (req, n, size, offset, data) in table {
            let got = object_size(req, n, 4096).unwrap();
            assert_eq!(got, size, "object size for ({req}, {n})");
            let g = Geometry::for_format(got, n).unwrap();
            assert_eq!((g.data_offset, g.data_bytes(), g.capacity()), (offset, data, data - 1));
            assert_eq!(Geometry::parse(&g.encode(), got).unwrap(), Some(g));
        }
    }

    #[test]
    fn hostile_headers_are_refused() {
        let g = Geometry::for_format(8192, 2).unwrap();
        let good = g.encode();
        let mut cases = Vec::new();
        let mut set = |off: usize, v: u64| {
            let mut h = good;
            h[off..off + 8].copy_from_slice(&v.to_le_bytes());
            cases.push(h);
        };
        set(OFF_MAX_CONSUMERS, u64::MAX);
        set(OFF_MAX_CONSUMERS, MAX_CONSUMERS_LIMIT as u64 + 1);
        set(OFF_MAX_CONSUMERS, 1000); // records would run past the data offset
        set(OFF_DATA_BYTES, 1 << 40);
        set(OFF_PRODUCER, 0);
        set(OFF_CONSUMERS, 8000);
        set(OFF_DATA, 8191);
        set(OFF_TOP, 8192); // one past the mapping
        set(OFF_TOP, u64::MAX);
        for h in cases {
            assert_eq!(Geometry::parse(&h, 8192).unwrap_err().errno(), libc::EBADMSG);
        }
        // A mapping shorter than the header says.
        assert_eq!(Geometry::parse(&good, 4096).unwrap_err().errno(), libc::EBADMSG);
        let mut other = good;
        other[..10].copy_from_slice(b"NSCLRing12");
        assert_eq!(Geometry::parse(&other, 8192).unwrap(), None);
    }

    #[test]
    fn arithmetic_wraps_like_nscldaq() {
        let g = Geometry::for_format(8192, 2).unwrap(); // B = 128, T = 8191, D = 8064
        assert_eq!(g.advance(8191, 1), 128, "a write ending on T leaves the pointer at B");
        assert_eq!(g.advance(8000, 200), 8000 + 200 - 8064);
        assert_eq!(g.backlog(200, 8100), (8191 - 8100 + 1) + (200 - 128));
        assert_eq!(g.spans(8100, 200), [(8100, 92), (128, 108)]);
    }
}
