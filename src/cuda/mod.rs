//! The CUDA launch layer over cudarc.
//!
//! [`Kernels`] holds the compiled module for one context (loaded once per context and cached).
//! Each operator's `forward` takes the caller's stream, the input as any cudarc device buffer
//! (`CudaSlice`, `CudaView`), the output as a mutable one (`CudaViewMut`, `CudaSlice`), checks
//! lengths against the shapes and launches one kernel; nothing is allocated per call. The
//! `forward_raw` entries take bare `CUdeviceptr`s for pipelines that own their memory.

mod backward;
mod params;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::{CUdevice_attribute, CUdeviceptr, CUstream};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig,
    PushKernelArg, SyncOnDrop,
};
use cudarc::nvrtc::Ptx;

pub use backward::{BackwardPlan, BackwardStep, Buf, GradPtrs, Work};
pub use params::BpParams;

use crate::error::{Error, Result};
use crate::ops::{BlurConv2d, BlurPool2d, ConvBlurPool2d, MaxBlurPool2d, MaxPool2d};
use crate::tensor::{DType, Element, Layout, Shape4};

/// What `build.rs` produced: the fatbin (if nvcc was found), its archs, and the sources.
pub mod build {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

/// Environment variable that forces the NVRTC path even when a fatbin was built.
pub const FORCE_NVRTC_ENV: &str = "BLURPOOL_FORCE_NVRTC";

/// Threads per block for every kernel (they are grid-stride loops over outputs).
pub const BLOCK: u32 = 256;

/// Blocks launched for `total` outputs: enough to cover them, at most `max_blocks` (the
/// grid-stride loop covers the rest).
pub fn grid_blocks(total: i64, max_blocks: u32) -> u32 {
    (total.max(0) as u64)
        .div_ceil(BLOCK as u64)
        .clamp(1, max_blocks.max(1) as u64) as u32
}

/// The kernel families, one `extern "C"` entry per dtype × layout each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Dense max, stride 1.
    MaxPool,
    /// Blur + subsample.
    BlurPool,
    /// Fused max + blur + subsample.
    MaxBlurPool,
    /// Fused conv + bias + activation + blur + subsample.
    ConvBlurPool,
    /// Fused blur + strided conv + bias + activation.
    BlurConv,
    /// Backward of the dense max: dx from x and the max map's gradient.
    MaxPoolBackward,
    /// Backward of blur + subsample: dx from dy.
    BlurPoolBackward,
    /// Fused MaxBlurPool backward: dx from x and dy.
    MaxBlurPoolBackward,
    /// ConvBlurPool backward, pass 1: the conv map's gradient dz (f32 workspace).
    ConvBlurPoolDz,
    /// Conv backward: dx from dz (transposed convolution).
    ConvDx,
    /// Conv backward: dweight from x and dz (one block per weight).
    ConvDw,
    /// Conv backward: dbias from dz (one block per channel).
    ConvDb,
    /// A strip kernel (kernels/strip.cu, v2): MaxBlurPool2d or BlurPool2d with the window,
    /// filter and stride fixed at compile time.
    Strip(StripShape),
    /// Dense ConvBlurPool2d on the tensor cores (kernels/conv_tc.cu, v3): 3×3 conv, groups 1,
    /// blur filter `filter` (3 or 4) at stride 2; f16 and bf16 only, sm_80+.
    ConvTensorCore { filter: u8 },
}

/// The compile-time specialisations of the strip kernels (kernels/strip.cu): a square max
/// window (1 = none, BlurPool2d) or a square depthwise conv kernel (ConvBlurPool2d), a square
/// filter and one stride for both axes. Only the shapes in [`StripShape::ALL`] exist;
/// [`StripShape::find`] and [`StripShape::find_depthwise`] are the ways to get one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StripShape {
    window: u8,
    filter: u8,
    stride: u8,
    depthwise_conv: bool,
}

impl StripShape {
    /// Every specialisation the kernels instantiate: antialiased-cnns (max 2, filter 4),
    /// timm aa (max 3, filter 3), kornia / composer (max 2, filter 3), BlurPool2d with
    /// filters 3 (timm) and 4 (antialiased-cnns), and a depthwise 3×3 conv with filters 3
    /// and 4; all at stride 2.
    pub const ALL: [StripShape; 7] = [
        StripShape::new(2, 4, 2, false),
        StripShape::new(3, 3, 2, false),
        StripShape::new(2, 3, 2, false),
        StripShape::new(1, 3, 2, false),
        StripShape::new(1, 4, 2, false),
        StripShape::new(3, 3, 2, true),
        StripShape::new(3, 4, 2, true),
    ];

    const fn new(window: u8, filter: u8, stride: u8, depthwise_conv: bool) -> StripShape {
        StripShape {
            window,
            filter,
            stride,
            depthwise_conv,
        }
    }

    fn lookup(window: usize, filter: usize, stride: usize, dw: bool) -> Option<StripShape> {
        StripShape::ALL
            .into_iter()
            .find(|s| s.dims() == (window, filter, stride) && s.depthwise_conv == dw)
    }

