//! Misbehaviour bans, persisted as JSON in `<netdir>/banlist.json`. An entry bans a subnet
//! (`1.2.3.0/24`, a single address as `/32` or `/128`: `setban`, or automatic bans of
//! non-loopback peers) or a peer's Noise node key (`key:<hex>`, automatic bans; loopback peers
//! share one IP, so they are banned by key only).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File of the ban list.
pub const BANLIST_FILE: &str = "banlist.json";
/// Default ban duration (24 hours).
pub const DEFAULT_BAN_SECS: u64 = 24 * 3600;
/// Most entries kept.
pub const MAX_BANS: usize = 10_000;

/// An IP subnet: a network address (host bits zero) and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// Parses `IP`, `IP/prefix` or `IP/netmask` (a contiguous netmask), as Bitcoin Core's
    /// `setban` does; the host bits are cleared.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("Invalid IP/Subnet: {text}");
        let (host, mask) = match text.split_once('/') {
            Some((h, m)) => (h, Some(m)),
            None => (text, None),
        };
        let ip: IpAddr = host.parse().map_err(|_| invalid())?;
        let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match mask {
            None => bits,
            Some(m) => match m.parse::<u8>() {
                Ok(p) if p <= bits => p,
                Ok(_) => return Err(invalid()),
                Err(_) => {
                    let mask: IpAddr = m.parse().map_err(|_| invalid())?;
                    if mask.is_ipv4() != ip.is_ipv4() {
                        return Err(invalid());
                    }
                    let value = to_u128(mask) << (128 - u32::from(bits));
                    let ones = value.leading_ones();
                    if value.checked_shl(ones).unwrap_or(0) != 0 {
                        return Err(invalid());
                    }
                    ones as u8
                }
            },
        };
        let network = from_u128(to_u128(ip) & mask_of(prefix, bits), ip.is_ipv4());
        Ok(Self { network, prefix })
    }

    /// Whether `ip` lies in the subnet (an IPv4 address is never in an IPv6 subnet).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        to_u128(ip) & mask_of(self.prefix, bits) == to_u128(self.network)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The address as an integer in the low `32` or `128` bits.
fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(value: u128, v4: bool) -> IpAddr {
    if v4 { IpAddr::V4((value as u32).into()) } else { IpAddr::V6(value.into()) }
}

/// The mask of a `prefix`-bit network in an address of `bits` bits (in the low bits).
fn mask_of(prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
    (all << (bits - prefix.min(bits))) & all
}

/// The ban-list key of a `setban` target: `key:<64 hex>` for a node key, else the canonical
/// subnet.
pub fn ban_key(target: &str) -> Result<String, String> {
    if let Some(k) = target.strip_prefix("key:") {
        let ok = k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit());
        return if ok {
            Ok(format!("key:{}", k.to_ascii_lowercase()))
        } else {
            Err(format!("Invalid node key: {target}"))
        };
    }
    Ok(Subnet::parse(target)?.to_string())
}

/// The ban-list key of one host (`1.2.3.4/32`; a non-IP host such as an onion name as is).
pub fn host_key(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => Subnet { network: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }.to_string(),
        Err(_) => host.to_string(),
    }
}

/// One ban.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEntry {
    /// When the ban was created (Unix seconds).
    pub created: u64,
    /// When it ends (Unix seconds).
    pub until: u64,
    /// Why.
    pub reason: String,
}

/// The ban list.
pub struct BanList {
    path: Option<PathBuf>,
    entries: BTreeMap<String, BanEntry>,
}

impl BanList {
    /// Loads `<netdir>/banlist.json`.
    pub fn load(netdir: Option<&Path>) -> Self {
        let path = netdir.map(|d| d.join(BANLIST_FILE));
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { path, entries }
    }

    fn save(&self) {
        if let Some(p) = &self.path {
            if let Ok(b) = serde_json::to_vec_pretty(&self.entries) {
                let tmp = p.with_extension("json.tmp");
                if std::fs::write(&tmp, b).is_ok() {
                    let _ = std::fs::rename(&tmp, p);
                }
            }
        }
    }

    /// Bans `key` (an IP or `key:<hex>`) until `until`.
    pub fn ban(&mut self, key: String, now: u64, until: u64, reason: &str) {
        if self.entries.len() >= MAX_BANS && !self.entries.contains_key(&key) {
            self.sweep(now);
            if self.entries.len() >= MAX_BANS {
                return;
            }
        }
        self.entries.insert(key, BanEntry { created: now, until, reason: reason.to_string() });
        self.save();
    }

    /// Lifts a ban; whether there was one.
    pub fn unban(&mut self, key: &str) -> bool {
        let had = self.entries.remove(key).is_some();
        self.save();
        had
    }

