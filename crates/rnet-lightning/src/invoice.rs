//! BOLT11-style invoices: bech32 payment requests signed with the payee's Ed25519 node key.
//!
//! The format is BOLT 11 with the changes `docs/lightning.md` §3 specifies and justifies:
//!
//! - the human-readable part is `ln`, the network's address HRP (`lnrnt`, `lntrnt`, `lnrrnt`),
//!   then an optional amount in RNT with a multiplier `m`/`u`/`n`/`p`, converted to
//!   milli-resonance (1 RNT = 10^11 milli-resonance);
//! - payment hashes are Keccak-256d of the 32-byte preimage ([`payment_hash_from_preimage`]);
//! - the payee key `n` (32-byte Ed25519) is **mandatory**, since Ed25519 signatures cannot be
//!   recovered, and the signature is 64 bytes (103 words, 3 zero padding bits);
//! - the signed message is `Keccak-256("rnet/invoice/v1" ‖ len(hrp) ‖ hrp ‖ data)` (see
//!   [`signing_digest`]);
//! - route hint hops carry a 32-byte Ed25519 node id (50 bytes per hop);
//! - decoding is strict: wrong lengths of fixed-size fields, non-canonical padding, non-minimal
//!   integers and duplicated singleton fields are errors, not skipped.
//!
//! Strings are bech32 (BIP173 checksum, not bech32m) with no 90-character limit but at most
//! [`MAX_INVOICE_LEN`] characters. All-uppercase strings (for QR codes) are accepted; mixed case
//! is not. [`Invoice`] keeps the exact signed words, so `parse(s)?.to_string()` is `s` lowercased
//! byte for byte, unknown fields included.

mod amount;
mod features;
mod words;

use core::fmt;
use core::str::FromStr;

use bech32::Hrp;
use bech32::primitives::decode::{
    CharError, ChecksumError, UncheckedHrpstring, UncheckedHrpstringError,
};
use rnet_crypto::{PublicKey, Signature, SigningKey, keccak256, keccak256d};
use rnet_primitives::Network;
use thiserror::Error;

pub use amount::{AmountError, MAX_AMOUNT_MILLI_RESONANCE, MILLI_RESONANCE_PER_RNT};
pub use features::{
    BASIC_MPP_OPTIONAL, BASIC_MPP_REQUIRED, InvoiceFeatures, MAX_FEATURE_BIT,
    PAYMENT_SECRET_OPTIONAL, PAYMENT_SECRET_REQUIRED, VAR_ONION_OPTIN_OPTIONAL,
    VAR_ONION_OPTIN_REQUIRED,
};
use words::{
    InvoiceBech32, bytes_to_words, encode_bech32, pack_words_padded, u64_to_words_fixed,
    u64_to_words_minimal, words_for_bytes, words_to_bytes, words_to_u64,
};

/// Longest invoice string accepted or produced, in characters (the capacity of the largest QR
/// code in numeric mode): bounds the work and memory a decoder spends on one input.
pub const MAX_INVOICE_LEN: usize = 7089;

/// Domain-separation prefix of the signed message, so an invoice signature can never be valid
/// for any other message a node key signs.
pub const SIGNING_DOMAIN: &[u8] = b"rnet/invoice/v1";

/// Expiry (seconds after the timestamp) when the invoice has no `x` field.
pub const DEFAULT_EXPIRY_SECS: u64 = 3600;

/// `min_final_cltv_expiry_delta` (blocks) when the invoice has no `c` field.
pub const DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA: u32 = 18;

/// Largest timestamp: 35 bits of seconds since 1970-01-01T00:00:00Z.
pub const MAX_TIMESTAMP: u64 = (1 << 35) - 1;

/// Longest description (`d`) in bytes: 1023 words hold 639 whole bytes.
pub const MAX_DESCRIPTION_LEN: usize = 639;

/// Encoded size of one route hint hop: node id 32, short channel id 8, fee base 4, proportional
/// fee 4, CLTV delta 2.
pub const ROUTE_HINT_HOP_LEN: usize = 50;

/// Most hops in one `r` field: 1023 words hold 12 hops of 80 words.
pub const MAX_ROUTE_HINT_HOPS: usize = 12;

/// Words of the timestamp at the start of the data part.
pub const TIMESTAMP_WORDS: usize = 7;

/// Words of the signature at the end of the data part: 64 bytes = 512 bits + 3 zero bits.
pub const SIGNATURE_WORDS: usize = 103;

/// Most words one tagged field's data can have (10-bit length).
const MAX_FIELD_WORDS: usize = 1023;

/// Words of a 32-byte field (`p`, `s`, `h`, `n`).
const HASH_WORDS: usize = words_for_bytes(32);

/// Words of one route hint hop (exactly 400 bits).
const HOP_WORDS: usize = words_for_bytes(ROUTE_HINT_HOP_LEN);

