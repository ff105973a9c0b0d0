//! Training data: any file, memory-mapped, cut into a training part and a held-out tail; random
//! windows drawn from a seeded generator, reproducible per step (so a resumed run sees the same
//! stream it would have seen without the interruption).

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::rng::Rng;

/// Why a data source could not be opened.
#[derive(Debug, Error)]
pub enum DataError {
    /// Opening or mapping the file failed.
    #[error("training data {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Not enough bytes for one training window and (if asked for) one held-out window.
    #[error("training data has {len} bytes; at least {need} are needed")]
    TooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The held-out fraction is not in `[0, 1)`.
    #[error("held-out fraction {0} must be in [0, 1)")]
    BadHoldout(f64),
    /// The window length is zero.
    #[error("window length must be positive")]
    ZeroWindow,
}

/// How a [`DataSource`] cuts its bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DataConfig {
    /// Inputs per window `T` (each window reads `T + 1` bytes: inputs and next-byte targets).
    pub window: usize,
    /// Fraction of the file (its tail) held out for the miner's own early stopping; `0` for none.
    pub holdout_fraction: f64,
    /// Seed of the window sampler.
    pub seed: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self { window: 64, holdout_fraction: 0.01, seed: 0 }
    }
}

/// A batch of windows: `windows × window` input bytes and the next byte of each as target,
/// window-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Inputs per window `T`.
    pub window: usize,
    /// Input bytes, `windows × T`.
    pub inputs: Vec<u8>,
    /// Target bytes (`inputs` shifted by one within each window), `windows × T`.
    pub targets: Vec<u8>,
}

impl Batch {
    /// A batch from windows of `window + 1` bytes each (extra bytes ignored, short ones skipped).
    pub fn from_windows<'a>(window: usize, spans: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut b = Self { window, inputs: Vec::new(), targets: Vec::new() };
        for s in spans {
            if window > 0 && s.len() > window {
                b.inputs.extend_from_slice(&s[..window]);
                b.targets.extend_from_slice(&s[1..=window]);
            }
        }
        b
    }

    /// Non-overlapping windows over `bytes` at stride `window` (window `i` predicts bytes
    /// `i·T + 1 ..= i·T + T`), as many as fit.
    pub fn from_sequence(bytes: &[u8], window: usize) -> Self {
        let count = if window == 0 || bytes.len() < 2 { 0 } else { (bytes.len() - 1) / window };
        Self::from_windows(window, (0..count).map(|i| &bytes[i * window..i * window + window + 1]))
    }

    /// Number of windows.
    pub fn windows(&self) -> usize {
        self.inputs.len().checked_div(self.window).unwrap_or(0)
    }

    /// Number of predicted bytes.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// True when the batch predicts nothing.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Splits into batches of at most `windows` windows each.
    pub fn split(&self, windows: usize) -> Vec<Batch> {
        let per = windows.max(1) * self.window;
        if per == 0 {
            return Vec::new();
        }
        self.inputs
            .chunks(per)
            .zip(self.targets.chunks(per))
            .map(|(i, t)| Batch { window: self.window, inputs: i.to_vec(), targets: t.to_vec() })
            .collect()
    }
}

enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
    Static(&'static [u8]),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
            Backing::Static(s) => s,
        }
    }
}

/// Training bytes with a held-out tail and a seeded window sampler.
pub struct DataSource {
    backing: Backing,
    train_len: usize,
    config: DataConfig,
}

impl std::fmt::Debug for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSource")
            .field("len", &self.len())
            .field("train_len", &self.train_len)
            .field("config", &self.config)
            .finish()
    }
}

