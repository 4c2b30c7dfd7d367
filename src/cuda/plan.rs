//! Launch plans: which kernel a call launches, over what grid, with which parameter block.
//! Pure values, computed from the operator, the input shape and a [`Target`]; the GPU launch
//! layer and the host emulator run the same plan. No device, environment or allocation here.

use super::params::BpParams;
use crate::error::{Error, Result};
use crate::ops::{BlurConv2d, BlurPool2d, ConvBlurPool2d, MaxBlurPool2d, MaxPool2d, Operator};
use crate::tensor::{DType, Layout, Shape4};

/// The kernels' specialisations, read from the sources by build.rs (one line per
/// specialisation in kernels/*.cu: `BP_STRIP_VARIANT(name, K, F, S)` etc.).
mod generated {
    include!(concat!(env!("OUT_DIR"), "/specialisations.rs"));
}

/// Threads per block of every kernel (grid-stride loops over their work) but the
/// specialisations whose line in the sources names another ([`KernelKind::block_threads`]).
pub(crate) const BLOCK: u32 = 256;

/// Output rows per thread of the strip kernels (`BP_STRIP_ROWS` in kernels/strip.cuh).
const STRIP_ROWS: i64 = 8;

/// Output tile of the tensor-core kernel (v3): `BP_TC_OUT` × `BP_TC_OUT` pixels × `BP_TC_COUT`
/// channels (kernels/conv_forward.cu).
const TC_TILE: (i64, i64) = (8, 32);

/// Output channels a block of the tensor-core v4 kernel (`BP_TC4_COUT` in
/// kernels/conv_forward.cu); its output tile is `side` × `side` pixels, 8 or 7 (the kernel's
/// last `BP_TC4_VARIANT` argument; [`tc4_tile_side`] picks one).
const TC4_COUT: i64 = 64;

/// Bytes of dynamic shared memory the tensor-core v4 kernel with a blur of `filter` taps and
/// output tiles of `side` × `side` uses (`bp_tc4_dims<F, TO>::SMEM_BYTES` in
/// kernels/conv_forward.cu): the larger of its two stages (an input tile of
/// (side − 1)·2 + F + 2 rows at a pitch of 24 pixels × 16 halves, and 9 taps × 64 × 16 halves
/// of weights, each stage in halves, so both together in floats) and its f32 map tile
/// (((side − 1)·2 + F)² pixels × 72 words). Side 8: 83,232 bytes for F = 3, 93,312 for F = 4;
/// side 7: 64,800 and 73,728.
fn tc4_shared_bytes(filter: usize, side: usize) -> u32 {
    let ch = TC4_COUT as usize;
    let mh = (side - 1) * 2 + filter;
    let staging_floats = (mh + 2) * 24 * 16 + 9 * ch * 16;
    let map_floats = mh * mh * (ch + 8);
    // At most 4 · 23,328 for the filter sizes and sides the kernel is built for: no overflow.
    (4 * staging_floats.max(map_floats)) as u32
}

/// Output channels a block of the tensor-core v4 `wgmma` kernel (`BP_TCW_COUT` in
/// kernels/conv_forward.cu): two warpgroups, each over all 128.
const TCW_COUT: i64 = 128;

/// Bytes of dynamic shared memory the `wgmma` kernel with a blur of `filter` taps and output
/// tiles of `side` × `side` uses (`bp_tcw_dims<F, TO>::SMEM_BYTES`): the larger of two stages
/// (input as 2 channel halves × `npix` pixels × 16 bytes, `npix` reaching the last m64 chunk's
/// taps at the input tile's pitch, and 9 taps × 2 halves × 128 × 16 bytes of weights) and its
/// f32 map tile (((side − 1)·2 + F)² pixels × 136 words): 122,400 bytes for F = 3 at side 7.
fn tcw_shared_bytes(filter: usize, side: usize) -> u32 {
    let mh = (side - 1) * 2 + filter;
    let pitch = mh + 2;
    let rows = (mh - 1) * pitch + mh;
    let chunks = rows.div_ceil(64);
    let npix = (64 * chunks + 2 * pitch + 2).div_ceil(16) * 16;
    let stage_bytes = 2 * npix * 16 + 9 * 2 * TCW_COUT as usize * 16;
    let map_bytes = mh * mh * (TCW_COUT as usize + 8) * 4;
    // At most a few hundred KB for the filter sizes and sides the kernel is built for.
    (2 * stage_bytes).max(map_bytes) as u32
}

/// The output tile side of the tensor-core v4 kernel for `params`: 7 where 7 × 7 tiles cover
/// the output in no more tiles than 8 × 8 ones (outputs of 28, 14, 7, and any size where
/// ⌈size / 7⌉ = ⌈size / 8⌉), else 8. At the same number of tiles a 7 × 7 one does less of
/// everything a block does: fewer GEMM rows (its map tile, ((side − 1)·2 + F)² pixels: 225
/// against 289 for F = 3), a smaller input tile and map, the same weights and B fragments. With
/// more tiles the B fragments and weights, read per tile, grow with the count (64 / 49 at
/// outputs of 56), more than the rows save (notes/kernels.md).
fn tc4_tile_side(params: &BpParams) -> usize {
    let tiles = |side: i64| ((params.ho + side - 1) / side) * ((params.wo + side - 1) / side);
    if tiles(7) <= tiles(8) {
        7
    } else {
        8
    }
}

/// Generations of the forward kernels (notes/kernels.md has each one's design and figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelVersion {
    /// General kernels: one thread per output, every configuration.
    V1,
    /// Strip kernels: register rings for the presets' pooling and depthwise-conv shapes.
    V2,
    /// Tensor-core dense ConvBlurPool2d (f16/bf16, compute capability ≥ 8.0).
    V3,
    /// Strip kernels over 16-byte vectors (NHWC: C a multiple of 8 halves or 4 floats; NCHW: W
    /// a multiple of them; a launch whose input is not 16-byte aligned takes the v2 walk inside
    /// the kernel), and the tensor-core dense ConvBlurPool2d staged with `cp.async` from
    /// pre-packed weights ([`LaunchPlan::weight_pack`]).
    V4,
}

impl KernelVersion {
    /// Lower-case name (`v1` … `v4`).
    pub fn name(self) -> &'static str {
        match self {
            KernelVersion::V1 => "v1",
            KernelVersion::V2 => "v2",
            KernelVersion::V3 => "v3",
            KernelVersion::V4 => "v4",
        }
    }
}

