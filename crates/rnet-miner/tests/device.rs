//! `Miner::with_device`: device selection for the in-process training step.
//!
//! * `cpu` (the default) mines exactly the block the default miner mines;
//! * a device that is not built in or not present is a typed error when selected, never a CPU run;
//! * with `--features vulkan`, the miner on `vulkan` (adapter `RNET_VULKAN_ADAPTER`, default 0;
//!   lavapipe counts) mines a regtest block in-process whose model a validator's canonical
//!   evaluator accepts, full rank and low rank (the gradients on the device, the factors on the
//!   CPU). Without an adapter the Vulkan tests print `no Vulkan adapter: skipped` unless
//!   `RNET_REQUIRE_VULKAN=1`.

use std::sync::Arc;

use rnet_consensus::ChainParams;
use rnet_crypto::SigningKey;
use rnet_miner::{
    Device, DeviceError, MineControl, MineError, MinedBlock, Miner, MiningJob, TrainingData,
    checkpoint_root, key_script_pubkey,
};
use rnet_primitives::Amount;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

/// The regtest job on genesis.
fn job(params: &ChainParams) -> MiningJob {
    let genesis = params.genesis_summary();
    MiningJob {
        parent_hash: genesis.hash,
        parent_supply: genesis.circulating_supply,
        parent_checkpoint: Arc::new(params.genesis_checkpoint()),
        height: 1,
        required_improvement: params.initial_required_improvement,
        shape: rnet_consensus::next_block_shape(params, &genesis),
        transactions: vec![],
        fees: Amount::ZERO,
        min_time: genesis.time + 1,
        time: genesis.time + 600,
        payout_script: key_script_pubkey(&key()),
    }
}

/// Checks `mined` as a validator does: block rules, then Proof-of-Training (the update applied
/// canonically to the grown parent, both losses recomputed by the bit-exact evaluator).
fn validate(params: &ChainParams, job: &MiningJob, mined: &MinedBlock) {
    let header = &mined.block.header;
    assert!(header.parent_loss - header.val_loss >= job.required_improvement);
    assert_eq!(header.checkpoint_root, checkpoint_root(&mined.checkpoint_bytes));
    rnet_consensus::check_block(params, &mined.block).unwrap();
    let derived = rnet_consensus::check_proof_of_training(
        params,
        header,
        &params.genesis_summary(),
        &mined.block.sample,
        &job.parent_checkpoint.to_bytes(),
        &mined.update_bytes,
    )
    .unwrap();
    assert_eq!(derived.to_bytes(), mined.checkpoint_bytes);
}

#[test]
fn cpu_device_mines_the_default_block() {
    let params = ChainParams::regtest();
    let default = Miner::new(params.clone(), key(), TrainingData::Bundled);
    assert_eq!(default.device, Device::Cpu);
    let cpu = default.clone().with_device(Device::Cpu).unwrap();
    let job = job(&params);
    let a = default.mine(&job, &MineControl::quiet()).unwrap();
    let b = cpu.mine(&job, &MineControl::quiet()).unwrap();
    assert_eq!(a.update_bytes, b.update_bytes);
    assert_eq!(a.checkpoint_bytes, b.checkpoint_bytes);
    validate(&params, &job, &b);
}

#[test]
fn auto_resolves_to_a_concrete_device() {
    let miner = Miner::new(ChainParams::regtest(), key(), TrainingData::Bundled);
    let miner = miner.with_device(Device::Auto).unwrap();
    assert_ne!(miner.device, Device::Auto);
}

#[test]
fn unavailable_devices_are_errors_not_a_cpu_fallback() {
    let miner = || Miner::new(ChainParams::regtest(), key(), TrainingData::Bundled);
    let err = miner().with_device(Device::Metal).unwrap_err();
    assert!(matches!(err, MineError::Device(DeviceError::NotBuilt { .. })), "{err}");
    assert_eq!(
        err.to_string(),
        "device metal: not built with Metal support (rebuild with --features metal, on macOS)"
    );
    #[cfg(not(feature = "cuda"))]
    {
        let err = miner().with_device(Device::Cuda(0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "device cuda:0: not built with CUDA support (rebuild with --features cuda)"
        );
    }
    // No machine has this many adapters or GPUs.
    let err = miner().with_device(Device::Vulkan(1000)).unwrap_err();
    assert!(matches!(err, MineError::Device(_)), "{err}");
    assert!(!err.to_string().contains('\n'));
}

/// The Vulkan device the tests use, or `None` (skip) without an adapter.
#[cfg(feature = "vulkan")]
fn vulkan() -> Option<Device> {
    let ordinal = std::env::var("RNET_VULKAN_ADAPTER").ok().and_then(|v| v.parse().ok());
    let device = Device::Vulkan(ordinal.unwrap_or(0));
    match device.resolve() {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(
                std::env::var_os("RNET_REQUIRE_VULKAN").is_none(),
                "RNET_REQUIRE_VULKAN is set but: {e}"
            );
            eprintln!("no Vulkan adapter: skipped ({e})");
            None
        }
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_mines_a_block_the_canonical_evaluator_accepts() {
    let Some(device) = vulkan() else { return };
    let params = ChainParams::regtest();
    let miner = Miner::new(params.clone(), key(), TrainingData::Bundled);
    let miner = miner.with_device(device).unwrap();
    let job = job(&params);
    let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
    validate(&params, &job, &mined);
    let h = &mined.block.header;
    eprintln!(
        "{device}: block 1 in {:.1} s, {} steps, improvement {} (required {})",
        mined.elapsed.as_secs_f64(),
        mined.steps,
        h.parent_loss - h.val_loss,
        job.required_improvement
    );
}

/// A block that needs a low-rank update (mainnet's `-rank=auto` at the genesis shape) is mined on
/// the device too: the device computes each step's gradient, the CPU keeps the factors, and the
/// update a validator applies is accepted by its canonical evaluator.
#[cfg(feature = "vulkan")]
#[test]
fn vulkan_mines_a_low_rank_block_the_canonical_evaluator_accepts() {
    let Some(device) = vulkan() else { return };
    let params = ChainParams::regtest();
    let miner = Miner::new(params.clone(), key(), TrainingData::Bundled)
        .with_rank(rnet_miner::UpdateRank::LowRank(2))
        .unwrap()
        .with_device(device)
        .unwrap();
    let job = job(&params);
    let mined = miner.mine(&job, &MineControl::quiet()).unwrap();
    validate(&params, &job, &mined);
    let h = &mined.block.header;
    eprintln!(
        "{device} rank 2: block 1 in {:.1} s, {} steps, improvement {} (required {})",
        mined.elapsed.as_secs_f64(),
        mined.steps,
        h.parent_loss - h.val_loss,
        job.required_improvement
    );
}
