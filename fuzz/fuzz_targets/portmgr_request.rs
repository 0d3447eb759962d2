//! The port manager daemon's request reading (src/portmgr/lines.rs, protocol.rs): the
//! input cut into lines as the daemon cuts a connection's bytes, each line parsed; an
//! allocation request a client could send must parse back to the same names, and any
//! line that is a Tcl list must format back to the same words (portmgr/tcl.rs, the list
//! parser of both protocols).
#![no_main]

use daqflow::portmgr::lines::{LineBuffer, MAX_LINE};
use daqflow::portmgr::protocol::{Request, gimme_request, has_control};
use daqflow::portmgr::tcl::{format_list, parse_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [cut, stream @ ..] = data else { return };
    let mut lines = LineBuffer::new(MAX_LINE);
    for piece in stream.chunks(usize::from(*cut).max(1)) {
        lines.extend(piece);
        while let Some(line) = lines.next_line() {
            let Ok(line) = line else { return };
            assert!(line.len() <= MAX_LINE);
            if let Ok(words) = parse_list(line) {
                assert_eq!(parse_list(&format_list(&words)).ok().as_ref(), Some(&words));
            }
            if let Request::Gimme { application, user } = Request::parse(line) {
                if !has_control(&application) && !has_control(&user) {
                    let again = gimme_request(&application, &user);
                    assert_eq!(Request::parse(&again[..again.len() - 1]), Request::Gimme { application, user });
                }
            }
        }
        assert!(lines.pending() <= MAX_LINE + piece.len());
    }
});
