//! Accepting blocks and checkpoints from the network, miners and RPC (docs/chainstate.md §2):
//! the checks before anything is stored, the one write transaction that stores a block, and
//! the outcome reported after fork choice.

use super::*;

impl ChainState {
    /// Accepts a block (and optionally its model update) from the network, a miner or RPC,
    /// stores it and runs fork choice. The update is checked against the header's update root
    /// and size first ([`ChainError::UpdateMismatch`], nothing stored); its consensus checks
    /// (decoding, limits, the resulting checkpoint root) run with Proof-of-Training.
    ///
    /// Context-free failures (bad signature, mutated merkle tree, …) are rejected without storing
    /// or marking anything, since the block id does not commit to the signature. Failures of
    /// the contextual header checks, of Proof-of-Training and of the transactions mark the block
    /// invalid for good (`ChainError::InvalidBlock`); such a block is never validated again
    /// (`ChainError::KnownInvalid`) unless [`ChainState::reconsider_block`] is called.
    pub fn accept_block(
        &mut self,
        block: Block,
        update: Option<Vec<u8>>,
        now: u64,
    ) -> Result<AcceptOutcome, ChainError> {
        let hash = block.block_hash();
        let existing = self.index_entry(&hash)?;
        if let Some(e) = &existing {
            if e.has(flags::FAILED) {
                return Err(ChainError::KnownInvalid(hash));
            }
            if e.has(flags::FAILED_CHILD) {
                let invalid_ancestor = self.failed_ancestor(&hash)?;
                return Err(ChainError::InvalidAncestor { hash, invalid_ancestor });
            }
            if e.has(flags::HAVE_DATA) {
                if let Some(bytes) = update {
                    if !e.has(flags::HAVE_UPDATE) && !e.has(flags::VALID_FULL) {
                        return self.accept_update(&hash, bytes, now);
                    }
                }
                // A connectable block that dropped out of the candidates (a temporary failure)
                // gets another chance when it is offered again.
                let key = entry_key(e);
                let e = e.clone();
                if self.connectable(&e)? && key < self.tip_key() && !self.candidates.contains(&key)
                {
                    self.candidates.insert(key);
                    let tip_before = self.tip.hash;
                    let report = self.activate_best_chain(now)?;
                    return self.outcome_for(&hash, tip_before, report);
                }
                return Ok(AcceptOutcome::AlreadyHave);
            }
        }

        let header = &block.header;
        let parent_hash = header.prev_block_hash;
        let Some(parent) = self.index_entry(&parent_hash)? else {
            debug!(%hash, parent = %parent_hash, "orphan block");
            return Ok(AcceptOutcome::Orphan { missing_parent: parent_hash });
        };
        if parent.header.height.checked_add(1) != Some(header.height) {
            // The block id commits to the height, but there is no consensus reason value to
            // record; reject without storing.
            return Err(corrupt_input_height(hash, header.height, parent.header.height));
        }
        self.rules
            .check_block(&block)
            .map_err(|reason| ChainError::InvalidBlock { hash, reason })?;

        if parent.is_failed() {
            let invalid_ancestor = if parent.has(flags::FAILED) {
                parent_hash
            } else {
                self.failed_ancestor(&parent_hash)?
            };
            self.store_header_only(header, flags::FAILED_CHILD)?;
            return Err(ChainError::InvalidAncestor { hash, invalid_ancestor });
        }

        let mut status = flags::HAVE_DATA;
        match self.check_header_before_storing(header, &parent, now)? {
            Ok(()) => status |= flags::VALID_HEADER,
            Err(reason) => {
                if self.rules.is_permanent(&reason) {
                    self.store_header_only(header, flags::FAILED)?;
                }
                return Err(ChainError::InvalidBlock { hash, reason });
            }
        }

        if let Some(bytes) = &update {
            verify_update(header, bytes)?;
            status |= flags::HAVE_UPDATE;
        }

        let prior = existing.as_ref().map_or(0, |e| e.status);
        let mut entry = IndexEntry {
            header: header.clone(),
            status: status | (prior & flags::VALID_HEADER),
            seq: 0,
            chainwork: parent.chainwork.saturating_add(u128::from(header.required_improvement)),
            summary: None,
        };
        let connectable = self.connectable(&entry)?;
        let w = self.begin_write()?;
        let entry = {
            let mut index = w.open_table(BLOCK_INDEX)?;
            if connectable {
                entry.seq = Self::next_seq(&w)?;
            }
            put_entry(&mut index, &entry)?;
            w.open_table(BLOCKS)?
                .insert(hash.as_bytes().as_slice(), block.to_bytes().as_slice())?;
            w.open_table(CHILDREN)?.insert(child_key(&parent_hash, &hash).as_slice(), ())?;
            if let Some(bytes) = &update {
                w.open_table(UPDATES)?.insert(hash.as_bytes().as_slice(), bytes.as_slice())?;
            }
            entry
        };
        w.commit()?;
        debug!(%hash, height = header.height, val_loss = header.val_loss, "stored block");
        if Self::awaits_update(&entry) {
            self.awaiting_update.insert((Reverse(entry.chainwork), hash));
        }

        let key = entry_key(&entry);
        if connectable && key < self.tip_key() {
            self.candidates.insert(key);
        }
        let tip_before = self.tip.hash;
        let report = self.activate_best_chain(now)?;
        self.outcome_for(&hash, tip_before, report)
    }

