//! Decode split across threads (`Engine::with_threads`): bit-identical to the one-thread step on
//! every kernel path (rows are computed the same way whichever thread computes them), so it keeps
//! the documented agreement with the canonical forward; concurrent sessions on one threaded
//! engine do not disturb each other. (Own test binary: it switches the kernel path, which is
//! process-wide.)

mod common;

use common::{random_bytes, random_config, random_model};
use rnet_inference::kernels::{set_avx512, set_portable_only, set_vnni_allowed};
use rnet_inference::{Engine, Precision};
use rnet_model::forward::window_logits;
use rnet_model::{Model, ModelConfig, ModelNetwork, VOCAB};

fn models() -> Vec<(ModelConfig, Model)> {
    let mut out: Vec<(ModelConfig, Model)> = (100..112u64)
        .map(|seed| {
            let cfg = random_config(seed);
            (cfg.clone(), random_model(cfg, seed))
        })
        .collect();
    let reg = ModelConfig::genesis(ModelNetwork::Regtest);
    out.push((reg.clone(), random_model(reg, 3)));
    let test = ModelConfig::genesis(ModelNetwork::Testnet);
    out.push((test.clone(), random_model(test, 4)));
    out
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

#[test]
fn threaded_decode_is_bit_identical_to_one_thread_and_keeps_the_bounds() {
    // AVX-512 VNNI and 256-bit VNNI (where present), AVX2, portable.
    for (portable, vnni, avx512) in
        [(false, true, true), (false, true, false), (false, false, false), (true, false, false)]
    {
        set_portable_only(portable);
        set_vnni_allowed(vnni);
        set_avx512(Some(avx512));
        for (i, (cfg, model)) in models().into_iter().enumerate() {
            let bytes = random_bytes(cfg.window.min(48), 500 + i as u64);
            let want = window_logits(&model, &bytes);
            for precision in [Precision::F32, Precision::Int8] {
                let one = Engine::new(&model, precision);
                let mut s1 = one.new_session();
                let solo: Vec<Vec<f32>> =
                    bytes.iter().map(|&b| one.step(&mut s1, b).unwrap().to_vec()).collect();
                for threads in [2, 3, 4] {
                    let eng = Engine::new(&model, precision).with_threads(threads);
                    assert_eq!(eng.threads(), threads.min(cores()), "capped at the cores");
                    let mut s = eng.new_session();
                    for (t, &b) in bytes.iter().enumerate() {
                        let got = eng.step(&mut s, b).unwrap();
                        assert_eq!(
                            got,
                            &solo[t][..],
                            "cfg {i} {precision} threads {threads} portable {portable} pos {t}"
                        );
                        // The documented bounds against the canonical forward.
                        let w = &want[t * VOCAB..(t + 1) * VOCAB];
                        let scale = max_abs(w) as f64;
                        for (k, (&g, &wv)) in got.iter().zip(w).enumerate() {
                            let err = (g - wv).abs() as f64;
                            match precision {
                                Precision::F32 => assert!(
                                    err <= 1e-4 * (wv.abs() as f64).max(0.1 * scale).max(1e-6),
                                    "cfg {i} f32 threads {threads} pos {t} logit {k}: {g} vs {wv}"
                                ),
                                Precision::Int8 if cfg.d_model >= 8 => assert!(
                                    err <= 0.08 * scale.max(1e-6),
                                    "cfg {i} int8 threads {threads} pos {t} logit {k}: {g} vs {wv}"
                                ),
                                Precision::Int8 => {}
                            }
                        }
                    }
                    // Prefill then threaded decode continues from the same state.
                    let mut p = eng.new_session();
                    eng.prefill(&mut p, &bytes[..bytes.len() - 1]).unwrap();
                    let mut q = one.new_session();
                    one.prefill(&mut q, &bytes[..bytes.len() - 1]).unwrap();
                    let last = *bytes.last().unwrap();
                    assert_eq!(eng.step(&mut p, last).unwrap(), one.step(&mut q, last).unwrap());
                }
            }
        }
    }
    set_portable_only(false);
    set_vnni_allowed(true);
    set_avx512(None);
}

#[test]
fn concurrent_sessions_on_a_threaded_engine_match_their_solo_runs() {
    let cfg = ModelConfig::genesis(ModelNetwork::Testnet);
    let model = random_model(cfg, 8);
    for precision in [Precision::F32, Precision::Int8] {
        let one = Engine::new(&model, precision);
        let eng = Engine::new(&model, precision).with_threads(2);
        let inputs: Vec<Vec<u8>> = (0..3).map(|k| random_bytes(300, 40 + k)).collect();
        let solo: Vec<Vec<f32>> = inputs
            .iter()
            .map(|bytes| {
                let mut s = one.new_session();
                let mut all = Vec::new();
                for &b in bytes {
                    all.extend_from_slice(one.step(&mut s, b).unwrap());
                }
                all
            })
            .collect();
        let together: Vec<Vec<f32>> = std::thread::scope(|sc| {
            let hs: Vec<_> = inputs
                .iter()
                .map(|bytes| {
                    let eng = &eng;
                    sc.spawn(move || {
                        let mut s = eng.new_session();
                        let mut all = Vec::new();
                        for &b in bytes {
                            all.extend_from_slice(eng.step(&mut s, b).unwrap());
                        }
                        all
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(solo, together, "{precision}");
    }
}

#[test]
fn mainnet_shape_threaded_int8_equals_one_thread() {
    let cfg = ModelConfig::genesis(ModelNetwork::Mainnet);
    let model = Model::init(cfg, 1).unwrap();
    let one = Engine::new(&model, Precision::Int8);
    let two = one.clone().with_threads(2);
    let forced = one.clone().with_threads(2).with_adaptive_threads(false);
    let (mut a, mut b, mut c) = (one.new_session(), two.new_session(), forced.new_session());
    // Past several probe intervals, so the adaptive engine has tried both kinds of step.
    for &byte in &random_bytes(200, 3) {
        let want = one.step(&mut a, byte).unwrap();
        assert_eq!(want, two.step(&mut b, byte).unwrap());
        assert_eq!(want, forced.step(&mut c, byte).unwrap());
    }
}

#[test]
fn the_server_decodes_on_its_configured_threads() {
    use rnet_inference::{ServerConfig, ServerState};
    let model = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap();
    let state = ServerState::from_model(
        ServerConfig { compute_threads: 3, decode_threads: None, ..ServerConfig::default() },
        &model,
        0,
    );
    assert_eq!(state.model().engine.threads(), 3.min(cores()), "defaults to compute_threads");
    let state = ServerState::from_model(
        ServerConfig { compute_threads: 3, decode_threads: Some(2), ..ServerConfig::default() },
        &model,
        0,
    );
    assert_eq!(state.model().engine.threads(), 2.min(cores()));
    let state = ServerState::from_model(
        ServerConfig { decode_threads: Some(0), ..ServerConfig::default() },
        &model,
        0,
    );
    assert_eq!(state.model().engine.threads(), 1, "at least one");
}
