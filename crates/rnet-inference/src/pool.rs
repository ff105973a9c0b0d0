//! A persistent pool of decode workers that run one job together, split by rows, with a
//! spin-then-park barrier between the phases of the job.
//!
//! One decode step of one session is a chain of matrix–vector products, each needing the whole
//! output of the previous one; at the mainnet shape a step takes ~100 µs, so threads must be
//! handed work and re-synchronised in well under a microsecond. The pool therefore keeps its
//! threads alive between steps and synchronises with atomics only: the caller publishes a job
//! (a borrowed closure) by bumping an epoch counter, every participant (the caller is participant
//! 0) runs the closure with its index, and inside the closure [`Worker::sync`] is a barrier. Each
//! participant counts the barriers it has reached in a counter of its own, on its own cache line,
//! and waits until every other counter has caught up: arriving is a plain store to a line only
//! its owner writes, so a barrier costs one transfer of that line to each waiting participant,
//! where a shared arrival counter costs a locked update per participant and then a release.
//! Nothing on this path allocates or takes a lock. A waiting thread spins for a short while
//! ([`SPIN`]) and then parks (`std::thread::park`, a futex on Linux), so an idle pool and a
//! participant whose partner was descheduled on a busy machine do not burn a core; a parked
//! thread is counted in `sleepers`, and a participant that changes what others wait on wakes
//! them only when that count is not zero (no system call and no remote line on the common path).

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long a waiting participant spins before it yields or parks.
pub const SPIN: Duration = Duration::from_micros(50);

/// How long a participant waiting at a barrier spins before it parks: a parked participant
/// takes tens of microseconds to wake on a busy machine, longer than a phase, so parking inside a
/// step would make its partner wait in turn at the next barrier. (Yielding is no better: on
/// Linux it hands the core to any runnable task, low-priority ones included, for a whole time
/// slice.)
pub const JOB_SPIN: Duration = Duration::from_millis(2);

/// Longest a parked participant sleeps before it looks again without being woken (every change
/// it waits for wakes it; this only bounds the cost of a wake that went missing).
const PARK_TIMEOUT: Duration = Duration::from_millis(100);

/// A value alone on its cache line (128 bytes: adjacent-line prefetchers pair lines), so
/// participants polling different counters do not invalidate each other.
#[repr(align(128))]
struct Padded<T>(T);

