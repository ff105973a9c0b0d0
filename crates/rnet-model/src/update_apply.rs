//! Applying a model update to the grown parent (consensus), checking the result against a
//! committed root, and building updates (miner side).
//!
//! Checks run in a fixed order and the first failure is reported (protocol Part III §5.2):
//! size limit, target shape (tensor list), then per entry in order the tensor index, its
//! dimensions, the rank limit and the values; then the arithmetic; then every value of the result;
//! then (in [`apply_committed`]) the root.
//!
//! Arithmetic, per low-rank entry on `W [rows, cols]`: for every `(i, j)`,
//! `s = +0.0; for k in 0..rank: s = s + (U[i, k]·V[k, j])` (each product rounded to f32 before
//! the add, never fused), then `W[i, j] = W[i, j] + s`. Independent outputs may be computed in
//! any order or in parallel, which is what makes the result the same for every thread count.

use rayon::prelude::*;
use thiserror::Error;

use crate::checkpoint::Checkpoint;
use crate::config::{Layout, ModelConfig, TensorSpec};
use crate::model::Model;
use crate::update::{Change, ModelUpdate, UpdateEntry, UpdateFormatError};

/// Per-network bounds on an update (chain parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateLimits {
    /// Largest encoded update in bytes.
    pub max_update_bytes: u64,
    /// Largest rank of a low-rank entry.
    pub max_rank: u32,
}

