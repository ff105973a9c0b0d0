//! Decode benchmark: `cargo bench -p rnet-inference --bench decode`.
//!
//! For the mainnet genesis shape in f32 and int8 it prints the decode rate of one session (bytes
//! per second) on one thread and on every core (`Engine::with_threads`), the recurrent state per
//! session, the weight bytes read per decoded byte, and the bounds those rates are held to:
//! the DRAM bound (`bandwidth / weight bytes per byte`, bandwidth = streaming read of a 1 GiB
//! buffer, far larger than any cache) and the cache-resident bound (the same read at the size of
//! the weights, best of 20, on one thread and on every core). On a machine whose speed drifts
//! between minutes, a decode and a bound measured apart can disagree by a third, so the pooled
//! decode is also measured *together* with the bound: rounds of one cache read then 64 steps
//! timed one by one, the ratio taken per round. Then one session per core, the
//! prefill rate, the int8 products alone against a plain read of the same bytes (one thread, each
//! int8 kernel the CPU has; then split by rows over the decode threads, the ceiling of a pooled
//! step), and the reference scalar step. Rates are the best of several rounds (the machine
//! may be shared); the load average is printed at the start and the end. `RNET_BENCH_QUICK=1`
//! shortens every measurement; `RNET_BENCH_THREADS=N` sets the threads of the threaded decode.

use std::time::Instant;

use rnet_inference::bench::{CacheRead, memory_bandwidth, pool_cost};
use rnet_inference::engine::BARRIERS_PER_LAYER;
use rnet_inference::kernels::{Matrix, QVec, Store, kernel_name};
use rnet_inference::sampling::argmax;
use rnet_inference::{Engine, Precision};
use rnet_model::{Model, ModelConfig, ModelNetwork, RecurrentState, excerpt, step};

fn gb(bytes_per_s: f64) -> String {
    format!("{:.2} GB/s", bytes_per_s / 1e9)
}

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Decode rates of one session: the best round (the least disturbed on a shared machine) and
/// the median round, in bytes per second.
#[derive(Clone, Copy)]
struct Rate {
    best: f64,
    median: f64,
}

/// Greedy decode after `warm` unmeasured bytes: `rounds` rounds of `n` bytes each. Rounds are
/// short (a few ms) so that, on a machine shared with other work, some of them run while the
/// decode threads have their cores, as the bound's short reads do.
fn decode_rate(engine: &Engine, prompt: &[u8], warm: usize, n: usize, rounds: usize) -> Rate {
    let mut s = engine.new_session();
    let mut next = argmax(engine.prefill(&mut s, prompt).expect("same shape").expect("non-empty"));
    for _ in 0..warm {
        next = argmax(engine.step(&mut s, next).expect("same shape"));
    }
    let mut rates = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        for _ in 0..n {
            next = argmax(engine.step(&mut s, next).expect("same shape"));
        }
        rates.push(n as f64 / t0.elapsed().as_secs_f64());
    }
    std::hint::black_box(next);
    rates.sort_by(f64::total_cmp);
    Rate { best: rates[rates.len() - 1], median: rates[rates.len() / 2] }
}

/// A decode measured against the cache-resident bound of the same moments (see
/// [`decode_against_bound`]).
struct Together {
    /// Median over rounds of (the round's median step rate / the round's bound).
    median: f64,
    /// Median over rounds of (the round's fastest step rate / the round's bound).
    best_step: f64,
    /// Median of the rounds' bounds, bytes per second of reading.
    bound: f64,
}

