//! Deterministic, portable seeded initialisation.
//!
//! Every tensor gets its own ChaCha20 stream keyed by `keccak256("rnet-model/init/v1" ‖ 0x00 ‖
//! seed as u64 LE ‖ tensor name)`, so the bytes depend only on the seed, the tensor name and its
//! shape — never on the order tensors are visited or on crate versions. The ChaCha20 generator is
//! written out here (20 rounds, 64-bit block counter in words 12–13, stream 0 in words 14–15, output
//! words little-endian in block order: exactly the sequence of `rand_chacha::ChaCha20Rng::from_seed`,
//! which a test checks) and normals are sampled here with Box–Muller over `libm`, not by a
//! distribution crate. Not consensus, but the regtest golden test pins the loss of
//! `Model::init(regtest genesis, 0)`, so changing anything here changes that value.

use crate::config::{Layout, ModelConfig};
use crate::model::{Model, ModelError};

/// The ChaCha20 block function's keystream as a generator of `u64` (two consecutive little-endian
/// words, low word first).
#[derive(Clone, Debug)]
pub struct ChaCha20 {
    key: [u32; 8],
    counter: u64,
    block: [u32; 16],
    index: usize,
}

impl ChaCha20 {
    /// The generator for a 32-byte key, stream 0, starting at block 0.
    pub fn new(key: [u8; 32]) -> Self {
        let key = std::array::from_fn(|i| {
            u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]])
        });
        Self { key, counter: 0, block: [0; 16], index: 16 }
    }

    fn refill(&mut self) {
        const C: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
        let mut input = [0u32; 16];
        input[..4].copy_from_slice(&C);
        input[4..12].copy_from_slice(&self.key);
        input[12] = self.counter as u32;
        input[13] = (self.counter >> 32) as u32;
        let mut x = input;
        fn qr(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
            x[a] = x[a].wrapping_add(x[b]);
            x[d] = (x[d] ^ x[a]).rotate_left(16);
            x[c] = x[c].wrapping_add(x[d]);
            x[b] = (x[b] ^ x[c]).rotate_left(12);
            x[a] = x[a].wrapping_add(x[b]);
            x[d] = (x[d] ^ x[a]).rotate_left(8);
            x[c] = x[c].wrapping_add(x[d]);
            x[b] = (x[b] ^ x[c]).rotate_left(7);
        }
        for _ in 0..10 {
            qr(&mut x, 0, 4, 8, 12);
            qr(&mut x, 1, 5, 9, 13);
            qr(&mut x, 2, 6, 10, 14);
            qr(&mut x, 3, 7, 11, 15);
            qr(&mut x, 0, 5, 10, 15);
            qr(&mut x, 1, 6, 11, 12);
            qr(&mut x, 2, 7, 8, 13);
            qr(&mut x, 3, 4, 9, 14);
        }
        for (o, i) in x.iter_mut().zip(input) {
            *o = o.wrapping_add(i);
        }
        self.block = x;
        self.index = 0;
        self.counter = self.counter.wrapping_add(1);
    }

    /// The next 64 keystream bits.
    pub fn next_u64(&mut self) -> u64 {
        if self.index >= 16 {
            self.refill();
        }
        let v = self.block[self.index] as u64 | (self.block[self.index + 1] as u64) << 32;
        self.index += 2;
        v
    }
}

/// Standard deviation of `embed` entries.
pub const EMBED_STD: f64 = 0.1;
/// Standard deviation of conv taps other than row 0 (row 0 is `1 / n_branches`).
pub const CONV_TAP_STD: f64 = 0.02;
/// Standard deviation of slot keys and values.
pub const SLOT_STD: f64 = 0.2;
/// `head` entries are `N(0, 1) · HEAD_SCALE / sqrt(d)`, so initial logits have std ≈ `HEAD_SCALE`
/// and the initial loss is close to `ln 256 ≈ 5.545`.
pub const HEAD_SCALE: f64 = 0.1;

/// A portable stream of uniform and normal samples.
pub struct Sampler {
    rng: ChaCha20,
    spare: Option<f64>,
}

impl Sampler {
    /// The stream for `label` (a tensor name) under `seed`.
    pub fn new(seed: u64, label: &str) -> Self {
        let mut msg = Vec::with_capacity(32 + label.len());
        msg.extend_from_slice(b"rnet-model/init/v1\0");
        msg.extend_from_slice(&seed.to_le_bytes());
        msg.extend_from_slice(label.as_bytes());
        let key = rnet_crypto::keccak256(&msg);
        Self { rng: ChaCha20::new(key), spare: None }
    }

    /// Uniform in `[0, 1)` with 53 random bits: `(next_u64 >> 11) · 2⁻⁵³`.
    pub fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal by Box–Muller: `u1 = 1 − uniform()` (in `(0, 1]`), `u2 = uniform()`,
    /// `r = sqrt(−2 ln u1)`, returning `r cos(2π u2)` then `r sin(2π u2)` on the next call.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * libm::log(u1)).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * libm::sin(a));
        r * libm::cos(a)
    }

    /// Fills `out` with `N(0, 1) · std`, rounded to f32.
    pub fn fill_normal(&mut self, out: &mut [f32], std: f64) {
        for v in out {
            *v = (self.normal() * std) as f32;
        }
    }
}

