//! The pool of ports the daemon hands out: highest first, a freed port the next one out.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// An inclusive range of TCP ports, validated (the legacy server handed out 65537).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    /// The legacy default, 30001-31000.
    pub const DEFAULT: PortRange = PortRange { low: 30001, high: 31000 };

    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

impl FromStr for PortRange {
    type Err = String;

    /// `low-high`; a reversed range is swapped, as the legacy server did.
    fn from_str(text: &str) -> Result<Self, String> {
        let (low, high) = text.split_once('-').ok_or_else(|| format!("port range {text:?} is not low-high"))?;
        let port = |s: &str| -> Result<u16, String> {
            match s.trim().parse::<u32>() {
                Ok(n @ 1..=65535) => Ok(n as u16),
                _ => Err(format!("{s:?} in port range {text:?} is not a port number (1-65535)")),
            }
        };
        let (a, b) = (port(low)?, port(high)?);
        Ok(PortRange { low: a.min(b), high: a.max(b) })
    }
}

/// Who holds an allocated port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation<K> {
    pub port: u16,
    pub application: Vec<u8>,
    pub user: Vec<u8>,
    /// The holder (the daemon uses its connection key).
    pub owner: K,
}

/// Free ports as a stack (top = next out) and the allocations in the order the legacy
/// server listed them: by the port's decimal string ("10000" before "9999").
///
/// That order is fixed by the range, so it is computed once as a rank per port; the
/// allocations are kept by rank and come out already sorted, which keeps the rewrite of
/// ports.txt on every change free of sorting.
#[derive(Debug)]
pub struct Pool<K> {
    low: u16,
    free: Vec<u16>,
    /// `rank[port - low]`: the port's position in decimal-string order.
    rank: Vec<u32>,
    used: BTreeMap<u32, Allocation<K>>,
}

impl<K: Copy + Eq> Pool<K> {
    pub fn new(range: PortRange) -> Self {
        let mut by_string: Vec<u16> = (range.low..=range.high).collect();
        by_string.sort_by_cached_key(|port| port.to_string());
        let mut rank = vec![0u32; by_string.len()];
        for (position, port) in by_string.iter().enumerate() {
            rank[usize::from(port - range.low)] = position as u32;
        }
        // Ascending, so the first pop is the highest port, as in the legacy server.
        Pool { low: range.low, free: (range.low..=range.high).collect(), rank, used: BTreeMap::new() }
    }

    fn rank_of(&self, port: u16) -> Option<u32> {
        port.checked_sub(self.low).and_then(|i| self.rank.get(usize::from(i))).copied()
    }

    /// Takes the next free port for `owner` that `usable` accepts, else the next free
    /// port; `None` when none is free. Ports `usable` refuses (held by someone outside
    /// these books) stay free, in their place, for when they are let go. When every free
    /// port is refused one is handed out all the same, as the legacy daemon would: the
    /// one listening there may be the asker itself (a server registering again after a
    /// port manager restart, still listening on the port it had).
    pub fn allocate(
        &mut self,
        application: &[u8],
        user: &[u8],
        owner: K,
        mut usable: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let index = self.free.iter().rposition(|&port| usable(port)).or_else(|| self.free.len().checked_sub(1))?;
        let port = self.free.remove(index);
        let rank = self.rank_of(port)?;
        let allocation = Allocation { port, application: application.to_vec(), user: user.to_vec(), owner };
        self.used.insert(rank, allocation);
        Some(port)
    }

    /// Returns `port` to the pool (it becomes the next one handed out).
    pub fn release(&mut self, port: u16) -> Option<Allocation<K>> {
        let allocation = self.used.remove(&self.rank_of(port)?)?;
        self.free.push(port);
        Some(allocation)
    }

    /// The allocations, sorted by the decimal string of the port.
    pub fn allocations(&self) -> impl Iterator<Item = &Allocation<K>> {
        self.used.values()
    }

    pub fn allocated(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_validated_and_swapped() {
        assert_eq!("30001-31000".parse(), Ok(PortRange::DEFAULT));
        assert_eq!("31000-30001".parse(), Ok(PortRange::DEFAULT));
        assert_eq!("5-5".parse(), Ok(PortRange { low: 5, high: 5 }));
        for bad in ["65000-65537", "0-10", "10", "a-b", "-5", "", "1-2-3"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn highest_first_then_lifo() {
        let mut pool = Pool::new(PortRange { low: 100, high: 103 });
        assert_eq!(pool.allocate(b"a", b"u", 1, |_| true), Some(103));
        assert_eq!(pool.allocate(b"a", b"u", 1, |_| true), Some(102));
        assert_eq!(pool.allocate(b"b", b"u", 2, |_| true), Some(101));
        assert_eq!(pool.release(102).map(|a| a.owner), Some(1));
        assert_eq!(pool.release(102), None);
        assert_eq!(pool.allocate(b"c", b"u", 3, |_| true), Some(102));
        assert_eq!(pool.allocate(b"c", b"u", 3, |_| true), Some(100));
        assert_eq!(pool.allocate(b"c", b"u", 3, |_| true), None);
        assert_eq!(pool.allocated(), 4);
    }

    #[test]
    fn ports_in_use_elsewhere_are_skipped_and_stay_free() {
        let mut pool = Pool::new(PortRange { low: 100, high: 103 });
        let mut busy = vec![103, 101];
        assert_eq!(pool.allocate(b"a", b"u", 1, |p| !busy.contains(&p)), Some(102));
        assert_eq!(pool.allocate(b"a", b"u", 1, |p| !busy.contains(&p)), Some(100));
        busy.clear();
        assert_eq!(pool.allocate(b"a", b"u", 1, |_| true), Some(103), "let go: the highest again");
        assert_eq!(pool.release(100).map(|a| a.port), Some(100));
        assert_eq!(pool.allocate(b"a", b"u", 1, |_| true), Some(100), "a freed port is still next out");
        assert_eq!(pool.allocate(b"a", b"u", 1, |_| true), Some(101));
    }

    #[test]
    fn when_every_free_port_is_in_use_one_is_handed_out_all_the_same() {
        // The listener may be the asker itself, registering again with the port it has.
        let mut pool = Pool::new(PortRange { low: 100, high: 101 });
        assert_eq!(pool.allocate(b"a", b"u", 1, |p| p == 100), Some(100));
        assert_eq!(pool.allocate(b"a", b"u", 1, |_| false), Some(101), "only a busy port left");
        assert_eq!(pool.allocate(b"a", b"u", 1, |_| false), None, "none free");
    }

    #[test]
    fn allocations_come_out_in_string_order() {
        let mut pool = Pool::new(PortRange { low: 9998, high: 10001 });
        for _ in 0..4 {
            pool.allocate(b"a", b"u", 0, |_| true);
        }
        let ports: Vec<u16> = pool.allocations().map(|a| a.port).collect();
        assert_eq!(ports, [10000, 10001, 9998, 9999]);
        assert_eq!(pool.release(9000), None);
    }
}
