//! The [`Wallet`]: keys, policy, storage, chain tracking, balances, spending, backups.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::Database;
use rnet_consensus::{ChainParams, expiry_threshold};
use rnet_crypto::{BackupParams, Mnemonic, PublicKey, SigningKey, decrypt_backup, encrypt_backup};
use rnet_mempool::FeeRate;
use rnet_primitives::{
    Address, Amount, Block, BlockHash, Network, OutPoint, Transaction, TxIn, TxOut, Txid, Witness,
};
use rnet_script::{
    OutputKind, RecoveryPending, RecoveryPolicy, RelativeLock, ScriptTemplate, SighashCache,
    SighashType, classify,
};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, WalletError};
use crate::keys::{GAP_LIMIT, KeyChain, Keys, Secret};
use crate::policy::{PolicyConfig, StoredPolicy};
use crate::recovery::{RBF_SEQUENCE, RecoveryRequest, TX_VERSION};
use crate::select::select_coins;
use crate::store;

/// Version of the wallet state (3: test networks derive under coin type 1, every network has a
/// new genesis; older states are migrated by [`Wallet::open`]).
pub const STATE_VERSION: u32 = 3;

/// Version of the backup export (keys, policy and indices only; independent of the chain).
pub const EXPORT_VERSION: u32 = 1;
/// Minimum relay fee rate a replacement must add on top of the replaced fee (BIP125 rule 4).
pub const INCREMENTAL_RELAY_FEE: FeeRate = FeeRate(1000);
/// Smallest change output the wallet creates (the mempool's default dust limit, 453 resonance).
pub const DUST_LIMIT: Amount = Amount(453);
/// Recent tips remembered for undo (older ones fall back to "loss unknown").
const TIP_HISTORY: usize = 1000;

/// Encryption settings for a wallet file: the passphrase and Argon2id cost.
pub struct Encryption {
    /// The wallet passphrase (zeroized on drop).
    pub passphrase: Zeroizing<String>,
    /// Argon2id parameters (default: 64 MiB, t = 3, p = 1).
    pub params: BackupParams,
}

impl Encryption {
    /// Encryption under `passphrase` with the default Argon2id parameters.
    pub fn new(passphrase: &str) -> Self {
        Self { passphrase: Zeroizing::new(passphrase.to_owned()), params: BackupParams::DEFAULT }
    }

    /// The same with other Argon2id parameters (tests use small ones).
    pub fn with_params(mut self, params: BackupParams) -> Self {
        self.params = params;
        self
    }
}

/// Who controls a wallet coin and how the wallet spends it.
///
/// `generation` says under which of the wallet's policies the coin sits: 0 is the policy the
/// wallet was created with, and every rotation ([`Wallet::cancel_recovery`] with a new policy)
/// adds one ([`Wallet::policy_generation`]). Older files lack the field: generation 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoinOwner {
    /// An output of the wallet's policy for the key at `(chain, index)`.
    Policy {
        /// Key chain (0 receive, 1 change).
        chain: u32,
        /// Key index.
        index: u32,
        /// The policy generation of the output.
        #[serde(default)]
        generation: u32,
    },
    /// A social recovery-pending output for that key: the owner can cancel (reclaim) it.
    Pending {
        /// Key chain.
        chain: u32,
        /// Key index.
        index: u32,
        /// The key the guardians named.
        new_key: [u8; 32],
        /// The policy generation of the social coin the guardians moved.
        #[serde(default)]
        generation: u32,
    },
}

impl CoinOwner {
    /// The policy generation of the coin.
    pub fn generation(&self) -> u32 {
        let (Self::Policy { generation, .. } | Self::Pending { generation, .. }) = self;
        *generation
    }
}

/// A coin of the wallet with its creation facts (as consensus records them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletCoin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Value and script.
    pub output: TxOut,
    /// Height of the creating block.
    pub height: u32,
    /// MTP of the block before the creating block (BIP68 time locks start here).
    pub creation_mtp: u64,
    /// Whether it is a coinbase output.
    pub is_coinbase: bool,
    /// Loss index of the creating block (expiry).
    pub creation_loss_index: u64,
    /// Whose it is.
    pub owner: CoinOwner,
}

/// The wallet's balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Balances {
    /// Confirmed, mature policy coins not spent by an unconfirmed transaction.
    pub trusted: Amount,
    /// Outputs to the wallet in unconfirmed transactions.
    pub pending: Amount,
    /// Coinbase outputs not yet mature.
    pub immature: Amount,
    /// Coins (any of the above confirmed ones) whose creation loss is within the given margin
    /// of the expiry threshold at the current tip.
    pub expiring_soon: Amount,
    /// Social recovery-pending outputs the owner can still cancel.
    pub recovery_pending: Amount,
}

/// A policy-protected coin close to UTXO expiry (`docs/protocol.md` Part V §6), which removes a
/// coin whatever its recovery policy: the wallet's `warnings` list it so the owner moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpiryWarning {
    /// The coin.
    pub outpoint: OutPoint,
    /// Its value.
    pub value: Amount,
    /// How far the expiry threshold still is above the coin's creation loss index (loss-index
    /// units; the coin expires when this reaches 0).
    pub remaining: u64,
    /// The same distance when the coin was created: the threshold of its own block minus its
    /// creation loss index (the whole "expiry period" in loss-index units).
    pub period: u64,
}

/// When a coin's non-owner path opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Deadline {
    /// From the block at this height on.
    Height(u32),
    /// Once the chain's median-time-past reaches this unix time.
    MedianTime(u64),
}

/// Per-coin recovery status (`getrecoveryinfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoinRecovery {
    /// The coin.
    pub outpoint: String,
    /// Its value.
    pub value: Amount,
    /// Height of its block.
    pub height: u32,
    /// `recovery` (heartbeat), `guardians` (social, any time), `sweep` (emission) or
    /// `claim` (pending output: the new key after the cancel window).
    pub path: &'static str,
    /// When that path opens (`None`: at any time, only the guardians' threshold limits it).
    pub deadline: Option<Deadline>,
}

/// `getrecoveryinfo`: the policy and every coin's deadline.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryInfo {
    /// The policy (JSON view).
    pub policy: serde_json::Value,
    /// Last scanned height.
    pub tip_height: Option<u32>,
    /// The coins.
    pub coins: Vec<CoinRecovery>,
}

/// A transaction the wallet built and signed.
#[derive(Debug, Clone)]
pub struct CreatedTx {
    /// The signed transaction.
    pub tx: Transaction,
    /// Its fee.
    pub fee: Amount,
    /// Index of the change output, if any.
    pub change_index: Option<usize>,
}

struct KeyInfo {
    chain: KeyChain,
    index: u32,
    pubkey: PublicKey,
    template: RecoveryPolicy,
}

#[derive(Clone, Copy, Debug)]
struct Tip {
    height: u32,
    loss_index: Option<u64>,
}

/// A ResonanceNet HD wallet with a mandatory recovery policy, stored in one redb file.
///
/// Build it with [`Wallet::create`] (words + policy), [`Wallet::open`] or
/// [`Wallet::restore_backup`]; feed it blocks with [`Wallet::scan_block`] /
/// [`Wallet::undo_block`] and unconfirmed transactions with [`Wallet::add_unconfirmed`].
pub struct Wallet {
    db: Database,
    path: PathBuf,
    network: Network,
    params: ChainParams,
    account: u32,
    policy: PolicyConfig,
    retired: Vec<PolicyConfig>,
    keys: Vec<KeyInfo>,
    by_spk: HashMap<Vec<u8>, CoinOwner>,
    pending_watch: Vec<CoinOwner>,
    next: [u32; 2],
    guardian_key: PublicKey,
    coins: BTreeMap<OutPoint, WalletCoin>,
    spent: BTreeMap<OutPoint, (WalletCoin, u32)>,
    unconfirmed: BTreeMap<Txid, Transaction>,
    tips: Vec<(u32, u64)>,
    tip: Option<Tip>,
    secret_blob: Zeroizing<Vec<u8>>,
    encrypted: bool,
    unlocked: Option<(Keys, Option<Instant>)>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("path", &self.path)
            .field("network", &self.network)
            .field("policy", &self.policy.kind())
            .field("encrypted", &self.encrypted)
            .finish_non_exhaustive()
    }
}

impl Wallet {
    // ----- creation, opening, locking ---------------------------------------------------------

