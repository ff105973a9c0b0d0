//! Channel keys: each party's static basepoints, its per-commitment secrets and points, and the
//! keys one commitment transaction uses.
//!
//! BOLT 3 tweaks every key per commitment with secp256k1 point addition. Ed25519 keys as
//! `rnet-crypto` exposes them are RFC 8032 seeds (the scalar is a hash of the seed), which have
//! no additive tweak, so this layer does not tweak keys. Instead:
//!
//! - the payment, delayed-payment, HTLC and funding keys are **static** for the channel (as
//!   BOLT's `option_static_remotekey` already does for `to_remote`);
//! - the per-commitment secret of commitment `n` (BOLT 3's shachain, [`super::shachain`]) is
//!   used directly as an Ed25519 seed; its public key is the **per-commitment point**;
//! - the revocation path of a holder's outputs is a **2-of-2** of the counterparty's revocation
//!   key and the holder's per-commitment point of that state. Revoking a state reveals its
//!   per-commitment secret, and only then does the counterparty hold both keys.
//!
//! `docs/lightning.md` §1 states why this is sound and what privacy it costs.

use rnet_crypto::{PublicKey, SigningKey};
use rnet_script::TemplateError;
use zeroize::Zeroizing;

use super::error::ChannelError;
use super::shachain::{SecretGenerator, ShachainError};

/// One party's public channel keys, sent when the channel is opened and fixed for its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelPublicKeys {
    /// The party's key in the funding 2-of-2.
    pub funding: PublicKey,
    /// The revocation key: with the other party's revealed per-commitment secret, it spends the
    /// revocation path of that party's revoked commitment.
    pub revocation: PublicKey,
    /// The key the party is paid to on the other party's commitment (`to_remote`).
    pub payment: PublicKey,
    /// The key of the party's own delayed outputs (`to_local`, second-stage HTLC outputs).
    pub delayed_payment: PublicKey,
    /// The party's key in HTLC scripts.
    pub htlc: PublicKey,
}

impl ChannelPublicKeys {
    /// Refuses weak keys (small order or non-canonical encoding: anyone can sign for them, and
    /// relay policy fails signatures under them).
    pub fn check(&self) -> Result<(), ChannelError> {
        let keys =
            [&self.funding, &self.revocation, &self.payment, &self.delayed_payment, &self.htlc];
        if keys.into_iter().any(PublicKey::is_weak) {
            return Err(TemplateError::WeakKey.into());
        }
        Ok(())
    }
}

/// One party's secret channel keys and per-commitment seed. The signing keys and the seed are
/// zeroized on drop.
#[derive(Debug, Clone)]
pub struct ChannelKeys {
    /// Funding key.
    pub funding: SigningKey,
    /// Revocation key.
    pub revocation: SigningKey,
    /// Payment key.
    pub payment: SigningKey,
    /// Delayed-payment key.
    pub delayed_payment: SigningKey,
    /// HTLC key.
    pub htlc: SigningKey,
    /// The shachain seed of the party's per-commitment secrets (never revealed).
    pub commitment_seed: SecretGenerator,
}

impl ChannelKeys {
    /// The public keys to announce to the counterparty.
    pub fn public_keys(&self) -> ChannelPublicKeys {
        ChannelPublicKeys {
            funding: self.funding.public_key(),
            revocation: self.revocation.public_key(),
            payment: self.payment.public_key(),
            delayed_payment: self.delayed_payment.public_key(),
            htlc: self.htlc.public_key(),
        }
    }

    /// The per-commitment secret of commitment `n` (revealed to revoke that state).
    pub fn per_commitment_secret(
        &self,
        commitment_number: u64,
    ) -> Result<Zeroizing<[u8; 32]>, ShachainError> {
        self.commitment_seed.secret(commitment_number)
    }

    /// The per-commitment point of commitment `n` (sent before the state is signed).
    pub fn per_commitment_point(&self, commitment_number: u64) -> Result<PublicKey, ShachainError> {
        Ok(per_commitment_point(&*self.per_commitment_secret(commitment_number)?))
    }
}

/// The signing key of a per-commitment secret: the secret is the Ed25519 seed.
pub fn per_commitment_key(secret: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(secret)
}

/// The per-commitment point of a per-commitment secret.
pub fn per_commitment_point(secret: &[u8; 32]) -> PublicKey {
    per_commitment_key(secret).public_key()
}

/// Checks a revealed per-commitment secret against the point it was announced with, and
/// returns its signing key.
pub fn check_per_commitment_secret(
    secret: &[u8; 32],
    point: &PublicKey,
) -> Result<SigningKey, ChannelError> {
    let key = per_commitment_key(secret);
    if key.public_key().as_bytes() != point.as_bytes() {
        return Err(ChannelError::SecretMismatch);
    }
    Ok(key)
}

/// The keys of one commitment transaction, seen from its holder (the party that can broadcast
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitmentKeys {
    /// The holder's per-commitment point of this state.
    pub per_commitment_point: PublicKey,
    /// The counterparty's revocation key (the other half of the revocation 2-of-2).
    pub revocation: PublicKey,
    /// The holder's delayed-payment key.
    pub holder_delayed: PublicKey,
    /// The holder's HTLC key.
    pub holder_htlc: PublicKey,
    /// The counterparty's HTLC key.
    pub counterparty_htlc: PublicKey,
    /// The counterparty's payment key (`to_remote`).
    pub counterparty_payment: PublicKey,
    /// The holder's funding key.
    pub holder_funding: PublicKey,
    /// The counterparty's funding key.
    pub counterparty_funding: PublicKey,
}

impl CommitmentKeys {
    /// The keys of the holder's commitment with per-commitment point `point`; refuses weak keys.
    pub fn new(
        holder: &ChannelPublicKeys,
        counterparty: &ChannelPublicKeys,
        per_commitment_point: PublicKey,
    ) -> Result<Self, ChannelError> {
        holder.check()?;
        counterparty.check()?;
        if per_commitment_point.is_weak() {
            return Err(TemplateError::WeakKey.into());
        }
        Ok(Self {
            per_commitment_point,
            revocation: counterparty.revocation,
            holder_delayed: holder.delayed_payment,
            holder_htlc: holder.htlc,
            counterparty_htlc: counterparty.htlc,
            counterparty_payment: counterparty.payment,
            holder_funding: holder.funding,
            counterparty_funding: counterparty.funding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revealed_secret_is_checked_against_its_point() {
        let keys = ChannelKeys {
            funding: SigningKey::from_bytes(&[1; 32]),
            revocation: SigningKey::from_bytes(&[2; 32]),
            payment: SigningKey::from_bytes(&[3; 32]),
            delayed_payment: SigningKey::from_bytes(&[4; 32]),
            htlc: SigningKey::from_bytes(&[5; 32]),
            commitment_seed: SecretGenerator::new([9; 32]),
        };
        let point = keys.per_commitment_point(3).unwrap();
        let secret = keys.per_commitment_secret(3).unwrap();
        let key = check_per_commitment_secret(&secret, &point).unwrap();
        assert_eq!(key.public_key(), point);
        let other = keys.per_commitment_secret(4).unwrap();
        assert!(matches!(
            check_per_commitment_secret(&other, &point),
            Err(ChannelError::SecretMismatch)
        ));
        // Every state has its own point.
        assert_ne!(keys.per_commitment_point(4).unwrap(), point);
    }
}
