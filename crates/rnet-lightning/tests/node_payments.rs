//! Whole nodes (`rnet_lightning::node::LightningNode`) run in-process against each other, LDK
//! style: a message bus delivers `SendMessage` actions (through the wire codec), a fake chain
//! mines broadcast transactions after checking them with `rnet_script::verify_transaction`
//! (`VerifyFlags::STANDARD`) and lock times against a UTXO map, and every node sees every block.
//! Funding transactions spend fake wallet coins.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rnet_crypto::{PublicKey, SigningKey};
use rnet_lightning::channel::MSAT_PER_RESONANCE;
use rnet_lightning::channel::sign::sign_input;
use rnet_lightning::invoice::{Invoice, InvoiceBuilder};
use rnet_lightning::node::{
    Action, ChanStatus, CloseReason, InvoiceStatus, LightningNode, NodeConfig, NodeEvent,
    PaymentId, PaymentStatus,
};
use rnet_lightning::store::{MemoryStore, Store, StoreError, StoreOp};
use rnet_lightning::watchtower::{
    Appointment, MemoryStore as TowerStore, SessionId, Tower, TowerConfig,
};
use rnet_lightning::wire::{ChannelId, Message};
use rnet_primitives::{
    Amount, BlockHash, Network, OutPoint, Transaction, TxIn, TxOut, Txid, Witness,
};
use rnet_script::templates::PlainKey;
use rnet_script::{VerifyFlags, verify_transaction};

const GENESIS: BlockHash = BlockHash([0x47; 32]);
const FUNDING: Amount = Amount(10_000_000);
const CAP_MSAT: u64 = FUNDING.0 * MSAT_PER_RESONANCE;
const WALLET_FEE: u64 = 2_000;
const PAY_MSAT: u64 = 5_000_000;
/// B's forwarding fee for `PAY_MSAT`: 1000 + ⌊5 000 000 · 100 / 10^6⌋.
const FEE_MSAT: u64 = 1_500;
const START_HEIGHT: u32 = 100;
const NOW: u64 = 1_700_000_000;

/// A store the test can copy at any instant (a "disk" snapshot).
#[derive(Clone, Default)]
struct SharedStore(Arc<Mutex<MemoryStore>>);

impl Store for SharedStore {
    fn write(&mut self, batch: Vec<StoreOp>) -> Result<(), StoreError> {
        self.0.lock().unwrap().write(batch)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.lock().unwrap().get(key)
    }
    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.0.lock().unwrap().scan(prefix)
    }
}

