//! The recurrent decode engine: a checkpoint's weights repacked for one-byte-at-a-time inference,
//! and the per-session state (minGRU `h` and a conv ring buffer per layer, O(1) in context length).
//!
//! Per layer the engine computes exactly the network of `docs/protocol.md` Part III:
//!
//! 1. `u = RMSNorm(x)·γ1` is written into the layer's ring buffer (the last `max K` inputs);
//!    `c = Σ_k W_eff[k] ⊙ u_{t−k}` where `W_eff[k] = Σ_{b: k < K_b} conv.b[k]` merges the branches
//!    at load (the conv is linear, so this is the same sum regrouped).
//! 2. minGRU: `[zp; hp] = [Wz; Wh] c` in one product, `z = σ(zp)`,
//!    `h = (1 − z) ⊙ h + z ⊙ g(hp)`, `x += Wo h`.
//! 3. Slot memory with the two linear maps folded into the slot tables at load:
//!    `score = KQ v` with `KQ = (keys · Wq) / sqrt(d)` (`[S, d]`), `α = softmax(score)`,
//!    `x += MV α` with `MV = Wm · valuesᵀ` (`[d, S]`). This is the same function as
//!    `Wm (Σ_s α_s values_s)` after `q = Wq v`, with `2·S·d` weights read instead of
//!    `2·d² + 2·S·d`.
//! 4. SwiGLU: `[g; u] = [W_gate; W_up] w`, `x += W_down (SiLU(g) ⊙ u)`.
//!
//! then `logits = head · (RMSNorm(x)·γf)`. Sums are regrouped and vectorised, so results equal the
//! canonical forward only within a tolerance (tested at 1e-4 relative for f32).
//!
//! Weights are f32 or int8 with one f32 scale per output row ([`Precision`]); the embedding table,
//! the merged conv taps and the norm gains stay f32 in both. Sessions of int8 engines keep the
//! conv history in f16 where the CPU converts it in hardware (x86-64 with AVX2 and F16C: half the
//! state and half the history's reads per step). In int8 decode on AVX2 machines the input vector
//! of each product is quantised too, to int8 in blocks of 32 with one f32 scale per block
//! ([`kernels::quantize_q8`]), so the inner loop is exact integer multiply-adds; prefill (and
//! machines without AVX2) multiply the int8 weights by f32 activations.
//!
//! Prefill runs the prompt through the same layers in blocks of up to [`PREFILL_BLOCK`] positions,
//! with matrix–matrix products (each weight is read once per block instead of once per byte); the
//! minGRU recurrence and the ring buffer are stepped position by position inside the block.

use rayon::prelude::*;
use rnet_model::{Model, ModelConfig, VOCAB};
use thiserror::Error;

use crate::kernels::{self, Matrix, Store};

mod decode;

use crate::line_buf::{LineBuf, Lines};
pub use decode::BARRIERS_PER_LAYER;
pub(crate) use decode::part;
use decode::{DecodeThreads, ThreadScratch};

/// Positions per prefill block.
pub const PREFILL_BLOCK: usize = 64;

/// Weight precision of an [`Engine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 weights, as in the checkpoint.
    F32,
    /// int8 weights with one f32 scale per output row (symmetric, `scale = max|row| / 127`).
    Int8,
}

impl Precision {
    /// `"f32"` or `"int8"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "int8" | "i8" | "q8" => Ok(Precision::Int8),
            other => Err(EngineError::UnknownPrecision(other.to_string())),
        }
    }
}

/// Errors of the engine.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EngineError {
    /// A session made for another model shape was used with this engine.
    #[error(
        "session is for d = {session_d}, L = {session_layers}; engine has d = {engine_d}, L = {engine_layers}"
    )]
    SessionMismatch {
        /// Width the session was made for.
        session_d: usize,
        /// Depth the session was made for.
        session_layers: usize,
        /// The engine's width.
        engine_d: usize,
        /// The engine's depth.
        engine_layers: usize,
    },
    /// A session whose conv history has another precision than this engine's sessions (int8
    /// engines keep it in f16 where the CPU converts f16 in hardware, f32 engines in f32).
    #[error("session keeps its conv history in {session}; this engine's sessions in {engine}")]
    SessionHistory {
        /// `"f16"` or `"f32"`: the session's conv history.
        session: &'static str,
        /// The same for this engine's sessions.
        engine: &'static str,
    },
    /// A precision name other than `f32` or `int8`.
    #[error("unknown precision {0:?} (expected f32 or int8)")]
    UnknownPrecision(String),
    /// A device decoder (`rnet_gpu`) failed.
    #[error("device: {0}")]
    Device(String),
}

