//! Device copies of a model's tensors: one buffer per tensor of the checkpoint [`Layout`], in schema
//! order, so every backend operation can take a tensor as a whole buffer (no offsets needed). The
//! same type holds the parameters, their gradients and the two AdamW moments; it is filled from and
//! returned to the flat CPU buffer (`rnet_model::Model::params`, `OptimizerState::m`/`v`).

use rnet_model::Layout;

use super::EngineError;
use crate::Backend;

/// Positions (in [`Layout::tensors`]) of one layer's tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LayerIdx {
    pub(crate) norm1: usize,
    pub(crate) conv: Vec<usize>,
    pub(crate) wz: usize,
    pub(crate) wh: usize,
    pub(crate) wo: usize,
    pub(crate) norm2: usize,
    pub(crate) wq: usize,
    pub(crate) keys: usize,
    pub(crate) values: usize,
    pub(crate) wm: usize,
    pub(crate) norm3: usize,
    pub(crate) w_gate: usize,
    pub(crate) w_up: usize,
    pub(crate) w_down: usize,
}

/// Positions (in [`Layout::tensors`]) of every tensor the model code names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TensorIdx {
    pub(crate) embed: usize,
    pub(crate) layers: Vec<LayerIdx>,
    pub(crate) norm_f: usize,
    pub(crate) head: usize,
}

impl TensorIdx {
    /// Finds each named range of `layout` among its tensors (by start offset; every tensor of a
    /// valid config is non-empty, so offsets are unique).
    pub(crate) fn new(layout: &Layout) -> Self {
        let at = |r: &std::ops::Range<usize>| {
            layout
                .tensors
                .iter()
                .position(|t| t.offset == r.start)
                .expect("every layout range is one of its tensors")
        };
        let layers = layout
            .layers
            .iter()
            .map(|l| LayerIdx {
                norm1: at(&l.norm1),
                conv: l.conv.iter().map(at).collect(),
                wz: at(&l.wz),
                wh: at(&l.wh),
                wo: at(&l.wo),
                norm2: at(&l.norm2),
                wq: at(&l.wq),
                keys: at(&l.keys),
                values: at(&l.values),
                wm: at(&l.wm),
                norm3: at(&l.norm3),
                w_gate: at(&l.w_gate),
                w_up: at(&l.w_up),
                w_down: at(&l.w_down),
            })
            .collect();
        Self {
            embed: at(&layout.embed),
            layers,
            norm_f: at(&layout.norm_f),
            head: at(&layout.head),
        }
    }
}

/// One device buffer per tensor of a [`Layout`], in schema order.
pub struct DeviceTensors<B: Backend> {
    bufs: Vec<B::Buffer>,
}

impl<B: Backend> std::fmt::Debug for DeviceTensors<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTensors").field("tensors", &self.bufs.len()).finish_non_exhaustive()
    }
}

impl<B: Backend> DeviceTensors<B> {
    /// Uploads the flat buffer `flat` (schema order, `layout.total` values) tensor by tensor.
    pub fn upload(be: &B, layout: &Layout, flat: &[f32]) -> Result<Self, EngineError> {
        if flat.len() != layout.total {
            return Err(EngineError::ParamCount { expected: layout.total, found: flat.len() });
        }
        let bufs =
            layout.tensors.iter().map(|t| be.upload(&flat[t.range()])).collect::<Result<_, _>>()?;
        Ok(Self { bufs })
    }

    /// Overwrites every tensor with its part of `flat` (schema order, `layout.total` values), in
    /// place ([`Backend::upload_into`]). A length that differs changes nothing.
    pub fn write(&mut self, be: &B, layout: &Layout, flat: &[f32]) -> Result<(), EngineError> {
        if flat.len() != layout.total || self.bufs.len() != layout.tensors.len() {
            return Err(EngineError::ParamCount { expected: layout.total, found: flat.len() });
        }
        for (buf, t) in self.bufs.iter_mut().zip(&layout.tensors) {
            be.upload_into(buf, &flat[t.range()])?;
        }
        Ok(())
    }

    /// Zero buffers shaped like `layout` (fresh gradients or moments).
    pub fn zeros(be: &B, layout: &Layout) -> Result<Self, EngineError> {
        let bufs = layout.tensors.iter().map(|t| be.zeros(t.len())).collect::<Result<_, _>>()?;
        Ok(Self { bufs })
    }

    /// Downloads every tensor into one flat buffer in schema order (waits for queued work).
    pub fn download(&self, be: &B, layout: &Layout) -> Result<Vec<f32>, EngineError> {
        let mut flat = vec![0.0f32; layout.total];
        for (t, buf) in layout.tensors.iter().zip(&self.bufs) {
            let v = be.download(buf)?;
            flat[t.range()].copy_from_slice(&v);
        }
        Ok(flat)
    }

    /// Sets every tensor to zero.
    pub fn clear(&mut self, be: &B) -> Result<(), EngineError> {
        for b in &mut self.bufs {
            be.fill(b, 0.0)?;
        }
        Ok(())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// True when there is no tensor (never for a valid layout).
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The buffer of tensor `i` (schema order).
    pub fn get(&self, i: usize) -> &B::Buffer {
        &self.bufs[i]
    }

    /// The buffer of tensor `i`, mutably.
    pub fn get_mut(&mut self, i: usize) -> &mut B::Buffer {
        &mut self.bufs[i]
    }

    /// All buffers in schema order.
    pub fn iter(&self) -> impl Iterator<Item = &B::Buffer> {
        self.bufs.iter()
    }

    /// All buffers in schema order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut B::Buffer> {
        self.bufs.iter_mut()
    }
}
