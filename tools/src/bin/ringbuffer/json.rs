//! `--json` output for scripts: one JSON document on stdout, sizes in bytes, a missing
//! value as null. The documents are their own structs rather than the tool's: renaming a
//! field inside the tool must not change what scripts read (the tests pin the text).

use serde::Serialize;

use crate::rings::{Failure, RingStatus};

#[derive(Serialize)]
struct List<'a> {
    host: &'a str,
    rings: &'a [String],
}

#[derive(Serialize)]
struct Status<'a> {
    host: &'a str,
    rings: Vec<Ring<'a>>,
    errors: Vec<RingError<'a>>,
}

#[derive(Serialize)]
struct Ring<'a> {
    name: &'a str,
    owner: Option<&'a str>,
    data_bytes: u64,
    free: u64,
    max_consumers: u32,
    producer_pid: Option<i32>,
    max_backlog: u64,
    min_backlog: u64,
    consumers: Vec<Consumer<'a>>,
    producer_may_lose_data: bool,
}

#[derive(Serialize)]
struct Consumer<'a> {
    slot: Option<u32>,
    pid: i32,
    backlog: u64,
    command: Option<&'a str>,
}

#[derive(Serialize)]
struct RingError<'a> {
    name: &'a str,
    errno: i32,
    error: &'a str,
}

impl<'a> Ring<'a> {
    fn of(r: &'a RingStatus) -> Ring<'a> {
        Ring {
            name: &r.name,
            owner: r.owner.as_deref(),
            data_bytes: r.data_bytes,
            free: r.free,
            max_consumers: r.max_consumers,
            // The ring's header says -1 (or any negative pid) when no producer is attached.
            producer_pid: (r.producer_pid >= 0).then_some(r.producer_pid),
            max_backlog: r.max_backlog,
            min_backlog: r.min_backlog,
            consumers: r
                .clients
                .iter()
                .map(|c| Consumer { slot: c.slot, pid: c.pid, backlog: c.backlog, command: c.command.as_deref() })
                .collect(),
            producer_may_lose_data: r.producer_may_lose_data,
        }
    }
}

/// The document and a newline. Serialising these structs cannot fail (string keys, no
/// maps, no floats); should it ever, the script gets null rather than a torn document.
fn document(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string()) + "\n"
}

/// `{"host":...,"rings":["a","b"]}`
pub fn list(host: &str, names: &[String]) -> String {
    document(&List { host, rings: names })
}

/// `{"host":...,"rings":[{...}],"errors":[{"name":...,"errno":...,"error":...}]}`
pub fn status(host: &str, rings: &[RingStatus], failures: &[Failure]) -> String {
    document(&Status {
        host,
        rings: rings.iter().map(Ring::of).collect(),
        errors: failures
            .iter()
            .map(|f| RingError { name: &f.name, errno: f.error.errno(), error: f.error.message() })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rings::Client;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(list("a\"b\\c\nd\u{1}\u{1b}é", &[]), "{\"host\":\"a\\\"b\\\\c\\nd\\u0001\\u001bé\",\"rings\":[]}\n");
    }

    #[test]
    fn status_shape() {
        let r = RingStatus {
            name: "r".into(),
            owner: None,
            data_bytes: 10,
            free: 9,
            max_consumers: 2,
            producer_pid: -1,
            max_backlog: 0,
            min_backlog: 0,
            clients: vec![Client { slot: None, pid: 7, backlog: 0, command: None }],
            producer_may_lose_data: false,
        };
        let failure = Failure { name: "bad".into(), error: daqflow::Error::new(libc::EBADMSG, "corrupt") };
        assert_eq!(
            status("h", &[r], &[failure]),
            "{\"host\":\"h\",\"rings\":[{\"name\":\"r\",\"owner\":null,\"data_bytes\":10,\"free\":9,\"max_consumers\":2,\"producer_pid\":null,\"max_backlog\":0,\"min_backlog\":0,\"consumers\":[{\"slot\":null,\"pid\":7,\"backlog\":0,\"command\":null}],\"producer_may_lose_data\":false}],\"errors\":[{\"name\":\"bad\",\"errno\":74,\"error\":\"corrupt\"}]}\n"
        );
        assert_eq!(list("h", &["a".into(), "b".into()]), "{\"host\":\"h\",\"rings\":[\"a\",\"b\"]}\n");
    }
}