/// Which forward kernels a launch may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KernelChoice {
    /// The newest kernel that implements the configuration exactly (the default).
    #[default]
    Auto,
    /// The newest kernel no newer than this version: `AtMost(V1)` always runs the general
    /// kernels, the reference the specialised ones are compared with.
    AtMost(KernelVersion),
}

impl KernelChoice {
    /// Always the general (v1) kernels.
    pub const GENERAL: KernelChoice = KernelChoice::AtMost(KernelVersion::V1);

    /// The choice a `BLURPOOL_KERNELS` value names: `auto`, `general` or `v1`…`v4` (the
    /// newest version allowed), case-insensitive; `None` for anything else.
    ///
    /// ```
    /// use blurpool::cuda::{KernelChoice, KernelVersion};
    /// assert_eq!(KernelChoice::parse("general"), Some(KernelChoice::GENERAL));
    /// assert_eq!(KernelChoice::parse("V2"), Some(KernelChoice::AtMost(KernelVersion::V2)));
    /// assert_eq!(KernelChoice::parse("v9"), None);
    /// ```
    pub fn parse(value: &str) -> Option<KernelChoice> {
        let v = value.trim().to_ascii_lowercase();
        let version = match v.as_str() {
            "auto" => return Some(KernelChoice::Auto),
            "general" | "v1" => KernelVersion::V1,
            "v2" => KernelVersion::V2,
            "v3" => KernelVersion::V3,
            "v4" => KernelVersion::V4,
            _ => return None,
        };
        Some(KernelChoice::AtMost(version))
    }

    fn allows(self, v: KernelVersion) -> bool {
        match self {
            KernelChoice::Auto => true,
            KernelChoice::AtMost(max) => v <= max,
        }
    }
}

/// What a launch is planned for: the element type and layout of the tensors, the kernel
/// choice, and whether the device runs the tensor-core kernels (compute capability ≥ 8.0).
/// [`super::Kernels::target`] and [`super::Launch::target`] give the one a device uses.
///
/// ```
/// use blurpool::cuda::{KernelChoice, Target};
/// use blurpool::{DType, Layout};
/// let t = Target::new(DType::F16, Layout::Nhwc).with_choice(KernelChoice::GENERAL);
/// assert_eq!(t.choice(), KernelChoice::GENERAL);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    dtype: DType,
    layout: Layout,
    choice: KernelChoice,
    tensor_cores: bool,
    wgmma: bool,
}

impl Target {
    /// `dtype` in `layout` with [`KernelChoice::Auto`] on a device with tensor cores and
    /// sm_90a's `wgmma` (an H100 or H200 with a module built for it; the host emulator has
    /// both too). [`super::Kernels::target`] says what a loaded module on a real device has.
    pub fn new(dtype: DType, layout: Layout) -> Target {
        Target {
            dtype,
            layout,
            choice: KernelChoice::Auto,
            tensor_cores: true,
            wgmma: true,
        }
    }

    /// The same target with another kernel choice.
    pub fn with_choice(self, choice: KernelChoice) -> Target {
        Target { choice, ..self }
    }

    /// The same target on a device with (`true`) or without tensor cores.
    pub fn with_tensor_cores(self, tensor_cores: bool) -> Target {
        Target {
            tensor_cores,
            ..self
        }
    }

    /// The same target where the sm_90a `wgmma` kernel may (`true`) or may not run: it needs a
    /// compute capability 9.0 device and a module with sm_90a code (the fatbin's arch 90, or
    /// NVRTC for `compute_90a`). Without it the dense tensor-core conv takes its `mma.sync` v4.
    ///
    /// ```
    /// use blurpool::cuda::{KernelVersion, Target};
    /// use blurpool::{presets::timm, Activation, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType, Layout, PadMode, Shape4};
    /// let conv = Conv2dSpec::new(Conv2dArgs {
    ///     in_channels: 256,
    ///     out_channels: 256,
    ///     kernel: (3, 3),
    ///     padding: (1, 1),
    ///     groups: 1,
    ///     bias: false,
    ///     activation: Activation::Identity,
    /// })?;
    /// let op = ConvBlurPool2d::new(conv, timm::blur(3, 2, PadMode::Reflect)?);
    /// let input = Shape4::new(8, 256, 56, 56); // outputs of 28: 7 × 7 tiles
    /// let h100 = op.plan(input, Target::new(DType::F16, Layout::Nhwc))?;
    /// assert!(h100.symbol().contains("wgmma"));
    /// let a100 = op.plan(input, Target::new(DType::F16, Layout::Nhwc).with_wgmma(false))?;
    /// assert_eq!(a100.version(), KernelVersion::V4);
    /// assert!(!a100.symbol().contains("wgmma"));
    /// # Ok::<(), blurpool::Error>(())
    /// ```
    pub fn with_wgmma(self, wgmma: bool) -> Target {
        Target { wgmma, ..self }
    }

    /// Whether the sm_90a `wgmma` kernel may run.
    pub fn wgmma(&self) -> bool {
        self.wgmma
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Layout of the activations.
    pub fn layout(&self) -> Layout {
        self.layout
    }
    /// Kernel choice.
    pub fn choice(&self) -> KernelChoice {
        self.choice
    }
    /// Whether the tensor-core kernels may run.
    pub fn tensor_cores(&self) -> bool {
        self.tensor_cores
    }

    fn tensor_core_kernels(self) -> bool {
        self.choice.allows(KernelVersion::V3) && self.tensor_cores && self.dtype != DType::F32
    }
}

/// A specialised kernel: a strip kernel (`window` 1 = BlurPool2d, else the max window, or the
/// depthwise conv kernel) or a tensor-core conv, with its geometry fixed at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Specialisation {
    stem: &'static str,
    family: Family,
    window: usize,
    filter: usize,
    stride: usize,
    /// The output tile's side of a tensor-core kernel (8; v4 also 7), 0 for a strip kernel.
    tile: usize,
    /// Threads per block: the kernel's `__launch_bounds__` (BP_STRIP4_VARIANT and
    /// BP_STRIP4_DW_VARIANT name it; every other specialisation runs blocks of [`BLOCK`]).
    threads: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    StripPool,
    StripDepthwise,
    TensorCore,
    /// v4 tensor-core dense conv: cp.async staging of pre-packed weights, ldmatrix fragments.
    TensorCoreWide,
    /// v4 tensor-core dense conv on sm_90a: `wgmma` over 128 output channels a block.
    TensorCoreWgmma,
    /// v4 pooling strips over 16-byte vectors.
    StripPoolWide,
    /// v4 depthwise strips over 16-byte vectors.
    StripDepthwiseWide,
}

