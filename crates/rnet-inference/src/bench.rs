//! Measuring the machine's memory bandwidth, the bound of one-byte decode (every weight is read
//! once per byte).

use std::time::Instant;

/// Sums `data` with eight independent accumulators (vectorised by the compiler): a pure
/// streaming read.
fn sum_u64(data: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            acc[l] = acc[l].wrapping_add(c[l]);
        }
    }
    let mut s = acc.iter().fold(0u64, |a, &b| a.wrapping_add(b));
    for &v in chunks.remainder() {
        s = s.wrapping_add(v);
    }
    s
}

/// Read bandwidth in bytes per second: the best of `reps` passes summing a `bytes`-sized buffer
/// (written first, so every page is real memory) split across `threads` threads (see
/// [`CacheRead`]).
pub fn memory_bandwidth(bytes: usize, threads: usize, reps: usize) -> f64 {
    CacheRead::new(bytes, threads).best(reps)
}

/// A read-bandwidth measurement kept ready between passes: the buffer and the threads that sum
/// it. The threads are started once and kept between passes (the decode pool's threads, as a
/// threaded decode step uses them), so a pass of a small, cache-resident buffer is not dominated
/// by starting threads, and passes can be taken between other measurements (the decode's) to
/// compare the two at the same moment on a machine whose speed drifts.
pub struct CacheRead {
    data: Vec<u64>,
    pool: crate::pool::Pool,
    sums: Vec<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for CacheRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheRead")
            .field("bytes", &(8 * self.data.len()))
            .field("threads", &self.pool.threads())
            .finish()
    }
}

impl CacheRead {
    /// A buffer of `bytes` (at least 8 words per thread) and `threads` threads (at least 1),
    /// after one unmeasured pass (the threads are running and the buffer is where it will be
    /// read from).
    pub fn new(bytes: usize, threads: usize) -> Self {
        let threads = threads.max(1);
        let n = (bytes / 8).max(8 * threads);
        let pool = crate::pool::Pool::new(threads);
        let sums = (0..pool.threads()).map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
        let mut read = Self { data: (0..n as u64).collect(), pool, sums };
        read.pass();
        read
    }

    /// One pass over the buffer; its time in seconds.
    fn pass(&mut self) -> f64 {
        let (data, sums) = (&self.data, &self.sums);
        let job = |w: &crate::pool::Worker<'_>| {
            let r = crate::engine::part(data.len(), w.count(), w.index());
            sums[w.index()].store(sum_u64(&data[r]), std::sync::atomic::Ordering::Relaxed);
        };
        let t0 = Instant::now();
        self.pool.run(&job);
        let secs = t0.elapsed().as_secs_f64();
        let total = self
            .sums
            .iter()
            .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
            .fold(0, u64::wrapping_add);
        std::hint::black_box(total);
        secs
    }

    /// Bytes per second of the fastest of `reps` passes.
    pub fn best(&mut self, reps: usize) -> f64 {
        let best = (0..reps.max(1)).map(|_| self.pass()).fold(f64::INFINITY, f64::min);
        (8 * self.data.len()) as f64 / best
    }
}

/// What the decode pool's synchronisation costs by itself, in seconds (medians of rounds).
#[derive(Clone, Copy, Debug)]
pub struct PoolCost {
    /// One run of a job that does nothing: publishing it, every participant starting it, and
    /// the caller learning that all finished.
    pub run: f64,
    /// One barrier ([`crate::pool::Worker::sync`]) between participants that arrive together.
    pub barrier: f64,
}

/// Measures [`PoolCost`] on a pool of `threads` threads: `rounds` rounds of 2,000 empty runs
/// and 2,000 runs of 32 barriers each, the medians taken (a barrier's cost is the difference
/// over 32). With one thread both are the cost of a call.
pub fn pool_cost(threads: usize, rounds: usize) -> PoolCost {
    const RUNS: usize = 2_000;
    const BARRIERS: usize = 32;
    let mut pool = crate::pool::Pool::new(threads);
    let empty = |_: &crate::pool::Worker<'_>| {};
    let synced = |w: &crate::pool::Worker<'_>| {
        for _ in 0..BARRIERS {
            w.sync();
        }
    };
    let mut time = |job: &(dyn Fn(&crate::pool::Worker<'_>) + Sync)| {
        let t0 = Instant::now();
        for _ in 0..RUNS {
            pool.run(job);
        }
        t0.elapsed().as_secs_f64() / RUNS as f64
    };
    time(&synced); // starts and warms the threads
    let (mut runs, mut barriers) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let run = time(&empty);
        let with = time(&synced);
        runs.push(run);
        barriers.push(((with - run) / BARRIERS as f64).max(0.0));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    PoolCost { run: median(&mut runs), barrier: median(&mut barriers) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_is_positive_and_the_sum_is_right() {
        let v: Vec<u64> = (0..1001).collect();
        assert_eq!(sum_u64(&v), 1000 * 1001 / 2);
        let bw = memory_bandwidth(1 << 20, 2, 2);
        assert!(bw.is_finite() && bw > 1e8, "{bw}");
    }

    #[test]
    fn pool_costs_are_finite_and_small() {
        for threads in [1, 2] {
            let c = pool_cost(threads, 1);
            // Microseconds on any machine; a second would mean a lost wake.
            assert!(c.run.is_finite() && c.run < 0.1, "{c:?}");
            assert!(c.barrier.is_finite() && c.barrier >= 0.0 && c.barrier < 0.1, "{c:?}");
        }
    }
}
