//! [`WgpuBuffer`]: the device buffer type of [`WgpuBackend`](crate::WgpuBackend).

use std::fmt;
use std::marker::PhantomData;

/// A buffer of `len` elements of `T` in device memory.
///
/// Elements are stored packed (f16 and bf16 two per 32-bit word, element 0 in the low half);
/// the underlying allocation is padded to a multiple of 4 bytes and is never empty.
pub struct WgpuBuffer<T> {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) len: usize,
    pub(crate) _elem: PhantomData<fn() -> T>,
}

impl<T> WgpuBuffer<T> {
    /// The buffer of `len` elements held by `buffer`.
    pub(crate) fn new(buffer: wgpu::Buffer, len: usize) -> Self {
        WgpuBuffer {
            buffer,
            len,
            _elem: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The underlying wgpu buffer (usages `STORAGE | COPY_SRC | COPY_DST`), for interop with
    /// other wgpu code on the same device.
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl<T> fmt::Debug for WgpuBuffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WgpuBuffer")
            .field("elem", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("bytes", &self.buffer.size())
            .finish()
    }
}
