//! Model updates as safetensors: per changed tensor either the tensor itself (a full replacement)
//! or its two low-rank factors `NAME.u` `[rows, r]` and `NAME.v` `[r, cols]` (`W += U·V`, a gain
//! `[n]` viewed as `[1, n]`), with the target shape in the metadata; strict import back.

use ::safetensors::tensor::{Dtype, TensorView};

use super::{
    InterchangeError, UPDATE_FORMAT, check_dtype, check_metadata, check_shape, config_metadata,
    parse, sorted_names, values,
};
use crate::config::{Layout, ModelConfig};
use crate::update::{Change, ModelUpdate, UpdateEntry};
use crate::update_apply::matrix_dims;

/// Suffix of the left factor `U [rows, r]` of a low-rank entry.
pub const FACTOR_U: &str = ".u";
/// Suffix of the right factor `V [r, cols]` of a low-rank entry.
pub const FACTOR_V: &str = ".v";

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The safetensors bytes of `update`: replacement entries under the tensor's schema name and
/// shape, low-rank entries as `NAME.u`, `NAME.v`; the target shape and `format` in the metadata.
/// Refuses an entry whose tensor index or dimensions do not fit the update's own config (such an
/// update could never apply).
pub fn update_to_safetensors(update: &ModelUpdate) -> Result<Vec<u8>, InterchangeError> {
    let layout = Layout::new(update.config());
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for e in update.entries() {
        let spec = layout.tensors.get(e.tensor() as usize).ok_or_else(|| {
            InterchangeError::UnexpectedTensor(format!("tensor index {}", e.tensor()))
        })?;
        let (rows, cols) = matrix_dims(spec);
        let (r, c) = e.dims();
        if (rows, cols) != (u64::from(r), u64::from(c)) {
            return Err(InterchangeError::WrongShape {
                tensor: spec.name.clone(),
                expected: format!("[{rows}, {cols}]"),
                got: vec![r as usize, c as usize],
            });
        }
        match e.change() {
            Change::Replace(v) => owned.push((spec.name.clone(), spec.shape.clone(), le_bytes(v))),
            Change::LowRank { rank, u, v } => {
                let k = *rank as usize;
                owned.push((format!("{}{FACTOR_U}", spec.name), vec![r as usize, k], le_bytes(u)));
                owned.push((format!("{}{FACTOR_V}", spec.name), vec![k, c as usize], le_bytes(v)));
            }
        }
    }
    let views = owned
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| InterchangeError::Malformed(e.to_string()))?;
    let metadata = Some(config_metadata(update.config(), UPDATE_FORMAT));
    ::safetensors::tensor::serialize(views, &metadata)
        .map_err(|e| InterchangeError::Malformed(e.to_string()))
}

/// What the file holds for one schema tensor.
#[derive(Default)]
struct Found {
    replace: bool,
    u: bool,
    v: bool,
}

