//! The networks a ResonanceNet node can run on.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A ResonanceNet network.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Network {
    /// The main network (`rnt1…` addresses).
    Mainnet,
    /// The public test network (`trnt1…` addresses).
    Testnet,
    /// Local regression-test networks (`rrnt1…` addresses).
    Regtest,
}

/// An unknown network name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown network {0:?} (expected main, test or regtest)")]
pub struct ParseNetworkError(pub String);

impl Network {
    /// Every network, in a fixed order.
    pub const ALL: [Network; 3] = [Network::Mainnet, Network::Testnet, Network::Regtest];

    /// The bech32m human-readable part of this network's addresses.
    pub const fn hrp(self) -> &'static str {
        match self {
            Network::Mainnet => "rnt",
            Network::Testnet => "trnt",
            Network::Regtest => "rrnt",
        }
    }

    /// The network whose address HRP is `hrp` (lowercase).
    pub fn from_hrp(hrp: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.hrp() == hrp)
    }

    /// The canonical name: `mainnet`, `testnet` or `regtest`.
    pub const fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Network {
    type Err = ParseNetworkError;
    /// Accepts `main`/`mainnet`, `test`/`testnet`, `regtest` (exact, lowercase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" | "mainnet" => Ok(Network::Mainnet),
            "test" | "testnet" => Ok(Network::Testnet),
            "regtest" => Ok(Network::Regtest),
            _ => Err(ParseNetworkError(s.to_owned())),
        }
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrps_and_names() {
        assert_eq!(Network::Mainnet.hrp(), "rnt");
        assert_eq!(Network::Testnet.hrp(), "trnt");
        assert_eq!(Network::Regtest.hrp(), "rrnt");
        for n in Network::ALL {
            assert_eq!(Network::from_hrp(n.hrp()), Some(n));
            assert_eq!(n.to_string().parse::<Network>(), Ok(n));
        }
        assert_eq!("main".parse::<Network>(), Ok(Network::Mainnet));
        assert_eq!("test".parse::<Network>(), Ok(Network::Testnet));
        assert_eq!("regtest".parse::<Network>(), Ok(Network::Regtest));
        assert!("bitcoin".parse::<Network>().is_err());
        assert!("Main".parse::<Network>().is_err());
        assert_eq!(Network::from_hrp("bc"), None);
        assert_eq!(serde_json::to_string(&Network::Testnet).unwrap(), "\"testnet\"");
    }
}