/// The pooled decode of `engine` against a read of its `wpt` weight bytes on `threads` threads,
/// taken in turns so both see the same machine: `rounds` rounds of one bound (a fresh read's
/// fastest of 10 passes, after 3 ms in which the decode pool's threads stop spinning) followed
/// by `n` decode steps timed one by one, each step reading the weights once as a pass does (4
/// unmeasured steps first wake the pool, parked during the read).
fn decode_against_bound(
    engine: &Engine,
    prompt: &[u8],
    wpt: usize,
    threads: usize,
    n: usize,
    rounds: usize,
) -> Together {
    let mut s = engine.new_session();
    let mut next = argmax(engine.prefill(&mut s, prompt).expect("same shape").expect("non-empty"));
    let (mut ratios, mut best_ratios, mut bounds) = (Vec::new(), Vec::new(), Vec::new());
    let mut steps = Vec::with_capacity(n);
    for _ in 0..rounds {
        // A fresh read each round (new threads, placed anew by the scheduler: a run whose two
        // reading threads share a core reads at a third of the speed), after the decode pool's
        // threads stopped spinning.
        std::thread::sleep(std::time::Duration::from_millis(3));
        let bound = CacheRead::new(wpt, threads).best(10);
        for _ in 0..4 {
            next = argmax(engine.step(&mut s, next).expect("same shape"));
        }
        steps.clear();
        for _ in 0..n {
            let t0 = Instant::now();
            next = argmax(engine.step(&mut s, next).expect("same shape"));
            steps.push(t0.elapsed().as_secs_f64());
        }
        steps.sort_by(f64::total_cmp);
        let rate = |secs: f64| wpt as f64 / secs;
        ratios.push(rate(steps[steps.len() / 2]) / bound);
        best_ratios.push(rate(steps[0]) / bound);
        bounds.push(bound);
    }
    std::hint::black_box(next);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Together {
        median: median(&mut ratios),
        best_step: median(&mut best_ratios),
        bound: median(&mut bounds),
    }
}

/// Resident set size of this process in KiB (`/proc/self/statm`; 0 where there is none).
/// The int8 products of a decode step alone — every layer's `[Wz; Wh]`, `Wo`, `[W_gate; W_up]`
/// and `W_down` of `model`, back to back on one thread, each on a quantised input — against a
/// plain one-thread read of the same number of bytes measured right before, best of several
/// passes each, for each int8 decode kernel this CPU has. This isolates the kernels from the
/// rest of the step (and from the other core): how close they stream to the read they are bound
/// by. Then the same products split by rows over `threads` threads as the decode step splits
/// them ([`products_split`]).
fn products_against_read(model: &Model, quick: bool, threads: usize) {
    use rnet_inference::kernels::{set_avx512, set_dotprod_allowed, set_vnni_allowed};
    let cfg = model.config();
    let (d, f) = (cfg.d_model, cfg.d_ff);
    let p = model.params();
    let lay = model.layout();
    let cat = |a: &std::ops::Range<usize>, b: &std::ops::Range<usize>| {
        let mut v = p[a.clone()].to_vec();
        v.extend_from_slice(&p[b.clone()]);
        v
    };
    let mats: Vec<Matrix> = lay
        .layers
        .iter()
        .flat_map(|l| {
            [
                Matrix::int8(2 * d, d, &cat(&l.wz, &l.wh)),
                Matrix::int8(d, d, &p[l.wo.clone()]),
                Matrix::int8(2 * f, d, &cat(&l.w_gate, &l.w_up)),
                Matrix::int8(d, f, &p[l.w_down.clone()]),
            ]
        })
        .collect();
    let bytes: usize = mats.iter().map(|m| m.rows() * m.cols()).sum();
    let input: Vec<f32> = (0..d.max(f)).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let (mut qd, mut qf) = (QVec::new(), QVec::new());
    qd.quantize(&input[..d]);
    qf.quantize(&input[..f]);
    let mut y = vec![0.0f32; 2 * f.max(d)];
    let passes = if quick { 50 } else { 300 };
    println!(
        "
[int8 products alone, 1 thread] the {} layer matrices ({}) back to back:",
        mats.len(),
        mib(bytes)
    );
    // AVX-512 VNNI or the Arm dot product, then 256-bit VNNI and AVX2, or plain NEON, where the CPU
    // has them (the kernel names tell which ran; a setting the CPU lacks falls back and is
    // skipped). The decode above ran on the default: the faster VNNI width as measured.
    let mut seen = Vec::new();
    for (vnni, avx512, dotprod) in [(true, true, true), (true, false, true), (false, false, false)]
    {
        set_vnni_allowed(vnni);
        set_avx512(Some(avx512));
        set_dotprod_allowed(dotprod);
        let name = kernel_name();
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let read = memory_bandwidth(bytes, 1, passes);
        let mut best = f64::INFINITY;
        for _ in 0..passes {
            let t0 = Instant::now();
            for m in &mats {
                let (x, q) = if m.cols() == d { (&input[..d], &qd) } else { (&input[..f], &qf) };
                m.matvec_rows(0..m.rows(), x, Some(q), &mut y[..m.rows()], Store::Overwrite);
            }
            best = best.min(t0.elapsed().as_secs_f64());
        }
        std::hint::black_box(&y);
        let rate = bytes as f64 / best;
        println!(
            "  {name}: {} against a plain read of {} -> {:.0}%",
            gb(rate),
            gb(read),
            100.0 * rate / read
        );
    }
    set_vnni_allowed(true);
    set_avx512(None);
    set_dotprod_allowed(true);
    if threads > 1 {
        products_split(&mats, &input, (&qd, &qf), threads, passes);
    }
}