/// Reads an update of a model of exactly `config` (the grown parent's shape) from safetensors
/// `bytes`. Strict like [`super::model_from_safetensors`], except that tensors are optional (an
/// absent tensor is unchanged): every name must be a schema name or `NAME.u` / `NAME.v` of one,
/// a tensor may not be both replaced and factored, factors come in pairs with one rank `r ≥ 1`,
/// shapes, dtype and values as for models. `update_to_safetensors` then this gives back the same
/// update (and the same canonical bytes).
pub fn update_from_safetensors(
    bytes: &[u8],
    config: &ModelConfig,
) -> Result<ModelUpdate, InterchangeError> {
    config.validate().map_err(crate::model::ModelError::from)?;
    let parsed = parse(bytes)?;
    check_metadata(&parsed.metadata, config, UPDATE_FORMAT)?;
    let layout = Layout::new(config);
    let index = |name: &str| layout.tensors.iter().position(|t| t.name == name);
    let mut found: Vec<Found> = layout.tensors.iter().map(|_| Found::default()).collect();
    for name in sorted_names(&parsed) {
        if let Some(i) = index(&name) {
            found[i].replace = true;
        } else if let Some(i) = name.strip_suffix(FACTOR_U).and_then(index) {
            found[i].u = true;
        } else if let Some(i) = name.strip_suffix(FACTOR_V).and_then(index) {
            found[i].v = true;
        } else {
            return Err(InterchangeError::UnexpectedTensor(name));
        }
    }
    let tensor = |name: &str| {
        let view = parsed
            .tensors
            .tensor(name)
            .map_err(|_| InterchangeError::MissingTensor(name.to_string()))?;
        check_dtype(name, &view)?;
        Ok::<_, InterchangeError>(view)
    };
    let mut entries = Vec::new();
    for (i, (spec, f)) in layout.tensors.iter().zip(&found).enumerate() {
        let name = &spec.name;
        let (rows, cols) = matrix_dims(spec);
        // Schema dimensions are bounded by the config caps, far below u32::MAX.
        let (rows32, cols32) = (rows as u32, cols as u32);
        let change = match (f.replace, f.u, f.v) {
            (false, false, false) => continue,
            (true, false, false) => {
                let view = tensor(name)?;
                check_shape(name, &view, &spec.shape)?;
                Change::Replace(values(name, &view)?)
            }
            (true, _, _) => return Err(InterchangeError::ConflictingEntries(name.clone())),
            (false, u, _) => {
                let (u_name, v_name) = (format!("{name}{FACTOR_U}"), format!("{name}{FACTOR_V}"));
                if !u {
                    return Err(InterchangeError::MissingTensor(u_name));
                }
                let (u_view, v_view) = (tensor(&u_name)?, tensor(&v_name)?);
                let rank = match u_view.shape() {
                    [r, k] if *r as u64 == rows && *k >= 1 && u32::try_from(*k).is_ok() => *k,
                    got => {
                        return Err(InterchangeError::WrongShape {
                            tensor: u_name,
                            expected: format!("[{rows}, r] with r >= 1"),
                            got: got.to_vec(),
                        });
                    }
                };
                if v_view.shape() != [rank, cols as usize] {
                    return Err(InterchangeError::WrongShape {
                        tensor: v_name,
                        expected: format!("[{rank}, {cols}] (rank {rank} from {u_name})"),
                        got: v_view.shape().to_vec(),
                    });
                }
                let u = values(&u_name, &u_view)?;
                let v = values(&v_name, &v_view)?;
                Change::LowRank { rank: rank as u32, u, v }
            }
        };
        entries.push(UpdateEntry::new(i as u32, rows32, cols32, change)?);
    }
    Ok(ModelUpdate::new(config.clone(), entries)?)
}

#[cfg(test)]
mod tests {
    use ::safetensors::tensor::Dtype;

    use super::*;
    use crate::config::ModelNetwork;
    use crate::interchange::BadValue;
    use crate::interchange::test_files::{RawTensor, poke, read, write};

    fn config() -> ModelConfig {
        ModelConfig::genesis(ModelNetwork::Regtest)
    }

    /// A replacement of `norm_f`, a rank-2 entry on `layers.0.gru.wz` and a rank-1 entry on the
    /// gain `layers.1.norm2` (`[1, 32]`).
    fn sample() -> ModelUpdate {
        let layout = Layout::new(&config());
        let ramp = |n: usize, s: f32| -> Vec<f32> {
            (0..n).map(|i| s * (i as f32 - n as f32 / 2.0)).collect()
        };
        let entries = vec![
            UpdateEntry::replace(&layout, "norm_f", ramp(32, 0.01)).unwrap(),
            UpdateEntry::low_rank(&layout, "layers.0.gru.wz", 2, ramp(64, 0.001), ramp(64, 0.002))
                .unwrap(),
            UpdateEntry::low_rank(&layout, "layers.1.norm2", 1, vec![0.5], ramp(32, 0.003))
                .unwrap(),
        ];
        ModelUpdate::new(config(), entries).unwrap()
    }

    fn edited(edit: impl FnOnce(&mut Vec<RawTensor>)) -> Vec<u8> {
        let bytes = update_to_safetensors(&sample()).unwrap();
        let (mut tensors, meta) = read(&bytes);
        edit(&mut tensors);
        write(&tensors, meta)
    }

    fn import(bytes: &[u8]) -> Result<ModelUpdate, InterchangeError> {
        update_from_safetensors(bytes, &config())
    }

