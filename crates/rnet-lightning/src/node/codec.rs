//! The node's persistent records: a strict big-endian encoding (lengths and counts `u32`) of
//! everything the node keeps beside the channels' own [`Channel::encode`] bytes.

use std::collections::BTreeMap;

use rnet_crypto::PublicKey;
use rnet_primitives::{Transaction, Txid};

use super::{
    Attempt, ChanEntry, ChanStatus, Forward, InvoiceRecord, Meta, NodeError, Origin, PaymentId,
    PaymentRecord, PaymentStatus, Resolution, Scheduled,
};
use crate::gossip::ShortChannelId;
use crate::router::RouteHop;
use crate::state::Channel;

/// Version byte of every record.
pub(super) const RECORD_VERSION: u8 = 1;

pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn new() -> Self {
        Self(vec![RECORD_VERSION])
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn b32(&mut self, v: &[u8; 32]) {
        self.0.extend_from_slice(v);
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }
    fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn tx(&mut self, tx: &Transaction) {
        self.bytes(&tx.to_bytes());
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.u32(x);
            }
            None => self.u8(0),
        }
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.u64(x);
            }
            None => self.u8(0),
        }
    }
}

pub(super) struct Reader<'a> {
    data: &'a [u8],
}

fn corrupt(what: &'static str) -> NodeError {
    NodeError::Corrupt(what)
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Result<Self, NodeError> {
        let mut r = Self { data };
        if r.u8("version")? != RECORD_VERSION {
            return Err(corrupt("record version"));
        }
        Ok(r)
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], NodeError> {
        if self.data.len() < n {
            return Err(corrupt(what));
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, NodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, NodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, NodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes(b.try_into().map_err(|_| corrupt(what))?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, NodeError> {
        let b = self.take(8, what)?;
        Ok(u64::from_be_bytes(b.try_into().map_err(|_| corrupt(what))?))
    }
    fn b32(&mut self, what: &'static str) -> Result<[u8; 32], NodeError> {
        self.take(32, what)?.try_into().map_err(|_| corrupt(what))
    }
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], NodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn count(&mut self, what: &'static str) -> Result<usize, NodeError> {
        let n = self.u32(what)? as usize;
        // Every element takes at least one byte: a count beyond the input is corrupt.
        if n > self.data.len() {
            return Err(corrupt(what));
        }
        Ok(n)
    }
    fn tx(&mut self, what: &'static str) -> Result<Transaction, NodeError> {
        Transaction::from_bytes(self.bytes(what)?).map_err(|_| corrupt(what))
    }
    fn key(&mut self, what: &'static str) -> Result<PublicKey, NodeError> {
        PublicKey::from_bytes(&self.b32(what)?).map_err(|_| corrupt(what))
    }
    fn opt_u32(&mut self, what: &'static str) -> Result<Option<u32>, NodeError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.u32(what)?)),
            _ => Err(corrupt(what)),
        }
    }
    fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, NodeError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.u64(what)?)),
            _ => Err(corrupt(what)),
        }
    }
    pub(super) fn finish(self) -> Result<(), NodeError> {
        if self.data.is_empty() { Ok(()) } else { Err(corrupt("trailing bytes")) }
    }
}

pub(super) fn encode_channel(e: &ChanEntry) -> Vec<u8> {
    let mut w = Writer::new();
    w.b32(e.peer.as_bytes());
    w.bytes(&e.channel.encode());
    w.opt_u64(e.scid.map(|s| s.0));
    match &e.funding_tx {
        Some(tx) => {
            w.u8(1);
            w.tx(tx);
        }
        None => w.u8(0),
    }
    w.opt_u32(e.funding_height);
    w.u8(e.status as u8);
    w.u8(u8::from(e.opened_reported));
    w.0
}

pub(super) fn decode_channel(bytes: &[u8]) -> Result<ChanEntry, NodeError> {
    let mut r = Reader::new(bytes)?;
    let peer = r.key("peer")?;
    let channel = Channel::decode(r.bytes("channel")?)?;
    let scid = r.opt_u64("scid")?.map(ShortChannelId);
    let funding_tx = match r.u8("funding tx tag")? {
        0 => None,
        1 => Some(r.tx("funding tx")?),
        _ => return Err(corrupt("funding tx tag")),
    };
    let funding_height = r.opt_u32("funding height")?;
    let status = ChanStatus::from_u8(r.u8("status")?).ok_or(corrupt("status"))?;
    let opened_reported = match r.u8("opened")? {
        0 => false,
        1 => true,
        _ => return Err(corrupt("opened")),
    };
    r.finish()?;
    Ok(ChanEntry { peer, channel, scid, funding_tx, funding_height, status, opened_reported })
}

