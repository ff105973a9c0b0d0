//! The persistence format of [`Channel`]: a version byte, then every field big-endian
//! (lengths and counts `u32`). Decoding is strict and checks what it can: keys are points,
//! the parameters are rebuilt and checked, every state conserves value, the secret store is
//! consistent, no bytes are left over.

use std::collections::BTreeMap;

use rnet_crypto::SigningKey;
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, Txid};

use super::channel::{
    Channel, Counterparty, LastSent, LocalChanges, LocalCommit, Negotiation, Phase, RemoteChanges,
    RemoteCommit, RemoteNext,
};
use super::config::ChannelConfig;
use super::error::StateError;
use super::updates::{AddedHtlc, Update};
use crate::channel::{
    ChannelKeys, ChannelParameters, ChannelPublicKeys, CommitmentSpec, FeeRate, HtlcDirection,
    HtlcSpec, PartyConfig, SecretGenerator, SecretStore, Side,
};
use crate::onion::PACKET_LEN;
use crate::wire::codec::{Put, Reader};
use crate::wire::{ChannelId, CommitmentSigned, SignatureBytes};

/// The version byte of [`Channel::encode`].
pub const STATE_VERSION: u8 = 1;

fn corrupt(what: &'static str) -> StateError {
    StateError::CorruptState(what)
}

fn put_var32(out: &mut Vec<u8>, bytes: &[u8]) {
    // Stored fields are far below 4 GiB (scripts, reasons ≤ 65535, one transaction).
    out.put_u32(bytes.len() as u32);
    out.put(bytes);
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    out.put_u32(n as u32);
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.put_u8(u8::from(b));
}

fn put_opt<T>(out: &mut Vec<u8>, v: &Option<T>, f: impl FnOnce(&mut Vec<u8>, &T)) {
    match v {
        None => out.put_u8(0),
        Some(x) => {
            out.put_u8(1);
            f(out, x);
        }
    }
}

fn put_keys(out: &mut Vec<u8>, k: &ChannelPublicKeys) {
    for key in [&k.funding, &k.revocation, &k.payment, &k.delayed_payment, &k.htlc] {
        out.put(key.as_bytes());
    }
}

fn put_spec(out: &mut Vec<u8>, s: &CommitmentSpec) {
    out.put_u64(s.commitment_number);
    out.put_u64(s.to_local_msat);
    out.put_u64(s.to_remote_msat);
    out.put_u64(s.feerate.0);
    put_count(out, s.htlcs.len());
    for h in &s.htlcs {
        out.put_u64(h.id);
        put_bool(out, h.direction == HtlcDirection::Received);
        out.put_u64(h.amount_msat);
        out.put(&h.payment_hash);
        out.put_u32(h.cltv_expiry);
    }
}

fn put_sigs(out: &mut Vec<u8>, sigs: &[SignatureBytes]) {
    put_count(out, sigs.len());
    for s in sigs {
        out.put(s);
    }
}

fn put_update(out: &mut Vec<u8>, u: &Update) {
    match u {
        Update::Add(a) => {
            out.put_u8(0);
            out.put_u64(a.id);
            out.put_u64(a.amount_msat);
            out.put(&a.payment_hash);
            out.put_u32(a.cltv_expiry);
            out.put(&a.onion[..]);
        }
        Update::Fulfill { id, preimage } => {
            out.put_u8(1);
            out.put_u64(*id);
            out.put(preimage);
        }
        Update::Fail { id, reason } => {
            out.put_u8(2);
            out.put_u64(*id);
            put_var32(out, reason);
        }
        Update::FailMalformed { id, sha256_of_onion, failure_code } => {
            out.put_u8(3);
            out.put_u64(*id);
            out.put(sha256_of_onion);
            out.put_u16(*failure_code);
        }
        Update::Fee(rate) => {
            out.put_u8(4);
            out.put_u64(rate.0);
        }
    }
}

fn put_updates(out: &mut Vec<u8>, list: &[Update]) {
    put_count(out, list.len());
    for u in list {
        put_update(out, u);
    }
}

fn phase_byte(p: Phase) -> u8 {
    match p {
        Phase::OpenSent => 0,
        Phase::AcceptSent => 1,
        Phase::AwaitingFundingOutpoint => 2,
        Phase::FundingCreatedSent => 3,
        Phase::AwaitingChannelReady => 4,
        Phase::Normal => 5,
        Phase::Negotiating => 6,
        Phase::Closed => 7,
    }
}

