//! The three gossip messages: layout, strict decoding, signing and verification.

use rnet_crypto::{PublicKey, Signature, SigningKey, keccak256d};
use rnet_primitives::{Amount, BlockHash, TxOut};
use rnet_script::ScriptTemplate;

use super::error::{GossipError, SignatureRole};
use super::scid::ShortChannelId;
use crate::channel::{ChannelError, FundingScript};

/// BOLT 1 type of `channel_announcement`.
pub const CHANNEL_ANNOUNCEMENT_TYPE: u16 = 256;
/// BOLT 1 type of `node_announcement`.
pub const NODE_ANNOUNCEMENT_TYPE: u16 = 257;
/// BOLT 1 type of `channel_update`.
pub const CHANNEL_UPDATE_TYPE: u16 = 258;
/// Longest payload a BOLT 1 message can carry (65535 bytes minus the 2-byte type).
pub const MAX_GOSSIP_PAYLOAD_LEN: usize = 65_533;
/// Domain-separation prefix of every gossip signing digest ([`signing_digest`]).
pub const SIGNING_DOMAIN: &[u8] = b"rnet/gossip/v1";
/// `message_flags` bit 0: `htlc_maximum_msat` is present. It always is, so `message_flags`
/// is exactly this value.
pub const MESSAGE_FLAG_MUST_BE_ONE: u8 = 1;
/// `channel_flags` bit 0: the direction (0: sent by `node_id_1`, 1: by `node_id_2`).
pub const CHANNEL_FLAG_DIRECTION: u8 = 1;
/// `channel_flags` bit 1: the direction is disabled.
pub const CHANNEL_FLAG_DISABLED: u8 = 2;
/// Encoded length of a `channel_update` payload.
pub const CHANNEL_UPDATE_LEN: usize = 64 + 32 + 8 + 4 + 1 + 1 + 2 + 8 + 4 + 4 + 8;

const SIG_LEN: usize = 64;
const ANNOUNCEMENT_SIGS_LEN: usize = 4 * SIG_LEN;

/// The digest a gossip signature signs:
/// `Keccak-256d(SIGNING_DOMAIN ‖ u16 msg_type (big-endian) ‖ signed)`, where `signed` is the
/// message payload after its signature field(s). Ed25519 signs these 32 bytes.
pub fn signing_digest(msg_type: u16, signed: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(SIGNING_DOMAIN.len() + 2 + signed.len());
    buf.extend_from_slice(SIGNING_DOMAIN);
    buf.extend_from_slice(&msg_type.to_be_bytes());
    buf.extend_from_slice(signed);
    keccak256d(&buf)
}

/// Whether a gossip feature vector sets an even (required) bit. No gossip feature is defined
/// yet, so every even bit is unknown, and a channel or node requiring one must not be used.
pub fn has_unknown_even_feature(features: &[u8]) -> bool {
    features.iter().any(|b| b & 0x55 != 0)
}

// ---------------------------------------------------------------------------------------------

/// A strict cursor over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, GossipError> {
        if bytes.len() > MAX_GOSSIP_PAYLOAD_LEN {
            return Err(GossipError::TooLong(bytes.len()));
        }
        Ok(Self { bytes, pos: 0 })
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], GossipError> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(GossipError::Truncated { field, needed: n, available });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], GossipError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, GossipError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, GossipError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, GossipError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, GossipError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn key(&mut self, field: &'static str) -> Result<PublicKey, GossipError> {
        PublicKey::from_bytes(&self.array(field)?).map_err(|_| GossipError::InvalidPublicKey(field))
    }

    fn sig(&mut self, field: &'static str) -> Result<Signature, GossipError> {
        Ok(Signature::from_bytes(self.array(field)?))
    }

    /// `u16 len ‖ len bytes`.
    fn var_bytes(&mut self, field: &'static str) -> Result<&'a [u8], GossipError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    fn finish(self) -> Result<(), GossipError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(GossipError::TrailingBytes(n)),
        }
    }
}