/// The 5-bit type values of the tagged fields this crate understands; every other value is an
/// unknown field, skipped by readers (and covered by the signature).
pub mod tag {
    /// `p`: payment hash, 32 bytes.
    pub const PAYMENT_HASH: u8 = 1;
    /// `r`: route hint, 1..=12 hops of 50 bytes; may repeat.
    pub const ROUTE_HINT: u8 = 3;
    /// `9`: feature bits, big-endian, minimal.
    pub const FEATURES: u8 = 5;
    /// `x`: expiry in seconds, big-endian, minimal.
    pub const EXPIRY: u8 = 6;
    /// `d`: description, UTF-8, up to 639 bytes.
    pub const DESCRIPTION: u8 = 13;
    /// `s`: payment secret, 32 bytes.
    pub const PAYMENT_SECRET: u8 = 16;
    /// `n`: payee node key, 32-byte Ed25519 public key; mandatory.
    pub const PAYEE: u8 = 19;
    /// `h`: Keccak-256 of the description, 32 bytes.
    pub const DESCRIPTION_HASH: u8 = 23;
    /// `c`: min_final_cltv_expiry_delta in blocks, big-endian, minimal.
    pub const MIN_FINAL_CLTV_EXPIRY_DELTA: u8 = 24;
}

/// The bech32 character of a 5-bit value (how tags are written and named in errors).
pub fn tag_char(tag: u8) -> char {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    char::from(CHARSET[usize::from(tag & 0x1f)])
}

/// Why an invoice string does not decode, or a builder cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvoiceError {
    /// The string is longer than [`MAX_INVOICE_LEN`].
    #[error("invoice is {len} characters, at most {MAX_INVOICE_LEN} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Upper and lower case letters mixed.
    #[error("invoice mixes upper and lower case")]
    MixedCase,
    /// Not a bech32 string: invalid character, missing separator, invalid HRP.
    #[error("invalid bech32 string: {0}")]
    Bech32(UncheckedHrpstringError),
    /// The bech32 (BIP173) checksum does not verify.
    #[error("invalid bech32 checksum")]
    InvalidChecksum,
    /// The human-readable part does not start with `ln`.
    #[error("human-readable part {0:?} does not start with \"ln\"")]
    NotAnInvoice(String),
    /// The currency after `ln` is not a ResonanceNet network's HRP.
    #[error("unknown network prefix {0:?} (expected rnt, trnt or rrnt)")]
    UnknownNetwork(String),
    /// The invoice is for another network than the one required.
    #[error("invoice is for {found}, expected {expected}")]
    WrongNetwork {
        /// The network required.
        expected: Network,
        /// The network of the invoice.
        found: Network,
    },
    /// Invalid amount in the human-readable part or given to the builder.
    #[error("invalid amount: {0}")]
    Amount(#[from] AmountError),
    /// The data part is shorter than a timestamp plus a signature.
    #[error("data part has {words} words, fewer than timestamp + signature ({})", TIMESTAMP_WORDS + SIGNATURE_WORDS)]
    TooShort {
        /// Words in the data part (checksum excluded).
        words: usize,
    },
    /// One or two words left before the signature: not a tagged field header.
    #[error("{0} trailing words before the signature")]
    TrailingData(usize),
    /// A tagged field's length runs past the start of the signature.
    #[error("field '{tag}' declares {declared} words but only {available} remain")]
    TruncatedField {
        /// The field's tag character.
        tag: char,
        /// Its declared data length in words.
        declared: usize,
        /// Words left before the signature.
        available: usize,
    },
    /// A known field has a length it cannot have (fixed-size fields, route hints).
    #[error("field '{tag}' has invalid length {len} words")]
    InvalidFieldLength {
        /// The field's tag character.
        tag: char,
        /// Its data length in words.
        len: usize,
    },
    /// A byte field's padding is not the canonical one (fewer than 5 bits, all zero).
    #[error("field '{0}' has non-canonical padding")]
    InvalidPadding(char),
    /// The signature's 3 padding bits are not zero.
    #[error("signature has non-zero padding bits")]
    SignaturePadding,
    /// A field that may appear at most once appears twice.
    #[error("duplicated field '{0}'")]
    DuplicateField(char),
    /// A mandatory field is missing.
    #[error("missing mandatory field: {0}")]
    MissingField(&'static str),
    /// Both a description (`d`) and a description hash (`h`).
    #[error("both a description (d) and a description hash (h)")]
    BothDescriptions,
    /// The description is not UTF-8.
    #[error("description is not valid UTF-8")]
    DescriptionNotUtf8,
    /// The description is longer than [`MAX_DESCRIPTION_LEN`] bytes (builder).
    #[error("description is {0} bytes, at most {MAX_DESCRIPTION_LEN} allowed")]
    DescriptionTooLong(usize),
    /// An integer field (`x`, `c`, `9`) starts with a zero word, or `9` is empty.
    #[error("field '{0}' is not minimally encoded")]
    NonMinimalField(char),
    /// An integer field's value does not fit its type (`x`: u64, `c`: u32).
    #[error("field '{0}' overflows")]
    FieldOverflow(char),
    /// A node id (`n` or in `r`) is not an Ed25519 point.
    #[error("field '{0}' holds an invalid Ed25519 public key")]
    InvalidPublicKey(char),
    /// The payee key is of small order or non-canonically encoded: a signature by it proves
    /// nothing, since such a key "signs" every message under the cofactored rule.
    #[error("payee key is weak (small order or non-canonical encoding)")]
    WeakPayeeKey,
    /// A route hint with no hop or more than [`MAX_ROUTE_HINT_HOPS`] (builder).
    #[error("route hint has {0} hops, must have 1 to {MAX_ROUTE_HINT_HOPS}")]
    RouteHintLength(usize),
    /// A feature bit above [`MAX_FEATURE_BIT`] (builder).
    #[error("feature bit {0} is out of range")]
    FeatureBitOutOfRange(u16),
    /// A required (even) feature bit this implementation does not know.
    #[error("unknown required feature bit {0}")]
    UnknownRequiredFeature(u16),
    /// A feature is offered without one it depends on (both named by their even bit).
    #[error("feature {feature} is set without feature {needs}, which it depends on")]
    MissingFeatureDependency {
        /// The feature set.
        feature: u16,
        /// The feature it requires.
        needs: u16,
    },
    /// The timestamp does not fit 35 bits (builder).
    #[error("timestamp {0} does not fit 35 bits")]
    TimestampOutOfRange(u64),
    /// The system clock is before 1970 (builder without an explicit timestamp).
    #[error("system clock is before the Unix epoch")]
    ClockBeforeEpoch,
    /// A 5-bit word of 32 or more given to [`signing_digest`].
    #[error("word {0} is not a 5-bit value")]
    InvalidWord(u8),
    /// A human-readable part too long to be length-prefixed by one byte ([`signing_digest`]).
    #[error("human-readable part is {0} bytes, at most 255 allowed")]
    HrpTooLong(usize),
    /// The signature does not verify under the payee key `n`.
    #[error("invalid invoice signature")]
    InvalidSignature,
}

/// The payment hash of a 32-byte preimage: Keccak-256d (what an HTLC's `OP_KECCAK256D` checks).
pub fn payment_hash_from_preimage(preimage: &[u8; 32]) -> [u8; 32] {
    keccak256d(preimage)
}

/// The 32-byte digest the payee signs: Keccak-256 of
/// `SIGNING_DOMAIN ‖ u8(len(hrp)) ‖ lowercase(hrp) ‖ pack(data_words)`, where `data_words` are
/// the data part's 5-bit words without signature and checksum (timestamp and tagged fields) and
/// `pack` concatenates their bits big-endian and appends zero bits to a byte boundary.
pub fn signing_digest(hrp: &str, data_words: &[u8]) -> Result<[u8; 32], InvoiceError> {
    let hrp_len = u8::try_from(hrp.len()).map_err(|_| InvoiceError::HrpTooLong(hrp.len()))?;
    if let Some(&w) = data_words.iter().find(|&&w| w >= 32) {
        return Err(InvoiceError::InvalidWord(w));
    }
    Ok(digest_unchecked(hrp, hrp_len, data_words))
}

fn digest_unchecked(hrp: &str, hrp_len: u8, data_words: &[u8]) -> [u8; 32] {
    let packed = pack_words_padded(data_words);
    let mut msg = Vec::with_capacity(SIGNING_DOMAIN.len() + 1 + hrp.len() + packed.len());
    msg.extend_from_slice(SIGNING_DOMAIN);
    msg.push(hrp_len);
    msg.extend_from_slice(hrp.to_ascii_lowercase().as_bytes());
    msg.extend_from_slice(&packed);
    keccak256(&msg)
}

/// What the invoice is for: a description, or the Keccak-256 hash of a longer one delivered
/// out of band.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InvoiceDescription {
    /// `d`: the description itself (UTF-8, at most [`MAX_DESCRIPTION_LEN`] bytes).
    Text(String),
    /// `h`: Keccak-256 of the description's UTF-8 bytes.
    Hash([u8; 32]),
}

