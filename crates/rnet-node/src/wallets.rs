//! The node's wallet manager: the wallets loaded from `<netdir>/wallets/<name>.wallet`, fed the
//! blocks the node connects and disconnects (see `Node::chain_changed`) and the transactions
//! they create. Each loaded wallet also keeps a small transaction log (`<name>.txs.json`, no
//! secrets: txids, amounts, heights, raw transactions) for `gettransaction`/`listtransactions`,
//! since the wallet library keeps coins, not history.
//!
//! Lock order: chainstate → mempool → wallet map → one wallet. Code holding a wallet lock never
//! takes the chainstate or mempool lock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rnet_chain::ChainState;
use rnet_consensus::{HeaderChain, median_time_past};
use rnet_primitives::{Block, BlockHash, OutPoint, Transaction, Txid};
use rnet_wallet::{Wallet, WalletError};
use serde_json::{Value, json};

/// Folder of the wallet files inside the network data directory.
pub const WALLETS_DIR: &str = "wallets";

/// One wallet-relevant transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// Sum of the wallet coins it spends (resonance).
    pub debit: u64,
    /// Sum of its outputs to the wallet (resonance).
    pub credit: u64,
    /// Its fee when every input was the wallet's (resonance).
    pub fee: Option<u64>,
    /// Whether it is a coinbase.
    pub coinbase: bool,
    /// Confirming block height and hash (`None`: unconfirmed).
    pub block: Option<(u32, String)>,
    /// Unix time first seen (or block time).
    pub time: u64,
    /// Order of insertion (listtransactions order).
    pub seq: u64,
    /// The raw transaction (hex).
    pub hex: String,
}

impl TxRecord {
    fn to_json(&self, txid: &Txid) -> Value {
        json!({
            "txid": txid.to_hex(), "debit": self.debit, "credit": self.credit, "fee": self.fee,
            "coinbase": self.coinbase, "height": self.block.as_ref().map(|b| b.0),
            "blockhash": self.block.as_ref().map(|b| b.1.clone()), "time": self.time,
            "seq": self.seq, "hex": self.hex,
        })
    }

    fn from_json(v: &Value) -> Option<(Txid, Self)> {
        let txid: Txid = v["txid"].as_str()?.parse().ok()?;
        let block = match (v["height"].as_u64(), v["blockhash"].as_str()) {
            (Some(h), Some(b)) => Some((u32::try_from(h).ok()?, b.to_owned())),
            _ => None,
        };
        Some((
            txid,
            Self {
                debit: v["debit"].as_u64()?,
                credit: v["credit"].as_u64()?,
                fee: v["fee"].as_u64(),
                coinbase: v["coinbase"].as_bool()?,
                block,
                time: v["time"].as_u64()?,
                seq: v["seq"].as_u64()?,
                hex: v["hex"].as_str()?.to_owned(),
            },
        ))
    }
}

/// A loaded wallet with its transaction log.
#[derive(Debug)]
pub struct WalletEntry {
    /// The wallet.
    pub wallet: Wallet,
    /// Transactions by txid.
    pub txs: BTreeMap<Txid, TxRecord>,
    log_path: PathBuf,
    next_seq: u64,
    /// Transactions recorded or re-confirmed since [`Wallets::publish_recorded`] last ran.
    recorded: Vec<Txid>,
}

