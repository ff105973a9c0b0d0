//! P2P messages and their strict hand-written encoding (`rnet_primitives::Encode`/`Decode`).
//! A message travels as a command byte and a payload; [`Message::decode`] rejects unknown
//! commands, oversize counts and trailing bytes.

use rnet_primitives::encode::{write_compact_size, write_var_bytes, write_vec};
use rnet_primitives::{
    Block, BlockHash, BlockHeader, Decode, DecodeError, Encode, Reader, Transaction, Txid,
};
use thiserror::Error;

use crate::addr::AddrEntry;

/// Protocol version spoken by this implementation (2: `version` carries `model_depth`; 3: the
/// chunk messages name the model object, a block's checkpoint or its update, see [`ModelObject`]).
pub const PROTOCOL_VERSION: u32 = 3;
/// Oldest protocol version a peer may speak: older ones encode the chunk messages without the
/// object kind, so their `version` is answered by a disconnect (no ban: they are not hostile).
pub const MIN_PROTOCOL_VERSION: u32 = 3;
/// Service bit: serves full blocks and the model updates and checkpoints it retains.
pub const NODE_NETWORK: u64 = 1;
/// Service bit: serves the model (update and checkpoint) of every block: an archive node, which
/// prunes none. Set only with [`NODE_NETWORK`] and `model_depth` 0 (see [`Version::model_depth`]).
pub const NODE_MODEL_ARCHIVE: u64 = 1 << 1;
/// Most headers in one `headers` message.
pub const MAX_HEADERS: usize = 2000;
/// Most inventory items in one `inv`/`getdata`/`notfound`.
pub const MAX_INV: usize = 50_000;
/// Most addresses in one `addr`.
pub const MAX_ADDR: usize = 1000;
/// Most block hashes in a locator.
pub const MAX_LOCATOR: usize = 101;
/// Longest user agent.
pub const MAX_USER_AGENT: usize = 256;
/// Most chunk hashes in one `chunkhashes` page (4 GiB of chunks, 128 KiB of hashes). An object's
/// list is paged: `getchunkhashes` names the first chunk index wanted, the answer carries at most
/// this many hashes from there and the object's chunk count.
pub const MAX_CHUNK_HASHES: usize = 4096;
/// Longest `reject` reason.
pub const MAX_REASON: usize = 111;

/// Why a message did not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    /// The command byte is not known.
    #[error("unknown command {0}")]
    UnknownCommand(u8),
    /// The payload is malformed.
    #[error("malformed payload of {command}: {source}")]
    Malformed {
        /// The command name.
        command: &'static str,
        /// The decoding failure.
        source: DecodeError,
    },
}

/// Which model object of a block a chunk message is about. Encoded as one byte right after the
/// block hash; any other byte does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelObject {
    /// The block's whole checkpoint (root and size `checkpoint_root`/`checkpoint_size` of its
    /// header): restoring a pruned or damaged checkpoint, snapshot sync.
    Checkpoint = 0,
    /// The block's model update (root and size `update_root`/`update_size`): what a node
    /// fetches for each new block, deriving the checkpoint from the parent's.
    Update = 1,
}

impl ModelObject {
    /// Both kinds, in byte order.
    pub const ALL: [ModelObject; 2] = [ModelObject::Checkpoint, ModelObject::Update];

    /// A lower-case name for logs (`checkpoint`, `update`).
    pub fn name(self) -> &'static str {
        match self {
            ModelObject::Checkpoint => "checkpoint",
            ModelObject::Update => "update",
        }
    }
}

impl std::fmt::Display for ModelObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Encode for ModelObject {
    fn encode(&self, w: &mut Vec<u8>) {
        w.push(*self as u8);
    }
}

impl Decode for ModelObject {
    const MIN_ENCODED_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.read_u8()? {
            0 => Ok(ModelObject::Checkpoint),
            1 => Ok(ModelObject::Update),
            _ => Err(DecodeError::InvalidValue("model object kind")),
        }
    }
}

/// The kind of an inventory item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvKind {
    /// A transaction (by txid).
    Tx,
    /// A block (by block hash).
    Block,
}

/// An inventory item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Inv {
    /// Kind.
    pub kind: InvKind,
    /// Hash (txid or block hash).
    pub hash: [u8; 32],
}

