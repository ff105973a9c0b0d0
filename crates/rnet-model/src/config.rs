//! Model configuration: the shape of a ResonanceNet V5 network and the genesis shapes per network.

use thiserror::Error;

/// Largest width any network may reach (mainnet cap); bounds what a checkpoint header may claim.
pub const MAX_D_MODEL: usize = 4096;
/// Largest depth any network may reach (mainnet cap).
pub const MAX_LAYERS: usize = 48;
/// Largest number of slot-memory entries a config may declare.
pub const MAX_SLOTS: usize = 1024;
/// Largest number of convolution branches a config may declare.
pub const MAX_CONV_BRANCHES: usize = 8;
/// Largest convolution kernel (taps); the inference ring buffer holds `MAX_KERNEL - 1` inputs.
pub const MAX_KERNEL: usize = 63;
/// Largest evaluation window length.
pub const MAX_WINDOW: usize = 4096;
/// Byte vocabulary.
pub const VOCAB: usize = 256;

/// Which chain a genesis shape belongs to. Mirrors the primitives' network type without depending
/// on it, so the model crate stays usable on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelNetwork {
    /// The main network.
    Mainnet,
    /// The public test network.
    Testnet,
    /// Local regression testing: a tiny model that trains and evaluates in milliseconds.
    Regtest,
}

impl std::str::FromStr for ModelNetwork {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" | "mainnet" => Ok(Self::Mainnet),
            "test" | "testnet" => Ok(Self::Testnet),
            "regtest" => Ok(Self::Regtest),
            other => Err(ConfigError::UnknownNetwork(other.to_string())),
        }
    }
}

/// The shape of a V5 network. `d_ff` is always `2 * d_model` for consensus shapes but is stored so
/// a checkpoint is self-describing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelConfig {
    /// Residual width `d`.
    pub d_model: usize,
    /// Number of layers `L`.
    pub n_layers: usize,
    /// Number of slot-memory entries `S`.
    pub n_slots: usize,
    /// Feed-forward width `F`.
    pub d_ff: usize,
    /// Taps of each depthwise causal convolution branch, e.g. `[3, 7, 15, 31, 63]`.
    pub kernel_sizes: Vec<usize>,
    /// Evaluation window length `T` (inputs per window).
    pub window: usize,
}

/// A shape that cannot be a V5 network.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A dimension is zero or above its cap.
    #[error("{name} = {value} is outside 1..={max}")]
    OutOfRange {
        /// The dimension's name.
        name: &'static str,
        /// The offending value.
        value: usize,
        /// Its cap.
        max: usize,
    },
    /// `d_model` must be even (growth adds two units at a time and halves are used by init).
    #[error("d_model = {0} must be even")]
    OddWidth(usize),
    /// `d_ff` must equal `2 * d_model`.
    #[error("d_ff = {d_ff} must be 2 * d_model = {}", 2 * d_model)]
    FeedForwardWidth {
        /// Declared feed-forward width.
        d_ff: usize,
        /// Declared model width.
        d_model: usize,
    },
    /// No convolution branch, or too many.
    #[error("{0} convolution branches; must be 1..={MAX_CONV_BRANCHES}")]
    BranchCount(usize),
    /// Network name not recognised.
    #[error("unknown network {0:?} (expected mainnet, testnet or regtest)")]
    UnknownNetwork(String),
}

impl ModelConfig {
    /// Genesis shape of `network`.
    pub fn genesis(network: ModelNetwork) -> Self {
        match network {
            ModelNetwork::Mainnet => Self {
                d_model: 384,
                n_layers: 6,
                n_slots: 64,
                d_ff: 768,
                kernel_sizes: vec![3, 7, 15, 31, 63],
                window: 512,
            },
            ModelNetwork::Testnet => Self {
                d_model: 128,
                n_layers: 4,
                n_slots: 64,
                d_ff: 256,
                kernel_sizes: vec![3, 7, 15, 31, 63],
                window: 256,
            },
            ModelNetwork::Regtest => Self {
                d_model: 32,
                n_layers: 2,
                n_slots: 16,
                d_ff: 64,
                kernel_sizes: vec![3, 7, 15],
                window: 64,
            },
        }
    }