impl Specialisation {
    /// Every specialisation in the kernel sources.
    fn all() -> impl Iterator<Item = Specialisation> {
        generated::SPECIALISATIONS.iter().map(|&(mac, stem, dims)| {
            let family = match mac {
                "BP_STRIP_VARIANT" => Family::StripPool,
                "BP_STRIP_DW_VARIANT" => Family::StripDepthwise,
                "BP_TC_VARIANT" => Family::TensorCore,
                "BP_TC4_VARIANT" => Family::TensorCoreWide,
                "BP_TCW_VARIANT" => Family::TensorCoreWgmma,
                "BP_STRIP4_VARIANT" => Family::StripPoolWide,
                "BP_STRIP4_DW_VARIANT" => Family::StripDepthwiseWide,
                other => unreachable!("build.rs only lists known macros, not {other}"),
            };
            let (window, filter, stride, tile, threads) = match (family, dims) {
                (Family::TensorCore, [f]) => (3, *f as usize, 2, 8, BLOCK),
                (Family::TensorCoreWide | Family::TensorCoreWgmma, [f, side]) => {
                    (3, *f as usize, 2, *side as usize, BLOCK)
                }
                (Family::StripPoolWide, [k, f, s, threads])
                | (Family::StripDepthwiseWide, [k, f, s, threads, _]) => {
                    (*k as usize, *f as usize, *s as usize, 0, *threads)
                }
                (_, [k, f, s]) => (*k as usize, *f as usize, *s as usize, 0, BLOCK),
                _ => unreachable!("build.rs checks each macro's argument count"),
            };
            Specialisation {
                stem,
                family,
                window,
                filter,
                stride,
                tile,
                threads,
            }
        })
    }

    fn find(family: Family, window: usize, filter: usize, stride: usize) -> Option<Specialisation> {
        Specialisation::all().find(|s| {
            s.family == family && (s.window, s.filter, s.stride) == (window, filter, stride)
        })
    }

    fn version(self) -> KernelVersion {
        match self.family {
            Family::StripPool | Family::StripDepthwise => KernelVersion::V2,
            Family::TensorCore => KernelVersion::V3,
            Family::StripPoolWide
            | Family::StripDepthwiseWide
            | Family::TensorCoreWide
            | Family::TensorCoreWgmma => KernelVersion::V4,
        }
    }
}

/// The kernel families, one `extern "C"` entry per dtype × layout each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KernelKind {
    MaxPool,
    BlurPool,
    MaxBlurPool,
    ConvBlurPool,
    BlurConv,
    MaxPoolBackward,
    BlurPoolBackward,
    MaxBlurPoolBackward,
    ConvBlurPoolDz,
    ConvDx,
    ConvDw,
    ConvDb,
    /// The tensor-core v4 kernel's weight packing (OIHW → the shared-memory image of a stage).
    PackTc4Weights,
    Special(Specialisation),
}

impl KernelKind {
    const GENERAL: [KernelKind; 13] = [
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
        KernelKind::PackTc4Weights,
    ];

    /// Every kernel family and specialisation.
    fn all() -> impl Iterator<Item = KernelKind> {
        KernelKind::GENERAL
            .into_iter()
            .chain(Specialisation::all().map(KernelKind::Special))
    }

    /// Whether this kind has an entry point for `dtype` (the tensor-core kernels and their
    /// weight packing exist for f16 and bf16 only; every other kind for all three).
    fn has_dtype(self, dtype: DType) -> bool {
        let halves_only = matches!(self, KernelKind::PackTc4Weights)
            || matches!(self, KernelKind::Special(s)
                if matches!(s.family, Family::TensorCore | Family::TensorCoreWide | Family::TensorCoreWgmma));
        !halves_only || dtype != DType::F32
    }

