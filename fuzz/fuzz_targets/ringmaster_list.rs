//! The client's parser of a ring master's LIST reply line (a Tcl list of Tcl lists,
//! src/ringmaster/protocol.rs): whatever it accepts must list again as the same rings.
#![no_main]

use daqflow::ringmaster::protocol::{list_line, parse_list_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(rings) = parse_list_line(data) {
        assert_eq!(parse_list_line(&list_line(&rings)).as_ref(), Some(&rings));
    }
});
