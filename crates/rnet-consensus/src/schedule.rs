//! What the chain fixes for the next block: median time past, the required improvement
//! (retargeted towards the target spacing, discounted by the stall escape), the model shape
//! (growth schedule with stagnation), the loss index and chainwork, and the summary a header
//! contributes to the block index.

use rnet_model::next_shape;
use rnet_primitives::BlockHeader;

use crate::context::{HeaderChain, HeaderSummary};
use crate::params::ChainParams;

/// Median of the times of the blocks at heights `height − span + 1 ..= height` of `chain`
/// (`span = 11`; fewer near genesis; blocks the chain does not have are skipped): sorted
/// ascending, the element at index `len / 2`. `0` if the chain has none of them.
pub fn median_time_past(chain: &dyn HeaderChain, height: u32) -> u64 {
    median_time_past_span(chain, height, 11)
}

/// [`median_time_past`] over `span` blocks.
pub fn median_time_past_span(chain: &dyn HeaderChain, height: u32, span: u32) -> u64 {
    let first = height.saturating_sub(span.max(1) - 1);
    let mut times: Vec<u64> =
        (first..=height).filter_map(|h| chain.ancestor(h)).map(|s| s.time).collect();
    if times.is_empty() {
        return 0;
    }
    times.sort_unstable();
    times[times.len() / 2]
}

/// The required improvement of the block after `chain.tip()` (micro-nats).
///
/// With `I = retarget_interval` and `n = tip.height + 1`: if `I = 0` or `n` is not a multiple of
/// `I`, the tip's value (never below the floor). At `n = k·I` the value is retargeted:
///
/// - `first = max(0, n − 1 − I)`; `gaps = (n − 1) − first` (`I`, or `I − 1` at `n = I`);
/// - `expected = gaps · target_spacing`; `actual = tip.time − time(first)` (0 if negative),
///   clamped to `[expected / F, expected · F]` (and at least 1) with `F = max_retarget_factor`;
/// - `new = ⌊old · expected / actual⌋` in 128 bits — blocks that came too fast raise the
///   requirement, slow ones lower it, by at most `F` either way — then at least
///   `min_required_improvement`, saturating at `u64::MAX`.
///
/// The window overlaps the previous one by one block, so every block interval is measured (no
/// time-warp gap as in Bitcoin's original rule).
pub fn required_improvement(params: &ChainParams, chain: &dyn HeaderChain) -> u64 {
    let tip = chain.tip();
    let floor = params.min_required_improvement.max(1);
    let old = tip.required_improvement.max(floor);
    let interval = params.retarget_interval;
    let Some(next) = tip.height.checked_add(1) else {
        return old;
    };
    if interval == 0 || next % interval != 0 {
        return old;
    }
    let first = (next - 1).saturating_sub(interval);
    let gaps = u128::from((next - 1) - first);
    let Some(first_summary) = chain.ancestor(first) else {
        return old;
    };
    let expected = gaps * u128::from(params.target_spacing_secs);
    if expected == 0 {
        return old;
    }
    let factor = u128::from(params.max_retarget_factor.max(1));
    let actual = u128::from(tip.time.saturating_sub(first_summary.time))
        .clamp((expected / factor).max(1), expected * factor);
    let new = u128::from(old) * expected / actual;
    u64::try_from(new).unwrap_or(u64::MAX).max(floor)
}

/// Largest stall-escape shift: the requirement is divided by at most `2¹⁶`.
pub const MAX_STALL_SHIFT: u32 = 16;

/// Spacings per stall-escape halving: each `6 × target_spacing` without a block halves the
/// requirement.
pub const STALL_SPACINGS_PER_HALVING: u64 = 6;

/// The stall-escape shift of a block at `time` on a parent at `parent_time`:
/// `min(16, ⌊(time − parent_time) / (6 × target_spacing)⌋)`, a negative difference counting
/// as 0.
pub fn stall_shift(params: &ChainParams, parent_time: u64, time: u64) -> u32 {
    let period = STALL_SPACINGS_PER_HALVING.saturating_mul(params.target_spacing_secs).max(1);
    let steps = time.saturating_sub(parent_time) / period;
    u32::try_from(steps).unwrap_or(u32::MAX).min(MAX_STALL_SHIFT)
}

