//! Next-byte sampling: logit bias, repetition / presence / frequency penalties over a window of
//! recent bytes, temperature, top-k, top-p (nucleus), and a seeded generator. A temperature of 0
//! is greedy decoding (the first byte of largest logit).
//!
//! The order of operations is fixed: bias → penalties → (greedy: argmax) → temperature → top-k →
//! softmax → top-p → draw. The same parameters, seed and logits give the same byte on every
//! machine.

use std::collections::VecDeque;

use rnet_model::VOCAB;
use thiserror::Error;

/// Default number of recent bytes the penalties look at.
pub const DEFAULT_PENALTY_WINDOW: usize = 64;

/// Largest accepted penalty window.
pub const MAX_PENALTY_WINDOW: usize = 4096;

/// Parameters of [`Sampler`].
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature, `0..=2` (OpenAI's range); `0` means greedy.
    pub temperature: f32,
    /// Keep only the `k` most likely bytes; `0` disables.
    pub top_k: usize,
    /// Keep the smallest set of most likely bytes whose probability reaches `p`, `(0, 1]`; `1`
    /// disables.
    pub top_p: f32,
    /// CTRL-style repetition penalty `≥ 1` (`1` disables): a byte seen in the window has a positive
    /// logit divided by it and a negative one multiplied by it.
    pub repetition_penalty: f32,
    /// OpenAI presence penalty, `-2..=2`: subtracted once from every byte seen in the window.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty, `-2..=2`: subtracted once per occurrence in the window.
    pub frequency_penalty: f32,
    /// How many recent bytes (prompt and output) the penalties look at.
    pub penalty_window: usize,
    /// Added to the logit of each listed byte before everything else (`-100..=100`).
    pub logit_bias: Vec<(u8, f32)>,
    /// Seed of the generator; `None` draws one from the operating system's randomness.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_window: DEFAULT_PENALTY_WINDOW,
            logit_bias: Vec::new(),
            seed: None,
        }
    }
}

/// A sampling parameter outside its range.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{param} = {value} is invalid: {expected}")]
pub struct SamplingError {
    /// The parameter's name (as in the OpenAI API where there is one).
    pub param: &'static str,
    /// The offending value.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

impl SamplingParams {
    /// Greedy decoding (temperature 0, no penalties).
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), SamplingError> {
        let err = |param, value: String, expected| Err(SamplingError { param, value, expected });
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return err("temperature", self.temperature.to_string(), "a number in 0..=2");
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return err("top_p", self.top_p.to_string(), "a number in (0, 1]");
        }
        if self.top_k > VOCAB {
            return err("top_k", self.top_k.to_string(), "an integer in 0..=256");
        }
        if !(self.repetition_penalty.is_finite() && (1.0..=10.0).contains(&self.repetition_penalty))
        {
            return err(
                "repetition_penalty",
                self.repetition_penalty.to_string(),
                "a number in 1..=10",
            );
        }
        if !(self.presence_penalty.is_finite() && (-2.0..=2.0).contains(&self.presence_penalty)) {
            return err(
                "presence_penalty",
                self.presence_penalty.to_string(),
                "a number in -2..=2",
            );
        }
        if !(self.frequency_penalty.is_finite() && (-2.0..=2.0).contains(&self.frequency_penalty)) {
            return err(
                "frequency_penalty",
                self.frequency_penalty.to_string(),
                "a number in -2..=2",
            );
        }
        if self.penalty_window > MAX_PENALTY_WINDOW {
            return err(
                "penalty_window",
                self.penalty_window.to_string(),
                "an integer in 0..=4096",
            );
        }
        for &(_, b) in &self.logit_bias {
            if !(b.is_finite() && (-100.0..=100.0).contains(&b)) {
                return err("logit_bias", b.to_string(), "biases in -100..=100");
            }
        }
        Ok(())
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast and the same everywhere.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator from a 64-bit seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A seed from the operating system's per-process randomness, the clock and a counter.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    h.write_u64(now);
    h.finish()
}