/// A session's conv history: `L` histories of `R` rows of `d` in the layout of
/// [`kernels::conv_index`], f32, or f16 bits in sessions of int8 engines.
#[derive(Clone, Debug)]
enum Ring {
    F32(LineBuf),
    F16(Lines<u16>),
}

/// Whether an engine of `precision` built now keeps its sessions' conv history in f16: int8
/// engines do where the CPU converts f16 in hardware inside the AVX2 conv (F16C; every x86-64
/// CPU with AVX2 in practice). Each step the conv reads the `K − 1` previous inputs of every
/// channel (0.58 MB at the mainnet shape in f32, from L3 like the weights, as state the weight
/// bound does not count); in f16 half that. The inputs are normed (`RMSNorm(x)·γ1`), so their
/// rounding (relative 2⁻¹¹) is far below the int8 engine's own (its product inputs are rounded
/// to 8 bits per block of 32); the f32 engine stays within 10⁻⁴ of the canonical forward only
/// with an f32 history. The taps stay f32: rounded to f16, the small ones of trained models lose
/// precision (tried: the trained regtest model's worst int8 logit error went from 2.5% to 3.4%).
/// Elsewhere (aarch64, x86 without AVX2) the conversion would be done lane by lane in software,
/// which costs more than the halved reads save (portable conv, one layer from L1/L2 on this
/// x86 machine: 6.5 µs against 2.1 in f32), so the history stays f32 there.
fn f16_history(precision: Precision) -> bool {
    precision == Precision::Int8 && kernels::f16_conv_in_hardware()
}

/// One layer's repacked weights.
#[derive(Clone, Debug)]
struct LayerWeights {
    norm1: Vec<f32>,
    /// Merged conv taps, `K` rows of `d` (row `k` multiplies the input `k` positions back), in
    /// the channel-blocked layout of [`kernels::conv_index`].
    conv: Vec<f32>,
    /// `[Wz; Wh]`, `[2d, d]`.
    zh: Matrix,
    wo: Matrix,
    norm2: Vec<f32>,
    /// `keys · Wq / sqrt(d)`, `[S, d]`.
    kq: Matrix,
    /// `Wm · valuesᵀ`, `[d, S]`.
    mv: Matrix,
    norm3: Vec<f32>,
    /// `[W_gate; W_up]`, `[2F, d]`.
    gu: Matrix,
    down: Matrix,
}

/// A model repacked for fast recurrent inference. Immutable and shareable across threads; each
/// generation has its own [`Session`].
#[derive(Clone, Debug)]
pub struct Engine {
    config: ModelConfig,
    precision: Precision,
    /// Ring buffer length per layer: the longest kernel.
    ring: usize,
    embed: Vec<f32>,
    layers: Vec<LayerWeights>,
    norm_f: Vec<f32>,
    head: Matrix,
    /// Threads one decode step may use ([`Engine::with_threads`]).
    threads: usize,
    /// The decode pool, started on the first step that can use it.
    decode: std::sync::OnceLock<std::sync::Arc<DecodeThreads>>,
    /// Whether steps choose between the pool and one thread by measured speed.
    adaptive: bool,
    /// Whether this engine's sessions keep the conv history in f16 ([`f16_history`], decided
    /// when the engine is built).
    f16_history: bool,
}

fn matrix(precision: Precision, rows: usize, cols: usize, values: Vec<f32>) -> Matrix {
    match precision {
        Precision::F32 => Matrix::f32(rows, cols, values),
        Precision::Int8 => Matrix::int8(rows, cols, &values),
    }
}

/// `a [m, n] · b [n, p]` in f64, rounded to f32; rows in parallel.
fn product_f64(a: &[f32], b: &[f32], m: usize, n: usize, p: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m * p];
    out.par_chunks_mut(p.max(1)).enumerate().for_each(|(i, row)| {
        let mut acc = vec![0.0f64; p];
        for k in 0..n {
            let aik = a[i * n + k] as f64;
            if aik != 0.0 {
                for (s, &bv) in acc.iter_mut().zip(&b[k * p..(k + 1) * p]) {
                    *s += aik * bv as f64;
                }
            }
        }
        for (o, s) in row.iter_mut().zip(acc) {
            *o = s as f32;
        }
    });
    out
}

fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