    /// Creates a new wallet file at `path` (which must not exist) from `mnemonic` (24 words) and
    /// an optional BIP39 passphrase, with the mandatory recovery `policy`. With `encryption`, the
    /// secret is stored only encrypted; the new wallet stays unlocked until [`Wallet::lock`] or
    /// drop.
    pub fn create(
        path: &Path,
        network: Network,
        mnemonic: &Mnemonic,
        bip39_passphrase: &str,
        policy: PolicyConfig,
        encryption: Option<Encryption>,
    ) -> Result<Self> {
        policy.validate()?;
        let secret = Secret::from_mnemonic(mnemonic, bip39_passphrase);
        let keys = Keys::new(secret.clone(), network)?;
        let (blob, encrypted) = match &encryption {
            Some(e) => {
                if e.passphrase.is_empty() {
                    return Err(WalletError::EmptyPassphrase);
                }
                (encrypt_backup(&secret.encode(), e.passphrase.as_bytes(), e.params)?, true)
            }
            None => (secret.encode().to_vec(), false),
        };
        let guardian_key = keys.signing_key(0, KeyChain::Guardian, 0)?.public_key();
        let db = store::create(path)?;
        let mut w = Self {
            db,
            path: path.to_owned(),
            network,
            params: ChainParams::for_network(network),
            account: 0,
            policy,
            retired: Vec::new(),
            keys: Vec::new(),
            by_spk: HashMap::new(),
            pending_watch: Vec::new(),
            next: [0, 0],
            guardian_key,
            coins: BTreeMap::new(),
            spent: BTreeMap::new(),
            unconfirmed: BTreeMap::new(),
            tips: Vec::new(),
            tip: None,
            secret_blob: Zeroizing::new(blob),
            encrypted,
            unlocked: Some((keys, None)),
        };
        w.top_up()?;
        w.persist(true)?;
        Ok(w)
    }

    /// Opens an existing wallet file (locked if it is encrypted).
    ///
    /// A testnet or regtest wallet written before state version 3 derived its keys under coin
    /// type 9555; it is migrated by deriving them again under coin type 1 (the indices are kept),
    /// which needs the secret: an encrypted one is refused with [`WalletError::LegacyKeys`]
    /// (restore it from its words or a backup).
    pub fn open(path: &Path) -> Result<Self> {
        let db = store::open(path)?;
        let (secret_blob, state) = store::read(&db)?;
        let (state, rederive) = State::decode(&state)?;
        if rederive && state.encrypted {
            let network =
                state.network.parse().map_err(|_| WalletError::Corrupt("network".into()))?;
            return Err(WalletError::LegacyKeys { network });
        }
        let mut w = state.into_wallet(db, path, Zeroizing::new(secret_blob))?;
        if !w.encrypted {
            let secret = Secret::decode(&w.secret_blob)?;
            w.unlocked = Some((Keys::new(secret, w.network)?, None));
        }
        if rederive {
            w.guardian_key = w.keys()?.signing_key(w.account, KeyChain::Guardian, 0)?.public_key();
            w.top_up()?;
            w.persist(false)?;
        }
        Ok(w)
    }

    /// Unlocks an encrypted wallet for `duration` (`Duration::MAX` = until [`Wallet::lock`]).
    pub fn unlock(&mut self, passphrase: &str, duration: Duration) -> Result<()> {
        if !self.encrypted {
            return Err(WalletError::NotEncrypted);
        }
        let plain = decrypt_backup(&self.secret_blob, passphrase.as_bytes())?;
        let keys = Keys::new(Secret::decode(&plain)?, self.network)?;
        self.unlocked = Some((keys, Instant::now().checked_add(duration)));
        self.top_up()?;
        self.persist(false)
    }

    /// Forgets the decrypted keys (no effect on an unencrypted wallet, which cannot be locked).
    pub fn lock(&mut self) {
        if self.encrypted {
            self.unlocked = None;
        }
    }

    /// Whether private keys are unavailable (encrypted and locked, or the unlock timed out).
    pub fn is_locked(&self) -> bool {
        match &self.unlocked {
            None => true,
            Some((_, Some(until))) => Instant::now() >= *until,
            Some((_, None)) => false,
        }
    }

