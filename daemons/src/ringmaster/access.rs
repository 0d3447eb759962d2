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

/// Addresses no router forwards from the Internet: RFC 1918 and IPv4 link-local
/// (169.254/16), and IPv6 unique-local (fc00::/7). IPv6 link-local (fe80::/10) is not among
/// them: every interface has such an address, on whatever link it is plugged into.
fn private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xfe00 == 0xfc00,
    }
}

/// Is `ip` a private address on the same subnet as one of `interfaces` (address, prefix)
/// that is private too? A public interface's subnet is a provider's network or a shared
/// segment, not the experiment's: it must be named with an explicit rule.
fn on_private_subnet(ip: IpAddr, interfaces: &[(IpAddr, u8)]) -> bool {
    let ip = ip.to_canonical();
    private(ip) && interfaces.iter().any(|&(addr, prefix)| private(addr) && in_net(ip, addr, prefix))
}

/// This host's interface addresses and their prefix lengths.
fn interfaces() -> Vec<(IpAddr, u8)> {
    let Ok(addrs) = getifaddrs() else {
        return Vec::new();
    };
    let to_ip = |s: &nix::sys::socket::SockaddrStorage| {
        s.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())).or_else(|| s.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
    };
    addrs
        .filter_map(|ifa| {
            Some((ifa.address.as_ref().and_then(to_ip)?, prefix_len(ifa.netmask.as_ref().and_then(to_ip)?)))
        })
        .collect()
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
            Rule::LocalSubnets => on_private_subnet(ip, &interfaces()),
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
    fn local_subnets_are_the_private_ones_only() {
        let interfaces = [
            (ip("203.0.113.5"), 24),
            (ip("10.1.2.3"), 16),
            (ip("169.254.1.1"), 16),
            (ip("fe80::1"), 64),
            (ip("fd00::1"), 64),
            (ip("2001:db8::1"), 64),
            (ip("192.168.7.1"), 8),
        ];
        for allowed in ["10.1.9.9", "169.254.3.3", "fd00::2", "::ffff:10.1.9.9", "192.168.99.1"] {
            assert!(on_private_subnet(ip(allowed), &interfaces), "{allowed}");
        }
        // A public interface's neighbours, IPv6 link-local, another private network, and
        // a public address that a silly netmask puts on a private interface's subnet.
        for refused in ["203.0.113.7", "fe80::2", "2001:db8::2", "10.2.0.1", "8.8.8.8", "192.0.2.7", "172.16.0.1"] {
            assert!(!on_private_subnet(ip(refused), &interfaces), "{refused}");
        }
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
