//! The [`Mempool`]: validation, insertion, removal, replacement, eviction, orphans and the chain
//! events.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::mem::size_of;

use rnet_consensus::{
    ChainParams, Coin, TxError, UtxoView, check_transaction, is_expired, is_final, is_unspendable,
    relative_lock_passed,
};
use rnet_primitives::{
    Amount, Block, BlockHash, MAX_MONEY, OutPoint, Transaction, TxOut, Txid, Wtxid,
};
use rnet_script::locktime::MIN_RELATIVE_LOCK_TX_VERSION;
use rnet_script::{OutputKind, classify};

use crate::entry::{MempoolEntry, cmp_rate};
use crate::error::{MempoolError, NonStandard};
use crate::estimator::FeeEstimator;
use crate::index::{EvictKey, TxidList};
use crate::memusage::{btree_entry, hash_entry, tx_heap_usage, vec_usage};
use crate::orphan::{OrphanKey, OrphanPool};
use crate::pending::{PendingTx, VerifiedTx, verify_scripts};
use crate::policy::{FeeRate, MempoolPolicy, TipContext};

/// Estimated memory use of a pooled transaction that spends `inputs` outpoints and has
/// `parents` in-pool parents: its heap allocations, its node in the txid map, one spender-map
/// entry per input, its parent list plus its share of the parents' child lists (two txids per
/// link, for the vectors' spare capacity), and its eviction- and time-index entries.
pub(crate) fn entry_usage(tx: &Transaction, parents: usize) -> usize {
    tx_heap_usage(tx)
        + hash_entry::<Txid, Node>()
        + tx.inputs.len() * hash_entry::<OutPoint, Txid>()
        + vec_usage::<Txid>(parents)
        + parents * 2 * size_of::<Txid>()
        + btree_entry::<EvictKey, ()>()
        + btree_entry::<(u64, u64), Txid>()
}

/// What [`Mempool::accept`] (or [`Mempool::test_accept`]) did with a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptResult {
    /// Its txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// Its fee.
    pub fee: Amount,
    /// Its serialized size.
    pub size: usize,
    /// Transactions it replaced (direct conflicts and their descendants), evicted from the pool
    /// (for `test_accept`: that it would evict).
    pub replaced: Vec<Txid>,
    /// Orphans accepted because this transaction was their missing parent (in acceptance
    /// order; empty for `test_accept`).
    pub accepted_orphans: Vec<Txid>,
}

/// Summary of the pool (for `getmempoolinfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Number of transactions.
    pub size: usize,
    /// Sum of their serialized sizes.
    pub bytes: usize,
    /// Estimated memory use (sum of [`MempoolEntry::usage`]): what the size limit counts.
    pub usage: usize,
    /// Sum of their fees.
    pub total_fee: Amount,
    /// `max_size_bytes` of the policy (compared with `usage`).
    pub max_mempool: usize,
    /// The fee rate a new transaction must pay now: the larger of the minimum relay fee and the
    /// dynamic minimum raised by evictions.
    pub mempool_min_fee: FeeRate,
    /// The minimum relay fee rate of the policy.
    pub min_relay_tx_fee: FeeRate,
    /// The incremental relay fee rate of the policy.
    pub incremental_relay_fee: FeeRate,
    /// Number of orphans held.
    pub orphans: usize,
    /// Sum of the orphans' serialized sizes.
    pub orphan_bytes: usize,
    /// Estimated memory use of the orphans, index entries included (what `max_orphan_bytes`
    /// counts).
    pub orphan_usage: usize,
    /// Whether any conflicting transaction may be replaced.
    pub full_rbf: bool,
}

/// A pooled transaction and its links.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub entry: MempoolEntry,
    /// In-pool transactions whose outputs it spends.
    pub parents: TxidList,
    /// In-pool transactions spending its outputs.
    pub children: TxidList,
    /// Insertion order (parents always have a smaller one than their children).
    pub seq: u64,
}

/// How strictly to validate.
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// Skip the relay and dynamic minimum fees (transactions coming back after a reorg).
    bypass_fees: bool,
    /// Run the scripts (skipped for transactions already verified in the pool: a script's
    /// verdict depends only on the transaction and the outputs it spends, which its inputs fix).
    verify_scripts: bool,
}

const RELAY: Mode = Mode { bypass_fees: false, verify_scripts: true };

/// Relay rules without the scripts (verified separately, or outside the locks).
const RELAY_NO_SCRIPTS: Mode = Mode { bypass_fees: false, verify_scripts: false };

/// A transaction that passed validation, with what inserting it takes.
#[derive(Debug)]
struct Checked {
    txid: Txid,
    wtxid: Wtxid,
    fee: Amount,
    size: usize,
    parents: BTreeSet<Txid>,
    ancestors: BTreeSet<Txid>,
    ancestor_size: usize,
    ancestor_fees: u64,
    /// Direct conflicts and all their descendants.
    evicted: BTreeSet<Txid>,
    /// The outputs its inputs spend, in input order.
    spent: Vec<TxOut>,
    /// Non-empty signatures its scripts check (0 until they have run).
    sig_checks: u32,
}

/// The dynamic minimum fee: raised to (evicted package rate + increment) on eviction, halving
/// every `min_fee_halflife_secs` afterwards, and ignored once below half the increment.
#[derive(Clone, Copy, Debug, Default)]
struct RollingMinFee {
    floor: u64,
    since: u64,
}

