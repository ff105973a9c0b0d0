//! The decode step, fused per layer and split by rows across the participants of a [`Pool`].
//!
//! Every participant runs the same sequence of phases; between phases a barrier
//! ([`Worker::sync`]) makes the previous phase's outputs visible to all. In each phase a
//! participant writes only its own slice of the shared vectors (its channels of `x`, `c`, `h` and
//! the ring buffer, its rows of the SwiGLU activations and the logits) and reads
//! whole vectors only in later phases, so no two participants ever touch the same element at
//! the same time. Small per-position vectors (the normed input, the softmax, the quantised input
//! of each product) are recomputed by every participant in its own scratch rather than shared,
//! which saves barriers. Per layer (channel range `C` and FFN range `F` of this participant):
//!
//! 1. `u = RMSNorm(x)·γ1` for `C` into the ring, the conv for `C` → `c[C]`;
//! 2. `[zp; hp]` rows `C` and `d + C` of `[Wz; Wh] c`, minGRU update of `h[C]`;
//! 3. `x[C] += Wo[C] h`;
//! 4. `v = RMSNorm(x)·γ2`, `α = softmax(KQ v)` and `x' = x + MV α`, all slots and all
//!    channels, in the participant's own scratch (every participant computes them itself:
//!    `KQ` and `MV` are only `S·d` bytes each, and sharing the scores or `MV α` would cost a
//!    barrier each, more than reading them twice), then `v = RMSNorm(x')·γ3`, gate rows `F` and
//!    up rows `f + F`, `a[F] = SiLU(g) ⊙ u`;
//! 5. `x[C] = x'[C] + W_down[C] a`;
//!
//! then `logits[V] = head[V] · (RMSNorm(x)·γf)`. Five barriers per layer
//! ([`BARRIERS_PER_LAYER`]); after each, a participant asks for the whole vector the next phase
//! reads at once ([`sync_and_fetch`]), the other participants' slices of it being in their
//! caches. Every value is computed
//! by the same operations in the same order whatever the number of participants, so the split
//! is bit-identical to one thread; with one participant this is the plain single-thread step
//! (its barriers do nothing).

use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use rnet_model::{ModelConfig, VOCAB};

use super::{Engine, Ring, Session, gru_update};
use crate::kernels::{self, Matrix, QVec, Store};
use crate::line_buf::LineBuf;
use crate::pool::{Pool, Worker};

/// The barriers of one layer of a pooled decode step (the five phases above; the logits need
/// none after them).
pub const BARRIERS_PER_LAYER: usize = 5;

/// One participant's private working vectors.
#[derive(Clone, Debug)]
pub(super) struct ThreadScratch {
    /// A normed copy of `x` (`d`).
    pub(super) v: LineBuf,
    /// `x` plus the slot attention's output (`d`), before it is stored back.
    xs: LineBuf,
    /// The slot softmax (`S`).
    probs: LineBuf,
    /// Product outputs before their element-wise step (`2 · max(d, f)`).
    tmp: LineBuf,
    /// The quantised input of the current product.
    q: QVec,
}

impl ThreadScratch {
    pub(super) fn new(cfg: &ModelConfig) -> Self {
        let (d, f) = (cfg.d_model, cfg.d_ff);
        let mut q = QVec::new();
        // Grow the buffers once, so steps never allocate.
        q.quantize(&vec![0.0; d.max(f).max(cfg.n_slots)]);
        Self {
            v: LineBuf::zeros(d),
            xs: LineBuf::zeros(d),
            probs: LineBuf::zeros(cfg.n_slots),
            tmp: LineBuf::zeros(2 * d.max(f)),
            q,
        }
    }
}

/// The decode threads of an engine: the pool, the other participants' scratch, and the count of
/// steps in progress on this engine (the pool is used only by a step that finds none other).
pub(super) struct DecodeThreads {
    pool: UnsafeCell<Pool>,
    scratch: Vec<UnsafeCell<ThreadScratch>>,
    active: AtomicUsize,
    /// Recent step times on the pool and on one thread (see [`use_pool`]).
    pooled_ns: AtomicU64,
    solo_ns: AtomicU64,
    /// Steps that could use the pool so far.
    steps: AtomicU64,
    /// Steps that ran on the pool so far.
    pooled_steps: AtomicU64,
    /// Whether the last step ran on one thread: the pool's workers may have parked since, so
    /// the next pooled step pays their wake-up and is not a fair measure of the pool.
    last_solo: AtomicBool,
    /// Set after such a step: the next step runs on the pool too, and that one is measured.
    probe_next: AtomicBool,
}