impl Inv {
    /// A block item.
    pub fn block(h: BlockHash) -> Self {
        Self { kind: InvKind::Block, hash: h.0 }
    }
    /// A transaction item.
    pub fn tx(h: Txid) -> Self {
        Self { kind: InvKind::Tx, hash: h.0 }
    }
}

impl Encode for Inv {
    fn encode(&self, w: &mut Vec<u8>) {
        w.push(match self.kind {
            InvKind::Tx => 1,
            InvKind::Block => 2,
        });
        w.extend_from_slice(&self.hash);
    }
}

impl Decode for Inv {
    const MIN_ENCODED_SIZE: usize = 33;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let kind = match r.read_u8()? {
            1 => InvKind::Tx,
            2 => InvKind::Block,
            _ => return Err(DecodeError::InvalidValue("inventory kind")),
        };
        Ok(Self { kind, hash: r.read_array()? })
    }
}

/// The `version` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Protocol version.
    pub version: u32,
    /// Network magic.
    pub magic: [u8; 4],
    /// Service bits ([`NODE_NETWORK`], [`NODE_MODEL_ARCHIVE`]; unknown bits are ignored).
    pub services: u64,
    /// How many of the most recent blocks' models the sender serves: it keeps the update and
    /// checkpoint of a block at height `h` while `best_height - h < model_depth`. 0 if and only if the
    /// [`NODE_MODEL_ARCHIVE`] bit is set (every model); any other combination does not decode.
    pub model_depth: u32,
    /// Sender's time (Unix seconds).
    pub timestamp: u64,
    /// Best (active tip) height.
    pub best_height: u32,
    /// Best tip chainwork (fork choice's measure).
    pub best_chainwork: u128,
    /// Best tip hash.
    pub best_hash: BlockHash,
    /// Random per-process nonce (self-connection detection).
    pub nonce: u64,
    /// The port the sender listens on (0: not listening).
    pub listen_port: u16,
    /// User agent, e.g. `/rnetd:0.1.0/`.
    pub user_agent: String,
}

/// One P2P message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Handshake: who we are.
    Version(Box<Version>),
    /// Handshake acknowledgement.
    Verack,
    /// Liveness probe.
    Ping(u64),
    /// Reply to `ping`.
    Pong(u64),
    /// Ask for addresses.
    GetAddr,
    /// Known addresses (addrv2 style: IPv4, IPv6, Tor v3).
    Addr(Vec<AddrEntry>),
    /// Announce blocks/transactions.
    Inv(Vec<Inv>),
    /// Ask for blocks/transactions.
    GetData(Vec<Inv>),
    /// Items we do not have.
    NotFound(Vec<Inv>),
    /// Ask for headers after the first locator hash on the active chain.
    GetHeaders {
        /// Block hashes, newest first.
        locator: Vec<BlockHash>,
        /// Stop at this hash (zero: up to [`MAX_HEADERS`]).
        stop: BlockHash,
    },
    /// Headers, in chain order.
    Headers(Vec<BlockHeader>),
    /// A full block.
    Block(Box<Block>),
    /// A transaction.
    Tx(Box<Transaction>),
    /// Ask for the peer's mempool (answered with `inv`).
    Mempool,
    /// Ask for a page of the chunk hashes of a block's model object.
    GetChunkHashes {
        /// The block.
        block: BlockHash,
        /// Its checkpoint or its update.
        kind: ModelObject,
        /// The first chunk index wanted.
        start: u32,
    },
    /// A page of the chunk hashes of a block's model object: at most [`MAX_CHUNK_HASHES`]
    /// hashes from chunk `start`. The merkle root of the whole list (all pages, in order) is the
    /// header's root of that object: `checkpoint_root` or `update_root`. Decoding checks
    /// `start + hashes.len() ≤ total`; the receiver checks `total` against the header's size.
    ChunkHashes {
        /// The block.
        block: BlockHash,
        /// Its checkpoint or its update.
        kind: ModelObject,
        /// The chunk index of the first hash.
        start: u32,
        /// The object's chunk count (`ceil(size / 1 MiB)`).
        total: u32,
        /// Keccak-256d of each 1 MiB chunk from `start`.
        hashes: Vec<[u8; 32]>,
    },
    /// Ask for one chunk of a block's model object.
    GetChunk {
        /// The block.
        block: BlockHash,
        /// Its checkpoint or its update.
        kind: ModelObject,
        /// Chunk index.
        index: u32,
    },
    /// One chunk of a block's model object.
    Chunk {
        /// The block.
        block: BlockHash,
        /// Its checkpoint or its update.
        kind: ModelObject,
        /// Chunk index.
        index: u32,
        /// The chunk bytes (at most 1 MiB).
        data: Vec<u8>,
    },
    /// The answer to `getchunkhashes`/`getchunk` when the sender does not have (or cannot
    /// serve now) that model object: ask another peer.
    ModelNotFound {
        /// The block.
        block: BlockHash,
        /// Its checkpoint or its update.
        kind: ModelObject,
    },
    /// A refusal with a reason (informational).
    Reject(String),
}