impl Engine {
    /// Repacks `model` for inference at `precision`. Cost: `O(L·S·d²)` for folding the slot
    /// tables (parallel), plus one pass over the weights.
    pub fn new(model: &Model, precision: Precision) -> Self {
        let cfg = model.config().clone();
        let lay = model.layout();
        let p = model.params();
        let (d, s, f) = (cfg.d_model, cfg.n_slots, cfg.d_ff);
        let ring = cfg.max_kernel();
        let scale = 1.0f64 / (d as f64).sqrt();
        let layers = lay
            .layers
            .iter()
            .map(|l| {
                let mut conv = vec![0.0f32; ring * d];
                for (range, &kb) in l.conv.iter().zip(&cfg.kernel_sizes) {
                    for (acc, &w) in conv[..kb * d].iter_mut().zip(&p[range.clone()]) {
                        *acc += w;
                    }
                }
                let cat = |a: &std::ops::Range<usize>, b: &std::ops::Range<usize>| {
                    let mut v = p[a.clone()].to_vec();
                    v.extend_from_slice(&p[b.clone()]);
                    v
                };
                // KQ = keys [S, d] · Wq [d, d], scaled.
                let mut kq = product_f64(&p[l.keys.clone()], &p[l.wq.clone()], s, d, d);
                for v in &mut kq {
                    *v = (*v as f64 * scale) as f32;
                }
                // MV = Wm [d, d] · valuesᵀ [d, S].
                let values_t = transpose(&p[l.values.clone()], s, d);
                let mv = product_f64(&p[l.wm.clone()], &values_t, d, d, s);
                LayerWeights {
                    norm1: p[l.norm1.clone()].to_vec(),
                    conv: kernels::conv_blocked(&conv, ring, d),
                    zh: matrix(precision, 2 * d, d, cat(&l.wz, &l.wh)),
                    wo: matrix(precision, d, d, p[l.wo.clone()].to_vec()),
                    norm2: p[l.norm2.clone()].to_vec(),
                    kq: matrix(precision, s, d, kq),
                    mv: matrix(precision, d, s, mv),
                    norm3: p[l.norm3.clone()].to_vec(),
                    gu: matrix(precision, 2 * f, d, cat(&l.w_gate, &l.w_up)),
                    down: matrix(precision, d, f, p[l.w_down.clone()].to_vec()),
                }
            })
            .collect();
        Engine {
            precision,
            ring,
            embed: p[lay.embed.clone()].to_vec(),
            layers,
            norm_f: p[lay.norm_f.clone()].to_vec(),
            head: matrix(precision, VOCAB, d, p[lay.head.clone()].to_vec()),
            config: cfg,
            threads: 1,
            decode: std::sync::OnceLock::new(),
            adaptive: true,
            f16_history: f16_history(precision),
        }
    }

    /// The same engine decoding each session's bytes on up to `threads` threads (at least 1, at
    /// most the machine's cores: the threads of a step wait for each other at every phase, so
    /// one more than there are cores would stall them): every matrix–vector product of a step is
    /// split by rows across a pool of `threads − 1` persistent worker threads plus the caller,
    /// started on the first step.
    ///
    /// The pool serves one step at a time: a step that starts while another session of this
    /// engine is stepping runs on its own thread, so concurrent sessions share the cores
    /// instead of oversubscribing them. And since the pool's threads wait for each other at
    /// every phase of a step, a machine whose cores are taken by other work can make a pooled
    /// step slower than a single-thread one: the engine keeps the recent time of both kinds of
    /// step, uses the faster, and tries the other one step in 32. Results differ from the one-thread step only by the
    /// order of rounding inside a product (they are bit-identical for the same kernels: rows
    /// are computed the same way whichever thread does them).
    pub fn with_threads(mut self, threads: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.threads = threads.clamp(1, cores);
        self.decode = std::sync::OnceLock::new();
        self
    }

    /// `false`: every step that finds the pool free uses it, however fast one thread would be
    /// (for measuring the pool itself; the default `true` picks the faster by measurement).
    pub fn with_adaptive_threads(mut self, adaptive: bool) -> Self {
        self.adaptive = adaptive;
        self
    }

    /// Threads one decode step may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The model shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The weight precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// A fresh session (the zero state every evaluation window starts from).
    pub fn new_session(&self) -> Session {
        Session::new(&self.config, self.f16_history)
    }

