//! A whole Lightning node without I/O: peers, channels, forwarding, payments, invoices, the
//! chain and persistence (`docs/lightning.md` §7).
//!
//! [`LightningNode`] is driven by calls (`peer_connected`, `handle_message`, `open_channel`,
//! `pay_invoice`, `block_connected`, `timer_tick`, …) and answers each with a list of
//! [`Action`]s for the caller (`rnetd`): messages to send, transactions to broadcast, funding
//! requests for the wallet, events and watchtower appointments. It has no clock, no randomness
//! source and no sockets: secrets (channel keys, preimages, session keys, temporary ids) are
//! derived from the node key and a persisted counter, so a node is a deterministic function of
//! its configuration, its store and its inputs.
//!
//! Every call that changes state writes the whole change to the [`Store`] in **one atomic
//! batch before it returns** the actions that reveal it; a node rebuilt with
//! [`LightningNode::load`] from any snapshot the store ever held continues correctly once it
//! reconnects (`channel_reestablish`).

mod announce;
mod chain;
mod codec;
mod fee_updates;
mod htlcs;

pub use announce::ANNOUNCEMENT_DEPTH;
pub use fee_updates::FEE_UPDATE_THRESHOLD_DIVISOR;

use std::collections::{BTreeMap, BTreeSet};

use rnet_crypto::{PublicKey, SigningKey};
use rnet_primitives::{Amount, BlockHash, Network, OutPoint, Transaction, Txid};

use crate::channel::{ChannelKeys, CommitmentClaims, FeeRate, SecretGenerator, Side};
use crate::gossip::{ChannelUpdate, ShortChannelId, UnsignedChannelUpdate};
use crate::invoice::{Invoice, InvoiceBuilder, InvoiceError, RouteHint, RouteHintHop};
use crate::onion::NodeSecret;
use crate::onion::keys::hmac_sha256;
use crate::router::{
    ChannelPolicy, MAX_MSAT, NetworkGraph, Route, RouteError, RouteHop, RouteParams, Scorer,
    ScorerParams, find_route,
};
use crate::state::{Channel, ChannelConfig, HolderCommitment, OpenRequest, Phase, StateError};
use crate::store::{Store, StoreError, StoreOp};
use crate::watchtower::{Appointment, WatchtowerError};
use crate::wire::{ChannelId, ErrorMessage, Message, Pong};

/// Key of the node's own record in the store.
const META_KEY: &[u8] = b"ln/meta";
/// Prefix of channel records (`ln/chan/` ‖ local id, 8 bytes big-endian).
const CHANNEL_PREFIX: &[u8] = b"ln/chan/";
/// Prefix of invoice records (`ln/inv/` ‖ payment hash).
const INVOICE_PREFIX: &[u8] = b"ln/inv/";
/// Prefix of payment records (`ln/pay/` ‖ payment id, 8 bytes big-endian).
const PAYMENT_PREFIX: &[u8] = b"ln/pay/";
/// Prefix of penalty records (`ln/pen/` ‖ revoked commitment txid).
const PENALTY_PREFIX: &[u8] = b"ln/pen/";