/// How a tensor is initialised, from the last component of its schema name.
fn init_tensor(config: &ModelConfig, name: &str, shape: &[usize], seed: u64, out: &mut [f32]) {
    let d = config.d_model as f64;
    let f = config.d_ff as f64;
    let depth = (2.0 * config.n_layers as f64).sqrt();
    let kind = name.rsplit('.').next().unwrap_or(name);
    let mut s = Sampler::new(seed, name);
    let in_dim = *shape.last().unwrap_or(&1) as f64;
    match kind {
        "embed" => s.fill_normal(out, EMBED_STD),
        "head" => s.fill_normal(out, HEAD_SCALE / d.sqrt()),
        "norm1" | "norm2" | "norm3" | "norm_f" => out.fill(1.0),
        "wz" | "wh" | "wq" | "w_gate" | "w_up" => s.fill_normal(out, 1.0 / in_dim.sqrt()),
        "wo" | "wm" => s.fill_normal(out, 1.0 / d.sqrt() / depth),
        "w_down" => s.fill_normal(out, 1.0 / f.sqrt() / depth),
        "keys" | "values" => s.fill_normal(out, SLOT_STD),
        // Conv branch `[K, d]`: row 0 (current position) is 1 / n_branches, so the branches sum
        // to the identity at start; earlier taps are small.
        _ if name.contains(".conv.") => {
            let width = shape.get(1).copied().unwrap_or(0);
            s.fill_normal(out, CONV_TAP_STD);
            let row0 = 1.0 / config.kernel_sizes.len() as f32;
            for v in out.iter_mut().take(width) {
                *v = row0;
            }
        }
        _ => s.fill_normal(out, 1.0 / in_dim.sqrt()),
    }
}

impl Model {
    /// A freshly initialised model of `config` from `seed`:
    /// `embed ~ N(0, 0.1²)`; norms `= 1`; conv row 0 `= 1/n_branches`, other taps `~ N(0, 0.02²)`;
    /// `wz, wh, wq, w_gate, w_up ~ N(0, 1/fan_in)`; output sides `wo, wm ~ N(0, 1/(2L·d))`,
    /// `w_down ~ N(0, 1/(2L·F))`; slot keys and values `~ N(0, 0.2²)`; `head ~ N(0, 0.01/d)` so the
    /// initial loss is ≈ ln 256. Fails only for a config that does not validate.
    pub fn init(config: ModelConfig, seed: u64) -> Result<Self, ModelError> {
        let mut model = Model::zeros(config)?;
        let layout: Layout = model.layout().clone();
        let config = model.config().clone();
        let params = model.params_mut();
        for t in &layout.tensors {
            init_tensor(&config, &t.name, &t.shape, seed, &mut params[t.range()]);
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelNetwork;

    #[test]
    fn chacha20_matches_rand_chacha() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        for key in [[0u8; 32], rnet_crypto::keccak256(b"k")] {
            let mut ours = ChaCha20::new(key);
            let mut theirs = rand_chacha::ChaCha20Rng::from_seed(key);
            for i in 0..1000 {
                assert_eq!(ours.next_u64(), theirs.next_u64(), "word pair {i}");
            }
        }
        // RFC 8439-style known answer: all-zero key, block 0 starts 76 b8 e0 ad a0 f1 3d 90.
        assert_eq!(
            ChaCha20::new([0; 32]).next_u64().to_le_bytes(),
            [0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90]
        );
    }

    #[test]
    fn sampler_is_deterministic_and_roughly_normal() {
        let mut a = Sampler::new(7, "x");
        let mut b = Sampler::new(7, "x");
        let mut c = Sampler::new(7, "y");
        let va: Vec<f64> = (0..20_000).map(|_| a.normal()).collect();
        let vb: Vec<f64> = (0..20_000).map(|_| b.normal()).collect();
        assert_eq!(va, vb);
        assert_ne!(va[0], c.normal());
        let mean = va.iter().sum::<f64>() / va.len() as f64;
        let var = va.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / va.len() as f64;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn init_is_seeded_and_structured() {
        let cfg = ModelConfig::genesis(ModelNetwork::Regtest);
        let a = Model::init(cfg.clone(), 0).unwrap();
        let b = Model::init(cfg.clone(), 0).unwrap();
        let c = Model::init(cfg.clone(), 1).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.params(), c.params());
        assert!(a.is_finite());
        assert!(a.tensor("layers.1.norm2").unwrap().iter().all(|&v| v == 1.0));
        let conv = a.tensor("layers.0.conv.2").unwrap();
        let d = cfg.d_model;
        assert!(conv[..d].iter().all(|&v| v == 1.0 / 3.0));
        assert!(conv[d..].iter().all(|&v| v.abs() < 0.2));
        // (The golden evaluator test pins the sampler through the loss of seed 0.)
        let e = a.tensor("embed").unwrap();
        assert!(e[0].is_finite() && e[0] != e[1]);
    }
}