    /// Bytes of weights one decode step reads: every repacked matrix with its scales, the merged
    /// conv taps, the norm gains and one embedding row.
    pub fn weight_bytes_per_token(&self) -> usize {
        let d = self.config.d_model;
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| {
                4 * (l.norm1.len() + self.ring * d + l.norm2.len() + l.norm3.len())
                    + l.zh.bytes()
                    + l.wo.bytes()
                    + l.kq.bytes()
                    + l.mv.bytes()
                    + l.gu.bytes()
                    + l.down.bytes()
            })
            .sum();
        per_layer + 4 * (d + self.norm_f.len()) + self.head.bytes()
    }

    /// Bytes of weights the engine holds (the whole embedding table included).
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes_per_token() + 4 * (self.embed.len() - self.config.d_model)
    }

    /// Bytes of recurrent state per session: `h` (f32) and the conv history (f32, or f16 in
    /// int8 engines).
    pub fn state_bytes(&self) -> usize {
        let (d, l) = (self.config.d_model, self.config.n_layers);
        let history = if self.f16_history { 2 } else { 4 };
        l * (4 * d + history * kernels::conv_len(self.ring, d))
    }

    fn check(&self, s: &Session) -> Result<(), EngineError> {
        let c = &self.config;
        if s.d != c.d_model || s.n_layers != c.n_layers || s.ring_len != self.ring {
            return Err(EngineError::SessionMismatch {
                session_d: s.d,
                session_layers: s.n_layers,
                engine_d: c.d_model,
                engine_layers: c.n_layers,
            });
        }
        let kind = |f16: bool| if f16 { "f16" } else { "f32" };
        let session_f16 = matches!(s.ring, Ring::F16(_));
        if session_f16 != self.f16_history {
            return Err(EngineError::SessionHistory {
                session: kind(session_f16),
                engine: kind(self.f16_history),
            });
        }
        Ok(())
    }

    /// Consumes one byte and returns the 256 logits for the next one.
    pub fn step<'s>(&self, s: &'s mut Session, byte: u8) -> Result<&'s [f32], EngineError> {
        self.check(s)?;
        self.step_fused(s, byte);
        s.position += 1;
        s.has_logits = true;
        Ok(&s.logits)
    }

    /// Consumes `bytes` (a prompt) in blocks of up to [`PREFILL_BLOCK`] positions and returns the
    /// logits after the last one; `None` for an empty slice (the session is unchanged).
    pub fn prefill<'s>(
        &self,
        s: &'s mut Session,
        bytes: &[u8],
    ) -> Result<Option<&'s [f32]>, EngineError> {
        if self.prefill_until(s, bytes, || false)? == 0 {
            return Ok(None);
        }
        Ok(Some(&s.logits))
    }

    /// [`Engine::prefill`] that can be abandoned: `stop` is asked before each block of
    /// [`PREFILL_BLOCK`] positions, and when it says `true` the rest of `bytes` is not fed (a
    /// server stops the prefill of a prompt whose client went away). Returns the bytes consumed;
    /// the session holds exactly that prefix, so the blocks fed are the same as `prefill`'s and
    /// the result is bit-identical when nothing stops it.
    pub fn prefill_until(
        &self,
        s: &mut Session,
        bytes: &[u8],
        mut stop: impl FnMut() -> bool,
    ) -> Result<usize, EngineError> {
        self.check(s)?;
        if bytes.is_empty() || stop() {
            return Ok(0);
        }
        if bytes.len() == 1 {
            self.step(s, bytes[0])?;
            return Ok(1);
        }
        let mut buf = PrefillBuffers::new(&self.config, PREFILL_BLOCK.min(bytes.len()));
        let mut fed = 0;
        for block in bytes.chunks(PREFILL_BLOCK) {
            if fed > 0 && stop() {
                break;
            }
            self.prefill_block(s, block, &mut buf);
            fed += block.len();
        }
        Ok(fed)
    }

    fn prefill_block(&self, s: &mut Session, block: &[u8], b: &mut PrefillBuffers) {
        let cfg = &self.config;
        let (d, f, n_s, r) = (cfg.d_model, cfg.d_ff, cfg.n_slots, self.ring);
        let n = block.len();
        // One layer's conv history (values of the session's ring).
        let history = kernels::conv_len(r, d);
        let x = &mut b.x[..n * d];
        for (row, &byte) in x.chunks_exact_mut(d).zip(block) {
            row.copy_from_slice(&self.embed[byte as usize * d..(byte as usize + 1) * d]);
        }
        for (li, l) in self.layers.iter().enumerate() {
            for t in 0..n {
                let slot = ((s.position + t as u64) % r as u64) as usize;
                let (xt, ct) = (&b.x[t * d..(t + 1) * d], &mut b.c[t * d..(t + 1) * d]);
                // The normed input goes through `a` (free until the SwiGLU below).
                let u = &mut b.a[..d];
                kernels::rms_norm(xt, &l.norm1, u);
                let layer = li * history..(li + 1) * history;
                // SAFETY (both): the ring is this layer's history (`conv_len(r, d)` values),
                // borrowed mutably.
                match &mut s.ring {
                    Ring::F32(ring) => unsafe {
                        let ring = ring[layer].as_mut_ptr();
                        kernels::ring_conv_cols(&l.conv, d, 0, r, slot, u, ring, ct);
                    },
                    Ring::F16(ring) => unsafe {
                        let ring = ring[layer].as_mut_ptr();
                        kernels::ring_conv_cols_f16(&l.conv, d, 0, r, slot, u, ring, ct);
                    },
                }
            }
            l.zh.matmul(&b.c[..n * d], n, &mut b.wide[..n * 2 * d], Store::Overwrite);
            let h = &mut s.h[li * d..(li + 1) * d];
            for t in 0..n {
                let zh = &b.wide[t * 2 * d..(t + 1) * 2 * d];
                gru_update(h, &zh[..d], &zh[d..]);
                b.c[t * d..(t + 1) * d].copy_from_slice(h);
            }
            l.wo.matmul(&b.c[..n * d], n, &mut b.x[..n * d], Store::Add);

            for t in 0..n {
                kernels::rms_norm(&b.x[t * d..(t + 1) * d], &l.norm2, &mut b.c[t * d..(t + 1) * d]);
            }
            l.kq.matmul(&b.c[..n * d], n, &mut b.scores[..n * n_s], Store::Overwrite);
            for row in b.scores[..n * n_s].chunks_exact_mut(n_s) {
                kernels::softmax(row);
            }
            l.mv.matmul(&b.scores[..n * n_s], n, &mut b.x[..n * d], Store::Add);

            for t in 0..n {
                kernels::rms_norm(&b.x[t * d..(t + 1) * d], &l.norm3, &mut b.c[t * d..(t + 1) * d]);
            }
            l.gu.matmul(&b.c[..n * d], n, &mut b.wide[..n * 2 * f], Store::Overwrite);
            for t in 0..n {
                let gu = &mut b.wide[t * 2 * f..(t + 1) * 2 * f];
                swiglu(gu, f);
                b.a[t * f..(t + 1) * f].copy_from_slice(&gu[..f]);
            }
            l.down.matmul(&b.a[..n * f], n, &mut b.x[..n * d], Store::Add);
        }
        kernels::rms_norm(&b.x[(n - 1) * d..n * d], &self.norm_f, &mut s.scratch.v);
        self.head.matvec(&s.scratch.v, &mut s.logits, Store::Overwrite);
        s.position += n as u64;
        s.has_logits = true;
    }

    /// Mean next-byte cross-entropy (nats/byte) of `data` with the evaluator's windowing: windows
    /// of `T` inputs (the config's window), each from the zero state, every byte but the first
    /// predicted once, decoded one byte at a time ([`Engine::step`]). `None` for fewer than two
    /// bytes.
    pub fn mean_loss(&self, data: &[u8]) -> Option<f64> {
        if data.len() < 2 {
            return None;
        }
        let t = self.config.window;
        let predictions = data.len() - 1;
        let starts: Vec<usize> = (0..predictions).step_by(t).collect();
        let total: f64 = starts
            .par_iter()
            .map(|&w0| {
                let n = t.min(predictions - w0);
                let mut s = self.new_session();
                let mut sum = 0.0f64;
                for i in 0..n {
                    let logits = self.step(&mut s, data[w0 + i]).unwrap_or(&[]);
                    sum += cross_entropy(logits, data[w0 + i + 1]);
                }
                sum
            })
            .collect::<Vec<f64>>()
            .iter()
            .sum();
        Some(total / predictions as f64)
    }
}

