//! Connecting a block on the tip and disconnecting the tip, each in one write transaction
//! (docs/chainstate.md §4), with its undo data and the expiry sweep.

use super::*;

impl ChainState {
    pub(super) fn fire_connect_fail_point(&self) -> Result<(), ChainError> {
        match &self.fail_point {
            Some(FailPoint::ErrorMidConnect) => Err(ChainError::FailPoint("mid-connect")),
            Some(FailPoint::PanicMidConnect) => panic!("fail point: panic mid-connect"),
            Some(FailPoint::HangMidConnect(marker)) => {
                let _ = std::fs::write(marker, b"hanging");
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            _ => Ok(()),
        }
    }

    /// Connects `entry` (whose parent is the tip) in one write transaction.
    pub(super) fn connect_tip(&mut self, entry: &IndexEntry, now: u64) -> Result<Step, ChainError> {
        let hash = entry.hash();
        if entry.header.prev_block_hash != self.tip.hash {
            return Err(corrupt(format!("connecting {hash}, which does not extend the tip")));
        }
        let block =
            self.stored_block(&hash)?.ok_or_else(|| corrupt(format!("no data for {hash}")))?;

        let r = self.read()?;
        let view = BranchView::new(&r, &self.tip.hash)?;
        if let Err(reason) = self.rules.check_header_context(&block.header, &view, now) {
            if let Some(e) = view.take_error() {
                return Err(e);
            }
            return Ok(self.classify(reason));
        }
        if !entry.has(flags::VALID_FULL | flags::VALID_POT) {
            let tip = self.tip.clone();
            if let Some(step) = self.check_pot(&block, &tip)? {
                return Ok(step);
            }
        }
        let utxos = UtxoSnapshot::new(&r)?;
        let result = self.rules.connect_block(&block, &view, &utxos);
        if let Some(e) = utxos.take_error().or_else(|| view.take_error()) {
            return Err(e);
        }
        let (mut summary, effects) = match result {
            Ok(x) => x,
            Err(reason) => return Ok(self.classify(reason)),
        };
        drop((view, utxos, r));
        if summary.hash != hash || summary.height != entry.header.height {
            return Err(corrupt("consensus returned a summary for another block"));
        }

        let w = self.begin_write()?;
        {
            let mut utxo = w.open_table(UTXO)?;
            let mut expiry = w.open_table(EXPIRY_INDEX)?;
            let mut undo = UndoRecord::default();

            // Coins both created and spent inside the block never touch the set.
            let created: HashSet<OutPoint> = effects.created.iter().map(|(o, _)| *o).collect();
            let mut internal = HashSet::new();
            for (outpoint, coin) in &effects.spent {
                if created.contains(outpoint) {
                    internal.insert(*outpoint);
                    continue;
                }
                let stored = utxo
                    .remove(outpoint_key(outpoint).as_slice())?
                    .ok_or_else(|| corrupt(format!("spent coin {outpoint:?} not in the set")))?;
                let stored = coin_from_bytes(stored.value()).map_err(ChainError::record("utxo"))?;
                if stored != *coin {
                    return Err(corrupt(format!("spent coin {outpoint:?} differs from the set")));
                }
                if expiry
                    .remove(expiry_key(stored.creation_loss_index, outpoint).as_slice())?
                    .is_none()
                {
                    return Err(corrupt(format!("coin {outpoint:?} missing from expiry index")));
                }
                undo.spent.push((*outpoint, stored));
            }
            for (outpoint, coin) in &effects.created {
                if internal.contains(outpoint) {
                    continue;
                }
                let key = outpoint_key(outpoint);
                if utxo.insert(key.as_slice(), coin_bytes(coin).as_slice())?.is_some() {
                    return Err(corrupt(format!("created coin {outpoint:?} already exists")));
                }
                expiry.insert(expiry_key(coin.creation_loss_index, outpoint).as_slice(), ())?;
                undo.created.push(*outpoint);
            }
            self.fire_connect_fail_point()?;

            // Expiry sweep: every coin with creation_loss_index >= threshold, O(expired).
            let threshold = self.rules.expiry_threshold(summary.loss_index);
            let start = expiry_key(threshold, &OutPoint::new(Txid::ZERO, 0));
            let mut expired_keys = Vec::new();
            for item in expiry.range(start.as_slice()..)? {
                let (k, _) = item?;
                expired_keys.push(k.value().to_vec());
            }
            let mut expired_value = Amount::ZERO;
            let mut expired_table = w.open_table(EXPIRED)?;
            for k in expired_keys {
                let (loss, outpoint) =
                    parse_expiry_key(&k).map_err(ChainError::record("expiry_index"))?;
                expiry.remove(k.as_slice())?;
                let stored = utxo
                    .remove(outpoint_key(&outpoint).as_slice())?
                    .ok_or_else(|| corrupt(format!("indexed coin {outpoint:?} not in the set")))?;
                let coin = coin_from_bytes(stored.value()).map_err(ChainError::record("utxo"))?;
                if coin.creation_loss_index != loss {
                    return Err(corrupt(format!("expiry key of {outpoint:?} has another loss")));
                }
                expired_value = expired_value
                    .checked_add(coin.output.value)
                    .ok_or_else(|| corrupt("expired value overflows"))?;
                crate::expired::record(&mut expired_table, &outpoint, summary.height)?;
                undo.expired.push((outpoint, coin));
            }
            drop(expired_table);
            if !undo.expired.is_empty() {
                debug!(%hash, coins = undo.expired.len(), value = expired_value.0, threshold, "expired coins");
            }
            summary
                .apply_expiry(expired_value)
                .ok_or_else(|| corrupt("expired more value than is circulating"))?;

            w.open_table(UNDO)?
                .insert(hash.as_bytes().as_slice(), encode_to_vec(&undo).as_slice())?;
            let mut index = w.open_table(BLOCK_INDEX)?;
            // Re-read: Proof-of-Training above may have stored the derived checkpoint.
            let mut new_entry = read_entry(&index, &hash)?.unwrap_or_else(|| entry.clone());
            new_entry.status |= flags::VALID_HEADER | flags::VALID_FULL;
            new_entry.summary = Some(summary.clone());
            put_entry(&mut index, &new_entry)?;
            drop(index);
            w.open_table(ACTIVE_CHAIN)?.insert(summary.height, hash.as_bytes().as_slice())?;
            w.open_table(META)?.insert(META_TIP, hash.as_bytes().as_slice())?;
            if self.options.txindex {
                crate::txindex::add_block(&w, &block, &hash)?;
            }
        }
        w.commit()?;
        debug!(%hash, height = summary.height, val_loss = summary.val_loss, "connected block");
        self.tip = summary;
        self.tip_seq = entry.seq;
        Ok(Step::Connected)
    }

    /// Disconnects the tip in one write transaction, using its undo data.
    pub(super) fn disconnect_tip(&mut self) -> Result<(), ChainError> {
        let hash = self.tip.hash;
        if self.tip.height == 0 {
            return Err(ChainError::Genesis);
        }
        let entry = self.index_entry(&hash)?.ok_or(ChainError::UnknownBlock(hash))?;
        let parent_hash = entry.header.prev_block_hash;
        let parent =
            self.index_entry(&parent_hash)?.ok_or(ChainError::UnknownBlock(parent_hash))?;
        let parent_summary =
            parent.summary.clone().ok_or_else(|| corrupt("parent of the tip not validated"))?;
        let indexed = match self.options.txindex {
            true => Some(
                self.stored_block(&hash)?.ok_or_else(|| corrupt(format!("no data for {hash}")))?,
            ),
            false => None,
        };

        let w = self.begin_write()?;
        {
            if let Some(block) = &indexed {
                crate::txindex::remove_block(&w, block, &hash)?;
            }
            let record = w
                .open_table(UNDO)?
                .remove(hash.as_bytes().as_slice())?
                .ok_or_else(|| corrupt(format!("no undo data for {hash}")))?
                .value()
                .to_vec();
            let undo: UndoRecord = decode_exact(&record).map_err(ChainError::record("undo"))?;
            let mut utxo = w.open_table(UTXO)?;
            let mut expiry = w.open_table(EXPIRY_INDEX)?;
            let mut restore = |outpoint: &OutPoint, coin: &Coin| -> Result<(), ChainError> {
                if utxo
                    .insert(outpoint_key(outpoint).as_slice(), coin_bytes(coin).as_slice())?
                    .is_some()
                {
                    return Err(corrupt(format!("restored coin {outpoint:?} already in the set")));
                }
                expiry.insert(expiry_key(coin.creation_loss_index, outpoint).as_slice(), ())?;
                Ok(())
            };
            // Expired first: a coin the block created may also have expired in its own sweep.
            let mut expired_table = w.open_table(EXPIRED)?;
            for (outpoint, coin) in &undo.expired {
                crate::expired::forget(&mut expired_table, outpoint, self.tip.height)?;
                restore(outpoint, coin)?;
            }
            drop(expired_table);
            if self.fail_point == Some(FailPoint::ErrorMidDisconnect) {
                return Err(ChainError::FailPoint("mid-disconnect"));
            }
            for (outpoint, coin) in &undo.spent {
                restore(outpoint, coin)?;
            }
            for outpoint in &undo.created {
                let stored = utxo
                    .remove(outpoint_key(outpoint).as_slice())?
                    .ok_or_else(|| corrupt(format!("created coin {outpoint:?} not in the set")))?;
                let coin = coin_from_bytes(stored.value()).map_err(ChainError::record("utxo"))?;
                if expiry
                    .remove(expiry_key(coin.creation_loss_index, outpoint).as_slice())?
                    .is_none()
                {
                    return Err(corrupt(format!("coin {outpoint:?} missing from expiry index")));
                }
            }
            if w.open_table(ACTIVE_CHAIN)?.remove(self.tip.height)?.is_none() {
                return Err(corrupt("tip missing from the active chain"));
            }
            w.open_table(META)?.insert(META_TIP, parent_hash.as_bytes().as_slice())?;
        }
        w.commit()?;
        debug!(%hash, height = self.tip.height, "disconnected block");
        self.tip = parent_summary;
        self.tip_seq = parent.seq;
        Ok(())
    }
}