/// Why an update cannot produce the block's model. Each consensus failure has its own variant.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UpdateError {
    /// The encoded update is larger than `max_update_bytes`.
    #[error("update is {size} bytes, the limit is {max}")]
    TooLarge {
        /// Encoded size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The update was built for a model with another tensor list (a different shape).
    #[error("update is for shape {update}, the grown parent has shape {model}")]
    TensorListMismatch {
        /// Shape the update declares.
        update: String,
        /// Shape of the grown parent.
        model: String,
    },
    /// An entry names a tensor index past the end of the schema.
    #[error("entry {entry} names tensor {tensor}, the model has {count} tensors")]
    UnknownTensor {
        /// Entry position.
        entry: usize,
        /// The index named.
        tensor: u32,
        /// Number of tensors in the schema.
        count: usize,
    },
    /// A producer named a tensor that is not in the schema.
    #[error("no tensor called {0:?}")]
    UnknownTensorName(String),
    /// An entry's dimensions differ from its tensor's (`[n]` is viewed as `[1, n]`).
    #[error("tensor {tensor} is {expected:?}, the entry claims {got:?}")]
    ShapeMismatch {
        /// Schema name.
        tensor: String,
        /// The tensor's `(rows, cols)`.
        expected: (u64, u64),
        /// The entry's `(rows, cols)`.
        got: (u32, u32),
    },
    /// A low-rank entry's rank is above `max_rank`.
    #[error("tensor {tensor}: rank {rank} is above the limit {max}")]
    RankTooHigh {
        /// Schema name.
        tensor: String,
        /// The entry's rank.
        rank: u32,
        /// The limit.
        max: u32,
    },
    /// A value in the update is NaN or infinite.
    #[error("tensor {tensor}: update value {index} is not finite")]
    NonFiniteValue {
        /// Schema name.
        tensor: String,
        /// Index in the entry's payload (replacement values, or `U` then `V`).
        index: usize,
    },
    /// A value in the update is subnormal.
    #[error("tensor {tensor}: update value {index} is subnormal")]
    SubnormalValue {
        /// Schema name.
        tensor: String,
        /// Index in the entry's payload (replacement values, or `U` then `V`).
        index: usize,
    },
    /// A parameter of the resulting model is NaN or infinite.
    #[error("result tensor {tensor} element {index} is not finite")]
    NonFiniteResult {
        /// Schema name.
        tensor: String,
        /// Element index inside the tensor.
        index: usize,
    },
    /// A parameter of the resulting model is subnormal (the checkpoint rules refuse it).
    #[error("result tensor {tensor} element {index} is subnormal")]
    SubnormalResult {
        /// Schema name.
        tensor: String,
        /// Element index inside the tensor.
        index: usize,
    },
    /// The resulting checkpoint's root is not the committed one.
    #[error("resulting checkpoint root {} differs from the committed {}", hex(got), hex(expected))]
    RootMismatch {
        /// The committed root.
        expected: [u8; 32],
        /// The result's root.
        got: [u8; 32],
    },
    /// The update could not be built (producer side).
    #[error("malformed update: {0}")]
    Format(#[from] UpdateFormatError),
}

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn shape_string(c: &ModelConfig) -> String {
    format!(
        "d={} L={} S={} F={} T={} kernels={:?}",
        c.d_model, c.n_layers, c.n_slots, c.d_ff, c.window, c.kernel_sizes
    )
}

/// A tensor's `(rows, cols)` view: `[n]` is `[1, n]`, `[a, b]` is `[a, b]`.
pub fn matrix_dims(spec: &TensorSpec) -> (u64, u64) {
    match spec.shape[..] {
        [n] => (1, n as u64),
        [a, b] => (a as u64, b as u64),
        _ => (1, spec.len() as u64),
    }
}

/// The first value that is not finite or subnormal, classified: `(index, is_subnormal)`.
fn first_bad(values: impl Iterator<Item = f32>) -> Option<(usize, bool)> {
    values
        .enumerate()
        .find(|(_, v)| !v.is_finite() || v.is_subnormal())
        .map(|(i, v)| (i, v.is_finite()))
}

impl ModelUpdate {
    /// Every check that does not need the arithmetic, in the consensus order: size, tensor list,
    /// then per entry its tensor, dimensions, rank and values. Cheap: a node runs it before
    /// applying.
    pub fn check(&self, config: &ModelConfig, limits: &UpdateLimits) -> Result<(), UpdateError> {
        let size = self.encoded_len();
        if size > limits.max_update_bytes {
            return Err(UpdateError::TooLarge { size, max: limits.max_update_bytes });
        }
        if self.config() != config {
            return Err(UpdateError::TensorListMismatch {
                update: shape_string(self.config()),
                model: shape_string(config),
            });
        }
        let layout = Layout::new(config);
        for (entry, e) in self.entries().iter().enumerate() {
            let spec =
                layout.tensors.get(e.tensor() as usize).ok_or(UpdateError::UnknownTensor {
                    entry,
                    tensor: e.tensor(),
                    count: layout.tensors.len(),
                })?;
            let expected = matrix_dims(spec);
            let (rows, cols) = e.dims();
            if expected != (rows as u64, cols as u64) {
                return Err(UpdateError::ShapeMismatch {
                    tensor: spec.name.clone(),
                    expected,
                    got: (rows, cols),
                });
            }
            if let Some(rank) = e.rank().filter(|&r| r > limits.max_rank) {
                return Err(UpdateError::RankTooHigh {
                    tensor: spec.name.clone(),
                    rank,
                    max: limits.max_rank,
                });
            }
            if let Some((index, subnormal)) = first_bad(e.values()) {
                let tensor = spec.name.clone();
                return Err(if subnormal {
                    UpdateError::SubnormalValue { tensor, index }
                } else {
                    UpdateError::NonFiniteValue { tensor, index }
                });
            }
        }
        Ok(())
    }

    /// A full-replacement update turning `parent_grown` into `trained` (same shape): one entry per
    /// tensor whose bits differ. Build `trained` with [`Checkpoint::new`] first so it holds no
    /// subnormals.
    pub fn replacing_changed(parent_grown: &Model, trained: &Model) -> Result<Self, UpdateError> {
        if parent_grown.config() != trained.config() {
            return Err(UpdateError::TensorListMismatch {
                update: shape_string(trained.config()),
                model: shape_string(parent_grown.config()),
            });
        }
        let mut entries = Vec::new();
        for (i, spec) in parent_grown.layout().tensors.iter().enumerate() {
            let (old, new) =
                (&parent_grown.params()[spec.range()], &trained.params()[spec.range()]);
            if old.iter().zip(new).any(|(a, b)| a.to_bits() != b.to_bits()) {
                let (rows, cols) = matrix_dims(spec);
                entries.push(UpdateEntry::new(
                    i as u32,
                    rows as u32,
                    cols as u32,
                    Change::Replace(new.to_vec()),
                )?);
            }
        }
        Ok(Self::new(trained.config().clone(), entries)?)
    }
}

impl UpdateEntry {
    /// A low-rank entry `W += U·V` for the tensor called `name` in `layout`, with
    /// `u: [rows, rank]` and `v: [rank, cols]` row-major.
    pub fn low_rank(
        layout: &Layout,
        name: &str,
        rank: u32,
        u: Vec<f32>,
        v: Vec<f32>,
    ) -> Result<Self, UpdateError> {
        let (index, spec) = find(layout, name)?;
        let (rows, cols) = matrix_dims(spec);
        Ok(Self::new(index, rows as u32, cols as u32, Change::LowRank { rank, u, v })?)
    }

    /// A replacement entry setting the tensor called `name` in `layout` to `values`.
    pub fn replace(layout: &Layout, name: &str, values: Vec<f32>) -> Result<Self, UpdateError> {
        let (index, spec) = find(layout, name)?;
        let (rows, cols) = matrix_dims(spec);
        Ok(Self::new(index, rows as u32, cols as u32, Change::Replace(values))?)
    }
}

fn find<'a>(layout: &'a Layout, name: &str) -> Result<(u32, &'a TensorSpec), UpdateError> {
    layout
        .tensors
        .iter()
        .enumerate()
        .find(|(_, t)| t.name == name)
        .map(|(i, t)| (i as u32, t))
        .ok_or_else(|| UpdateError::UnknownTensorName(name.to_string()))
}

