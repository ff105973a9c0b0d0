//! Rewards, adaptive halving, UTXO expiry and supply accounting — pure integer functions.
//!
//! Supply model: the circulating supply is the value of all coins in the UTXO set; the emission
//! pool is `MAX_MONEY − circulating`. Value returns to the pool whenever it leaves the UTXO set
//! without becoming a new coin: expiry, emission-return and other unspendable outputs, fees or
//! subsidy a miner does not claim.

use rnet_primitives::{Amount, MAX_MONEY};
use rnet_script::{is_emission_return, parse_witness_program};

use crate::params::{ChainParams, MAX_BONUS_MULTIPLE};

/// Number of halving thresholds the circulating supply has crossed: the largest `k` such that
/// `circulating ≥ MAX_MONEY · (1 − 2^−k)` (thresholds 50 %, 75 %, 87.5 %, …; reaching a threshold
/// counts as crossing it). Exact: `remaining · 2^k ≤ MAX_MONEY` with `remaining = MAX_MONEY −
/// circulating`, in 128-bit integers. At or above the cap every threshold is crossed: 64.
pub fn halvings(circulating: Amount) -> u32 {
    let remaining = u128::from(MAX_MONEY.saturating_sub(circulating.0));
    if remaining == 0 {
        return 64;
    }
    let max = u128::from(MAX_MONEY);
    let mut k = 0u32;
    while k < 64 && (remaining << (k + 1)) <= max {
        k += 1;
    }
    k
}

/// The base reward after halvings: `base_reward >> halvings(circulating)` (0 from 64 halvings).
pub fn base_subsidy(params: &ChainParams, circulating: Amount) -> Amount {
    let k = halvings(circulating);
    Amount(params.base_reward.0.checked_shr(k).unwrap_or(0))
}

/// The subsidy a block may claim (before fees):
///
/// `min( ⌊base · clamp(improvement, required, 2·required) / required⌋, MAX_MONEY − circulating )`
///
/// with `base = base_subsidy(circulating)`, 128-bit arithmetic, `required` taken as at least 1.
/// The performance bonus `clamp(improvement, required, 2·required) / required` lies in `[1, 2]`;
/// the cap keeps the circulating supply at or below `MAX_MONEY`.
pub fn block_subsidy(
    params: &ChainParams,
    circulating: Amount,
    improvement: u64,
    required: u64,
) -> Amount {
    let base = u128::from(base_subsidy(params, circulating).0);
    let required = u128::from(required.max(1));
    let effective =
        u128::from(improvement).clamp(required, required * u128::from(MAX_BONUS_MULTIPLE));
    let subsidy = base * effective / required;
    let room = u128::from(MAX_MONEY.saturating_sub(circulating.0));
    // Both bounds fit a u64: room ≤ MAX_MONEY.
    Amount(subsidy.min(room) as u64)
}

/// The expiry threshold when the new tip's loss is `tip_loss`: a coin expires iff
/// `creation_loss_index ≥ threshold`, where `threshold = max(1, ⌈tip_loss · num / den⌉)` for
/// `expiry_ratio = (num, den)` — exactly `creation_loss_index / tip_loss_index ≥ num / den` for
/// `tip_loss > 0` (and, for `tip_loss = 0`, every coin created at a positive loss). Saturates at
/// `u64::MAX` (no coin can reach it).
pub fn expiry_threshold(params: &ChainParams, tip_loss: u64) -> u64 {
    let (num, den) = params.expiry_ratio;
    let den = u128::from(den.max(1));
    let t = (u128::from(tip_loss) * u128::from(num)).div_ceil(den);
    u64::try_from(t).unwrap_or(u64::MAX).max(1)
}

/// Whether a coin created at `creation_loss_index` has expired once the tip's loss is `tip_loss`.
pub fn is_expired(params: &ChainParams, creation_loss_index: u64, tip_loss: u64) -> bool {
    creation_loss_index >= expiry_threshold(params, tip_loss)
}