fn put_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), GossipError> {
    let len = u16::try_from(bytes.len()).map_err(|_| GossipError::TooLong(bytes.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn check_len(out: Vec<u8>) -> Result<Vec<u8>, GossipError> {
    if out.len() > MAX_GOSSIP_PAYLOAD_LEN {
        return Err(GossipError::TooLong(out.len()));
    }
    Ok(out)
}

fn not_weak(key: &PublicKey, field: &'static str) -> Result<(), GossipError> {
    if key.is_weak() { Err(GossipError::WeakKey(field)) } else { Ok(()) }
}

fn verify_sig(
    key: &PublicKey,
    digest: &[u8; 32],
    sig: &Signature,
    role: SignatureRole,
) -> Result<(), GossipError> {
    key.verify(digest, sig).map_err(|_| GossipError::InvalidSignature(role))
}

// ---------------------------------------------------------------------------------------------

/// The signed part of a `channel_announcement`: everything after the four signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedChannelAnnouncement {
    /// Gossip feature bits (BOLT 9 layout, big-endian); none are defined yet.
    pub features: Vec<u8>,
    /// The chain: its genesis block id.
    pub chain_hash: BlockHash,
    /// Where the funding output is.
    pub short_channel_id: ShortChannelId,
    /// The smaller node id (bytewise).
    pub node_id_1: PublicKey,
    /// The larger node id.
    pub node_id_2: PublicKey,
    /// `node_id_1`'s funding key.
    pub funding_key_1: PublicKey,
    /// `node_id_2`'s funding key.
    pub funding_key_2: PublicKey,
}

impl UnsignedChannelAnnouncement {
    /// The signed bytes: `u16 len ‖ features ‖ chain_hash ‖ short_channel_id ‖ node_id_1 ‖
    /// node_id_2 ‖ funding_key_1 ‖ funding_key_2`.
    pub fn encode(&self) -> Result<Vec<u8>, GossipError> {
        let mut out = Vec::with_capacity(2 + self.features.len() + 32 + 8 + 4 * 32);
        put_var_bytes(&mut out, &self.features)?;
        out.extend_from_slice(self.chain_hash.as_bytes());
        out.extend_from_slice(&self.short_channel_id.to_bytes());
        for key in [&self.node_id_1, &self.node_id_2, &self.funding_key_1, &self.funding_key_2] {
            out.extend_from_slice(key.as_bytes());
        }
        check_len(out)
    }

    /// The digest all four keys sign ([`signing_digest`] with type 256).
    pub fn signing_digest(&self) -> Result<[u8; 32], GossipError> {
        Ok(signing_digest(CHANNEL_ANNOUNCEMENT_TYPE, &self.encode()?))
    }

    /// One party's signature (with a node key or a funding key) over [`Self::signing_digest`].
    pub fn sign(&self, key: &SigningKey) -> Result<Signature, GossipError> {
        Ok(key.sign(&self.signing_digest()?))
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, GossipError> {
        Ok(Self {
            features: r.var_bytes("features")?.to_vec(),
            chain_hash: BlockHash::from_bytes(r.array("chain_hash")?),
            short_channel_id: ShortChannelId(r.u64("short_channel_id")?),
            node_id_1: r.key("node_id_1")?,
            node_id_2: r.key("node_id_2")?,
            funding_key_1: r.key("funding_key_1")?,
            funding_key_2: r.key("funding_key_2")?,
        })
    }
}

/// `channel_announcement` (type 256): proves that two nodes own a funding output, signed by
/// both node keys and both funding keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAnnouncement {
    /// Signature by `node_id_1`.
    pub node_signature_1: Signature,
    /// Signature by `node_id_2`.
    pub node_signature_2: Signature,
    /// Signature by `funding_key_1`.
    pub funding_signature_1: Signature,
    /// Signature by `funding_key_2`.
    pub funding_signature_2: Signature,
    /// The signed fields.
    pub contents: UnsignedChannelAnnouncement,
}

impl ChannelAnnouncement {
    /// Sign `contents` with all four keys (for tests and for a node that holds the
    /// counterparty's signatures already, use the fields directly).
    pub fn sign_all(
        contents: UnsignedChannelAnnouncement,
        node_key_1: &SigningKey,
        node_key_2: &SigningKey,
        funding_key_1: &SigningKey,
        funding_key_2: &SigningKey,
    ) -> Result<Self, GossipError> {
        let digest = contents.signing_digest()?;
        Ok(Self {
            node_signature_1: node_key_1.sign(&digest),
            node_signature_2: node_key_2.sign(&digest),
            funding_signature_1: funding_key_1.sign(&digest),
            funding_signature_2: funding_key_2.sign(&digest),
            contents,
        })
    }

    /// The payload: the four signatures, then [`UnsignedChannelAnnouncement::encode`].
    pub fn encode(&self) -> Result<Vec<u8>, GossipError> {
        let signed = self.contents.encode()?;
        let mut out = Vec::with_capacity(ANNOUNCEMENT_SIGS_LEN + signed.len());
        for sig in [
            &self.node_signature_1,
            &self.node_signature_2,
            &self.funding_signature_1,
            &self.funding_signature_2,
        ] {
            out.extend_from_slice(sig.as_bytes());
        }
        out.extend_from_slice(&signed);
        check_len(out)
    }

    /// Strictly decode a payload (keys must be curve points, no trailing bytes). Does not
    /// verify; call [`Self::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, GossipError> {
        let mut r = Reader::new(bytes)?;
        let node_signature_1 = r.sig("node_signature_1")?;
        let node_signature_2 = r.sig("node_signature_2")?;
        let funding_signature_1 = r.sig("funding_signature_1")?;
        let funding_signature_2 = r.sig("funding_signature_2")?;
        let contents = UnsignedChannelAnnouncement::read(&mut r)?;
        r.finish()?;
        Ok(Self {
            node_signature_1,
            node_signature_2,
            funding_signature_1,
            funding_signature_2,
            contents,
        })
    }

    /// Check everything but the funding output: the chain, `node_id_1 < node_id_2`, no weak
    /// key, distinct funding keys, and the four signatures over the same digest.
    pub fn verify(&self, chain_hash: &BlockHash) -> Result<(), GossipError> {
        let c = &self.contents;
        if c.chain_hash != *chain_hash {
            return Err(GossipError::WrongChain);
        }
        if c.node_id_1.as_bytes() >= c.node_id_2.as_bytes() {
            return Err(GossipError::NodeIdsNotOrdered);
        }
        not_weak(&c.node_id_1, "node_id_1")?;
        not_weak(&c.node_id_2, "node_id_2")?;
        not_weak(&c.funding_key_1, "funding_key_1")?;
        not_weak(&c.funding_key_2, "funding_key_2")?;
        if c.funding_key_1 == c.funding_key_2 {
            return Err(GossipError::DuplicateFundingKey);
        }
        let digest = c.signing_digest()?;
        verify_sig(&c.node_id_1, &digest, &self.node_signature_1, SignatureRole::Node1)?;
        verify_sig(&c.node_id_2, &digest, &self.node_signature_2, SignatureRole::Node2)?;
        verify_sig(&c.funding_key_1, &digest, &self.funding_signature_1, SignatureRole::Funding1)?;
        verify_sig(&c.funding_key_2, &digest, &self.funding_signature_2, SignatureRole::Funding2)
    }
}

/// The scriptPubKey the announced funding output must have: `OP_0 Keccak-256d(2 <k1> <k2> 2
/// CHECKMULTISIG)` over the two funding keys in bytewise order (`docs/lightning.md` §1.4,
/// [`FundingScript`]). The node compares it with the output at `short_channel_id`.
pub fn expected_funding_script_pubkey(
    announcement: &UnsignedChannelAnnouncement,
) -> Result<Vec<u8>, GossipError> {
    let script = FundingScript::new(announcement.funding_key_1, announcement.funding_key_2)
        .map_err(|e| match e {
            ChannelError::DuplicateFundingKey => GossipError::DuplicateFundingKey,
            _ => GossipError::WeakKey("funding key"),
        })?;
    Ok(script.script_pubkey())
}

/// Check the unspent output found at the announcement's `short_channel_id` against the
/// announced funding keys and return its value (the channel capacity, in resonance).
pub fn check_funding_output(
    announcement: &UnsignedChannelAnnouncement,
    output: &TxOut,
) -> Result<Amount, GossipError> {
    if output.script_pubkey != expected_funding_script_pubkey(announcement)? {
        return Err(GossipError::FundingScriptMismatch);
    }
    Ok(output.value)
}

// ---------------------------------------------------------------------------------------------

/// A network address descriptor of a `node_announcement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetAddress {
    /// Type 1: IPv4 address and port (6 bytes).
    Ipv4 {
        /// Address bytes.
        addr: [u8; 4],
        /// TCP port.
        port: u16,
    },
    /// Type 2: IPv6 address and port (18 bytes).
    Ipv6 {
        /// Address bytes.
        addr: [u8; 16],
        /// TCP port.
        port: u16,
    },
    /// Type 4: Tor v3 onion service (37 bytes).
    TorV3 {
        /// The service's Ed25519 key.
        ed25519_pubkey: [u8; 32],
        /// The address checksum.
        checksum: u16,
        /// The address version (3).
        version: u8,
        /// TCP port.
        port: u16,
    },
    /// Type 5: DNS hostname (`u8 len ‖ hostname ‖ u16 port`), 1 to 255 printable ASCII bytes.
    Dns {
        /// The hostname.
        hostname: String,
        /// TCP port.
        port: u16,
    },
}

