//! Strict import of a model from safetensors: the inverse of
//! [`crate::Checkpoint::to_safetensors_bytes`], checked against the config it must have.

use super::{
    InterchangeError, MODEL_FORMAT, check_dtype, check_metadata, check_shape, parse, sorted_names,
    values,
};
use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::model::Model;

/// Reads a model of exactly `config` from safetensors `bytes` (module docs of
/// [`crate::interchange`] list the checks, in order). Nothing is flushed or repaired: a file that
/// is not exactly such a model is refused.
pub fn model_from_safetensors(
    bytes: &[u8],
    config: &ModelConfig,
) -> Result<Model, InterchangeError> {
    let mut model = Model::zeros(config.clone())?;
    let parsed = parse(bytes)?;
    check_metadata(&parsed.metadata, config, MODEL_FORMAT)?;
    let layout = model.layout().clone();
    for name in sorted_names(&parsed) {
        if !layout.tensors.iter().any(|t| t.name == name) {
            return Err(InterchangeError::UnexpectedTensor(name));
        }
    }
    let mut views = Vec::with_capacity(layout.tensors.len());
    for t in &layout.tensors {
        let view = parsed
            .tensors
            .tensor(&t.name)
            .map_err(|_| InterchangeError::MissingTensor(t.name.clone()))?;
        check_dtype(&t.name, &view)?;
        check_shape(&t.name, &view, &t.shape)?;
        views.push(view);
    }
    let params = model.params_mut();
    for (t, view) in layout.tensors.iter().zip(&views) {
        params[t.range()].copy_from_slice(&values(&t.name, view)?);
    }
    Ok(model)
}

/// Reads the checkpoint a trainer wrote from `bytes`: a model with exactly `like`'s config (see
/// [`model_from_safetensors`]) at `like`'s height. `like` is the model the trainer started from
/// (or any checkpoint of the shape the result must have); `export` then `import` with the same
/// checkpoint as `like` gives back its canonical bytes exactly.
pub fn checkpoint_from_safetensors(
    bytes: &[u8],
    like: &Checkpoint,
) -> Result<Checkpoint, InterchangeError> {
    let model = model_from_safetensors(bytes, like.model.config())?;
    // No subnormal survived the checks, so `new` flushes nothing.
    Ok(Checkpoint::new(like.height, model))
}

#[cfg(test)]
mod tests {
    use ::safetensors::tensor::Dtype;

    use super::*;
    use crate::config::ModelNetwork;
    use crate::interchange::test_files::{RawTensor, poke, read, write};
    use crate::interchange::{BadValue, InterchangeError};

