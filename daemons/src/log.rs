//! The daemons' log: one timestamped line per event, with the legacy server's texts.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Where log lines go. The daemon flushes after each batch of events, so a burst of
/// connections costs one write, not one per line.
pub struct Log {
    out: BufWriter<Box<dyn Write + Send>>,
    host: String,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log").field("host", &self.host).finish_non_exhaustive()
    }
}

impl Log {
    pub fn stderr() -> Log {
        Log::new(Box::new(io::stderr()))
    }

    /// Appends to `path`; the caller decides what to do when it cannot be opened (the
    /// legacy server fell back to stderr).
    pub fn file(path: &Path) -> io::Result<Log> {
        // Never through a symlink: the daemon may run as root.
        let file: File = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Log::new(Box::new(file)))
    }

    fn new(out: Box<dyn Write + Send>) -> Log {
        Log { out: BufWriter::new(out), host: hostname() }
    }

    /// `<Month dd, yyyy hh:mm:ss> <host> <message>`, the legacy stamp without the level
    /// column (the ring master's lines).
    pub fn line(&mut self, message: fmt::Arguments<'_>) {
        // A full disk or a closed stderr must not stop the daemon: log lines are lost.
        let _ = writeln!(self.out, "{} {} {}", timestamp(), self.host, message);
    }

    /// `<level> <Month dd, yyyy hh:mm:ss> <host> <message>`, byte for byte as NSCLDAQ's
    /// port manager wrote it through tcllib's `log` package (the level padded to 9
    /// characters): NSCLDAQ's own log.test reads the level as the line's first word and
    /// the host as its sixth.
    pub fn entry(&mut self, level: Level, message: fmt::Arguments<'_>) {
        let _ = writeln!(self.out, "{:<9} {} {} {}", level.name(), timestamp(), self.host, message);
    }

    pub fn info(&mut self, message: fmt::Arguments<'_>) {
        self.entry(Level::Info, message);
    }

    pub fn alert(&mut self, message: fmt::Arguments<'_>) {
        self.entry(Level::Alert, message);
    }

    /// Writes to `path` from now on (for logrotate, on SIGHUP: the old file has been
    /// renamed). On failure the log keeps its current destination.
    pub fn reopen(&mut self, path: &Path) -> io::Result<()> {
        let fresh = Log::file(path)?;
        self.flush();
        self.out = fresh.out;
        Ok(())
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// tcllib's log levels, those the port manager uses. NSCLDAQ logged connections,
/// allocations and releases as `info`, refusals and invalid requests as `alert`; the
/// lines it did not have (start, stop, the daemon's own failures) use `notice` and
/// `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Alert,
    Error,
    Notice,
    Info,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Alert => "alert",
            Level::Error => "error",
            Level::Notice => "notice",
            Level::Info => "info",
        }
    }
}

/// Bytes from a client made safe for one log line. The one place every client-supplied
/// field of either daemon's log goes through: control characters (line breaks, escape
/// sequences), the Unicode line and paragraph separators and direction overrides are
/// written as Rust escapes (`\n`, `\u{1b}`), a byte that is not UTF-8 as `\xNN`, and a
/// backslash as `\\`, so nothing a client sends can start or rewrite a line of its own,
/// and an escape in the log always means the client sent that character.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() || is_invisible_format(c) {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Characters a terminal or viewer shows as a line break or uses to reorder the text
/// around them (Unicode Zl, Zp and the bidirectional controls).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
    )
}

fn hostname() -> String {
    nix::unistd::gethostname().map_or_else(|_| "localhost".to_string(), |name| name.to_string_lossy().into_owned())
}

fn timestamp() -> String {
    crate::sys::local_time(c"%B %d, %Y %H:%M:%S")
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn nothing_a_client_sends_breaks_or_forges_a_line() {
        assert_eq!(printable(b"ring-1.a:b"), "ring-1.a:b");
        assert_eq!(printable("r\u{e9}sum\u{e9}".as_bytes()), "r\u{e9}sum\u{e9}", "text stays readable");
        assert_eq!(printable(b"a\nb\rc\td\x1b[2J"), "a\\nb\\rc\\td\\u{1b}[2J");
        assert_eq!(printable(b"\xff\xfeok\xc3"), "\\xff\\xfeok\\xc3");
        assert_eq!(printable(b"a\\nb"), "a\\\\nb", "a backslash is escaped, so an escape is never ambiguous");
        assert_eq!(printable("x\u{2028}y\u{202e}z\u{85}".as_bytes()), "x\\u{2028}y\\u{202e}z\\u{85}");
        assert!(!printable(&(0u8..=255).collect::<Vec<u8>>()).chars().any(|c| c.is_control()));
    }
}
