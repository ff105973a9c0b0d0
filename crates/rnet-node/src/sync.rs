//! Honest sync status: `initialblockdownload` and `verificationprogress` of
//! `getblockchaininfo`, and a watchdog that warns when headers are ahead of blocks and no block
//! connects (e.g. the only peer pruned the checkpoint the next block needs).
//!
//! Definitions (docs/node.md, "Sync status"):
//! - *headers*: the height of the best header the node knows that is not marked invalid;
//!   *blocks*: the height of the active tip.
//! - `initialblockdownload` is true while `headers > blocks + MAX_HEADERS_AHEAD` or the tip's
//!   time is more than `MAX_TIP_AGE` before the node's clock; once it is false it stays false for
//!   the life of the process (Bitcoin Core latches it the same way).
//! - `verificationprogress` is `blocks / headers` (1.0 when `headers <= blocks`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rnet_chain::{ChainState, ChainTipStatus};
use rnet_primitives::BlockHash;

use crate::node::Node;

/// Tip age beyond which the node is in initial block download (Bitcoin Core's
/// `DEFAULT_MAX_TIP_AGE`: 24 hours).
pub const MAX_TIP_AGE_SECS: u64 = 24 * 60 * 60;

/// Headers the best header may be ahead of the tip without counting as initial block download
/// (a block whose checkpoint is still downloading is normal).
pub const MAX_HEADERS_AHEAD: u32 = 6;

/// Default seconds without a connected block, while headers are ahead, before the watchdog
/// warns (`-syncstallwarn`).
pub const DEFAULT_STALL_WARN_SECS: u64 = 120;

/// `verificationprogress`: the share of known headers whose blocks are connected.
pub fn verification_progress(blocks: u32, headers: u32) -> f64 {
    if headers <= blocks { 1.0 } else { f64::from(blocks) / f64::from(headers) }
}

/// Whether a node with these heights and tip time is (still) in initial block download, before
/// latching.
pub fn in_initial_download(blocks: u32, headers: u32, tip_time: u64, now: u64) -> bool {
    headers > blocks.saturating_add(MAX_HEADERS_AHEAD)
        || tip_time.saturating_add(MAX_TIP_AGE_SECS) < now
}

/// The height and id of the best header not marked invalid (the tip's if none is higher).
pub fn best_header(chain: &ChainState) -> Result<(u32, BlockHash), rnet_chain::ChainError> {
    let tip = chain.tip();
    Ok(chain
        .chain_tips()?
        .iter()
        .filter(|t| t.status != ChainTipStatus::Invalid && t.height > tip.height)
        .max_by_key(|t| t.height)
        .map_or((tip.height, tip.hash), |t| (t.height, t.hash)))
}

/// The block of `header`'s branch at `height`, walking back through stored headers.
fn ancestor_at(
    chain: &ChainState,
    mut hash: BlockHash,
    height: u32,
) -> Result<Option<BlockHash>, rnet_chain::ChainError> {
    loop {
        let Some(h) = chain.header(&hash)? else { return Ok(None) };
        if h.height == height {
            return Ok(Some(hash));
        }
        if h.height < height {
            return Ok(None);
        }
        hash = h.prev_block_hash;
    }
}

/// The initial-block-download latch: once the node has left it, it stays out.
#[derive(Debug, Default)]
pub struct IbdLatch(AtomicBool);

impl IbdLatch {
    /// Whether the node has left initial block download.
    pub fn left(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `initialblockdownload` now: [`in_initial_download`], unless it was false before.
    pub fn check(&self, blocks: u32, headers: u32, tip_time: u64, now: u64) -> bool {
        if self.0.load(Ordering::SeqCst) {
            return false;
        }
        let ibd = in_initial_download(blocks, headers, tip_time, now);
        if !ibd {
            self.0.store(true, Ordering::SeqCst);
            tracing::info!("leaving initial block download at height {blocks}");
        }
        ibd
    }
}

/// What the watchdog saw: the tip, and since when it has not moved.
///
/// Knowing the best header scans the block index, so the watchdog asks for it only when a
/// warning may be due ([`StallWatch::due`]) and reports the answer ([`StallWatch::checked`]):
/// at most once per `warn_after` while the tip stands still.
#[derive(Debug)]
pub struct StallWatch {
    warn_after: Duration,
    tip: Option<BlockHash>,
    since: Instant,
    warned_at: Option<Instant>,
}

impl StallWatch {
    /// A watchdog warning after `warn_after` without progress (again every `warn_after`).
    pub fn new(warn_after: Duration) -> Self {
        Self { warn_after, tip: None, since: Instant::now(), warned_at: None }
    }

    /// Records the current tip at `now`; returns whether a warning may be due: the tip
    /// unchanged for `warn_after` and no warning (or check) in the last `warn_after`.
    pub fn due(&mut self, tip: BlockHash, now: Instant) -> bool {
        if self.tip != Some(tip) {
            self.tip = Some(tip);
            self.since = now;
            self.warned_at = None;
            return false;
        }
        let stalled = now.duration_since(self.since) >= self.warn_after;
        stalled && self.warned_at.is_none_or(|w| now.duration_since(w) >= self.warn_after)
    }