/// One step in this many that could use the pool runs on one thread when the pool is measured
/// faster, so the choice follows the machine's load.
pub(crate) const PROBE_EVERY: u64 = 32;

/// Most the interval between tries of a slower pool is stretched (× [`PROBE_EVERY`]).
const MAX_BACKOFF: u64 = 64;

/// Most the interval between tries of one thread is stretched while the pool is faster (×
/// [`PROBE_EVERY`]): a pool of `n` threads is at most about `n` times faster, and one thread is
/// still measured at least once in this many × [`PROBE_EVERY`] steps.
const MAX_PROBE_STRETCH: u64 = 4;

/// Whether step number `n` (of those that could use the pool) does, given the recent step
/// times (0: not measured yet). The pool's threads wait for each other at every phase, so on a
/// machine whose cores are busy with other work (a build, a miner at normal priority) a step on
/// the pool can be much slower than one on a single thread; the engine measures both and uses
/// the faster. It tries one thread once in `PROBE_EVERY × (one-thread time / pool time)` steps
/// (at most ×[`MAX_PROBE_STRETCH`]) while the pool is faster, and the pool once in
/// `PROBE_EVERY × (pool time / one-thread time)` steps (at most ×[`MAX_BACKOFF`]) while it is
/// slower, so a try of the slower way costs under 1/[`PROBE_EVERY`] of the time however much
/// slower it is (a pool twice as fast: one try in 64 steps, 1.6% of the time, where one in 32
/// cost 3.1%). The pool's own time is measured on every pooled step, so it is only one thread's
/// time that a longer interval leaves older.
pub(crate) fn use_pool(pooled_ns: u64, solo_ns: u64, n: u64) -> bool {
    if pooled_ns == 0 {
        return true;
    }
    if solo_ns == 0 {
        return n % PROBE_EVERY != PROBE_EVERY - 1;
    }
    if pooled_ns <= solo_ns {
        let every = (PROBE_EVERY * solo_ns / pooled_ns).min(PROBE_EVERY * MAX_PROBE_STRETCH);
        return n % every != every - 1;
    }
    let every = PROBE_EVERY * pooled_ns.div_ceil(solo_ns).min(MAX_BACKOFF);
    n % every == every - 1
}

/// Folds a new step time into a recent average (weight 1/4; the first sample sets it). A sample
/// counts as at most twice the average, so one step stretched by preemption (milliseconds on a
/// busy machine) moves it by a quarter at most, while a lasting change still takes over within
/// a few samples.
pub(crate) fn fold(avg: &AtomicU64, ns: u64) {
    let old = avg.load(Ordering::Relaxed);
    let new = if old == 0 { ns.max(1) } else { (old - old / 4 + ns.min(2 * old) / 4).max(1) };
    avg.store(new, Ordering::Relaxed);
}

// SAFETY: `pool` and `scratch` are used only by the one step that raised `active` from 0 (see
// `Engine::step_threaded`), until it lowers it again.
unsafe impl Sync for DecodeThreads {}
// SAFETY: as above.
unsafe impl Send for DecodeThreads {}

impl std::fmt::Debug for DecodeThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeThreads").field("threads", &(self.scratch.len() + 1)).finish()
    }
}

impl DecodeThreads {
    pub(super) fn new(cfg: &ModelConfig, threads: usize) -> Self {
        let pool = Pool::new(threads);
        let n = pool.threads();
        Self {
            scratch: (1..n).map(|_| UnsafeCell::new(ThreadScratch::new(cfg))).collect(),
            pool: UnsafeCell::new(pool),
            active: AtomicUsize::new(0),
            pooled_ns: AtomicU64::new(0),
            solo_ns: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            pooled_steps: AtomicU64::new(0),
            last_solo: AtomicBool::new(false),
            probe_next: AtomicBool::new(false),
        }
    }
}

/// A shared buffer that participants slice by disjoint ranges between barriers.
struct Raw<T = f32> {
    p: *mut T,
    len: usize,
}

impl<T> Clone for Raw<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Raw<T> {}

// SAFETY: participants access disjoint ranges within a phase and whole buffers only in phases
// where nobody writes them (see the module documentation); the barriers order the phases.
unsafe impl<T> Send for Raw<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Raw<T> {}