/// Why a node call failed. A [`NodeError::Store`] means the state could not be saved: drop the
/// node and [`LightningNode::load`] it again.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store refused a read or write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record does not decode.
    #[error("corrupt stored record: {0}")]
    Corrupt(&'static str),
    /// The channel state machine refused the call.
    #[error(transparent)]
    State(#[from] StateError),
    /// No channel with this id.
    #[error("unknown channel")]
    UnknownChannel,
    /// The peer is not connected.
    #[error("peer not connected")]
    PeerNotConnected,
    /// An invoice could not be built or is unusable.
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    /// The invoice is for another network.
    #[error("invoice is for another network")]
    WrongNetwork,
    /// The invoice has expired.
    #[error("invoice expired")]
    InvoiceExpired,
    /// The invoice has no amount.
    #[error("invoice has no amount")]
    NoAmount,
    /// A payment of this invoice already succeeded or is in flight (paying it again would pay
    /// twice: the payee accepts any number of payments to one hash).
    #[error("this invoice is already {0}")]
    AlreadyPaying(&'static str),
    /// No route to the payee.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A gossip message was refused by the graph (bad signature, wrong chain, …).
    #[error(transparent)]
    Graph(#[from] crate::router::GraphError),
    /// The funding transaction does not pay the channel's funding output.
    #[error("funding transaction does not pay the funding output")]
    WrongFundingTransaction,
    /// A channel transaction could not be built.
    #[error(transparent)]
    Channel(#[from] crate::channel::ChannelError),
    /// A watchtower appointment could not be built.
    #[error(transparent)]
    Watchtower(#[from] WatchtowerError),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

/// What the node charges for forwarding over any of its channels (announced to payers by
/// gossip or route hints; [`ChannelPolicy::check_forward`] is applied to every forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardingPolicy {
    /// Fixed fee, msat.
    pub fee_base_msat: u32,
    /// Proportional fee, millionths.
    pub fee_proportional_millionths: u32,
    /// Blocks required between the incoming and the outgoing HTLC expiry.
    pub cltv_expiry_delta: u16,
}

/// The node's configuration (not persisted: pass it again to [`LightningNode::load`]).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's identity key (onion key, invoice key, and the root of every derived secret).
    pub node_key: SigningKey,
    /// The chain's genesis block id.
    pub genesis: BlockHash,
    /// The network (invoice prefix).
    pub network: Network,
    /// Defaults of every channel; its `shutdown_script` is replaced by `sweep_script`.
    pub channel: ChannelConfig,
    /// The wallet's recovery-policy address script: cooperative closes, sweeps and penalties
    /// pay it (a 32-byte key or script-hash output).
    pub sweep_script: Vec<u8>,
    /// Fee rate of commitments of channels we open, and of sweeps and penalties.
    pub feerate: FeeRate,
    /// Forwarding fees and CLTV delta.
    pub forwarding: ForwardingPolicy,
    /// `min_final_cltv_expiry_delta` of our invoices (and what we require of final HTLCs).
    pub min_final_cltv_expiry_delta: u32,
    /// An HTLC whose expiry is within this many blocks of the tip while still unresolved makes
    /// the node close the channel and resolve it on chain; forwards whose outgoing expiry is
    /// this close are refused (`expiry_too_soon`).
    pub htlc_expiry_margin: u32,
    /// Routes tried per payment.
    pub max_payment_attempts: u32,
    /// Build a watchtower appointment for every revoked counterparty commitment.
    pub watchtower: bool,
    /// Test support: HTLCs paying us are neither fulfilled nor failed, as by a payee that never
    /// settles (their payers' nodes must time them out).
    pub hold_incoming: bool,
}

impl NodeConfig {
    /// A configuration with defaults: [`ChannelConfig::new`], fee rate 1000, forwarding fee
    /// 1000 msat + 100 ppm with a 40-block delta, final delta 18, margin 12, 5 attempts,
    /// appointments on.
    pub fn new(
        node_key: SigningKey,
        genesis: BlockHash,
        network: Network,
        sweep_script: Vec<u8>,
    ) -> Self {
        Self {
            node_key,
            genesis,
            network,
            channel: ChannelConfig::new(sweep_script.clone()),
            sweep_script,
            feerate: FeeRate(1000),
            forwarding: ForwardingPolicy {
                fee_base_msat: 1000,
                fee_proportional_millionths: 100,
                cltv_expiry_delta: 40,
            },
            min_final_cltv_expiry_delta: 18,
            htlc_expiry_margin: 12,
            max_payment_attempts: 5,
            watchtower: true,
            hold_incoming: false,
        }
    }
}

/// A payment's id (local, increasing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PaymentId(pub u64);

/// Why a channel closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The cooperative closing transaction confirmed.
    Cooperative,
    /// Our own commitment confirmed.
    LocalCommitment,
    /// The counterparty's current commitment confirmed.
    RemoteCommitment,
    /// A revoked counterparty commitment confirmed; the penalty was broadcast.
    RevokedCommitment,
    /// The funding output was spent by a transaction the node does not know.
    UnknownSpend,
}

/// Something the node's owner should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// Our payment was fulfilled.
    PaymentSent {
        /// The payment.
        id: PaymentId,
        /// Its hash.
        payment_hash: [u8; 32],
        /// The proof of payment.
        preimage: [u8; 32],
        /// Routing fees paid, msat.
        fee_msat: u64,
    },
    /// Our payment failed for good (every attempt failed or the payee refused).
    PaymentFailed {
        /// The payment.
        id: PaymentId,
        /// Its hash.
        payment_hash: [u8; 32],
        /// Why.
        reason: String,
    },
    /// One of our invoices was paid.
    PaymentReceived {
        /// Its hash.
        payment_hash: [u8; 32],
        /// The HTLC amount received, msat.
        amount_msat: u64,
    },
    /// A channel is usable (both `channel_ready` exchanged).
    ChannelOpened {
        /// The channel.
        channel_id: ChannelId,
        /// The counterparty.
        peer: PublicKey,
        /// Its short id.
        short_channel_id: Option<ShortChannelId>,
    },
    /// A channel's funding output was spent on chain.
    ChannelClosed {
        /// The channel.
        channel_id: ChannelId,
        /// The counterparty.
        peer: PublicKey,
        /// How.
        reason: CloseReason,
    },
    /// We forwarded an HTLC and it was fulfilled.
    HtlcForwarded {
        /// Incoming channel.
        incoming: ChannelId,
        /// Outgoing channel.
        outgoing: ChannelId,
        /// What we earned, msat.
        fee_msat: u64,
    },
}

/// What the caller must do, in order, after a call returned.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send `message` to the peer `to`.
    SendMessage {
        /// The peer.
        to: PublicKey,
        /// The message (boxed: messages are large).
        message: Box<Message>,
    },
    /// Broadcast a transaction (repeated ones may already be known to the mempool).
    Broadcast(Transaction),
    /// The wallet must build (not broadcast) a transaction paying `amount` to `script_pubkey`
    /// and answer with [`LightningNode::funding_transaction_ready`].
    FundingNeeded {
        /// The channel's temporary id.
        temporary_channel_id: ChannelId,
        /// The funding output's script.
        script_pubkey: Vec<u8>,
        /// Its value.
        amount: Amount,
    },
    /// An event.
    Event(NodeEvent),
    /// An appointment for every watchtower we use.
    TowerAppointment(Appointment),
    /// Send this gossip message (`u16 type ‖ payload`: a public channel's announcement or
    /// update) to every connected peer.
    Gossip(Vec<u8>),
}

/// Where a channel is, beside its state machine's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ChanStatus {
    /// Opening or open.
    Open = 0,
    /// We broadcast our commitment and wait for a commitment to confirm.
    ForceClosing = 1,
    /// The funding output is spent; outputs are being swept.
    Closed = 2,
}

impl ChanStatus {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Open),
            1 => Some(Self::ForceClosing),
            2 => Some(Self::Closed),
            _ => None,
        }
    }
}

/// One channel and what the node keeps beside it.
#[derive(Debug, Clone)]
pub(crate) struct ChanEntry {
    pub(crate) peer: PublicKey,
    pub(crate) channel: Channel,
    pub(crate) scid: Option<ShortChannelId>,
    /// Funder: the funding transaction, broadcast once `funding_signed` verifies.
    pub(crate) funding_tx: Option<Transaction>,
    pub(crate) funding_height: Option<u32>,
    pub(crate) status: ChanStatus,
    pub(crate) opened_reported: bool,
}

/// An invoice we issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvoiceRecord {
    pub(crate) invoice: String,
    pub(crate) preimage: [u8; 32],
    pub(crate) paid_msat: Option<u64>,
}

/// The state of one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentStatus {
    /// In flight or waiting to be retried.
    Pending,
    /// Fulfilled.
    Succeeded {
        /// The proof of payment.
        preimage: [u8; 32],
        /// Fees paid, msat.
        fee_msat: u64,
    },
    /// Failed for good.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The route currently tried by a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub(crate) hops: Vec<RouteHop>,
    pub(crate) total_amount_msat: u64,
    pub(crate) total_cltv: u32,
    pub(crate) shared_secrets: Vec<[u8; 32]>,
    pub(crate) channel: u64,
    pub(crate) htlc_id: u64,
}

impl Attempt {
    fn route(&self) -> Route {
        Route {
            hops: self.hops.clone(),
            total_amount_msat: self.total_amount_msat,
            total_cltv: self.total_cltv,
        }
    }
}

/// A payment we make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaymentRecord {
    pub(crate) invoice: String,
    pub(crate) payment_hash: [u8; 32],
    pub(crate) amount_msat: u64,
    pub(crate) status: PaymentStatus,
    pub(crate) attempts: u32,
    pub(crate) excluded_channels: Vec<u64>,
    pub(crate) excluded_nodes: Vec<PublicKey>,
    pub(crate) attempt: Option<Attempt>,
    /// The last attempt could not be sent (no usable first hop): try again on reconnection.
    pub(crate) retry: bool,
}

/// An incoming HTLC we forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forward {
    pub(crate) shared_secret: [u8; 32],
    pub(crate) incoming_msat: u64,
    pub(crate) outgoing_msat: u64,
    pub(crate) incoming_cltv: u32,
    pub(crate) payment_hash: [u8; 32],
}

