//! The crate's error type: every bad shape, buffer, padding, stride, dtype or layout is reported
//! as a variant that says what is wrong, never as a panic.

use crate::tensor::{DType, Layout};

/// Which spatial axis an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Rows (H).
    Height,
    /// Columns (W).
    Width,
}

impl std::fmt::Display for Axis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Axis::Height => "height",
            Axis::Width => "width",
        })
    }
}

/// Everything that can go wrong when building or running an operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filter has no taps or more than [`crate::MAX_TAPS`].
    #[error("filter size {size} is out of range: taps must number 1..={max}")]
    FilterSize { size: usize, max: usize },
    /// A binomial preset outside 1..=7 was requested.
    #[error("binomial filter size {0} is not supported: use 1..=7 (or custom taps)")]
    BinomialSize(usize),
    /// A tap is NaN or infinite.
    #[error("filter tap {index} is not finite ({value})")]
    NonFiniteTap { index: usize, value: f64 },
    /// Normalisation was asked for but the taps sum to zero.
    #[error("filter taps sum to zero and cannot be normalised (use `Filter::unnormalized`)")]
    ZeroTapSum,
    /// A stride of zero.
    #[error("{axis} stride must be at least 1")]
    ZeroStride { axis: Axis },
    /// A pooling or convolution window of zero size.
    #[error("{what} {axis} size must be at least 1")]
    ZeroWindow { what: &'static str, axis: Axis },
    /// Max-pool padding larger than half the window (PyTorch's rule).
    #[error("max-pool {axis} padding {pad} must be at most half the window ({kernel}/2)")]
    MaxPoolPadding {
        axis: Axis,
        pad: usize,
        kernel: usize,
    },
    /// Reflect padding needs pad < the padded map's size.
    #[error(
        "reflect padding {pad} on the {axis} axis needs a map larger than {pad}, but the map \
         being blurred has {axis} {size} (use replicate or zero padding, a smaller filter, or a \
         larger input)"
    )]
    ReflectPadTooLarge { axis: Axis, pad: usize, size: usize },
    /// A negative padding (e.g. antialiased-cnns' `pad_off` below −⌊(F−1)/2⌋).
    #[error("padding on the {side} side would be {value}; padding must be ≥ 0")]
    NegativePadding { side: &'static str, value: i64 },
    /// The input is too small to produce any output.
    #[error("{what}: input {axis} {size} is too small: {detail}")]
    InputTooSmall {
        what: &'static str,
        axis: Axis,
        size: usize,
        detail: String,
    },
    /// Channels, groups or weight shape do not fit together.
    #[error("convolution: {0}")]
    Conv(String),
    /// The input's channel count does not match the operator's.
    #[error("input has {got} channels but the operator was built for {expected}")]
    ChannelMismatch { expected: usize, got: usize },
    /// A dimension is zero where it must not be.
    #[error("{what} must be at least 1 (got 0)")]
    ZeroDim { what: &'static str },
    /// A buffer's length does not match the shape.
    #[error("{what} buffer has {got} elements but the shape needs {expected}")]
    BufferLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// Shapes whose element count overflows.
    #[error("shape {0} has more elements than fit in memory addresses")]
    ShapeOverflow(String),
    /// A string naming a pad mode, activation, layout or dtype was not recognised.
    #[error("unknown {what} {got:?}: expected one of {expected}")]
    UnknownName {
        what: &'static str,
        got: String,
        expected: &'static str,
    },
    /// A buffer's element type differs from the one requested.
    #[error("dtype mismatch: the call says {expected:?} but the buffer holds {got:?}")]
    DTypeMismatch { expected: DType, got: DType },
    /// A layout that the operation does not support.
    #[error("layout {0:?} is not supported here")]
    UnsupportedLayout(Layout),
    /// No CUDA driver (libcuda) could be loaded on this machine.
    #[error("{0}")]
    Unsupported(String),

    #[error("no CUDA driver found on this machine (libcuda could not be loaded)")]
    NoCudaDriver,
    /// The stream belongs to another context than the kernels were loaded into.
    #[error("the stream belongs to a different CUDA context than these kernels")]
    ContextMismatch,
    /// Loading the kernel module failed.
    #[error("loading the blurpool kernels failed ({detail}): {source}")]
    KernelLoad {
        detail: String,
        source: cudarc::driver::DriverError,
    },
    /// Runtime compilation of the kernels with NVRTC failed.
    #[error("NVRTC could not compile the blurpool kernels: {0}")]
    Nvrtc(String),
    /// A CUDA driver call failed.
    #[error("CUDA driver error: {0}")]
    Cuda(#[from] cudarc::driver::DriverError),
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
