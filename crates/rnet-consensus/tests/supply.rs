//! Supply accounting with the pure reward and expiry functions: the emission schedule, and a
//! property test that the circulating supply never exceeds the cap over random chains with
//! random improvements, spends, fees, emission returns and expiries.

use proptest::prelude::*;
use rnet_consensus::{
    ChainParams, base_subsidy, block_subsidy, emission_pool, expiry_threshold, halvings,
};
use rnet_primitives::{Amount, COIN, MAX_MONEY};

/// Full-bonus blocks with nothing ever leaving circulation: the base halves at 50 %, 75 %, …
/// of the cap; every epoch lasts as many blocks as the first (half the remaining supply at half
/// the rate), and the supply converges to the cap without exceeding it.
#[test]
fn emission_schedule_without_expiry() {
    let p = ChainParams::mainnet();
    let mut circulating = 0u64;
    let mut height = 0u64;
    let mut first_block_of_epoch = vec![0u64];
    loop {
        let s = block_subsidy(&p, Amount(circulating), 2, 1).0;
        if s == 0 {
            break;
        }
        assert!(s <= MAX_MONEY - circulating);
        let k = halvings(Amount(circulating)) as usize;
        assert_eq!(s, 2 * ((50 * COIN) >> k));
        circulating += s;
        height += 1;
        if halvings(Amount(circulating)) as usize > k {
            first_block_of_epoch.push(height);
        }
    }
    // 10 500 000 RNT at 100 RNT per block.
    assert_eq!(first_block_of_epoch[1], 105_000);
    assert_eq!(first_block_of_epoch[2], 210_000);
    assert_eq!(first_block_of_epoch[3], 315_000);
    // The base (50 RNT = 5·10^9 resonance) is gone after 33 halvings.
    assert_eq!(halvings(Amount(circulating)), 33);
    assert_eq!(base_subsidy(&p, Amount(circulating)), Amount(0));
    assert!(circulating <= MAX_MONEY);
    assert_eq!(height, HEIGHT_WHEN_SUBSIDY_ENDS);
    assert_eq!(circulating, SUPPLY_WHEN_SUBSIDY_ENDS);
}

/// About 33 epochs of 105 000 blocks (later epochs run a little longer: the base rounds down).
const HEIGHT_WHEN_SUBSIDY_ENDS: u64 = 3_525_506;
/// 20 999 999.99755528 RNT.
const SUPPLY_WHEN_SUBSIDY_ENDS: u64 = 2_099_999_999_755_528;

/// Expiry refills the pool, so the subsidy comes back after the supply shrinks.
#[test]
fn expiry_returns_value_to_future_rewards() {
    let p = ChainParams::mainnet();
    let near_cap = Amount(MAX_MONEY - 1000);
    assert_eq!(halvings(near_cap), 40);
    assert_eq!(block_subsidy(&p, near_cap, 2, 1), Amount(0));
    // A quarter of the cap expires: one halving left, the base is back to 25 RNT.
    assert_eq!(base_subsidy(&p, Amount(near_cap.0 - MAX_MONEY / 4)), Amount(25 * COIN));
    // Half of it: the full 50 RNT again.
    assert_eq!(base_subsidy(&p, Amount(near_cap.0 - MAX_MONEY / 2)), Amount(50 * COIN));
}

#[derive(Clone, Debug)]
struct Step {
    required: u64,
    /// Improvement as a multiple of `required`, in 1/100ths (100 ..= 300).
    improvement_pct: u64,
    /// Which coins to spend (bit i: coin i of the first 16).
    spend_mask: u16,
    /// Fee in 1/1000ths of the inputs.
    fee_permille: u64,
    /// Share of the outputs sent to the emission pool, in 1/1000ths.
    returned_permille: u64,
    /// Share of subsidy + fees the miner claims, in 1/1000ths.
    claim_permille: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (1u64..20_000, 100u64..=300, any::<u16>(), 0u64..=1000, 0u64..=1000, 0u64..=1000).prop_map(
        |(
            required,
            improvement_pct,
            spend_mask,
            fee_permille,
            returned_permille,
            claim_permille,
        )| {
            Step {
                required,
                improvement_pct,
                spend_mask,
                fee_permille,
                returned_permille,
                claim_permille,
            }
        },
    )
}

fn part(v: u64, permille: u64) -> u64 {
    (u128::from(v) * u128::from(permille) / 1000) as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn supply_never_exceeds_the_cap(
        initial in prop_oneof![Just(0u64), 0u64..=MAX_MONEY, (MAX_MONEY - 10 * COIN)..=MAX_MONEY],
        base in prop_oneof![Just(50 * COIN), 1u64..=MAX_MONEY],
        ratio in (2u64..20, 1u64..10).prop_filter("num > den", |(n, d)| n > d),
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let p = ChainParams {
            base_reward: Amount(base),
            expiry_ratio: ratio,
            ..ChainParams::mainnet()
        };
        let mut loss = 5_600_000u64;
        // (value, creation loss)
        let mut coins: Vec<(u64, u64)> = vec![(initial, loss)];
        let mut circulating = initial;
        for s in steps {
            let improvement = s.required * s.improvement_pct / 100;
            if improvement >= loss {
                break;
            }
            loss -= improvement;

            // Transactions: spend some coins, pay a fee, return a share to the pool.
            let mut inputs = 0u64;
            let mut kept = Vec::new();
            for (i, c) in coins.drain(..).enumerate() {
                if i < 16 && s.spend_mask & (1 << i) != 0 {
                    inputs += c.0;
                } else {
                    kept.push(c);
                }
            }
            coins = kept;
            let fees = part(inputs, s.fee_permille);
            let outputs = inputs - fees;
            let returned = part(outputs, s.returned_permille);
            if outputs - returned > 0 {
                coins.push((outputs - returned, loss));
            }

            // The coinbase.
            let subsidy = block_subsidy(&p, Amount(circulating), improvement, s.required).0;
            prop_assert!(subsidy <= emission_pool(Amount(circulating)).0);
            let claimed = part(subsidy + fees, s.claim_permille);
            if claimed > 0 {
                coins.push((claimed, loss));
            }
            // Consensus's rule: circulating' = circulating − spent + created.
            circulating = circulating - inputs + (outputs - returned) + claimed;
            prop_assert!(circulating <= MAX_MONEY, "{circulating}");

            // Expiry at the new tip.
            let threshold = expiry_threshold(&p, loss);
            let expired: u64 = coins.iter().filter(|c| c.1 >= threshold).map(|c| c.0).sum();
            coins.retain(|c| c.1 < threshold);
            circulating -= expired;
            prop_assert_eq!(circulating, coins.iter().map(|c| c.0).sum::<u64>());
            prop_assert!(circulating <= MAX_MONEY);
        }
    }
}