/// Why an HTLC we offered exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Our payment.
    Payment(PaymentId),
    /// A forward of the incoming HTLC (channel, id).
    Forward(u64, u64),
}

/// How we settle an incoming HTLC (kept until the settle is irrevocably committed, and
/// re-sent after reconnection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    Fulfill([u8; 32]),
    Fail(Vec<u8>),
    Malformed { sha256_of_onion: [u8; 32], failure_code: u16 },
}

/// A transaction to broadcast once it can confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scheduled {
    pub(crate) channel: u64,
    pub(crate) tx: Transaction,
    /// Broadcast once the tip is at least this height (absolute lock time).
    pub(crate) not_before: u32,
    /// Broadcast once this transaction has this many blocks on top of it (relative lock).
    pub(crate) after: Option<(Txid, u16)>,
    /// Our HTLC (channel, id) this transaction times out: fail it upstream once confirmed.
    pub(crate) resolves: Option<(u64, u64)>,
}

/// Everything the node persists beside the channels.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub(crate) entropy_counter: u64,
    pub(crate) next_local_id: u64,
    pub(crate) next_payment_id: u64,
    pub(crate) height: u32,
    pub(crate) now: u64,
    pub(crate) invoices: BTreeMap<[u8; 32], InvoiceRecord>,
    pub(crate) payments: BTreeMap<PaymentId, PaymentRecord>,
    pub(crate) forwards: BTreeMap<(u64, u64), Forward>,
    pub(crate) outgoing: BTreeMap<(u64, u64), Origin>,
    pub(crate) resolutions: BTreeMap<(u64, u64), Resolution>,
    /// Revoked counterparty commitment txid → (channel, penalty transactions).
    pub(crate) penalties: BTreeMap<Txid, (u64, Vec<Transaction>)>,
    pub(crate) scheduled: Vec<Scheduled>,
    /// Heights at which transactions we wait on confirmed.
    pub(crate) confirmed: BTreeMap<Txid, u32>,
}

/// A channel as listed for RPCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDetails {
    /// Current id (the temporary one before funding).
    pub channel_id: ChannelId,
    /// The counterparty.
    pub peer: PublicKey,
    /// State machine phase.
    pub phase: Phase,
    /// Open, force-closing or closed.
    pub status: ChanStatus,
    /// Whether we opened it.
    pub is_funder: bool,
    /// The channel's value.
    pub capacity: Amount,
    /// Our balance on our current commitment, msat (pending HTLCs excluded).
    pub local_balance_msat: u64,
    /// The counterparty's balance on our current commitment, msat.
    pub remote_balance_msat: u64,
    /// HTLCs on our current commitment.
    pub pending_htlcs: usize,
    /// Short channel id once the funding transaction confirmed.
    pub short_channel_id: Option<ShortChannelId>,
    /// The funding outpoint once known.
    pub funding_outpoint: Option<OutPoint>,
    /// What each side could claim on chain if our latest commitment confirmed now (once the
    /// channel has a signed commitment).
    pub onchain: Option<CommitmentClaims>,
    /// Our current commitment's fee rate (resonance per 1000 bytes).
    pub feerate: Option<FeeRate>,
}

/// Whether an invoice was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    /// Not paid and not expired.
    Unpaid,
    /// Paid with this many msat.
    Paid(u64),
    /// Expired unpaid.
    Expired,
}

/// An invoice as listed for RPCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceDetails {
    /// The encoded invoice.
    pub invoice: String,
    /// Its payment hash.
    pub payment_hash: [u8; 32],
    /// Its status at the node's current time.
    pub status: InvoiceStatus,
}

/// A payment as listed for RPCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentDetails {
    /// Its id.
    pub id: PaymentId,
    /// Its hash.
    pub payment_hash: [u8; 32],
    /// What the payee gets, msat.
    pub amount_msat: u64,
    /// Routes tried.
    pub attempts: u32,
    /// Its status.
    pub status: PaymentStatus,
}

/// A Lightning node without I/O (see the module documentation).
pub struct LightningNode {
    config: NodeConfig,
    store: Box<dyn Store>,
    node_secret: NodeSecret,
    node_id: PublicKey,
    channels: BTreeMap<u64, ChanEntry>,
    meta: Meta,
    peers: BTreeSet<PublicKey>,
    graph: NetworkGraph,
    scorer: Scorer,
    /// The `announcement_signatures` exchange of public channels (in memory).
    announcements: announce::Announcements,
    /// What the store holds of the node record and the channels (to write only what changed).
    written: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Invoice, payment and penalty records changed by the call in progress.
    dirty: BTreeSet<Dirty>,
    /// Actions of the call in progress.
    out: Vec<Action>,
}

impl std::fmt::Debug for LightningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LightningNode")
            .field("node_id", &self.node_id)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

/// A record kept under its own key, written when marked dirty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dirty {
    Invoice([u8; 32]),
    Payment(PaymentId),
    Penalty(Txid),
}

fn channel_key(id: u64) -> Vec<u8> {
    [CHANNEL_PREFIX, &id.to_be_bytes()[..]].concat()
}

fn check_config(config: &NodeConfig) -> Result<(), NodeError> {
    crate::channel::sweep::check_destination(&config.sweep_script)
        .map_err(|_| NodeError::InvalidConfig("sweep_script is not a standard destination"))?;
    let mut ch = config.channel.clone();
    ch.shutdown_script = config.sweep_script.clone();
    ch.check().map_err(|_| NodeError::InvalidConfig("channel configuration"))?;
    if config.max_payment_attempts == 0 {
        return Err(NodeError::InvalidConfig("max_payment_attempts is zero"));
    }
    Ok(())
}

impl LightningNode {
    /// A new node with an empty state; `store` should be empty (whatever it holds is
    /// overwritten as the node writes).
    pub fn new(config: NodeConfig, store: Box<dyn Store>) -> Result<Self, NodeError> {
        check_config(&config)?;
        let mut node = Self::bare(config, store);
        node.persist()?;
        Ok(node)
    }

    fn bare(config: NodeConfig, store: Box<dyn Store>) -> Self {
        let node_secret = NodeSecret::from_signing_key(&config.node_key);
        let node_id = config.node_key.public_key();
        let graph = NetworkGraph::new(config.genesis);
        Self {
            config,
            store,
            node_secret,
            node_id,
            channels: BTreeMap::new(),
            meta: Meta::default(),
            peers: BTreeSet::new(),
            announcements: announce::Announcements::default(),
            graph,
            scorer: Scorer::new(ScorerParams::default()),
            written: BTreeMap::new(),
            dirty: BTreeSet::new(),
            out: Vec::new(),
        }
    }