impl NetAddress {
    /// The descriptor type byte.
    pub fn type_byte(&self) -> u8 {
        match self {
            Self::Ipv4 { .. } => 1,
            Self::Ipv6 { .. } => 2,
            Self::TorV3 { .. } => 4,
            Self::Dns { .. } => 5,
        }
    }

    fn is_known_type(t: u8) -> bool {
        matches!(t, 1 | 2 | 4 | 5)
    }

    fn valid_hostname(h: &[u8]) -> bool {
        !h.is_empty() && h.len() <= 255 && h.iter().all(|b| (0x21..=0x7e).contains(b))
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), GossipError> {
        out.push(self.type_byte());
        match self {
            Self::Ipv4 { addr, port } => {
                out.extend_from_slice(addr);
                out.extend_from_slice(&port.to_be_bytes());
            }
            Self::Ipv6 { addr, port } => {
                out.extend_from_slice(addr);
                out.extend_from_slice(&port.to_be_bytes());
            }
            Self::TorV3 { ed25519_pubkey, checksum, version, port } => {
                out.extend_from_slice(ed25519_pubkey);
                out.extend_from_slice(&checksum.to_be_bytes());
                out.push(*version);
                out.extend_from_slice(&port.to_be_bytes());
            }
            Self::Dns { hostname, port } => {
                if !Self::valid_hostname(hostname.as_bytes()) {
                    return Err(GossipError::InvalidHostname);
                }
                out.push(hostname.len() as u8);
                out.extend_from_slice(hostname.as_bytes());
                out.extend_from_slice(&port.to_be_bytes());
            }
        }
        Ok(())
    }