/// Rows `i`-th of `parts` of `rows`, in whole groups of 16 (as the decode step splits them).
fn rows_part(rows: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    let units = rows.div_ceil(16);
    let bound = |j: usize| (units * j / parts * 16).min(rows);
    bound(i)..bound(i + 1)
}

/// The int8 products of [`products_against_read`] (default kernel) split by rows over `threads`
/// threads started together each pass (each stacked `[A; B]` matrix split in each of its halves,
/// as the decode step does), against a plain read of the same bytes by as many threads measured
/// right before: the ceiling of a pooled step that did nothing but its products, to compare the
/// pooled decode's fraction of the cache-resident bound with.
fn products_split(
    mats: &[Matrix],
    input: &[f32],
    (qd, qf): (&QVec, &QVec),
    threads: usize,
    passes: usize,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let bytes: usize = mats.iter().map(|m| m.rows() * m.cols()).sum();
    let d = mats.first().map_or(0, Matrix::cols);
    let run = |i: usize, y: &mut [f32]| {
        for m in mats {
            let (x, q) = if m.cols() == d { (&input[..d], qd) } else { (&input[..m.cols()], qf) };
            // `[Wz; Wh]` and `[W_gate; W_up]`: each half split like a matrix of its own.
            let halves = if m.rows() > m.cols() { 2 } else { 1 };
            let h = m.rows() / halves;
            for k in 0..halves {
                let r = rows_part(h, threads, i);
                let rows = k * h + r.start..k * h + r.end;
                let n = rows.len();
                m.matvec_rows(rows, x, Some(q), &mut y[..n], Store::Overwrite);
            }
        }
    };
    let read = memory_bandwidth(bytes, threads, passes);
    let (go, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut best = f64::INFINITY;
    std::thread::scope(|scope| {
        for i in 1..threads {
            let (go, done, run) = (&go, &done, &run);
            scope.spawn(move || {
                let mut y = vec![0.0f32; input.len() * 2];
                for pass in 1..=passes {
                    while go.load(Ordering::Acquire) < pass {
                        std::hint::spin_loop();
                    }
                    run(i, &mut y);
                    done.fetch_add(1, Ordering::Release);
                }
                std::hint::black_box(&y);
            });
        }
        let mut y = vec![0.0f32; input.len() * 2];
        for pass in 1..=passes {
            let t0 = Instant::now();
            go.store(pass, Ordering::Release);
            run(0, &mut y);
            while done.load(Ordering::Acquire) < pass * (threads - 1) {
                std::hint::spin_loop();
            }
            best = best.min(t0.elapsed().as_secs_f64());
        }
        std::hint::black_box(&y);
    });
    let rate = bytes as f64 / best;
    println!(
        "[int8 products alone, split by rows over {threads} threads] {} against a plain \
         {threads}-thread read of the same bytes of {} -> {:.0}% (the ceiling of a pooled step \
         that did nothing else)",
        gb(rate),
        gb(read),
        100.0 * rate / read
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4)
}

/// `/proc/loadavg`'s first three fields (where there is one).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn main() {
    let quick = std::env::var_os("RNET_BENCH_QUICK").is_some();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads: usize = std::env::var("RNET_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cores)
        .max(1);
    println!(
        "rnet-inference decode benchmark: {cores} cores, kernels: {}, load average {}",
        kernel_name(),
        load_average()
    );

    let buf = if quick { 256 << 20 } else { 1 << 30 };
    let bw1 = memory_bandwidth(buf, 1, 3);
    let bw_all = memory_bandwidth(buf, cores, 3);
    let bw_t = if threads == cores { bw_all } else { memory_bandwidth(buf, threads, 3) };
    println!(
        "memory bandwidth (streaming read of {}): 1 thread {}, {cores} threads {}",
        mib(buf),
        gb(bw1),
        gb(bw_all)
    );

    let cfg = ModelConfig::genesis(ModelNetwork::Mainnet);
    let t0 = Instant::now();
    let model = Model::init(cfg.clone(), 0).expect("genesis config is valid");
    println!(
        "mainnet genesis shape: d={} L={} S={} F={} kernels={:?}, {} parameters ({} as f32); init {:.2} s",
        cfg.d_model,
        cfg.n_layers,
        cfg.n_slots,
        cfg.d_ff,
        cfg.kernel_sizes,
        model.param_count(),
        mib(4 * model.param_count()),
        t0.elapsed().as_secs_f64()
    );
    let prompt = &excerpt(ModelNetwork::Mainnet)[..512];
    let (warm, n, rounds) = if quick { (20, 32, 20) } else { (100, 32, 200) };

    for precision in [Precision::F32, Precision::Int8] {
        let t0 = Instant::now();
        let engine = Engine::new(&model, precision);
        let load = t0.elapsed().as_secs_f64();
        let wpt = engine.weight_bytes_per_token();
        let rate1 = decode_rate(&engine, prompt, warm, n, rounds);
        let threaded = engine.clone().with_threads(threads);
        let rate = decode_rate(&threaded, prompt, warm, n, rounds);
        let forced = engine.clone().with_threads(threads).with_adaptive_threads(false);
        let rate_pool = decode_rate(&forced, prompt, warm, n, rounds);
        let bound_dram1 = bw1 / wpt as f64;
        let bound_dram = bw_t / wpt as f64;
        // The same read at the size of the weights: cache-resident when they fit in cache, so a
        // stricter bound than the DRAM bandwidth.
        let ws1 = memory_bandwidth(wpt, 1, 20);
        let ws = memory_bandwidth(wpt, threads, 20);
        println!("\n[{precision}] engine build {load:.2} s, load average {}", load_average());
        println!(
            "  state per session:        {} ({} B)",
            mib(engine.state_bytes()),
            engine.state_bytes()
        );
        println!("  weight bytes per token:   {} ({} B)", mib(wpt), wpt);
        println!(
            "  decode, 1 session, 1 thread:   {:.0} bytes/s ({:.3} ms/byte, {}); median round {:.0}",
            rate1.best,
            1e3 / rate1.best,
            gb(rate1.best * wpt as f64),
            rate1.median
        );
        println!(
            "  decode, 1 session, {threads} threads (adaptive): {:.0} bytes/s ({:.3} ms/byte, {}); median round {:.0}",
            rate.best,
            1e3 / rate.best,
            gb(rate.best * wpt as f64),
            rate.median
        );
        println!(
            "  decode, 1 session, {threads} threads, pool on every step: {:.0} bytes/s ({:.3} ms/byte); median round {:.0}",
            rate_pool.best,
            1e3 / rate_pool.best,
            rate_pool.median
        );
        let (rate1, rate) = (rate1.best, rate.best.max(rate_pool.best));
        println!(
            "  DRAM bound (1 GiB read): 1 thread {bound_dram1:.0} bytes/s, {threads} threads {bound_dram:.0} bytes/s -> {threads}-thread decode at {:.0}%",
            100.0 * rate / bound_dram
        );
        println!(
            "  cache-resident bound (read of {} , best of 20): 1 thread {} = {:.0} bytes/s, {threads} threads {} = {:.0} bytes/s -> {threads}-thread decode at {:.0}% (1-thread decode at {:.0}% of the 1-thread bound)",
            mib(wpt),
            gb(ws1),
            ws1 / wpt as f64,
            gb(ws),
            ws / wpt as f64,
            100.0 * rate * wpt as f64 / ws,
            100.0 * rate1 * wpt as f64 / ws1
        );
        // The same pooled decode against the bound of the same moments.
        if threads > 1 {
            let t = decode_against_bound(
                &forced,
                prompt,
                wpt,
                threads,
                64,
                if quick { 20 } else { 60 },
            );
            println!(
                "  measured together ({threads} threads, pool on every step; rounds of a best-of-10 cache read then 64 timed steps): decode at {:.0}% of the same moment's cache-resident bound (median round; fastest step {:.0}%), bound median {} = {:.0} bytes/s",
                100.0 * t.median,
                100.0 * t.best_step,
                gb(t.bound),
                t.bound / wpt as f64
            );
            if precision == Precision::Int8 {
                let c = pool_cost(threads, if quick { 5 } else { 15 });
                let barriers = BARRIERS_PER_LAYER * cfg.n_layers;
                let sync = c.run + barriers as f64 * c.barrier;
                println!(
                    "  the pool's synchronisation alone (median of rounds): an empty run {:.2} µs, one barrier {:.3} µs; a step's run and {barriers} barriers {:.1} µs = {:.0}% of a pooled step ({:.1} µs)",
                    1e6 * c.run,
                    1e6 * c.barrier,
                    1e6 * sync,
                    100.0 * sync * rate_pool.best,
                    1e6 / rate_pool.best
                );
            }
            if t.bound < ws / 2.0 {
                println!(
                    "  (the reads of this run ran at under half the {} measured above: a run whose reading threads share a core; its ratio says nothing, run the bench again)",
                    gb(ws)
                );
            }
        }
        // One session per core: aggregate throughput against the all-core bandwidth.
        let per: Vec<f64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..cores)
                .map(|_| s.spawn(|| decode_rate(&engine, prompt, warm, n, rounds).best))
                .collect();
            hs.into_iter().map(|h| h.join().expect("decode thread")).collect()
        });
        let total: f64 = per.iter().sum();
        println!(
            "  decode, {cores} sessions (1 thread each): {total:.0} bytes/s total; {cores}-thread DRAM bound {:.0} bytes/s -> {:.0}%",
            bw_all / wpt as f64,
            100.0 * total * wpt as f64 / bw_all
        );
        // Prefill (position-blocked).
        let long = &excerpt(ModelNetwork::Mainnet)[..if quick { 1024 } else { 4096 }];
        let mut secs = f64::INFINITY;
        for _ in 0..3 {
            let mut s = engine.new_session();
            let t0 = Instant::now();
            engine.prefill(&mut s, long).expect("same shape");
            secs = secs.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "  prefill ({cores} threads):      {:.0} bytes/s ({} bytes)",
            long.len() as f64 / secs,
            long.len()
        );
    }

    // Long context: 100,000 bytes streamed through one int8 session's state.
    {
        let engine = Engine::new(&model, Precision::Int8).with_threads(threads);
        let context = if quick { 20_000 } else { 100_000 };
        let text: Vec<u8> =
            rnet_model::training_text().iter().copied().cycle().take(context).collect();
        let start = decode_rate(&engine, prompt, warm, n, rounds).best;
        let mut s = engine.new_session();
        let rss0 = rss_kib();
        let t0 = Instant::now();
        for piece in text.chunks(4096) {
            engine.prefill(&mut s, piece).expect("same shape");
        }
        let secs = t0.elapsed().as_secs_f64();
        let rss1 = rss_kib();
        let mut next = argmax(s.logits().expect("fed"));
        for _ in 0..warm {
            next = argmax(engine.step(&mut s, next).expect("same shape"));
        }
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..n {
                next = argmax(engine.step(&mut s, next).expect("same shape"));
            }
            rates.push(n as f64 / t.elapsed().as_secs_f64());
        }
        let after = rates.iter().copied().fold(0.0, f64::max);
        println!(
            "\n[int8, {threads} threads] long context: {context} bytes prefilled at {:.0} bytes/s; state {} B before and after; RSS {rss0} -> {rss1} KiB; decode {start:.0} bytes/s at the start, {after:.0} bytes/s after {context} bytes",
            context as f64 / secs,
            s.state_bytes()
        );
    }

    products_against_read(&model, quick, threads);

    // The canonical scalar step, for comparison.
    let mut state = RecurrentState::new(&cfg);
    let steps = if quick { 10 } else { 50 };
    let t0 = Instant::now();
    for &b in &prompt[..steps] {
        std::hint::black_box(step(&model, &mut state, b).expect("same shape"));
    }
    println!(
        "\nreference rnet_model::step (bit-exact scalar): {:.0} bytes/s",
        steps as f64 / t0.elapsed().as_secs_f64()
    );
    println!("load average at the end: {}", load_average());
}