/// Command bytes.
pub mod cmd {
    #![allow(missing_docs)]
    pub const VERSION: u8 = 0;
    pub const VERACK: u8 = 1;
    pub const PING: u8 = 2;
    pub const PONG: u8 = 3;
    pub const GETADDR: u8 = 4;
    pub const ADDR: u8 = 5;
    pub const INV: u8 = 6;
    pub const GETDATA: u8 = 7;
    pub const NOTFOUND: u8 = 8;
    pub const GETHEADERS: u8 = 9;
    pub const HEADERS: u8 = 10;
    pub const BLOCK: u8 = 11;
    pub const TX: u8 = 12;
    pub const MEMPOOL: u8 = 13;
    pub const GETCHUNKHASHES: u8 = 14;
    pub const CHUNKHASHES: u8 = 15;
    pub const GETCHUNK: u8 = 16;
    pub const CHUNK: u8 = 17;
    pub const REJECT: u8 = 18;
    pub const MODELNOTFOUND: u8 = 19;
}

fn read_string(r: &mut Reader<'_>, max: usize) -> Result<String, DecodeError> {
    String::from_utf8(r.read_var_bytes(max)?).map_err(|_| DecodeError::InvalidValue("utf-8"))
}

fn hash(r: &mut Reader<'_>) -> Result<BlockHash, DecodeError> {
    Ok(BlockHash(r.read_array()?))
}

impl Message {
    /// The message's command name (for logs and statistics).
    pub fn name(&self) -> &'static str {
        command_name(self.command())
    }

    /// The command byte.
    pub fn command(&self) -> u8 {
        match self {
            Message::Version(_) => cmd::VERSION,
            Message::Verack => cmd::VERACK,
            Message::Ping(_) => cmd::PING,
            Message::Pong(_) => cmd::PONG,
            Message::GetAddr => cmd::GETADDR,
            Message::Addr(_) => cmd::ADDR,
            Message::Inv(_) => cmd::INV,
            Message::GetData(_) => cmd::GETDATA,
            Message::NotFound(_) => cmd::NOTFOUND,
            Message::GetHeaders { .. } => cmd::GETHEADERS,
            Message::Headers(_) => cmd::HEADERS,
            Message::Block(_) => cmd::BLOCK,
            Message::Tx(_) => cmd::TX,
            Message::Mempool => cmd::MEMPOOL,
            Message::GetChunkHashes { .. } => cmd::GETCHUNKHASHES,
            Message::ChunkHashes { .. } => cmd::CHUNKHASHES,
            Message::GetChunk { .. } => cmd::GETCHUNK,
            Message::Chunk { .. } => cmd::CHUNK,
            Message::Reject(_) => cmd::REJECT,
            Message::ModelNotFound { .. } => cmd::MODELNOTFOUND,
        }
    }

    /// The payload bytes.
    pub fn payload(&self) -> Vec<u8> {
        let mut w = Vec::new();
        match self {
            Message::Version(v) => {
                v.version.encode(&mut w);
                w.extend_from_slice(&v.magic);
                v.services.encode(&mut w);
                v.model_depth.encode(&mut w);
                v.timestamp.encode(&mut w);
                v.best_height.encode(&mut w);
                w.extend_from_slice(&v.best_chainwork.to_le_bytes());
                v.best_hash.0.encode(&mut w);
                v.nonce.encode(&mut w);
                v.listen_port.encode(&mut w);
                write_var_bytes(&mut w, v.user_agent.as_bytes());
            }
            Message::Verack | Message::GetAddr | Message::Mempool => {}
            Message::Ping(n) | Message::Pong(n) => n.encode(&mut w),
            Message::Addr(a) => {
                write_compact_size(&mut w, a.len() as u64);
                for e in a {
                    e.encode(&mut w);
                }
            }
            Message::Inv(v) | Message::GetData(v) | Message::NotFound(v) => write_vec(&mut w, v),
            Message::GetHeaders { locator, stop } => {
                write_compact_size(&mut w, locator.len() as u64);
                for h in locator {
                    w.extend_from_slice(&h.0);
                }
                w.extend_from_slice(&stop.0);
            }
            Message::Headers(h) => write_vec(&mut w, h),
            Message::Block(b) => b.encode(&mut w),
            Message::Tx(t) => t.encode(&mut w),
            Message::ModelNotFound { block, kind } => {
                w.extend_from_slice(&block.0);
                kind.encode(&mut w);
            }
            Message::GetChunkHashes { block, kind, start } => {
                w.extend_from_slice(&block.0);
                kind.encode(&mut w);
                start.encode(&mut w);
            }
            Message::ChunkHashes { block, kind, start, total, hashes } => {
                w.extend_from_slice(&block.0);
                kind.encode(&mut w);
                start.encode(&mut w);
                total.encode(&mut w);
                write_vec(&mut w, hashes);
            }
            Message::GetChunk { block, kind, index } => {
                w.extend_from_slice(&block.0);
                kind.encode(&mut w);
                index.encode(&mut w);
            }
            Message::Chunk { block, kind, index, data } => {
                return chunk_payload(block, *kind, *index, data);
            }
            Message::Reject(s) => write_var_bytes(&mut w, s.as_bytes()),
        }
        w
    }

    /// Decodes a message from its command byte and payload (strict: no trailing bytes).
    pub fn decode(command: u8, payload: &[u8]) -> Result<Self, MessageError> {
        let name = command_name(command);
        if name == "unknown" {
            return Err(MessageError::UnknownCommand(command));
        }
        let mut r = Reader::new(payload);
        let m = decode_body(command, &mut r)
            .and_then(|m| r.finish().map(|_| m))
            .map_err(|source| MessageError::Malformed { command: name, source })?;
        Ok(m)
    }
}

