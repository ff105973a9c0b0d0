//! [`MempoolView`]: the chain's coins plus the pool's unconfirmed outputs, minus what the pool
//! spends.

use rnet_consensus::{Coin, UtxoView};
use rnet_primitives::OutPoint;

use crate::policy::TipContext;
use crate::pool::Mempool;

/// The UTXO set as it would be if every pooled transaction confirmed in the next block: coins of
/// `chain`, plus the outputs of pooled transactions (as coins at height `tip.height + 1`), minus
/// the outpoints pooled transactions spend. What validation sees (conflicts aside) and what a
/// wallet or `gettxout` with the mempool should see.
#[derive(Clone, Copy)]
pub struct MempoolView<'a> {
    pool: &'a Mempool,
    chain: &'a dyn UtxoView,
    tip: TipContext,
}

impl<'a> MempoolView<'a> {
    /// The overlay of `pool` on `chain` at `tip`.
    pub fn new(pool: &'a Mempool, chain: &'a dyn UtxoView, tip: TipContext) -> Self {
        Self { pool, chain, tip }
    }
}

impl UtxoView for MempoolView<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        if self.pool.spenders.contains_key(outpoint) {
            return None;
        }
        self.pool.lookup(self.chain, outpoint, &self.tip)
    }

    fn is_expired(&self, outpoint: &OutPoint) -> bool {
        self.chain.is_expired(outpoint)
    }
}

impl Mempool {
    /// The [`MempoolView`] of this pool over `chain` at `tip`.
    pub fn view<'a>(&'a self, chain: &'a dyn UtxoView, tip: TipContext) -> MempoolView<'a> {
        MempoolView::new(self, chain, tip)
    }
}