impl Channel {
    /// The whole state, secrets included (store it locally only): [`STATE_VERSION`] then the
    /// fields. [`Channel::decode`] restores it exactly.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![STATE_VERSION];
        let o = &mut out;
        o.put(self.genesis.as_bytes());
        let k = &self.keys;
        for key in [&k.funding, &k.revocation, &k.payment, &k.delayed_payment, &k.htlc] {
            o.put(key.as_bytes());
        }
        o.put(k.commitment_seed.seed());
        let c = &self.config;
        o.put_u64(c.dust_limit.0);
        o.put_u64(c.max_htlc_value_in_flight_msat);
        o.put_u16(c.channel_reserve_permille);
        o.put_u64(c.htlc_minimum_msat);
        o.put_u16(c.to_self_delay);
        o.put_u16(c.max_to_self_delay);
        o.put_u16(c.max_accepted_htlcs);
        o.put_u32(c.minimum_depth);
        o.put_u64(c.min_feerate.0);
        o.put_u64(c.max_feerate.0);
        o.put_u64(c.max_dust_htlc_exposure_msat);
        put_var32(o, &c.shutdown_script);

        put_bool(o, self.is_funder);
        o.put_u8(phase_byte(self.phase));
        o.put(&self.temporary_channel_id.0);
        o.put(&self.channel_id.0);
        o.put_u64(self.funding_amount.0);
        o.put_u64(self.push_msat);
        o.put_u64(self.initial_feerate.0);
        o.put_u8(self.channel_flags);
        o.put_u64(self.their_reserve.0);
        o.put_u32(self.minimum_depth);
        put_opt(o, &self.counterparty, |o, c| {
            put_keys(o, &c.keys);
            o.put_u64(c.dust_limit.0);
            o.put_u64(c.htlc_minimum_msat);
            o.put_u64(c.max_htlc_value_in_flight_msat);
            o.put_u16(c.max_accepted_htlcs);
            o.put_u16(c.to_self_delay);
            o.put_u64(c.channel_reserve.0);
            put_opt(o, &c.upfront_shutdown_script, |o, s| put_var32(o, s));
            o.put(c.first_per_commitment_point.as_bytes());
        });
        put_opt(o, &self.params.map(|p| p.funding_outpoint()), |o, op| {
            o.put(op.txid.as_bytes());
            o.put_u32(op.vout);
        });
        put_opt(o, &self.local_commit, |o, l| {
            put_spec(o, &l.spec);
            o.put(&l.counterparty_sig);
            put_sigs(o, &l.htlc_sigs);
        });
        put_opt(o, &self.remote_commit, |o, r| {
            put_spec(o, &r.spec);
            o.put(r.point.as_bytes());
        });
        put_opt(o, &self.remote_next, |o, n| {
            put_spec(o, &n.commit.spec);
            o.put(n.commit.point.as_bytes());
            o.put(&n.sent.signature);
            put_sigs(o, &n.sent.htlc_signatures);
        });
        put_opt(o, &self.remote_next_point, |o, p| o.put(p.as_bytes()));
        let lc = &self.local_changes;
        let rc = &self.remote_changes;
        for list in [&lc.proposed, &lc.signed, &lc.acked, &rc.proposed, &rc.acked, &rc.signed] {
            put_updates(o, list);
        }
        o.put_u64(self.next_local_htlc_id);
        o.put_u64(self.next_remote_htlc_id);
        put_count(o, self.incoming_onions.len());
        for (id, onion) in &self.incoming_onions {
            o.put_u64(*id);
            o.put(&onion[..]);
        }
        put_count(o, self.preimages.len());
        for (hash, preimage) in &self.preimages {
            o.put(hash);
            o.put(preimage);
        }
        o.put_u64(self.secrets.len());
        let entries = self.secrets.entries();
        put_count(o, entries.len());
        for (index, secret) in &entries {
            o.put_u64(*index);
            o.put(secret);
        }
        put_bool(o, self.ready_sent);
        put_bool(o, self.ready_received);
        put_bool(o, self.last_sent == LastSent::Commitment);
        put_bool(o, self.connected);
        put_opt(o, &self.local_shutdown, |o, s| put_var32(o, s));
        put_opt(o, &self.remote_shutdown, |o, s| put_var32(o, s));
        put_opt(o, &self.closing_feerate, |o, f| o.put_u64(f.0));
        put_opt(o, &self.negotiation.our_fee, |o, f| o.put_u64(f.0));
        put_opt(o, &self.negotiation.their_fee, |o, f| o.put_u64(f.0));
        put_opt(o, &self.closing_tx, |o, tx| put_var32(o, &tx.to_bytes()));
        out
    }

    /// Restores a state written by [`Channel::encode`]. Refuses an unknown version, truncated
    /// or left-over bytes, invalid keys, and states that are inconsistent.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader::new(bytes);
        let r = &mut r;
        let version = r.u8("version")?;
        if version != STATE_VERSION {
            return Err(StateError::UnsupportedVersion(version));
        }
        let genesis = BlockHash(r.array("genesis")?);
        let sk = |r: &mut Reader<'_>| Ok::<_, StateError>(SigningKey::from_bytes(&r.array("key")?));
        let keys = ChannelKeys {
            funding: sk(r)?,
            revocation: sk(r)?,
            payment: sk(r)?,
            delayed_payment: sk(r)?,
            htlc: sk(r)?,
            commitment_seed: SecretGenerator::new(r.array("commitment_seed")?),
        };
        let config = ChannelConfig {
            dust_limit: Amount(r.u64("dust_limit")?),
            max_htlc_value_in_flight_msat: r.u64("max_htlc_value_in_flight_msat")?,
            channel_reserve_permille: r.u16("channel_reserve_permille")?,
            htlc_minimum_msat: r.u64("htlc_minimum_msat")?,
            to_self_delay: r.u16("to_self_delay")?,
            max_to_self_delay: r.u16("max_to_self_delay")?,
            max_accepted_htlcs: r.u16("max_accepted_htlcs")?,
            minimum_depth: r.u32("minimum_depth")?,
            min_feerate: FeeRate(r.u64("min_feerate")?),
            max_feerate: FeeRate(r.u64("max_feerate")?),
            max_dust_htlc_exposure_msat: r.u64("max_dust_htlc_exposure_msat")?,
            shutdown_script: var32(r, "shutdown_script")?,
        };
        config.check()?;
        let is_funder = r.bool("is_funder")?;
        let phase = match r.u8("phase")? {
            0 => Phase::OpenSent,
            1 => Phase::AcceptSent,
            2 => Phase::AwaitingFundingOutpoint,
            3 => Phase::FundingCreatedSent,
            4 => Phase::AwaitingChannelReady,
            5 => Phase::Normal,
            6 => Phase::Negotiating,
            7 => Phase::Closed,
            _ => return Err(corrupt("phase")),
        };
        let temporary_channel_id = ChannelId(r.array("temporary_channel_id")?);
        let channel_id = ChannelId(r.array("channel_id")?);
        let funding_amount = Amount(r.u64("funding_amount")?);
        let push_msat = r.u64("push_msat")?;
        let initial_feerate = FeeRate(r.u64("initial_feerate")?);
        let channel_flags = r.u8("channel_flags")?;
        let their_reserve = Amount(r.u64("their_reserve")?);
        let minimum_depth = r.u32("minimum_depth")?;
        let counterparty = opt(r, |r| {
            Ok(Counterparty {
                keys: keys_from(r)?,
                dust_limit: Amount(r.u64("dust_limit")?),
                htlc_minimum_msat: r.u64("htlc_minimum_msat")?,
                max_htlc_value_in_flight_msat: r.u64("max_htlc_value_in_flight_msat")?,
                max_accepted_htlcs: r.u16("max_accepted_htlcs")?,
                to_self_delay: r.u16("to_self_delay")?,
                channel_reserve: Amount(r.u64("channel_reserve")?),
                upfront_shutdown_script: opt(r, |r| var32(r, "upfront_shutdown_script"))?,
                first_per_commitment_point: r.key("first_per_commitment_point")?,
            })
        })?;
        let outpoint = opt(r, |r| {
            Ok(OutPoint::new(Txid::from_bytes(r.array("funding_txid")?), r.u32("funding_vout")?))
        })?;
        let local_commit = opt(r, |r| {
            Ok(LocalCommit {
                spec: spec_from(r)?,
                counterparty_sig: r.array("counterparty_sig")?,
                htlc_sigs: sigs_from(r)?,
            })
        })?;
        let remote_commit =
            opt(r, |r| Ok(RemoteCommit { spec: spec_from(r)?, point: r.key("remote_point")? }))?;
        let remote_next = opt(r, |r| {
            let commit = RemoteCommit { spec: spec_from(r)?, point: r.key("remote_next_point")? };
            let signature = r.array("sent_signature")?;
            let htlc_signatures = sigs_from(r)?;
            Ok(RemoteNext {
                commit,
                sent: CommitmentSigned { channel_id, signature, htlc_signatures },
            })
        })?;
        let remote_next_point = opt(r, |r| Ok(r.key("remote_next_point")?))?;
        let local_changes = LocalChanges {
            proposed: updates_from(r)?,
            signed: updates_from(r)?,
            acked: updates_from(r)?,
        };
        let remote_changes = RemoteChanges {
            proposed: updates_from(r)?,
            acked: updates_from(r)?,
            signed: updates_from(r)?,
        };
        let next_local_htlc_id = r.u64("next_local_htlc_id")?;
        let next_remote_htlc_id = r.u64("next_remote_htlc_id")?;
        let mut incoming_onions = BTreeMap::new();
        for _ in 0..r.u32("onions")? {
            let id = r.u64("onion_id")?;
            let onion: Box<[u8; PACKET_LEN]> = Box::new(r.array("onion")?);
            if incoming_onions.insert(id, onion).is_some() {
                return Err(corrupt("duplicate onion"));
            }
        }
        let mut preimages = BTreeMap::new();
        for _ in 0..r.u32("preimages")? {
            let hash = r.array("payment_hash")?;
            if preimages.insert(hash, r.array("preimage")?).is_some() {
                return Err(corrupt("duplicate preimage"));
            }
        }
        let received = r.u64("secrets_received")?;
        let mut entries = Vec::new();
        for _ in 0..r.u32("secret_entries")? {
            entries.push((r.u64("secret_index")?, r.array("secret")?));
        }
        let secrets = SecretStore::from_entries(received, &entries)?;
        let ready_sent = r.bool("ready_sent")?;
        let ready_received = r.bool("ready_received")?;
        let last_sent = if r.bool("last_sent")? { LastSent::Commitment } else { LastSent::Revoke };
        let connected = r.bool("connected")?;
        let local_shutdown = opt(r, |r| var32(r, "local_shutdown"))?;
        let remote_shutdown = opt(r, |r| var32(r, "remote_shutdown"))?;
        let closing_feerate = opt(r, |r| Ok(FeeRate(r.u64("closing_feerate")?)))?;
        let our_fee = opt(r, |r| Ok(Amount(r.u64("our_fee")?)))?;
        let their_fee = opt(r, |r| Ok(Amount(r.u64("their_fee")?)))?;
        let closing_tx = opt(r, |r| {
            Transaction::from_bytes(&var32(r, "closing_tx")?).map_err(|_| corrupt("closing_tx"))
        })?;
        if r.remaining() != 0 {
            return Err(corrupt("trailing bytes"));
        }
        let mut channel = Self {
            genesis,
            keys,
            config,
            is_funder,
            phase,
            temporary_channel_id,
            channel_id,
            funding_amount,
            push_msat,
            initial_feerate,
            channel_flags,
            their_reserve,
            minimum_depth,
            counterparty,
            params: None,
            local_commit,
            remote_commit,
            remote_next,
            remote_next_point,
            local_changes,
            remote_changes,
            next_local_htlc_id,
            next_remote_htlc_id,
            incoming_onions,
            preimages,
            secrets,
            ready_sent,
            ready_received,
            last_sent,
            connected,
            local_shutdown,
            remote_shutdown,
            closing_feerate,
            negotiation: Negotiation { our_fee, their_fee },
            closing_tx,
        };
        if let Some(outpoint) = outpoint {
            channel.params = Some(channel.rebuild_params(outpoint)?);
        }
        channel.check_decoded()?;
        Ok(channel)
    }

    fn rebuild_params(&self, outpoint: OutPoint) -> Result<ChannelParameters, StateError> {
        let c = self.counterparty.as_ref().ok_or(corrupt("outpoint without counterparty"))?;
        let local = PartyConfig {
            keys: self.keys.public_keys(),
            dust_limit: self.config.dust_limit,
            to_self_delay: c.to_self_delay,
            channel_reserve: c.channel_reserve,
        };
        let remote = PartyConfig {
            keys: c.keys,
            dust_limit: c.dust_limit,
            to_self_delay: self.config.to_self_delay,
            channel_reserve: self.their_reserve,
        };
        let funder = if self.is_funder { Side::Local } else { Side::Remote };
        Ok(ChannelParameters::new(outpoint, self.funding_amount, local, remote, funder)?)
    }

    /// Consistency a decoded state must have.
    fn check_decoded(&self) -> Result<(), StateError> {
        if !self.funding_amount.is_valid_money()
            || u128::from(self.push_msat)
                > u128::from(self.funding_amount.0) * u128::from(crate::channel::MSAT_PER_RESONANCE)
        {
            return Err(corrupt("funding amount or push"));
        }
        let local_adds =
            [&self.local_changes.proposed, &self.local_changes.signed, &self.local_changes.acked]
                .iter()
                .flat_map(|l| l.iter())
                .filter(|u| matches!(u, Update::Add(_)))
                .count() as u64;
        let remote_adds = [
            &self.remote_changes.proposed,
            &self.remote_changes.acked,
            &self.remote_changes.signed,
        ]
        .iter()
        .flat_map(|l| l.iter())
        .filter(|u| matches!(u, Update::Add(_)))
        .count() as u64;
        if local_adds > self.next_local_htlc_id || remote_adds > self.next_remote_htlc_id {
            return Err(corrupt("HTLC id counters"));
        }
        let funded = !matches!(
            self.phase,
            Phase::OpenSent | Phase::AcceptSent | Phase::AwaitingFundingOutpoint
        );
        if funded != self.params.is_some() {
            return Err(corrupt("phase and funding outpoint disagree"));
        }
        let specs = self
            .local_commit
            .iter()
            .map(|c| &c.spec)
            .chain(self.remote_commit.iter().map(|c| &c.spec))
            .chain(self.remote_next.iter().map(|n| &n.commit.spec));
        for spec in specs {
            spec.check(self.funding_amount)?;
        }
        Ok(())
    }
}

