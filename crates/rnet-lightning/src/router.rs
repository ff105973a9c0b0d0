//! The channel graph and pathfinding (BOLT 7 graph rules, `docs/lightning.md` §5).
//!
//! - [`NetworkGraph`]: public channels learned from verified gossip and private channels from
//!   invoice route hints, with BOLT 7's update rules, pruning and bounded size.
//! - [`find_route`]: Dijkstra from the payee back to the payer, so each hop's amount and CLTV
//!   expiry are known when its incoming channel is priced; minimises fees plus a CLTV-risk and
//!   a failure-penalty cost under every channel and route limit.
//! - [`Route`] and [`Route::onion_payloads`]: the hops and the per-hop onion payloads, built with
//!   exactly the formulas a forwarding node checks ([`ChannelPolicy::check_forward`]).
//! - [`Scorer`] and [`PaymentAttempts`]: failures attributed from error onions penalise or
//!   exclude channels and nodes, so a retry takes another path.

mod error;
mod graph;
mod pathfind;
mod policy;
mod scorer;

pub use error::{ForwardError, GraphError, RouteError};
pub use graph::{
    ChannelInfo, DirectionInfo, GraphLimits, IgnoreReason, MAX_FUTURE_SECS, NetworkGraph, NodeInfo,
    STALE_AFTER_SECS, UpdateOutcome,
};
pub use pathfind::{DEFAULT_MAX_TOTAL_CLTV, Exclusions, Route, RouteHop, RouteParams, find_route};
pub use policy::{ChannelPolicy, Direction, MAX_MSAT, fee_msat};
pub use scorer::{Blame, PaymentAttempts, Scorer, ScorerParams, blame_failure};
