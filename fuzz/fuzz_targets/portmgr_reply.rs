//! The port manager client's reply parsing (src/portmgr/reply.rs, refusal.rs): the
//! input cut into lines as the client cuts a server's bytes, the first line read as a
//! GIMME reply (NSCLDAQ's and FRIB's forms), the rest as a LIST reply, within the
//! client's bounds.
#![no_main]

use daqflow::portmgr::lines::LineBuffer;
use daqflow::portmgr::reply::{self, Gimme, Listing, MAX_LIST_BYTES, MAX_LISTED, MAX_REPLY_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = LineBuffer::new(MAX_REPLY_LINE);
    lines.extend(data);
    let Some(Ok(first)) = lines.next_line() else { return };
    if let Ok(Gimme::Refused(refusal)) = reply::gimme(first) {
        // Every refusal maps to some errno, and its reason is the server's words.
        assert!(refusal.errno() > 0);
        assert!(refusal.reason.len() <= first.len() * 3);
    }
    let Some(Ok(header)) = lines.next_line() else { return };
    let Ok(mut listing) = Listing::start(header) else { return };
    let mut read = header.len();
    while !listing.is_complete() {
        let Some(Ok(line)) = lines.next_line() else { return };
        read += line.len() + 1;
        if listing.line(line).is_err() {
            return;
        }
        assert!(read <= MAX_LIST_BYTES);
    }
    assert!(listing.into_allocations().len() <= MAX_LISTED);
});