    /// Checks every dimension against its cap and the fixed relations between them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |name, value: usize, max| {
            if value == 0 || value > max {
                Err(ConfigError::OutOfRange { name, value, max })
            } else {
                Ok(())
            }
        };
        range("d_model", self.d_model, MAX_D_MODEL)?;
        range("n_layers", self.n_layers, MAX_LAYERS)?;
        range("n_slots", self.n_slots, MAX_SLOTS)?;
        range("window", self.window, MAX_WINDOW)?;
        if self.d_model % 2 != 0 {
            return Err(ConfigError::OddWidth(self.d_model));
        }
        if self.d_ff != 2 * self.d_model {
            return Err(ConfigError::FeedForwardWidth { d_ff: self.d_ff, d_model: self.d_model });
        }
        if self.kernel_sizes.is_empty() || self.kernel_sizes.len() > MAX_CONV_BRANCHES {
            return Err(ConfigError::BranchCount(self.kernel_sizes.len()));
        }
        for &k in &self.kernel_sizes {
            range("kernel size", k, MAX_KERNEL)?;
        }
        Ok(())
    }

    /// Longest kernel: the conv history an inference session keeps is one less than this.
    pub fn max_kernel(&self) -> usize {
        self.kernel_sizes.iter().copied().max().unwrap_or(1)
    }

    /// Total number of f32 parameters.
    pub fn param_count(&self) -> usize {
        Layout::new(self).total
    }

    /// The same config at another width and depth (`d_ff` follows as `2 * d`).
    pub fn with_shape(&self, d_model: usize, n_layers: usize) -> Self {
        Self { d_model, n_layers, d_ff: 2 * d_model, ..self.clone() }
    }
}

/// One named tensor of the checkpoint schema: its name, shape and where it lives in the flat
/// parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Schema name, e.g. `layers.0.gru.wz`.
    pub name: String,
    /// Shape, `[out, in]` for matrices.
    pub shape: Vec<usize>,
    /// Offset of the first element in the flat buffer.
    pub offset: usize,
}

impl TensorSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements (never for a valid config).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element range in the flat buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Offsets of one layer's tensors in the flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    /// `norm1 [d]`.
    pub norm1: std::ops::Range<usize>,
    /// One `[K_b, d]` tensor per conv branch; row k multiplies the input k positions back.
    pub conv: Vec<std::ops::Range<usize>>,
    /// `gru.wz [d, d]`.
    pub wz: std::ops::Range<usize>,
    /// `gru.wh [d, d]`.
    pub wh: std::ops::Range<usize>,
    /// `gru.wo [d, d]`.
    pub wo: std::ops::Range<usize>,
    /// `norm2 [d]`.
    pub norm2: std::ops::Range<usize>,
    /// `slot.wq [d, d]`.
    pub wq: std::ops::Range<usize>,
    /// `slot.keys [S, d]`.
    pub keys: std::ops::Range<usize>,
    /// `slot.values [S, d]`.
    pub values: std::ops::Range<usize>,
    /// `slot.wm [d, d]`.
    pub wm: std::ops::Range<usize>,
    /// `norm3 [d]`.
    pub norm3: std::ops::Range<usize>,
    /// `ffn.w_gate [F, d]`.
    pub w_gate: std::ops::Range<usize>,
    /// `ffn.w_up [F, d]`.
    pub w_up: std::ops::Range<usize>,
    /// `ffn.w_down [d, F]`.
    pub w_down: std::ops::Range<usize>,
}

/// Where every tensor lives in the flat parameter buffer, in checkpoint schema order. Parameters,
/// gradients and optimizer moments all share this layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `embed [256, d]`.
    pub embed: std::ops::Range<usize>,
    /// Per-layer tensors.
    pub layers: Vec<LayerLayout>,
    /// `norm_f [d]`.
    pub norm_f: std::ops::Range<usize>,
    /// `head [256, d]`.
    pub head: std::ops::Range<usize>,
    /// Total number of parameters.
    pub total: usize,
    /// Every tensor with its name and shape, in schema order.
    pub tensors: Vec<TensorSpec>,
}