    #[test]
    fn export_then_import_is_byte_identical() {
        let update = sample();
        let bytes = update_to_safetensors(&update).unwrap();
        let (tensors, _) = read(&bytes);
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "layers.0.gru.wz.u",
                "layers.0.gru.wz.v",
                "layers.1.norm2.u",
                "layers.1.norm2.v",
                "norm_f"
            ]
        );
        assert_eq!(tensors[0].shape, [32, 2]);
        assert_eq!(tensors[3].shape, [1, 32]);
        let back = import(&bytes).unwrap();
        assert_eq!(back, update);
        assert_eq!(back.encode(), update.encode());
        // The empty update round-trips too.
        let empty = ModelUpdate::new(config(), vec![]).unwrap();
        assert_eq!(
            import(&update_to_safetensors(&empty).unwrap()).unwrap().encode(),
            empty.encode()
        );
    }

    #[test]
    fn a_full_weights_file_reads_as_a_replacement_of_every_tensor() {
        let model = crate::Model::init(config(), 1).unwrap();
        let ck = crate::Checkpoint::new(1, model);
        let (tensors, _) = read(&ck.to_safetensors_bytes().unwrap());
        let update = import(&write(&tensors, None)).unwrap();
        assert_eq!(update.entries().len(), Layout::new(&config()).tensors.len());
        // With the checkpoint's own metadata the format differs: refused.
        let err = import(&ck.to_safetensors_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(err, InterchangeError::MetadataMismatch { ref key, .. } if key == "format"),
            "{err}"
        );
    }

    #[test]
    fn refuses_wrong_and_extra_names() {
        let bytes = edited(|t| t[4].name = "norm_final".into());
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::UnexpectedTensor("norm_final".into())
        );
        let bytes = edited(|t| {
            t.push(RawTensor {
                name: "head.w".into(),
                dtype: Dtype::F32,
                shape: vec![1],
                data: vec![0; 4],
            })
        });
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::UnexpectedTensor("head.w".into())
        );
    }

    #[test]
    fn refuses_a_missing_factor_and_conflicts() {
        let bytes = edited(|t| t.retain(|t| t.name != "layers.0.gru.wz.v"));
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::MissingTensor("layers.0.gru.wz.v".into())
        );
        let bytes = edited(|t| t.retain(|t| t.name != "layers.1.norm2.u"));
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::MissingTensor("layers.1.norm2.u".into())
        );
        let bytes = edited(|t| {
            t.push(RawTensor {
                name: "layers.0.gru.wz".into(),
                dtype: Dtype::F32,
                shape: vec![32, 32],
                data: vec![0; 4 * 32 * 32],
            })
        });
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::ConflictingEntries("layers.0.gru.wz".into())
        );
    }

    #[test]
    fn refuses_wrong_shapes_and_dtype() {
        let bytes = edited(|t| t[4].shape = vec![1, 32]);
        assert!(
            matches!(import(&bytes).unwrap_err(), InterchangeError::WrongShape { ref tensor, .. } if tensor == "norm_f")
        );
        // U with the wrong row count.
        let bytes = edited(|t| t[0].shape = vec![16, 4]);
        assert!(
            matches!(import(&bytes).unwrap_err(), InterchangeError::WrongShape { ref tensor, .. } if tensor == "layers.0.gru.wz.u")
        );
        // V whose rank disagrees with U's.
        let bytes = edited(|t| t[1].shape = vec![1, 64]);
        let err = import(&bytes).unwrap_err();
        assert!(
            matches!(err, InterchangeError::WrongShape { ref tensor, .. } if tensor == "layers.0.gru.wz.v"),
            "{err}"
        );
        let bytes = edited(|t| t[2].dtype = Dtype::I32);
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::WrongDtype { tensor: "layers.1.norm2.u".into(), got: "I32".into() }
        );
    }

    #[test]
    fn refuses_bad_values_and_truncation() {
        for (value, kind) in [
            (f32::NAN, BadValue::NaN),
            (f32::INFINITY, BadValue::Infinite),
            (-1e-40, BadValue::Subnormal),
        ] {
            let bytes = edited(|t| poke(t, "layers.0.gru.wz.v", 9, value));
            assert_eq!(
                import(&bytes).unwrap_err(),
                InterchangeError::BadValue { tensor: "layers.0.gru.wz.v".into(), index: 9, kind }
            );
        }
        let bytes = update_to_safetensors(&sample()).unwrap();
        let err = import(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(matches!(err, InterchangeError::Truncated { .. }), "{err}");
    }
}
