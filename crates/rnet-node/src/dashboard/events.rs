//! `/events`: server-sent events for pages and programs. Each subscriber gets a `tip` event
//! (`{"height": N, "hash": "…"}`) at once and another whenever the tip changes (polled every
//! [`POLL`] from the lock-free chain reader); pages use it to show the live height and to
//! reload. Programs also get every event of the node's event bus (`crate::events`) as it
//! happens: `block` and `blockdisconnected` (`{"hash", "height"}`), `tx` (`{"txid"}`, a
//! transaction accepted into the mempool) and `wallettx` (`{"wallet", "txid"}`). A subscriber
//! that falls more than the bus's buffer behind gets a `lagged` event with the number missed.
//! At most [`MAX_SUBSCRIBERS`] streams are open at once (503 beyond); all end at shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::source::Source;

/// How often the tip is checked.
pub const POLL: Duration = Duration::from_millis(500);

/// Most event streams open at once.
pub const MAX_SUBSCRIBERS: usize = 32;

/// The `tip` event for `height` and `hash`.
pub fn tip_event(height: u32, hash: &str) -> Event {
    Event::default().event("tip").data(json!({ "height": height, "hash": hash }).to_string())
}

/// `GET /events`.
pub async fn stream(State(source): State<Source>) -> Response {
    let Ok(permit) = source.subscribers.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many event streams").into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    let node = source.node.clone();
    let mut bus = node.events.subscribe();
    tokio::spawn(async move {
        let _permit = permit;
        let mut sent = None;
        while !node.shutting_down() {
            if let Ok(tip) = node.reader.tip() {
                if sent != Some(tip.hash) {
                    if tx.send(Ok(tip_event(tip.height, &tip.hash.to_hex()))).await.is_err() {
                        return;
                    }
                    sent = Some(tip.hash);
                }
            }
            let event = tokio::select! {
                _ = tokio::time::sleep(POLL) => None,
                received = bus.recv() => Some(received),
                _ = tx.closed() => return,
            };
            let event = match event {
                None => continue,
                Some(Ok(e)) => Event::default().event(e.kind()).data(e.to_json().to_string()),
                Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                    Event::default().event("lagged").data(json!({ "missed": n }).to_string())
                }
                Some(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()).into_response()
}
