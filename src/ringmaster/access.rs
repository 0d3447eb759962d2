//! Who may ask for a ring's data (REMOTE): a list of rules given with `--allow-remote`.
//!
//! The legacy daemon streamed any ring to anyone who asked. The default here is loopback
//! plus the networks this host is directly attached to (its interfaces' subnets, read
//! again at every request, so an interface that comes up later counts): the hosts of a
//! DAQ cluster share a network, and nothing is sent through a router unless the
//! administrator names the networks that may have it.

use std::fmt;
use std::net::IpAddr;

use nix::ifaddrs::getifaddrs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Any,
    /// 127.0.0.0/8 and ::1.
    Loopback,
    /// The subnet of any address of this host's interfaces.
    LocalSubnets,
    /// An address and a prefix length.
    Net(IpAddr, u8),
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Rule, String> {
        match text {
            "any" => return Ok(Rule::Any),
            "loopback" => return Ok(Rule::Loopback),
            "local-subnets" => return Ok(Rule::LocalSubnets),
            _ => {}
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr =
            addr.parse().map_err(|_| format!("{text:?} is not an address, a CIDR network or a keyword"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| format!("{text:?}: bad prefix length"))?
            }
        };
        Ok(Rule::Net(ip, prefix))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Any => f.write_str("any"),
            Rule::Loopback => f.write_str("loopback"),
            Rule::LocalSubnets => f.write_str("local-subnets"),
            Rule::Net(ip, prefix) => write!(f, "{ip}/{prefix}"),
        }
    }
}

/// Whether `ip` is in `net/prefix` (families must match).
fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn prefix_len(mask: IpAddr) -> u8 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones() as u8,
        IpAddr::V6(m) => u128::from(m).leading_ones() as u8,
    }
}

/// Is `ip` on the same subnet as one of this host's interface addresses?
fn on_local_subnet(ip: IpAddr) -> bool {
    let Ok(addrs) = getifaddrs() else {
        return false;
    };
    addrs.into_iter().any(|ifa| {
        let to_ip = |s: &nix::sys::socket::SockaddrStorage| {
            s.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())).or_else(|| s.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
        };
        match (ifa.address.as_ref().and_then(to_ip), ifa.netmask.as_ref().and_then(to_ip)) {
            (Some(addr), Some(mask)) => in_net(ip, addr, prefix_len(mask)),
            _ => false,
        }
    })
}

/// The rules; an empty list allows no one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub rules: Vec<Rule>,
}

impl Default for Access {
    fn default() -> Access {
        Access { rules: vec![Rule::Loopback, Rule::LocalSubnets] }
    }
}

impl Access {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.rules.iter().any(|rule| match rule {
            Rule::Any => true,
            Rule::Loopback => ip.is_loopback(),
            Rule::LocalSubnets => on_local_subnet(ip),
            Rule::Net(net, prefix) => in_net(ip, *net, *prefix),
        })
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rules.is_empty() {
            return f.write_str("none");
        }
        let words: Vec<String> = self.rules.iter().map(Rule::to_string).collect();
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rules() {
        let access = Access { rules: vec!["10.1.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()] };
        assert!(access.allows(ip("10.1.200.3")));
        assert!(!access.allows(ip("10.2.0.1")));
        assert!(access.allows(ip("fd12::1")));
        assert!(!access.allows(ip("127.0.0.1")));
        assert!(Access { rules: vec!["192.168.1.5".parse().unwrap()] }.allows(ip("192.168.1.5")));
        assert!(!Access { rules: vec!["192.168.1.5".parse().unwrap()] }.allows(ip("192.168.1.6")));
        assert!(Access { rules: vec![Rule::Any] }.allows(ip("8.8.8.8")));
        assert!(!Access { rules: vec![] }.allows(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "host", "10.0.0.0/", "::/129"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
        assert_eq!("0.0.0.0/0".parse::<Rule>().unwrap(), Rule::Net(ip("0.0.0.0"), 0));
        assert!(in_net(ip("1.2.3.4"), ip("0.0.0.0"), 0));
    }

    #[test]
    fn default_allows_loopback_and_this_hosts_subnets_only() {
        let access = Access::default();
        assert!(access.allows(ip("127.0.0.1")));
        assert!(access.allows(ip("127.0.0.2")));
        assert!(access.allows(ip("::1")));
        // Documentation space (this CI host itself sits on 192.0.2.0/24, so not that one).
        assert!(!access.allows(ip("203.0.113.7")));
        assert!(!access.allows(ip("2001:db8::7")));
    }
}
