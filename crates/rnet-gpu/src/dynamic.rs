//! Backend-erased trainer and decoder: [`DynTrainer`] and [`DynDecoder`] hold a [`DeviceTrainer`] or
//! [`DeviceDecoder`] on whichever backend an [`OpenDevice`] is, so callers that select the device
//! at run time (`-device=…`) need no generic code and no cargo-feature `cfg`s of their own.

use rnet_model::{Model, ModelConfig};
use rnet_training::{Batch, DataSource, OptimizerState, StepStats, TrainConfig};

use crate::device::{Device, OpenDevice};
use crate::model::{DeviceDecoder, DeviceTrainer, EngineError, TrainSummary};
use crate::{Backend, CpuBackend};

/// A [`DeviceTrainer`] on the backend of an [`OpenDevice`].
#[derive(Debug)]
pub enum DynTrainer {
    /// On the CPU backend.
    Cpu(Box<DeviceTrainer<CpuBackend>>),
    /// On a CUDA device.
    #[cfg(feature = "cuda")]
    Cuda(Box<DeviceTrainer<crate::CudaBackend>>, usize),
    /// On a Vulkan adapter or the Metal GPU (which one: the [`Device`]).
    #[cfg(feature = "vulkan")]
    Wgpu(Box<DeviceTrainer<crate::WgpuBackend>>, Device),
}

/// A [`DeviceDecoder`] on the backend of an [`OpenDevice`].
#[derive(Debug)]
pub enum DynDecoder {
    /// On the CPU backend.
    Cpu(Box<DeviceDecoder<CpuBackend>>),
    /// On a CUDA device.
    #[cfg(feature = "cuda")]
    Cuda(Box<DeviceDecoder<crate::CudaBackend>>, usize),
    /// On a Vulkan adapter or the Metal GPU (which one: the [`Device`]).
    #[cfg(feature = "vulkan")]
    Wgpu(Box<DeviceDecoder<crate::WgpuBackend>>, Device),
}

/// Runs `$body` with `$t` bound to the concrete trainer or decoder inside `$e`.
macro_rules! each {
    ($ty:ident, $e:expr, $t:ident => $body:expr) => {
        match $e {
            $ty::Cpu($t) => $body,
            #[cfg(feature = "cuda")]
            $ty::Cuda($t, _) => $body,
            #[cfg(feature = "vulkan")]
            $ty::Wgpu($t, _) => $body,
        }
    };
}

impl OpenDevice {
    /// A [`DeviceTrainer`] on this device (arguments as [`DeviceTrainer::new`]).
    pub fn trainer(
        self,
        params: &[f32],
        config: ModelConfig,
        train: TrainConfig,
        state: Option<OptimizerState>,
    ) -> Result<DynTrainer, EngineError> {
        Ok(match self {
            OpenDevice::Cpu(be) => {
                DynTrainer::Cpu(Box::new(DeviceTrainer::new(be, params, config, train, state)?))
            }
            #[cfg(feature = "cuda")]
            OpenDevice::Cuda { ordinal, backend } => DynTrainer::Cuda(
                Box::new(DeviceTrainer::new(*backend, params, config, train, state)?),
                ordinal,
            ),
            #[cfg(feature = "vulkan")]
            OpenDevice::Wgpu { device, backend } => DynTrainer::Wgpu(
                Box::new(DeviceTrainer::new(*backend, params, config, train, state)?),
                device,
            ),
        })
    }

    /// A [`DeviceDecoder`] of `model` on this device.
    pub fn decoder(self, model: &Model) -> Result<DynDecoder, EngineError> {
        Ok(match self {
            OpenDevice::Cpu(be) => DynDecoder::Cpu(Box::new(DeviceDecoder::new(be, model)?)),
            #[cfg(feature = "cuda")]
            OpenDevice::Cuda { ordinal, backend } => {
                DynDecoder::Cuda(Box::new(DeviceDecoder::new(*backend, model)?), ordinal)
            }
            #[cfg(feature = "vulkan")]
            OpenDevice::Wgpu { device, backend } => {
                DynDecoder::Wgpu(Box::new(DeviceDecoder::new(*backend, model)?), device)
            }
        })
    }
}

impl DynTrainer {
    /// The device it trains on.
    pub fn device(&self) -> Device {
        match self {
            DynTrainer::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            DynTrainer::Cuda(_, n) => Device::Cuda(*n),
            #[cfg(feature = "vulkan")]
            DynTrainer::Wgpu(_, device) => *device,
        }
    }

    /// The backend's description of the device, for logs.
    pub fn device_name(&self) -> String {
        each!(DynTrainer, self, t => t.backend().name())
    }

    /// See [`DeviceTrainer::config`].
    pub fn config(&self) -> &ModelConfig {
        each!(DynTrainer, self, t => t.config())
    }

    /// See [`DeviceTrainer::window`].
    pub fn window(&self) -> usize {
        each!(DynTrainer, self, t => t.window())
    }

    /// See [`DeviceTrainer::global_step`].
    pub fn global_step(&self) -> u64 {
        each!(DynTrainer, self, t => t.global_step())
    }

