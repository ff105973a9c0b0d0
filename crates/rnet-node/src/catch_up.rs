//! The miners' catch-up wait: the in-node miner does not mine, and `getblocktemplate` gives no
//! work (error -10), while the node is downloading a chain with more work than its own tip.
//!
//! A miner that mines on its tip while it downloads a better chain only makes blocks that the
//! download will orphan; worse, on a network whose blocks are quick to mine (regtest), its own
//! branch can grow faster than the download and it never joins the chain it was pointed at.
//! Bitcoin Core's `getblocktemplate` refuses work during initial block download for the same
//! reason. The rule (docs/node.md, "Architecture"):
//!
//! - the node is **behind** when it knows a branch tip not marked invalid whose claimed
//!   chainwork (from headers, §7 of Part V) exceeds the active tip's;
//! - the miner **waits** while the node is behind *and* a block, update or checkpoint from a peer
//!   was stored within the last [`CATCH_UP_WINDOW`] (the download is making progress).
//!
//! Headers alone never make the miner wait: a peer announcing headers it never backs with
//! blocks cannot stop mining. A download that stalls stops the wait after the window.

use std::time::{Duration, Instant};

use rnet_chain::{ChainTip, ChainTipStatus};

/// How recently block data from a peer must have been stored for the miner to keep waiting for
/// a better chain: long enough to span the gap between two blocks of a download (a block's
/// checkpoint arrives after its block), short enough that a stalled download costs little.
pub const CATCH_UP_WINDOW: Duration = Duration::from_secs(15);

/// Whether some branch tip that is not invalid claims more chainwork than the active tip.
pub fn behind(tips: &[ChainTip], active_chainwork: u128) -> bool {
    tips.iter().any(|t| t.status != ChainTipStatus::Invalid && t.chainwork > active_chainwork)
}

/// Whether the miner waits now: behind, with block data from a peer stored at
/// `last_peer_data` no longer than `window` before `now`.
pub fn should_wait(
    behind: bool,
    last_peer_data: Option<Instant>,
    now: Instant,
    window: Duration,
) -> bool {
    behind && last_peer_data.is_some_and(|at| now.saturating_duration_since(at) < window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_primitives::BlockHash;

    fn tip(chainwork: u128, status: ChainTipStatus) -> ChainTip {
        ChainTip {
            hash: BlockHash::default(),
            height: 1,
            val_loss: 0,
            chainwork,
            branch_len: 1,
            status,
        }
    }

    #[test]
    fn behind_counts_only_branches_with_more_work_that_are_not_invalid() {
        let active = tip(100, ChainTipStatus::Active);
        assert!(!behind(std::slice::from_ref(&active), 100));
        assert!(!behind(&[active.clone(), tip(100, ChainTipStatus::HeadersOnly)], 100));
        assert!(!behind(&[active.clone(), tip(500, ChainTipStatus::Invalid)], 100));
        assert!(behind(&[active.clone(), tip(101, ChainTipStatus::HeadersOnly)], 100));
        assert!(behind(&[active, tip(101, ChainTipStatus::ValidHeaders)], 100));
    }

    #[test]
    fn the_miner_waits_only_while_a_better_chain_is_arriving() {
        let now = Instant::now();
        let w = Duration::from_secs(15);
        let recent = now.checked_sub(Duration::from_secs(3));
        let old = now.checked_sub(Duration::from_secs(20));
        // Downloading a better chain: wait.
        assert!(should_wait(true, recent, now, w));
        // Headers only, never any data: mine (headers alone cannot stop a miner).
        assert!(!should_wait(true, None, now, w));
        // The download stalled: mine.
        assert!(!should_wait(true, old, now, w));
        // Not behind: mine, however busy the peers are.
        assert!(!should_wait(false, recent, now, w));
    }
}