/// The transaction memory pool. Pure over [`UtxoView`]: the caller passes the chain's UTXO view
/// (as of the tip) and a [`TipContext`] to every call that validates.
#[derive(Clone, Debug)]
pub struct Mempool {
    pub(crate) params: ChainParams,
    /// `params.genesis_hash()`: what every signature of the chain commits to.
    genesis: BlockHash,
    pub(crate) policy: MempoolPolicy,
    pub(crate) nodes: HashMap<Txid, Node>,
    /// Outpoint → the pooled transaction spending it.
    pub(crate) spenders: HashMap<OutPoint, Txid>,
    total_bytes: usize,
    /// Sum of the entries' `usage`.
    total_usage: usize,
    total_fees: u64,
    next_seq: u64,
    /// Every pooled transaction by descendant-package fee rate: the first is evicted first.
    by_evict: BTreeSet<EvictKey>,
    /// (entry time, sequence) → txid: expiry order.
    by_time: BTreeMap<(u64, u64), Txid>,
    orphans: OrphanPool,
    estimator: FeeEstimator,
    min_fee: RollingMinFee,
    /// The latest `now` seen (for calls that take no clock).
    clock: u64,
    /// Orphans taken out and validated again so far (a measure of the retry work).
    pub(crate) orphan_retries: u64,
}

impl Mempool {
    /// An empty pool for the chain `params` with relay `policy`.
    pub fn new(params: ChainParams, policy: MempoolPolicy) -> Self {
        Self {
            genesis: params.genesis_hash(),
            params,
            policy,
            nodes: HashMap::new(),
            spenders: HashMap::new(),
            total_bytes: 0,
            total_usage: 0,
            total_fees: 0,
            next_seq: 0,
            by_evict: BTreeSet::new(),
            by_time: BTreeMap::new(),
            orphans: OrphanPool::default(),
            estimator: FeeEstimator::default(),
            min_fee: RollingMinFee::default(),
            clock: 0,
            orphan_retries: 0,
        }
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The relay policy.
    pub fn policy(&self) -> &MempoolPolicy {
        &self.policy
    }

    // ----- queries -----

    /// The entry of a pooled transaction.
    pub fn get(&self, txid: &Txid) -> Option<&MempoolEntry> {
        self.nodes.get(txid).map(|n| &n.entry)
    }

    /// Whether `txid` is pooled.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.nodes.contains_key(txid)
    }

