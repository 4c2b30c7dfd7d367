//! Loading the kernel module into a context: the build's fatbin, or the embedded sources
//! compiled by NVRTC; one cached [`Kernels`] per context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute, CUstream};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;

use super::plan::{KernelChoice, KernelKind, Target};
use crate::error::{Error, Result};
use crate::tensor::{DType, Layout};

/// What `build.rs` produced: the fatbin (if nvcc was found), its archs, and the sources.
mod build {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

/// Environment variable that forces the NVRTC path even when a fatbin was built (read when a
/// context's kernels are first loaded).
pub const FORCE_NVRTC_ENV: &str = "BLURPOOL_FORCE_NVRTC";

/// Environment variable that caps the forward kernels loaded kernels launch: `general` (or
/// `v1`) for the general kernels only, `v2`/`v3` for nothing newer ([`KernelChoice::parse`]),
/// e.g. to compare versions from the command line. Read when kernels are loaded, never by a
/// plan; any other value means [`KernelChoice::Auto`].
pub const KERNELS_ENV: &str = "BLURPOOL_KERNELS";

/// How the kernels were built into this library: for tools that inspect the machine code or
/// check that the build is the one they expect.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    /// The fatbin nvcc built (SASS for `archs` + PTX for the lowest), or `None` when the build
    /// found no nvcc and the kernels are compiled at run time by NVRTC.
    pub fatbin: Option<&'static [u8]>,
    /// The fatbin's targets, e.g. `sm_80,sm_86,sm_89,sm_90+compute_80` ("" without nvcc).
    pub archs: &'static str,
    /// nvcc's release, e.g. `13.0` ("" without nvcc).
    pub nvcc_release: &'static str,
    /// ptxas' resource report (registers, spills, stack, shared memory per kernel and arch).
    pub ptxas_report: &'static str,
}

/// What the build compiled (see [`BuildInfo`]).
///
/// ```
/// let info = blurpool::cuda::build_info();
/// assert_eq!(info.fatbin.is_some(), !info.archs.is_empty());
/// ```
pub fn build_info() -> BuildInfo {
    BuildInfo {
        fatbin: build::FATBIN,
        archs: build::ARCHS,
        nvcc_release: build::NVCC_RELEASE,
        ptxas_report: build::PTXAS_SUMMARY,
    }
}

/// Where the loaded module came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// The fatbin compiled by nvcc at build time (SASS for these archs + PTX).
    Fatbin {
        /// The fatbin's targets.
        archs: &'static str,
        /// nvcc's release.
        nvcc: &'static str,
    },
    /// Compiled at run time by NVRTC for this device's architecture.
    Nvrtc {
        /// The virtual architecture compiled for, e.g. `compute_90`.
        arch: String,
    },
}

/// How [`Kernels::load`] gets the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFrom {
    /// The build's fatbin, or NVRTC when the build had no nvcc.
    Build,
    /// NVRTC, even when there is a fatbin (to compare the two paths).
    Nvrtc,
}

/// Whether a CUDA driver library can be loaded on this machine. Check this before creating a
/// `CudaContext`: cudarc panics (rather than erring) when libcuda is absent.
pub fn driver_available() -> bool {
    // SAFETY: only probes whether the shared library can be opened; calls no CUDA function.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Opens device `ordinal` (the primary context, shared with the runtime API and PyTorch), or
/// says why not: no driver, or the driver's own error (e.g. no device).
///
/// ```no_run
/// let ctx = blurpool::cuda::open_device(0)?; // Err(NoCudaDriver) on a machine without one
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn open_device(ordinal: usize) -> Result<Arc<CudaContext>> {
    if !driver_available() {
        return Err(Error::NoCudaDriver);
    }
    Ok(CudaContext::new(ordinal)?)
}

/// The blurpool kernels loaded into one CUDA context.
pub struct Kernels {
    ctx: Arc<CudaContext>,
    _module: Arc<CudaModule>,
    functions: Arc<HashMap<(KernelKind, DType, Layout), CudaFunction>>,
    source: KernelSource,
    max_blocks: u32,
    choice: KernelChoice,
    tensor_cores: bool,
    wgmma: bool,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("ordinal", &self.ctx.ordinal())
            .field("source", &self.source)
            .field("choice", &self.choice)
            .field("tensor_cores", &self.tensor_cores)
            .field("wgmma", &self.wgmma)
            .finish()
    }
}