impl Message {
    /// Rejects a `version` whose model service is inconsistent (see [`Version::model_depth`]).
    fn check_version(self) -> Result<Self, DecodeError> {
        if let Message::Version(v) = &self {
            check_model_service(v.services, v.model_depth)?;
        }
        Ok(self)
    }
}

/// The rule of the model service: the [`NODE_MODEL_ARCHIVE`] bit comes with [`NODE_NETWORK`]
/// and `model_depth` 0; without it `model_depth` is at least 1 (a node serves its tip's model).
pub fn check_model_service(services: u64, model_depth: u32) -> Result<(), DecodeError> {
    let archive = services & NODE_MODEL_ARCHIVE != 0;
    if archive && services & NODE_NETWORK == 0 {
        return Err(DecodeError::InvalidValue("archive service bit without NODE_NETWORK"));
    }
    match (archive, model_depth) {
        (true, 0) | (false, 1..) => Ok(()),
        (true, _) => Err(DecodeError::InvalidValue("model depth with the archive service bit")),
        (false, 0) => Err(DecodeError::InvalidValue("model depth 0 without the archive bit")),
    }
}

impl Version {
    /// Whether the sender serves the model of the block at `height`, judged from its
    /// advertised service and its best height (`best_height`, which grows as it announces
    /// headers). A hint: a peer may still answer `notfound`.
    pub fn serves_model(services: u64, model_depth: u32, best_height: u32, height: u32) -> bool {
        services & NODE_MODEL_ARCHIVE != 0 || best_height.saturating_sub(height) < model_depth
    }
}

/// The rule of a `chunkhashes` page: a non-empty page starts inside the object
/// (`start < total`), and no page runs past its end (`start + len ≤ total`).
pub fn check_hash_page(start: u32, total: u32, len: usize) -> Result<(), DecodeError> {
    if len > 0 && start >= total {
        return Err(DecodeError::InvalidValue("chunk hash page starts past the object"));
    }
    if u64::from(start) + len as u64 > u64::from(total) {
        return Err(DecodeError::InvalidValue("chunk hash page overruns the object"));
    }
    Ok(())
}

/// The number of 1 MiB chunks of a model object of `size` bytes (`ceil(size / CHUNK_SIZE)`).
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(rnet_model::checkpoint::CHUNK_SIZE as u64)
}

