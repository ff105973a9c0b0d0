//! Test support (feature `test-support`): [`RawPeer`], a peer driven by a test that speaks the
//! real protocol (Noise transport, `version`/`verack`, hand-made messages) to a node on loopback,
//! so a test can misbehave exactly: flood, never read, send forged data. Shared by rnet-net's own
//! hardening tests and the multi-process hostile-peer suite of rnet-node; never used by `rnetd`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rnet_primitives::BlockHash;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::message::{Message, NODE_MODEL_ARCHIVE, NODE_NETWORK, PROTOCOL_VERSION, Version};
use crate::transport::{self, MAX_MESSAGE_SIZE, NodeKey, TransportError};

/// How long [`RawPeer::connect`] waits for the node's `verack`.
pub const VERACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A peer driven by the test: the two halves of an established Noise session and its key.
pub struct RawPeer {
    /// Sending half.
    pub tx: transport::Sender<OwnedWriteHalf>,
    /// Receiving half.
    pub rx: transport::Receiver<OwnedReadHalf>,
    /// The peer's Noise key (its node id: bans name it as `key:<hex of public>`).
    pub key: NodeKey,
}

impl RawPeer {
    /// Connects to `addr` on network `magic` with a fresh key and completes only the Noise
    /// handshake (an error if the node refuses, e.g. because the key is banned).
    pub async fn connect_noise(addr: SocketAddr, magic: [u8; 4]) -> Result<Self, TransportError> {
        Self::connect_noise_with(addr, magic, NodeKey::generate()?).await
    }

    /// [`RawPeer::connect_noise`] with a given Noise key.
    pub async fn connect_noise_with(
        addr: SocketAddr,
        magic: [u8; 4],
        key: NodeKey,
    ) -> Result<Self, TransportError> {
        let s = TcpStream::connect(addr).await?;
        let (r, w) = s.into_split();
        let e = transport::handshake(r, w, &key, magic, true).await?;
        Ok(Self { tx: e.sender, rx: e.receiver, key })
    }

    /// Connects with a fresh key, completes the Noise handshake and `version`/`verack`: None if
    /// the node refuses or does not answer `verack` within [`VERACK_TIMEOUT`].
    pub async fn connect(addr: SocketAddr, magic: [u8; 4]) -> Option<Self> {
        Self::connect_as(addr, magic, version(magic, rand::random())).await
    }

    /// [`RawPeer::connect`] announcing the given `version` (e.g. a pruning peer's model depth).
    pub async fn connect_as(addr: SocketAddr, magic: [u8; 4], v: Message) -> Option<Self> {
        let mut p = Self::connect_noise(addr, magic).await.ok()?;
        p.send(&v).await;
        p.send(&Message::Verack).await;
        p.wait_for(VERACK_TIMEOUT, |m| matches!(m, Message::Verack)).await?;
        Some(p)
    }

    /// The node id the victim sees (`getpeerinfo.node_key`, `listbanned` `key:<this>`).
    pub fn node_key_hex(&self) -> String {
        hex::encode(self.key.public)
    }

    /// Sends a message; false once the node closed the connection.
    pub async fn send(&mut self, m: &Message) -> bool {
        self.tx.send(m.command(), &m.payload()).await.is_ok()
    }

    /// Sends a raw command byte and payload (e.g. an unknown command); false once closed.
    pub async fn send_raw(&mut self, command: u8, payload: &[u8]) -> bool {
        self.tx.send(command, payload).await.is_ok()
    }

    /// The next decodable message (None on close, on an undecodable one, or after `t`).
    pub async fn recv(&mut self, t: Duration) -> Option<Message> {
        match tokio::time::timeout(t, self.rx.recv(MAX_MESSAGE_SIZE)).await {
            Ok(Ok((c, p, _))) => Message::decode(c, &p).ok(),
            _ => None,
        }
    }

    /// Reads until a message matches `f` (answering pings on the way); None on close or after
    /// `t`.
    pub async fn wait_for(
        &mut self,
        t: Duration,
        mut f: impl FnMut(&Message) -> bool,
    ) -> Option<Message> {
        let deadline = Instant::now() + t;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let m = self.recv(left).await?;
            if let Message::Ping(n) = m {
                self.send(&Message::Pong(n)).await;
            }
            if f(&m) {
                return Some(m);
            }
        }
    }

    /// Whether the node closes the connection within `t` (messages read meanwhile are dropped).
    pub async fn closed_within(&mut self, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match tokio::time::timeout(left, self.rx.recv(MAX_MESSAGE_SIZE)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Round trip of a `ping` (None if no `pong` within `t`).
    pub async fn ping(&mut self, t: Duration) -> Option<Duration> {
        let n: u64 = rand::random();
        let at = Instant::now();
        self.send(&Message::Ping(n)).await;
        self.wait_for(t, |m| *m == Message::Pong(n)).await.map(|_| at.elapsed())
    }
}

/// A `version` message for network `magic` claiming an empty chain, from an archive node.
pub fn version(magic: [u8; 4], nonce: u64) -> Message {
    Message::Version(Box::new(Version {
        version: PROTOCOL_VERSION,
        magic,
        services: NODE_NETWORK | NODE_MODEL_ARCHIVE,
        model_depth: 0,
        timestamp: 0,
        best_height: 0,
        best_chainwork: 0,
        best_hash: BlockHash::ZERO,
        nonce,
        listen_port: 0,
        user_agent: "/test/".into(),
    }))
}
