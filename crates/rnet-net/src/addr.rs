//! Network addresses (IPv4, IPv6, Tor v3 onion, BIP155 style) and the address manager: a "new"
//! table of heard-of addresses and a "tried" table of addresses we connected to, persisted as
//! JSON in `<netdir>/peers.json`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use rand::seq::IteratorRandom;
use rnet_primitives::encode::write_var_bytes;
use rnet_primitives::{DecodeError, Reader};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

/// File of the address manager.
pub const PEERS_FILE: &str = "peers.json";
/// Most entries of the "new" table.
pub const MAX_NEW: usize = 4096;
/// Most entries of the "tried" table.
pub const MAX_TRIED: usize = 1024;

/// A host: an IP address or a Tor v3 service key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetAddr {
    /// IPv4.
    V4([u8; 4]),
    /// IPv6.
    V6([u8; 16]),
    /// Tor v3 onion service (ed25519 public key).
    TorV3([u8; 32]),
}

impl NetAddr {
    /// Whether this is an onion address.
    pub fn is_onion(&self) -> bool {
        matches!(self, NetAddr::TorV3(_))
    }

    /// The IP, if any.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            NetAddr::V4(a) => Some(IpAddr::from(*a)),
            NetAddr::V6(a) => Some(IpAddr::from(*a)),
            NetAddr::TorV3(_) => None,
        }
    }

    /// The host as text (`1.2.3.4`, `::1`, `xxx.onion`).
    pub fn host(&self) -> String {
        match self {
            NetAddr::TorV3(k) => onion_from_key(k),
            other => other.ip().map(|i| i.to_string()).unwrap_or_default(),
        }
    }
}

impl From<IpAddr> for NetAddr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => NetAddr::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => NetAddr::V4(v4.octets()),
                None => NetAddr::V6(a.octets()),
            },
        }
    }
}

/// A host and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// Host.
    pub addr: NetAddr,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            NetAddr::V6(_) => write!(f, "[{}]:{}", self.addr.host(), self.port),
            _ => write!(f, "{}:{}", self.addr.host(), self.port),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(s: SocketAddr) -> Self {
        Self { addr: s.ip().into(), port: s.port() }
    }
}

impl PeerAddr {
    /// Parses `IP:PORT`, `[IPv6]:PORT` or `name.onion:PORT` (`default_port` when no port).
    pub fn parse(s: &str, default_port: u16) -> Option<Self> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Some(sa.into());
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Self { addr: ip.into(), port: default_port });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (s, default_port),
        };
        if let Some(key) = onion_to_key(host) {
            return Some(Self { addr: NetAddr::TorV3(key), port });
        }
        None
    }

    /// The socket address, for IP hosts.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.addr.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

fn onion_checksum(key: &[u8; 32]) -> [u8; 2] {
    let mut h = Sha3_256::new();
    h.update(b".onion checksum");
    h.update(key);
    h.update([3u8]);
    let d = h.finalize();
    [d[0], d[1]]
}

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The `….onion` name of a Tor v3 key.
pub fn onion_from_key(key: &[u8; 32]) -> String {
    let mut data = key.to_vec();
    data.extend_from_slice(&onion_checksum(key));
    data.push(3);
    let mut out = String::with_capacity(62);
    let mut buf = 0u64;
    let mut bits = 0;
    for b in data {
        buf = (buf << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((buf >> bits) & 31) as usize] as char);
        }
    }
    out + ".onion"
}

/// The key of a Tor v3 `….onion` name (checksum and version verified).
pub fn onion_to_key(name: &str) -> Option<[u8; 32]> {
    let label = name.strip_suffix(".onion")?;
    if label.len() != 56 {
        return None;
    }
    let mut bytes = Vec::with_capacity(35);
    let mut buf = 0u64;
    let mut bits = 0;
    for c in label.bytes() {
        let v = B32.iter().position(|&x| x == c.to_ascii_lowercase())? as u64;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buf >> bits) as u8);
        }
    }
    if bytes.len() != 35 || bytes[34] != 3 {
        return None;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[..32]);
    (onion_checksum(&key) == [bytes[32], bytes[33]]).then_some(key)
}

