//! Checkpoint handling inside the chainstate (docs/chainstate.md §5, §7): which checkpoints
//! are wanted from peers, damaged or orphaned files, and pruning (old active-chain checkpoints
//! and side branches that cannot become best).

use super::*;

impl ChainState {
    pub(super) fn cleanup_checkpoint_files(&self) -> Result<(), ChainError> {
        let r = self.read()?;
        let mut keep = HashSet::new();
        for item in r.open_table(CHECKPOINTS)?.iter()? {
            let (k, _) = item?;
            keep.insert(hash_from_slice(k.value()).map_err(ChainError::record("checkpoints"))?);
        }
        let removed = self.files.cleanup(&keep)?;
        if removed > 0 {
            info!(removed, "removed stale checkpoint files");
        }
        Ok(())
    }

    /// Whether `entry` is a block that still needs its model update: data stored, update not,
    /// not known invalid and not validated yet.
    pub(super) fn awaits_update(entry: &IndexEntry) -> bool {
        entry.has(flags::HAVE_DATA)
            && !entry.has(flags::HAVE_UPDATE)
            && !entry.has(flags::VALID_FULL)
            && !entry.is_failed()
    }

    /// Up to `max` blocks whose model updates the node should fetch from peers, most chainwork
    /// first: stored blocks whose updates never arrived (for example a download cut short by a
    /// crash), on branches with at least the tip's chainwork (a branch that cannot become best
    /// is not worth its model data). Entries that no longer need one are dropped on the way.
    pub fn wanted_updates(&mut self, max: usize) -> Result<Vec<BlockHash>, ChainError> {
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for (work, hash) in self.awaiting_update.iter() {
            if out.len() >= max {
                break;
            }
            match self.index_entry(hash)? {
                Some(e) if Self::awaits_update(&e) => {
                    // Most chainwork first: once below the tip, nothing later can beat it.
                    if work.0 < self.tip.chainwork {
                        break;
                    }
                    out.push(*hash);
                }
                _ => stale.push((*work, *hash)),
            }
        }
        for key in stale {
            self.awaiting_update.remove(&key);
        }
        // Under snapshot sync the assumed-valid block and its ancestors need no update.
        let mut wanted = Vec::with_capacity(out.len());
        for hash in out {
            let height = self.index_entry(&hash)?.map_or(0, |e| e.header.height);
            if self.snapshot_role(&hash, height)? == SnapshotRole::None {
                wanted.push(hash);
            }
        }
        let out = wanted;
        Ok(out)
    }

    /// Up to `max` validated blocks whose whole checkpoints the node should fetch from peers,
    /// most useful first: the active tip if its checkpoint is missing (a miner needs it; not
    /// while snapshot sync passes the ancestors of the assumed-valid block), the assumed-valid
    /// block under snapshot sync once its data is stored, then
    /// validated blocks whose checkpoint validation found missing (the parent of a block to
    /// validate, pruned or dropped as damaged). Entries that no longer need one are dropped.
    pub fn wanted_checkpoints(&mut self, max: usize) -> Result<Vec<BlockHash>, ChainError> {
        let mut out = Vec::new();
        let tip = self.tip.hash;
        if let Some(e) = self.index_entry(&tip)? {
            // Below a snapshot the tip has no checkpoint by design: the sync does not stop to
            // fetch the model of every block it passes.
            if !e.has(flags::HAVE_CHECKPOINT)
                && max > 0
                && self.snapshot_role(&tip, e.header.height)? != SnapshotRole::Below
            {
                out.push(tip);
            }
        }
        // Snapshot sync: the assumed-valid block's whole checkpoint, once its data is stored.
        if let Some(assumed) = self.options.assume_valid.filter(|_| self.options.snapshot_sync) {
            if let Some(e) = self.index_entry(&assumed)? {
                let wanted = e.has(flags::HAVE_DATA)
                    && !e.has(flags::HAVE_CHECKPOINT)
                    && !e.has(flags::VALID_FULL)
                    && !e.is_failed()
                    && out.len() < max
                    && assumed != tip
                    && self.snapshot_role(&assumed, e.header.height)? == SnapshotRole::At;
                if wanted {
                    out.push(assumed);
                }
            }
        }
        let mut stale = Vec::new();
        for (work, hash) in self.awaiting_checkpoint.iter() {
            if out.len() >= max {
                break;
            }
            if *hash == tip || out.contains(hash) {
                continue;
            }
            match self.index_entry(hash)? {
                Some(e) if !e.has(flags::HAVE_CHECKPOINT) && !e.is_failed() => out.push(*hash),
                _ => stale.push((*work, *hash)),
            }
        }
        for key in stale {
            self.awaiting_checkpoint.remove(&key);
        }
        Ok(out)
    }

    /// Drops the stored checkpoint of `hash` after it was found damaged (size or root no longer
    /// match), so that it is fetched again from peers ([`ChainState::wanted_checkpoints`]).
    pub fn drop_damaged_checkpoint(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        warn!(%hash, "dropping a damaged checkpoint; it will be fetched again from peers");
        self.forget_checkpoint(hash)?;
        if let Some(e) = self.index_entry(hash)? {
            self.awaiting_checkpoint.insert((Reverse(e.chainwork), *hash));
        }
        Ok(())
    }

    /// Reads and checks the checkpoint used to validate `hash`. A missing or damaged file is
    /// "unavailable" (the record is dropped so the checkpoint can be supplied again), never a
    /// reason to call the block invalid.
    pub(super) fn load_checkpoint_for_validation(
        &mut self,
        hash: &BlockHash,
    ) -> Result<Option<Vec<u8>>, ChainError> {
        match self.checkpoint(hash) {
            Err(e @ ChainError::Corrupt(_)) => {
                warn!(%hash, error = %e, "damaged checkpoint");
                self.drop_damaged_checkpoint(hash)?;
                Ok(None)
            }
            other => other,
        }
    }