    fn sample() -> Checkpoint {
        let model = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 5).unwrap();
        Checkpoint::new(3, model)
    }

    fn exported() -> (Checkpoint, Vec<u8>) {
        let ck = sample();
        let bytes = ck.to_safetensors_bytes().unwrap();
        (ck, bytes)
    }

    /// Re-serializes the export after `edit` changed its tensors or metadata.
    fn edited(
        edit: impl FnOnce(&mut Vec<RawTensor>, &mut Option<std::collections::HashMap<String, String>>),
    ) -> Vec<u8> {
        let (_, bytes) = exported();
        let (mut tensors, mut meta) = read(&bytes);
        edit(&mut tensors, &mut meta);
        write(&tensors, meta)
    }

    fn import(bytes: &[u8]) -> Result<Checkpoint, InterchangeError> {
        checkpoint_from_safetensors(bytes, &sample())
    }

    #[test]
    fn export_then_import_is_byte_identical() {
        let (ck, bytes) = exported();
        let back = checkpoint_from_safetensors(&bytes, &ck).unwrap();
        assert_eq!(back.to_bytes(), ck.to_bytes());
        // Metadata is optional (a trainer may drop it); the result is the same.
        let bare = edited(|_, meta| *meta = None);
        assert_eq!(import(&bare).unwrap().to_bytes(), ck.to_bytes());
        // Unknown metadata entries (and another height) are ignored; the height is `like`'s.
        let extra = edited(|_, meta| {
            let m = meta.as_mut().unwrap();
            m.insert("trainer".into(), "pytorch".into());
            m.insert("height".into(), "99".into());
        });
        assert_eq!(import(&extra).unwrap().height, 3);
    }

    #[test]
    fn refuses_a_wrong_name() {
        let bytes =
            edited(|t, _| t.iter_mut().find(|t| t.name == "head").unwrap().name = "lm_head".into());
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::UnexpectedTensor("lm_head".into())
        );
    }

    #[test]
    fn refuses_a_missing_tensor() {
        let bytes = edited(|t, _| t.retain(|t| t.name != "layers.1.slot.keys"));
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::MissingTensor("layers.1.slot.keys".into())
        );
    }

    #[test]
    fn refuses_an_extra_tensor() {
        let bytes = edited(|t, _| {
            t.push(RawTensor {
                name: "extra".into(),
                dtype: Dtype::F32,
                shape: vec![1],
                data: vec![0; 4],
            })
        });
        assert_eq!(import(&bytes).unwrap_err(), InterchangeError::UnexpectedTensor("extra".into()));
    }

    #[test]
    fn refuses_a_wrong_shape() {
        // Same element count, transposed: only the shape is wrong.
        let bytes = edited(|t, _| {
            t.iter_mut().find(|t| t.name == "layers.0.ffn.w_up").unwrap().shape = vec![32, 64]
        });
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::WrongShape {
                tensor: "layers.0.ffn.w_up".into(),
                expected: "[64, 32]".into(),
                got: vec![32, 64],
            }
        );
        // A whole model of another shape (the next height's) is refused too.
        let bigger = Checkpoint::new(
            3,
            Model::init(ModelConfig::genesis(ModelNetwork::Regtest).with_shape(34, 2), 5).unwrap(),
        );
        let err = import(&bigger.to_safetensors_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(err, InterchangeError::MetadataMismatch { ref key, .. } if key == "d_ff"),
            "{err}"
        );
        let bare = {
            let (mut t, _) = read(&bigger.to_safetensors_bytes().unwrap());
            t.sort_by(|a, b| a.name.cmp(&b.name));
            write(&t, None)
        };
        assert!(
            matches!(import(&bare).unwrap_err(), InterchangeError::WrongShape { ref tensor, .. } if tensor == "embed")
        );
    }

    #[test]
    fn refuses_a_wrong_dtype() {
        let bytes = edited(|t, _| {
            let norm = t.iter_mut().find(|t| t.name == "norm_f").unwrap();
            norm.dtype = Dtype::I32;
        });
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::WrongDtype { tensor: "norm_f".into(), got: "I32".into() }
        );
        let half = edited(|t, _| {
            let norm = t.iter_mut().find(|t| t.name == "norm_f").unwrap();
            norm.dtype = Dtype::F16;
            norm.data.truncate(norm.data.len() / 2);
        });
        assert_eq!(
            import(&half).unwrap_err(),
            InterchangeError::WrongDtype { tensor: "norm_f".into(), got: "F16".into() }
        );
    }

    #[test]
    fn refuses_nan_inf_and_subnormal_naming_tensor_and_index() {
        for (value, kind) in [
            (f32::NAN, BadValue::NaN),
            (f32::INFINITY, BadValue::Infinite),
            (f32::NEG_INFINITY, BadValue::Infinite),
            (f32::MIN_POSITIVE / 2.0, BadValue::Subnormal),
        ] {
            let bytes = edited(|t, _| poke(t, "layers.1.gru.wh", 77, value));
            let err = import(&bytes).unwrap_err();
            assert_eq!(
                err,
                InterchangeError::BadValue { tensor: "layers.1.gru.wh".into(), index: 77, kind }
            );
            assert!(err.to_string().contains("layers.1.gru.wh") && err.to_string().contains("77"));
        }
    }

    #[test]
    fn refuses_truncated_and_padded_files() {
        let (_, bytes) = exported();
        for cut in [0, 5, 8, 100, bytes.len() - 1] {
            let err = import(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, InterchangeError::Truncated { got, needed } if got == cut as u64 && needed > got),
                "cut at {cut}: {err}"
            );
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(matches!(import(&padded).unwrap_err(), InterchangeError::TrailingBytes { .. }));
        let mut garbage = bytes.clone();
        garbage[8] = b'[';
        assert!(matches!(import(&garbage).unwrap_err(), InterchangeError::Malformed(_)));
    }

    #[test]
    fn refuses_contradicting_metadata() {
        let bytes = edited(|_, meta| {
            meta.as_mut().unwrap().insert("window".into(), "128".into());
        });
        assert_eq!(
            import(&bytes).unwrap_err(),
            InterchangeError::MetadataMismatch {
                key: "window".into(),
                expected: "64".into(),
                got: "128".into()
            }
        );
    }
}