fn put_hop(w: &mut Writer, h: &RouteHop) {
    w.b32(h.node_id.as_bytes());
    w.u64(h.short_channel_id.0);
    w.u64(h.amount_msat);
    w.u32(h.cltv_expiry);
    w.u64(h.fee_msat);
}

fn get_hop(r: &mut Reader<'_>) -> Result<RouteHop, NodeError> {
    Ok(RouteHop {
        node_id: r.key("hop node")?,
        short_channel_id: ShortChannelId(r.u64("hop scid")?),
        amount_msat: r.u64("hop amount")?,
        cltv_expiry: r.u32("hop cltv")?,
        fee_msat: r.u64("hop fee")?,
    })
}

fn put_resolution(w: &mut Writer, r: &Resolution) {
    match r {
        Resolution::Fulfill(p) => {
            w.u8(0);
            w.b32(p);
        }
        Resolution::Fail(reason) => {
            w.u8(1);
            w.bytes(reason);
        }
        Resolution::Malformed { sha256_of_onion, failure_code } => {
            w.u8(2);
            w.b32(sha256_of_onion);
            w.u16(*failure_code);
        }
    }
}

fn get_resolution(r: &mut Reader<'_>) -> Result<Resolution, NodeError> {
    Ok(match r.u8("resolution")? {
        0 => Resolution::Fulfill(r.b32("preimage")?),
        1 => Resolution::Fail(r.bytes("reason")?.to_vec()),
        2 => Resolution::Malformed {
            sha256_of_onion: r.b32("sha256 of onion")?,
            failure_code: r.u16("failure code")?,
        },
        _ => return Err(corrupt("resolution")),
    })
}

pub(super) fn encode_meta(m: &Meta) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(m.entropy_counter);
    w.u64(m.next_local_id);
    w.u64(m.next_payment_id);
    w.u32(m.height);
    w.u64(m.now);
    w.count(m.forwards.len());
    for ((c, h), f) in &m.forwards {
        w.u64(*c);
        w.u64(*h);
        w.b32(&f.shared_secret);
        w.u64(f.incoming_msat);
        w.u64(f.outgoing_msat);
        w.u32(f.incoming_cltv);
        w.b32(&f.payment_hash);
    }
    w.count(m.outgoing.len());
    for ((c, h), o) in &m.outgoing {
        w.u64(*c);
        w.u64(*h);
        match o {
            Origin::Payment(id) => {
                w.u8(0);
                w.u64(id.0);
            }
            Origin::Forward(ic, ih) => {
                w.u8(1);
                w.u64(*ic);
                w.u64(*ih);
            }
        }
    }
    w.count(m.resolutions.len());
    for ((c, h), r) in &m.resolutions {
        w.u64(*c);
        w.u64(*h);
        put_resolution(&mut w, r);
    }
    w.count(m.scheduled.len());
    for s in &m.scheduled {
        w.u64(s.channel);
        w.tx(&s.tx);
        w.u32(s.not_before);
        match &s.after {
            Some((txid, delay)) => {
                w.u8(1);
                w.b32(txid.as_bytes());
                w.u16(*delay);
            }
            None => w.u8(0),
        }
        match &s.resolves {
            Some((c, h)) => {
                w.u8(1);
                w.u64(*c);
                w.u64(*h);
            }
            None => w.u8(0),
        }
    }
    w.count(m.confirmed.len());
    for (txid, h) in &m.confirmed {
        w.b32(txid.as_bytes());
        w.u32(*h);
    }
    w.0
}