impl InvoiceDescription {
    /// The `h` value committing to `description`: Keccak-256 of its UTF-8 bytes.
    pub fn hash_of(description: &str) -> [u8; 32] {
        keccak256(description.as_bytes())
    }

    /// Whether `description` is the one this field states or commits to.
    pub fn commits_to(&self, description: &str) -> bool {
        match self {
            Self::Text(text) => text == description,
            Self::Hash(hash) => *hash == Self::hash_of(description),
        }
    }
}

/// One hop of a private route to the payee, as the hop's `channel_update` would state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteHintHop {
    /// Node id of the channel's start (the node that forwards over it).
    pub src_node_id: PublicKey,
    /// The channel's short channel id.
    pub short_channel_id: u64,
    /// Base fee, milli-resonance (the BOLT name is kept).
    pub fee_base_msat: u32,
    /// Proportional fee, millionths of the forwarded amount.
    pub fee_proportional_millionths: u32,
    /// CLTV delta the forwarding node requires, in blocks.
    pub cltv_expiry_delta: u16,
}

impl RouteHintHop {
    fn to_bytes(self) -> [u8; ROUTE_HINT_HOP_LEN] {
        let mut out = [0u8; ROUTE_HINT_HOP_LEN];
        out[..32].copy_from_slice(self.src_node_id.as_bytes());
        out[32..40].copy_from_slice(&self.short_channel_id.to_be_bytes());
        out[40..44].copy_from_slice(&self.fee_base_msat.to_be_bytes());
        out[44..48].copy_from_slice(&self.fee_proportional_millionths.to_be_bytes());
        out[48..50].copy_from_slice(&self.cltv_expiry_delta.to_be_bytes());
        out
    }

    fn from_bytes(b: &[u8; ROUTE_HINT_HOP_LEN]) -> Result<Self, InvoiceError> {
        let bad_key = |_| InvoiceError::InvalidPublicKey(tag_char(tag::ROUTE_HINT));
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[..32]);
        let mut scid = [0u8; 8];
        scid.copy_from_slice(&b[32..40]);
        let mut base = [0u8; 4];
        base.copy_from_slice(&b[40..44]);
        let mut prop = [0u8; 4];
        prop.copy_from_slice(&b[44..48]);
        Ok(Self {
            src_node_id: PublicKey::from_bytes(&key).map_err(bad_key)?,
            short_channel_id: u64::from_be_bytes(scid),
            fee_base_msat: u32::from_be_bytes(base),
            fee_proportional_millionths: u32::from_be_bytes(prop),
            cltv_expiry_delta: u16::from_be_bytes([b[48], b[49]]),
        })
    }
}