    /// The txids of all pooled transactions, in insertion order (parents before children).
    pub fn txids(&self) -> Vec<Txid> {
        let mut v: Vec<(u64, Txid)> = self.nodes.iter().map(|(t, n)| (n.seq, *t)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, t)| t).collect()
    }

    /// All entries, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &MempoolEntry> {
        self.nodes.values().map(|n| &n.entry)
    }

    /// Number of pooled transactions.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Sum of the serialized sizes of the pooled transactions.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Estimated memory use of the pooled transactions (what `max_size_bytes` limits), in the
    /// manner of Core's `DynamicMemoryUsage`: see [`entry_usage`].
    pub fn usage(&self) -> usize {
        self.total_usage
    }

    /// Sum of their fees.
    pub fn total_fees(&self) -> Amount {
        Amount(self.total_fees)
    }

    /// Pooled transactions whose outputs `txid` spends (`depends` in RPC).
    pub fn parents(&self, txid: &Txid) -> Vec<Txid> {
        self.nodes.get(txid).map(|n| n.parents.iter().copied().collect()).unwrap_or_default()
    }

    /// Pooled transactions spending outputs of `txid` (`spentby` in RPC).
    pub fn children(&self, txid: &Txid) -> Vec<Txid> {
        self.nodes.get(txid).map(|n| n.children.iter().copied().collect()).unwrap_or_default()
    }

    /// The pooled transaction spending `outpoint`, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spenders.get(outpoint).copied()
    }

    /// Number of orphans held.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// Whether an orphan with this txid is held (any witness).
    pub fn contains_orphan(&self, txid: &Txid) -> bool {
        self.orphans.contains_txid(txid)
    }

    /// The orphans' txids, oldest first.
    pub fn orphan_txids(&self) -> Vec<Txid> {
        self.orphans.txids()
    }

    /// The fee rate a new transaction must pay at `now`: the larger of the minimum relay fee and
    /// the dynamic minimum.
    pub fn min_fee_rate(&self, now: u64) -> FeeRate {
        self.policy.min_relay_fee_rate.max(self.dynamic_min_fee(now))
    }

    /// Summary for `getmempoolinfo` (the dynamic minimum at the latest clock seen).
    pub fn info(&self) -> MempoolInfo {
        MempoolInfo {
            size: self.nodes.len(),
            bytes: self.total_bytes,
            usage: self.total_usage,
            total_fee: Amount(self.total_fees),
            max_mempool: self.policy.max_size_bytes,
            mempool_min_fee: self.min_fee_rate(self.clock),
            min_relay_tx_fee: self.policy.min_relay_fee_rate,
            incremental_relay_fee: self.policy.incremental_relay_fee_rate,
            orphans: self.orphans.len(),
            orphan_bytes: self.orphans.bytes(),
            orphan_usage: self.orphans.usage(),
            full_rbf: self.policy.full_rbf,
        }
    }

    /// Fee rate estimated to confirm within `target_blocks` (see `docs/mempool.md`): the 75th
    /// percentile of the rates of pooled transactions that confirmed within the target over the
    /// last `fee_history_blocks` blocks, at least the current minimum fee; `None` without data.
    pub fn estimate_fee(&self, target_blocks: u32) -> Option<FeeRate> {
        self.estimator.estimate(target_blocks).map(|r| r.max(self.min_fee_rate(self.clock)))
    }

    // ----- acceptance -----

    /// Validates `tx` fully against `utxos` (the chain's coins as of the tip) plus the pool, and
    /// adds it, replacing conflicting transactions if it pays enough (RBF) and evicting the
    /// lowest-fee-rate packages if the pool gets too large. A transaction with missing inputs
    /// goes to the orphan pool (`MissingInputs`); a new transaction's orphans are retried.
    /// Transactions older than `mempool_expiry_secs` and orphans older than
    /// `orphan_expiry_secs` are dropped first. Equivalent to [`Mempool::prepare`],
    /// [`PendingTx::verify_scripts`] and [`Mempool::accept_verified`] under one lock.
    pub fn accept(
        &mut self,
        tx: Transaction,
        utxos: &dyn UtxoView,
        tip: &TipContext,
        now: u64,
    ) -> Result<AcceptResult, MempoolError> {
        self.advance_clock(now);
        match self.check(&tx, utxos, tip, now, RELAY) {
            Ok(checked) => self.admit(checked, tx, utxos, tip, now),
            Err(e) => Err(self.keep_orphan(e, tx, now)),
        }
    }

    /// Every check of [`Mempool::accept`] except the scripts, without changing anything: the
    /// part to run while the caller holds the chain and pool locks. The returned [`PendingTx`]
    /// carries the outputs the transaction spends, so [`PendingTx::verify_scripts`] can run
    /// with no lock held. On `MissingInputs`, pass the transaction to [`Mempool::accept`] to
    /// keep it as an orphan (it fails before any script runs).
    pub fn prepare(
        &self,
        tx: Transaction,
        utxos: &dyn UtxoView,
        tip: &TipContext,
        now: u64,
    ) -> Result<PendingTx, MempoolError> {
        let c = self.check(&tx, utxos, tip, now, RELAY_NO_SCRIPTS)?;
        Ok(PendingTx { tx, spent: c.spent, genesis: self.genesis })
    }

    /// Adds a transaction whose scripts [`PendingTx::verify_scripts`] verified: re-runs every
    /// cheap check against the current `utxos` and pool (anything may have changed since
    /// [`Mempool::prepare`]), refuses it with `StaleVerification` unless it spends exactly the
    /// outputs its scripts were verified against on this chain, then inserts it exactly as
    /// [`Mempool::accept`] does (missing inputs: kept as an orphan).
    pub fn accept_verified(
        &mut self,
        verified: VerifiedTx,
        utxos: &dyn UtxoView,
        tip: &TipContext,
        now: u64,
    ) -> Result<AcceptResult, MempoolError> {
        self.advance_clock(now);
        let VerifiedTx { tx, spent, genesis, sig_checks } = verified;
        let mut checked = match self.check(&tx, utxos, tip, now, RELAY_NO_SCRIPTS) {
            Ok(c) => c,
            Err(e) => return Err(self.keep_orphan(e, tx, now)),
        };
        if genesis != self.genesis || checked.spent != spent {
            return Err(MempoolError::StaleVerification(checked.txid));
        }
        checked.sig_checks = sig_checks;
        self.admit(checked, tx, utxos, tip, now)
    }

    /// Moves the clock to `now` and drops expired transactions and orphans.
    fn advance_clock(&mut self, now: u64) {
        self.clock = self.clock.max(now);
        self.orphans.expire(now, self.policy.orphan_expiry_secs);
        self.expire(now);
    }

    /// Removes (with descendants) every transaction that entered more than
    /// `mempool_expiry_secs` before `now`; returns how many were removed.
    fn expire(&mut self, now: u64) -> usize {
        let cutoff = now.saturating_sub(self.policy.mempool_expiry_secs);
        let old: Vec<Txid> = self.by_time.range(..(cutoff, 0)).map(|(_, t)| *t).collect();
        let mut set = BTreeSet::new();
        for txid in &old {
            if !set.contains(txid) {
                set.extend(self.descendants(txid));
            }
        }
        if !set.is_empty() {
            tracing::debug!(count = set.len(), "expiring old transactions");
            self.remove_set(&set);
        }
        set.len()
    }

    /// Keeps `tx` in the orphan pool when `e` says its inputs are missing; returns `e`.
    fn keep_orphan(&mut self, e: MempoolError, tx: Transaction, now: u64) -> MempoolError {
        if e.is_missing_inputs() {
            let txid = tx.txid();
            let (max_count, max_usage) = (self.policy.max_orphans, self.policy.max_orphan_bytes);
            let kept = self.orphans.insert(tx, now, max_count, max_usage);
            tracing::debug!(%txid, kept, "orphan transaction");
        }
        e
    }

    /// Inserts a checked transaction, trims to size (`MempoolFull` if it was the one evicted)
    /// and retries the orphans waiting for it.
    fn admit(
        &mut self,
        checked: Checked,
        tx: Transaction,
        utxos: &dyn UtxoView,
        tip: &TipContext,
        now: u64,
    ) -> Result<AcceptResult, MempoolError> {
        let mut result = self.insert(checked, tx, now, tip.height);
        self.trim_to_size(now);
        if !self.nodes.contains_key(&result.txid) {
            return Err(MempoolError::MempoolFull);
        }
        result.accepted_orphans = self.process_orphans(vec![result.txid], utxos, tip, now);
        Ok(result)
    }

    /// What [`Mempool::accept`] would do with `tx`, without changing anything (an orphan is not
    /// kept; eviction for space is not simulated).
    pub fn test_accept(
        &self,
        tx: &Transaction,
        utxos: &dyn UtxoView,
        tip: &TipContext,
        now: u64,
    ) -> Result<AcceptResult, MempoolError> {
        let c = self.check(tx, utxos, tip, now, RELAY)?;
        Ok(AcceptResult {
            txid: c.txid,
            wtxid: c.wtxid,
            fee: c.fee,
            size: c.size,
            replaced: c.evicted.into_iter().collect(),
            accepted_orphans: Vec::new(),
        })
    }

    /// Removes `txid` and all its in-pool descendants (no-op if absent).
    pub fn remove(&mut self, txid: &Txid) {
        if self.nodes.contains_key(txid) {
            let set = self.descendants(txid);
            self.remove_set(&set);
        }
    }

    /// Policy checks that need no coins: size, version, empty `script_sig`s, output kinds, dust.
    fn check_standard(&self, tx: &Transaction, size: usize) -> Result<(), NonStandard> {
        if size > self.policy.max_tx_size {
            return Err(NonStandard::TxTooLarge { size, max: self.policy.max_tx_size });
        }
        if !(1..=2).contains(&tx.version) {
            return Err(NonStandard::Version(tx.version));
        }
        for (input, txin) in tx.inputs.iter().enumerate() {
            if !txin.script_sig.is_empty() {
                return Err(NonStandard::ScriptSig { input });
            }
        }
        let dust = self.policy.dust_threshold();
        let mut null_data = 0usize;
        for (output, out) in tx.outputs.iter().enumerate() {
            match classify(&out.script_pubkey) {
                OutputKind::Key | OutputKind::ScriptHash => {
                    if out.value < dust {
                        return Err(NonStandard::Dust {
                            output,
                            value: out.value,
                            threshold: dust,
                        });
                    }
                }
                OutputKind::EmissionReturn => {}
                OutputKind::NonStandard
                    if is_null_data(&out.script_pubkey, self.policy.max_null_data_size) =>
                {
                    null_data += 1;
                    if null_data > 1 {
                        return Err(NonStandard::MultipleNullData);
                    }
                }
                _ => return Err(NonStandard::OutputScript { output }),
            }
        }
        Ok(())
    }

    /// The coin at `outpoint` from the pool (unconfirmed, as of the next block) or the chain,
    /// whether or not a pooled transaction spends it.
    pub(crate) fn lookup(
        &self,
        utxos: &dyn UtxoView,
        outpoint: &OutPoint,
        tip: &TipContext,
    ) -> Option<Coin> {
        if let Some(parent) = self.nodes.get(&outpoint.txid) {
            let out = parent.entry.tx.outputs.get(outpoint.vout as usize)?;
            if is_unspendable(&out.script_pubkey) {
                return None;
            }
            return Some(unconfirmed_coin(out, tip));
        }
        utxos.coin(outpoint)
    }

    /// Full validation without changing anything.
    fn check(
        &self,
        tx: &Transaction,
        utxos: &dyn UtxoView,
        tip: &TipContext,
        now: u64,
        mode: Mode,
    ) -> Result<Checked, MempoolError> {
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase);
        }
        check_transaction(tx)?;
        let size = tx.total_size();
        self.check_standard(tx, size)?;
        let txid = tx.txid();
        if self.nodes.contains_key(&txid) {
            return Err(MempoolError::AlreadyInMempool(txid));
        }
        let height = tip.next_height();
        if !is_final(tx, height, tip.median_time_past) {
            return Err(TxError::NonFinal { lock_time: tx.lock_time }.into());
        }

        // Inputs: from the pool (unconfirmed, as of the next block) or the chain.
        let mut conflicts: BTreeSet<Txid> = BTreeSet::new();
        let mut parents: BTreeSet<Txid> = BTreeSet::new();
        let mut spent: Vec<TxOut> = Vec::with_capacity(tx.inputs.len());
        let mut missing: Vec<OutPoint> = Vec::new();
        let mut inputs_value = 0u64;
        for (input, txin) in tx.inputs.iter().enumerate() {
            let outpoint = txin.previous_output;
            if let Some(spender) = self.spenders.get(&outpoint) {
                conflicts.insert(*spender);
            }
            let coin = if self.nodes.contains_key(&outpoint.txid) {
                parents.insert(outpoint.txid);
                self.lookup(utxos, &outpoint, tip)
                    .ok_or(TxError::MissingOrSpent { input, outpoint })?
            } else if let Some(coin) = utxos.coin(&outpoint) {
                if is_expired(&self.params, coin.creation_loss_index, tip.tip_loss_index) {
                    return Err(TxError::Expired { input, outpoint }.into());
                }
                coin
            } else if utxos.is_expired(&outpoint) {
                return Err(TxError::Expired { input, outpoint }.into());
            } else {
                missing.push(outpoint);
                continue;
            };
            if coin.is_coinbase
                && u64::from(height)
                    < u64::from(coin.height) + u64::from(self.params.coinbase_maturity)
            {
                return Err(
                    TxError::ImmatureCoinbase { input, coin_height: coin.height, height }.into()
                );
            }
            if tx.version >= MIN_RELATIVE_LOCK_TX_VERSION
                && !relative_lock_passed(txin.sequence, &coin, height, tip.median_time_past)
            {
                return Err(TxError::SequenceLocked { input }.into());
            }
            inputs_value = inputs_value
                .checked_add(coin.output.value.0)
                .filter(|v| *v <= MAX_MONEY)
                .ok_or(TxError::InputValueOutOfRange)?;
            spent.push(coin.output);
        }
        if !missing.is_empty() {
            let confirmed = (0..tx.outputs.len().min(u32::MAX as usize))
                .any(|vout| utxos.coin(&OutPoint::new(txid, vout as u32)).is_some());
            if confirmed {
                return Err(MempoolError::AlreadyConfirmed(txid));
            }
            return Err(MempoolError::MissingInputs { missing });
        }
        // check_transaction bounds the output sum by MAX_MONEY.
        let outputs_value = tx.outputs.iter().fold(0u64, |a, o| a.saturating_add(o.value.0));
        if outputs_value > inputs_value {
            return Err(TxError::OutputsExceedInputs {
                inputs: Amount(inputs_value),
                outputs: Amount(outputs_value),
            }
            .into());
        }
        let fee = Amount(inputs_value - outputs_value);

        if !mode.bypass_fees {
            let required = self.policy.min_relay_fee_rate.fee_for(size);
            if fee < required {
                return Err(MempoolError::FeeTooLow { fee, required });
            }
            let dynamic = self.dynamic_min_fee(now);
            if dynamic > self.policy.min_relay_fee_rate {
                let required = dynamic.fee_for(size);
                if fee < required {
                    return Err(MempoolError::MempoolMinFeeNotMet { fee, required });
                }
            }
        }

        // Replacement.
        let evicted = self.check_replacement(&conflicts, fee, size)?;

        // Ancestors and descendants.
        let ancestors = self.ancestors_of_parents(&parents, self.policy.max_ancestors)?;
        if let Some(t) = ancestors.iter().find(|a| evicted.contains(a)) {
            return Err(MempoolError::SpendsConflictingTx { txid: *t });
        }
        let mut ancestor_size = size;
        let mut ancestor_fees = fee.0;
        for a in &ancestors {
            let e = &self.nodes[a].entry;
            ancestor_size = ancestor_size.saturating_add(e.size);
            ancestor_fees = ancestor_fees.saturating_add(e.fee.0);
        }
        if ancestor_size > self.policy.max_ancestor_size {
            return Err(MempoolError::AncestorSizeTooLarge {
                size: ancestor_size,
                max: self.policy.max_ancestor_size,
            });
        }
        for a in &ancestors {
            let e = &self.nodes[a].entry;
            let (mut count, mut dsize) = (e.descendant_count, e.descendant_size);
            if !evicted.is_empty() {
                for d in self.descendants(a) {
                    if evicted.contains(&d) {
                        count -= 1;
                        dsize -= self.nodes[&d].entry.size;
                    }
                }
            }
            let (count, dsize) = (count + 1, dsize.saturating_add(size));
            if count > self.policy.max_descendants {
                return Err(MempoolError::TooManyDescendants {
                    ancestor: *a,
                    count,
                    max: self.policy.max_descendants,
                });
            }
            if dsize > self.policy.max_descendant_size {
                return Err(MempoolError::DescendantSizeTooLarge {
                    ancestor: *a,
                    size: dsize,
                    max: self.policy.max_descendant_size,
                });
            }
        }

        let sig_checks =
            if mode.verify_scripts { verify_scripts(&self.genesis, tx, &spent)? } else { 0 };
        Ok(Checked {
            txid,
            wtxid: tx.wtxid(),
            fee,
            size,
            parents,
            ancestors,
            ancestor_size,
            ancestor_fees,
            evicted,
            spent,
            sig_checks,
        })
    }

    /// BIP125-like rules (full RBF unless disabled) for a transaction paying `fee` for `size`
    /// bytes that conflicts with `conflicts`. Returns everything it would evict.
    fn check_replacement(
        &self,
        conflicts: &BTreeSet<Txid>,
        fee: Amount,
        size: usize,
    ) -> Result<BTreeSet<Txid>, MempoolError> {
        let mut evicted = BTreeSet::new();
        if conflicts.is_empty() {
            return Ok(evicted);
        }
        let max = self.policy.max_replacements;
        for c in conflicts {
            let node = &self.nodes[c];
            if !self.policy.full_rbf && !signals_rbf(&node.entry.tx) {
                return Err(MempoolError::ConflictNotReplaceable { conflict: *c });
            }
            if cmp_rate(fee.0, size, node.entry.fee.0, node.entry.size).is_le() {
                return Err(MempoolError::ReplacementFeeRateTooLow { conflict: *c });
            }
            evicted.extend(self.descendants(c));
            if evicted.len() > max {
                return Err(MempoolError::TooManyReplacements { count: evicted.len(), max });
            }
        }
        let evicted_fees =
            evicted.iter().fold(0u64, |a, t| a.saturating_add(self.nodes[t].entry.fee.0));
        let required =
            Amount(evicted_fees.saturating_add(self.policy.min_relay_fee_rate.fee_for(size).0));
        if fee < required {
            return Err(MempoolError::ReplacementFeeTooLow { fee, required });
        }
        Ok(evicted)
    }

    /// All in-pool ancestors of a transaction with these `parents`; errors once the count with
    /// the transaction would exceed `max`.
    fn ancestors_of_parents(
        &self,
        parents: &BTreeSet<Txid>,
        max: usize,
    ) -> Result<BTreeSet<Txid>, MempoolError> {
        let mut seen: BTreeSet<Txid> = BTreeSet::new();
        let mut queue: VecDeque<Txid> = parents.iter().copied().collect();
        while let Some(t) = queue.pop_front() {
            if !seen.insert(t) {
                continue;
            }
            if seen.len() + 1 > max {
                return Err(MempoolError::TooManyAncestors { count: seen.len() + 1, max });
            }
            if let Some(n) = self.nodes.get(&t) {
                queue.extend(n.parents.iter().copied());
            }
        }
        Ok(seen)
    }

    /// In-pool ancestors of a pooled transaction (not itself).
    pub(crate) fn ancestors(&self, txid: &Txid) -> BTreeSet<Txid> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<Txid> =
            self.nodes.get(txid).map(|n| n.parents.iter().copied().collect()).unwrap_or_default();
        while let Some(t) = queue.pop_front() {
            if seen.insert(t) {
                if let Some(n) = self.nodes.get(&t) {
                    queue.extend(n.parents.iter().copied());
                }
            }
        }
        seen
    }

    /// A pooled transaction and all its in-pool descendants.
    pub(crate) fn descendants(&self, txid: &Txid) -> BTreeSet<Txid> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([*txid]);
        while let Some(t) = queue.pop_front() {
            if let Some(n) = self.nodes.get(&t) {
                if seen.insert(t) {
                    queue.extend(n.children.iter().copied());
                }
            }
        }
        seen
    }

    /// The eviction-index key of a pooled transaction (from its current statistics).
    fn evict_key(node: &Node) -> EvictKey {
        EvictKey {
            fees: node.entry.descendant_fees.0,
            size: node.entry.descendant_size,
            seq: node.seq,
            txid: node.entry.txid,
        }
    }

    /// Changes the descendant statistics of `txid` by one transaction of `size` and `fee`
    /// (`add`: joined, else left), keeping its eviction-index key in step.
    fn shift_descendants(&mut self, txid: &Txid, size: usize, fee: u64, add: bool) {
        let Some(n) = self.nodes.get_mut(txid) else { return };
        self.by_evict.remove(&Self::evict_key(n));
        let e = &mut n.entry;
        if add {
            e.descendant_count += 1;
            e.descendant_size = e.descendant_size.saturating_add(size);
            e.descendant_fees = Amount(e.descendant_fees.0.saturating_add(fee));
        } else {
            e.descendant_count = e.descendant_count.saturating_sub(1);
            e.descendant_size = e.descendant_size.saturating_sub(size);
            e.descendant_fees = Amount(e.descendant_fees.0.saturating_sub(fee));
        }
        self.by_evict.insert(Self::evict_key(n));
    }

    /// Adds a checked transaction: evicts what it replaces, links it, updates its ancestors'
    /// descendant statistics and the indexes.
    fn insert(&mut self, c: Checked, tx: Transaction, time: u64, height: u32) -> AcceptResult {
        let replaced: Vec<Txid> = c.evicted.iter().copied().collect();
        if !replaced.is_empty() {
            tracing::debug!(txid = %c.txid, replaced = replaced.len(), "replacement");
            self.remove_set(&c.evicted);
        }
        for a in &c.ancestors {
            self.shift_descendants(a, c.size, c.fee.0, true);
        }
        for p in &c.parents {
            if let Some(n) = self.nodes.get_mut(p) {
                n.children.insert(c.txid);
            }
        }
        for input in &tx.inputs {
            self.spenders.insert(input.previous_output, c.txid);
        }
        let usage = entry_usage(&tx, c.parents.len());
        self.total_bytes += c.size;
        self.total_usage += usage;
        self.total_fees = self.total_fees.saturating_add(c.fee.0);
        let entry = MempoolEntry {
            tx,
            txid: c.txid,
            wtxid: c.wtxid,
            fee: c.fee,
            size: c.size,
            usage,
            sig_checks: c.sig_checks,
            time,
            height,
            ancestor_count: c.ancestors.len() + 1,
            ancestor_size: c.ancestor_size,
            ancestor_fees: Amount(c.ancestor_fees),
            descendant_count: 1,
            descendant_size: c.size,
            descendant_fees: c.fee,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let node = Node {
            entry,
            parents: c.parents.into_iter().collect(),
            children: TxidList::default(),
            seq,
        };
        self.by_evict.insert(Self::evict_key(&node));
        self.by_time.insert((time, seq), c.txid);
        self.nodes.insert(c.txid, node);
        AcceptResult {
            txid: c.txid,
            wtxid: c.wtxid,
            fee: c.fee,
            size: c.size,
            replaced,
            accepted_orphans: Vec::new(),
        }
    }

    /// Removes every transaction of `set` (which need not be closed under descendants), keeping
    /// the statistics of the remaining ones exact. Returns the removed entries.
    pub(crate) fn remove_set(&mut self, set: &BTreeSet<Txid>) -> Vec<MempoolEntry> {
        // Statistics first, while the links are intact.
        for r in set {
            let Some(node) = self.nodes.get(r) else { continue };
            let (size, fee) = (node.entry.size, node.entry.fee.0);
            let ancestors = self.ancestors(r);
            let descendants = self.descendants(r);
            for a in ancestors.iter().filter(|a| !set.contains(a)) {
                self.shift_descendants(a, size, fee, false);
            }
            for d in descendants.iter().filter(|d| !set.contains(d)) {
                if let Some(n) = self.nodes.get_mut(d) {
                    let e = &mut n.entry;
                    e.ancestor_count = e.ancestor_count.saturating_sub(1);
                    e.ancestor_size = e.ancestor_size.saturating_sub(size);
                    e.ancestor_fees = Amount(e.ancestor_fees.0.saturating_sub(fee));
                }
            }
        }
        let mut removed = Vec::with_capacity(set.len());
        for r in set {
            let Some(node) = self.nodes.remove(r) else { continue };
            self.by_evict.remove(&Self::evict_key(&node));
            self.by_time.remove(&(node.entry.time, node.seq));
            for p in node.parents.iter() {
                if let Some(n) = self.nodes.get_mut(p) {
                    n.children.remove(r);
                }
            }
            for c in node.children.iter() {
                if let Some(n) = self.nodes.get_mut(c) {
                    n.parents.remove(r);
                }
            }
            for input in &node.entry.tx.inputs {
                if self.spenders.get(&input.previous_output) == Some(r) {
                    self.spenders.remove(&input.previous_output);
                }
            }
            self.total_bytes -= node.entry.size;
            self.total_usage -= node.entry.usage;
            self.total_fees = self.total_fees.saturating_sub(node.entry.fee.0);
            removed.push(node.entry);
        }
        removed
    }

    /// The dynamic minimum fee at `now` (zero when no eviction raised it recently).
    fn dynamic_min_fee(&self, now: u64) -> FeeRate {
        let RollingMinFee { floor, since } = self.min_fee;
        if floor == 0 {
            return FeeRate::ZERO;
        }
        let halvings = now.saturating_sub(since) / self.policy.min_fee_halflife_secs.max(1);
        let rate = if halvings >= 64 { 0 } else { floor >> halvings };
        if rate < self.policy.incremental_relay_fee_rate.0 / 2 {
            FeeRate::ZERO
        } else {
            FeeRate(rate)
        }
    }

    /// Evicts the packages (a transaction and its descendants) with the lowest descendant fee
    /// rate until the pool's memory use is within `max_size_bytes`, raising the dynamic minimum
    /// fee. The worst package is the first key of the eviction index: O(log n) per package.
    fn trim_to_size(&mut self, now: u64) -> Vec<Txid> {
        let mut evicted = Vec::new();
        while self.total_usage > self.policy.max_size_bytes {
            let Some(worst) = self.by_evict.first().copied() else { break };
            let rate = FeeRate::from_fee(Amount(worst.fees), worst.size);
            let raised = rate.saturating_add(self.policy.incremental_relay_fee_rate);
            let current = self.dynamic_min_fee(now);
            self.min_fee = RollingMinFee { floor: raised.max(current).0, since: now };
            let set = self.descendants(&worst.txid);
            tracing::debug!(txid = %worst.txid, count = set.len(), %rate, "evicting for space");
            evicted.extend(self.remove_set(&set).into_iter().map(|e| e.txid));
        }
        evicted
    }

    /// Retries the orphans spending outputs of `parents` (and, transitively, of the orphans
    /// accepted); returns the accepted ones in acceptance order.
    fn process_orphans(
        &mut self,
        parents: Vec<Txid>,
        utxos: &dyn UtxoView,
        tip: &TipContext,
        now: u64,
    ) -> Vec<Txid> {
        let mut accepted = Vec::new();
        let mut queue = VecDeque::from(parents);
        while let Some(p) = queue.pop_front() {
            for o in self.orphans.children_of(&p) {
                if let Some(txid) = self.retry_orphan(o, utxos, tip, now) {
                    accepted.push(txid);
                    queue.push_back(txid);
                }
            }
        }
        accepted
    }

    /// Takes orphan `key` out and tries it (scripts verified in place): accepted → `Some`;
    /// still missing inputs → put back; invalid → dropped.
    fn retry_orphan(
        &mut self,
        key: OrphanKey,
        utxos: &dyn UtxoView,
        tip: &TipContext,
        now: u64,
    ) -> Option<Txid> {
        let orphan = self.orphans.remove(&key)?;
        self.orphan_retries += 1;
        let txid = key.0;
        match self.check(&orphan.tx, utxos, tip, now, RELAY) {
            Ok(c) => {
                self.insert(c, orphan.tx, now, tip.height);
                self.trim_to_size(now);
                self.nodes.contains_key(&txid).then_some(txid)
            }
            Err(MempoolError::MissingInputs { .. }) => {
                let (max_count, max_usage) =
                    (self.policy.max_orphans, self.policy.max_orphan_bytes);
                self.orphans.put_back(orphan, max_count, max_usage);
                None
            }
            Err(e) => {
                tracing::debug!(%txid, error = %e, "orphan dropped");
                None
            }
        }
    }

    // ----- chain events -----

    /// A block was connected; `utxos` and `tip` are as of the new tip (the block). Records the
    /// fee rates of the pooled transactions it confirms for fee estimation, removes them, removes
    /// every pooled transaction that conflicts with the block or spends a coin that no longer
    /// exists or has expired (with descendants), expires old transactions and orphans, and
    /// retries the orphans spending outputs of the block's transactions.
    pub fn block_connected(&mut self, block: &Block, utxos: &dyn UtxoView, tip: &TipContext) {
        let now = self.clock.max(block.header.time);
        self.clock = now;
        let mut samples = Vec::new();
        let mut confirmed = BTreeSet::new();
        for tx in block.transactions.iter().skip(1) {
            let txid = tx.txid();
            if let Some(n) = self.nodes.get(&txid) {
                let waited = tip.height.saturating_sub(n.entry.height).max(1);
                samples.push((n.entry.fee_rate(), waited));
                confirmed.insert(txid);
            }
        }
        self.estimator.record(tip.height, samples, self.policy.fee_history_blocks);
        self.remove_set(&confirmed);

        // Conflicts with the block, and inputs that vanished or expired (with descendants).
        // Finality, relative locks and maturity only get easier as the tip advances.
        let mut doomed: BTreeSet<Txid> = BTreeSet::new();
        for node in self.nodes.values() {
            let gone = node.entry.tx.inputs.iter().any(|i| {
                let op = &i.previous_output;
                if self.nodes.contains_key(&op.txid) {
                    return false;
                }
                match utxos.coin(op) {
                    None => true,
                    Some(c) => is_expired(&self.params, c.creation_loss_index, tip.tip_loss_index),
                }
            });
            if gone {
                doomed.insert(node.entry.txid);
            }
        }
        let mut closed = BTreeSet::new();
        for t in &doomed {
            closed.extend(self.descendants(t));
        }
        if !closed.is_empty() {
            tracing::debug!(count = closed.len(), "removing transactions invalidated by block");
            self.remove_set(&closed);
        }
        self.expire(now);

        self.orphans.remove_for_block(block);
        self.orphans.expire(now, self.policy.orphan_expiry_secs);
        let new_parents: Vec<Txid> = block.transactions.iter().map(Transaction::txid).collect();
        self.process_orphans(new_parents, utxos, tip, now);
        self.trim_to_size(now);
    }

    /// A block was disconnected; `utxos` and `tip` are as of the new tip (its parent). Its
    /// non-coinbase transactions come back (without the fee minimums, scripts re-verified) and
    /// every pooled transaction is revalidated against the new tip (scripts not re-run),
    /// parents first; whatever is no longer valid is dropped.
    pub fn block_disconnected(&mut self, block: &Block, utxos: &dyn UtxoView, tip: &TipContext) {
        let now = self.clock;
        self.estimator.remove_block(block.header.height);
        let mut old: Vec<Node> = self.nodes.drain().map(|(_, n)| n).collect();
        old.sort_by_key(|n| n.seq);
        self.spenders.clear();
        self.by_evict.clear();
        self.by_time.clear();
        self.total_bytes = 0;
        self.total_usage = 0;
        self.total_fees = 0;
        let reorg = Mode { bypass_fees: true, verify_scripts: true };
        for tx in block.transactions.iter().skip(1) {
            match self.check(tx, utxos, tip, now, reorg) {
                Ok(c) => {
                    self.insert(c, tx.clone(), now, tip.height);
                }
                Err(e) => tracing::debug!(txid = %tx.txid(), error = %e, "not re-added"),
            }
        }
        let verified = Mode { bypass_fees: true, verify_scripts: false };
        for node in old {
            let MempoolEntry { tx, time, height, txid, sig_checks, .. } = node.entry;
            match self.check(&tx, utxos, tip, now, verified) {
                Ok(mut c) => {
                    c.sig_checks = sig_checks;
                    self.insert(c, tx, time, height);
                }
                Err(e) => tracing::debug!(%txid, error = %e, "dropped after reorg"),
            }
        }
        self.trim_to_size(now);
    }
}