    /// Removes every ban.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.save();
    }

    /// Whether `key` is banned now.
    pub fn is_banned(&self, key: &str, now: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.until > now)
    }

    /// Whether `host` (an IP address, or another host name such as an onion address) is banned
    /// now: by a subnet that contains it, or by its exact name.
    pub fn is_banned_host(&self, host: &str, now: u64) -> bool {
        let Ok(ip) = host.parse::<IpAddr>() else { return self.is_banned(host, now) };
        self.entries
            .iter()
            .any(|(k, e)| e.until > now && Subnet::parse(k).is_ok_and(|net| net.contains(ip)))
    }

    /// `setban target add|remove (bantime) (absolute)` as Bitcoin Core does it: `target` is an
    /// IP, a subnet (`/prefix` or `/netmask`) or `key:<hex>`; `bantime` is seconds from `now`
    /// (default [`DEFAULT_BAN_SECS`], saturating: a huge value bans for good) or, with
    /// `absolute`, the Unix time the ban ends, which must be in the future. Returns the
    /// canonical key banned or unbanned.
    pub fn set_ban(
        &mut self,
        target: &str,
        add: bool,
        bantime: Option<u64>,
        absolute: bool,
        now: u64,
    ) -> Result<String, String> {
        let key = ban_key(target)?;
        if !add {
            return if self.unban(&key) {
                Ok(key)
            } else {
                Err("Unban failed. Requested address/subnet was not previously manually banned."
                    .into())
            };
        }
        if self.is_banned(&key, now) {
            return Err("IP/Subnet already banned".into());
        }
        let until = match (absolute, bantime.filter(|t| *t > 0)) {
            (true, Some(t)) if t > now => t,
            (true, _) => return Err("Error: Absolute timestamp is in the past".into()),
            (false, t) => now.saturating_add(t.unwrap_or(DEFAULT_BAN_SECS)),
        };
        self.ban(key.clone(), now, until, "manually added");
        Ok(key)
    }

    /// Drops expired bans.
    pub fn sweep(&mut self, now: u64) {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.until > now);
        if self.entries.len() != before {
            self.save();
        }
    }

    /// All current bans.
    pub fn list(&self, now: u64) -> Vec<(String, BanEntry)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_parse_canonically_and_contain_their_hosts() {
        let cases = [
            ("1.2.3.4", "1.2.3.4/32"),
            ("1.2.3.4/24", "1.2.3.0/24"),
            ("1.2.3.4/255.255.255.0", "1.2.3.0/24"),
            ("10.9.8.7/8", "10.0.0.0/8"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("2001:db8::1/32", "2001:db8::/32"),
        ];
        for (input, canonical) in cases {
            assert_eq!(Subnet::parse(input).unwrap().to_string(), canonical, "{input}");
        }
        for bad in ["1.2.3.4/33", "1.2.3.4/255.0.255.0", "::1/129", "1.2.3", "1.2.3.4/", "x/8", ""]
        {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
        let net = Subnet::parse("1.2.3.0/24").unwrap();
        assert!(net.contains(ip("1.2.3.0")) && net.contains(ip("1.2.3.255")));
        assert!(!net.contains(ip("1.2.4.0")) && !net.contains(ip("::ffff:1.2.3.4")));
        assert!(Subnet::parse("::/0").unwrap().contains(ip("2001:db8::5")));
    }

    /// `setban` as Bitcoin Core does it: a huge relative time bans (saturating, not wrapping),
    /// `absolute` takes a timestamp, and a `/24` bans the whole subnet.
    #[test]
    fn set_ban_follows_core() {
        let mut b = BanList::load(None);
        let now = 1_000;
        // Relative, huge: saturates to "forever" instead of wrapping into the past.
        let e = b.set_ban("10.0.0.1", true, Some(u64::MAX), false, now).unwrap();
        assert_eq!(e, "10.0.0.1/32");
        assert!(b.is_banned_host("10.0.0.1", now + 1_000_000_000));
        // Default time when none is given.
        b.set_ban("10.0.0.2", true, None, false, now).unwrap();
        assert!(b.is_banned_host("10.0.0.2", now + DEFAULT_BAN_SECS - 1));
        assert!(!b.is_banned_host("10.0.0.2", now + DEFAULT_BAN_SECS));
        // Absolute: until exactly that time; a time in the past is an error.
        b.set_ban("10.0.0.3", true, Some(now + 50), true, now).unwrap();
        assert!(b.is_banned_host("10.0.0.3", now + 49) && !b.is_banned_host("10.0.0.3", now + 50));
        assert!(b.set_ban("10.0.0.4", true, Some(now - 1), true, now).is_err());
        // A /24 bans every host in it, and is listed as the subnet.
        b.set_ban("192.168.7.99/24", true, None, false, now).unwrap();
        assert!(b.is_banned_host("192.168.7.1", now) && b.is_banned_host("192.168.7.254", now));
        assert!(!b.is_banned_host("192.168.8.1", now));
        assert!(b.list(now).iter().any(|(k, _)| k == "192.168.7.0/24"));
        // Already banned, then removed by any spelling of the same subnet.
        assert!(b.set_ban("192.168.7.0/255.255.255.0", true, None, false, now).is_err());
        b.set_ban("192.168.7.5/24", false, None, false, now).unwrap();
        assert!(!b.is_banned_host("192.168.7.1", now));
        assert!(b.set_ban("192.168.7.0/24", false, None, false, now).is_err());
        // Node keys.
        let key = format!("key:{}", "ab".repeat(32));
        assert_eq!(b.set_ban(&key, true, None, false, now).unwrap(), key);
        assert!(b.is_banned(&key, now));
        assert!(b.set_ban("key:abcd", true, None, false, now).is_err());
        assert!(b.set_ban("not-an-address", true, None, false, now).is_err());
    }

    #[test]
    fn persisted_and_expiring() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = BanList::load(Some(dir.path()));
        b.ban("10.0.0.1".into(), 100, 200, "manual");
        let b2 = BanList::load(Some(dir.path()));
        assert!(b2.is_banned("10.0.0.1", 150));
        assert!(!b2.is_banned("10.0.0.1", 200));
        assert_eq!(b2.list(150).len(), 1);
    }
}
