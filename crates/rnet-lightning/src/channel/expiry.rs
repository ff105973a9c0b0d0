//! UTXO expiry of the funding output (`docs/protocol.md` Part V §6).
//!
//! Every coin expires once the chain's loss index has fallen far enough below the loss index of
//! the block that created it: a coin created at `c` is removed when the tip's loss index `ℓ`
//! satisfies `c ≥ max(1, ⌈ℓ · num / den⌉)` for the chain's expiry ratio `num/den` (mainnet
//! 10/1). Expiry overrides every script, so a channel's funding output, which may stay unspent
//! for the channel's whole life, can expire with both parties' balances in it. A node must close
//! (cooperatively, or by broadcasting its commitment) well before that; [`FundingExpiry`] says
//! how close the funding output is. The consensus function is
//! `rnet_consensus::reward::expiry_threshold` (not a dependency of this crate; the formula below
//! is the same and the tests pin it).
//!
//! Outputs of commitment, HTLC and sweep transactions are new coins created at the loss index
//! of the block that confirms them, so only the funding output is long-lived.

/// The consensus expiry threshold for tip loss index `tip_loss_index` and expiry ratio
/// `(num, den)` (as `ChainParams::expiry_ratio`): a coin created at `c` has expired iff
/// `c ≥` this. `max(1, ⌈ℓ · num / den⌉)`, 128-bit, a zero `den` taken as 1, saturating.
pub fn expiry_threshold(tip_loss_index: u64, ratio: (u64, u64)) -> u64 {
    let (num, den) = ratio;
    let t = (u128::from(tip_loss_index) * u128::from(num)).div_ceil(u128::from(den.max(1)));
    u64::try_from(t).unwrap_or(u64::MAX).max(1)
}

/// Whether a coin created at `creation_loss_index` has expired when the tip's loss index is
/// `tip_loss_index`.
pub fn is_expired(creation_loss_index: u64, tip_loss_index: u64, ratio: (u64, u64)) -> bool {
    creation_loss_index >= expiry_threshold(tip_loss_index, ratio)
}

/// How close a funding output is to expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FundingExpiry {
    /// Whether it has expired at the current tip.
    pub expired: bool,
    /// The largest tip loss index at which it is expired (it expires as soon as the loss index
    /// falls to this value); `None` if it can never expire (created at loss index 0).
    pub expiry_loss_index: Option<u64>,
    /// How much the loss index may still fall before the coin expires (0 once expired).
    pub remaining_loss: u64,
}

impl FundingExpiry {
    /// The state of a coin created at `creation_loss_index` when the tip's loss index is
    /// `tip_loss_index`, for expiry ratio `(num, den)`.
    pub fn new(creation_loss_index: u64, tip_loss_index: u64, ratio: (u64, u64)) -> Self {
        let expired = is_expired(creation_loss_index, tip_loss_index, ratio);
        let (num, den) = (ratio.0, ratio.1.max(1));
        // c ≥ max(1, ⌈ℓ·num/den⌉) ⟺ c ≥ 1 ∧ ℓ·num ≤ c·den ⟺ ℓ ≤ ⌊c·den/num⌋ (any ℓ if num = 0).
        let expiry_loss_index = (creation_loss_index >= 1).then(|| {
            if num == 0 {
                u64::MAX
            } else {
                let e = u128::from(creation_loss_index) * u128::from(den) / u128::from(num);
                u64::try_from(e).unwrap_or(u64::MAX)
            }
        });
        let remaining_loss = match expiry_loss_index {
            _ if expired => 0,
            Some(e) => tip_loss_index.saturating_sub(e),
            None => u64::MAX,
        };
        Self { expired, expiry_loss_index, remaining_loss }
    }

    /// The fewest blocks after which the coin could have expired, when one block lowers the
    /// loss index by at most `max_drop_per_block` (twice the effective required improvement,
    /// Part V §4.4; use the largest requirement expected over the horizon). `u64::MAX` if it
    /// cannot expire.
    pub fn min_blocks_left(&self, max_drop_per_block: u64) -> u64 {
        if self.expired {
            return 0;
        }
        if self.expiry_loss_index.is_none() || max_drop_per_block == 0 {
            return u64::MAX;
        }
        self.remaining_loss.div_ceil(max_drop_per_block)
    }

    /// Whether the channel must be closed now: the funding output could expire within
    /// `margin_blocks` blocks (choose a margin that leaves time for the close, and for a
    /// unilateral close its `to_self_delay`, to confirm).
    pub fn must_close(&self, max_drop_per_block: u64, margin_blocks: u64) -> bool {
        self.min_blocks_left(max_drop_per_block) <= margin_blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_matches_the_consensus_formula() {
        // Part V §6: creation / tip ≥ ratio exactly.
        assert_eq!(expiry_threshold(100, (10, 1)), 1000);
        assert_eq!(expiry_threshold(0, (10, 1)), 1);
        assert_eq!(expiry_threshold(3, (5, 2)), 8); // ⌈7.5⌉
        assert_eq!(expiry_threshold(u64::MAX, (10, 1)), u64::MAX);
        assert!(is_expired(1000, 100, (10, 1)));
        assert!(!is_expired(999, 100, (10, 1)));
    }

    #[test]
    fn funding_expiry_boundary_is_exact() {
        for ratio in [(10, 1), (2, 1), (5, 2), (7, 3)] {
            for c in [1u64, 2, 7, 1000, 5_555_653] {
                let f = FundingExpiry::new(c, c, ratio);
                let e = f.expiry_loss_index.unwrap();
                assert!(!f.expired);
                // Not expired one above the boundary, expired on it.
                assert!(!is_expired(c, e + 1, ratio), "c {c} ratio {ratio:?}");
                assert!(is_expired(c, e, ratio) || e == 0, "c {c} ratio {ratio:?}");
                assert_eq!(f.remaining_loss, c - e);
                let at = FundingExpiry::new(c, e + 1, ratio);
                assert_eq!(at.remaining_loss, 1);
                assert_eq!(at.min_blocks_left(16_000), 1);
                if e > 0 {
                    let gone = FundingExpiry::new(c, e, ratio);
                    assert!(gone.expired);
                    assert_eq!(gone.remaining_loss, 0);
                    assert!(gone.must_close(16_000, 0));
                }
            }
        }
    }

    #[test]
    fn blocks_left_and_close_decision() {
        // Mainnet ratio 10: created at 1 000 000, expires once the loss index reaches 100 000.
        let f = FundingExpiry::new(1_000_000, 420_000, (10, 1));
        assert_eq!(f.expiry_loss_index, Some(100_000));
        assert_eq!(f.remaining_loss, 320_000);
        // At most 2 × 8000 per block at the floor requirement: at least 20 blocks.
        assert_eq!(f.min_blocks_left(16_000), 20);
        assert_eq!(f.min_blocks_left(15_999), 21);
        assert!(!f.must_close(16_000, 19));
        assert!(f.must_close(16_000, 20));
        assert_eq!(f.min_blocks_left(0), u64::MAX);
        // A coin created at loss index 0 never expires.
        let never = FundingExpiry::new(0, 5, (10, 1));
        assert_eq!(never.expiry_loss_index, None);
        assert!(!never.must_close(16_000, 1_000_000));
    }
}