    /// The contextual header check of a new block before it is stored, against the branch its
    /// parent ends: the validated branch up to the parent's nearest `VALID_FULL` ancestor,
    /// extended by the provisional summaries (`summarize_header`) of the unvalidated blocks
    /// above it, as fork choice builds it (§3 step 2 of docs/chainstate.md). So a descendant of
    /// an unvalidated block cannot declare any shape, size, time or requirement. The outer
    /// error is a storage failure or [`ChainError::TooFarAboveValidated`] (more than
    /// [`MAX_UNVALIDATED_DEPTH`] blocks above that ancestor, which bounds this walk); the inner
    /// one is the consensus verdict.
    pub(super) fn check_header_before_storing(
        &self,
        header: &BlockHeader,
        parent: &IndexEntry,
        now: u64,
    ) -> Result<Result<(), BlockError>, ChainError> {
        // Every unvalidated block below the new one, parent first. The new block is
        // `unvalidated.len() + 1` blocks above `cursor`, the last validated ancestor.
        let r = self.read()?;
        let index = r.open_table(BLOCK_INDEX)?;
        let mut unvalidated = Vec::new();
        let mut cursor = parent.clone();
        while !cursor.has(flags::VALID_FULL) {
            let prev = cursor.header.prev_block_hash;
            unvalidated.push(cursor);
            if unvalidated.len() >= MAX_UNVALIDATED_DEPTH as usize {
                return Err(ChainError::TooFarAboveValidated {
                    hash: header.hash(),
                    height: header.height,
                    max_depth: MAX_UNVALIDATED_DEPTH,
                });
            }
            cursor = read_entry(&index, &prev)?.ok_or_else(|| {
                corrupt(format!("stored block {} has no parent {prev}", unvalidated[0].hash()))
            })?;
        }
        drop(index);
        let base = BranchView::new(&r, &cursor.hash())?;
        let mut branch = ExtendedBranch::new(&base);
        for entry in unvalidated.iter().rev() {
            let summary = match &entry.summary {
                Some(s) => s.clone(),
                None => self.rules.summarize_header(&entry.header, &branch),
            };
            branch.push(summary);
        }
        let verdict = self.rules.check_header_context(header, &branch, now);
        if let Some(e) = base.take_error() {
            return Err(e);
        }
        Ok(verdict)
    }

    /// Supplies the model update of a stored block (after [`AcceptOutcome::MissingUpdate`]),
    /// checked against the header's update root and size ([`ChainError::UpdateMismatch`],
    /// nothing stored), then runs fork choice.
    pub fn accept_update(
        &mut self,
        hash: &BlockHash,
        bytes: Vec<u8>,
        now: u64,
    ) -> Result<AcceptOutcome, ChainError> {
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if entry.has(flags::FAILED) {
            return Err(ChainError::KnownInvalid(*hash));
        }
        if entry.has(flags::HAVE_UPDATE) || entry.has(flags::VALID_FULL) {
            return Ok(AcceptOutcome::AlreadyHave);
        }
        verify_update(&entry.header, &bytes)?;
        let mut entry = entry;
        entry.status |= flags::HAVE_UPDATE;
        let connectable = self.connectable(&entry)?;
        let w = self.begin_write()?;
        if entry.seq == 0 && connectable {
            entry.seq = Self::next_seq(&w)?;
        }
        put_entry(&mut w.open_table(BLOCK_INDEX)?, &entry)?;
        w.open_table(UPDATES)?.insert(hash.as_bytes().as_slice(), bytes.as_slice())?;
        w.commit()?;
        debug!(%hash, bytes = bytes.len(), "stored model update");
        self.awaiting_update.remove(&(Reverse(entry.chainwork), *hash));
        self.reconsider_descendants(hash, now)
    }

