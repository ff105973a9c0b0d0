//! Per-commitment secrets: BOLT 3's SHA-256 "shachain" generator and the compact store in which
//! the receiver keeps every secret revealed so far in at most 49 entries.
//!
//! Secret `I` (a 48-bit index) is derived from a 32-byte seed by walking the index's bits from
//! 47 down to 0 and, for every set bit `B`, flipping bit `B` of the value and hashing it with
//! SHA-256. Commitment number `n` uses index `2^48 − 1 − n`, so indices count down. A secret
//! whose index has `k` trailing zero bits derives every secret whose index agrees with it above
//! those `k` bits; as indices count down, the secret of a later commitment derives earlier ones
//! and never a later one. The algorithm and test vectors are BOLT 3's (Appendix D); this module
//! uses SHA-256 exactly as BOLT 3 does, so its vectors apply unchanged.

use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

/// The largest index, `2^48 − 1`: the index of commitment number 0.
pub const MAX_INDEX: u64 = (1 << 48) - 1;

/// How many entries the compact store needs: one per possible count of trailing zeros (0..=48).
pub const STORE_SLOTS: usize = 49;

/// Why a per-commitment secret cannot be produced or stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ShachainError {
    /// Indices and commitment numbers are 48-bit.
    #[error("index {0} exceeds 2^48 - 1")]
    IndexOutOfRange(u64),
    /// Secrets must arrive in order, one index below the previous (starting at `2^48 − 1`).
    #[error("expected the secret for index {expected}, got index {got}")]
    UnexpectedIndex {
        /// The index the store needs next.
        expected: u64,
        /// The index offered.
        got: u64,
    },
    /// The new secret does not derive a secret already stored: the secrets do not come from
    /// one seed (the counterparty lied, now or before).
    #[error("secret for index {0} does not derive the earlier secrets")]
    InconsistentSecret(u64),
    /// No stored secret derives the requested index (not revealed yet).
    #[error("no secret known for index {0}")]
    UnknownIndex(u64),
    /// The store has received every index down to 0.
    #[error("the store is full")]
    Exhausted,
}

/// The shachain index of commitment number `n`: `2^48 − 1 − n`.
pub fn index_of_commitment(commitment_number: u64) -> Result<u64, ShachainError> {
    if commitment_number > MAX_INDEX {
        return Err(ShachainError::IndexOutOfRange(commitment_number));
    }
    Ok(MAX_INDEX - commitment_number)
}

/// Flips bit `bit` of a 256-bit value (bit `B` is bit `B mod 8` of byte `B div 8`).
fn flip(value: &mut [u8; 32], bit: u32) {
    value[(bit / 8) as usize] ^= 1 << (bit % 8);
}

/// BOLT 3 `derive_secret`: from `base`, whose index agrees with `index` on bits `bits..48`,
/// derives the secret of `index` by flipping and hashing for every set bit below `bits`.
fn derive(base: &[u8; 32], bits: u32, index: u64) -> [u8; 32] {
    let mut p = *base;
    for b in (0..bits).rev() {
        if index >> b & 1 == 1 {
            flip(&mut p, b);
            let h: [u8; 32] = Sha256::digest(p).into();
            p.zeroize();
            p = h;
        }
    }
    p
}

/// BOLT 3 `generate_from_seed`: the secret of `index` (≤ [`MAX_INDEX`]).
pub fn secret_from_seed(seed: &[u8; 32], index: u64) -> Result<[u8; 32], ShachainError> {
    if index > MAX_INDEX {
        return Err(ShachainError::IndexOutOfRange(index));
    }
    Ok(derive(seed, 48, index))
}

/// The generator side: the holder's secret seed, from which the secret of every commitment
/// number is derived. Zeroized on drop.
#[derive(Clone)]
pub struct SecretGenerator {
    seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SecretGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretGenerator(..)")
    }
}

impl SecretGenerator {
    /// A generator for `seed` (unguessable, one per channel, never revealed).
    pub fn new(seed: [u8; 32]) -> Self {
        Self { seed: Zeroizing::new(seed) }
    }

    /// The per-commitment secret of commitment number `n` (index `2^48 − 1 − n`).
    pub fn secret(&self, commitment_number: u64) -> Result<Zeroizing<[u8; 32]>, ShachainError> {
        let index = index_of_commitment(commitment_number)?;
        Ok(Zeroizing::new(secret_from_seed(&self.seed, index)?))
    }

    /// The seed, for persisting the channel state (`crate::state`); never send it anywhere.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }
}

/// One stored `(index, secret)` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    index: u64,
    secret: [u8; 32],
}

