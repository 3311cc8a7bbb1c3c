//! IPv4 addresses and CIDR ranges as Databricks IP access lists take them.
//!
//! Databricks IP access lists accept IPv4 addresses and CIDR ranges only, and count a CIDR as one
//! value against the 1000-value quota. Values are normalised (`203.0.113.7/32` → `203.0.113.7`,
//! host bits of a range cleared) so that "is it already on the list" compares like with like.
//! Nothing here does I/O.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The broadest range floodgate will put on a block list. A shorter prefix is almost always a
/// typo or an attacker-controlled alert value, and would lock out a large part of the internet.
pub const MIN_BLOCK_PREFIX: u8 = 16;

/// An IPv4 address or CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
    }

    fn first(&self) -> u32 {
        u32::from(self.addr) & Self::mask(self.prefix)
    }

    fn last(&self) -> u32 {
        self.first() | !Self::mask(self.prefix)
    }

    /// True when the two ranges share at least one address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    pub fn contains_addr(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        self.first() <= v && v <= self.last()
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == 32 {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", Ipv4Addr::from(self.first()), self.prefix)
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                let prefix: u8 = p
                    .parse()
                    .ok()
                    .filter(|p| *p <= 32)
                    .ok_or_else(|| format!("{s:?} has an invalid prefix length (expected /0 to /32)"))?;
                (a, prefix)
            }
            None => (s, 32),
        };
        if addr.contains(':') {
            return Err(format!(
                "{s:?} is an IPv6 address; Databricks IP access lists accept IPv4 addresses and ranges only"
            ));
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{s:?} is not an IPv4 address or CIDR range"))?;
        let net = Ipv4Net { addr, prefix };
        Ok(Ipv4Net { addr: Ipv4Addr::from(net.first()), prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        assert_eq!("203.0.113.7/32".parse::<Ipv4Net>().unwrap().to_string(), "203.0.113.7");
        assert_eq!("203.0.113.7/24".parse::<Ipv4Net>().unwrap().to_string(), "203.0.113.0/24");
        assert_eq!(" 10.0.0.1 ".parse::<Ipv4Net>().unwrap().to_string(), "10.0.0.1");
        assert!("2001:db8::1".parse::<Ipv4Net>().unwrap_err().contains("IPv6"));
        assert!("10.0.0.1/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0".parse::<Ipv4Net>().is_err());
        assert!("'; DROP".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn overlap_and_containment() {
        let a: Ipv4Net = "192.0.2.0/24".parse().unwrap();
        let b: Ipv4Net = "192.0.2.50".parse().unwrap();
        let c: Ipv4Net = "198.51.100.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(a.contains_addr("192.0.2.255".parse().unwrap()));
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.overlaps(&c));
    }
}
