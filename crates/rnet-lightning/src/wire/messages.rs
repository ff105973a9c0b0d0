//! The peer messages of BOLT 1 and BOLT 2 with ResonanceNet's field sizes, and their framing:
//! `u16 type ‖ fields ‖ optional TLV extension stream`, all integers big-endian.

use std::fmt;

use rnet_crypto::PublicKey;
use rnet_primitives::{Amount, BlockHash, OutPoint, Txid};

use super::codec::{Put, Reader};
use super::error::WireError;
use crate::channel::ChannelPublicKeys;
use crate::channel::commitment::MAX_HTLCS_PER_DIRECTION;
use crate::onion::PACKET_LEN;
use crate::onion::tlv::{TlvReader, TlvRecord, write_record};

/// Longest message, type included (BOLT 8's transport limit).
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// An Ed25519 signature as carried in messages: 64 bytes, implicitly sighash `ALL`.
pub type SignatureBytes = [u8; 64];

/// `update_fail_malformed_htlc` failure codes must set this bit (BOLT 4 `BADONION`).
pub const BADONION: u16 = 0x8000;

/// BOLT 1/2 message type numbers.
pub mod msg_type {
    /// `warning`.
    pub const WARNING: u16 = 1;
    /// `init`.
    pub const INIT: u16 = 16;
    /// `error`.
    pub const ERROR: u16 = 17;
    /// `ping`.
    pub const PING: u16 = 18;
    /// `pong`.
    pub const PONG: u16 = 19;
    /// `open_channel`.
    pub const OPEN_CHANNEL: u16 = 32;
    /// `accept_channel`.
    pub const ACCEPT_CHANNEL: u16 = 33;
    /// `funding_created`.
    pub const FUNDING_CREATED: u16 = 34;
    /// `funding_signed`.
    pub const FUNDING_SIGNED: u16 = 35;
    /// `channel_ready`.
    pub const CHANNEL_READY: u16 = 36;
    /// `shutdown`.
    pub const SHUTDOWN: u16 = 38;
    /// `closing_signed`.
    pub const CLOSING_SIGNED: u16 = 39;
    /// `update_add_htlc`.
    pub const UPDATE_ADD_HTLC: u16 = 128;
    /// `update_fulfill_htlc`.
    pub const UPDATE_FULFILL_HTLC: u16 = 130;
    /// `update_fail_htlc`.
    pub const UPDATE_FAIL_HTLC: u16 = 131;
    /// `commitment_signed`.
    pub const COMMITMENT_SIGNED: u16 = 132;
    /// `revoke_and_ack`.
    pub const REVOKE_AND_ACK: u16 = 133;
    /// `update_fee`.
    pub const UPDATE_FEE: u16 = 134;
    /// `update_fail_malformed_htlc`.
    pub const UPDATE_FAIL_MALFORMED_HTLC: u16 = 135;
    /// `channel_reestablish`.
    pub const CHANNEL_REESTABLISH: u16 = 136;
    /// `announcement_signatures`.
    pub const ANNOUNCEMENT_SIGNATURES: u16 = 259;
}

/// A channel id: before funding the funder's random `temporary_channel_id`, afterwards the
/// funding txid's 32 bytes with the big-endian `u16` output index XORed into the last two
/// (BOLT 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ChannelId(pub [u8; 32]);

impl ChannelId {
    /// All zero: in `error` and `warning`, "every channel with this peer".
    pub const ALL: Self = Self([0; 32]);

    /// The channel id of a funding outpoint; the output index must fit the `u16` of
    /// `funding_created`.
    pub fn from_funding_outpoint(outpoint: &OutPoint) -> Result<Self, WireError> {
        let index = u16::try_from(outpoint.vout).map_err(|_| WireError::InvalidField {
            field: "funding_output_index",
            reason: "exceeds 65535",
        })?;
        let mut id = outpoint.txid.to_bytes();
        let [hi, lo] = index.to_be_bytes();
        id[30] ^= hi;
        id[31] ^= lo;
        Ok(Self(id))
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId({})", hex(&self.0))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `init` (16): the features each side supports, sent first on every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// Legacy global feature bits (BOLT 9), big-endian bit field.
    pub global_features: Vec<u8>,
    /// Feature bits (BOLT 9), big-endian bit field: bit 0 is the low bit of the last byte.
    pub features: Vec<u8>,
    /// TLV 1 `networks`: the chains (genesis ids) the node is interested in.
    pub networks: Option<Vec<BlockHash>>,
}

impl Init {
    /// The first even (required) feature bit set in either field that `known` does not list:
    /// BOLT 1 says the connection must then be failed.
    pub fn unknown_required_feature(&self, known: &[u16]) -> Option<u16> {
        [&self.global_features, &self.features].into_iter().find_map(|field| {
            let bits = field.len() * 8;
            (0..bits).step_by(2).find_map(|bit| {
                let byte = field[field.len() - 1 - bit / 8];
                let set = byte >> (bit % 8) & 1 == 1;
                let bit = u16::try_from(bit).unwrap_or(u16::MAX);
                (set && !known.contains(&bit)).then_some(bit)
            })
        })
    }
}

/// `error` (17): the sender fails the channel (or every channel, with [`ChannelId::ALL`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The channel concerned.
    pub channel_id: ChannelId,
    /// Diagnostic data (usually ASCII).
    pub data: Vec<u8>,
}

