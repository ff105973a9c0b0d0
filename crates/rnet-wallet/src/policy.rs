//! Recovery policy configuration: the part of a policy that is fixed for the whole wallet (the
//! owner key changes with every address).

use rnet_crypto::PublicKey;
use rnet_primitives::{Address, Network};
use rnet_script::templates::MAX_GUARDIANS;
use rnet_script::{EmissionReturn, Heartbeat, RecoveryPolicy, RelativeLock, Social};
use serde::{Deserialize, Serialize};

use crate::error::{Result, WalletError};

/// The wallet-wide recovery policy. Every receive and change address is the v0 script-hash of
/// `self.template(owner)` with a fresh owner key per address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyConfig {
    /// Heartbeat: after `interval` without a spend, `recovery` may spend.
    Heartbeat {
        /// The recovery key.
        recovery: PublicKey,
        /// The inactivity interval (CSV).
        interval: RelativeLock,
    },
    /// Social: `threshold` of `guardians` may move coins into a recovery-pending output that the
    /// owner can cancel within `cancel_window`.
    Social {
        /// Guardian keys (1..=20, distinct, in script order).
        guardians: Vec<PublicKey>,
        /// How many guardians must sign.
        threshold: usize,
        /// The owner's cancel window.
        cancel_window: RelativeLock,
    },
    /// Emission return: after `inactivity`, anyone may sweep the coins into the emission pool.
    EmissionReturn {
        /// The inactivity period (CSV).
        inactivity: RelativeLock,
    },
}

