//! Helpers shared by the unit tests: random models with every component active, random shapes and
//! a straightforward f64 reference forward written from the specification.

use crate::config::{ModelConfig, VOCAB};
use crate::init::Sampler;
use crate::model::Model;

/// A model of `config` whose every parameter is random and large enough that each component
/// (conv taps, gates, slot scores, FFN, head) visibly changes the losses.
pub fn random_model(config: ModelConfig, seed: u64) -> Model {
    let mut m = Model::init(config.clone(), seed).unwrap();
    let layout = m.layout().clone();
    let d = config.d_model as f64;
    for t in &layout.tensors {
        let mut s = Sampler::new(seed ^ 0x5eed, &t.name);
        let kind = t.name.rsplit('.').next().unwrap();
        let fan_in = *t.shape.last().unwrap() as f64;
        let p = &mut m.params_mut()[t.range()];
        for v in p.iter_mut() {
            let z = s.normal();
            *v = match kind {
                "embed" => z,
                "head" => z * 3.0 / d.sqrt(),
                "norm1" | "norm2" | "norm3" | "norm_f" => 1.0 + 0.3 * z,
                "keys" => 1.5 * z,
                "values" => z,
                "wo" | "wm" | "w_down" => z / fan_in.sqrt(),
                _ if t.name.contains(".conv.") => 0.5 * z,
                _ => 1.5 * z / fan_in.sqrt(),
            } as f32;
        }
    }
    m
}

/// A small random but valid config.
pub fn random_config(seed: u64) -> ModelConfig {
    let mut s = Sampler::new(seed, "config");
    let mut pick = |n: usize| (s.uniform() * n as f64) as usize;
    let d = 2 * (1 + pick(8));
    let n_branches = 1 + pick(3);
    let kernel_sizes = (0..n_branches).map(|_| 1 + pick(9)).collect();
    let cfg = ModelConfig {
        d_model: d,
        n_layers: 1 + pick(3),
        n_slots: 1 + pick(6),
        d_ff: 2 * d,
        kernel_sizes,
        window: 1 + pick(12),
    };
    cfg.validate().unwrap();
    cfg
}

/// Pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = Sampler::new(seed, "bytes");
    (0..len).map(|_| (s.uniform() * 256.0) as u8).collect()
}

fn rms(x: &[f64], g: &[f32]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + 1e-6).sqrt();
    x.iter().zip(g).map(|(v, &g)| v * r * g as f64).collect()
}

fn matvec(w: &[f32], rows: usize, x: &[f64]) -> Vec<f64> {
    let cols = x.len();
    (0..rows).map(|o| (0..cols).map(|k| w[o * cols + k] as f64 * x[k]).sum()).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Per-prediction losses of `data` by the specification, naive loops in f64: windows of `T`
/// inputs, state reset per window, the last window shorter.
pub fn reference_losses(model: &Model, data: &[u8]) -> Vec<f64> {
    let c = model.config();
    let (d, n_s) = (c.d_model, c.n_slots);
    let tn = |name: &str| model.tensor(name).unwrap_or_else(|| panic!("no tensor {name}"));
    let mut out = Vec::new();
    let p = data.len() - 1;
    let mut start = 0;
    while start < p {
        let n = c.window.min(p - start);
        let inputs = &data[start..start + n];
        let targets = &data[start + 1..start + n + 1];
        let embed = tn("embed");
        let mut x: Vec<Vec<f64>> = inputs
            .iter()
            .map(|&b| {
                embed[b as usize * d..(b as usize + 1) * d].iter().map(|&v| v as f64).collect()
            })
            .collect();
        for i in 0..c.n_layers {
            let l = |n: &str| tn(&format!("layers.{i}.{n}"));
            let u: Vec<Vec<f64>> = x.iter().map(|r| rms(r, l("norm1"))).collect();
            let mut cv = vec![vec![0.0f64; d]; n];
            for (b, &kb) in c.kernel_sizes.iter().enumerate() {
                let w = l(&format!("conv.{b}"));
                for t in 0..n {
                    for k in 0..kb.min(t + 1) {
                        for j in 0..d {
                            cv[t][j] += w[k * d + j] as f64 * u[t - k][j];
                        }
                    }
                }
            }
            let mut h = vec![0.0f64; d];
            for t in 0..n {
                let z = matvec(l("gru.wz"), d, &cv[t]);
                let ht = matvec(l("gru.wh"), d, &cv[t]);
                for j in 0..d {
                    let zj = sigmoid(z[j]);
                    let g = if ht[j] >= 0.0 { ht[j] + 0.5 } else { sigmoid(ht[j]) };
                    h[j] = (1.0 - zj) * h[j] + zj * g;
                }
                let o = matvec(l("gru.wo"), d, &h);
                for j in 0..d {
                    x[t][j] += o[j];
                }
            }
            for xt in x.iter_mut() {
                let v = rms(xt, l("norm2"));
                let q = matvec(l("slot.wq"), d, &v);
                let keys = l("slot.keys");
                let values = l("slot.values");
                let sc: Vec<f64> = (0..n_s)
                    .map(|s| {
                        (0..d).map(|k| q[k] * keys[s * d + k] as f64).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                let mix: Vec<f64> = (0..d)
                    .map(|k| (0..n_s).map(|s| e[s] / z * values[s * d + k] as f64).sum())
                    .collect();
                let o = matvec(l("slot.wm"), d, &mix);
                for j in 0..d {
                    xt[j] += o[j];
                }
                let w = rms(xt, l("norm3"));
                let gate = matvec(l("ffn.w_gate"), c.d_ff, &w);
                let up = matvec(l("ffn.w_up"), c.d_ff, &w);
                let a: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| g * sigmoid(*g) * u).collect();
                let o = matvec(l("ffn.w_down"), d, &a);
                for j in 0..d {
                    xt[j] += o[j];
                }
            }
        }
        for (xt, &target) in x.iter().zip(targets) {
            let nf = rms(xt, tn("norm_f"));
            let logits = matvec(tn("head"), VOCAB, &nf);
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = logits.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
            out.push(lse - logits[target as usize]);
        }
        start += n;
    }
    out
}