/// A private route to the payee (one `r` field): 1 to [`MAX_ROUTE_HINT_HOPS`] hops, from a
/// public node towards the payee.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteHint {
    hops: Vec<RouteHintHop>,
}

impl RouteHint {
    /// A route hint; fails unless it has 1 to [`MAX_ROUTE_HINT_HOPS`] hops.
    pub fn new(hops: Vec<RouteHintHop>) -> Result<Self, InvoiceError> {
        if hops.is_empty() || hops.len() > MAX_ROUTE_HINT_HOPS {
            return Err(InvoiceError::RouteHintLength(hops.len()));
        }
        Ok(Self { hops })
    }

    /// The hops, in route order.
    pub fn hops(&self) -> &[RouteHintHop] {
        &self.hops
    }

    fn to_words(&self) -> Vec<u8> {
        let bytes: Vec<u8> = self.hops.iter().flat_map(|h| h.to_bytes()).collect();
        bytes_to_words(&bytes)
    }
}

/// A decoded, signature-checked invoice.
///
/// It holds the exact words that were signed, so [`Display`](fmt::Display) reproduces the
/// original string (lowercased) byte for byte, including field order and unknown fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The human-readable part, lowercase.
    hrp: Hrp,
    /// Data part words without the signature: timestamp, then tagged fields.
    data: Vec<u8>,
    signature: Signature,
    network: Network,
    amount: Option<u64>,
    timestamp: u64,
    payment_hash: [u8; 32],
    payment_secret: [u8; 32],
    description: InvoiceDescription,
    expiry: u64,
    min_final_cltv_expiry_delta: u32,
    route_hints: Vec<RouteHint>,
    features: InvoiceFeatures,
    payee: PublicKey,
}

impl Invoice {
    /// Decodes and verifies an invoice string (all lowercase or all uppercase). Every rule of
    /// `docs/lightning.md` §3.6 is applied; any violation is an error.
    pub fn parse(s: &str) -> Result<Self, InvoiceError> {
        decode(s)
    }

    /// [`Invoice::parse`], then require the invoice to be for `network`.
    pub fn parse_for_network(s: &str, network: Network) -> Result<Self, InvoiceError> {
        let invoice = decode(s)?;
        if invoice.network != network {
            return Err(InvoiceError::WrongNetwork { expected: network, found: invoice.network });
        }
        Ok(invoice)
    }

    /// The network the invoice is payable on.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The requested amount in milli-resonance, or `None` when the payer chooses it.
    pub fn amount_milli_resonance(&self) -> Option<u64> {
        self.amount
    }

    /// Creation time, seconds since 1970-01-01T00:00:00Z.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The payment hash: Keccak-256d of the preimage the payee reveals when paid.
    pub fn payment_hash(&self) -> &[u8; 32] {
        &self.payment_hash
    }

    /// Whether `preimage` is the preimage of [`Invoice::payment_hash`].
    pub fn is_preimage(&self, preimage: &[u8; 32]) -> bool {
        payment_hash_from_preimage(preimage) == self.payment_hash
    }

    /// The payment secret the payer puts in the final onion payload.
    pub fn payment_secret(&self) -> &[u8; 32] {
        &self.payment_secret
    }

    /// The description or its hash.
    pub fn description(&self) -> &InvoiceDescription {
        &self.description
    }

    /// Seconds after [`Invoice::timestamp`] during which the invoice may be paid.
    pub fn expiry(&self) -> u64 {
        self.expiry
    }

    /// First second at which the invoice is expired: timestamp + expiry (saturating).
    pub fn expires_at(&self) -> u64 {
        self.timestamp.saturating_add(self.expiry)
    }

    /// Whether the invoice is expired at `now` (seconds since the epoch): `now >= expires_at()`.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at()
    }

    /// CLTV delta, in blocks, the payee requires on the final HTLC.
    pub fn min_final_cltv_expiry_delta(&self) -> u32 {
        self.min_final_cltv_expiry_delta
    }

    /// Private routes to the payee, most preferred first.
    pub fn route_hints(&self) -> &[RouteHint] {
        &self.route_hints
    }

    /// Feature bits (empty when the invoice has no `9` field).
    pub fn features(&self) -> &InvoiceFeatures {
        &self.features
    }

    /// The payee's node key, which signed the invoice.
    pub fn payee(&self) -> &PublicKey {
        &self.payee
    }

    /// The payee's Ed25519 signature over [`Invoice::signing_digest`].
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The human-readable part (lowercase), e.g. `lnrnt2500u`.
    pub fn hrp(&self) -> &str {
        self.hrp.as_str()
    }

    /// The digest the signature is over (see [`signing_digest`]).
    pub fn signing_digest(&self) -> [u8; 32] {
        let hrp = self.hrp.as_str();
        digest_unchecked(hrp, u8::try_from(hrp.len()).unwrap_or(u8::MAX), &self.data)
    }
}