/// `−log softmax(logits)[target]` in f64; `+∞` for empty logits.
pub fn cross_entropy(logits: &[f32], target: u8) -> f64 {
    let Some(&lt) = logits.get(target as usize) else {
        return f64::INFINITY;
    };
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&l| (l as f64 - m).exp()).sum();
    (z.ln() + m) - lt as f64
}

/// `z = σ(zp)`, `h = (1 − z) h + z g(hp)`. Always inlined, so that the decode step's AVX2
/// version runs it 8 lanes wide (as a call it stayed an SSE2 function: 2.3× slower).
#[inline(always)]
fn gru_update(h: &mut [f32], zp: &[f32], hp: &[f32]) {
    for ((hv, &z), &c) in h.iter_mut().zip(zp).zip(hp) {
        let z = kernels::sigmoid(z);
        *hv = (1.0 - z) * *hv + z * kernels::gru_g(c);
    }
}

/// `gu[i] = SiLU(gu[i]) · gu[f + i]` for `i < f`.
#[inline]
fn swiglu(gu: &mut [f32], f: usize) {
    let (g, u) = gu.split_at_mut(f);
    for (gv, &uv) in g.iter_mut().zip(&u[..f]) {
        *gv = kernels::silu(*gv) * uv;
    }
}

/// Prefill working blocks (allocated per prefill call).
struct PrefillBuffers {
    x: Vec<f32>,
    c: Vec<f32>,
    wide: Vec<f32>,
    scores: Vec<f32>,
    a: Vec<f32>,
}

