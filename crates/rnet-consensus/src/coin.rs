//! Coins: unspent outputs with the facts consensus needs about their creation.

use rnet_primitives::{OutPoint, TxOut};

/// An unspent transaction output and when it was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The output itself (value and scriptPubKey).
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Median-time-past of the block before the one that created it: BIP68 time-based relative
    /// locks measure from here.
    pub creation_mtp: u64,
    /// True for a coinbase output (maturity applies).
    pub is_coinbase: bool,
    /// The chain's `val_loss` (micro-nats per byte) in the block that created it. A coin expires
    /// when `creation_loss_index / tip_loss ≥ expiry_ratio`, i.e. when
    /// `creation_loss_index ≥ expiry_threshold(params, tip_loss)`.
    pub creation_loss_index: u64,
}

/// Read access to the UTXO set as of the parent of the block being validated. Coins that have
/// expired are not in the view.
pub trait UtxoView {
    /// The unspent coin at `outpoint`, if any.
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin>;

    /// Whether `outpoint` was a coin that expired (only asked about outpoints [`UtxoView::coin`]
    /// does not have, to give a more precise error). The default says `false`: a spend of an
    /// expired coin is then reported as missing-or-spent, which is equally invalid.
    fn is_expired(&self, _outpoint: &OutPoint) -> bool {
        false
    }
}

impl UtxoView for std::collections::HashMap<OutPoint, Coin> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.get(outpoint).cloned()
    }
}

impl<T: UtxoView + ?Sized> UtxoView for &T {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        (**self).coin(outpoint)
    }

    fn is_expired(&self, outpoint: &OutPoint) -> bool {
        (**self).is_expired(outpoint)
    }
}
