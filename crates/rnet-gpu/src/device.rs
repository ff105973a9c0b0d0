//! Device selection: which compute device a trainer or decoder runs on, as a user names it
//! (`-device=…` of `rnet-miner` and `rnetd`, `--device …` of `rnet-util`), and opening it.
//!
//! Spellings: `auto`, `cpu`, `cuda[:N]`, `vulkan[:N]`, `metal` (case-insensitive; `N` is the device
//! ordinal, 0 when omitted). [`Device::open`] gives an [`OpenDevice`]:
//!
//! * `auto` picks the best device present — CUDA device 0, else a Metal GPU (with the `metal`
//!   feature, on Apple machines), else the first Vulkan adapter that is a real GPU (not a CPU
//!   software rasteriser such as lavapipe), else the CPU — and the result names the device it
//!   picked ([`OpenDevice::device`]) so callers can log it;
//! * a named device that is missing, or whose backend is not compiled in (cargo features `cuda`,
//!   `vulkan`, `metal`), is a [`DeviceError`] with a one-line message; never a silent CPU run.
//!   `metal` opens the first Metal adapter through the `wgpu` backend (the Vulkan backend's code
//!   and kernels on `wgpu`'s Metal backend; compiled for Apple targets in CI, not yet run on an
//!   Apple GPU).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::{Backend, BackendError, CpuBackend};

/// A compute device as a user selects it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// The best device present (see the module docs); resolved by [`Device::open`].
    Auto,
    /// The CPU engine (`rnet_training`): the default, the behaviour without a device.
    #[default]
    Cpu,
    /// NVIDIA GPU `N` through CUDA (cargo feature `cuda`).
    Cuda(usize),
    /// Vulkan adapter `N` in the loader's order (cargo feature `vulkan`).
    Vulkan(usize),
    /// The Apple GPU through Metal (cargo feature `metal`; Apple targets only).
    Metal,
}

/// Why a device name does not parse.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DeviceParseError {
    /// Not one of the known device kinds.
    #[error("unknown device {0:?} (expected auto, cpu, cuda[:N], vulkan[:N] or metal)")]
    Unknown(String),
    /// The ordinal after `cuda:` or `vulkan:` is not a non-negative integer.
    #[error("device {input:?}: {ordinal:?} is not a device number")]
    Ordinal {
        /// The whole spelling given.
        input: String,
        /// The part after the colon.
        ordinal: String,
    },
    /// An ordinal on a device kind that has none (`auto`, `cpu`, `metal`).
    #[error("device {0:?}: auto, cpu and metal take no device number")]
    NoOrdinal(String),
}

/// Why a selected device could not be opened. The message is one line, fit for a command's error.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// The device's backend is not compiled into this binary.
    #[error("device {device}: not built with {support} support{hint}")]
    NotBuilt {
        /// The device asked for.
        device: Device,
        /// The missing support (`CUDA`, `Vulkan`, `Metal`).
        support: &'static str,
        /// How to get it (` (rebuild with --features cuda)`), or empty.
        hint: &'static str,
    },
    /// The backend is compiled in but the device is missing or failed to open.
    #[error("device {device} unavailable: {reason}")]
    Unavailable {
        /// The device asked for.
        device: Device,
        /// What the backend reported (part of the message, so not also a `source`: the error
        /// prints as one line even where a whole error chain is printed).
        reason: BackendError,
    },
}

impl FromStr for Device {
    type Err = DeviceParseError;