    /// The pooling specialisation for a square max `window` (1: no max), square `filter` and
    /// equal strides, if the kernels have one.
    pub fn find(window: usize, filter: usize, stride: usize) -> Option<StripShape> {
        StripShape::lookup(window, filter, stride, false)
    }

    /// The depthwise ConvBlurPool2d specialisation for a square conv `kernel`, square `filter`
    /// and equal strides, if the kernels have one.
    pub fn find_depthwise(kernel: usize, filter: usize, stride: usize) -> Option<StripShape> {
        StripShape::lookup(kernel, filter, stride, true)
    }

    /// Max window (or depthwise conv kernel), filter taps and stride (each for both axes).
    pub fn dims(self) -> (usize, usize, usize) {
        (
            self.window as usize,
            self.filter as usize,
            self.stride as usize,
        )
    }

    /// Whether this is a depthwise ConvBlurPool2d kernel (else MaxBlurPool2d / BlurPool2d).
    pub fn is_depthwise_conv(self) -> bool {
        self.depthwise_conv
    }

    fn stem(self) -> &'static str {
        match (self.window, self.filter, self.stride, self.depthwise_conv) {
            (2, 4, 2, false) => "bp_maxblurpool_k2f4s2",
            (3, 3, 2, false) => "bp_maxblurpool_k3f3s2",
            (2, 3, 2, false) => "bp_maxblurpool_k2f3s2",
            (1, 3, 2, false) => "bp_blurpool_f3s2",
            (1, 4, 2, false) => "bp_blurpool_f4s2",
            (3, 3, 2, true) => "bp_convblurpool_dw3f3s2",
            (3, 4, 2, true) => "bp_convblurpool_dw3f4s2",
            _ => unreachable!("StripShape values come only from StripShape::ALL"),
        }
    }

    /// The launch of this specialisation for `params`: threads cover BP_STRIP_ROWS output
    /// rows of one column each (NHWC half types take two channels per thread, so this count is
    /// an upper bound there; the kernel computes its own).
    fn work(self, params: &BpParams) -> Work {
        let strips = (params.ho + STRIP_ROWS - 1) / STRIP_ROWS;
        Work::Elements(params.n * params.c * strips * params.wo)
    }

    /// The specialisation that computes `params` exactly (max window `window`, 1 for none;
    /// with `depthwise`, the conv kernel), if there is one and the padded map's coordinates
    /// stay well inside i32.
    fn for_params(params: &BpParams, window: (i32, i32), depthwise: bool) -> Option<StripShape> {
        let square = window.0 == window.1 && params.fy == params.fx && params.sy == params.sx;
        let small = params.hm.max(params.wm)
            + i64::from(params.fy)
            + i64::from(params.pad_top.max(params.pad_left))
            < 1 << 30;
        if !(square && small) {
            return None;
        }
        StripShape::lookup(
            window.0 as usize,
            params.fy as usize,
            params.sy as usize,
            depthwise,
        )
    }
}

/// Output rows per thread of the strip kernels (`BP_STRIP_ROWS` in kernels/strip.cu).
pub const STRIP_ROWS: i64 = 8;

/// Which forward kernel an operator launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KernelChoice {
    /// The fastest kernel that implements the configuration: a strip kernel (v2) where a
    /// specialisation matches it exactly, else the general kernel. The default.
    #[default]
    Auto,
    /// Always the general one-thread-per-output kernel (v1): the reference the specialised
    /// kernels are compared with.
    General,
}

impl KernelChoice {
    /// `Auto`, or `General` when the environment variable [`KERNELS_ENV`] is `general`
    /// (read once per process).
    pub fn from_env() -> KernelChoice {
        static CHOICE: OnceLock<KernelChoice> = OnceLock::new();
        *CHOICE.get_or_init(|| match std::env::var(KERNELS_ENV) {
            Ok(v) if v.eq_ignore_ascii_case("general") => KernelChoice::General,
            _ => KernelChoice::Auto,
        })
    }
}

/// Environment variable that makes every forward launch the general kernels
/// (`BLURPOOL_KERNELS=general`), e.g. to compare versions from the CLI.
pub const KERNELS_ENV: &str = "BLURPOOL_KERNELS";

/// What a launch is planned for: the element type, the kernel choice, and whether the device
/// runs the tensor-core kernels (compute capability 8.0 or newer). [`Kernels::target`] gives
/// the one its launches use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub dtype: DType,
    pub choice: KernelChoice,
    pub tensor_cores: bool,
}

impl Target {
    /// `dtype` with `choice` on a device with tensor cores (the host emulator has them too).
    pub fn new(dtype: DType, choice: KernelChoice) -> Target {
        Target {
            dtype,
            choice,
            tensor_cores: true,
        }
    }

    /// Whether the tensor-core kernels may serve this target.
    fn tensor_core_kernels(self) -> bool {
        self.choice == KernelChoice::Auto && self.tensor_cores && self.dtype != DType::F32
    }
}