/// Draws bytes from logits under [`SamplingParams`], remembering the recent bytes for penalties.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    recent: VecDeque<u8>,
    counts: [u32; VOCAB],
    bias: Option<Box<[f32; VOCAB]>>,
}

impl Sampler {
    /// A sampler; call [`SamplingParams::validate`] first for parameters from outside.
    pub fn new(params: SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(random_seed);
        let bias = if params.logit_bias.is_empty() {
            None
        } else {
            let mut b = Box::new([0.0f32; VOCAB]);
            for &(byte, v) in &params.logit_bias {
                b[byte as usize] += v;
            }
            Some(b)
        };
        Self {
            rng: Rng::new(seed),
            recent: VecDeque::with_capacity(params.penalty_window.min(MAX_PENALTY_WINDOW)),
            counts: [0; VOCAB],
            bias,
            params,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Records a byte of context (prompt or output) for the penalties.
    pub fn observe(&mut self, byte: u8) {
        let w = self.params.penalty_window;
        if w == 0 {
            return;
        }
        if self.recent.len() == w
            && let Some(old) = self.recent.pop_front()
        {
            self.counts[old as usize] -= 1;
        }
        self.recent.push_back(byte);
        self.counts[byte as usize] += 1;
    }

    /// Records several bytes (only the last `penalty_window` matter).
    pub fn observe_all(&mut self, bytes: &[u8]) {
        let w = self.params.penalty_window;
        for &b in &bytes[bytes.len().saturating_sub(w)..] {
            self.observe(b);
        }
    }

    /// The logits after bias and penalties.
    pub fn adjusted(&self, logits: &[f32]) -> [f32; VOCAB] {
        let mut l = [f32::NEG_INFINITY; VOCAB];
        for (o, &v) in l.iter_mut().zip(logits) {
            *o = if v.is_nan() { f32::NEG_INFINITY } else { v };
        }
        if let Some(b) = &self.bias {
            for (o, &v) in l.iter_mut().zip(b.iter()) {
                *o += v;
            }
        }
        let p = &self.params;
        if p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            for (o, &c) in l.iter_mut().zip(&self.counts) {
                if c > 0 {
                    *o = apply_penalty(*o, c, p);
                }
            }
        }
        l
    }

    /// Draws the next byte from `logits` (256 values; missing ones count as `−∞`). Does not record
    /// it: call [`Sampler::observe`] with the byte that is kept.
    pub fn sample(&mut self, logits: &[f32]) -> u8 {
        let l = self.adjusted(logits);
        if self.params.temperature == 0.0 {
            return argmax(&l);
        }
        let probs = distribution(&l, self.params.temperature, self.params.top_k, self.params.top_p);
        let u = self.rng.next_f64();
        let mut acc = 0.0f64;
        let mut last = argmax(&l);
        for (i, &p) in probs.iter().enumerate() {
            if p > 0.0 {
                acc += p;
                last = i as u8;
                if u < acc {
                    return i as u8;
                }
            }
        }
        last
    }
}

/// One byte's logit after the penalties for `count` occurrences in the window.
fn apply_penalty(logit: f32, count: u32, p: &SamplingParams) -> f32 {
    let mut l = logit;
    if p.repetition_penalty != 1.0 {
        l = if l > 0.0 { l / p.repetition_penalty } else { l * p.repetition_penalty };
    }
    l - p.presence_penalty - p.frequency_penalty * count as f32
}

/// The first index of the largest value (`0` when every value is `−∞` or NaN).
pub fn argmax(v: &[f32]) -> u8 {
    let mut best = 0usize;
    let mut m = f32::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate().take(VOCAB) {
        if x > m {
            m = x;
            best = i;
        }
    }
    best as u8
}

/// The sampling distribution: `softmax(l / temperature)` restricted to the top-k bytes and then to
/// the top-p nucleus (renormalised). Ties are broken by lower byte value first. `temperature`
/// must be positive.
pub fn distribution(l: &[f32; VOCAB], temperature: f32, top_k: usize, top_p: f32) -> [f64; VOCAB] {
    let mut order: Vec<usize> = (0..VOCAB).collect();
    // Descending by logit, stable (lower index first among equals).
    order.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
    let k = if top_k == 0 { VOCAB } else { top_k.min(VOCAB) };
    let kept = &order[..k];
    let inv_t = 1.0 / temperature as f64;
    let m = l[kept[0]] as f64;
    let mut probs = [0.0f64; VOCAB];
    if !m.is_finite() {
        // Nothing finite: fall back to the first candidate.
        probs[kept[0]] = 1.0;
        return probs;
    }
    let mut z = 0.0f64;
    for &i in kept {
        let e = ((l[i] as f64 - m) * inv_t).exp();
        probs[i] = e;
        z += e;
    }
    for &i in kept {
        probs[i] /= z;
    }
    if top_p < 1.0 {
        let mut cum = 0.0f64;
        let mut cut = kept.len();
        for (n, &i) in kept.iter().enumerate() {
            cum += probs[i];
            if cum >= top_p as f64 {
                cut = n + 1;
                break;
            }
        }
        for &i in &kept[cut..] {
            probs[i] = 0.0;
        }
        let z: f64 = kept[..cut].iter().map(|&i| probs[i]).sum();
        for &i in &kept[..cut] {
            probs[i] /= z;
        }
    }
    probs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(f: impl Fn(usize) -> f32) -> Vec<f32> {
        (0..VOCAB).map(f).collect()
    }

    #[test]
    fn greedy_is_argmax_with_first_index_on_ties() {
        let mut l = logits(|i| ((i * 37) % 101) as f32 / 10.0);
        let want = argmax(&l);
        assert_eq!(l[want as usize], l.iter().copied().fold(f32::MIN, f32::max));
        let mut s = Sampler::new(SamplingParams::greedy());
        for _ in 0..10 {
            assert_eq!(s.sample(&l), want);
        }
        l.fill(1.0);
        l[200] = 2.0;
        l[100] = 2.0;
        assert_eq!(s.sample(&l), 100);
        // NaN never wins.
        l[5] = f32::NAN;
        assert_eq!(s.sample(&l), 100);
    }

    #[test]
    fn top_k_keeps_exactly_the_k_largest() {
        let l: [f32; VOCAB] = std::array::from_fn(|i| i as f32 * 0.01);
        let p = distribution(&l, 1.0, 5, 1.0);
        let kept: Vec<usize> = (0..VOCAB).filter(|&i| p[i] > 0.0).collect();
        assert_eq!(kept, vec![251, 252, 253, 254, 255]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // top_k = 1 is greedy whatever the temperature.
        let mut s = Sampler::new(SamplingParams {
            temperature: 2.0,
            top_k: 1,
            seed: Some(3),
            ..SamplingParams::default()
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&l), 255);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // Probabilities 0.5, 0.25, 0.125, ... on bytes 0, 1, 2, ...
        let l: [f32; VOCAB] =
            std::array::from_fn(|i| if i < 20 { -(i as f32) * 2f32.ln() } else { -1e9 });
        let p = distribution(&l, 1.0, 0, 0.7);
        let kept: Vec<usize> = (0..VOCAB).filter(|&i| p[i] > 0.0).collect();
        assert_eq!(kept, vec![0, 1], "0.5 + 0.25 ≥ 0.7");
        assert!((p[0] - 2.0 / 3.0).abs() < 1e-6);
        let p = distribution(&l, 1.0, 0, 0.5);
        assert_eq!((0..VOCAB).filter(|&i| p[i] > 0.0).count(), 1);
        // top-k is applied before top-p.
        let p = distribution(&l, 1.0, 3, 0.99);
        assert_eq!((0..VOCAB).filter(|&i| p[i] > 0.0).count(), 3);
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let l: [f32; VOCAB] = std::array::from_fn(|i| if i < 2 { i as f32 } else { -1e9 });
        let cold = distribution(&l, 0.25, 0, 1.0);
        let warm = distribution(&l, 2.0, 0, 1.0);
        assert!(cold[1] > 0.98 && warm[1] < 0.65 && warm[1] > 0.5);
    }

    #[test]
    fn repetition_presence_and_frequency_penalties() {
        let mut l = vec![0.0f32; VOCAB];
        l[b'a' as usize] = 2.0;
        l[b'b' as usize] = -1.0;
        l[b'c' as usize] = 1.9;
        let mut s =
            Sampler::new(SamplingParams { repetition_penalty: 2.0, ..SamplingParams::greedy() });
        assert_eq!(s.sample(&l), b'a');
        s.observe_all(b"ab");
        let adj = s.adjusted(&l);
        assert_eq!(adj[b'a' as usize], 1.0, "positive logits are divided");
        assert_eq!(adj[b'b' as usize], -2.0, "negative logits are multiplied");
        assert_eq!(s.sample(&l), b'c');

        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 0.5,
            frequency_penalty: 0.25,
            penalty_window: 3,
            ..SamplingParams::greedy()
        });
        s.observe_all(b"xaaa");
        let adj = s.adjusted(&l);
        assert_eq!(adj[b'a' as usize], 2.0 - 0.5 - 0.75);
        assert_eq!(adj[b'x' as usize], 0.0, "x fell out of the 3-byte window");
        s.observe(b'c');
        assert_eq!(s.adjusted(&l)[b'a' as usize], 2.0 - 0.5 - 0.5);
    }