fn sk(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn sweep_script(i: usize) -> Vec<u8> {
    PlainKey::new(sk(100 + i as u8).public_key()).script_pubkey()
}

fn wallet_key(i: usize) -> SigningKey {
    sk(200 + i as u8)
}

fn config(i: usize) -> NodeConfig {
    NodeConfig::new(sk(1 + i as u8), GENESIS, Network::Regtest, sweep_script(i))
}

/// The fake chain: UTXOs with their confirmation heights, a mempool and the blocks.
#[derive(Default)]
struct Chain {
    height: u32,
    utxos: HashMap<OutPoint, (TxOut, u32)>,
    spent: BTreeSet<OutPoint>,
    mempool: Vec<Transaction>,
    blocks: BTreeMap<u32, Vec<Transaction>>,
    /// Every transaction mined, by id.
    mined: HashMap<Txid, Transaction>,
    rejected: Vec<(Txid, String)>,
}

impl Chain {
    fn submit(&mut self, tx: Transaction) {
        let txid = tx.txid();
        if self.mined.contains_key(&txid) || self.mempool.iter().any(|t| t.txid() == txid) {
            return;
        }
        self.mempool.push(tx);
    }

    /// Mines the next block with every mempool transaction that is valid now.
    fn mine(&mut self) -> (u32, Vec<Transaction>) {
        let h = self.height + 1;
        let mut block = Vec::new();
        loop {
            let mut progress = false;
            let pool = std::mem::take(&mut self.mempool);
            for tx in pool {
                if tx.inputs.iter().any(|i| self.spent.contains(&i.previous_output)) {
                    self.rejected.push((tx.txid(), "conflict".into()));
                    continue;
                }
                let Some(spent): Option<Vec<(TxOut, u32)>> =
                    tx.inputs.iter().map(|i| self.utxos.get(&i.previous_output).cloned()).collect()
                else {
                    self.mempool.push(tx);
                    continue;
                };
                let final_seq = tx.inputs.iter().all(|i| i.sequence == u32::MAX);
                if tx.lock_time != 0
                    && tx.lock_time < 500_000_000
                    && !final_seq
                    && tx.lock_time >= h
                {
                    self.mempool.push(tx);
                    continue;
                }
                let csv_ok = tx.version < 2
                    || tx.inputs.iter().zip(&spent).all(|(i, (_, ch))| {
                        i.sequence & (1 << 31) != 0 || h - ch >= i.sequence & 0xffff
                    });
                if !csv_ok {
                    self.mempool.push(tx);
                    continue;
                }
                let outs: Vec<TxOut> = spent.iter().map(|(o, _)| o.clone()).collect();
                if let Err(e) = verify_transaction(&GENESIS, &tx, &outs, VerifyFlags::STANDARD) {
                    self.rejected.push((tx.txid(), format!("{e:?}")));
                    continue;
                }
                let txid = tx.txid();
                for i in &tx.inputs {
                    self.utxos.remove(&i.previous_output);
                    self.spent.insert(i.previous_output);
                }
                for (n, o) in tx.outputs.iter().enumerate() {
                    self.utxos.insert(OutPoint::new(txid, n as u32), (o.clone(), h));
                }
                self.mined.insert(txid, tx.clone());
                block.push(tx);
                progress = true;
            }
            if !progress {
                break;
            }
        }
        self.height = h;
        self.blocks.insert(h, block.clone());
        (h, block)
    }

    /// Value of the unspent outputs paying `script`.
    fn balance(&self, script: &[u8]) -> u64 {
        self.utxos.values().filter(|(o, _)| o.script_pubkey == script).map(|(o, _)| o.value.0).sum()
    }

    /// Fee of a mined transaction (inputs from the mined set).
    fn fee(&self, tx: &Transaction, funding: &HashMap<OutPoint, TxOut>) -> u64 {
        let inp: u64 = tx
            .inputs
            .iter()
            .map(|i| {
                self.mined
                    .get(&i.previous_output.txid)
                    .map(|t| t.outputs[i.previous_output.vout as usize].value.0)
                    .or_else(|| funding.get(&i.previous_output).map(|o| o.value.0))
                    .expect("known input")
            })
            .sum();
        inp - tx.outputs.iter().map(|o| o.value.0).sum::<u64>()
    }
}

/// N nodes, a bus and a chain.
struct Net {
    nodes: Vec<Option<LightningNode>>,
    stores: Vec<SharedStore>,
    ids: Vec<PublicKey>,
    /// Connections (unordered pairs, smaller index first).
    links: BTreeSet<(usize, usize)>,
    bus: VecDeque<(usize, usize, Message)>,
    chain: Chain,
    events: Vec<(usize, NodeEvent)>,
    appointments: Vec<(usize, Appointment)>,
    /// Gossip each node asked to broadcast (`u16 type ‖ payload`).
    gossip: Vec<(usize, Vec<u8>)>,
    /// Heights each node has seen (an offline node catches up later).
    seen: Vec<u32>,
    /// Nodes that get no blocks and no messages.
    offline: BTreeSet<usize>,
    delivered: usize,
    /// Wallet coins promised to a funding transaction.
    reserved: BTreeSet<OutPoint>,
}

impl Net {
    fn new(n: usize) -> Self {
        let mut chain = Chain { height: START_HEIGHT, ..Chain::default() };
        for i in 0..n {
            for k in 0..4u8 {
                let op = OutPoint::new(Txid::from_bytes([i as u8 * 16 + k + 1; 32]), 0);
                let out = PlainKey::new(wallet_key(i).public_key())
                    .output(Amount(FUNDING.0 + WALLET_FEE));
                chain.utxos.insert(op, (out, 1));
            }
        }
        let mut nodes = Vec::new();
        let mut stores = Vec::new();
        let mut ids = Vec::new();
        for i in 0..n {
            let store = SharedStore::default();
            let mut node = LightningNode::new(config(i), Box::new(store.clone())).unwrap();
            node.timer_tick(NOW).unwrap();
            node.block_connected(START_HEIGHT, &[]).unwrap();
            ids.push(node.node_id());
            nodes.push(Some(node));
            stores.push(store);
        }
        Self {
            nodes,
            stores,
            ids,
            links: BTreeSet::new(),
            bus: VecDeque::new(),
            chain,
            events: Vec::new(),
            appointments: Vec::new(),
            gossip: Vec::new(),
            seen: vec![START_HEIGHT; n],
            offline: BTreeSet::new(),
            delivered: 0,
            reserved: BTreeSet::new(),
        }
    }

    fn node(&mut self, i: usize) -> &mut LightningNode {
        self.nodes[i].as_mut().expect("node is running")
    }

    fn index_of(&self, id: &PublicKey) -> usize {
        self.ids.iter().position(|k| k == id).expect("known node")
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    fn process(&mut self, from: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SendMessage { to, message } => {
                    let to = self.index_of(&to);
                    assert!(self.linked(from, to), "message to a peer that is not connected");
                    let bytes = message.encode().unwrap();
                    let decoded = Message::decode(&bytes).unwrap().unwrap();
                    assert_eq!(decoded, *message, "wire round trip");
                    self.bus.push_back((from, to, decoded));
                }
                Action::Broadcast(tx) => self.chain.submit(tx),
                Action::FundingNeeded { temporary_channel_id, script_pubkey, amount } => {
                    let tx = self.fund(from, script_pubkey, amount);
                    let acts = self
                        .node(from)
                        .funding_transaction_ready(temporary_channel_id, tx)
                        .unwrap();
                    self.process(from, acts);
                }
                Action::Event(e) => self.events.push((from, e)),
                Action::TowerAppointment(a) => self.appointments.push((from, a)),
                Action::Gossip(g) => self.gossip.push((from, g)),
            }
        }
    }

    /// The fake wallet: spends one of the node's coins to the funding output.
    fn fund(&mut self, i: usize, script_pubkey: Vec<u8>, amount: Amount) -> Transaction {
        let wallet = PlainKey::new(wallet_key(i).public_key());
        let (op, coin) = self
            .chain
            .utxos
            .iter()
            .filter(|(op, (o, _))| {
                o.script_pubkey == wallet.script_pubkey() && !self.reserved.contains(*op)
            })
            .map(|(a, (o, _))| (*a, o.clone()))
            .min_by_key(|(a, _)| *a)
            .expect("a wallet coin");
        self.reserved.insert(op);
        assert_eq!(coin.value.0, amount.0 + WALLET_FEE);
        let mut tx = Transaction {
            version: 2,
            inputs: vec![TxIn {
                previous_output: op,
                script_sig: vec![],
                sequence: u32::MAX,
                witness: Witness::new(),
            }],
            outputs: vec![TxOut { value: amount, script_pubkey }],
            lock_time: 0,
        };
        let sig =
            sign_input(&GENESIS, &tx, &[coin], 0, &wallet.script_code(), &wallet_key(i)).unwrap();
        tx.inputs[0].witness = wallet.witness(sig);
        tx
    }

    fn connect(&mut self, a: usize, b: usize) {
        self.links.insert((a.min(b), a.max(b)));
        let (ia, ib) = (self.ids[a], self.ids[b]);
        let acts = self.node(a).peer_connected(ib).unwrap();
        self.process(a, acts);
        let acts = self.node(b).peer_connected(ia).unwrap();
        self.process(b, acts);
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        self.links.remove(&(a.min(b), a.max(b)));
        self.bus.retain(|(f, t, _)| !((*f == a && *t == b) || (*f == b && *t == a)));
        let (ia, ib) = (self.ids[a], self.ids[b]);
        if self.nodes[a].is_some() {
            let acts = self.node(a).peer_disconnected(ib).unwrap();
            self.process(a, acts);
        }
        if self.nodes[b].is_some() {
            let acts = self.node(b).peer_disconnected(ia).unwrap();
            self.process(b, acts);
        }
    }

    /// Delivers one message; false when the bus is empty.
    fn step(&mut self) -> bool {
        let Some((from, to, msg)) = self.bus.pop_front() else { return false };
        if !self.linked(from, to) || self.offline.contains(&to) {
            return true;
        }
        self.delivered += 1;
        let id = self.ids[from];
        let acts = self.node(to).handle_message(id, msg).unwrap();
        self.process(to, acts);
        true
    }

    fn deliver_all(&mut self) {
        let mut n = 0;
        while self.step() {
            n += 1;
            assert!(n < 10_000, "message loop");
        }
    }

    /// Mines a block and gives it to every online node.
    fn mine(&mut self) -> Vec<Transaction> {
        let (h, block) = self.chain.mine();
        for i in 0..self.nodes.len() {
            if self.offline.contains(&i) || self.nodes[i].is_none() {
                continue;
            }
            self.feed(i, h);
        }
        self.deliver_all();
        block
    }

    fn feed(&mut self, i: usize, upto: u32) {
        while self.seen[i] < upto {
            let h = self.seen[i] + 1;
            let txs = self.chain.blocks.get(&h).cloned().unwrap_or_default();
            let acts = self.node(i).block_connected(h, &txs).unwrap();
            self.seen[i] = h;
            self.process(i, acts);
        }
    }

    fn mine_n(&mut self, n: usize) {
        for _ in 0..n {
            self.mine();
        }
    }

    /// Opens a channel from `a` to `b` (confirmed by the blocks mined next).
    fn open(&mut self, a: usize, b: usize) {
        self.open_with(a, b, false);
    }

    /// Opens a channel, public (`announce`) or private.
    fn open_with(&mut self, a: usize, b: usize, announce: bool) {
        let ib = self.ids[b];
        let (_, acts) = self.node(a).open_channel(ib, FUNDING, 0, announce).unwrap();
        self.process(a, acts);
        self.deliver_all();
    }

    fn channel(&mut self, a: usize, b: usize) -> rnet_lightning::node::ChannelDetails {
        let ib = self.ids[b];
        self.node(a).list_channels().into_iter().rfind(|c| c.peer == ib).expect("channel")
    }

    fn events_of(&self, i: usize) -> Vec<NodeEvent> {
        self.events.iter().filter(|(n, _)| *n == i).map(|(_, e)| e.clone()).collect()
    }
}