/// The job of one run: a closure borrowed for the duration of [`Pool::run`] only.
type Job = *const (dyn Fn(&Worker<'_>) + Sync);

/// State shared by the caller and the workers.
struct Shared {
    /// Participants, the caller included.
    n: usize,
    /// Bumped (release) to publish a job; workers run one job per new value.
    epoch: Padded<AtomicUsize>,
    /// Workers that finished the current job.
    done: Padded<AtomicUsize>,
    /// Per participant, the barriers it has reached so far (all runs together; written only by
    /// its participant, except when the caller resets them after a run that panicked).
    arrivals: Box<[Padded<AtomicUsize>]>,
    /// Participants parked (or about to park) in [`Shared::wait_until`].
    sleepers: Padded<AtomicUsize>,
    /// Per worker (index − 1), the last epoch whose job it has finished including its last
    /// look at the caller's handle (after reporting `done`): the caller replaces the handle
    /// only once every worker is past it.
    finished: Box<[Padded<AtomicUsize>]>,
    /// Set when the pool is dropped.
    quit: AtomicBool,
    /// Set when a participant panicked: barriers stop waiting so the run can end.
    poisoned: AtomicBool,
    /// The job and the caller's thread handle, written by the caller before the epoch bump and
    /// read by workers after they see it (the epoch's release/acquire orders the accesses).
    slot: UnsafeCell<Slot>,
    /// Worker thread handles (to unpark them), set once at start.
    workers: std::sync::OnceLock<Vec<Thread>>,
}

struct Slot {
    job: Option<Job>,
    caller: Option<Thread>,
}

// SAFETY: `slot.job` is written only by the caller while no job is published (all workers have
// reported `done` for the previous one) and read by workers only between observing the new
// epoch and reporting `done`; `slot.caller` is also read by a worker just after its `done`, and
// is replaced only after every worker's `finished` shows it past that; every other field is
// atomic or immutable after start.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw job pointer is only dereferenced during a run.
unsafe impl Send for Shared {}

impl Shared {
    /// Waits until `ready()`: spins for [`SPIN`] between jobs, for [`JOB_SPIN`] inside one (a
    /// barrier, where the partner is mid-phase and a wake-up would cost more than the phase),
    /// then parks, counted in `sleepers`. Inside a job it gives up early when the pool is
    /// poisoned. Returns whether `ready()` held.
    #[inline]
    fn wait_until(&self, in_job: bool, ready: impl Fn() -> bool) -> bool {
        if ready() {
            return true;
        }
        let start = Instant::now();
        let mut rounds = 0u32;
        loop {
            for _ in 0..32 {
                std::hint::spin_loop();
                if ready() {
                    return true;
                }
            }
            rounds += 1;
            if in_job && self.poisoned.load(Ordering::Relaxed) {
                return ready();
            }
            if rounds.is_multiple_of(8) {
                let waited = start.elapsed();
                if waited >= SPIN && !(in_job && waited < JOB_SPIN) {
                    break;
                }
            }
        }
        // Counted before `ready` is read again, with a full fence between, pairing with the
        // fence in `wake_sleepers`: either the waker sees this count and unparks, or this
        // thread sees the waker's change.
        self.sleepers.0.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let held = loop {
            if ready() {
                break true;
            }
            if in_job && self.poisoned.load(Ordering::Relaxed) {
                break ready();
            }
            // A wake that came before this park leaves the token set, so park returns at once;
            // the timeout only bounds the cost of a wake lost to a bug.
            std::thread::park_timeout(PARK_TIMEOUT);
        };
        self.sleepers.0.fetch_sub(1, Ordering::Relaxed);
        held
    }

    /// After a change others may wait on (a job published, a barrier reached, a job done):
    /// unparks every participant but `me` if any is parked.
    #[inline]
    fn wake_sleepers(&self, me: usize) {
        fence(Ordering::SeqCst);
        if self.sleepers.0.load(Ordering::Relaxed) != 0 {
            self.wake_all(me);
        }
    }

    /// Unparks every participant but `me` (cheap when they are spinning: one atomic swap each).
    fn wake_all(&self, me: usize) {
        if let Some(workers) = self.workers.get() {
            for (i, t) in workers.iter().enumerate() {
                if i + 1 != me {
                    t.unpark();
                }
            }
        }
        if me != 0 {
            // SAFETY: the caller's handle is written before the job is published and not
            // changed until every worker has finished it; this runs during the job.
            if let Some(c) = unsafe { &(*self.slot.get()).caller } {
                c.unpark();
            }
        }
    }

    /// Participant `me` reaches its next barrier: publishes its count, then waits until every
    /// other participant's count has reached it (acquire, so their writes before the barrier
    /// are visible after it).
    fn barrier(&self, me: usize) {
        if self.n == 1 {
            return;
        }
        let mine = &self.arrivals[me].0;
        let reached = mine.load(Ordering::Relaxed).wrapping_add(1);
        mine.store(reached, Ordering::Release);
        self.wake_sleepers(me);
        // Counts only grow (wrapping after 2⁶⁴ barriers): "has reached" is a non-negative
        // wrapping difference.
        self.wait_until(true, || {
            self.arrivals
                .iter()
                .all(|a| a.0.load(Ordering::Acquire).wrapping_sub(reached) as isize >= 0)
        });
    }
}

/// One participant's view of a run: its index, the number of participants and the barrier.
pub struct Worker<'a> {
    index: usize,
    shared: Option<&'a Shared>,
}

impl Worker<'_> {
    /// The only participant of a job run without a pool (its barriers do nothing).
    pub fn solo() -> Worker<'static> {
        Worker { index: 0, shared: None }
    }

    /// This participant's index, `0..count()` (the caller is 0).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of participants.
    pub fn count(&self) -> usize {
        self.shared.map_or(1, |s| s.n)
    }

    /// Waits until every participant has reached this point; everything written before it by
    /// any participant is visible after it to all (acquire/release through the barrier).
    #[inline]
    pub fn sync(&self) {
        if let Some(s) = self.shared {
            s.barrier(self.index);
        }
    }
}

/// A fixed set of `threads − 1` worker threads that, with the calling thread, run jobs together.
pub struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("threads", &self.shared.n).finish()
    }
}