    /// Read one descriptor of a known type `t` (already consumed).
    fn read(t: u8, r: &mut Reader<'_>) -> Result<Self, GossipError> {
        Ok(match t {
            1 => Self::Ipv4 { addr: r.array("ipv4")?, port: r.u16("port")? },
            2 => Self::Ipv6 { addr: r.array("ipv6")?, port: r.u16("port")? },
            4 => Self::TorV3 {
                ed25519_pubkey: r.array("torv3")?,
                checksum: r.u16("torv3 checksum")?,
                version: r.u8("torv3 version")?,
                port: r.u16("port")?,
            },
            _ => {
                let len = r.u8("hostname length")?;
                let host = r.take(usize::from(len), "hostname")?;
                if !Self::valid_hostname(host) {
                    return Err(GossipError::InvalidHostname);
                }
                let hostname =
                    String::from_utf8(host.to_vec()).map_err(|_| GossipError::InvalidHostname)?;
                Self::Dns { hostname, port: r.u16("port")? }
            }
        })
    }
}

/// The signed part of a `node_announcement`: everything after the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedNodeAnnouncement {
    /// Node feature bits; none are defined for gossip yet.
    pub features: Vec<u8>,
    /// Seconds since the Unix epoch; a newer announcement replaces an older one.
    pub timestamp: u32,
    /// The node.
    pub node_id: PublicKey,
    /// Display colour.
    pub rgb_color: [u8; 3],
    /// Display name: 32 bytes, not necessarily UTF-8, zero-padded by convention.
    pub alias: [u8; 32],
    /// Address descriptors of known types, in the order given.
    pub addresses: Vec<NetAddress>,
    /// The descriptors from the first one of an unknown type on (its length cannot be known),
    /// kept verbatim because they are signed; empty or starting with an unknown type byte.
    pub unknown_addresses: Vec<u8>,
}