fn var32(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u8>, StateError> {
    let len = r.u32(field)? as usize;
    Ok(r.take(len, field)?.to_vec())
}

fn opt<T>(
    r: &mut Reader<'_>,
    f: impl FnOnce(&mut Reader<'_>) -> Result<T, StateError>,
) -> Result<Option<T>, StateError> {
    match r.u8("option")? {
        0 => Ok(None),
        1 => f(r).map(Some),
        _ => Err(corrupt("option tag")),
    }
}

fn keys_from(r: &mut Reader<'_>) -> Result<ChannelPublicKeys, StateError> {
    Ok(ChannelPublicKeys {
        funding: r.key("funding")?,
        revocation: r.key("revocation")?,
        payment: r.key("payment")?,
        delayed_payment: r.key("delayed_payment")?,
        htlc: r.key("htlc")?,
    })
}

fn spec_from(r: &mut Reader<'_>) -> Result<CommitmentSpec, StateError> {
    let commitment_number = r.u64("commitment_number")?;
    let to_local_msat = r.u64("to_local_msat")?;
    let to_remote_msat = r.u64("to_remote_msat")?;
    let feerate = FeeRate(r.u64("feerate")?);
    let mut htlcs = Vec::new();
    for _ in 0..r.u32("htlcs")? {
        htlcs.push(HtlcSpec {
            id: r.u64("htlc_id")?,
            direction: if r.bool("direction")? {
                HtlcDirection::Received
            } else {
                HtlcDirection::Offered
            },
            amount_msat: r.u64("amount_msat")?,
            payment_hash: r.array("payment_hash")?,
            cltv_expiry: r.u32("cltv_expiry")?,
        });
    }
    Ok(CommitmentSpec { commitment_number, to_local_msat, to_remote_msat, feerate, htlcs })
}

fn sigs_from(r: &mut Reader<'_>) -> Result<Vec<SignatureBytes>, StateError> {
    let mut sigs = Vec::new();
    for _ in 0..r.u32("signatures")? {
        sigs.push(r.array("signature")?);
    }
    Ok(sigs)
}

fn updates_from(r: &mut Reader<'_>) -> Result<Vec<Update>, StateError> {
    let mut list = Vec::new();
    for _ in 0..r.u32("updates")? {
        let u = match r.u8("update_tag")? {
            0 => Update::Add(AddedHtlc {
                id: r.u64("id")?,
                amount_msat: r.u64("amount_msat")?,
                payment_hash: r.array("payment_hash")?,
                cltv_expiry: r.u32("cltv_expiry")?,
                onion: Box::new(r.array("onion")?),
            }),
            1 => Update::Fulfill { id: r.u64("id")?, preimage: r.array("preimage")? },
            2 => Update::Fail { id: r.u64("id")?, reason: var32(r, "reason")? },
            3 => Update::FailMalformed {
                id: r.u64("id")?,
                sha256_of_onion: r.array("sha256_of_onion")?,
                failure_code: r.u16("failure_code")?,
            },
            4 => Update::Fee(FeeRate(r.u64("feerate")?)),
            _ => return Err(corrupt("update tag")),
        };
        list.push(u);
    }
    Ok(list)
}