/// A — B — C with two confirmed channels (A funds A–B, B funds B–C); A knows B's policy on
/// B–C (what gossip would tell it).
fn line() -> (Net, ChannelId, ChannelId) {
    let mut net = Net::new(3);
    net.connect(0, 1);
    net.connect(1, 2);
    net.open(0, 1);
    net.open(1, 2);
    net.mine_n(3);
    let ab = net.channel(0, 1).channel_id;
    let bc = net.channel(1, 2).channel_id;
    teach_graph(&mut net);
    (net, ab, bc)
}

fn teach_graph(net: &mut Net) {
    let scid = net.channel(1, 2).short_channel_id.expect("B–C confirmed");
    let policy = net.node(1).forwarding_policy(CAP_MSAT);
    let (b, c) = (net.ids[1], net.ids[2]);
    net.node(0)
        .graph_mut()
        .add_private_channel(b, c, scid, policy, Some(CAP_MSAT), NOW as u32)
        .unwrap();
}

fn pay(net: &mut Net, invoice: &Invoice) -> PaymentId {
    let (id, acts) = net.node(0).pay_invoice(invoice).unwrap();
    net.process(0, acts);
    id
}

fn payment_status(net: &mut Net, id: PaymentId) -> PaymentStatus {
    net.node(0).list_payments().into_iter().find(|p| p.id == id).expect("payment").status
}

/// What a party could claim from its holder commitment: `to_local` and `to_remote` are the
/// balances (the funder's minus the base fee) floored to resonance, and outputs plus fee are
/// the channel; the commitment is valid against the funding output.
fn check_claims(net: &mut Net, i: usize, peer: usize) {
    let details = net.channel(i, peer);
    let holder = net.node(i).holder_commitment(details.channel_id).unwrap();
    let c = &holder.commitment;
    let value = |idx: Option<u32>| idx.map_or(0, |k| holder.tx.outputs[k as usize].value.0);
    let to_local = value(c.to_local().map(|(k, _)| k));
    let to_remote = value(c.to_remote());
    let base = c.fee.base_fee_paid_msat;
    let (l, r) = if details.is_funder {
        (details.local_balance_msat - base, details.remote_balance_msat)
    } else {
        (details.local_balance_msat, details.remote_balance_msat - base)
    };
    let dust = 453;
    assert_eq!(to_local, if l / 1000 >= dust { l / 1000 } else { 0 });
    assert_eq!(to_remote, if r / 1000 >= dust { r / 1000 } else { 0 });
    let outs: u64 = holder.tx.outputs.iter().map(|o| o.value.0).sum();
    assert_eq!(outs + c.fee.total.0, FUNDING.0, "outputs and fee are the channel");
    let funding = details.funding_outpoint.unwrap();
    let funding_out = net.chain.mined[&funding.txid].outputs[funding.vout as usize].clone();
    verify_transaction(&GENESIS, &holder.tx, &[funding_out], VerifyFlags::STANDARD)
        .expect("holder commitment is valid");
}

