//! [`DeviceDecoder`]: recurrent decoding on a [`Backend`] — one byte in, the next byte's 256 logits
//! out — with O(1) state per layer, as `rnet_model::step` does on the CPU: the minGRU hidden vector
//! `h [d]` and the last `max_kernel − 1` conv inputs (zero at the start, the window forward's
//! padding). Each step shifts the conv history by one row (two buffers, ping-pong), runs the merged
//! conv over `history + 1` rows and keeps the last output row, and advances `h` with
//! [`Backend::scan_step`].

use rnet_model::{Layout, Model, VOCAB};

use super::EngineError;
use super::forward::merge_conv;
use super::params::{DeviceTensors, TensorIdx};
use super::products::{xw, xwt, xwt_cols};
use crate::Backend;

/// Recurrent state of one layer: `h [d]` and the conv inputs of the last `hist` positions plus room
/// for the current one, `[hist + 1, d]` (oldest first), in two buffers swapped every step.
struct LayerState<B: Backend> {
    h: B::Buffer,
    pad: B::Buffer,
    spare: B::Buffer,
    weff: B::Buffer,
}

/// One generation session of a model on a device.
pub struct DeviceDecoder<B: Backend> {
    be: B,
    model: rnet_model::ModelConfig,
    idx: TensorIdx,
    params: DeviceTensors<B>,
    layers: Vec<LayerState<B>>,
    hist: usize,
    x: B::Buffer,
    u: B::Buffer,
    r: B::Buffer,
    c: B::Buffer,
    zh: B::Buffer,
    v: B::Buffer,
    q: B::Buffer,
    alpha: B::Buffer,
    mem: B::Buffer,
    gu: B::Buffer,
    p: B::Buffer,
    logits: B::Buffer,
    position: u64,
}