impl DataSource {
    /// Memory-maps `path`. The file must not be modified while the source is alive.
    pub fn open(path: &Path, config: DataConfig) -> Result<Self, DataError> {
        let io = |source| DataError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Self::new(Backing::Owned(Vec::new()), config);
        }
        // SAFETY: the map is read-only and private to this process; the documented contract is that
        // the training file is not truncated or rewritten while training reads it.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::new(Backing::Mapped(map), config)
    }

    /// A source over bytes in memory.
    pub fn from_bytes(bytes: Vec<u8>, config: DataConfig) -> Result<Self, DataError> {
        Self::new(Backing::Owned(bytes), config)
    }

    /// A source over static bytes (e.g. a bundled corpus).
    pub fn from_static(bytes: &'static [u8], config: DataConfig) -> Result<Self, DataError> {
        Self::new(Backing::Static(bytes), config)
    }

    fn new(backing: Backing, config: DataConfig) -> Result<Self, DataError> {
        if config.window == 0 {
            return Err(DataError::ZeroWindow);
        }
        let f = config.holdout_fraction;
        if !(0.0..1.0).contains(&f) {
            return Err(DataError::BadHoldout(f));
        }
        let len = backing.bytes().len();
        let span = config.window + 1;
        // A non-zero holdout is at least one window, and the training part at least one window.
        let holdout = if f > 0.0 { ((len as f64 * f).ceil() as usize).max(span) } else { 0 };
        let need = span + holdout;
        if len < need {
            return Err(DataError::TooSmall { len, need });
        }
        Ok(Self { train_len: len - holdout, backing, config })
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.backing.bytes().len()
    }

    /// True for an empty source (never for a successfully opened one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configuration.
    pub fn config(&self) -> &DataConfig {
        &self.config
    }

    /// The training part (the head of the data).
    pub fn train_bytes(&self) -> &[u8] {
        &self.backing.bytes()[..self.train_len]
    }

    /// The held-out part (the tail of the data).
    pub fn holdout_bytes(&self) -> &[u8] {
        &self.backing.bytes()[self.train_len..]
    }

    /// The training batch for `step`: `windows` windows at uniformly random offsets of the
    /// training part, drawn from a generator seeded by `(seed, step)`.
    pub fn batch(&self, step: u64, windows: usize) -> Batch {
        let span = self.config.window + 1;
        let data = self.train_bytes();
        let starts = (data.len() - span + 1) as u64;
        let mut rng = Rng::for_stream(self.config.seed, step);
        let mut b = Batch {
            window: self.config.window,
            inputs: Vec::with_capacity(windows * self.config.window),
            targets: Vec::with_capacity(windows * self.config.window),
        };
        for _ in 0..windows {
            let s = rng.below(starts) as usize;
            b.inputs.extend_from_slice(&data[s..s + self.config.window]);
            b.targets.extend_from_slice(&data[s + 1..s + span]);
        }
        b
    }

    /// The held-out part as non-overlapping windows, at most `max_windows`, in batches of at most
    /// `windows_per_batch` windows. Empty when nothing is held out.
    pub fn holdout_batches(&self, windows_per_batch: usize, max_windows: usize) -> Vec<Batch> {
        let all = Batch::from_sequence(self.holdout_bytes(), self.config.window);
        let keep = all.windows().min(max_windows) * self.config.window;
        let b = Batch {
            window: all.window,
            inputs: all.inputs[..keep].to_vec(),
            targets: all.targets[..keep].to_vec(),
        };
        b.split(windows_per_batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(window: usize, holdout: f64) -> DataConfig {
        DataConfig { window, holdout_fraction: holdout, seed: 9 }
    }

    #[test]
    fn batches_are_windows_of_the_training_part() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let src = DataSource::from_bytes(bytes.clone(), cfg(16, 0.1)).unwrap();
        assert_eq!(src.train_bytes().len(), 900);
        assert_eq!(src.holdout_bytes(), &bytes[900..]);
        let b = src.batch(3, 5);
        assert_eq!(b.windows(), 5);
        assert_eq!(b, src.batch(3, 5), "same step, same batch");
        assert_ne!(b, src.batch(4, 5));
        for w in 0..5 {
            let inp = &b.inputs[w * 16..(w + 1) * 16];
            let tgt = &b.targets[w * 16..(w + 1) * 16];
            // Consecutive bytes of the training part: find the start.
            let s = (0..900 - 16)
                .find(|&s| &bytes[s..s + 16] == inp && bytes[s + 16] == tgt[15])
                .unwrap();
            assert!(s + 17 <= 900);
            assert_eq!(tgt, &bytes[s + 1..s + 17]);
        }
        let h = src.holdout_batches(2, 100);
        assert_eq!(h.iter().map(|b| b.windows()).sum::<usize>(), (100 - 1) / 16);
        assert!(h.iter().all(|b| b.windows() <= 2));
        assert_eq!(&h[0].inputs[..16], &bytes[900..916]);
        assert_eq!(&h[0].targets[..16], &bytes[901..917]);
    }

    #[test]
    fn opens_files_and_rejects_bad_input() {
        let dir = std::env::temp_dir().join(format!("rnet-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.bin");
        std::fs::write(&p, vec![7u8; 300]).unwrap();
        let src = DataSource::open(&p, cfg(32, 0.2)).unwrap();
        assert_eq!(src.len(), 300);
        assert_eq!(src.batch(0, 2).inputs, vec![7u8; 64]);
        let e = dir.join("empty.bin");
        std::fs::write(&e, b"").unwrap();
        assert!(matches!(
            DataSource::open(&e, cfg(8, 0.0)),
            Err(DataError::TooSmall { len: 0, .. })
        ));
        assert!(matches!(
            DataSource::open(&dir.join("nope"), cfg(8, 0.0)),
            Err(DataError::Io { .. })
        ));
        assert!(matches!(DataSource::open(&p, cfg(8, 1.0)), Err(DataError::BadHoldout(_))));
        assert!(matches!(DataSource::open(&p, cfg(0, 0.0)), Err(DataError::ZeroWindow)));
        assert!(matches!(DataSource::open(&p, cfg(200, 0.1)), Err(DataError::TooSmall { .. })));
        assert!(DataSource::open(&p, cfg(299, 0.0)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