impl PolicyConfig {
    /// A heartbeat policy; `recovery` is a hex Ed25519 key or a v1 (plain-key) address.
    pub fn heartbeat(recovery: &str, interval: RelativeLock) -> Result<Self> {
        let cfg = Self::Heartbeat { recovery: parse_key_or_address(recovery)?, interval };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the parameters by building the template for a dummy owner.
    pub fn validate(&self) -> Result<()> {
        // Any valid point works as the owner for the check; use the first guardian/recovery key
        // or the Ed25519 base point's encoding.
        let dummy =
            PublicKey::from_bytes(&BASE_POINT).map_err(|e| WalletError::Policy(e.to_string()))?;
        self.template(dummy).map(|_| ())
    }

    /// The template of this policy for `owner`.
    pub fn template(&self, owner: PublicKey) -> Result<RecoveryPolicy> {
        Ok(match self {
            Self::Heartbeat { recovery, interval } => {
                RecoveryPolicy::Heartbeat(Heartbeat::new(owner, *recovery, *interval)?)
            }
            Self::Social { guardians, threshold, cancel_window } => {
                if guardians.len() > MAX_GUARDIANS {
                    return Err(WalletError::Policy("at most 20 guardians".into()));
                }
                RecoveryPolicy::Social(Social::new(
                    owner,
                    guardians.clone(),
                    *threshold,
                    *cancel_window,
                )?)
            }
            Self::EmissionReturn { inactivity } => {
                RecoveryPolicy::EmissionReturn(EmissionReturn::new(owner, *inactivity)?)
            }
        })
    }

    /// Short name: `heartbeat`, `social` or `emission-return`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Heartbeat { .. } => "heartbeat",
            Self::Social { .. } => "social",
            Self::EmissionReturn { .. } => "emission-return",
        }
    }

    /// The relative lock after which a coin's non-owner path opens (recovery, guardian cancel
    /// window for pending outputs, sweep). `None` for social coins themselves (guardians can act
    /// at any time).
    pub fn coin_lock(&self) -> Option<RelativeLock> {
        match self {
            Self::Heartbeat { interval, .. } => Some(*interval),
            Self::Social { .. } => None,
            Self::EmissionReturn { inactivity } => Some(*inactivity),
        }
    }

    pub(crate) fn to_stored(&self) -> StoredPolicy {
        match self {
            Self::Heartbeat { recovery, interval } => StoredPolicy::Heartbeat {
                recovery: hex::encode(recovery.as_bytes()),
                interval: interval.to_sequence(),
            },
            Self::Social { guardians, threshold, cancel_window } => StoredPolicy::Social {
                guardians: guardians.iter().map(|g| hex::encode(g.as_bytes())).collect(),
                threshold: *threshold,
                cancel_window: cancel_window.to_sequence(),
            },
            Self::EmissionReturn { inactivity } => {
                StoredPolicy::EmissionReturn { inactivity: inactivity.to_sequence() }
            }
        }
    }

    pub(crate) fn from_stored(s: &StoredPolicy) -> Result<Self> {
        let lock = |n: u32| {
            RelativeLock::from_canonical(n).ok_or_else(|| WalletError::Corrupt("bad lock".into()))
        };
        let cfg = match s {
            StoredPolicy::Heartbeat { recovery, interval } => {
                Self::Heartbeat { recovery: parse_hex_key(recovery)?, interval: lock(*interval)? }
            }
            StoredPolicy::Social { guardians, threshold, cancel_window } => Self::Social {
                guardians: guardians.iter().map(|g| parse_hex_key(g)).collect::<Result<_>>()?,
                threshold: *threshold,
                cancel_window: lock(*cancel_window)?,
            },
            StoredPolicy::EmissionReturn { inactivity } => {
                Self::EmissionReturn { inactivity: lock(*inactivity)? }
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// JSON view (keys as hex, locks as sequence numbers and text).
    pub fn to_json(&self) -> serde_json::Value {
        let lock = |l: &RelativeLock| describe_lock(*l);
        match self {
            Self::Heartbeat { recovery, interval } => serde_json::json!({
                "kind": "heartbeat",
                "recovery_key": hex::encode(recovery.as_bytes()),
                "interval": lock(interval),
            }),
            Self::Social { guardians, threshold, cancel_window } => serde_json::json!({
                "kind": "social",
                "guardians": guardians.iter().map(|g| hex::encode(g.as_bytes())).collect::<Vec<_>>(),
                "threshold": threshold,
                "cancel_window": lock(cancel_window),
            }),
            Self::EmissionReturn { inactivity } => serde_json::json!({
                "kind": "emission-return",
                "inactivity": lock(inactivity),
            }),
        }
    }
}

/// A relative lock as text: `N blocks` or `N×512 s`.
pub fn describe_lock(l: RelativeLock) -> String {
    match l {
        RelativeLock::Blocks(n) => format!("{n} blocks"),
        RelativeLock::Time(n) => format!("{} seconds", u32::from(n) * 512),
    }
}

/// Parses a relative lock: `N` or `Nb` (blocks) or `Ns` (seconds, rounded up to 512-s units).
pub fn parse_lock(s: &str) -> Result<RelativeLock> {
    let bad =
        || WalletError::Policy(format!("bad relative lock {s:?} (use N blocks or Ns seconds)"));
    let (digits, secs) = match s.strip_suffix('s') {
        Some(d) => (d, true),
        None => (s.strip_suffix('b').unwrap_or(s), false),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let lock = if secs {
        RelativeLock::Time(u16::try_from(n.div_ceil(512)).map_err(|_| bad())?)
    } else {
        RelativeLock::Blocks(u16::try_from(n).map_err(|_| bad())?)
    };
    if lock.value() == 0 {
        return Err(bad());
    }
    Ok(lock)
}

/// Parses a 64-hex-character Ed25519 public key.
pub fn parse_hex_key(s: &str) -> Result<PublicKey> {
    let bytes = hex::decode(s).map_err(|_| WalletError::Policy(format!("bad key hex {s:?}")))?;
    PublicKey::from_slice(&bytes).map_err(|e| WalletError::Policy(format!("bad key: {e}")))
}

/// Parses a hex Ed25519 key or a v1 plain-key address (whose program is the key).
pub fn parse_key_or_address(s: &str) -> Result<PublicKey> {
    if let Ok(k) = parse_hex_key(s) {
        return Ok(k);
    }
    let addr: Address = s.parse().map_err(|_| {
        WalletError::Policy(format!("{s:?} is neither a hex key nor a plain-key address"))
    })?;
    if addr.witness_version() != 1 {
        return Err(WalletError::Policy(
            "a recovery address must be a v1 plain-key address (its program is the key)".into(),
        ));
    }
    PublicKey::from_slice(addr.program()).map_err(|e| WalletError::Policy(e.to_string()))
}

/// The plain-key address of a key, which [`parse_key_or_address`] accepts.
pub fn key_address(key: &PublicKey, network: Network) -> Address {
    rnet_script::PlainKey::new(*key).address(network)
}

/// Ed25519 base point encoding (a valid curve point for parameter checks).
const BASE_POINT: [u8; 32] = [
    0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
];

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StoredPolicy {
    Heartbeat { recovery: String, interval: u32 },
    Social { guardians: Vec<String>, threshold: usize, cancel_window: u32 },
    EmissionReturn { inactivity: u32 },
}
