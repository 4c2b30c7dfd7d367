//! The crate's error type: every bad shape, buffer, padding, stride or configuration is reported
//! as a variant that says what is wrong, never as a panic.

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
    FilterSize {
        /// The number of taps given.
        size: usize,
        /// The largest number allowed.
        max: usize,
    },
    /// A binomial preset outside 1..=7 was requested.
    #[error("binomial filter size {0} is not supported: use 1..=7 (or custom taps)")]
    BinomialSize(usize),
    /// A tap is NaN or infinite.
    #[error("filter tap {index} is not finite ({value})")]
    NonFiniteTap {
        /// Position of the tap.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// Normalisation was asked for but the taps sum to zero.
    #[error("filter taps sum to zero and cannot be normalised (use `Filter::unnormalized`)")]
    ZeroTapSum,
    /// A stride of zero.
    #[error("{axis} stride must be at least 1")]
    ZeroStride {
        /// The axis of the stride.
        axis: Axis,
    },
    /// A pooling or convolution window of zero size.
    #[error("{what} {axis} size must be at least 1")]
    ZeroWindow {
        /// Which window.
        what: &'static str,
        /// The axis of the zero extent.
        axis: Axis,
    },
    /// Max-pool padding larger than half the window (PyTorch's rule).
    #[error("max-pool {axis} padding {pad} must be at most half the window ({kernel}/2)")]
    MaxPoolPadding {
        /// The axis.
        axis: Axis,
        /// The padding given.
        pad: usize,
        /// The window along that axis.
        kernel: usize,
    },
    /// Reflect padding needs pad < the padded map's size.
    #[error(
        "reflect padding {pad} on the {axis} axis needs a map larger than {pad}, but the map \
         being blurred has {axis} {size} (use replicate or zero padding, a smaller filter, or a \
         larger input)"
    )]
    ReflectPadTooLarge {
        /// The axis.
        axis: Axis,
        /// The larger of the two paddings on that axis.
        pad: usize,
        /// The extent of the map being padded.
        size: usize,
    },
    /// A negative padding (e.g. antialiased-cnns' `pad_off` below −⌊(F−1)/2⌋).
    #[error("padding on the {side} side would be {value}; padding must be ≥ 0")]
    NegativePadding {
        /// Which side(s).
        side: &'static str,
        /// The padding it would be.
        value: i64,
    },
    /// The input is too small to produce any output.
    #[error("{what}: input {axis} {size} is too small: {detail}")]
    InputTooSmall {
        /// The operator.
        what: &'static str,
        /// The axis.
        axis: Axis,
        /// The input's extent along it.
        size: usize,
        /// Why.
        detail: String,
    },
    /// Channels, groups or weight shape do not fit together.
    #[error("convolution: {0}")]
    Conv(String),
    /// The input's channel count does not match the operator's.
    #[error("input has {got} channels but the operator was built for {expected}")]
    ChannelMismatch {
        /// The operator's channels.
        expected: usize,
        /// The input's.
        got: usize,
    },
    /// A dimension is zero where it must not be.
    #[error("{what} must be at least 1 (got 0)")]
    ZeroDim {
        /// Which dimension.
        what: &'static str,
    },
    /// A buffer's length does not match the shape.
    #[error("{what} buffer has {got} elements but the shape needs {expected}")]
    BufferLength {
        /// Which buffer.
        what: &'static str,
        /// The elements the shape needs.
        expected: usize,
        /// The elements the buffer has.
        got: usize,
    },
    /// A device buffer whose address is not a multiple of the alignment the kernel reading it
    /// needs (e.g. a view at an odd offset into an allocation).
    #[error("{what} buffer at address {addr:#x} is not {align}-byte aligned")]
    Misaligned {
        /// Which buffer.
        what: &'static str,
        /// Its device address.
        addr: u64,
        /// The alignment it needs, in bytes.
        align: u64,
    },
    /// A tensor with more elements than fit in `usize`, or than the kernels index
    /// ([`crate::ops::MAX_ELEMENTS`]); the message names the tensor.
    #[error("{0}")]
    ShapeOverflow(String),
    /// A configuration value or a computed extent beyond what the kernels index (see
    /// [`crate::ops::MAX_EXTENT`] and [`crate::ops::MAX_ELEMENTS`]).
    #[error("{what} is {value}, more than the largest supported ({max})")]
    TooLarge {
        /// The quantity.
        what: &'static str,
        /// Its value (computed exactly, so it may exceed `usize`).
        value: u128,
        /// The largest allowed.
        max: u128,
    },
    /// A filter weight (after normalisation) that the kernels' f32 arithmetic cannot hold.
    #[error(
        "filter weight {index} is {value} after normalisation, which f32 (the kernels' precision) \
         cannot represent"
    )]
    FilterWeight {
        /// Position of the weight (vertical taps first, then horizontal).
        index: usize,
        /// Its value.
        value: f64,
    },
    /// The CPU reference would need an intermediate larger than its workspace limit.
    #[error(
        "the CPU reference needs a {needed}-byte intermediate map, over its workspace limit of \
         {limit} bytes (raise it with blurpool::reference::set_workspace_limit)"
    )]
    WorkspaceLimit {
        /// Bytes the intermediate needs.
        needed: u128,
        /// The limit in force on this thread.
        limit: usize,
    },
    /// An allocation of the CPU reference failed.
    #[error("the CPU reference could not allocate {bytes} bytes")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: usize,
    },
    /// A string naming a pad mode, activation, layout or dtype was not recognised.
    #[error("unknown {what} {got:?}: expected one of {expected}")]
    UnknownName {
        /// What kind of name.
        what: &'static str,
        /// The string given.
        got: String,
        /// The names accepted.
        expected: &'static str,
    },
    /// A configuration this build or device does not run (e.g. no kernel for it).
    #[error("{0}")]
    Unsupported(String),
    /// No CUDA driver (libcuda) could be loaded on this machine.
    #[error("no CUDA driver found on this machine (libcuda could not be loaded)")]
    NoCudaDriver,
    /// The stream belongs to another context than the kernels were loaded into.
    #[error("the stream belongs to a different CUDA context than these kernels")]
    ContextMismatch,
    /// Loading the kernel module failed.
    #[cfg(feature = "cuda")]
    #[error("loading the blurpool kernels failed ({detail}): {source}")]
    KernelLoad {
        /// What was being loaded.
        detail: String,
        /// The driver's error.
        source: cudarc::driver::DriverError,
    },
    /// Runtime compilation of the kernels with NVRTC failed.
    #[error("NVRTC could not compile the blurpool kernels: {0}")]
    Nvrtc(String),
    /// A CUDA driver call failed.
    #[cfg(feature = "cuda")]
    #[error("CUDA driver error: {0}")]
    Cuda(#[from] cudarc::driver::DriverError),
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`Error::TooLarge`] unless `value ≤ max`; returns the value.
pub(crate) fn at_most(what: &'static str, value: u128, max: usize) -> Result<usize> {
    if value > max as u128 {
        return Err(Error::TooLarge {
            what,
            value,
            max: max as u128,
        });
    }
    Ok(value as usize)
}

/// [`Error::BufferLength`] unless a buffer of `got` elements is the `expected` length.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::BufferLength {
            what,
            expected,
            got,
        });
    }
    Ok(())
}