impl fmt::Display for Invoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = self.data.clone();
        words.extend(bytes_to_words(self.signature.as_bytes()));
        f.write_str(&encode_bech32(&self.hrp, &words))
    }
}

impl FromStr for Invoice {
    type Err = InvoiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode(s)
    }
}

/// Builds and signs an invoice. Payment hash, payment secret and a description (or its hash)
/// are required; the rest have defaults.
#[derive(Debug, Clone)]
pub struct InvoiceBuilder {
    network: Network,
    amount: Option<u64>,
    timestamp: Option<u64>,
    payment_hash: Option<[u8; 32]>,
    payment_secret: Option<[u8; 32]>,
    description: Option<InvoiceDescription>,
    expiry: u64,
    min_final_cltv_expiry_delta: u32,
    route_hints: Vec<RouteHint>,
    features: InvoiceFeatures,
}

impl InvoiceBuilder {
    /// A builder for `network`: no amount, expiry [`DEFAULT_EXPIRY_SECS`], CLTV delta
    /// [`DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA`], no route hints, no features, timestamp = now.
    pub fn new(network: Network) -> Self {
        Self {
            network,
            amount: None,
            timestamp: None,
            payment_hash: None,
            payment_secret: None,
            description: None,
            expiry: DEFAULT_EXPIRY_SECS,
            min_final_cltv_expiry_delta: DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
            route_hints: Vec::new(),
            features: InvoiceFeatures::new(),
        }
    }

    /// Requests `amount` milli-resonance (1 to 21 million RNT, checked when signing).
    pub fn amount_milli_resonance(mut self, amount: u64) -> Self {
        self.amount = Some(amount);
        self
    }

    /// Sets the creation time (seconds since the epoch, below 2^35); default: the system clock.
    pub fn timestamp(mut self, timestamp: u64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Sets the payment hash.
    pub fn payment_hash(mut self, hash: [u8; 32]) -> Self {
        self.payment_hash = Some(hash);
        self
    }

    /// Sets the payment hash to Keccak-256d of `preimage`.
    pub fn payment_preimage(self, preimage: &[u8; 32]) -> Self {
        self.payment_hash(payment_hash_from_preimage(preimage))
    }

    /// Sets the payment secret.
    pub fn payment_secret(mut self, secret: [u8; 32]) -> Self {
        self.payment_secret = Some(secret);
        self
    }

    /// Sets a description (`d`), replacing any description hash.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(InvoiceDescription::Text(description.into()));
        self
    }

    /// Sets a description hash (`h`), replacing any description.
    pub fn description_hash(mut self, hash: [u8; 32]) -> Self {
        self.description = Some(InvoiceDescription::Hash(hash));
        self
    }

    /// Sets the expiry in seconds (an `x` field is written unless it is the default).
    pub fn expiry(mut self, seconds: u64) -> Self {
        self.expiry = seconds;
        self
    }

    /// Sets `min_final_cltv_expiry_delta` in blocks (always written as a `c` field).
    pub fn min_final_cltv_expiry_delta(mut self, blocks: u32) -> Self {
        self.min_final_cltv_expiry_delta = blocks;
        self
    }

    /// Adds a route hint (one `r` field), after those already added.
    pub fn route_hint(mut self, hint: RouteHint) -> Self {
        self.route_hints.push(hint);
        self
    }

    /// Sets the feature bits (a `9` field is written unless empty).
    pub fn features(mut self, features: InvoiceFeatures) -> Self {
        self.features = features;
        self
    }

    /// Checks every field, encodes the invoice and signs it with the payee's node key, whose
    /// public key becomes the `n` field.
    ///
    /// Fields are written in the order `p s n d|h x c r… 9`, and the amount with the largest
    /// multiplier that represents it exactly.
    pub fn sign(&self, key: &SigningKey) -> Result<Invoice, InvoiceError> {
        let payment_hash = self.payment_hash.ok_or(InvoiceError::MissingField("payment hash"))?;
        let payment_secret =
            self.payment_secret.ok_or(InvoiceError::MissingField("payment secret"))?;
        let description = self
            .description
            .clone()
            .ok_or(InvoiceError::MissingField("description or description hash"))?;
        if let InvoiceDescription::Text(text) = &description {
            if text.len() > MAX_DESCRIPTION_LEN {
                return Err(InvoiceError::DescriptionTooLong(text.len()));
            }
        }
        if let Some(amount) = self.amount {
            amount::check_amount(amount)?;
        }
        let timestamp = match self.timestamp {
            Some(t) => t,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| InvoiceError::ClockBeforeEpoch)?
                .as_secs(),
        };
        if timestamp > MAX_TIMESTAMP {
            return Err(InvoiceError::TimestampOutOfRange(timestamp));
        }
        self.features.validate()?;
        let payee = key.public_key();
        if payee.is_weak() {
            return Err(InvoiceError::WeakPayeeKey);
        }

        let mut hrp_string = format!("ln{}", self.network.hrp());
        if let Some(amount) = self.amount {
            hrp_string.push_str(&amount::encode_amount(amount));
        }
        let hrp = Hrp::parse(&hrp_string).map_err(|_| InvoiceError::NotAnInvoice(hrp_string))?;