    /// Every entry point the module exports: (kind, dtype, layout).
    pub(crate) fn entry_points() -> impl Iterator<Item = (KernelKind, DType, Layout)> {
        KernelKind::all().flat_map(|kind| {
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
            KernelKind::PackTc4Weights => "bp_pack_tc4_weights",
            KernelKind::Special(s) => s.stem,
        }
    }

    fn version(self) -> KernelVersion {
        match self {
            KernelKind::Special(s) => s.version(),
            _ => KernelVersion::V1,
        }
    }

    /// Threads per block of every launch of this kind (its `__launch_bounds__` where it has
    /// one with another block than [`BLOCK`]).
    pub(crate) fn block_threads(self) -> u32 {
        match self {
            KernelKind::Special(s) => s.threads,
            _ => BLOCK,
        }
    }

    /// Bytes of dynamic shared memory every launch of this kind gives (the tensor-core v4
    /// kernel's; every other kernel declares its shared memory statically, if any).
    pub(crate) fn dynamic_shared_bytes(self) -> u32 {
        match self {
            KernelKind::Special(s) if s.family == Family::TensorCoreWide => {
                tc4_shared_bytes(s.filter, s.tile)
            }
            KernelKind::Special(s) if s.family == Family::TensorCoreWgmma => {
                tcw_shared_bytes(s.filter, s.tile)
            }
            _ => 0,
        }
    }

    /// Whether this kind runs only on sm_90a code (`wgmma`): a module without it, or a device
    /// other than compute capability 9.0, never launches it (nor raises its shared memory).
    pub(crate) fn needs_wgmma(self) -> bool {
        matches!(self, KernelKind::Special(s) if s.family == Family::TensorCoreWgmma)
    }

    /// The `extern "C"` symbol for a dtype and layout, e.g. `bp_maxblurpool_f16_nhwc`.
    pub(crate) fn symbol(self, dtype: DType, layout: Layout) -> String {
        format!("{}_{}_{}", self.stem(), dtype.name(), layout.name())
    }
}

/// Every kernel symbol the module exports (forward and backward, every dtype × layout it has),
/// e.g. for a tool that checks another build of the same sources has them all.
pub fn kernel_symbols() -> Vec<String> {
    KernelKind::entry_points()
        .map(|(k, d, l)| k.symbol(d, l))
        .collect()
}

/// A specialised forward kernel: the configurations it serves exactly (the plan picks it for
/// those, and the general kernel for every other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Specialised {
    /// MaxBlurPool2d with a square max `window` (1: BlurPool2d), a square blur `filter` and
    /// equal strides `stride` (strip kernel, v2).
    Pooling {
        /// Max window (1 = no max: BlurPool2d).
        window: usize,
        /// Blur taps per axis.
        filter: usize,
        /// Blur stride on both axes.
        stride: usize,
    },
    /// Depthwise ConvBlurPool2d with a square `kernel` (strip kernel, v2).
    DepthwiseConv {
        /// Conv kernel per axis.
        kernel: usize,
        /// Blur taps per axis.
        filter: usize,
        /// Blur stride on both axes.
        stride: usize,
    },
    /// Dense (groups 1) 3×3 ConvBlurPool2d in f16/bf16, blur at stride 2 (tensor cores, v3).
    TensorCoreConv {
        /// Blur taps per axis.
        filter: usize,
    },
    /// The v4 tensor-core kernel of a [`Specialised::TensorCoreConv`] geometry: weights
    /// pre-packed by a launch of their own into a stage's shared-memory image, staged with
    /// 16-byte `cp.async` into two buffers, fragments by `ldmatrix`.
    TensorCoreConvV4 {
        /// Blur taps per axis.
        filter: usize,
        /// Output tile side: 8, or 7 (planned where 7 × 7 tiles cover the output in as few
        /// tiles as 8 × 8 ones, e.g. outputs of 28, 14, 7: fewer GEMM rows outside it).
        tile: usize,
    },
    /// The v4 tensor-core kernel on sm_90a (H100, H200): `wgmma.m64n128k16` with both operands
    /// read from shared memory, 128 output channels a block, the same packed weights as
    /// [`Specialised::TensorCoreConvV4`]; planned where the target has `wgmma`
    /// ([`Target::with_wgmma`]) and Cout > 64.
    TensorCoreConvWgmma {
        /// Blur taps per axis.
        filter: usize,
        /// Output tile side.
        tile: usize,
    },
    /// The v4 strip kernel of a [`Specialised::Pooling`] geometry over 16-byte vectors: NHWC
    /// with channels a multiple of 8 (f16/bf16) or 4 (f32), one vector of channels per pixel;
    /// NCHW with W a multiple of 8 or 4, 8 or 4 output columns per thread from row chunks.
    PoolingV4 {
        /// Max window (1 = no max: BlurPool2d).
        window: usize,
        /// Blur taps per axis.
        filter: usize,
        /// Blur stride on both axes.
        stride: usize,
    },
    /// The v4 strip kernel of a [`Specialised::DepthwiseConv`] geometry over 16-byte vectors,
    /// on the same shapes as [`Specialised::PoolingV4`].
    DepthwiseConvV4 {
        /// Conv kernel per axis.
        kernel: usize,
        /// Blur taps per axis.
        filter: usize,
        /// Blur stride on both axes.
        stride: usize,
    },
}

/// Every specialised forward kernel the build has (one line each in kernels/*.cu).
pub fn specialised_kernels() -> impl Iterator<Item = Specialised> {
    Specialisation::all().map(|s| match s.family {
        Family::StripPool => Specialised::Pooling {
            window: s.window,
            filter: s.filter,
            stride: s.stride,
        },
        Family::StripDepthwise => Specialised::DepthwiseConv {
            kernel: s.window,
            filter: s.filter,
            stride: s.stride,
        },
        Family::TensorCore => Specialised::TensorCoreConv { filter: s.filter },
        Family::TensorCoreWide => Specialised::TensorCoreConvV4 {
            filter: s.filter,
            tile: s.tile,
        },
        Family::TensorCoreWgmma => Specialised::TensorCoreConvWgmma {
            filter: s.filter,
            tile: s.tile,
        },
        Family::StripPoolWide => Specialised::PoolingV4 {
            window: s.window,
            filter: s.filter,
            stride: s.stride,
        },
        Family::StripDepthwiseWide => Specialised::DepthwiseConvV4 {
            kernel: s.window,
            filter: s.filter,
            stride: s.stride,
        },
    })
}

/// How a kernel's work is spread over the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// One thread per element (grid-stride loop over this many).
    Elements(i64),
    /// One block per element (block-stride loop over this many), for reductions and tiles.
    Blocks(i64),
}

impl Work {
    fn count(self) -> i64 {
        match self {
            Work::Elements(n) | Work::Blocks(n) => n,
        }
    }

    /// Blocks of `block` threads to launch: enough to cover the work, at most `max_blocks`
    /// (the kernels loop over the rest).
    fn grid(self, block: u32, max_blocks: u32) -> u32 {
        let blocks = match self {
            Work::Elements(n) => (n.max(0) as u64).div_ceil(block.max(1) as u64),
            Work::Blocks(n) => n.max(0) as u64,
        };
        blocks.clamp(1, max_blocks.max(1) as u64) as u32
    }
}

/// What one forward launch consists of: the kernel, its grid and its parameter block, exactly
/// as [`super::Launch`] launches it on a GPU (and the host emulator runs it on a CPU).
///
/// ```
/// use blurpool::cuda::{KernelChoice, KernelVersion, Target};
/// use blurpool::{presets::timm, DType, Layout, MaxBlurPool2d, MaxPool2d, PadMode, Shape4};
/// let op = MaxBlurPool2d::new(MaxPool2d::new((3, 3), (1, 1))?, timm::blur(3, 2, PadMode::Reflect)?);
/// let input = Shape4::new(8, 64, 56, 56);
/// let plan = op.plan(input, Target::new(DType::F16, Layout::Nhwc))?;
/// // a strip kernel over 16-byte channel vectors serves timm's geometry in NHWC
/// assert_eq!(plan.version(), KernelVersion::V4);
/// assert_eq!(plan.symbol(), "bp_maxblurpool_k3f3s2_v4_f16_nhwc");
/// let v2 = op.plan(input, Target::new(DType::F16, Layout::Nhwc).with_choice(KernelChoice::AtMost(KernelVersion::V2)))?;
/// assert_eq!(v2.symbol(), "bp_maxblurpool_k3f3s2_f16_nhwc");
/// let v1 = op.plan(input, Target::new(DType::F16, Layout::Nhwc).with_choice(KernelChoice::GENERAL))?;
/// assert_eq!(v1.version(), KernelVersion::V1);
/// assert_eq!(v1.params_bytes(), plan.params_bytes()); // the same parameter block
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaunchPlan {
    pub(crate) kind: KernelKind,
    pub(crate) dtype: DType,
    pub(crate) layout: Layout,
    pub(crate) output: Shape4,
    pub(crate) params: BpParams,
    pub(crate) work: Work,
    pub(crate) weight_pack: Option<WeightPack>,
}

