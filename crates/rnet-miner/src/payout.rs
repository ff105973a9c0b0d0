//! Where mined coins go: a recovery-policy address, never a bare key, because recovery is
//! mandatory for every coin (docs/node.md "Mining payout"). Every recovery-policy address is a
//! script-hash address (witness v0, 32-byte program); a bare-key address is witness v1.

use rnet_primitives::{Address, Network};
use thiserror::Error;

/// Why an address cannot receive mined coins.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PayoutAddressError {
    /// Not an address of this network.
    #[error("invalid mining address {address:?}: {reason}")]
    Invalid {
        /// The address given.
        address: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A bare-key address: mined coins would have no recovery path.
    #[error(
        "mining address {0} is a bare-key address: coins mined to it could never be recovered. \
         Mine to a recovery-policy address (getnewaddress of a wallet) or name a wallet"
    )]
    BareKey(String),
}

/// `address` (for `network`) if it is a recovery-policy (script-hash) address.
pub fn recovery_policy_address(
    address: &str,
    network: Network,
) -> Result<Address, PayoutAddressError> {
    let parsed = Address::from_str_for(address, network).map_err(|e| {
        PayoutAddressError::Invalid { address: address.to_string(), reason: e.to_string() }
    })?;
    if parsed.witness_version() != 0 || parsed.program().len() != 32 {
        return Err(PayoutAddressError::BareKey(address.to_string()));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_crypto::SigningKey;
    use rnet_script::ScriptTemplate;

    #[test]
    fn only_script_hash_addresses_receive_mined_coins() {
        let key = SigningKey::from_bytes(&[7; 32]).public_key();
        let bare = rnet_script::PlainKey::new(key).address(Network::Regtest).to_string();
        assert!(matches!(
            recovery_policy_address(&bare, Network::Regtest),
            Err(PayoutAddressError::BareKey(_))
        ));
        let heartbeat = rnet_script::Heartbeat::new(
            key,
            SigningKey::from_bytes(&[8; 32]).public_key(),
            rnet_script::RelativeLock::Blocks(10),
        )
        .unwrap();
        let policy = heartbeat.address(Network::Regtest).to_string();
        assert_eq!(
            recovery_policy_address(&policy, Network::Regtest).unwrap().script_pubkey(),
            heartbeat.script_pubkey()
        );
        let testnet = heartbeat.address(Network::Testnet).to_string();
        for bad in [testnet.as_str(), "nonsense"] {
            assert!(matches!(
                recovery_policy_address(bad, Network::Regtest),
                Err(PayoutAddressError::Invalid { .. })
            ));
        }
    }
}