impl WalletEntry {
    /// Wraps an opened wallet; reads its transaction log if there is one.
    pub fn new(wallet: Wallet, log_path: PathBuf) -> Self {
        let txs: BTreeMap<Txid, TxRecord> = std::fs::read(&log_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
            .map(|v| v.iter().filter_map(TxRecord::from_json).collect())
            .unwrap_or_default();
        let next_seq = txs.values().map(|r| r.seq + 1).max().unwrap_or(0);
        Self { wallet, txs, log_path, next_seq, recorded: Vec::new() }
    }

    /// Writes the transaction log (temporary file + rename).
    pub fn save_log(&self) {
        let v: Vec<Value> = self.txs.iter().map(|(id, r)| r.to_json(id)).collect();
        let Ok(bytes) = serde_json::to_vec(&v) else { return };
        let tmp = self.log_path.with_extension("json.tmp");
        if let Err(e) =
            std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &self.log_path))
        {
            // Never leave the temporary file behind (a full disk would otherwise collect them).
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("could not write wallet log {}: {e}", self.log_path.display());
        }
    }

    /// Records `tx` if it touches the wallet. `extra` holds wallet outputs created earlier in
    /// the same block (not yet known to the wallet). Returns whether it was recorded.
    fn record(
        &mut self,
        tx: &Transaction,
        block: Option<(u32, BlockHash)>,
        time: u64,
        extra: &HashMap<OutPoint, u64>,
    ) -> bool {
        let txid = tx.txid();
        let coins: HashMap<OutPoint, u64> =
            self.wallet.coins().map(|c| (c.outpoint, c.output.value.0)).collect();
        let mut debit = 0u64;
        let mut all_ours = !tx.is_coinbase();
        for i in &tx.inputs {
            match coins.get(&i.previous_output).or_else(|| extra.get(&i.previous_output)) {
                Some(v) => debit = debit.saturating_add(*v),
                None => all_ours = false,
            }
        }
        let credit: u64 = tx
            .outputs
            .iter()
            .filter(|o| self.wallet.is_mine(&o.script_pubkey))
            .map(|o| o.value.0)
            .sum();
        let out_sum: u64 = tx.outputs.iter().map(|o| o.value.0).sum();
        let block = block.map(|(h, b)| (h, b.to_hex()));
        if let Some(r) = self.txs.get_mut(&txid) {
            // Known (e.g. sent by us): the debit was measured while the coins were still here.
            if debit > r.debit {
                r.debit = debit;
                r.fee = all_ours.then(|| debit.saturating_sub(out_sum));
            }
            r.credit = credit;
            if r.block != block {
                self.recorded.push(txid);
            }
            r.block = block;
            return true;
        }
        if debit == 0 && credit == 0 {
            return false;
        }
        self.recorded.push(txid);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.txs.insert(
            txid,
            TxRecord {
                debit,
                credit,
                fee: (all_ours && debit > 0).then(|| debit.saturating_sub(out_sum)),
                coinbase: tx.is_coinbase(),
                block,
                time,
                seq,
                hex: hex::encode(tx.to_bytes()),
            },
        );
        true
    }

    /// Records an unconfirmed transaction (sent by this node) in the wallet and the log.
    pub fn add_unconfirmed(&mut self, tx: &Transaction) -> Result<(), WalletError> {
        let recorded = self.record(tx, None, crate::node::now(), &HashMap::new());
        self.wallet.add_unconfirmed(tx.clone())?;
        if recorded {
            self.save_log();
        }
        Ok(())
    }

    /// Forgets an unconfirmed transaction (rejected, replaced).
    pub fn forget(&mut self, txid: &Txid) {
        let _ = self.wallet.abandon(txid);
        if self.txs.get(txid).is_some_and(|r| r.block.is_none()) {
            self.txs.remove(txid);
            self.save_log();
        }
    }

    /// Feeds a connected block (`loss_index`: the chain's loss index after it, which its coins'
    /// expiry is measured by; `mtp`: median-time-past of its parent).
    pub fn connect(&mut self, block: &Block, loss_index: u64, mtp: u64) -> Result<(), WalletError> {
        let height = block.header.height;
        let hash = block.block_hash();
        let mut extra = HashMap::new();
        let mut changed = false;
        for tx in &block.transactions {
            changed |= self.record(tx, Some((height, hash)), block.header.time, &extra);
            let txid = tx.txid();
            for (i, o) in tx.outputs.iter().enumerate() {
                if self.wallet.is_mine(&o.script_pubkey) {
                    extra.insert(OutPoint::new(txid, i as u32), o.value.0);
                }
            }
        }
        self.wallet.scan_block(block, height, loss_index, mtp)?;
        if changed {
            self.save_log();
        }
        Ok(())
    }

    /// Feeds a disconnected block (the tip).
    pub fn disconnect(&mut self, block: &Block) -> Result<(), WalletError> {
        self.wallet.undo_block(block, block.header.height)?;
        let mut changed = false;
        for tx in &block.transactions {
            let txid = tx.txid();
            if tx.is_coinbase() {
                changed |= self.txs.remove(&txid).is_some();
            } else if let Some(r) = self.txs.get_mut(&txid) {
                r.block = None;
                changed = true;
            }
        }
        if changed {
            self.save_log();
        }
        Ok(())
    }

    /// Feeds the active chain's blocks `from..=to` (stops at the first unreadable block).
    pub fn scan_range(&mut self, chain: &ChainState, from: u32, to: u32) -> Result<u32, String> {
        let tip = chain.tip();
        let view = chain.header_chain(&tip.hash).map_err(|e| e.to_string())?;
        let mut scanned = 0;
        for h in from..=to.min(tip.height) {
            let Some(hash) = chain.block_hash_at(h).map_err(|e| e.to_string())? else { break };
            let Some(block) = chain.block(&hash).map_err(|e| e.to_string())? else { break };
            let mtp = h.checked_sub(1).map_or(0, |p| median_time_past(&view, p));
            let Some(loss_index) = view.ancestor(h).map(|s| s.loss_index) else { break };
            self.connect(&block, loss_index, mtp).map_err(|e| e.to_string())?;
            scanned += 1;
        }
        Ok(scanned)
    }
}