/// Whether an output can never be spent, so connecting it creates no coin and its value returns
/// to the emission pool: the emission-return script, any script that is not a witness program
/// (e.g. other `OP_RETURN` outputs), and version 0 or 1 programs that are not 32 bytes. (Versions
/// 2..=16 are spendable by anyone under consensus and do become coins.)
pub fn is_unspendable(script_pubkey: &[u8]) -> bool {
    if is_emission_return(script_pubkey) {
        return true;
    }
    match parse_witness_program(script_pubkey) {
        None => true,
        Some((0 | 1, program)) => program.len() != 32,
        Some(_) => false,
    }
}

/// The emission pool: `MAX_MONEY − circulating` (0 if `circulating` is above the cap).
pub fn emission_pool(circulating: Amount) -> Amount {
    Amount(MAX_MONEY.saturating_sub(circulating.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_primitives::COIN;

    fn main() -> ChainParams {
        ChainParams::mainnet()
    }

    #[test]
    fn halving_thresholds_are_exact() {
        let half = MAX_MONEY / 2; // 10 500 000 RNT
        assert_eq!(halvings(Amount(0)), 0);
        assert_eq!(halvings(Amount(half - 1)), 0);
        assert_eq!(halvings(Amount(half)), 1);
        let three_q = MAX_MONEY / 4 * 3; // 15 750 000 RNT
        assert_eq!(halvings(Amount(three_q - 1)), 1);
        assert_eq!(halvings(Amount(three_q)), 2);
        assert_eq!(halvings(Amount(MAX_MONEY / 8 * 7)), 3);
        assert_eq!(halvings(Amount(MAX_MONEY / 8 * 7 - 1)), 2);
        // MAX_MONEY = 21·10^14 = 2^14 · 128 173 828 125: thresholds up to k = 14 are integers.
        let t14 = MAX_MONEY - (MAX_MONEY >> 14);
        assert_eq!(halvings(Amount(t14)), 14);
        assert_eq!(halvings(Amount(t14 - 1)), 13);
        // k = 15: remaining · 2^15 ≤ MAX ⇔ remaining ≤ 64 086 914 062.5, i.e. ≤ 64 086 914 062.
        assert_eq!(halvings(Amount(MAX_MONEY - 64_086_914_062)), 15);
        assert_eq!(halvings(Amount(MAX_MONEY - 64_086_914_063)), 14);
        // One resonance left: 2^k ≤ 2.1·10^15 ⇔ k ≤ 50.
        assert_eq!(halvings(Amount(MAX_MONEY - 1)), 50);
        assert_eq!(halvings(Amount(MAX_MONEY)), 64);
        assert_eq!(halvings(Amount(u64::MAX)), 64);
    }

    #[test]
    fn base_subsidy_halves_with_the_supply() {
        let p = main();
        assert_eq!(base_subsidy(&p, Amount(0)), Amount(50 * COIN));
        assert_eq!(base_subsidy(&p, Amount(MAX_MONEY / 2)), Amount(25 * COIN));
        assert_eq!(base_subsidy(&p, Amount(MAX_MONEY / 4 * 3)), Amount(1_250_000_000));
        assert_eq!(base_subsidy(&p, Amount(MAX_MONEY / 8 * 7)), Amount(625_000_000));
        // 50 RNT = 5·10^9 resonance < 2^33: gone after 33 halvings.
        assert_eq!(base_subsidy(&p, Amount(MAX_MONEY - 1)), Amount(0));
        assert_eq!(base_subsidy(&p, Amount(MAX_MONEY)), Amount(0));
    }

    #[test]
    fn bonus_is_linear_between_one_and_two() {
        let p = main();
        let c = Amount(0);
        assert_eq!(block_subsidy(&p, c, 1000, 1000), Amount(50 * COIN));
        assert_eq!(block_subsidy(&p, c, 1500, 1000), Amount(75 * COIN));
        assert_eq!(block_subsidy(&p, c, 1999, 1000), Amount(9_995_000_000));
        assert_eq!(block_subsidy(&p, c, 2000, 1000), Amount(100 * COIN));
        assert_eq!(block_subsidy(&p, c, 1_000_000, 1000), Amount(100 * COIN));
        // Below the requirement (an invalid block) the bonus is still 1.
        assert_eq!(block_subsidy(&p, c, 10, 1000), Amount(50 * COIN));
        // Rounds down: 50 RNT · 4/3.
        assert_eq!(block_subsidy(&p, c, 4, 3), Amount(6_666_666_666));
        // required 0 is treated as 1.
        assert_eq!(block_subsidy(&p, c, 0, 0), Amount(50 * COIN));
        assert_eq!(block_subsidy(&p, c, 5, 0), Amount(100 * COIN));
        // Halved base with full bonus.
        assert_eq!(block_subsidy(&p, Amount(MAX_MONEY / 2), 2, 1), Amount(50 * COIN));
    }

    #[test]
    fn subsidy_never_exceeds_the_cap() {
        let p = main();
        // 30 RNT left in the pool: 3·10^9 · 2^19 ≤ 2.1·10^15 < 3·10^9 · 2^20, so the base has
        // halved 19 times and the cap does not bind.
        let c = Amount(MAX_MONEY - 30 * COIN);
        assert_eq!(halvings(c), 19);
        assert_eq!(block_subsidy(&p, c, 2, 1), Amount(((50 * COIN) >> 19) * 2));
        // With an absurd base (the whole supply) the cap binds.
        let big = ChainParams { base_reward: Amount(MAX_MONEY), ..main() };
        assert_eq!(block_subsidy(&big, Amount(0), 2, 1), Amount(MAX_MONEY));
        // 5 left: 48 halvings leave a base of ⌊2.1·10^15 / 2^48⌋ = 7, doubled to 14, capped to 5.
        assert_eq!(halvings(Amount(MAX_MONEY - 5)), 48);
        assert_eq!(block_subsidy(&big, Amount(MAX_MONEY - 5), 2, 1), Amount(5));
        assert_eq!(block_subsidy(&big, Amount(MAX_MONEY), 2, 1), Amount(0));
        assert_eq!(block_subsidy(&big, Amount(u64::MAX), 2, 1), Amount(0));
    }

    #[test]
    fn expiry_threshold_is_exact() {
        let p = main(); // ratio 10
        assert_eq!(expiry_threshold(&p, 500_000), 5_000_000);
        assert!(is_expired(&p, 5_000_000, 500_000));
        assert!(!is_expired(&p, 4_999_999, 500_000));
        assert_eq!(expiry_threshold(&p, 0), 1);
        assert_eq!(expiry_threshold(&p, u64::MAX), u64::MAX);
        let r = ChainParams { expiry_ratio: (3, 2), ..main() };
        // 1.5 · 7 = 10.5 → 11: a coin of loss 10 has ratio 10/7 < 1.5; 11/7 ≥ 1.5.
        assert_eq!(expiry_threshold(&r, 7), 11);
        assert!(!is_expired(&r, 10, 7));
        assert!(is_expired(&r, 11, 7));
        // Regtest: ratio 2.
        assert_eq!(expiry_threshold(&ChainParams::regtest(), 2_789_393), 5_578_786);
    }

    #[test]
    fn unspendable_outputs() {
        assert!(is_unspendable(rnet_script::EMISSION_RETURN_SCRIPT));
        assert!(is_unspendable(&[0x6a, 1, 7]));
        assert!(is_unspendable(&[]));
        let mut v0 = vec![0x00, 32];
        v0.extend([1; 32]);
        assert!(!is_unspendable(&v0));
        let mut v1 = vec![0x51, 32];
        v1.extend([1; 32]);
        assert!(!is_unspendable(&v1));
        let mut v1_short = vec![0x51, 20];
        v1_short.extend([1; 20]);
        assert!(is_unspendable(&v1_short));
        assert!(!is_unspendable(&[0x52, 2, 1, 1]));
        assert_eq!(emission_pool(Amount(MAX_MONEY - 7)), Amount(7));
    }
}