    pub(super) fn forget_checkpoint(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        let w = self.begin_write()?;
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            if let Some(mut e) = read_entry(&index, hash)? {
                e.status &= !flags::HAVE_CHECKPOINT;
                put_entry(&mut index, &e)?;
                w.open_table(CHECKPOINT_HEIGHTS)?
                    .remove(height_key(e.header.height, hash).as_slice())?;
            }
            w.open_table(CHECKPOINTS)?.remove(hash.as_bytes().as_slice())?;
        }
        w.commit()?;
        self.files.remove(hash)?;
        Ok(())
    }

    /// Deletes the checkpoints and updates of blocks at height ≤ tip height −
    /// `prune_checkpoints_depth`
    /// (never the tip's): of validated and invalid blocks (never needed again), and of blocks
    /// never validated whose branch cannot become best (neither the block nor any stored
    /// descendant claims the tip's chainwork). Block data is kept.
    pub(super) fn prune_checkpoints(&mut self) -> Result<(), ChainError> {
        let depth = self.options.prune_checkpoints_depth;
        if depth == 0 || self.tip.height < depth {
            return Ok(());
        }
        let cutoff = self.tip.height - depth;
        let w = self.begin_write()?;
        let mut pruned = Vec::new();
        {
            let mut index = w.open_table(BLOCK_INDEX)?;
            let mut heights = w.open_table(CHECKPOINT_HEIGHTS)?;
            let mut records = w.open_table(CHECKPOINTS)?;
            let mut updates = w.open_table(UPDATES)?;
            let children = w.open_table(CHILDREN)?;
            let mut alive = HashMap::new();
            let hi = height_key(cutoff, &BlockHash([0xFF; 32]));
            let mut keys = Vec::new();
            for item in heights.range(..=hi.as_slice())? {
                let (k, _) = item?;
                keys.push(k.value().to_vec());
            }
            for k in keys {
                let hash =
                    hash_from_slice(&k[4..]).map_err(ChainError::record("checkpoint_heights"))?;
                let Some(mut e) = read_entry(&index, &hash)? else {
                    return Err(corrupt(format!("checkpoint of unknown block {hash}")));
                };
                if hash == self.tip.hash {
                    continue;
                }
                // A block never validated keeps its checkpoint while its branch may still
                // become best: it or a stored descendant claims at least the tip's chainwork.
                if !(e.has(flags::VALID_FULL) || e.is_failed())
                    && branch_can_win(&index, &children, &hash, self.tip.chainwork, &mut alive)?
                {
                    continue;
                }
                e.status &= !(flags::HAVE_CHECKPOINT | flags::HAVE_UPDATE);
                put_entry(&mut index, &e)?;
                heights.remove(k.as_slice())?;
                records.remove(hash.as_bytes().as_slice())?;
                updates.remove(hash.as_bytes().as_slice())?;
                pruned.push(hash);
            }
            // Updates of blocks that have no checkpoint (never validated), by the same rule.
            let mut stale_updates = Vec::new();
            for item in updates.iter()? {
                let (k, _) = item?;
                stale_updates
                    .push(hash_from_slice(k.value()).map_err(ChainError::record("updates"))?);
            }
            for hash in stale_updates {
                let Some(mut e) = read_entry(&index, &hash)? else {
                    return Err(corrupt(format!("update of unknown block {hash}")));
                };
                if e.header.height > cutoff || hash == self.tip.hash {
                    continue;
                }
                if !(e.has(flags::VALID_FULL) || e.is_failed())
                    && branch_can_win(&index, &children, &hash, self.tip.chainwork, &mut alive)?
                {
                    continue;
                }
                e.status &= !flags::HAVE_UPDATE;
                put_entry(&mut index, &e)?;
                updates.remove(hash.as_bytes().as_slice())?;
            }
        }
        w.commit()?;
        for hash in &pruned {
            self.files.remove(hash)?;
        }
        if !pruned.is_empty() {
            debug!(count = pruned.len(), cutoff, "pruned checkpoints");
        }
        Ok(())
    }
}

/// Whether the branch through `hash` may still become best: the block or one of its stored
/// descendants that is not known invalid claims at least `bar` chainwork. Results are
/// memoised in `alive` (per block, for one pruning pass), so a pass visits each block once.
fn branch_can_win(
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    children: &impl ReadableTable<&'static [u8], ()>,
    hash: &BlockHash,
    bar: u128,
    alive: &mut HashMap<BlockHash, bool>,
) -> Result<bool, ChainError> {
    // Iterative post-order: a block is decided once all its children are.
    let mut stack = vec![(*hash, false)];
    while let Some((h, expanded)) = stack.pop() {
        if alive.contains_key(&h) {
            continue;
        }
        let Some(e) = read_entry(index, &h)? else {
            alive.insert(h, false);
            continue;
        };
        if e.is_failed() {
            alive.insert(h, false);
            continue;
        }
        if e.chainwork >= bar {
            alive.insert(h, true);
            continue;
        }
        let kids = children_of(children, &h)?;
        if expanded {
            let any = kids.iter().any(|k| alive.get(k).copied().unwrap_or(false));
            alive.insert(h, any);
        } else {
            stack.push((h, true));
            stack.extend(kids.into_iter().filter(|k| !alive.contains_key(k)).map(|k| (k, false)));
        }
    }
    Ok(alive.get(hash).copied().unwrap_or(false))
}
