//! Device start-up and the small set of device helpers the kernels need: buffer creation,
//! uniform parameters, dispatch geometry, submission and read-back, with every failure mapped
//! to a [`supo_core::Error`].

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use supo_core::{Error, Result};

/// Storage buffers the widest kernel (the fused loss statistics) binds at once.
pub(crate) const STORAGE_BUFFERS_NEEDED: u32 = 8;

/// How long a read-back may wait for its mapping once the device is idle.
const MAP_TIMEOUT: Duration = Duration::from_secs(60);

/// The message of [`Error::Unavailable`] when no adapter can be found.
pub(crate) const NO_ADAPTER: &str = "no wgpu adapter found (install mesa-vulkan-drivers for \
     lavapipe, or set WGPU_BACKEND / WGPU_ADAPTER_NAME)";

/// Errors the device reported outside of any call's control flow.
#[derive(Default)]
struct ErrorSink {
    /// Set once the device is lost; every later call fails with it.
    lost: Option<String>,
    /// The first uncaptured (validation, out-of-memory, internal) error since the last check.
    uncaptured: Option<String>,
}

/// An opened device, its queue and the limits it was opened with.
pub(crate) struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    sink: Arc<Mutex<ErrorSink>>,
    /// Serialises the backend's operations (see [`Gpu::serial`]).
    serial: Mutex<()>,
}

/// Locks the sink, recovering the data if a panicking thread poisoned it.
fn lock(sink: &Mutex<ErrorSink>) -> MutexGuard<'_, ErrorSink> {
    sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Picks the adapter: `WGPU_ADAPTER_NAME` (a case-insensitive substring of the adapter's name)
/// when set, otherwise wgpu's default choice (which honours `WGPU_POWER_PREF`). The backends
/// searched come from `WGPU_BACKEND`.
fn pick_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted = wanted.to_lowercase();
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "no wgpu adapter matches WGPU_ADAPTER_NAME={wanted:?} (found: {names:?})"
                ))
            });
    }
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
        ..Default::default()
    }))
    .map_err(|_| Error::Unavailable(NO_ADAPTER.into()))
}

/// The limits to ask for: WebGPU's downlevel defaults, raised to the adapter's own values for
/// buffer sizes, storage-buffer count and dispatch size.
fn wanted_limits(adapter: &wgpu::Limits) -> Result<wgpu::Limits> {
    let base = wgpu::Limits::downlevel_defaults();
    let mut limits = if base.check_limits(adapter) {
        base
    } else {
        adapter.clone()
    };
    limits.max_storage_buffer_binding_size = adapter.max_storage_buffer_binding_size;
    limits.max_buffer_size = adapter.max_buffer_size;
    limits.max_storage_buffers_per_shader_stage = adapter.max_storage_buffers_per_shader_stage;
    limits.max_compute_workgroups_per_dimension = adapter.max_compute_workgroups_per_dimension;
    if limits.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS_NEEDED
        || limits.max_compute_invocations_per_workgroup < 256
        || limits.max_compute_workgroup_size_x < 256
        || limits.max_compute_workgroup_storage_size < 8192
    {
        return Err(Error::Unavailable(format!(
            "the wgpu adapter is too small: {} storage buffers per stage (need {}), {} \
             invocations per workgroup (need 256), {} bytes of workgroup memory (need 8192)",
            limits.max_storage_buffers_per_shader_stage,
            STORAGE_BUFFERS_NEEDED,
            limits.max_compute_invocations_per_workgroup,
            limits.max_compute_workgroup_storage_size
        )));
    }
    Ok(limits)
}