impl UnsignedNodeAnnouncement {
    /// The signed bytes: `u16 flen ‖ features ‖ u32 timestamp ‖ node_id ‖ rgb_color ‖ alias ‖
    /// u16 addrlen ‖ addresses`.
    pub fn encode(&self) -> Result<Vec<u8>, GossipError> {
        let mut out = Vec::new();
        put_var_bytes(&mut out, &self.features)?;
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(self.node_id.as_bytes());
        out.extend_from_slice(&self.rgb_color);
        out.extend_from_slice(&self.alias);
        let mut addrs = Vec::new();
        for a in &self.addresses {
            a.write(&mut addrs)?;
        }
        if let Some(&t) = self.unknown_addresses.first() {
            if NetAddress::is_known_type(t) {
                // It would decode as a known descriptor: not a canonical encoding.
                return Err(GossipError::InvalidHostname);
            }
        }
        addrs.extend_from_slice(&self.unknown_addresses);
        put_var_bytes(&mut out, &addrs)?;
        check_len(out)
    }

    /// The digest the node signs ([`signing_digest`] with type 257).
    pub fn signing_digest(&self) -> Result<[u8; 32], GossipError> {
        Ok(signing_digest(NODE_ANNOUNCEMENT_TYPE, &self.encode()?))
    }

    /// Sign with the node key.
    pub fn sign(self, node_key: &SigningKey) -> Result<NodeAnnouncement, GossipError> {
        let signature = node_key.sign(&self.signing_digest()?);
        Ok(NodeAnnouncement { signature, contents: self })
    }
}

/// `node_announcement` (type 257): a node's display data and addresses, signed by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAnnouncement {
    /// Signature by `node_id`.
    pub signature: Signature,
    /// The signed fields.
    pub contents: UnsignedNodeAnnouncement,
}

impl NodeAnnouncement {
    /// The payload: signature, then [`UnsignedNodeAnnouncement::encode`].
    pub fn encode(&self) -> Result<Vec<u8>, GossipError> {
        let signed = self.contents.encode()?;
        let mut out = Vec::with_capacity(SIG_LEN + signed.len());
        out.extend_from_slice(self.signature.as_bytes());
        out.extend_from_slice(&signed);
        check_len(out)
    }

    /// Strictly decode a payload. Does not verify; call [`Self::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, GossipError> {
        let mut r = Reader::new(bytes)?;
        let signature = r.sig("signature")?;
        let features = r.var_bytes("features")?.to_vec();
        let timestamp = r.u32("timestamp")?;
        let node_id = r.key("node_id")?;
        let rgb_color = r.array("rgb_color")?;
        let alias = r.array("alias")?;
        let addr_bytes = r.var_bytes("addresses")?;
        r.finish()?;
        let mut ar = Reader::new(addr_bytes)?;
        let mut addresses = Vec::new();
        let mut unknown_addresses = Vec::new();
        while ar.pos < addr_bytes.len() {
            let t = addr_bytes[ar.pos];
            if !NetAddress::is_known_type(t) {
                unknown_addresses = ar.rest().to_vec();
                break;
            }
            ar.pos += 1;
            addresses.push(NetAddress::read(t, &mut ar)?);
        }
        Ok(Self {
            signature,
            contents: UnsignedNodeAnnouncement {
                features,
                timestamp,
                node_id,
                rgb_color,
                alias,
                addresses,
                unknown_addresses,
            },
        })
    }

    /// Check that the node key is not weak and signed the message.
    pub fn verify(&self) -> Result<(), GossipError> {
        not_weak(&self.contents.node_id, "node_id")?;
        let digest = self.contents.signing_digest()?;
        verify_sig(&self.contents.node_id, &digest, &self.signature, SignatureRole::Node)
    }
}

