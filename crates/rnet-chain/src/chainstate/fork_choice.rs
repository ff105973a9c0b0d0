//! Fork choice (docs/chainstate.md §3): the best candidate branch, validated (headers and
//! Proof-of-Training) before anything is disconnected, then made active block by block.

use super::*;

impl ChainState {
    /// The blocks from just above the active chain up to `hash` (in connect order), and the
    /// height of the fork point.
    pub(super) fn path_from_active(
        &self,
        hash: &BlockHash,
    ) -> Result<(u32, Vec<IndexEntry>), ChainError> {
        let r = self.read()?;
        let index = r.open_table(BLOCK_INDEX)?;
        let active = r.open_table(ACTIVE_CHAIN)?;
        let mut path = Vec::new();
        let mut cursor = *hash;
        loop {
            let e = read_entry(&index, &cursor)?.ok_or(ChainError::UnknownBlock(cursor))?;
            let height = e.header.height;
            if read_active(&active, height)? == Some(cursor) {
                path.reverse();
                return Ok((height, path));
            }
            if height == 0 {
                return Err(corrupt("a branch does not reach the active chain"));
            }
            cursor = e.header.prev_block_hash;
            path.push(e);
        }
    }

    /// Makes the best connectable branch active: the candidate with the most (claimed)
    /// chainwork, ties to the first seen. First checks the header and Proof-of-Training of every
    /// block of the branch without touching the active chain; then disconnects back to the fork
    /// point and connects the branch block by block (one write transaction each). A block that
    /// fails validation is marked invalid with its descendants and the next best branch is
    /// tried. Then prunes old checkpoints.
    pub fn activate_best_chain(&mut self, now: u64) -> Result<Activation, ChainError> {
        let old_tip = self.tip.hash;
        let result = self.activate_inner(now);
        if result.is_err() {
            // Derived state may have drifted from the database; rebuild it.
            if let Err(e) = self.load_tip().and_then(|()| self.rebuild_candidates()) {
                warn!(error = %e, "could not rebuild candidates after a failed activation");
            }
        }
        let report = result?;
        let tip_key = self.tip_key();
        self.candidates.retain(|k| *k <= tip_key);
        self.candidates.insert(tip_key);
        if self.tip.hash != old_tip {
            info!(tip = %self.tip.hash, height = self.tip.height, val_loss = self.tip.val_loss,
                connected = report.connected.len(), disconnected = report.disconnected.len(),
                "new best chain");
            self.prune_checkpoints()?;
        }
        Ok(report)
    }

