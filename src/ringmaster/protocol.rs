//! The RingMaster protocol as bytes on the wire: the requests NSCLDAQ's C++ client sends,
//! the legacy reply texts, and the LIST usage line (a Tcl list) in both directions.

use crate::portmgr::tcl::{append_list, format_list, parse_list};
use crate::ring::{MAX_CONSUMERS_LIMIT, Usage};

/// The service name the daemon allocates its port under at the port manager.
pub const SERVICE: &str = "RingMaster";

pub const OK: &str = "OK";
pub const BINARY_FOLLOWS: &str = "OK BINARY FOLLOWS";
pub const INVALID_FORMAT: &str = "ERROR Invalid message format";
pub const REMOTE_FORBIDDEN: &str = "ERROR Ring connections from remote hosts are forbidden";
/// Our addition (the legacy daemon took REGISTER/UNREGISTER from anyone).
pub const REGISTRATION_FORBIDDEN: &str = "ERROR Ring registrations from remote hosts are forbidden";
/// `ERROR <ring>` + this, for a REGISTER of something that is not a ring.
pub const NOT_A_RING: &str = " shared memory is either corrupt or does not exist";
/// `ERROR <ring>` + this, for a REMOTE of a ring that is not there.
pub const NO_SUCH_RING: &str = " does not exist";
/// Our addition: a REMOTE from a peer outside `--allow-remote`.
pub const DATA_FORBIDDEN: &str = "is not allowed to receive ring data from this host";
/// Our addition: `ERROR ring <ring>` + this + `uid <uid>` or `other hosts`, a REMOTE of a
/// ring the client could not read itself.
pub const NOT_READABLE: &str = " is not readable by ";
/// Our addition: `ERROR <peer> already receives ring <ring> <n> times`, a REMOTE from a
/// peer that holds the most streams of that ring already.
pub const TOO_MANY_STREAMS: &str = " already receives ring ";

/// Which slot of a ring a client holds: the ring core's own notion, spelt here as the
/// protocol writes it.
pub use crate::ring::Role;

impl Role {
    /// `producer` or `consumer.<slot>`, as the C++ client writes it.
    pub fn word(&self) -> String {
        match self {
            Role::Producer => "producer".to_string(),
            Role::Consumer(slot) => format!("consumer.{slot}"),
        }
    }

    pub fn parse(word: &[u8]) -> Option<Role> {
        if word == b"producer" {
            return Some(Role::Producer);
        }
        let slot = word.strip_prefix(b"consumer.")?;
        // Digits only: u32::from_str would also take a leading '+'.
        if slot.is_empty() || !slot.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(slot).ok()?.parse().ok().map(Role::Consumer)
    }
}

/// One ring's usage as LISTed: the legacy `ringbuffer usage` figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingUsage {
    pub data_bytes: u64,
    /// What a producer could put now: data bytes - 1 - the largest backlog.
    pub put_space: u64,
    pub max_consumers: u32,
    /// -1 when there is no producer.
    pub producer_pid: i32,
    pub max_get: u64,
    pub min_get: u64,
    /// `(pid, backlog)` of every slot that is not free, in slot order (pid 0: joining).
    pub consumers: Vec<(i32, u64)>,
}

impl From<&Usage> for RingUsage {
    fn from(u: &Usage) -> RingUsage {
        RingUsage {
            data_bytes: u.data_bytes,
            put_space: u.put_space,
            max_consumers: u.max_consumers,
            producer_pid: u.producer_pid,
            max_get: u.max_get,
            min_get: u.min_get,
            consumers: u.consumers.iter().map(|c| (c.pid, c.backlog)).collect(),
        }
    }
}

impl RingUsage {
    /// `dataBytes putSpace maxConsumers producerPid maxGet minGet {{pid backlog} ...}`.
    fn to_list(&self) -> Vec<u8> {
        let consumers: Vec<Vec<u8>> =
            self.consumers.iter().map(|(pid, backlog)| format_list(&[pid.to_string(), backlog.to_string()])).collect();
        let mut fields: Vec<Vec<u8>> = [
            self.data_bytes.to_string(),
            self.put_space.to_string(),
            self.max_consumers.to_string(),
            self.producer_pid.to_string(),
            self.max_get.to_string(),
            self.min_get.to_string(),
        ]
        .map(String::into_bytes)
        .into();
        fields.push(format_list(&consumers));
        format_list(&fields)
    }