impl<T> Raw<T> {
    fn of(v: &mut [T]) -> Self {
        Raw { p: v.as_mut_ptr(), len: v.len() }
    }

    /// # Safety
    /// Nobody writes `r` while the slice lives.
    unsafe fn get(&self, r: Range<usize>) -> &[T] {
        assert!(r.start <= r.end && r.end <= self.len);
        // SAFETY: in bounds (checked); the caller guarantees no writer.
        unsafe { std::slice::from_raw_parts(self.p.add(r.start), r.len()) }
    }

    /// A pointer to element `at` (for callers that slice it further themselves).
    fn ptr_at(&self, at: usize) -> *mut T {
        assert!(at <= self.len);
        self.p.wrapping_add(at)
    }

    /// # Safety
    /// Nobody else reads or writes `r` while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self, r: Range<usize>) -> &mut [T] {
        assert!(r.start <= r.end && r.end <= self.len);
        // SAFETY: in bounds (checked); the caller guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.p.add(r.start), r.len()) }
    }
}

/// The session's conv history for one step, in its precision.
#[derive(Clone, Copy)]
enum RingView {
    F32(Raw<f32>),
    F16(Raw<u16>),
}

/// The session's shared buffers for one step.
#[derive(Clone, Copy)]
struct Views {
    x: Raw,
    c: Raw,
    h: Raw,
    ring: RingView,
    a: Raw,
    logits: Raw,
}

/// The session's scratch, handed to participant 0 through the pool.
struct Scratch0(*mut ThreadScratch);
// SAFETY: only participant 0 (the calling thread) dereferences it, during the step.
unsafe impl Sync for Scratch0 {}

impl Scratch0 {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn ptr(&self) -> *mut ThreadScratch {
        self.0
    }
}

/// Participant `i`'s share of `items` rows out of `parts`: contiguous, balanced, and aligned to
/// 16 rows (one 64-byte line of f32 outputs) when there are enough, so participants do not write
/// the same cache line.
pub(crate) fn part(items: usize, parts: usize, i: usize) -> Range<usize> {
    let parts = parts.max(1);
    let align = if items >= 16 * parts {
        16
    } else if items >= 4 * parts {
        4
    } else {
        1
    };
    let units = items.div_ceil(align);
    let bound = |j: usize| (units * j / parts * align).min(items);
    bound(i)..bound(i + 1)
}

/// Waits at the barrier, then asks for every cache line of `raw[r]` at once: the vector the
/// next phase reads whole, whose other slices the other participants have just written. Read by
/// the phase's first loop, those lines would arrive from the other cores a few at a time; asked
/// for together, their transfers overlap (alternating in one process, best of 10 rounds of 64
/// bytes, 30 alternations: +1.6% to +2.4% for two threads, faster in every alternation).
#[inline(always)]
fn sync_and_fetch(w: &Worker<'_>, raw: &Raw, r: Range<usize>) {
    w.sync();
    #[cfg(target_arch = "x86_64")]
    if w.count() > 1 {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // 16 floats per 64-byte line.
        for i in r.step_by(16) {
            // SAFETY: a prefetch of an address inside the buffer reads and writes nothing.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(raw.ptr_at(i) as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (raw, r);
}

/// Quantises `x` for `m` when its product will use quantised activations.
#[inline]
fn prep<'q>(m: &Matrix, x: &[f32], q: &'q mut QVec) -> Option<&'q QVec> {
    if m.wants_qvec() {
        q.quantize(x);
        Some(q)
    } else {
        None
    }
}

/// `out[j] = x[c0 + j] · r · γ[c0 + j]`.
#[inline]
fn norm_into(x: &[f32], r: f32, gamma: &[f32], c0: usize, out: &mut [f32]) {
    for (j, o) in out.iter_mut().enumerate() {
        *o = x[c0 + j] * r * gamma[c0 + j];
    }
}