    /// Rebuilds a node from its store: every channel is treated as disconnected (updates no
    /// `commitment_signed` covers are dropped, as BOLT 2 requires; unfunded channels are
    /// forgotten), and the caller reconnects peers with [`LightningNode::peer_connected`].
    /// The network graph and the scorer are not persisted: feed gossip again.
    pub fn load(config: NodeConfig, store: Box<dyn Store>) -> Result<Self, NodeError> {
        check_config(&config)?;
        let mut node = Self::bare(config, store);
        if let Some(bytes) = node.store.get(META_KEY)? {
            node.meta = codec::decode_meta(&bytes)?;
            node.written.insert(META_KEY.to_vec(), bytes);
        }
        for (key, bytes) in node.store.scan(CHANNEL_PREFIX)? {
            let id_bytes: [u8; 8] = key[CHANNEL_PREFIX.len()..]
                .try_into()
                .map_err(|_| NodeError::Corrupt("channel key"))?;
            let entry = codec::decode_channel(&bytes)?;
            node.channels.insert(u64::from_be_bytes(id_bytes), entry);
            node.written.insert(key, bytes);
        }
        for (key, bytes) in node.store.scan(INVOICE_PREFIX)? {
            let hash: [u8; 32] = key[INVOICE_PREFIX.len()..]
                .try_into()
                .map_err(|_| NodeError::Corrupt("invoice key"))?;
            node.meta.invoices.insert(hash, codec::decode_invoice(&bytes)?);
        }
        for (key, bytes) in node.store.scan(PAYMENT_PREFIX)? {
            let id: [u8; 8] = key[PAYMENT_PREFIX.len()..]
                .try_into()
                .map_err(|_| NodeError::Corrupt("payment key"))?;
            node.meta
                .payments
                .insert(PaymentId(u64::from_be_bytes(id)), codec::decode_payment(&bytes)?);
        }
        for (key, bytes) in node.store.scan(PENALTY_PREFIX)? {
            let txid: [u8; 32] = key[PENALTY_PREFIX.len()..]
                .try_into()
                .map_err(|_| NodeError::Corrupt("penalty key"))?;
            node.meta.penalties.insert(Txid::from_bytes(txid), codec::decode_penalty(&bytes)?);
        }
        let ids: Vec<u64> = node.channels.keys().copied().collect();
        for lid in ids {
            node.disconnect_channel(lid);
            node.add_own_channel_to_graph(lid);
        }
        node.persist()?;
        // Nothing can be sent before peers reconnect.
        node.out.clear();
        Ok(node)
    }

    // ---- plumbing -------------------------------------------------------------------------

    /// Writes every changed record in one batch, then hands out the call's actions.
    fn finish(&mut self) -> Result<Vec<Action>, NodeError> {
        self.persist()?;
        Ok(std::mem::take(&mut self.out))
    }

    fn persist(&mut self) -> Result<(), NodeError> {
        let mut now: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        now.insert(META_KEY.to_vec(), codec::encode_meta(&self.meta));
        for (id, e) in &self.channels {
            now.insert(channel_key(*id), codec::encode_channel(e));
        }
        let mut batch = Vec::new();
        for (k, v) in &now {
            if self.written.get(k) != Some(v) {
                batch.push(StoreOp::Put(k.clone(), v.clone()));
            }
        }
        for k in self.written.keys() {
            if !now.contains_key(k) {
                batch.push(StoreOp::Delete(k.clone()));
            }
        }
        for d in std::mem::take(&mut self.dirty) {
            let (key, value) = match d {
                Dirty::Invoice(h) => (
                    [INVOICE_PREFIX, &h[..]].concat(),
                    self.meta.invoices.get(&h).map(codec::encode_invoice),
                ),
                Dirty::Payment(id) => (
                    [PAYMENT_PREFIX, &id.0.to_be_bytes()[..]].concat(),
                    self.meta.payments.get(&id).map(codec::encode_payment),
                ),
                Dirty::Penalty(t) => (
                    [PENALTY_PREFIX, &t.as_bytes()[..]].concat(),
                    self.meta.penalties.get(&t).map(|(c, txs)| codec::encode_penalty(*c, txs)),
                ),
            };
            batch.push(match value {
                Some(v) => StoreOp::Put(key, v),
                None => StoreOp::Delete(key),
            });
        }
        if !batch.is_empty() {
            self.store.write(batch)?;
        }
        self.written = now;
        Ok(())
    }

    /// 32 fresh secret bytes: HMAC-SHA256 of the node key over a label and a counter that is
    /// persisted with everything the bytes are used for, so no value repeats.
    fn entropy(&mut self, label: &[u8]) -> [u8; 32] {
        let counter = self.meta.entropy_counter;
        self.meta.entropy_counter += 1;
        hmac_sha256(
            &self.config.node_key.to_bytes()[..],
            &[b"rnet/ln/node/", label, &counter.to_be_bytes()],
        )
    }

    fn channel_keys(&mut self) -> ChannelKeys {
        let base = self.entropy(b"channel");
        let k = |label: &[u8]| SigningKey::from_bytes(&hmac_sha256(&base, &[label]));
        ChannelKeys {
            funding: k(b"funding"),
            revocation: k(b"revocation"),
            payment: k(b"payment"),
            delayed_payment: k(b"delayed"),
            htlc: k(b"htlc"),
            commitment_seed: SecretGenerator::new(hmac_sha256(&base, &[b"shachain"])),
        }
    }

    fn channel_config(&self) -> ChannelConfig {
        let mut c = self.config.channel.clone();
        c.shutdown_script = self.config.sweep_script.clone();
        c
    }

    pub(crate) fn send(&mut self, to: PublicKey, message: Message) {
        if self.peers.contains(&to) {
            self.out.push(Action::SendMessage { to, message: Box::new(message) });
        }
    }

    pub(crate) fn event(&mut self, e: NodeEvent) {
        self.out.push(Action::Event(e));
    }

    fn find_channel(&self, peer: &PublicKey, id: &ChannelId) -> Option<u64> {
        self.channels
            .iter()
            .find(|(_, e)| {
                e.peer == *peer
                    && (e.channel.channel_id() == *id || e.channel.temporary_channel_id() == *id)
            })
            .map(|(k, _)| *k)
    }

    fn channel_by_id(&self, id: &ChannelId) -> Option<u64> {
        self.channels
            .iter()
            .find(|(_, e)| e.channel.channel_id() == *id || e.channel.temporary_channel_id() == *id)
            .map(|(k, _)| *k)
    }

    pub(crate) fn channel_by_scid(&self, scid: u64) -> Option<u64> {
        self.channels
            .iter()
            .find(|(_, e)| e.scid.map(|s| s.0) == Some(scid) && e.status == ChanStatus::Open)
            .map(|(k, _)| *k)
    }

