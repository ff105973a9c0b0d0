//! What generation drives: a recurrent decoder fed one byte at a time that holds the logits of
//! the next byte. Two kinds exist: the CPU engine's [`Session`] ([`CpuDecoder`]), and a decoder on
//! a GPU or other device from `rnet_gpu` ([`DeviceSession`], `rnet-util serve --device …`).
//! [`crate::generate::generate_on`] samples from either the same way.

use rnet_gpu::DynDecoder;

use crate::engine::{Engine, EngineError, Session};

/// A recurrent decoding stream: feed bytes, read the logits of the next one.
pub trait Decoder {
    /// The 256 logits of the next byte, once at least one byte was fed.
    fn logits(&self) -> Option<&[f32]>;

    /// Feeds one byte.
    fn step(&mut self, byte: u8) -> Result<(), EngineError>;

    /// Feeds `bytes` (a prompt), asking `stop` between blocks of work and feeding no more once
    /// it says `true`; returns how many bytes were fed.
    fn prefill_until(
        &mut self,
        bytes: &[u8],
        stop: &dyn Fn() -> bool,
    ) -> Result<usize, EngineError>;
}

/// The CPU engine with one of its sessions.
#[derive(Debug)]
pub struct CpuDecoder<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// The session it steps.
    pub session: &'a mut Session,
}

impl Decoder for CpuDecoder<'_> {
    fn logits(&self) -> Option<&[f32]> {
        self.session.logits()
    }

    fn step(&mut self, byte: u8) -> Result<(), EngineError> {
        self.engine.step(self.session, byte).map(|_| ())
    }

    fn prefill_until(
        &mut self,
        bytes: &[u8],
        stop: &dyn Fn() -> bool,
    ) -> Result<usize, EngineError> {
        self.engine.prefill_until(self.session, bytes, stop)
    }
}

/// Bytes a [`DeviceSession`] feeds between two questions to `stop` during a prefill.
const DEVICE_PREFILL_BLOCK: usize = 64;

/// A device decoder (`rnet_gpu`, full f32 weights on the device) and the logits of its last
/// step. Its numerics follow the device's kernels, within 1e-4 of the canonical forward (tested
/// in `rnet-gpu`); it decodes for chat, never for consensus.
#[derive(Debug)]
pub struct DeviceSession {
    decoder: DynDecoder,
    logits: Option<Vec<f32>>,
}

impl DeviceSession {
    /// Wraps `decoder` (fresh or [`DeviceSession::reset`]).
    pub fn new(decoder: DynDecoder) -> Self {
        Self { decoder, logits: None }
    }

    /// Starts a new stream: zero state, no logits.
    pub fn reset(&mut self) -> Result<(), EngineError> {
        self.logits = None;
        self.decoder.reset().map_err(|e| EngineError::Device(e.to_string()))
    }

    /// The device and adapter, for logs and `/v1/models`.
    pub fn device_name(&self) -> String {
        self.decoder.device_name()
    }
}

impl Decoder for DeviceSession {
    fn logits(&self) -> Option<&[f32]> {
        self.logits.as_deref()
    }

    fn step(&mut self, byte: u8) -> Result<(), EngineError> {
        let logits = self.decoder.step(byte).map_err(|e| EngineError::Device(e.to_string()))?;
        self.logits = Some(logits);
        Ok(())
    }

    fn prefill_until(
        &mut self,
        bytes: &[u8],
        stop: &dyn Fn() -> bool,
    ) -> Result<usize, EngineError> {
        let mut fed = 0;
        for block in bytes.chunks(DEVICE_PREFILL_BLOCK) {
            if stop() {
                break;
            }
            for &b in block {
                self.step(b)?;
            }
            fed += block.len();
        }
        Ok(fed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Precision;
    use rnet_model::{Model, ModelConfig, ModelNetwork};

    #[test]
    fn a_device_session_gives_the_cpu_engines_logits() {
        let model = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 4).unwrap();
        let engine = Engine::new(&model, Precision::F32);
        let mut session = engine.new_session();
        let mut cpu = CpuDecoder { engine: &engine, session: &mut session };
        let device = rnet_gpu::Device::Cpu.open().unwrap().decoder(&model).unwrap();
        let mut dev = DeviceSession::new(device);
        assert!(dev.logits().is_none());
        let prompt = b"In the beginning God created the heaven and the earth. And the earth was";
        assert_eq!(cpu.prefill_until(prompt, &|| false).unwrap(), prompt.len());
        assert_eq!(dev.prefill_until(prompt, &|| false).unwrap(), prompt.len());
        for &b in b" without form" {
            let (a, d) = (cpu.logits().unwrap(), dev.logits().unwrap());
            let scale = a.iter().fold(0.1f32, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(d) {
                assert!((x - y).abs() <= 1e-4 * scale, "{x} vs {y}");
            }
            cpu.step(b).unwrap();
            dev.step(b).unwrap();
        }
        // A stop before the first block feeds nothing; a reset forgets the stream.
        assert_eq!(dev.prefill_until(prompt, &|| true).unwrap(), 0);
        dev.reset().unwrap();
        assert!(dev.logits().is_none());
    }
}
