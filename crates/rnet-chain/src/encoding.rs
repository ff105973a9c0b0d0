//! Hand-written encodings of the records the chainstate stores (see `docs/chainstate.md`).
//!
//! Built on the consensus encoding of `rnet_primitives::encode` (little-endian integers,
//! CompactSize counts) and decoded strictly: every record must span its bytes exactly, booleans
//! are 0 or 1, flags have no unknown bits. A record that fails to decode is reported as corrupt,
//! never a panic.

use rnet_consensus::{Coin, HeaderSummary};
use rnet_primitives::encode::{Decode, DecodeError, Encode, Reader, write_compact_size};
use rnet_primitives::{Amount, BlockHash, BlockHeader, Hash256, OutPoint, TxOut};

/// Encoded size of an outpoint (txid ‖ vout LE).
pub const OUTPOINT_LEN: usize = 36;

/// Appends the encoding of a coin: `TxOut ‖ height u32 ‖ creation_mtp u64 ‖ is_coinbase u8 ‖
/// creation_loss_index u64`.
pub fn encode_coin(coin: &Coin, w: &mut Vec<u8>) {
    coin.output.encode(w);
    coin.height.encode(w);
    coin.creation_mtp.encode(w);
    w.push(u8::from(coin.is_coinbase));
    coin.creation_loss_index.encode(w);
}

/// The encoding of a coin as a fresh vector.
pub fn coin_bytes(coin: &Coin) -> Vec<u8> {
    let mut w = Vec::with_capacity(64);
    encode_coin(coin, &mut w);
    w
}

/// Minimum encoded size of a coin.
const COIN_MIN_LEN: usize = 9 + 4 + 8 + 1 + 8;

/// Reads a coin.
pub fn decode_coin(r: &mut Reader<'_>) -> Result<Coin, DecodeError> {
    let output = TxOut::decode(r)?;
    let height = r.read_u32()?;
    let creation_mtp = r.read_u64()?;
    let is_coinbase = read_bool(r)?;
    let creation_loss_index = r.read_u64()?;
    Ok(Coin { output, height, creation_mtp, is_coinbase, creation_loss_index })
}

/// Decodes a coin spanning `bytes` exactly.
pub fn coin_from_bytes(bytes: &[u8]) -> Result<Coin, DecodeError> {
    let mut r = Reader::new(bytes);
    let coin = decode_coin(&mut r)?;
    r.finish()?;
    Ok(coin)
}

fn read_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.read_u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidValue("boolean must be 0 or 1")),
    }
}

/// The 36-byte key of an outpoint in the `utxo` table (its consensus encoding).
pub fn outpoint_key(outpoint: &OutPoint) -> [u8; OUTPOINT_LEN] {
    let mut key = [0u8; OUTPOINT_LEN];
    key[..32].copy_from_slice(outpoint.txid.as_bytes());
    key[32..].copy_from_slice(&outpoint.vout.to_le_bytes());
    key
}

/// Parses a `utxo` table key.
pub fn outpoint_from_key(key: &[u8]) -> Result<OutPoint, DecodeError> {
    rnet_primitives::decode_exact(key)
}

/// Length of an `expiry_index` key.
pub const EXPIRY_KEY_LEN: usize = 8 + OUTPOINT_LEN;

/// The `expiry_index` key: `creation_loss_index` big-endian (so keys sort by loss) ‖ outpoint.
pub fn expiry_key(creation_loss_index: u64, outpoint: &OutPoint) -> [u8; EXPIRY_KEY_LEN] {
    let mut key = [0u8; EXPIRY_KEY_LEN];
    key[..8].copy_from_slice(&creation_loss_index.to_be_bytes());
    key[8..].copy_from_slice(&outpoint_key(outpoint));
    key
}

/// Parses an `expiry_index` key into (creation loss, outpoint).
pub fn parse_expiry_key(key: &[u8]) -> Result<(u64, OutPoint), DecodeError> {
    if key.len() != EXPIRY_KEY_LEN {
        return Err(DecodeError::InvalidValue("expiry key length"));
    }
    let mut loss = [0u8; 8];
    loss.copy_from_slice(&key[..8]);
    Ok((u64::from_be_bytes(loss), outpoint_from_key(&key[8..])?))
}