impl KernelKind {
    /// Every kernel family and specialisation (one entry point per dtype × layout each).
    pub const ALL: [KernelKind; 21] = [
        KernelKind::MaxPool,
        KernelKind::BlurPool,
        KernelKind::MaxBlurPool,
        KernelKind::ConvBlurPool,
        KernelKind::BlurConv,
        KernelKind::MaxPoolBackward,
        KernelKind::BlurPoolBackward,
        KernelKind::MaxBlurPoolBackward,
        KernelKind::ConvBlurPoolDz,
        KernelKind::ConvDx,
        KernelKind::ConvDw,
        KernelKind::ConvDb,
        KernelKind::Strip(StripShape::ALL[0]),
        KernelKind::Strip(StripShape::ALL[1]),
        KernelKind::Strip(StripShape::ALL[2]),
        KernelKind::Strip(StripShape::ALL[3]),
        KernelKind::Strip(StripShape::ALL[4]),
        KernelKind::Strip(StripShape::ALL[5]),
        KernelKind::Strip(StripShape::ALL[6]),
        KernelKind::ConvTensorCore { filter: 3 },
        KernelKind::ConvTensorCore { filter: 4 },
    ];

    /// Whether this kind has an entry point for `dtype` (the tensor-core kernels exist for
    /// f16 and bf16 only; every other kind for all three).
    pub fn has_dtype(self, dtype: DType) -> bool {
        !matches!(self, KernelKind::ConvTensorCore { .. }) || dtype != DType::F32
    }

    /// Every entry point the module exports: (kind, dtype, layout) for each kind and each
    /// dtype it has.
    pub fn entry_points() -> impl Iterator<Item = (KernelKind, DType, Layout)> {
        KernelKind::ALL.into_iter().flat_map(|kind| {
            DType::ALL
                .into_iter()
                .filter(move |&d| kind.has_dtype(d))
                .flat_map(move |d| Layout::ALL.into_iter().map(move |l| (kind, d, l)))
        })
    }

    fn stem(self) -> &'static str {
        match self {
            KernelKind::MaxPool => "bp_maxpool",
            KernelKind::BlurPool => "bp_blurpool",
            KernelKind::MaxBlurPool => "bp_maxblurpool",
            KernelKind::ConvBlurPool => "bp_convblurpool",
            KernelKind::BlurConv => "bp_blurconv",
            KernelKind::MaxPoolBackward => "bp_maxpool_bwd",
            KernelKind::BlurPoolBackward => "bp_blurpool_bwd",
            KernelKind::MaxBlurPoolBackward => "bp_maxblurpool_bwd",
            KernelKind::ConvBlurPoolDz => "bp_convblurpool_dz",
            KernelKind::ConvDx => "bp_conv_dx",
            KernelKind::ConvDw => "bp_conv_dw",
            KernelKind::ConvDb => "bp_conv_db",
            KernelKind::Strip(shape) => shape.stem(),
            KernelKind::ConvTensorCore { filter: 3 } => "bp_convblurpool_tc_k3f3s2",
            KernelKind::ConvTensorCore { filter: 4 } => "bp_convblurpool_tc_k3f4s2",
            KernelKind::ConvTensorCore { .. } => {
                unreachable!("ConvTensorCore values come only from KernelKind::ALL")
            }
        }
    }

    /// The `extern "C"` symbol for a dtype and layout, e.g. `bp_maxblurpool_f16_nhwc`.
    pub fn symbol(self, dtype: DType, layout: Layout) -> String {
        format!("{}_{}_{}", self.stem(), dtype.name(), layout.name())
    }
}

/// Where the loaded module came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// The fatbin compiled by nvcc at build time (SASS for these archs + PTX).
    Fatbin {
        archs: &'static str,
        nvcc: &'static str,
    },
    /// Compiled at run time by NVRTC for this device's architecture.
    Nvrtc { arch: String },
}

/// Whether a CUDA driver library can be loaded on this machine. Check this before creating a
/// `CudaContext`: cudarc panics (rather than erring) when libcuda is absent.
pub fn driver_available() -> bool {
    // SAFETY: only probes whether the shared library can be opened; calls no CUDA function.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Opens device `ordinal` (the primary context, shared with the runtime API and PyTorch), or
/// says why not: no driver, or the driver's own error (e.g. no device).
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
    functions: HashMap<(KernelKind, DType, Layout), CudaFunction>,
    source: KernelSource,
    max_blocks: u32,
    choice: KernelChoice,
    tensor_cores: bool,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("ordinal", &self.ctx.ordinal())
            .field("source", &self.source)
            .field("choice", &self.choice)
            .field("tensor_cores", &self.tensor_cores)
            .finish()
    }
}

