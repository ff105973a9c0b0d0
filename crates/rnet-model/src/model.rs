//! A model: a validated config and its flat parameter buffer laid out by [`Layout`].

use thiserror::Error;

use crate::config::{ConfigError, Layout, ModelConfig};

/// A config that is not a V5 shape, or a parameter buffer of the wrong length.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    /// The config fails [`ModelConfig::validate`].
    #[error("invalid model config: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// The parameter buffer does not have `Layout::total` elements.
    #[error("parameter buffer has {got} values, the config needs {expected}")]
    ParamCount {
        /// What the layout needs.
        expected: usize,
        /// What was supplied.
        got: usize,
    },
}

/// A V5 network: a valid config and exactly `Layout::new(config).total` parameters in schema order.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    config: ModelConfig,
    layout: Layout,
    params: Vec<f32>,
}

impl Model {
    /// Wraps `params` (schema order, see [`Layout`]) after checking the config and the length.
    pub fn from_parts(config: ModelConfig, params: Vec<f32>) -> Result<Self, ModelError> {
        config.validate()?;
        let layout = Layout::new(&config);
        if params.len() != layout.total {
            return Err(ModelError::ParamCount { expected: layout.total, got: params.len() });
        }
        Ok(Self { config, layout, params })
    }

    /// A model of `config` with every parameter zero.
    pub fn zeros(config: ModelConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let layout = Layout::new(&config);
        let params = vec![0.0; layout.total];
        Ok(Self { config, layout, params })
    }

    /// The shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Where each tensor lives in [`Model::params`].
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The flat parameter buffer in schema order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Mutable access to the parameter values (the length is fixed by the config).
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// Gives up the config and the parameter buffer.
    pub fn into_parts(self) -> (ModelConfig, Vec<f32>) {
        (self.config, self.params)
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        self.params.len()
    }

    /// The values of the tensor called `name` (schema name, e.g. `layers.0.gru.wz`).
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        self.layout.tensors.iter().find(|t| t.name == name).map(|t| &self.params[t.range()])
    }

    /// Mutable values of the tensor called `name`.
    pub fn tensor_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let range = self.layout.tensors.iter().find(|t| t.name == name)?.range();
        Some(&mut self.params[range])
    }

    /// True when every parameter is finite (neither NaN nor infinite).
    pub fn is_finite(&self) -> bool {
        self.params.iter().all(|v| v.is_finite())
    }
}