/// The `children` key: parent hash ‖ child hash.
pub fn child_key(parent: &BlockHash, child: &BlockHash) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(parent.as_bytes());
    key[32..].copy_from_slice(child.as_bytes());
    key
}

/// The `checkpoint_heights` key: height big-endian ‖ block hash.
pub fn height_key(height: u32, hash: &BlockHash) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..4].copy_from_slice(&height.to_be_bytes());
    key[4..].copy_from_slice(hash.as_bytes());
    key
}

/// Parses a 32-byte hash key.
pub fn hash_from_slice(bytes: &[u8]) -> Result<BlockHash, DecodeError> {
    rnet_primitives::decode_exact(bytes)
}

/// Appends a header summary: `hash ‖ height u32 ‖ time u64 ‖ parent_loss u64 ‖ val_loss u64 ‖
/// required_improvement u64 ‖ required_eff u64 ‖ loss_index u64 ‖ chainwork u128 ‖
/// checkpoint_root ‖ d_model u32 ‖ n_layers u32 ‖ cumulative_growth u32 ‖ stagnation u32 ‖
/// circulating_supply u64`.
pub fn encode_summary(s: &HeaderSummary, w: &mut Vec<u8>) {
    s.hash.encode(w);
    s.height.encode(w);
    s.time.encode(w);
    s.parent_loss.encode(w);
    s.val_loss.encode(w);
    s.required_improvement.encode(w);
    s.required_eff.encode(w);
    s.loss_index.encode(w);
    w.extend_from_slice(&s.chainwork.to_le_bytes());
    s.checkpoint_root.encode(w);
    s.d_model.encode(w);
    s.n_layers.encode(w);
    s.cumulative_growth.encode(w);
    s.stagnation.encode(w);
    s.circulating_supply.encode(w);
}

/// Reads a u128 (16 bytes, little-endian).
fn read_u128(r: &mut Reader<'_>) -> Result<u128, DecodeError> {
    Ok(u128::from_le_bytes(r.read_array()?))
}

/// Reads a header summary.
pub fn decode_summary(r: &mut Reader<'_>) -> Result<HeaderSummary, DecodeError> {
    Ok(HeaderSummary {
        hash: BlockHash::decode(r)?,
        height: r.read_u32()?,
        time: r.read_u64()?,
        parent_loss: r.read_u64()?,
        val_loss: r.read_u64()?,
        required_improvement: r.read_u64()?,
        required_eff: r.read_u64()?,
        loss_index: r.read_u64()?,
        chainwork: read_u128(r)?,
        checkpoint_root: Hash256::decode(r)?,
        d_model: r.read_u32()?,
        n_layers: r.read_u32()?,
        cumulative_growth: r.read_u32()?,
        stagnation: r.read_u32()?,
        circulating_supply: Amount::decode(r)?,
    })
}

/// Status bits of a block index entry.
pub mod flags {
    /// The full block is stored in the `blocks` table.
    pub const HAVE_DATA: u8 = 1 << 0;
    /// The block's checkpoint is stored (record in `checkpoints`, bytes in a file).
    pub const HAVE_CHECKPOINT: u8 = 1 << 1;
    /// The header passed the contextual header checks.
    pub const VALID_HEADER: u8 = 1 << 2;
    /// The block was connected successfully at least once: header context, Proof-of-Training and
    /// transactions are valid, and the entry's summary is set.
    pub const VALID_FULL: u8 = 1 << 3;
    /// The block itself is invalid (or was invalidated by the operator).
    pub const FAILED: u8 = 1 << 4;
    /// An ancestor of the block is invalid.
    pub const FAILED_CHILD: u8 = 1 << 5;
    /// Proof-of-Training passed (checkpoint, parent checkpoint, sample and both losses), so a
    /// later connection skips the evaluation. Fork choice sets it on every block of a candidate
    /// branch before disconnecting anything.
    pub const VALID_POT: u8 = 1 << 6;
    /// The block's model update is stored (in the `updates` table), checked against the
    /// header's update root and size.
    pub const HAVE_UPDATE: u8 = 1 << 7;
    /// Every defined bit.
    pub const ALL: u8 = HAVE_DATA
        | HAVE_CHECKPOINT
        | VALID_HEADER
        | VALID_FULL
        | FAILED
        | FAILED_CHILD
        | VALID_POT
        | HAVE_UPDATE;
    /// Either failure bit.
    pub const FAILED_MASK: u8 = FAILED | FAILED_CHILD;
}