/// One entry of an `addr` message (BIP155 addrv2 style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrEntry {
    /// Last seen (Unix seconds).
    pub time: u32,
    /// Service bits.
    pub services: u64,
    /// Host.
    pub addr: NetAddr,
    /// Port.
    pub port: u16,
}

impl AddrEntry {
    /// Smallest encoding.
    pub const MIN_SIZE: usize = 4 + 8 + 1 + 1 + 4 + 2;

    /// Appends the encoding: time u32, services u64, network id u8 (1 IPv4, 2 IPv6, 4 TorV3),
    /// var-bytes address, port u16 (big-endian, as in BIP155).
    pub fn encode(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.time.to_le_bytes());
        w.extend_from_slice(&self.services.to_le_bytes());
        match &self.addr {
            NetAddr::V4(a) => {
                w.push(1);
                write_var_bytes(w, a);
            }
            NetAddr::V6(a) => {
                w.push(2);
                write_var_bytes(w, a);
            }
            NetAddr::TorV3(a) => {
                w.push(4);
                write_var_bytes(w, a);
            }
        }
        w.extend_from_slice(&self.port.to_be_bytes());
    }

    /// Decodes one entry (unknown networks and wrong lengths are errors).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let time = r.read_u32()?;
        let services = r.read_u64()?;
        let net = r.read_u8()?;
        let bytes = r.read_var_bytes(512)?;
        let addr = match (net, bytes.len()) {
            (1, 4) => NetAddr::V4(bytes.try_into().map_err(|_| DecodeError::InvalidValue("v4"))?),
            (2, 16) => NetAddr::V6(bytes.try_into().map_err(|_| DecodeError::InvalidValue("v6"))?),
            (4, 32) => {
                NetAddr::TorV3(bytes.try_into().map_err(|_| DecodeError::InvalidValue("torv3"))?)
            }
            _ => return Err(DecodeError::InvalidValue("address network")),
        };
        let port = u16::from_be_bytes(r.read_array()?);
        Ok(Self { time, services, addr, port })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Info {
    last_seen: u64,
    attempts: u32,
    last_try: u64,
    last_success: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Tables {
    new: HashMap<String, Info>,
    tried: HashMap<String, Info>,
}

/// The address manager.
pub struct AddrMan {
    path: Option<PathBuf>,
    tables: Tables,
}

impl AddrMan {
    /// Loads `<netdir>/peers.json` (a missing or unreadable file gives empty tables).
    pub fn load(netdir: Option<&Path>) -> Self {
        let path = netdir.map(|d| d.join(PEERS_FILE));
        let tables = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Tables>(&b).ok())
            .unwrap_or_default();
        Self { path, tables }
    }

    /// Writes the tables.
    pub fn save(&self) {
        if let Some(p) = &self.path {
            if let Ok(b) = serde_json::to_vec(&self.tables) {
                let tmp = p.with_extension("json.tmp");
                if std::fs::write(&tmp, b).is_ok() {
                    let _ = std::fs::rename(&tmp, p);
                }
            }
        }
    }

    /// Number of entries (new, tried).
    pub fn len(&self) -> (usize, usize) {
        (self.tables.new.len(), self.tables.tried.len())
    }

    /// Whether both tables are empty.
    pub fn is_empty(&self) -> bool {
        self.tables.new.is_empty() && self.tables.tried.is_empty()
    }

    /// Adds a heard-of address to the new table.
    pub fn add(&mut self, a: PeerAddr, now: u64) {
        let k = a.to_string();
        if let Some(i) = self.tables.tried.get_mut(&k) {
            i.last_seen = i.last_seen.max(now);
            return;
        }
        if self.tables.new.len() >= MAX_NEW && !self.tables.new.contains_key(&k) {
            let victim = self.tables.new.keys().choose(&mut rand::thread_rng()).cloned();
            if let Some(v) = victim {
                self.tables.new.remove(&v);
            }
        }
        self.tables.new.entry(k).or_default().last_seen = now;
    }

    /// Records a connection attempt.
    pub fn attempt(&mut self, a: &PeerAddr, now: u64) {
        let k = a.to_string();
        for t in [&mut self.tables.new, &mut self.tables.tried] {
            if let Some(i) = t.get_mut(&k) {
                i.attempts += 1;
                i.last_try = now;
            }
        }
    }

    /// Moves an address we connected to into the tried table.
    pub fn good(&mut self, a: &PeerAddr, now: u64) {
        let k = a.to_string();
        let mut info = self.tables.new.remove(&k).or_else(|| self.tables.tried.remove(&k));
        let i = info.get_or_insert_with(Info::default);
        i.attempts = 0;
        i.last_success = now;
        i.last_seen = now;
        if self.tables.tried.len() >= MAX_TRIED {
            let victim = self.tables.tried.keys().choose(&mut rand::thread_rng()).cloned();
            if let Some(v) = victim {
                if let Some(old) = self.tables.tried.remove(&v) {
                    self.tables.new.insert(v, old);
                }
            }
        }
        self.tables.tried.insert(k, info.unwrap_or_default());
    }

    /// A random address to try (half the time from tried), skipping `exclude` and addresses
    /// tried in the last minute.
    pub fn select(&self, now: u64, exclude: &dyn Fn(&PeerAddr) -> bool) -> Option<PeerAddr> {
        let mut rng = rand::thread_rng();
        let use_tried = rand::Rng::gen_bool(&mut rng, 0.5);
        let order = if use_tried {
            [&self.tables.tried, &self.tables.new]
        } else {
            [&self.tables.new, &self.tables.tried]
        };
        for t in order {
            let pick = t
                .iter()
                .filter(|(_, i)| i.last_try + 60 <= now && i.attempts < 10)
                .filter_map(|(k, _)| PeerAddr::parse(k, 0))
                .filter(|a| !exclude(a))
                .choose(&mut rng);
            if pick.is_some() {
                return pick;
            }
        }
        None
    }

    /// Up to `n` random known addresses, for `getaddr`.
    pub fn sample(&self, n: usize) -> Vec<(PeerAddr, u64)> {
        let mut rng = rand::thread_rng();
        self.tables
            .tried
            .iter()
            .chain(self.tables.new.iter())
            .filter_map(|(k, i)| PeerAddr::parse(k, 0).map(|a| (a, i.last_seen)))
            .choose_multiple(&mut rng, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onion_round_trip() {
        let key = [7u8; 32];
        let name = onion_from_key(&key);
        assert_eq!(name.len(), 62);
        assert_eq!(onion_to_key(&name), Some(key));
        let mut bad = name.clone();
        bad.replace_range(0..1, if name.starts_with('a') { "b" } else { "a" });
        assert_eq!(onion_to_key(&bad), None);
        let a = PeerAddr::parse(&format!("{name}:9555"), 1).unwrap();
        assert!(a.addr.is_onion());
        assert_eq!(a.to_string(), format!("{name}:9555"));
    }

    #[test]
    fn persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = AddrMan::load(Some(dir.path()));
        let a = PeerAddr::parse("10.0.0.1:5", 0).unwrap();
        let b = PeerAddr::parse("10.0.0.2:5", 0).unwrap();
        m.add(a, 1);
        m.add(b, 1);
        m.good(&b, 2);
        m.save();
        let m = AddrMan::load(Some(dir.path()));
        assert_eq!(m.len(), (1, 1));
        assert!(m.select(1000, &|_| false).is_some());
    }
}
