//! The ring master's request parser (src/ringmaster/protocol.rs) on every line of the
//! input, split as the daemon splits its input; a claim the C++ client could have sent
//! must come back unchanged from the request the client writes for it.
#![no_main]

use daqflow::portmgr::lines::LineBuffer;
use daqflow::ringmaster::protocol::{Request, connect_request, disconnect_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = LineBuffer::new(4096);
    lines.extend(data);
    while let Some(Ok(line)) = lines.next_line() {
        match Request::parse(line) {
            Request::Connect(Some(claim)) if sendable(&claim.ring, &claim.comment) => {
                let again = connect_request(&claim.ring, claim.role, claim.pid, &claim.comment);
                assert_eq!(Request::parse(again.trim_end().as_bytes()), Request::Connect(Some(claim)));
            }
            Request::Disconnect(Some(claim)) if sendable(&claim.ring, "") => {
                let again = disconnect_request(&claim.ring, claim.role, claim.pid);
                assert_eq!(Request::parse(again.trim_end().as_bytes()), Request::Disconnect(Some(claim)));
            }
            _ => {}
        }
    }
});

/// What the client lets through (ring names are validated; comments hold no braces,
/// backslashes or control characters).
fn sendable(ring: &str, comment: &str) -> bool {
    daqflow::ring::validate_name(ring).is_ok()
        && !comment.chars().any(|c| matches!(c, '{' | '}' | '\\') || c.is_control())
}
