//! Lightning peer connections (docs/lightning.md §8).
//!
//! A Lightning node is known by its Ed25519 node id (invoices, gossip and onions use it). The
//! connection reuses the P2P layer's Noise XX transport (`rnet_net::transport`) with a separate
//! prologue (`resonancenet-ln-v1` ‖ network magic), so a P2P peer and a Lightning peer can never
//! complete a handshake with each other. The Noise static key is the X25519 form of the node
//! key: the clamped Ed25519 secret scalar, whose X25519 public key is the Montgomery form of the
//! node id (the same map the onion uses, docs/lightning.md §2.2).
//!
//! X25519 keys lose the Edwards sign bit, so after the handshake each side sends an identity
//! message: its 32-byte node id and an Ed25519 signature over
//! `Keccak-256("rnet/ln-identity/v1" ‖ handshake hash ‖ role)` (role 0 = initiator,
//! 1 = responder, so a signature cannot be reflected). The receiver checks that the node id's
//! Montgomery form is the Noise static key it authenticated and that the signature verifies:
//! only the holder of the node key can do both, and the signature is bound to this session.
//! An outbound connection also checks the node id is the one it dialled. Then every Lightning
//! message travels as one transport message (command [`MSG_LIGHTNING`], payload = the wire
//! message, at most [`rnet_lightning::wire::MAX_MESSAGE_LEN`] bytes).

use rnet_crypto::{PublicKey, Signature, SigningKey};
use rnet_lightning::onion::{ed25519_public_to_x25519, ed25519_secret_scalar};
use rnet_net::transport::{NodeKey, Receiver, Sender, TransportError, handshake_with_prologue};
use tokio::io::{AsyncRead, AsyncWrite};

/// Transport command of the identity message.
pub const MSG_IDENTITY: u8 = 1;
/// Transport command of a Lightning wire message.
pub const MSG_LIGHTNING: u8 = 2;
/// Domain separation of the identity signature.
const IDENTITY_TAG: &[u8] = b"rnet/ln-identity/v1";
/// Length of the identity message: node id and signature.
const IDENTITY_LEN: usize = 32 + 64;

/// Why a Lightning connection failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The transport failed (socket, Noise, framing).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The node key cannot be used for X25519.
    #[error("node key: {0}")]
    NodeKey(String),
    /// The peer's first message is not a well-formed identity message.
    #[error("malformed identity message")]
    MalformedIdentity,
    /// The peer's node id is not the key it authenticated the session with.
    #[error("the peer's node id does not match its transport key")]
    KeyMismatch,
    /// The identity signature does not verify.
    #[error("bad identity signature")]
    BadSignature,
    /// An outbound connection reached another node than the one dialled.
    #[error("connected to {got}, expected {expected}")]
    WrongPeer {
        /// The node id dialled.
        expected: String,
        /// The node id that answered.
        got: String,
    },
}

/// An authenticated Lightning connection.
pub struct Link<R, W> {
    /// The peer's Ed25519 node id.
    pub peer: PublicKey,
    /// Receiving half.
    pub receiver: Receiver<R>,
    /// Sending half.
    pub sender: Sender<W>,
}

/// The Noise prologue of Lightning sessions on the network with `magic`.
pub fn prologue(magic: [u8; 4]) -> Vec<u8> {
    let mut p = b"resonancenet-ln-v1".to_vec();
    p.extend_from_slice(&magic);
    p
}

/// The X25519 transport key of a Lightning node key.
pub fn transport_key(node_key: &SigningKey) -> Result<NodeKey, LinkError> {
    let scalar = ed25519_secret_scalar(node_key.as_bytes());
    NodeKey::from_private(*scalar).map_err(|e| LinkError::NodeKey(e.to_string()))
}

/// What an identity signature signs.
fn identity_digest(handshake_hash: &[u8], initiator: bool) -> [u8; 32] {
    let mut msg = IDENTITY_TAG.to_vec();
    msg.extend_from_slice(handshake_hash);
    msg.push(u8::from(!initiator));
    rnet_crypto::keccak256(&msg)
}

