//! Finding whole ring items in a byte stream.
//!
//! An NSCLDAQ ring item starts with a `uint32` total size (counting itself) and a
//! `uint32` type, little endian, unless the item comes from a big-endian producer: then
//! the type's low 16 bits read as zero and both words are byte-swapped (types are small
//! numbers, so a swapped one has its bits in the high half). A proxy ring must only ever
//! hold whole items, so the feeder publishes a batch of bytes only up to the last item
//! boundary it has seen; the rest waits for more data.

use crate::error::{Error, Result};

/// Bytes of the size and type words every item starts with.
pub const HEADER: usize = 8;

/// The size of the item whose first 8 bytes are `header`, with the byte-swap rule.
pub fn item_size(header: [u8; HEADER]) -> u32 {
    let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let kind = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if kind & 0xffff == 0 { size.swap_bytes() } else { size }
}

/// Follows item boundaries through a stream fed in arbitrary pieces.
#[derive(Debug, Clone)]
pub struct Framer {
    header: [u8; HEADER],
    /// Header bytes of the current item seen so far.
    have: usize,
    /// Bytes of the current item still to come once its header is complete.
    remaining: u64,
    /// Bytes of the current (incomplete) item seen so far.
    partial: u64,
    /// Largest item accepted (what the proxy ring can hold).
    limit: u64,
}

impl Framer {
    pub fn new(limit: u64) -> Framer {
        Framer { header: [0; HEADER], have: 0, remaining: 0, partial: 0, limit }
    }

    /// Bytes of the stream seen so far that belong to an item not yet complete: the
    /// stream up to `fed - partial()` is whole items.
    pub fn partial(&self) -> u64 {
        self.partial
    }

    /// Bytes still needed to finish the current item, when its header is known.
    pub fn to_complete(&self) -> Option<u64> {
        (self.have == HEADER).then_some(self.remaining)
    }

    /// Follows the next `data` of the stream. An impossible size (smaller than the
    /// header, or larger than `limit`) means the stream is not ring items, or not in
    /// step with them: nothing after that point can be trusted.
    pub fn feed(&mut self, data: &[u8]) -> Result<()> {
        let mut i = 0;
        while i < data.len() {
            if self.have < HEADER {
                let take = (HEADER - self.have).min(data.len() - i);
                self.header[self.have..self.have + take].copy_from_slice(&data[i..i + take]);
                self.have += take;
                self.partial += take as u64;
                i += take;
                if self.have < HEADER {
                    break;
                }
                let size = u64::from(item_size(self.header));
                if size < HEADER as u64 {
                    return Err(Error::new(
                        libc::EPROTO,
                        format!("a ring item of {size} bytes is impossible: the stream is not ring items"),
                    ));
                }
                if size > self.limit {
                    return Err(Error::new(
                        libc::EMSGSIZE,
                        format!(
                            "a ring item of {size} bytes cannot fit in the proxy ring (at most {} bytes)",
                            self.limit
                        ),
                    ));
                }
                self.remaining = size - HEADER as u64;
            } else {
                let take = self.remaining.min((data.len() - i) as u64);
                self.remaining -= take;
                self.partial += take;
                i += take as usize;
            }
            if self.have == HEADER && self.remaining == 0 {
                self.have = 0;
                self.partial = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(size: u32, kind: u32, swapped: bool) -> Vec<u8> {
        let mut v = if swapped {
            [size.to_be_bytes(), kind.to_be_bytes()].concat()
        } else {
            [size.to_le_bytes(), kind.to_le_bytes()].concat()
        };
        v.resize(size as usize, 0xa5);
        v
    }

    #[test]
    fn swap_rule() {
        assert_eq!(item_size(item(100, 30, false)[..8].try_into().unwrap()), 100);
        assert_eq!(item_size(item(100, 30, true)[..8].try_into().unwrap()), 100);
        // A type whose low half is zero in our order is taken as swapped.
        assert_eq!(item_size([0, 0, 0, 100, 0, 0, 1, 0]), 100);
    }

    #[test]
    fn impossible_sizes() {
        let mut f = Framer::new(1000);
        assert_eq!(f.feed(&item(8, 1, false)).map(|()| f.partial()), Ok(0));
        assert_eq!(f.feed(&[4, 0, 0, 0, 1, 0, 0, 0]).unwrap_err().errno(), libc::EPROTO);
        let mut f = Framer::new(1000);
        assert_eq!(f.feed(&[0xe9, 3, 0, 0, 1, 0, 0, 0]).unwrap_err().errno(), libc::EMSGSIZE);
    }

    proptest! {
        /// Against the obvious model: after any prefix of the stream, the whole part is
        /// the largest item boundary inside it.
        #[test]
        fn boundaries_match_model(
            items in prop::collection::vec((8u32..300, 1u32..100, any::<bool>()), 0..40),
            cuts in prop::collection::vec(0usize..400, 0..60),
        ) {
            let stream: Vec<u8> = items.iter().flat_map(|&(s, k, w)| item(s, k, w)).collect();
            let mut ends = vec![0u64];
            for &(s, _, _) in &items {
                ends.push(ends.last().unwrap() + u64::from(s));
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c * stream.len() / 400).collect();
            cuts.push(stream.len());
            cuts.sort();
            let mut f = Framer::new(300);
            let mut fed = 0usize;
            for cut in cuts {
                f.feed(&stream[fed..cut]).unwrap();
                fed = cut;
                let whole = fed as u64 - f.partial();
                let model = *ends.iter().filter(|&&e| e <= fed as u64).max().unwrap();
                prop_assert_eq!(whole, model);
            }
            prop_assert_eq!(f.partial(), 0);
        }
    }
}
