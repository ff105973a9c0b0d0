//! `Miner::mine` with an external trainer: a run that fails (non-zero exit, hang past the
//! timeout, wrong shapes, NaN) is recorded with its specific error and the miner goes on; the next
//! run, a good trainer, gives a block that validates. The good trainer copies a model that the
//! in-process miner trained for the same job; a failing one does its thing on the first run only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rnet_consensus::ChainParams;
use rnet_crypto::SigningKey;
use rnet_miner::{
    ExternalTrainer, MineControl, MineError, MinedBlock, Miner, MiningJob, TrainerError,
    TrainerFailure, TrainingData, UpdateRank, checkpoint_root, key_script_pubkey,
};
use rnet_model::{BadValue, Checkpoint, InterchangeError};
use rnet_primitives::Amount;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

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

/// A model that meets the job's requirement (trained in-process once) and its safetensors.
fn good() -> &'static (Checkpoint, Vec<u8>) {
    static GOOD: OnceLock<(Checkpoint, Vec<u8>)> = OnceLock::new();
    GOOD.get_or_init(|| {
        let params = ChainParams::regtest();
        let miner = Miner::new(params.clone(), key(), TrainingData::Bundled);
        let mined = miner.mine(&job(&params), &MineControl::quiet()).unwrap();
        let checkpoint = Checkpoint::from_bytes(&mined.checkpoint_bytes).unwrap();
        let bytes = checkpoint.to_safetensors_bytes().unwrap();
        (checkpoint, bytes)
    })
}

fn good_model() -> &'static [u8] {
    &good().1
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A trainer whose first run does `first` and whose later runs copy the good model.
fn trainer(dir: &Path, first: &str) -> ExternalTrainer {
    let good = write(dir, "good.safetensors", good_model());
    let command = format!(
        "n=$(cat runs 2>/dev/null || echo 0); echo $((n+1)) > runs; echo \"run $n\"; \
         if [ \"$n\" = 0 ]; then {first}; else cp {} {{output}}; fi",
        good.display()
    );
    let mut t = ExternalTrainer::new(command, dir.join("work"));
    t.steps = 7;
    t.timeout = Duration::from_secs(30);
    t.runs = 3;
    t
}

fn mine(trainer: ExternalTrainer) -> Result<MinedBlock, MineError> {
    let params = ChainParams::regtest();
    let miner =
        Miner::new(params.clone(), key(), TrainingData::Bundled).with_external_trainer(trainer);
    miner.mine(&job(&params), &MineControl::quiet())
}

/// The block validates like a node checks it, and its model is the good one.
fn assert_valid(mined: &MinedBlock) {
    let params = ChainParams::regtest();
    let job = job(&params);
    let header = &mined.block.header;
    assert!(header.parent_loss - header.val_loss >= job.required_improvement);
    assert_eq!(header.checkpoint_root, checkpoint_root(&mined.checkpoint_bytes));
    rnet_consensus::check_block(&params, &mined.block).unwrap();
    let derived = rnet_consensus::check_proof_of_training(
        &params,
        header,
        &params.genesis_summary(),
        &mined.block.sample,
        &job.parent_checkpoint.to_bytes(),
        &mined.update_bytes,
    )
    .unwrap();
    assert_eq!(derived.to_bytes(), mined.checkpoint_bytes);
    assert!(derived == good().0, "the block's model is the good trainer's");
}

fn failed_first(mined: &MinedBlock, error: TrainerError) {
    assert_eq!(mined.trainer_failures, vec![TrainerFailure { run: 0, error }]);
    assert_eq!(mined.steps, 7, "one good run of 7 steps");
    assert_valid(mined);
}

#[test]
fn a_trainer_exiting_non_zero_is_logged_and_the_next_run_mines() {
    let dir = tempfile::tempdir().unwrap();
    let mined = mine(trainer(dir.path(), "exit 3")).unwrap();
    failed_first(&mined, TrainerError::ExitCode(3));
}

#[test]
fn a_hanging_trainer_is_killed_at_its_timeout_and_the_next_run_mines() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(dir.path(), "sleep 60");
    t.timeout = Duration::from_secs(1);
    let started = std::time::Instant::now();
    let mined = mine(t).unwrap();
    assert!(started.elapsed() < Duration::from_secs(40), "{:?}", started.elapsed());
    failed_first(&mined, TrainerError::Timeout { timeout: Duration::from_secs(1) });
}