/// The launch a forward queues before its kernel when that kernel reads pre-packed weights
/// (the tensor-core v4 ConvBlurPool2d): `symbol` reads the OIHW weights (its first input) and
/// writes [`WeightPack::len`] elements of the plan's dtype into a buffer the forward allocates
/// on the stream, which the kernel then reads in place of the weights (its second input). It
/// takes the plan's parameter block.
///
/// ```
/// use blurpool::cuda::{KernelVersion, Target};
/// use blurpool::{presets::timm, Activation, Conv2dArgs, Conv2dSpec, DType, Layout, PadMode, Shape4};
/// let conv = Conv2dSpec::new(Conv2dArgs {
///     in_channels: 64, out_channels: 64, kernel: (3, 3), padding: (1, 1),
///     bias: true, activation: Activation::Relu, ..Default::default()
/// })?;
/// let op = timm::conv_blur_pool(conv, 3, 2, PadMode::Reflect)?;
/// let plan = op.plan(Shape4::new(8, 64, 56, 56), Target::new(DType::F16, Layout::Nhwc))?;
/// assert_eq!(plan.version(), KernelVersion::V4);
/// let pack = plan.weight_pack().expect("the v4 tensor-core kernel reads packed weights");
/// assert_eq!(pack.symbol(), "bp_pack_tc4_weights_f16_nhwc");
/// // 1 tile of 64 output channels × 4 stages of 16 input channels × 9 taps × 64 × 16
/// assert_eq!(pack.len(), 4 * 9 * 64 * 16);
/// // 28 × 28 outputs: 7 × 7 output tiles (8 × 8 ones would leave 31 % of their rows idle)
/// assert_eq!(plan.symbol(), "bp_convblurpool_tc_k3f3s2t7_v4_f16_nhwc");
/// assert_eq!(plan.shared_bytes(), 64_800); // dynamic shared memory: stages, then the map tile
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightPack {
    kind: KernelKind,
    dtype: DType,
    layout: Layout,
    len: usize,
}

impl WeightPack {
    /// The packing kernel's `extern "C"` symbol.
    pub fn symbol(&self) -> String {
        self.kind.symbol(self.dtype, self.layout)
    }
    /// Elements (of the plan's dtype) of the packed weights.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Never empty (a plan has a pack only for a conv with channels).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Threads per block.
    pub fn block_dim(&self) -> u32 {
        self.kind.block_threads()
    }
    /// Blocks of the grid on a device that keeps `max_blocks` resident.
    pub fn grid_dim(&self, max_blocks: u32) -> u32 {
        Work::Elements(self.len as i64).grid(self.block_dim(), max_blocks)
    }
    pub(crate) fn kind(&self) -> KernelKind {
        self.kind
    }
}

impl LaunchPlan {
    /// The weight packing this forward queues before its kernel, if its kernel reads packed
    /// weights (the tensor-core v4 kernel).
    pub fn weight_pack(&self) -> Option<WeightPack> {
        self.weight_pack
    }
    /// The output shape.
    pub fn output(&self) -> Shape4 {
        self.output
    }
    /// Element type of the tensors.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Layout of the activations.
    pub fn layout(&self) -> Layout {
        self.layout
    }
    /// The generation of the kernel.
    pub fn version(&self) -> KernelVersion {
        self.kind.version()
    }
    /// The kernel's `extern "C"` symbol, e.g. `bp_maxblurpool_k3f3s2_f16_nhwc`.
    pub fn symbol(&self) -> String {
        self.kind.symbol(self.dtype, self.layout)
    }
    /// Threads per block.
    pub fn block_dim(&self) -> u32 {
        self.kind.block_threads()
    }
    /// Bytes of dynamic shared memory the launch gives its blocks (the launch's
    /// `sharedMemBytes`): 0 but for the tensor-core v4 kernel, which keeps its stages and map
    /// tile there (83,232 bytes for a 3-tap blur, 93,312 for 4, at 8 × 8 output tiles; 64,800
    /// and 73,728 at 7 × 7; past the 48 KB default, so the launch layer raises the kernel's
    /// limit).
    pub fn shared_bytes(&self) -> u32 {
        self.kind.dynamic_shared_bytes()
    }
    /// Blocks of the grid on a device that keeps `max_blocks` resident (the kernels' loops
    /// cover any remaining work).
    pub fn grid_dim(&self, max_blocks: u32) -> u32 {
        self.work.grid(self.block_dim(), max_blocks)
    }
    /// False when there is nothing to compute (an empty batch): no launch is made.
    pub fn has_work(&self) -> bool {
        self.work.count() > 0
    }
    /// The kernel's parameter block, byte for byte as the launch passes it (its layout is
    /// `struct BpParams` in kernels/common.cuh).
    pub fn params_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(&self.params)
    }
}

/// A buffer role in a backward pass (the argument names of the C ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Buf {
    /// The forward's input.
    X,
    /// The convolution's weight.
    Weight,
    /// The convolution's bias.
    Bias,
    /// The output gradient.
    Dy,
    /// The input gradient (written).
    Dx,
    /// The weight gradient (written).
    DWeight,
    /// The bias gradient (written).
    DBias,
    /// The f32 workspace (ConvBlurPool2d: the conv map's gradient).
    Workspace,
}

impl Buf {
    /// The buffer's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Buf::X => "x",
            Buf::Weight => "weight",
            Buf::Bias => "bias",
            Buf::Dy => "dy",
            Buf::Dx => "dx",
            Buf::DWeight => "dweight",
            Buf::DBias => "dbias",
            Buf::Workspace => "workspace",
        }
    }
}

/// One kernel launch of a backward pass: its kernel, grid, the buffers it reads (the kernel's
/// four input slots, `None` = unused) and the one it writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackwardStep {
    kind: KernelKind,
    dtype: DType,
    layout: Layout,
    work: Work,
    inputs: [Option<Buf>; 4],
    output: Buf,
}

