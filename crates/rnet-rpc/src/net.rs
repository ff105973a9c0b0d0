//! Per-network RPC defaults shared by the node and `rnet-cli`: ports and data directories.

use std::path::{Path, PathBuf};

use rnet_primitives::Network;

/// The default RPC port of `network`: mainnet 9554, testnet 19554, regtest 29554.
pub const fn default_rpc_port(network: Network) -> u16 {
    match network {
        Network::Mainnet => 9554,
        Network::Testnet => 19554,
        Network::Regtest => 29554,
    }
}

/// The name of the default data directory under the home directory.
pub const DEFAULT_DATADIR_NAME: &str = ".resonancenet";

/// The default base data directory, `$HOME/.resonancenet` (`%USERPROFILE%` on Windows);
/// `None` when no home directory is known.
pub fn default_datadir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    if home.is_empty() {
        return None;
    }
    Some(PathBuf::from(home).join(DEFAULT_DATADIR_NAME))
}

/// The sub-directory of the base data directory a network keeps its files in: none for mainnet,
/// `testnet` and `regtest` for the others.
pub const fn network_subdir(network: Network) -> Option<&'static str> {
    match network {
        Network::Mainnet => None,
        Network::Testnet => Some("testnet"),
        Network::Regtest => Some("regtest"),
    }
}

/// The network's data directory inside `base` (`base`, `base/testnet` or `base/regtest`).
pub fn network_datadir(base: &Path, network: Network) -> PathBuf {
    match network_subdir(network) {
        Some(sub) => base.join(sub),
        None => base.to_path_buf(),
    }
}

/// Where the node writes its RPC cookie for `network`: `<network datadir>/.cookie`.
pub fn cookie_path(base: &Path, network: Network) -> PathBuf {
    network_datadir(base, network).join(crate::auth::COOKIE_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ports() {
        let b = Path::new("/d");
        assert_eq!(cookie_path(b, Network::Mainnet), Path::new("/d/.cookie"));
        assert_eq!(cookie_path(b, Network::Testnet), Path::new("/d/testnet/.cookie"));
        assert_eq!(cookie_path(b, Network::Regtest), Path::new("/d/regtest/.cookie"));
        assert_eq!(
            [Network::Mainnet, Network::Testnet, Network::Regtest].map(default_rpc_port),
            [9554, 19554, 29554]
        );
    }
}