impl<B: Backend> std::fmt::Debug for DeviceDecoder<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceDecoder")
            .field("device", &self.be.name())
            .field("config", &self.model)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> DeviceDecoder<B> {
    /// Uploads `model` to `be` (parameters and the merged conv kernels) and starts from the zero
    /// state.
    pub fn new(be: B, model: &Model) -> Result<Self, EngineError> {
        let config = model.config().clone();
        let layout: &Layout = model.layout();
        let idx = TensorIdx::new(layout);
        let params = DeviceTensors::upload(&be, layout, model.params())?;
        let (d, s, f) = (config.d_model, config.n_slots, config.d_ff);
        let kmax = config.max_kernel();
        let hist = kmax - 1;
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in &idx.layers {
            let mut weff = be.zeros(kmax * d)?;
            merge_conv(&be, &mut weff, &params, &l.conv, &config.kernel_sizes, d)?;
            layers.push(LayerState {
                h: be.zeros(d)?,
                pad: be.zeros((hist + 1) * d)?,
                spare: be.zeros((hist + 1) * d)?,
                weff,
            });
        }
        Ok(Self {
            x: be.zeros(d)?,
            u: be.zeros(d)?,
            r: be.zeros(1)?,
            c: be.zeros((hist + 1) * d)?,
            zh: be.zeros(2 * d)?,
            v: be.zeros(d)?,
            q: be.zeros(d)?,
            alpha: be.zeros(s)?,
            mem: be.zeros(d)?,
            gu: be.zeros(2 * f)?,
            p: be.zeros(f)?,
            logits: be.zeros(VOCAB)?,
            be,
            model: config,
            idx,
            params,
            layers,
            hist,
            position: 0,
        })
    }

    /// Back to the start state (zero `h` and conv history).
    pub fn reset(&mut self) -> Result<(), EngineError> {
        for l in &mut self.layers {
            self.be.fill(&mut l.h, 0.0)?;
            self.be.fill(&mut l.pad, 0.0)?;
        }
        self.position = 0;
        Ok(())
    }

    /// The device's name (for logs).
    pub fn backend_name(&self) -> String {
        self.be.name()
    }

    /// Bytes consumed since creation or the last reset.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Floats of recurrent state held on the device (independent of how many bytes were consumed).
    pub fn state_len(&self) -> usize {
        self.model.n_layers * (self.model.d_model + self.hist * self.model.d_model)
    }

    /// Consumes one byte and returns the 256 logits for the next byte.
    pub fn step(&mut self, byte: u8) -> Result<Vec<f32>, EngineError> {
        let be = &self.be;
        let cfg = &self.model;
        let (d, s, f) = (cfg.d_model, cfg.n_slots, cfg.d_ff);
        let (hist, kmax) = (self.hist, cfg.max_kernel());
        let scale = 1.0 / (d as f32).sqrt();
        let prm = |i: usize| self.params.get(i);
        let token = be.upload_tokens(&[byte])?;
        be.embed_forward(&mut self.x, prm(self.idx.embed), &token, 1, d)?;
        for (l, st) in self.idx.layers.iter().zip(&mut self.layers) {
            // Conv: history shifted by one row, the new normed input appended, last output row.
            be.rmsnorm_forward(&mut self.u, &mut self.r, &self.x, prm(l.norm1), 1, d)?;
            be.axpby(&mut st.spare, 0, 1.0, &st.pad, d, 0.0, hist * d)?;
            be.axpby(&mut st.spare, hist * d, 1.0, &self.u, 0, 0.0, d)?;
            std::mem::swap(&mut st.pad, &mut st.spare);
            be.conv_forward(&mut self.c, &st.pad, &st.weff, 1, hist + 1, d, kmax)?;
            // minGRU step on the last conv row, x += wo·h.
            let mut wz = xwt_cols(1, d, d, 2 * d, 0);
            wz.offset_a = hist * d;
            let mut wh = xwt_cols(1, d, d, 2 * d, d);
            wh.offset_a = hist * d;
            be.matmul(&wz, &self.c, prm(l.wz), &mut self.zh)?;
            be.matmul(&wh, &self.c, prm(l.wh), &mut self.zh)?;
            be.scan_step(&mut st.h, &self.zh, d)?;
            be.matmul(&xwt(1, d, d, 1.0, 1.0), &st.h, prm(l.wo), &mut self.x)?;
            // Slot memory.
            be.rmsnorm_forward(&mut self.v, &mut self.r, &self.x, prm(l.norm2), 1, d)?;
            be.matmul(&xwt(1, d, d, 1.0, 0.0), &self.v, prm(l.wq), &mut self.q)?;
            be.matmul(&xwt(1, d, s, scale, 0.0), &self.q, prm(l.keys), &mut self.alpha)?;
            be.softmax_forward(&mut self.alpha, 1, s)?;
            be.matmul(&xw(1, s, d, 0.0), &self.alpha, prm(l.values), &mut self.mem)?;
            be.matmul(&xwt(1, d, d, 1.0, 1.0), &self.mem, prm(l.wm), &mut self.x)?;
            // SwiGLU.
            be.rmsnorm_forward(&mut self.v, &mut self.r, &self.x, prm(l.norm3), 1, d)?;
            be.matmul(&xwt_cols(1, d, f, 2 * f, 0), &self.v, prm(l.w_gate), &mut self.gu)?;
            be.matmul(&xwt_cols(1, d, f, 2 * f, f), &self.v, prm(l.w_up), &mut self.gu)?;
            be.swiglu_forward(&mut self.p, &self.gu, 1, f)?;
            be.matmul(&xwt(1, f, d, 1.0, 1.0), &self.p, prm(l.w_down), &mut self.x)?;
        }
        be.rmsnorm_forward(&mut self.v, &mut self.r, &self.x, prm(self.idx.norm_f), 1, d)?;
        be.matmul(&xwt(1, d, VOCAB, 1.0, 0.0), &self.v, prm(self.idx.head), &mut self.logits)?;
        self.position += 1;
        Ok(be.download(&self.logits)?)
    }
}