    /// After a due check: with headers ahead of the blocks the caller warned (the next warning
    /// comes `warn_after` later); otherwise the node is in sync and the clock restarts.
    pub fn checked(&mut self, headers_ahead: bool, now: Instant) {
        if headers_ahead {
            self.warned_at = Some(now);
        } else {
            self.since = now;
            self.warned_at = None;
        }
    }

    /// How long the tip has not moved.
    pub fn stalled_for(&self, now: Instant) -> Duration {
        now.duration_since(self.since)
    }
}

/// How often the watchdog updates the initial-block-download latch until it is left.
const LATCH_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The watchdog thread: once a second looks at the tip; when it has not moved for
/// `warn_after`, compares it with the best header and logs a warning naming the missing block.
pub fn watch(node: &Arc<Node>, warn_after: Duration) {
    let mut watch = StallWatch::new(warn_after);
    let mut latch_checked: Option<Instant> = None;
    while !node.shutting_down() {
        if let Err(e) = check_once(node, &mut watch) {
            tracing::debug!("sync watchdog: {e}");
        }
        // Keeps the latch (and its "leaving initial block download" line) current without RPC.
        if !node.ibd.left() && latch_checked.is_none_or(|t| t.elapsed() >= LATCH_CHECK_INTERVAL) {
            latch_checked = Some(Instant::now());
            let chain = node.chain();
            let tip = chain.tip();
            if let Ok((headers, _)) = best_header(&chain) {
                node.ibd.check(tip.height, headers, tip.time, node.now());
            }
        }
        for _ in 0..10 {
            if node.shutting_down() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn check_once(node: &Node, watch: &mut StallWatch) -> Result<(), rnet_chain::ChainError> {
    let chain = node.chain();
    let tip = chain.tip();
    let now = Instant::now();
    if !watch.due(tip.hash, now) {
        return Ok(());
    }
    let (headers, best) = best_header(&chain)?;
    watch.checked(headers > tip.height, now);
    if headers <= tip.height {
        return Ok(());
    }
    let stalled_for = watch.stalled_for(now).as_secs();
    let next = ancestor_at(&chain, best, tip.height + 1)?;
    let what = match next {
        Some(hash) => {
            let has_block = chain.block(&hash)?.is_some();
            let has_update = chain.has_update(&hash)?;
            let missing = match (has_block, has_update) {
                (false, _) => "its block data",
                (true, false) => "its model update",
                (true, true) => "its validation (or its parent's checkpoint)",
            };
            format!(
                "block {hash} at height {} waits for {missing}; peers may have pruned its \
                 model data",
                tip.height + 1
            )
        }
        None => format!("the header at height {} is not stored", tip.height + 1),
    };
    tracing::warn!(
        "sync makes no progress: headers={headers} blocks={} for {stalled_for} s; {what}",
        tip.height
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_the_share_of_connected_headers() {
        assert_eq!(verification_progress(0, 0), 1.0);
        assert_eq!(verification_progress(10, 10), 1.0);
        assert_eq!(verification_progress(12, 10), 1.0);
        assert_eq!(verification_progress(0, 236), 0.0);
        assert_eq!(verification_progress(59, 236), 0.25);
    }

    #[test]
    fn initial_download_by_headers_or_tip_age_and_latched() {
        let now = 1_000_000_000;
        // Synced: a fresh tip, headers within the margin.
        assert!(!in_initial_download(100, 100 + MAX_HEADERS_AHEAD, now - 600, now));
        // Headers far ahead (the reported `headers=236, blocks=0`).
        assert!(in_initial_download(0, 236, now, now));
        assert!(in_initial_download(100, 101 + MAX_HEADERS_AHEAD, now, now));
        // An old tip.
        assert!(in_initial_download(100, 100, now - MAX_TIP_AGE_SECS - 1, now));
        assert!(!in_initial_download(100, 100, now - MAX_TIP_AGE_SECS, now));

        let latch = IbdLatch::default();
        assert!(latch.check(0, 236, now, now));
        assert!(latch.check(200, 236, now, now));
        assert!(!latch.check(236, 236, now, now));
        // Once left, it stays left (Core's latch), even when headers run ahead again.
        assert!(!latch.check(236, 500, now, now));
    }

    #[test]
    fn stall_watch_warns_after_the_delay_and_repeats() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let (a, b) = (BlockHash([1; 32]), BlockHash([2; 32]));
        let mut w = StallWatch::new(s(10));
        assert!(!w.due(a, t0));
        assert!(!w.due(a, t0 + s(9)));
        assert!(w.due(a, t0 + s(10)));
        w.checked(true, t0 + s(10));
        assert!(!w.due(a, t0 + s(15)), "not again before the delay");
        assert!(w.due(a, t0 + s(20)));
        w.checked(true, t0 + s(20));
        assert_eq!(w.stalled_for(t0 + s(20)), s(20));
        // Progress resets it.
        assert!(!w.due(b, t0 + s(21)));
        assert!(!w.due(b, t0 + s(30)));
        assert!(w.due(b, t0 + s(31)));
        // A synced node (headers not ahead): the clock restarts, checked once per delay.
        w.checked(false, t0 + s(31));
        assert!(!w.due(b, t0 + s(40)));
        assert!(w.due(b, t0 + s(41)));
    }
}
