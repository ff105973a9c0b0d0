//! Invalid blocks: marking a block and its descendants, and the operator's
//! `invalidateblock` / `reconsiderblock` (docs/chainstate.md §3).

use super::*;

impl ChainState {
    /// Marks `hash` invalid and every descendant invalid-child, in one transaction, and drops
    /// them from the candidates. A block found invalid by consensus also loses its checkpoint.
    pub(super) fn mark_invalid(
        &mut self,
        hash: &BlockHash,
        by_consensus: bool,
    ) -> Result<(), ChainError> {
        let w = self.begin_write()?;
        let mut dropped = Vec::new();
        let mut remove_checkpoint = false;
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let children = w.open_table(CHILDREN)?;
            let mut entry = read_entry(&index, hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
            dropped.push(entry_key(&entry));
            entry.status |= flags::FAILED;
            if by_consensus && entry.has(flags::HAVE_CHECKPOINT) {
                entry.status &= !flags::HAVE_CHECKPOINT;
                remove_checkpoint = true;
            }
            put_entry(&mut index, &entry)?;
            let mut stack = children_of(&children, hash)?;
            while let Some(h) = stack.pop() {
                let Some(mut e) = read_entry(&index, &h)? else { continue };
                dropped.push(entry_key(&e));
                e.status |= flags::FAILED_CHILD;
                put_entry(&mut index, &e)?;
                stack.extend(children_of(&children, &h)?);
            }
            if remove_checkpoint {
                w.open_table(CHECKPOINTS)?.remove(hash.as_bytes().as_slice())?;
                w.open_table(CHECKPOINT_HEIGHTS)?
                    .remove(height_key(entry.header.height, hash).as_slice())?;
            }
        }
        w.commit()?;
        for key in dropped {
            self.candidates.remove(&key);
        }
        if remove_checkpoint {
            self.files.remove(hash)?;
        }
        Ok(())
    }

    /// Marks a block invalid (RPC `invalidateblock`): disconnects it if it is on the active
    /// chain, marks its descendants invalid-child and switches to the best remaining chain.
    pub fn invalidate_block(&mut self, hash: &BlockHash) -> Result<Activation, ChainError> {
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if *hash == self.genesis {
            return Err(ChainError::Genesis);
        }
        let mut report = Activation::default();
        if self.is_active(hash, entry.header.height)? {
            while self.tip.height >= entry.header.height {
                let h = self.tip.hash;
                self.disconnect_tip()?;
                report.disconnected.push(h);
            }
        }
        self.mark_invalid(hash, false)?;
        info!(%hash, "block invalidated");
        self.rebuild_candidates()?;
        report.merge(self.activate_best_chain(now_secs())?);
        Ok(report)
    }

    /// Clears the invalid marks of a block, its descendants and its ancestors (RPC
    /// `reconsiderblock`) and runs fork choice again; blocks that really are invalid are found
    /// invalid again when connected.
    pub fn reconsider_block(&mut self, hash: &BlockHash) -> Result<Activation, ChainError> {
        self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        let w = self.begin_write()?;
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let children = w.open_table(CHILDREN)?;
            let mut stack = vec![*hash];
            while let Some(h) = stack.pop() {
                let Some(mut e) = read_entry(&index, &h)? else { continue };
                if e.is_failed() {
                    e.status &= !flags::FAILED_MASK;
                    if e.seq == 0 && e.is_connectable() {
                        e.seq = Self::next_seq(&w)?;
                    }
                    put_entry(&mut index, &e)?;
                }
                stack.extend(children_of(&children, &h)?);
            }
            let mut cursor = read_entry(&index, hash)?.map(|e| e.header.prev_block_hash);
            while let Some(h) = cursor {
                let Some(mut e) = read_entry(&index, &h)? else { break };
                if e.is_failed() {
                    e.status &= !flags::FAILED_MASK;
                    put_entry(&mut index, &e)?;
                }
                cursor = (e.header.height > 0).then_some(e.header.prev_block_hash);
            }
        }
        w.commit()?;
        info!(%hash, "block reconsidered");
        self.rebuild_candidates()?;
        self.activate_best_chain(now_secs())
    }
}