impl Pool {
    /// A pool of `threads` participants (at least 1): `threads − 1` new OS threads named
    /// `rnet-decode-N` plus the caller of [`Pool::run`]. Threads that cannot be spawned are
    /// left out (the pool is smaller).
    pub fn new(threads: usize) -> Self {
        let n = threads.max(1);
        let shared = Arc::new(Shared {
            n,
            epoch: Padded(AtomicUsize::new(0)),
            done: Padded(AtomicUsize::new(0)),
            arrivals: (0..n).map(|_| Padded(AtomicUsize::new(0))).collect(),
            sleepers: Padded(AtomicUsize::new(0)),
            finished: (1..n).map(|_| Padded(AtomicUsize::new(0))).collect(),
            quit: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            slot: UnsafeCell::new(Slot { job: None, caller: None }),
            workers: std::sync::OnceLock::new(),
        });
        let mut pool = Pool { shared, handles: Vec::with_capacity(n - 1) };
        for i in 1..n {
            let s = pool.shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rnet-decode-{i}"))
                .spawn(move || worker_loop(&s, i));
            match spawned {
                Ok(h) => pool.handles.push(h),
                // Out of threads: stop those started (drop) and run on the caller alone.
                Err(_) => return Pool::new(1),
            }
        }
        let threads: Vec<Thread> = pool.handles.iter().map(|h| h.thread().clone()).collect();
        let _ = pool.shared.workers.set(threads);
        pool
    }

    /// The number of participants.
    pub fn threads(&self) -> usize {
        self.shared.n
    }