/// `W += U·V` in the consensus order (module docs), rows in parallel.
fn add_low_rank(w: &mut [f32], cols: usize, rank: usize, u: &[f32], v: &[f32]) {
    w.par_chunks_mut(cols).zip(u.par_chunks(rank)).for_each(|(w_row, u_row)| {
        // Accumulating whole rows keeps each element's sum in k order (0, then k = 0, 1, …) while
        // letting the inner loop run across j.
        let mut acc = vec![0.0f32; cols];
        for (k, &a) in u_row.iter().enumerate() {
            let v_row = &v[k * cols..(k + 1) * cols];
            for (s, &b) in acc.iter_mut().zip(v_row) {
                *s += a * b;
            }
        }
        for (x, s) in w_row.iter_mut().zip(&acc) {
            *x += *s;
        }
    });
}

/// The block's model: `update` applied to `parent_grown` (the parent's model grown to this block's
/// scheduled shape), as a checkpoint at `height`. Runs [`ModelUpdate::check`] first; refuses a
/// result with a non-finite or subnormal value. Changes nothing on error.
pub fn apply(
    parent_grown: &Model,
    update: &ModelUpdate,
    limits: &UpdateLimits,
    height: u64,
) -> Result<Checkpoint, UpdateError> {
    update.check(parent_grown.config(), limits)?;
    let mut model = parent_grown.clone();
    let layout = model.layout().clone();
    for e in update.entries() {
        let spec = &layout.tensors[e.tensor() as usize];
        let w = &mut model.params_mut()[spec.range()];
        match e.change() {
            Change::Replace(values) => w.copy_from_slice(values),
            Change::LowRank { rank, u, v } => {
                add_low_rank(w, e.dims().1 as usize, *rank as usize, u, v)
            }
        }
    }
    if let Some((i, subnormal)) = first_bad(model.params().iter().copied()) {
        let spec = layout.tensors.iter().find(|t| t.range().contains(&i));
        let tensor = spec.map(|t| t.name.clone()).unwrap_or_default();
        let index = spec.map_or(i, |t| i - t.offset);
        return Err(if subnormal {
            UpdateError::SubnormalResult { tensor, index }
        } else {
            UpdateError::NonFiniteResult { tensor, index }
        });
    }
    // No subnormals are left, so `new` flushes nothing: the checkpoint is exactly the result.
    Ok(Checkpoint::new(height, model))
}

/// Errors with [`UpdateError::RootMismatch`] unless `checkpoint`'s root is `committed`.
pub fn verify_root(checkpoint: &Checkpoint, committed: &[u8; 32]) -> Result<(), UpdateError> {
    let got = checkpoint.root();
    if &got == committed {
        Ok(())
    } else {
        Err(UpdateError::RootMismatch { expected: *committed, got })
    }
}