impl BackwardStep {
    /// The kernel's `extern "C"` symbol.
    pub fn symbol(&self) -> String {
        self.kind.symbol(self.dtype, self.layout)
    }
    /// Threads per block.
    pub fn block_dim(&self) -> u32 {
        self.kind.block_threads()
    }
    /// Blocks of the grid (see [`LaunchPlan::grid_dim`]).
    pub fn grid_dim(&self, max_blocks: u32) -> u32 {
        self.work.grid(self.block_dim(), max_blocks)
    }
    /// False when the step has nothing to do (no launch is made).
    pub fn has_work(&self) -> bool {
        self.work.count() > 0
    }
    /// The buffers in the kernel's four input slots.
    pub fn inputs(&self) -> [Option<Buf>; 4] {
        self.inputs
    }
    /// The buffer it writes.
    pub fn output(&self) -> Buf {
        self.output
    }
    pub(crate) fn kind(&self) -> KernelKind {
        self.kind
    }
}

/// An operator's backward pass: the parameter block (the forward's), the launches in order,
/// and the f32 workspace they need. A pure value, like [`LaunchPlan`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackwardPlan {
    params: BpParams,
    output: Shape4,
    steps: [Option<BackwardStep>; 4],
    workspace_len: usize,
}

impl BackwardPlan {
    /// The forward's output shape (that of dy).
    pub fn output(&self) -> Shape4 {
        self.output
    }
    /// The launches, in order.
    pub fn steps(&self) -> impl Iterator<Item = &BackwardStep> {
        self.steps.iter().flatten()
    }
    /// Elements of f32 workspace the steps need (0: none).
    pub fn workspace_len(&self) -> usize {
        self.workspace_len
    }
    /// The parameter block every step takes, byte for byte.
    pub fn params_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(&self.params)
    }
    pub(crate) fn params(&self) -> &BpParams {
        &self.params
    }
}

// ---------------------------------------------------------------------------------------------
// Parameter blocks and kernel selection, per operator.

fn general(kind: KernelKind, target: Target, (output, params): (Shape4, BpParams)) -> LaunchPlan {
    LaunchPlan {
        kind,
        dtype: target.dtype,
        layout: target.layout,
        output,
        params,
        work: Work::Elements(params.total),
        weight_pack: None,
    }
}

/// The strip kernel of `family` for `params` with square window `window` (1: no max; the conv
/// kernel for depthwise), if `target` allows one and it matches exactly (square filter, equal
/// strides, map coordinates well inside i32); else the general kernel `kind`.
fn strip_or_general(
    family: Family,
    window: (i32, i32),
    kind: KernelKind,
    target: Target,
    (output, params): (Shape4, BpParams),
) -> LaunchPlan {
    let square = window.0 == window.1 && params.fy == params.fx && params.sy == params.sx;
    let small = params.hm.max(params.wm)
        + i64::from(params.fy)
        + i64::from(params.pad_top.max(params.pad_left))
        < 1 << 30;
    let find = |family| {
        Specialisation::find(
            family,
            window.0 as usize,
            params.fy as usize,
            params.sy as usize,
        )
    };
    let strip = (square && small && target.choice.allows(KernelVersion::V2))
        .then(|| {
            wide_strip(family, target, &params)
                .and_then(find)
                .or_else(|| find(family))
        })
        .flatten();
    match strip {
        Some(s) => {
            let strips = (params.ho + STRIP_ROWS - 1) / STRIP_ROWS;
            LaunchPlan {
                kind: KernelKind::Special(s),
                dtype: target.dtype,
                layout: target.layout,
                output,
                params,
                // Threads cover STRIP_ROWS output rows each.
                work: Work::Elements(strip_work(s, target, &params, strips)),
                weight_pack: None,
            }
        }
        None => general(kind, target, (output, params)),
    }
}

/// Elements of a 16-byte vector: the v4 strips' lanes (channels in NHWC, output columns in NCHW).
fn vector_lanes(dtype: DType) -> i64 {
    16 / dtype.size() as i64
}

/// The v4 family standing in for the v2 strip `family` on `target`, if the shape lets it. NHWC:
/// C a multiple of the 16-byte vector's elements, one image's H·W·C below 2^31. NCHW: W a
/// multiple of half of them (every input row starts 8-byte aligned: the kernel reads rows in
/// 16-byte chunks where W allows it, else in 8-byte ones), one plane's H·W below 2^31, at
/// least one group of `lanes` outputs a row, and the blur's padding columns a group fills in at
/// most [`NCHW_MAX_PAD`] on either side (the left padding, and the last output's overhang past
/// the map), the max's or conv's own padding at most W (the kernel's offsets inside an image or
/// plane are i32; kernels/strip.cuh, bp_strip4_fits, which checks the same and the pointers'
/// alignment at launch).
fn wide_strip(family: Family, target: Target, params: &BpParams) -> Option<Family> {
    let lanes = vector_lanes(target.dtype);
    let plane = params.h.saturating_mul(params.w);
    let fits = match target.layout {
        Layout::Nhwc => params.c % lanes == 0 && plane.saturating_mul(params.c) < 1 << 31,
        Layout::Nchw => {
            let pad = NCHW_MAX_PAD;
            let overhang = params.sx as i64 * (params.wo - 1) + params.fx as i64
                - params.pad_left as i64
                - params.wm;
            let own_pad = match family {
                Family::StripDepthwise => params.cpx,
                _ => params.mpx,
            } as i64;
            params.w % (lanes / 2) == 0
                && plane < 1 << 31
                && params.wo >= lanes
                && params.pad_left as i64 <= pad
                && overhang <= pad
                && own_pad <= params.w
        }
    } && target.choice.allows(KernelVersion::V4);
    match family {
        Family::StripPool if fits => Some(Family::StripPoolWide),
        Family::StripDepthwise if fits => Some(Family::StripDepthwiseWide),
        _ => None,
    }
}

/// The most blur-padding columns an NCHW v4 group fills in on either side (kernels/strip.cuh,
/// `BP_STRIP4_MAX_PAD`): the presets pad 1 or 2; wider pads take v2.
const NCHW_MAX_PAD: i64 = 3;