/// `warning` (1): a problem that does not fail the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The channel concerned.
    pub channel_id: ChannelId,
    /// Diagnostic data (usually ASCII).
    pub data: Vec<u8>,
}

/// `ping` (18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// Length of the `pong` asked for; 65532 or more asks for none.
    pub num_pong_bytes: u16,
    /// Padding, ignored.
    pub ignored: Vec<u8>,
}

impl Ping {
    /// The `pong` BOLT 1 asks for (none when `num_pong_bytes ≥ 65532`).
    pub fn response(&self) -> Option<Pong> {
        (self.num_pong_bytes < 65_532)
            .then(|| Pong { ignored: vec![0; usize::from(self.num_pong_bytes)] })
    }
}

/// `pong` (19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong {
    /// Padding of the length the ping asked for.
    pub ignored: Vec<u8>,
}

/// `open_channel` (32): the funder proposes a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenChannel {
    /// The genesis block id of the chain the channel is on.
    pub chain_hash: BlockHash,
    /// Random id used until the funding outpoint is known.
    pub temporary_channel_id: ChannelId,
    /// The channel's value, resonance.
    pub funding_amount: Amount,
    /// What the funder gives the fundee at once, msat.
    pub push_msat: u64,
    /// The funder's dust limit (its own commitment), resonance.
    pub dust_limit: Amount,
    /// The most the fundee may have in offered HTLCs at once, msat.
    pub max_htlc_value_in_flight_msat: u64,
    /// The balance the fundee must keep, resonance.
    pub channel_reserve: Amount,
    /// The smallest HTLC the funder accepts, msat.
    pub htlc_minimum_msat: u64,
    /// Fee rate of the first commitments, resonance per 1000 bytes.
    pub feerate_per_kb: u32,
    /// Delay on the fundee's own outputs, blocks.
    pub to_self_delay: u16,
    /// The most HTLCs the fundee may offer at once.
    pub max_accepted_htlcs: u16,
    /// The funder's channel keys.
    pub keys: ChannelPublicKeys,
    /// The funder's per-commitment point of its commitment 0.
    pub first_per_commitment_point: PublicKey,
    /// Bit 0: announce the channel; other bits are ignored.
    pub channel_flags: u8,
    /// TLV 0: the only script the funder may close to.
    pub upfront_shutdown_script: Option<Vec<u8>>,
}

/// `accept_channel` (33): the fundee accepts and sends its side of the parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptChannel {
    /// The funder's temporary id.
    pub temporary_channel_id: ChannelId,
    /// The fundee's dust limit, resonance.
    pub dust_limit: Amount,
    /// The most the funder may have in offered HTLCs at once, msat.
    pub max_htlc_value_in_flight_msat: u64,
    /// The balance the funder must keep, resonance.
    pub channel_reserve: Amount,
    /// The smallest HTLC the fundee accepts, msat.
    pub htlc_minimum_msat: u64,
    /// Confirmations of the funding transaction before `channel_ready`.
    pub minimum_depth: u32,
    /// Delay on the funder's own outputs, blocks.
    pub to_self_delay: u16,
    /// The most HTLCs the funder may offer at once.
    pub max_accepted_htlcs: u16,
    /// The fundee's channel keys.
    pub keys: ChannelPublicKeys,
    /// The fundee's per-commitment point of its commitment 0.
    pub first_per_commitment_point: PublicKey,
    /// TLV 0: the only script the fundee may close to.
    pub upfront_shutdown_script: Option<Vec<u8>>,
}

