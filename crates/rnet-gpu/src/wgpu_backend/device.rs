//! The Vulkan or Metal device through `wgpu`: opening an adapter, buffers, uploads and downloads, and
//! dispatching one compute kernel with its parameters. Every `wgpu` call that can fail runs inside
//! error scopes, so a validation, out-of-memory or internal error becomes a [`BackendError`] instead
//! of `wgpu`'s default panic; errors nothing captured (a lost device) are recorded and reported by
//! the next [`Gpu::synchronize`].

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, mpsc};

use wgpu::util::DeviceExt;

use crate::BackendError;

/// Workgroups per grid dimension that every Vulkan device supports (and the WebGPU default limit).
const MAX_GROUPS: u32 = 65_535;

/// A device buffer of the Vulkan backend: `len` elements of `T`. `f32` buffers hold one element per
/// 32-bit word; byte-token buffers pack four tokens per word (little-endian), as the kernels read
/// them. At least one word is allocated, since Vulkan rejects empty bindings.
pub struct WgpuBuffer<T> {
    pub(super) buf: wgpu::Buffer,
    len: usize,
    _elem: PhantomData<T>,
}

impl<T> WgpuBuffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> std::fmt::Debug for WgpuBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuBuffer").field("len", &self.len).finish_non_exhaustive()
    }
}

/// An error `wgpu` reported outside any error scope (recorded by its uncaptured-error handler).
type Pending = Arc<Mutex<Option<String>>>;

/// Dispatches recorded into one command encoder and submitted together: a queue submission costs
/// far more than recording a compute pass (tens of microseconds on a software rasteriser), and
/// a decoding step is ~20 small dispatches per layer.
#[derive(Default)]
struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    passes: usize,
}

/// Most compute passes recorded before the batch is submitted (so a long sequence of dispatches
/// without a download or synchronisation still reaches the device early).
const BATCH_PASSES: usize = 64;

/// An open Vulkan or Metal device and its queue.
pub(super) struct Gpu {
    pub(super) device: wgpu::Device,
    queue: wgpu::Queue,
    pending: Pending,
    /// Largest buffer, in bytes, that can be both allocated and bound as one storage buffer.
    max_bytes: u64,
    /// A human-readable description of the adapter.
    pub(super) name: String,
    /// Whether the adapter is a CPU implementation (a software rasteriser such as lavapipe).
    pub(super) software: bool,
    /// Dispatches not yet submitted (see [`Batch`]).
    batch: Mutex<Batch>,
}

/// The graphics API a [`super::WgpuBackend`] runs on: the same WGSL kernels either way (`wgpu`
/// translates them to SPIR-V for Vulkan and to MSL for Metal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuApi {
    /// Vulkan (AMD, Intel, NVIDIA, Qualcomm, Mali; Mesa's lavapipe on the CPU).
    Vulkan,
    /// Metal (Apple GPUs; `wgpu`'s Metal backend is compiled with the `metal` feature on Apple
    /// targets only, so elsewhere there is never a Metal adapter).
    Metal,
}

impl GpuApi {
    /// The API's name: `Vulkan` or `Metal`.
    pub fn name(self) -> &'static str {
        match self {
            GpuApi::Vulkan => "Vulkan",
            GpuApi::Metal => "Metal",
        }
    }

    fn backends(self) -> wgpu::Backends {
        match self {
            GpuApi::Vulkan => wgpu::Backends::VULKAN,
            GpuApi::Metal => wgpu::Backends::METAL,
        }
    }

    /// The lower-case prefix of device names (`vulkan:0`, `metal:0`).
    fn prefix(self) -> &'static str {
        match self {
            GpuApi::Vulkan => "vulkan",
            GpuApi::Metal => "metal",
        }
    }
}

/// Maps a `wgpu` error to [`BackendError::Wgpu`] with what was being done.
fn vk(context: &'static str) -> impl Fn(String) -> BackendError {
    move |message| BackendError::Wgpu { context, message }
}

/// An instance of `wgpu` restricted to `api`, without validation layers or debug labels (they need
/// the Vulkan SDK and cost time).
fn instance(api: GpuApi) -> wgpu::Instance {
    wgpu::Instance::new(&wgpu::InstanceDescriptor {
        backends: api.backends(),
        flags: wgpu::InstanceFlags::empty(),
        ..Default::default()
    })
}

/// The adapter `ordinal` among the `api` adapters this machine offers (hardware GPUs and software
/// rasterisers such as Mesa's lavapipe alike, in the loader's order), or [`BackendError::NoAdapter`]
/// with how many there are. Without a Vulkan loader or driver (or off Apple, for Metal) there are
/// none.
fn adapter(api: GpuApi, ordinal: usize) -> Result<wgpu::Adapter, BackendError> {
    let mut adapters = instance(api).enumerate_adapters(api.backends());
    let count = adapters.len();
    if ordinal >= count {
        return Err(BackendError::NoAdapter { api: api.name(), ordinal, count });
    }
    Ok(adapters.swap_remove(ordinal))
}