    pub(super) fn activate_inner(&mut self, now: u64) -> Result<Activation, ChainError> {
        let mut report = Activation::default();
        loop {
            self.candidates.insert(self.tip_key());
            let Some(&best) = self.candidates.first() else { break };
            if best.2 == self.tip.hash {
                break;
            }
            let (fork_height, mut path) = self.path_from_active(&best.2)?;
            let mut all_connectable = true;
            for e in &path {
                if !self.connectable(e)? {
                    all_connectable = false;
                    break;
                }
            }
            if !all_connectable {
                debug!(candidate = %best.2, "candidate has an unavailable block on its path");
                self.candidates.remove(&best);
                continue;
            }
            // Proof-of-Training on every block of the branch before anything is disconnected:
            // a branch that fails costs its evaluation and nothing else.
            match self.prevalidate_branch(&mut path, now)? {
                None => {}
                Some((hash, Step::Invalid(reason))) => {
                    warn!(%hash, %reason, "invalid block on a candidate branch");
                    self.mark_invalid(&hash, true)?;
                    report.invalid.push((hash, reason));
                    continue;
                }
                Some((_, _)) => {
                    self.candidates.remove(&best);
                    continue;
                }
            }
            while self.tip.height > fork_height {
                let hash = self.tip.hash;
                self.disconnect_tip()?;
                report.disconnected.push(hash);
            }
            for entry in path {
                let hash = entry.hash();
                match self.connect_tip(&entry, now)? {
                    Step::Connected => report.connected.push(hash),
                    Step::Invalid(reason) => {
                        warn!(%hash, %reason, "invalid block");
                        self.mark_invalid(&hash, true)?;
                        report.invalid.push((hash, reason));
                        break;
                    }
                    Step::Unavailable => {
                        self.candidates.remove(&best);
                        break;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Checks the headers and Proof-of-Training of the blocks of `path` (in connect order, from
    /// just above the active chain) against the branch below each of them, without touching the
    /// active chain. Marks each block whose Proof-of-Training passed (`VALID_POT`, in the index
    /// and in `path`). Returns the first block that failed and how.
    pub(super) fn prevalidate_branch(
        &mut self,
        path: &mut [IndexEntry],
        now: u64,
    ) -> Result<Option<(BlockHash, Step)>, ChainError> {
        let Some(first) = path.first() else { return Ok(None) };
        let r = self.read()?;
        let base = BranchView::new(&r, &first.header.prev_block_hash)?;
        let mut branch = ExtendedBranch::new(&base);
        for entry in path.iter_mut() {
            let hash = entry.hash();
            let block =
                self.stored_block(&hash)?.ok_or_else(|| corrupt(format!("no data for {hash}")))?;
            if let Err(reason) = self.rules.check_header_context(&block.header, &branch, now) {
                if let Some(e) = base.take_error() {
                    return Err(e);
                }
                return Ok(Some((hash, self.classify(reason))));
            }
            if !entry.has(flags::VALID_FULL | flags::VALID_POT) {
                let parent = branch.tip();
                if let Some(step) = self.check_pot(&block, &parent)? {
                    return Ok(Some((hash, step)));
                }
                entry.status |= flags::VALID_POT;
                let w = self.begin_write()?;
                {
                    let mut index = w.open_table(BLOCK_INDEX)?;
                    if let Some(mut stored) = read_entry(&index, &hash)? {
                        stored.status |= flags::VALID_POT;
                        put_entry(&mut index, &stored)?;
                        // Proof-of-Training may have stored the derived checkpoint.
                        entry.status = stored.status;
                    }
                }
                w.commit()?;
            }
            let summary = match &entry.summary {
                Some(s) => s.clone(),
                None => self.rules.summarize_header(&block.header, &branch),
            };
            branch.push(summary);
        }
        if let Some(e) = base.take_error() {
            return Err(e);
        }
        Ok(None)
    }

    /// What Proof-of-Training of `block` needs, to run without the chain lock
    /// ([`crate::pot`]): `None` when there is nothing to do ahead of fork choice (the block is
    /// known invalid or already evaluated) or it cannot be done yet (unknown parent, a parent
    /// never validated, an update not stored and not given, a parent checkpoint not stored).
    /// Reads the index and the update (at most `max_update_bytes`): the parent checkpoint is
    /// read and checked when the job runs.
    pub fn pot_job(
        &mut self,
        block: &Block,
        update: Option<&[u8]>,
    ) -> Result<Option<PotJob>, ChainError> {
        let hash = block.block_hash();
        if let Some(e) = self.index_entry(&hash)? {
            if e.has(flags::FAILED) || e.has(flags::VALID_POT) || e.has(flags::VALID_FULL) {
                return Ok(None);
            }
        }
        let Some(parent) = self.index_entry(&block.header.prev_block_hash)? else {
            return Ok(None);
        };
        let Some(parent_summary) = parent.summary.clone() else { return Ok(None) };
        if self.snapshot_role(&hash, block.header.height)? != SnapshotRole::None {
            // Snapshot sync decides these blocks without Proof-of-Training work.
            return Ok(None);
        }
        let assumed_valid = self.is_assumed_valid(&hash, block.header.height)?;
        let stored = |hash: BlockHash| CheckpointSource::Stored { files: self.files.clone(), hash };
        let update = match update {
            Some(bytes) => Arc::new(bytes.to_vec()),
            None => match self.update(&hash)? {
                Some(bytes) => Arc::new(bytes),
                None => return Ok(None),
            },
        };
        if !parent.has(flags::HAVE_CHECKPOINT) {
            return Ok(None);
        }
        Ok(Some(PotJob {
            assumed_valid,
            block: block.clone(),
            parent_header: parent.header.clone(),
            parent: parent_summary,
            parent_checkpoint: stored(block.header.prev_block_hash),
            update,
        }))
    }

    /// Records the verdict of a [`PotJob`] run outside the lock; fork choice uses it instead of
    /// evaluating the block again.
    pub fn record_pot_verdict(&mut self, hash: BlockHash, verdict: Verdict) {
        self.pot_verdicts.insert(hash, verdict);
    }

    /// Attaches the file a recorded verdict's derived checkpoint was staged to
    /// ([`ChainReader::stage_checkpoint_bytes`], written and fsynced outside the lock): storing
    /// the checkpoint in fork choice is then a rename, not a write and fsync under the lock.
    pub fn record_staged_checkpoint(&mut self, hash: BlockHash, staged: StagedCheckpoint) {
        self.pot_verdicts.attach_staged(hash, staged);
    }

    /// Runs Proof-of-Training for `block` on `parent` with the parent's stored checkpoint and
    /// the block's stored update (or takes the verdict recorded by
    /// [`ChainState::record_pot_verdict`]), and stores the derived checkpoint when it passes.
    /// `Some(step)` if it cannot pass now (unavailable data) or ever (invalid).
    pub(super) fn check_pot(
        &mut self,
        block: &Block,
        parent: &HeaderSummary,
    ) -> Result<Option<Step>, ChainError> {
        let hash = block.block_hash();
        if let Some((verdict, staged)) = self.pot_verdicts.take(&hash) {
            debug!(%hash, ok = verdict.is_ok(), "Proof-of-Training verdict computed outside the lock");
            return match (verdict, staged) {
                (Ok(_), Some(staged)) => self.keep_staged_checkpoint(&hash, staged),
                (Ok(checkpoint), None) => self.keep_derived_checkpoint(&hash, &checkpoint),
                (Err(reason), _) => Ok(Some(self.classify(reason))),
            };
        }
        match self.snapshot_role(&hash, block.header.height)? {
            // Snapshot sync (docs/protocol.md Part V §7.2): an ancestor of the assumed-valid
            // block needs no model data; its transactions are still checked on connection.
            SnapshotRole::Below => return Ok(None),
            // The assumed-valid block: its whole checkpoint, checked against the committed root
            // when it was stored (and again by every later read: serving it, deriving a
            // child's model), stands in for its update, unless the node can derive it the
            // usual way. It is not re-read here: hashing a large checkpoint under the chain
            // lock would stall RPC and peers for seconds.
            SnapshotRole::At => {
                if self.has_checkpoint(&hash)? {
                    return Ok(None);
                }
                if !self.has_checkpoint(&parent.hash)? {
                    self.awaiting_checkpoint.insert((Reverse(self.entry_chainwork(&hash)?), hash));
                    return Ok(Some(Step::Unavailable));
                }
            }
            SnapshotRole::None => {}
        }
        let Some(update) = self.update(&hash)? else {
            self.awaiting_update.insert((Reverse(self.entry_chainwork(&hash)?), hash));
            return Ok(Some(Step::Unavailable));
        };
        let Some(parent_bytes) = self.load_checkpoint_for_validation(&parent.hash)? else {
            debug!(%hash, parent = %parent.hash, "parent checkpoint unavailable");
            self.awaiting_checkpoint.insert((Reverse(parent.chainwork), parent.hash));
            return Ok(Some(Step::Unavailable));
        };
        let check = if self.is_assumed_valid(&hash, block.header.height)? {
            debug!(%hash, "assumed valid: Proof-of-Training evaluations skipped");
            ChainRules::check_proof_of_training_assumed
        } else {
            ChainRules::check_proof_of_training
        };
        match check(
            self.rules.as_ref(),
            &block.header,
            parent,
            &block.sample,
            &parent_bytes,
            &update,
        ) {
            Ok(checkpoint) => self.keep_derived_checkpoint(&hash, &checkpoint),
            Err(reason) => Ok(Some(self.classify(reason))),
        }
    }

    /// Stores the checkpoint Proof-of-Training derived for `hash`, unless one is stored.
    fn keep_derived_checkpoint(
        &mut self,
        hash: &BlockHash,
        bytes: &[u8],
    ) -> Result<Option<Step>, ChainError> {
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if !entry.has(flags::HAVE_CHECKPOINT) {
            self.store_checkpoint(entry, bytes)?;
        }
        Ok(None)
    }

    /// [`Self::keep_derived_checkpoint`] for a checkpoint staged outside the lock: adopted if
    /// it is the header's (it is, unless the disk changed it), else dropped and the block is
    /// evaluated again when next reached.
    fn keep_staged_checkpoint(
        &mut self,
        hash: &BlockHash,
        staged: StagedCheckpoint,
    ) -> Result<Option<Step>, ChainError> {
        let entry = self.index_entry(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        if entry.has(flags::HAVE_CHECKPOINT) {
            return Ok(None);
        }
        if staged.size != entry.header.checkpoint_size
            || staged.root != entry.header.checkpoint_root.0
        {
            warn!(%hash, "staged checkpoint does not match its header; evaluating again later");
            return Ok(Some(Step::Unavailable));
        }
        self.files.adopt(hash, staged)?;
        self.record_checkpoint(entry)?;
        Ok(None)
    }

    fn entry_chainwork(&self, hash: &BlockHash) -> Result<u128, ChainError> {
        Ok(self.index_entry(hash)?.map_or(0, |e| e.chainwork))
    }

    pub(super) fn classify(&self, reason: BlockError) -> Step {
        if self.rules.is_permanent(&reason) {
            Step::Invalid(reason)
        } else {
            debug!(%reason, "temporary validation failure");
            Step::Unavailable
        }
    }
}
