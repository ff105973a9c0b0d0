//! The orphan-block buffer: blocks whose parent is not stored yet wait here until it is. Bounded
//! by count and by memory, per peer for blocks nobody asked for, and by age, so a peer pushing
//! unconnectable blocks cannot make the node hold more than a few of them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rnet_primitives::{Block, BlockHash};

/// Blocks held while their parent is fetched.
pub const MAX_ORPHAN_BLOCKS: usize = 512;
/// Memory the buffered blocks may hold ([`Block::memory_usage`]).
pub const MAX_ORPHAN_BYTES: usize = 128 << 20;
/// Unrequested orphans one peer may have buffered; one more is dropped and scores
/// [`ORPHAN_FLOOD_SCORE`]. Blocks we asked for (the download set) are not counted: parallel
/// download delivers them out of order.
pub const MAX_UNREQUESTED_ORPHANS_PER_PEER: usize = 4;
/// Score of an unrequested orphan over the peer's allowance.
pub const ORPHAN_FLOOD_SCORE: u32 = 10;
/// How long an orphan waits for its parent.
pub const ORPHAN_EXPIRY: Duration = Duration::from_secs(20 * 60);

struct Orphan {
    block: Box<Block>,
    from: u64,
    parent: BlockHash,
    size: usize,
    requested: bool,
    at: Instant,
}

/// Why an orphan was not buffered.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OrphanRefused {
    /// Already buffered.
    Duplicate,
    /// The peer's allowance of unrequested orphans is used up.
    PeerFull,
    /// Larger than the whole buffer.
    TooLarge,
}

/// Buffered orphans by hash and by parent, oldest first.
#[derive(Default)]
pub(super) struct OrphanPool {
    by_hash: HashMap<BlockHash, Orphan>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    order: VecDeque<BlockHash>,
    bytes: usize,
}

impl OrphanPool {
    /// Buffers a block from `from` whose parent is `parent`, evicting the oldest entries when
    /// the buffer is full.
    pub(super) fn add(
        &mut self,
        from: u64,
        block: Box<Block>,
        parent: BlockHash,
        requested: bool,
        now: Instant,
    ) -> Result<(), OrphanRefused> {
        let hash = block.block_hash();
        if self.by_hash.contains_key(&hash) {
            return Err(OrphanRefused::Duplicate);
        }
        let size = block.memory_usage();
        if size > MAX_ORPHAN_BYTES {
            return Err(OrphanRefused::TooLarge);
        }
        if !requested
            && self.by_hash.values().filter(|o| o.from == from && !o.requested).count()
                >= MAX_UNREQUESTED_ORPHANS_PER_PEER
        {
            return Err(OrphanRefused::PeerFull);
        }
        while self.by_hash.len() >= MAX_ORPHAN_BLOCKS || self.bytes + size > MAX_ORPHAN_BYTES {
            let Some(old) = self.order.front().copied() else { break };
            self.remove(&old);
        }
        self.by_parent.entry(parent).or_default().push(hash);
        self.order.push_back(hash);
        self.bytes += size;
        self.by_hash.insert(hash, Orphan { block, from, parent, size, requested, at: now });
        Ok(())
    }

    fn remove(&mut self, hash: &BlockHash) -> Option<Orphan> {
        let o = self.by_hash.remove(hash)?;
        self.bytes -= o.size;
        self.order.retain(|h| h != hash);
        if let Some(v) = self.by_parent.get_mut(&o.parent) {
            v.retain(|h| h != hash);
            if v.is_empty() {
                self.by_parent.remove(&o.parent);
            }
        }
        Some(o)
    }

    /// Removes and returns the children of a block that just got stored, with their senders.
    pub(super) fn take_children(&mut self, parent: &BlockHash) -> Vec<(Box<Block>, u64)> {
        let hashes = self.by_parent.get(parent).cloned().unwrap_or_default();
        hashes.iter().filter_map(|h| self.remove(h)).map(|o| (o.block, o.from)).collect()
    }

    /// Drops orphans older than [`ORPHAN_EXPIRY`].
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some(h) = self.order.front().copied() {
            match self.by_hash.get(&h) {
                Some(o) if now.duration_since(o.at) > ORPHAN_EXPIRY => {
                    self.remove(&h);
                }
                Some(_) => break,
                None => {
                    self.order.pop_front();
                }
            }
        }
    }

    /// Drops the unrequested orphans of a disconnected peer (requested ones stay: they came from
    /// the download set and are likely good).
    pub(super) fn remove_peer(&mut self, id: u64) {
        let hashes: Vec<BlockHash> = self
            .by_hash
            .iter()
            .filter(|(_, o)| o.from == id && !o.requested)
            .map(|(h, _)| *h)
            .collect();
        for h in hashes {
            self.remove(&h);
        }
    }

    /// Buffered blocks and the memory they hold.
    pub(super) fn usage(&self) -> (usize, usize) {
        (self.by_hash.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use rnet_primitives::{BlockHeader, OutPoint, Transaction, TxIn, TxOut, Txid, Witness};

    use super::*;

    fn block(parent: u8, salt: u64, script: usize) -> Box<Block> {
        let tx = Transaction {
            version: 2,
            inputs: vec![TxIn {
                previous_output: OutPoint::new(Txid([salt as u8; 32]), 0),
                script_sig: Vec::new(),
                sequence: 0,
                witness: Witness::new(),
            }],
            outputs: vec![TxOut { value: Default::default(), script_pubkey: vec![0; script] }],
            lock_time: 0,
        };
        Box::new(Block {
            header: BlockHeader {
                prev_block_hash: BlockHash([parent; 32]),
                training_steps: salt,
                ..BlockHeader::default()
            },
            transactions: vec![tx],
            sample: Default::default(),
        })
    }

    #[test]
    fn bounded_by_peer_bytes_and_age() {
        let now = Instant::now();
        let mut pool = OrphanPool::default();
        for i in 0..MAX_UNREQUESTED_ORPHANS_PER_PEER as u64 {
            pool.add(1, block(1, i, 10), BlockHash([1; 32]), false, now).unwrap();
        }
        let extra = block(1, 99, 10);
        assert_eq!(
            pool.add(1, extra.clone(), BlockHash([1; 32]), false, now),
            Err(OrphanRefused::PeerFull)
        );
        // Requested blocks are not limited per peer, but by the byte cap.
        let big = 8 << 20;
        for i in 0..40u64 {
            pool.add(2, block(2, 100 + i, big), BlockHash([2; 32]), true, now).unwrap();
        }
        let (n, bytes) = pool.usage();
        assert!(bytes <= MAX_ORPHAN_BYTES, "{bytes} bytes buffered");
        assert!(n < 40 + MAX_UNREQUESTED_ORPHANS_PER_PEER);
        // The newest survive; children come out with their sender.
        assert!(!pool.take_children(&BlockHash([2; 32])).is_empty());
        pool.expire(now + ORPHAN_EXPIRY + Duration::from_secs(1));
        assert_eq!(pool.usage(), (0, 0));
    }
}
