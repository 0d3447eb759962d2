//! Progress of a long operation (the demo, the benchmarks) for the person watching it:
//! on a terminal, one line redrawn in place with a bar; otherwise (a log, a pipe, CI)
//! plain lines, at most one per interval, so the output stays readable as a file.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::sys;

/// Where the progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub struct Progress {
    label: String,
    stream: Stream,
    terminal: bool,
    /// Plain mode: the shortest time between two lines.
    plain_every: Duration,
    last: Option<Instant>,
    /// What the terminal line shows now (empty: nothing drawn).
    drawn: String,
}

/// Redraws of the terminal line are at most this frequent.
const REDRAW: Duration = Duration::from_millis(100);
const BAR: usize = 20;

fn columns(stream: Stream) -> usize {
    let width = match stream {
        Stream::Stdout => sys::terminal_columns(std::io::stdout().as_fd()),
        Stream::Stderr => sys::terminal_columns(std::io::stderr().as_fd()),
    };
    width.map_or(80, usize::from)
}

impl Progress {
    /// `label` starts every line; plain lines come at most every `plain_every`.
    pub fn new(label: &str, stream: Stream, plain_every: Duration) -> Progress {
        let terminal = match stream {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        };
        Progress { label: label.to_string(), stream, terminal, plain_every, last: None, drawn: String::new() }
    }

    /// Whether the progress is drawn in place (the stream is a terminal).
    pub fn on_terminal(&self) -> bool {
        self.terminal
    }

    fn write(&self, text: &str) {
        // Progress is a courtesy: a closed or full stream must not stop the work.
        let _ = match self.stream {
            Stream::Stdout => {
                std::io::stdout().lock().write_all(text.as_bytes()).and_then(|()| std::io::stdout().flush())
            }
            Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }

    /// Reports `done` of `total` (None: unknown), with `detail` after it.
    pub fn update(&mut self, done: u64, total: Option<u64>, detail: &str) {
        let now = Instant::now();
        let due = if self.terminal { REDRAW } else { self.plain_every };
        if self.last.is_some_and(|t| now.duration_since(t) < due) {
            return;
        }
        self.last = Some(now);
        self.show(done, total, detail);
    }

    fn show(&mut self, done: u64, total: Option<u64>, detail: &str) {
        let fraction = total.filter(|&t| t > 0).map(|t| (done as f64 / t as f64).clamp(0.0, 1.0));
        if self.terminal {
            let bar = fraction.map_or(String::new(), |f| {
                let filled = (f * BAR as f64).round() as usize;
                format!(" [{}{}] {:>3.0}%", "#".repeat(filled), ".".repeat(BAR - filled), f * 100.0)
            });
            let line: String =
                format!("{}{bar}  {detail}", self.label).chars().take(columns(self.stream) - 1).collect();
            self.write(&format!("\r{line}\x1b[K"));
            self.drawn = line;
        } else {
            let percent = fraction.map_or(String::new(), |f| format!(" {:.0}%", f * 100.0));
            self.write(&format!("{}:{percent} {detail}\n", self.label));
        }
    }

    /// Prints `text` (whole lines) without mixing it into the progress line.
    pub fn println(&mut self, text: &str) {
        let text = if text.ends_with('\n') { text.to_string() } else { format!("{text}\n") };
        if self.terminal && !self.drawn.is_empty() {
            self.write(&format!("\r\x1b[K{text}{}", self.drawn));
        } else {
            self.write(&text);
        }
    }

    /// Ends the progress: the terminal line is erased; plain output gets `detail` as a
    /// last line.
    pub fn finish(&mut self, detail: &str) {
        if self.terminal {
            if !self.drawn.is_empty() {
                self.write("\r\x1b[K");
            }
        } else if !detail.is_empty() {
            self.write(&format!("{}: {detail}\n", self.label));
        }
        self.drawn.clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.terminal && !self.drawn.is_empty() {
            self.write("\r\x1b[K");
        }
    }
}