/// The payload of a `chunk` message, encoded straight from the chunk's bytes (so a node serving
/// a slice of a checkpoint or update it shares need not copy it into a [`Message`] first).
pub fn chunk_payload(block: &BlockHash, kind: ModelObject, index: u32, data: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(data.len() + 42);
    w.extend_from_slice(&block.0);
    kind.encode(&mut w);
    index.encode(&mut w);
    write_var_bytes(&mut w, data);
    w
}

fn decode_body(command: u8, r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(match command {
        cmd::VERSION => Message::Version(Box::new(Version {
            version: r.read_u32()?,
            magic: r.read_array()?,
            services: r.read_u64()?,
            model_depth: r.read_u32()?,
            timestamp: r.read_u64()?,
            best_height: r.read_u32()?,
            best_chainwork: u128::from_le_bytes(r.read_array()?),
            best_hash: hash(r)?,
            nonce: r.read_u64()?,
            listen_port: r.read_u16()?,
            user_agent: read_string(r, MAX_USER_AGENT)?,
        }))
        .check_version()?,
        cmd::VERACK => Message::Verack,
        cmd::PING => Message::Ping(r.read_u64()?),
        cmd::PONG => Message::Pong(r.read_u64()?),
        cmd::GETADDR => Message::GetAddr,
        cmd::ADDR => {
            let n = r.read_len(AddrEntry::MIN_SIZE, MAX_ADDR)?;
            let mut v = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                v.push(AddrEntry::decode(r)?);
            }
            Message::Addr(v)
        }
        cmd::INV => Message::Inv(r.read_vec(MAX_INV)?),
        cmd::GETDATA => Message::GetData(r.read_vec(MAX_INV)?),
        cmd::NOTFOUND => Message::NotFound(r.read_vec(MAX_INV)?),
        cmd::GETHEADERS => {
            let n = r.read_len(32, MAX_LOCATOR)?;
            let mut locator = Vec::with_capacity(n);
            for _ in 0..n {
                locator.push(hash(r)?);
            }
            Message::GetHeaders { locator, stop: hash(r)? }
        }
        cmd::HEADERS => Message::Headers(r.read_vec(MAX_HEADERS)?),
        cmd::BLOCK => Message::Block(Box::new(Block::decode(r)?)),
        cmd::TX => Message::Tx(Box::new(Transaction::decode(r)?)),
        cmd::MEMPOOL => Message::Mempool,
        cmd::GETCHUNKHASHES => Message::GetChunkHashes {
            block: hash(r)?,
            kind: ModelObject::decode(r)?,
            start: r.read_u32()?,
        },
        cmd::CHUNKHASHES => {
            let (block, kind) = (hash(r)?, ModelObject::decode(r)?);
            let (start, total) = (r.read_u32()?, r.read_u32()?);
            let hashes: Vec<[u8; 32]> = r.read_vec(MAX_CHUNK_HASHES)?;
            check_hash_page(start, total, hashes.len())?;
            Message::ChunkHashes { block, kind, start, total, hashes }
        }
        cmd::GETCHUNK => Message::GetChunk {
            block: hash(r)?,
            kind: ModelObject::decode(r)?,
            index: r.read_u32()?,
        },
        cmd::CHUNK => Message::Chunk {
            block: hash(r)?,
            kind: ModelObject::decode(r)?,
            index: r.read_u32()?,
            data: r.read_var_bytes(rnet_model::checkpoint::CHUNK_SIZE)?,
        },
        cmd::REJECT => Message::Reject(read_string(r, MAX_REASON)?),
        cmd::MODELNOTFOUND => {
            Message::ModelNotFound { block: hash(r)?, kind: ModelObject::decode(r)? }
        }
        _ => return Err(DecodeError::InvalidValue("command")),
    })
}

