//! Export to (and import from) the safetensors format for the ML ecosystem: one F32 tensor per
//! schema name with its schema shape, and the config and height in the `__metadata__` map.

use std::collections::HashMap;
use std::path::Path;

use ::safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use thiserror::Error;

use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::model::{Model, ModelError};

/// A safetensors export or import failure.
#[derive(Debug, Error)]
pub enum SafetensorsError {
    /// The safetensors library rejected the data.
    #[error("safetensors: {0}")]
    Format(#[from] SafeTensorError),
    /// Writing or reading the file failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A metadata entry is missing or malformed.
    #[error("metadata entry {0:?} missing or malformed")]
    Metadata(&'static str),
    /// A schema tensor is missing, has the wrong dtype or shape.
    #[error("tensor {0} missing or of the wrong dtype/shape")]
    Tensor(String),
    /// The described model is invalid.
    #[error(transparent)]
    Model(#[from] ModelError),
}

fn metadata(ck: &Checkpoint) -> HashMap<String, String> {
    let c = ck.model.config();
    let ks: Vec<String> = c.kernel_sizes.iter().map(|k| k.to_string()).collect();
    HashMap::from([
        ("format".to_string(), "resonancenet-v5".to_string()),
        ("height".to_string(), ck.height.to_string()),
        ("d_model".to_string(), c.d_model.to_string()),
        ("n_layers".to_string(), c.n_layers.to_string()),
        ("n_slots".to_string(), c.n_slots.to_string()),
        ("d_ff".to_string(), c.d_ff.to_string()),
        ("window".to_string(), c.window.to_string()),
        ("kernel_sizes".to_string(), ks.join(",")),
    ])
}

impl Checkpoint {
    /// The safetensors bytes of this checkpoint.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>, SafetensorsError> {
        let bytes: Vec<u8> = self.model.params().iter().flat_map(|v| v.to_le_bytes()).collect();
        let layout = self.model.layout();
        let views = layout
            .tensors
            .iter()
            .map(|t| {
                let data = &bytes[4 * t.offset..4 * (t.offset + t.len())];
                TensorView::new(Dtype::F32, t.shape.clone(), data).map(|v| (t.name.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(::safetensors::tensor::serialize(views, &Some(metadata(self)))?)
    }

    /// Writes the safetensors export to `path`.
    pub fn export_safetensors(&self, path: impl AsRef<Path>) -> Result<(), SafetensorsError> {
        std::fs::write(path, self.to_safetensors_bytes()?)?;
        Ok(())
    }

    /// Reads a safetensors export back (config and height from the metadata, every schema tensor
    /// checked for dtype and shape).
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self, SafetensorsError> {
        let (_, meta) = SafeTensors::read_metadata(bytes)?;
        let map = meta.metadata().clone().ok_or(SafetensorsError::Metadata("__metadata__"))?;
        let num = |key: &'static str| -> Result<usize, SafetensorsError> {
            map.get(key).and_then(|v| v.parse().ok()).ok_or(SafetensorsError::Metadata(key))
        };
        let height = map
            .get("height")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(SafetensorsError::Metadata("height"))?;
        let kernel_sizes = map
            .get("kernel_sizes")
            .and_then(|v| v.split(',').map(|k| k.parse().ok()).collect::<Option<Vec<usize>>>())
            .ok_or(SafetensorsError::Metadata("kernel_sizes"))?;
        let config = ModelConfig {
            d_model: num("d_model")?,
            n_layers: num("n_layers")?,
            n_slots: num("n_slots")?,
            d_ff: num("d_ff")?,
            window: num("window")?,
            kernel_sizes,
        };
        let mut model = Model::zeros(config)?;
        let st = SafeTensors::deserialize(bytes)?;
        let layout = model.layout().clone();
        let params = model.params_mut();
        for t in &layout.tensors {
            let view = st.tensor(&t.name).map_err(|_| SafetensorsError::Tensor(t.name.clone()))?;
            if view.dtype() != Dtype::F32 || view.shape() != t.shape.as_slice() {
                return Err(SafetensorsError::Tensor(t.name.clone()));
            }
            for (dst, b) in params[t.range()].iter_mut().zip(view.data().chunks_exact(4)) {
                *dst = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(Checkpoint::new(height, model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelNetwork;

    #[test]
    fn export_loads_back_with_the_safetensors_crate() {
        let model = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 11).unwrap();
        let ck = Checkpoint::new(7, model);
        let dir = std::env::temp_dir().join(format!("rnet-model-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("regtest.safetensors");
        ck.export_safetensors(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let st = SafeTensors::deserialize(&bytes).unwrap();
        let layout = ck.model.layout();
        assert_eq!(st.len(), layout.tensors.len());
        for t in &layout.tensors {
            let view = st.tensor(&t.name).unwrap();
            assert_eq!(view.dtype(), Dtype::F32, "{}", t.name);
            assert_eq!(view.shape(), t.shape.as_slice(), "{}", t.name);
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(values.as_slice(), &ck.model.params()[t.range()], "{}", t.name);
        }
        assert_eq!(st.tensor("layers.1.slot.keys").unwrap().shape(), &[16, 32]);
        assert_eq!(st.tensor("layers.0.ffn.w_down").unwrap().shape(), &[32, 64]);
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["kernel_sizes"], "3,7,15");

        let back = Checkpoint::from_safetensors_bytes(&bytes).unwrap();
        assert_eq!(back, ck);
        assert_eq!(back.to_bytes(), ck.to_bytes());
    }
}
