//! The Lightning service of `rnetd -lightning` (docs/lightning.md §8): it owns the node's
//! [`LightningNode`], listens for and dials Lightning peers ([`super::link`]), feeds it their
//! messages, the chain's blocks and the clock, and carries out what it asks: messages to peers,
//! transactions to the mempool, funding transactions from the wallet, events to the log and to
//! RPC callers waiting for them.
//!
//! Every call into the node happens under one lock and its actions are carried out before the
//! lock is released, so actions leave in the order the node produced them. The node has already
//! persisted the state its actions reveal (docs/lightning.md §7).
//!
//! The close and sweep outputs pay a recovery-policy address of the node's wallet
//! (`-lnwallet=NAME`, or the only loaded wallet): recovery stays mandatory. The address is taken
//! once, when the Lightning node is first created, and kept in its store, so a restarted node
//! watches its channels before any wallet is loaded.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rnet_crypto::{PublicKey, SigningKey};
use rnet_lightning::gossip::{
    CHANNEL_ANNOUNCEMENT_TYPE, CHANNEL_UPDATE_TYPE, ChannelAnnouncement, ChannelUpdate,
};
use rnet_lightning::node::ANNOUNCEMENT_DEPTH;
use rnet_lightning::node::{Action, ChanStatus, LightningNode, NodeConfig, NodeError, NodeEvent};
use rnet_lightning::router::UpdateOutcome;
use rnet_lightning::store::{Store, StoreOp};
use rnet_lightning::watchtower::{
    Appointment, EncryptedBlob, Hint, MemoryStore, SessionId, Tower, TowerConfig,
};
use rnet_lightning::wire::{MAX_MESSAGE_LEN, Message, message_type};
use rnet_primitives::{Address, BlockHash, OutPoint};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

use super::address_book::AddressBook;
use super::link::{Link, MSG_LIGHTNING, establish};
use super::store::RedbStore;
use crate::node::Node;
use crate::wallets::lock_entry;

/// Store key of the sweep script chosen when the node was created.
const SWEEP_KEY: &[u8] = b"rnetd/sweep";
/// File in the network directory holding the bound Lightning port (for tools and tests).
pub const PORT_FILE: &str = "lightning.port";
/// How often the service catches up with the chain and ticks the node's clock.
const TICK: Duration = Duration::from_millis(250);
/// Lightning message type of a watchtower appointment: `hint (16) ‖ encrypted blob`
/// (docs/lightning.md §8.5). Odd, so a peer that runs no tower ignores it (BOLT 1).
pub const TOWER_APPOINTMENT_TYPE: u16 = 32_769;

/// Ticks between two rounds of our `channel_update`s to every connected peer (5 s): channels
/// are not announced, so each side tells its peer its forwarding policy directly, and again
/// in case the peer was not ready for it the first time.
const UPDATE_EVERY_TICKS: u64 = 20;
/// How often (in ticks, 60 s) the chain's fee estimate is given to the Lightning node.
const FEE_UPDATE_EVERY_TICKS: u64 = 240;
/// The confirmation target of that estimate (blocks).
const FEE_TARGET_BLOCKS: u32 = 6;
/// How often (in ticks) peers of open channels that are not connected are dialled again.
const RECONNECT_EVERY_TICKS: u64 = 8;

/// Why a Lightning request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No wallet to take the sweep address and funding from.
    #[error("no wallet for Lightning: load one, or name it with -lnwallet=NAME")]
    NoWallet,
    /// The wallet refused (funds, keys).
    #[error("wallet: {0}")]
    Wallet(String),
    /// The Lightning node refused.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The Lightning state could not be stored.
    #[error("lightning store: {0}")]
    Store(String),
    /// Connecting to a peer failed.
    #[error("connect: {0}")]
    Connect(String),
}

/// The node and how far it has followed the chain.
struct Ln {
    node: LightningNode,
    /// The last block handed to the node (height, id), for reorg detection.
    last: Option<(u32, BlockHash)>,
}