    /// Whether the secret is stored encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    fn keys(&self) -> Result<&Keys> {
        if self.is_locked() {
            return Err(WalletError::Locked);
        }
        self.unlocked.as_ref().map(|(k, _)| k).ok_or(WalletError::Locked)
    }

    /// Encrypts an unencrypted wallet (rewrites the file so no plaintext page survives).
    pub fn encrypt(&mut self, encryption: Encryption) -> Result<()> {
        if self.encrypted {
            return Err(WalletError::AlreadyEncrypted);
        }
        if encryption.passphrase.is_empty() {
            return Err(WalletError::EmptyPassphrase);
        }
        let plain = self.keys()?.secret.encode();
        let blob = encrypt_backup(&plain, encryption.passphrase.as_bytes(), encryption.params)?;
        self.secret_blob = Zeroizing::new(blob);
        self.encrypted = true;
        self.rewrite_file()
    }

    /// Changes the passphrase of an encrypted wallet (rewrites the file).
    pub fn change_passphrase(&mut self, old: &str, new: Encryption) -> Result<()> {
        if !self.encrypted {
            return Err(WalletError::NotEncrypted);
        }
        if new.passphrase.is_empty() {
            return Err(WalletError::EmptyPassphrase);
        }
        let plain = decrypt_backup(&self.secret_blob, old.as_bytes())?;
        let blob = encrypt_backup(&plain, new.passphrase.as_bytes(), new.params)?;
        self.secret_blob = Zeroizing::new(blob);
        self.rewrite_file()
    }

    fn rewrite_file(&mut self) -> Result<()> {
        let tmp = self.path.with_extension("rewrite.tmp");
        let _ = std::fs::remove_file(&tmp);
        {
            let db = store::create(&tmp)?;
            store::write(&db, Some(&self.secret_blob), &self.state_bytes()?)?;
        }
        // Swap the handle: the old database must be closed before the rename on some systems.
        let _ = std::fs::remove_file(self.path.with_extension("swap.tmp"));
        let placeholder = store::create(&self.path.with_extension("swap.tmp"))?;
        drop(std::mem::replace(&mut self.db, placeholder));
        std::fs::rename(&tmp, &self.path)?;
        let old = std::mem::replace(&mut self.db, store::open(&self.path)?);
        drop(old);
        let _ = std::fs::remove_file(self.path.with_extension("swap.tmp"));
        Ok(())
    }

    // ----- public information ------------------------------------------------------------------

    /// The wallet's network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The recovery policy (the current generation: new addresses use it).
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The generation of the current policy: how many times the policy was rotated.
    pub fn policy_generation(&self) -> u32 {
        u32::try_from(self.retired.len()).unwrap_or(u32::MAX)
    }

    /// The policy of `generation` (the current one or a retired one whose coins the wallet still
    /// recognizes and spends).
    pub fn policy_of(&self, generation: u32) -> Option<&PolicyConfig> {
        if generation == self.policy_generation() {
            Some(&self.policy)
        } else {
            self.retired.get(usize::try_from(generation).ok()?)
        }
    }

    /// The policy template that locks a coin of `owner` (for a recovery-pending output: the
    /// social template the guardians spent), whatever its generation.
    pub fn coin_template(&self, owner: &CoinOwner) -> Option<RecoveryPolicy> {
        let k = self.owner_key(owner)?;
        if owner.generation() == self.policy_generation() {
            Some(k.template.clone())
        } else {
            self.policy_of(owner.generation())?.template(k.pubkey).ok()
        }
    }

    /// The wallet file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key this wallet offers to act as a guardian of other wallets
    /// (`m/44'/coin'/0'/2'/0'`, coin type 9555 on mainnet and 1 on test networks).
    pub fn guardian_public_key(&self) -> PublicKey {
        self.guardian_key
    }

    /// Last scanned height.
    pub fn tip_height(&self) -> Option<u32> {
        self.tip.map(|t| t.height)
    }

    /// Number of keys derived on the receive and change chains.
    pub fn derived_counts(&self) -> [u32; 2] {
        let mut c = [0u32; 2];
        for k in &self.keys {
            if let Some(slot) = c.get_mut(k.chain.index() as usize) {
                *slot += 1;
            }
        }
        c
    }

    /// Next unused receive and change indices.
    pub fn next_indices(&self) -> [u32; 2] {
        self.next
    }

    /// The address of key `(chain, index)` if derived.
    pub fn address_at(&self, chain: KeyChain, index: u32) -> Option<Address> {
        self.key(chain, index).map(|k| k.template.address(self.network))
    }

    /// The policy template of key `(chain, index)` if derived.
    pub fn template_at(&self, chain: KeyChain, index: u32) -> Option<&RecoveryPolicy> {
        self.key(chain, index).map(|k| &k.template)
    }

    fn key(&self, chain: KeyChain, index: u32) -> Option<&KeyInfo> {
        self.keys.iter().find(|k| k.chain == chain && k.index == index)
    }

    /// A fresh receive address (the next unused index; needs the keypool or an unlocked wallet).
    pub fn new_address(&mut self) -> Result<Address> {
        self.fresh(KeyChain::Receive).map(|t| t.address(self.network))
    }

    fn fresh(&mut self, chain: KeyChain) -> Result<RecoveryPolicy> {
        let slot = chain.index() as usize;
        let index = self.next[slot];
        if self.key(chain, index).is_none() {
            self.top_up()?;
        }
        let t = self.key(chain, index).ok_or(WalletError::Locked)?.template.clone();
        self.next[slot] = index.checked_add(1).ok_or(WalletError::IndexExhausted)?;
        self.top_up_if_unlocked();
        self.persist(false)?;
        Ok(t)
    }

    /// Whether `script_pubkey` pays the wallet (policy or pending output).
    pub fn is_mine(&self, script_pubkey: &[u8]) -> bool {
        self.by_spk.contains_key(script_pubkey)
    }

    fn top_up_if_unlocked(&mut self) {
        if !self.is_locked() {
            let _ = self.top_up();
        }
    }

    /// Derives keys until each chain has [`GAP_LIMIT`] unused keys ahead.
    fn top_up(&mut self) -> Result<()> {
        let counts = self.derived_counts();
        let mut new = Vec::new();
        {
            let keys = match self.keys() {
                Ok(k) => k,
                Err(_)
                    if counts[0] >= self.next[0] + GAP_LIMIT
                        && counts[1] >= self.next[1] + GAP_LIMIT =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            for chain in [KeyChain::Receive, KeyChain::Change] {
                let slot = chain.index() as usize;
                for index in counts[slot]..self.next[slot].saturating_add(GAP_LIMIT) {
                    let pubkey = keys.signing_key(self.account, chain, index)?.public_key();
                    new.push((chain, index, pubkey));
                }
            }
        }
        for (chain, index, pubkey) in new {
            self.add_key(chain, index, pubkey)?;
        }
        Ok(())
    }

    /// Derives the key's template under the current policy and watches its outputs under every
    /// policy generation (so coins paid to addresses of a retired policy still count).
    fn add_key(&mut self, chain: KeyChain, index: u32, pubkey: PublicKey) -> Result<()> {
        let template = self.policy.template(pubkey)?;
        let current = self.policy_generation();
        for (generation, policy) in self.retired.iter().enumerate() {
            let generation = u32::try_from(generation).unwrap_or(u32::MAX);
            let spk = policy.template(pubkey)?.script_pubkey();
            self.by_spk.insert(spk, CoinOwner::Policy { chain: chain.index(), index, generation });
        }
        self.by_spk.insert(
            template.script_pubkey(),
            CoinOwner::Policy { chain: chain.index(), index, generation: current },
        );
        self.keys.push(KeyInfo { chain, index, pubkey, template });
        Ok(())
    }

    /// Makes `new` the current policy (the old one is retired: its coins stay recognized and
    /// spendable by the owner). Every derived key gets its template under `new`.
    fn rotate_policy(&mut self, new: PolicyConfig) -> Result<()> {
        new.validate()?;
        let templates: Vec<RecoveryPolicy> =
            self.keys.iter().map(|k| new.template(k.pubkey)).collect::<Result<_>>()?;
        let old = std::mem::replace(&mut self.policy, new);
        self.retired.push(old);
        let generation = self.policy_generation();
        for (k, t) in self.keys.iter_mut().zip(templates) {
            self.by_spk.insert(
                t.script_pubkey(),
                CoinOwner::Policy { chain: k.chain.index(), index: k.index, generation },
            );
            k.template = t;
        }
        Ok(())
    }

    /// Undoes [`Wallet::rotate_policy`] (when the transaction it was for cannot be built).
    fn unrotate_policy(&mut self) {
        let generation = self.policy_generation();
        let Some(old) = self.retired.pop() else { return };
        self.policy = old;
        self.by_spk
            .retain(|_, o| !matches!(o, CoinOwner::Policy { .. }) || o.generation() != generation);
        for k in &mut self.keys {
            if let Ok(t) = self.policy.template(k.pubkey) {
                k.template = t;
            }
        }
    }

    fn owner_key(&self, owner: &CoinOwner) -> Option<&KeyInfo> {
        let (CoinOwner::Policy { chain, index, .. } | CoinOwner::Pending { chain, index, .. }) =
            owner;
        self.key(KeyChain::from_index(*chain)?, *index)
    }

    fn pending_template(&self, owner: &CoinOwner) -> Option<RecoveryPending> {
        let CoinOwner::Pending { new_key, .. } = owner else { return None };
        let RecoveryPolicy::Social(s) = self.coin_template(owner)? else { return None };
        Some(s.pending(PublicKey::from_bytes(new_key).ok()?))
    }

    fn watch_pending(&mut self, owner: CoinOwner) {
        if let Some(p) = self.pending_template(&owner) {
            self.by_spk.insert(p.script_pubkey(), owner);
            if !self.pending_watch.contains(&owner) {
                self.pending_watch.push(owner);
            }
        }
    }

    // ----- chain tracking ------------------------------------------------------------------------

    /// Processes a connected block at `height` (its loss index, and `mtp` = the median-time-past
    /// of its parent, which consensus records as the new coins' `creation_mtp`): adds the
    /// wallet's new outputs, removes spent and expired coins (kept for [`Wallet::undo_block`]),
    /// drops confirmed and conflicting unconfirmed transactions, watches for recovery-pending
    /// outputs guardians create for the wallet's social coins, and tops up the keypool.
    /// Returns the number of wallet coins created and spent.
    pub fn scan_block(
        &mut self,
        block: &Block,
        height: u32,
        loss_index: u64,
        mtp: u64,
    ) -> Result<(usize, usize)> {
        let (mut created, mut spent) = (0, 0);
        for tx in &block.transactions {
            let txid = tx.txid();
            let coinbase = tx.is_coinbase();
            if !coinbase {
                for input in &tx.inputs {
                    let op = input.previous_output;
                    if let Some(coin) = self.coins.remove(&op) {
                        self.detect_guardian_spend(&coin, &input.witness);
                        self.spent.insert(op, (coin, height));
                        spent += 1;
                    }
                }
                self.remove_conflicts(tx);
            }
            self.unconfirmed.remove(&txid);
            for (vout, output) in tx.outputs.iter().enumerate() {
                let Some(owner) = self.by_spk.get(&output.script_pubkey).copied() else {
                    continue;
                };
                let outpoint = OutPoint::new(txid, vout as u32);
                self.coins.insert(
                    outpoint,
                    WalletCoin {
                        outpoint,
                        output: output.clone(),
                        height,
                        creation_mtp: mtp,
                        is_coinbase: coinbase,
                        creation_loss_index: loss_index,
                        owner,
                    },
                );
                created += 1;
                if let CoinOwner::Policy { chain, index, .. } = owner
                    && let Some(n) = self.next.get_mut(chain as usize)
                    && index >= *n
                {
                    *n = index.saturating_add(1);
                    self.top_up_if_unlocked();
                }
            }
        }
        // The expiry sweep at the new tip.
        let threshold = expiry_threshold(&self.params, loss_index);
        self.log_new_expiry_warnings(threshold);
        let expired: Vec<OutPoint> = self
            .coins
            .values()
            .filter(|c| c.creation_loss_index >= threshold)
            .map(|c| c.outpoint)
            .collect();
        for op in expired {
            if let Some(c) = self.coins.remove(&op) {
                self.spent.insert(op, (c, height));
            }
        }
        self.tip = Some(Tip { height, loss_index: Some(loss_index) });
        self.tips.push((height, loss_index));
        if self.tips.len() > TIP_HISTORY {
            self.tips.remove(0);
        }
        self.persist(false)?;
        Ok((created, spent))
    }

    /// One `tracing::warn!` line per coin that enters the last tenth of its expiry period at
    /// the new tip's `threshold` (it was not there at the previous tip, or is new).
    fn log_new_expiry_warnings(&self, threshold: u64) {
        let previous =
            self.tip.and_then(|t| t.loss_index).map(|l| expiry_threshold(&self.params, l));
        for c in self.coins.values() {
            let Some(w) = self.near_expiry(c, threshold) else { continue };
            if w.remaining == 0 || previous.is_some_and(|p| self.near_expiry(c, p).is_some()) {
                continue;
            }
            tracing::warn!(
                outpoint = %format!("{}:{}", w.outpoint.txid, w.outpoint.vout),
                value = w.value.0,
                remaining = w.remaining,
                period = w.period,
                "wallet coin near UTXO expiry, which overrides its recovery policy: move it (e.g. sendheartbeat)"
            );
        }
    }

    fn detect_guardian_spend(&mut self, coin: &WalletCoin, witness: &Witness) {
        let Some(RecoveryPolicy::Social(s)) = self.coin_template(&coin.owner) else { return };
        let items = witness.items();
        // Guardian path: [new_key, slot_1..slot_n, "", script].
        if items.len() == s.guardians().len() + 3
            && items.first().is_some_and(|k| k.len() == 32)
            && items.get(items.len() - 2).is_some_and(|b| b.is_empty())
            && let CoinOwner::Policy { chain, index, generation } = coin.owner
        {
            let mut new_key = [0u8; 32];
            new_key.copy_from_slice(&items[0]);
            self.watch_pending(CoinOwner::Pending { chain, index, new_key, generation });
        }
    }

    fn remove_conflicts(&mut self, tx: &Transaction) {
        let txid = tx.txid();
        let spends: Vec<OutPoint> = tx.inputs.iter().map(|i| i.previous_output).collect();
        self.unconfirmed.retain(|id, other| {
            *id == txid || !other.inputs.iter().any(|i| spends.contains(&i.previous_output))
        });
    }

    /// Reverts [`Wallet::scan_block`] for the block at `height` (the tip being disconnected):
    /// removes its outputs and restores the coins it spent or expired.
    pub fn undo_block(&mut self, block: &Block, height: u32) -> Result<()> {
        for tx in block.transactions.iter().rev() {
            let txid = tx.txid();
            for vout in 0..tx.outputs.len() {
                self.coins.remove(&OutPoint::new(txid, vout as u32));
            }
        }
        let restore: Vec<OutPoint> =
            self.spent.iter().filter(|(_, (_, h))| *h == height).map(|(o, _)| *o).collect();
        for op in restore {
            if let Some((c, _)) = self.spent.remove(&op) {
                self.coins.insert(op, c);
            }
        }
        self.tips.retain(|(h, _)| *h < height);
        self.tip = match (height.checked_sub(1), self.tips.last()) {
            (Some(h), Some(&(th, loss))) if th == h => {
                Some(Tip { height: h, loss_index: Some(loss) })
            }
            (Some(h), _) => Some(Tip { height: h, loss_index: None }),
            (None, _) => None,
        };
        self.persist(false)
    }

    /// Records an unconfirmed transaction that spends or pays the wallet (returns whether it
    /// did). Earlier unconfirmed transactions it conflicts with are dropped (replacement).
    pub fn add_unconfirmed(&mut self, tx: Transaction) -> Result<bool> {
        let touches = tx.inputs.iter().any(|i| self.coins.contains_key(&i.previous_output))
            || tx.outputs.iter().any(|o| self.by_spk.contains_key(&o.script_pubkey));
        if !touches || tx.is_coinbase() {
            return Ok(false);
        }
        self.remove_conflicts(&tx);
        self.unconfirmed.insert(tx.txid(), tx);
        self.persist(false)?;
        Ok(true)
    }

    /// Forgets an unconfirmed transaction (e.g. evicted from the mempool).
    pub fn abandon(&mut self, txid: &Txid) -> Result<bool> {
        let removed = self.unconfirmed.remove(txid).is_some();
        self.persist(false)?;
        Ok(removed)
    }

    /// The unconfirmed transactions the wallet knows.
    pub fn unconfirmed(&self) -> impl Iterator<Item = &Transaction> {
        self.unconfirmed.values()
    }

    /// Every confirmed wallet coin (spent-in-mempool ones included), by outpoint.
    pub fn coins(&self) -> impl Iterator<Item = &WalletCoin> {
        self.coins.values()
    }

    fn spent_in_mempool(&self, op: &OutPoint) -> bool {
        self.unconfirmed.values().any(|t| t.inputs.iter().any(|i| i.previous_output == *op))
    }

    fn is_mature(&self, c: &WalletCoin) -> bool {
        if !c.is_coinbase {
            return true;
        }
        let next = self.tip.map_or(0, |t| t.height.saturating_add(1));
        next.saturating_sub(c.height) >= self.params.coinbase_maturity
    }

    /// Confirmed mature policy coins not spent by an unconfirmed transaction.
    pub fn spendable_coins(&self) -> Vec<WalletCoin> {
        self.coins
            .values()
            .filter(|c| matches!(c.owner, CoinOwner::Policy { .. }))
            .filter(|c| self.is_mature(c) && !self.spent_in_mempool(&c.outpoint))
            .cloned()
            .collect()
    }

    /// Balances; a coin counts as expiring soon when `creation_loss_index + expiry_margin` reaches the
    /// expiry threshold of the tip's loss.
    pub fn balances(&self, expiry_margin: u64) -> Balances {
        let mut b = Balances::default();
        let threshold =
            self.tip.and_then(|t| t.loss_index).map(|l| expiry_threshold(&self.params, l));
        let add = |a: &mut Amount, v: Amount| *a = Amount(a.0.saturating_add(v.0));
        for c in self.coins.values() {
            if self.spent_in_mempool(&c.outpoint) {
                continue;
            }
            let v = c.output.value;
            match c.owner {
                CoinOwner::Pending { .. } => add(&mut b.recovery_pending, v),
                CoinOwner::Policy { .. } if self.is_mature(c) => add(&mut b.trusted, v),
                CoinOwner::Policy { .. } => add(&mut b.immature, v),
            }
            if threshold.is_some_and(|t| c.creation_loss_index.saturating_add(expiry_margin) >= t) {
                add(&mut b.expiring_soon, v);
            }
        }
        for tx in self.unconfirmed.values() {
            for o in &tx.outputs {
                if self.by_spk.contains_key(&o.script_pubkey) {
                    add(&mut b.pending, o.value);
                }
            }
        }
        b
    }

    fn deadline(c: &WalletCoin, lock: RelativeLock) -> Deadline {
        match lock {
            RelativeLock::Blocks(n) => Deadline::Height(c.height.saturating_add(u32::from(n))),
            RelativeLock::Time(_) => Deadline::MedianTime(
                c.creation_mtp.saturating_add(u64::from(lock.seconds().unwrap_or(0))),
            ),
        }
    }

    /// `getrecoveryinfo`: the policy and, per coin, which non-owner path exists and when it
    /// opens.
    pub fn recovery_info(&self) -> RecoveryInfo {
        let coins = self
            .coins
            .values()
            .map(|c| {
                let policy = self.policy_of(c.owner.generation()).unwrap_or(&self.policy);
                let (path, deadline) = match (&c.owner, policy) {
                    (CoinOwner::Pending { .. }, PolicyConfig::Social { cancel_window, .. }) => {
                        ("claim", Some(Self::deadline(c, *cancel_window)))
                    }
                    (_, PolicyConfig::Heartbeat { interval, .. }) => {
                        ("recovery", Some(Self::deadline(c, *interval)))
                    }
                    (_, PolicyConfig::Social { .. }) => ("guardians", None),
                    (_, PolicyConfig::EmissionReturn { inactivity }) => {
                        ("sweep", Some(Self::deadline(c, *inactivity)))
                    }
                };
                CoinRecovery {
                    outpoint: format!("{}:{}", c.outpoint.txid, c.outpoint.vout),
                    value: c.output.value,
                    height: c.height,
                    path,
                    deadline,
                }
            })
            .collect();
        RecoveryInfo { policy: self.policy.to_json(), tip_height: self.tip_height(), coins }
    }

    // ----- spending ------------------------------------------------------------------------------

    fn check_destination(&self, address: &Address) -> Result<Vec<u8>> {
        if address.network() != self.network {
            return Err(WalletError::WrongNetwork {
                expected: self.network,
                found: address.network(),
            });
        }
        let spk = address.script_pubkey();
        match classify(&spk) {
            OutputKind::Key | OutputKind::ScriptHash => Ok(spk),
            _ => Err(WalletError::NonStandardDestination),
        }
    }

    /// The owner-path witness for a coin, with `sig` as signature.
    fn owner_witness(&self, owner: &CoinOwner, sig: Vec<u8>) -> Option<(Witness, Vec<u8>)> {
        match owner {
            CoinOwner::Policy { .. } => {
                let t = self.coin_template(owner)?;
                Some((t.owner_witness(sig), t.witness_script()))
            }
            CoinOwner::Pending { .. } => {
                let p = self.pending_template(owner)?;
                Some((p.cancel_witness(sig), p.witness_script()))
            }
        }
    }

    fn input_size(&self, owner: &CoinOwner) -> usize {
        let w = self.owner_witness(owner, vec![0; 64]).map(|(w, _)| w).unwrap_or_default();
        41 + witness_size(&w)
    }

    /// Builds, signs and records (as unconfirmed) a transaction paying `recipients` at
    /// `fee_rate`, with change to a fresh change address of the policy. Inputs signal RBF.
    pub fn send(
        &mut self,
        recipients: &[(Address, Amount)],
        fee_rate: FeeRate,
    ) -> Result<CreatedTx> {
        let mut outputs = Vec::with_capacity(recipients.len());
        for (a, v) in recipients {
            if *v < DUST_LIMIT || !v.is_valid_money() {
                return Err(WalletError::InvalidAmount(format!("{v} RNT")));
            }
            outputs.push(TxOut { value: *v, script_pubkey: self.check_destination(a)? });
        }
        if outputs.is_empty() {
            return Err(WalletError::InvalidAmount("no recipients".into()));
        }
        self.keys()?;
        let coins = self.spendable_coins();
        let created = self.fund(coins, outputs, fee_rate, false)?;
        self.add_unconfirmed(created.tx.clone())?;
        Ok(created)
    }

    /// Selects coins for `outputs` (all of `candidates` when `spend_all`, the last output then
    /// receiving everything after the fee), adds change, signs.
    fn fund(
        &mut self,
        candidates: Vec<WalletCoin>,
        outputs: Vec<TxOut>,
        fee_rate: FeeRate,
        spend_all: bool,
    ) -> Result<CreatedTx> {
        let out_sum = outputs.iter().try_fold(0u64, |a, o| a.checked_add(o.value.0));
        let out_sum = out_sum.ok_or_else(|| WalletError::InvalidAmount("overflow".into()))?;
        let available: u64 = candidates.iter().map(|c| c.output.value.0).sum();
        let chosen: Vec<WalletCoin> = if spend_all {
            candidates
        } else {
            let base = 4 + 2 + 1 + 1 + outputs.iter().map(output_size).sum::<usize>() + 4;
            let effective: Vec<i64> = candidates
                .iter()
                .map(|c| {
                    c.output.value.0 as i64 - fee_rate.fee_for(self.input_size(&c.owner)).0 as i64
                })
                .collect();
            let change_fee = fee_rate.fee_for(43).0 as i64;
            let target = out_sum as i64 + fee_rate.fee_for(base).0 as i64;
            let sel = select_coins(
                &effective,
                target,
                change_fee + DUST_LIMIT.0 as i64,
                change_fee + DUST_LIMIT.0 as i64,
            )
            .ok_or(WalletError::InsufficientFunds { needed: target as u64, available })?;
            sel.chosen.iter().map(|&i| candidates[i].clone()).collect()
        };
        if chosen.is_empty() {
            return Err(WalletError::InsufficientFunds { needed: out_sum, available });
        }
        let in_sum: u64 = chosen.iter().map(|c| c.output.value.0).sum();
        let mut tx = Transaction {
            version: TX_VERSION,
            inputs: chosen
                .iter()
                .map(|c| TxIn {
                    previous_output: c.outpoint,
                    script_sig: Vec::new(),
                    sequence: RBF_SEQUENCE,
                    witness: Witness::new(),
                })
                .collect(),
            outputs,
            lock_time: 0,
        };
        let spent: Vec<TxOut> = chosen.iter().map(|c| c.output.clone()).collect();
        let owners: Vec<CoinOwner> = chosen.iter().map(|c| c.owner).collect();
        let mut change_index = None;
        if spend_all {
            let size = self.dummy_size(&tx, &owners);
            let fee = fee_rate.fee_for(size).0;
            let rest = in_sum.checked_sub(fee).filter(|v| *v >= DUST_LIMIT.0).ok_or(
                WalletError::InsufficientFunds { needed: fee + DUST_LIMIT.0, available: in_sum },
            )?;
            if let Some(last) = tx.outputs.last_mut() {
                last.value = Amount(rest);
            }
        } else {
            let change_t = self.fresh(KeyChain::Change)?;
            tx.outputs.push(change_t.output(Amount::ZERO));
            let size = self.dummy_size(&tx, &owners);
            let fee = fee_rate.fee_for(size).0;
            match in_sum.checked_sub(out_sum).and_then(|r| r.checked_sub(fee)) {
                Some(change) if change >= DUST_LIMIT.0 => {
                    if let Some(o) = tx.outputs.last_mut() {
                        o.value = Amount(change);
                    }
                    change_index = Some(tx.outputs.len() - 1);
                }
                _ => {
                    tx.outputs.pop();
                    let size = self.dummy_size(&tx, &owners);
                    let fee = fee_rate.fee_for(size).0;
                    if in_sum < out_sum.saturating_add(fee) {
                        return Err(WalletError::InsufficientFunds {
                            needed: out_sum.saturating_add(fee),
                            available,
                        });
                    }
                }
            }
        }
        self.sign_owned(&mut tx, &spent)?;
        let fee = Amount(in_sum - tx.outputs.iter().map(|o| o.value.0).sum::<u64>());
        Ok(CreatedTx { tx, fee, change_index })
    }

    fn dummy_size(&self, tx: &Transaction, owners: &[CoinOwner]) -> usize {
        let mut t = tx.clone();
        for (i, o) in t.inputs.iter_mut().zip(owners) {
            i.witness = self.owner_witness(o, vec![0; 64]).map(|(w, _)| w).unwrap_or_default();
        }
        t.total_size()
    }

    /// Signs every input whose spent output belongs to the wallet (owner path; cancel path for
    /// recovery-pending outputs). Returns how many inputs were signed.
    fn sign_owned(&self, tx: &mut Transaction, spent: &[TxOut]) -> Result<usize> {
        if spent.len() != tx.inputs.len() {
            return Err(WalletError::InvalidTransaction("one spent output per input".into()));
        }
        let keys = self.keys()?;
        let mut witnesses = Vec::new();
        {
            let genesis = self.params.genesis_hash();
            let cache = SighashCache::new(&genesis, tx, spent)?;
            for (i, s) in spent.iter().enumerate() {
                let Some(owner) = self.by_spk.get(&s.script_pubkey) else { continue };
                let Some(k) = self.owner_key(owner) else { continue };
                let key: SigningKey = keys.signing_key(self.account, k.chain, k.index)?;
                let (_, script) = self
                    .owner_witness(owner, Vec::new())
                    .ok_or_else(|| WalletError::Script("unknown template".into()))?;
                let sig = cache.sign(&key, i, &script, SighashType::All)?;
                let (w, _) = self
                    .owner_witness(owner, sig)
                    .ok_or_else(|| WalletError::Script("unknown template".into()))?;
                witnesses.push((i, w));
            }
        }
        let n = witnesses.len();
        for (i, w) in witnesses {
            if let Some(input) = tx.inputs.get_mut(i) {
                input.witness = w;
            }
        }
        Ok(n)
    }

    /// Signs the inputs of `tx` the wallet owns (`spent_outputs`: one per input, in order).
    /// Returns the transaction and whether every input now has a witness.
    pub fn sign_raw_transaction(
        &self,
        mut tx: Transaction,
        spent_outputs: &[TxOut],
    ) -> Result<(Transaction, bool)> {
        self.sign_owned(&mut tx, spent_outputs)?;
        let complete = tx.inputs.iter().all(|i| !i.witness.is_empty());
        Ok((tx, complete))
    }

    /// Replaces the unconfirmed wallet transaction `txid` by one spending the same inputs at
    /// `new_fee_rate` (at least the old fee plus the incremental relay fee), paid from its
    /// change output (dropped if it falls below dust). Records the replacement.
    pub fn bump_fee(&mut self, txid: &Txid, new_fee_rate: FeeRate) -> Result<CreatedTx> {
        let old = self
            .unconfirmed
            .get(txid)
            .cloned()
            .ok_or_else(|| WalletError::UnknownTransaction(txid.to_string()))?;
        if !old.inputs.iter().all(|i| i.sequence < 0xFFFF_FFFE) {
            return Err(WalletError::BumpFee("transaction does not signal replaceability".into()));
        }
        let spent: Vec<TxOut> = old
            .inputs
            .iter()
            .map(|i| {
                self.coins.get(&i.previous_output).map(|c| c.output.clone()).ok_or_else(|| {
                    WalletError::BumpFee("spends a coin that is not the wallet's".into())
                })
            })
            .collect::<Result<_>>()?;
        let in_sum: u64 = spent.iter().map(|o| o.value.0).sum();
        let out_sum: u64 = old.outputs.iter().map(|o| o.value.0).sum();
        let old_fee = in_sum.saturating_sub(out_sum);
        let size = old.total_size();
        let new_fee = new_fee_rate
            .fee_for(size)
            .0
            .max(old_fee.saturating_add(INCREMENTAL_RELAY_FEE.fee_for(size).0));
        let change_idx = old
            .outputs
            .iter()
            .rposition(|o| {
                matches!(
                    self.by_spk.get(&o.script_pubkey),
                    Some(CoinOwner::Policy { chain: 1, .. })
                )
            })
            .ok_or_else(|| WalletError::BumpFee("no change output to pay the fee from".into()))?;
        let extra = new_fee - old_fee;
        let mut tx = old.clone();
        let change = tx.outputs[change_idx].value.0;
        let mut change_index = Some(change_idx);
        match change.checked_sub(extra) {
            Some(c) if c >= DUST_LIMIT.0 => tx.outputs[change_idx].value = Amount(c),
            Some(_) if tx.outputs.len() > 1 => {
                tx.outputs.remove(change_idx);
                change_index = None;
            }
            _ => return Err(WalletError::BumpFee("change too small for the new fee".into())),
        }
        for i in &mut tx.inputs {
            i.witness = Witness::new();
        }
        self.sign_owned(&mut tx, &spent)?;
        let fee = Amount(in_sum - tx.outputs.iter().map(|o| o.value.0).sum::<u64>());
        self.unconfirmed.remove(txid);
        self.add_unconfirmed(tx.clone())?;
        Ok(CreatedTx { tx, fee, change_index })
    }

    /// Proves life: sends the policy coins whose recovery/sweep deadline is at most `within`
    /// blocks away (all coins with `None`; time-locked deadlines count as near) to one fresh
    /// receive address, restarting their intervals. Records the transaction.
    pub fn send_heartbeat(&mut self, fee_rate: FeeRate, within: Option<u32>) -> Result<CreatedTx> {
        self.keys()?;
        let tip = self.tip_height().unwrap_or(0);
        let lock = self.policy.coin_lock();
        let coins: Vec<WalletCoin> = self
            .spendable_coins()
            .into_iter()
            .filter(|c| match (within, lock) {
                (None, _) | (_, None) => true,
                (Some(w), Some(l)) => match Self::deadline(c, l) {
                    Deadline::Height(h) => h <= tip.saturating_add(w),
                    Deadline::MedianTime(_) => true,
                },
            })
            .collect();
        if coins.is_empty() {
            return Err(WalletError::InsufficientFunds { needed: 1, available: 0 });
        }
        let dest = self.fresh(KeyChain::Receive)?;
        let created = self.fund(coins, vec![dest.output(Amount::ZERO)], fee_rate, true)?;
        self.add_unconfirmed(created.tx.clone())?;
        Ok(created)
    }

    /// Cancels social recoveries: spends every recovery-pending output of the wallet (owner
    /// path) to a fresh receive address under a policy whose guardians differ from those who
    /// started the recovery, so a hostile quorum cannot simply start again after every cancel.
    ///
    /// With `new_policy`, the wallet first rotates to it (it becomes the current policy; coins of
    /// the old one stay recognized and spendable). Without, the current policy is the
    /// destination, which only works if the wallet already rotated since the coins were locked.
    /// Either way [`WalletError::SameGuardians`] if the destination is a social policy with the
    /// same guardian set (in any order, any threshold) as a cancelled coin's policy; nothing is
    /// changed then. Records the transaction.
    pub fn cancel_recovery(
        &mut self,
        fee_rate: FeeRate,
        new_policy: Option<PolicyConfig>,
    ) -> Result<CreatedTx> {
        self.keys()?;
        let coins: Vec<WalletCoin> = self
            .coins
            .values()
            .filter(|c| matches!(c.owner, CoinOwner::Pending { .. }))
            .filter(|c| !self.spent_in_mempool(&c.outpoint))
            .cloned()
            .collect();
        if coins.is_empty() {
            return Err(WalletError::UnknownCoin("no recovery-pending output".into()));
        }
        if let Some(p) = &new_policy {
            p.validate()?;
        }
        let destination = new_policy.as_ref().unwrap_or(&self.policy);
        for c in &coins {
            if self
                .policy_of(c.owner.generation())
                .is_some_and(|old| same_guardians(old, destination))
            {
                return Err(WalletError::SameGuardians);
            }
        }
        let rotated = match new_policy {
            Some(p) => {
                self.rotate_policy(p)?;
                true
            }
            None => false,
        };
        let next = self.next;
        let built = self
            .fresh(KeyChain::Receive)
            .and_then(|dest| self.fund(coins, vec![dest.output(Amount::ZERO)], fee_rate, true));
        let created = match built {
            Ok(c) => c,
            Err(e) => {
                if rotated {
                    self.unrotate_policy();
                    self.next = next;
                    self.persist(false)?;
                }
                return Err(e);
            }
        };
        self.add_unconfirmed(created.tx.clone())?;
        Ok(created)
    }

    /// Policy-protected coins (policy and recovery-pending outputs, confirmed and unspent)
    /// within the last tenth of their expiry period: `remaining · 10 ≤ period` (see
    /// [`ExpiryWarning`]). Empty until the tip's loss index is known.
    pub fn expiry_warnings(&self) -> Vec<ExpiryWarning> {
        let Some(tip_loss) = self.tip.and_then(|t| t.loss_index) else { return Vec::new() };
        let threshold = expiry_threshold(&self.params, tip_loss);
        self.coins.values().filter_map(|c| self.near_expiry(c, threshold)).collect()
    }

    /// The warning for `c` if it is within the last tenth of its expiry period at `threshold`.
    fn near_expiry(&self, c: &WalletCoin, threshold: u64) -> Option<ExpiryWarning> {
        let remaining = threshold.checked_sub(c.creation_loss_index)?;
        let period = expiry_threshold(&self.params, c.creation_loss_index)
            .saturating_sub(c.creation_loss_index);
        near_expiry(remaining, period).then_some(ExpiryWarning {
            outpoint: c.outpoint,
            value: c.output.value,
            remaining,
            period,
        })
    }

    /// The expiry distance of a coin: `(remaining, period)` as in [`ExpiryWarning`], `None` if
    /// the tip's loss index is unknown.
    pub fn expiry_distance(&self, coin: &WalletCoin) -> Option<(u64, u64)> {
        let tip_loss = self.tip.and_then(|t| t.loss_index)?;
        let remaining =
            expiry_threshold(&self.params, tip_loss).saturating_sub(coin.creation_loss_index);
        let period = expiry_threshold(&self.params, coin.creation_loss_index)
            .saturating_sub(coin.creation_loss_index);
        Some((remaining, period))
    }

    /// Signs a guardian recovery request with this wallet's guardian key. The request must be for
    /// the wallet's chain ([`WalletError::WrongChain`] otherwise: the signatures would be invalid).
    pub fn sign_recovery_request(&self, request: &mut RecoveryRequest) -> Result<()> {
        let key = self.keys()?.signing_key(self.account, KeyChain::Guardian, 0)?;
        let genesis = self.genesis_hash();
        if request.genesis != genesis {
            return Err(WalletError::WrongChain { expected: genesis, found: request.genesis });
        }
        request.sign(&key)
    }

    /// The genesis id of the wallet's chain: what its signatures commit to.
    pub fn genesis_hash(&self) -> BlockHash {
        self.params.genesis_hash()
    }

    /// The consensus parameters the wallet follows (maturity, expiry, and the genesis id its
    /// signatures commit to): `ChainParams::for_network(network)` unless
    /// [`Wallet::set_chain_params`] changed them. Not stored in the file.
    pub fn chain_params(&self) -> &ChainParams {
        &self.params
    }

    /// Follows `params` instead of the network's defaults, e.g. a regtest node started with a
    /// custom initial required improvement, which changes its genesis block (and so the genesis
    /// id every signature must commit to). [`WalletError::WrongNetwork`] if `params` are for
    /// another network.
    pub fn set_chain_params(&mut self, params: ChainParams) -> Result<()> {
        if params.network != self.network {
            return Err(WalletError::WrongNetwork {
                expected: self.network,
                found: params.network,
            });
        }
        self.params = params;
        Ok(())
    }

    /// The owner signing key of `(chain, index)` (needs an unlocked wallet; for tools).
    pub fn signing_key(&self, chain: KeyChain, index: u32) -> Result<SigningKey> {
        self.keys()?.signing_key(self.account, chain, index)
    }

    /// The 24 words (needs an unlocked wallet).
    pub fn mnemonic(&self) -> Result<Mnemonic> {
        Ok(self.keys()?.secret.mnemonic())
    }

    // ----- backups -------------------------------------------------------------------------------

    /// Writes an encrypted backup of the wallet (versioned export: words, BIP39 passphrase,
    /// network, account, policy, next indices) to `path` in rnet-crypto's backup format.
    pub fn backup(&self, path: &Path, passphrase: &str, params: BackupParams) -> Result<()> {
        if passphrase.is_empty() {
            return Err(WalletError::EmptyPassphrase);
        }
        let keys = self.keys()?;
        let export = Export {
            format: "rnet-wallet-export".into(),
            version: EXPORT_VERSION,
            network: self.network.to_string(),
            account: self.account,
            policy: self.policy.to_stored(),
            retired: self.retired.iter().map(PolicyConfig::to_stored).collect(),
            entropy: hex::encode(keys.secret.entropy),
            bip39_passphrase: keys.secret.bip39_passphrase.clone(),
            next: self.next,
        };
        let plain = Zeroizing::new(
            serde_json::to_vec(&export).map_err(|e| WalletError::Corrupt(e.to_string()))?,
        );
        let blob = encrypt_backup(&plain, passphrase.as_bytes(), params)?;
        std::fs::write(path, blob)?;
        Ok(())
    }

    /// Creates the wallet file `wallet_path` from an encrypted backup; feed it blocks to rescan.
    pub fn restore_backup(
        backup_path: &Path,
        passphrase: &str,
        wallet_path: &Path,
        encryption: Option<Encryption>,
    ) -> Result<Self> {
        let blob = std::fs::read(backup_path)?;
        let plain = decrypt_backup(&blob, passphrase.as_bytes())?;
        let export: Export = serde_json::from_slice(&plain)
            .map_err(|e| WalletError::Corrupt(format!("backup contents: {e}")))?;
        if export.format != "rnet-wallet-export" || export.version != EXPORT_VERSION {
            return Err(WalletError::Corrupt("unknown backup export version".into()));
        }
        let network: Network =
            export.network.parse().map_err(|_| WalletError::Corrupt("network".into()))?;
        let mut entropy = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(&export.entropy, entropy.as_mut())
            .map_err(|_| WalletError::Corrupt("entropy".into()))?;
        let mnemonic = Mnemonic::from_entropy(&entropy);
        let policy = PolicyConfig::from_stored(&export.policy)?;
        let retired =
            export.retired.iter().map(PolicyConfig::from_stored).collect::<Result<Vec<_>>>()?;
        let mut w = Self::create(
            wallet_path,
            network,
            &mnemonic,
            &export.bip39_passphrase,
            policy,
            encryption,
        )?;
        if !retired.is_empty() {
            // Re-derive with the generations known, so every key watches every generation.
            w.retired = retired;
            w.by_spk.clear();
            let keys: Vec<(KeyChain, u32, PublicKey)> =
                w.keys.drain(..).map(|k| (k.chain, k.index, k.pubkey)).collect();
            for (chain, index, pubkey) in keys {
                w.add_key(chain, index, pubkey)?;
            }
        }
        w.next = export.next;
        w.top_up()?;
        w.persist(false)?;
        Ok(w)
    }

    // ----- persistence ---------------------------------------------------------------------------

    fn state_bytes(&self) -> Result<Vec<u8>> {
        let state = State {
            version: STATE_VERSION,
            network: self.network.to_string(),
            account: self.account,
            policy: self.policy.to_stored(),
            retired: self.retired.iter().map(PolicyConfig::to_stored).collect(),
            encrypted: self.encrypted,
            keys: self
                .keys
                .iter()
                .map(|k| (k.chain.index(), k.index, *k.pubkey.as_bytes()))
                .collect(),
            next: self.next,
            guardian_key: *self.guardian_key.as_bytes(),
            pending_watch: self.pending_watch.clone(),
            coins: self.coins.values().map(StoredCoin::from).collect(),
            spent: self.spent.values().map(|(c, h)| (StoredCoin::from(c), *h)).collect(),
            unconfirmed: self.unconfirmed.values().map(|t| hex::encode(t.to_bytes())).collect(),
            tips: self.tips.clone(),
            tip: self.tip.map(|t| (t.height, t.loss_index)),
        };
        serde_json::to_vec(&state).map_err(|e| WalletError::Corrupt(e.to_string()))
    }

    fn persist(&self, with_secret: bool) -> Result<()> {
        let state = self.state_bytes()?;
        store::write(&self.db, with_secret.then_some(&self.secret_blob[..]), &state)
    }
}