/// The good model with `layers.0.ffn.w_up` declared transposed (same bytes, metadata kept).
fn transposed() -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(good_model()).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(good_model()).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let mut shape = v.shape().to_vec();
            if name == "layers.0.ffn.w_up" {
                shape.reverse();
            }
            (name, safetensors::tensor::TensorView::new(v.dtype(), shape, v.data()).unwrap())
        })
        .collect();
    safetensors::tensor::serialize(views, meta.metadata()).unwrap()
}

#[test]
fn a_trainer_writing_wrong_shapes_is_refused_and_the_next_run_mines() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = write(dir.path(), "wrong.safetensors", &transposed());
    let mined = mine(trainer(dir.path(), &format!("cp {} {{output}}", wrong.display()))).unwrap();
    let spec = good().0.model.layout().tensors.iter().find(|t| t.name == "layers.0.ffn.w_up");
    let (rows, cols) = (spec.unwrap().shape[0], spec.unwrap().shape[1]);
    failed_first(
        &mined,
        TrainerError::Import(InterchangeError::WrongShape {
            tensor: "layers.0.ffn.w_up".into(),
            expected: format!("[{rows}, {cols}]"),
            got: vec![cols, rows],
        }),
    );
}

#[test]
fn a_trainer_writing_nan_is_refused_and_the_next_run_mines() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = good().0.clone();
    bad.model.tensor_mut("layers.1.gru.wo").unwrap()[40] = f32::NAN;
    let nan = write(dir.path(), "nan.safetensors", &bad.to_safetensors_bytes().unwrap());
    let mined = mine(trainer(dir.path(), &format!("cp {} {{output}}", nan.display()))).unwrap();
    failed_first(
        &mined,
        TrainerError::Import(InterchangeError::BadValue {
            tensor: "layers.1.gru.wo".into(),
            index: 40,
            kind: BadValue::NaN,
        }),
    );
}

#[test]
fn a_run_short_of_the_requirement_is_continued_from_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    // Run 0 writes the grown parent with one gain nudged: valid, but far from the requirement.
    let params = ChainParams::regtest();
    let job = job(&params);
    let genesis = params.genesis_summary();
    let (d, l) = (job.shape.0 as usize, job.shape.1 as usize);
    let seed = rnet_consensus::growth_seed(&genesis.hash);
    let mut nudged = rnet_model::grow(&job.parent_checkpoint.model, d, l, seed).unwrap();
    nudged.tensor_mut("layers.0.norm1").unwrap()[0] *= 1.001;
    let nudged = Checkpoint::new(1, nudged);
    let m1 = write(dir.path(), "m1.safetensors", &nudged.to_safetensors_bytes().unwrap());
    let mined = mine(trainer(dir.path(), &format!("cp {} {{output}}", m1.display()))).unwrap();
    assert!(mined.trainer_failures.is_empty());
    assert_eq!(mined.steps, 14, "two good runs of 7 steps");
    assert_valid(&mined);
    let work = dir.path().join("work");
    assert_eq!(std::fs::read_to_string(work.join("runs")).unwrap().trim(), "2");
    // The second run started from the first run's weights, not from the grown parent again.
    let bytes = std::fs::read(work.join("input.safetensors")).unwrap();
    assert!(rnet_model::checkpoint_from_safetensors(&bytes, &nudged).unwrap() == nudged);
}

#[test]
fn a_trainer_that_always_fails_exhausts_its_runs_with_a_retryable_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = ExternalTrainer::new("echo broken >&2; exit 1", dir.path());
    t.runs = 2;
    let err = mine(t).unwrap_err();
    assert!(
        matches!(
            err,
            MineError::TrainerRunsExhausted {
                runs: 2,
                best: 0,
                last_error: Some(TrainerError::ExitCode(1)),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
}

#[test]
fn an_external_trainer_needs_full_updates() {
    let dir = tempfile::tempdir().unwrap();
    let params = ChainParams::regtest();
    let miner = Miner::new(params.clone(), key(), TrainingData::Bundled)
        .with_rank(UpdateRank::LowRank(4))
        .unwrap()
        .with_external_trainer(ExternalTrainer::new("true", dir.path()));
    let err = miner.mine(&job(&params), &MineControl::quiet()).unwrap_err();
    assert!(
        matches!(err, MineError::ExternalTrainerNeedsFull { rank: UpdateRank::LowRank(4), .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
}