type Cache = Mutex<Vec<(usize, Arc<Kernels>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

impl Kernels {
    /// The kernels for `ctx`, loading the module the first time this context asks (later calls
    /// return the same `Arc`). Uses the build-time fatbin, or NVRTC when there is none or when
    /// `BLURPOOL_FORCE_NVRTC=1`.
    pub fn for_context(ctx: &Arc<CudaContext>) -> Result<Arc<Kernels>> {
        let key = ctx.cu_ctx() as usize;
        let mut cached = cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, k)) = cached.iter().find(|(k, _)| *k == key) {
            return Ok(k.clone());
        }
        let force_nvrtc = std::env::var(FORCE_NVRTC_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        let kernels = Arc::new(Kernels::load(ctx, force_nvrtc)?);
        // The cached Arc keeps the context alive, so its handle cannot be reused by another.
        cached.push((key, kernels.clone()));
        Ok(kernels)
    }

    /// Loads a fresh, uncached module (`nvrtc` forces run-time compilation). Prefer
    /// [`Kernels::for_context`]; this exists to compare the two paths.
    pub fn load(ctx: &Arc<CudaContext>, nvrtc: bool) -> Result<Kernels> {
        let (ptx, source) = match build::FATBIN {
            Some(fatbin) if !nvrtc => (
                Ptx::from_binary(fatbin.to_vec()),
                KernelSource::Fatbin {
                    archs: build::ARCHS,
                    nvcc: build::NVCC_RELEASE,
                },
            ),
            _ => {
                let (major, minor) = ctx.compute_capability()?;
                let arch = format!("compute_{major}{minor}");
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
        let mut functions = HashMap::new();
        for (kind, dtype, layout) in KernelKind::entry_points() {
            let f = module
                .load_function(&kind.symbol(dtype, layout))
                .map_err(|e| Error::KernelLoad {
                    detail: format!("symbol {}", kind.symbol(dtype, layout)),
                    source: e,
                })?;
            functions.insert((kind, dtype, layout), f);
        }
        let (major, _) = ctx.compute_capability()?;
        let sms = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?
            .max(1) as u32;
        Ok(Kernels {
            ctx: ctx.clone(),
            _module: module,
            functions,
            source,
            max_blocks: sms * 32,
            choice: KernelChoice::from_env(),
            // mma.sync.m16n8k16 with f16/bf16 inputs needs sm_80.
            tensor_cores: major >= 8,
        })
    }

    /// The same loaded kernels, launching forward operators with `choice` (e.g.
    /// [`KernelChoice::General`] to run the general kernels beside the specialised ones).
    pub fn with_choice(&self, choice: KernelChoice) -> Arc<Kernels> {
        Arc::new(Kernels {
            ctx: self.ctx.clone(),
            _module: self._module.clone(),
            functions: self.functions.clone(),
            source: self.source.clone(),
            max_blocks: self.max_blocks,
            choice,
            tensor_cores: self.tensor_cores,
        })
    }

    /// Which forward kernels these launch (default [`KernelChoice::Auto`], or what
    /// `BLURPOOL_KERNELS` says).
    pub fn choice(&self) -> KernelChoice {
        self.choice
    }

    /// What launches of `dtype` are planned for on this device.
    pub fn target(&self, dtype: DType) -> Target {
        Target {
            dtype,
            choice: self.choice,
            tensor_cores: self.tensor_cores,
        }
    }

    /// The context these kernels belong to.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Whether the module came from the fatbin or from NVRTC.
    pub fn source(&self) -> &KernelSource {
        &self.source
    }

    /// Wraps a stream owned by someone else (PyTorch's `current_stream().cuda_stream`, a C++
    /// pipeline's `cudaStream_t`) without taking ownership.
    ///
    /// # Safety
    /// `raw` must be a live stream of this context and outlive the returned wrapper.
    pub unsafe fn borrow_stream(&self, raw: CUstream) -> Arc<CudaStream> {
        // SAFETY: forwarded to the caller's contract above; the wrapper never destroys `raw`.
        unsafe { self.ctx.wrap_borrowed_stream(raw) }
    }

    fn check_stream(&self, stream: &CudaStream) -> Result<()> {
        if stream.context().cu_ctx() != self.ctx.cu_ctx() {
            return Err(Error::ContextMismatch);
        }
        Ok(())
    }

    /// Launches a forward plan for `dtype`/`layout` with raw pointers (x, weight, bias, y).
    ///
    /// # Safety
    /// The pointers must address device memory of this context holding at least the elements
    /// the plan's parameters describe (weight/bias only for conv kernels, else may be 0), and
    /// stay valid until the kernel has run on `stream`.
    unsafe fn launch_raw(
        &self,
        plan: &LaunchPlan,
        dtype: DType,
        layout: Layout,
        stream: &CudaStream,
        ptrs: [CUdeviceptr; 4],
    ) -> Result<()> {
        let [x, w, b, y] = ptrs;
        // SAFETY: forwarded to the caller's contract; the fourth input is unused by forward
        // kernels.
        unsafe {
            self.launch_work(
                plan.kind,
                dtype,
                layout,
                stream,
                &plan.params,
                plan.work,
                [x, w, b, 0, y],
            )
        }
    }

    /// Launches one kernel over `work` with its five pointer arguments (four inputs, output).
    ///
    /// # Safety
    /// Each pointer must address device memory of this context holding what the kernel reads
    /// or writes for `params` (see kernels/*.cu for each kernel's roles), valid until the
    /// kernel has run on `stream`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn launch_work(
        &self,
        kind: KernelKind,
        dtype: DType,
        layout: Layout,
        stream: &CudaStream,
        params: &BpParams,
        work: Work,
        ptrs: [CUdeviceptr; 5],
    ) -> Result<()> {
        self.check_stream(stream)?;
        if work.count() == 0 {
            return Ok(());
        }
        let func = self.functions.get(&(kind, dtype, layout)).ok_or_else(|| {
            Error::Unsupported(format!("no {} kernel for {}", kind.stem(), dtype.name()))
        })?;
        let cfg = LaunchConfig {
            grid_dim: (work.grid(self.max_blocks), 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let [a, b, c, d, out] = ptrs;
        let mut builder = stream.launch_builder(func);
        builder
            .arg(params)
            .arg(&a)
            .arg(&b)
            .arg(&c)
            .arg(&d)
            .arg(&out);
        // SAFETY: every kernel's signature is (BpParams, five pointers), matching the six
        // arguments pushed; pointer validity is the caller's contract above.
        unsafe { builder.launch(cfg) }?;
        Ok(())
    }

    /// Typed launch over cudarc buffers: checks lengths and keeps the buffers' stream-ordering
    /// guards alive until the launch is queued.
    #[allow(clippy::too_many_arguments)]
    fn launch_typed<T: Element>(
        &self,
        plan: &LaunchPlan,
        layout: Layout,
        stream: &Arc<CudaStream>,
        x: (&dyn DevicePtr<T>, usize),
        weights: Option<(&dyn DevicePtr<T>, usize)>,
        bias: Option<(&dyn DevicePtr<T>, usize)>,
        y: (&mut dyn DevicePtrMut<T>, usize),
    ) -> Result<()> {
        check_buffer("input", x.0.len(), x.1)?;
        check_buffer("output", y.0.len(), y.1)?;
        if let Some((wbuf, need)) = weights {
            check_buffer("weight", wbuf.len(), need)?;
        }
        if let Some((bbuf, need)) = bias {
            check_buffer("bias", bbuf.len(), need)?;
        }
        self.check_stream(stream)?;
        let (xp, _gx) = x.0.device_ptr(stream);
        let (wp, _gw) = opt_device_ptr(weights.map(|w| w.0), stream);
        let (bp, _gb) = opt_device_ptr(bias.map(|b| b.0), stream);
        let (yp, _gy) = y.0.device_ptr_mut(stream);
        // SAFETY: every pointer comes from a live cudarc buffer of the checked length, whose
        // guard (held until the end of this scope) orders it on `stream`.
        unsafe { self.launch_raw(plan, T::DTYPE, layout, stream, [xp, wp, bp, yp]) }
    }
}

/// A buffer's device pointer after checking its length, with the guard that orders it on
/// `stream` (hold it until the launch is queued).
fn checked_ptr<'a, T>(
    what: &'static str,
    buf: &'a dyn DevicePtr<T>,
    need: usize,
    stream: &'a CudaStream,
) -> Result<(CUdeviceptr, SyncOnDrop<'a>)> {
    check_buffer(what, buf.len(), need)?;
    Ok(buf.device_ptr(stream))
}

/// [`checked_ptr`] for an output buffer.
fn checked_ptr_mut<'a, T>(
    what: &'static str,
    buf: &'a mut dyn DevicePtrMut<T>,
    need: usize,
    stream: &'a CudaStream,
) -> Result<(CUdeviceptr, SyncOnDrop<'a>)> {
    check_buffer(what, buf.len(), need)?;
    Ok(buf.device_ptr_mut(stream))
}

/// An optional buffer's device pointer and guard (0 and none when absent).
fn opt_device_ptr<'a, T>(
    buf: Option<&'a dyn DevicePtr<T>>,
    stream: &'a CudaStream,
) -> (CUdeviceptr, Option<SyncOnDrop<'a>>) {
    match buf {
        Some(b) => {
            let (p, g) = b.device_ptr(stream);
            (p, Some(g))
        }
        None => (0, None),
    }
}