/// The receiver side: every secret revealed so far, in at most 49 entries (BOLT 3's compact
/// storage). Each new secret must be the next index down and must derive every stored entry it
/// covers, so a counterparty that reveals secrets from different seeds is caught at the first
/// secret that should derive an inconsistent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretStore {
    known: [Option<Entry>; STORE_SLOTS],
    /// The index the next secret must have (`None` before the first and after index 0).
    next: Option<u64>,
    received: u64,
}

impl Default for SecretStore {
    fn default() -> Self {
        Self { known: [None; STORE_SLOTS], next: None, received: 0 }
    }
}

/// BOLT 3 `where_to_put_secret`: the number of trailing zero bits of a 48-bit index (48 for 0).
fn slot_of(index: u64) -> usize {
    if index == 0 { 48 } else { index.trailing_zeros().min(48) as usize }
}

impl SecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index the next secret must have: `2^48 − 1` at first, then one less each time.
    pub fn next_index(&self) -> Result<u64, ShachainError> {
        match (self.received, self.next) {
            (0, _) => Ok(MAX_INDEX),
            (_, Some(i)) => Ok(i),
            (_, None) => Err(ShachainError::Exhausted),
        }
    }

    /// How many secrets were received.
    pub fn len(&self) -> u64 {
        self.received
    }

    /// Whether no secret was received yet.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// BOLT 3 `insert_secret`: stores the secret of `index` after checking that it is the next
    /// index and that it derives every stored secret with fewer trailing zeros. Nothing changes
    /// on error.
    pub fn insert(&mut self, index: u64, secret: [u8; 32]) -> Result<(), ShachainError> {
        if index > MAX_INDEX {
            return Err(ShachainError::IndexOutOfRange(index));
        }
        let expected = self.next_index()?;
        if index != expected {
            return Err(ShachainError::UnexpectedIndex { expected, got: index });
        }
        let slot = slot_of(index);
        for entry in self.known[..slot].iter().flatten() {
            if derive(&secret, slot as u32, entry.index) != entry.secret {
                return Err(ShachainError::InconsistentSecret(index));
            }
        }
        self.known[slot] = Some(Entry { index, secret });
        self.received += 1;
        self.next = index.checked_sub(1);
        Ok(())
    }

    /// Stores the secret revealed for commitment number `n`.
    pub fn insert_commitment(
        &mut self,
        commitment_number: u64,
        secret: [u8; 32],
    ) -> Result<(), ShachainError> {
        self.insert(index_of_commitment(commitment_number)?, secret)
    }

    /// BOLT 3 `derive_old_secret`: the secret of any index already revealed.
    pub fn get(&self, index: u64) -> Result<[u8; 32], ShachainError> {
        if index > MAX_INDEX {
            return Err(ShachainError::IndexOutOfRange(index));
        }
        for (b, entry) in self.known.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let mask = !((1u64 << b) - 1);
            if index & mask == entry.index {
                return Ok(derive(&entry.secret, b as u32, index));
            }
        }
        Err(ShachainError::UnknownIndex(index))
    }

    /// The secret revealed for commitment number `n`.
    pub fn get_commitment(&self, commitment_number: u64) -> Result<[u8; 32], ShachainError> {
        self.get(index_of_commitment(commitment_number)?)
    }

    /// The stored `(index, secret)` entries, for persistence ([`SecretStore::from_entries`]).
    pub fn entries(&self) -> Vec<(u64, [u8; 32])> {
        self.known.iter().flatten().map(|e| (e.index, e.secret)).collect()
    }

    /// Rebuilds a store from [`SecretStore::len`] and [`SecretStore::entries`]. Refuses entries
    /// that could not have been stored after `received` secrets (wrong count, index out of
    /// range or revealed later than `received` allows, two entries for one slot) and entries
    /// that a later-stored entry covering them does not derive.
    pub fn from_entries(received: u64, entries: &[(u64, [u8; 32])]) -> Result<Self, ShachainError> {
        let mut store = Self::new();
        if received == 0 {
            return match entries.first() {
                None => Ok(store),
                Some(&(index, _)) => Err(ShachainError::UnknownIndex(index)),
            };
        }
        if received > MAX_INDEX + 1 {
            return Err(ShachainError::IndexOutOfRange(received));
        }
        // The last secret received has this index; every stored one is at or above it.
        let last = MAX_INDEX + 1 - received;
        for &(index, secret) in entries {
            if index > MAX_INDEX || index < last {
                return Err(ShachainError::IndexOutOfRange(index));
            }
            let slot = slot_of(index);
            if store.known[slot].is_some() {
                return Err(ShachainError::InconsistentSecret(index));
            }
            store.known[slot] = Some(Entry { index, secret });
        }
        if store.known[slot_of(last)].map(|e| e.index) != Some(last) {
            return Err(ShachainError::UnknownIndex(last));
        }
        for (b, entry) in store.known.iter().enumerate() {
            let Some(entry) = entry else { continue };
            for lower in store.known[..b].iter().flatten() {
                let mask = !((1u64 << b) - 1);
                if lower.index & mask == entry.index
                    && derive(&entry.secret, b as u32, lower.index) != lower.secret
                {
                    return Err(ShachainError::InconsistentSecret(entry.index));
                }
            }
        }
        store.received = received;
        store.next = last.checked_sub(1);
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// BOLT 3 Appendix D generation tests: (seed, index, secret).
    const GENERATION_VECTORS: &[(&str, u64, &str)] = &[
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            281474976710655,
            "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
        ),
        (
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            281474976710655,
            "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
        ),
        (
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            0xaaaaaaaaaaa,
            "56f4008fb007ca9acf0e15b054d5c9fd12ee06cea347914ddbaed70d1c13a528",
        ),
        (
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            0x555555555555,
            "9015daaeb06dba4ccc05b91b2f73bd54405f2be9f217fbacd3c5ac2e62327d31",
        ),
        (
            "0101010101010101010101010101010101010101010101010101010101010101",
            1,
            "915c75942a26bb3a433a8ce2cb0427c29ec6c1775cfc78328b57f6ba7bfeaa9c",
        ),
    ];

    /// One insertion: (index, secret, accepted).
    type Step = (u64, &'static str, bool);

    /// BOLT 3 Appendix D storage tests: (name, insertions).
    const STORAGE_VECTORS: &[(&str, &[Step])] = &[
        (
            "insert_secret correct sequence",
            &[
                (
                    281474976710655,
                    "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                    true,
                ),
                (
                    281474976710654,
                    "c7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                    true,
                ),
                (
                    281474976710653,
                    "2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                    true,
                ),
                (
                    281474976710652,
                    "27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                    true,
                ),
                (
                    281474976710651,
                    "c65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
                    true,
                ),
                (
                    281474976710650,
                    "969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                    true,
                ),
                (
                    281474976710649,
                    "a5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
                    true,
                ),
                (
                    281474976710648,
                    "05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
                    true,
                ),
            ],
        ),
        (
            "insert_secret #1 incorrect",
            &[
                (
                    281474976710655,
                    "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
                    true,
                ),
                (
                    281474976710654,
                    "c7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                    false,
                ),
            ],
        ),
        (
            "insert_secret #2 incorrect (#1 derived from incorrect)",
            &[
                (
                    281474976710655,
                    "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
                    true,
                ),
                (
                    281474976710654,
                    "dddc3a8d14fddf2b68fa8c7fbad2748274937479dd0f8930d5ebb4ab6bd866a3",
                    true,
                ),
                (
                    281474976710653,
                    "2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                    true,
                ),
                (
                    281474976710652,
                    "27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                    false,
                ),
            ],
        ),
        (
            "insert_secret #3 incorrect",
            &[
                (
                    281474976710655,
                    "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                    true,
                ),
                (
                    281474976710654,
                    "c7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                    true,
                ),
                (
                    281474976710653,
                    "c51a18b13e8527e579ec56365482c62f180b7d5760b46e9477dae59e87ed423a",
                    true,
                ),
                (
                    281474976710652,
                    "27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                    false,
                ),
            ],
        ),
        (
            "insert_secret #4 incorrect (1,2,3 derived from incorrect)",
            &[
                (
                    281474976710655,
                    "02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
                    true,
                ),
                (
                    281474976710654,
                    "dddc3a8d14fddf2b68fa8c7fbad2748274937479dd0f8930d5ebb4ab6bd866a3",
                    true,
                ),
                (
                    281474976710653,
                    "c51a18b13e8527e579ec56365482c62f180b7d5760b46e9477dae59e87ed423a",
                    true,
                ),
                (
                    281474976710652,
                    "ba65d7b0ef55a3ba300d4e87af29868f394f8f138d78a7011669c79b37b936f4",
                    true,
                ),
                (
                    281474976710651,
                    "c65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
                    true,
                ),
                (
                    281474976710650,
                    "969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                    true,
                ),
                (
                    281474976710649,
                    "a5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
                    true,
                ),
                (
                    281474976710648,
                    "05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
                    false,
                ),
            ],
        ),
        (
            "insert_secret #5 incorrect",
            &[
                (
                    281474976710655,
                    "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                    true,
                ),
                (
                    281474976710654,
                    "c7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                    true,
                ),
                (
                    281474976710653,
                    "2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                    true,
                ),
                (
                    281474976710652,
                    "27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                    true,
                ),
                (
                    281474976710651,
                    "631373ad5f9ef654bb3dade742d09504c567edd24320d2fcd68e3cc47e2ff6a6",
                    true,
                ),
                (
                    281474976710650,
                    "969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                    false,
                ),
            ],
        ),
        (
            "insert_secret #6 incorrect (5 derived from incorrect)",
            &[
                (
                    281474976710655,
                    "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                    true,
                ),
                (
                    281474976710654,
                    "c7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                    true,
                ),
                (
                    281474976710653,
                    "2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                    true,
                ),
                (
                    281474976710652,
                    "27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                    true,
                ),
                (
                    281474976710651,
                    "631373ad5f9ef654bb3dade742d09504c567edd24320d2fcd68e3cc47e2ff6a6",
                    true,
                ),
                (
                    281474976710650,
                    "b7e76a83668bde38b373970155c868a653304308f9896692f904a23731224bb1",
                    true,
                ),
                (
                    281474976710649,
                    "a5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
                    true,
                ),
                (
                    281474976710648,
                    "05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
                    false,
                ),
            ],
        ),
        (
            "insert_secret #7 incorrect",
            &[
                (
                    281474976710655,
                    "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                    true,
                ),
                (
                    281474976710654,
                    "c7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                    true,
                ),
                (
                    281474976710653,
                    "2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                    true,
                ),
                (
                    281474976710652,
                    "27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                    true,
                ),
                (
                    281474976710651,
                    "c65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
                    true,
                ),
                (
                    281474976710650,
                    "969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                    true,
                ),
                (
                    281474976710649,
                    "e7971de736e01da8ed58b94c2fc216cb1dca9e326f3a96e7194fe8ea8af6c0a3",
                    true,
                ),
                (
                    281474976710648,
                    "05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
                    false,
                ),
            ],
        ),
        (
            "insert_secret #8 incorrect",
            &[
                (
                    281474976710655,
                    "7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                    true,
                ),
                (
                    281474976710654,
                    "c7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                    true,
                ),
                (
                    281474976710653,
                    "2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                    true,
                ),
                (
                    281474976710652,
                    "27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                    true,
                ),
                (
                    281474976710651,
                    "c65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
                    true,
                ),
                (
                    281474976710650,
                    "969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                    true,
                ),
                (
                    281474976710649,
                    "a5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
                    true,
                ),
                (
                    281474976710648,
                    "a7efbc61aac46d34f77778bac22c8a20c6a46ca460addc49009bda875ec88fa4",
                    false,
                ),
            ],
        ),
    ];

    #[test]
    fn bolt3_generation_vectors() {
        for (seed, index, expected) in GENERATION_VECTORS {
            assert_eq!(secret_from_seed(&h32(seed), *index).unwrap(), h32(expected), "I = {index}");
        }
        // The generator maps commitment 0 to the first index.
        let g = SecretGenerator::new([0xff; 32]);
        assert_eq!(*g.secret(0).unwrap(), h32(GENERATION_VECTORS[1].2));
    }

    #[test]
    fn bolt3_storage_vectors() {
        for (name, steps) in STORAGE_VECTORS {
            let mut store = SecretStore::new();
            for (index, secret, accepted) in *steps {
                let before = store.clone();
                let result = store.insert(*index, h32(secret));
                if *accepted {
                    assert_eq!(result, Ok(()), "{name}: I = {index}");
                    assert_eq!(store.get(*index), Ok(h32(secret)), "{name}");
                } else {
                    assert_eq!(result, Err(ShachainError::InconsistentSecret(*index)), "{name}");
                    assert_eq!(store, before, "{name}: a refused secret changes nothing");
                }
            }
            // Every vector ends with its one refusal, except the correct sequence.
            let refused = steps.iter().filter(|s| !s.2).count();
            assert_eq!(refused, usize::from(*name != "insert_secret correct sequence"), "{name}");
        }
        // The correct sequence is the 0xFF seed's chain: every old secret is derivable.
        let g = SecretGenerator::new([0xff; 32]);
        let mut store = SecretStore::new();
        for (index, secret, _) in STORAGE_VECTORS[0].1 {
            store.insert(*index, h32(secret)).unwrap();
        }
        for n in 0..8 {
            assert_eq!(store.get_commitment(n).unwrap(), *g.secret(n).unwrap());
        }
    }

    #[test]
    fn flip_matches_the_bolt_examples() {
        // "flip(0) in e3b0..." is "e2b0...", and "flip(10) in e3b0..." is "e3b4...".
        let mut v = [0u8; 32];
        v[0] = 0xe3;
        v[1] = 0xb0;
        let mut a = v;
        flip(&mut a, 0);
        assert_eq!(&a[..2], &[0xe2, 0xb0]);
        let mut b = v;
        flip(&mut b, 10);
        assert_eq!(&b[..2], &[0xe3, 0xb4]);
    }

    #[test]
    fn slots_count_trailing_zeros() {
        assert_eq!(slot_of(MAX_INDEX), 0);
        assert_eq!(slot_of(MAX_INDEX - 1), 1);
        assert_eq!(slot_of(0xFFFF_FFFF_FFF0), 4);
        assert_eq!(slot_of(1 << 47), 47);
        assert_eq!(slot_of(0), 48);
    }

    #[test]
    fn out_of_range_indices_are_refused() {
        assert_eq!(
            secret_from_seed(&[0; 32], 1 << 48),
            Err(ShachainError::IndexOutOfRange(1 << 48))
        );
        assert_eq!(index_of_commitment(MAX_INDEX), Ok(0));
        assert!(index_of_commitment(MAX_INDEX + 1).is_err());
        let mut s = SecretStore::new();
        assert_eq!(s.insert(1 << 48, [0; 32]), Err(ShachainError::IndexOutOfRange(1 << 48)));
        assert_eq!(s.get(u64::MAX), Err(ShachainError::IndexOutOfRange(u64::MAX)));
    }

    #[test]
    fn store_wants_consecutive_indices_and_recovers_every_old_secret() {
        let generator = SecretGenerator::new([7; 32]);
        let mut store = SecretStore::new();
        assert_eq!(store.get_commitment(0), Err(ShachainError::UnknownIndex(MAX_INDEX)));
        // Skipping commitment 0 is refused.
        let s1 = *generator.secret(1).unwrap();
        assert_eq!(
            store.insert_commitment(1, s1),
            Err(ShachainError::UnexpectedIndex { expected: MAX_INDEX, got: MAX_INDEX - 1 })
        );
        for n in 0..300u64 {
            store.insert_commitment(n, *generator.secret(n).unwrap()).unwrap();
            assert!(store.known.iter().flatten().count() <= STORE_SLOTS);
        }
        assert_eq!(store.len(), 300);
        for n in 0..300u64 {
            assert_eq!(store.get_commitment(n).unwrap(), *generator.secret(n).unwrap(), "n = {n}");
        }
        // A future secret is not derivable.
        assert_eq!(store.get_commitment(300), Err(ShachainError::UnknownIndex(MAX_INDEX - 300)));
        // At most log2(300) + 1 entries are in use.
        assert!(store.known.iter().flatten().count() <= 9);
        // A repeated index is refused.
        assert!(matches!(
            store.insert_commitment(299, *generator.secret(299).unwrap()),
            Err(ShachainError::UnexpectedIndex { .. })
        ));
    }

    #[test]
    fn store_round_trips_through_its_entries() {
        let generator = SecretGenerator::new([9; 32]);
        let mut store = SecretStore::new();
        assert_eq!(SecretStore::from_entries(0, &store.entries()), Ok(store.clone()));
        for n in 0..70u64 {
            store.insert_commitment(n, *generator.secret(n).unwrap()).unwrap();
            let copy = SecretStore::from_entries(store.len(), &store.entries()).unwrap();
            assert_eq!(copy, store, "n = {n}");
        }
        let mut copy = SecretStore::from_entries(store.len(), &store.entries()).unwrap();
        copy.insert_commitment(70, *generator.secret(70).unwrap()).unwrap();
        assert_eq!(copy.get_commitment(3).unwrap(), *generator.secret(3).unwrap());
        // A wrong count, a tampered secret or a missing newest entry is refused.
        let entries = store.entries();
        assert!(SecretStore::from_entries(store.len() + 1, &entries).is_err());
        let mut tampered = entries.clone();
        let newest = tampered.iter().position(|e| e.0 == MAX_INDEX - 69).unwrap();
        tampered.iter_mut().for_each(|e| {
            if e.0 != MAX_INDEX - 69 && e.0 & 1 == 1 {
                e.1[0] ^= 1;
            }
        });
        assert!(SecretStore::from_entries(store.len(), &tampered).is_err());
        let mut without_newest = entries.clone();
        without_newest.remove(newest);
        assert!(SecretStore::from_entries(store.len(), &without_newest).is_err());
        assert!(SecretStore::from_entries(0, &entries).is_err());
    }
}