/// One entry of the block index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The block's header.
    pub header: BlockHeader,
    /// Status bits ([`flags`]).
    pub status: u8,
    /// First-seen order: assigned when the block first became connectable (data and checkpoint,
    /// or already validated); 0 while it is not. Ties in fork choice go to the lower number.
    pub seq: u64,
    /// Claimed chainwork: the parent's plus this header's `required_improvement` (known from
    /// headers alone; equal to the summary's once the block is validated).
    pub chainwork: u128,
    /// The consensus summary, set once the block has been connected (validated) once.
    pub summary: Option<HeaderSummary>,
}

impl IndexEntry {
    /// The block's id.
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// Whether any of `bits` is set.
    pub fn has(&self, bits: u8) -> bool {
        self.status & bits != 0
    }

    /// Whether the block or an ancestor is invalid.
    pub fn is_failed(&self) -> bool {
        self.has(flags::FAILED_MASK)
    }

    /// Whether the block can be connected without fetching anything of its own: its data is
    /// stored and either it was validated before or its model update is stored (its checkpoint
    /// is derived from the parent's when it is validated), and it is not invalid.
    pub fn is_connectable(&self) -> bool {
        !self.is_failed()
            && self.has(flags::HAVE_DATA)
            && (self.has(flags::VALID_FULL) || self.has(flags::HAVE_UPDATE))
    }
}

impl Encode for IndexEntry {
    fn encode(&self, w: &mut Vec<u8>) {
        self.header.encode(w);
        w.push(self.status);
        self.seq.encode(w);
        w.extend_from_slice(&self.chainwork.to_le_bytes());
        match &self.summary {
            None => w.push(0),
            Some(s) => {
                w.push(1);
                encode_summary(s, w);
            }
        }
    }
}

// A status byte with an undefined bit would have to be refused when decoding.
const _: () = assert!(flags::ALL == u8::MAX, "every status bit is defined");

impl Decode for IndexEntry {
    const MIN_ENCODED_SIZE: usize = rnet_primitives::HEADER_SIZE + 1 + 8 + 16 + 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = BlockHeader::decode(r)?;
        // Every bit of the status byte is defined (checked below at compile time).
        let status = r.read_u8()?;
        let seq = r.read_u64()?;
        let chainwork = read_u128(r)?;
        let summary = if read_bool(r)? { Some(decode_summary(r)?) } else { None };
        if let Some(s) = &summary {
            if s.hash != header.hash() || s.height != header.height {
                return Err(DecodeError::InvalidValue("summary does not match header"));
            }
        }
        Ok(Self { header, status, seq, chainwork, summary })
    }
}

/// Undo data of one connected block: everything needed to disconnect it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UndoRecord {
    /// Coins the block spent (restored on disconnect).
    pub spent: Vec<(OutPoint, Coin)>,
    /// Outpoints of the coins the block created (removed on disconnect).
    pub created: Vec<OutPoint>,
    /// Coins the expiry sweep after the block removed (restored on disconnect).
    pub expired: Vec<(OutPoint, Coin)>,
}

fn write_coins(w: &mut Vec<u8>, coins: &[(OutPoint, Coin)]) {
    write_compact_size(w, coins.len() as u64);
    for (outpoint, coin) in coins {
        outpoint.encode(w);
        encode_coin(coin, w);
    }
}

fn read_coins(r: &mut Reader<'_>) -> Result<Vec<(OutPoint, Coin)>, DecodeError> {
    let n = r.read_len(OUTPOINT_LEN + COIN_MIN_LEN, usize::MAX)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push((OutPoint::decode(r)?, decode_coin(r)?));
    }
    Ok(out)
}

impl Encode for UndoRecord {
    fn encode(&self, w: &mut Vec<u8>) {
        write_coins(w, &self.spent);
        write_compact_size(w, self.created.len() as u64);
        for outpoint in &self.created {
            outpoint.encode(w);
        }
        write_coins(w, &self.expired);
    }
}