    fn from_list(bytes: &[u8]) -> Option<RingUsage> {
        let fields = parse_list(bytes).ok()?;
        let [data_bytes, put_space, max_consumers, producer_pid, max_get, min_get, consumers] = fields.as_slice()
        else {
            return None;
        };
        let max_consumers: u32 = number(max_consumers)?;
        // A ring has at most MAX_CONSUMERS_LIMIT slots (as a header is checked when read),
        // and cannot list more busy ones than it has.
        let consumers = parse_list(consumers).ok()?;
        if max_consumers > MAX_CONSUMERS_LIMIT || consumers.len() > max_consumers as usize {
            return None;
        }
        let mut pairs = Vec::with_capacity(consumers.len());
        for pair in consumers {
            let [pid, backlog] = parse_list(&pair).ok()?.try_into().ok()?;
            pairs.push((number(&pid)?, number(&backlog)?));
        }
        Some(RingUsage {
            data_bytes: number(data_bytes)?,
            put_space: number(put_space)?,
            max_consumers,
            producer_pid: number(producer_pid)?,
            max_get: number(max_get)?,
            min_get: number(min_get)?,
            consumers: pairs,
        })
    }
}

fn number<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The line after `OK` in a LIST reply (without its CR LF): `{ring {usage}} ...`, in the
/// order given (the daemon sorts by name). NSCLDAQ's C++ `create` looks for the text
/// `{<ring> ` in it, so every entry is braced even when the list has one element.
pub fn list_line(rings: &[(String, RingUsage)]) -> Vec<u8> {
    let entries: Vec<Vec<u8>> =
        rings.iter().map(|(name, usage)| format_list(&[name.as_bytes().to_vec(), usage.to_list()])).collect();
    let mut out = Vec::new();
    append_list(&entries, &mut out);
    out
}

/// Parses the line after `OK` in a LIST reply; `None` if it is not one.
pub fn parse_list_line(line: &[u8]) -> Option<Vec<(String, RingUsage)>> {
    let mut rings = Vec::new();
    for entry in parse_list(line).ok()? {
        let [name, usage] = parse_list(&entry).ok()?.try_into().ok()?;
        rings.push((String::from_utf8(name).ok()?, RingUsage::from_list(&usage)?));
    }
    Some(rings)
}

/// A request line as the daemon reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Nothing but white space: ignored, as the legacy daemon did.
    Empty,
    /// `CONNECT {ring} role pid {comment}`; `None` when the element count or a field is
    /// wrong (the legacy daemon checked only the count).
    Connect(Option<Claim>),
    /// `DISCONNECT {ring} role pid`.
    Disconnect(Option<Claim>),
    /// `REGISTER ring`; `None` when not exactly two words.
    Register(Option<String>),
    Unregister(Option<String>),
    /// `LIST`, and nothing else on the line (anything else closes the connection).
    List {
        exact: bool,
    },
    Remote(Option<String>),
    /// `DEBUG ...`: NSCLDAQ's daemon switched its debug log on or off and said nothing;
    /// the connection goes on.
    Debug,
    /// An unknown command or a line that is not a Tcl list: the connection is closed.
    Invalid,
}

/// A client's statement that `pid` holds `role` in `ring`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    pub ring: String,
    pub role: Role,
    pub pid: i32,
    pub comment: String,
}

impl Request {
    pub fn parse(line: &[u8]) -> Request {
        let Ok(words) = parse_list(line) else {
            return Request::Invalid;
        };
        let Some(command) = words.first() else {
            return Request::Empty;
        };
        let text = |w: &[u8]| String::from_utf8(w.to_vec()).ok();
        let one_ring = |words: &[Vec<u8>]| match words {
            [_, ring] => text(ring),
            _ => None,
        };
        match command.as_slice() {
            b"CONNECT" => Request::Connect(match words.as_slice() {
                [_, ring, role, pid, comment] => claim(ring, role, pid, comment),
                _ => None,
            }),
            b"DISCONNECT" => Request::Disconnect(match words.as_slice() {
                [_, ring, role, pid] => claim(ring, role, pid, b""),
                _ => None,
            }),
            b"REGISTER" => Request::Register(one_ring(&words)),
            b"UNREGISTER" => Request::Unregister(one_ring(&words)),
            b"REMOTE" => Request::Remote(one_ring(&words)),
            // The legacy daemon compared the whole (right-trimmed) line with "LIST".
            b"LIST" => Request::List { exact: line.trim_ascii() == b"LIST" },
            b"DEBUG" => Request::Debug,
            _ => Request::Invalid,
        }
    }
}

fn claim(ring: &[u8], role: &[u8], pid: &[u8], comment: &[u8]) -> Option<Claim> {
    // The C++ client braces the name: `{ring}` is one word whose first element is the name.
    let ring = match parse_list(ring).ok()?.as_slice() {
        [name] => String::from_utf8(name.clone()).ok()?,
        _ => return None,
    };
    let pid: i32 = number(pid).filter(|&p: &i32| p > 0)?;
    Some(Claim { ring, role: Role::parse(role)?, pid, comment: String::from_utf8_lossy(comment).into_owned() })
}

