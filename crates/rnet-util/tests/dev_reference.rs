//! `rnet-util dev-reference`: the reference numbers an external trainer's agreement tests compare
//! against (contrib/pytorch). Checks through the real binary that every file it writes holds what
//! the library computes: the canonical evaluator's logits, per-position losses and `val_loss`; the
//! training engine's gradient of the mean loss; the weights after a short training run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rnet_model::forward::{window_logits, window_losses};
use rnet_model::{Checkpoint, Model, ModelConfig, ModelNetwork, evaluate};
use rnet_training::{Batch, DataConfig, DataSource, RunOptions, TrainConfig, Trainer};

fn rnet_util(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnet-util")).args(args).output().expect("run rnet-util")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnet-util-dev-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn floats(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `max |a − b| ≤ tol · max |b|` (the engine threads its products, so only near-equality is
/// promised between two processes).
fn assert_close(name: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{name}: length");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
    let worst = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(worst <= tol * scale, "{name}: max diff {worst} vs scale {scale}");
}

fn regtest_model() -> Model {
    Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 4).unwrap()
}

#[test]
fn reference_outputs_are_what_the_library_computes() {
    let dir = temp_dir("ok");
    let model = regtest_model();
    let t = model.config().window;
    let model_file = dir.join("m.safetensors");
    Checkpoint::new(0, model.clone()).export_safetensors(&model_file).unwrap();
    // Three full windows and a short one for the evaluator; the gradient batch takes the three.
    let data = rnet_model::training_text()[5000..5000 + 3 * t + 20].to_vec();
    let data_file = dir.join("d.bin");
    std::fs::write(&data_file, &data).unwrap();
    let out = dir.join("out");
    let run = rnet_util(&[
        "dev-reference",
        "--model",
        p(&model_file),
        "--data",
        p(&data_file),
        "--out",
        p(&out),
        "--steps",
        "3",
        "--batch",
        "2",
        "--seed",
        "7",
        "--holdout",
        "0",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();

    // The canonical evaluator.
    let eval = evaluate(&model, &data).unwrap();
    assert_eq!(json["eval"]["val_loss"], eval.val_loss_micronats);
    assert_eq!(json["eval"]["total_nats"].as_f64().unwrap().to_bits(), eval.total_nats.to_bits());
    assert_eq!(json["eval"]["bytes"], eval.bytes);
    assert_eq!(json["eval"]["windows"], 4);
    let (mut logits, mut losses) = (Vec::new(), Vec::new());
    for r in rnet_model::evaluator::windows(data.len(), t) {
        logits.extend(window_logits(&model, &data[r.start..r.end]));
        losses.extend(window_losses(&model, &data[r.start..r.end + 1]));
    }
    assert_eq!(floats(&out.join("eval_logits.f32")), logits, "logits bit for bit");
    assert_eq!(floats(&out.join("eval_losses.f32")), losses, "losses bit for bit");

    // The training engine's gradient over the full windows.
    let batch = Batch::from_sequence(&data, t);
    assert_eq!(json["grad"]["windows"], 3);
    let mut trainer =
        Trainer::new(model.params().to_vec(), model.config().clone(), TrainConfig::default(), None)
            .unwrap();
    let (loss, grad) = trainer.gradient(&batch).unwrap();
    let got_loss = json["grad"]["loss"].as_f64().unwrap();
    assert!((got_loss - loss).abs() <= 1e-6 * loss, "{got_loss} vs {loss}");
    let grad_file =
        Checkpoint::from_safetensors_bytes(&std::fs::read(out.join("grad.safetensors")).unwrap())
            .unwrap();
    assert_eq!(grad_file.model.config(), model.config());
    for spec in &model.layout().tensors {
        assert_close(
            &spec.name,
            &grad_file.model.params()[spec.range()],
            &grad[spec.range()],
            1e-5,
        );
    }
    assert!(grad.iter().any(|g| *g != 0.0));

    // Three AdamW steps with the documented settings.
    let train = TrainConfig {
        lr: 3e-3,
        warmup: 3,
        total_steps: 3,
        batch_windows: 2,
        seed: 7,
        ..TrainConfig::default()
    };
    let source = DataSource::from_bytes(
        data.clone(),
        DataConfig { window: t, holdout_fraction: 0.0, seed: 7 },
    )
    .unwrap();
    let mut trainer =
        Trainer::new(model.params().to_vec(), model.config().clone(), train, None).unwrap();
    let mut steps = Vec::new();
    trainer
        .run(&source, &RunOptions { steps: 3, ..RunOptions::default() }, |p| {
            steps.push(p.stats);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let logged = json["train"]["steps"].as_array().unwrap();
    assert_eq!(logged.len(), 3);
    for (l, s) in logged.iter().zip(&steps) {
        assert_eq!(l["step"], s.step);
        assert!((l["loss"].as_f64().unwrap() - s.loss).abs() <= 1e-5 * s.loss);
        assert_eq!(l["lr"].as_f64().unwrap() as f32, s.lr);
    }
    let trained = Checkpoint::from_safetensors_bytes(
        &std::fs::read(out.join("trained.safetensors")).unwrap(),
    )
    .unwrap();
    assert_close("trained", trained.model.params(), trainer.params(), 1e-5);
    assert_ne!(trained.model.params(), model.params());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let dir = temp_dir("bad");
    let model_file = dir.join("m.safetensors");
    Checkpoint::new(0, regtest_model()).export_safetensors(&model_file).unwrap();
    let short = dir.join("short.bin");
    std::fs::write(&short, b"x").unwrap();
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let out = dir.join("out");
    for (model, data, what) in [
        (p(&dir.join("missing")), p(&short), "cannot read"),
        (p(&junk), p(&short), "not a model"),
        (p(&model_file), p(&short), "too short"),
    ] {
        let run = rnet_util(&["dev-reference", "--model", model, "--data", data, "--out", p(&out)]);
        assert_eq!(run.status.code(), Some(1), "{what}");
        let err = String::from_utf8(run.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "{err:?}");
        assert!(err.contains(what), "{err:?} should say {what}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
