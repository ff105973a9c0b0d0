//! What the chain fixes for the next block: median time past, the required improvement
//! (retargeted towards the target spacing), the model shape (growth schedule with stagnation) and
//! the summary a header contributes to the block index.

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

/// The model shape `(d_model, n_layers)` of the block after `parent`:
/// `rnet_model::next_shape((d, L), cumulative_growth, stagnation, growth_caps)`, i.e.
/// `d' = min(cap_d, d + 2·(1 + ⌊s/10⌋))` and one more layer per 128 units of cumulative growth.
pub fn next_block_shape(params: &ChainParams, parent: &HeaderSummary) -> (u32, u32) {
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

/// The index summary of `header` on top of `parent`, computed from the header alone: the
/// header's time, loss, required improvement and shape; cumulative growth and stagnation from the
/// parent. `circulating_supply` is the parent's until the block is connected
/// ([`crate::connect_block`] returns the real value). Meaningful for a header that passed
/// [`crate::check_header_context`].
pub fn summarize_header(
    params: &ChainParams,
    header: &BlockHeader,
    parent: &HeaderSummary,
) -> HeaderSummary {
    let improvement = parent.val_loss.saturating_sub(header.val_loss);
    let growth = header.shape.d_model.saturating_sub(parent.d_model);
    HeaderSummary {
        hash: header.hash(),
        height: header.height,
        time: header.time,
        val_loss: header.val_loss,
        required_improvement: header.required_improvement,
        d_model: header.shape.d_model,
        n_layers: header.shape.n_layers,
        cumulative_growth: parent.cumulative_growth.saturating_add(growth),
        stagnation: next_stagnation(
            params,
            parent.stagnation,
            improvement,
            header.required_improvement,
        ),
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
            val_loss: 5_000_000 - u64::from(height),
            required_improvement: required,
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
        let p = ChainParams::mainnet(); // interval 144, spacing 600, factor 4, floor 1
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
        assert_eq!(required_improvement(&p, &chain(288, 100_000, 2)), 1);
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
        assert_eq!(required_improvement(&p, &chain(288, 1, 100)), 100);
        assert_eq!(required_improvement(&p, &chain(2016, 1, 100)), 100);
    }

    #[test]
    fn shape_follows_growth_and_stagnation() {
        let p = ChainParams::mainnet();
        let mut s = summary(0, 0, 1);
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
    fn stagnation_counts_blocks_that_only_just_pass() {
        let p = ChainParams::mainnet();
        assert_eq!(next_stagnation(&p, 3, 1000, 1000), 4);
        assert_eq!(next_stagnation(&p, 3, 1999, 1000), 4);
        assert_eq!(next_stagnation(&p, 3, 2000, 1000), 0);
        assert_eq!(next_stagnation(&p, u32::MAX, 0, 1), u32::MAX);
    }
}
