//! AdamW (decoupled weight decay, bias correction), global-norm gradient clipping, the warmup +
//! cosine learning-rate schedule, and the optimizer state file a miner keeps beside its checkpoint.
//!
//! # State file (version 1)
//!
//! Miner-local, never part of consensus. All integers little-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `RNETADAM` |
//! | 4 | format version `u32` = 1 |
//! | 8 | `step` `u64`: optimizer updates taken so far |
//! | 4 × 5 | `d_model`, `n_layers`, `n_slots`, `d_ff`, `window` (`u32` each) |
//! | 4 | number of conv branches `u32` |
//! | 4 × branches | kernel sizes `u32` |
//! | 8 | `n` = parameter count `u64`, must equal the config's layout total |
//! | 4 × n | first moments `m`, f32, in the checkpoint's schema order |
//! | 4 × n | second moments `v`, f32 |
//! | 32 | Keccak-256 of every preceding byte |
//!
//! Loading is strict: wrong magic, unknown version, an invalid config, a count that does not match
//! the config, a short or long file, a bad checksum, or a non-finite (or negative second) moment is a
//! typed [`StateError`].

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rnet_model::config::ConfigError;
use rnet_model::{Layout, ModelConfig};
use thiserror::Error;

use crate::trainer::TrainConfig;

/// Magic bytes at the start of an optimizer state file.
pub const STATE_MAGIC: [u8; 8] = *b"RNETADAM";
/// Current state file format version.
pub const STATE_VERSION: u32 = 1;

/// Why an optimizer state could not be read, written or adapted.
#[derive(Debug, Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("optimizer state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with [`STATE_MAGIC`].
    #[error("not an optimizer state file (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported optimizer state version {0}")]
    UnsupportedVersion(u32),
    /// The file ends before the field named.
    #[error("optimizer state truncated in {0}")]
    Truncated(&'static str),
    /// Bytes after the checksum.
    #[error("optimizer state has {0} trailing bytes")]
    TrailingBytes(usize),
    /// The embedded model config is not a valid V5 shape.
    #[error("optimizer state has an invalid config: {0}")]
    Config(#[from] ConfigError),
    /// The declared parameter count does not match the config.
    #[error("optimizer state holds {found} moments but its config has {expected} parameters")]
    CountMismatch {
        /// Parameters of the config.
        expected: u64,
        /// Count in the file.
        found: u64,
    },
    /// The checksum does not match the contents.
    #[error("optimizer state checksum mismatch (corrupt file)")]
    Checksum,
    /// A moment is NaN or infinite, or a second moment negative.
    #[error("optimizer state holds a non-finite or negative moment at index {0}")]
    BadMoment(usize),
    /// The state cannot be carried to the requested shape (a dimension shrinks, or the conv
    /// branches differ).
    #[error("optimizer state of shape {from} cannot be remapped to {to}")]
    Incompatible {
        /// Shape of the state.
        from: String,
        /// Requested shape.
        to: String,
    },
}

/// AdamW moments and step counter for one model shape, in the parameters' [`Layout`].
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Number of updates taken (drives bias correction and the schedule).
    pub step: u64,
    /// Shape the moments belong to.
    pub config: ModelConfig,
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
}

