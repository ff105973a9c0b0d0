//! `checkpoint export-safetensors` / `import-safetensors` and `update export-safetensors` /
//! `import-safetensors` through the real binary: byte-identical round trips, and strict refusals
//! with a one-line error naming the tensor (and, for values, the index).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rnet_model::config::Layout;
use rnet_model::{Checkpoint, Model, ModelConfig, ModelNetwork, ModelUpdate, UpdateEntry};

fn rnet_util(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnet-util")).args(args).output().expect("run rnet-util")
}

fn ok(args: &[&str]) -> String {
    let out = rnet_util(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Exit code 1 and a one-line error; returns it.
fn fails(args: &[&str]) -> String {
    let out = rnet_util(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
    err
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnet-util-ic-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn regtest_checkpoint(height: u64) -> Checkpoint {
    Checkpoint::new(height, Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 4).unwrap())
}

#[test]
fn checkpoint_round_trip_is_byte_identical_and_bad_values_are_refused() {
    let dir = temp_dir("ck");
    let ck = regtest_checkpoint(2);
    let (file, st, back) = (dir.join("a.rnck"), dir.join("a.safetensors"), dir.join("b.rnck"));
    std::fs::write(&file, ck.to_bytes()).unwrap();
    ok(&["checkpoint", "export-safetensors", p(&file), p(&st)]);
    let info: serde_json::Value = serde_json::from_str(&ok(&[
        "checkpoint",
        "import-safetensors",
        p(&st),
        "--like",
        p(&file),
        "--out",
        p(&back),
    ]))
    .unwrap();
    assert_eq!(info["height"], 2);
    assert_eq!(std::fs::read(&back).unwrap(), ck.to_bytes(), "byte-identical");

    // A NaN written by a trainer: refused, naming tensor and index; nothing written.
    let mut bad = ck.clone();
    let spec = bad.model.layout().tensors.iter().find(|t| t.name == "head").unwrap().clone();
    bad.model.params_mut()[spec.offset + 5] = f32::NAN;
    let nan = dir.join("nan.safetensors");
    std::fs::write(&nan, bad.to_safetensors_bytes().unwrap()).unwrap();
    let out = dir.join("nan.rnck");
    let err =
        fails(&["checkpoint", "import-safetensors", p(&nan), "--like", p(&file), "--out", p(&out)]);
    assert!(err.contains("\"head\" element 5 is NaN"), "{err}");
    assert!(!out.exists());

    // A model of another shape (the next regtest height's) is refused against --like.
    let other = Checkpoint::new(
        2,
        Model::init(ModelConfig::genesis(ModelNetwork::Regtest).with_shape(34, 2), 4).unwrap(),
    );
    let wrong = dir.join("wrong.safetensors");
    std::fs::write(&wrong, other.to_safetensors_bytes().unwrap()).unwrap();
    let err = fails(&[
        "checkpoint",
        "import-safetensors",
        p(&wrong),
        "--like",
        p(&file),
        "--out",
        p(&out),
    ]);
    assert!(err.contains("metadata d_ff is \"68\", expected \"64\""), "{err}");

    // Truncated.
    let bytes = std::fs::read(&st).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err =
        fails(&["checkpoint", "import-safetensors", p(&cut), "--like", p(&file), "--out", p(&out)]);
    assert!(err.contains("truncated"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn update_round_trip_is_byte_identical() {
    let dir = temp_dir("update");
    let like = regtest_checkpoint(1);
    let config = like.model.config().clone();
    let layout = Layout::new(&config);
    let entries = vec![
        UpdateEntry::replace(&layout, "layers.0.norm3", vec![0.75; 32]).unwrap(),
        UpdateEntry::low_rank(&layout, "head", 3, vec![0.01; 256 * 3], vec![-0.02; 3 * 32])
            .unwrap(),
    ];
    let update = ModelUpdate::new(config, entries).unwrap();
    let (like_file, file) = (dir.join("like.rnck"), dir.join("a.update"));
    let (st, back) = (dir.join("a.safetensors"), dir.join("b.update"));
    std::fs::write(&like_file, like.to_bytes()).unwrap();
    std::fs::write(&file, update.encode()).unwrap();
    ok(&["update", "export-safetensors", p(&file), p(&st)]);
    let info: serde_json::Value = serde_json::from_str(&ok(&[
        "update",
        "import-safetensors",
        p(&st),
        "--like",
        p(&like_file),
        "--out",
        p(&back),
    ]))
    .unwrap();
    assert_eq!(info["entries"], 2);
    assert_eq!(info["low_rank_entries"], 1);
    assert_eq!(std::fs::read(&back).unwrap(), update.encode(), "byte-identical");

    // A checkpoint export is not an update export (its format metadata says so).
    let ck_st = dir.join("ck.safetensors");
    std::fs::write(&ck_st, like.to_safetensors_bytes().unwrap()).unwrap();
    let err = fails(&[
        "update",
        "import-safetensors",
        p(&ck_st),
        "--like",
        p(&like_file),
        "--out",
        p(&back),
    ]);
    assert!(err.contains("metadata format"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
