//! One screenful of `top`: what each ring looks like now, laid out for a window of a
//! given size. Pure text in, text out, so the layout is tested without a terminal.

/// A consumer as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerView {
    pub slot: u32,
    pub pid: i32,
    pub command: Option<String>,
    pub backlog: u64,
    /// Bytes per second; None until it has been watched for a whole refresh.
    pub rate: Option<f64>,
}

/// A ring as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RingView {
    pub name: String,
    pub data_bytes: u64,
    pub producer_pid: i32,
    pub producer_rate: Option<f64>,
    pub consumers: Vec<ConsumerView>,
}

/// A ring that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Ring(RingView),
    Broken { name: String, error: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Title,
    /// The consumer holding the producer back.
    Alert,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub style: Style,
    pub text: String,
}

/// The producer counts as short of space below a quarter of the ring free. A daqflow
/// producer blocked on space sleeps until an eighth is free, so with a slow consumer the
/// free space swings between none and a little over an eighth: a quarter keeps the
/// bottleneck marked all through that cycle instead of flickering.
const SHORT_FRACTION: u64 = 4;

impl RingView {
    fn capacity(&self) -> u64 {
        self.data_bytes.saturating_sub(1)
    }

    /// The largest backlog of an attached consumer: how full the ring is to the producer.
    fn fill(&self) -> u64 {
        self.consumers.iter().filter(|c| c.pid > 0).map(|c| c.backlog).max().unwrap_or(0)
    }

    fn free(&self) -> u64 {
        self.capacity().saturating_sub(self.fill())
    }