/// `rnetd`'s Lightning service (see the module documentation).
pub struct LightningService {
    node: Arc<Node>,
    node_key: SigningKey,
    wallet: Option<String>,
    ln: Mutex<Option<Ln>>,
    /// The store until the Lightning node is created (then the node owns it).
    unopened: Mutex<Option<RedbStore>>,
    peers: Mutex<HashMap<[u8; 32], mpsc::UnboundedSender<Vec<u8>>>>,
    events: broadcast::Sender<NodeEvent>,
    magic: [u8; 4],
    port: u16,
    ticks: AtomicU64,
    /// `-watchtower`: the tower this node runs for its peers, and the last block it scanned.
    tower: Option<Mutex<TowerState>>,
    /// `-lntower`: the tower our appointments go to, and those not yet sent.
    tower_peer: Option<(PublicKey, SocketAddr)>,
    unsent_appointments: Mutex<Vec<Appointment>>,
    hold_htlcs: bool,
    /// Where the peers we dialled listen ([`AddressBook`]).
    address_book: Mutex<AddressBook>,
    /// Peers being dialled now (so that the reconnect timer does not dial twice).
    dialing: Mutex<std::collections::HashSet<[u8; 32]>>,
}

/// The tower `-watchtower` runs (appointments in memory) and the last block it scanned.
type TowerState = (Tower<MemoryStore>, Option<(u32, BlockHash)>);