        let mut data = u64_to_words_fixed(timestamp, TIMESTAMP_WORDS);
        push_field(&mut data, tag::PAYMENT_HASH, &bytes_to_words(&payment_hash));
        push_field(&mut data, tag::PAYMENT_SECRET, &bytes_to_words(&payment_secret));
        push_field(&mut data, tag::PAYEE, &bytes_to_words(payee.as_bytes()));
        match &description {
            InvoiceDescription::Text(text) => {
                push_field(&mut data, tag::DESCRIPTION, &bytes_to_words(text.as_bytes()));
            }
            InvoiceDescription::Hash(hash) => {
                push_field(&mut data, tag::DESCRIPTION_HASH, &bytes_to_words(hash));
            }
        }
        if self.expiry != DEFAULT_EXPIRY_SECS {
            push_field(&mut data, tag::EXPIRY, &u64_to_words_minimal(self.expiry));
        }
        push_field(
            &mut data,
            tag::MIN_FINAL_CLTV_EXPIRY_DELTA,
            &u64_to_words_minimal(u64::from(self.min_final_cltv_expiry_delta)),
        );
        for hint in &self.route_hints {
            push_field(&mut data, tag::ROUTE_HINT, &hint.to_words());
        }
        if !self.features.is_empty() {
            push_field(&mut data, tag::FEATURES, &self.features.to_words());
        }

        let encoded_len = hrp.len() + 1 + data.len() + SIGNATURE_WORDS + 6;
        if encoded_len > MAX_INVOICE_LEN {
            return Err(InvoiceError::TooLong { len: encoded_len });
        }
        let digest = signing_digest(hrp.as_str(), &data)?;
        let signature = key.sign(&digest);
        Ok(Invoice {
            hrp,
            data,
            signature,
            network: self.network,
            amount: self.amount,
            timestamp,
            payment_hash,
            payment_secret,
            description,
            expiry: self.expiry,
            min_final_cltv_expiry_delta: self.min_final_cltv_expiry_delta,
            route_hints: self.route_hints.clone(),
            features: self.features.clone(),
            payee,
        })
    }
}

/// Appends one tagged field; every caller's data fits [`MAX_FIELD_WORDS`] (descriptions, route
/// hints and features are bounded before this is called).
fn push_field(data: &mut Vec<u8>, tag: u8, body: &[u8]) {
    let len = body.len().min(MAX_FIELD_WORDS);
    data.push(tag);
    data.push(((len >> 5) & 0x1f) as u8);
    data.push((len & 0x1f) as u8);
    data.extend_from_slice(&body[..len]);
}

/// Splits a lowercase HRP into network and amount.
fn parse_hrp(hrp: &str) -> Result<(Network, Option<u64>), InvoiceError> {
    let rest = hrp.strip_prefix("ln").ok_or_else(|| InvoiceError::NotAnInvoice(hrp.to_owned()))?;
    // Network HRPs contain no digit and an amount starts with one.
    let split = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
    let (currency, amount) = rest.split_at(split);
    let network = Network::from_hrp(currency)
        .ok_or_else(|| InvoiceError::UnknownNetwork(currency.to_owned()))?;
    let amount = if amount.is_empty() { None } else { Some(amount::parse_amount(amount)?) };
    Ok((network, amount))
}

fn map_bech32_error(e: UncheckedHrpstringError) -> InvoiceError {
    match e {
        UncheckedHrpstringError::Char(CharError::MixedCase)
        | UncheckedHrpstringError::Hrp(bech32::primitives::hrp::Error::MixedCase) => {
            InvoiceError::MixedCase
        }
        other => InvoiceError::Bech32(other),
    }
}

/// Fixed 32-byte field: exactly 52 words, canonical padding.
fn bytes32(tag: u8, body: &[u8]) -> Result<[u8; 32], InvoiceError> {
    if body.len() != HASH_WORDS {
        return Err(InvoiceError::InvalidFieldLength { tag: tag_char(tag), len: body.len() });
    }
    let bytes = words_to_bytes(body).map_err(|_| InvoiceError::InvalidPadding(tag_char(tag)))?;
    bytes
        .try_into()
        .map_err(|_| InvoiceError::InvalidFieldLength { tag: tag_char(tag), len: body.len() })
}

/// Minimal big-endian integer field.
fn minimal_u64(tag: u8, body: &[u8]) -> Result<u64, InvoiceError> {
    if body.first() == Some(&0) {
        return Err(InvoiceError::NonMinimalField(tag_char(tag)));
    }
    words_to_u64(body).ok_or(InvoiceError::FieldOverflow(tag_char(tag)))
}

/// Stores `value` in a singleton slot, failing if the field was already seen.
fn set_once<T>(slot: &mut Option<T>, tag: u8, value: T) -> Result<(), InvoiceError> {
    if slot.is_some() {
        return Err(InvoiceError::DuplicateField(tag_char(tag)));
    }
    *slot = Some(value);
    Ok(())
}

