//! Splits a byte stream into lines ending in LF, CR LF or CR (Tcl's `auto` translation,
//! which the legacy server read with), across any segment boundaries.

/// The longest request line accepted; real ones are a few dozen bytes. Longer input is
/// refused rather than buffered without bound.
pub const MAX_LINE: usize = 4096;

/// A line longer than the limit arrived without an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// Where to resume looking for a line end (everything before it has none).
    scanned: usize,
    /// The previous line ended in CR: a LF right after it belongs to that line end.
    after_cr: bool,
    max_line: usize,
}

impl LineBuffer {
    pub fn new(max_line: usize) -> Self {
        LineBuffer { buf: Vec::new(), start: 0, scanned: 0, after_cr: false, max_line }
    }

    pub fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.scanned = 0;
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            // Compact now and then so consumed bytes do not pile up.
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line without its end, `None` when none is complete yet.
    pub fn next_line(&mut self) -> Option<Result<&[u8], LineTooLong>> {
        if self.after_cr && self.start < self.buf.len() {
            if self.buf[self.start] == b'\n' {
                self.start += 1;
            }
            self.after_cr = false;
        }
        self.scanned = self.scanned.max(self.start);
        let found = self.buf[self.scanned..].iter().position(|&b| b == b'\n' || b == b'\r');
        let Some(offset) = found else {
            self.scanned = self.buf.len();
            return (self.buf.len() - self.start > self.max_line).then_some(Err(LineTooLong));
        };
        let end = self.scanned + offset;
        if end - self.start > self.max_line {
            return Some(Err(LineTooLong));
        }
        let line_start = self.start;
        self.start = end + 1;
        if self.buf[end] == b'\r' {
            self.after_cr = true;
            if self.start < self.buf.len() {
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                }
                self.after_cr = false;
            }
        }
        self.scanned = self.start;
        Some(Ok(&self.buf[line_start..end]))
    }

    /// At end of input: the unterminated last line, if any (Tcl's `gets` returns it too).
    pub fn take_partial(&mut self) -> Option<Vec<u8>> {
        let rest = self.buf.get(self.start..).filter(|r| !r.is_empty())?.to_vec();
        self.start = self.buf.len();
        Some(rest)
    }

    /// Bytes received but not yet returned as lines.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut lb = LineBuffer::new(MAX_LINE);
        let mut out = Vec::new();
        for chunk in chunks {
            lb.extend(chunk);
            while let Some(line) = lb.next_line() {
                out.push(String::from_utf8_lossy(line.unwrap()).into_owned());
            }
        }
        out.extend(lb.take_partial().map(|p| String::from_utf8_lossy(&p).into_owned()));
        out
    }

    #[test]
    fn every_line_end_and_any_split() {
        assert_eq!(lines(&[b"LIST\nGIMME a b\r\nLIST\rX"]), ["LIST", "GIMME a b", "LIST", "X"]);
        assert_eq!(lines(&[b"LI", b"ST\r", b"\nGIM", b"ME a b\r"]), ["LIST", "GIMME a b"]);
        assert_eq!(lines(&[b"\n\r\n\r"]), ["", "", ""]);
        let whole = b"GIMME {my app} alice\r\nLIST\nLIST\r\r\n";
        for split in 0..whole.len() {
            assert_eq!(lines(&[&whole[..split], &whole[split..]]), ["GIMME {my app} alice", "LIST", "LIST", ""]);
        }
    }

    #[test]
    fn long_lines_are_refused() {
        let mut lb = LineBuffer::new(8);
        lb.extend(b"12345678\n123456789");
        assert_eq!(lb.next_line(), Some(Ok(&b"12345678"[..])));
        assert_eq!(lb.next_line(), Some(Err(LineTooLong)));
        let mut lb = LineBuffer::new(8);
        lb.extend(b"123456789\n");
        assert_eq!(lb.next_line(), Some(Err(LineTooLong)));
    }

    #[test]
    fn many_pipelined_lines_stay_compact() {
        let mut lb = LineBuffer::new(MAX_LINE);
        for _ in 0..10_000 {
            lb.extend(b"LIST\n");
            assert_eq!(lb.next_line(), Some(Ok(&b"LIST"[..])));
        }
        assert_eq!(lb.pending(), 0);
        assert!(lb.buf.len() < 8192);
    }
}