    /// Supplies the whole checkpoint of a stored block (to restore a pruned or damaged one, for
    /// example the tip's for miners, or the parent a block needs), checked against the header's
    /// root and size, then runs fork choice. A block still needs its update to be validated.
    pub fn accept_checkpoint(
        &mut self,
        hash: &BlockHash,
        bytes: Vec<u8>,
        now: u64,
    ) -> Result<AcceptOutcome, ChainError> {
        let Some(entry) = self.checkpoint_wanted_for(hash)? else {
            return Ok(AcceptOutcome::AlreadyHave);
        };
        verify_checkpoint(&entry.header, &bytes)?;
        self.store_checkpoint(entry, &bytes)?;
        self.reconsider_descendants(hash, now)
    }

    /// [`ChainState::accept_checkpoint`] for a checkpoint staged as a file
    /// ([`ChainReader::stage_checkpoint`], done without the chain lock): its measured size and
    /// root must be the header's; then the file becomes the block's checkpoint without being
    /// read into memory. A mismatch drops the staged file.
    pub fn accept_staged_checkpoint(
        &mut self,
        hash: &BlockHash,
        staged: StagedCheckpoint,
        now: u64,
    ) -> Result<AcceptOutcome, ChainError> {
        let Some(entry) = self.checkpoint_wanted_for(hash)? else {
            return Ok(AcceptOutcome::AlreadyHave);
        };
        if staged.size != entry.header.checkpoint_size
            || staged.root != entry.header.checkpoint_root.0
        {
            return Err(ChainError::CheckpointMismatch { hash: *hash });
        }
        self.files.adopt(hash, staged)?;
        self.record_checkpoint(entry)?;
        self.reconsider_descendants(hash, now)
    }

    /// The index entry of a block whose whole checkpoint is offered: `None` if the checkpoint
    /// is already stored; an unknown or invalid block is an error.
    fn checkpoint_wanted_for(&self, hash: &BlockHash) -> Result<Option<IndexEntry>, ChainError> {
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if entry.has(flags::FAILED) {
            return Err(ChainError::KnownInvalid(*hash));
        }
        Ok((!entry.has(flags::HAVE_CHECKPOINT)).then_some(entry))
    }

    /// Stores checkpoint bytes already checked against `entry`'s header (received whole, or
    /// derived from the parent's and the block's update by Proof-of-Training): the file first,
    /// then the record and the index flag in one transaction.
    pub(super) fn store_checkpoint(
        &mut self,
        entry: IndexEntry,
        bytes: &[u8],
    ) -> Result<(), ChainError> {
        self.files.write(&entry.hash(), bytes)?;
        self.record_checkpoint(entry)
    }

    /// Records a checkpoint whose file is in place: the record and the index flag in one
    /// transaction.
    pub(super) fn record_checkpoint(&mut self, entry: IndexEntry) -> Result<(), ChainError> {
        let hash = entry.hash();
        // Re-read: the entry may have changed since the caller read it.
        let mut entry = self.index_entry(&hash)?.unwrap_or(entry);
        entry.status |= flags::HAVE_CHECKPOINT;
        let connectable = self.connectable(&entry)?;
        let w = self.begin_write()?;
        if entry.seq == 0 && connectable {
            entry.seq = Self::next_seq(&w)?;
        }
        put_entry(&mut w.open_table(BLOCK_INDEX)?, &entry)?;
        Self::put_checkpoint_record(&w, &entry.header)?;
        w.commit()?;
        debug!(%hash, "stored checkpoint");
        self.awaiting_checkpoint.remove(&(Reverse(entry.chainwork), hash));
        Ok(())
    }