// ---------------------------------------------------------------------------------------------

/// The signed part of a `channel_update`: everything after the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsignedChannelUpdate {
    /// The chain: its genesis block id.
    pub chain_hash: BlockHash,
    /// The channel.
    pub short_channel_id: ShortChannelId,
    /// Seconds since the Unix epoch; only a strictly newer update replaces the current one.
    pub timestamp: u32,
    /// [`CHANNEL_FLAG_DIRECTION`] and [`CHANNEL_FLAG_DISABLED`]; no other bit may be set.
    pub channel_flags: u8,
    /// Blocks the sending node subtracts between the incoming and the outgoing HTLC expiry.
    pub cltv_expiry_delta: u16,
    /// Smallest HTLC the sending node forwards over this channel, msat.
    pub htlc_minimum_msat: u64,
    /// Fixed fee per forwarded HTLC, msat.
    pub fee_base_msat: u32,
    /// Proportional fee, millionths of the forwarded amount.
    pub fee_proportional_millionths: u32,
    /// Largest HTLC the sending node forwards over this channel, msat.
    pub htlc_maximum_msat: u64,
}

impl UnsignedChannelUpdate {
    /// The direction bit: 0 if `node_id_1` sent it (it forwards towards `node_id_2`), else 1.
    pub fn direction(&self) -> u8 {
        self.channel_flags & CHANNEL_FLAG_DIRECTION
    }

    /// Whether the sender will not forward over the channel.
    pub fn is_disabled(&self) -> bool {
        self.channel_flags & CHANNEL_FLAG_DISABLED != 0
    }

    /// The signed bytes: `chain_hash ‖ short_channel_id ‖ u32 timestamp ‖ u8 message_flags (=1)
    /// ‖ u8 channel_flags ‖ u16 cltv_expiry_delta ‖ u64 htlc_minimum_msat ‖ u32 fee_base_msat ‖
    /// u32 fee_proportional_millionths ‖ u64 htlc_maximum_msat`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHANNEL_UPDATE_LEN - SIG_LEN);
        out.extend_from_slice(self.chain_hash.as_bytes());
        out.extend_from_slice(&self.short_channel_id.to_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.push(MESSAGE_FLAG_MUST_BE_ONE);
        out.push(self.channel_flags);
        out.extend_from_slice(&self.cltv_expiry_delta.to_be_bytes());
        out.extend_from_slice(&self.htlc_minimum_msat.to_be_bytes());
        out.extend_from_slice(&self.fee_base_msat.to_be_bytes());
        out.extend_from_slice(&self.fee_proportional_millionths.to_be_bytes());
        out.extend_from_slice(&self.htlc_maximum_msat.to_be_bytes());
        out
    }

    /// The digest the sending node signs ([`signing_digest`] with type 258).
    pub fn signing_digest(&self) -> [u8; 32] {
        signing_digest(CHANNEL_UPDATE_TYPE, &self.encode())
    }

    /// Sign with the node key of the update's direction.
    pub fn sign(self, node_key: &SigningKey) -> ChannelUpdate {
        ChannelUpdate { signature: node_key.sign(&self.signing_digest()), contents: self }
    }
}

/// `channel_update` (type 258): one direction's forwarding policy, signed by the node that
/// forwards in that direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelUpdate {
    /// Signature by `node_id_1` (direction 0) or `node_id_2` (direction 1).
    pub signature: Signature,
    /// The signed fields.
    pub contents: UnsignedChannelUpdate,
}