/// Both views of a channel agree, nothing is pending and value is conserved.
fn check_agree(net: &mut Net, a: usize, b: usize) -> u64 {
    let x = net.channel(a, b);
    let y = net.channel(b, a);
    assert_eq!(x.local_balance_msat, y.remote_balance_msat);
    assert_eq!(x.remote_balance_msat, y.local_balance_msat);
    assert_eq!(x.local_balance_msat + x.remote_balance_msat, CAP_MSAT);
    assert_eq!((x.pending_htlcs, y.pending_htlcs), (0, 0));
    x.local_balance_msat
}

#[test]
fn s1_payment_through_a_forwarding_node_moves_exact_balances() {
    let (mut net, _ab, _bc) = line();
    for i in 0..3 {
        let opened = net
            .events_of(i)
            .iter()
            .filter(|e| matches!(e, NodeEvent::ChannelOpened { .. }))
            .count();
        assert_eq!(opened, if i == 1 { 2 } else { 1 }, "node {i} channels opened");
    }
    let invoice = net.node(2).create_invoice(PAY_MSAT, "coffee", 3600).unwrap();
    let route = net.node(0).get_route(&invoice).unwrap();
    assert_eq!(route.total_amount_msat, PAY_MSAT + FEE_MSAT);
    let id = pay(&mut net, &invoice);
    net.deliver_all();

    let hash = *invoice.payment_hash();
    let sent = net.events_of(0).into_iter().find_map(|e| match e {
        NodeEvent::PaymentSent { id: i, preimage, fee_msat, payment_hash } if i == id => {
            Some((preimage, fee_msat, payment_hash))
        }
        _ => None,
    });
    let (preimage, fee, h) = sent.expect("payment sent");
    assert_eq!(h, hash);
    assert!(invoice.is_preimage(&preimage));
    assert_eq!(fee, FEE_MSAT);
    assert!(net.events_of(1).contains(&NodeEvent::HtlcForwarded {
        incoming: net.channel(1, 0).channel_id,
        outgoing: net.channel(1, 2).channel_id,
        fee_msat: FEE_MSAT
    }));
    assert!(
        net.events_of(2)
            .contains(&NodeEvent::PaymentReceived { payment_hash: hash, amount_msat: PAY_MSAT })
    );
    assert_eq!(check_agree(&mut net, 0, 1), CAP_MSAT - PAY_MSAT - FEE_MSAT);
    assert_eq!(check_agree(&mut net, 1, 2), CAP_MSAT - PAY_MSAT);
    assert_eq!(net.channel(2, 1).local_balance_msat, PAY_MSAT);
    assert_eq!(
        net.node(2).list_invoices()[0].status,
        InvoiceStatus::Paid(PAY_MSAT),
        "C's invoice is paid"
    );
    assert!(matches!(
        payment_status(&mut net, id),
        PaymentStatus::Succeeded { fee_msat: FEE_MSAT, .. }
    ));
    for (i, p) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
        check_claims(&mut net, i, p);
    }
}

#[test]
fn s2a_unknown_invoice_is_refused_and_the_payer_is_refunded_off_chain() {
    let (mut net, _ab, _bc) = line();
    // An invoice signed by C that C's node does not hold.
    let invoice = InvoiceBuilder::new(Network::Regtest)
        .amount_milli_resonance(PAY_MSAT)
        .timestamp(NOW)
        .payment_preimage(&[9; 32])
        .payment_secret([8; 32])
        .description("unknown")
        .sign(&sk(3))
        .unwrap();
    let id = pay(&mut net, &invoice);
    net.deliver_all();
    match payment_status(&mut net, id) {
        PaymentStatus::Failed { reason } => assert!(reason.contains("payee refused"), "{reason}"),
        other => panic!("payment not failed: {other:?}"),
    }
    assert!(net.events_of(0).iter().any(|e| matches!(e, NodeEvent::PaymentFailed { .. })));
    assert_eq!(check_agree(&mut net, 0, 1), CAP_MSAT);
    assert_eq!(check_agree(&mut net, 1, 2), CAP_MSAT);
    assert!(!net.events_of(1).iter().any(|e| matches!(e, NodeEvent::HtlcForwarded { .. })));
}

/// Fees of every mined transaction descending from `root` (a funding txid), and the set.
fn descendant_fees(net: &Net, root: Txid) -> u64 {
    let mut set = BTreeSet::from([root]);
    let mut fees = 0;
    let funding = HashMap::new();
    for block in net.chain.blocks.values() {
        for tx in block {
            if tx.inputs.iter().any(|i| set.contains(&i.previous_output.txid)) {
                set.insert(tx.txid());
                fees += net.chain.fee(tx, &funding);
            }
        }
    }
    fees
}

