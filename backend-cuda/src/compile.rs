//! The CUDA C sources of the backend and their compilation by NVRTC.
//!
//! Every module is `kernels/common.cuh` followed by one `.cu` file of `src/kernels/`, compiled
//! with `--fmad=false` (no silent FMA contraction, so element-wise math rounds like the CPU
//! reference) and IEEE division and square root. Compiling needs only `libnvrtc`, no GPU: see
//! [`compile_all_kernels`].

use std::ffi::CString;
use std::fmt;

use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys};
use supo_core::{Error, Result};

use crate::probe::{nvrtc_available, NO_NVRTC};

/// Definitions shared by every module, prepended to each source.
const COMMON: &str = include_str!("kernels/common.cuh");

/// One kernel module: a `.cu` file of `src/kernels/` and the `extern "C"` kernels it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSource {
    /// File name, e.g. `rows.cu` (also the NVRTC program name).
    pub name: &'static str,
    /// CUDA C source of the file, without the common prelude.
    pub source: &'static str,
    /// Names of the kernels it defines.
    pub entries: &'static [&'static str],
}

/// Every kernel module of the backend.
pub const KERNEL_SOURCES: &[KernelSource] = &[
    KernelSource {
        name: "rows.cu",
        source: include_str!("kernels/rows.cu"),
        entries: &[
            "row_stats_f32",
            "row_stats_f16",
            "row_stats_bf16",
            "policy_rows_f32",
            "policy_rows_f16",
            "policy_rows_bf16",
        ],
    },
    KernelSource {
        name: "gemm.cu",
        source: include_str!("kernels/gemm.cu"),
        entries: &[
            "gemm_f32_f32",
            "gemm_f16_f16",
            "gemm_bf16_bf16",
            "gemm_f32_f16",
            "gemm_f32_bf16",
        ],
    },
    KernelSource {
        name: "check.cu",
        source: include_str!("kernels/check.cu"),
        entries: &[
            "first_nonfinite_f32",
            "first_nonfinite_f16",
            "first_nonfinite_bf16",
            "first_out_of_range_u32",
        ],
    },
    KernelSource {
        name: "advantage.cu",
        source: include_str!("kernels/advantage.cu"),
        entries: &["group_stats", "apply_group_advantages", "scatter_to_tokens"],
    },
];

/// What NVRTC produces: portable PTX for a virtual architecture, or a CUBIN for one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileTarget {
    /// PTX for `compute_{major}{minor}`, JIT-compiled by the driver at load time.
    Ptx {
        /// Compute capability, major part.
        major: u32,
        /// Compute capability, minor part.
        minor: u32,
    },
    /// Machine code for `sm_{major}{minor}`; loads on any driver of the same CUDA major
    /// version, even one older than NVRTC (unlike PTX).
    Cubin {
        /// Compute capability, major part.
        major: u32,
        /// Compute capability, minor part.
        minor: u32,
    },
}

impl CompileTarget {
    /// PTX for `compute_80` (Ampere and newer): what [`compile_all_kernels`] builds.
    pub const PORTABLE: CompileTarget = CompileTarget::Ptx { major: 8, minor: 0 };

    fn options(self) -> Vec<String> {
        let arch = match self {
            CompileTarget::Ptx { major, minor } => format!("compute_{major}{minor}"),
            CompileTarget::Cubin { major, minor } => format!("sm_{major}{minor}"),
        };
        vec![
            format!("--gpu-architecture={arch}"),
            "--fmad=false".into(),
            "--ftz=false".into(),
            "--prec-div=true".into(),
            "--prec-sqrt=true".into(),
        ]
    }
}

impl fmt::Display for CompileTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileTarget::Ptx { major, minor } => write!(f, "PTX compute_{major}{minor}"),
            CompileTarget::Cubin { major, minor } => write!(f, "CUBIN sm_{major}{minor}"),
        }
    }
}

/// One module compiled by NVRTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledModule {
    /// File name of the source ([`KernelSource::name`]).
    pub name: &'static str,
    /// Kernels the module defines (all checked to be present in [`CompiledModule::image`]).
    pub entries: &'static [&'static str],
    /// What was built.
    pub target: CompileTarget,
    /// PTX text (without a trailing NUL) or CUBIN bytes.
    pub image: Vec<u8>,
}