fn shape_str(c: &ModelConfig) -> String {
    format!(
        "d={} L={} S={} F={} K={:?} T={}",
        c.d_model, c.n_layers, c.n_slots, c.d_ff, c.kernel_sizes, c.window
    )
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], StateError> {
        let end = self.pos.checked_add(n).ok_or(StateError::Truncated(what))?;
        let s = self.bytes.get(self.pos..end).ok_or(StateError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, StateError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, StateError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

impl OptimizerState {
    /// Fresh state (zero moments, step 0) for `config`.
    pub fn new(config: &ModelConfig) -> Self {
        let n = Layout::new(config).total;
        Self { step: 0, config: config.clone(), m: vec![0.0; n], v: vec![0.0; n] }
    }

    /// The conventional state path for a checkpoint: the checkpoint path with `.opt` appended.
    pub fn path_for_checkpoint(checkpoint: &Path) -> PathBuf {
        let mut s = checkpoint.as_os_str().to_owned();
        s.push(".opt");
        PathBuf::from(s)
    }

    /// Serializes in the version-1 format (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let c = &self.config;
        let mut out = Vec::with_capacity(80 + 8 * self.m.len());
        out.extend_from_slice(&STATE_MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        out.extend_from_slice(&self.step.to_le_bytes());
        for x in [c.d_model, c.n_layers, c.n_slots, c.d_ff, c.window, c.kernel_sizes.len()] {
            out.extend_from_slice(&(x as u32).to_le_bytes());
        }
        for &k in &c.kernel_sizes {
            out.extend_from_slice(&(k as u32).to_le_bytes());
        }
        out.extend_from_slice(&(self.m.len() as u64).to_le_bytes());
        for x in self.m.iter().chain(&self.v) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let sum = rnet_crypto::keccak256(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Parses the version-1 format strictly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8, "magic")? != STATE_MAGIC {
            return Err(StateError::BadMagic);
        }
        let version = r.u32("version")?;
        if version != STATE_VERSION {
            return Err(StateError::UnsupportedVersion(version));
        }
        let step = r.u64("step")?;
        let mut dims = [0usize; 6];
        for x in &mut dims {
            *x = r.u32("config")? as usize;
        }
        let [d_model, n_layers, n_slots, d_ff, window, branches] = dims;
        if branches == 0 || branches > rnet_model::config::MAX_CONV_BRANCHES {
            return Err(ConfigError::BranchCount(branches).into());
        }
        let mut kernel_sizes = Vec::with_capacity(branches);
        for _ in 0..branches {
            kernel_sizes.push(r.u32("kernel sizes")? as usize);
        }
        let config = ModelConfig { d_model, n_layers, n_slots, d_ff, kernel_sizes, window };
        config.validate()?;
        let expected = Layout::new(&config).total as u64;
        let found = r.u64("parameter count")?;
        if found != expected {
            return Err(StateError::CountMismatch { expected, found });
        }
        let n = expected as usize;
        // Check the whole length before allocating anything proportional to it.
        let body = n.checked_mul(8).ok_or(StateError::Truncated("moments"))?;
        let need = r.pos + body + 32;
        if bytes.len() < need {
            return Err(StateError::Truncated(if bytes.len() < r.pos + body {
                "moments"
            } else {
                "checksum"
            }));
        }
        if bytes.len() > need {
            return Err(StateError::TrailingBytes(bytes.len() - need));
        }
        let sum = rnet_crypto::keccak256(&bytes[..need - 32]);
        if sum[..] != bytes[need - 32..] {
            return Err(StateError::Checksum);
        }
        let floats = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        };
        let m = floats(r.take(4 * n, "moments")?);
        let v = floats(r.take(4 * n, "moments")?);
        if let Some(i) = m.iter().position(|x| !x.is_finite()) {
            return Err(StateError::BadMoment(i));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite() || *x < 0.0) {
            return Err(StateError::BadMoment(i));
        }
        Ok(Self { step, config, m, v })
    }

    /// Writes the state to `path` (through a temporary file and a rename, so a crash never leaves
    /// a half-written state behind).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io { path: path.to_path_buf(), source };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&self.to_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads and strictly parses a state file.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let bytes = std::fs::read(path)
            .map_err(|source| StateError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes)
    }

    /// Carries the moments to a grown shape (the rule the miner uses after `rnet_model`'s growth).
    ///
    /// Rule: tensors are matched by schema name; an existing tensor keeps its moments at the same
    /// multi-index (old units keep their indices, growth appends), every new entry — new rows,
    /// columns, layers — starts at zero; the step counter is kept (bias correction is then ≈ 1, so
    /// new entries take a few larger-than-usual Adam steps, bounded by the learning rate). The conv
    /// branches and slot count must be unchanged and no dimension may shrink.
    pub fn remap(&self, to: &ModelConfig) -> Result<Self, StateError> {
        if *to == self.config {
            return Ok(self.clone());
        }
        let from = &self.config;
        let incompatible = || StateError::Incompatible { from: shape_str(from), to: shape_str(to) };
        if to.kernel_sizes != from.kernel_sizes
            || to.n_slots != from.n_slots
            || to.d_model < from.d_model
            || to.d_ff < from.d_ff
            || to.n_layers < from.n_layers
        {
            return Err(incompatible());
        }
        let old = Layout::new(from);
        let new = Layout::new(to);
        let mut out = OptimizerState::new(to);
        out.step = self.step;
        for t in &new.tensors {
            let Some(o) = old.tensors.iter().find(|o| o.name == t.name) else { continue };
            if o.shape.len() != t.shape.len() || o.shape.iter().zip(&t.shape).any(|(a, b)| a > b) {
                return Err(incompatible());
            }
            let (rows_o, cols_o) =
                if o.shape.len() == 1 { (1, o.shape[0]) } else { (o.shape[0], o.shape[1]) };
            let cols_n = *t.shape.last().unwrap_or(&1);
            for r in 0..rows_o {
                let src = o.offset + r * cols_o..o.offset + (r + 1) * cols_o;
                let dst = t.offset + r * cols_n..t.offset + r * cols_n + cols_o;
                out.m[dst.clone()].copy_from_slice(&self.m[src.clone()]);
                out.v[dst].copy_from_slice(&self.v[src]);
            }
        }
        Ok(out)
    }
}

