//! What a port manager's `FAIL` reply to a GIMME means, from either server a client may
//! meet: NSCLDAQ's Tcl `DaqPortManager` (and `daqportmgr`), which sends a Tcl list
//! `FAIL {reason}` ending CR LF, or FRIB's Rust `portman`, which sends `FAIL - reason`
//! ending LF and then hangs up (and with the connection go the ports it held).

use super::protocol::{CONTROL_CHARACTER, INVALID_REQUEST, NO_FREE_PORTS, ONLY_LOCAL};
use super::tcl::parse_list;

/// Text the daemon uses when the user field is not the socket's owner.
pub const NOT_OWNER: &str = "is not the owner of this connection";
/// FRIB `portman`'s reasons (its src/portpool/ports.rs and src/main.rs).
const FRIB_NO_FREE_PORTS: &str = "No free ports available";
const FRIB_DUPLICATE: &str = "Duplicate port allocation attempted";
const FRIB_NOT_LOCAL: &str = "can only allocate to local senders";
/// Every FRIB refusal starts so.
const FRIB_PREFIX: &[u8] = b"FAIL - ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The server's own words, without the `FAIL` and FRIB's `-`.
    pub reason: String,
    /// The server closed the connection after this reply: the ports it held are gone.
    pub hung_up: bool,
}

impl Refusal {
    /// The refusal a reply line carries; `None` when the line is not a `FAIL`.
    pub fn parse(line: &[u8]) -> Option<Refusal> {
        if let Some(rest) = line.strip_prefix(FRIB_PREFIX) {
            // FRIB's reasons are plain text, not list elements; it hangs up after each.
            return Some(Refusal { reason: text(rest), hung_up: true });
        }
        // NSCLDAQ's form must be a Tcl list; anything else is not the protocol.
        let words = parse_list(line).ok().filter(|words| words.first().is_some_and(|w| w == b"FAIL"))?;
        let reason = text(&words[1..].join(&b' '));
        // The legacy server hangs up after these two only.
        let hung_up = reason.starts_with(INVALID_REQUEST) || reason.ends_with(ONLY_LOCAL);
        Some(Refusal { reason, hung_up })
    }

    /// The errno a client reports: the same for the same refusal from either server.
    pub fn errno(&self) -> i32 {
        let says = |what: &str| self.reason.to_ascii_lowercase().contains(&what.to_ascii_lowercase());
        if says(NO_FREE_PORTS) || says(FRIB_NO_FREE_PORTS) {
            libc::EADDRNOTAVAIL
        } else if says(ONLY_LOCAL) || says(FRIB_NOT_LOCAL) {
            libc::EPERM
        } else if self.reason.contains(NOT_OWNER) {
            libc::EACCES
        } else if self.reason.contains(CONTROL_CHARACTER) {
            libc::EINVAL
        } else if says(FRIB_DUPLICATE) {
            // FRIB refuses a second allocation of one name by one user; NSCLDAQ's server
            // suffixes it (`app_1`) instead.
            libc::EEXIST
        } else {
            libc::EIO
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(line: &str) -> (String, bool, i32) {
        let r = Refusal::parse(line.as_bytes()).unwrap();
        let errno = r.errno();
        (r.reason, r.hung_up, errno)
    }

    #[test]
    fn legacy_replies() {
        assert_eq!(refusal("FAIL {no free ports}"), ("no free ports".into(), false, libc::EADDRNOTAVAIL));
        assert_eq!(
            refusal("FAIL {10.1.1.1 (10.1.1.1) : Only local applications get ports}"),
            ("10.1.1.1 (10.1.1.1) : Only local applications get ports".into(), true, libc::EPERM)
        );
        assert_eq!(refusal("FAIL {Invalid request HELLO}"), ("Invalid request HELLO".into(), true, libc::EIO));
        assert_eq!(refusal("FAIL {user x is not the owner of this connection (uid 0, root)}").2, libc::EACCES);
        assert_eq!(refusal("FAIL {the user name contains a control character}").2, libc::EINVAL);
        assert_eq!(refusal("FAIL {something new}"), ("something new".into(), false, libc::EIO));
        assert_eq!(Refusal::parse(b"OK 30000"), None);
        assert_eq!(Refusal::parse(b"FAILED"), None);
    }

    #[test]
    fn frib_replies_are_the_same_errors() {
        // The exact lines of FRIB's portman 0.2.3 (LF already taken off by the reader).
        assert_eq!(
            refusal("FAIL - No free ports available"),
            ("No free ports available".into(), true, libc::EADDRNOTAVAIL)
        );
        assert_eq!(
            refusal("FAIL - FAIL can only allocate to local senders"),
            ("FAIL can only allocate to local senders".into(), true, libc::EPERM)
        );
        assert_eq!(
            refusal("FAIL - Duplicate port allocation attempted"),
            ("Duplicate port allocation attempted".into(), true, libc::EEXIST)
        );
        assert_eq!(refusal("FAIL - invalid request"), ("invalid request".into(), true, libc::EIO));
        // FRIB's reasons are plain text: not a Tcl list is still its refusal.
        assert_eq!(refusal("FAIL - a {b"), ("a {b".into(), true, libc::EIO));
        assert_eq!(Refusal::parse(b"FAIL {no free ports"), None, "NSCLDAQ's form is a Tcl list");
    }
}