    pub(crate) fn forwarding_channel_policy(&self, capacity_msat: u64) -> ChannelPolicy {
        let f = self.config.forwarding;
        ChannelPolicy {
            cltv_expiry_delta: f.cltv_expiry_delta,
            htlc_minimum_msat: self.config.channel.htlc_minimum_msat,
            htlc_maximum_msat: capacity_msat.min(MAX_MSAT),
            fee_base_msat: f.fee_base_msat,
            fee_proportional_millionths: f.fee_proportional_millionths,
        }
    }

    fn add_own_channel_to_graph(&mut self, lid: u64) {
        let Some(e) = self.channels.get(&lid) else { return };
        let (Some(scid), ChanStatus::Open) = (e.scid, e.status) else { return };
        if e.channel.phase() != Phase::Normal {
            return;
        }
        let capacity = e.channel.parameters().map(|p| p.funding_amount().0 * 1000).unwrap_or(0);
        let policy = self.forwarding_channel_policy(capacity);
        let now = u32::try_from(self.meta.now).unwrap_or(u32::MAX);
        let peer = e.peer;
        let _ =
            self.graph.add_private_channel(self.node_id, peer, scid, policy, Some(capacity), now);
    }

    // ---- peers ----------------------------------------------------------------------------

    /// A connection to `peer` is up: sends `channel_reestablish` on every funded channel with
    /// it that was disconnected.
    pub fn peer_connected(&mut self, peer: PublicKey) -> Result<Vec<Action>, NodeError> {
        self.peers.insert(peer);
        let ids: Vec<u64> = self
            .channels
            .iter()
            .filter(|(_, e)| e.peer == peer && e.status != ChanStatus::Closed)
            .map(|(k, _)| *k)
            .collect();
        for lid in ids {
            let e = &self.channels[&lid];
            if e.channel.connected {
                continue;
            }
            if let Ok(msg) = e.channel.channel_reestablish() {
                self.send(peer, Message::ChannelReestablish(msg));
            }
        }
        self.finish()
    }

    /// The connection to `peer` dropped: channels forget uncommitted updates; HTLCs we had
    /// only proposed are failed upstream (forwards) or retried later (payments).
    pub fn peer_disconnected(&mut self, peer: PublicKey) -> Result<Vec<Action>, NodeError> {
        self.peers.remove(&peer);
        self.announcements_peer_disconnected(&peer);
        let ids: Vec<u64> =
            self.channels.iter().filter(|(_, e)| e.peer == peer).map(|(k, _)| *k).collect();
        for lid in ids {
            self.disconnect_channel(lid);
        }
        self.finish()
    }

    fn disconnect_channel(&mut self, lid: u64) {
        let Some(e) = self.channels.get_mut(&lid) else { return };
        let unfunded = matches!(
            e.channel.phase(),
            Phase::OpenSent
                | Phase::AcceptSent
                | Phase::AwaitingFundingOutpoint
                | Phase::FundingCreatedSent
        );
        if unfunded {
            self.channels.remove(&lid);
            return;
        }
        let dropped = e.channel.peer_disconnected();
        for u in dropped {
            if let crate::state::Update::Add(a) = u {
                self.outgoing_failed(lid, a.id, None);
            }
        }
    }

    /// Handles a message from `from`. Protocol violations fail the channel (we send `error`
    /// and broadcast our commitment); they are not errors of the call.
    pub fn handle_message(
        &mut self,
        from: PublicKey,
        message: Message,
    ) -> Result<Vec<Action>, NodeError> {
        match &message {
            Message::Init(_) | Message::Pong(_) | Message::Warning(_) => {}
            Message::Ping(p) => {
                let pong = Pong { ignored: vec![0; usize::from(p.num_pong_bytes)] };
                self.send(from, Message::Pong(pong));
            }
            Message::OpenChannel(open) => self.inbound_open(from, open),
            Message::AnnouncementSignatures(m) => self.handle_announcement_signatures(from, m),
            Message::Error(e) => {
                let ids: Vec<u64> = self
                    .channels
                    .iter()
                    .filter(|(_, c)| {
                        c.peer == from
                            && (e.channel_id == ChannelId([0; 32])
                                || c.channel.channel_id() == e.channel_id
                                || c.channel.temporary_channel_id() == e.channel_id)
                    })
                    .map(|(k, _)| *k)
                    .collect();
                for lid in ids {
                    self.force_close_local(lid);
                }
            }
            other => {
                let id = channel_id_of(other);
                if let Some(lid) = id.and_then(|id| self.find_channel(&from, &id)) {
                    self.channel_message(lid, &message);
                }
            }
        }
        self.finish()
    }

    fn inbound_open(&mut self, from: PublicKey, open: &crate::wire::OpenChannel) {
        if self.find_channel(&from, &open.temporary_channel_id).is_some() {
            return;
        }
        let keys = self.channel_keys();
        match Channel::new_inbound(keys, self.config.genesis, self.channel_config(), open) {
            Ok((channel, accept)) => {
                let lid = self.meta.next_local_id;
                self.meta.next_local_id += 1;
                self.channels.insert(
                    lid,
                    ChanEntry {
                        peer: from,
                        channel,
                        scid: None,
                        funding_tx: None,
                        funding_height: None,
                        status: ChanStatus::Open,
                        opened_reported: false,
                    },
                );
                self.send(from, Message::AcceptChannel(Box::new(accept)));
            }
            Err(e) => {
                let data = e.to_string().into_bytes();
                self.send(
                    from,
                    Message::Error(ErrorMessage { channel_id: open.temporary_channel_id, data }),
                );
            }
        }
    }

    fn channel_message(&mut self, lid: u64, message: &Message) {
        let Some(e) = self.channels.get_mut(&lid) else { return };
        if e.status != ChanStatus::Open {
            return;
        }
        let peer = e.peer;
        let was_connected = e.channel.connected;
        match e.channel.handle_message(message) {
            Ok(outcome) => {
                for m in outcome.messages {
                    self.send(peer, m);
                }
                if matches!(message, Message::AcceptChannel(_)) {
                    self.request_funding(lid);
                }
                for ev in outcome.events {
                    self.channel_event(lid, ev);
                }
                if !was_connected && matches!(message, Message::ChannelReestablish(_)) {
                    self.reestablished(lid);
                }
            }
            Err(StateError::NotReestablished) => {}
            Err(e) => {
                let data = e.to_string().into_bytes();
                let channel_id = self.channels[&lid].channel.channel_id();
                self.send(peer, Message::Error(ErrorMessage { channel_id, data }));
                self.force_close_local(lid);
            }
        }
        self.after_change(lid);
    }

