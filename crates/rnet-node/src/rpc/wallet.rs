//! Wallet methods (Bitcoin Core shapes where Core has them) on the wallets of
//! `crate::wallets`: wallet management, addresses, balances, coins, history, sending, RBF,
//! raw-transaction signing, rescans, backups, encryption, and the recovery-policy methods.
//!
//! The wallet is chosen by the request path `/wallet/<name>`; with exactly one wallet loaded the
//! plain path uses it. Handlers never take the chainstate or mempool lock while holding a wallet
//! lock (see `crate::wallets`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rnet_crypto::{BackupParams, Mnemonic};
use rnet_mempool::FeeRate;
use rnet_primitives::{Address, Amount, Network, OutPoint, Transaction, TxOut, Txid};
use rnet_rpc::{MethodInfo, Params, RegisterError, Registry, RpcError, codes};
use rnet_wallet::{
    CreatedTx, Deadline, Encryption, PolicyConfig, Wallet, WalletError, parse_key_or_address,
    parse_lock,
};
use serde_json::{Value, json};

use super::json::amount_json;
use super::{chain_err, param_hex, param_txid, reg};
use crate::node::Node;
use crate::wallets::{WalletEntry, lock_entry, log_path, valid_name, wallet_path};

type Entry = Arc<Mutex<WalletEntry>>;

/// Default confirmation target for fee estimation.
const DEFAULT_CONF_TARGET: u32 = 6;
/// Longest `walletpassphrase` timeout (Core's cap).
const MAX_UNLOCK_SECS: u64 = 100_000_000;

fn wallet_err(e: WalletError) -> RpcError {
    match e {
        WalletError::Locked => RpcError::new(
            codes::RPC_WALLET_UNLOCK_NEEDED,
            "Error: Please enter the wallet passphrase with walletpassphrase first.",
        ),
        WalletError::WrongPassphrase => RpcError::new(
            codes::RPC_WALLET_PASSPHRASE_INCORRECT,
            "Error: The wallet passphrase entered was incorrect.",
        ),
        WalletError::NotEncrypted => RpcError::new(
            codes::RPC_WALLET_WRONG_ENC_STATE,
            "Error: running with an unencrypted wallet, but a passphrase method was called.",
        ),
        WalletError::AlreadyEncrypted => RpcError::new(
            codes::RPC_WALLET_WRONG_ENC_STATE,
            "Error: running with an encrypted wallet, but encryptwallet was called.",
        ),
        e @ WalletError::InsufficientFunds { .. } => {
            RpcError::new(codes::RPC_WALLET_INSUFFICIENT_FUNDS, format!("Insufficient funds ({e})"))
        }
        e @ (WalletError::WrongNetwork { .. } | WalletError::NonStandardDestination) => {
            RpcError::invalid_address_or_key(format!("Invalid address: {e}"))
        }
        WalletError::UnknownTransaction(_) => {
            RpcError::invalid_address_or_key("Invalid or non-wallet transaction id")
        }
        e @ (WalletError::InvalidAmount(_)
        | WalletError::Policy(_)
        | WalletError::SameGuardians
        | WalletError::WrongChain { .. }
        | WalletError::EmptyPassphrase) => RpcError::invalid_parameter(e.to_string()),
        e => RpcError::new(codes::RPC_WALLET_ERROR, e.to_string()),
    }
}

/// The wallet a request addresses (`/wallet/<name>`, or the only loaded one).
fn wallet_of(node: &Node, p: &Params) -> Result<Entry, RpcError> {
    match p.wallet() {
        Some(name) => node.wallets.get(name).ok_or_else(|| {
            RpcError::new(
                codes::RPC_WALLET_NOT_FOUND,
                "Requested wallet does not exist or is not loaded",
            )
        }),
        None => match node.wallets.single() {
            Ok(Some(w)) => Ok(w),
            Ok(None) => Err(RpcError::new(
                codes::RPC_WALLET_NOT_FOUND,
                "No wallet is loaded. Load a wallet using loadwallet or create a new one with \
                 createwallet.",
            )),
            Err(_) => Err(RpcError::new(
                codes::RPC_WALLET_NOT_SPECIFIED,
                "Wallet file not specified (must request wallet RPC through /wallet/<filename> \
                 uri-path).",
            )),
        },
    }
}

/// Argon2id cost of wallet encryption and backups (cheap on regtest so tests stay fast).
fn kdf_params(node: &Node) -> BackupParams {
    if node.network() == Network::Regtest {
        BackupParams { m_cost_kib: 8 * 1024, t_cost: 1, p_cost: 1 }
    } else {
        BackupParams::DEFAULT
    }
}

fn encryption(node: &Node, passphrase: &str) -> Encryption {
    Encryption::new(passphrase).with_params(kdf_params(node))
}

/// A signed amount in RNT (Core renders sends negative).
fn signed_amount_json(v: i128) -> Value {
    let a = amount_json(Amount(u64::try_from(v.unsigned_abs()).unwrap_or(u64::MAX)));
    match (v < 0, a.as_f64()) {
        (true, Some(f)) => json!(-f),
        _ => a,
    }
}

/// An amount parameter: a JSON number or string in RNT (8 decimals at most), > 0.
fn amount_from_value(v: &Value) -> Result<Amount, RpcError> {
    let s = match v {
        Value::Number(n) => {
            let s = n.to_string();
            if s.contains(['e', 'E']) { format!("{:.8}", n.as_f64().unwrap_or(-1.0)) } else { s }
        }
        Value::String(s) => s.clone(),
        _ => return Err(RpcError::type_error("Amount is not a number or string")),
    };
    let a = Amount::from_rnt_str(&s).map_err(|_| RpcError::type_error("Invalid amount"))?;
    if a.0 == 0 || !a.is_valid_money() {
        return Err(RpcError::type_error("Invalid amount for send"));
    }
    Ok(a)
}

fn param_address(node: &Node, s: &str) -> Result<Address, RpcError> {
    Address::from_str_for(s, node.network())
        .map_err(|_| RpcError::invalid_address_or_key(format!("Invalid address: {s}")))
}

/// The fee rate for `target` blocks: the mempool's estimate, else its minimum fee (at least the
/// minimum relay fee).
fn fee_rate(node: &Node, target: u32) -> FeeRate {
    let pool = node.mempool();
    let info = pool.info();
    let floor = info.min_relay_tx_fee.max(info.mempool_min_fee);
    pool.estimate_fee(target).unwrap_or(floor).max(floor)
}

fn conf_target(p: &Params, index: usize) -> Result<u32, RpcError> {
    let t: Option<i64> = p.optional(index)?;
    match t {
        None => Ok(DEFAULT_CONF_TARGET),
        Some(t) => u32::try_from(t).ok().filter(|t| (1..=1008).contains(t)).ok_or_else(|| {
            RpcError::invalid_parameter("Invalid conf_target, must be between 1 and 1008")
        }),
    }
}

/// Submits a wallet transaction to the node's mempool.
fn submit(node: &Node, tx: &Transaction) -> Result<Txid, RpcError> {
    let result = {
        let chain = node.chain();
        let utxos = chain.utxo_snapshot().map_err(chain_err)?;
        let tip = node.tip_context(&chain).map_err(chain_err)?;
        let mut pool = node.mempool();
        pool.accept(tx.clone(), &utxos, &tip, node.now())
    };
    match result {
        Ok(r) => {
            node.mempool_changed();
            node.events.publish(crate::events::NodeEvent::TransactionAccepted { txid: r.txid });
            Ok(r.txid)
        }
        Err(e) => Err(RpcError::new(
            codes::RPC_WALLET_ERROR,
            format!("Transaction rejected by the mempool: {e}"),
        )),
    }
}

/// Tells the other loaded wallets about a transaction this node accepted.
fn notify_others(node: &Node, from: &Entry, tx: &Transaction, replaced: Option<&Txid>) {
    for w in node.wallets.all() {
        let mut e = lock_entry(&w);
        if let Some(old) = replaced {
            e.forget(old);
        }
        if !Arc::ptr_eq(&w, from) {
            let _ = e.add_unconfirmed(tx);
        }
    }
}

