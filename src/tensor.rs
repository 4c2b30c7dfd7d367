//! Shapes, layouts and element types.

use crate::error::{Error, Result};
use half::{bf16, f16};

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32 (`f32`).
    F32,
    /// IEEE binary16 (`half::f16`).
    F16,
    /// bfloat16 (`half::bf16`).
    BF16,
}

impl DType {
    /// All element types, in a fixed order.
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Short lower-case name used in kernel symbols and tables (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

impl std::str::FromStr for DType {
    type Err = Error;
    /// Accepts `f32`/`float32`/`float`, `f16`/`float16`/`half`, `bf16`/`bfloat16`.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Ok(DType::F32),
            "f16" | "float16" | "half" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            _ => Err(Error::UnknownName {
                what: "dtype",
                got: s.into(),
                expected: "f32, f16, bf16",
            }),
        }
    }
}

/// Memory layout of a logically N×C×H×W tensor. Both are dense and contiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Channels-first (PyTorch's default contiguous format).
    Nchw,
    /// Channels-last (PyTorch's `channels_last`).
    Nhwc,
}

impl Layout {
    /// Both layouts.
    pub const ALL: [Layout; 2] = [Layout::Nchw, Layout::Nhwc];

    /// Lower-case name used in kernel symbols (`nchw`, `nhwc`).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = Error;
    /// Accepts `nchw`/`contiguous` and `nhwc`/`channels_last`.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nchw" | "contiguous" => Ok(Layout::Nchw),
            "nhwc" | "channels_last" => Ok(Layout::Nhwc),
            _ => Err(Error::UnknownName {
                what: "layout",
                got: s.into(),
                expected: "nchw, nhwc",
            }),
        }
    }
}

/// Logical shape N×C×H×W (whatever the storage [`Layout`]).
///
/// ```
/// use blurpool::{Layout, Shape4};
/// let s = Shape4::new(2, 3, 4, 5);
/// assert_eq!(s.numel()?, 120);
/// assert_eq!(s.offset(Layout::Nhwc, 0, 1, 0, 0), 1); // channels are innermost in NHWC
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape4 {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height (rows).
    pub h: usize,
    /// Width (columns).
    pub w: usize,
}

impl Shape4 {
    /// A shape from its four extents.
    pub const fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        Shape4 { n, c, h, w }
    }

    /// Number of elements, or [`Error::ShapeOverflow`] if it does not fit in `usize`.
    pub fn numel(&self) -> Result<usize> {
        self.n
            .checked_mul(self.c)
            .and_then(|v| v.checked_mul(self.h))
            .and_then(|v| v.checked_mul(self.w))
            .ok_or_else(|| {
                Error::ShapeOverflow(format!(
                    "shape {self} has more elements than fit in memory addresses"
                ))
            })
    }

    /// Linear offset of element (n, c, y, x) in the given layout. The coordinates must lie
    /// inside the shape and [`Shape4::numel`] must be `Ok`; then the result cannot overflow.
    #[inline]
    pub fn offset(&self, layout: Layout, n: usize, c: usize, y: usize, x: usize) -> usize {
        match layout {
            Layout::Nchw => ((n * self.c + c) * self.h + y) * self.w + x,
            Layout::Nhwc => ((n * self.h + y) * self.w + x) * self.c + c,
        }
    }

    /// Checks C, H, W ≥ 1 (N may be 0: an empty batch is a no-op), each extent against
    /// [`crate::ops::MAX_EXTENT`] and the element count against [`crate::ops::MAX_ELEMENTS`]
    /// (whatever N is, so an empty batch of impossible images is refused too).
    pub(crate) fn check_input(&self) -> Result<()> {
        for (what, v) in [
            ("channels (C)", self.c),
            ("height (H)", self.h),
            ("width (W)", self.w),
        ] {
            if v == 0 {
                return Err(Error::ZeroDim { what });
            }
        }
        crate::ops::checked_tensor("input", *self).map(|_| ())
    }
}

impl std::fmt::Display for Shape4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}×{}", self.n, self.c, self.h, self.w)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An element type the operators support: `f32`, `half::f16`, `half::bf16`. Sealed; needs no
/// GPU stack (the CPU reference is generic over it too).
pub trait Element:
    sealed::Sealed
    + Copy
    + Default
    + PartialEq
    + std::fmt::Debug
    + bytemuck::Pod
    + Send
    + Sync
    + 'static
{
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Unit roundoff (half the distance from 1 to the next value): 2⁻²⁴, 2⁻¹¹, 2⁻⁸.
    const UNIT_ROUNDOFF: f64;
    /// Widens to f64 exactly.
    fn to_f64(self) -> f64;
    /// Rounds to nearest (even).
    fn from_f64(v: f64) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    const UNIT_ROUNDOFF: f64 = 5.960464477539063e-8;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    const UNIT_ROUNDOFF: f64 = 4.8828125e-4;
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    const UNIT_ROUNDOFF: f64 = 3.90625e-3;
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}