fn decode(s: &str) -> Result<Invoice, InvoiceError> {
    if s.len() > MAX_INVOICE_LEN {
        return Err(InvoiceError::TooLong { len: s.len() });
    }
    let unchecked = UncheckedHrpstring::new(s).map_err(map_bech32_error)?;
    match unchecked.validate_checksum::<InvoiceBech32>() {
        Ok(()) => {}
        Err(ChecksumError::InvalidLength) => {
            return Err(InvoiceError::TooShort { words: unchecked.data_part_ascii().len() });
        }
        Err(ChecksumError::CodeLength(_)) => return Err(InvoiceError::TooLong { len: s.len() }),
        Err(_) => return Err(InvoiceError::InvalidChecksum),
    }
    let checked = unchecked.remove_checksum::<InvoiceBech32>();
    let hrp_lower = checked.hrp().to_lowercase();
    let (network, amount) = parse_hrp(&hrp_lower)?;
    let hrp = Hrp::parse(&hrp_lower).map_err(|e| map_bech32_error(e.into()))?;

    let words: Vec<u8> = checked
        .data_part_ascii_no_checksum()
        .iter()
        .map(|&c| {
            bech32::Fe32::from_char(char::from(c)).map(|fe| fe.to_u8()).map_err(|_| {
                InvoiceError::Bech32(UncheckedHrpstringError::Char(CharError::InvalidChar(
                    char::from(c),
                )))
            })
        })
        .collect::<Result<_, _>>()?;
    if words.len() < TIMESTAMP_WORDS + SIGNATURE_WORDS {
        return Err(InvoiceError::TooShort { words: words.len() });
    }
    let (data, sig_words) = words.split_at(words.len() - SIGNATURE_WORDS);
    let (ts_words, mut fields) = data.split_at(TIMESTAMP_WORDS);
    // 7 words are 35 bits: always fits.
    let timestamp = words_to_u64(ts_words).unwrap_or(u64::MAX);

    let mut payment_hash = None;
    let mut payment_secret = None;
    let mut payee = None;
    let mut text = None;
    let mut desc_hash = None;
    let mut expiry = None;
    let mut cltv = None;
    let mut features = None;
    let mut route_hints = Vec::new();

    while !fields.is_empty() {
        if fields.len() < 3 {
            return Err(InvoiceError::TrailingData(fields.len()));
        }
        let t = fields[0];
        let len = (usize::from(fields[1]) << 5) | usize::from(fields[2]);
        let rest = &fields[3..];
        if rest.len() < len {
            return Err(InvoiceError::TruncatedField {
                tag: tag_char(t),
                declared: len,
                available: rest.len(),
            });
        }
        let (body, after) = rest.split_at(len);
        fields = after;
        match t {
            tag::PAYMENT_HASH => set_once(&mut payment_hash, t, bytes32(t, body)?)?,
            tag::PAYMENT_SECRET => set_once(&mut payment_secret, t, bytes32(t, body)?)?,
            tag::DESCRIPTION_HASH => set_once(&mut desc_hash, t, bytes32(t, body)?)?,
            tag::PAYEE => {
                let key = PublicKey::from_bytes(&bytes32(t, body)?)
                    .map_err(|_| InvoiceError::InvalidPublicKey(tag_char(t)))?;
                if key.is_weak() {
                    return Err(InvoiceError::WeakPayeeKey);
                }
                set_once(&mut payee, t, key)?;
            }
            tag::DESCRIPTION => {
                let bytes =
                    words_to_bytes(body).map_err(|_| InvoiceError::InvalidPadding(tag_char(t)))?;
                let s = String::from_utf8(bytes).map_err(|_| InvoiceError::DescriptionNotUtf8)?;
                set_once(&mut text, t, s)?;
            }
            tag::EXPIRY => set_once(&mut expiry, t, minimal_u64(t, body)?)?,
            tag::MIN_FINAL_CLTV_EXPIRY_DELTA => {
                let v = minimal_u64(t, body)?;
                let v = u32::try_from(v).map_err(|_| InvoiceError::FieldOverflow(tag_char(t)))?;
                set_once(&mut cltv, t, v)?;
            }
            tag::FEATURES => {
                let f = InvoiceFeatures::from_words(body)
                    .ok_or(InvoiceError::NonMinimalField(tag_char(t)))?;
                f.validate()?;
                set_once(&mut features, t, f)?;
            }
            tag::ROUTE_HINT => {
                if body.is_empty() || body.len() % HOP_WORDS != 0 {
                    return Err(InvoiceError::InvalidFieldLength {
                        tag: tag_char(t),
                        len: body.len(),
                    });
                }
                let bytes =
                    words_to_bytes(body).map_err(|_| InvoiceError::InvalidPadding(tag_char(t)))?;
                let hops = bytes
                    .chunks_exact(ROUTE_HINT_HOP_LEN)
                    .map(|chunk| {
                        let mut hop = [0u8; ROUTE_HINT_HOP_LEN];
                        hop.copy_from_slice(chunk);
                        RouteHintHop::from_bytes(&hop)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                route_hints.push(RouteHint::new(hops)?);
            }
            // Unknown fields: skipped, but kept in `data` and so covered by the signature.
            _ => {}
        }
    }

    let payment_hash = payment_hash.ok_or(InvoiceError::MissingField("payment hash (p)"))?;
    let payment_secret = payment_secret.ok_or(InvoiceError::MissingField("payment secret (s)"))?;
    let payee = payee.ok_or(InvoiceError::MissingField("payee node key (n)"))?;
    let description = match (text, desc_hash) {
        (Some(t), None) => InvoiceDescription::Text(t),
        (None, Some(h)) => InvoiceDescription::Hash(h),
        (Some(_), Some(_)) => return Err(InvoiceError::BothDescriptions),
        (None, None) => {
            return Err(InvoiceError::MissingField("description (d) or description hash (h)"));
        }
    };

    let sig_bytes = words_to_bytes(sig_words).map_err(|_| InvoiceError::SignaturePadding)?;
    let signature =
        Signature::from_slice(&sig_bytes).map_err(|_| InvoiceError::SignaturePadding)?;
    let digest = signing_digest(&hrp_lower, data)?;
    payee.verify(&digest, &signature).map_err(|_| InvoiceError::InvalidSignature)?;

    Ok(Invoice {
        hrp,
        data: data.to_vec(),
        signature,
        network,
        amount,
        timestamp,
        payment_hash,
        payment_secret,
        description,
        expiry: expiry.unwrap_or(DEFAULT_EXPIRY_SECS),
        min_final_cltv_expiry_delta: cltv.unwrap_or(DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA),
        route_hints,
        features: features.unwrap_or_default(),
        payee,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_letters() {
        let letters: String = [
            tag::PAYMENT_HASH,
            tag::PAYMENT_SECRET,
            tag::DESCRIPTION,
            tag::DESCRIPTION_HASH,
            tag::EXPIRY,
            tag::MIN_FINAL_CLTV_EXPIRY_DELTA,
            tag::ROUTE_HINT,
            tag::FEATURES,
            tag::PAYEE,
        ]
        .into_iter()
        .map(tag_char)
        .collect();
        assert_eq!(letters, "psdhxcr9n");
        assert_eq!(HASH_WORDS, 52);
        assert_eq!(HOP_WORDS, 80);
        assert_eq!(words_for_bytes(64), SIGNATURE_WORDS);
        assert_eq!(MAX_ROUTE_HINT_HOPS, MAX_FIELD_WORDS / HOP_WORDS);
        assert_eq!(words_for_bytes(MAX_DESCRIPTION_LEN), MAX_FIELD_WORDS);
    }

    #[test]
    fn hrp_split() {
        assert_eq!(parse_hrp("lnrnt"), Ok((Network::Mainnet, None)));
        assert_eq!(parse_hrp("lntrnt"), Ok((Network::Testnet, None)));
        assert_eq!(parse_hrp("lnrrnt"), Ok((Network::Regtest, None)));
        assert_eq!(parse_hrp("lnrnt1"), Ok((Network::Mainnet, Some(MILLI_RESONANCE_PER_RNT))));
        assert_eq!(parse_hrp("lntrnt2500u"), Ok((Network::Testnet, Some(250_000_000))));
        assert_eq!(parse_hrp("lnrrnt10p"), Ok((Network::Regtest, Some(1))));
        assert_eq!(parse_hrp("lnrntt"), Err(InvoiceError::UnknownNetwork("rntt".into())));
        assert_eq!(parse_hrp("lnbc1m"), Err(InvoiceError::UnknownNetwork("bc".into())));
        assert_eq!(parse_hrp("rnt"), Err(InvoiceError::NotAnInvoice("rnt".into())));
        assert_eq!(parse_hrp("lnrnt1x"), Err(AmountError::InvalidMultiplier("x".into()).into()));
    }

    #[test]
    fn signing_digest_is_the_documented_message() {
        // Timestamp 1 (7 words) and one unknown empty field (tag 0): 10 words = 50 bits → 7 bytes.
        let words = [0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let mut msg = b"rnet/invoice/v1".to_vec();
        msg.push(8);
        msg.extend_from_slice(b"lntrnt1m");
        // 0…0 00001 | 00000 ×3, padded: 34 zero bits, a one, 15 zero bits, 6 padding bits.
        msg.extend_from_slice(&[0, 0, 0, 0, 0b0010_0000, 0, 0]);
        assert_eq!(signing_digest("lntrnt1m", &words), Ok(keccak256(&msg)));
        // Upper-case HRPs hash as their lower-case form.
        assert_eq!(signing_digest("LNTRNT1M", &words), Ok(keccak256(&msg)));
        assert_eq!(signing_digest("lnrnt", &[32]), Err(InvoiceError::InvalidWord(32)));
        assert_eq!(signing_digest(&"x".repeat(256), &[]), Err(InvoiceError::HrpTooLong(256)));
    }

    #[test]
    fn signed_invoice_words_layout() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let invoice = InvoiceBuilder::new(Network::Regtest)
            .timestamp(1)
            .payment_hash([0xaa; 32])
            .payment_secret([0xbb; 32])
            .description("")
            .sign(&key)
            .unwrap();
        // timestamp, then p s n d c with their 3-word headers.
        let mut expected = u64_to_words_fixed(1, TIMESTAMP_WORDS);
        for (t, body) in [
            (tag::PAYMENT_HASH, bytes_to_words(&[0xaa; 32])),
            (tag::PAYMENT_SECRET, bytes_to_words(&[0xbb; 32])),
            (tag::PAYEE, bytes_to_words(key.public_key().as_bytes())),
            (tag::DESCRIPTION, Vec::new()),
            (tag::MIN_FINAL_CLTV_EXPIRY_DELTA, vec![18]),
        ] {
            expected.extend([t, (body.len() >> 5) as u8, (body.len() & 31) as u8]);
            expected.extend(body);
        }
        assert_eq!(invoice.data, expected);
        assert_eq!(invoice.signing_digest(), signing_digest("lnrrnt", &expected).unwrap());
        assert!(key.public_key().verify(&invoice.signing_digest(), invoice.signature()).is_ok());
        let s = invoice.to_string();
        assert!(s.starts_with("lnrrnt1qqqqqqppp5"), "{s}");
        assert_eq!(s.len(), "lnrrnt1".len() + expected.len() + SIGNATURE_WORDS + 6);
    }
}