/// Records a transaction the wallet built, submits it, and forgets it if the mempool refuses.
fn record_and_submit(node: &Node, w: &Entry, created: &CreatedTx) -> Result<Txid, RpcError> {
    lock_entry(w).add_unconfirmed(&created.tx).map_err(wallet_err)?;
    match submit(node, &created.tx) {
        Ok(txid) => {
            notify_others(node, w, &created.tx, None);
            Ok(txid)
        }
        Err(e) => {
            lock_entry(w).forget(&created.tx.txid());
            Err(e)
        }
    }
}

fn lock_param(v: &Value, what: &str) -> Result<rnet_script::RelativeLock, RpcError> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(RpcError::invalid_parameter(format!("policy: {what} missing"))),
    };
    parse_lock(&s).map_err(wallet_err)
}

/// The `createwallet` policy: `{"heartbeat":{"recovery":KEY|ADDR,"interval":N}}`,
/// `{"social":{"guardians":[KEY…],"threshold":M,"cancel_window":N}}` or
/// `{"emission":{"inactivity":N}}` (locks: `N`/`"Nb"` blocks or `"Ns"` seconds); the object may
/// also be passed as a JSON string.
fn parse_policy(v: &Value) -> Result<PolicyConfig, RpcError> {
    let v = match v {
        Value::String(s) => serde_json::from_str(s)
            .map_err(|e| RpcError::invalid_parameter(format!("policy is not JSON: {e}")))?,
        other => other.clone(),
    };
    let bad = || {
        RpcError::invalid_parameter(
            "policy must be {\"heartbeat\":{\"recovery\":KEY,\"interval\":N}}, \
             {\"social\":{\"guardians\":[KEY,...],\"threshold\":M,\"cancel_window\":N}} or \
             {\"emission\":{\"inactivity\":N}}",
        )
    };
    let obj = v.as_object().filter(|o| o.len() == 1).ok_or_else(bad)?;
    let (kind, body) = obj.iter().next().ok_or_else(bad)?;
    let policy = match kind.as_str() {
        "heartbeat" => {
            let recovery = body["recovery"].as_str().ok_or_else(bad)?;
            PolicyConfig::heartbeat(recovery, lock_param(&body["interval"], "interval")?)
                .map_err(wallet_err)?
        }
        "social" => {
            let guardians = body["guardians"]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|g| {
                    g.as_str()
                        .ok_or_else(bad)
                        .and_then(|s| parse_key_or_address(s).map_err(wallet_err))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let threshold = body["threshold"].as_u64().ok_or_else(bad)? as usize;
            let cancel_window = lock_param(&body["cancel_window"], "cancel_window")?;
            PolicyConfig::Social { guardians, threshold, cancel_window }
        }
        "emission" | "emission-return" | "emission_return" => PolicyConfig::EmissionReturn {
            inactivity: lock_param(&body["inactivity"], "inactivity")?,
        },
        _ => return Err(bad()),
    };
    policy.validate().map_err(wallet_err)?;
    Ok(policy)
}

fn check_name(name: &str) -> Result<(), RpcError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(RpcError::invalid_parameter(format!(
            "Invalid wallet name {name:?} (letters, digits, '-', '_', '.'; not starting with '.')"
        )))
    }
}

fn already_loaded(name: &str) -> RpcError {
    RpcError::new(codes::RPC_WALLET_ALREADY_LOADED, format!("Wallet \"{name}\" is already loaded."))
}

/// The file for a new wallet `name`: fails like Core when the name is loaded (-35) or its file
/// already exists (-4); creates the wallets directory.
fn fresh_wallet_path(node: &Node, name: &str) -> Result<std::path::PathBuf, RpcError> {
    if node.wallets.get(name).is_some() {
        return Err(already_loaded(name));
    }
    let path = wallet_path(&node.netdir, name);
    if path.exists() {
        return Err(RpcError::new(
            codes::RPC_WALLET_ERROR,
            format!(
                "Failed to create database path '{}'. Database already exists.",
                path.display()
            ),
        ));
    }
    if let Some(dir) = path.parent() {
        create_private_dir(dir)
            .map_err(|e| RpcError::new(codes::RPC_WALLET_ERROR, e.to_string()))?;
    }
    Ok(path)
}

/// Creates the wallets directory if needed and makes it the owner's alone (0700 on Unix).
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Rescans the active chain from `from` into `entry` and adds it to the loaded wallets (under
/// the chainstate lock, so no block is missed in between).
/// `loadwallet name` (also `-wallet=NAME` at startup): opens `<netdir>/wallets/<name>.wallet`
/// and rescans from its last scanned block to the tip.
/// Creates and loads `<netdir>/wallets/<name>.wallet` with the recovery `policy` (a new
/// 24-word mnemonic unless `words` restores one); `createwallet` and the regtest mining wallet.
/// Returns `{name, warnings, mnemonic (when generated)}`.
pub(crate) fn create_wallet(
    node: &Node,
    name: &str,
    policy: PolicyConfig,
    passphrase: Option<&str>,
    words: Option<&str>,
    bip39: &str,
) -> Result<Value, RpcError> {
    let name = name.to_string();
    check_name(&name)?;
    let path = fresh_wallet_path(node, &name)?;
    let (mnemonic, generated) = match words.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => (
            Mnemonic::parse(w)
                .map_err(|e| RpcError::invalid_parameter(format!("Invalid mnemonic: {e}")))?,
            false,
        ),
        None => (Mnemonic::generate_24(), true),
    };
    let enc = passphrase.filter(|s| !s.is_empty()).map(|s| encryption(node, s));
    let encrypted = enc.is_some();
    let wallet =
        Wallet::create(&path, node.network(), &mnemonic, bip39, policy, enc).map_err(wallet_err)?;
    let log = log_path(&node.netdir, &name);
    let _ = std::fs::remove_file(&log);
    let entry = WalletEntry::new(wallet, log);
    // A restored wallet may have history: scan the whole active chain.
    load_entry(node, &name, entry, (!generated).then_some(0))?;
    let mut warnings = Vec::new();
    if !encrypted {
        let warning = format!(
            "Wallet {name} is not encrypted: {} holds its mnemonic entropy in the clear \
             (readable by this user only). Encrypt it with encryptwallet \"passphrase\".",
            path.display()
        );
        tracing::warn!("{warning}");
        warnings.push(warning);
    }
    let mut out = json!({ "name": name, "warnings": warnings });
    if generated {
        out["mnemonic"] = json!(mnemonic.phrase().as_str());
    }
    Ok(out)
}

pub(crate) fn load_wallet(node: &Node, name: &str) -> Result<(), RpcError> {
    check_name(name)?;
    if node.wallets.get(name).is_some() {
        return Err(already_loaded(name));
    }
    let path = wallet_path(&node.netdir, name);
    if !path.exists() {
        return Err(RpcError::new(
            codes::RPC_WALLET_NOT_FOUND,
            format!(
                "Wallet file verification failed. Failed to load database path '{}'. Path does not exist.",
                path.display()
            ),
        ));
    }
    let wallet = Wallet::open(&path).map_err(|e| {
        RpcError::new(codes::RPC_WALLET_ERROR, format!("Wallet file verification failed. {e}"))
    })?;
    if wallet.network() != node.network() {
        return Err(RpcError::new(
            codes::RPC_WALLET_ERROR,
            format!("wallet is for {}, node runs {}", wallet.network(), node.network()),
        ));
    }
    let from = wallet.tip_height().map_or(0, |h| h + 1);
    let entry = WalletEntry::new(wallet, log_path(&node.netdir, name));
    load_entry(node, name, entry, Some(from))
}

