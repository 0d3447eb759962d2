//! The order and names of a LIST reply and of ports.txt, as the legacy server made them.
//!
//! Clients match the LISTed names exactly (`findServer`), so the legacy quirks are kept:
//! ports are sorted as decimal strings, grouped by the Tcl list `{user app}`, the groups
//! sorted by that string, and the second and later ports of a group get `_1`, `_2`, ...

use std::collections::BTreeMap;

use daqflow::portmgr::tcl::format_list;

/// `(port, application, user)` of one allocation.
pub type Entry<'a> = (u16, &'a [u8], &'a [u8]);

/// One LISTed allocation: the port and the (possibly suffixed) application name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<'a> {
    pub port: u16,
    pub application: Vec<u8>,
    pub user: &'a [u8],
}

/// The LIST order and names. `allocations` come sorted by the port's decimal string
/// (what [`super::pool::Pool::allocations`] yields).
pub fn list<'a>(allocations: impl IntoIterator<Item = Entry<'a>>) -> Vec<Listed<'a>> {
    let mut groups: BTreeMap<Vec<u8>, Vec<Entry<'a>>> = BTreeMap::new();
    for entry @ (_, application, user) in allocations {
        groups.entry(format_list(&[user, application])).or_default().push(entry);
    }
    let mut listed = Vec::new();
    for group in groups.into_values() {
        for (instance, (port, application, user)) in group.into_iter().enumerate() {
            let mut name = application.to_vec();
            if instance > 0 {
                name.extend_from_slice(format!("_{instance}").as_bytes());
            }
            listed.push(Listed { port, application: name, user });
        }
    }
    listed
}

/// The complete LIST reply: `OK n` and one Tcl list per allocation, each line ending CR LF.
pub fn list_reply<'a>(allocations: impl IntoIterator<Item = Entry<'a>>, out: &mut Vec<u8>) {
    let listed = list(allocations);
    out.extend_from_slice(format!("OK {}\r\n", listed.len()).as_bytes());
    for entry in &listed {
        let port = entry.port.to_string();
        out.extend_from_slice(&format_list(&[port.as_bytes(), &entry.application, entry.user]));
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes the contents of ports.txt into `out` (cleared first, so the daemon reuses one
/// buffer): `port<TAB>app<TAB>user` per allocation, unsuffixed, in the order given
/// (sorted by port string, as for [`list`]).
pub fn usage_file<'a>(allocations: impl IntoIterator<Item = Entry<'a>>, out: &mut Vec<u8>) {
    out.clear();
    for (port, application, user) in allocations {
        push_decimal(port, out);
        out.push(b'\t');
        out.extend_from_slice(application);
        out.push(b'\t');
        out.extend_from_slice(user);
        out.push(b'\n');
    }
}

/// `port` in decimal, without the formatting machinery (this runs for every line of
/// ports.txt on every change).
fn push_decimal(port: u16, out: &mut Vec<u8>) {
    let mut digits = [0u8; 5];
    let mut n = port;
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        let allocations: [(u16, &[u8], &[u8]); 5] = [
            (40016, b"my app", b"alice"),
            (40017, b"app1", b"bob"),
            (40018, b"app1", b"alice"),
            (40019, b"app2", b"alice"),
            (40020, b"app1", b"alice"),
        ];
        let mut reply = Vec::new();
        list_reply(allocations, &mut reply);
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            "OK 5\r\n40018 app1 alice\r\n40020 app1_1 alice\r\n40019 app2 alice\r\n40016 {my app} alice\r\n40017 app1 bob\r\n"
        );
    }

    #[test]
    fn usage_file_lines() {
        let allocations: [(u16, &[u8], &[u8]); 4] =
            [(10000, b"my app", b"u"), (65535, b"b", b"u"), (9, b"c", b"u"), (0, b"d", b"u")];
        let mut out = b"stale".to_vec();
        usage_file(allocations, &mut out);
        assert_eq!(out, b"10000\tmy app\tu\n65535\tb\tu\n9\tc\tu\n0\td\tu\n");
    }
}
