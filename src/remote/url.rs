//! `tcp://host[:port]/ring` names and the proxy rings they map to.
//!
//! A host can be spelt many ways (short name, fully qualified name, an address, any
//! case); everything that decides "which proxy, which feeder" uses the canonical name
//! (`crate::hosts`), so every spelling of one host shares one proxy ring and one network
//! stream.

use crate::error::{Error, Result};

const SCHEME: &str = "tcp://";

/// A ring on some host, as a URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingUrl {
    pub host: String,
    /// The port manager port of that host, when the URL gives one.
    pub portmgr_port: Option<u16>,
    pub ring: String,
}

/// `Some` when `name` is a `tcp://` URL (the ring part validated), `None` for a plain
/// ring name.
pub fn parse(name: &str) -> Result<Option<RingUrl>> {
    let Some(rest) = strip_scheme(name) else { return Ok(None) };
    let bad = |why: &str| {
        Err(Error::new(libc::EINVAL, format!("invalid ring URL {name:?}: {why} (expected tcp://host/ring)")))
    };
    let Some((authority, ring)) = rest.split_once('/') else { return bad("no ring name after the host") };
    if ring.is_empty() {
        return bad("the ring name is empty");
    }
    crate::ring::validate_name(ring)?;
    let (host, port) = split_port(authority);
    if host.is_empty() {
        return bad("the host is empty");
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        return bad("the host contains whitespace or control characters");
    }
    let portmgr_port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => return bad("the port is not a port number"),
        },
    };
    Ok(Some(RingUrl { host: host.to_string(), portmgr_port, ring: ring.to_string() }))
}

fn strip_scheme(name: &str) -> Option<&str> {
    let head = name.get(..SCHEME.len())?;
    head.eq_ignore_ascii_case(SCHEME).then(|| &name[SCHEME.len()..])
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; a bare IPv6 address has no port.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(inner) = authority.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// The proxy ring that mirrors `ring` of `canonical_host` here, named as NSCLDAQ names it.
pub fn proxy_name(canonical_host: &str, ring: &str) -> Result<String> {
    let name = format!("{canonical_host}.{ring}");
    crate::ring::validate_name(&name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse("ring").unwrap(), None);
        let u = parse("tcp://daq1.lab/fox").unwrap().unwrap();
        assert_eq!((u.host.as_str(), u.portmgr_port, u.ring.as_str()), ("daq1.lab", None, "fox"));
        let u = parse("TCP://daq1:30001/fox").unwrap().unwrap();
        assert_eq!((u.host.as_str(), u.portmgr_port), ("daq1", Some(30001)));
        let u = parse("tcp://[::1]:7/fox").unwrap().unwrap();
        assert_eq!((u.host.as_str(), u.portmgr_port), ("::1", Some(7)));
        let u = parse("tcp://::1/fox").unwrap().unwrap();
        assert_eq!((u.host.as_str(), u.portmgr_port), ("::1", None));
        for bad in [
            "tcp://",
            "tcp://host",
            "tcp://host/",
            "tcp:///ring",
            "tcp://host:x/ring",
            "tcp://host:0/r",
            "tcp://h/a/b",
            "tcp://h o/r",
        ] {
            assert_eq!(parse(bad).unwrap_err().errno(), libc::EINVAL, "{bad}");
        }
    }

    #[test]
    fn proxy_names() {
        assert_eq!(proxy_name("daq1.lab.org", "fox").unwrap(), "daq1.lab.org.fox");
    }
}