/// Threads the strip kernel `s` needs for `strips` strips per column: one per column and channel
/// (v2; NHWC half types take two channels per thread, so this is an upper bound there; the
/// kernel computes its own count); v4: one per 16-byte channel vector and column (NHWC) or per
/// channel and group of `lanes` columns (NCHW).
fn strip_work(s: Specialisation, target: Target, params: &BpParams, strips: i64) -> i64 {
    let lanes = vector_lanes(target.dtype);
    let per_row = match (s.family, target.layout) {
        (Family::StripPoolWide, Layout::Nhwc) => params.c / lanes * params.wo,
        // 4 channels a lane in every dtype (kernels/conv_forward.cu, bp_strip4_dwconv_map).
        (Family::StripDepthwiseWide, Layout::Nhwc) => params.c / 4 * params.wo,
        (Family::StripPoolWide | Family::StripDepthwiseWide, Layout::Nchw) => {
            params.c * ((params.wo + lanes - 1) / lanes)
        }
        _ => params.c * params.wo,
    };
    params.n * per_row * strips
}

impl MaxPool2d {
    /// The launch [`MaxPool2d::forward`](super::Launch) makes for `input` on `target`, or the
    /// error it would return.
    pub fn plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        Ok(general(KernelKind::MaxPool, target, self.params(input)?))
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
    /// The launch `forward` makes for `input` on `target`, or the error it would return.
    pub fn plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        let p = self.params(input)?;
        Ok(strip_or_general(
            Family::StripPool,
            (1, 1),
            KernelKind::BlurPool,
            target,
            p,
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
    /// The launch `forward` makes for `input` on `target`, or the error it would return.
    pub fn plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        let (kh, kw) = self.max_pool().kernel();
        let p = self.params(input)?;
        Ok(strip_or_general(
            Family::StripPool,
            (kh as i32, kw as i32),
            KernelKind::MaxBlurPool,
            target,
            p,
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

impl ConvBlurPool2d {
    /// The launch `forward` makes for `input` on `target`, or the error it would return:
    /// depthwise strip kernels (v4 where the shape takes 16-byte vectors, else v2), the tensor-core kernel for dense 3×3 convs in half types
    /// (v3), else the general kernel.
    pub fn plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        let (output, params) = self.params(input)?;
        // Depthwise (one filter per channel; the conv is always stride 1 here): strip kernels.
        // (With one channel a conv is both depthwise and dense; the strip kernel wastes less.)
        let depthwise = i64::from(params.groups) == params.c && params.cout == params.c;
        if depthwise {
            let plan = strip_or_general(
                Family::StripDepthwise,
                (params.ckh, params.ckw),
                KernelKind::ConvBlurPool,
                target,
                (output, params),
            );
            if plan.kind != KernelKind::ConvBlurPool {
                return Ok(plan);
            }
        }
        if target.tensor_core_kernels() {
            if let Some(s) = tensor_core_kernel(&params, target) {
                // v4: 64-channel tiles of side 8 or 7 (wgmma: 128-channel tiles) over weights
                // packed by a launch of their own.
                let wide = match s.family {
                    Family::TensorCoreWide => Some(TC4_COUT),
                    Family::TensorCoreWgmma => Some(TCW_COUT),
                    _ => None,
                };
                let (tile, weight_pack) = if let Some(channels) = wide {
                    let pack = WeightPack {
                        kind: KernelKind::PackTc4Weights,
                        dtype: target.dtype,
                        layout: target.layout,
                        len: tc4_packed_len(&params)?,
                    };
                    ((s.tile as i64, channels), Some(pack))
                } else {
                    (TC_TILE, None)
                };
                return Ok(LaunchPlan {
                    kind: KernelKind::Special(s),
                    dtype: target.dtype,
                    layout: target.layout,
                    output,
                    params,
                    work: Work::Blocks(tensor_core_tiles(&params, tile)),
                    weight_pack,
                });
            }
        }
        Ok(general(KernelKind::ConvBlurPool, target, (output, params)))
    }

    fn params(&self, input: Shape4) -> Result<(Shape4, BpParams)> {
        let out = self.output_shape(input)?;
        let z = self.conv_map_shape(input)?;
        let p = BpParams::new(input, out, (z.h, z.w))?
            .with_conv(self.conv(), (1, 1))?
            .with_blur(self.blur())?;
        Ok((out, p))
    }

    /// f32 elements of workspace the backward needs for `input`: the conv map's gradient
    /// (N × Cout × the conv map).
    pub fn backward_workspace_len(&self, input: Shape4) -> Result<usize> {
        self.conv_map_shape(input)?.numel()
    }
}

/// The tensor-core ConvBlurPool2d kernel for `params`, if one computes it: a dense (groups 1)
/// 3×3 conv, a square blur at stride 2 whose size has a specialisation, map coordinates well
/// inside i32; v4 where `target` allows it, else v3.
fn tensor_core_kernel(params: &BpParams, target: Target) -> Option<Specialisation> {
    let conv = params.groups == 1 && params.ckh == 3 && params.ckw == 3;
    let blur = params.fy == params.fx && params.sy == 2 && params.sx == 2;
    let small = params.hm.max(params.wm) + 2 * i64::from(params.fy) + 64 < 1 << 30
        && i64::from(params.pad_top.max(params.pad_left)) < 1 << 20;
    if !(conv && blur && small) {
        return None;
    }
    let side = tc4_tile_side(params);
    let v4_of = |family: Family| {
        Specialisation::all()
            .find(|s| s.family == family && s.filter == params.fy as usize && s.tile == side)
    };
    let v4 = if target.choice.allows(KernelVersion::V4) {
        // wgmma where the device has it and a block's 128 channels are more than half used
        // (at Cout ≤ 64 the mma.sync kernel's 64-channel blocks waste nothing).
        let wgmma = (target.wgmma && params.cout > TC4_COUT)
            .then(|| v4_of(Family::TensorCoreWgmma))
            .flatten();
        wgmma.or_else(|| v4_of(Family::TensorCoreWide))
    } else {
        None
    };
    v4.or_else(|| Specialisation::find(Family::TensorCore, 3, params.fy as usize, 2))
}

/// Elements of the tensor-core v4 kernel's packed weights: ⌈Cout / 64⌉ × ⌈C / 16⌉ stages × 9
/// taps × 64 × 16 (`bp_pack_tc4_weights` in kernels/conv_forward.cu), in checked arithmetic.
fn tc4_packed_len(params: &BpParams) -> Result<usize> {
    let cout_tile = TC4_COUT;
    let stages = (params.c + 15) / 16;
    let tiles = (params.cout + cout_tile - 1) / cout_tile;
    tiles
        .checked_mul(stages)
        .and_then(|v| v.checked_mul(9 * cout_tile * 16))
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| {
            Error::ShapeOverflow(format!(
                "the packed weights of {} output × {} input channels overflow",
                params.cout, params.c
            ))
        })
}

/// Blocks' worth of work of a tensor-core kernel with output tile `(px, ch)`: N × output tiles
/// × channel tiles.
fn tensor_core_tiles(params: &BpParams, (px, ch): (i64, i64)) -> i64 {
    params.n
        * ((params.ho + px - 1) / px)
        * ((params.wo + px - 1) / px)
        * ((params.cout + ch - 1) / ch)
}

impl BlurConv2d {
    /// The launch `forward` makes for `input` on `target`, or the error it would return.
    pub fn plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        Ok(general(KernelKind::BlurConv, target, self.params(input)?))
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

fn step(
    target: Target,
    kind: KernelKind,
    work: Work,
    inputs: [Option<Buf>; 4],
    output: Buf,
) -> Option<BackwardStep> {
    Some(BackwardStep {
        kind,
        dtype: target.dtype,
        layout: target.layout,
        work,
        inputs,
        output,
    })
}

impl Operator {
    /// The launch the operator's `forward` makes for `input` on `target` (which kernel, grid,
    /// parameter block), or the error it would return.
    pub fn plan(&self, input: Shape4, target: Target) -> Result<LaunchPlan> {
        match self {
            Operator::MaxPool(op) => op.plan(input, target),
            Operator::BlurPool(op) => op.plan(input, target),
            Operator::MaxBlurPool(op) => op.plan(input, target),
            Operator::ConvBlurPool(op) => op.plan(input, target),
            Operator::BlurConv(op) => op.plan(input, target),
        }
    }

    /// The launches the operator's backward makes for `input` on `target` (the dtype and
    /// layout; the kernel choice does not apply), or the error it would return.
    pub fn backward_plan(&self, input: Shape4, target: Target) -> Result<BackwardPlan> {
        match self {
            Operator::MaxPool(op) => op.backward_plan(input, target),
            Operator::BlurPool(op) => op.backward_plan(input, target),
            Operator::MaxBlurPool(op) => op.backward_plan(input, target),
            Operator::ConvBlurPool(op) => op.backward_plan(input, target),
            Operator::BlurConv(op) => {
                op.params(input)?; // shape errors first, as for every other operator
                Err(Error::Unsupported(
                    "BlurConv2d backward is not implemented on the GPU yet (the CPU reference \
                     blurpool::reference::grad has it)"
                        .into(),
                ))
            }
        }
    }
}

/// A backward pass of one kernel, one thread per input-gradient element.
fn single_step_backward(
    kind: KernelKind,
    needs_x: bool,
    target: Target,
    (output, p): (Shape4, BpParams),
) -> BackwardPlan {
    use Buf::*;
    BackwardPlan {
        params: p,
        output,
        steps: [
            step(
                target,
                kind,
                Work::Elements(p.total_in),
                [needs_x.then_some(X), None, Some(Dy), None],
                Dx,
            ),
            None,
            None,
            None,
        ],
        workspace_len: 0,
    }
}

impl MaxPool2d {
    /// The backward's launch for `input` on `target` (one gather kernel), or the error it
    /// would return.
    pub fn backward_plan(&self, input: Shape4, target: Target) -> Result<BackwardPlan> {
        let p = self.params(input)?;
        Ok(single_step_backward(
            KernelKind::MaxPoolBackward,
            true,
            target,
            p,
        ))
    }
}

impl BlurPool2d {
    /// The backward's launch for `input` on `target` (one gather kernel; x is not read), or
    /// the error it would return.
    pub fn backward_plan(&self, input: Shape4, target: Target) -> Result<BackwardPlan> {
        let p = self.params(input)?;
        Ok(single_step_backward(
            KernelKind::BlurPoolBackward,
            false,
            target,
            p,
        ))
    }
}

impl MaxBlurPool2d {
    /// The backward's launch for `input` on `target` (one fused gather kernel), or the error
    /// it would return.
    pub fn backward_plan(&self, input: Shape4, target: Target) -> Result<BackwardPlan> {
        let p = self.params(input)?;
        Ok(single_step_backward(
            KernelKind::MaxBlurPoolBackward,
            true,
            target,
            p,
        ))
    }
}

impl ConvBlurPool2d {
    /// The backward's launches for `input` on `target`: the conv map's gradient dz into the
    /// f32 workspace, then dx, dweight and (with a bias) dbias from it; or the error they would
    /// return.
    pub fn backward_plan(&self, input: Shape4, target: Target) -> Result<BackwardPlan> {
        use Buf::*;
        let (output, p) = self.params(input)?;
        let c = self.conv();
        i32::try_from(c.weight_len()).map_err(|_| {
            Error::ShapeOverflow(format!(
                "the weight has {} elements; the backward kernels index it with 32 bits",
                c.weight_len()
            ))
        })?;
        let t = target;
        let bias_step = c.has_bias().then(|| {
            step(
                t,
                KernelKind::ConvDb,
                Work::Blocks(c.bias_len() as i64),
                [None, None, Some(Workspace), None],
                DBias,
            )
        });
        Ok(BackwardPlan {
            params: p,
            output,
            steps: [
                step(
                    t,
                    KernelKind::ConvBlurPoolDz,
                    Work::Elements(p.total_map),
                    [
                        Some(X),
                        Some(Weight),
                        Some(Dy),
                        c.has_bias().then_some(Bias),
                    ],
                    Workspace,
                ),
                step(
                    t,
                    KernelKind::ConvDx,
                    Work::Elements(p.total_in),
                    [None, Some(Weight), Some(Workspace), None],
                    Dx,
                ),
                step(
                    t,
                    KernelKind::ConvDw,
                    Work::Blocks(c.weight_len() as i64),
                    [Some(X), None, Some(Workspace), None],
                    DWeight,
                ),
                bias_step.flatten(),
            ],
            workspace_len: p.total_map as usize,
        })
    }
}