/// `CONNECT {ring} role pid {comment}` LF, byte for byte what NSCLDAQ's C++ client sends.
pub fn connect_request(ring: &str, role: Role, pid: i32, comment: &str) -> String {
    format!("CONNECT {{{ring}}} {} {pid} {{{comment}}}\n", role.word())
}

/// `DISCONNECT {ring} role pid` LF.
pub fn disconnect_request(ring: &str, role: Role, pid: i32) -> String {
    format!("DISCONNECT {{{ring}}} {} {pid}\n", role.word())
}

/// Appends `text` and the CR LF every reply line ends in.
pub fn reply(text: impl AsRef<[u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(text.as_ref());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(consumers: Vec<(i32, u64)>) -> RingUsage {
        RingUsage {
            data_bytes: 8391008,
            put_space: 8391007,
            max_consumers: 100,
            producer_pid: -1,
            max_get: 0,
            min_get: 0,
            consumers,
        }
    }

    #[test]
    fn list_line_round_trips_in_the_legacy_shape() {
        let rings = vec![("a".to_string(), usage(vec![])), ("b.c".to_string(), usage(vec![(12, 0), (0, 5)]))];
        let line = list_line(&rings);
        assert_eq!(
            String::from_utf8_lossy(&line),
            "{a {8391008 8391007 100 -1 0 0 {}}} {b.c {8391008 8391007 100 -1 0 0 {{12 0} {0 5}}}}"
        );
        assert_eq!(parse_list_line(&line).unwrap(), rings);
        // One ring with one consumer still braces the entry (C++ create searches "{name ").
        let one = list_line(&[("r".to_string(), usage(vec![(7, 1)]))]);
        assert_eq!(String::from_utf8_lossy(&one), "{r {8391008 8391007 100 -1 0 0 {{7 1}}}}");
        assert_eq!(list_line(&[]), b"");
        assert_eq!(parse_list_line(b"").unwrap(), vec![]);
        for bad in ["{a {1 2 3}}", "{a {1 2 3 4 5 6 {x}}}", "{a", "{a {1 2 3 4 5 6 {{1 2 3}}}}", "x"] {
            assert!(parse_list_line(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn requests_parse_as_the_cpp_client_writes_them() {
        let connect = connect_request("fox", Role::Consumer(3), 1234, "CRingBuffer:: client connection");
        assert_eq!(connect, "CONNECT {fox} consumer.3 1234 {CRingBuffer:: client connection}\n");
        let expected = Claim {
            ring: "fox".into(),
            role: Role::Consumer(3),
            pid: 1234,
            comment: "CRingBuffer:: client connection".into(),
        };
        assert_eq!(Request::parse(connect.trim_end().as_bytes()), Request::Connect(Some(expected)));
        assert_eq!(
            Request::parse(disconnect_request("fox", Role::Producer, 9).trim_end().as_bytes()),
            Request::Disconnect(Some(Claim {
                ring: "fox".into(),
                role: Role::Producer,
                pid: 9,
                comment: String::new()
            }))
        );
        for bad in [
            "CONNECT fox producer 1",
            "CONNECT fox producer 1 c d",
            "CONNECT fox consumer 1 c",
            "CONNECT fox consumer.+1 1 c",
            "CONNECT fox consumer.1 0 c",
            "CONNECT fox producer -5 c",
            "CONNECT fox producer x c",
            "CONNECT {} producer 1 c",
            "CONNECT {a b} producer 1 c",
        ] {
            assert_eq!(Request::parse(bad.as_bytes()), Request::Connect(None), "{bad}");
        }
        assert_eq!(Request::parse(b"REGISTER fox"), Request::Register(Some("fox".into())));
        assert_eq!(Request::parse(b"REGISTER"), Request::Register(None));
        assert_eq!(Request::parse(b"UNREGISTER a b"), Request::Unregister(None));
        assert_eq!(Request::parse(b"REMOTE fox"), Request::Remote(Some("fox".into())));
        assert_eq!(Request::parse(b"LIST  "), Request::List { exact: true });
        assert_eq!(Request::parse(b"LIST x"), Request::List { exact: false });
        assert_eq!(Request::parse(b"   "), Request::Empty);
        assert_eq!(Request::parse(b"DEBUG 0"), Request::Debug);
        assert_eq!(Request::parse(b"DEBUG"), Request::Debug);
        assert_eq!(Request::parse(b"list"), Request::Invalid);
        assert_eq!(Request::parse(b"CONNECT {fox"), Request::Invalid);
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse(b"consumer.0"), Some(Role::Consumer(0)));
        assert_eq!(Role::parse(b"consumer.4294967296"), None);
        assert_eq!(Role::parse(b"consumer."), None);
        assert_eq!(Role::parse(b"Producer"), None);
        assert_eq!(Role::Consumer(12).word(), "consumer.12");
    }
}