impl ChannelUpdate {
    /// The payload: signature, then [`UnsignedChannelUpdate::encode`] (136 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHANNEL_UPDATE_LEN);
        out.extend_from_slice(self.signature.as_bytes());
        out.extend_from_slice(&self.contents.encode());
        out
    }

    /// Strictly decode a payload: exactly 136 bytes, `message_flags` = 1, no unknown
    /// `channel_flags` bit. Does not verify; call [`Self::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, GossipError> {
        let mut r = Reader::new(bytes)?;
        let signature = r.sig("signature")?;
        let chain_hash = BlockHash::from_bytes(r.array("chain_hash")?);
        let short_channel_id = ShortChannelId(r.u64("short_channel_id")?);
        let timestamp = r.u32("timestamp")?;
        let message_flags = r.u8("message_flags")?;
        if message_flags != MESSAGE_FLAG_MUST_BE_ONE {
            return Err(GossipError::InvalidMessageFlags(message_flags));
        }
        let channel_flags = r.u8("channel_flags")?;
        if channel_flags & !(CHANNEL_FLAG_DIRECTION | CHANNEL_FLAG_DISABLED) != 0 {
            return Err(GossipError::InvalidChannelFlags(channel_flags));
        }
        let contents = UnsignedChannelUpdate {
            chain_hash,
            short_channel_id,
            timestamp,
            channel_flags,
            cltv_expiry_delta: r.u16("cltv_expiry_delta")?,
            htlc_minimum_msat: r.u64("htlc_minimum_msat")?,
            fee_base_msat: r.u32("fee_base_msat")?,
            fee_proportional_millionths: r.u32("fee_proportional_millionths")?,
            htlc_maximum_msat: r.u64("htlc_maximum_msat")?,
        };
        r.finish()?;
        Ok(Self { signature, contents })
    }

    /// Check the chain, `htlc_minimum_msat ≤ htlc_maximum_msat`, and the signature under
    /// `node_id`, the channel's node of the update's direction (the caller looks it up).
    pub fn verify(&self, chain_hash: &BlockHash, node_id: &PublicKey) -> Result<(), GossipError> {
        let c = &self.contents;
        if c.chain_hash != *chain_hash {
            return Err(GossipError::WrongChain);
        }
        if c.htlc_minimum_msat > c.htlc_maximum_msat {
            return Err(GossipError::HtlcMinimumAboveMaximum {
                min: c.htlc_minimum_msat,
                max: c.htlc_maximum_msat,
            });
        }
        not_weak(node_id, "node_id")?;
        verify_sig(node_id, &c.signing_digest(), &self.signature, SignatureRole::Update)
    }
}

// ---------------------------------------------------------------------------------------------

/// Any of the three gossip messages, for dispatch on the BOLT 1 type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipMessage {
    /// Type 256 (boxed: four signatures and four keys).
    ChannelAnnouncement(Box<ChannelAnnouncement>),
    /// Type 257 (boxed: variable size).
    NodeAnnouncement(Box<NodeAnnouncement>),
    /// Type 258.
    ChannelUpdate(ChannelUpdate),
}

impl GossipMessage {
    /// Decode the payload of a message of type `msg_type`; other types are refused.
    pub fn decode(msg_type: u16, payload: &[u8]) -> Result<Self, GossipError> {
        match msg_type {
            CHANNEL_ANNOUNCEMENT_TYPE => {
                ChannelAnnouncement::decode(payload).map(|m| Self::ChannelAnnouncement(Box::new(m)))
            }
            NODE_ANNOUNCEMENT_TYPE => {
                NodeAnnouncement::decode(payload).map(|m| Self::NodeAnnouncement(Box::new(m)))
            }
            CHANNEL_UPDATE_TYPE => ChannelUpdate::decode(payload).map(Self::ChannelUpdate),
            other => Err(GossipError::UnknownType(other)),
        }
    }

    /// The BOLT 1 type.
    pub fn msg_type(&self) -> u16 {
        match self {
            Self::ChannelAnnouncement(_) => CHANNEL_ANNOUNCEMENT_TYPE,
            Self::NodeAnnouncement(_) => NODE_ANNOUNCEMENT_TYPE,
            Self::ChannelUpdate(_) => CHANNEL_UPDATE_TYPE,
        }
    }

    /// The payload (without the type).
    pub fn encode(&self) -> Result<Vec<u8>, GossipError> {
        match self {
            Self::ChannelAnnouncement(m) => m.encode(),
            Self::NodeAnnouncement(m) => m.encode(),
            Self::ChannelUpdate(m) => Ok(m.encode()),
        }
    }
}