/// Runs the handshake and the identity exchange over `(r, w)`. `expected` is the node id an
/// outbound connection dialled (`None` for an inbound one).
pub async fn establish<R, W>(
    r: R,
    w: W,
    node_key: &SigningKey,
    magic: [u8; 4],
    expected: Option<&PublicKey>,
) -> Result<Link<R, W>, LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let initiator = expected.is_some();
    let key = transport_key(node_key)?;
    let mut est = handshake_with_prologue(r, w, &key, &prologue(magic), initiator).await?;
    let mut ours = node_key.public_key().to_bytes().to_vec();
    ours.extend_from_slice(
        &node_key.sign(&identity_digest(&est.handshake_hash, initiator)).to_bytes(),
    );
    est.sender.send(MSG_IDENTITY, &ours).await?;
    let (command, payload, _) = est.receiver.recv(IDENTITY_LEN + 1).await?;
    if command != MSG_IDENTITY || payload.len() != IDENTITY_LEN {
        return Err(LinkError::MalformedIdentity);
    }
    let id_bytes: [u8; 32] = payload[..32].try_into().map_err(|_| LinkError::MalformedIdentity)?;
    let peer = PublicKey::from_bytes(&id_bytes).map_err(|_| LinkError::MalformedIdentity)?;
    if peer.is_weak()
        || ed25519_public_to_x25519(&peer).map_err(|_| LinkError::KeyMismatch)? != est.remote_key
    {
        return Err(LinkError::KeyMismatch);
    }
    let sig = Signature::from_slice(&payload[32..]).map_err(|_| LinkError::MalformedIdentity)?;
    peer.verify(&identity_digest(&est.handshake_hash, !initiator), &sig)
        .map_err(|_| LinkError::BadSignature)?;
    if let Some(expected) = expected {
        if *expected != peer {
            return Err(LinkError::WrongPeer {
                expected: hex::encode(expected.to_bytes()),
                got: hex::encode(peer.to_bytes()),
            });
        }
    }
    Ok(Link { peer, receiver: est.receiver, sender: est.sender })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    const MAGIC: [u8; 4] = [0xf3, b'r', b'n', b't'];

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    /// Connects `dialler` to a listener run by `listener_key`, dialling `expected`; returns both
    /// sides' results.
    async fn connect(
        listener_key: SigningKey,
        dialler: SigningKey,
        expected: PublicKey,
        listener_prologue_magic: [u8; 4],
    ) -> (Result<PublicKey, String>, Result<PublicKey, String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, w) = s.into_split();
            establish(r, w, &listener_key, listener_prologue_magic, None)
                .await
                .map(|l| l.peer)
                .map_err(|e| e.to_string())
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        let client = establish(r, w, &dialler, MAGIC, Some(&expected))
            .await
            .map(|l| l.peer)
            .map_err(|e| e.to_string());
        (client, server.await.unwrap())
    }

    #[tokio::test]
    async fn both_sides_learn_the_authenticated_node_id() {
        let (a, b) = (key(1), key(2));
        let (client, server) = connect(b.clone(), a.clone(), b.public_key(), MAGIC).await;
        assert_eq!(client.unwrap(), b.public_key());
        assert_eq!(server.unwrap(), a.public_key());
    }

    #[tokio::test]
    async fn dialling_the_wrong_node_fails() {
        let (a, b, c) = (key(1), key(2), key(3));
        let (client, _) = connect(b, a, c.public_key(), MAGIC).await;
        assert!(client.unwrap_err().contains("expected"), "the dialler notices");
    }

    #[tokio::test]
    async fn another_protocol_or_network_cannot_connect() {
        let (a, b) = (key(1), key(2));
        let other = [0xf2, b'r', b'n', b't'];
        let (client, server) = connect(b.clone(), a, b.public_key(), other).await;
        assert!(client.is_err() && server.is_err());
    }

    /// A node claiming another node's id (with its own valid signature) is refused: the id's
    /// X25519 form is not the key that authenticated the session.
    #[tokio::test]
    async fn an_impostor_id_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let victim = key(9).public_key();
        let impostor = key(4);
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, w) = s.into_split();
            establish(r, w, &key(2), MAGIC, None).await.map(|l| l.peer)
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        let tk = transport_key(&impostor).unwrap();
        let mut est = handshake_with_prologue(r, w, &tk, &prologue(MAGIC), true).await.unwrap();
        let mut claim = victim.to_bytes().to_vec();
        claim.extend_from_slice(
            &impostor.sign(&identity_digest(&est.handshake_hash, true)).to_bytes(),
        );
        est.sender.send(MSG_IDENTITY, &claim).await.unwrap();
        assert!(matches!(server.await.unwrap(), Err(LinkError::KeyMismatch)));
    }

    #[test]
    fn the_transport_key_is_the_montgomery_form_of_the_node_id() {
        let k = key(7);
        let x = transport_key(&k).unwrap();
        assert_eq!(x.public, ed25519_public_to_x25519(&k.public_key()).unwrap());
    }
}
