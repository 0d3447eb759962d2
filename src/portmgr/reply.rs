//! What a port manager client reads back, parsed line by line: the reply to GIMME and the
//! reply to LIST. The server may be anyone's (any host in `tcp://host/...` or
//! `lsservices host`), so every count and length it sends is bounded before it costs
//! memory; see docs/security.md, "Limits".

use super::refusal::Refusal;
use super::tcl::parse_list;

/// Longest reply line read. A LIST line quotes a name pair that fitted in one request
/// line of at most `lines::MAX_LINE` (4096) bytes; quoting at most doubles it.
pub const MAX_REPLY_LINE: usize = 16 * 1024;
/// Most allocations a LIST may announce: one per port.
pub const MAX_LISTED: usize = u16::MAX as usize;
/// Most bytes of LIST lines read in one listing: a full pool of 65535 ports with names
/// of about 500 bytes each. Real listings are a few hundred short lines.
pub const MAX_LIST_BYTES: usize = 32 * 1024 * 1024;

/// One allocation as LISTed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub port: u16,
    /// As LISTed: the second and later allocations of one name carry `_1`, `_2`, ...
    pub application: String,
    pub user: String,
}

/// What is wrong with a reply, in words that follow "the reply ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply(pub String);

/// The answer to a GIMME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gimme {
    Port(u16),
    Refused(Refusal),
}

/// Parses the reply line to a GIMME: `OK port` or a refusal in either server's form.
pub fn gimme(line: &[u8]) -> Result<Gimme, BadReply> {
    if let Some(refusal) = Refusal::parse(line) {
        return Ok(Gimme::Refused(refusal));
    }
    let words = words(line)?;
    match words.as_slice() {
        [ok, port, ..] if ok == b"OK" => {
            let text = String::from_utf8_lossy(port);
            text.parse::<u16>().map(Gimme::Port).map_err(|_| BadReply(format!("{text:?} is not a port number")))
        }
        _ => Err(unexpected(&words)),
    }
}

/// A LIST reply read so far: `OK n`, then n lines `port application user`.
#[derive(Debug)]
pub struct Listing {
    expected: usize,
    bytes: usize,
    allocations: Vec<Allocation>,
}

impl Listing {
    /// Starts from the header line `OK n`.
    pub fn start(header: &[u8]) -> Result<Listing, BadReply> {
        let words = words(header)?;
        let count = match words.as_slice() {
            [ok, n, ..] if ok == b"OK" => std::str::from_utf8(n).ok().and_then(|n| n.parse::<usize>().ok()),
            _ => None,
        };
        let Some(expected) = count else {
            return Err(unexpected(&words));
        };
        if expected > MAX_LISTED {
            return Err(BadReply(format!(
                "announces {expected} allocations, more than the {MAX_LISTED} ports a port manager can hand out"
            )));
        }
        Ok(Listing { expected, bytes: header.len(), allocations: Vec::with_capacity(expected.min(1024)) })
    }

    /// True once every announced line has been read.
    pub fn is_complete(&self) -> bool {
        self.allocations.len() == self.expected
    }

    /// Takes the next LIST line.
    pub fn line(&mut self, line: &[u8]) -> Result<(), BadReply> {
        self.bytes = self.bytes.saturating_add(line.len() + 1);
        self.within_limit()?;
        let words = listed_words(line);
        let port = words.first().and_then(|p| std::str::from_utf8(p).ok()).and_then(|p| p.parse::<u16>().ok());
        match (port, words.get(1), words.get(2)) {
            (Some(port), Some(application), Some(user)) => {
                let sent = application.len() + user.len();
                let application = String::from_utf8_lossy(application).into_owned();
                let user = String::from_utf8_lossy(user).into_owned();
                // What is kept counts, not what was sent: each byte that is not UTF-8
                // becomes U+FFFD, three bytes.
                self.bytes = self.bytes.saturating_add((application.len() + user.len()).saturating_sub(sent));
                self.within_limit()?;
                self.allocations.push(Allocation { port, application, user });
                Ok(())
            }
            _ => Err(unexpected(&words)),
        }
    }

    fn within_limit(&self) -> Result<(), BadReply> {
        if self.bytes <= MAX_LIST_BYTES {
            return Ok(());
        }
        Err(BadReply(format!(
            "is longer than {MAX_LIST_BYTES} bytes after {} of the {} allocations it announces (the most a client \
             reads of one listing)",
            self.allocations.len(),
            self.expected
        )))
    }

    pub fn into_allocations(self) -> Vec<Allocation> {
        self.allocations
    }
}

/// A reply line as the Tcl list it must be.
fn words(line: &[u8]) -> Result<Vec<Vec<u8>>, BadReply> {
    parse_list(line).map_err(|e| {
        BadReply(format!("{:?} is not a Tcl list ({e})", String::from_utf8_lossy(&line[..line.len().min(200)])))
    })
}

/// The words of a LIST line `port application user`. NSCLDAQ's server quotes them as a
/// Tcl list; FRIB's `portman` writes them as they are, joined by spaces (its names never
/// hold whitespace: it splits requests on it), so a name such as `a{b` that is not a list
/// element is split on whitespace instead.
fn listed_words(line: &[u8]) -> Vec<Vec<u8>> {
    parse_list(line)
        .unwrap_or_else(|_| line.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty()).map(<[u8]>::to_vec).collect())
}

fn unexpected(words: &[Vec<u8>]) -> BadReply {
    // Shown in an error message: a few words, shortened, are enough to recognise it.
    let shown: Vec<String> =
        words.iter().take(8).map(|w| String::from_utf8_lossy(&w[..w.len().min(200)]).into_owned()).collect();
    BadReply(format!("{shown:?} is not the protocol"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_bounded() {
        assert!(Listing::start(b"OK 65536").is_err());
        let mut listing = Listing::start(b"OK 65535").unwrap();
        let name = "n".repeat(8000);
        let line = format!("30000 {name} {name}");
        let err = (0..).find_map(|_| listing.line(line.as_bytes()).err()).unwrap();
        assert!(err.0.contains("33554432 bytes"), "{}", err.0);
    }

    #[test]
    fn names_that_are_not_utf8_count_as_what_they_become() {
        let mut listing = Listing::start(b"OK 65535").unwrap();
        let name = vec![0xffu8; 4000];
        let mut line = b"30000 ".to_vec();
        line.extend_from_slice(&name);
        line.push(b' ');
        line.extend_from_slice(&name);
        let taken = (0..65535).take_while(|_| listing.line(&line).is_ok()).count();
        // 8006 bytes sent, 24006 kept per line: the limit is met after a third as many lines.
        assert!(taken <= MAX_LIST_BYTES / 24_000, "{taken} lines of 24 KB kept");
    }

    #[test]
    fn gimme_replies() {
        assert_eq!(gimme(b"OK 30001"), Ok(Gimme::Port(30001)));
        assert!(matches!(gimme(b"FAIL - No free ports available"), Ok(Gimme::Refused(_))));
        assert!(gimme(b"OK 70000").is_err());
        assert!(gimme(b"OK {").is_err());
        assert!(gimme(b"HELLO").is_err());
    }
}