    /// Runs `job` on every participant (index 0 on the calling thread) and returns when all have
    /// finished. `&mut self` makes runs exclusive.
    ///
    /// # Panics
    /// When `job` panicked on any participant (after all have stopped).
    pub fn run(&mut self, job: &(dyn Fn(&Worker<'_>) + Sync)) {
        let s = &*self.shared;
        if s.n == 1 {
            job(&Worker { index: 0, shared: Some(s) });
            return;
        }
        // SAFETY: a read; workers only read the slot as well.
        let caller = unsafe { (*s.slot.get()).caller.as_ref().map(Thread::id) };
        let new_caller = caller != Some(std::thread::current().id());
        if new_caller {
            // A worker may still be waking the previous caller after its `done` (rare: the
            // calling thread changed; the wait is the few instructions left of its run).
            let epoch = s.epoch.0.load(Ordering::Relaxed);
            while !s.finished.iter().all(|f| f.0.load(Ordering::Acquire) == epoch) {
                std::thread::yield_now();
            }
        }
        // SAFETY: no job is in flight (the previous run waited for every worker's `done`, and
        // for its `finished` when the handle changes), so nobody reads the slot. The lifetime
        // of `job` is erased; it is only used until every worker has reported `done` below,
        // before this function returns.
        // Fields are written through the raw pointer, so no reference to the whole slot is
        // formed while a worker may still read `caller`.
        unsafe {
            let slot = s.slot.get();
            (*slot).job =
                Some(std::mem::transmute::<*const (dyn Fn(&Worker<'_>) + Sync + '_), Job>(
                    job as *const _,
                ));
            if new_caller {
                (*slot).caller = Some(std::thread::current());
            }
        }
        s.done.0.store(0, Ordering::Relaxed);
        s.epoch.0.fetch_add(1, Ordering::Release);
        s.wake_sleepers(0);
        let mine = catch_unwind(AssertUnwindSafe(|| job(&Worker { index: 0, shared: Some(s) })));
        if mine.is_err() {
            s.poisoned.store(true, Ordering::Release);
        }
        // Waits even when poisoned: the job borrows the caller's stack.
        s.wait_until(false, || s.done.0.load(Ordering::Acquire) == s.n - 1);
        // SAFETY: every worker has finished; nobody reads the slot until the next run.
        unsafe { (*s.slot.get()).job = None };
        let poisoned = s.poisoned.swap(false, Ordering::AcqRel);
        if poisoned || mine.is_err() {
            // Participants left that run at different barriers: start the counts again (every
            // worker is waiting for the next epoch, whose release publishes this).
            for a in s.arrivals.iter() {
                a.0.store(0, Ordering::Relaxed);
            }
        }
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        assert!(!poisoned, "a decode worker panicked");
    }
}

fn worker_loop(s: &Shared, index: usize) {
    let mut seen = 0usize;
    loop {
        s.wait_until(false, || {
            s.epoch.0.load(Ordering::Acquire) != seen || s.quit.load(Ordering::Acquire)
        });
        if s.quit.load(Ordering::Acquire) {
            return;
        }
        seen = s.epoch.0.load(Ordering::Acquire);
        // SAFETY: the job was published before the epoch bump we observed and stays valid
        // until we report `done`.
        let job = unsafe { (*s.slot.get()).job };
        if let Some(job) = job {
            // SAFETY: as above.
            let r = catch_unwind(AssertUnwindSafe(|| unsafe {
                (*job)(&Worker { index, shared: Some(s) })
            }));
            if r.is_err() {
                s.poisoned.store(true, Ordering::Release);
            }
        }
        s.done.0.fetch_add(1, Ordering::AcqRel);
        s.wake_sleepers(index);
        s.finished[index - 1].0.store(seen, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Release);
        for h in &self.handles {
            h.thread().unpark();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_participant_runs_each_job_and_barriers_order_the_phases() {
        for threads in [1, 2, 3, 4] {
            let mut pool = Pool::new(threads);
            assert_eq!(pool.threads(), threads);
            let cells: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
            let seen_total = AtomicU64::new(0);
            for round in 0..200u64 {
                pool.run(&|w: &Worker<'_>| {
                    assert_eq!(w.count(), threads);
                    // Phase 1: each writes its own cell; phase 2: each reads all of them.
                    cells[w.index()].store(round * 10 + w.index() as u64, Ordering::Relaxed);
                    w.sync();
                    let sum: u64 = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
                    let want: u64 = (0..threads as u64).map(|i| round * 10 + i).sum();
                    assert_eq!(sum, want);
                    w.sync();
                    seen_total.fetch_add(1, Ordering::Relaxed);
                });
            }
            assert_eq!(seen_total.load(Ordering::Relaxed), 200 * threads as u64);
        }
    }

    #[test]
    fn an_idle_pool_parks_and_wakes_again() {
        let mut pool = Pool::new(2);
        let hits = AtomicU64::new(0);
        for _ in 0..3 {
            pool.run(&|_w: &Worker<'_>| {
                hits.fetch_add(1, Ordering::Relaxed);
            });
            // Long enough for the worker to stop spinning and park.
            std::thread::sleep(SPIN * 4);
        }
        assert_eq!(hits.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_participant_parked_at_a_barrier_is_woken_by_the_last_arrival() {
        let mut pool = Pool::new(2);
        let late = JOB_SPIN * 3;
        // Participant 1 stays this long in the job after the barrier: a participant 0 that was
        // not woken at the barrier would sleep until participant 1's `done` wakes it.
        let after = Duration::from_millis(60);
        for _ in 0..3 {
            let passed = std::sync::Mutex::new(None);
            let t0 = Instant::now();
            pool.run(&|w: &Worker<'_>| {
                // Participant 0 spins out its JOB_SPIN at the barrier and parks; participant 1
                // arrives later and must wake it.
                if w.index() == 1 {
                    std::thread::sleep(late);
                }
                w.sync();
                if w.index() == 0 {
                    *passed.lock().expect("not poisoned") = Some(t0.elapsed());
                } else {
                    std::thread::sleep(after);
                }
            });
            let passed = passed.lock().expect("not poisoned").expect("participant 0 ran");
            assert!(passed >= late);
            assert!(passed < late + after * 2 / 3, "woken late: {passed:?}");
        }
    }

    #[test]
    fn runs_from_changing_caller_threads_see_every_worker() {
        let pool = std::sync::Mutex::new(Pool::new(3));
        let hits = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for round in 0..50 {
                        let mut pool = pool.lock().expect("no panic while held");
                        pool.run(&|w: &Worker<'_>| {
                            w.sync();
                            hits.fetch_add(1, Ordering::Relaxed);
                        });
                        drop(pool);
                        if round % 10 == 0 {
                            // Let the workers park now and then, so wakes are exercised too.
                            std::thread::sleep(SPIN * 2);
                        }
                    }
                });
            }
        });
        assert_eq!(hits.load(Ordering::Relaxed), 4 * 50 * 3);
    }

    #[test]
    fn a_panicking_job_is_reported_and_the_pool_survives() {
        let mut pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|w: &Worker<'_>| {
                w.sync();
                if w.index() == 1 {
                    panic!("boom");
                }
                w.sync();
            })
        }));
        assert!(r.is_err());
        let hits = AtomicU64::new(0);
        pool.run(&|w: &Worker<'_>| {
            w.sync();
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 2);
    }
}