/// `funding_created` (34): the funding outpoint and the funder's signature of the fundee's
/// first commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingCreated {
    /// The temporary id.
    pub temporary_channel_id: ChannelId,
    /// The funding transaction's id.
    pub funding_txid: Txid,
    /// The funding output's index.
    pub funding_output_index: u16,
    /// The funder's signature of the fundee's commitment 0.
    pub signature: SignatureBytes,
}

/// `funding_signed` (35): the fundee's signature of the funder's first commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingSigned {
    /// The channel id (from the funding outpoint).
    pub channel_id: ChannelId,
    /// The fundee's signature of the funder's commitment 0.
    pub signature: SignatureBytes,
}

/// `channel_ready` (36): the funding transaction is deep enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelReady {
    /// The channel.
    pub channel_id: ChannelId,
    /// The sender's per-commitment point of its commitment 1.
    pub next_per_commitment_point: PublicKey,
}

/// `announcement_signatures` (259): the sender's half of a public channel's
/// `channel_announcement` (`docs/lightning.md` §5.9): its node key's and its funding key's
/// signatures over the announcement's signing digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncementSignatures {
    /// The channel.
    pub channel_id: ChannelId,
    /// Where its funding output is (`crate::gossip::ShortChannelId` as a `u64`).
    pub short_channel_id: u64,
    /// By the sender's node key.
    pub node_signature: SignatureBytes,
    /// By the sender's funding key (BOLT 7's `bitcoin_signature`).
    pub funding_signature: SignatureBytes,
}

/// `shutdown` (38): the sender starts a cooperative close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    /// The channel.
    pub channel_id: ChannelId,
    /// Where the sender's balance goes (a 32-byte key or script-hash output).
    pub script_pubkey: Vec<u8>,
}

/// `closing_signed` (39): a fee proposal for the closing transaction, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosingSigned {
    /// The channel.
    pub channel_id: ChannelId,
    /// The proposed fee, resonance.
    pub fee: Amount,
    /// The sender's signature of the closing transaction with that fee.
    pub signature: SignatureBytes,
}

/// `update_add_htlc` (128).
#[derive(Clone, PartialEq, Eq)]
pub struct UpdateAddHtlc {
    /// The channel.
    pub channel_id: ChannelId,
    /// The sender's HTLC id: 0 for its first, then one more each time.
    pub id: u64,
    /// The amount, msat.
    pub amount_msat: u64,
    /// Keccak-256d of the payment preimage.
    pub payment_hash: [u8; 32],
    /// Expiry, a block height.
    pub cltv_expiry: u32,
    /// The onion packet for the receiver ([`PACKET_LEN`] bytes).
    pub onion_routing_packet: Box<[u8; PACKET_LEN]>,
}

impl fmt::Debug for UpdateAddHtlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateAddHtlc")
            .field("channel_id", &self.channel_id)
            .field("id", &self.id)
            .field("amount_msat", &self.amount_msat)
            .field("payment_hash", &hex(&self.payment_hash))
            .field("cltv_expiry", &self.cltv_expiry)
            .finish_non_exhaustive()
    }
}

/// `update_fulfill_htlc` (130).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFulfillHtlc {
    /// The channel.
    pub channel_id: ChannelId,
    /// The id of the HTLC (the receiver of this message offered it).
    pub id: u64,
    /// The preimage.
    pub payment_preimage: [u8; 32],
}

/// `update_fail_htlc` (131).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFailHtlc {
    /// The channel.
    pub channel_id: ChannelId,
    /// The id of the HTLC (the receiver of this message offered it).
    pub id: u64,
    /// The error onion for the origin.
    pub reason: Vec<u8>,
}

/// `update_fail_malformed_htlc` (135).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFailMalformedHtlc {
    /// The channel.
    pub channel_id: ChannelId,
    /// The id of the HTLC (the receiver of this message offered it).
    pub id: u64,
    /// SHA-256 of the onion that could not be parsed.
    pub sha256_of_onion: [u8; 32],
    /// A BOLT 4 failure code with [`BADONION`] set.
    pub failure_code: u16,
}

/// `commitment_signed` (132): a signature of the receiver's next commitment and of each of its
/// HTLC transactions, in commitment output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentSigned {
    /// The channel.
    pub channel_id: ChannelId,
    /// Signature of the commitment's funding input.
    pub signature: SignatureBytes,
    /// One signature per untrimmed HTLC output.
    pub htlc_signatures: Vec<SignatureBytes>,
}