    /// See [`DeviceTrainer::step`].
    pub fn step(&mut self, batch: &Batch) -> Result<StepStats, EngineError> {
        each!(DynTrainer, self, t => t.step(batch))
    }

    /// See [`DeviceTrainer::loss`].
    pub fn loss(&mut self, batch: &Batch) -> Result<f64, EngineError> {
        each!(DynTrainer, self, t => t.loss(batch))
    }

    /// See [`DeviceTrainer::train_steps`].
    pub fn train_steps(
        &mut self,
        source: &DataSource,
        steps: u64,
    ) -> Result<TrainSummary, EngineError> {
        each!(DynTrainer, self, t => t.train_steps(source, steps))
    }

    /// See [`DeviceTrainer::params`].
    pub fn params(&self) -> Result<Vec<f32>, EngineError> {
        each!(DynTrainer, self, t => t.params())
    }

    /// See [`DeviceTrainer::gradient`].
    pub fn gradient(&mut self, batch: &Batch) -> Result<(f64, Vec<f32>), EngineError> {
        each!(DynTrainer, self, t => t.gradient(batch))
    }

    /// See [`DeviceTrainer::load_params`].
    pub fn load_params(&mut self, flat: &[f32]) -> Result<(), EngineError> {
        each!(DynTrainer, self, t => t.load_params(flat))
    }

    /// See [`DeviceTrainer::optimizer_state`].
    pub fn optimizer_state(&self) -> Result<OptimizerState, EngineError> {
        each!(DynTrainer, self, t => t.optimizer_state())
    }

    /// See [`DeviceTrainer::into_parts`].
    pub fn into_parts(self) -> Result<(Vec<f32>, OptimizerState), EngineError> {
        each!(DynTrainer, self, t => t.into_parts())
    }
}

impl DynDecoder {
    /// The device it decodes on.
    pub fn device(&self) -> Device {
        match self {
            DynDecoder::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            DynDecoder::Cuda(_, n) => Device::Cuda(*n),
            #[cfg(feature = "vulkan")]
            DynDecoder::Wgpu(_, device) => *device,
        }
    }

    /// See [`DeviceDecoder::backend_name`].
    pub fn device_name(&self) -> String {
        each!(DynDecoder, self, d => d.backend_name())
    }

    /// See [`DeviceDecoder::step`].
    pub fn step(&mut self, byte: u8) -> Result<Vec<f32>, EngineError> {
        each!(DynDecoder, self, d => d.step(byte))
    }

    /// See [`DeviceDecoder::reset`].
    pub fn reset(&mut self) -> Result<(), EngineError> {
        each!(DynDecoder, self, d => d.reset())
    }

    /// See [`DeviceDecoder::position`].
    pub fn position(&self) -> u64 {
        each!(DynDecoder, self, d => d.position())
    }

    /// See [`DeviceDecoder::state_len`].
    pub fn state_len(&self) -> usize {
        each!(DynDecoder, self, d => d.state_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_model::ModelNetwork;

    /// The erased trainer on the CPU device takes the same steps as the generic one.
    #[test]
    fn dyn_trainer_matches_the_generic_trainer() {
        let config = ModelConfig::genesis(ModelNetwork::Regtest);
        let model = Model::init(config.clone(), 3).unwrap();
        let train = TrainConfig { batch_windows: 2, ..TrainConfig::default() };
        let data =
            rnet_training::DataConfig { window: config.window, holdout_fraction: 0.0, seed: 1 };
        let source = DataSource::from_static(rnet_model::training_text(), data).unwrap();
        let mut erased = Device::Cpu
            .open()
            .unwrap()
            .trainer(model.params(), config.clone(), train.clone(), None)
            .unwrap();
        let mut generic =
            DeviceTrainer::new(CpuBackend::new(), model.params(), config.clone(), train, None)
                .unwrap();
        assert_eq!(erased.device(), Device::Cpu);
        assert_eq!(erased.window(), config.window);
        let a = erased.train_steps(&source, 3).unwrap();
        let b = generic.train_steps(&source, 3).unwrap();
        assert_eq!(a.last, b.last);
        assert_eq!(erased.global_step(), 3);
        assert_eq!(erased.params().unwrap(), generic.params().unwrap());
        let (params, state) = erased.into_parts().unwrap();
        assert_eq!(params.len(), model.params().len());
        assert_eq!(state.step, 3);
    }

    /// The erased decoder gives the generic decoder's logits.
    #[test]
    fn dyn_decoder_matches_the_generic_decoder() {
        let model = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 5).unwrap();
        let mut erased = Device::Cpu.open().unwrap().decoder(&model).unwrap();
        let mut generic = DeviceDecoder::new(CpuBackend::new(), &model).unwrap();
        for &b in b"In the beginning" {
            assert_eq!(erased.step(b).unwrap(), generic.step(b).unwrap());
        }
        assert_eq!(erased.position(), 16);
        erased.reset().unwrap();
        assert_eq!(erased.position(), 0);
        assert_eq!(erased.device(), Device::Cpu);
    }
}