/// The warning rule: `remaining` loss-index units left of a coin's expiry `period` are at most
/// a tenth of it (`remaining · 10 ≤ period`).
pub fn near_expiry(remaining: u64, period: u64) -> bool {
    u128::from(remaining) * 10 <= u128::from(period)
}

/// Whether both policies are social with the same guardian set (order and threshold ignored).
fn same_guardians(a: &PolicyConfig, b: &PolicyConfig) -> bool {
    match (a, b) {
        (PolicyConfig::Social { guardians: x, .. }, PolicyConfig::Social { guardians: y, .. }) => {
            x.len() == y.len() && x.iter().all(|g| y.contains(g))
        }
        _ => false,
    }
}

/// Serialized size of a witness (item count + items).
fn witness_size(w: &Witness) -> usize {
    compact_size_len(w.len())
        + w.items().iter().map(|i| compact_size_len(i.len()) + i.len()).sum::<usize>()
}

fn output_size(o: &TxOut) -> usize {
    8 + compact_size_len(o.script_pubkey.len()) + o.script_pubkey.len()
}

fn compact_size_len(n: usize) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

#[derive(Serialize, Deserialize)]
struct Export {
    format: String,
    version: u32,
    network: String,
    account: u32,
    policy: StoredPolicy,
    /// Policies of earlier generations, so a restored wallet recognizes their coins.
    #[serde(default)]
    retired: Vec<StoredPolicy>,
    entropy: String,
    bip39_passphrase: String,
    next: [u32; 2],
}

