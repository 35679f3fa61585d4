//! [`CudaBuffer`]: the device buffer of [`CudaBackend`](crate::CudaBackend).

use std::marker::PhantomData;

use cudarc::driver::CudaSlice;

/// A device buffer of `len` elements of `T`, stored as raw bytes so that one type serves every
/// [`supo_core::Scalar`]. Created by [`supo_core::Backend::upload`] or returned by an operation.
pub struct CudaBuffer<T> {
    /// The device allocation (at least one byte longer than zero, see [`CudaBuffer::new`]).
    pub(crate) bytes: CudaSlice<u8>,
    /// Number of elements of `T`.
    pub(crate) len: usize,
    _element: PhantomData<T>,
}

impl<T> CudaBuffer<T> {
    /// Wraps an allocation of at least `len * size_of::<T>()` bytes. Allocations are never
    /// empty (CUDA rejects zero-byte allocations), so an empty buffer holds a few spare bytes.
    pub(crate) fn new(bytes: CudaSlice<u8>, len: usize) -> Self {
        CudaBuffer {
            bytes,
            len,
            _element: PhantomData,
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
}

impl<T> std::fmt::Debug for CudaBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBuffer")
            .field("element", &std::any::type_name::<T>())
            .field("len", &self.len)
            .finish()
    }
}