    fn request_funding(&mut self, lid: u64) {
        let e = &self.channels[&lid];
        if let Ok(out) = e.channel.funding_output() {
            self.out.push(Action::FundingNeeded {
                temporary_channel_id: e.channel.temporary_channel_id(),
                script_pubkey: out.script_pubkey,
                amount: out.value,
            });
        }
    }

    fn channel_event(&mut self, lid: u64, ev: crate::state::Event) {
        use crate::state::Event;
        match ev {
            Event::FundingSigned => {
                if let Some(tx) = self.channels[&lid].funding_tx.clone() {
                    self.out.push(Action::Broadcast(tx));
                }
            }
            Event::ChannelReady => self.channel_ready(lid),
            Event::HtlcReceived { htlc, onion } => self.incoming_htlc(lid, htlc, &onion),
            Event::HtlcFulfilled { id, preimage, .. } => self.outgoing_fulfilled(lid, id, preimage),
            Event::HtlcFailed { id, failure, .. } => self.outgoing_failed(lid, id, Some(failure)),
            Event::CounterpartyRevoked { spec, per_commitment_secret } => {
                self.archive_revoked(lid, &spec, &per_commitment_secret)
            }
            Event::ShutdownReceived | Event::Warning(_) => {}
            Event::ChannelClosed(tx) => self.out.push(Action::Broadcast(tx)),
        }
    }

    fn channel_ready(&mut self, lid: u64) {
        self.add_own_channel_to_graph(lid);
        let e = self.channels.get_mut(&lid).expect("channel exists");
        if !e.opened_reported {
            e.opened_reported = true;
            let ev = NodeEvent::ChannelOpened {
                channel_id: e.channel.channel_id(),
                peer: e.peer,
                short_channel_id: e.scid,
            };
            self.event(ev);
        }
    }

    /// After reconnection: re-send our settles of incoming HTLCs and retry payments.
    fn reestablished(&mut self, lid: u64) {
        let pending: Vec<(u64, Resolution)> = self
            .meta
            .resolutions
            .iter()
            .filter(|((c, _), _)| *c == lid)
            .map(|((_, h), r)| (*h, r.clone()))
            .collect();
        for (id, r) in pending {
            self.apply_resolution(lid, id, &r);
        }
        self.retry_payments();
    }

    /// Commits pending updates, answers a pending `shutdown`, and drops settled records.
    pub(crate) fn after_change(&mut self, lid: u64) {
        let Some(e) = self.channels.get_mut(&lid) else { return };
        let peer = e.peer;
        let ch = &mut e.channel;
        let mut msgs = Vec::new();
        if ch.phase() == Phase::Normal
            && ch.connected
            && !ch.awaiting_revocation()
            && ch.has_pending_commit()
            && let Ok(cs) = ch.send_commitment()
        {
            msgs.push(Message::CommitmentSigned(cs));
        }
        if ch.phase() == Phase::Normal
            && ch.connected
            && ch.remote_shutdown.is_some()
            && ch.local_shutdown.is_none()
            && let Ok(m) = ch.send_shutdown()
        {
            msgs.extend(m);
        }
        for m in msgs {
            self.send(peer, m);
        }
        self.prune_resolutions(lid);
    }

    fn prune_resolutions(&mut self, lid: u64) {
        let Some(e) = self.channels.get(&lid) else { return };
        let live = |id: u64| {
            let has = |spec: Option<&crate::channel::CommitmentSpec>| {
                spec.is_some_and(|s| {
                    s.htlcs.iter().any(|h| {
                        h.id == id && h.direction == crate::channel::HtlcDirection::Received
                    })
                })
            };
            has(e.channel.local_commitment_spec())
                || has(e.channel.remote_commit.as_ref().map(|c| &c.spec))
                || has(e.channel.remote_commitment_spec())
        };
        if e.status != ChanStatus::Open {
            return;
        }
        let dead: Vec<(u64, u64)> =
            self.meta.resolutions.keys().filter(|(c, h)| *c == lid && !live(*h)).copied().collect();
        for k in dead {
            self.meta.resolutions.remove(&k);
        }
    }

    // ---- channels -------------------------------------------------------------------------

    /// Opens a channel of `amount` to a connected `peer`, pushing `push_msat` to it. Returns
    /// the temporary id; [`Action::FundingNeeded`] follows once the peer accepts.
    /// With `announce`, the channel becomes public once [`ANNOUNCEMENT_DEPTH`] deep.
    pub fn open_channel(
        &mut self,
        peer: PublicKey,
        amount: Amount,
        push_msat: u64,
        announce: bool,
    ) -> Result<(ChannelId, Vec<Action>), NodeError> {
        if !self.peers.contains(&peer) {
            return Err(NodeError::PeerNotConnected);
        }
        let temporary_channel_id = ChannelId(self.entropy(b"temporary channel id"));
        let keys = self.channel_keys();
        let request = OpenRequest {
            temporary_channel_id,
            funding_amount: amount,
            push_msat,
            feerate: self.config.feerate,
            announce,
        };
        let (channel, open) =
            Channel::new_outbound(keys, self.config.genesis, self.channel_config(), request)?;
        let lid = self.meta.next_local_id;
        self.meta.next_local_id += 1;
        self.channels.insert(
            lid,
            ChanEntry {
                peer,
                channel,
                scid: None,
                funding_tx: None,
                funding_height: None,
                status: ChanStatus::Open,
                opened_reported: false,
            },
        );
        self.send(peer, Message::OpenChannel(Box::new(open)));
        Ok((temporary_channel_id, self.finish()?))
    }

    /// The wallet's funding transaction for `temporary_channel_id` (signed, not broadcast):
    /// it must pay the requested output. The node sends `funding_created` and broadcasts the
    /// transaction only once the peer's `funding_signed` verifies.
    pub fn funding_transaction_ready(
        &mut self,
        temporary_channel_id: ChannelId,
        tx: Transaction,
    ) -> Result<Vec<Action>, NodeError> {
        let lid = self
            .channels
            .iter()
            .find(|(_, e)| e.channel.temporary_channel_id() == temporary_channel_id)
            .map(|(k, _)| *k)
            .ok_or(NodeError::UnknownChannel)?;
        let e = self.channels.get_mut(&lid).expect("found");
        let wanted = e.channel.funding_output()?;
        let vout = tx
            .outputs
            .iter()
            .position(|o| *o == wanted)
            .ok_or(NodeError::WrongFundingTransaction)?;
        let outpoint = OutPoint::new(tx.txid(), vout as u32);
        let msg = e.channel.funding_created(outpoint)?;
        e.funding_tx = Some(tx);
        let peer = e.peer;
        self.send(peer, Message::FundingCreated(msg));
        self.finish()
    }

