//! The node's event stream: blocks connected and disconnected, transactions accepted into the
//! mempool, and wallet transactions (new or newly confirmed). `-blocknotify`, `-walletnotify`
//! ([`crate::notify`]) and the event stream for programs subscribe to it.

use rnet_primitives::{BlockHash, Txid};
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it misses some (it is told how
/// many it missed).
pub const EVENT_BUFFER: usize = 4096;

/// Something that happened to the chain, the mempool or a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A block joined the active chain (in height order; the last one is the tip).
    BlockConnected {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A block left the active chain (a reorganisation; tip first).
    BlockDisconnected {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A transaction entered the mempool.
    TransactionAccepted {
        /// Its txid.
        txid: Txid,
    },
    /// A loaded wallet recorded a transaction, or saw its confirmation change.
    WalletTransaction {
        /// The wallet's name.
        wallet: String,
        /// The transaction.
        txid: Txid,
    },
}

impl NodeEvent {
    /// The event's name in the event stream: `block`, `blockdisconnected`, `tx`, `wallettx`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BlockConnected { .. } => "block",
            Self::BlockDisconnected { .. } => "blockdisconnected",
            Self::TransactionAccepted { .. } => "tx",
            Self::WalletTransaction { .. } => "wallettx",
        }
    }

    /// The event as JSON (the event stream's `data`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::BlockConnected { hash, height } | Self::BlockDisconnected { hash, height } => {
                json!({ "hash": hash.to_hex(), "height": height })
            }
            Self::TransactionAccepted { txid } => json!({ "txid": txid.to_hex() }),
            Self::WalletTransaction { wallet, txid } => {
                json!({ "wallet": wallet, "txid": txid.to_hex() })
            }
        }
    }
}

/// A broadcast of [`NodeEvent`]s; publishing never blocks and costs nothing without
/// subscribers.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<NodeEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self { sender: broadcast::channel(EVENT_BUFFER).0 }
    }
}

impl EventBus {
    /// Sends `event` to every current subscriber.
    pub fn publish(&self, event: NodeEvent) {
        let _ = self.sender.send(event);
    }

    /// A receiver of the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_get_events_in_order_and_json_names_them() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        let hash = BlockHash([1; 32]);
        bus.publish(NodeEvent::BlockConnected { hash, height: 7 });
        bus.publish(NodeEvent::WalletTransaction { wallet: "w".into(), txid: Txid([2; 32]) });
        let first = rx.try_recv().unwrap();
        assert_eq!(first.kind(), "block");
        assert_eq!(first.to_json()["height"], serde_json::json!(7));
        assert_eq!(first.to_json()["hash"], serde_json::json!(hash.to_hex()));
        let second = rx.try_recv().unwrap();
        assert_eq!(second.to_json()["wallet"], serde_json::json!("w"));
        assert!(rx.try_recv().is_err());
    }
}