#[test]
fn s2b_unresponsive_forwarder_makes_the_payer_time_out_on_chain() {
    let (mut net, ab, _bc) = line();
    let invoice = net.node(2).create_invoice(PAY_MSAT, "held", 3600).unwrap();
    let id = pay(&mut net, &invoice);
    // Run until B forwards to C, then B goes silent.
    while !net
        .bus
        .iter()
        .any(|(f, t, m)| *f == 1 && *t == 2 && matches!(m, Message::UpdateAddHtlc(_)))
    {
        assert!(net.step(), "B forwards");
    }
    net.offline.insert(1);
    net.disconnect(0, 1);
    net.disconnect(1, 2);
    let funding = net.channel(0, 1).funding_outpoint.unwrap();
    let mut blocks = 0;
    while net.channel(0, 1).status == ChanStatus::Open {
        net.mine();
        blocks += 1;
        assert!(blocks < 100, "A force-closes before the HTLC expires");
    }
    assert!(matches!(payment_status(&mut net, id), PaymentStatus::Pending));
    while !matches!(payment_status(&mut net, id), PaymentStatus::Failed { .. }) {
        net.mine();
        blocks += 1;
        assert!(blocks < 200, "the HTLC times out on chain");
    }
    assert!(net.events_of(0).iter().any(|e| matches!(
        e,
        NodeEvent::ChannelClosed { channel_id, reason: CloseReason::LocalCommitment, .. } if *channel_id == ab
    )));
    // to_local and the HTLC-timeout output come back after A's to_self_delay.
    net.mine_n(150);
    assert!(net.chain.rejected.is_empty(), "rejected: {:?}", net.chain.rejected);
    let fees = descendant_fees(&net, funding.txid);
    assert_eq!(
        net.chain.balance(&sweep_script(0)),
        FUNDING.0 - fees,
        "A recovers everything but fees"
    );
    assert!(fees < 10_000, "fees {fees}");
}

#[test]
fn s2c_silent_payee_makes_the_forwarder_time_out_on_chain_and_fail_upstream() {
    let (mut net, _ab, bc) = line();
    let invoice = net.node(2).create_invoice(PAY_MSAT, "held", 3600).unwrap();
    let id = pay(&mut net, &invoice);
    // C goes silent instead of settling (its fulfil never leaves).
    loop {
        let fulfil =
            net.bus.iter().any(|(f, _, m)| *f == 2 && matches!(m, Message::UpdateFulfillHtlc(_)));
        if fulfil {
            break;
        }
        assert!(net.step(), "C receives the HTLC");
    }
    net.offline.insert(2);
    net.disconnect(1, 2);
    let mut blocks = 0;
    while !matches!(payment_status(&mut net, id), PaymentStatus::Failed { .. }) {
        net.mine();
        blocks += 1;
        assert!(blocks < 60, "B resolves the HTLC on chain and fails it back");
    }
    assert!(net.events_of(1).iter().any(|e| matches!(
        e,
        NodeEvent::ChannelClosed { channel_id, reason: CloseReason::LocalCommitment, .. }
            if *channel_id == bc
    )));
    // A–B stays open and A is refunded off chain.
    assert_eq!(net.channel(0, 1).status, ChanStatus::Open);
    assert_eq!(check_agree(&mut net, 0, 1), CAP_MSAT);
    assert!(net.chain.rejected.is_empty(), "rejected: {:?}", net.chain.rejected);
}

#[test]
fn s2d_preimage_claimed_on_chain_is_passed_upstream() {
    let (mut net, ab, bc) = line();
    let invoice = net.node(2).create_invoice(PAY_MSAT, "on chain", 3600).unwrap();
    let id = pay(&mut net, &invoice);
    // C fulfils, but the connection to B drops before B hears of it.
    loop {
        let fulfil =
            net.bus.iter().any(|(f, _, m)| *f == 2 && matches!(m, Message::UpdateFulfillHtlc(_)));
        if fulfil {
            break;
        }
        assert!(net.step(), "C receives the HTLC");
    }
    net.disconnect(1, 2);
    // B closes B–C with its commitment (HTLC still pending on it).
    let acts = net.node(1).force_close(bc).unwrap();
    net.process(1, acts);
    net.mine(); // B's commitment
    assert!(net.events_of(2).iter().any(|e| matches!(
        e,
        NodeEvent::ChannelClosed { reason: CloseReason::RemoteCommitment, .. }
    )));
    net.mine(); // C's claims: its HTLC with the preimage
    assert!(net.chain.rejected.is_empty(), "rejected: {:?}", net.chain.rejected);
    // B learned the preimage from C's witness and settled A–B off chain.
    assert!(matches!(payment_status(&mut net, id), PaymentStatus::Succeeded { .. }));
    assert_eq!(check_agree(&mut net, 0, 1), CAP_MSAT - PAY_MSAT - FEE_MSAT);
    assert!(net.events_of(1).iter().any(|e| matches!(
        e,
        NodeEvent::HtlcForwarded { incoming, fee_msat: FEE_MSAT, .. } if *incoming == ab
    )));
    // C's sweep script holds the HTLC's value minus the claim's fee.
    let claim = net.chain.blocks[&net.chain.height]
        .iter()
        .find(|t| t.outputs.iter().any(|o| o.script_pubkey == sweep_script(2)))
        .expect("C's claim")
        .clone();
    let fee = net.chain.fee(&claim, &HashMap::new());
    assert_eq!(net.chain.balance(&sweep_script(2)), PAY_MSAT / 1000 - fee);
    // B's own balance comes back after its delay.
    net.mine_n(150);
    let funding = net.channel(1, 2).funding_outpoint.unwrap();
    let fees = descendant_fees(&net, funding.txid);
    assert_eq!(
        net.chain.balance(&sweep_script(1)) + net.chain.balance(&sweep_script(2)),
        FUNDING.0 - fees,
        "B and C recover the whole channel but fees"
    );
    assert!(net.chain.rejected.is_empty(), "rejected: {:?}", net.chain.rejected);
}