    /// Starts a cooperative close (`shutdown`); the closing transaction pays both sides'
    /// shutdown scripts (ours: the sweep script) and is broadcast once negotiated.
    pub fn close_channel(&mut self, channel_id: ChannelId) -> Result<Vec<Action>, NodeError> {
        let lid = self.channel_by_id(&channel_id).ok_or(NodeError::UnknownChannel)?;
        let e = self.channels.get_mut(&lid).expect("found");
        let msgs = e.channel.send_shutdown()?;
        let peer = e.peer;
        for m in msgs {
            self.send(peer, m);
        }
        self.after_change(lid);
        self.finish()
    }

    /// Broadcasts our latest commitment; outputs are swept once it confirms.
    pub fn force_close(&mut self, channel_id: ChannelId) -> Result<Vec<Action>, NodeError> {
        let lid = self.channel_by_id(&channel_id).ok_or(NodeError::UnknownChannel)?;
        let holder = self.channels[&lid].channel.holder_commitment()?;
        let peer = self.channels[&lid].peer;
        self.send(peer, Message::Error(ErrorMessage { channel_id, data: b"force close".to_vec() }));
        self.force_close_with(lid, holder);
        self.finish()
    }

    pub(crate) fn force_close_local(&mut self, lid: u64) {
        let Some(e) = self.channels.get(&lid) else { return };
        if e.status != ChanStatus::Open {
            return;
        }
        match e.channel.holder_commitment() {
            Ok(holder) => self.force_close_with(lid, holder),
            // Never funded: nothing on chain.
            Err(_) => {
                self.channels.remove(&lid);
            }
        }
    }

    fn force_close_with(&mut self, lid: u64, holder: HolderCommitment) {
        let e = self.channels.get_mut(&lid).expect("channel exists");
        e.status = ChanStatus::ForceClosing;
        if let Some(scid) = e.scid {
            self.graph.funding_spent(scid);
        }
        self.meta.scheduled.push(Scheduled {
            channel: lid,
            tx: holder.tx.clone(),
            not_before: 0,
            after: None,
            resolves: None,
        });
        self.out.push(Action::Broadcast(holder.tx));
    }

    // ---- invoices and payments ------------------------------------------------------------