fn load_entry(
    node: &Node,
    name: &str,
    mut entry: WalletEntry,
    from: Option<u32>,
) -> Result<(), RpcError> {
    if entry.wallet.network() != node.network() {
        return Err(RpcError::new(
            codes::RPC_WALLET_ERROR,
            format!("wallet is for {}, node runs {}", entry.wallet.network(), node.network()),
        ));
    }
    // The node's parameters (a regtest node may run a custom genesis): the wallet's signatures
    // must commit to the node's genesis id.
    entry.wallet.set_chain_params(node.params.clone()).map_err(wallet_err)?;
    let chain = node.chain();
    if let Some(from) = from {
        let tip = chain.height();
        if from <= tip {
            entry.scan_range(&chain, from, tip).map_err(|e| {
                RpcError::new(codes::RPC_WALLET_ERROR, format!("rescan failed: {e}"))
            })?;
        }
    }
    if entry.wallet.is_encrypted() {
        entry.wallet.lock();
    }
    if !node.wallets.insert(name, entry) {
        return Err(already_loaded(name));
    }
    Ok(())
}

fn balances_json(node: &Node, w: &Entry) -> Value {
    let margin = node.chain().tip().loss_index / 100;
    let e = lock_entry(w);
    let b = e.wallet.balances(margin);
    json!({
        "mine": {
            "trusted": amount_json(b.trusted),
            "untrusted_pending": amount_json(b.pending),
            "immature": amount_json(b.immature),
            "expiring_soon": amount_json(b.expiring_soon),
            "recovery_pending": amount_json(b.recovery_pending),
        },
        "lastprocessedblock": { "height": e.wallet.tip_height() },
    })
}

/// The `getwalletinfo` warning line for a coin near UTXO expiry.
fn expiry_warning_text(w: &rnet_wallet::ExpiryWarning) -> String {
    format!(
        "Coin {}:{} ({} RNT) is in the last tenth of its UTXO expiry period ({} of {} loss-index \
         units left); expiry overrides its recovery policy: move it (sendheartbeat).",
        w.outpoint.txid.to_hex(),
        w.outpoint.vout,
        w.value,
        w.remaining,
        w.period
    )
}

fn deadline_json(d: Option<Deadline>, tip: Option<u32>) -> Value {
    match d {
        None => Value::Null,
        Some(Deadline::Height(h)) => json!({
            "height": h,
            "blocks_remaining": i64::from(h) - i64::from(tip.unwrap_or(0)),
        }),
        Some(Deadline::MedianTime(t)) => json!({ "mediantime": t }),
    }
}

/// One `gettransaction`/`listtransactions` view of a log record.
fn tx_json(e: &WalletEntry, txid: &Txid, tip: u32, maturity: u32, full: bool) -> Option<Value> {
    let r = e.txs.get(txid)?;
    let confirmations = r.block.as_ref().map_or(0, |(h, _)| i64::from(tip) - i64::from(*h) + 1);
    let fee = r.fee.unwrap_or(0);
    let (category, amount) = if r.coinbase {
        let cat = if confirmations >= i64::from(maturity) { "generate" } else { "immature" };
        (cat, i128::from(r.credit))
    } else if r.debit > 0 {
        ("send", i128::from(r.credit) - i128::from(r.debit) + i128::from(fee))
    } else {
        ("receive", i128::from(r.credit))
    };
    let mut o = json!({
        "txid": txid.to_hex(),
        "category": category,
        "amount": signed_amount_json(amount),
        "confirmations": confirmations,
        "time": r.time,
        "timereceived": r.time,
        "bip125-replaceable": if r.block.is_some() { "no" } else { "yes" },
    });
    if r.debit > 0 && r.fee.is_some() {
        o["fee"] = signed_amount_json(-i128::from(fee));
    }
    if let Some((h, b)) = &r.block {
        o["blockhash"] = json!(b);
        o["blockheight"] = json!(h);
    }
    if full {
        o["details"] = json!([{ "category": category, "amount": o["amount"].clone() }]);
        o["hex"] = json!(r.hex);
    }
    Some(o)
}

fn created_json(created: &CreatedTx, txid: &Txid) -> Value {
    json!({ "txid": txid.to_hex(), "fee": amount_json(created.fee) })
}

