//! What the daemons count connections from another host by: its network, not its address.

use std::net::IpAddr;

/// What one host can use: an IPv4 address, or an IPv6 /64 (a host is given a whole
/// /64 and may take any address in it, a new one per connection if it likes), for an
/// address in its canonical form (an IPv4-mapped IPv6 address is its IPv4 address).
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_is_its_64_and_an_ipv4_host_its_address() {
        let net = |s: &str| network_of(s.parse().unwrap()).to_string();
        assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(net("2001:db8:1:2::ffff"), "2001:db8:1:2::");
        assert_eq!(net("2001:db8:1:3::1"), "2001:db8:1:3::");
        assert_eq!(net("10.1.2.3"), "10.1.2.3");
        assert_eq!(net("::ffff:10.1.2.3"), "10.1.2.3");
    }
}