/// The effective required improvement of a block at `time` after `chain.tip()`:
/// `max(floor, base >> stall_shift)` with `base` = [`required_improvement`].
pub fn effective_required_improvement(
    params: &ChainParams,
    chain: &dyn HeaderChain,
    time: u64,
) -> u64 {
    let base = required_improvement(params, chain);
    let shift = stall_shift(params, chain.tip().time, time);
    (base >> shift).max(params.min_required_improvement.max(1))
}

/// The loss index after a block that improved by `improvement` with effective requirement
/// `required_eff` on a parent with index `parent_index`:
/// `max(1, parent_index − min(improvement, 2 · required_eff))`. So no block moves it (and with
/// it expiry) by more than twice what the chain demanded of it.
pub fn next_loss_index(parent_index: u64, improvement: u64, required_eff: u64) -> u64 {
    let step = improvement.min(required_eff.saturating_mul(2));
    parent_index.saturating_sub(step).max(1)
}

/// The model shape `(d_model, n_layers)` of the block after `parent`. The shape changes only at
/// heights that are multiples of `growth_interval`; there it is
/// `rnet_model::next_shape((d, L), cumulative_growth, stagnation, growth_caps)`, i.e.
/// `d' = min(cap_d, d + 2·(1 + ⌊s/10⌋))` and one more layer per 128 units of cumulative growth.
pub fn next_block_shape(params: &ChainParams, parent: &HeaderSummary) -> (u32, u32) {
    let height = u64::from(parent.height) + 1;
    if height % u64::from(params.growth_interval.max(1)) != 0 {
        return parent.shape();
    }
    let (d, l) = next_shape(
        (parent.d_model as usize, parent.n_layers as usize),
        parent.cumulative_growth as usize,
        u64::from(parent.stagnation),
        params.growth_caps,
    );
    (u32::try_from(d).unwrap_or(u32::MAX), u32::try_from(l).unwrap_or(u32::MAX))
}

/// The stagnation count of a block that improved by `improvement` on a parent with count
/// `parent_stagnation`: the block "only just passes" when `improvement < stagnation_multiple ·
/// required` (mainnet: less than twice the requirement); it then extends the count by one,
/// otherwise the count resets to 0.
pub fn next_stagnation(
    params: &ChainParams,
    parent_stagnation: u32,
    improvement: u64,
    required: u64,
) -> u32 {
    let bar = u128::from(params.stagnation_multiple) * u128::from(required);
    if u128::from(improvement) < bar { parent_stagnation.saturating_add(1) } else { 0 }
}