impl Engine {
    /// One decode step of `s` on the engine's pool when it has one and no other step is using
    /// it; on the calling thread alone otherwise.
    pub(super) fn step_fused(&self, s: &mut Session, byte: u8) {
        let pos = s.position;
        let views = Views {
            x: Raw::of(&mut s.x),
            c: Raw::of(&mut s.c),
            h: Raw::of(&mut s.h),
            ring: match &mut s.ring {
                Ring::F32(r) => RingView::F32(Raw::of(r)),
                Ring::F16(r) => RingView::F16(Raw::of(r)),
            },
            a: Raw::of(&mut s.a),
            logits: Raw::of(&mut s.logits),
        };
        if self.threads > 1 {
            let dt = self.decode.get_or_init(|| {
                std::sync::Arc::new(DecodeThreads::new(&self.config, self.threads))
            });
            struct Leave<'a>(&'a AtomicUsize);
            impl Drop for Leave<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::Release);
                }
            }
            let first = dt.active.fetch_add(1, Ordering::Acquire) == 0;
            let _leave = Leave(&dt.active);
            let n = dt.steps.load(Ordering::Relaxed);
            let probing = first && dt.probe_next.swap(false, Ordering::Relaxed);
            if first
                && n > 0
                && self.adaptive
                && !probing
                && !use_pool(
                    dt.pooled_ns.load(Ordering::Relaxed),
                    dt.solo_ns.load(Ordering::Relaxed),
                    n,
                )
            {
                let t0 = Instant::now();
                self.step_part(&Worker::solo(), &views, &mut s.scratch, byte, pos);
                fold(&dt.solo_ns, t0.elapsed().as_nanos() as u64);
                dt.last_solo.store(true, Ordering::Relaxed);
                dt.steps.store(n + 1, Ordering::Relaxed);
                return;
            }
            if first {
                let t0 = Instant::now();
                let s0 = Scratch0(&mut s.scratch);
                let job = |w: &Worker<'_>| {
                    let sc = if w.index() == 0 {
                        // SAFETY: participant 0 is this thread; the session is borrowed
                        // mutably by this call for the whole run.
                        unsafe { &mut *s0.ptr() }
                    } else {
                        // SAFETY: participant `i` alone uses scratch `i − 1`, and only the step
                        // that raised `active` from 0 runs the pool.
                        unsafe { &mut *dt.scratch[w.index() - 1].get() }
                    };
                    self.step_part(w, &views, sc, byte, pos);
                };
                // SAFETY: exclusive: `active` was 0, so no other step is using the pool until
                // `_leave` lowers it after the run.
                unsafe { (*dt.pool.get()).run(&job) };
                // The first step also started the threads, and the first after one-thread
                // steps woke them: neither is a measure of the pool; the step after the latter
                // runs on the pool as well and is measured instead.
                let woke = dt.last_solo.swap(false, Ordering::Relaxed);
                if woke {
                    dt.probe_next.store(true, Ordering::Relaxed);
                } else if n > 0 {
                    fold(&dt.pooled_ns, t0.elapsed().as_nanos() as u64);
                }
                dt.pooled_steps.fetch_add(1, Ordering::Relaxed);
                dt.steps.store(n + 1, Ordering::Relaxed);
                return;
            }
        }
        self.step_part(&Worker::solo(), &views, &mut s.scratch, byte, pos);
    }

    /// Participant `w`'s part of one decode step (see the module documentation).
    fn step_part(&self, w: &Worker<'_>, v: &Views, sc: &mut ThreadScratch, byte: u8, pos: u64) {
        #[cfg(target_arch = "x86_64")]
        if kernels::simd_enabled() {
            // SAFETY: AVX2 and FMA are present (`simd_enabled`).
            unsafe { self.step_part_avx2(w, v, sc, byte, pos) };
            return;
        }
        self.step_part_body(w, v, sc, byte, pos);
    }

    /// [`Self::step_part_body`] compiled for AVX2: its element-wise loops (norms, gates,
    /// activations) run 8 lanes wide instead of SSE2's 4. Every participant of a step takes the
    /// same version, so the split stays bit-identical to one thread.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_part_avx2(
        &self,
        w: &Worker<'_>,
        v: &Views,
        sc: &mut ThreadScratch,
        byte: u8,
        pos: u64,
    ) {
        self.step_part_body(w, v, sc, byte, pos);
    }

    /// The body of [`Self::step_part`], inlined into each compiled version.
    #[inline(always)]
    fn step_part_body(
        &self,
        w: &Worker<'_>,
        v: &Views,
        sc: &mut ThreadScratch,
        byte: u8,
        pos: u64,
    ) {
        let cfg = &self.config;
        let (d, f, r) = (cfg.d_model, cfg.d_ff, self.ring);
        let (t, n) = (w.index(), w.count());
        let cr = part(d, n, t);
        let fr = part(f, n, t);
        let vr = part(VOCAB, n, t);
        let (nc, nf) = (cr.len(), fr.len());
        let slot = (pos % r as u64) as usize;
        let embed = &self.embed[byte as usize * d..(byte as usize + 1) * d];
        let ThreadScratch { v: nv, xs, probs, tmp, q } = sc;
        // SAFETY (every block below): the accesses follow the phase discipline of the module
        // documentation: in a phase this participant writes only its own ranges (`cr`, `fr`,
        // `vr`) and reads whole vectors that nobody writes in that phase.
        for (li, l) in self.layers.iter().enumerate() {
            // 1. Norm into the ring and the conv, channels `cr`.
            unsafe {
                let xin: &[f32] = if li == 0 { embed } else { v.x.get(0..d) };
                let rf = kernels::rms_factor(xin);
                norm_into(xin, rf, &l.norm1, cr.start, &mut tmp[..nc]);
                if li == 0 {
                    v.x.get_mut(cr.clone()).copy_from_slice(&embed[cr.clone()]);
                }
                let (u, c) = (&tmp[..nc], v.c.get_mut(cr.clone()));
                let conv = &l.conv;
                match v.ring {
                    RingView::F32(ring) => {
                        let ring = ring.ptr_at(li * kernels::conv_len(r, d));
                        kernels::ring_conv_cols(conv, d, cr.start, r, slot, u, ring, c);
                    }
                    RingView::F16(ring) => {
                        let ring = ring.ptr_at(li * kernels::conv_len(r, d));
                        kernels::ring_conv_cols_f16(conv, d, cr.start, r, slot, u, ring, c);
                    }
                }
            }
            sync_and_fetch(w, &v.c, 0..d);
            // 2. minGRU gates for `cr`.
            unsafe {
                let c = v.c.get(0..d);
                let cq = prep(&l.zh, c, q);
                let (zp, hp) = tmp[..2 * nc].split_at_mut(nc);
                l.zh.matvec_rows(cr.clone(), c, cq, zp, Store::Overwrite);
                l.zh.matvec_rows(d + cr.start..d + cr.end, c, cq, hp, Store::Overwrite);
                gru_update(v.h.get_mut(li * d + cr.start..li * d + cr.end), zp, hp);
            }
            sync_and_fetch(w, &v.h, li * d..(li + 1) * d);
            // 3. x += Wo h.
            unsafe {
                let h = v.h.get(li * d..(li + 1) * d);
                let hq = prep(&l.wo, h, q);
                l.wo.matvec_rows(cr.clone(), h, hq, v.x.get_mut(cr.clone()), Store::Add);
            }
            sync_and_fetch(w, &v.x, 0..d);
            // 4. Slot attention, all channels, into `xs` (x' = x + MV α); SwiGLU activations `fr`.
            unsafe {
                let x = v.x.get(0..d);
                kernels::rms_norm(x, &l.norm2, nv);
                let vq = prep(&l.kq, nv, q);
                l.kq.matvec_rows(0..cfg.n_slots, nv, vq, probs, Store::Overwrite);
                kernels::softmax(probs);
                let pq = prep(&l.mv, probs, q);
                l.mv.matvec_rows(0..d, probs, pq, xs, Store::Overwrite);
                // x' = x + m (IEEE addition commutes: the same bits as `m + x`).
                for (o, &xv) in xs.iter_mut().zip(x) {
                    *o += xv;
                }
                kernels::rms_norm(xs, &l.norm3, nv);
                let vq = prep(&l.gu, nv, q);
                let (g, u) = tmp[..2 * nf].split_at_mut(nf);
                l.gu.matvec_rows(fr.clone(), nv, vq, g, Store::Overwrite);
                l.gu.matvec_rows(f + fr.start..f + fr.end, nv, vq, u, Store::Overwrite);
                for ((o, &gv), &uv) in v.a.get_mut(fr.clone()).iter_mut().zip(&*g).zip(&*u) {
                    *o = kernels::silu(gv) * uv;
                }
            }
            sync_and_fetch(w, &v.a, 0..f);
            // 5. x[C] = x'[C] + W_down a.
            unsafe {
                let a = v.a.get(0..f);
                let aq = prep(&l.down, a, q);
                let out = v.x.get_mut(cr.clone());
                out.copy_from_slice(&xs[cr.clone()]);
                l.down.matvec_rows(cr.clone(), a, aq, out, Store::Add);
            }
            sync_and_fetch(w, &v.x, 0..d);
        }
        // Logits `vr`.
        unsafe {
            kernels::rms_norm(v.x.get(0..d), &self.norm_f, nv);
            let vq = prep(&self.head, nv, q);
            self.head.matvec_rows(
                vr.clone(),
                nv,
                vq,
                v.logits.get_mut(vr.clone()),
                Store::Overwrite,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_BACKOFF, MAX_PROBE_STRETCH, PROBE_EVERY, part, use_pool};
    use crate::{Engine, Precision};
    use rnet_model::{Model, ModelConfig, ModelNetwork};
    use std::sync::atomic::Ordering;

    /// Steps of `engine` that ran on its pool so far.
    fn pooled_steps(engine: &Engine) -> u64 {
        engine.decode.get().map_or(0, |dt| dt.pooled_steps.load(Ordering::Relaxed))
    }

    #[test]
    fn one_preempted_step_barely_moves_the_average_but_a_lasting_change_does() {
        let avg = std::sync::atomic::AtomicU64::new(0);
        super::fold(&avg, 100_000);
        assert_eq!(avg.load(Ordering::Relaxed), 100_000);
        super::fold(&avg, 30_000_000); // one step preempted for 30 ms
        assert_eq!(avg.load(Ordering::Relaxed), 125_000);
        for _ in 0..12 {
            super::fold(&avg, 1_000_000);
        }
        assert!(avg.load(Ordering::Relaxed) > 900_000);
    }

    #[test]
    fn a_non_adaptive_engine_steps_on_the_pool_every_time_and_an_adaptive_one_probes() {
        let model = Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 3).expect("config");
        let fixed =
            Engine::new(&model, Precision::Int8).with_threads(2).with_adaptive_threads(false);
        if fixed.threads() < 2 {
            return; // a one-core machine has no pool
        }
        let adaptive = Engine::new(&model, Precision::Int8).with_threads(2);
        let (mut a, mut b) = (fixed.new_session(), adaptive.new_session());
        for i in 0..100u8 {
            fixed.step(&mut a, i).expect("same shape");
            adaptive.step(&mut b, i).expect("same shape");
        }
        assert_eq!(pooled_steps(&fixed), 100);
        // The adaptive engine measures one thread at least once in 100 steps (its first try is
        // at step PROBE_EVERY − 1; later ones at most PROBE_EVERY × MAX_PROBE_STRETCH apart).
        assert!(pooled_steps(&adaptive) < 100);
        // Both decode the same bytes (the pool's split is bit-identical to one thread).
        assert_eq!(a.logits(), b.logits());
    }

    #[test]
    fn the_faster_mode_is_used_and_the_other_probed() {
        // Unmeasured: the pool; then one step in PROBE_EVERY measures the single thread.
        assert!(use_pool(0, 0, 5));
        assert!(use_pool(100, 0, 1));
        assert!(!use_pool(100, 0, PROBE_EVERY - 1));
        let uses = |p: u64, s: u64, steps: u64| (0..steps).filter(|&n| use_pool(p, s, n)).count();
        // Pool faster: used except on probes, one in PROBE_EVERY × (one-thread time / pool
        // time) steps (the ratio capped), so a probe costs the same share of the time however
        // much faster the pool is.
        assert_eq!(uses(100, 100, 10 * PROBE_EVERY), (10 * (PROBE_EVERY - 1)) as usize);
        assert_eq!(uses(100, 200, 20 * PROBE_EVERY), (20 * PROBE_EVERY - 10) as usize);
        let stretched = PROBE_EVERY * MAX_PROBE_STRETCH;
        assert_eq!(uses(100, 100_000, 3 * stretched), (3 * stretched - 3) as usize);
        // Slower: tried once per PROBE_EVERY × ratio steps, the ratio capped.
        assert_eq!(uses(300, 200, 20 * PROBE_EVERY), 10);
        assert_eq!(uses(100_000, 100, 2 * PROBE_EVERY * MAX_BACKOFF), 2);
    }

    #[test]
    fn parts_cover_the_rows_once_aligned_when_possible() {
        for items in [0, 1, 3, 16, 17, 64, 100, 256, 384, 768, 1000] {
            for parts in 1..=5 {
                let mut next = 0;
                for i in 0..parts {
                    let r = part(items, parts, i);
                    assert_eq!(r.start, next, "{items} {parts} {i}");
                    if items >= 16 * parts && i + 1 < parts {
                        assert_eq!(r.end % 16, 0);
                    }
                    next = r.end;
                }
                assert_eq!(next, items);
            }
        }
        assert_eq!(part(384, 2, 0), 0..192);
        assert_eq!(part(384, 2, 1), 192..384);
    }
}