/// The wallets loaded in the node, by name.
#[derive(Debug, Default)]
pub struct Wallets {
    map: Mutex<BTreeMap<String, Arc<Mutex<WalletEntry>>>>,
}

/// Locks one wallet entry.
pub fn lock_entry(e: &Mutex<WalletEntry>) -> MutexGuard<'_, WalletEntry> {
    e.lock().unwrap_or_else(|e| e.into_inner())
}

impl Wallets {
    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Mutex<WalletEntry>>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names of the loaded wallets, sorted.
    pub fn names(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// A loaded wallet.
    pub fn get(&self, name: &str) -> Option<Arc<Mutex<WalletEntry>>> {
        self.map().get(name).cloned()
    }

    /// Every loaded wallet.
    pub fn all(&self) -> Vec<Arc<Mutex<WalletEntry>>> {
        self.map().values().cloned().collect()
    }

    /// The only loaded wallet: `Ok(None)` when none, `Err(n)` when `n > 1` are loaded.
    pub fn single(&self) -> Result<Option<Arc<Mutex<WalletEntry>>>, usize> {
        let m = self.map();
        match m.len() {
            0 => Ok(None),
            1 => Ok(m.values().next().cloned()),
            n => Err(n),
        }
    }

    /// Adds a loaded wallet (false if the name is taken).
    pub fn insert(&self, name: &str, entry: WalletEntry) -> bool {
        let mut m = self.map();
        if m.contains_key(name) {
            return false;
        }
        m.insert(name.to_owned(), Arc::new(Mutex::new(entry)));
        true
    }

    /// Unloads a wallet (false if it was not loaded).
    pub fn remove(&self, name: &str) -> bool {
        self.map().remove(name).is_some()
    }

    /// Publishes every loaded wallet's newly recorded (or newly confirmed) transactions as
    /// [`crate::events::NodeEvent::WalletTransaction`]s, in the order they were recorded.
    pub fn publish_recorded(&self, events: &crate::events::EventBus) {
        let named: Vec<(String, Arc<Mutex<WalletEntry>>)> =
            self.map().iter().map(|(n, e)| (n.clone(), e.clone())).collect();
        for (wallet, entry) in named {
            let recorded = std::mem::take(&mut lock_entry(&entry).recorded);
            for txid in recorded {
                events.publish(crate::events::NodeEvent::WalletTransaction {
                    wallet: wallet.clone(),
                    txid,
                });
            }
        }
    }

    /// Feeds every loaded wallet transactions the mempool accepted from outside the wallets
    /// (`sendrawtransaction`, P2P): they show as pending; `replaced` ones are forgotten.
    pub fn mempool_accepted(&self, txs: &[Transaction], replaced: &[Txid]) {
        if txs.is_empty() && replaced.is_empty() {
            return;
        }
        for w in self.all() {
            let mut e = lock_entry(&w);
            for r in replaced {
                e.forget(r);
            }
            for tx in txs {
                if let Err(err) = e.add_unconfirmed(tx) {
                    tracing::warn!("wallet could not record {}: {err}", tx.txid());
                }
            }
        }
    }

    /// Feeds every loaded wallet the blocks of an active-chain change (disconnected tip first,
    /// then connected in order). Called with the chainstate locked.
    pub fn chain_changed(
        &self,
        chain: &ChainState,
        connected: &[BlockHash],
        disconnected: &[BlockHash],
    ) {
        let wallets = self.all();
        if wallets.is_empty() {
            return;
        }
        let tip = chain.tip();
        let Ok(view) = chain.header_chain(&tip.hash) else { return };
        let blocks = |hashes: &[BlockHash]| -> Vec<Block> {
            hashes.iter().filter_map(|h| chain.block(h).ok().flatten()).collect()
        };
        let (down, up) = (blocks(disconnected), blocks(connected));
        for w in wallets {
            let mut e = lock_entry(&w);
            for b in &down {
                if let Err(err) = e.disconnect(b) {
                    tracing::warn!("wallet undo_block: {err}");
                }
            }
            for b in &up {
                let mtp = b.header.height.checked_sub(1).map_or(0, |p| median_time_past(&view, p));
                let Some(loss_index) = view.ancestor(b.header.height).map(|s| s.loss_index) else {
                    continue;
                };
                if let Err(err) = e.connect(b, loss_index, mtp) {
                    tracing::warn!("wallet scan_block: {err}");
                }
            }
        }
    }
}

/// The wallet file of `name` in `netdir`.
pub fn wallet_path(netdir: &Path, name: &str) -> PathBuf {
    netdir.join(WALLETS_DIR).join(format!("{name}.wallet"))
}

/// The transaction log of `name` in `netdir`.
pub fn log_path(netdir: &Path, name: &str) -> PathBuf {
    netdir.join(WALLETS_DIR).join(format!("{name}.txs.json"))
}

/// Whether `name` is usable as a wallet file name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
