//! `--json` output for scripts: one JSON document on stdout, sizes in bytes, a missing
//! value as null. Written by hand: two fixed shapes do not need a serialisation crate.

use std::fmt::Write;

use crate::rings::{Failure, RingStatus};

/// `text` as a JSON string literal.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn optional_string(text: Option<&str>) -> String {
    text.map_or_else(|| "null".to_string(), string)
}

/// `{"host":...,"rings":["a","b"]}`
pub fn list(host: &str, names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| string(n)).collect();
    format!("{{\"host\":{},\"rings\":[{}]}}\n", string(host), names.join(","))
}

fn ring(r: &RingStatus) -> String {
    let clients: Vec<String> = r
        .clients
        .iter()
        .map(|c| {
            format!(
                "{{\"slot\":{},\"pid\":{},\"backlog\":{},\"command\":{}}}",
                c.slot.map_or_else(|| "null".to_string(), |s| s.to_string()),
                c.pid,
                c.backlog,
                optional_string(c.command.as_deref())
            )
        })
        .collect();
    let producer = if r.producer_pid < 0 { "null".to_string() } else { r.producer_pid.to_string() };
    format!(
        "{{\"name\":{},\"owner\":{},\"data_bytes\":{},\"free\":{},\"max_consumers\":{},\"producer_pid\":{producer},\"max_backlog\":{},\"min_backlog\":{},\"consumers\":[{}],\"producer_may_lose_data\":{}}}",
        string(&r.name),
        optional_string(r.owner.as_deref()),
        r.data_bytes,
        r.free,
        r.max_consumers,
        r.max_backlog,
        r.min_backlog,
        clients.join(","),
        r.producer_may_lose_data
    )
}

/// `{"host":...,"rings":[{...}],"errors":[{"name":...,"errno":...,"error":...}]}`
pub fn status(host: &str, rings: &[RingStatus], failures: &[Failure]) -> String {
    let rings: Vec<String> = rings.iter().map(ring).collect();
    let errors: Vec<String> = failures
        .iter()
        .map(|f| {
            format!(
                "{{\"name\":{},\"errno\":{},\"error\":{}}}",
                string(&f.name),
                f.error.errno(),
                string(f.error.message())
            )
        })
        .collect();
    format!("{{\"host\":{},\"rings\":[{}],\"errors\":[{}]}}\n", string(host), rings.join(","), errors.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rings::Client;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
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