pub(super) fn decode_meta(bytes: &[u8]) -> Result<Meta, NodeError> {
    let mut r = Reader::new(bytes)?;
    let mut m = Meta {
        entropy_counter: r.u64("entropy counter")?,
        next_local_id: r.u64("next local id")?,
        next_payment_id: r.u64("next payment id")?,
        height: r.u32("height")?,
        now: r.u64("now")?,
        ..Meta::default()
    };
    for _ in 0..r.count("forwards")? {
        let key = (r.u64("forward channel")?, r.u64("forward htlc")?);
        let f = Forward {
            shared_secret: r.b32("forward secret")?,
            incoming_msat: r.u64("incoming msat")?,
            outgoing_msat: r.u64("outgoing msat")?,
            incoming_cltv: r.u32("incoming cltv")?,
            payment_hash: r.b32("forward hash")?,
        };
        m.forwards.insert(key, f);
    }
    for _ in 0..r.count("outgoing")? {
        let key = (r.u64("outgoing channel")?, r.u64("outgoing htlc")?);
        let origin = match r.u8("origin")? {
            0 => Origin::Payment(PaymentId(r.u64("origin payment")?)),
            1 => Origin::Forward(r.u64("origin channel")?, r.u64("origin htlc")?),
            _ => return Err(corrupt("origin")),
        };
        m.outgoing.insert(key, origin);
    }
    for _ in 0..r.count("resolutions")? {
        let key = (r.u64("resolution channel")?, r.u64("resolution htlc")?);
        m.resolutions.insert(key, get_resolution(&mut r)?);
    }
    for _ in 0..r.count("scheduled")? {
        let channel = r.u64("scheduled channel")?;
        let tx = r.tx("scheduled tx")?;
        let not_before = r.u32("not before")?;
        let after = match r.u8("after tag")? {
            0 => None,
            1 => Some((Txid::from_bytes(r.b32("after txid")?), r.u16("after delay")?)),
            _ => return Err(corrupt("after tag")),
        };
        let resolves = match r.u8("resolves tag")? {
            0 => None,
            1 => Some((r.u64("resolves channel")?, r.u64("resolves htlc")?)),
            _ => return Err(corrupt("resolves tag")),
        };
        m.scheduled.push(Scheduled { channel, tx, not_before, after, resolves });
    }
    let mut confirmed = BTreeMap::new();
    for _ in 0..r.count("confirmed")? {
        confirmed.insert(Txid::from_bytes(r.b32("confirmed txid")?), r.u32("confirmed height")?);
    }
    m.confirmed = confirmed;
    r.finish()?;
    Ok(m)
}

pub(super) fn encode_invoice(inv: &InvoiceRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(inv.invoice.as_bytes());
    w.b32(&inv.preimage);
    w.opt_u64(inv.paid_msat);
    w.0
}

pub(super) fn decode_invoice(bytes: &[u8]) -> Result<InvoiceRecord, NodeError> {
    let mut r = Reader::new(bytes)?;
    let invoice =
        String::from_utf8(r.bytes("invoice")?.to_vec()).map_err(|_| corrupt("invoice"))?;
    let preimage = r.b32("invoice preimage")?;
    let paid_msat = r.opt_u64("paid")?;
    r.finish()?;
    Ok(InvoiceRecord { invoice, preimage, paid_msat })
}

pub(super) fn encode_payment(p: &PaymentRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(p.invoice.as_bytes());
    w.b32(&p.payment_hash);
    w.u64(p.amount_msat);
    match &p.status {
        PaymentStatus::Pending => w.u8(0),
        PaymentStatus::Succeeded { preimage, fee_msat } => {
            w.u8(1);
            w.b32(preimage);
            w.u64(*fee_msat);
        }
        PaymentStatus::Failed { reason } => {
            w.u8(2);
            w.bytes(reason.as_bytes());
        }
    }
    w.u32(p.attempts);
    w.count(p.excluded_channels.len());
    for c in &p.excluded_channels {
        w.u64(*c);
    }
    w.count(p.excluded_nodes.len());
    for n in &p.excluded_nodes {
        w.b32(n.as_bytes());
    }
    match &p.attempt {
        Some(a) => {
            w.u8(1);
            w.count(a.hops.len());
            for h in &a.hops {
                put_hop(&mut w, h);
            }
            w.u64(a.total_amount_msat);
            w.u32(a.total_cltv);
            w.count(a.shared_secrets.len());
            for s in &a.shared_secrets {
                w.b32(s);
            }
            w.u64(a.channel);
            w.u64(a.htlc_id);
        }
        None => w.u8(0),
    }
    w.u8(u8::from(p.retry));
    w.0
}