    /// `auto`, `cpu`, `cuda`, `cuda:N`, `vulkan`, `vulkan:N`, `metal` (case-insensitive, trimmed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let (kind, ordinal) = match lower.split_once(':') {
            Some((k, n)) => (k, Some(n)),
            None => (lower.as_str(), None),
        };
        let number = |n: Option<&str>| -> Result<usize, DeviceParseError> {
            match n {
                None => Ok(0),
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
                    .parse()
                    .map_err(|_| DeviceParseError::Ordinal { input: s.into(), ordinal: n.into() }),
                Some(n) => Err(DeviceParseError::Ordinal { input: s.into(), ordinal: n.into() }),
            }
        };
        let plain = |d: Device| match ordinal {
            None => Ok(d),
            Some(_) => Err(DeviceParseError::NoOrdinal(s.into())),
        };
        match kind {
            "auto" => plain(Device::Auto),
            "cpu" => plain(Device::Cpu),
            "metal" => plain(Device::Metal),
            "cuda" => Ok(Device::Cuda(number(ordinal)?)),
            "vulkan" => Ok(Device::Vulkan(number(ordinal)?)),
            _ => Err(DeviceParseError::Unknown(s.into())),
        }
    }
}

impl fmt::Display for Device {
    /// The canonical spelling: `auto`, `cpu`, `cuda:N`, `vulkan:N`, `metal`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Vulkan(n) => write!(f, "vulkan:{n}"),
            Device::Metal => f.write_str("metal"),
        }
    }
}

/// An opened device: the backend a [`DynTrainer`](crate::DynTrainer) or
/// [`DynDecoder`](crate::DynDecoder) runs on, and which device it is.
pub enum OpenDevice {
    /// The CPU backend ([`CpuBackend`]).
    Cpu(CpuBackend),
    /// A CUDA device.
    #[cfg(feature = "cuda")]
    Cuda {
        /// Its ordinal.
        ordinal: usize,
        /// The backend (boxed: a CUDA or Vulkan backend is far larger than the CPU one).
        backend: Box<crate::CudaBackend>,
    },
    /// A Vulkan adapter or the Metal GPU, through `wgpu`.
    #[cfg(feature = "vulkan")]
    Wgpu {
        /// Which: [`Device::Vulkan`] or [`Device::Metal`].
        device: Device,
        /// The backend (boxed: a CUDA or wgpu backend is far larger than the CPU one).
        backend: Box<crate::WgpuBackend>,
    },
}

impl fmt::Debug for OpenDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenDevice").field("device", &self.device()).finish_non_exhaustive()
    }
}

impl OpenDevice {
    /// The concrete device (never [`Device::Auto`]): what `auto` picked.
    pub fn device(&self) -> Device {
        match self {
            OpenDevice::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            OpenDevice::Cuda { ordinal, .. } => Device::Cuda(*ordinal),
            #[cfg(feature = "vulkan")]
            OpenDevice::Wgpu { device, .. } => *device,
        }
    }

    /// The backend's description of the device (model, driver), for logs.
    pub fn name(&self) -> String {
        match self {
            OpenDevice::Cpu(be) => be.name(),
            #[cfg(feature = "cuda")]
            OpenDevice::Cuda { backend, .. } => backend.name(),
            #[cfg(feature = "vulkan")]
            OpenDevice::Wgpu { backend, .. } => backend.name(),
        }
    }
}

impl Device {
    /// The device kinds compiled into this build (`cpu` always, `cuda`, `vulkan` and `metal` with
    /// their cargo features), for help texts.
    pub fn built() -> Vec<&'static str> {
        let mut kinds = vec!["cpu"];
        if cfg!(feature = "cuda") {
            kinds.push("cuda");
        }
        if cfg!(feature = "vulkan") {
            kinds.push("vulkan");
        }
        if cfg!(feature = "metal") {
            kinds.push("metal");
        }
        kinds
    }

    /// Opens the device: the CPU always; a named device or [`DeviceError`] (not built, missing,
    /// failed to open); for [`Device::Auto`] the best device present (module docs), which
    /// [`OpenDevice::device`] then names.
    pub fn open(self) -> Result<OpenDevice, DeviceError> {
        match self {
            Device::Auto => Ok(open_auto()),
            Device::Cpu => Ok(OpenDevice::Cpu(CpuBackend::new())),
            Device::Cuda(ordinal) => open_cuda(ordinal),
            Device::Vulkan(ordinal) => open_vulkan(ordinal),
            Device::Metal => open_metal(),
        }
    }

    /// The concrete device [`Device::open`] gives (opening it once to check it works, then
    /// closing it): resolves `auto`, and fails as `open` does. For callers that open the device
    /// later, once per job, but want to fail and log early.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        Ok(self.open()?.device())
    }
}

