//! What validation needs to know about the chain a block extends, and what it reports back.

use crate::coin::Coin;
use rnet_primitives::{Amount, BlockHash, Hash256, OutPoint};

/// The consensus-relevant summary of one block already in the chain (stored in the block index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSummary {
    /// Block id.
    pub hash: BlockHash,
    /// Height.
    pub height: u32,
    /// Header time (unix seconds).
    pub time: u64,
    /// The parent checkpoint's loss on this block's sample (micro-nats per byte).
    pub parent_loss: u64,
    /// This block's checkpoint's loss on its sample (micro-nats per byte).
    pub val_loss: u64,
    /// The base required improvement at this block (the retargeted value, before the
    /// stall-escape discount; what the next retarget starts from).
    pub required_improvement: u64,
    /// The effective required improvement this block had to meet (the header's field): its
    /// work.
    pub required_eff: u64,
    /// The chain loss index after this block (`max(1, parent − min(improvement, 2·required_eff))`;
    /// genesis: its own loss). UTXO expiry is measured against it.
    pub loss_index: u64,
    /// Sum of `required_eff` from genesis to this block (genesis has work 0): fork choice picks
    /// the valid chain with the most.
    pub chainwork: u128,
    /// The block's checkpoint root (its child's Proof-of-Training checks the parent bytes
    /// against it).
    pub checkpoint_root: Hash256,
    /// Model width at this height.
    pub d_model: u32,
    /// Model depth at this height.
    pub n_layers: u32,
    /// Total width growth since genesis up to and including this block.
    pub cumulative_growth: u32,
    /// Consecutive blocks up to and including this one that only just passed (stagnation count
    /// that accelerates growth).
    pub stagnation: u32,
    /// Value in the UTXO set after this block (never above the supply cap).
    ///
    /// [`crate::connect_block`] returns it *before* expiry; the chainstate subtracts the value of
    /// the coins that expire at this block ([`HeaderSummary::apply_expiry`]) before storing it. A
    /// summary made from a header alone ([`crate::summarize_header`]) carries the parent's value
    /// until the block is connected.
    pub circulating_supply: Amount,
}

impl HeaderSummary {
    /// Subtracts the value of the coins that expired when this block became the tip. `None` if
    /// that is more than the circulating supply (a chainstate bug).
    pub fn apply_expiry(&mut self, expired_value: Amount) -> Option<()> {
        self.circulating_supply = self.circulating_supply.checked_sub(expired_value)?;
        Some(())
    }

    /// The model shape `(d_model, n_layers)`.
    pub fn shape(&self) -> (u32, u32) {
        (self.d_model, self.n_layers)
    }
}

/// Read access to the branch that a block extends: its ancestors by height. Implemented by the
/// block index for the branch ending at the parent of the block being validated.
pub trait HeaderChain {
    /// The ancestor at `height` on this branch (`None` above the branch's tip).
    fn ancestor(&self, height: u32) -> Option<HeaderSummary>;

    /// The branch's tip: the parent of the block being validated.
    fn tip(&self) -> HeaderSummary;
}

impl<T: HeaderChain + ?Sized> HeaderChain for &T {
    fn ancestor(&self, height: u32) -> Option<HeaderSummary> {
        (**self).ancestor(height)
    }

    fn tip(&self) -> HeaderSummary {
        (**self).tip()
    }
}

/// Everything connecting a valid block does to the chainstate, computed by validation and
/// applied atomically by the chainstate (which keeps `spent` as undo data).
///
/// The lists are *net* effects: an output created and spent inside the same block appears in
/// neither. Apply as "remove every `spent` outpoint, add every `created` coin", then run expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockEffects {
    /// Coins the block spends, with their full data (the undo record).
    pub spent: Vec<(OutPoint, Coin)>,
    /// Coins the block creates (emission-return outputs and unspendable outputs excluded).
    pub created: Vec<(OutPoint, Coin)>,
    /// Value that left circulation through outputs that create no coin: emission-return outputs
    /// and every other provably unspendable output (see [`crate::is_unspendable`]).
    pub emission_returned: Amount,
    /// Sum of the fees of the block's transactions.
    pub fees: Amount,
    /// The subsidy (base × bonus) the coinbase was allowed, before fees.
    pub subsidy: Amount,
}

impl BlockEffects {
    /// Total value of the spent coins.
    pub fn spent_value(&self) -> Amount {
        Amount(self.spent.iter().fold(0u64, |a, (_, c)| a.saturating_add(c.output.value.0)))
    }

    /// Total value of the created coins.
    pub fn created_value(&self) -> Amount {
        Amount(self.created.iter().fold(0u64, |a, (_, c)| a.saturating_add(c.output.value.0)))
    }
}
