//! The channel of one node: opening, funding, `channel_ready`, and the update / commit /
//! revoke cycle of normal operation.

use std::collections::BTreeMap;

use rnet_crypto::PublicKey;
use rnet_primitives::{Amount, BlockHash, OutPoint, Transaction, TxOut};
use rnet_script::templates::Htlc;

use super::config::ChannelConfig;
use super::error::StateError;
use super::updates::{AddedHtlc, Update, reduce};
use crate::channel::commitment::{MAX_HTLCS_PER_DIRECTION, commitment_base_fee, is_trimmed};
use crate::channel::keys::check_per_commitment_secret;
use crate::channel::{
    ChannelError, ChannelKeys, ChannelParameters, ChannelPublicKeys, CommitmentSpec,
    CommitmentTransaction, FeeRate, HtlcDirection, HtlcSpec, HtlcTransaction, MIN_DUST_LIMIT,
    MSAT_PER_RESONANCE, PartyConfig, SecretStore, Side, build_commitment, check_reserves,
    funding_output, htlc_transactions,
};
use crate::onion::PACKET_LEN;
use crate::wire::{
    AcceptChannel, BADONION, ChannelId, ChannelReady, CommitmentSigned, FundingCreated,
    FundingSigned, Message, OpenChannel, RevokeAndAck, SignatureBytes, UpdateAddHtlc,
    UpdateFailHtlc, UpdateFailMalformedHtlc, UpdateFee, UpdateFulfillHtlc,
};

/// Where a channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Funder: `open_channel` sent, waiting for `accept_channel`.
    OpenSent,
    /// Fundee: `accept_channel` sent, waiting for `funding_created`.
    AcceptSent,
    /// Funder: parameters agreed; the caller builds the funding transaction and calls
    /// [`Channel::funding_created`].
    AwaitingFundingOutpoint,
    /// Funder: `funding_created` sent, waiting for `funding_signed`.
    FundingCreatedSent,
    /// Both first commitments signed; waiting for confirmations and `channel_ready`.
    AwaitingChannelReady,
    /// Normal operation (also while `shutdown` is being exchanged and HTLCs drain).
    Normal,
    /// `closing_signed` negotiation.
    Negotiating,
    /// The closing transaction is agreed and fully signed.
    Closed,
}

/// What the funder chooses when opening a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRequest {
    /// A random id for the channel until the funding outpoint is known (the caller draws it).
    pub temporary_channel_id: ChannelId,
    /// The channel's value.
    pub funding_amount: Amount,
    /// Given to the fundee at once, msat.
    pub push_msat: u64,
    /// Fee rate of the first commitments.
    pub feerate: FeeRate,
    /// `channel_flags` bit 0: announce the channel.
    pub announce: bool,
}

/// An HTLC failure as the counterparty reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HtlcFailure {
    /// `update_fail_htlc`: an error onion for the origin.
    Reason(Vec<u8>),
    /// `update_fail_malformed_htlc`.
    Malformed {
        /// SHA-256 of the onion the next hop could not parse.
        sha256_of_onion: [u8; 32],
        /// The `BADONION` failure code.
        failure_code: u16,
    },
}

/// Something the caller must act on, produced by a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Funder: `funding_signed` is valid; after persisting, broadcast the funding transaction.
    FundingSigned,
    /// Both `channel_ready` are exchanged: the channel is usable.
    ChannelReady,
    /// An HTLC the counterparty offered is irrevocably committed: forward it or claim it.
    HtlcReceived {
        /// The HTLC (direction `Received`).
        htlc: HtlcSpec,
        /// Its onion.
        onion: Box<[u8; PACKET_LEN]>,
    },
    /// The counterparty fulfilled an HTLC we offered: the preimage can be used upstream at once.
    HtlcFulfilled {
        /// Our HTLC id.
        id: u64,
        /// Its payment hash.
        payment_hash: [u8; 32],
        /// The preimage.
        preimage: [u8; 32],
    },
    /// The counterparty's failure of an HTLC we offered is irrevocably committed.
    HtlcFailed {
        /// Our HTLC id.
        id: u64,
        /// Its payment hash.
        payment_hash: [u8; 32],
        /// The failure.
        failure: HtlcFailure,
    },
    /// The counterparty revoked one of its commitments: with this state and secret (and
    /// [`Channel::parameters`]) the revoked transaction is rebuilt with
    /// `build_commitment(params, Side::Remote, &spec, &pub(secret))` and punished with
    /// `penalty_inputs` if it is ever broadcast. Archive it (or hand it to a watchtower).
    CounterpartyRevoked {
        /// The revoked state (local view).
        spec: CommitmentSpec,
        /// Its per-commitment secret.
        per_commitment_secret: [u8; 32],
    },
    /// The counterparty sent `shutdown`; if we had uncommitted updates, commit them and call
    /// [`Channel::send_shutdown`].
    ShutdownReceived,
    /// The channel is closed cooperatively: broadcast this transaction.
    ChannelClosed(Transaction),
    /// The counterparty sent a `warning`.
    Warning(Vec<u8>),
}

/// What handling a message produced: messages to send (after persisting the channel) and
/// events for the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Messages to send, in order.
    pub messages: Vec<Message>,
    /// Events, in order.
    pub events: Vec<Event>,
}

/// The counterparty's parameters from `open_channel` / `accept_channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counterparty {
    pub(crate) keys: ChannelPublicKeys,
    pub(crate) dust_limit: Amount,
    /// Limits it imposes on HTLCs we offer.
    pub(crate) htlc_minimum_msat: u64,
    pub(crate) max_htlc_value_in_flight_msat: u64,
    pub(crate) max_accepted_htlcs: u16,
    /// Delay on our outputs, chosen by it.
    pub(crate) to_self_delay: u16,
    /// Reserve we must keep, chosen by it.
    pub(crate) channel_reserve: Amount,
    pub(crate) upfront_shutdown_script: Option<Vec<u8>>,
    pub(crate) first_per_commitment_point: PublicKey,
}

/// Our latest commitment and the counterparty's signatures of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalCommit {
    pub(crate) spec: CommitmentSpec,
    pub(crate) counterparty_sig: SignatureBytes,
    pub(crate) htlc_sigs: Vec<SignatureBytes>,
}

/// A commitment of the counterparty we signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteCommit {
    pub(crate) spec: CommitmentSpec,
    pub(crate) point: PublicKey,
}

/// Our `commitment_signed` waiting for the counterparty's `revoke_and_ack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteNext {
    pub(crate) commit: RemoteCommit,
    pub(crate) sent: CommitmentSigned,
}

/// Which of `commitment_signed` and `revoke_and_ack` we sent last (their order on
/// retransmission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastSent {
    Commitment,
    Revoke,
}

/// Our updates: `proposed` (sent, not yet signed), `signed` (in our outstanding
/// `commitment_signed`), `acked` (the counterparty revoked; not yet in our commitment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LocalChanges {
    pub(crate) proposed: Vec<Update>,
    pub(crate) signed: Vec<Update>,
    pub(crate) acked: Vec<Update>,
}

/// The counterparty's updates: `proposed` (received, not in our commitment), `acked` (in our
/// commitment, which we revoked the predecessor of; not yet in theirs), `signed` (in our
/// outstanding `commitment_signed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RemoteChanges {
    pub(crate) proposed: Vec<Update>,
    pub(crate) acked: Vec<Update>,
    pub(crate) signed: Vec<Update>,
}

