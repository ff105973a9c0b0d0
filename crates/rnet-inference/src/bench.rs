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
/// (written first, so every page is real memory) split across `threads` threads. The threads are
/// started once and kept spinning between passes (the decode pool's threads, as a threaded
/// decode step uses them), so a pass of a small, cache-resident buffer is not dominated by
/// starting threads.
pub fn memory_bandwidth(bytes: usize, threads: usize, reps: usize) -> f64 {
    let threads = threads.max(1);
    let n = (bytes / 8).max(8 * threads);
    let data: Vec<u64> = (0..n as u64).collect();
    let mut pool = crate::pool::Pool::new(threads);
    let parts = pool.threads();
    let sums: Vec<std::sync::atomic::AtomicU64> =
        (0..parts).map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
    let job = |w: &crate::pool::Worker<'_>| {
        let r = crate::engine::part(n, w.count(), w.index());
        sums[w.index()].store(sum_u64(&data[r]), std::sync::atomic::Ordering::Relaxed);
    };
    // One unmeasured pass: the threads are running and the buffer is where it will be read from.
    pool.run(&job);
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        pool.run(&job);
        let secs = t0.elapsed().as_secs_f64();
        best = best.min(secs);
    }
    let total = sums
        .iter()
        .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        .fold(0, u64::wrapping_add);
    std::hint::black_box(total);
    (n * 8) as f64 / best
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
}