#[test]
fn s2e_preimage_learned_after_the_incoming_channel_closed_is_claimed_on_chain() {
    let (mut net, _ab, _bc) = line();
    let invoice = net.node(2).create_invoice(PAY_MSAT, "late", 3600).unwrap();
    let id = pay(&mut net, &invoice);
    // Hold C's fulfil (and the commitment after it) back while A closes A–B on chain.
    while !net.bus.iter().any(|(f, _, m)| *f == 2 && matches!(m, Message::UpdateFulfillHtlc(_))) {
        assert!(net.step(), "C receives the HTLC");
    }
    let held: Vec<_> = net.bus.iter().filter(|(f, _, _)| *f == 2).cloned().collect();
    net.bus.retain(|(f, _, _)| *f != 2);
    let ab = net.channel(0, 1).channel_id;
    let acts = net.node(0).force_close(ab).unwrap();
    net.process(0, acts);
    net.disconnect(0, 1);
    net.mine(); // A's commitment, with the HTLC to B on it
    // Now B learns the preimage and must claim the HTLC from A's commitment.
    net.bus.extend(held);
    net.deliver_all();
    net.mine(); // B's claim
    assert!(net.chain.rejected.is_empty(), "rejected: {:?}", net.chain.rejected);
    let claim = net.chain.blocks[&net.chain.height]
        .iter()
        .find(|t| t.outputs.iter().any(|o| o.script_pubkey == sweep_script(1)))
        .expect("B's claim")
        .clone();
    let fee = net.chain.fee(&claim, &HashMap::new());
    assert_eq!(net.chain.balance(&sweep_script(1)), (PAY_MSAT + FEE_MSAT) / 1000 - fee);
    // A reads the preimage from B's witness: its payment succeeded.
    match payment_status(&mut net, id) {
        PaymentStatus::Succeeded { preimage, .. } => assert!(invoice.is_preimage(&preimage)),
        other => panic!("payment {other:?}"),
    }
}

/// Two payments so B holds a balance; returns B's commitment between them (revoked after).
fn revoked_state(net: &mut Net, ab: ChannelId) -> Transaction {
    let first = net.node(2).create_invoice(PAY_MSAT, "one", 3600).unwrap();
    pay(net, &first);
    net.deliver_all();
    let revoked = net.node(1).holder_commitment(ab).unwrap().tx;
    let second = net.node(2).create_invoice(PAY_MSAT, "two", 3600).unwrap();
    pay(net, &second);
    net.deliver_all();
    assert_eq!(check_agree(net, 0, 1), CAP_MSAT - 2 * (PAY_MSAT + FEE_MSAT));
    revoked
}

#[test]
fn s3a_revoked_commitment_is_punished_by_the_node() {
    let (mut net, ab, _bc) = line();
    let revoked = revoked_state(&mut net, ab);
    let funding = net.channel(0, 1).funding_outpoint.unwrap();
    net.chain.submit(revoked.clone());
    net.mine();
    assert!(net.chain.mined.contains_key(&revoked.txid()));
    net.mine();
    assert!(net.events_of(0).iter().any(|e| matches!(
        e,
        NodeEvent::ChannelClosed { reason: CloseReason::RevokedCommitment, .. }
    )));
    assert!(net.chain.rejected.is_empty(), "rejected: {:?}", net.chain.rejected);
    // Every output of the revoked commitment went to A.
    for n in 0..revoked.outputs.len() {
        assert!(
            net.chain.spent.contains(&OutPoint::new(revoked.txid(), n as u32)),
            "output {n} swept"
        );
    }
    let fees = descendant_fees(&net, funding.txid);
    assert_eq!(net.chain.balance(&sweep_script(0)), FUNDING.0 - fees, "A takes the whole channel");
    assert_eq!(net.chain.balance(&sweep_script(1)), 0);
}

#[test]
fn s3b_revoked_commitment_is_punished_by_a_watchtower_while_the_node_is_offline() {
    let (mut net, ab, _bc) = line();
    let revoked = revoked_state(&mut net, ab);
    let funding = net.channel(0, 1).funding_outpoint.unwrap();
    let mut tower = Tower::new(TowerStore::new(), GENESIS, TowerConfig::default());
    let session = SessionId([7; 32]);
    tower.open_session(session).unwrap();
    let apps: Vec<Appointment> =
        net.appointments.iter().filter(|(n, _)| *n == 0).map(|(_, a)| a.clone()).collect();
    assert!(apps.len() >= 2, "one appointment per revoked state");
    for a in &apps {
        tower.add_appointment(&session, a, net.chain.height).unwrap();
    }
    // A goes offline; B cheats.
    net.disconnect(0, 1);
    net.offline.insert(0);
    net.chain.submit(revoked.clone());
    let block = net.mine();
    assert!(block.iter().any(|t| t.txid() == revoked.txid()));
    let scan = tower.scan_block(net.chain.height, &block).unwrap();
    assert_eq!(scan.justice.len(), 1);
    for tx in &scan.justice[0].transactions {
        net.chain.submit(tx.clone());
    }
    net.mine();
    assert!(net.chain.rejected.is_empty(), "rejected: {:?}", net.chain.rejected);
    // The tower swept B's to_local to A's address; A's own to_remote waits for A.
    let b_to_local: u64 = revoked
        .outputs
        .iter()
        // Script-hash outputs (B's revocable to_local); A's to_remote is a key output.
        .filter(|o| o.script_pubkey.first() == Some(&0x00))
        .map(|o| o.value.0)
        .sum();
    let justice_fee: u64 =
        scan.justice[0].transactions.iter().map(|t| net.chain.fee(t, &HashMap::new())).sum();
    assert_eq!(net.chain.balance(&sweep_script(0)), b_to_local - justice_fee);
    // A comes back, sees the breach and sweeps its own output too.
    net.offline.remove(&0);
    let h = net.chain.height;
    net.feed(0, h);
    net.mine();
    assert!(
        net.chain.rejected.iter().all(|(_, why)| why == "conflict"),
        "{:?}",
        net.chain.rejected
    );
    let fees = descendant_fees(&net, funding.txid);
    assert_eq!(net.chain.balance(&sweep_script(0)), FUNDING.0 - fees, "A takes the whole channel");
}