/// Closing fee negotiation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Negotiation {
    pub(crate) our_fee: Option<Amount>,
    pub(crate) their_fee: Option<Amount>,
}

/// One node's side of a payment channel: a deterministic state machine driven by peer
/// messages ([`Channel::handle_message`]) and local actions (`send_*`), with no I/O.
/// Persist [`Channel::encode`] after every call that returns `Ok`, before sending the messages
/// it produced.
#[derive(Debug, Clone)]
pub struct Channel {
    pub(crate) genesis: BlockHash,
    pub(crate) keys: ChannelKeys,
    pub(crate) config: ChannelConfig,
    pub(crate) is_funder: bool,
    pub(crate) phase: Phase,
    pub(crate) temporary_channel_id: ChannelId,
    pub(crate) channel_id: ChannelId,
    pub(crate) funding_amount: Amount,
    pub(crate) push_msat: u64,
    pub(crate) initial_feerate: FeeRate,
    pub(crate) channel_flags: u8,
    /// The reserve we require of the counterparty.
    pub(crate) their_reserve: Amount,
    pub(crate) minimum_depth: u32,
    pub(crate) counterparty: Option<Counterparty>,
    pub(crate) params: Option<ChannelParameters>,
    pub(crate) local_commit: Option<LocalCommit>,
    pub(crate) remote_commit: Option<RemoteCommit>,
    pub(crate) remote_next: Option<RemoteNext>,
    pub(crate) remote_next_point: Option<PublicKey>,
    pub(crate) local_changes: LocalChanges,
    pub(crate) remote_changes: RemoteChanges,
    pub(crate) next_local_htlc_id: u64,
    pub(crate) next_remote_htlc_id: u64,
    pub(crate) incoming_onions: BTreeMap<u64, Box<[u8; PACKET_LEN]>>,
    pub(crate) preimages: BTreeMap<[u8; 32], [u8; 32]>,
    pub(crate) secrets: SecretStore,
    pub(crate) ready_sent: bool,
    pub(crate) ready_received: bool,
    pub(crate) last_sent: LastSent,
    pub(crate) connected: bool,
    pub(crate) local_shutdown: Option<Vec<u8>>,
    pub(crate) remote_shutdown: Option<Vec<u8>>,
    pub(crate) closing_feerate: Option<FeeRate>,
    pub(crate) negotiation: Negotiation,
    pub(crate) closing_tx: Option<Transaction>,
}

/// The latest holder commitment, ready to broadcast, with its HTLC transactions.
#[derive(Debug, Clone)]
pub struct HolderCommitment {
    /// The commitment with both funding signatures.
    pub tx: Transaction,
    /// Its description (outputs, keys, fee).
    pub commitment: CommitmentTransaction,
    /// Each HTLC transaction with the counterparty's signature (ours and, for success, the
    /// preimage are added with [`HtlcTransaction::finalize`]).
    pub htlc_txs: Vec<(HtlcTransaction, Vec<u8>)>,
}

/// The failure event of our HTLC `id`, whose hash is found in the counterparty's commitment
/// just revoked (the last one that still had it).
fn failed_event(revoked: &Option<RemoteCommit>, id: u64, failure: HtlcFailure) -> Event {
    let payment_hash = revoked
        .iter()
        .flat_map(|c| &c.spec.htlcs)
        .find(|h| h.id == id && h.direction == HtlcDirection::Offered)
        .map(|h| h.payment_hash)
        .unwrap_or_default();
    Event::HtlcFailed { id, payment_hash, failure }
}

fn sig64(sig: Vec<u8>) -> Result<SignatureBytes, StateError> {
    sig.try_into().map_err(|_| StateError::Channel(ChannelError::InvalidSignature))
}

fn unacceptable(field: &'static str, reason: &'static str) -> StateError {
    StateError::UnacceptableParameter { field, reason }
}

fn feerate_u32(feerate: FeeRate) -> Result<u32, StateError> {
    u32::try_from(feerate.0).map_err(|_| StateError::FeerateOutOfRange(feerate))
}

/// Checks of the counterparty's `open_channel` / `accept_channel` fields common to both.
fn check_counterparty(
    config: &ChannelConfig,
    ours: &ChannelPublicKeys,
    c: &Counterparty,
    funding: Amount,
) -> Result<(), StateError> {
    c.keys.check()?;
    if c.first_per_commitment_point.is_weak() {
        return Err(unacceptable("first_per_commitment_point", "weak key"));
    }
    if c.keys.funding == ours.funding {
        return Err(ChannelError::DuplicateFundingKey.into());
    }
    if c.dust_limit < MIN_DUST_LIMIT {
        return Err(unacceptable("dust_limit", "below the relay dust threshold"));
    }
    if c.channel_reserve > funding {
        return Err(unacceptable("channel_reserve", "larger than the channel"));
    }
    if c.to_self_delay == 0 || c.to_self_delay > config.max_to_self_delay {
        return Err(unacceptable("to_self_delay", "zero or above our maximum"));
    }
    if c.max_accepted_htlcs == 0 || usize::from(c.max_accepted_htlcs) > MAX_HTLCS_PER_DIRECTION {
        return Err(unacceptable("max_accepted_htlcs", "must be 1 ..= 483"));
    }
    if c.htlc_minimum_msat == 0 {
        return Err(unacceptable("htlc_minimum_msat", "zero"));
    }
    if let Some(script) = &c.upfront_shutdown_script
        && crate::channel::sweep::check_destination(script).is_err()
    {
        return Err(StateError::InvalidShutdownScript);
    }
    Ok(())
}

impl Channel {
    /// Funder: a new channel and the `open_channel` to send.
    pub fn new_outbound(
        keys: ChannelKeys,
        genesis: BlockHash,
        config: ChannelConfig,
        request: OpenRequest,
    ) -> Result<(Self, OpenChannel), StateError> {
        config.check()?;
        keys.public_keys().check()?;
        let funding = request.funding_amount;
        if funding.0 == 0 || !funding.is_valid_money() {
            return Err(ChannelError::InvalidFundingAmount(funding).into());
        }
        if u128::from(request.push_msat) > u128::from(funding.0) * u128::from(MSAT_PER_RESONANCE) {
            return Err(unacceptable("push_msat", "larger than the channel"));
        }
        let feerate_per_kb = feerate_u32(request.feerate)?;
        let their_reserve = config.reserve_for(funding, &[config.dust_limit]);
        let channel_flags = u8::from(request.announce);
        let msg = OpenChannel {
            chain_hash: genesis,
            temporary_channel_id: request.temporary_channel_id,
            funding_amount: funding,
            push_msat: request.push_msat,
            dust_limit: config.dust_limit,
            max_htlc_value_in_flight_msat: config.max_htlc_value_in_flight_msat,
            channel_reserve: their_reserve,
            htlc_minimum_msat: config.htlc_minimum_msat,
            feerate_per_kb,
            to_self_delay: config.to_self_delay,
            max_accepted_htlcs: config.max_accepted_htlcs,
            keys: keys.public_keys(),
            first_per_commitment_point: keys.per_commitment_point(0)?,
            channel_flags,
            upfront_shutdown_script: None,
        };
        let minimum_depth = config.minimum_depth;
        let channel = Self::blank(
            keys,
            genesis,
            config,
            true,
            request.temporary_channel_id,
            funding,
            request.push_msat,
            request.feerate,
            channel_flags,
            their_reserve,
            minimum_depth,
            Phase::OpenSent,
        );
        Ok((channel, msg))
    }