fn check_buffer(what: &'static str, got: usize, expected: usize) -> Result<()> {
    if got != expected {
        return Err(Error::BufferLength {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

/// Compiles the embedded kernel sources with NVRTC for `arch` (e.g. `compute_90`).
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

/// The single translation unit NVRTC compiles: headers first, then every .cu with its local
/// `#include "…cuh"` lines dropped (the headers are already inlined above them).
pub fn nvrtc_source() -> String {
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

/// `forward` (cudarc buffers) and `forward_raw` (device pointers) of a pooling operator whose
/// `params(input)` gives its output shape and parameter block.
macro_rules! pooling_entries {
    ($op:ident, $what:literal) => {
        impl $op {
            #[doc = concat!($what, " on the GPU: `x` holds `input`, `y` receives `output_shape(input)`; one kernel on `stream`.")]
            pub fn forward<T: Element>(
                &self,
                kernels: &Kernels,
                stream: &Arc<CudaStream>,
                input: Shape4,
                layout: Layout,
                x: &impl DevicePtr<T>,
                y: &mut impl DevicePtrMut<T>,
            ) -> Result<Shape4> {
                let plan = self.launch_plan(input, kernels.target(T::DTYPE))?;
                kernels.launch_typed::<T>(&plan, layout, stream, (x, input.numel()?), None, None, (y, plan.output.numel()?))?;
                Ok(plan.output)
            }

            #[doc = concat!($what, " on raw device pointers of element type `dtype`.")]
            ///
            /// # Safety
            /// `x` and `y` must be device allocations of the kernels' context holding `input` and
            /// `output_shape(input)` elements of `dtype`, valid until the kernel has run on `stream`.
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn forward_raw(
                &self,
                kernels: &Kernels,
                stream: &CudaStream,
                dtype: DType,
                input: Shape4,
                layout: Layout,
                x: CUdeviceptr,
                y: CUdeviceptr,
            ) -> Result<Shape4> {
                let plan = self.launch_plan(input, kernels.target(dtype))?;
                // SAFETY: the caller guarantees the buffers (see above).
                unsafe { kernels.launch_raw(&plan, dtype, layout, stream, [x, 0, 0, y]) }?;
                Ok(plan.output)
            }
        }
    };
}

pooling_entries!(MaxPool2d, "Dense max (stride 1)");
pooling_entries!(BlurPool2d, "Blur + subsample");
pooling_entries!(
    MaxBlurPool2d,
    "Fused max + blur + subsample (the max map never reaches memory)"
);

impl LaunchPlan {
    /// The general kernel `kind` over one thread per output.
    fn general(kind: KernelKind, (output, params): (Shape4, BpParams)) -> LaunchPlan {
        LaunchPlan {
            kind,
            output,
            params,
            work: Work::Elements(params.total),
        }
    }

    /// The strip kernel for `window` (1: no max) when `choice` allows one and it matches,
    /// else the general kernel `kind`.
    fn pooling(
        kind: KernelKind,
        window: (i32, i32),
        (output, params): (Shape4, BpParams),
        choice: KernelChoice,
    ) -> LaunchPlan {
        let strip = StripShape::for_params(&params, window, false);
        LaunchPlan::strip_or_general(strip, kind, (output, params), choice)
    }

    /// `strip` when there is one and `choice` allows it, else the general kernel `kind`.
    fn strip_or_general(
        strip: Option<StripShape>,
        kind: KernelKind,
        (output, params): (Shape4, BpParams),
        choice: KernelChoice,
    ) -> LaunchPlan {
        match strip {
            Some(shape) if choice == KernelChoice::Auto => LaunchPlan {
                kind: KernelKind::Strip(shape),
                output,
                params,
                work: shape.work(&params),
            },
            _ => LaunchPlan::general(kind, (output, params)),
        }
    }
}

impl MaxPool2d {
    fn launch_plan(&self, input: Shape4, _target: Target) -> Result<LaunchPlan> {
        Ok(LaunchPlan::general(
            KernelKind::MaxPool,
            self.params(input)?,
        ))
    }

    fn params(&self, input: Shape4) -> Result<(Shape4, BpParams)> {
        let out = self.output_shape(input)?;
        Ok((
            out,
            BpParams::new(input, out, (out.h, out.w))?.with_max(self.kernel(), self.padding())?,
        ))
    }
}

impl BlurPool2d {
    fn launch_plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        Ok(LaunchPlan::pooling(
            KernelKind::BlurPool,
            (1, 1),
            self.params(input)?,
            target.choice,
        ))
    }

    fn params(&self, input: Shape4) -> Result<(Shape4, BpParams)> {
        let out = self.output_shape(input)?;
        Ok((
            out,
            BpParams::new(input, out, (input.h, input.w))?.with_blur(self.blur())?,
        ))
    }
}

impl MaxBlurPool2d {
    /// The unfused path, "separate max + blur": the dense max kernel writes the max map into
    /// `max_map` (of `max_map_shape(input)`), then the blur kernel reads it. This is what the
    /// libraries do and what the benchmarks compare the fused kernel against.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_separate<T: Element>(
        &self,
        kernels: &Kernels,
        stream: &Arc<CudaStream>,
        input: Shape4,
        layout: Layout,
        x: &impl DevicePtr<T>,
        max_map: &mut (impl DevicePtr<T> + DevicePtrMut<T>),
        y: &mut impl DevicePtrMut<T>,
    ) -> Result<Shape4> {
        // Validate the whole operator (incl. reflect vs the max map) before launching anything.
        self.output_shape(input)?;
        let m = self
            .max_pool()
            .forward(kernels, stream, input, layout, x, max_map)?;
        BlurPool2d::new(self.blur().clone()).forward(kernels, stream, m, layout, &*max_map, y)
    }

    fn launch_plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        let (kh, kw) = self.max_pool().kernel();
        Ok(LaunchPlan::pooling(
            KernelKind::MaxBlurPool,
            (kh as i32, kw as i32),
            self.params(input)?,
            target.choice,
        ))
    }

    fn params(&self, input: Shape4) -> Result<(Shape4, BpParams)> {
        let out = self.output_shape(input)?;
        let m = self.max_map_shape(input)?;
        let p = BpParams::new(input, out, (m.h, m.w))?
            .with_max(self.max_pool().kernel(), self.max_pool().padding())?
            .with_blur(self.blur())?;
        Ok((out, p))
    }
}

/// Optional bias buffer for the conv operators (`None` when the spec has no bias).
pub type Bias<'a, T> = Option<&'a dyn DevicePtr<T>>;

fn check_bias_presence(spec_has_bias: bool, given: bool) -> Result<()> {
    if spec_has_bias != given {
        return Err(Error::Conv(if spec_has_bias {
            "the operator was built with a bias but none was passed".into()
        } else {
            "a bias was passed but the operator was built without one".into()
        }));
    }
    Ok(())
}

/// `forward`/`forward_raw` of a conv operator: weight Cout×(Cin/groups)×kh×kw and optional
/// bias (Cout) in the activations' dtype.
macro_rules! conv_entries {
    ($op:ident, $what:literal) => {
        impl $op {
            #[doc = concat!($what, " on the GPU: one kernel on `stream`; `weight` is Cout×(Cin/groups)×kh×kw, `bias` Cout.")]
            #[allow(clippy::too_many_arguments)]
            pub fn forward<T: Element>(
                &self,
                kernels: &Kernels,
                stream: &Arc<CudaStream>,
                input: Shape4,
                layout: Layout,
                x: &impl DevicePtr<T>,
                weight: &dyn DevicePtr<T>,
                bias: Bias<'_, T>,
                y: &mut impl DevicePtrMut<T>,
            ) -> Result<Shape4> {
                check_bias_presence(self.conv().has_bias(), bias.is_some())?;
                let plan = self.launch_plan(input, kernels.target(T::DTYPE))?;
                let c = self.conv();
                kernels.launch_typed::<T>(
                    &plan,
                    layout,
                    stream,
                    (x, input.numel()?),
                    Some((weight, c.weight_len())),
                    bias.map(|b| (b, c.bias_len())),
                    (y, plan.output.numel()?),
                )?;
                Ok(plan.output)
            }

            #[doc = concat!($what, " on raw device pointers (`bias` = 0 when there is none).")]
            ///
            /// # Safety
            /// `x`, `weight`, `bias` (if the spec has one) and `y` must be device allocations of
            /// the kernels' context holding `input`, `conv().weight_len()`, `conv().bias_len()`
            /// and `output_shape(input)` elements of `dtype`, valid until the kernel has run.
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn forward_raw(
                &self,
                kernels: &Kernels,
                stream: &CudaStream,
                dtype: DType,
                input: Shape4,
                layout: Layout,
                x: CUdeviceptr,
                weight: CUdeviceptr,
                bias: CUdeviceptr,
                y: CUdeviceptr,
            ) -> Result<Shape4> {
                check_bias_presence(self.conv().has_bias(), bias != 0)?;
                let plan = self.launch_plan(input, kernels.target(dtype))?;
                // SAFETY: the caller guarantees the buffers (see above).
                unsafe { kernels.launch_raw(&plan, dtype, layout, stream, [x, weight, bias, y]) }?;
                Ok(plan.output)
            }
        }
    };
}

conv_entries!(
    ConvBlurPool2d,
    "Fused conv (stride 1) + bias + activation + blur + subsample (the conv output never reaches memory)"
);
conv_entries!(BlurConv2d, "Fused blur (stride 1) + strided conv + bias + activation (the blurred map never reaches memory)");

impl ConvBlurPool2d {
    fn launch_plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        let (output, params) = self.params(input)?;
        // Depthwise (one filter per channel; the conv is always stride 1 here): strip kernels.
        // (With one channel a conv is both depthwise and dense; the strip kernel wastes less.)
        let depthwise = i64::from(params.groups) == params.c && params.cout == params.c;
        let strip =
            StripShape::for_params(&params, (params.ckh, params.ckw), true).filter(|_| depthwise);
        if strip.is_none() && target.tensor_core_kernels() {
            if let Some(filter) = tensor_core_filter(&params) {
                return Ok(LaunchPlan {
                    kind: KernelKind::ConvTensorCore { filter },
                    output,
                    params,
                    work: Work::Blocks(tensor_core_tiles(&params)),
                });
            }
        }
        Ok(LaunchPlan::strip_or_general(
            strip,
            KernelKind::ConvBlurPool,
            (output, params),
            target.choice,
        ))
    }

    fn params(&self, input: Shape4) -> Result<(Shape4, BpParams)> {
        let out = self.output_shape(input)?;
        let z = self.conv_map_shape(input)?;
        let p = BpParams::new(input, out, (z.h, z.w))?
            .with_conv(self.conv(), (1, 1))?
            .with_blur(self.blur())?;
        Ok((out, p))
    }
}

/// Output tile of the tensor-core kernel: `BP_TC_OUT` × `BP_TC_OUT` pixels × `BP_TC_COUT`
/// channels (kernels/conv_tc.cu).
const TC_TILE: (i64, i64) = (8, 32);

/// The tensor-core ConvBlurPool2d filter size for `params`, if that kernel computes it: a
/// dense (groups 1) 3×3 conv, a square 3- or 4-tap blur at stride 2, map coordinates well
/// inside i32.
fn tensor_core_filter(params: &BpParams) -> Option<u8> {
    let conv = params.groups == 1 && params.ckh == 3 && params.ckw == 3;
    let blur =
        params.fy == params.fx && matches!(params.fy, 3 | 4) && params.sy == 2 && params.sx == 2;
    let small = params.hm.max(params.wm) + 2 * i64::from(params.fy) + 64 < 1 << 30
        && i64::from(params.pad_top.max(params.pad_left)) < 1 << 20;
    (conv && blur && small).then_some(params.fy as u8)
}

/// Blocks' worth of work of the tensor-core kernel: N × output tiles × channel tiles.
fn tensor_core_tiles(params: &BpParams) -> i64 {
    let (px, ch) = TC_TILE;
    params.n
        * ((params.ho + px - 1) / px)
        * ((params.wo + px - 1) / px)
        * ((params.cout + ch - 1) / ch)
}

impl BlurConv2d {
    fn launch_plan(&self, input: Shape4, _target: Target) -> Result<LaunchPlan> {
        Ok(LaunchPlan::general(
            KernelKind::BlurConv,
            self.params(input)?,
        ))
    }

    fn params(&self, input: Shape4) -> Result<(Shape4, BpParams)> {
        let out = self.output_shape(input)?;
        let b = self.blur_map_shape(input)?;
        let p = BpParams::new(input, out, (b.h, b.w))?
            .with_conv(self.conv(), self.stride())?
            .with_blur(self.blur())?;
        Ok((out, p))
    }
}

/// What one launch of an operator consists of: the kernel family, the output shape and the
/// parameter block, exactly as `forward` launches it. For tools that run the same kernels
/// elsewhere (the host emulator in `emu/`), and for inspecting what a launch will do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaunchPlan {
    pub kind: KernelKind,
    pub output: Shape4,
    pub params: BpParams,
    /// The threads the kernel's grid-stride loop covers.
    pub work: Work,
}