/// The name of a command byte (`"unknown"` if none).
pub fn command_name(command: u8) -> &'static str {
    const NAMES: [&str; 20] = [
        "version",
        "verack",
        "ping",
        "pong",
        "getaddr",
        "addr",
        "inv",
        "getdata",
        "notfound",
        "getheaders",
        "headers",
        "block",
        "tx",
        "mempool",
        "getchunkhashes",
        "chunkhashes",
        "getchunk",
        "chunk",
        "reject",
        "modelnotfound",
    ];
    NAMES.get(command as usize).copied().unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::NetAddr;

    fn rt(m: Message) {
        let p = m.payload();
        assert_eq!(Message::decode(m.command(), &p).unwrap(), m);
        let mut longer = p.clone();
        longer.push(0);
        assert!(Message::decode(m.command(), &longer).is_err());
    }

    #[test]
    fn round_trips() {
        rt(Message::Version(Box::new(Version {
            version: PROTOCOL_VERSION,
            magic: *b"abcd",
            services: NODE_NETWORK,
            model_depth: 144,
            timestamp: 5,
            best_height: 7,
            best_chainwork: 99 << 70,
            best_hash: BlockHash([3; 32]),
            nonce: 42,
            listen_port: 29555,
            user_agent: "/rnetd:0.1.0/".into(),
        })));
        rt(Message::Verack);
        rt(Message::Ping(9));
        rt(Message::Inv(vec![Inv::block(BlockHash([1; 32])), Inv::tx(Txid([2; 32]))]));
        rt(Message::GetHeaders { locator: vec![BlockHash([1; 32])], stop: BlockHash::ZERO });
        for kind in ModelObject::ALL {
            let block = BlockHash([1; 32]);
            rt(Message::GetChunkHashes { block, kind, start: 0 });
            rt(Message::GetChunkHashes { block, kind, start: 4096 });
            rt(Message::ChunkHashes { block, kind, start: 0, total: 1, hashes: vec![[5; 32]] });
            rt(Message::ChunkHashes { block, kind, start: 3, total: 5, hashes: vec![[5; 32]; 2] });
            rt(Message::GetChunk { block, kind, index: 7 });
            rt(Message::Chunk { block, kind, index: 3, data: vec![1, 2, 3] });
            rt(Message::ModelNotFound { block, kind });
        }
        rt(Message::Addr(vec![
            AddrEntry { time: 1, services: 1, addr: NetAddr::V4([127, 0, 0, 1]), port: 1 },
            AddrEntry { time: 1, services: 1, addr: NetAddr::TorV3([9; 32]), port: 9555 },
        ]));
        rt(Message::Reject("bad".into()));
        assert_eq!(Message::decode(200, &[]), Err(MessageError::UnknownCommand(200)));
        assert!(Message::decode(cmd::INV, &[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    fn version(services: u64, model_depth: u32) -> Version {
        Version {
            version: PROTOCOL_VERSION,
            magic: *b"abcd",
            services,
            model_depth,
            timestamp: 5,
            best_height: 7,
            best_chainwork: 1,
            best_hash: BlockHash([3; 32]),
            nonce: 42,
            listen_port: 0,
            user_agent: String::new(),
        }
    }

    #[test]
    fn version_carries_the_model_service() {
        let archive = version(NODE_NETWORK | NODE_MODEL_ARCHIVE, 0);
        rt(Message::Version(Box::new(archive.clone())));
        rt(Message::Version(Box::new(version(NODE_NETWORK, 1))));
        rt(Message::Version(Box::new(version(NODE_NETWORK, u32::MAX))));
        // Layout: version u32, magic, services u64, model_depth u32 LE, then the rest.
        let p = Message::Version(Box::new(version(NODE_NETWORK, 0x0102_0304))).payload();
        assert_eq!(p[16..20], [4, 3, 2, 1]);
        // Unknown service bits are carried and ignored.
        rt(Message::Version(Box::new(version(NODE_NETWORK | 1 << 40, 10))));
    }

    #[test]
    fn inconsistent_model_service_does_not_decode() {
        for (services, depth, why) in [
            (NODE_NETWORK | NODE_MODEL_ARCHIVE, 144, "model depth with the archive service bit"),
            (NODE_NETWORK, 0, "model depth 0 without the archive bit"),
            (NODE_MODEL_ARCHIVE, 0, "archive service bit without NODE_NETWORK"),
        ] {
            let p = Message::Version(Box::new(version(services, depth))).payload();
            assert_eq!(
                Message::decode(cmd::VERSION, &p),
                Err(MessageError::Malformed {
                    command: "version",
                    source: DecodeError::InvalidValue(why)
                }),
                "services {services:#x} depth {depth}"
            );
        }
        // A protocol-1 `version` (no model_depth) is four bytes short: malformed.
        let mut p = Message::Version(Box::new(version(NODE_NETWORK, 1))).payload();
        p.drain(16..20);
        assert!(Message::decode(cmd::VERSION, &p).is_err());
    }

    /// Every chunk message puts the object kind right after the block hash: 0 checkpoint,
    /// 1 update.
    #[test]
    fn chunk_messages_carry_the_object_kind_after_the_block() {
        let block = BlockHash([0xab; 32]);
        for (kind, byte) in [(ModelObject::Checkpoint, 0u8), (ModelObject::Update, 1)] {
            let msgs = [
                Message::GetChunkHashes { block, kind, start: 0 },
                Message::ChunkHashes {
                    block,
                    kind,
                    start: 0,
                    total: 2,
                    hashes: vec![[5; 32], [6; 32]],
                },
                Message::GetChunk { block, kind, index: 0x0102_0304 },
                Message::Chunk { block, kind, index: 2, data: vec![9; 10] },
                Message::ModelNotFound { block, kind },
            ];
            for m in msgs {
                let p = m.payload();
                assert_eq!(p[..32], block.0, "{}: block first", m.name());
                assert_eq!(p[32], byte, "{}: kind right after the block", m.name());
            }
            let p = Message::GetChunk { block, kind, index: 0x0102_0304 }.payload();
            assert_eq!(p[33..], [4, 3, 2, 1], "then the index, LE");
            assert_eq!(p.len(), 37);
            assert_eq!(Message::ModelNotFound { block, kind }.payload().len(), 33);
        }
        // The zero-copy encoder is the message's own encoding.
        let data = vec![7u8; 1000];
        let m = Message::Chunk { block, kind: ModelObject::Update, index: 5, data: data.clone() };
        assert_eq!(chunk_payload(&block, ModelObject::Update, 5, &data), m.payload());
        assert_eq!(command_name(cmd::MODELNOTFOUND), "modelnotfound");
    }

    /// A kind byte other than 0 or 1 does not decode, in every chunk message; a payload cut
    /// anywhere (a protocol-2 one lacks the kind byte) does not decode either.
    #[test]
    fn unknown_kind_and_short_chunk_payloads_do_not_decode() {
        let block = BlockHash([3; 32]);
        let msgs = [
            Message::GetChunkHashes { block, kind: ModelObject::Update, start: 1 },
            Message::ChunkHashes {
                block,
                kind: ModelObject::Update,
                start: 1,
                total: 2,
                hashes: vec![[1; 32]],
            },
            Message::GetChunk { block, kind: ModelObject::Update, index: 1 },
            Message::Chunk { block, kind: ModelObject::Update, index: 1, data: vec![1, 2] },
            Message::ModelNotFound { block, kind: ModelObject::Update },
        ];
        for m in &msgs {
            let p = m.payload();
            for bad in [2u8, 3, 0x80, 0xff] {
                let mut q = p.clone();
                q[32] = bad;
                assert_eq!(
                    Message::decode(m.command(), &q),
                    Err(MessageError::Malformed {
                        command: m.name(),
                        source: DecodeError::InvalidValue("model object kind")
                    }),
                    "{} with kind {bad}",
                    m.name()
                );
            }
            for cut in 0..p.len() {
                assert!(Message::decode(m.command(), &p[..cut]).is_err(), "{} cut", m.name());
            }
            // Protocol 2's layout (no kind byte).
            let mut v2 = p.clone();
            v2.remove(32);
            let d = Message::decode(m.command(), &v2);
            assert!(d != Ok(m.clone()), "{} v2 layout: {d:?}", m.name());
        }
    }

    /// A deterministic sweep in the style of the fuzz target: mutated and random payloads of
    /// every command never panic, and whatever decodes re-encodes to the same bytes.
    #[test]
    fn mutated_payloads_never_panic_and_decoded_ones_re_encode() {
        let block = BlockHash([9; 32]);
        let seeds: Vec<Message> = ModelObject::ALL
            .into_iter()
            .flat_map(|kind| {
                [
                    Message::GetChunkHashes { block, kind, start: 2 },
                    Message::ChunkHashes {
                        block,
                        kind,
                        start: 1,
                        total: 3,
                        hashes: vec![[1; 32], [2; 32]],
                    },
                    Message::GetChunk { block, kind, index: 3 },
                    Message::Chunk { block, kind, index: 0, data: vec![5; 300] },
                    Message::ModelNotFound { block, kind },
                ]
            })
            .chain([Message::Version(Box::new(version(NODE_NETWORK, 5)))])
            .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let check = |command: u8, p: &[u8]| {
            if let Ok(m) = Message::decode(command, p) {
                assert_eq!(m.command(), command);
                assert_eq!(m.payload(), p);
            }
        };
        for m in &seeds {
            let p = m.payload();
            for _ in 0..300 {
                let mut q = p.clone();
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % q.len();
                    q[i] = next() as u8;
                }
                check(m.command(), &q);
                let cut = (next() as usize) % (q.len() + 1);
                check(m.command(), &q[..cut]);
            }
        }
        for _ in 0..2000 {
            let len = (next() % 80) as usize;
            let p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            check((next() % 24) as u8, &p);
        }
    }

    /// `getchunkhashes` names the first chunk wanted; `chunkhashes` is one page: its first index
    /// and the object's chunk count, then at most [`MAX_CHUNK_HASHES`] hashes that stay inside
    /// the object.
    #[test]
    fn chunk_hash_pages_carry_start_and_total() {
        let block = BlockHash([2; 32]);
        let kind = ModelObject::Checkpoint;
        // Layout: block, kind, start u32 LE (37 bytes in all).
        let p = Message::GetChunkHashes { block, kind, start: 0x0102_0304 }.payload();
        assert_eq!((p.len(), &p[33..]), (37, &[4u8, 3, 2, 1][..]));
        // Layout: block, kind, start, total (u32 LE), then the hashes.
        let page = |start: u32, total: u32, n: usize| Message::ChunkHashes {
            block,
            kind,
            start,
            total,
            hashes: (0..n).map(|i| [i as u8; 32]).collect(),
        };
        let p = page(0x0a0b_0c0d, 0x1020_3040, 0).payload();
        assert_eq!(p[33..41], [0x0d, 0x0c, 0x0b, 0x0a, 0x40, 0x30, 0x20, 0x10]);
        // A 25 GiB checkpoint in pages of MAX_CHUNK_HASHES: the pages round-trip, the last short.
        let total = 25_600;
        let mut start = 0u32;
        while start < total {
            let n = (total - start).min(MAX_CHUNK_HASHES as u32);
            rt(page(start, total, n as usize));
            start += n;
        }
        rt(page(total - 1, total, 1));
        // An empty page at the end decodes (nothing past the object).
        rt(page(7, 7, 0));
        let err = |m: Message, why: &'static str| {
            let p = m.payload();
            assert_eq!(
                Message::decode(cmd::CHUNKHASHES, &p),
                Err(MessageError::Malformed {
                    command: "chunkhashes",
                    source: DecodeError::InvalidValue(why)
                }),
                "{m:?}"
            );
        };
        err(page(5, 5, 1), "chunk hash page starts past the object");
        err(page(9, 5, 2), "chunk hash page starts past the object");
        err(page(0, 0, 1), "chunk hash page starts past the object");
        err(page(4, 5, 2), "chunk hash page overruns the object");
        err(page(0, 3, 4), "chunk hash page overruns the object");
        err(page(u32::MAX - 1, u32::MAX, 2), "chunk hash page overruns the object");
        err(page(6, 5, 0), "chunk hash page overruns the object");
        // A page of more than MAX_CHUNK_HASHES does not decode, whatever its total.
        let over = page(0, u32::MAX, MAX_CHUNK_HASHES + 1).payload();
        assert!(Message::decode(cmd::CHUNKHASHES, &over).is_err());
        rt(page(0, u32::MAX, MAX_CHUNK_HASHES));
        assert_eq!(chunk_count(0), 0);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(CHUNK as u64), 1);
        assert_eq!(chunk_count(CHUNK as u64 + 1), 2);
        assert_eq!(chunk_count(25 << 30), 25_600);
    }

    const CHUNK: usize = rnet_model::checkpoint::CHUNK_SIZE;

    #[test]
    fn model_depth_covers_the_most_recent_blocks() {
        // Depth 10 at best height 100 keeps heights 91..=100 (as pruning does: height ≤ tip − N goes).
        assert!(Version::serves_model(NODE_NETWORK, 10, 100, 91));
        assert!(!Version::serves_model(NODE_NETWORK, 10, 100, 90));
        assert!(Version::serves_model(NODE_NETWORK, 10, 100, 150), "not yet pruned above its tip");
        assert!(Version::serves_model(NODE_NETWORK | NODE_MODEL_ARCHIVE, 0, 100, 0));
    }
}
