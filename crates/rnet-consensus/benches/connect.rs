//! Benchmark: `connect_block` on a block of signed plain-key spends (two inputs each), with the
//! block's signatures verified as one batch. Prints inputs verified per second.
//!
//! `cargo bench -p rnet-consensus --bench connect` (set `RNET_BENCH_TXS` to change the number of
//! transactions, default 2000).

use std::collections::HashMap;
use std::time::Instant;

use rnet_consensus::{
    ChainParams, Coin, HeaderChain, block_subsidy, connect_block, next_block_shape,
    required_improvement,
};
use rnet_primitives::{
    Amount, Block, BlockHeader, COIN, Hash256, ModelShape, OutPoint, TxOut, Txid,
};
use rnet_testkit::{MemoryChain, coinbase, plain_spk, sign_header, spend_plain, test_key};

fn main() {
    let n_txs: usize =
        std::env::var("RNET_BENCH_TXS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let params = ChainParams::regtest();
    let chain = MemoryChain::new(params.clone());
    let tip = chain.tip();
    let key = test_key(7);
    let spk = plain_spk(&key);

    // Synthetic coins at height 0 (connect_block does not look at checkpoints).
    let mut utxos: HashMap<OutPoint, Coin> = HashMap::new();
    let mut txs = Vec::with_capacity(n_txs);
    let t0 = Instant::now();
    for i in 0..n_txs {
        let mut inputs = Vec::new();
        for j in 0..2u32 {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let op = OutPoint::new(Txid::from_bytes(id), j);
            let out = TxOut { value: Amount(COIN), script_pubkey: spk.clone() };
            utxos.insert(
                op,
                Coin {
                    output: out.clone(),
                    height: 0,
                    creation_mtp: 0,
                    is_coinbase: false,
                    creation_loss_index: tip.val_loss,
                },
            );
            inputs.push((op, out));
        }
        let outputs = vec![
            TxOut { value: Amount(COIN - 500), script_pubkey: spk.clone() },
            TxOut { value: Amount(COIN - 500), script_pubkey: spk.clone() },
        ];
        txs.push(spend_plain(&key, &inputs, outputs));
    }
    let build_s = t0.elapsed().as_secs_f64();

    let required = required_improvement(&params, &chain);
    let val_loss = tip.val_loss - 2 * required;
    let subsidy = block_subsidy(&params, tip.circulating_supply, 2 * required, required);
    let fees = Amount(1000 * n_txs as u64);
    let mut transactions = vec![coinbase(&params, 1, Amount(subsidy.0 + fees.0), spk.clone())];
    transactions.extend(txs);
    let (d, l) = next_block_shape(&params, &tip);
    let mut header = BlockHeader {
        version: rnet_consensus::BLOCK_VERSION,
        prev_block_hash: tip.hash,
        merkle_root: Hash256::ZERO,
        time: tip.time + 600,
        height: 1,
        shape: ModelShape { d_model: d, n_layers: l },
        checkpoint_root: Hash256::ZERO,
        checkpoint_size: params.checkpoint_size(d, l).unwrap(),
        update_root: Hash256::ZERO,
        update_size: 0,
        parent_loss: tip.val_loss,
        val_loss,
        required_improvement: required,
        training_steps: 0,
        dataset_commitment: Hash256::ZERO,
        miner_pubkey: [0; 32],
        signature: [0; 64],
    };
    // connect_block does not look at the sample (Proof-of-Training does).
    let sample = rnet_primitives::EvalSample { records: Vec::new() };
    let mut block = Block { header: header.clone(), transactions, sample };
    header.merkle_root = block.compute_merkle_root().0;
    sign_header(&mut header, &key);
    block.header = header;
    let inputs = 2 * n_txs;
    println!(
        "rnet-consensus connect benchmark: {n_txs} transactions, {inputs} inputs, {} bytes \
         (built and signed in {build_s:.2} s)",
        block.to_bytes().len()
    );

    let mut best = f64::INFINITY;
    for run in 0..3 {
        let t = Instant::now();
        let (summary, effects) = connect_block(&params, &block, &chain, &utxos).expect("valid");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(effects.spent.len(), inputs);
        assert_eq!(effects.fees, fees);
        assert_eq!(summary.height, 1);
        println!("run {run}: connect_block {:.3} s = {:.0} inputs/s", secs, inputs as f64 / secs);
        best = best.min(secs);
    }
    println!(
        "best: {:.0} inputs verified per second ({} threads available)",
        inputs as f64 / best,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
}