/// Loaded kernels, by context handle and by device ordinal (the primary context).
#[derive(Default)]
struct Cache {
    by_context: Vec<(usize, Arc<Kernels>)>,
    by_ordinal: Vec<(usize, Arc<Kernels>)>,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

impl Kernels {
    /// The kernels for `ctx`, loading the module the first time this context asks (later calls
    /// return the same `Arc`). Uses the build-time fatbin, or NVRTC when there is none or when
    /// `BLURPOOL_FORCE_NVRTC=1`.
    ///
    /// ```no_run
    /// use blurpool::cuda::{open_device, Kernels};
    /// let ctx = open_device(0)?;
    /// let kernels = Kernels::for_context(&ctx)?; // loaded once per context
    /// # Ok::<(), blurpool::Error>(())
    /// ```
    pub fn for_context(ctx: &Arc<CudaContext>) -> Result<Arc<Kernels>> {
        let key = ctx.cu_ctx() as usize;
        let mut cached = cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, k)) = cached.by_context.iter().find(|(k, _)| *k == key) {
            return Ok(k.clone());
        }
        let force_nvrtc = std::env::var(FORCE_NVRTC_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        let from = if force_nvrtc {
            LoadFrom::Nvrtc
        } else {
            LoadFrom::Build
        };
        let kernels = Arc::new(Kernels::load(ctx, from)?);
        // The cached Arc keeps the context alive, so its handle cannot be reused by another.
        cached.by_context.push((key, kernels.clone()));
        Ok(kernels)
    }