pub(super) fn register(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("createwallet", "Wallet")
            .params(["wallet_name", "policy", "passphrase", "mnemonic", "bip39_passphrase"])
            .help(
                "createwallet \"wallet_name\" policy ( \"passphrase\" \"mnemonic\" \"bip39_passphrase\" )\n\n\
                 Creates <datadir>/wallets/<wallet_name>.wallet with a mandatory recovery policy:\n\
                 {\"heartbeat\":{\"recovery\":\"<key hex or v1 address>\",\"interval\":N}}\n\
                 {\"social\":{\"guardians\":[\"<key>\",...],\"threshold\":M,\"cancel_window\":N}}\n\
                 {\"emission\":{\"inactivity\":N}}\n\
                 (locks: N or \"Nb\" blocks, \"Ns\" seconds). With a passphrase the wallet is encrypted (and locked). \
                 With a 24-word mnemonic the wallet is restored and the chain rescanned; otherwise new words are \
                 generated and returned ONCE as \"mnemonic\": write them down.",
            ),
        |node, p| {
            let name: String = p.required(0)?;
            let policy = parse_policy(p.get(1).ok_or_else(|| p.help_error())?)?;
            let passphrase: Option<String> = p.optional(2)?;
            let words: Option<String> = p.optional(3)?;
            let bip39: String = p.optional_or(4, String::new())?;
            let out = create_wallet(node, &name, policy, passphrase.as_deref(), words.as_deref(), &bip39)?;
            Ok(out)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("loadwallet", "Wallet").params(["filename", "load_on_startup"]).help(
            "loadwallet \"filename\"\n\nLoads <datadir>/wallets/<filename>.wallet and rescans from its last \
             scanned block to the tip.",
        ),
        |node, p| {
            let name: String = p.required(0)?;
            load_wallet(node, &name)?;
            Ok(json!({ "name": name, "warnings": [] }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("unloadwallet", "Wallet").params(["wallet_name", "load_on_startup"]).help(
            "unloadwallet ( \"wallet_name\" )\n\nUnloads the wallet named by the argument or the request path.",
        ),
        |node, p| {
            let arg: Option<String> = p.optional(0)?;
            let name = match (arg, p.wallet()) {
                (Some(a), Some(w)) if a != w => {
                    return Err(RpcError::invalid_parameter(
                        "RPC endpoint wallet and wallet_name parameter specify different wallets",
                    ));
                }
                (Some(a), _) => a,
                (None, Some(w)) => w.to_owned(),
                (None, None) => {
                    let names = node.wallets.names();
                    match names.as_slice() {
                        [one] => one.clone(),
                        [] => return Err(RpcError::new(codes::RPC_WALLET_NOT_FOUND, "No wallet is loaded.")),
                        _ => {
                            return Err(RpcError::new(
                                codes::RPC_WALLET_NOT_SPECIFIED,
                                "Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path).",
                            ));
                        }
                    }
                }
            };
            if !node.wallets.remove(&name) {
                return Err(RpcError::new(
                    codes::RPC_WALLET_NOT_FOUND,
                    "Requested wallet does not exist or is not loaded",
                ));
            }
            Ok(json!({ "warnings": [] }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("listwallets", "Wallet")
            .help("listwallets\n\nNames of the loaded wallets."),
        |node, _| Ok(json!(node.wallets.names())),
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getwalletinfo", "Wallet").help(
            "getwalletinfo\n\nWallet state: name, balances, txcount, encryption/lock state, policy (and its \
             generation: how often cancelrecovery rotated it), last scanned height, and warnings: one line per \
             wallet coin within the last tenth of its UTXO expiry period (expiry overrides every recovery \
             policy), detailed in expiring_coins [{outpoint, amount, remaining, period}].",
        ),
        |node, p| {
            let w = wallet_of(node, p)?;
            let b = balances_json(node, &w);
            let e = lock_entry(&w);
            let mut o = json!({
                "walletname": p.wallet().map(str::to_owned).unwrap_or_else(|| {
                    e.wallet.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
                }),
                "walletversion": rnet_wallet::wallet::STATE_VERSION,
                "format": rnet_wallet::FORMAT,
                "balance": b["mine"]["trusted"],
                "unconfirmed_balance": b["mine"]["untrusted_pending"],
                "immature_balance": b["mine"]["immature"],
                "txcount": e.txs.len(),
                "encrypted": e.wallet.is_encrypted(),
                "policy": e.wallet.policy().to_json(),
                "guardian_key": hex::encode(e.wallet.guardian_public_key().as_bytes()),
                "lastprocessedblock": { "height": e.wallet.tip_height() },
                "private_keys_enabled": true,
                "descriptors": false,
            });
            if e.wallet.is_encrypted() {
                o["unlocked"] = json!(!e.wallet.is_locked());
            }
            o["policy_generation"] = json!(e.wallet.policy_generation());
            let near = e.wallet.expiry_warnings();
            o["warnings"] = json!(near.iter().map(expiry_warning_text).collect::<Vec<_>>());
            o["expiring_coins"] = json!(near
                .iter()
                .map(|w| json!({
                    "outpoint": format!("{}:{}", w.outpoint.txid.to_hex(), w.outpoint.vout),
                    "amount": amount_json(w.value),
                    "remaining": w.remaining,
                    "period": w.period,
                }))
                .collect::<Vec<_>>());
            Ok(o)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getnewaddress", "Wallet").params(["label", "address_type"]).help(
            "getnewaddress\n\nA fresh receive address (v0 script hash of the wallet's recovery policy).",
        ),
        |node, p| {
            let w = wallet_of(node, p)?;
            let mut e = lock_entry(&w);
            match e.wallet.new_address() {
                Ok(a) => Ok(json!(a.to_string())),
                Err(WalletError::Locked) => Err(RpcError::new(
                    codes::RPC_WALLET_KEYPOOL_RAN_OUT,
                    "Error: Keypool ran out, please unlock the wallet with walletpassphrase first",
                )),
                Err(e) => Err(wallet_err(e)),
            }
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getbalance", "Wallet")
            .params(["dummy", "minconf", "include_watchonly", "avoid_reuse"])
            .help("getbalance\n\nThe trusted balance (confirmed, mature, not spent in the mempool) in RNT."),
        |node, p| {
            let w = wallet_of(node, p)?;
            Ok(balances_json(node, &w)["mine"]["trusted"].clone())
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getbalances", "Wallet").help(
            "getbalances\n\n{mine: {trusted, untrusted_pending, immature, expiring_soon (within 1% of the tip \
             loss of the expiry threshold), recovery_pending}, lastprocessedblock: {height}} in RNT.",
        ),
        |node, p| {
            let w = wallet_of(node, p)?;
            Ok(balances_json(node, &w))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("listunspent", "Wallet")
            .params(["minconf", "maxconf", "addresses"])
            .help("listunspent ( minconf maxconf [\"address\",...] )\n\nSpendable wallet coins, each with \
                   expiry {remaining, period, near} (loss-index units to UTXO expiry and the coin's whole \
                   expiry period; near: in its last tenth) or null before the tip's loss is known."),
        |node, p| {
            let minconf: i64 = p.optional_or(0, 1)?;
            let maxconf: i64 = p.optional_or(1, 9_999_999)?;
            let filter: Option<Vec<String>> = p.optional(2)?;
            let w = wallet_of(node, p)?;
            let e = lock_entry(&w);
            let tip = i64::from(e.wallet.tip_height().unwrap_or(0));
            let net = node.network();
            let out: Vec<Value> = e
                .wallet
                .spendable_coins()
                .iter()
                .filter_map(|c| {
                    let conf = tip - i64::from(c.height) + 1;
                    let addr = Address::from_script_pubkey(&c.output.script_pubkey, net)
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    if conf < minconf || conf > maxconf {
                        return None;
                    }
                    if filter.as_ref().is_some_and(|f| !f.contains(&addr)) {
                        return None;
                    }
                    Some(json!({
                        "txid": c.outpoint.txid.to_hex(),
                        "vout": c.outpoint.vout,
                        "address": addr,
                        "scriptPubKey": hex::encode(&c.output.script_pubkey),
                        "amount": amount_json(c.output.value),
                        "confirmations": conf,
                        "coinbase": c.is_coinbase,
                        "spendable": true,
                        "solvable": true,
                        "safe": true,
                        "expiry": e.wallet.expiry_distance(c).map(|(remaining, period)| json!({
                            "remaining": remaining,
                            "period": period,
                            "near": rnet_wallet::wallet::near_expiry(remaining, period),
                        })),
                    }))
                })
                .collect();
            Ok(json!(out))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("listtransactions", "Wallet")
            .params(["label", "count", "skip", "include_watchonly"])
            .help("listtransactions ( \"*\" count skip )\n\nThe most recent wallet transactions (one entry per transaction)."),
        |node, p| {
            let count: i64 = p.optional_or(1, 10)?;
            let skip: i64 = p.optional_or(2, 0)?;
            if count < 0 || skip < 0 {
                return Err(RpcError::invalid_parameter("Negative count or skip"));
            }
            let tip = node.chain().height();
            let maturity = node.params.coinbase_maturity;
            let w = wallet_of(node, p)?;
            let e = lock_entry(&w);
            let mut ids: Vec<(&Txid, u64)> = e.txs.iter().map(|(id, r)| (id, r.seq)).collect();
            ids.sort_by_key(|(_, s)| *s);
            let n = ids.len();
            let end = n.saturating_sub(skip as usize);
            let start = end.saturating_sub(count as usize);
            let out: Vec<Value> = ids[start..end]
                .iter()
                .filter_map(|(id, _)| tx_json(&e, id, tip, maturity, false))
                .collect();
            Ok(json!(out))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("gettransaction", "Wallet")
            .params(["txid", "include_watchonly", "verbose"])
            .help("gettransaction \"txid\"\n\nA wallet transaction: amount, fee (sends), confirmations, block, hex."),
        |node, p| {
            let txid = param_txid(p, 0)?;
            let tip = node.chain().height();
            let maturity = node.params.coinbase_maturity;
            let w = wallet_of(node, p)?;
            let e = lock_entry(&w);
            tx_json(&e, &txid, tip, maturity, true)
                .ok_or_else(|| RpcError::invalid_address_or_key("Invalid or non-wallet transaction id"))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("sendtoaddress", "Wallet")
            .params([
                "address",
                "amount",
                "comment",
                "comment_to",
                "subtractfeefromamount",
                "replaceable",
                "conf_target",
                "estimate_mode",
            ])
            .help(
                "sendtoaddress \"address\" amount ( \"comment\" \"comment_to\" subtractfeefromamount replaceable conf_target )\n\n\
                 Pays amount RNT to address (RBF-signalling, change to a fresh policy address), submits it to the \
                 mempool and returns the txid.",
            ),
        |node, p| {
            let addr: String = p.required(0)?;
            let addr = param_address(node, &addr)?;
            let amount = amount_from_value(p.get(1).ok_or_else(|| p.help_error())?)?;
            if p.optional_or(4, false)? {
                return Err(RpcError::invalid_parameter("subtractfeefromamount is not supported"));
            }
            let rate = fee_rate(node, conf_target(p, 6)?);
            let w = wallet_of(node, p)?;
            let created = lock_entry(&w).wallet.send(&[(addr, amount)], rate).map_err(wallet_err)?;
            let txid = record_and_submit(node, &w, &created)?;
            Ok(json!(txid.to_hex()))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("sendmany", "Wallet")
            .params(["dummy", "amounts", "minconf", "comment", "subtractfeefrom", "replaceable", "conf_target"])
            .help("sendmany \"\" {\"address\":amount,...} ( minconf \"comment\" [] replaceable conf_target )\n\nPays several addresses in one transaction; returns the txid."),
        |node, p| {
            let amounts: serde_json::Map<String, Value> = p.required(1)?;
            let mut recipients = Vec::new();
            for (a, v) in &amounts {
                recipients.push((param_address(node, a)?, amount_from_value(v)?));
            }
            let subtract: Option<Vec<String>> = p.optional(4)?;
            if subtract.is_some_and(|s| !s.is_empty()) {
                return Err(RpcError::invalid_parameter("subtractfeefrom is not supported"));
            }
            let rate = fee_rate(node, conf_target(p, 6)?);
            let w = wallet_of(node, p)?;
            let created = lock_entry(&w).wallet.send(&recipients, rate).map_err(wallet_err)?;
            let txid = record_and_submit(node, &w, &created)?;
            Ok(json!(txid.to_hex()))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("bumpfee", "Wallet").params(["txid", "options"]).help(
            "bumpfee \"txid\" ( {\"conf_target\":n,\"fee_rate\":resonance_per_byte} )\n\nReplaces an unconfirmed \
             wallet transaction by one paying a higher fee from its change (BIP125); returns {txid, origfee, fee, errors}.",
        ),
        |node, p| {
            let txid = param_txid(p, 0)?;
            let opts: Option<Value> = p.optional(1)?;
            let mut rate = fee_rate(node, DEFAULT_CONF_TARGET);
            if let Some(o) = &opts {
                if let Some(t) = o.get("conf_target").and_then(Value::as_u64) {
                    rate = fee_rate(node, u32::try_from(t).unwrap_or(DEFAULT_CONF_TARGET).clamp(1, 1008));
                }
                if let Some(fr) = o.get("fee_rate").and_then(Value::as_f64) {
                    if !(0.0..=1e9).contains(&fr) {
                        return Err(RpcError::invalid_parameter("Invalid fee_rate"));
                    }
                    rate = FeeRate((fr * 1000.0).round() as u64);
                }
            }
            let w = wallet_of(node, p)?;
            let (old_tx, old_fee, created) = {
                let mut e = lock_entry(&w);
                let old_tx = e
                    .wallet
                    .unconfirmed()
                    .find(|t| t.txid() == txid)
                    .cloned()
                    .ok_or_else(|| RpcError::invalid_address_or_key("Invalid or non-wallet transaction id"))?;
                let old_fee = e.txs.get(&txid).and_then(|r| r.fee);
                let created = e.wallet.bump_fee(&txid, rate).map_err(wallet_err)?;
                e.add_unconfirmed(&created.tx).map_err(wallet_err)?;
                (old_tx, old_fee, created)
            };
            let new_txid = match submit(node, &created.tx) {
                Ok(t) => t,
                Err(err) => {
                    let mut e = lock_entry(&w);
                    e.forget(&created.tx.txid());
                    let _ = e.wallet.add_unconfirmed(old_tx);
                    return Err(err);
                }
            };
            notify_others(node, &w, &created.tx, Some(&txid));
            Ok(json!({
                "txid": new_txid.to_hex(),
                "origfee": old_fee.map(|f| amount_json(Amount(f))),
                "fee": amount_json(created.fee),
                "errors": [],
            }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("signrawtransactionwithwallet", "Wallet")
            .params(["hexstring", "prevtxs", "sighashtype"])
            .help(
                "signrawtransactionwithwallet \"hexstring\" ( [{\"txid\":..,\"vout\":n,\"scriptPubKey\":..,\"amount\":..},...] )\n\n\
                 Signs the inputs the wallet owns (SIGHASH_ALL). Spent outputs come from prevtxs, the wallet, the \
                 UTXO set or the mempool.",
            ),
        |node, p| {
            let tx = Transaction::from_bytes(&param_hex(p, 0, "TX")?)
                .map_err(|_| RpcError::deserialization("TX decode failed"))?;
            let mut spent: Vec<Option<TxOut>> = vec![None; tx.inputs.len()];
            {
                let chain = node.chain();
                let pool = node.mempool();
                for (i, input) in tx.inputs.iter().enumerate() {
                    let op = input.previous_output;
                    spent[i] = match chain.coin(&op).map_err(chain_err)? {
                        Some(c) => Some(c.output),
                        None => pool.get(&op.txid).and_then(|e| e.tx.outputs.get(op.vout as usize).cloned()),
                    };
                }
            }
            let prevtxs: Option<Vec<Value>> = p.optional(1)?;
            for pv in prevtxs.unwrap_or_default() {
                let txid: Txid = pv["txid"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| RpcError::invalid_parameter("prevtxs: bad txid"))?;
                let vout = pv["vout"].as_u64().ok_or_else(|| RpcError::invalid_parameter("prevtxs: bad vout"))?;
                let spk = pv["scriptPubKey"]
                    .as_str()
                    .and_then(|s| hex::decode(s).ok())
                    .ok_or_else(|| RpcError::invalid_parameter("prevtxs: bad scriptPubKey"))?;
                let value = amount_from_value(&pv["amount"])?;
                let op = OutPoint::new(txid, vout as u32);
                for (i, input) in tx.inputs.iter().enumerate() {
                    if input.previous_output == op {
                        spent[i] = Some(TxOut { value, script_pubkey: spk.clone() });
                    }
                }
            }
            let w = wallet_of(node, p)?;
            let e = lock_entry(&w);
            for c in e.wallet.coins() {
                for (i, input) in tx.inputs.iter().enumerate() {
                    if input.previous_output == c.outpoint {
                        spent[i] = Some(c.output.clone());
                    }
                }
            }
            let missing: Vec<Value> = tx
                .inputs
                .iter()
                .zip(&spent)
                .filter(|(_, s)| s.is_none())
                .map(|(i, _)| {
                    json!({
                        "txid": i.previous_output.txid.to_hex(),
                        "vout": i.previous_output.vout,
                        "error": "Input not found or already spent",
                    })
                })
                .collect();
            if !missing.is_empty() {
                return Ok(json!({ "hex": hex::encode(tx.to_bytes()), "complete": false, "errors": missing }));
            }
            let spent: Vec<TxOut> = spent.into_iter().flatten().collect();
            let (signed, complete) = e.wallet.sign_raw_transaction(tx, &spent).map_err(wallet_err)?;
            let mut o = json!({ "hex": hex::encode(signed.to_bytes()), "complete": complete });
            if !complete {
                o["errors"] = json!(
                    signed
                        .inputs
                        .iter()
                        .filter(|i| i.witness.is_empty())
                        .map(|i| json!({
                            "txid": i.previous_output.txid.to_hex(),
                            "vout": i.previous_output.vout,
                            "error": "Unable to sign input (not the wallet's)",
                        }))
                        .collect::<Vec<_>>()
                );
            }
            Ok(o)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("rescanblockchain", "Wallet").params(["start_height", "stop_height"]).help(
            "rescanblockchain ( start_height stop_height )\n\nFeeds the wallet the active chain's blocks again.",
        ),
        |node, p| {
            let start: Option<i64> = p.optional(0)?;
            let stop: Option<i64> = p.optional(1)?;
            let w = wallet_of(node, p)?;
            let chain = node.chain();
            let tip = chain.height();
            let start = u32::try_from(start.unwrap_or(0))
                .ok()
                .filter(|s| *s <= tip)
                .ok_or_else(|| RpcError::invalid_parameter("Invalid start_height"))?;
            let stop = match stop {
                None => tip,
                Some(s) => u32::try_from(s)
                    .ok()
                    .filter(|s| *s >= start && *s <= tip)
                    .ok_or_else(|| RpcError::invalid_parameter("Invalid stop_height"))?,
            };
            let mut e = lock_entry(&w);
            e.scan_range(&chain, start, stop)
                .map_err(|err| RpcError::new(codes::RPC_WALLET_ERROR, format!("rescan failed: {err}")))?;
            Ok(json!({ "start_height": start, "stop_height": stop }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("backupwallet", "Wallet").params(["destination", "passphrase"]).help(
            "backupwallet \"destination\" \"passphrase\"\n\nWrites an encrypted backup (RNETBAK v1: Argon2id + \
             AES-256-CBC + HMAC) of the words, policy and indices under passphrase. Restore with restorewallet.",
        ),
        |node, p| {
            let dest: String = p.required(0)?;
            let pass: Option<String> = p.optional(1)?;
            let pass = pass.filter(|s| !s.is_empty()).ok_or_else(|| {
                RpcError::invalid_parameter("backupwallet needs a passphrase to encrypt the backup with")
            })?;
            let w = wallet_of(node, p)?;
            let e = lock_entry(&w);
            e.wallet.backup(std::path::Path::new(&dest), &pass, kdf_params(node)).map_err(wallet_err)?;
            Ok(Value::Null)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("restorewallet", "Wallet")
            .params(["wallet_name", "backup_file", "passphrase", "wallet_passphrase"])
            .help(
                "restorewallet \"wallet_name\" \"backup_file\" \"passphrase\" ( \"wallet_passphrase\" )\n\nCreates and loads \
                 a wallet from a backupwallet file and rescans the chain.",
            ),
        |node, p| {
            let name: String = p.required(0)?;
            check_name(&name)?;
            let file: String = p.required(1)?;
            let pass: String = p.required(2)?;
            let wpass: Option<String> = p.optional(3)?;
            let path = fresh_wallet_path(node, &name)?;
            let enc = wpass.as_deref().filter(|s| !s.is_empty()).map(|s| encryption(node, s));
            let wallet = Wallet::restore_backup(std::path::Path::new(&file), &pass, &path, enc)
                .map_err(wallet_err)?;
            let log = log_path(&node.netdir, &name);
            let _ = std::fs::remove_file(&log);
            load_entry(node, &name, WalletEntry::new(wallet, log), Some(0))?;
            Ok(json!({ "name": name, "warnings": [] }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("encryptwallet", "Wallet").params(["passphrase"]).help(
            "encryptwallet \"passphrase\"\n\nEncrypts the wallet's secret (Argon2id) and locks it.",
        ),
        |node, p| {
            let pass: String = p.required(0)?;
            if pass.is_empty() {
                return Err(RpcError::invalid_parameter("passphrase cannot be empty"));
            }
            let w = wallet_of(node, p)?;
            let mut e = lock_entry(&w);
            e.wallet.encrypt(encryption(node, &pass)).map_err(wallet_err)?;
            e.wallet.lock();
            Ok(json!(
                "wallet encrypted; the wallet is locked: unlock it with walletpassphrase to spend"
            ))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("walletpassphrase", "Wallet").params(["passphrase", "timeout"]).help(
            "walletpassphrase \"passphrase\" timeout\n\nUnlocks the wallet for timeout seconds.",
        ),
        |node, p| {
            let pass: String = p.required(0)?;
            let timeout: i64 = p.required(1)?;
            if timeout < 0 {
                return Err(RpcError::invalid_parameter("Timeout cannot be negative."));
            }
            let w = wallet_of(node, p)?;
            let mut e = lock_entry(&w);
            if !e.wallet.is_encrypted() {
                return Err(wallet_err(WalletError::NotEncrypted));
            }
            let secs = (timeout as u64).min(MAX_UNLOCK_SECS);
            e.wallet.unlock(&pass, Duration::from_secs(secs)).map_err(wallet_err)?;
            Ok(Value::Null)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("walletpassphrasechange", "Wallet")
            .params(["oldpassphrase", "newpassphrase"])
            .help("walletpassphrasechange \"old\" \"new\"\n\nChanges the wallet passphrase."),
        |node, p| {
            let old: String = p.required(0)?;
            let new: String = p.required(1)?;
            let w = wallet_of(node, p)?;
            let mut e = lock_entry(&w);
            e.wallet.change_passphrase(&old, encryption(node, &new)).map_err(wallet_err)?;
            e.wallet.lock();
            Ok(Value::Null)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("walletlock", "Wallet")
            .help("walletlock\n\nForgets the wallet's keys until walletpassphrase."),
        |node, p| {
            let w = wallet_of(node, p)?;
            let mut e = lock_entry(&w);
            if !e.wallet.is_encrypted() {
                return Err(wallet_err(WalletError::NotEncrypted));
            }
            e.wallet.lock();
            Ok(Value::Null)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getrecoveryinfo", "Wallet").help(
            "getrecoveryinfo\n\nThe wallet's recovery policy and, per coin, the non-owner path (recovery, guardians, \
             sweep, claim) and when it opens ({height, blocks_remaining} or {mediantime}).",
        ),
        |node, p| {
            let w = wallet_of(node, p)?;
            let e = lock_entry(&w);
            let info = e.wallet.recovery_info();
            let coins: Vec<Value> = info
                .coins
                .iter()
                .map(|c| {
                    json!({
                        "outpoint": c.outpoint,
                        "amount": amount_json(c.value),
                        "height": c.height,
                        "path": c.path,
                        "deadline": deadline_json(c.deadline, info.tip_height),
                    })
                })
                .collect();
            Ok(json!({ "policy": info.policy, "tip_height": info.tip_height, "coins": coins }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("sendheartbeat", "Wallet").params(["within", "conf_target"]).help(
            "sendheartbeat ( within conf_target )\n\nProves life: moves the policy coins (those whose deadline is at \
             most `within` blocks away, or all) to a fresh address, restarting their intervals. Returns {txid, fee}.",
        ),
        |node, p| {
            let within: Option<u32> = p.optional(0)?;
            let rate = fee_rate(node, conf_target(p, 1)?);
            let w = wallet_of(node, p)?;
            let created = lock_entry(&w).wallet.send_heartbeat(rate, within).map_err(wallet_err)?;
            let txid = record_and_submit(node, &w, &created)?;
            Ok(created_json(&created, &txid))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("cancelrecovery", "Wallet").params(["new_policy", "conf_target"]).help(
            "cancelrecovery new_policy ( conf_target )\n\nOwner cancel of social recoveries: reclaims every \
             recovery-pending output to a fresh address under new_policy, which becomes the wallet's policy \
             (rotation: coins under the old one stay spendable; sendheartbeat moves them). new_policy is a \
             createwallet policy object; a social one must name a different guardian set than the cancelled \
             coins' (-8 otherwise), so the quorum that started the recovery cannot start it again. \
             Without new_policy (or with null, or the old shape cancelrecovery ( conf_target )) the current \
             policy is the destination, accepted only if the wallet already rotated away from those \
             guardians. Returns {txid, fee, policy}.",
        ),
        |node, p| {
            let (new_policy, target_index) = match p.get(0) {
                None | Some(Value::Null) => (None, 1),
                // The old call shape: `cancelrecovery conf_target`.
                Some(Value::Number(_)) => (None, 0),
                Some(v) => (Some(parse_policy(v)?), 1),
            };
            let rate = fee_rate(node, conf_target(p, target_index)?);
            let w = wallet_of(node, p)?;
            let created = lock_entry(&w)
                .wallet
                .cancel_recovery(rate, new_policy)
                .map_err(wallet_err)?;
            let txid = record_and_submit(node, &w, &created)?;
            let mut out = created_json(&created, &txid);
            out["policy"] = lock_entry(&w).wallet.policy().to_json();
            Ok(out)
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("getguardiankey", "Wallet").help(
            "getguardiankey\n\nThe public key this wallet offers when it acts as a guardian of another wallet.",
        ),
        |node, p| {
            let w = wallet_of(node, p)?;
            let e = lock_entry(&w);
            Ok(json!(hex::encode(e.wallet.guardian_public_key().as_bytes())))
        },
    )?;
    register_recovery(r, node)
}

// ----- guardian recovery, claim and emission sweep ------------------------------------------------

/// `"txid:vout"`.
fn parse_outpoint(s: &str) -> Result<OutPoint, RpcError> {
    let bad =
        || RpcError::invalid_parameter(format!("Invalid outpoint {s:?} (expected \"txid:vout\")"));
    let (txid, vout) = s.split_once(':').ok_or_else(bad)?;
    let txid: Txid = txid.parse().map_err(|_| bad())?;
    let vout: u32 = vout.parse().map_err(|_| bad())?;
    Ok(OutPoint::new(txid, vout))
}

/// One outpoint string or an array of them.
fn outpoints_param(v: &Value) -> Result<Vec<OutPoint>, RpcError> {
    let ops = match v {
        Value::String(s) => vec![parse_outpoint(s)?],
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| {
                        RpcError::invalid_parameter("outpoints must be \"txid:vout\" strings")
                    })
                    .and_then(parse_outpoint)
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(RpcError::invalid_parameter("outpoints must be \"txid:vout\" strings")),
    };
    if ops.is_empty() {
        return Err(RpcError::invalid_parameter("no outpoint given"));
    }
    Ok(ops)
}

fn key_param(s: &str) -> Result<rnet_crypto::PublicKey, RpcError> {
    rnet_wallet::parse_hex_key(s)
        .map_err(|_| RpcError::invalid_address_or_key(format!("Invalid key: {s}")))
}

fn json_key(v: &Value, what: &str) -> Result<rnet_crypto::PublicKey, RpcError> {
    v.as_str()
        .ok_or_else(|| RpcError::invalid_parameter(format!("template: {what} missing")))
        .and_then(key_param)
}

/// The unspent output at `op` (UTXO set, else the mempool).
fn utxo(node: &Node, op: &OutPoint) -> Result<TxOut, RpcError> {
    let chain = node.chain();
    if let Some(c) = chain.coin(op).map_err(chain_err)? {
        return Ok(c.output);
    }
    let pool = node.mempool();
    pool.get(&op.txid).and_then(|e| e.tx.outputs.get(op.vout as usize).cloned()).ok_or_else(|| {
        RpcError::invalid_address_or_key(format!(
            "Output {}:{} not found or already spent",
            op.txid.to_hex(),
            op.vout
        ))
    })
}

/// The template of a coin a loaded wallet knows (its policy output, or the recovery-pending
/// output it watches).
enum Known {
    Policy(rnet_script::RecoveryPolicy),
    Pending(rnet_script::RecoveryPending),
}

fn known_template(node: &Node, op: &OutPoint) -> Option<Known> {
    use rnet_script::RecoveryPolicy;
    for w in node.wallets.all() {
        let e = lock_entry(&w);
        let Some(c) = e.wallet.coins().find(|c| c.outpoint == *op).cloned() else { continue };
        let new_key = match c.owner {
            rnet_wallet::CoinOwner::Policy { .. } => None,
            rnet_wallet::CoinOwner::Pending { new_key, .. } => Some(new_key),
        };
        let t = e.wallet.coin_template(&c.owner)?;
        return match (new_key, t) {
            (None, t) => Some(Known::Policy(t)),
            (Some(k), RecoveryPolicy::Social(s)) => {
                Some(Known::Pending(s.pending(rnet_crypto::PublicKey::from_bytes(&k).ok()?)))
            }
            _ => None,
        };
    }
    None
}

/// Submits a transaction built outside any wallet; a mempool refusal is -26 with its reason
/// (-25 for missing inputs), as `sendrawtransaction`. Every loaded wallet then sees it.
fn submit_foreign(node: &Node, tx: &Transaction) -> Result<Txid, RpcError> {
    let result = {
        let chain = node.chain();
        let utxos = chain.utxo_snapshot().map_err(chain_err)?;
        let tip = node.tip_context(&chain).map_err(chain_err)?;
        let mut pool = node.mempool();
        pool.accept(tx.clone(), &utxos, &tip, node.now())
    };
    match result {
        Ok(r) => {
            node.mempool_changed();
            node.events.publish(crate::events::NodeEvent::TransactionAccepted { txid: r.txid });
            for w in node.wallets.all() {
                let _ = lock_entry(&w).add_unconfirmed(tx);
            }
            Ok(r.txid)
        }
        Err(e @ rnet_mempool::MempoolError::MissingInputs { .. }) => {
            Err(RpcError::verify(format!("bad-txns-inputs-missingorspent ({e})")))
        }
        Err(e) => Err(RpcError::verify_rejected(e.to_string())),
    }
}

fn request_param(p: &Params, index: usize) -> Result<rnet_wallet::RecoveryRequest, RpcError> {
    let bytes = param_hex(p, index, "recovery request")?;
    rnet_wallet::RecoveryRequest::from_bytes(&bytes)
        .map_err(|e| RpcError::deserialization(e.to_string()))
}

fn request_json(req: &rnet_wallet::RecoveryRequest) -> Value {
    let have = req.signature_count();
    let threshold = req.social.threshold();
    let mut o = json!({
        "hex": hex::encode(req.to_bytes()),
        "txid": req.tx.txid().to_hex(),
        "signatures": have,
        "threshold": threshold,
        "complete": have >= threshold,
    });
    if let Ok(tx) = req.finalize() {
        o["tx"] = json!(hex::encode(tx.to_bytes()));
    }
    o
}

/// Fee for `size` bytes at the conf-target rate, clamped to `max`.
fn clamped_fee(node: &Node, size: usize, max: Amount) -> Amount {
    let f = fee_rate(node, DEFAULT_CONF_TARGET).fee_for(size);
    if f > max { max } else { f }
}

fn register_recovery(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("createrecoverytx", "Wallet").params(["outpoints", "new_key", "policy"]).help(
            "createrecoverytx \"txid:vout\"|[\"txid:vout\",...] \"new_key_hex\" ( {\"owner\":KEY,\"guardians\":[KEY,...],\"threshold\":M,\"cancel_window\":N} )\n\n\
             Builds the unsigned guardian recovery of social-policy coins (one template) to new_key: output i pays the \
             recovery-pending output the value of coin i minus the fee (<= 0.01 RNT). The policy is taken from a \
             loaded wallet that owns the coins, or given. Returns {hex (the RecoveryRequest, RNETRRQ v1), txid, \
             signatures, threshold, complete}. Pass hex to each guardian's signrecoverytx.",
        ),
        |node, p| {
            let ops = outpoints_param(&p.required::<Value>(0)?)?;
            let new_key: String = p.required(1)?;
            let new_key = key_param(&new_key)?;
            let given: Option<Value> = p.optional(2)?;
            let social = match given {
                Some(v) => {
                    let guardians = v["guardians"]
                        .as_array()
                        .ok_or_else(|| RpcError::invalid_parameter("template: guardians missing"))?
                        .iter()
                        .map(|g| json_key(g, "guardian"))
                        .collect::<Result<Vec<_>, _>>()?;
                    let threshold = v["threshold"]
                        .as_u64()
                        .ok_or_else(|| RpcError::invalid_parameter("template: threshold missing"))?;
                    rnet_script::Social::new(
                        json_key(&v["owner"], "owner")?,
                        guardians,
                        threshold as usize,
                        lock_param(&v["cancel_window"], "cancel_window")?,
                    )
                    .map_err(|e| RpcError::invalid_parameter(e.to_string()))?
                }
                None => match known_template(node, &ops[0]) {
                    Some(Known::Policy(rnet_script::RecoveryPolicy::Social(s))) => s,
                    _ => {
                        return Err(RpcError::invalid_parameter(
                            "no loaded wallet knows a social policy for this coin: pass the policy",
                        ));
                    }
                },
            };
            let coins = ops
                .iter()
                .map(|op| utxo(node, op).map(|o| (*op, o)))
                .collect::<Result<Vec<_>, _>>()?;
            let per_input = 250 + 100 * social.guardians().len();
            let fee = clamped_fee(node, per_input, rnet_script::MAX_RECOVERY_FEE);
            let genesis = node.params.genesis_hash();
            let req =
                rnet_wallet::create_recovery_tx(&genesis, &social, &coins, new_key, fee).map_err(wallet_err)?;
            Ok(request_json(&req))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("signrecoverytx", "Wallet").params(["request"]).help(
            "signrecoverytx \"request_hex\"\n\nAdds this wallet's guardian signature (getguardiankey) to a \
             createrecoverytx request. Returns {hex, txid, signatures, threshold, complete, tx (the final \
             transaction hex, once complete)}.",
        ),
        |node, p| {
            let mut req = request_param(p, 0)?;
            let w = wallet_of(node, p)?;
            lock_entry(&w).wallet.sign_recovery_request(&mut req).map_err(|e| match e {
                WalletError::NotAGuardian => {
                    RpcError::invalid_parameter("this wallet's guardian key is not a guardian of the policy")
                }
                e => wallet_err(e),
            })?;
            Ok(request_json(&req))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("sendrecoverytx", "Wallet").params(["request"]).help(
            "sendrecoverytx \"request_hex\"\n\nFinalizes a request signed by enough guardians and submits it. \
             Returns the txid.",
        ),
        |node, p| {
            let req = request_param(p, 0)?;
            let tx = req.finalize().map_err(|e| RpcError::invalid_parameter(e.to_string()))?;
            Ok(json!(submit_foreign(node, &tx)?.to_hex()))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("completerecovery", "Wallet")
            .params(["outpoints", "new_key_secret", "address", "policy"])
            .help(
                "completerecovery \"txid:vout\"|[...] \"new_key_secret_hex\" \"address\" ( {\"owner\":KEY,\"cancel_window\":N} )\n\n\
                 After the cancel window, the new key claims recovery-pending outputs to address. The owner and \
                 window come from a loaded wallet that watches the outputs, or are given. Returns {txid, fee}.",
            ),
        |node, p| {
            let ops = outpoints_param(&p.required::<Value>(0)?)?;
            let secret = param_hex(p, 1, "secret")?;
            let secret: [u8; 32] =
                secret.try_into().map_err(|_| RpcError::invalid_address_or_key("secret must be 32 bytes"))?;
            let key = rnet_crypto::SigningKey::from_bytes(&secret);
            let addr: String = p.required(2)?;
            let dest = param_address(node, &addr)?.script_pubkey();
            let given: Option<Value> = p.optional(3)?;
            let pending = match given {
                Some(v) => rnet_script::RecoveryPending {
                    owner: json_key(&v["owner"], "owner")?,
                    new_key: key.public_key(),
                    cancel_window: lock_param(&v["cancel_window"], "cancel_window")?,
                },
                None => match known_template(node, &ops[0]) {
                    Some(Known::Pending(p)) if p.new_key == key.public_key() => p,
                    _ => {
                        return Err(RpcError::invalid_parameter(
                            "no loaded wallet watches this recovery-pending output: pass the policy",
                        ));
                    }
                },
            };
            let coins = ops
                .iter()
                .map(|op| utxo(node, op).map(|o| (*op, o)))
                .collect::<Result<Vec<_>, _>>()?;
            use rnet_script::ScriptTemplate;
            let spk = pending.script_pubkey();
            if coins.iter().any(|(_, o)| o.script_pubkey != spk) {
                return Err(RpcError::invalid_address_or_key(
                    "the outputs do not pay this key's recovery-pending output",
                ));
            }
            let genesis = node.params.genesis_hash();
            let draft =
                rnet_wallet::complete_recovery(&genesis, &pending, &coins, &key, dest.clone(), Amount::ZERO)
                    .map_err(wallet_err)?;
            let fee = fee_rate(node, DEFAULT_CONF_TARGET).fee_for(draft.to_bytes().len() + 8);
            let tx =
                rnet_wallet::complete_recovery(&genesis, &pending, &coins, &key, dest, fee).map_err(wallet_err)?;
            let txid = submit_foreign(node, &tx)?;
            Ok(json!({ "txid": txid.to_hex(), "fee": amount_json(fee) }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("claimheartbeatrecovery", "Wallet")
            .params(["outpoints", "recovery_key_secret", "address", "policy"])
            .help(
                "claimheartbeatrecovery \"txid:vout\"|[...] \"recovery_key_secret_hex\" \"address\" ( {\"owner\":KEY,\"interval\":N} )\n\n\
                 The recovery key of a heartbeat policy claims coins whose owner has not moved them for the policy's \
                 interval, paying them to address. The coins must share one template (owner, recovery key, interval): \
                 taken from a loaded wallet that owns them, or given. Refused before the interval has passed (the \
                 mempool checks the relative lock). Returns {txid, fee, amount}.",
            ),
        |node, p| {
            let ops = outpoints_param(&p.required::<Value>(0)?)?;
            let secret = param_hex(p, 1, "recovery_key_secret")?;
            let secret: [u8; 32] = secret
                .try_into()
                .map_err(|_| RpcError::invalid_address_or_key("recovery_key_secret must be 32 bytes"))?;
            let key = rnet_crypto::SigningKey::from_bytes(&secret);
            let addr: String = p.required(2)?;
            let dest = param_address(node, &addr)?.script_pubkey();
            let given: Option<Value> = p.optional(3)?;
            let heartbeat = match given {
                Some(v) => rnet_script::Heartbeat::new(
                    json_key(&v["owner"], "owner")?,
                    key.public_key(),
                    lock_param(&v["interval"], "interval")?,
                )
                .map_err(|e| RpcError::invalid_parameter(format!("template: {e}")))?,
                None => match known_template(node, &ops[0]) {
                    Some(Known::Policy(rnet_script::RecoveryPolicy::Heartbeat(h))) => h,
                    Some(_) => {
                        return Err(RpcError::invalid_parameter(
                            "the output is not a heartbeat-policy coin",
                        ));
                    }
                    None => {
                        return Err(RpcError::invalid_parameter(
                            "no loaded wallet owns this output: pass the policy {owner, interval}",
                        ));
                    }
                },
            };
            if heartbeat.recovery != key.public_key() {
                return Err(RpcError::invalid_address_or_key("not this policy's recovery key"));
            }
            let coins = ops
                .iter()
                .map(|op| utxo(node, op).map(|o| (*op, o)))
                .collect::<Result<Vec<_>, _>>()?;
            use rnet_script::ScriptTemplate;
            let spk = heartbeat.script_pubkey();
            if coins.iter().any(|(_, o)| o.script_pubkey != spk) {
                return Err(RpcError::invalid_address_or_key(
                    "the outputs are not coins of this heartbeat template",
                ));
            }
            let genesis = node.params.genesis_hash();
            let draft = rnet_wallet::heartbeat_recovery_tx(
                &genesis,
                &heartbeat,
                &coins,
                &key,
                dest.clone(),
                Amount::ZERO,
            )
            .map_err(wallet_err)?;
            let fee = fee_rate(node, DEFAULT_CONF_TARGET).fee_for(draft.to_bytes().len() + 8);
            let tx = rnet_wallet::heartbeat_recovery_tx(&genesis, &heartbeat, &coins, &key, dest, fee)
                .map_err(wallet_err)?;
            let amount = tx.outputs.iter().map(|o| o.value.0).sum::<u64>();
            let txid = submit_foreign(node, &tx)?;
            Ok(json!({ "txid": txid.to_hex(), "fee": amount_json(fee), "amount": amount_json(Amount(amount)) }))
        },
    )?;
    reg(
        r,
        node,
        MethodInfo::new("sweepemission", "Wallet").params(["outpoints", "policy"]).help(
            "sweepemission \"txid:vout\"|[...] ( {\"owner\":KEY,\"inactivity\":N} )\n\nAnyone: sweeps dormant \
             emission-return coins (one template) into the emission pool once they are `inactivity` old, leaving at \
             most 0.01 RNT per input to the miner. The template comes from a loaded wallet that owns the coins, \
             or is given. Returns {txid, fee, amount}.",
        ),
        |node, p| {
            let ops = outpoints_param(&p.required::<Value>(0)?)?;
            let given: Option<Value> = p.optional(1)?;
            let template = match given {
                Some(v) => rnet_script::EmissionReturn::new(
                    json_key(&v["owner"], "owner")?,
                    lock_param(&v["inactivity"], "inactivity")?,
                )
                .map_err(|e| RpcError::invalid_parameter(e.to_string()))?,
                None => match known_template(node, &ops[0]) {
                    Some(Known::Policy(rnet_script::RecoveryPolicy::EmissionReturn(t))) => t,
                    _ => {
                        return Err(RpcError::invalid_parameter(
                            "no loaded wallet knows an emission policy for this coin: pass the policy",
                        ));
                    }
                },
            };
            let coins = ops
                .iter()
                .map(|op| utxo(node, op).map(|o| (*op, o)))
                .collect::<Result<Vec<_>, _>>()?;
            let fee_per_input = clamped_fee(node, 250, rnet_script::MAX_EMISSION_SWEEP_FEE_PER_INPUT);
            let tx = rnet_wallet::sweep_emission(&template, &coins, fee_per_input).map_err(wallet_err)?;
            let txid = submit_foreign(node, &tx)?;
            Ok(json!({
                "txid": txid.to_hex(),
                "fee": amount_json(Amount(fee_per_input.0 * coins.len() as u64)),
                "amount": amount_json(tx.outputs[0].value),
            }))
        },
    )
}
