//! The order and names of a LIST reply and of ports.txt, as the legacy server made them.
//!
//! Clients match the LISTed names exactly (`findServer`), so the legacy quirks are kept:
//! ports are sorted as decimal strings, grouped by the Tcl list `{user app}`, the groups
//! sorted by that string, and the second and later ports of a group get `_1`, `_2`, ...

use std::collections::BTreeMap;

use super::tcl::format_list;

/// `(port, application, user)` of one allocation.
pub type Entry<'a> = (u16, &'a [u8], &'a [u8]);

/// One LISTed allocation: the port and the (possibly suffixed) application name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<'a> {
    pub port: u16,
    pub application: Vec<u8>,
    pub user: &'a [u8],
}

/// `(port, application, user)` triples sorted the way the legacy server sorted them
/// (`lsort` of the port numbers as strings).
fn by_port_string<'a>(allocations: impl IntoIterator<Item = Entry<'a>>) -> Vec<Entry<'a>> {
    let mut sorted: Vec<_> = allocations.into_iter().collect();
    sorted.sort_by_cached_key(|(port, _, _)| port.to_string());
    sorted
}

/// The LIST order and names.
pub fn list<'a>(allocations: impl IntoIterator<Item = Entry<'a>>) -> Vec<Listed<'a>> {
    let mut groups: BTreeMap<Vec<u8>, Vec<Entry<'a>>> = BTreeMap::new();
    for entry @ (_, application, user) in by_port_string(allocations) {
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

/// The contents of ports.txt: `port<TAB>app<TAB>user` per allocation, unsuffixed.
pub fn usage_file<'a>(allocations: impl IntoIterator<Item = Entry<'a>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (port, application, user) in by_port_string(allocations) {
        out.extend_from_slice(port.to_string().as_bytes());
        out.push(b'\t');
        out.extend_from_slice(application);
        out.push(b'\t');
        out.extend_from_slice(user);
        out.push(b'\n');
    }
    out
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
    fn ports_sort_as_strings() {
        // 9999 sorts after 10000 as a string, so 10000 keeps the plain name.
        let allocations: [(u16, &[u8], &[u8]); 2] = [(9999, b"a", b"u"), (10000, b"a", b"u")];
        let names: Vec<_> = list(allocations).into_iter().map(|l| (l.port, l.application)).collect();
        assert_eq!(names, [(10000, b"a".to_vec()), (9999, b"a_1".to_vec())]);
        assert_eq!(usage_file(allocations), b"10000\ta\tu\n9999\ta\tu\n");
    }
}