    #[test]
    fn logit_bias_can_force_or_ban_a_byte() {
        let l = vec![0.0f32; VOCAB];
        let mut s = Sampler::new(SamplingParams {
            logit_bias: vec![(b'z', 100.0)],
            seed: Some(1),
            ..SamplingParams::default()
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&l), b'z');
        }
        let banned: Vec<(u8, f32)> =
            (0..=255u8).filter(|&b| b != b'q').map(|b| (b, -100.0)).collect();
        let mut s = Sampler::new(SamplingParams {
            logit_bias: banned,
            seed: Some(2),
            ..SamplingParams::default()
        });
        assert_eq!(s.sample(&l), b'q');
    }

    #[test]
    fn seeded_sampling_is_deterministic_and_follows_the_distribution() {
        let l: Vec<f32> = (0..VOCAB).map(|i| ((i * 7919) % 13) as f32 * 0.3).collect();
        let params = SamplingParams { seed: Some(42), ..SamplingParams::default() };
        let draw = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone());
            (0..200).map(|_| s.sample(&l)).collect::<Vec<u8>>()
        };
        assert_eq!(draw(&params), draw(&params));
        assert_ne!(draw(&params), draw(&SamplingParams { seed: Some(43), ..params.clone() }));
        // Frequencies follow the softmax.
        let mut s = Sampler::new(params);
        let mut counts = [0u32; VOCAB];
        let n = 200_000;
        for _ in 0..n {
            counts[s.sample(&l) as usize] += 1;
        }
        let arr: [f32; VOCAB] = l.clone().try_into().unwrap();
        let p = distribution(&arr, 1.0, 0, 1.0);
        for i in 0..VOCAB {
            let f = counts[i] as f64 / n as f64;
            assert!((f - p[i]).abs() < 0.004, "byte {i}: {f} vs {}", p[i]);
        }
    }

    #[test]
    fn validation_rejects_out_of_range_values() {
        assert!(SamplingParams::default().validate().is_ok());
        for bad in [
            SamplingParams { temperature: -0.1, ..Default::default() },
            SamplingParams { temperature: f32::NAN, ..Default::default() },
            SamplingParams { top_p: 0.0, ..Default::default() },
            SamplingParams { top_p: 1.5, ..Default::default() },
            SamplingParams { top_k: 257, ..Default::default() },
            SamplingParams { repetition_penalty: 0.5, ..Default::default() },
            SamplingParams { presence_penalty: 3.0, ..Default::default() },
            SamplingParams { frequency_penalty: -3.0, ..Default::default() },
            SamplingParams { logit_bias: vec![(1, 101.0)], ..Default::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