/// The index summary of `header` on top of `chain.tip()`, computed from the header and the
/// chain: the header's time, losses, effective requirement and shape; the base requirement
/// ([`required_improvement`]); loss index, chainwork, cumulative growth and stagnation from the
/// parent. `circulating_supply` is the parent's until the block is connected
/// ([`crate::connect_block`] returns the real value). Meaningful for a header that passed
/// [`crate::check_header_context`].
pub fn summarize_header(
    params: &ChainParams,
    header: &BlockHeader,
    chain: &dyn HeaderChain,
) -> HeaderSummary {
    let parent = chain.tip();
    let improvement = header.parent_loss.saturating_sub(header.val_loss);
    let required_eff = header.required_improvement;
    let growth = header.shape.d_model.saturating_sub(parent.d_model);
    HeaderSummary {
        hash: header.hash(),
        height: header.height,
        time: header.time,
        parent_loss: header.parent_loss,
        val_loss: header.val_loss,
        required_improvement: required_improvement(params, chain),
        required_eff,
        loss_index: next_loss_index(parent.loss_index, improvement, required_eff),
        chainwork: parent.chainwork.saturating_add(u128::from(required_eff)),
        checkpoint_root: header.checkpoint_root,
        d_model: header.shape.d_model,
        n_layers: header.shape.n_layers,
        cumulative_growth: parent.cumulative_growth.saturating_add(growth),
        stagnation: next_stagnation(params, parent.stagnation, improvement, required_eff),
        circulating_supply: parent.circulating_supply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_primitives::{Amount, BlockHash};

    /// Summaries by height.
    struct Chain(Vec<HeaderSummary>);

    impl HeaderChain for Chain {
        fn ancestor(&self, height: u32) -> Option<HeaderSummary> {
            self.0.get(height as usize).cloned()
        }
        fn tip(&self) -> HeaderSummary {
            self.0.last().cloned().unwrap()
        }
    }

    fn summary(height: u32, time: u64, required: u64) -> HeaderSummary {
        HeaderSummary {
            hash: BlockHash::from_bytes([height as u8; 32]),
            height,
            time,
            parent_loss: 5_000_001 - u64::from(height),
            val_loss: 5_000_000 - u64::from(height),
            required_improvement: required,
            required_eff: required,
            loss_index: 5_000_000 - u64::from(height),
            chainwork: u128::from(height) * u128::from(required),
            checkpoint_root: rnet_primitives::Hash256::ZERO,
            d_model: 384,
            n_layers: 6,
            cumulative_growth: 0,
            stagnation: 0,
            circulating_supply: Amount::ZERO,
        }
    }

    /// A chain of `n` blocks (heights 0..n) with the given spacing and requirement.
    fn chain(n: u32, spacing: u64, required: u64) -> Chain {
        Chain((0..n).map(|h| summary(h, 1_000_000 + u64::from(h) * spacing, required)).collect())
    }

    #[test]
    fn median_time_past_takes_the_middle_of_eleven() {
        let mut c = chain(20, 600, 1);
        // Heights 9..=19 have times 1_005_400..=1_011_400; scramble one to check sorting.
        c.0[19].time = 0;
        // Sorted: 0, 1_005_400, …, 1_010_800 → index 5 = 1_005_400 + 4·600.
        assert_eq!(median_time_past(&c, 19), 1_007_800);
        assert_eq!(median_time_past(&c, 18), 1_000_000 + 13 * 600);
        // Near genesis: heights 0..=3 → index 2.
        assert_eq!(median_time_past(&c, 3), 1_001_200);
        assert_eq!(median_time_past(&c, 0), 1_000_000);
        // Above the chain: only the blocks it has.
        assert_eq!(median_time_past(&c, 25), median_time_past_span(&c, 25, 11));
        assert_eq!(median_time_past(&Chain(vec![summary(0, 5, 1)]), 40), 0);
    }

    #[test]
    fn retargets_towards_the_target_spacing() {
        // Mainnet: interval 144, spacing 600, factor 4; floor 1 to see the arithmetic.
        let p = ChainParams { min_required_improvement: 1, ..ChainParams::mainnet() };
        // Not a retarget height: unchanged.
        assert_eq!(required_improvement(&p, &chain(10, 1, 5000)), 5000);
        // On schedule (tip at 287, next 288): unchanged.
        assert_eq!(required_improvement(&p, &chain(288, 600, 5000)), 5000);
        // Twice as fast: doubled. Twice as slow: halved.
        assert_eq!(required_improvement(&p, &chain(288, 300, 5000)), 10_000);
        assert_eq!(required_improvement(&p, &chain(288, 1200, 5000)), 2500);
        // Bounded by 4 either way.
        assert_eq!(required_improvement(&p, &chain(288, 1, 5000)), 20_000);
        assert_eq!(required_improvement(&p, &chain(288, 100_000, 5000)), 1250);
        // Floor.
        let floor = p.min_required_improvement;
        assert_eq!(required_improvement(&p, &chain(288, 100_000, floor + 1)), floor);
        // First retarget (next = 144) measures 143 gaps from genesis.
        assert_eq!(required_improvement(&p, &chain(144, 300, 5000)), 10_000);
        // Exact integer arithmetic: expected 144·600 over actual 144·600 + 7.
        let mut c = chain(288, 600, 1_000_000);
        c.0[287].time += 7;
        assert_eq!(required_improvement(&p, &c), 1_000_000 * 86_400 / 86_407);
        // Timestamps going backwards count as the fastest possible.
        let mut c = chain(288, 600, 5000);
        c.0[287].time = 0;
        assert_eq!(required_improvement(&p, &c), 20_000);
        // Saturates instead of overflowing.
        assert_eq!(required_improvement(&p, &chain(288, 1, u64::MAX)), u64::MAX);
    }

    #[test]
    fn regtest_never_retargets() {
        let p = ChainParams::regtest();
        let r = p.initial_required_improvement;
        assert_eq!(required_improvement(&p, &chain(288, 1, r)), r);
        assert_eq!(required_improvement(&p, &chain(2016, 1, r)), r);
    }

    #[test]
    fn shape_follows_growth_and_stagnation() {
        let p = ChainParams::mainnet();
        let mut s = summary(0, 0, 1);
        // Growth happens only at multiples of the growth interval (144 on mainnet).
        assert_eq!(next_block_shape(&p, &s), (384, 6));
        s.height = 142;
        assert_eq!(next_block_shape(&p, &s), (384, 6));
        s.height = 143;
        assert_eq!(next_block_shape(&p, &s), (386, 6));
        s.cumulative_growth = 126;
        assert_eq!(next_block_shape(&p, &s), (386, 7));
        s.cumulative_growth = 0;
        s.stagnation = 10;
        assert_eq!(next_block_shape(&p, &s), (388, 6));
        s.stagnation = 25;
        assert_eq!(next_block_shape(&p, &s), (390, 6));
        s.d_model = 4096;
        assert_eq!(next_block_shape(&p, &s), (4096, 6));
        let r = ChainParams::regtest(); // caps 64 / 2
        let mut g = summary(0, 0, 1);
        (g.d_model, g.n_layers) = (32, 2);
        assert_eq!(next_block_shape(&r, &g), (34, 2));
        g.d_model = 64;
        assert_eq!(next_block_shape(&r, &g), (64, 2));
    }

    #[test]
    fn stall_escape_halves_the_requirement_every_six_spacings() {
        let p = ChainParams::mainnet();
        let c = chain(10, 600, 1 << 20);
        let t = c.tip().time;
        assert_eq!(stall_shift(&p, t, t), 0);
        assert_eq!(stall_shift(&p, t, t + 3599), 0);
        assert_eq!(stall_shift(&p, t, t + 3600), 1);
        assert_eq!(stall_shift(&p, t, t + 7 * 3600), 7);
        assert_eq!(stall_shift(&p, t, t + 1000 * 3600), MAX_STALL_SHIFT);
        // Time before the parent counts as no time.
        assert_eq!(stall_shift(&p, t, 0), 0);
        assert_eq!(effective_required_improvement(&p, &c, t + 60), 1 << 20);
        assert_eq!(effective_required_improvement(&p, &c, t + 2 * 3600), 1 << 18);
        // Never below the floor.
        let far = effective_required_improvement(&p, &c, t + 100 * 3600);
        assert_eq!(far, ((1u64 << 20) >> 16).max(p.min_required_improvement));
        let small = chain(10, 600, p.min_required_improvement);
        assert_eq!(
            effective_required_improvement(&p, &small, t + 100 * 3600),
            p.min_required_improvement
        );
    }

    #[test]
    fn loss_index_moves_at_most_twice_the_requirement() {
        assert_eq!(next_loss_index(1000, 10, 100), 990);
        assert_eq!(next_loss_index(1000, 150, 100), 850);
        assert_eq!(next_loss_index(1000, 200, 100), 800);
        assert_eq!(next_loss_index(1000, 999_999, 100), 800);
        assert_eq!(next_loss_index(100, 999_999, 100), 1);
        assert_eq!(next_loss_index(1, 5, 100), 1);
        assert_eq!(next_loss_index(u64::MAX, u64::MAX, u64::MAX), 1);
    }

    #[test]
    fn stagnation_counts_blocks_that_only_just_pass() {
        let p = ChainParams::mainnet();
        assert_eq!(next_stagnation(&p, 3, 1000, 1000), 4);
        assert_eq!(next_stagnation(&p, 3, 1999, 1000), 4);
        assert_eq!(next_stagnation(&p, 3, 2000, 1000), 0);
        assert_eq!(next_stagnation(&p, u32::MAX, 0, 1), u32::MAX);
    }
}