    /// The kernels for device `ordinal`'s primary context (the one the CUDA runtime and
    /// PyTorch use), opened and loaded the first time and kept for the life of the process.
    ///
    /// ```no_run
    /// let kernels = blurpool::cuda::Kernels::for_device(0)?;
    /// # Ok::<(), blurpool::Error>(())
    /// ```
    pub fn for_device(ordinal: usize) -> Result<Arc<Kernels>> {
        {
            let cached = cache().lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, k)) = cached.by_ordinal.iter().find(|(o, _)| *o == ordinal) {
                return Ok(k.clone());
            }
        }
        let ctx = open_device(ordinal)?;
        let kernels = Kernels::for_context(&ctx)?;
        let mut cached = cache().lock().unwrap_or_else(|p| p.into_inner());
        if !cached.by_ordinal.iter().any(|(o, _)| *o == ordinal) {
            cached.by_ordinal.push((ordinal, kernels.clone()));
        }
        Ok(kernels)
    }

    /// Loads a fresh, uncached module. Prefer [`Kernels::for_context`]; this exists to compare
    /// the fatbin and NVRTC paths.
    pub fn load(ctx: &Arc<CudaContext>, from: LoadFrom) -> Result<Kernels> {
        let (major, minor) = ctx.compute_capability()?;
        // The wgmma kernel runs on sm_90a code only: a compute capability 9.0 device (H100,
        // H200), and the fatbin's arch 90 image (build/nvcc.rs builds it as sm_90a) or NVRTC
        // for compute_90a. Anywhere else its entry points exist but trap, and are never planned.
        let sm90a = (major, minor) == (9, 0);
        let (ptx, source) = match build::FATBIN {
            Some(fatbin) if from == LoadFrom::Build => (
                Ptx::from_binary(fatbin.to_vec()),
                KernelSource::Fatbin {
                    archs: build::ARCHS,
                    nvcc: build::NVCC_RELEASE,
                },
            ),
            _ => {
                let suffix = if sm90a { "a" } else { "" };
                let arch = format!("compute_{major}{minor}{suffix}");
                (compile_nvrtc(&arch)?, KernelSource::Nvrtc { arch })
            }
        };
        let module = ctx.load_module(ptx).map_err(|e| Error::KernelLoad {
            detail: match &source {
                KernelSource::Fatbin { archs, .. } => {
                    let cc = ctx.compute_capability().map(|(a, b)| format!("sm_{a}{b}")).unwrap_or_default();
                    format!("fatbin built for {archs}, device is {cc}; rebuild with BLURPOOL_CUDA_ARCHS or set {FORCE_NVRTC_ENV}=1")
                }
                KernelSource::Nvrtc { arch } => format!("NVRTC output for {arch}"),
            },
            source: e,
        })?;
        let wgmma = sm90a
            && match &source {
                KernelSource::Fatbin { archs, .. } => {
                    archs.split([',', '+']).any(|a| a == "sm_90a")
                }
                KernelSource::Nvrtc { .. } => true,
            };
        let mut functions = HashMap::new();
        for (kind, dtype, layout) in KernelKind::entry_points() {
            let symbol = kind.symbol(dtype, layout);
            let f = module
                .load_function(&symbol)
                .map_err(|e| Error::KernelLoad {
                    detail: format!("symbol {symbol}"),
                    source: e,
                })?;
            // A launch may give a kernel more than 48 KB of dynamic shared memory only once the
            // kernel's limit is raised to it (the tensor-core v4 kernel: 65–93 KB, within every
            // sm_80+ SM's opt-in; it never runs below sm_80, see `tensor_cores`; the wgmma
            // kernel's 122 KB only where it runs).
            let shared = kind.dynamic_shared_bytes();
            if shared > 48 * 1024 && major >= 8 && (wgmma || !kind.needs_wgmma()) {
                f.set_attribute(
                    CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared as i32,
                )
                .map_err(|e| Error::KernelLoad {
                    detail: format!(
                        "symbol {symbol}: allowing {shared} bytes of dynamic shared memory"
                    ),
                    source: e,
                })?;
            }
            functions.insert((kind, dtype, layout), f);
        }
        let sms = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?
            .max(1) as u32;
        let choice = std::env::var(KERNELS_ENV)
            .ok()
            .and_then(|v| KernelChoice::parse(&v))
            .unwrap_or_default();
        Ok(Kernels {
            ctx: ctx.clone(),
            _module: module,
            functions: Arc::new(functions),
            source,
            max_blocks: sms * 32,
            choice,
            // mma.sync.m16n8k16 with f16/bf16 inputs needs sm_80.
            tensor_cores: major >= 8,
            wgmma,
        })
    }

    /// The same loaded kernels, launching forward operators with `choice` (e.g.
    /// [`KernelChoice::GENERAL`] to run the general kernels beside the specialised ones).
    pub fn with_choice(&self, choice: KernelChoice) -> Arc<Kernels> {
        Arc::new(Kernels {
            ctx: self.ctx.clone(),
            _module: self._module.clone(),
            functions: self.functions.clone(),
            source: self.source.clone(),
            max_blocks: self.max_blocks,
            choice,
            tensor_cores: self.tensor_cores,
            wgmma: self.wgmma,
        })
    }

    /// Which forward kernels these launch ([`KernelChoice::Auto`] unless `BLURPOOL_KERNELS`
    /// said otherwise at load time, or [`Kernels::with_choice`]).
    pub fn choice(&self) -> KernelChoice {
        self.choice
    }

    /// What launches of `dtype` in `layout` are planned for on this device.
    pub fn target(&self, dtype: DType, layout: Layout) -> Target {
        Target::new(dtype, layout)
            .with_choice(self.choice)
            .with_tensor_cores(self.tensor_cores)
            .with_wgmma(self.wgmma)
    }

    /// The context these kernels belong to.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Whether the module came from the fatbin or from NVRTC.
    pub fn source(&self) -> &KernelSource {
        &self.source
    }

    /// Blocks resident per launch (SMs × 32): the grid size of the grid-stride kernels.
    pub(crate) fn max_blocks(&self) -> u32 {
        self.max_blocks
    }

    pub(crate) fn function(
        &self,
        kind: KernelKind,
        dtype: DType,
        layout: Layout,
    ) -> Result<&CudaFunction> {
        self.functions.get(&(kind, dtype, layout)).ok_or_else(|| {
            Error::Unsupported(format!(
                "no kernel {} in the module",
                kind.symbol(dtype, layout)
            ))
        })
    }

    /// Wraps a stream owned by someone else (PyTorch's `current_stream().cuda_stream`, a C++
    /// pipeline's `cudaStream_t`) without taking ownership. The stream's context is asked of
    /// the driver: a stream of another context is [`Error::ContextMismatch`]. The null stream
    /// (and the legacy / per-thread handles) mean this context's, which is made current.
    ///
    /// ```no_run
    /// # let kernels = blurpool::cuda::Kernels::for_device(0)?;
    /// # let raw: cudarc::driver::sys::CUstream = std::ptr::null_mut();
    /// // SAFETY: `raw` is a live stream (here the legacy default stream) that outlives `stream`.
    /// let stream = unsafe { kernels.borrow_stream(raw) }?;
    /// # Ok::<(), blurpool::Error>(())
    /// ```
    ///
    /// # Safety
    /// `raw` must be a live stream (or null) and outlive the returned wrapper.
    pub unsafe fn borrow_stream(&self, raw: CUstream) -> Result<Arc<CudaStream>> {
        // The special handles resolve to the thread's current context: make it ours.
        self.ctx.bind_to_thread()?;
        let mut owner: cudarc::driver::sys::CUcontext = std::ptr::null_mut();
        // SAFETY: `raw` is a live stream or a special handle (the caller's contract);
        // cuStreamGetCtx only reads it and writes the context handle into `owner`.
        unsafe { cudarc::driver::sys::cuStreamGetCtx(raw, &mut owner) }.result()?;
        if owner != self.ctx.cu_ctx() {
            return Err(Error::ContextMismatch);
        }
        // SAFETY: forwarded to the caller's contract above; the stream belongs to this context
        // (checked), and the wrapper never destroys `raw`.
        Ok(unsafe { self.ctx.wrap_borrowed_stream(raw) })
    }

    /// ContextMismatch unless `stream` belongs to these kernels' context.
    pub(crate) fn check_stream(&self, stream: &CudaStream) -> Result<()> {
        if stream.context().cu_ctx() != self.ctx.cu_ctx() {
            return Err(Error::ContextMismatch);
        }
        Ok(())
    }
}

/// Compiles the embedded kernel sources with NVRTC for `arch` (e.g. `compute_90`); needs only
/// libnvrtc, no GPU.
pub fn compile_nvrtc(arch: &str) -> Result<Ptx> {
    // SAFETY: only probes whether libnvrtc can be opened.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(Error::Nvrtc(
            "libnvrtc was not found, and the crate was built without nvcc (no fatbin): install the CUDA toolkit's \
             NVRTC, or rebuild with nvcc (scripts/install-nvcc.sh)"
                .into(),
        ));
    }
    let opts = cudarc::nvrtc::CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "-std=c++17".into()],
        name: Some("blurpool_all.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(nvrtc_source(), opts)
        .map_err(|e| Error::Nvrtc(format!("{e:?}")))
}

/// The single translation unit NVRTC compiles: headers first (in dependency order), then every
/// .cu with its local `#include "…cuh"` lines dropped (the headers are already inlined).
fn nvrtc_source() -> String {
    let mut src = String::new();
    for (name, text) in build::SOURCES {
        src.push_str(&format!("// ---- {name} ----\n"));
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("#include \"") && t.trim_end().ends_with(".cuh\"") {
                continue;
            }
            src.push_str(line);
            src.push('\n');
        }
    }
    src
}