    /// Creates and stores an invoice for `amount_msat` (its preimage and payment secret are
    /// fresh), with our final CLTV delta, timestamp = the last `timer_tick`.
    pub fn create_invoice(
        &mut self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> Result<Invoice, NodeError> {
        let preimage = self.entropy(b"preimage");
        let secret = self.entropy(b"payment secret");
        let mut builder = InvoiceBuilder::new(self.config.network)
            .amount_milli_resonance(amount_msat)
            .timestamp(self.meta.now)
            .payment_preimage(&preimage)
            .payment_secret(secret)
            .description(description)
            .expiry(expiry_secs)
            .min_final_cltv_expiry_delta(self.config.min_final_cltv_expiry_delta);
        for hint in self.route_hints() {
            builder = builder.route_hint(hint);
        }
        let invoice = builder.sign(&self.config.node_key)?;
        self.dirty.insert(Dirty::Invoice(*invoice.payment_hash()));
        self.meta.invoices.insert(
            *invoice.payment_hash(),
            InvoiceRecord { invoice: invoice.to_string(), preimage, paid_msat: None },
        );
        self.finish()?;
        Ok(invoice)
    }

    /// Pays `invoice` (which must carry an amount): finds a route, sends the HTLC, and on
    /// failures attributed by the error onion retries around the failing channel or node,
    /// up to `max_payment_attempts` routes. The outcome is a `PaymentSent` or
    /// `PaymentFailed` event, possibly in this call's actions.
    pub fn pay_invoice(
        &mut self,
        invoice: &Invoice,
    ) -> Result<(PaymentId, Vec<Action>), NodeError> {
        if invoice.network() != self.config.network {
            return Err(NodeError::WrongNetwork);
        }
        if invoice.is_expired(self.meta.now) {
            return Err(NodeError::InvoiceExpired);
        }
        let amount_msat = invoice.amount_milli_resonance().ok_or(NodeError::NoAmount)?;
        for earlier in self.meta.payments.values() {
            if earlier.payment_hash == *invoice.payment_hash() {
                match earlier.status {
                    PaymentStatus::Succeeded { .. } => {
                        return Err(NodeError::AlreadyPaying("paid"));
                    }
                    PaymentStatus::Pending => return Err(NodeError::AlreadyPaying("being paid")),
                    PaymentStatus::Failed { .. } => {}
                }
            }
        }
        RouteParams::for_invoice(self.node_id, invoice, None, self.meta.height)?;
        let id = PaymentId(self.meta.next_payment_id);
        self.meta.next_payment_id += 1;
        self.dirty.insert(Dirty::Payment(id));
        self.meta.payments.insert(
            id,
            PaymentRecord {
                invoice: invoice.to_string(),
                payment_hash: *invoice.payment_hash(),
                amount_msat,
                status: PaymentStatus::Pending,
                attempts: 0,
                excluded_channels: Vec::new(),
                excluded_nodes: Vec::new(),
                attempt: None,
                retry: false,
            },
        );
        self.send_payment_attempt(id);
        Ok((id, self.finish()?))
    }

    /// The route a payment of `invoice` would take now.
    pub fn get_route(&self, invoice: &Invoice) -> Result<Route, NodeError> {
        let params = RouteParams::for_invoice(self.node_id, invoice, None, self.meta.height)?;
        Ok(find_route(&self.graph, &params, &self.scorer, self.now32())?)
    }

    pub(crate) fn now32(&self) -> u32 {
        u32::try_from(self.meta.now).unwrap_or(u32::MAX)
    }

    // ---- time -----------------------------------------------------------------------------

    /// The wall clock moved to `now` (seconds since the epoch): invoice expiry, graph
    /// timestamps, and payments waiting for a usable channel are retried.
    pub fn timer_tick(&mut self, now: u64) -> Result<Vec<Action>, NodeError> {
        self.meta.now = self.meta.now.max(now);
        self.retry_payments();
        self.send_announcement_signatures();
        self.finish()
    }

    // ---- queries --------------------------------------------------------------------------

    /// Our node id.
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The last block height given to [`LightningNode::block_connected`].
    pub fn height(&self) -> u32 {
        self.meta.height
    }

    /// Connected peers.
    pub fn list_peers(&self) -> Vec<PublicKey> {
        self.peers.iter().copied().collect()
    }

    /// Every channel the node knows, closed ones included.
    pub fn list_channels(&self) -> Vec<ChannelDetails> {
        self.channels
            .values()
            .map(|e| {
                let spec = e.channel.local_commitment_spec();
                ChannelDetails {
                    channel_id: e.channel.channel_id(),
                    peer: e.peer,
                    phase: e.channel.phase(),
                    status: e.status,
                    is_funder: e.channel.is_funder(),
                    capacity: e.channel.funding_amount,
                    local_balance_msat: spec.map_or(0, |s| s.balance_msat(Side::Local)),
                    remote_balance_msat: spec.map_or(0, |s| s.balance_msat(Side::Remote)),
                    pending_htlcs: spec.map_or(0, |s| s.htlcs.len()),
                    short_channel_id: e.scid,
                    funding_outpoint: e.channel.parameters().map(|p| p.funding_outpoint()),
                    onchain: e.channel.holder_commitment_unsigned().ok().map(|c| c.claims()),
                    feerate: spec.map(|s| s.feerate),
                }
            })
            .collect()
    }

    /// Our invoices with their status at the current time.
    pub fn list_invoices(&self) -> Vec<InvoiceDetails> {
        self.meta
            .invoices
            .iter()
            .map(|(hash, r)| {
                let expired =
                    Invoice::parse(&r.invoice).map(|i| i.is_expired(self.meta.now)).unwrap_or(true);
                let status = match r.paid_msat {
                    Some(m) => InvoiceStatus::Paid(m),
                    None if expired => InvoiceStatus::Expired,
                    None => InvoiceStatus::Unpaid,
                };
                InvoiceDetails { invoice: r.invoice.clone(), payment_hash: *hash, status }
            })
            .collect()
    }

    /// Our payments.
    pub fn list_payments(&self) -> Vec<PaymentDetails> {
        self.meta
            .payments
            .iter()
            .map(|(id, p)| PaymentDetails {
                id: *id,
                payment_hash: p.payment_hash,
                amount_msat: p.amount_msat,
                attempts: p.attempts,
                status: p.status.clone(),
            })
            .collect()
    }

    /// The commitment we would broadcast now for `channel_id`, with its HTLC transactions
    /// (what we could claim on chain).
    pub fn holder_commitment(&self, channel_id: ChannelId) -> Result<HolderCommitment, NodeError> {
        let lid = self.channel_by_id(&channel_id).ok_or(NodeError::UnknownChannel)?;
        Ok(self.channels[&lid].channel.holder_commitment()?)
    }

    /// The network graph used for payments (feed it verified gossip).
    pub fn graph(&self) -> &NetworkGraph {
        &self.graph
    }

    /// The network graph, to add gossip or route hints.
    pub fn graph_mut(&mut self) -> &mut NetworkGraph {
        &mut self.graph
    }

    /// What we charge to forward over a channel of `capacity_msat` (the policy to announce).
    pub fn forwarding_policy(&self, capacity_msat: u64) -> ChannelPolicy {
        self.forwarding_channel_policy(capacity_msat)
    }

    /// Our signed `channel_update`s for the usable channels with `peer`: our forwarding policy
    /// in our direction (docs/lightning.md §5), sent to the peer directly since channels are
    /// not announced. The peer puts them in its graph and its invoices' route hints, which is
    /// how a payer reaches it through us.
    pub fn channel_updates(&self, peer: &PublicKey) -> Vec<ChannelUpdate> {
        let direction_bit = u8::from(self.node_id > *peer);
        self.channels
            .values()
            .filter(|e| e.peer == *peer && e.status == ChanStatus::Open)
            .filter(|e| e.channel.phase() == Phase::Normal)
            .filter_map(|e| {
                let scid = e.scid?;
                let capacity = e.channel.parameters()?.funding_amount().0.saturating_mul(1000);
                let policy = self.forwarding_channel_policy(capacity);
                let unsigned = UnsignedChannelUpdate {
                    chain_hash: self.config.genesis,
                    short_channel_id: scid,
                    timestamp: self.now32(),
                    channel_flags: direction_bit,
                    cltv_expiry_delta: policy.cltv_expiry_delta,
                    htlc_minimum_msat: policy.htlc_minimum_msat,
                    fee_base_msat: policy.fee_base_msat,
                    fee_proportional_millionths: policy.fee_proportional_millionths,
                    htlc_maximum_msat: policy.htlc_maximum_msat,
                };
                Some(unsigned.sign(&self.config.node_key))
            })
            .collect()
    }

    /// A peer's `channel_update` for one of our channels (or any channel the graph knows):
    /// verified against the sender's key and applied to the graph.
    pub fn apply_channel_update(
        &mut self,
        update: &ChannelUpdate,
    ) -> Result<crate::router::UpdateOutcome, NodeError> {
        let now = self.now32();
        Ok(self.graph.apply_channel_update(update, now)?)
    }

    /// Route hints for our invoices: one per usable channel whose peer told us its policy
    /// towards us (a one-hop hint from the peer to us).
    fn route_hints(&self) -> Vec<RouteHint> {
        let mut hints = Vec::new();
        for e in self.channels.values() {
            let (Some(scid), ChanStatus::Open) = (e.scid, e.status) else { continue };
            if e.channel.phase() != Phase::Normal {
                continue;
            }
            let Some(info) = self.graph.channel(scid) else { continue };
            let Some(direction) = info.direction_from(&e.peer) else { continue };
            let Some(policy) =
                info.direction(direction).filter(|d| d.enabled && d.update.is_some())
            else {
                continue;
            };
            let hop = RouteHintHop {
                src_node_id: e.peer,
                short_channel_id: scid.0,
                fee_base_msat: policy.policy.fee_base_msat,
                fee_proportional_millionths: policy.policy.fee_proportional_millionths,
                cltv_expiry_delta: policy.policy.cltv_expiry_delta,
            };
            if let Ok(hint) = RouteHint::new(vec![hop]) {
                hints.push(hint);
            }
        }
        hints
    }
}

/// The channel id a channel message names.
fn channel_id_of(m: &Message) -> Option<ChannelId> {
    Some(match m {
        Message::AcceptChannel(m) => m.temporary_channel_id,
        Message::FundingCreated(m) => m.temporary_channel_id,
        Message::FundingSigned(m) => m.channel_id,
        Message::ChannelReady(m) => m.channel_id,
        Message::Shutdown(m) => m.channel_id,
        Message::ClosingSigned(m) => m.channel_id,
        Message::UpdateAddHtlc(m) => m.channel_id,
        Message::UpdateFulfillHtlc(m) => m.channel_id,
        Message::UpdateFailHtlc(m) => m.channel_id,
        Message::UpdateFailMalformedHtlc(m) => m.channel_id,
        Message::UpdateFee(m) => m.channel_id,
        Message::CommitmentSigned(m) => m.channel_id,
        Message::RevokeAndAck(m) => m.channel_id,
        Message::ChannelReestablish(m) => m.channel_id,
        _ => return None,
    })
}