#[test]
fn s4_cooperative_close_pays_both_sweep_scripts() {
    let (mut net, ab, _bc) = line();
    let invoice = net.node(2).create_invoice(PAY_MSAT, "coffee", 3600).unwrap();
    pay(&mut net, &invoice);
    net.deliver_all();
    let acts = net.node(0).close_channel(ab).unwrap();
    net.process(0, acts);
    net.deliver_all();
    let block = net.mine();
    let close = block
        .iter()
        .find(|t| t.inputs[0].previous_output == net.channel(0, 1).funding_outpoint.unwrap());
    let close = close.expect("closing transaction mined").clone();
    for i in [0, 1] {
        assert!(net.events_of(i).iter().any(|e| matches!(
            e,
            NodeEvent::ChannelClosed { reason: CloseReason::Cooperative, .. }
        )));
        assert_eq!(net.channel(i, 1 - i).status, ChanStatus::Closed);
    }
    let a = net.chain.balance(&sweep_script(0));
    let b = net.chain.balance(&sweep_script(1));
    let fee = FUNDING.0 - a - b;
    assert_eq!(close.outputs.len(), 2);
    assert_eq!(b, (PAY_MSAT + FEE_MSAT) / 1000, "B gets its balance floored");
    // A pays the negotiated fee; the sub-resonance remainders are fee too.
    let a_floor = (CAP_MSAT - PAY_MSAT - FEE_MSAT) / 1000;
    assert!(a < a_floor && a_floor - a < fee + 1 && fee < 1_000, "a {a} fee {fee}");
    assert!(net.chain.rejected.is_empty());
}

/// Kills `victim` after `kill_at` message deliveries of a payment A → B → C, rebuilds it with
/// `LightningNode::load` from its store as it was at that instant (messages in flight to and
/// from it are lost), reconnects and runs to the end. Returns whether the payment succeeded,
/// or `None` when it had finished before `kill_at`.
fn kill_and_restart(victim: usize, kill_at: usize) -> Option<bool> {
    let (mut net, _ab, _bc) = line();
    let invoice = net.node(2).create_invoice(PAY_MSAT, "crash", 3600).unwrap();
    let id = pay(&mut net, &invoice);
    let start = net.delivered;
    while net.delivered - start < kill_at {
        if !net.step() {
            return None;
        }
    }
    let snapshot = net.stores[victim].0.lock().unwrap().clone();
    net.nodes[victim] = None;
    let peers: Vec<usize> = [(0, 1), (1, 2)]
        .iter()
        .filter(|(a, b)| *a == victim || *b == victim)
        .map(|(a, b)| if *a == victim { *b } else { *a })
        .collect();
    for p in &peers {
        net.disconnect(victim, *p);
    }
    let store = SharedStore(Arc::new(Mutex::new(snapshot)));
    let node = LightningNode::load(config(victim), Box::new(store.clone())).unwrap();
    net.nodes[victim] = Some(node);
    net.stores[victim] = store;
    if victim == 0 {
        teach_graph(&mut net);
    }
    for p in &peers {
        net.connect(victim, *p);
    }
    net.deliver_all();
    let acts = net.node(0).timer_tick(NOW + 1).unwrap();
    net.process(0, acts);
    net.deliver_all();

    let a = check_agree(&mut net, 0, 1);
    let b = check_agree(&mut net, 1, 2);
    let paid = net.node(2).list_invoices()[0].status;
    let status = payment_status(&mut net, id);
    let succeeded = matches!(status, PaymentStatus::Succeeded { .. });
    match status {
        PaymentStatus::Succeeded { preimage, fee_msat } => {
            assert!(invoice.is_preimage(&preimage));
            assert_eq!(fee_msat, FEE_MSAT);
            assert_eq!(a, CAP_MSAT - PAY_MSAT - FEE_MSAT, "victim {victim} step {kill_at}");
            assert_eq!(b, CAP_MSAT - PAY_MSAT);
            assert_eq!(paid, InvoiceStatus::Paid(PAY_MSAT));
        }
        PaymentStatus::Failed { .. } => {
            assert_eq!(a, CAP_MSAT, "victim {victim} step {kill_at}");
            assert_eq!(b, CAP_MSAT);
            assert_eq!(paid, InvoiceStatus::Unpaid);
        }
        PaymentStatus::Pending => panic!("victim {victim} step {kill_at}: payment still pending"),
    }
    for (i, p) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
        check_claims(&mut net, i, p);
    }
    Some(succeeded)
}

#[test]
fn s5_a_node_killed_at_any_step_of_a_payment_restarts_from_its_store() {
    for victim in 0..3 {
        let mut step = 0;
        let (mut ok, mut failed) = (0, 0);
        while let Some(succeeded) = kill_and_restart(victim, step) {
            step += 1;
            if succeeded {
                ok += 1;
            } else {
                failed += 1;
            }
        }
        println!("victim {victim}: {step} kill points, {ok} settled, {failed} failed back");
        assert!(step > 15, "the payment takes more than 15 messages ({step})");
        assert!(ok > 0);
    }
}

/// Payments per second over the two-hop route, in process (a measurement, not a test).
#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn measure_payments_per_second() {
    let (mut net, _ab, _bc) = line();
    let n: usize = std::env::var("PAYMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let invoices: Vec<Invoice> = (0..n)
        .map(|k| net.node(2).create_invoice(10_000, &format!("m{k}"), 3600).unwrap())
        .collect();
    let start = std::time::Instant::now();
    for inv in &invoices {
        pay(&mut net, inv);
        net.deliver_all();
    }
    let secs = start.elapsed().as_secs_f64();
    let sent =
        net.events_of(0).iter().filter(|e| matches!(e, NodeEvent::PaymentSent { .. })).count();
    assert_eq!(sent, n);
    println!("{n} payments A → B → C in {secs:.3} s: {:.1} payments/s", n as f64 / secs);
}