impl Layout {
    /// Lays out `config` in schema order: `embed`, then per layer `norm1`, `conv.0..`, `gru.wz`,
    /// `gru.wh`, `gru.wo`, `norm2`, `slot.wq`, `slot.keys`, `slot.values`, `slot.wm`, `norm3`,
    /// `ffn.w_gate`, `ffn.w_up`, `ffn.w_down`; then `norm_f`, `head`.
    pub fn new(config: &ModelConfig) -> Self {
        let (d, s, f) = (config.d_model, config.n_slots, config.d_ff);
        let mut tensors = Vec::new();
        let mut offset = 0usize;
        let mut push = |name: String, shape: Vec<usize>| {
            let spec = TensorSpec { name, shape, offset };
            offset += spec.len();
            let range = spec.range();
            tensors.push(spec);
            range
        };
        let embed = push("embed".into(), vec![VOCAB, d]);
        let mut layers = Vec::with_capacity(config.n_layers);
        for i in 0..config.n_layers {
            let p = |n: &str| format!("layers.{i}.{n}");
            let norm1 = push(p("norm1"), vec![d]);
            let conv = config
                .kernel_sizes
                .iter()
                .enumerate()
                .map(|(b, &k)| push(p(&format!("conv.{b}")), vec![k, d]))
                .collect();
            layers.push(LayerLayout {
                norm1,
                conv,
                wz: push(p("gru.wz"), vec![d, d]),
                wh: push(p("gru.wh"), vec![d, d]),
                wo: push(p("gru.wo"), vec![d, d]),
                norm2: push(p("norm2"), vec![d]),
                wq: push(p("slot.wq"), vec![d, d]),
                keys: push(p("slot.keys"), vec![s, d]),
                values: push(p("slot.values"), vec![s, d]),
                wm: push(p("slot.wm"), vec![d, d]),
                norm3: push(p("norm3"), vec![d]),
                w_gate: push(p("ffn.w_gate"), vec![f, d]),
                w_up: push(p("ffn.w_up"), vec![f, d]),
                w_down: push(p("ffn.w_down"), vec![d, f]),
            });
        }
        let norm_f = push("norm_f".into(), vec![d]);
        let head = push("head".into(), vec![VOCAB, d]);
        Layout { embed, layers, norm_f, head, total: offset, tensors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_configs_are_valid() {
        for n in [ModelNetwork::Mainnet, ModelNetwork::Testnet, ModelNetwork::Regtest] {
            ModelConfig::genesis(n).validate().unwrap();
        }
    }

    #[test]
    fn layout_is_contiguous_in_schema_order() {
        let c = ModelConfig::genesis(ModelNetwork::Regtest);
        let l = Layout::new(&c);
        let mut next = 0;
        for t in &l.tensors {
            assert_eq!(t.offset, next, "{}", t.name);
            next += t.len();
        }
        assert_eq!(next, l.total);
        assert_eq!(l.tensors[0].name, "embed");
        assert_eq!(l.tensors.last().unwrap().name, "head");
        assert_eq!(l.tensors[2].name, "layers.0.conv.0");
    }

    #[test]
    fn mainnet_param_count_by_formula() {
        let c = ModelConfig::genesis(ModelNetwork::Mainnet);
        let (d, s, f) = (384, 64, 768);
        let conv: usize = [3, 7, 15, 31, 63].iter().sum::<usize>() * d;
        let per_layer = 3 * d + conv + 5 * d * d + 2 * s * d + 3 * f * d;
        assert_eq!(c.param_count(), 2 * 256 * d + d + 6 * per_layer);
    }

    #[test]
    fn validation_rejects_bad_shapes() {
        let mut c = ModelConfig::genesis(ModelNetwork::Regtest);
        c.d_ff = 63;
        assert!(matches!(c.validate(), Err(ConfigError::FeedForwardWidth { .. })));
        let mut c = ModelConfig::genesis(ModelNetwork::Regtest);
        c.kernel_sizes = vec![64];
        assert!(matches!(c.validate(), Err(ConfigError::OutOfRange { .. })));
        let mut c = ModelConfig::genesis(ModelNetwork::Regtest);
        c.d_model = 0;
        assert!(c.validate().is_err());
    }
}