impl CompiledModule {
    /// The PTX text, for a [`CompileTarget::Ptx`] module.
    pub fn ptx(&self) -> Option<&str> {
        match self.target {
            CompileTarget::Ptx { .. } => std::str::from_utf8(&self.image).ok(),
            CompileTarget::Cubin { .. } => None,
        }
    }

    /// The image as `cuModuleLoadData` wants it (PTX NUL-terminated).
    pub(crate) fn load_image(&self) -> Vec<u8> {
        let mut image = self.image.clone();
        if matches!(self.target, CompileTarget::Ptx { .. }) {
            image.push(0);
        }
        image
    }
}

/// Compiles every kernel module to PTX for `compute_80` ([`CompileTarget::PORTABLE`]).
///
/// Needs `libnvrtc` (found through the dynamic loader, e.g. `LD_LIBRARY_PATH`), not a GPU or a
/// driver. Returns [`Error::Unavailable`] when NVRTC is missing or rejects a source (with its
/// log).
pub fn compile_all_kernels() -> Result<Vec<CompiledModule>> {
    compile_kernels(CompileTarget::PORTABLE)
}

/// Compiles every kernel module for `target`; see [`compile_all_kernels`].
pub fn compile_kernels(target: CompileTarget) -> Result<Vec<CompiledModule>> {
    if !nvrtc_available() {
        return Err(Error::Unavailable(NO_NVRTC.into()));
    }
    KERNEL_SOURCES
        .iter()
        .map(|source| compile_module(source, target))
        .collect()
}

/// An NVRTC program, destroyed on drop.
struct Program(nvrtc_sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the handle came from `create_program` and is destroyed exactly once. A failure
        // to free it leaks a little host memory and is not worth a panic.
        let _ = unsafe { nvrtc::destroy_program(self.0) };
    }
}

fn c_chars_to_string(chars: &[core::ffi::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn compile_module(source: &KernelSource, target: CompileTarget) -> Result<CompiledModule> {
    let name = source.name;
    let unavailable =
        |what: String| Error::Unavailable(format!("NVRTC, {name} ({target}): {what}"));
    let code = CString::new(format!("{COMMON}\n{}", source.source))
        .map_err(|_| unavailable("source contains a NUL byte".into()))?;
    let c_name = CString::new(name).map_err(|_| unavailable("name contains a NUL byte".into()))?;
    let program = Program(
        nvrtc::create_program(&code, Some(&c_name))
            .map_err(|e| unavailable(format!("cannot create the program: {e}")))?,
    );
    // SAFETY: `program` is a live NVRTC program; the options are plain ASCII.
    if let Err(e) = unsafe { nvrtc::compile_program(program.0, &target.options()) } {
        // SAFETY: as above; the log exists once compilation has been attempted.
        let log = unsafe { nvrtc::get_program_log(program.0) }
            .map(|l| c_chars_to_string(&l))
            .unwrap_or_default();
        return Err(unavailable(format!("compilation failed: {e}\n{log}")));
    }
    let image = match target {
        // SAFETY: `program` compiled successfully, so its PTX exists.
        CompileTarget::Ptx { .. } => {
            unsafe { nvrtc::get_ptx(program.0) }.map(|ptx| c_chars_to_string(&ptx).into_bytes())
        }
        // SAFETY: as above, for the CUBIN of an `sm_` target.
        CompileTarget::Cubin { .. } => unsafe { get_cubin(program.0) },
    }
    .map_err(|e| unavailable(format!("cannot read the output: {e}")))?;
    for entry in source.entries {
        let found = match target {
            CompileTarget::Ptx { .. } => contains(&image, format!(".entry {entry}(").as_bytes()),
            CompileTarget::Cubin { .. } => contains(&image, entry.as_bytes()),
        };
        if !found {
            return Err(unavailable(format!(
                "kernel {entry} is missing from the output"
            )));
        }
    }
    Ok(CompiledModule {
        name,
        entries: source.entries,
        target,
        image,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The CUBIN of a compiled program.
///
/// # Safety
/// `program` must be a live NVRTC program compiled for an `sm_` architecture.
unsafe fn get_cubin(program: nvrtc_sys::nvrtcProgram) -> Result<Vec<u8>, nvrtc::NvrtcError> {
    let mut size = 0usize;
    nvrtc_sys::nvrtcGetCUBINSize(program, &mut size).result()?;
    let mut cubin = vec![0u8; size];
    nvrtc_sys::nvrtcGetCUBIN(program, cubin.as_mut_ptr().cast()).result()?;
    Ok(cubin)
}