    /// The slot of the consumer holding the producer back, when there is a producer and
    /// it is short of space: the one with the largest backlog (the lowest slot of equals).
    pub fn bottleneck(&self) -> Option<u32> {
        if self.producer_pid <= 0 || self.free() >= self.capacity() / SHORT_FRACTION {
            return None;
        }
        let worst = self.fill();
        self.consumers.iter().find(|c| c.pid > 0 && c.backlog == worst).map(|c| c.slot)
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{:.1}", r / 1e6))
}

fn line(style: Style, text: String) -> Line {
    Line { style, text }
}

/// The bar of `width` cells showing `part` of `whole`.
fn bar(part: u64, whole: u64, width: usize) -> String {
    let filled =
        if whole == 0 { 0 } else { ((part as u128 * width as u128 + whole as u128 / 2) / whole as u128) as usize };
    let filled = filled.min(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

fn ring_lines(r: &RingView, cols: usize, out: &mut Vec<Line>) {
    let producer = if r.producer_pid > 0 {
        format!("producer {} at {} MB/s", r.producer_pid, rate(r.producer_rate))
    } else {
        "no producer".to_string()
    };
    out.push(line(Style::Title, format!("{}  {}  {producer}", r.name, bytes(r.data_bytes))));
    let fill = r.fill();
    let percent = if r.capacity() == 0 { 0 } else { fill * 100 / r.capacity() };
    let bottleneck = r.bottleneck();
    let warning = if bottleneck.is_some() { "  producer short of space" } else { "" };
    // What follows the bar takes at most 56 columns ("] 100% full  free 1023.9 KiB  producer short of space").
    let width = cols.saturating_sub(58).clamp(10, 100);
    out.push(line(
        Style::Plain,
        format!("  {} {percent:>3}% full  free {}{warning}", bar(fill, r.capacity(), width), bytes(r.free())),
    ));
    if r.consumers.is_empty() {
        out.push(line(Style::Plain, "  no consumers".to_string()));
        return;
    }
    out.push(line(
        Style::Plain,
        format!("  {:>4}  {:>8}  {:<15}  {:>9}  {:>10}", "slot", "pid", "command", "MB/s", "backlog"),
    ));
    for c in &r.consumers {
        let command: String = c.command.as_deref().unwrap_or("-").chars().take(15).collect();
        let mut text =
            format!("  {:>4}  {:>8}  {command:<15}  {:>9}  {:>10}", c.slot, c.pid, rate(c.rate), bytes(c.backlog));
        let style = if Some(c.slot) == bottleneck {
            text.push_str("  << bottleneck");
            Style::Alert
        } else {
            Style::Plain
        };
        out.push(line(style, text));
    }
}

/// The screen for a `cols` x `rows` window: a title, then each ring. Lines are cut at
/// the window's width; when they do not all fit, the last row says how many are hidden.
pub fn screen(title: &str, entries: &[Entry], cols: usize, rows: usize) -> Vec<Line> {
    let mut lines = vec![line(Style::Title, title.to_string())];
    if entries.is_empty() {
        lines.push(line(Style::Plain, "no rings".to_string()));
    }
    for entry in entries {
        lines.push(line(Style::Plain, String::new()));
        match entry {
            Entry::Ring(r) => ring_lines(r, cols, &mut lines),
            Entry::Broken { name, error } => lines.push(line(Style::Plain, format!("{name}: {error}"))),
        }
    }
    let rows = rows.max(1);
    if lines.len() > rows {
        let hidden = lines.len() - (rows - 1);
        lines.truncate(rows - 1);
        lines.push(line(Style::Plain, format!("... {hidden} more lines: enlarge the window")));
    }
    for l in &mut lines {
        l.text = crate::rings::printable(&l.text);
        if l.text.chars().count() > cols {
            l.text = l.text.chars().take(cols).collect();
        }
    }
    lines
}

/// The escape sequences that draw `lines` over the previous screen: from the top left,
/// each line cleared to its end, then everything below the last one cleared.
pub fn paint(lines: &[Line]) -> String {
    let mut out = String::from("\x1b[H");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let start = match l.style {
            Style::Plain => "",
            Style::Title => "\x1b[1m",
            Style::Alert => "\x1b[1;7m",
        };
        out.push_str(start);
        out.push_str(&l.text);
        out.push_str("\x1b[0m\x1b[K");
    }
    out.push_str("\x1b[J");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(slot: u32, backlog: u64) -> ConsumerView {
        ConsumerView { slot, pid: 100 + slot as i32, command: Some("reader".into()), backlog, rate: Some(2.5e6) }
    }

    fn ring(producer_pid: i32, backlogs: &[u64]) -> RingView {
        RingView {
            name: "r".into(),
            data_bytes: 1001,
            producer_pid,
            producer_rate: Some(1e6),
            consumers: backlogs.iter().enumerate().map(|(i, &b)| consumer(i as u32, b)).collect(),
        }
    }

    #[test]
    fn the_slowest_consumer_is_the_bottleneck_only_when_space_is_short() {
        assert_eq!(ring(7, &[10, 900, 950]).bottleneck(), Some(2));
        assert_eq!(ring(7, &[950, 950]).bottleneck(), Some(0), "lowest slot of equals");
        assert_eq!(ring(7, &[10, 500]).bottleneck(), None, "half full is not short");
        assert_eq!(ring(-1, &[10, 999]).bottleneck(), None, "no producer to hold back");
        let mut joining = ring(7, &[999, 10]);
        joining.consumers[0].pid = 0;
        assert_eq!(joining.bottleneck(), None, "a joining consumer holds no one back");
    }

    #[test]
    fn screen_shows_bar_rates_and_highlight() {
        let lines = screen("top", &[Entry::Ring(ring(7, &[10, 950]))], 80, 24);
        let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(text[2], "r  1001 B  producer 7 at 1.0 MB/s");
        assert!(
            text[3].starts_with("  [#####################.]  95% full  free 50 B  producer short of space"),
            "{}",
            text[3]
        );
        assert_eq!(lines[6].style, Style::Alert);
        assert!(text[6].ends_with("950 B  << bottleneck"), "{}", text[6]);
        assert!(text[6].contains(" 2.5 "), "{}", text[6]);
        assert_eq!(lines[5].style, Style::Plain);
    }

    #[test]
    fn screen_fits_the_window() {
        let entries: Vec<Entry> = (0..5).map(|_| Entry::Ring(ring(7, &[1, 2, 3]))).collect();
        let lines = screen("title", &entries, 40, 10);
        assert_eq!(lines.len(), 10);
        assert!(lines.iter().all(|l| l.text.chars().count() <= 40));
        assert_eq!(lines[9].text, "... 27 more lines: enlarge the window");
        let wide = screen("title", &entries[..1], 200, 50);
        let narrow = screen("title", &entries[..1], 60, 50);
        let bar_len = |ls: &[Line]| ls[3].text.find(']').unwrap();
        assert!(bar_len(&wide) > bar_len(&narrow));
    }

    #[test]
    fn control_characters_are_not_printed() {
        let mut r = ring(7, &[10]);
        r.name = "r\u{1b}[2J".into();
        r.consumers[0].command = Some("\u{1b}]2;x\u{7}".into());
        let broken = Entry::Broken { name: "b\u{1b}c".into(), error: "bad\u{9b}".into() };
        let lines = screen("top", &[Entry::Ring(r), broken], 80, 24);
        assert!(lines.iter().all(|l| !l.text.chars().any(char::is_control)), "{lines:?}");
        assert!(lines.iter().any(|l| l.text.contains("?]2;x?")), "{lines:?}");
    }

    #[test]
    fn bars_round_and_clamp() {
        assert_eq!(bar(0, 100, 4), "[....]");
        assert_eq!(bar(50, 100, 4), "[##..]");
        assert_eq!(bar(100, 100, 4), "[####]");
        assert_eq!(bar(200, 100, 4), "[####]");
        assert_eq!(bar(1, 0, 4), "[....]");
    }
}
