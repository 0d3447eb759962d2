//! `status` as a table for people: NSCLDAQ's columns (sizes in KiB, rounded down as
//! NSCLDAQ did), one row per ring followed by one row per client, plus the client's
//! command name. A ring whose producer may lose data gets a warning line under the table.

use crate::rings::{RingStatus, printable};

const HEADERS: [&str; 10] = [
    "name",
    "size(k)",
    "free(k)",
    "max consumers",
    "producer",
    "maxget(k)",
    "minget(k)",
    "client",
    "backlog(k)",
    "command",
];

fn kib(bytes: u64) -> String {
    (bytes / 1024).to_string()
}

fn rows(rings: &[RingStatus]) -> Vec<[String; 10]> {
    let dash = || "-".to_string();
    let mut rows = Vec::new();
    for r in rings {
        rows.push([
            printable(&r.name),
            kib(r.data_bytes),
            kib(r.free),
            r.max_consumers.to_string(),
            r.producer_pid.to_string(),
            kib(r.max_backlog),
            kib(r.min_backlog),
            dash(),
            dash(),
            String::new(),
        ]);
        for c in &r.clients {
            rows.push([
                dash(),
                dash(),
                dash(),
                dash(),
                dash(),
                dash(),
                dash(),
                c.pid.to_string(),
                kib(c.backlog),
                printable(c.command.as_deref().unwrap_or_default()),
            ]);
        }
    }
    rows
}

/// The table, one line per row, names and commands left-aligned, numbers right-aligned.
pub fn render(rings: &[RingStatus]) -> String {
    let rows = rows(rings);
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let left = |i: usize| i == 0 || i == HEADERS.len() - 1;
    let line = |cells: &[String]| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| if left(i) { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) })
            .collect();
        text.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADERS.map(String::from));
    out += &line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        out += &line(row);
    }
    for r in rings.iter().filter(|r| r.producer_may_lose_data) {
        out += &format!(
            "warning: {}: producer {} uses FRIB's nscldaq_ringbuffer, which can fill the ring to the last byte, and a full ring looks empty: its consumers may lose data\n",
            printable(&r.name),
            r.producer_pid
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rings::Client;

    #[test]
    fn one_row_per_ring_then_one_per_client() {
        let ring = RingStatus {
            name: "r1".into(),
            owner: Some("ann".into()),
            data_bytes: 8_391_008,
            free: 8_391_007 - 4096,
            max_consumers: 100,
            producer_pid: -1,
            max_backlog: 4096,
            min_backlog: 1023,
            clients: vec![
                Client { slot: Some(0), pid: 42, backlog: 4096, command: Some("reader".into()) },
                Client { slot: Some(1), pid: 43, backlog: 1023, command: None },
            ],
            producer_may_lose_data: false,
        };
        let text = render(&[ring]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("name  size(k)  free(k)  max consumers  producer"), "{text}");
        let cells = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(cells(lines[2]), ["r1", "8194", "8190", "100", "-1", "4", "0", "-", "-"]);
        assert_eq!(cells(lines[3]), ["-", "-", "-", "-", "-", "-", "-", "42", "4", "reader"]);
        assert_eq!(cells(lines[4]), ["-", "-", "-", "-", "-", "-", "-", "43", "0"]);
        // Numbers are right-aligned under their headers.
        let col = lines[0].find("backlog(k)").unwrap() + "backlog(k)".len();
        assert_eq!(&lines[3][col - 1..col], "4");
    }

    #[test]
    fn control_characters_are_not_printed() {
        let ring = RingStatus {
            name: "r\u{1b}[2J".into(),
            owner: None,
            data_bytes: 0,
            free: 0,
            max_consumers: 1,
            producer_pid: -1,
            max_backlog: 0,
            min_backlog: 0,
            clients: vec![Client {
                slot: Some(0),
                pid: 42,
                backlog: 0,
                command: Some("\u{1b}]2;x\u{7}\u{9b}1m".into()),
            }],
            producer_may_lose_data: true,
        };
        let text = render(&[ring]);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(text.contains("r?[2J") && text.contains("?]2;x??1m"), "{text:?}");
    }

    #[test]
    fn a_producer_that_may_lose_data_is_named_under_the_table() {
        let ring = |name: &str, warn: bool| RingStatus {
            name: name.into(),
            owner: None,
            data_bytes: 4096,
            free: 4095,
            max_consumers: 1,
            producer_pid: 77,
            max_backlog: 0,
            min_backlog: 0,
            clients: vec![],
            producer_may_lose_data: warn,
        };
        let text = render(&[ring("quiet", false), ring("lossy", true)]);
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("warning: lossy: producer 77 uses FRIB's") && last.ends_with("may lose data"),
            "{text}"
        );
        assert_eq!(text.matches("may lose data").count(), 1, "{text}");
    }
}
