//! The requests and replies of the legacy protocol, as bytes on the wire.

/// Where NSCLDAQ's port manager listens, and the file a daemon started elsewhere
/// names its port in: every client looks there.
pub const DEFAULT_LISTEN_PORT: u16 = 30000;
pub const DEFAULT_PORT_FILE: &str = "/var/tmp/daqportmgr/listen.port";

use super::tcl::{format_list, parse_list};

/// One parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GIMME application user`: missing words are empty, extra words ignored.
    Gimme {
        application: Vec<u8>,
        user: Vec<u8>,
    },
    List,
    /// Anything else, including an empty line and a line that is not a Tcl list.
    Invalid,
}

impl Request {
    pub fn parse(line: &[u8]) -> Request {
        let Ok(mut words) = parse_list(line) else {
            return Request::Invalid;
        };
        let mut word = |i: usize| words.get_mut(i).map(std::mem::take).unwrap_or_default();
        match word(0).as_slice() {
            b"GIMME" => Request::Gimme { application: word(1), user: word(2) },
            b"LIST" => Request::List,
            _ => Request::Invalid,
        }
    }
}

/// The reason text for an exhausted pool.
pub const NO_FREE_PORTS: &str = "no free ports";
/// The end of the reason text for a refused remote allocation.
pub const ONLY_LOCAL: &str = "Only local applications get ports";
/// The end of the reason text for a name with a control character in it.
pub const CONTROL_CHARACTER: &str = "contains a control character";

/// A name with a byte below 0x20 or DEL would break the line-based formats it ends up
/// in: a raw line break splits a LIST line for every client and a ports.txt line, a TAB
/// adds a ports.txt column, and any of them can forge or garble log lines.
pub fn has_control(name: &[u8]) -> bool {
    name.iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// The longest application or user name a GIMME may register. A LIST line carries both,
/// so this bounds what a LIST costs per allocation; real service names (`RingMaster`,
/// `RingMaster:...`, readout and orderer names) and login names are far shorter.
pub const MAX_NAME: usize = 255;

/// The start of the reason text for an invalid request.
pub const INVALID_REQUEST: &str = "Invalid request ";

/// `OK <n>` ending CR LF.
pub fn ok_reply(n: impl std::fmt::Display, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("OK {n}\r\n").as_bytes());
}

/// `FAIL <reason as a list element>` ending CR LF.
pub fn fail_reply(reason: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&format_list(&[b"FAIL".as_slice(), reason]));
    out.extend_from_slice(b"\r\n");
}

/// The reply to an invalid request line (sent before the server hangs up).
pub fn invalid_reply(line: &[u8], out: &mut Vec<u8>) {
    let mut reason = INVALID_REQUEST.as_bytes().to_vec();
    reason.extend_from_slice(line);
    fail_reply(&reason, out);
}

/// The request line a client sends for an allocation, ending LF.
pub fn gimme_request(application: &[u8], user: &[u8]) -> Vec<u8> {
    let mut line = format_list(&[b"GIMME".as_slice(), application, user]);
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(
            Request::parse(b"GIMME {my app} alice extra"),
            Request::Gimme { application: b"my app".to_vec(), user: b"alice".to_vec() }
        );
        assert_eq!(Request::parse(b"GIMME"), Request::Gimme { application: vec![], user: vec![] });
        assert_eq!(Request::parse(b"  LIST  x"), Request::List);
        assert_eq!(Request::parse(b"list"), Request::Invalid);
        assert_eq!(Request::parse(b""), Request::Invalid);
        assert_eq!(Request::parse(b"GIMME {a"), Request::Invalid);
        assert_eq!(
            Request::parse(&gimme_request(b"a {b", b"c\"d")),
            Request::Gimme { application: b"a {b".to_vec(), user: b"c\"d".to_vec() }
        );
    }

    #[test]
    fn replies() {
        let mut out = Vec::new();
        ok_reply(30999, &mut out);
        fail_reply(NO_FREE_PORTS.as_bytes(), &mut out);
        invalid_reply(b"HELLO there", &mut out);
        invalid_reply(b"", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "OK 30999\r\nFAIL {no free ports}\r\nFAIL {Invalid request HELLO there}\r\nFAIL {Invalid request }\r\n"
        );
    }
}