    /// Fundee: checks `open_channel` (BOLT 2's receiver rules and our configuration) and
    /// returns the new channel and the `accept_channel` to send.
    pub fn new_inbound(
        keys: ChannelKeys,
        genesis: BlockHash,
        config: ChannelConfig,
        open: &OpenChannel,
    ) -> Result<(Self, AcceptChannel), StateError> {
        config.check()?;
        keys.public_keys().check()?;
        if open.chain_hash != genesis {
            return Err(StateError::WrongChain(open.chain_hash));
        }
        let funding = open.funding_amount;
        if funding.0 == 0 || !funding.is_valid_money() {
            return Err(ChannelError::InvalidFundingAmount(funding).into());
        }
        if u128::from(open.push_msat) > u128::from(funding.0) * u128::from(MSAT_PER_RESONANCE) {
            return Err(unacceptable("push_msat", "larger than the channel"));
        }
        let feerate = FeeRate(u64::from(open.feerate_per_kb));
        if !config.accepts_feerate(feerate) {
            return Err(StateError::FeerateOutOfRange(feerate));
        }
        if open.channel_reserve < open.dust_limit {
            return Err(unacceptable("channel_reserve", "below the sender's dust limit"));
        }
        if config.dust_limit > open.channel_reserve {
            return Err(unacceptable("channel_reserve", "below our dust limit"));
        }
        let counterparty = Counterparty {
            keys: open.keys,
            dust_limit: open.dust_limit,
            htlc_minimum_msat: open.htlc_minimum_msat,
            max_htlc_value_in_flight_msat: open.max_htlc_value_in_flight_msat,
            max_accepted_htlcs: open.max_accepted_htlcs,
            to_self_delay: open.to_self_delay,
            channel_reserve: open.channel_reserve,
            upfront_shutdown_script: open.upfront_shutdown_script.clone(),
            first_per_commitment_point: open.first_per_commitment_point,
        };
        check_counterparty(&config, &keys.public_keys(), &counterparty, funding)?;
        let their_reserve = config.reserve_for(funding, &[config.dust_limit, open.dust_limit]);
        let mut channel = Self::blank(
            keys,
            genesis,
            config,
            false,
            open.temporary_channel_id,
            funding,
            open.push_msat,
            feerate,
            open.channel_flags,
            their_reserve,
            0,
            Phase::AcceptSent,
        );
        channel.minimum_depth = channel.config.minimum_depth;
        channel.counterparty = Some(counterparty);
        channel.check_initial_state()?;
        let msg = AcceptChannel {
            temporary_channel_id: open.temporary_channel_id,
            dust_limit: channel.config.dust_limit,
            max_htlc_value_in_flight_msat: channel.config.max_htlc_value_in_flight_msat,
            channel_reserve: their_reserve,
            htlc_minimum_msat: channel.config.htlc_minimum_msat,
            minimum_depth: channel.minimum_depth,
            to_self_delay: channel.config.to_self_delay,
            max_accepted_htlcs: channel.config.max_accepted_htlcs,
            keys: channel.keys.public_keys(),
            first_per_commitment_point: channel.keys.per_commitment_point(0)?,
            upfront_shutdown_script: None,
        };
        Ok((channel, msg))
    }

    #[allow(clippy::too_many_arguments)]
    fn blank(
        keys: ChannelKeys,
        genesis: BlockHash,
        config: ChannelConfig,
        is_funder: bool,
        temporary_channel_id: ChannelId,
        funding_amount: Amount,
        push_msat: u64,
        initial_feerate: FeeRate,
        channel_flags: u8,
        their_reserve: Amount,
        minimum_depth: u32,
        phase: Phase,
    ) -> Self {
        Self {
            genesis,
            keys,
            config,
            is_funder,
            phase,
            temporary_channel_id,
            channel_id: temporary_channel_id,
            funding_amount,
            push_msat,
            initial_feerate,
            channel_flags,
            their_reserve,
            minimum_depth,
            counterparty: None,
            params: None,
            local_commit: None,
            remote_commit: None,
            remote_next: None,
            remote_next_point: None,
            local_changes: LocalChanges::default(),
            remote_changes: RemoteChanges::default(),
            next_local_htlc_id: 0,
            next_remote_htlc_id: 0,
            incoming_onions: BTreeMap::new(),
            preimages: BTreeMap::new(),
            secrets: SecretStore::new(),
            ready_sent: false,
            ready_received: false,
            last_sent: LastSent::Revoke,
            connected: true,
            local_shutdown: None,
            remote_shutdown: None,
            closing_feerate: None,
            negotiation: Negotiation::default(),
            closing_tx: None,
        }
    }

    // ---- accessors ------------------------------------------------------------------------

    /// The channel id (the temporary id until the funding outpoint is known).
    pub fn channel_id(&self) -> ChannelId {
        self.channel_id
    }

    /// The funder's temporary channel id.
    pub fn temporary_channel_id(&self) -> ChannelId {
        self.temporary_channel_id
    }

    /// Where the channel is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether this node funded the channel (and pays commitment and closing fees).
    pub fn is_funder(&self) -> bool {
        self.is_funder
    }

    /// The genesis block id every signature commits to.
    pub fn genesis(&self) -> BlockHash {
        self.genesis
    }

    /// Confirmations required before `channel_ready`.
    pub fn minimum_depth(&self) -> u32 {
        self.minimum_depth
    }

    /// The channel parameters, once the funding outpoint is known.
    pub fn parameters(&self) -> Option<&ChannelParameters> {
        self.params.as_ref()
    }

    /// The funding output the funding transaction must create (known once both parties'
    /// keys are).
    pub fn funding_output(&self) -> Result<TxOut, StateError> {
        let c = self.counterparty_ref("funding_output")?;
        Ok(funding_output(self.keys.funding.public_key(), c.keys.funding, self.funding_amount)?)
    }

    /// The state of our latest commitment (local view).
    pub fn local_commitment_spec(&self) -> Option<&CommitmentSpec> {
        self.local_commit.as_ref().map(|c| &c.spec)
    }

    /// The state of the counterparty's latest commitment we signed (local view): the one
    /// awaiting revocation if any, else its current one.
    pub fn remote_commitment_spec(&self) -> Option<&CommitmentSpec> {
        match &self.remote_next {
            Some(n) => Some(&n.commit.spec),
            None => self.remote_commit.as_ref().map(|c| &c.spec),
        }
    }

    /// The counterparty's per-commitment secrets revealed so far (for penalties).
    pub fn counterparty_secrets(&self) -> &SecretStore {
        &self.secrets
    }

    /// The per-commitment point of the counterparty's current (unrevoked) commitment.
    pub fn counterparty_current_point(&self) -> Option<PublicKey> {
        self.remote_commit.as_ref().map(|c| c.point)
    }

    /// A preimage we know for `payment_hash` (ours to claim, or learned from the
    /// counterparty), while its HTLC is on a commitment.
    pub fn preimage(&self, payment_hash: &[u8; 32]) -> Option<[u8; 32]> {
        self.preimages.get(payment_hash).copied()
    }

    /// The onion of an HTLC the counterparty offered, while it is pending.
    pub fn incoming_onion(&self, id: u64) -> Option<&[u8; PACKET_LEN]> {
        self.incoming_onions.get(&id).map(|b| &**b)
    }

    /// The id our next `update_add_htlc` will have.
    pub fn next_htlc_id(&self) -> u64 {
        self.next_local_htlc_id
    }

