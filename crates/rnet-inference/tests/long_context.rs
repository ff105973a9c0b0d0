//! Long context: a 100,000-byte prompt streamed through the recurrent state. The state has a
//! fixed size (only `h` and the conv ring buffer), so memory stays constant, decoding after 100K
//! bytes of context runs at the speed of decoding at the start, and the engine keeps computing
//! the reference function far past the training window.

mod common;

use std::time::Instant;

use common::random_model;
use rnet_inference::sampling::argmax;
use rnet_inference::{Engine, Precision, Session};
use rnet_model::{ModelConfig, ModelNetwork, RecurrentState, step, training_text};

const CONTEXT: usize = 100_000;
/// Bytes compared one by one against the sequential reference step (`rnet_model::step`), eight
/// training windows of the testnet shape and far past its 63-byte conv history.
const PREFIX: usize = 2_048;

/// Resident set size of this process (bytes), from `/proc/self/statm`.
fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `|g − w| ≤ tol · max(|w|, 0.1 · max|want|)` for every logit (the documented f32 bound).
fn assert_close(got: &[f32], want: &[f32], tol: f64, what: &str) {
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let bound = tol * (w.abs() as f64).max(0.1 * scale).max(1e-6);
        assert!(((g - w) as f64).abs() <= bound, "{what} logit {i}: {g} vs {w}");
    }
}

/// Greedy decode rate (bytes/s) of one round of `n` bytes, continuing `s`.
fn round_rate(engine: &Engine, s: &mut Session, n: usize) -> f64 {
    let mut next = argmax(s.logits().expect("fed"));
    let t0 = Instant::now();
    for _ in 0..n {
        next = argmax(engine.step(s, next).expect("same shape"));
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Best decode rates of `a` and `b` over `rounds` alternating rounds, so both see the same load
/// on a shared machine.
fn paired_rates(engine: &Engine, a: &mut Session, b: &mut Session, rounds: usize) -> (f64, f64) {
    let (mut ra, mut rb) = (0.0f64, 0.0f64);
    for _ in 0..rounds {
        ra = ra.max(round_rate(engine, a, 100));
        rb = rb.max(round_rate(engine, b, 100));
    }
    (ra, rb)
}

#[test]
fn a_100k_prompt_streams_through_constant_state_at_constant_speed() {
    let cfg = ModelConfig::genesis(ModelNetwork::Testnet);
    let model = random_model(cfg.clone(), 21);
    let text: Vec<u8> = training_text().iter().copied().cycle().take(CONTEXT).collect();
    for (precision, tol) in [(Precision::F32, 1e-4), (Precision::Int8, 0.08)] {
        let engine = Engine::new(&model, precision).with_threads(2);
        // 1. The first PREFIX bytes, one step at a time, against the reference step.
        let mut reference = RecurrentState::new(&cfg);
        let mut s = engine.new_session();
        let state = s.state_bytes();
        for (t, &b) in text[..PREFIX].iter().enumerate() {
            let want = step(&model, &mut reference, b).unwrap();
            let got = engine.step(&mut s, b).unwrap();
            match precision {
                Precision::F32 => assert_close(got, &want, tol, &format!("f32 pos {t}")),
                Precision::Int8 => {
                    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let err = got.iter().zip(&want).fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
                    assert!(err <= tol as f32 * scale, "int8 pos {t}: {err} vs max {scale}");
                }
            }
        }
        // 2. A session with a short context, to compare decode speed with.
        let mut fresh = engine.new_session();
        engine.prefill(&mut fresh, &text[..256]).unwrap();
        // 3. The rest of the 100K bytes in prompt-sized pieces: the state does not grow, nor
        // does the process.
        let rss_before = rss();
        let t0 = Instant::now();
        for piece in text[PREFIX..].chunks(4096) {
            engine.prefill(&mut s, piece).unwrap();
            assert_eq!(s.state_bytes(), state);
        }
        let prefill_secs = t0.elapsed().as_secs_f64();
        let rss_after = rss();
        assert_eq!(s.position(), CONTEXT as u64);
        assert_eq!(s.state_bytes(), engine.state_bytes());
        // 4. Decode speed after 100K bytes of context, against the short context.
        let mut long = s.clone();
        let (start_rate, long_rate) = paired_rates(&engine, &mut fresh, &mut long, 10);
        println!(
            "[{precision}] state {} B before and after {CONTEXT} bytes; RSS {} -> {} KiB; prefill of {} bytes {:.0} bytes/s; decode {start_rate:.0} bytes/s at 256 bytes of context, {long_rate:.0} bytes/s at {CONTEXT}",
            state,
            rss_before.map_or(-1, |v| (v / 1024) as i64),
            rss_after.map_or(-1, |v| (v / 1024) as i64),
            CONTEXT - PREFIX,
            (CONTEXT - PREFIX) as f64 / prefill_secs
        );
        if let (Some(a), Some(b)) = (rss_before, rss_after) {
            assert!(b <= a + (8 << 20), "RSS grew by {} KiB", (b.saturating_sub(a)) / 1024);
        }
        // Same work per byte: equal within the noise of a shared machine (a cost growing with the
        // context would be hundreds of times slower at 100K).
        assert!(
            long_rate >= 0.5 * start_rate,
            "decode after {CONTEXT} bytes {long_rate:.0} vs {start_rate:.0} bytes/s at the start"
        );
        // 5. Prefill and one-byte steps stay together over the whole 100K (positions far past
        // any window: the ring index and the recurrence do not drift).
        if precision == Precision::F32 {
            let mut stepped = engine.new_session();
            for &b in &text {
                engine.step(&mut stepped, b).unwrap();
            }
            assert_close(
                stepped.logits().unwrap(),
                s.logits().unwrap(),
                1e-3,
                "step vs prefill after 100K",
            );
        }
    }
}
