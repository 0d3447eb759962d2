//! The feeder's view of a REMOTE stream (src/remote/framing.rs): item boundaries found
//! in a stream cut into arbitrary pieces, against a model that reads the stream whole.
#![no_main]

use daqflow::remote::framing::{Framer, HEADER, item_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the largest item accepted (a small limit reaches the size checks);
    // second: where the stream is cut.
    let [limit, cut, stream @ ..] = data else { return };
    let limit = 8 + u64::from(*limit) * 4;
    let mut framer = Framer::new(limit);
    let step = usize::from(*cut).max(1);
    let mut fed = 0;
    let mut failed = false;
    for piece in stream.chunks(step) {
        if framer.feed(piece).is_err() {
            failed = true;
            break;
        }
        fed += piece.len();
        assert!(framer.partial() <= fed as u64);
    }
    // The model: walk the whole stream item by item; the whole part ends at the last
    // item boundary inside it.
    let mut at = 0usize;
    let mut whole = 0usize;
    let mut bad = false;
    while at + HEADER <= stream.len() {
        let size = u64::from(item_size(stream[at..at + HEADER].try_into().expect("8 bytes")));
        if !(HEADER as u64..=limit).contains(&size) {
            bad = true;
            break;
        }
        at += size as usize;
        if at <= stream.len() {
            whole = at;
        }
    }
    if failed {
        assert!(bad, "the framer refused a stream of possible items");
    } else {
        assert!(!bad, "the framer accepted an impossible item size");
        assert_eq!(stream.len() as u64 - framer.partial(), whole as u64, "whole part");
    }
});