    /// The agreed closing transaction, once negotiated.
    pub fn closing_transaction(&self) -> Option<&Transaction> {
        self.closing_tx.as_ref()
    }

    /// Whether updates are waiting to be committed with [`Channel::send_commitment`] (ours not
    /// yet signed, or the counterparty's that we acknowledged but have not signed for it).
    pub fn has_pending_commit(&self) -> bool {
        !self.local_changes.proposed.is_empty() || !self.remote_changes.acked.is_empty()
    }

    /// Whether we wait for the counterparty's `revoke_and_ack`.
    pub fn awaiting_revocation(&self) -> bool {
        self.remote_next.is_some()
    }

    /// The latest holder commitment, unsigned: what each side could claim on chain if we
    /// closed unilaterally now ([`CommitmentTransaction::claims`]), without signing anything.
    pub fn holder_commitment_unsigned(&self) -> Result<CommitmentTransaction, StateError> {
        let params = self.params_ref("holder_commitment_unsigned")?;
        let local = self.local_commit.as_ref().ok_or(StateError::WrongPhase {
            what: "holder_commitment_unsigned",
            phase: self.phase,
        })?;
        let point = self.keys.per_commitment_point(local.spec.commitment_number)?;
        Ok(build_commitment(params, Side::Local, &local.spec, &point)?)
    }

    /// The latest holder commitment, fully signed, with its HTLC transactions: what to
    /// broadcast to close unilaterally.
    pub fn holder_commitment(&self) -> Result<HolderCommitment, StateError> {
        let params = self.params_ref("holder_commitment")?;
        let local = self
            .local_commit
            .as_ref()
            .ok_or(StateError::WrongPhase { what: "holder_commitment", phase: self.phase })?;
        let point = self.keys.per_commitment_point(local.spec.commitment_number)?;
        let commitment = build_commitment(params, Side::Local, &local.spec, &point)?;
        let ours = commitment.sign(&self.keys.funding, &self.genesis)?;
        let tx = commitment.finalize(ours, local.counterparty_sig.to_vec())?;
        let htlc_txs = htlc_transactions(&commitment)?
            .into_iter()
            .zip(local.htlc_sigs.iter().map(|s| s.to_vec()))
            .collect();
        Ok(HolderCommitment { tx, commitment, htlc_txs })
    }

    pub(crate) fn params_ref(&self, what: &'static str) -> Result<&ChannelParameters, StateError> {
        self.params.as_ref().ok_or(StateError::WrongPhase { what, phase: self.phase })
    }

    pub(crate) fn counterparty_ref(&self, what: &'static str) -> Result<&Counterparty, StateError> {
        self.counterparty.as_ref().ok_or(StateError::WrongPhase { what, phase: self.phase })
    }

    pub(crate) fn require_phase(&self, what: &'static str, ok: &[Phase]) -> Result<(), StateError> {
        if ok.contains(&self.phase) {
            Ok(())
        } else {
            Err(StateError::WrongPhase { what, phase: self.phase })
        }
    }

    fn check_channel_id(&self, id: ChannelId) -> Result<(), StateError> {
        if id != self.channel_id {
            return Err(StateError::WrongChannelId { expected: self.channel_id, got: id });
        }
        Ok(())
    }

    // ---- opening --------------------------------------------------------------------------