impl crate::ops::Operator {
    /// The launch `forward` makes for `input` in `dtype` with kernels of the default choice
    /// ([`KernelChoice::from_env`]) on a device with tensor cores, or the error it would return.
    pub fn plan(&self, input: Shape4, dtype: DType) -> Result<LaunchPlan> {
        self.plan_for(input, Target::new(dtype, KernelChoice::from_env()))
    }

    /// The launch `forward` makes for `input` on kernels whose target is `target`
    /// ([`Kernels::target`]).
    pub fn plan_for(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        use crate::ops::Operator as O;
        match self {
            O::MaxPool(op) => op.launch_plan(input, target),
            O::BlurPool(op) => op.launch_plan(input, target),
            O::MaxBlurPool(op) => op.launch_plan(input, target),
            O::ConvBlurPool(op) => op.launch_plan(input, target),
            O::BlurConv(op) => op.launch_plan(input, target),
        }
    }

    /// The output shape and parameter block of every launch for `input` (whichever kernel).
    pub(crate) fn launch_params(&self, input: Shape4) -> Result<(Shape4, BpParams)> {
        use crate::ops::Operator as O;
        match self {
            O::MaxPool(op) => op.params(input),
            O::BlurPool(op) => op.params(input),
            O::MaxBlurPool(op) => op.params(input),
            O::ConvBlurPool(op) => op.params(input),
            O::BlurConv(op) => op.params(input),
        }
    }