impl PrefillBuffers {
    fn new(cfg: &ModelConfig, n: usize) -> Self {
        let (d, f) = (cfg.d_model, cfg.d_ff);
        Self {
            x: vec![0.0; n * d],
            c: vec![0.0; n * d],
            wide: vec![0.0; n * 2 * f.max(d)],
            scores: vec![0.0; n * cfg.n_slots],
            a: vec![0.0; n * f],
        }
    }
}

/// The state of one generation: per layer the minGRU hidden vector and a ring buffer of the last
/// `max K` conv inputs, plus the logits after the last consumed byte. Its size depends only on
/// the model shape, never on how many bytes were consumed.
#[derive(Clone, Debug)]
pub struct Session {
    d: usize,
    n_layers: usize,
    ring_len: usize,
    /// `[L, d]`.
    h: LineBuf,
    /// `L` histories of `R` rows of `d` in the channel-blocked layout of
    /// [`kernels::conv_index`]; the conv input of position `p` lives in row `p mod R`.
    ring: Ring,
    position: u64,
    logits: LineBuf,
    has_logits: bool,
    /// The residual stream `x` (`d`), the conv output and later the slot attention's output
    /// (`d`), and the SwiGLU activations (`f`) of the step in progress: shared by the decode
    /// threads.
    x: LineBuf,
    c: LineBuf,
    a: LineBuf,
    /// Working vectors of the thread that calls `step`.
    scratch: ThreadScratch,
}

impl Session {
    /// The zero state of `config`, with the conv history in f16 or f32 ([`Engine::new_session`]
    /// makes the engine's kind).
    pub(crate) fn new(config: &ModelConfig, f16_history: bool) -> Self {
        let (d, l, f) = (config.d_model, config.n_layers, config.d_ff);
        let ring_len = config.max_kernel();
        Self {
            d,
            n_layers: l,
            ring_len,
            h: LineBuf::zeros(l * d),
            ring: if f16_history {
                Ring::F16(Lines::zeros(l * kernels::conv_len(ring_len, d)))
            } else {
                Ring::F32(LineBuf::zeros(l * kernels::conv_len(ring_len, d)))
            },
            position: 0,
            logits: LineBuf::zeros(VOCAB),
            has_logits: false,
            x: LineBuf::zeros(d),
            c: LineBuf::zeros(d),
            a: LineBuf::zeros(f),
            scratch: ThreadScratch::new(config),
        }
    }

    /// Back to the zero state.
    pub fn reset(&mut self) {
        self.h.fill(0.0);
        match &mut self.ring {
            Ring::F32(r) => r.fill(0.0),
            Ring::F16(r) => r.fill(0),
        }
        self.position = 0;
        self.has_logits = false;
    }

    /// Bytes consumed since creation or the last reset.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The logits after the last consumed byte (`None` before the first).
    pub fn logits(&self) -> Option<&[f32]> {
        self.has_logits.then_some(&self.logits[..])
    }

    /// Bytes of recurrent state (`h` and ring buffers), independent of the bytes consumed.
    pub fn state_bytes(&self) -> usize {
        4 * self.h.len()
            + match &self.ring {
                Ring::F32(r) => 4 * r.len(),
                Ring::F16(r) => 2 * r.len(),
            }
    }
}