impl Drop for Export {
    fn drop(&mut self) {
        self.entropy.zeroize();
        self.bip39_passphrase.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct StoredCoin {
    txid: [u8; 32],
    vout: u32,
    value: u64,
    script_pubkey: String,
    height: u32,
    creation_mtp: u64,
    is_coinbase: bool,
    creation_loss_index: u64,
    owner: CoinOwner,
}

impl From<&WalletCoin> for StoredCoin {
    fn from(c: &WalletCoin) -> Self {
        Self {
            txid: c.outpoint.txid.to_bytes(),
            vout: c.outpoint.vout,
            value: c.output.value.0,
            script_pubkey: hex::encode(&c.output.script_pubkey),
            height: c.height,
            creation_mtp: c.creation_mtp,
            is_coinbase: c.is_coinbase,
            creation_loss_index: c.creation_loss_index,
            owner: c.owner,
        }
    }
}

impl StoredCoin {
    fn into_coin(self) -> Result<WalletCoin> {
        let outpoint = OutPoint::new(Txid::from_bytes(self.txid), self.vout);
        let script_pubkey =
            hex::decode(&self.script_pubkey).map_err(|_| WalletError::Corrupt("coin".into()))?;
        Ok(WalletCoin {
            outpoint,
            output: TxOut { value: Amount(self.value), script_pubkey },
            height: self.height,
            creation_mtp: self.creation_mtp,
            is_coinbase: self.is_coinbase,
            creation_loss_index: self.creation_loss_index,
            owner: self.owner,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct State {
    version: u32,
    network: String,
    account: u32,
    policy: StoredPolicy,
    /// Policies of earlier generations (absent in files written before rotation existed).
    #[serde(default)]
    retired: Vec<StoredPolicy>,
    encrypted: bool,
    keys: Vec<(u32, u32, [u8; 32])>,
    next: [u32; 2],
    guardian_key: [u8; 32],
    pending_watch: Vec<CoinOwner>,
    coins: Vec<StoredCoin>,
    spent: Vec<(StoredCoin, u32)>,
    unconfirmed: Vec<String>,
    tips: Vec<(u32, u64)>,
    tip: Option<(u32, Option<u64>)>,
}

impl State {
    /// Parses stored state bytes, migrating older versions. Version 1 predates Proof-of-Training
    /// v2 and version 2 predates network-tagged coinbases: each time every network got a new
    /// genesis, which made every chain the state recorded obsolete, so its chain data (coins,
    /// spends, unconfirmed transactions, tips) is dropped and feeding the wallet blocks (a
    /// rescan) rebuilds it; policy and indices are kept. Mainnet keys are kept too. Before
    /// version 3, testnet and regtest keys were derived under coin type 9555: they (and the
    /// recovery-pending outputs watched for them) are dropped and the second value is `true`,
    /// telling [`Wallet::open`] to derive them again under coin type 1.
    fn decode(bytes: &[u8]) -> Result<(State, bool)> {
        let corrupt = |e: serde_json::Error| WalletError::Corrupt(e.to_string());
        let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(corrupt)?;
        let mut rederive = false;
        if let Some(1 | 2) = value.get("version").and_then(serde_json::Value::as_u64) {
            for list in ["coins", "spent", "unconfirmed", "tips"] {
                value[list] = serde_json::Value::Array(Vec::new());
            }
            value["tip"] = serde_json::Value::Null;
            let network = value.get("network").and_then(serde_json::Value::as_str);
            if network.and_then(|n| n.parse::<Network>().ok()) != Some(Network::Mainnet) {
                value["keys"] = serde_json::Value::Array(Vec::new());
                value["pending_watch"] = serde_json::Value::Array(Vec::new());
                rederive = true;
            }
            value["version"] = STATE_VERSION.into();
        }
        Ok((serde_json::from_value(value).map_err(corrupt)?, rederive))
    }

    fn into_wallet(
        self,
        db: Database,
        path: &Path,
        secret_blob: Zeroizing<Vec<u8>>,
    ) -> Result<Wallet> {
        let corrupt = |s: &str| WalletError::Corrupt(s.to_owned());
        if self.version != STATE_VERSION {
            return Err(corrupt("unknown wallet state version"));
        }
        let network: Network = self.network.parse().map_err(|_| corrupt("network"))?;
        let policy = PolicyConfig::from_stored(&self.policy)?;
        let retired =
            self.retired.iter().map(PolicyConfig::from_stored).collect::<Result<Vec<_>>>()?;
        let guardian_key = PublicKey::from_bytes(&self.guardian_key).map_err(|_| corrupt("key"))?;
        let mut w = Wallet {
            db,
            path: path.to_owned(),
            network,
            params: ChainParams::for_network(network),
            account: self.account,
            policy,
            retired,
            keys: Vec::new(),
            by_spk: HashMap::new(),
            pending_watch: Vec::new(),
            next: self.next,
            guardian_key,
            coins: BTreeMap::new(),
            spent: BTreeMap::new(),
            unconfirmed: BTreeMap::new(),
            tips: self.tips,
            tip: self.tip.map(|(height, loss_index)| Tip { height, loss_index }),
            secret_blob,
            encrypted: self.encrypted,
            unlocked: None,
        };
        for (chain, index, pk) in self.keys {
            let chain = KeyChain::from_index(chain).ok_or_else(|| corrupt("key chain"))?;
            let pk = PublicKey::from_bytes(&pk).map_err(|_| corrupt("key"))?;
            w.add_key(chain, index, pk)?;
        }
        for owner in self.pending_watch {
            w.watch_pending(owner);
        }
        for c in self.coins {
            let c = c.into_coin()?;
            w.coins.insert(c.outpoint, c);
        }
        for (c, h) in self.spent {
            let c = c.into_coin()?;
            w.spent.insert(c.outpoint, (c, h));
        }
        for t in self.unconfirmed {
            let bytes = hex::decode(t).map_err(|_| corrupt("tx"))?;
            let tx = Transaction::from_bytes(&bytes).map_err(|_| corrupt("tx"))?;
            w.unconfirmed.insert(tx.txid(), tx);
        }
        Ok(w)
    }
}

#[cfg(test)]
mod state_version_tests {
    use super::*;
    use crate::keys::key_path;
    use rnet_crypto::{ExtendedSecretKey, SigningKey};
    use rnet_script::RelativeLock;

    fn policy() -> PolicyConfig {
        PolicyConfig::Heartbeat {
            recovery: SigningKey::from_bytes(&[7; 32]).public_key(),
            interval: RelativeLock::Blocks(10),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rnet-wallet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The state `w` stores, rewritten as an older `version` with some chain data.
    fn as_old_state(w: &Wallet, version: u32) -> serde_json::Value {
        let mut state: serde_json::Value =
            serde_json::from_slice(&w.state_bytes().unwrap()).unwrap();
        state["version"] = version.into();
        let old_coin = serde_json::json!({
            "txid": vec![1u8; 32], "vout": 0, "value": 5_000_000_000u64, "script_pubkey": "00",
            "height": 3, "creation_mtp": 1_700_000_000u64, "is_coinbase": true,
            "creation_loss": 5_411_532u64, "creation_loss_index": 5_411_532u64,
            "owner": { "Policy": { "chain": 0, "index": 0 } },
        });
        state["coins"] = serde_json::json!([old_coin]);
        state["tips"] = serde_json::json!([[3, 5_411_532u64]]);
        state["tip"] = serde_json::json!([3, 5_411_532u64]);
        state
    }

    /// Mainnet wallet files written before Proof-of-Training v2 (state version 1: coins record
    /// `creation_loss`, tips the old chain's losses) or before network-tagged coinbases (version
    /// 2) still open: keys, policy and indices are kept, the chain data of the old chain is
    /// dropped, and a rescan rebuilds it.
    #[test]
    fn old_mainnet_wallets_open_with_their_keys_and_without_old_chain_data() {
        let dir = temp_dir("old-mainnet");
        for version in [1, 2] {
            let path = dir.join(format!("v{version}.wallet"));
            let words = Mnemonic::from_entropy(&[5; 32]);
            let mut w =
                Wallet::create(&path, Network::Mainnet, &words, "", policy(), None).unwrap();
            let address = w.new_address().unwrap();
            let guardian = w.guardian_public_key();
            let state = as_old_state(&w, version);
            store::write(&w.db, None, &serde_json::to_vec(&state).unwrap()).unwrap();
            drop(w);
            let w = Wallet::open(&path).unwrap();
            assert_eq!(w.coins().count(), 0);
            assert_eq!(w.tip_height(), None);
            // Same keys: the first address is still the wallet's.
            assert!(w.is_mine(&address.script_pubkey()));
            assert_eq!(w.guardian_public_key(), guardian);
            assert_eq!(w.next_indices(), [1, 0]);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A regtest wallet file of state version 2 derived its keys under coin type 9555: opening
    /// it derives them again under coin type 1 (same indices) and forgets the old ones; an
    /// encrypted one cannot be migrated without its passphrase and is refused with a clear error.
    #[test]
    fn a_version_2_test_network_wallet_derives_its_keys_again() {
        let dir = temp_dir("v2-regtest");
        let path = dir.join("old.wallet");
        let words = Mnemonic::from_entropy(&[5; 32]);
        let mut w = Wallet::create(&path, Network::Regtest, &words, "", policy(), None).unwrap();
        let current = w.new_address().unwrap();
        // What version 2 stored: keys derived at m/44'/9555'/… (mainnet's paths).
        let master = ExtendedSecretKey::from_seed(&words.to_seed(""));
        let old = |chain, index| {
            let path = key_path(Network::Mainnet, 0, chain, index).unwrap();
            master.derive_path(&path).signing_key().public_key()
        };
        let old_receive = old(KeyChain::Receive, 0);
        let mut state = as_old_state(&w, 2);
        state["keys"] = serde_json::json!([[0, 0, old_receive.as_bytes()]]);
        state["guardian_key"] = serde_json::json!(old(KeyChain::Guardian, 0).as_bytes());
        store::write(&w.db, None, &serde_json::to_vec(&state).unwrap()).unwrap();
        drop(w);

        let w = Wallet::open(&path).unwrap();
        assert_eq!(w.coins().count(), 0);
        assert_eq!(w.tip_height(), None);
        let old_spk = policy().template(old_receive).unwrap().script_pubkey();
        assert!(!w.is_mine(&old_spk), "the coin type 9555 key is gone");
        assert!(w.is_mine(&current.script_pubkey()), "the coin type 1 key is derived");
        let new_guardian = master
            .derive_path(&key_path(Network::Regtest, 0, KeyChain::Guardian, 0).unwrap())
            .signing_key()
            .public_key();
        assert_eq!(w.guardian_public_key(), new_guardian);
        assert_eq!(w.next_indices(), [1, 0]);
        assert_eq!(w.derived_counts(), [1 + GAP_LIMIT, GAP_LIMIT]);
        drop(w);
        // The migration was written: the file now opens as version 3 with the same keys.
        let w = Wallet::open(&path).unwrap();
        assert!(w.is_mine(&current.script_pubkey()));
        assert_eq!(w.guardian_public_key(), new_guardian);
        drop(w);

        // Encrypted: refused, and the file is left as it was.
        let path = dir.join("encrypted.wallet");
        let enc = Encryption::new("pass").with_params(BackupParams {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        });
        let w = Wallet::create(&path, Network::Testnet, &words, "", policy(), Some(enc)).unwrap();
        let state = as_old_state(&w, 2);
        store::write(&w.db, None, &serde_json::to_vec(&state).unwrap()).unwrap();
        drop(w);
        assert!(matches!(
            Wallet::open(&path),
            Err(WalletError::LegacyKeys { network: Network::Testnet })
        ));
        assert!(matches!(
            Wallet::open(&path),
            Err(WalletError::LegacyKeys { network: Network::Testnet })
        ));

        // A state version from the future is refused.
        let path = dir.join("future.wallet");
        let w = Wallet::create(&path, Network::Regtest, &words, "", policy(), None).unwrap();
        let state = as_old_state(&w, STATE_VERSION + 1);
        store::write(&w.db, None, &serde_json::to_vec(&state).unwrap()).unwrap();
        drop(w);
        assert!(matches!(Wallet::open(&path), Err(WalletError::Corrupt(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