/// `revoke_and_ack` (133): revokes the sender's previous commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeAndAck {
    /// The channel.
    pub channel_id: ChannelId,
    /// The per-commitment secret of the revoked commitment.
    pub per_commitment_secret: [u8; 32],
    /// The sender's per-commitment point of its commitment after the next.
    pub next_per_commitment_point: PublicKey,
}

/// `update_fee` (134): the funder changes the commitment fee rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFee {
    /// The channel.
    pub channel_id: ChannelId,
    /// Resonance per 1000 bytes.
    pub feerate_per_kb: u32,
}

/// `channel_reestablish` (136): where the sender is after a reconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelReestablish {
    /// The channel.
    pub channel_id: ChannelId,
    /// The number of the next commitment the sender expects to be signed for it.
    pub next_commitment_number: u64,
    /// The number of the next commitment of the receiver the sender expects to be revoked.
    pub next_revocation_number: u64,
    /// The last per-commitment secret the sender received (zeros if none).
    pub your_last_per_commitment_secret: [u8; 32],
    /// The sender's per-commitment point of its current commitment.
    pub my_current_per_commitment_point: PublicKey,
}

/// Every message this codec knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `warning` (1).
    Warning(Warning),
    /// `init` (16).
    Init(Init),
    /// `error` (17).
    Error(ErrorMessage),
    /// `ping` (18).
    Ping(Ping),
    /// `pong` (19).
    Pong(Pong),
    /// `open_channel` (32).
    OpenChannel(Box<OpenChannel>),
    /// `accept_channel` (33).
    AcceptChannel(Box<AcceptChannel>),
    /// `funding_created` (34).
    FundingCreated(FundingCreated),
    /// `funding_signed` (35).
    FundingSigned(FundingSigned),
    /// `channel_ready` (36).
    ChannelReady(ChannelReady),
    /// `shutdown` (38).
    Shutdown(Shutdown),
    /// `closing_signed` (39).
    ClosingSigned(ClosingSigned),
    /// `update_add_htlc` (128).
    UpdateAddHtlc(UpdateAddHtlc),
    /// `update_fulfill_htlc` (130).
    UpdateFulfillHtlc(UpdateFulfillHtlc),
    /// `update_fail_htlc` (131).
    UpdateFailHtlc(UpdateFailHtlc),
    /// `update_fail_malformed_htlc` (135).
    UpdateFailMalformedHtlc(UpdateFailMalformedHtlc),
    /// `commitment_signed` (132).
    CommitmentSigned(CommitmentSigned),
    /// `revoke_and_ack` (133).
    RevokeAndAck(RevokeAndAck),
    /// `update_fee` (134).
    UpdateFee(UpdateFee),
    /// `channel_reestablish` (136).
    ChannelReestablish(ChannelReestablish),
    /// `announcement_signatures` (259).
    AnnouncementSignatures(AnnouncementSignatures),
}

/// The type of a framed message (its first two bytes), without decoding the rest: lets a
/// peer dispatch gossip types (`crate::gossip`) before calling [`Message::decode`].
pub fn message_type(bytes: &[u8]) -> Result<u16, WireError> {
    let t: [u8; 2] = bytes.get(..2).and_then(|b| b.try_into().ok()).ok_or(WireError::NoType)?;
    Ok(u16::from_be_bytes(t))
}

fn put_keys(out: &mut Vec<u8>, keys: &ChannelPublicKeys) {
    for k in [&keys.funding, &keys.revocation, &keys.payment, &keys.delayed_payment, &keys.htlc] {
        out.put(k.as_bytes());
    }
}

fn read_keys(r: &mut Reader<'_>) -> Result<ChannelPublicKeys, WireError> {
    Ok(ChannelPublicKeys {
        funding: r.key("funding_pubkey")?,
        revocation: r.key("revocation_basepoint")?,
        payment: r.key("payment_basepoint")?,
        delayed_payment: r.key("delayed_payment_basepoint")?,
        htlc: r.key("htlc_basepoint")?,
    })
}

/// Reads the TLV extension stream: returns the records whose type is in `known`; skips unknown
/// odd types; fails on unknown even types and malformed streams.
fn read_tlvs<'a>(
    msg_type: u16,
    bytes: &'a [u8],
    known: &[u64],
) -> Result<Vec<TlvRecord<'a>>, WireError> {
    let mut out = Vec::new();
    for record in TlvReader::new(bytes) {
        let record = record?;
        if known.contains(&record.tlv_type) {
            out.push(record);
        } else if record.tlv_type % 2 == 0 {
            return Err(WireError::UnknownEvenTlv { msg_type, tlv_type: record.tlv_type });
        }
    }
    Ok(out)
}