pub(super) fn decode_payment(bytes: &[u8]) -> Result<PaymentRecord, NodeError> {
    let mut r = Reader::new(bytes)?;
    let invoice =
        String::from_utf8(r.bytes("invoice")?.to_vec()).map_err(|_| corrupt("invoice"))?;
    let payment_hash = r.b32("payment hash")?;
    let amount_msat = r.u64("amount")?;
    let status = match r.u8("payment status")? {
        0 => PaymentStatus::Pending,
        1 => PaymentStatus::Succeeded { preimage: r.b32("preimage")?, fee_msat: r.u64("fee")? },
        2 => PaymentStatus::Failed {
            reason: String::from_utf8(r.bytes("reason")?.to_vec())
                .map_err(|_| corrupt("reason"))?,
        },
        _ => return Err(corrupt("payment status")),
    };
    let attempts = r.u32("attempts")?;
    let mut excluded_channels = Vec::new();
    for _ in 0..r.count("excluded channels")? {
        excluded_channels.push(r.u64("excluded channel")?);
    }
    let mut excluded_nodes = Vec::new();
    for _ in 0..r.count("excluded nodes")? {
        excluded_nodes.push(r.key("excluded node")?);
    }
    let attempt = match r.u8("attempt tag")? {
        0 => None,
        1 => {
            let mut hops = Vec::new();
            for _ in 0..r.count("hops")? {
                hops.push(get_hop(&mut r)?);
            }
            if hops.is_empty() {
                return Err(corrupt("empty route"));
            }
            let total_amount_msat = r.u64("total amount")?;
            let total_cltv = r.u32("total cltv")?;
            let mut shared_secrets = Vec::new();
            for _ in 0..r.count("shared secrets")? {
                shared_secrets.push(r.b32("shared secret")?);
            }
            Some(Attempt {
                hops,
                total_amount_msat,
                total_cltv,
                shared_secrets,
                channel: r.u64("attempt channel")?,
                htlc_id: r.u64("attempt htlc")?,
            })
        }
        _ => return Err(corrupt("attempt tag")),
    };
    let retry = match r.u8("retry")? {
        0 => false,
        1 => true,
        _ => return Err(corrupt("retry")),
    };
    r.finish()?;
    Ok(PaymentRecord {
        invoice,
        payment_hash,
        amount_msat,
        status,
        attempts,
        excluded_channels,
        excluded_nodes,
        attempt,
        retry,
    })
}

pub(super) fn encode_penalty(channel: u64, txs: &[Transaction]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(channel);
    w.count(txs.len());
    for tx in txs {
        w.tx(tx);
    }
    w.0
}

