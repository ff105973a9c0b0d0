//! Where the in-node miner pays: always a recovery-policy address, so that mined coins have a
//! recovery path like every other wallet coin (recovery is mandatory, docs/node.md).
//!
//! - `-miningaddress=ADDR`: must be a script-hash (witness v0, 32-byte program) address, the
//!   form of every recovery-policy address; a bare-key (v1) address is refused.
//! - `-miningwallet=NAME`: a fresh receive address of that wallet (loaded if it is not).
//! - Neither, on regtest: the wallet `miner`, created on first use with a heartbeat policy whose
//!   recovery key is written to `<netdir>/miner-recovery.key` (64 hex digits, mode 0600); the
//!   log says so.
//! - Neither, elsewhere: refused with a message naming both options.

use rnet_primitives::{Address, Network};
use rnet_wallet::PolicyConfig;

use crate::config::Config;
use crate::node::Node;
use crate::rpc::wallet::{create_wallet, load_wallet};
use crate::wallets::lock_entry;

/// The wallet regtest mining creates when given no payout.
pub const REGTEST_MINING_WALLET: &str = "miner";
/// The recovery key of that wallet's heartbeat policy (hex secret), in the network directory.
pub const REGTEST_RECOVERY_KEY_FILE: &str = "miner-recovery.key";
/// That policy's heartbeat interval, in blocks.
pub const REGTEST_HEARTBEAT_INTERVAL: u16 = 100;

/// Why the miner has nowhere to pay.
#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    /// The address does not parse for this network.
    #[error("invalid -miningaddress {address:?}: {reason}")]
    InvalidAddress {
        /// The address given.
        address: String,
        /// Why.
        reason: String,
    },
    /// A bare-key address: mined coins would have no recovery path.
    #[error(
        "-miningaddress {0} is a bare-key address: coins mined to it could never be recovered. \
         Mine to a recovery-policy address (getnewaddress of a wallet) or use -miningwallet=NAME"
    )]
    BareKey(String),
    /// Neither option, on a network where nothing is created for you.
    #[error(
        "-mine needs a recovery-policy payout: -miningwallet=NAME (a wallet created with \
         createwallet) or -miningaddress=ADDR (an address of such a wallet); mining to a bare \
         key is refused because those coins could never be recovered"
    )]
    Missing,
    /// The mining wallet could not be loaded, created or asked for an address.
    #[error("mining wallet {name}: {reason}")]
    Wallet {
        /// The wallet.
        name: String,
        /// Why.
        reason: String,
    },
    /// The regtest recovery key file could not be read or written.
    #[error("{path}: {reason}")]
    RecoveryKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Checks that `address` (for `network`) is a recovery-policy (script-hash) address.
pub fn policy_address(address: &str, network: Network) -> Result<Address, PayoutError> {
    rnet_miner::recovery_policy_address(address, network).map_err(|e| match e {
        rnet_miner::PayoutAddressError::Invalid { address, reason } => {
            PayoutError::InvalidAddress { address, reason }
        }
        rnet_miner::PayoutAddressError::BareKey(a) => PayoutError::BareKey(a),
    })
}

/// The scriptPubKey the in-node miner pays, chosen as the module documentation says.
pub fn mining_payout(node: &Node, config: &Config) -> Result<Vec<u8>, PayoutError> {
    if let Some(address) = &config.mining_address {
        let parsed = policy_address(address, config.network)?;
        tracing::info!("mining to {parsed} (-miningaddress)");
        return Ok(parsed.script_pubkey());
    }
    let name = match (&config.mining_wallet, config.network) {
        (Some(name), _) => name.clone(),
        (None, Network::Regtest) => {
            ensure_regtest_wallet(node)?;
            REGTEST_MINING_WALLET.to_string()
        }
        (None, _) => return Err(PayoutError::Missing),
    };
    let wallet_err = |reason: String| PayoutError::Wallet { name: name.clone(), reason };
    if node.wallets.get(&name).is_none() {
        load_wallet(node, &name).map_err(|e| wallet_err(e.message))?;
    }
    let entry = node.wallets.get(&name).ok_or_else(|| wallet_err("not loaded".into()))?;
    let address = lock_entry(&entry).wallet.new_address().map_err(|e| wallet_err(e.to_string()))?;
    tracing::info!("mining to {address} of wallet {name} (recovery policy)");
    Ok(address.script_pubkey())
}

/// Regtest without a payout: the `miner` wallet exists, loaded, with a heartbeat policy.
fn ensure_regtest_wallet(node: &Node) -> Result<(), PayoutError> {
    let name = REGTEST_MINING_WALLET;
    let wallet_err = |reason: String| PayoutError::Wallet { name: name.into(), reason };
    if node.wallets.get(name).is_some() {
        return Ok(());
    }
    if load_wallet(node, name).is_ok() {
        tracing::info!("regtest: mining to wallet {name} (loaded)");
        return Ok(());
    }
    let key_path = node.netdir.join(REGTEST_RECOVERY_KEY_FILE);
    let recovery = rnet_miner::load_or_create_key(&key_path).map_err(|e| {
        PayoutError::RecoveryKey { path: key_path.display().to_string(), reason: e.to_string() }
    })?;
    let recovery_hex = hex::encode(recovery.public_key().as_bytes());
    let interval = rnet_script::RelativeLock::Blocks(REGTEST_HEARTBEAT_INTERVAL);
    let policy =
        PolicyConfig::heartbeat(&recovery_hex, interval).map_err(|e| wallet_err(e.to_string()))?;
    create_wallet(node, name, policy, None, None, "").map_err(|e| wallet_err(e.message))?;
    tracing::info!(
        "regtest: created wallet {name} for mining with a heartbeat recovery policy: if it does \
         not move its coins for {REGTEST_HEARTBEAT_INTERVAL} blocks, the recovery key in {} can \
         claim them (claimheartbeatrecovery)",
        key_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_crypto::SigningKey;

    /// The rule itself is tested with `rnet_miner::recovery_policy_address`; here, that its
    /// refusals keep their meaning in the node's errors.
    #[test]
    fn the_shared_address_rule_maps_to_payout_errors() {
        let key = SigningKey::from_bytes(&[7; 32]).public_key();
        let bare = rnet_script::PlainKey::new(key).address(Network::Regtest).to_string();
        let e = policy_address(&bare, Network::Regtest).unwrap_err();
        assert!(matches!(e, PayoutError::BareKey(_)));
        assert!(e.to_string().contains("-miningaddress"), "{e}");
        let e = policy_address("nonsense", Network::Regtest).unwrap_err();
        assert!(matches!(e, PayoutError::InvalidAddress { .. }), "{e}");
    }
}