/// Learning rate for update number `step` (1-based): linear warmup from `lr / warmup` to `lr` over
/// `warmup` updates, then cosine decay to `lr · min_lr_ratio` at `total_steps`, constant after.
pub fn lr_at(train: &TrainConfig, step: u64) -> f32 {
    let lr = train.lr as f64;
    let min = lr * train.min_lr_ratio as f64;
    let t = step.max(1);
    if train.warmup > 0 && t <= train.warmup {
        return (lr * t as f64 / train.warmup as f64) as f32;
    }
    if t >= train.total_steps {
        return min as f32;
    }
    let span = (train.total_steps - train.warmup) as f64;
    let progress = (t - train.warmup) as f64 / span;
    (min + 0.5 * (lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
}

/// Euclidean norm of the whole gradient, accumulated in `f64`.
pub fn global_norm(grads: &[f32]) -> f64 {
    grads
        .par_chunks(1 << 14)
        .map(|c| c.iter().map(|&g| (g as f64) * (g as f64)).sum::<f64>())
        .collect::<Vec<f64>>()
        .into_iter()
        .sum::<f64>()
        .sqrt()
}

/// Factor that brings a gradient of norm `norm` to at most `clip` (1 when `clip ≤ 0` or not needed).
pub fn clip_scale(norm: f64, clip: f32) -> f32 {
    if clip > 0.0 && norm > clip as f64 { (clip as f64 / norm) as f32 } else { 1.0 }
}

/// Hyper-parameters of one AdamW update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate of this update.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Decoupled weight decay (applied to matrices, not to RMSNorm gains).
    pub weight_decay: f32,
}

impl AdamW {
    /// One AdamW update of `params` with `grads · grad_scale`; increments `state.step`.
    /// Weight decay is decoupled: `θ ← θ (1 − lr·wd) − lr · m̂ / (√v̂ + ε)`, applied to every tensor
    /// of rank 2 (matrices, embedding, head, conv kernels, slot keys and values) and not to the
    /// RMSNorm gains.
    pub fn update(
        &self,
        params: &mut [f32],
        grads: &[f32],
        grad_scale: f32,
        state: &mut OptimizerState,
        layout: &Layout,
    ) {
        assert_eq!(params.len(), layout.total);
        assert_eq!(grads.len(), layout.total);
        assert_eq!(state.m.len(), layout.total);
        state.step += 1;
        let t = state.step.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - (self.beta1 as f64).powi(t);
        let bc2 = 1.0 - (self.beta2 as f64).powi(t);
        let step_size = (self.lr as f64 / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        for spec in &layout.tensors {
            let decay = if spec.shape.len() >= 2 { 1.0 - self.lr * self.weight_decay } else { 1.0 };
            let r = spec.range();
            let (m, v) = (&mut state.m[r.clone()], &mut state.v[r.clone()]);
            let scalars = [grad_scale, decay, step_size, inv_sqrt_bc2];
            self.update_range(&mut params[r.clone()], &grads[r], m, v, scalars);
        }
    }

    /// One AdamW update of a flat trainable vector made of `segments` (a range and whether weight
    /// decay applies to it), e.g. the low-rank factors of [`crate::lowrank`]: like
    /// [`AdamW::update`] without a model layout. `params`, `grads`, `m` and `v` have one entry per
    /// trainable value; increments `step` (which drives the bias correction).
    #[allow(clippy::too_many_arguments)]
    pub fn update_segments(
        &self,
        params: &mut [f32],
        grads: &[f32],
        grad_scale: f32,
        m: &mut [f32],
        v: &mut [f32],
        step: &mut u64,
        segments: &[(std::ops::Range<usize>, bool)],
    ) {
        assert_eq!(params.len(), grads.len());
        assert_eq!(m.len(), params.len());
        assert_eq!(v.len(), params.len());
        *step += 1;
        let t = (*step).min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - (self.beta1 as f64).powi(t);
        let bc2 = 1.0 - (self.beta2 as f64).powi(t);
        let step_size = (self.lr as f64 / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        for (r, decays) in segments {
            let decay = if *decays { 1.0 - self.lr * self.weight_decay } else { 1.0 };
            let scalars = [grad_scale, decay, step_size, inv_sqrt_bc2];
            let (mr, vr) = (&mut m[r.clone()], &mut v[r.clone()]);
            self.update_range(&mut params[r.clone()], &grads[r.clone()], mr, vr, scalars);
        }
    }

    /// The AdamW arithmetic on one tensor or segment (parallel over chunks); `scalars` are the
    /// gradient scale, the decay factor, the bias-corrected step size and `1/√(1−β₂ᵗ)`.
    #[inline]
    fn update_range(
        &self,
        params: &mut [f32],
        grads: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        scalars: [f32; 4],
    ) {
        let [grad_scale, decay, step_size, inv_sqrt_bc2] = scalars;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        const CH: usize = 1 << 13;
        params
            .par_chunks_mut(CH)
            .zip(m.par_chunks_mut(CH))
            .zip(v.par_chunks_mut(CH))
            .zip(grads.par_chunks(CH))
            .for_each(|(((p, m), v), g)| {
                for i in 0..p.len() {
                    let gi = g[i] * grad_scale;
                    m[i] = b1 * m[i] + (1.0 - b1) * gi;
                    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                    let denom = v[i].sqrt() * inv_sqrt_bc2 + eps;
                    p[i] = p[i] * decay - step_size * m[i] / denom;
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnet_model::ModelNetwork;

    fn regtest() -> ModelConfig {
        ModelConfig::genesis(ModelNetwork::Regtest)
    }

    fn filled(c: &ModelConfig, step: u64) -> OptimizerState {
        let mut s = OptimizerState::new(c);
        s.step = step;
        for (i, (m, v)) in s.m.iter_mut().zip(s.v.iter_mut()).enumerate() {
            *m = (i as f32 * 0.37).sin();
            *v = (i as f32 * 0.11).cos().abs();
        }
        s
    }

    #[test]
    fn state_round_trips() {
        let s = filled(&regtest(), 1234);
        let b = s.to_bytes();
        assert_eq!(OptimizerState::from_bytes(&b).unwrap(), s);
        let dir = std::env::temp_dir().join(format!("rnet-opt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("ckpt.opt");
        s.save(&p).unwrap();
        assert_eq!(OptimizerState::load(&p).unwrap(), s);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            OptimizerState::path_for_checkpoint(Path::new("a/b.ckpt")),
            PathBuf::from("a/b.ckpt.opt")
        );
    }

    #[test]
    fn state_loading_is_strict() {
        let s = filled(&regtest(), 7);
        let good = s.to_bytes();
        let mut b = good.clone();
        b[0] ^= 1;
        assert!(matches!(OptimizerState::from_bytes(&b), Err(StateError::BadMagic)));
        let mut b = good.clone();
        b[8] = 9;
        assert!(matches!(OptimizerState::from_bytes(&b), Err(StateError::UnsupportedVersion(9))));
        for cut in [0, 5, 30, good.len() / 2, good.len() - 1] {
            assert!(
                matches!(OptimizerState::from_bytes(&good[..cut]), Err(StateError::Truncated(_))),
                "cut at {cut}"
            );
        }
        let mut b = good.clone();
        b.push(0);
        assert!(matches!(OptimizerState::from_bytes(&b), Err(StateError::TrailingBytes(1))));
        let mut b = good.clone();
        let mid = good.len() / 2;
        b[mid] ^= 0x40;
        assert!(matches!(OptimizerState::from_bytes(&b), Err(StateError::Checksum)));
        // d_ff field (offset 20 + 12) changed: config invalid.
        let mut b = good.clone();
        b[32] ^= 1;
        assert!(matches!(OptimizerState::from_bytes(&b), Err(StateError::Config(_))));
        // A parameter count that does not match the config.
        let mut c = s.clone();
        c.m.pop();
        c.v.pop();
        assert!(matches!(
            OptimizerState::from_bytes(&c.to_bytes()),
            Err(StateError::CountMismatch { .. })
        ));
        // A NaN moment with a valid checksum.
        let mut c = s.clone();
        c.m[3] = f32::NAN;
        assert!(matches!(OptimizerState::from_bytes(&c.to_bytes()), Err(StateError::BadMoment(3))));
        let mut c = s.clone();
        c.v[5] = -1.0;
        assert!(matches!(OptimizerState::from_bytes(&c.to_bytes()), Err(StateError::BadMoment(5))));
        let missing = std::env::temp_dir().join("rnet-no-such-state-file.opt");
        assert!(matches!(OptimizerState::load(&missing), Err(StateError::Io { .. })));
    }

    #[test]
    fn remap_keeps_old_moments_and_zeroes_new_entries() {
        let from = regtest();
        let to = from.with_shape(from.d_model + 2, from.n_layers + 1);
        let s = filled(&from, 50);
        let r = s.remap(&to).unwrap();
        assert_eq!(r.step, 50);
        let (lo, ln) = (Layout::new(&from), Layout::new(&to));
        for t in &ln.tensors {
            match lo.tensors.iter().find(|o| o.name == t.name) {
                None => assert!(r.m[t.range()].iter().all(|&x| x == 0.0), "{}", t.name),
                Some(o) => {
                    let cols_o = *o.shape.last().unwrap();
                    let cols_n = *t.shape.last().unwrap();
                    let rows_n = if t.shape.len() == 1 { 1 } else { t.shape[0] };
                    let rows_o = if o.shape.len() == 1 { 1 } else { o.shape[0] };
                    for row in 0..rows_n {
                        for col in 0..cols_n {
                            let got = (
                                r.m[t.offset + row * cols_n + col],
                                r.v[t.offset + row * cols_n + col],
                            );
                            let want = if row < rows_o && col < cols_o {
                                let k = o.offset + row * cols_o + col;
                                (s.m[k], s.v[k])
                            } else {
                                (0.0, 0.0)
                            };
                            assert_eq!(got, want, "{}[{row},{col}]", t.name);
                        }
                    }
                }
            }
        }
        assert!(matches!(r.remap(&from), Err(StateError::Incompatible { .. })));
        assert_eq!(s.remap(&from).unwrap(), s);
    }

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let tc = TrainConfig {
            lr: 1e-3,
            warmup: 10,
            total_steps: 110,
            min_lr_ratio: 0.1,
            ..TrainConfig::default()
        };
        assert!((lr_at(&tc, 1) - 1e-4).abs() < 1e-9);
        assert!((lr_at(&tc, 10) - 1e-3).abs() < 1e-9);
        assert!((lr_at(&tc, 60) - 0.55e-3).abs() < 1e-7);
        assert!((lr_at(&tc, 110) - 1e-4).abs() < 1e-9);
        assert!((lr_at(&tc, 10_000) - 1e-4).abs() < 1e-9);
        let mut prev = f32::MAX;
        for s in 10..=110 {
            let l = lr_at(&tc, s);
            assert!(l <= prev);
            prev = l;
        }
    }

    #[test]
    fn clipping_and_adamw_first_step() {
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert!((clip_scale(4.0, 1.0) - 0.25).abs() < 1e-7);
        assert_eq!(clip_scale(4.0, 0.0), 1.0);
        assert!((global_norm(&[3.0, 4.0]) - 5.0).abs() < 1e-12);

        // On the first step AdamW moves every weight by lr·sign(g) (bias correction), plus decay.
        let c = regtest();
        let layout = Layout::new(&c);
        let mut p = vec![1.0f32; layout.total];
        let g: Vec<f32> = (0..layout.total).map(|i| if i % 2 == 0 { 0.3 } else { -2.0 }).collect();
        let mut st = OptimizerState::new(&c);
        let opt = AdamW { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-12, weight_decay: 0.1 };
        opt.update(&mut p, &g, 1.0, &mut st, &layout);
        assert_eq!(st.step, 1);
        for spec in &layout.tensors {
            let decay = if spec.shape.len() >= 2 { 1.0 - 0.001 } else { 1.0 };
            for i in spec.range() {
                let want = decay - 0.01 * g[i].signum();
                assert!((p[i] - want).abs() < 1e-6, "{} {} {}", spec.name, p[i], want);
            }
        }
    }
}