/// [`apply`], then [`verify_root`] against the root the block header commits to: what a node
/// does with a block's update.
pub fn apply_committed(
    parent_grown: &Model,
    update: &ModelUpdate,
    limits: &UpdateLimits,
    height: u64,
    committed_root: &[u8; 32],
) -> Result<Checkpoint, UpdateError> {
    let checkpoint = apply(parent_grown, update, limits, height)?;
    verify_root(&checkpoint, committed_root)?;
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    use super::*;
    use crate::config::ModelNetwork;
    use crate::test_util::random_model;

    const LIMITS: UpdateLimits = UpdateLimits { max_update_bytes: 1 << 24, max_rank: 8 };

    fn regtest_seed0() -> Model {
        Model::init(ModelConfig::genesis(ModelNetwork::Regtest), 0).unwrap()
    }

    /// Normal f32s of either sign spread over several binades, so rounding and order matter.
    fn random_values(rng: &mut ChaCha20Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let x = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let e = (rng.next_u32() % 8) as i32 - 4;
                x * scale * 2f32.powi(e)
            })
            .map(|x| if x.is_subnormal() { 0.0 } else { x })
            .collect()
    }

    /// Low-rank entries on every 2-D tensor (ranks 1..=8) plus a few replacements.
    fn random_update(model: &Model, seed: u64) -> ModelUpdate {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let layout = model.layout();
        let mut entries = Vec::new();
        for spec in &layout.tensors {
            let (rows, cols) = matrix_dims(spec);
            if spec.shape.len() == 2 {
                let rank = 1 + rng.next_u32() % 8;
                let u = random_values(&mut rng, rows as usize * rank as usize, 0.3);
                let v = random_values(&mut rng, rank as usize * cols as usize, 0.3);
                entries.push(UpdateEntry::low_rank(layout, &spec.name, rank, u, v).unwrap());
            } else if rng.next_u32() % 2 == 0 {
                let values = random_values(&mut rng, (rows * cols) as usize, 2.0);
                entries.push(UpdateEntry::replace(layout, &spec.name, values).unwrap());
            }
        }
        ModelUpdate::new(model.config().clone(), entries).unwrap()
    }

    /// The specification written out as plainly as possible: element by element, k increasing.
    fn reference_apply(model: &Model, update: &ModelUpdate) -> Vec<f32> {
        let mut p = model.params().to_vec();
        for e in update.entries() {
            let spec = &model.layout().tensors[e.tensor() as usize];
            let (rows, cols) = (e.dims().0 as usize, e.dims().1 as usize);
            match e.change() {
                Change::Replace(values) => {
                    for (i, v) in values.iter().enumerate() {
                        p[spec.offset + i] = *v;
                    }
                }
                Change::LowRank { rank, u, v } => {
                    let r = *rank as usize;
                    for i in 0..rows {
                        for j in 0..cols {
                            let mut s = 0.0f32;
                            for k in 0..r {
                                let prod = u[i * r + k] * v[k * cols + j];
                                s += prod;
                            }
                            let at = spec.offset + i * cols + j;
                            p[at] += s;
                        }
                    }
                }
            }
        }
        p
    }

    fn bits(p: &[f32]) -> Vec<u32> {
        p.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn apply_matches_the_scalar_reference_for_every_thread_count() {
        for seed in [1, 2] {
            let model = random_model(ModelConfig::genesis(ModelNetwork::Regtest), seed);
            let update = random_update(&model, seed);
            let reference = bits(&reference_apply(&model, &update));
            for n in [1, 2, 4] {
                let ck = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
                    .install(|| apply(&model, &update, &LIMITS, 9).unwrap());
                assert_eq!(bits(ck.model.params()), reference, "{n} threads, seed {seed}");
                assert_eq!(ck.height, 9);
            }
        }
    }

    /// The sum `Σ_k U·V` is formed first and added to `W` once: accumulating into `W` directly
    /// (a different order) gives different bits, so the test above pins the order.
    #[test]
    fn the_order_is_observable() {
        let model = random_model(ModelConfig::genesis(ModelNetwork::Regtest), 3);
        let update = random_update(&model, 3);
        let mut other = model.params().to_vec();
        for e in update.entries() {
            let spec = &model.layout().tensors[e.tensor() as usize];
            if let Change::LowRank { rank, u, v } = e.change() {
                let (r, cols) = (*rank as usize, e.dims().1 as usize);
                for i in 0..e.dims().0 as usize {
                    for j in 0..cols {
                        for k in 0..r {
                            other[spec.offset + i * cols + j] += u[i * r + k] * v[k * cols + j];
                        }
                    }
                }
            }
        }
        assert_ne!(bits(&other), bits(&reference_apply(&model, &update)));
    }

    #[test]
    fn full_replacement_reproduces_the_trained_model() {
        let parent = regtest_seed0();
        let mut trained = parent.clone();
        let wq = trained.tensor_mut("layers.1.slot.wq").unwrap();
        wq[3] = 0.25;
        trained.tensor_mut("norm_f").unwrap()[0] = -1.0;
        let update = ModelUpdate::replacing_changed(&parent, &trained).unwrap();
        let names: Vec<&str> = update
            .entries()
            .iter()
            .map(|e| parent.layout().tensors[e.tensor() as usize].name.as_str())
            .collect();
        assert_eq!(names, ["layers.1.slot.wq", "norm_f"]);
        let bytes = update.encode();
        let decoded = ModelUpdate::decode(&bytes).unwrap();
        let ck = apply(&parent, &decoded, &LIMITS, 5).unwrap();
        let expected = Checkpoint::new(5, trained);
        assert_eq!(ck, expected);
        apply_committed(&parent, &decoded, &LIMITS, 5, &expected.root()).unwrap();
        // Nothing changed: an empty update.
        assert!(ModelUpdate::replacing_changed(&parent, &parent).unwrap().entries().is_empty());
    }

    #[test]
    fn each_failure_has_its_own_error() {
        let parent = regtest_seed0();
        let layout = parent.layout().clone();
        let cfg = parent.config().clone();
        let wz = "layers.0.gru.wz";
        let d = cfg.d_model;
        let lr = |rank: u32, u: f32, v: f32| {
            UpdateEntry::low_rank(
                &layout,
                wz,
                rank,
                vec![u; d * rank as usize],
                vec![v; d * rank as usize],
            )
            .unwrap()
        };
        let one = |e: UpdateEntry| ModelUpdate::new(cfg.clone(), vec![e]).unwrap();
        let good = one(lr(4, 0.01, 0.02));
        let expected = apply(&parent, &good, &LIMITS, 1).unwrap();

        // Over the size limit: one byte less than the encoding is refused, the exact size is fine.
        let size = good.encoded_len();
        let tight = UpdateLimits { max_update_bytes: size - 1, ..LIMITS };
        assert_eq!(
            apply(&parent, &good, &tight, 1),
            Err(UpdateError::TooLarge { size, max: size - 1 })
        );
        assert!(
            apply(&parent, &good, &UpdateLimits { max_update_bytes: size, ..LIMITS }, 1).is_ok()
        );
        // Over the rank limit; the limit itself is fine.
        assert_eq!(
            apply(&parent, &one(lr(9, 0.01, 0.02)), &LIMITS, 1),
            Err(UpdateError::RankTooHigh { tensor: wz.into(), rank: 9, max: 8 })
        );
        assert!(apply(&parent, &one(lr(8, 0.01, 0.02)), &LIMITS, 1).is_ok());
        // Built for another shape (the ungrown parent, say): a wrong tensor list.
        let grown = crate::growth::grow(&parent, d + 2, cfg.n_layers, 1).unwrap();
        assert!(matches!(
            apply(&grown, &good, &LIMITS, 1),
            Err(UpdateError::TensorListMismatch { .. })
        ));
        // An index past the schema.
        let count = layout.tensors.len();
        let unknown = UpdateEntry::new(count as u32, 1, 1, Change::Replace(vec![1.0])).unwrap();
        assert_eq!(
            apply(&parent, &one(unknown), &LIMITS, 1),
            Err(UpdateError::UnknownTensor { entry: 0, tensor: count as u32, count })
        );
        assert_eq!(
            UpdateEntry::replace(&layout, "layers.9.gru.wz", vec![]),
            Err(UpdateError::UnknownTensorName("layers.9.gru.wz".into()))
        );
        // Dimensions that do not match the tensor: transposed non-square, and a wrong row count
        // with the right element count.
        let up = "layers.0.ffn.w_up"; // [2d, d]
        let bad = [(d as u32, 2 * d as u32), (1, 2 * (d * d) as u32)];
        for (rows, cols) in bad {
            let idx = layout.tensors.iter().position(|t| t.name == up).unwrap() as u32;
            let e = UpdateEntry::new(
                idx,
                rows,
                cols,
                Change::LowRank {
                    rank: 1,
                    u: vec![0.0; rows as usize],
                    v: vec![0.0; cols as usize],
                },
            )
            .unwrap();
            assert_eq!(
                apply(&parent, &one(e), &LIMITS, 1),
                Err(UpdateError::ShapeMismatch {
                    tensor: up.into(),
                    expected: (2 * d as u64, d as u64),
                    got: (rows, cols)
                })
            );
        }
        // Non-finite and subnormal update values (reported at their payload index: U then V).
        let mut v = vec![0.02; 2 * d];
        v[3] = f32::INFINITY;
        let e = UpdateEntry::low_rank(&layout, wz, 2, vec![0.01; 2 * d], v).unwrap();
        assert_eq!(
            apply(&parent, &one(e), &LIMITS, 1),
            Err(UpdateError::NonFiniteValue { tensor: wz.into(), index: 2 * d + 3 })
        );
        let e = UpdateEntry::replace(&layout, "norm_f", {
            let mut x = vec![1.0; d];
            x[5] = f32::NAN;
            x
        })
        .unwrap();
        assert_eq!(
            apply(&parent, &one(e), &LIMITS, 1),
            Err(UpdateError::NonFiniteValue { tensor: "norm_f".into(), index: 5 })
        );
        let e = lr(1, f32::from_bits(1), 1.0);
        assert_eq!(
            apply(&parent, &one(e), &LIMITS, 1),
            Err(UpdateError::SubnormalValue { tensor: wz.into(), index: 0 })
        );
        // Finite, normal factors whose product overflows, or underflows into a subnormal sum.
        assert!(matches!(
            apply(&parent, &one(lr(1, 3.0e38, 3.0e38)), &LIMITS, 1),
            Err(UpdateError::NonFiniteResult { ref tensor, index: 0 }) if tensor == wz
        ));
        let mut tiny = parent.clone();
        tiny.tensor_mut(wz).unwrap().fill(0.0);
        assert_eq!(
            apply(&tiny, &one(lr(1, 1.0e-20, 1.0e-20)), &LIMITS, 1),
            Err(UpdateError::SubnormalResult { tensor: wz.into(), index: 0 })
        );
        // A wrong committed root.
        let mut wrong = expected.root();
        wrong[0] ^= 1;
        assert_eq!(
            apply_committed(&parent, &good, &LIMITS, 1, &wrong),
            Err(UpdateError::RootMismatch { expected: wrong, got: expected.root() })
        );
        // The root also commits to the height.
        assert!(apply_committed(&parent, &good, &LIMITS, 2, &expected.root()).is_err());
        assert_eq!(apply_committed(&parent, &good, &LIMITS, 1, &expected.root()), Ok(expected));
    }

    /// The fixed update of protocol Part III §5.2 on `Model::init(regtest genesis, 0)`.
    fn golden_update(model: &Model) -> ModelUpdate {
        let layout = model.layout();
        let d = model.config().d_model;
        let rank = 3usize;
        let u = (0..d * rank)
            .map(|n| {
                let (i, k) = (n / rank, n % rank);
                ((i + 2 * k) % 7) as f32 / 10.0 - 0.3
            })
            .collect();
        let v = (0..rank * d)
            .map(|n| {
                let (k, j) = (n / d, n % d);
                ((3 * j + k) % 5) as f32 / 10.0 - 0.2
            })
            .collect();
        let norm_f = (0..d).map(|j| 1.0 + j as f32 / 64.0).collect();
        ModelUpdate::new(
            model.config().clone(),
            vec![
                UpdateEntry::replace(layout, "norm_f", norm_f).unwrap(),
                UpdateEntry::low_rank(layout, "layers.0.gru.wz", rank as u32, u, v).unwrap(),
            ],
        )
        .unwrap()
    }

    /// Golden vector (protocol Part III §5.2): the update's bytes and the resulting root.
    #[test]
    fn golden_update_vector() {
        let parent = regtest_seed0();
        let update = golden_update(&parent);
        let bytes = update.encode();
        assert_eq!(bytes.len(), 978);
        assert_eq!(
            hex(&rnet_crypto::keccak256d(&bytes)),
            "2a2cf325a993d20b8a88791ff846ddeaf0d02a45cc30789fd95be78378052b07"
        );
        let ck = apply(&parent, &update, &LIMITS, 1).unwrap();
        assert_eq!(
            hex(&ck.root()),
            "e11e25d8b6f1b13e0abaafdd3bfefabb71982bf5b931ae897096343ec51e5941"
        );
        assert_eq!(bits(ck.model.params()), bits(&reference_apply(&parent, &update)));
    }

    /// Growth then update: the grown parent is a valid base and the result a valid checkpoint.
    #[test]
    fn applies_to_a_grown_parent() {
        let parent = regtest_seed0();
        let cfg = parent.config();
        let grown = crate::growth::grow(&parent, cfg.d_model + 2, cfg.n_layers, 7).unwrap();
        let update = random_update(&grown, 4);
        let ck = apply(&grown, &update, &LIMITS, 2).unwrap();
        assert_eq!(bits(ck.model.params()), bits(&reference_apply(&grown, &update)));
        assert_eq!(Checkpoint::from_bytes(&ck.to_bytes()).unwrap(), ck);
    }
}
