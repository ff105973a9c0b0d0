//! Fee rates, transaction sizes and dust limits of channel transactions.
//!
//! ResonanceNet has no witness discount: the mempool prices a transaction by its full serialized
//! size (`Transaction::total_size`) at a rate in resonance per 1000 bytes, rounding the fee up
//! (`docs/mempool.md`). Channel fee rates use the same unit and rounding, so a commitment signed
//! at rate `r` pays at least `r` for its own size.
//!
//! Ed25519 signatures are always 64 bytes (sighash `ALL`), keys 32, hashes 32, so the size of
//! every channel transaction is known exactly from its layout; the constants below are derived
//! from it and the tests check them against built transactions.

use rnet_primitives::Amount;

/// A fee rate in resonance per 1000 bytes of the full serialization (the mempool's unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeeRate(pub u64);

impl FeeRate {
    /// The fee for `size` bytes, rounded up (as `rnet_mempool::FeeRate::fee_for`), saturating.
    pub fn fee_for(self, size: usize) -> Amount {
        let fee = (u128::from(self.0) * size as u128).div_ceil(1000);
        Amount(u64::try_from(fee).unwrap_or(u64::MAX))
    }
}

/// The mempool's dust threshold (3000 resonance/kB × 151 bytes, `docs/mempool.md`): outputs
/// below it are not relayed, so no channel may use a lower dust limit.
pub const MIN_DUST_LIMIT: Amount = Amount(453);

/// The largest transaction the mempool relays.
pub const MAX_STANDARD_TX_SIZE: usize = 100_000;

/// Bytes of one output paying a 32-byte witness program (key or script hash): value 8 +
/// script length 1 + script 34.
pub const OUTPUT_SIZE: usize = 8 + 1 + 34;

/// Bytes of one input without its witness: outpoint 36 + empty script 1 + sequence 4.
pub const INPUT_SIZE: usize = 36 + 1 + 4;

/// Bytes of a witness signature item (sighash `ALL`): length 1 + 64.
pub const SIGNATURE_ITEM_SIZE: usize = 1 + 64;

/// Version 4 + segwit marker and flag 2 + lock time 4.
pub const TX_FIXED_SIZE: usize = 4 + 2 + 4;

/// Size of the funding witness script `2 <k1> <k2> 2 CHECKMULTISIG`.
pub const FUNDING_SCRIPT_SIZE: usize = 1 + 33 + 33 + 1 + 1;

/// The witness spending the funding output: item count 1, two signatures, the script.
pub const FUNDING_WITNESS_SIZE: usize = 1 + 2 * SIGNATURE_ITEM_SIZE + 1 + FUNDING_SCRIPT_SIZE;

/// The largest offered or received HTLC witness script: 220 bytes plus the data of the
/// `cltv_expiry` number, at most 4 bytes for a block height below 500 000 000.
pub const MAX_HTLC_SCRIPT_SIZE: usize = 220 + 4;

/// The size every fee calculation assumes for an HTLC-timeout transaction: one input spending
/// an offered HTLC through `[sig, sig, "", ""]`, one output, with the largest HTLC script.
pub const HTLC_TIMEOUT_TX_SIZE: usize = TX_FIXED_SIZE
    + 1
    + INPUT_SIZE
    + 1
    + OUTPUT_SIZE
    + (1 + 2 * SIGNATURE_ITEM_SIZE + 1 + 1 + 1 + MAX_HTLC_SCRIPT_SIZE);

/// The size every fee calculation assumes for an HTLC-success transaction: as HTLC-timeout but
/// the witness is `[sig, sig, preimage(32), 01, ""]`.
pub const HTLC_SUCCESS_TX_SIZE: usize = TX_FIXED_SIZE
    + 1
    + INPUT_SIZE
    + 1
    + OUTPUT_SIZE
    + (1 + 2 * SIGNATURE_ITEM_SIZE + 33 + 2 + 1 + 1 + MAX_HTLC_SCRIPT_SIZE);

/// Bytes of the CompactSize encoding of `n`.
pub const fn compact_size_len(n: usize) -> usize {
    if n <= 0xfc {
        1
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// The size the commitment fee is computed for: the commitment transaction with **both**
/// `to_local` and `to_remote` outputs and `untrimmed_htlcs` HTLC outputs (as BOLT 3, whether or
/// not a balance output is later omitted as dust, so the fee does not depend on itself).
pub const fn commitment_size(untrimmed_htlcs: usize) -> usize {
    let outputs = 2 + untrimmed_htlcs;
    TX_FIXED_SIZE
        + 1
        + INPUT_SIZE
        + compact_size_len(outputs)
        + outputs * OUTPUT_SIZE
        + FUNDING_WITNESS_SIZE
}

/// The base fee of a commitment transaction with `untrimmed_htlcs` HTLC outputs, paid by the
/// funder.
pub fn commitment_fee(feerate: FeeRate, untrimmed_htlcs: usize) -> Amount {
    feerate.fee_for(commitment_size(untrimmed_htlcs))
}

/// The fee of an HTLC-timeout transaction, taken from the HTLC's value.
pub fn htlc_timeout_fee(feerate: FeeRate) -> Amount {
    feerate.fee_for(HTLC_TIMEOUT_TX_SIZE)
}

/// The fee of an HTLC-success transaction, taken from the HTLC's value.
pub fn htlc_success_fee(feerate: FeeRate) -> Amount {
    feerate.fee_for(HTLC_SUCCESS_TX_SIZE)
}

/// The size of a cooperative close whose outputs have scripts of the given lengths (list only
/// the outputs it will have).
pub fn closing_size(output_script_lens: &[usize]) -> usize {
    TX_FIXED_SIZE
        + 1
        + INPUT_SIZE
        + compact_size_len(output_script_lens.len())
        + output_script_lens.iter().map(|l| 8 + compact_size_len(*l) + l).sum::<usize>()
        + FUNDING_WITNESS_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_layout() {
        assert_eq!(FUNDING_SCRIPT_SIZE, 69);
        assert_eq!(FUNDING_WITNESS_SIZE, 201);
        assert_eq!(commitment_size(0), 340);
        assert_eq!(commitment_size(1), 383);
        // The output count needs three bytes from 253 outputs on.
        assert_eq!(commitment_size(251) - commitment_size(250), OUTPUT_SIZE + 2);
        assert_eq!(HTLC_TIMEOUT_TX_SIZE, 454);
        assert_eq!(HTLC_SUCCESS_TX_SIZE, 488);
        assert_eq!(closing_size(&[34, 34]), 4 + 2 + 1 + 41 + 1 + 86 + 201 + 4);
    }

    #[test]
    fn fees_round_up_like_the_mempool() {
        assert_eq!(FeeRate(1000).fee_for(250), Amount(250));
        assert_eq!(FeeRate(1).fee_for(1), Amount(1));
        assert_eq!(FeeRate(1001).fee_for(1000), Amount(1001));
        assert_eq!(FeeRate(999).fee_for(1), Amount(1));
        assert_eq!(FeeRate(0).fee_for(1000), Amount(0));
        assert_eq!(FeeRate(u64::MAX).fee_for(usize::MAX), Amount(u64::MAX));
        assert_eq!(commitment_fee(FeeRate(10_000), 0), Amount(3400));
        assert_eq!(htlc_timeout_fee(FeeRate(10_000)), Amount(4540));
        assert_eq!(htlc_success_fee(FeeRate(10_000)), Amount(4880));
    }
}
