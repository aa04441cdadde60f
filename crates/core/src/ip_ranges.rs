//! Address ranges (CIDR, IPv4 and IPv6) a service key may be used from. Parsed strictly: a
//! range whose address has bits set past its prefix (`10.0.0.1/8`) is refused rather than
//! guessed at, since it usually means a typo. A bare address is a one-address range.

use std::net::IpAddr;

/// At most this many ranges per key, and this many characters in the field.
pub const MAX_RANGES: usize = 32;
pub const MAX_CHARS: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let shown: String = raw.chars().take(60).collect();
        let bad = |why: &str| format!("{shown} is not an address range: {why}.");
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| bad("write it as 203.0.113.0/24 or 2001:db8::/32"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(&format!("the prefix length must be 0 to {max}")))?,
            Some(_) => return Err(bad("the prefix length must be a number")),
        };
        let range = Self { network, prefix };
        if range.masked(network) != network {
            return Err(bad(&format!(
                "the address has bits set past /{prefix} (did you mean {}/{prefix}?)",
                range.masked(network)
            )));
        }
        Ok(range)
    }

    /// `address` with every bit past the prefix cleared.
    fn masked(&self, address: IpAddr) -> IpAddr {
        match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let address = address.to_canonical();
        address.is_ipv4() == self.network.is_ipv4() && self.masked(address) == self.network
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A non-empty list of ranges; an address is allowed when any of them contains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRanges(Vec<IpRange>);

impl IpRanges {
    /// Ranges separated by commas, spaces or line breaks; `Ok(None)` for an empty field
    /// (no restriction). The message says what to fix.
    pub fn parse_list(raw: &str) -> Result<Option<Self>, String> {
        if raw.chars().count() > MAX_CHARS {
            return Err(format!(
                "The allowed addresses are too long (at most {MAX_CHARS} characters)."
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err("The allowed addresses contain a control character.".into());
        }
        let mut ranges = Vec::new();
        for item in raw
            .split([',', ' ', '\n', '\r', '\t'])
            .filter(|s| !s.is_empty())
        {
            let range = IpRange::parse(item)?;
            if !ranges.contains(&range) {
                ranges.push(range);
            }
        }
        if ranges.len() > MAX_RANGES {
            return Err(format!("At most {MAX_RANGES} address ranges per key."));
        }
        Ok((!ranges.is_empty()).then_some(Self(ranges)))
    }

    /// The stored form (normalised, space-separated), read back with `parse_list`.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    #[test]
    fn ranges_match_their_addresses_only() {
        let ranges = IpRanges::parse_list("10.1.0.0/16, 2001:db8::/32\n192.0.2.7")
            .unwrap()
            .unwrap();
        assert_eq!(ranges.to_stored(), "10.1.0.0/16 2001:db8::/32 192.0.2.7/32");
        for allowed in [
            "10.1.255.3",
            "2001:db8:1::9",
            "192.0.2.7",
            "::ffff:10.1.2.3",
        ] {
            assert!(ranges.contains(ip(allowed)), "{allowed}");
        }
        for refused in ["10.2.0.1", "192.0.2.8", "2001:db9::1", "::1", "127.0.0.1"] {
            assert!(!ranges.contains(ip(refused)), "{refused}");
        }
        let everything = IpRanges::parse_list("0.0.0.0/0 ::/0").unwrap().unwrap();
        assert!(everything.contains(ip("8.8.8.8")) && everything.contains(ip("::1")));
        assert_eq!(IpRanges::parse_list("  \n ").unwrap(), None);
    }

    #[test]
    fn bad_ranges_are_refused_with_what_to_fix() {
        let cases = [
            ("10.0.0.1/8", "bits set past /8 (did you mean 10.0.0.0/8?)"),
            ("10.0.0.0/33", "the prefix length must be 0 to 32"),
            ("2001:db8::/129", "the prefix length must be 0 to 128"),
            ("10.0.0.0/", "the prefix length must be a number"),
            ("10.0.0.0/+8", "the prefix length must be a number"),
            ("10.0.0.0/08x", "the prefix length must be a number"),
            ("10.0.0/8", "write it as"),
            ("example.com", "write it as"),
            ("10.0.0.0/8/8", "the prefix length must be a number"),
        ];
        for (raw, expected) in cases {
            let err = IpRanges::parse_list(raw).unwrap_err();
            assert!(err.contains(expected), "{raw}: {err}");
        }
        assert!(IpRanges::parse_list("10.0.0.0/8\0").is_err());
        let many: Vec<String> = (0..33).map(|i| format!("10.0.{i}.0/24")).collect();
        assert!(IpRanges::parse_list(&many.join(" ")).is_err());
    }
}