    /// The parameters with our and the counterparty's configs (`funder` from our side).
    fn make_params(&self, outpoint: OutPoint) -> Result<ChannelParameters, StateError> {
        let c = self.counterparty_ref("parameters")?;
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

    /// Commitment 0 (local view).
    fn initial_spec(&self) -> CommitmentSpec {
        let total = self.funding_amount.0 * MSAT_PER_RESONANCE;
        let funder = total - self.push_msat;
        let (to_local_msat, to_remote_msat) =
            if self.is_funder { (funder, self.push_msat) } else { (self.push_msat, funder) };
        CommitmentSpec {
            commitment_number: 0,
            to_local_msat,
            to_remote_msat,
            feerate: self.initial_feerate,
            htlcs: Vec::new(),
        }
    }

    /// BOLT 2: the funder affords the first commitments' fee and keeps its reserve, and at
    /// least one balance is above the reserve.
    fn check_initial_state(&self) -> Result<(), StateError> {
        let params = self.make_params(OutPoint::NULL)?;
        let spec = self.initial_spec();
        check_reserves(&params, None, &spec)?;
        let reserve_of = |side: Side| {
            u128::from(params.party(side).channel_reserve.0) * u128::from(MSAT_PER_RESONANCE)
        };
        if u128::from(spec.to_local_msat) <= reserve_of(Side::Local)
            && u128::from(spec.to_remote_msat) <= reserve_of(Side::Remote)
        {
            return Err(unacceptable("funding_amount", "both balances at or below the reserve"));
        }
        Ok(())
    }

    fn handle_accept_channel(&mut self, m: &AcceptChannel) -> Result<Outcome, StateError> {
        self.require_phase("accept_channel", &[Phase::OpenSent])?;
        self.check_channel_id(m.temporary_channel_id)?;
        if m.channel_reserve < self.config.dust_limit {
            return Err(unacceptable("channel_reserve", "below our dust limit"));
        }
        if m.dust_limit > self.their_reserve {
            return Err(unacceptable("dust_limit", "above the reserve we asked for"));
        }
        if m.minimum_depth > 2016 {
            return Err(unacceptable("minimum_depth", "above 2016 blocks"));
        }
        let counterparty = Counterparty {
            keys: m.keys,
            dust_limit: m.dust_limit,
            htlc_minimum_msat: m.htlc_minimum_msat,
            max_htlc_value_in_flight_msat: m.max_htlc_value_in_flight_msat,
            max_accepted_htlcs: m.max_accepted_htlcs,
            to_self_delay: m.to_self_delay,
            channel_reserve: m.channel_reserve,
            upfront_shutdown_script: m.upfront_shutdown_script.clone(),
            first_per_commitment_point: m.first_per_commitment_point,
        };
        check_counterparty(
            &self.config,
            &self.keys.public_keys(),
            &counterparty,
            self.funding_amount,
        )?;
        let mut next = self.clone();
        next.counterparty = Some(counterparty);
        next.check_initial_state()?;
        next.minimum_depth = self.config.minimum_depth.max(m.minimum_depth);
        next.phase = Phase::AwaitingFundingOutpoint;
        *self = next;
        Ok(Outcome::default())
    }

    /// Funder: the funding outpoint of the transaction the caller built (paying
    /// [`Channel::funding_output`]); signs the fundee's first commitment. Do not broadcast
    /// the funding transaction before [`Event::FundingSigned`].
    pub fn funding_created(&mut self, outpoint: OutPoint) -> Result<FundingCreated, StateError> {
        self.require_phase("funding_created", &[Phase::AwaitingFundingOutpoint])?;
        let funding_output_index = u16::try_from(outpoint.vout)
            .map_err(|_| unacceptable("funding_output_index", "exceeds 65535"))?;
        let params = self.make_params(outpoint)?;
        let point = self.counterparty_ref("funding_created")?.first_per_commitment_point;
        let spec = self.initial_spec();
        let theirs = build_commitment(&params, Side::Remote, &spec, &point)?;
        let signature = sig64(theirs.sign(&self.keys.funding, &self.genesis)?)?;
        self.channel_id = ChannelId::from_funding_outpoint(&outpoint)?;
        self.params = Some(params);
        self.remote_commit = Some(RemoteCommit { spec, point });
        self.phase = Phase::FundingCreatedSent;
        Ok(FundingCreated {
            temporary_channel_id: self.temporary_channel_id,
            funding_txid: outpoint.txid,
            funding_output_index,
            signature,
        })
    }

    /// Builds our commitment for `spec` and checks the counterparty's signatures of it and of
    /// its HTLC transactions.
    fn verify_local_commitment(
        &self,
        params: &ChannelParameters,
        spec: &CommitmentSpec,
        sig: &SignatureBytes,
        htlc_sigs: &[SignatureBytes],
    ) -> Result<(), StateError> {
        let point = self.keys.per_commitment_point(spec.commitment_number)?;
        let ours = build_commitment(params, Side::Local, spec, &point)?;
        ours.verify_counterparty_signature(sig, &self.genesis)
            .map_err(|_| StateError::InvalidCommitmentSignature)?;
        let htlc_txs = htlc_transactions(&ours)?;
        if htlc_txs.len() != htlc_sigs.len() {
            return Err(StateError::WrongHtlcSignatureCount {
                expected: htlc_txs.len(),
                got: htlc_sigs.len(),
            });
        }
        for (index, (tx, sig)) in htlc_txs.iter().zip(htlc_sigs).enumerate() {
            tx.verify_counterparty_signature(sig, &self.genesis)
                .map_err(|_| StateError::InvalidHtlcSignature { index })?;
        }
        Ok(())
    }

    /// Signs the counterparty's commitment for `spec` with `point`: the commitment signature
    /// and one signature per HTLC transaction, in output order.
    fn sign_remote_commitment(
        &self,
        params: &ChannelParameters,
        spec: &CommitmentSpec,
        point: &PublicKey,
    ) -> Result<(SignatureBytes, Vec<SignatureBytes>), StateError> {
        let theirs = build_commitment(params, Side::Remote, spec, point)?;
        let sig = sig64(theirs.sign(&self.keys.funding, &self.genesis)?)?;
        let htlc_sigs = htlc_transactions(&theirs)?
            .iter()
            .map(|tx| sig64(tx.sign(&self.keys.htlc, &self.genesis)?))
            .collect::<Result<_, _>>()?;
        Ok((sig, htlc_sigs))
    }

    fn handle_funding_created(&mut self, m: &FundingCreated) -> Result<Outcome, StateError> {
        self.require_phase("funding_created", &[Phase::AcceptSent])?;
        self.check_channel_id(m.temporary_channel_id)?;
        let outpoint = OutPoint::new(m.funding_txid, u32::from(m.funding_output_index));
        let params = self.make_params(outpoint)?;
        let spec = self.initial_spec();
        self.verify_local_commitment(&params, &spec, &m.signature, &[])?;
        let point = self.counterparty_ref("funding_created")?.first_per_commitment_point;
        let (signature, _) = self.sign_remote_commitment(&params, &spec, &point)?;
        self.channel_id = ChannelId::from_funding_outpoint(&outpoint)?;
        self.params = Some(params);
        self.local_commit = Some(LocalCommit {
            spec: spec.clone(),
            counterparty_sig: m.signature,
            htlc_sigs: vec![],
        });
        self.remote_commit = Some(RemoteCommit { spec, point });
        self.phase = Phase::AwaitingChannelReady;
        Ok(Outcome {
            messages: vec![Message::FundingSigned(FundingSigned {
                channel_id: self.channel_id,
                signature,
            })],
            events: vec![],
        })
    }

    fn handle_funding_signed(&mut self, m: &FundingSigned) -> Result<Outcome, StateError> {
        self.require_phase("funding_signed", &[Phase::FundingCreatedSent])?;
        self.check_channel_id(m.channel_id)?;
        let params = self.params_ref("funding_signed")?;
        let spec = self.initial_spec();
        self.verify_local_commitment(params, &spec, &m.signature, &[])?;
        self.local_commit =
            Some(LocalCommit { spec, counterparty_sig: m.signature, htlc_sigs: vec![] });
        self.phase = Phase::AwaitingChannelReady;
        Ok(Outcome { messages: vec![], events: vec![Event::FundingSigned] })
    }

    /// The funding transaction has `confirmations`: once it reaches the minimum depth the
    /// outcome carries our `channel_ready` (once), and [`Event::ChannelReady`] if the
    /// counterparty's already arrived.
    pub fn funding_depth(&mut self, confirmations: u32) -> Result<Outcome, StateError> {
        self.require_phase("funding_depth", &[Phase::AwaitingChannelReady, Phase::Normal])?;
        let mut out = Outcome::default();
        if self.ready_sent || confirmations < self.minimum_depth {
            return Ok(out);
        }
        let msg = self.channel_ready_msg()?;
        self.ready_sent = true;
        out.messages.push(Message::ChannelReady(msg));
        if self.ready_received {
            self.phase = Phase::Normal;
            out.events.push(Event::ChannelReady);
        }
        Ok(out)
    }

    pub(crate) fn channel_ready_msg(&self) -> Result<ChannelReady, StateError> {
        Ok(ChannelReady {
            channel_id: self.channel_id,
            next_per_commitment_point: self.keys.per_commitment_point(1)?,
        })
    }

    fn handle_channel_ready(&mut self, m: &ChannelReady) -> Result<Outcome, StateError> {
        self.require_phase("channel_ready", &[Phase::AwaitingChannelReady, Phase::Normal])?;
        self.check_channel_id(m.channel_id)?;
        if self.ready_received {
            // A retransmission after reconnecting: it must repeat the same point.
            if self.remote_next_point == Some(m.next_per_commitment_point) {
                return Ok(Outcome::default());
            }
            return Err(unacceptable("channel_ready", "a second, different next point"));
        }
        if m.next_per_commitment_point.is_weak() {
            return Err(unacceptable("next_per_commitment_point", "weak key"));
        }
        self.remote_next_point = Some(m.next_per_commitment_point);
        self.ready_received = true;
        let mut out = Outcome::default();
        if self.ready_sent {
            self.phase = Phase::Normal;
            out.events.push(Event::ChannelReady);
        }
        Ok(out)
    }

    // ---- normal operation -----------------------------------------------------------------

    fn require_normal(&self, what: &'static str) -> Result<(), StateError> {
        self.require_phase(what, &[Phase::Normal])?;
        if !self.connected {
            return Err(StateError::NotReestablished);
        }
        Ok(())
    }

    /// The two states every update is checked against: our next commitment and the
    /// counterparty's next one, each with every pending update applied, `extra` (ours or
    /// theirs) added at the end.
    fn projected(&self, extra: Option<(Side, &Update)>) -> Result<[CommitmentSpec; 2], StateError> {
        let local = self
            .local_commit
            .as_ref()
            .ok_or(StateError::WrongPhase { what: "update", phase: self.phase })?;
        let remote = match &self.remote_next {
            Some(n) => &n.commit,
            None => self
                .remote_commit
                .as_ref()
                .ok_or(StateError::WrongPhase { what: "update", phase: self.phase })?,
        };
        let lc = &self.local_changes;
        let rc = &self.remote_changes;
        let mut ours_l: Vec<Update> =
            lc.acked.iter().chain(&lc.signed).chain(&lc.proposed).cloned().collect();
        let mut theirs_l: Vec<Update> = rc.proposed.clone();
        let mut ours_r: Vec<Update> = lc.proposed.clone();
        let mut theirs_r: Vec<Update> = rc.acked.iter().chain(&rc.proposed).cloned().collect();
        match extra {
            Some((Side::Local, u)) => {
                ours_l.push(u.clone());
                ours_r.push(u.clone());
            }
            Some((Side::Remote, u)) => {
                theirs_l.push(u.clone());
                theirs_r.push(u.clone());
            }
            None => {}
        }
        let l = reduce(&local.spec, &ours_l, &theirs_l, local.spec.commitment_number + 1)?;
        let r = reduce(&remote.spec, &ours_r, &theirs_r, remote.spec.commitment_number + 1)?;
        Ok([l, r])
    }

    /// The reserve, fee and HTLC-limit checks of BOLT 2 for an update by `by`, on both
    /// projected commitments.
    fn check_update(&self, by: Side, update: &Update) -> Result<(), StateError> {
        let params = self.params_ref("update")?;
        let c = self.counterparty_ref("update")?;
        let before = self.projected(None)?;
        let after = self.projected(Some((by, update)))?;
        for (b, a) in before.iter().zip(&after) {
            check_reserves(params, Some(b), a)?;
        }
        if !matches!(update, Update::Add(_)) {
            return Ok(());
        }
        let (direction, max_count, max_value) = match by {
            Side::Local => {
                (HtlcDirection::Offered, c.max_accepted_htlcs, c.max_htlc_value_in_flight_msat)
            }
            Side::Remote => (
                HtlcDirection::Received,
                self.config.max_accepted_htlcs,
                self.config.max_htlc_value_in_flight_msat,
            ),
        };
        for (i, spec) in after.iter().enumerate() {
            let offered: Vec<&HtlcSpec> =
                spec.htlcs.iter().filter(|h| h.direction == direction).collect();
            if offered.len() > usize::from(max_count) {
                return Err(StateError::TooManyHtlcs { count: offered.len(), max: max_count });
            }
            let value: u128 = offered.iter().map(|h| u128::from(h.amount_msat)).sum();
            if value > u128::from(max_value) {
                return Err(StateError::MaxInFlightExceeded {
                    value_msat: u64::try_from(value).unwrap_or(u64::MAX),
                    max_msat: max_value,
                });
            }
            if by == Side::Local {
                // Our policy on what we send: dust HTLCs on either commitment.
                let (side, dust) = if i == 0 {
                    (Side::Local, self.config.dust_limit)
                } else {
                    (Side::Remote, c.dust_limit)
                };
                let exposure: u128 = spec
                    .htlcs
                    .iter()
                    .map(|h| if side == Side::Local { *h } else { h.flipped() })
                    .filter(|h| is_trimmed(h, dust, spec.feerate))
                    .map(|h| u128::from(h.amount_msat))
                    .sum();
                if exposure > u128::from(self.config.max_dust_htlc_exposure_msat) {
                    return Err(StateError::DustExposureExceeded {
                        exposure_msat: u64::try_from(exposure).unwrap_or(u64::MAX),
                        max_msat: self.config.max_dust_htlc_exposure_msat,
                    });
                }
            }
        }
        Ok(())
    }

    /// Offers an HTLC: checks the counterparty's limits, our reserve and fees on both next
    /// commitments, and returns `update_add_htlc` (our id for it is its `id`).
    pub fn send_add_htlc(
        &mut self,
        amount_msat: u64,
        payment_hash: [u8; 32],
        cltv_expiry: u32,
        onion: Box<[u8; PACKET_LEN]>,
    ) -> Result<UpdateAddHtlc, StateError> {
        self.require_normal("update_add_htlc")?;
        if self.local_shutdown.is_some() || self.remote_shutdown.is_some() {
            return Err(StateError::ShuttingDown);
        }
        let minimum = self.counterparty_ref("update_add_htlc")?.htlc_minimum_msat;
        if amount_msat == 0 || amount_msat < minimum {
            return Err(StateError::HtlcBelowMinimum { amount_msat, minimum_msat: minimum });
        }
        crate::channel::scripts::check_cltv_expiry(cltv_expiry)?;
        let add = AddedHtlc {
            id: self.next_local_htlc_id,
            amount_msat,
            payment_hash,
            cltv_expiry,
            onion,
        };
        let msg = UpdateAddHtlc {
            channel_id: self.channel_id,
            id: add.id,
            amount_msat,
            payment_hash,
            cltv_expiry,
            onion_routing_packet: add.onion.clone(),
        };
        let update = Update::Add(add);
        self.check_update(Side::Local, &update)?;
        self.local_changes.proposed.push(update);
        self.next_local_htlc_id += 1;
        Ok(msg)
    }

    fn handle_update_add_htlc(&mut self, m: &UpdateAddHtlc) -> Result<Outcome, StateError> {
        self.require_normal("update_add_htlc")?;
        self.check_channel_id(m.channel_id)?;
        if self.remote_shutdown.is_some() {
            return Err(StateError::ShuttingDown);
        }
        if m.id != self.next_remote_htlc_id {
            return Err(StateError::UnexpectedHtlcId {
                expected: self.next_remote_htlc_id,
                got: m.id,
            });
        }
        let minimum = self.config.htlc_minimum_msat;
        if m.amount_msat == 0 || m.amount_msat < minimum {
            return Err(StateError::HtlcBelowMinimum {
                amount_msat: m.amount_msat,
                minimum_msat: minimum,
            });
        }
        crate::channel::scripts::check_cltv_expiry(m.cltv_expiry)?;
        let update = Update::Add(AddedHtlc {
            id: m.id,
            amount_msat: m.amount_msat,
            payment_hash: m.payment_hash,
            cltv_expiry: m.cltv_expiry,
            onion: m.onion_routing_packet.clone(),
        });
        self.check_update(Side::Remote, &update)?;
        self.remote_changes.proposed.push(update);
        self.incoming_onions.insert(m.id, m.onion_routing_packet.clone());
        self.next_remote_htlc_id += 1;
        Ok(Outcome::default())
    }

    /// The HTLC `id` offered by `offerer` if it is on both current commitments (irrevocably
    /// committed) and no settle of it is pending.
    fn settleable(&self, offerer: Side, id: u64) -> Result<HtlcSpec, StateError> {
        let direction = match offerer {
            Side::Local => HtlcDirection::Offered,
            Side::Remote => HtlcDirection::Received,
        };
        let find = |spec: &CommitmentSpec| {
            spec.htlcs.iter().find(|h| h.id == id && h.direction == direction).copied()
        };
        let local = self.local_commit.as_ref().and_then(|c| find(&c.spec));
        let remote = self.remote_commit.as_ref().and_then(|c| find(&c.spec));
        let (Some(htlc), Some(_)) = (local, remote) else {
            return Err(StateError::UnknownHtlc { id });
        };
        // Settles of an HTLC come from the party that received it.
        let (a, b, c) = match offerer {
            Side::Remote => (
                &self.local_changes.proposed,
                &self.local_changes.signed,
                &self.local_changes.acked,
            ),
            Side::Local => (
                &self.remote_changes.proposed,
                &self.remote_changes.acked,
                &self.remote_changes.signed,
            ),
        };
        if a.iter().chain(b).chain(c).any(|u| u.settled_id() == Some(id)) {
            return Err(StateError::UnknownHtlc { id });
        }
        Ok(htlc)
    }

    /// Fulfills an HTLC the counterparty offered (it must be irrevocably committed).
    pub fn send_fulfill_htlc(
        &mut self,
        id: u64,
        preimage: [u8; 32],
    ) -> Result<UpdateFulfillHtlc, StateError> {
        self.require_normal("update_fulfill_htlc")?;
        let htlc = self.settleable(Side::Remote, id)?;
        if Htlc::payment_hash_of(&preimage) != htlc.payment_hash {
            return Err(StateError::WrongPreimage { id });
        }
        self.local_changes.proposed.push(Update::Fulfill { id, preimage });
        self.preimages.insert(htlc.payment_hash, preimage);
        Ok(UpdateFulfillHtlc { channel_id: self.channel_id, id, payment_preimage: preimage })
    }

    /// Fails an HTLC the counterparty offered, with an error onion for the origin.
    pub fn send_fail_htlc(
        &mut self,
        id: u64,
        reason: Vec<u8>,
    ) -> Result<UpdateFailHtlc, StateError> {
        self.require_normal("update_fail_htlc")?;
        if reason.len() > usize::from(u16::MAX) {
            return Err(crate::wire::WireError::FieldTooLong {
                field: "reason",
                len: reason.len(),
            }
            .into());
        }
        self.settleable(Side::Remote, id)?;
        self.local_changes.proposed.push(Update::Fail { id, reason: reason.clone() });
        Ok(UpdateFailHtlc { channel_id: self.channel_id, id, reason })
    }

    /// Fails an HTLC the counterparty offered whose onion we could not parse.
    pub fn send_fail_malformed_htlc(
        &mut self,
        id: u64,
        sha256_of_onion: [u8; 32],
        failure_code: u16,
    ) -> Result<UpdateFailMalformedHtlc, StateError> {
        self.require_normal("update_fail_malformed_htlc")?;
        if failure_code & BADONION == 0 {
            return Err(StateError::MissingBadOnion(failure_code));
        }
        self.settleable(Side::Remote, id)?;
        self.local_changes.proposed.push(Update::FailMalformed {
            id,
            sha256_of_onion,
            failure_code,
        });
        Ok(UpdateFailMalformedHtlc {
            channel_id: self.channel_id,
            id,
            sha256_of_onion,
            failure_code,
        })
    }

    fn handle_settle(&mut self, update: Update) -> Result<Outcome, StateError> {
        self.require_normal("settle")?;
        let Some(id) = update.settled_id() else {
            return Err(StateError::UnknownHtlc { id: u64::MAX });
        };
        let htlc = self.settleable(Side::Local, id)?;
        let mut out = Outcome::default();
        match &update {
            Update::Fulfill { preimage, .. } => {
                if Htlc::payment_hash_of(preimage) != htlc.payment_hash {
                    return Err(StateError::WrongPreimage { id });
                }
                self.preimages.insert(htlc.payment_hash, *preimage);
                out.events.push(Event::HtlcFulfilled {
                    id,
                    payment_hash: htlc.payment_hash,
                    preimage: *preimage,
                });
            }
            Update::FailMalformed { failure_code, .. } if failure_code & BADONION == 0 => {
                return Err(StateError::MissingBadOnion(*failure_code));
            }
            _ => {}
        }
        self.remote_changes.proposed.push(update);
        Ok(out)
    }

    /// Funder: changes the commitment fee rate (checked against our balance and reserve on
    /// both next commitments).
    pub fn send_update_fee(&mut self, feerate: FeeRate) -> Result<UpdateFee, StateError> {
        self.require_normal("update_fee")?;
        if !self.is_funder {
            return Err(StateError::NotFunder);
        }
        let feerate_per_kb = feerate_u32(feerate)?;
        let update = Update::Fee(feerate);
        self.check_update(Side::Local, &update)?;
        self.local_changes.proposed.push(update);
        Ok(UpdateFee { channel_id: self.channel_id, feerate_per_kb })
    }

    fn handle_update_fee(&mut self, m: &UpdateFee) -> Result<Outcome, StateError> {
        self.require_normal("update_fee")?;
        self.check_channel_id(m.channel_id)?;
        if self.is_funder {
            return Err(StateError::NotFunder);
        }
        let feerate = FeeRate(u64::from(m.feerate_per_kb));
        if !self.config.accepts_feerate(feerate) {
            return Err(StateError::FeerateOutOfRange(feerate));
        }
        let update = Update::Fee(feerate);
        self.check_update(Side::Remote, &update)?;
        self.remote_changes.proposed.push(update);
        Ok(Outcome::default())
    }

    /// Signs the counterparty's next commitment with every update not yet in it (ours
    /// proposed, theirs acknowledged). Persist the channel before sending the result.
    pub fn send_commitment(&mut self) -> Result<CommitmentSigned, StateError> {
        self.require_phase("commitment_signed", &[Phase::Normal])?;
        if !self.connected {
            return Err(StateError::NotReestablished);
        }
        if self.remote_next.is_some() {
            return Err(StateError::AwaitingRevocation);
        }
        if !self.has_pending_commit() {
            return Err(StateError::NothingToCommit);
        }
        let params = self.params_ref("commitment_signed")?;
        let remote = self
            .remote_commit
            .as_ref()
            .ok_or(StateError::WrongPhase { what: "commitment_signed", phase: self.phase })?;
        let point = self
            .remote_next_point
            .ok_or(StateError::WrongPhase { what: "commitment_signed", phase: self.phase })?;
        let spec = reduce(
            &remote.spec,
            &self.local_changes.proposed,
            &self.remote_changes.acked,
            remote.spec.commitment_number + 1,
        )?;
        let (signature, htlc_signatures) = self.sign_remote_commitment(params, &spec, &point)?;
        let msg = CommitmentSigned { channel_id: self.channel_id, signature, htlc_signatures };
        self.remote_next =
            Some(RemoteNext { commit: RemoteCommit { spec, point }, sent: msg.clone() });
        let proposed = std::mem::take(&mut self.local_changes.proposed);
        self.local_changes.signed.extend(proposed);
        let acked = std::mem::take(&mut self.remote_changes.acked);
        self.remote_changes.signed.extend(acked);
        self.last_sent = LastSent::Commitment;
        Ok(msg)
    }

    /// The `revoke_and_ack` that revokes our commitment `number` (and announces the point of
    /// `number + 2`).
    pub(crate) fn revoke_msg(&self, number: u64) -> Result<RevokeAndAck, StateError> {
        Ok(RevokeAndAck {
            channel_id: self.channel_id,
            per_commitment_secret: *self.keys.per_commitment_secret(number)?,
            next_per_commitment_point: self.keys.per_commitment_point(number + 2)?,
        })
    }

    fn handle_commitment_signed(&mut self, m: &CommitmentSigned) -> Result<Outcome, StateError> {
        self.require_normal("commitment_signed")?;
        self.check_channel_id(m.channel_id)?;
        if self.remote_changes.proposed.is_empty() && self.local_changes.acked.is_empty() {
            return Err(StateError::CommitmentWithoutChanges);
        }
        let params = self.params_ref("commitment_signed")?;
        let local = self
            .local_commit
            .as_ref()
            .ok_or(StateError::WrongPhase { what: "commitment_signed", phase: self.phase })?;
        let old = local.spec.commitment_number;
        let spec =
            reduce(&local.spec, &self.local_changes.acked, &self.remote_changes.proposed, old + 1)?;
        self.verify_local_commitment(params, &spec, &m.signature, &m.htlc_signatures)?;
        let revoke = self.revoke_msg(old)?;
        self.local_commit = Some(LocalCommit {
            spec,
            counterparty_sig: m.signature,
            htlc_sigs: m.htlc_signatures.clone(),
        });
        self.local_changes.acked.clear();
        let proposed = std::mem::take(&mut self.remote_changes.proposed);
        self.remote_changes.acked.extend(proposed);
        self.last_sent = LastSent::Revoke;
        self.prune();
        let mut out = Outcome { messages: vec![Message::RevokeAndAck(revoke)], events: vec![] };
        self.after_commitment_change(&mut out)?;
        Ok(out)
    }

    fn handle_revoke_and_ack(&mut self, m: &RevokeAndAck) -> Result<Outcome, StateError> {
        self.require_normal("revoke_and_ack")?;
        self.check_channel_id(m.channel_id)?;
        let Some(next) = self.remote_next.clone() else {
            return Err(StateError::UnexpectedRevocation);
        };
        let current = self.remote_commit.as_ref().ok_or(StateError::UnexpectedRevocation)?;
        check_per_commitment_secret(&m.per_commitment_secret, &current.point)
            .map_err(|_| StateError::InvalidRevocationSecret)?;
        if m.next_per_commitment_point.is_weak() {
            return Err(unacceptable("next_per_commitment_point", "weak key"));
        }
        let mut secrets = self.secrets.clone();
        secrets.insert_commitment(current.spec.commitment_number, m.per_commitment_secret)?;
        self.secrets = secrets;
        let revoked = self.remote_commit.replace(next.commit);
        self.remote_next = None;
        self.remote_next_point = Some(m.next_per_commitment_point);
        let signed = std::mem::take(&mut self.local_changes.signed);
        self.local_changes.acked.extend(signed);
        let mut out = Outcome::default();
        if let Some(r) = &revoked {
            out.events.push(Event::CounterpartyRevoked {
                spec: r.spec.clone(),
                per_commitment_secret: m.per_commitment_secret,
            });
        }
        // The counterparty's updates we signed are now irrevocably committed.
        for update in std::mem::take(&mut self.remote_changes.signed) {
            match update {
                Update::Add(a) => {
                    let onion = self.incoming_onions.get(&a.id).cloned().unwrap_or(a.onion);
                    out.events.push(Event::HtlcReceived {
                        htlc: HtlcSpec {
                            id: a.id,
                            direction: HtlcDirection::Received,
                            amount_msat: a.amount_msat,
                            payment_hash: a.payment_hash,
                            cltv_expiry: a.cltv_expiry,
                        },
                        onion,
                    });
                }
                Update::Fail { id, reason } => {
                    out.events.push(failed_event(&revoked, id, HtlcFailure::Reason(reason)));
                }
                Update::FailMalformed { id, sha256_of_onion, failure_code } => {
                    let failure = HtlcFailure::Malformed { sha256_of_onion, failure_code };
                    out.events.push(failed_event(&revoked, id, failure));
                }
                Update::Fulfill { .. } | Update::Fee(_) => {}
            }
        }
        self.prune();
        self.after_commitment_change(&mut out)?;
        Ok(out)
    }

    /// Forgets onions and preimages of HTLCs that are on no commitment and in no pending
    /// update any more.
    fn prune(&mut self) {
        let mut live_hashes = Vec::new();
        let mut live_incoming = Vec::new();
        let specs = self
            .local_commit
            .iter()
            .map(|c| &c.spec)
            .chain(self.remote_commit.iter().map(|c| &c.spec))
            .chain(self.remote_next.iter().map(|n| &n.commit.spec));
        for spec in specs {
            for h in &spec.htlcs {
                live_hashes.push(h.payment_hash);
                if h.direction == HtlcDirection::Received {
                    live_incoming.push(h.id);
                }
            }
        }
        let rc = &self.remote_changes;
        for u in rc.proposed.iter().chain(&rc.acked).chain(&rc.signed) {
            if let Update::Add(a) = u {
                live_incoming.push(a.id);
                live_hashes.push(a.payment_hash);
            }
        }
        self.incoming_onions.retain(|id, _| live_incoming.contains(id));
        self.preimages.retain(|hash, _| live_hashes.contains(hash));
    }

    /// The base fee of the current commitments (the most a closing fee may be).
    pub(crate) fn max_commitment_fee(&self) -> Result<Amount, StateError> {
        let params = self.params_ref("closing")?;
        let local = self
            .local_commit
            .as_ref()
            .ok_or(StateError::WrongPhase { what: "closing", phase: self.phase })?;
        Ok(commitment_base_fee(params, Side::Local, &local.spec).max(commitment_base_fee(
            params,
            Side::Remote,
            &local.spec,
        )))
    }

    // ---- dispatch -------------------------------------------------------------------------

    /// Handles one message from the counterparty. On `Ok`, persist the channel, then send
    /// `messages` in order and act on `events`. On `Err` the state is unchanged; the caller
    /// fails the channel (BOLT 2: send `error`, broadcast [`Channel::holder_commitment`]).
    pub fn handle_message(&mut self, msg: &Message) -> Result<Outcome, StateError> {
        if !self.connected && !matches!(msg, Message::ChannelReestablish(_)) {
            return Err(StateError::NotReestablished);
        }
        let mut next = self.clone();
        let out = match msg {
            Message::Init(_)
            | Message::Ping(_)
            | Message::Pong(_)
            | Message::AnnouncementSignatures(_) => {
                return Err(StateError::NotAChannelMessage);
            }
            Message::OpenChannel(_) => {
                return Err(StateError::WrongPhase { what: "open_channel", phase: self.phase });
            }
            Message::Error(e) => {
                return Err(StateError::CounterpartyError(
                    String::from_utf8_lossy(&e.data).into_owned(),
                ));
            }
            Message::Warning(w) => {
                Outcome { messages: vec![], events: vec![Event::Warning(w.data.clone())] }
            }
            Message::AcceptChannel(m) => next.handle_accept_channel(m)?,
            Message::FundingCreated(m) => next.handle_funding_created(m)?,
            Message::FundingSigned(m) => next.handle_funding_signed(m)?,
            Message::ChannelReady(m) => next.handle_channel_ready(m)?,
            Message::UpdateAddHtlc(m) => next.handle_update_add_htlc(m)?,
            Message::UpdateFulfillHtlc(m) => {
                next.check_channel_id(m.channel_id)?;
                next.handle_settle(Update::Fulfill { id: m.id, preimage: m.payment_preimage })?
            }
            Message::UpdateFailHtlc(m) => {
                next.check_channel_id(m.channel_id)?;
                next.handle_settle(Update::Fail { id: m.id, reason: m.reason.clone() })?
            }
            Message::UpdateFailMalformedHtlc(m) => {
                next.check_channel_id(m.channel_id)?;
                next.handle_settle(Update::FailMalformed {
                    id: m.id,
                    sha256_of_onion: m.sha256_of_onion,
                    failure_code: m.failure_code,
                })?
            }
            Message::UpdateFee(m) => next.handle_update_fee(m)?,
            Message::CommitmentSigned(m) => next.handle_commitment_signed(m)?,
            Message::RevokeAndAck(m) => next.handle_revoke_and_ack(m)?,
            Message::ChannelReestablish(m) => next.handle_channel_reestablish(m)?,
            Message::Shutdown(m) => next.handle_shutdown(m)?,
            Message::ClosingSigned(m) => next.handle_closing_signed(m)?,
        };
        *self = next;
        Ok(out)
    }
}