impl Decode for UndoRecord {
    const MIN_ENCODED_SIZE: usize = 3;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let spent = read_coins(r)?;
        let n = r.read_len(OUTPOINT_LEN, usize::MAX)?;
        let mut created = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            created.push(OutPoint::decode(r)?);
        }
        let expired = read_coins(r)?;
        Ok(Self { spent, created, expired })
    }
}

/// What the `checkpoints` table records about a stored checkpoint file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// The chunk merkle root the bytes must have.
    pub root: [u8; 32],
    /// The byte size.
    pub size: u64,
    /// Height of the block (for pruning).
    pub height: u32,
}

impl Encode for CheckpointRecord {
    fn encode(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.root);
        self.size.encode(w);
        self.height.encode(w);
    }
}

impl Decode for CheckpointRecord {
    const MIN_ENCODED_SIZE: usize = 44;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { root: r.read_array()?, size: r.read_u64()?, height: r.read_u32()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_primitives::{Txid, decode_exact, encode_to_vec};

    fn coin(v: u64, loss: u64) -> Coin {
        Coin {
            output: TxOut { value: Amount(v), script_pubkey: vec![0x51, 2, 7, 7] },
            height: 9,
            creation_mtp: 1234,
            is_coinbase: v % 2 == 0,
            creation_loss_index: loss,
        }
    }

    fn summary() -> HeaderSummary {
        let header = BlockHeader { height: 3, ..BlockHeader::default() };
        HeaderSummary {
            hash: header.hash(),
            height: 3,
            time: 77,
            parent_loss: 5_002_000,
            val_loss: 5_000_000,
            required_improvement: 1000,
            required_eff: 500,
            loss_index: 4_999_000,
            chainwork: (1u128 << 70) + 5,
            checkpoint_root: Hash256([7; 32]),
            d_model: 64,
            n_layers: 2,
            cumulative_growth: 6,
            stagnation: 1,
            circulating_supply: Amount(123),
        }
    }

    #[test]
    fn coin_round_trip_and_strictness() {
        let c = coin(10, 99);
        let b = coin_bytes(&c);
        assert_eq!(coin_from_bytes(&b).unwrap(), c);
        let mut bad = b.clone();
        let flag = bad.len() - 9;
        bad[flag] = 2;
        assert!(coin_from_bytes(&bad).is_err());
        let mut long = b.clone();
        long.push(0);
        assert!(coin_from_bytes(&long).is_err());
        assert!(coin_from_bytes(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn index_entry_round_trip() {
        let s = summary();
        let header = BlockHeader { height: 3, ..BlockHeader::default() };
        for summary in [None, Some(s)] {
            let e = IndexEntry {
                header: header.clone(),
                status: flags::HAVE_DATA | flags::VALID_POT,
                seq: 4,
                chainwork: 1 << 100,
                summary,
            };
            let b = encode_to_vec(&e);
            assert_eq!(decode_exact::<IndexEntry>(&b).unwrap(), e);
        }
        // Every bit is defined since `HAVE_UPDATE` took the last one.
        assert_eq!(flags::ALL, 0xFF);
        let e =
            IndexEntry { header, status: flags::HAVE_UPDATE, seq: 0, chainwork: 0, summary: None };
        assert_eq!(decode_exact::<IndexEntry>(&encode_to_vec(&e)).unwrap(), e);
    }

    #[test]
    fn undo_round_trip() {
        let op = |i: u8| OutPoint::new(Txid([i; 32]), u32::from(i));
        let u = UndoRecord {
            spent: vec![(op(1), coin(1, 5)), (op(2), coin(2, 6))],
            created: vec![op(3)],
            expired: vec![(op(4), coin(4, 600))],
        };
        let b = encode_to_vec(&u);
        assert_eq!(decode_exact::<UndoRecord>(&b).unwrap(), u);
        assert!(decode_exact::<UndoRecord>(&b[..b.len() - 1]).is_err());
        assert!(decode_exact::<UndoRecord>(&[0xFF, 0xFF]).is_err());
    }

    #[test]
    fn expiry_keys_sort_by_loss() {
        let op = OutPoint::new(Txid([0xFF; 32]), 7);
        let low = expiry_key(255, &op);
        let high = expiry_key(256, &OutPoint::new(Txid([0; 32]), 0));
        assert!(low < high);
        assert_eq!(parse_expiry_key(&low).unwrap(), (255, op));
    }
}