/// Every `api` adapter this machine offers, in the loader's order: its description and whether it
/// is a CPU (software) implementation. Empty without a loader or driver.
pub(super) fn adapter_infos(api: GpuApi) -> Vec<(String, bool)> {
    instance(api)
        .enumerate_adapters(api.backends())
        .iter()
        .map(|a| {
            let info = a.get_info();
            let name = format!("{} ({:?}, {})", info.name, info.device_type, info.driver);
            (name, info.device_type == wgpu::DeviceType::Cpu)
        })
        .collect()
}

impl Gpu {
    /// Opens `api` adapter `ordinal` with the adapter's own limits (so large buffers can be bound).
    pub(super) fn open(api: GpuApi, ordinal: usize) -> Result<Self, BackendError> {
        let adapter = adapter(api, ordinal)?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("rnet-gpu"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| vk("opening the device")(e.to_string()))?;
        let pending: Pending = Arc::new(Mutex::new(None));
        let sink = pending.clone();
        device.on_uncaptured_error(Box::new(move |e| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let max_bytes = limits.max_buffer_size.min(limits.max_storage_buffer_binding_size as u64);
        let name = format!(
            "{}:{ordinal} {} ({:?}, {} {})",
            api.prefix(),
            info.name,
            info.device_type,
            info.driver,
            info.driver_info
        );
        let software = info.device_type == wgpu::DeviceType::Cpu;
        Ok(Self { device, queue, pending, max_bytes, name, software, batch: Mutex::default() })
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and turns an error any of
    /// them caught into [`BackendError::Wgpu`].
    pub(super) fn scoped<T>(
        &self,
        context: &'static str,
        f: impl FnOnce() -> T,
    ) -> Result<T, BackendError> {
        let filters = [
            wgpu::ErrorFilter::Internal,
            wgpu::ErrorFilter::OutOfMemory,
            wgpu::ErrorFilter::Validation,
        ];
        for filter in filters {
            self.device.push_error_scope(filter);
        }
        let out = f();
        let mut first = None;
        for _ in filters {
            if let Some(e) = pollster::block_on(self.device.pop_error_scope()) {
                first.get_or_insert(e.to_string());
            }
        }
        match first {
            Some(message) => Err(BackendError::Wgpu { context, message }),
            None => Ok(out),
        }
    }

    /// Bytes for `words` 32-bit words (at least one), or an error when the device cannot hold or
    /// bind a buffer that large.
    fn size_of(&self, words: usize) -> Result<u64, BackendError> {
        let bytes = (words.max(1) as u64).saturating_mul(4);
        if bytes > self.max_bytes {
            return Err(vk("allocating")(format!(
                "{bytes} bytes exceed the device's largest storage buffer ({} bytes)",
                self.max_bytes
            )));
        }
        Ok(bytes)
    }

    const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
        .union(wgpu::BufferUsages::COPY_SRC)
        .union(wgpu::BufferUsages::COPY_DST);

    /// A new buffer of `len` elements initialised from `bytes` (padded with zeros to whole words).
    fn upload_bytes<T>(&self, bytes: &[u8], len: usize) -> Result<WgpuBuffer<T>, BackendError> {
        let size = self.size_of(bytes.len().div_ceil(4))? as usize;
        let mut contents = bytes.to_vec();
        contents.resize(size, 0);
        let buf = self.scoped("uploading", || {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &contents,
                usage: Self::USAGE,
            })
        })?;
        Ok(WgpuBuffer { buf, len, _elem: PhantomData })
    }

    /// Copies `f32`s into a new buffer.
    pub(super) fn upload(&self, data: &[f32]) -> Result<WgpuBuffer<f32>, BackendError> {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.upload_bytes(&bytes, data.len())
    }

    /// Copies byte tokens into a new buffer, four per word.
    pub(super) fn upload_tokens(&self, tokens: &[u8]) -> Result<WgpuBuffer<u8>, BackendError> {
        self.upload_bytes(tokens, tokens.len())
    }

    /// Overwrites `dst` (as long as `data`, checked by the caller) with `data`. A queue write
    /// takes effect before the command buffers of the next submission, so the dispatches recorded
    /// so far are submitted first: they see the old contents, everything after sees the new.
    pub(super) fn write(&self, dst: &WgpuBuffer<f32>, data: &[f32]) -> Result<(), BackendError> {
        if data.is_empty() {
            return Ok(());
        }
        self.flush()?;
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.scoped("uploading", || self.queue.write_buffer(&dst.buf, 0, &bytes))
    }

    /// A new buffer of `len` zeros (`wgpu` zero-initialises every buffer).
    pub(super) fn zeros(&self, len: usize) -> Result<WgpuBuffer<f32>, BackendError> {
        let size = self.size_of(len)?;
        let buf = self.scoped("allocating", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: Self::USAGE,
                mapped_at_creation: false,
            })
        })?;
        Ok(WgpuBuffer { buf, len, _elem: PhantomData })
    }

    /// Copies a buffer back to the host through a mappable staging buffer (waits for queued work).
    pub(super) fn download(&self, src: &WgpuBuffer<f32>) -> Result<Vec<f32>, BackendError> {
        if src.len == 0 {
            self.synchronize()?;
            return Ok(Vec::new());
        }
        let size = self.size_of(src.len)?;
        self.flush()?;
        let staging = self.scoped("downloading", || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = self.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&src.buf, 0, &staging, 0, size);
            self.queue.submit([enc.finish()]);
            staging
        })?;
        let slice = staging.slice(..);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver waits below; a send can only fail if it is gone, which it is not.
            let _ = tx.send(r);
        });
        self.synchronize()?;
        rx.recv()
            .map_err(|e| vk("downloading")(e.to_string()))?
            .map_err(|e| vk("downloading")(e.to_string()))?;
        let out = {
            let view = slice.get_mapped_range();
            view.chunks_exact(4)
                .take(src.len)
                .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect()
        };
        staging.unmap();
        Ok(out)
    }

    /// Submits the recorded dispatches (in the order they were recorded, before anything submitted
    /// later).
    fn flush(&self) -> Result<(), BackendError> {
        let encoder = {
            let mut batch = self.lock_batch();
            batch.passes = 0;
            batch.encoder.take()
        };
        if let Some(enc) = encoder {
            self.scoped("submitting kernels", || self.queue.submit([enc.finish()]))?;
        }
        Ok(())
    }

    /// The batch of recorded dispatches (a panic while it was held leaves it usable: it only holds
    /// an encoder and a count).
    fn lock_batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for all submitted work and reports an error `wgpu` recorded outside any scope.
    pub(super) fn synchronize(&self) -> Result<(), BackendError> {
        self.flush()?;
        self.device.poll(wgpu::PollType::Wait).map_err(|e| vk("synchronising")(e.to_string()))?;
        let pending = self.pending.lock().map(|mut slot| slot.take()).unwrap_or_else(|p| {
            // A panic while the handler held the lock: report it rather than propagate it.
            p.into_inner().take().or_else(|| Some("error handler panicked".into()))
        });
        match pending {
            Some(message) => Err(vk("a queued operation")(message)),
            None => Ok(()),
        }
    }

    /// A grid of `groups` workgroups laid out in two dimensions (`flat_group` in the kernels).
    pub(super) fn grid(
        &self,
        op: &'static str,
        groups: usize,
    ) -> Result<(u32, u32, u32), BackendError> {
        let max = MAX_GROUPS as usize;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x).max(1);
        if y > max {
            return Err(BackendError::Shape {
                op,
                detail: format!("{groups} workgroups exceed the grid ({max} × {max})"),
            });
        }
        Ok((x as u32, y as u32, 1))
    }

    /// Checks one dimension of an explicit grid.
    pub(super) fn dim(op: &'static str, what: &str, n: usize) -> Result<u32, BackendError> {
        if n > MAX_GROUPS as usize {
            return Err(BackendError::Shape {
                op,
                detail: format!("{what} needs {n} workgroups, above {MAX_GROUPS}"),
            });
        }
        Ok(n as u32)
    }

    /// Records one dispatch of `pipeline` over `groups` workgroups with the uniform `params` (32-bit
    /// words, padded here to a multiple of 16 bytes) at binding 0 and `buffers` at their bindings,
    /// into the batch that the next download or synchronisation (or a full batch) submits.
    pub(super) fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        params: &[u32],
        buffers: &[(u32, &wgpu::Buffer)],
        groups: (u32, u32, u32),
    ) -> Result<(), BackendError> {
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4).max(1) * 4, 0);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.scoped("dispatching a kernel", || {
            let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let mut entries =
                vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
            entries.extend(buffers.iter().map(|&(binding, buf)| wgpu::BindGroupEntry {
                binding,
                resource: buf.as_entire_binding(),
            }));
            let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let mut batch = self.lock_batch();
            let enc = batch
                .encoder
                .get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(groups.0, groups.1, groups.2);
            }
            batch.passes += 1;
            if batch.passes >= BATCH_PASSES {
                batch.passes = 0;
                if let Some(enc) = batch.encoder.take() {
                    self.queue.submit([enc.finish()]);
                }
            }
        })
    }
}