fn read_shutdown_tlv(msg_type: u16, rest: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
    Ok(read_tlvs(msg_type, rest, &[0])?.first().map(|r| r.value.to_vec()))
}

impl Message {
    /// The BOLT type number.
    pub fn msg_type(&self) -> u16 {
        use msg_type::*;
        match self {
            Self::Warning(_) => WARNING,
            Self::Init(_) => INIT,
            Self::Error(_) => ERROR,
            Self::Ping(_) => PING,
            Self::Pong(_) => PONG,
            Self::OpenChannel(_) => OPEN_CHANNEL,
            Self::AcceptChannel(_) => ACCEPT_CHANNEL,
            Self::FundingCreated(_) => FUNDING_CREATED,
            Self::FundingSigned(_) => FUNDING_SIGNED,
            Self::ChannelReady(_) => CHANNEL_READY,
            Self::Shutdown(_) => SHUTDOWN,
            Self::ClosingSigned(_) => CLOSING_SIGNED,
            Self::UpdateAddHtlc(_) => UPDATE_ADD_HTLC,
            Self::UpdateFulfillHtlc(_) => UPDATE_FULFILL_HTLC,
            Self::UpdateFailHtlc(_) => UPDATE_FAIL_HTLC,
            Self::UpdateFailMalformedHtlc(_) => UPDATE_FAIL_MALFORMED_HTLC,
            Self::CommitmentSigned(_) => COMMITMENT_SIGNED,
            Self::RevokeAndAck(_) => REVOKE_AND_ACK,
            Self::UpdateFee(_) => UPDATE_FEE,
            Self::ChannelReestablish(_) => CHANNEL_REESTABLISH,
            Self::AnnouncementSignatures(_) => ANNOUNCEMENT_SIGNATURES,
        }
    }

    /// The channel a channel message is about (`None` for `init`, `ping`, `pong`).
    pub fn channel_id(&self) -> Option<ChannelId> {
        Some(match self {
            Self::Init(_) | Self::Ping(_) | Self::Pong(_) => return None,
            Self::Warning(m) => m.channel_id,
            Self::Error(m) => m.channel_id,
            Self::OpenChannel(m) => m.temporary_channel_id,
            Self::AcceptChannel(m) => m.temporary_channel_id,
            Self::FundingCreated(m) => m.temporary_channel_id,
            Self::FundingSigned(m) => m.channel_id,
            Self::ChannelReady(m) => m.channel_id,
            Self::Shutdown(m) => m.channel_id,
            Self::ClosingSigned(m) => m.channel_id,
            Self::UpdateAddHtlc(m) => m.channel_id,
            Self::UpdateFulfillHtlc(m) => m.channel_id,
            Self::UpdateFailHtlc(m) => m.channel_id,
            Self::UpdateFailMalformedHtlc(m) => m.channel_id,
            Self::CommitmentSigned(m) => m.channel_id,
            Self::RevokeAndAck(m) => m.channel_id,
            Self::UpdateFee(m) => m.channel_id,
            Self::ChannelReestablish(m) => m.channel_id,
            Self::AnnouncementSignatures(m) => m.channel_id,
        })
    }

