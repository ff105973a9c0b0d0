//! A node's settings for one channel: what it asks of the counterparty and what it accepts.

use rnet_primitives::Amount;

use super::error::StateError;
use crate::channel::commitment::MAX_HTLCS_PER_DIRECTION;
use crate::channel::sweep::check_destination;
use crate::channel::{FeeRate, MIN_DUST_LIMIT};

/// Our side's channel settings. Limits named after BOLT 2 fields apply to what the
/// **counterparty** offers us; they are sent in `open_channel` / `accept_channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Our dust limit (outputs below it are left out of our commitment); ≥ [`MIN_DUST_LIMIT`].
    pub dust_limit: Amount,
    /// The most msat the counterparty may have in HTLCs offered to us at once.
    pub max_htlc_value_in_flight_msat: u64,
    /// The reserve we require of the counterparty, in thousandths of the channel (raised to
    /// both dust limits, as BOLT 2 requires).
    pub channel_reserve_permille: u16,
    /// The smallest HTLC we accept, msat (at least 1).
    pub htlc_minimum_msat: u64,
    /// The delay we impose on the counterparty's own outputs, blocks: our time to punish a
    /// revoked commitment.
    pub to_self_delay: u16,
    /// The largest delay we accept on our own outputs.
    pub max_to_self_delay: u16,
    /// The most HTLCs the counterparty may offer us at once (1 ..= 483).
    pub max_accepted_htlcs: u16,
    /// Confirmations of the funding transaction before `channel_ready` (at least 1).
    pub minimum_depth: u32,
    /// The lowest commitment fee rate we accept from the funder.
    pub min_feerate: FeeRate,
    /// The highest commitment fee rate we accept from the funder.
    pub max_feerate: FeeRate,
    /// The most msat of trimmed (dust) HTLCs we let one commitment carry when we offer an
    /// HTLC: they go to fees if the commitment is broadcast.
    pub max_dust_htlc_exposure_msat: u64,
    /// Where our balance goes on a cooperative close (32-byte key or script-hash output).
    pub shutdown_script: Vec<u8>,
}

impl ChannelConfig {
    /// Settings with common defaults (dust limit 453, reserve 1%, delay 144, 483 HTLCs,
    /// 3 confirmations, fee rates 1000 ..= 1 000 000 resonance/kB) and the given shutdown
    /// script.
    pub fn new(shutdown_script: Vec<u8>) -> Self {
        Self {
            dust_limit: MIN_DUST_LIMIT,
            max_htlc_value_in_flight_msat: u64::MAX,
            channel_reserve_permille: 10,
            htlc_minimum_msat: 1,
            to_self_delay: 144,
            max_to_self_delay: 2016,
            max_accepted_htlcs: MAX_HTLCS_PER_DIRECTION as u16,
            minimum_depth: 3,
            min_feerate: FeeRate(1000),
            max_feerate: FeeRate(1_000_000),
            max_dust_htlc_exposure_msat: 5_000_000_000,
            shutdown_script,
        }
    }

    /// Refuses settings that cannot work.
    pub fn check(&self) -> Result<(), StateError> {
        let fail = |what| Err(StateError::InvalidConfig(what));
        if self.dust_limit < MIN_DUST_LIMIT {
            return fail("dust_limit below the relay dust threshold");
        }
        if self.htlc_minimum_msat == 0 {
            return fail("htlc_minimum_msat must be at least 1");
        }
        if self.to_self_delay == 0 || self.max_to_self_delay == 0 {
            return fail("delays must be at least 1 block");
        }
        if self.max_accepted_htlcs == 0
            || usize::from(self.max_accepted_htlcs) > MAX_HTLCS_PER_DIRECTION
        {
            return fail("max_accepted_htlcs must be 1 ..= 483");
        }
        if self.minimum_depth == 0 {
            return fail("minimum_depth must be at least 1");
        }
        if self.channel_reserve_permille > 1000 {
            return fail("channel_reserve_permille above 1000");
        }
        if self.min_feerate > self.max_feerate || self.max_feerate.0 > u64::from(u32::MAX) {
            return fail("fee rate range empty or above u32");
        }
        if check_destination(&self.shutdown_script).is_err() {
            return fail("shutdown_script is not a standard key or script-hash output");
        }
        Ok(())
    }

    /// The reserve we require of the counterparty for a channel of `funding` with the given
    /// dust limits: the configured share, at least both dust limits, at most the channel.
    pub fn reserve_for(&self, funding: Amount, dust_limits: &[Amount]) -> Amount {
        let share = u128::from(funding.0) * u128::from(self.channel_reserve_permille) / 1000;
        let share = Amount(u64::try_from(share).unwrap_or(u64::MAX));
        dust_limits.iter().fold(share, |a, d| a.max(*d)).min(funding)
    }

    /// Whether `feerate` is in the accepted range.
    pub fn accepts_feerate(&self, feerate: FeeRate) -> bool {
        self.min_feerate <= feerate && feerate <= self.max_feerate
    }
}