pub(super) fn decode_penalty(bytes: &[u8]) -> Result<(u64, Vec<Transaction>), NodeError> {
    let mut r = Reader::new(bytes)?;
    let channel = r.u64("penalty channel")?;
    let mut txs = Vec::new();
    for _ in 0..r.count("penalty txs")? {
        txs.push(r.tx("penalty tx")?);
    }
    r.finish()?;
    Ok((channel, txs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelKeys, FeeRate, SecretGenerator};
    use crate::state::{ChannelConfig, OpenRequest};
    use crate::wire::ChannelId;
    use rnet_crypto::SigningKey;
    use rnet_primitives::{Amount, BlockHash, OutPoint, TxIn, TxOut, Witness};

    fn key(n: u8) -> PublicKey {
        SigningKey::from_bytes(&[n; 32]).public_key()
    }

    fn tx(n: u8) -> Transaction {
        Transaction {
            version: 2,
            inputs: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_bytes([n; 32]), 1),
                script_sig: vec![],
                sequence: 7,
                witness: Witness::new(),
            }],
            outputs: vec![TxOut { value: Amount(1000 + u64::from(n)), script_pubkey: vec![n; 34] }],
            lock_time: 5,
        }
    }

    fn sample_meta() -> Meta {
        let mut m = Meta {
            entropy_counter: 9,
            next_local_id: 3,
            next_payment_id: 4,
            height: 123,
            now: 1_700_000_000,
            ..Meta::default()
        };
        m.invoices.insert(
            [1; 32],
            InvoiceRecord { invoice: "lnrt1...".into(), preimage: [2; 32], paid_msat: Some(5) },
        );
        let hop = RouteHop {
            node_id: key(1),
            short_channel_id: ShortChannelId(77),
            amount_msat: 1500,
            cltv_expiry: 200,
            fee_msat: 500,
        };
        for (i, status) in [
            PaymentStatus::Pending,
            PaymentStatus::Succeeded { preimage: [3; 32], fee_msat: 10 },
            PaymentStatus::Failed { reason: "no route".into() },
        ]
        .into_iter()
        .enumerate()
        {
            m.payments.insert(
                PaymentId(i as u64),
                PaymentRecord {
                    invoice: "inv".into(),
                    payment_hash: [4; 32],
                    amount_msat: 1000,
                    status,
                    attempts: 2,
                    excluded_channels: vec![1, 2],
                    excluded_nodes: vec![key(2)],
                    attempt: (i == 0).then(|| Attempt {
                        hops: vec![hop],
                        total_amount_msat: 1500,
                        total_cltv: 58,
                        shared_secrets: vec![[5; 32]],
                        channel: 1,
                        htlc_id: 0,
                    }),
                    retry: i == 2,
                },
            );
        }
        m.forwards.insert(
            (1, 2),
            Forward {
                shared_secret: [6; 32],
                incoming_msat: 10,
                outgoing_msat: 9,
                incoming_cltv: 300,
                payment_hash: [7; 32],
            },
        );
        m.outgoing.insert((2, 0), Origin::Forward(1, 2));
        m.outgoing.insert((1, 5), Origin::Payment(PaymentId(0)));
        m.resolutions.insert((1, 0), Resolution::Fulfill([8; 32]));
        m.resolutions.insert((1, 1), Resolution::Fail(vec![1, 2, 3]));
        m.resolutions.insert(
            (1, 2),
            Resolution::Malformed { sha256_of_onion: [9; 32], failure_code: 0xc005 },
        );
        m.penalties.insert(Txid::from_bytes([10; 32]), (1, vec![tx(1), tx(2)]));
        m.scheduled.push(Scheduled {
            channel: 1,
            tx: tx(3),
            not_before: 10,
            after: Some((Txid::from_bytes([11; 32]), 144)),
            resolves: Some((1, 4)),
        });
        m.scheduled.push(Scheduled {
            channel: 2,
            tx: tx(4),
            not_before: 0,
            after: None,
            resolves: None,
        });
        m.confirmed.insert(Txid::from_bytes([12; 32]), 99);
        m
    }

    fn refuses_every_truncation<T>(bytes: &[u8], decode: impl Fn(&[u8]) -> Result<T, NodeError>) {
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncated at {n}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(&longer).is_err(), "trailing byte");
    }

    #[test]
    fn records_round_trip_and_every_truncation_or_extension_is_refused() {
        let m = sample_meta();
        for p in m.payments.values() {
            let bytes = encode_payment(p);
            assert_eq!(&decode_payment(&bytes).unwrap(), p);
            refuses_every_truncation(&bytes, decode_payment);
        }
        for i in m.invoices.values() {
            let bytes = encode_invoice(i);
            assert_eq!(&decode_invoice(&bytes).unwrap(), i);
            refuses_every_truncation(&bytes, decode_invoice);
        }
        for (chan, txs) in m.penalties.values() {
            let bytes = encode_penalty(*chan, txs);
            assert_eq!(decode_penalty(&bytes).unwrap(), (*chan, txs.clone()));
            refuses_every_truncation(&bytes, decode_penalty);
        }
        let bytes = encode_meta(&m);
        let back = decode_meta(&bytes).unwrap();
        assert_eq!(encode_meta(&back), bytes);
        assert_eq!(back.scheduled[0].after.map(|a| a.1), Some(144));
        for n in 0..bytes.len() {
            assert!(decode_meta(&bytes[..n]).is_err(), "truncated at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_meta(&longer).is_err());
        let mut version = bytes;
        version[0] = 2;
        assert!(decode_meta(&version).is_err());
    }

    #[test]
    fn channel_entry_round_trips_and_refuses_bad_tags() {
        let k = |n: u8| SigningKey::from_bytes(&[n; 32]);
        let keys = ChannelKeys {
            funding: k(1),
            revocation: k(2),
            payment: k(3),
            delayed_payment: k(4),
            htlc: k(5),
            commitment_seed: SecretGenerator::new([6; 32]),
        };
        let script = [&[0x51, 0x20][..], key(9).as_bytes()].concat();
        let request = OpenRequest {
            temporary_channel_id: ChannelId([1; 32]),
            funding_amount: Amount(1_000_000),
            push_msat: 0,
            feerate: FeeRate(1000),
            announce: false,
        };
        let (channel, _) =
            Channel::new_outbound(keys, BlockHash([0x47; 32]), ChannelConfig::new(script), request)
                .unwrap();
        let entry = ChanEntry {
            peer: key(7),
            channel,
            scid: Some(ShortChannelId(42)),
            funding_tx: Some(tx(5)),
            funding_height: Some(100),
            status: ChanStatus::ForceClosing,
            opened_reported: true,
        };
        let bytes = encode_channel(&entry);
        let back = decode_channel(&bytes).unwrap();
        assert_eq!(encode_channel(&back), bytes);
        assert_eq!(back.status, ChanStatus::ForceClosing);
        for n in 0..bytes.len() {
            assert!(decode_channel(&bytes[..n]).is_err(), "truncated at {n}");
        }
        // The status byte is second to last: an unknown status is refused.
        let mut bad = bytes;
        let at = bad.len() - 2;
        bad[at] = 9;
        assert!(decode_channel(&bad).is_err());
    }
}