/// A public channel: at ANNOUNCEMENT_DEPTH confirmations both ends exchange
/// `announcement_signatures`, put the four-signature `channel_announcement` in their graphs and
/// gossip it with their `channel_update`s; a third node that verifies that gossip against the
/// funding output can route through the channel. A private channel is never announced.
#[test]
fn a_public_channel_is_announced_at_depth_and_routable_from_gossip() {
    use rnet_lightning::gossip::{
        CHANNEL_ANNOUNCEMENT_TYPE, CHANNEL_UPDATE_TYPE, ChannelAnnouncement, ChannelUpdate,
    };
    use rnet_lightning::node::ANNOUNCEMENT_DEPTH;
    let mut net = Net::new(3);
    net.connect(0, 1);
    net.connect(1, 2);
    net.open_with(0, 1, false);
    net.open_with(1, 2, true);
    net.mine_n(3);
    assert_eq!(net.channel(1, 2).phase, rnet_lightning::state::Phase::Normal);
    assert!(net.gossip.is_empty(), "nothing is announced before {ANNOUNCEMENT_DEPTH} blocks");
    net.mine_n(ANNOUNCEMENT_DEPTH as usize - 3);
    let scid = net.channel(1, 2).short_channel_id.unwrap();
    for i in [1, 2] {
        let info = net.node(i).graph().channel(scid).cloned().expect("in the graph");
        assert!(info.announcement.is_some(), "node {i} holds the announcement");
    }
    let by = |net: &Net, t: u16| -> Vec<(usize, Vec<u8>)> {
        net.gossip.iter().filter(|(_, g)| g[..2] == t.to_be_bytes()).cloned().collect()
    };
    let announcements = by(&net, CHANNEL_ANNOUNCEMENT_TYPE);
    assert_eq!(announcements.iter().map(|(i, _)| *i).collect::<BTreeSet<_>>(), [1, 2].into());
    let updates = by(&net, CHANNEL_UPDATE_TYPE);
    assert_eq!(updates.len(), 2, "each end gossips its own direction");
    // A private channel never is: only B–C's id appears.
    let ann = ChannelAnnouncement::decode(&announcements[0].1[2..]).unwrap();
    assert_eq!(ann.contents.short_channel_id, scid);
    assert_eq!(announcements[0].1, announcements[1].1, "both ends built the same announcement");

    // A learns B–C from gossip alone (no route hint, no private-channel shortcut).
    let funding = net.channel(1, 2).funding_outpoint.unwrap();
    let output = net.chain.utxos[&funding].0.clone();
    let mut wrong = output.clone();
    wrong.value = Amount(output.value.0 + 1);
    wrong.script_pubkey[5] ^= 1;
    assert!(net.node(0).add_channel_announcement(&ann, &wrong).is_err(), "not the funding output");
    net.node(0).add_channel_announcement(&ann, &output).unwrap();
    for (_, u) in &updates {
        let update = ChannelUpdate::decode(&u[2..]).unwrap();
        net.node(0).apply_channel_update(&update).unwrap();
    }
    let info = net.node(0).graph().channel(scid).cloned().unwrap();
    assert!(info.announcement.is_some() && info.directions.iter().all(|d| d.is_some()));
    assert_eq!(info.capacity_msat, Some(CAP_MSAT));
    // What a newly connected peer would be sent: the announcement and both updates.
    assert_eq!(net.node(0).gossip_snapshot().len(), 3);
}

/// The funder follows the chain's fee rate: `update_fee` and a commitment round move both
/// sides' commitments to the new rate (a larger fee from the funder's balance), small moves
/// are ignored, the fundee cannot initiate, and payments go on at the new rate.
#[test]
fn the_funder_updates_the_commitment_fee_rate() {
    use rnet_lightning::channel::FeeRate;
    let (mut net, _, _) = line();
    let before = net.channel(0, 1);
    let old_rate = before.feerate.unwrap();
    let old_fee = before.onchain.unwrap().fee;
    // A move within a quarter of the current rate is not worth a commitment round.
    let small = FeeRate(old_rate.0 + old_rate.0 / 8);
    let acts = net.node(0).update_feerate(small).unwrap();
    assert!(!acts.iter().any(|a| matches!(a, Action::SendMessage { .. })), "{acts:?}");
    // The fundee of A–B (B) does not send update_fee for it.
    let new_rate = FeeRate(old_rate.0 * 3);
    let acts = net.node(1).update_feerate(new_rate).unwrap();
    net.process(1, acts);
    net.deliver_all();
    assert_eq!(net.channel(0, 1).feerate, Some(old_rate));
    // B funded B–C, so B's call moved B–C.
    assert_eq!(net.channel(1, 2).feerate, Some(new_rate));
    assert_eq!(net.channel(2, 1).feerate, Some(new_rate));
    // A funds A–B: both commitments move, and A's balance pays the larger fee.
    let acts = net.node(0).update_feerate(new_rate).unwrap();
    net.process(0, acts);
    net.deliver_all();
    for (x, y) in [(0, 1), (1, 0)] {
        let c = net.channel(x, y);
        assert_eq!(c.feerate, Some(new_rate), "{x}→{y}");
        assert_eq!(c.pending_htlcs, 0);
        let o = c.onchain.unwrap();
        assert_eq!(o.to_holder.0 + o.to_counterparty.0 + o.fee.0, FUNDING.0);
    }
    let after = net.channel(0, 1).onchain.unwrap();
    assert!(after.fee.0 > old_fee.0 * 2, "fee {} → {}", old_fee.0, after.fee.0);
    assert_eq!(after.to_counterparty, before.onchain.unwrap().to_counterparty);
    // Payments go on over both channels at the new rate.
    let invoice = net.node(2).create_invoice(PAY_MSAT, "after update_fee", 3600).unwrap();
    let (id, acts) = net.node(0).pay_invoice(&invoice).unwrap();
    net.process(0, acts);
    net.deliver_all();
    let paid = net.node(0).list_payments().into_iter().find(|p| p.id == id).unwrap();
    assert!(
        matches!(paid.status, rnet_lightning::node::PaymentStatus::Succeeded { .. }),
        "{paid:?}"
    );
}