    /// After model data of `hash` arrived: the block and every connectable descendant may now
    /// be reachable, so they become candidates again and fork choice runs.
    fn reconsider_descendants(
        &mut self,
        hash: &BlockHash,
        now: u64,
    ) -> Result<AcceptOutcome, ChainError> {
        let tip_key = self.tip_key();
        let r = self.read()?;
        let index = r.open_table(BLOCK_INDEX)?;
        let children = r.open_table(CHILDREN)?;
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            let Some(e) = read_entry(&index, &h)? else { continue };
            if !self.connectable(&e)? {
                continue;
            }
            let key = entry_key(&e);
            if key < tip_key {
                self.candidates.insert(key);
            }
            stack.extend(children_of(&children, &h)?);
        }
        drop((index, children, r));
        let tip_before = self.tip.hash;
        let report = self.activate_best_chain(now)?;
        self.outcome_for(hash, tip_before, report)
    }

    pub(super) fn outcome_for(
        &mut self,
        hash: &BlockHash,
        tip_before: BlockHash,
        mut report: Activation,
    ) -> Result<AcceptOutcome, ChainError> {
        if let Some(pos) = report.invalid.iter().position(|(h, _)| h == hash) {
            let (_, reason) = report.invalid.swap_remove(pos);
            return Err(ChainError::InvalidBlock { hash: *hash, reason });
        }
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if entry.has(flags::FAILED) {
            return Err(ChainError::KnownInvalid(*hash));
        }
        if entry.has(flags::FAILED_CHILD) {
            let invalid_ancestor = self.failed_ancestor(hash)?;
            return Err(ChainError::InvalidAncestor { hash: *hash, invalid_ancestor });
        }
        if self.tip.hash != tip_before {
            return Ok(AcceptOutcome::Connected {
                new_tip: self.tip.clone(),
                connected: report.connected,
                disconnected: report.disconnected,
            });
        }
        if entry.has(flags::VALID_FULL) || self.path_connectable(hash)? {
            Ok(AcceptOutcome::StoredSideBranch)
        } else {
            Ok(AcceptOutcome::MissingUpdate)
        }
    }

    /// Whether every block from the active chain up to `hash` can be connected.
    pub(super) fn path_connectable(&mut self, hash: &BlockHash) -> Result<bool, ChainError> {
        let (_, path) = self.path_from_active(hash)?;
        for entry in &path {
            if !self.connectable(entry)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(super) fn next_seq(w: &WriteTransaction) -> Result<u64, ChainError> {
        let mut meta = w.open_table(META)?;
        let seq = match read_meta(&meta, META_NEXT_SEQ)? {
            Some(b) => meta_u64(&b, "next_seq")?,
            None => return Err(corrupt("no next_seq")),
        };
        meta.insert(META_NEXT_SEQ, (seq + 1).to_le_bytes().as_slice())?;
        Ok(seq)
    }

    pub(super) fn put_checkpoint_record(
        w: &WriteTransaction,
        header: &BlockHeader,
    ) -> Result<(), ChainError> {
        let hash = header.hash();
        let record = CheckpointRecord {
            root: header.checkpoint_root.0,
            size: header.checkpoint_size,
            height: header.height,
        };
        w.open_table(CHECKPOINTS)?
            .insert(hash.as_bytes().as_slice(), encode_to_vec(&record).as_slice())?;
        w.open_table(CHECKPOINT_HEIGHTS)?
            .insert(height_key(header.height, &hash).as_slice(), ())?;
        Ok(())
    }

    /// Records a header without data (an invalid block or a child of one), so it is never
    /// validated again.
    pub(super) fn store_header_only(
        &mut self,
        header: &BlockHeader,
        status: u8,
    ) -> Result<(), ChainError> {
        let hash = header.hash();
        let w = self.begin_write()?;
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let entry =
                IndexEntry { header: header.clone(), status, seq: 0, chainwork: 0, summary: None };
            put_entry(&mut index, &entry)?;
            w.open_table(CHILDREN)?
                .insert(child_key(&header.prev_block_hash, &hash).as_slice(), ())?;
        }
        w.commit()?;
        debug!(%hash, status, "recorded invalid header");
        Ok(())
    }

    /// The nearest ancestor of `hash` (or `hash` itself) marked `FAILED`.
    pub(super) fn failed_ancestor(&self, hash: &BlockHash) -> Result<BlockHash, ChainError> {
        let r = self.read()?;
        let index = r.open_table(BLOCK_INDEX)?;
        let mut cursor = *hash;
        loop {
            let e = read_entry(&index, &cursor)?.ok_or(ChainError::UnknownBlock(cursor))?;
            if e.has(flags::FAILED) || e.header.height == 0 {
                return Ok(cursor);
            }
            cursor = e.header.prev_block_hash;
        }
    }
}

fn corrupt_input_height(hash: BlockHash, height: u32, parent_height: u32) -> ChainError {
    ChainError::BadHeight { hash, height, parent_height }
}

/// Checks offered update bytes against the size and root the header commits to.
fn verify_update(header: &BlockHeader, bytes: &[u8]) -> Result<(), ChainError> {
    if bytes.len() as u64 != header.update_size || checkpoint_root(bytes) != header.update_root.0 {
        return Err(ChainError::UpdateMismatch { hash: header.hash() });
    }
    Ok(())
}

/// Checks offered checkpoint bytes against the size and root the header commits to.
fn verify_checkpoint(header: &BlockHeader, bytes: &[u8]) -> Result<(), ChainError> {
    if bytes.len() as u64 != header.checkpoint_size
        || checkpoint_root(bytes) != header.checkpoint_root.0
    {
        return Err(ChainError::CheckpointMismatch { hash: header.hash() });
    }
    Ok(())
}
