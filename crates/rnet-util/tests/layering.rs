//! Enforces the crate layering of docs/architecture.md: a crate may depend only on crates of a
//! lower layer (or, within the same layer, on ones listed as allowed). The layer table lives in
//! `layers.toml` at the workspace root, so adding a crate means deciding its layer there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Parses `layers.toml`: lines of the form `rnet-crate = N` (comments with `#`).
fn layer_table() -> HashMap<String, u32> {
    let text = std::fs::read_to_string(workspace_root().join("layers.toml")).unwrap();
    let mut layers = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() || line.starts_with('[') {
            continue;
        }
        let (name, layer) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("layers.toml:{}: expected `crate = layer`", number + 1));
        let layer: u32 = layer
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("layers.toml:{}: layer must be a number", number + 1));
        layers.insert(name.trim().trim_matches('"').to_string(), layer);
    }
    layers
}

#[test]
fn no_crate_depends_on_a_higher_layer() {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let layers = layer_table();

    let mut violations = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let Some(&layer) = layers.get(name) else {
            violations.push(format!("{name} has no layer in layers.toml"));
            continue;
        };
        for dependency in package["dependencies"].as_array().unwrap() {
            let dep = dependency["name"].as_str().unwrap();
            if !dep.starts_with("rnet-") {
                continue;
            }
            // Dev-dependencies may reach anywhere below the test harness; normal and build
            // dependencies must point strictly down, or sideways within one layer.
            if dependency["kind"].as_str() == Some("dev") {
                continue;
            }
            match layers.get(dep) {
                None => violations.push(format!("{name} depends on {dep}, which has no layer")),
                Some(&dep_layer) if dep_layer > layer => violations
                    .push(format!("{name} (layer {layer}) depends on {dep} (layer {dep_layer})")),
                Some(_) => {}
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn the_layer_table_parses_and_is_ordered_sensibly() {
    let layers = layer_table();
    assert_eq!(layers.get("rnet-crypto"), Some(&1));
    assert!(layers["rnet-primitives"] > layers["rnet-crypto"]);
    assert!(layers["rnet-util"] > layers["rnet-model"]);
}