/// The best device present: CUDA 0, a Metal GPU, a hardware Vulkan adapter, else the CPU.
fn open_auto() -> OpenDevice {
    if let Ok(dev) = open_cuda(0) {
        return dev;
    }
    #[cfg(feature = "metal")]
    {
        let metal = crate::WgpuBackend::adapters(crate::GpuApi::Metal);
        if metal.first().is_some_and(|a| !a.software) {
            if let Ok(dev) = open_metal() {
                return dev;
            }
        }
    }
    #[cfg(feature = "vulkan")]
    {
        let hardware =
            crate::WgpuBackend::adapters(crate::GpuApi::Vulkan).into_iter().find(|a| !a.software);
        if let Some(adapter) = hardware {
            if let Ok(dev) = open_vulkan(adapter.ordinal) {
                return dev;
            }
        }
    }
    OpenDevice::Cpu(CpuBackend::new())
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<OpenDevice, DeviceError> {
    match crate::CudaBackend::new(ordinal) {
        Ok(backend) => Ok(OpenDevice::Cuda { ordinal, backend: Box::new(backend) }),
        Err(reason) => Err(DeviceError::Unavailable { device: Device::Cuda(ordinal), reason }),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<OpenDevice, DeviceError> {
    Err(DeviceError::NotBuilt {
        device: Device::Cuda(ordinal),
        support: "CUDA",
        hint: " (rebuild with --features cuda)",
    })
}

#[cfg(feature = "vulkan")]
fn open_vulkan(ordinal: usize) -> Result<OpenDevice, DeviceError> {
    let device = Device::Vulkan(ordinal);
    match crate::WgpuBackend::open(crate::GpuApi::Vulkan, ordinal) {
        Ok(backend) => Ok(OpenDevice::Wgpu { device, backend: Box::new(backend) }),
        Err(reason) => Err(DeviceError::Unavailable { device, reason }),
    }
}

#[cfg(feature = "metal")]
fn open_metal() -> Result<OpenDevice, DeviceError> {
    let device = Device::Metal;
    match crate::WgpuBackend::open(crate::GpuApi::Metal, 0) {
        Ok(backend) => Ok(OpenDevice::Wgpu { device, backend: Box::new(backend) }),
        Err(reason) => Err(DeviceError::Unavailable { device, reason }),
    }
}

#[cfg(not(feature = "metal"))]
fn open_metal() -> Result<OpenDevice, DeviceError> {
    Err(DeviceError::NotBuilt {
        device: Device::Metal,
        support: "Metal",
        hint: " (rebuild with --features metal, on macOS)",
    })
}

#[cfg(not(feature = "vulkan"))]
fn open_vulkan(ordinal: usize) -> Result<OpenDevice, DeviceError> {
    Err(DeviceError::NotBuilt {
        device: Device::Vulkan(ordinal),
        support: "Vulkan",
        hint: " (rebuild with --features vulkan)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        let cases = [
            ("auto", Device::Auto),
            ("cpu", Device::Cpu),
            (" CPU ", Device::Cpu),
            ("cuda", Device::Cuda(0)),
            ("cuda:0", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
            ("vulkan", Device::Vulkan(0)),
            ("Vulkan:1", Device::Vulkan(1)),
            ("metal", Device::Metal),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Device>(), Ok(want), "{text:?}");
        }
        assert_eq!(Device::default(), Device::Cpu);
    }

    #[test]
    fn display_round_trips() {
        for d in [Device::Auto, Device::Cpu, Device::Cuda(2), Device::Vulkan(0), Device::Metal] {
            assert_eq!(d.to_string().parse::<Device>(), Ok(d));
        }
        assert_eq!(Device::Cuda(0).to_string(), "cuda:0");
    }

    #[test]
    fn rejects_bad_spellings_with_typed_errors() {
        assert_eq!("gpu".parse::<Device>(), Err(DeviceParseError::Unknown("gpu".into())));
        assert_eq!("".parse::<Device>(), Err(DeviceParseError::Unknown("".into())));
        for bad in ["cuda:", "cuda:x", "vulkan:-1", "cuda:1:2", "vulkan: 1"] {
            assert!(
                matches!(bad.parse::<Device>(), Err(DeviceParseError::Ordinal { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            "cuda:99999999999999999999999".parse::<Device>(),
            Err(DeviceParseError::Ordinal { .. })
        ));
        for bad in ["cpu:0", "auto:1", "metal:0"] {
            assert_eq!(bad.parse::<Device>(), Err(DeviceParseError::NoOrdinal(bad.into())));
        }
        let msg = "gpu".parse::<Device>().unwrap_err().to_string();
        assert!(msg.contains("auto, cpu, cuda[:N], vulkan[:N] or metal"), "{msg}");
    }

    #[test]
    fn cpu_always_opens_and_auto_names_what_it_picked() {
        let cpu = Device::Cpu.open().unwrap();
        assert_eq!(cpu.device(), Device::Cpu);
        let picked = Device::Auto.open().unwrap().device();
        assert_ne!(picked, Device::Auto);
        assert_eq!(Device::Auto.resolve().unwrap(), picked);
        if let Device::Vulkan(n) = picked {
            #[cfg(feature = "vulkan")]
            assert!(
                !crate::WgpuBackend::adapters(crate::GpuApi::Vulkan)[n].software,
                "auto never picks lavapipe"
            );
            let _ = n;
        }
    }

    #[cfg(not(feature = "metal"))]
    #[test]
    fn metal_without_the_feature_is_a_one_line_error() {
        let err = Device::Metal.open().unwrap_err();
        assert!(matches!(err, DeviceError::NotBuilt { support: "Metal", .. }));
        assert_eq!(
            err.to_string(),
            "device metal: not built with Metal support (rebuild with --features metal, on macOS)"
        );
    }

    /// With the feature but off Apple (CI builds it on Linux): no Metal adapter, a one-line error.
    #[cfg(all(feature = "metal", not(target_vendor = "apple")))]
    #[test]
    fn metal_off_apple_has_no_adapter() {
        let err = Device::Metal.open().unwrap_err();
        assert!(matches!(
            err,
            DeviceError::Unavailable {
                reason: BackendError::NoAdapter { api: "Metal", count: 0, .. },
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "device metal unavailable: no Metal adapter found (asked for adapter 0, 0 reported)"
        );
        assert!(Device::built().contains(&"metal"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_one_line_error() {
        let err = Device::Cuda(0).open().unwrap_err();
        assert_eq!(
            err.to_string(),
            "device cuda:0: not built with CUDA support (rebuild with --features cuda)"
        );
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn missing_cuda_device_is_a_one_line_error() {
        // No machine has 1000 CUDA devices: the driver (when present) reports fewer.
        let err = Device::Cuda(1000).open().unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("device cuda:1000 unavailable: "), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[cfg(not(feature = "vulkan"))]
    #[test]
    fn vulkan_without_the_feature_is_a_one_line_error() {
        let err = Device::Vulkan(1).open().unwrap_err();
        assert_eq!(
            err.to_string(),
            "device vulkan:1: not built with Vulkan support (rebuild with --features vulkan)"
        );
    }

    #[cfg(feature = "vulkan")]
    #[test]
    fn missing_vulkan_adapter_is_a_one_line_error() {
        let count = crate::WgpuBackend::adapters(crate::GpuApi::Vulkan).len();
        let err = Device::Vulkan(count).open().unwrap_err();
        assert!(matches!(
            err,
            DeviceError::Unavailable { reason: BackendError::NoAdapter { .. }, .. }
        ));
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("device vulkan:{count} unavailable: ")), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}
