//! The obscured commitment number carried in a commitment transaction's lock time and input
//! sequence (BOLT 3), so both parties can tell which state a broadcast commitment is while
//! outsiders cannot count the channel's updates.
//!
//! `obscured = n XOR factor`, where `factor` is the lower 48 bits of
//! Keccak-256(funder's payment key ‖ fundee's payment key) read as a big-endian number (its last
//! six bytes). The lock time is `0x20` followed by the lower 24 bits of `obscured` (a unix time
//! in 1987, so always final), the sequence `0x80` followed by the upper 24 bits (the disable
//! flag is set, so it imposes no relative lock).

use rnet_crypto::PublicKey;

use super::error::ChannelError;
use super::shachain::MAX_INDEX;

const LOCK_TIME_TAG: u32 = 0x20 << 24;
const SEQUENCE_TAG: u32 = 0x80 << 24;
const LOW_24: u64 = 0xff_ffff;

/// The obscuring factor of a channel: the lower 48 bits of Keccak-256(funder's payment key ‖
/// fundee's payment key).
pub fn obscuring_factor(funder_payment: &PublicKey, fundee_payment: &PublicKey) -> u64 {
    let mut data = [0u8; 64];
    data[..32].copy_from_slice(funder_payment.as_bytes());
    data[32..].copy_from_slice(fundee_payment.as_bytes());
    let h = rnet_crypto::keccak256(&data);
    let mut low = [0u8; 8];
    low[2..].copy_from_slice(&h[26..]);
    u64::from_be_bytes(low)
}

/// The `(lock_time, sequence)` of commitment number `n` under `factor`.
pub fn encode(commitment_number: u64, factor: u64) -> Result<(u32, u32), ChannelError> {
    if commitment_number > MAX_INDEX {
        return Err(ChannelError::CommitmentNumberTooLarge(commitment_number));
    }
    let obscured = (commitment_number ^ factor) & MAX_INDEX;
    // Both halves are 24-bit, so the casts keep every bit.
    let lock_time = LOCK_TIME_TAG | (obscured & LOW_24) as u32;
    let sequence = SEQUENCE_TAG | (obscured >> 24 & LOW_24) as u32;
    Ok((lock_time, sequence))
}

/// The commitment number of a transaction with this lock time and (first input) sequence, or
/// `None` if they do not carry the commitment tags (not a commitment transaction).
pub fn decode(lock_time: u32, sequence: u32, factor: u64) -> Option<u64> {
    if lock_time >> 24 != 0x20 || sequence >> 24 != 0x80 {
        return None;
    }
    let obscured = u64::from(sequence & 0xff_ffff) << 24 | u64::from(lock_time & 0xff_ffff);
    Some((obscured ^ factor) & MAX_INDEX)
}

#[cfg(test)]
mod tests {
    use rnet_crypto::SigningKey;

    use super::*;

    #[test]
    fn round_trips_and_hides_the_number() {
        let a = SigningKey::from_bytes(&[1; 32]).public_key();
        let b = SigningKey::from_bytes(&[2; 32]).public_key();
        let f = obscuring_factor(&a, &b);
        assert!(f <= MAX_INDEX);
        assert_ne!(f, obscuring_factor(&b, &a), "the funder's key comes first");
        for n in [0, 1, 42, 1 << 24, MAX_INDEX] {
            let (lt, seq) = encode(n, f).unwrap();
            assert_eq!(lt >> 24, 0x20);
            assert_eq!(seq >> 24, 0x80);
            assert!(lt >= rnet_script::LOCKTIME_THRESHOLD, "a past unix time, always final");
            assert_eq!(decode(lt, seq, f), Some(n));
        }
        // With factor 0 the number is in the clear; the factor changes it.
        assert_eq!(encode(5, 0).unwrap(), (0x2000_0005, 0x8000_0000));
        assert_ne!(encode(5, f).unwrap(), (0x2000_0005, 0x8000_0000));
        assert_eq!(
            encode(MAX_INDEX + 1, f),
            Err(ChannelError::CommitmentNumberTooLarge(MAX_INDEX + 1))
        );
        assert_eq!(decode(0, 0x8000_0000, f), None);
        assert_eq!(decode(0x2000_0000, 0xffff_ffff, f), None);
    }
}