    /// Runs any operator on the GPU (`weight`/`bias` only for the conv operators; pass `None`
    /// for the others).
    #[allow(clippy::too_many_arguments)]
    pub fn forward<T: Element>(
        &self,
        kernels: &Kernels,
        stream: &Arc<CudaStream>,
        input: Shape4,
        layout: Layout,
        x: &impl DevicePtr<T>,
        weight: Option<&dyn DevicePtr<T>>,
        bias: Bias<'_, T>,
        y: &mut impl DevicePtrMut<T>,
    ) -> Result<Shape4> {
        use crate::ops::Operator as O;
        let need_weight =
            || weight.ok_or_else(|| Error::Conv("this operator needs a weight buffer".into()));
        match self {
            O::MaxPool(op) => op.forward(kernels, stream, input, layout, x, y),
            O::BlurPool(op) => op.forward(kernels, stream, input, layout, x, y),
            O::MaxBlurPool(op) => op.forward(kernels, stream, input, layout, x, y),
            O::ConvBlurPool(op) => {
                op.forward(kernels, stream, input, layout, x, need_weight()?, bias, y)
            }
            O::BlurConv(op) => {
                op.forward(kernels, stream, input, layout, x, need_weight()?, bias, y)
            }
        }
    }

    /// [`Operator::forward`] on raw device pointers (`weight`/`bias` = 0 where unused).
    ///
    /// # Safety
    /// As the operator's own `forward_raw`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn forward_raw(
        &self,
        kernels: &Kernels,
        stream: &CudaStream,
        dtype: DType,
        input: Shape4,
        layout: Layout,
        x: CUdeviceptr,
        weight: CUdeviceptr,
        bias: CUdeviceptr,
        y: CUdeviceptr,
    ) -> Result<Shape4> {
        use crate::ops::Operator as O;
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            match self {
                O::MaxPool(op) => op.forward_raw(kernels, stream, dtype, input, layout, x, y),
                O::BlurPool(op) => op.forward_raw(kernels, stream, dtype, input, layout, x, y),
                O::MaxBlurPool(op) => op.forward_raw(kernels, stream, dtype, input, layout, x, y),
                O::ConvBlurPool(op) => {
                    op.forward_raw(kernels, stream, dtype, input, layout, x, weight, bias, y)
                }
                O::BlurConv(op) => {
                    op.forward_raw(kernels, stream, dtype, input, layout, x, weight, bias, y)
                }
            }
        }
    }
}