/// Watchtower roles of the service (`-watchtower`, `-lntower=ID@HOST:PORT`).
#[derive(Clone, Debug, Default)]
pub struct TowerOptions {
    /// Run a tower for our peers.
    pub serve: bool,
    /// Send our appointments to this tower.
    pub client_of: Option<(PublicKey, SocketAddr)>,
    /// Regtest test support: never settle payments to us (`-lndevholdhtlcs`).
    pub hold_htlcs: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LightningService {
    /// Starts the service: loads the node key and state, listens on `listen`, and follows the
    /// chain. A node created earlier resumes at once; a new one is created at the first request
    /// that needs it (a wallet must be loaded by then).
    pub async fn start(
        node: Arc<Node>,
        listen: SocketAddr,
        wallet: Option<String>,
        towers: TowerOptions,
    ) -> anyhow::Result<Arc<Self>> {
        let netdir = node.netdir.clone();
        let node_key = super::keys::load_or_create(&netdir)?;
        let store = RedbStore::open(&netdir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let address_book = AddressBook::load(&netdir)?;
        let listener = TcpListener::bind(listen).await?;
        let port = listener.local_addr()?.port();
        std::fs::write(netdir.join(PORT_FILE), port.to_string())?;
        let magic = node.params.magic;
        let genesis = node.params.genesis_hash();
        let service = Arc::new(Self {
            node,
            node_key,
            wallet,
            ln: Mutex::new(None),
            unopened: Mutex::new(Some(store)),
            peers: Mutex::new(HashMap::new()),
            events: broadcast::channel(256).0,
            magic,
            port,
            ticks: AtomicU64::new(0),
            tower: towers.serve.then(|| {
                Mutex::new((
                    Tower::new(MemoryStore::default(), genesis, TowerConfig::default()),
                    None,
                ))
            }),
            tower_peer: towers.client_of,
            hold_htlcs: towers.hold_htlcs,
            unsent_appointments: Mutex::new(Vec::new()),
            address_book: Mutex::new(address_book),
            dialing: Mutex::new(std::collections::HashSet::new()),
        });
        if let Some(sweep) = service.stored_sweep()? {
            service.open(&mut lock(&service.ln), sweep, true)?;
        }
        tracing::info!(
            id = %hex::encode(service.node_key.public_key().to_bytes()),
            port,
            "Lightning listening"
        );
        let s = service.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, addr)) => {
                        let s = s.clone();
                        tokio::spawn(async move {
                            if let Err(e) = s.accept(stream).await {
                                tracing::info!(%addr, "Lightning peer refused: {e}");
                            }
                        });
                    }
                    Err(e) => tracing::warn!("Lightning accept failed: {e}"),
                }
            }
        });
        let s = service.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                if s.node.shutting_down() {
                    break;
                }
                let s = s.clone();
                let ticked = tokio::task::spawn_blocking(move || s.tick()).await;
                if let Ok(Err(e)) = ticked {
                    tracing::warn!("Lightning tick failed: {e}");
                }
            }
        });
        Ok(service)
    }

    /// The node id (Ed25519 public key).
    pub fn node_id(&self) -> PublicKey {
        self.node_key.public_key()
    }

    /// The bound Lightning port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `f` on the Lightning node if it exists (without creating it).
    pub fn existing<R>(&self, f: impl FnOnce(&LightningNode) -> R) -> Option<R> {
        lock(&self.ln).as_ref().map(|ln| f(&ln.node))
    }

    /// With `-watchtower`: the appointments the tower holds.
    pub fn tower_appointments(&self) -> Option<usize> {
        use rnet_lightning::watchtower::AppointmentStore;
        self.tower.as_ref().map(|t| lock(t).0.store().len())
    }

    /// A receiver of the node's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    fn stored_sweep(&self) -> Result<Option<Vec<u8>>, ServiceError> {
        let unopened = lock(&self.unopened);
        let Some(store) = unopened.as_ref() else { return Ok(None) };
        store.get(SWEEP_KEY).map_err(|e| ServiceError::Store(e.to_string()))
    }

    fn config(&self, sweep: Vec<u8>) -> NodeConfig {
        let mut config = NodeConfig::new(
            self.node_key.clone(),
            self.node.params.genesis_hash(),
            self.node.network(),
            sweep,
        );
        config.hold_incoming = self.hold_htlcs;
        config
    }

    /// Creates (`resume` false) or loads the Lightning node from the store into `slot` (the
    /// caller holds the `ln` lock, so concurrent first uses cannot race).
    fn open(
        &self,
        slot: &mut Option<Ln>,
        sweep: Vec<u8>,
        resume: bool,
    ) -> Result<(), ServiceError> {
        let Some(mut store) = lock(&self.unopened).take() else { return Ok(()) };
        let config = self.config(sweep.clone());
        let node = if resume {
            LightningNode::load(config, Box::new(store))?
        } else {
            store
                .write(vec![StoreOp::Put(SWEEP_KEY.to_vec(), sweep)])
                .map_err(|e| ServiceError::Store(e.to_string()))?;
            LightningNode::new(config, Box::new(store))?
        };
        // A new node starts following the chain at the tip; a loaded one where it stopped.
        let last = if resume {
            None
        } else {
            let tip = self.node.reader.tip().map_err(|e| ServiceError::Store(e.to_string()))?;
            Some((tip.height, tip.hash))
        };
        *slot = Some(Ln { node, last });
        Ok(())
    }

    /// The wallet Lightning uses.
    fn wallet(&self) -> Result<Arc<Mutex<crate::wallets::WalletEntry>>, ServiceError> {
        match &self.wallet {
            Some(name) => self.node.wallets.get(name).ok_or(ServiceError::NoWallet),
            None => self.node.wallets.single().ok().flatten().ok_or(ServiceError::NoWallet),
        }
    }

    /// Runs `f` on the Lightning node (creating it first if needed) and carries out the
    /// actions it returns, all under the node's lock.
    pub fn with_node<R>(
        &self,
        f: impl FnOnce(&mut LightningNode) -> Result<(R, Vec<Action>), NodeError>,
    ) -> Result<R, ServiceError> {
        // Created under the lock: a second caller waits for the first to finish creating it.
        let mut guard = lock(&self.ln);
        if guard.is_none() {
            let address = {
                let wallet = self.wallet()?;
                let mut entry = lock_entry(&wallet);
                entry.wallet.new_address().map_err(|e| ServiceError::Wallet(e.to_string()))?
            };
            self.open(&mut guard, address.script_pubkey(), false)?;
        }
        let ln = guard.as_mut().ok_or(ServiceError::NoWallet)?;
        let (result, actions) = f(&mut ln.node)?;
        self.carry_out(&mut ln.node, actions);
        Ok(result)
    }

    /// Carries out `actions` in order (and those that funding adds).
    fn carry_out(&self, node: &mut LightningNode, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::SendMessage { to, message } => self.send(&to, &message),
                Action::Broadcast(tx) => {
                    let txid = tx.txid();
                    match self.node.submit_transaction(tx) {
                        Ok(_) => tracing::info!(%txid, "Lightning transaction broadcast"),
                        Err(e) => tracing::debug!(%txid, "Lightning transaction not accepted: {e}"),
                    }
                }
                Action::FundingNeeded { temporary_channel_id, script_pubkey, amount } => {
                    match self.funding_transaction(&script_pubkey, amount) {
                        Ok(tx) => match node.funding_transaction_ready(temporary_channel_id, tx) {
                            Ok(more) => queue.extend(more),
                            Err(e) => tracing::warn!("funding refused by the channel: {e}"),
                        },
                        Err(e) => tracing::warn!("cannot fund the channel: {e}"),
                    }
                }
                Action::Event(event) => {
                    tracing::info!(?event, "Lightning");
                    if let NodeEvent::ChannelOpened { peer, .. } = &event {
                        self.send_channel_updates(node, peer);
                    }
                    let _ = self.events.send(event);
                }
                Action::Gossip(bytes) => self.gossip_to_all(&bytes, None),
                Action::TowerAppointment(appointment) => {
                    if self.tower_peer.is_some() {
                        lock(&self.unsent_appointments).push(appointment);
                        self.send_appointments();
                    }
                }
            }
        }
    }

    /// A signed transaction of the wallet paying `amount` to `script_pubkey` (not broadcast:
    /// the channel broadcasts it once the peer has signed our first commitment).
    fn funding_transaction(
        &self,
        script_pubkey: &[u8],
        amount: rnet_primitives::Amount,
    ) -> Result<rnet_primitives::Transaction, ServiceError> {
        let address = Address::from_script_pubkey(script_pubkey, self.node.network())
            .map_err(|e| ServiceError::Wallet(e.to_string()))?;
        let wallet = self.wallet()?;
        let mut entry = lock_entry(&wallet);
        let fee_rate = rnet_mempool::FeeRate::per_kb(1000);
        let created = entry
            .wallet
            .send(&[(address, amount)], fee_rate)
            .map_err(|e| ServiceError::Wallet(e.to_string()))?;
        Ok(created.tx)
    }

    /// Sends the appointments not yet sent to our tower, if it is connected.
    fn send_appointments(&self) {
        let Some((tower, _)) = &self.tower_peer else { return };
        let sender = lock(&self.peers).get(&tower.to_bytes()).cloned();
        let Some(sender) = sender else { return };
        for a in lock(&self.unsent_appointments).drain(..) {
            let mut bytes = TOWER_APPOINTMENT_TYPE.to_be_bytes().to_vec();
            bytes.extend_from_slice(&a.hint.0);
            bytes.extend_from_slice(a.blob.as_bytes());
            let _ = sender.send(bytes);
        }
    }

    /// An appointment from `peer` for our tower (ignored without `-watchtower`).
    fn handle_appointment(&self, peer: PublicKey, payload: &[u8]) {
        let Some(tower) = &self.tower else { return };
        let hint = payload.get(..16).and_then(|h| <[u8; 16]>::try_from(h).ok()).map(Hint);
        let blob = payload.get(16..).and_then(|b| EncryptedBlob::from_bytes(b).ok());
        let (Some(hint), Some(blob)) = (hint, blob) else {
            tracing::info!(peer = %hex::encode(peer.to_bytes()), "malformed tower appointment");
            return;
        };
        let appointment = Appointment { hint, blob };
        let height = self.node.reader.tip().map_or(0, |t| t.height);
        let session = SessionId(peer.to_bytes());
        let mut t = lock(tower);
        let _ = t.0.open_session(session);
        match t.0.add_appointment(&session, &appointment, height) {
            Ok(_) => {
                tracing::info!(peer = %hex::encode(peer.to_bytes()), "watchtower: appointment stored")
            }
            Err(e) => {
                tracing::info!(peer = %hex::encode(peer.to_bytes()), "watchtower: appointment refused: {e}")
            }
        }
    }

    /// The tower's scan of the blocks it has not seen (`-watchtower`): penalties found are
    /// broadcast.
    fn scan_for_breaches(&self) -> Result<(), ServiceError> {
        let Some(tower) = &self.tower else { return Ok(()) };
        let mut t = lock(tower);
        let reader = &self.node.reader;
        let store_err = |e: rnet_chain::ChainError| ServiceError::Store(e.to_string());
        let tip = reader.tip().map_err(store_err)?;
        let from = match t.1 {
            Some((h, hash)) if reader.block_hash_at(h).map_err(store_err)? == Some(hash) => h + 1,
            Some((h, _)) => h.saturating_sub(6),
            None => tip.height,
        };
        for height in from..=tip.height {
            let Some(hash) = reader.block_hash_at(height).map_err(store_err)? else { break };
            let Some(block) = reader.block(&hash).map_err(store_err)? else { break };
            match t.0.scan_block(height, &block.transactions) {
                Ok(scan) => {
                    for justice in scan.justice {
                        tracing::info!(breach = %justice.breach, "watchtower: a revoked commitment is on chain; broadcasting the penalty");
                        for tx in justice.transactions {
                            if let Err(e) = self.node.submit_transaction(tx) {
                                tracing::warn!("watchtower penalty not accepted: {e}");
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("watchtower scan failed: {e}"),
            }
            t.1 = Some((height, hash));
        }
        Ok(())
    }

    /// Sends our `channel_update`s for the channels with `peer` (gossip type 258).
    fn send_channel_updates(&self, node: &LightningNode, peer: &PublicKey) {
        let sender = lock(&self.peers).get(&peer.to_bytes()).cloned();
        let Some(sender) = sender else { return };
        for update in node.channel_updates(peer) {
            let mut bytes = CHANNEL_UPDATE_TYPE.to_be_bytes().to_vec();
            bytes.extend_from_slice(&update.encode());
            let _ = sender.send(bytes);
        }
    }

    /// Sends a framed gossip message to every connected peer but `except`.
    fn gossip_to_all(&self, bytes: &[u8], except: Option<&PublicKey>) {
        let except = except.map(PublicKey::to_bytes);
        for (peer, tx) in lock(&self.peers).iter() {
            if Some(*peer) != except {
                let _ = tx.send(bytes.to_vec());
            }
        }
    }

    /// A gossip message from `peer` (docs/lightning.md §5.9): a `channel_announcement` is
    /// checked against the unspent output its short channel id names on our active chain, at
    /// least `ANNOUNCEMENT_DEPTH` deep; a `channel_update` against the graph. What changes
    /// our graph is relayed to our other peers, so gossip floods once and stops.
    fn handle_gossip(&self, peer: PublicKey, msg_type: u16, payload: &[u8]) {
        let relay = match msg_type {
            CHANNEL_ANNOUNCEMENT_TYPE => self.handle_channel_announcement(payload),
            CHANNEL_UPDATE_TYPE => {
                ChannelUpdate::decode(payload).map_err(|e| e.to_string()).and_then(|u| {
                    self.with_node(|n| {
                        let outcome = n.apply_channel_update(&u);
                        let public = n.is_public_channel_update(&u);
                        Ok(((outcome, public), Vec::new()))
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|(outcome, public)| {
                        Ok(outcome.map_err(|e| e.to_string())? == UpdateOutcome::Applied && public)
                    })
                })
            }
            // Node announcements are not used yet (addresses come from `connect`).
            _ => Ok(false),
        };
        match relay {
            Ok(true) => self.gossip_to_all(&framed_gossip(msg_type, payload), Some(&peer)),
            Ok(false) => {}
            Err(e) => tracing::debug!(peer = %hex::encode(peer.to_bytes()), "gossip refused: {e}"),
        }
    }

    /// A `channel_announcement`: true if it is new to our graph.
    fn handle_channel_announcement(&self, payload: &[u8]) -> Result<bool, String> {
        let announcement = ChannelAnnouncement::decode(payload).map_err(|e| e.to_string())?;
        let scid = announcement.contents.short_channel_id;
        let reader = &self.node.reader;
        let tip = reader.tip().map_err(|e| e.to_string())?;
        let depth = tip.height.checked_sub(scid.block_height()).map(|d| d + 1).unwrap_or(0);
        if depth < ANNOUNCEMENT_DEPTH {
            return Err(format!("{scid}: funding output not {ANNOUNCEMENT_DEPTH} blocks deep"));
        }
        let missing = || format!("{scid}: no such output on the active chain");
        let hash = reader.block_hash_at(scid.block_height()).map_err(|e| e.to_string())?;
        let block = match hash {
            Some(h) => reader.block(&h).map_err(|e| e.to_string())?.ok_or_else(missing)?,
            None => return Err(missing()),
        };
        let tx = block.transactions.get(scid.tx_index() as usize).ok_or_else(missing)?;
        let outpoint = OutPoint::new(tx.txid(), u32::from(scid.output_index()));
        let coin = reader
            .coin(&outpoint)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{scid}: funding output spent"))?;
        let outcome = self
            .with_node(|n| {
                Ok((n.add_channel_announcement(&announcement, &coin.output), Vec::new()))
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(outcome == UpdateOutcome::Applied)
    }

    fn send(&self, to: &PublicKey, message: &Message) {
        let bytes = match message.encode() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot encode a Lightning message: {e}");
                return;
            }
        };
        match lock(&self.peers).get(&to.to_bytes()) {
            Some(tx) => {
                let _ = tx.send(bytes);
            }
            None => {
                tracing::debug!(peer = %hex::encode(to.to_bytes()), "peer not connected; message dropped")
            }
        }
    }

    /// Catches up with the chain (disconnecting blocks a reorganisation removed) and ticks the
    /// node's clock.
    fn tick(self: &Arc<Self>) -> Result<(), ServiceError> {
        self.scan_for_breaches()?;
        let tick = self.ticks.load(Ordering::Relaxed);
        if let Some((tower, addr)) = self.tower_peer {
            let connected = lock(&self.peers).contains_key(&tower.to_bytes());
            if !connected && tick % UPDATE_EVERY_TICKS == 0 {
                let s = self.clone();
                tokio::runtime::Handle::current().spawn(async move {
                    if let Err(e) = s.connect(tower, addr).await {
                        tracing::info!("cannot reach the watchtower: {e}");
                    }
                });
            } else if connected {
                self.send_appointments();
            }
        }
        if tick % RECONNECT_EVERY_TICKS == 0 {
            self.reconnect_channel_peers();
        }
        if tick % FEE_UPDATE_EVERY_TICKS == 0 {
            self.follow_chain_feerate();
        }
        let mut guard = lock(&self.ln);
        let Some(ln) = guard.as_mut() else { return Ok(()) };
        let reader = &self.node.reader;
        let store_err = |e: rnet_chain::ChainError| ServiceError::Store(e.to_string());
        let tip = reader.tip().map_err(store_err)?;
        // Blocks the active chain no longer holds.
        while let Some((height, hash)) = ln.last {
            if reader.block_hash_at(height).map_err(store_err)? == Some(hash) || height == 0 {
                break;
            }
            let actions = ln.node.block_disconnected(height)?;
            self.carry_out(&mut ln.node, actions);
            let parent = reader.header(&hash).map_err(store_err)?.map(|h| h.prev_block_hash);
            ln.last = parent.map(|p| (height - 1, p));
        }
        let from = match ln.last {
            Some((h, _)) => h + 1,
            None => ln.node.height().saturating_add(1),
        };
        for height in from..=tip.height {
            let Some(hash) = reader.block_hash_at(height).map_err(store_err)? else { break };
            let Some(block) = reader.block(&hash).map_err(store_err)? else { break };
            let actions = ln.node.block_connected(height, &block.transactions)?;
            self.carry_out(&mut ln.node, actions);
            ln.last = Some((height, hash));
        }
        let actions = ln.node.timer_tick(crate::node::now())?;
        self.carry_out(&mut ln.node, actions);
        if self.ticks.fetch_add(1, Ordering::Relaxed) % UPDATE_EVERY_TICKS == 0 {
            let peers: Vec<PublicKey> = ln.node.list_peers();
            for peer in peers {
                self.send_channel_updates(&ln.node, &peer);
            }
        }
        Ok(())
    }

    /// Dials `peer` at `addr` and runs the connection.
    pub async fn connect(
        self: &Arc<Self>,
        peer: PublicKey,
        addr: SocketAddr,
    ) -> Result<(), ServiceError> {
        if lock(&self.peers).contains_key(&peer.to_bytes()) {
            return Ok(());
        }
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| ServiceError::Connect(format!("{addr}: timed out")))?
            .map_err(|e| ServiceError::Connect(format!("{addr}: {e}")))?;
        let (r, w) = stream.into_split();
        let link = establish(r, w, &self.node_key, self.magic, Some(&peer))
            .await
            .map_err(|e| ServiceError::Connect(e.to_string()))?;
        if let Err(e) = lock(&self.address_book).insert(&peer, addr) {
            tracing::warn!("cannot record the Lightning peer's address: {e}");
        }
        self.run_link(link)
    }

    /// Gives the mempool's fee estimate (confirmation within six blocks) to the Lightning node,
    /// which updates the commitment fee rate of the channels it funded when it moved by more
    /// than a quarter (`LightningNode::update_feerate`). Without an estimate nothing changes.
    fn follow_chain_feerate(&self) {
        if lock(&self.ln).is_none() {
            return;
        }
        let Some(rate) = self.node.mempool().estimate_fee(FEE_TARGET_BLOCKS) else { return };
        let feerate = rnet_lightning::channel::FeeRate(rate.0);
        let updated = self.with_node(|n| {
            if n.config().feerate == feerate {
                return Ok(((), Vec::new()));
            }
            Ok(((), n.update_feerate(feerate)?))
        });
        if let Err(e) = updated {
            tracing::debug!("no Lightning fee update: {e}");
        }
    }

    /// Dials again, in the background, every peer we once dialled that has a channel with us
    /// still open and is not connected now.
    fn reconnect_channel_peers(self: &Arc<Self>) {
        let with_channels: std::collections::HashSet<[u8; 32]> = match lock(&self.ln).as_ref() {
            Some(ln) => ln
                .node
                .list_channels()
                .iter()
                .filter(|c| c.status != ChanStatus::Closed)
                .map(|c| c.peer.to_bytes())
                .collect(),
            None => return,
        };
        let book = lock(&self.address_book).peers();
        for (peer, addr) in book {
            let id = peer.to_bytes();
            if !with_channels.contains(&id) || lock(&self.peers).contains_key(&id) {
                continue;
            }
            if !lock(&self.dialing).insert(id) {
                continue;
            }
            let s = self.clone();
            tokio::runtime::Handle::current().spawn(async move {
                match s.connect(peer, addr).await {
                    Ok(()) => tracing::info!(%addr, "reconnected to a Lightning channel peer"),
                    Err(e) => tracing::debug!(%addr, "cannot reach a Lightning channel peer: {e}"),
                }
                lock(&s.dialing).remove(&id);
            });
        }
    }

    async fn accept(self: &Arc<Self>, stream: TcpStream) -> Result<(), ServiceError> {
        let (r, w) = stream.into_split();
        let link = tokio::time::timeout(
            Duration::from_secs(10),
            establish(r, w, &self.node_key, self.magic, None),
        )
        .await
        .map_err(|_| ServiceError::Connect("handshake timed out".into()))?
        .map_err(|e| ServiceError::Connect(e.to_string()))?;
        self.run_link(link)
    }

    /// Registers an authenticated connection and starts its writer and reader tasks.
    fn run_link<R, W>(self: &Arc<Self>, link: Link<R, W>) -> Result<(), ServiceError>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Link { peer, mut receiver, mut sender } = link;
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        lock(&self.peers).insert(peer.to_bytes(), tx);
        let connected =
            tokio::task::block_in_place(|| self.with_node(|n| Ok(((), n.peer_connected(peer)?))));
        match connected {
            Ok(()) => {}
            // A tower without a Lightning node of its own still serves its clients.
            Err(ServiceError::NoWallet) if self.tower.is_some() => {}
            Err(e) => {
                lock(&self.peers).remove(&peer.to_bytes());
                return Err(e);
            }
        }
        tracing::info!(peer = %hex::encode(peer.to_bytes()), "Lightning peer connected");
        if let Some(ln) = lock(&self.ln).as_ref() {
            self.send_channel_updates(&ln.node, &peer);
            // The public graph we know, as a newly connected peer's first gossip.
            if let Some(tx) = lock(&self.peers).get(&peer.to_bytes()) {
                for message in ln.node.gossip_snapshot() {
                    let _ = tx.send(message);
                }
            }
        }
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if sender.send(MSG_LIGHTNING, &bytes).await.is_err() {
                    break;
                }
            }
        });
        let s = self.clone();
        tokio::spawn(async move {
            let why = loop {
                let (command, payload, _) = match receiver.recv(MAX_MESSAGE_LEN + 1).await {
                    Ok(m) => m,
                    Err(e) => break e.to_string(),
                };
                if command != MSG_LIGHTNING {
                    break format!("unexpected transport command {command}");
                }
                let msg_type = message_type(&payload).unwrap_or(0);
                if msg_type == TOWER_APPOINTMENT_TYPE {
                    let s2 = s.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        s2.handle_appointment(peer, &payload[2..])
                    })
                    .await;
                    continue;
                }
                if (256..=258).contains(&msg_type) {
                    let s2 = s.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        s2.handle_gossip(peer, msg_type, &payload[2..])
                    })
                    .await;
                    continue;
                }
                let message = match Message::decode(&payload) {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(e) => break format!("malformed message: {e}"),
                };
                let s2 = s.clone();
                let handled = tokio::task::spawn_blocking(move || {
                    s2.with_node(|n| Ok(((), n.handle_message(peer, message)?)))
                })
                .await;
                if let Ok(Err(e)) = handled {
                    tracing::info!(peer = %hex::encode(peer.to_bytes()), "Lightning message refused: {e}");
                }
            };
            lock(&s.peers).remove(&peer.to_bytes());
            let s2 = s.clone();
            let _ = tokio::task::spawn_blocking(move || {
                s2.with_node(|n| Ok(((), n.peer_disconnected(peer)?)))
            })
            .await;
            tracing::info!(peer = %hex::encode(peer.to_bytes()), "Lightning peer disconnected: {why}");
        });
        Ok(())
    }
}

/// A gossip message framed for the wire: `u16 type ‖ payload`.
fn framed_gossip(msg_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = msg_type.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}