    /// The framed message: `u16 type ‖ fields ‖ TLV records`. Fails if a variable-length field
    /// or the whole message is too long for its length prefix / [`MAX_MESSAGE_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        out.put_u16(self.msg_type());
        match self {
            Self::Warning(Warning { channel_id, data })
            | Self::Error(ErrorMessage { channel_id, data }) => {
                out.put(&channel_id.0);
                out.put_var("data", data)?;
            }
            Self::Init(m) => {
                out.put_var("globalfeatures", &m.global_features)?;
                out.put_var("features", &m.features)?;
                if let Some(networks) = &m.networks {
                    let value: Vec<u8> = networks.iter().flat_map(|h| h.to_bytes()).collect();
                    write_record(&mut out, 1, &value);
                }
            }
            Self::Ping(m) => {
                out.put_u16(m.num_pong_bytes);
                out.put_var("ignored", &m.ignored)?;
            }
            Self::Pong(m) => out.put_var("ignored", &m.ignored)?,
            Self::OpenChannel(m) => {
                out.put(m.chain_hash.as_bytes());
                out.put(&m.temporary_channel_id.0);
                out.put_u64(m.funding_amount.0);
                out.put_u64(m.push_msat);
                out.put_u64(m.dust_limit.0);
                out.put_u64(m.max_htlc_value_in_flight_msat);
                out.put_u64(m.channel_reserve.0);
                out.put_u64(m.htlc_minimum_msat);
                out.put_u32(m.feerate_per_kb);
                out.put_u16(m.to_self_delay);
                out.put_u16(m.max_accepted_htlcs);
                put_keys(&mut out, &m.keys);
                out.put(m.first_per_commitment_point.as_bytes());
                out.put_u8(m.channel_flags);
                if let Some(script) = &m.upfront_shutdown_script {
                    write_record(&mut out, 0, script);
                }
            }
            Self::AcceptChannel(m) => {
                out.put(&m.temporary_channel_id.0);
                out.put_u64(m.dust_limit.0);
                out.put_u64(m.max_htlc_value_in_flight_msat);
                out.put_u64(m.channel_reserve.0);
                out.put_u64(m.htlc_minimum_msat);
                out.put_u32(m.minimum_depth);
                out.put_u16(m.to_self_delay);
                out.put_u16(m.max_accepted_htlcs);
                put_keys(&mut out, &m.keys);
                out.put(m.first_per_commitment_point.as_bytes());
                if let Some(script) = &m.upfront_shutdown_script {
                    write_record(&mut out, 0, script);
                }
            }
            Self::FundingCreated(m) => {
                out.put(&m.temporary_channel_id.0);
                out.put(m.funding_txid.as_bytes());
                out.put_u16(m.funding_output_index);
                out.put(&m.signature);
            }
            Self::FundingSigned(m) => {
                out.put(&m.channel_id.0);
                out.put(&m.signature);
            }
            Self::ChannelReady(m) => {
                out.put(&m.channel_id.0);
                out.put(m.next_per_commitment_point.as_bytes());
            }
            Self::AnnouncementSignatures(m) => {
                out.put(&m.channel_id.0);
                out.put_u64(m.short_channel_id);
                out.put(&m.node_signature);
                out.put(&m.funding_signature);
            }
            Self::Shutdown(m) => {
                out.put(&m.channel_id.0);
                out.put_var("scriptpubkey", &m.script_pubkey)?;
            }
            Self::ClosingSigned(m) => {
                out.put(&m.channel_id.0);
                out.put_u64(m.fee.0);
                out.put(&m.signature);
            }
            Self::UpdateAddHtlc(m) => {
                out.put(&m.channel_id.0);
                out.put_u64(m.id);
                out.put_u64(m.amount_msat);
                out.put(&m.payment_hash);
                out.put_u32(m.cltv_expiry);
                out.put(&m.onion_routing_packet[..]);
            }
            Self::UpdateFulfillHtlc(m) => {
                out.put(&m.channel_id.0);
                out.put_u64(m.id);
                out.put(&m.payment_preimage);
            }
            Self::UpdateFailHtlc(m) => {
                out.put(&m.channel_id.0);
                out.put_u64(m.id);
                out.put_var("reason", &m.reason)?;
            }
            Self::UpdateFailMalformedHtlc(m) => {
                out.put(&m.channel_id.0);
                out.put_u64(m.id);
                out.put(&m.sha256_of_onion);
                out.put_u16(m.failure_code);
            }
            Self::CommitmentSigned(m) => {
                out.put(&m.channel_id.0);
                out.put(&m.signature);
                let n = m.htlc_signatures.len();
                if n > 2 * MAX_HTLCS_PER_DIRECTION {
                    return Err(WireError::FieldTooLong { field: "htlc_signature", len: n });
                }
                // At most 966, so it fits.
                out.put_u16(n as u16);
                for sig in &m.htlc_signatures {
                    out.put(sig);
                }
            }
            Self::RevokeAndAck(m) => {
                out.put(&m.channel_id.0);
                out.put(&m.per_commitment_secret);
                out.put(m.next_per_commitment_point.as_bytes());
            }
            Self::UpdateFee(m) => {
                out.put(&m.channel_id.0);
                out.put_u32(m.feerate_per_kb);
            }
            Self::ChannelReestablish(m) => {
                out.put(&m.channel_id.0);
                out.put_u64(m.next_commitment_number);
                out.put_u64(m.next_revocation_number);
                out.put(&m.your_last_per_commitment_secret);
                out.put(m.my_current_per_commitment_point.as_bytes());
            }
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(WireError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Decodes one framed message. `Ok(None)` is an unknown **odd** type, which BOLT 1 says to
    /// ignore; an unknown even type, a truncated or invalid field, or a malformed TLV extension
    /// (including an unknown even TLV type) is an error. Bytes after the fixed fields must form
    /// a TLV stream; records of unknown odd types in it are skipped (and so not re-encoded).
    pub fn decode(bytes: &[u8]) -> Result<Option<Self>, WireError> {
        use msg_type::*;
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(WireError::TooLarge(bytes.len()));
        }
        let t = message_type(bytes)?;
        let mut r = Reader::new(&bytes[2..]);
        let r = &mut r;
        let channel_id = |r: &mut Reader<'_>| Ok::<_, WireError>(ChannelId(r.array("channel_id")?));
        let msg = match t {
            WARNING => {
                Self::Warning(Warning { channel_id: channel_id(r)?, data: r.var_bytes("data")? })
            }
            ERROR => {
                Self::Error(ErrorMessage { channel_id: channel_id(r)?, data: r.var_bytes("data")? })
            }
            INIT => {
                let global_features = r.var_bytes("globalfeatures")?;
                let features = r.var_bytes("features")?;
                let networks = match read_tlvs(t, r.rest(), &[1])?.first() {
                    None => None,
                    Some(rec) => {
                        if rec.value.len() % 32 != 0 {
                            return Err(WireError::InvalidField {
                                field: "networks",
                                reason: "not a multiple of 32 bytes",
                            });
                        }
                        Some(
                            rec.value
                                .chunks_exact(32)
                                .map(|c| {
                                    let mut h = [0u8; 32];
                                    h.copy_from_slice(c);
                                    BlockHash(h)
                                })
                                .collect(),
                        )
                    }
                };
                return Ok(Some(Self::Init(Init { global_features, features, networks })));
            }
            PING => Self::Ping(Ping {
                num_pong_bytes: r.u16("num_pong_bytes")?,
                ignored: r.var_bytes("ignored")?,
            }),
            PONG => Self::Pong(Pong { ignored: r.var_bytes("ignored")? }),
            OPEN_CHANNEL => {
                let m = OpenChannel {
                    chain_hash: BlockHash(r.array("chain_hash")?),
                    temporary_channel_id: ChannelId(r.array("temporary_channel_id")?),
                    funding_amount: Amount(r.u64("funding_resonance")?),
                    push_msat: r.u64("push_msat")?,
                    dust_limit: Amount(r.u64("dust_limit")?),
                    max_htlc_value_in_flight_msat: r.u64("max_htlc_value_in_flight_msat")?,
                    channel_reserve: Amount(r.u64("channel_reserve")?),
                    htlc_minimum_msat: r.u64("htlc_minimum_msat")?,
                    feerate_per_kb: r.u32("feerate_per_kb")?,
                    to_self_delay: r.u16("to_self_delay")?,
                    max_accepted_htlcs: r.u16("max_accepted_htlcs")?,
                    keys: read_keys(r)?,
                    first_per_commitment_point: r.key("first_per_commitment_point")?,
                    channel_flags: r.u8("channel_flags")?,
                    upfront_shutdown_script: read_shutdown_tlv(t, r.rest())?,
                };
                return Ok(Some(Self::OpenChannel(Box::new(m))));
            }
            ACCEPT_CHANNEL => {
                let m = AcceptChannel {
                    temporary_channel_id: ChannelId(r.array("temporary_channel_id")?),
                    dust_limit: Amount(r.u64("dust_limit")?),
                    max_htlc_value_in_flight_msat: r.u64("max_htlc_value_in_flight_msat")?,
                    channel_reserve: Amount(r.u64("channel_reserve")?),
                    htlc_minimum_msat: r.u64("htlc_minimum_msat")?,
                    minimum_depth: r.u32("minimum_depth")?,
                    to_self_delay: r.u16("to_self_delay")?,
                    max_accepted_htlcs: r.u16("max_accepted_htlcs")?,
                    keys: read_keys(r)?,
                    first_per_commitment_point: r.key("first_per_commitment_point")?,
                    upfront_shutdown_script: read_shutdown_tlv(t, r.rest())?,
                };
                return Ok(Some(Self::AcceptChannel(Box::new(m))));
            }
            FUNDING_CREATED => Self::FundingCreated(FundingCreated {
                temporary_channel_id: ChannelId(r.array("temporary_channel_id")?),
                funding_txid: Txid::from_bytes(r.array("funding_txid")?),
                funding_output_index: r.u16("funding_output_index")?,
                signature: r.array("signature")?,
            }),
            FUNDING_SIGNED => Self::FundingSigned(FundingSigned {
                channel_id: channel_id(r)?,
                signature: r.array("signature")?,
            }),
            CHANNEL_READY => Self::ChannelReady(ChannelReady {
                channel_id: channel_id(r)?,
                next_per_commitment_point: r.key("next_per_commitment_point")?,
            }),
            ANNOUNCEMENT_SIGNATURES => Self::AnnouncementSignatures(AnnouncementSignatures {
                channel_id: channel_id(r)?,
                short_channel_id: r.u64("short_channel_id")?,
                node_signature: r.array("node_signature")?,
                funding_signature: r.array("funding_signature")?,
            }),
            SHUTDOWN => Self::Shutdown(Shutdown {
                channel_id: channel_id(r)?,
                script_pubkey: r.var_bytes("scriptpubkey")?,
            }),
            CLOSING_SIGNED => Self::ClosingSigned(ClosingSigned {
                channel_id: channel_id(r)?,
                fee: Amount(r.u64("fee_resonance")?),
                signature: r.array("signature")?,
            }),
            UPDATE_ADD_HTLC => Self::UpdateAddHtlc(UpdateAddHtlc {
                channel_id: channel_id(r)?,
                id: r.u64("id")?,
                amount_msat: r.u64("amount_msat")?,
                payment_hash: r.array("payment_hash")?,
                cltv_expiry: r.u32("cltv_expiry")?,
                onion_routing_packet: Box::new(r.array("onion_routing_packet")?),
            }),
            UPDATE_FULFILL_HTLC => Self::UpdateFulfillHtlc(UpdateFulfillHtlc {
                channel_id: channel_id(r)?,
                id: r.u64("id")?,
                payment_preimage: r.array("payment_preimage")?,
            }),
            UPDATE_FAIL_HTLC => Self::UpdateFailHtlc(UpdateFailHtlc {
                channel_id: channel_id(r)?,
                id: r.u64("id")?,
                reason: r.var_bytes("reason")?,
            }),
            UPDATE_FAIL_MALFORMED_HTLC => Self::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
                channel_id: channel_id(r)?,
                id: r.u64("id")?,
                sha256_of_onion: r.array("sha256_of_onion")?,
                failure_code: r.u16("failure_code")?,
            }),
            COMMITMENT_SIGNED => {
                let channel_id = channel_id(r)?;
                let signature = r.array("signature")?;
                let n = usize::from(r.u16("num_htlcs")?);
                if n > 2 * MAX_HTLCS_PER_DIRECTION {
                    return Err(WireError::InvalidField {
                        field: "num_htlcs",
                        reason: "more than 966 HTLC signatures",
                    });
                }
                let raw = r.take(n * 64, "htlc_signature")?;
                let htlc_signatures = raw
                    .chunks_exact(64)
                    .map(|c| {
                        let mut s = [0u8; 64];
                        s.copy_from_slice(c);
                        s
                    })
                    .collect();
                Self::CommitmentSigned(CommitmentSigned { channel_id, signature, htlc_signatures })
            }
            REVOKE_AND_ACK => Self::RevokeAndAck(RevokeAndAck {
                channel_id: channel_id(r)?,
                per_commitment_secret: r.array("per_commitment_secret")?,
                next_per_commitment_point: r.key("next_per_commitment_point")?,
            }),
            UPDATE_FEE => Self::UpdateFee(UpdateFee {
                channel_id: channel_id(r)?,
                feerate_per_kb: r.u32("feerate_per_kb")?,
            }),
            CHANNEL_REESTABLISH => Self::ChannelReestablish(ChannelReestablish {
                channel_id: channel_id(r)?,
                next_commitment_number: r.u64("next_commitment_number")?,
                next_revocation_number: r.u64("next_revocation_number")?,
                your_last_per_commitment_secret: r.array("your_last_per_commitment_secret")?,
                my_current_per_commitment_point: r.key("my_current_per_commitment_point")?,
            }),
            t if t % 2 == 1 => return Ok(None),
            t => return Err(WireError::UnknownEvenType(t)),
        };
        // Messages without TLV records of their own may still carry an extension stream.
        read_tlvs(t, r.rest(), &[])?;
        Ok(Some(msg))
    }
}