#[cfg(test)]
impl Mempool {
    /// Inserts a transaction without validating it (its inputs must be distinct and spend
    /// nothing pooled), then trims to size; returns whether it stayed. For measurements only.
    pub(crate) fn insert_unvalidated(&mut self, tx: Transaction, fee: Amount, now: u64) -> bool {
        let size = tx.total_size();
        let txid = tx.txid();
        let c = Checked {
            txid,
            wtxid: tx.wtxid(),
            fee,
            size,
            parents: BTreeSet::new(),
            ancestors: BTreeSet::new(),
            ancestor_size: size,
            ancestor_fees: fee.0,
            evicted: BTreeSet::new(),
            spent: Vec::new(),
            sig_checks: 0,
        };
        self.insert(c, tx, now, 0);
        self.trim_to_size(now);
        self.nodes.contains_key(&txid)
    }

    /// Sets the size limit to what the pool holds now, so each further insertion evicts.
    pub(crate) fn cap_at_current_size(&mut self) {
        self.policy.max_size_bytes = self.total_usage;
    }

    /// Recomputes every link, index and statistic from scratch and compares.
    pub(crate) fn assert_consistent(&self) {
        let (mut bytes, mut usage, mut fees, mut inputs) = (0usize, 0usize, 0u64, 0usize);
        for (txid, n) in &self.nodes {
            let e = &n.entry;
            assert_eq!(e.txid, *txid);
            let parents: TxidList =
                e.tx.inputs
                    .iter()
                    .map(|i| i.previous_output.txid)
                    .filter(|t| self.nodes.contains_key(t))
                    .collect();
            assert_eq!(parents, n.parents);
            for p in parents.iter() {
                assert!(self.nodes[p].children.contains(txid));
                assert!(self.nodes[p].seq < n.seq);
            }
            for c in n.children.iter() {
                assert!(self.nodes[c].parents.contains(txid));
            }
            for i in &e.tx.inputs {
                assert_eq!(self.spenders.get(&i.previous_output), Some(txid));
            }
            inputs += e.tx.inputs.len();
            let anc = self.ancestors(txid);
            assert_eq!(e.ancestor_count, anc.len() + 1);
            assert_eq!(
                e.ancestor_size,
                e.size + anc.iter().map(|a| self.nodes[a].entry.size).sum::<usize>()
            );
            assert_eq!(
                e.ancestor_fees.0,
                e.fee.0 + anc.iter().map(|a| self.nodes[a].entry.fee.0).sum::<u64>()
            );
            let desc = self.descendants(txid);
            assert_eq!(e.descendant_count, desc.len());
            assert_eq!(
                e.descendant_size,
                desc.iter().map(|d| self.nodes[d].entry.size).sum::<usize>()
            );
            assert_eq!(
                e.descendant_fees.0,
                desc.iter().map(|d| self.nodes[d].entry.fee.0).sum::<u64>()
            );
            assert_eq!(e.size, e.tx.total_size());
            assert!(self.by_evict.contains(&Self::evict_key(n)));
            assert_eq!(self.by_time.get(&(e.time, n.seq)), Some(txid));
            bytes += e.size;
            usage += e.usage;
            fees += e.fee.0;
        }
        assert_eq!(self.by_evict.len(), self.nodes.len());
        assert_eq!(self.by_time.len(), self.nodes.len());
        assert_eq!(self.spenders.len(), inputs);
        assert_eq!(self.total_bytes, bytes);
        assert_eq!(self.total_usage, usage);
        assert_eq!(self.total_fees, fees);
        self.orphans.assert_consistent();
    }
}

/// A coin for output `out` of a pooled transaction: confirmed, at the earliest, in the next
/// block (height `tip.height + 1`, creation MTP = the tip's MTP, creation loss at most the tip's).
pub(crate) fn unconfirmed_coin(out: &TxOut, tip: &TipContext) -> Coin {
    Coin {
        output: out.clone(),
        height: tip.next_height(),
        creation_mtp: tip.median_time_past,
        is_coinbase: false,
        creation_loss_index: tip.tip_loss_index,
    }
}

/// A null-data output script: starts with `OP_RETURN`, at most `max` bytes.
fn is_null_data(script: &[u8], max: usize) -> bool {
    script.first() == Some(&0x6a) && script.len() <= max
}

/// BIP125 signal: some input's sequence is below `0xFFFFFFFE`.
fn signals_rbf(tx: &Transaction) -> bool {
    tx.inputs.iter().any(|i| i.sequence < 0xFFFF_FFFE)
}