impl Gpu {
    /// Opens the adapter chosen by the environment (see [`pick_adapter`]).
    pub(crate) fn new() -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pick_adapter(&instance)?;
        let info = adapter.get_info();
        let limits = wanted_limits(&adapter.limits())?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("supo-wgpu"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| {
            Error::Unavailable(format!(
                "cannot open wgpu device on {} ({:?}): {e}",
                info.name, info.backend
            ))
        })?;
        let sink = Arc::new(Mutex::new(ErrorSink::default()));
        let on_error = Arc::clone(&sink);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&on_error)
                .uncaptured
                .get_or_insert_with(|| e.to_string());
        }));
        let on_lost = Arc::clone(&sink);
        device.set_device_lost_callback(move |reason, message| {
            lock(&on_lost).lost = Some(format!("device lost ({reason:?}): {message}"));
        });
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            sink,
            serial: Mutex::new(()),
        })
    }

    /// Held for the whole of each backend operation. Operations block until the device is done
    /// anyway; running them one at a time keeps backends whose context is not shareable between
    /// threads (wgpu's OpenGL backend times out on a held context) safe under concurrent calls.
    pub(crate) fn serial(&self) -> MutexGuard<'_, ()> {
        self.serial
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails if the device was lost or reported an error since the last check.
    pub(crate) fn check(&self) -> Result<()> {
        let mut sink = lock(&self.sink);
        if let Some(lost) = &sink.lost {
            return Err(Error::Device(lost.clone()));
        }
        match sink.uncaptured.take() {
            Some(e) => Err(Error::Device(e)),
            None => Ok(()),
        }
    }

    /// Rejects a buffer larger than the device allows.
    fn check_size(&self, bytes: u64) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(Error::Device(format!(
                "a buffer of {bytes} bytes exceeds the device's max_buffer_size of {}",
                self.limits.max_buffer_size
            )));
        }
        Ok(())
    }

    /// A zero-initialised storage buffer of at least `bytes` bytes (padded to 4, never empty).
    pub(crate) fn storage(&self, bytes: u64) -> Result<wgpu::Buffer> {
        let size = padded(bytes);
        self.check_size(size)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// A buffer holding `data` (padded with zeros to a multiple of 4 bytes, never empty).
    pub(crate) fn buffer_with(
        &self,
        data: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        let size = padded(data.len() as u64);
        self.check_size(size)?;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: true,
        });
        {
            let mut view = buffer
                .get_mapped_range_mut(..)
                .map_err(|e| Error::Device(format!("cannot map a new buffer: {e}")))?;
            view.slice(..data.len()).copy_from_slice(data);
        }
        buffer.unmap();
        Ok(buffer)
    }

    /// A storage buffer holding `data`.
    pub(crate) fn storage_with(&self, data: &[u8]) -> Result<wgpu::Buffer> {
        self.buffer_with(
            data,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// A uniform buffer holding one parameter block.
    pub(crate) fn uniform<P: bytemuck::Pod>(&self, params: &P) -> Result<wgpu::Buffer> {
        self.buffer_with(bytemuck::bytes_of(params), wgpu::BufferUsages::UNIFORM)
    }

    /// Bind group `0` of `pipeline` with the given `(binding, resource)` entries.
    pub(crate) fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, wgpu::BindingResource<'_>)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .iter()
            .map(|(binding, resource)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: resource.clone(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Workgroup counts `(x, y)` covering `groups` workgroups in a 2-D grid within the device's
    /// per-dimension limit; kernels flatten it as `y · x_count + x` and skip the excess.
    pub(crate) fn grid(&self, groups: u64) -> Result<(u32, u32)> {
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension.max(1));
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x).max(1);
        if y > max {
            return Err(Error::Unsupported(format!(
                "{groups} workgroups exceed the device's dispatch limit of {max}²"
            )));
        }
        Ok((x as u32, y as u32))
    }

    /// Records one dispatch of `pipeline` over `groups` workgroups.
    pub(crate) fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        groups: u64,
    ) -> Result<()> {
        let grid = self.grid(groups)?;
        self.dispatch_2d(encoder, pipeline, bind_group, grid);
        Ok(())
    }

    /// Records one dispatch of `pipeline` over an explicit `(x, y)` grid.
    pub(crate) fn dispatch_2d(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        (x, y): (u32, u32),
    ) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// A fresh command encoder.
    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    /// Submits `encoder` and blocks until the device has finished it.
    pub(crate) fn submit(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        self.check()?;
        let index = self.queue.submit(Some(encoder.finish()));
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| Error::Device(format!("waiting for the device failed: {e}")))?;
        self.check()
    }

    /// Appends copies of `sources` (`(buffer, byte offset, byte length)`, each length a multiple
    /// of 4) to `encoder`, submits it, waits, and returns the bytes of each source.
    pub(crate) fn read_back(
        &self,
        mut encoder: wgpu::CommandEncoder,
        sources: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        let total: u64 = sources.iter().map(|s| s.2).sum();
        if total == 0 {
            self.submit(encoder)?;
            return Ok(sources.iter().map(|_| Vec::new()).collect());
        }
        self.check_size(total)?;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("supo-wgpu read-back"),
            size: total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut at = 0;
        for &(buffer, offset, len) in sources {
            if len > 0 {
                encoder.copy_buffer_to_buffer(buffer, offset, &staging, at, len);
            }
            at += len;
        }
        self.submit(encoder)?;
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            // The receiver outlives the poll below; a send error cannot be acted on anyway.
            let _ = tx.send(result);
        });
        // The callback runs inside some thread's poll: usually ours, but another thread polling
        // the same device may run it first, or just after our wait returns.
        let deadline = Instant::now() + MAP_TIMEOUT;
        let mut poll = wgpu::PollType::wait_indefinitely();
        let mapped = loop {
            self.device
                .poll(poll)
                .map_err(|e| Error::Device(format!("waiting for a buffer mapping failed: {e}")))?;
            self.check()?;
            match rx.try_recv() {
                Ok(result) => break result,
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(Error::Device("a buffer mapping was dropped".into()))
                }
                Err(mpsc::TryRecvError::Empty) if Instant::now() > deadline => {
                    return Err(Error::Device("a buffer mapping never completed".into()))
                }
                Err(mpsc::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(1)),
            }
            poll = wgpu::PollType::Poll;
        };
        mapped.map_err(|e| Error::Device(format!("mapping a buffer failed: {e}")))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Device(format!("reading a mapped buffer failed: {e}")))?;
            let mut out = Vec::with_capacity(sources.len());
            let mut at = 0usize;
            for &(_, _, len) in sources {
                out.push(view[at..at + len as usize].to_vec());
                at += len as usize;
            }
            out
        };
        staging.unmap();
        Ok(out)
    }
}

/// `bytes` rounded up to a multiple of 4, and at least 4 (wgpu binds no empty buffer).
pub(crate) fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(4).max(1) * 4
}
