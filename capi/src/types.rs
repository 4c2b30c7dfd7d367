//! The C-visible types: status codes, enums (passed as `int32_t`), the operator descriptor.

#![allow(non_camel_case_types)]

use std::ffi::c_void;

/// Version of the C ABI (the descriptor's layout and the functions' signatures). Compare it
/// with `blurpool_abi_version()` when loading the library dynamically.
pub const BLURPOOL_ABI_VERSION: u32 = 2;

/// Largest number of filter taps per axis (equals the Rust crate's `MAX_TAPS`).
pub const BLURPOOL_MAX_TAPS: usize = 16;

const _: () = assert!(BLURPOOL_MAX_TAPS == blurpool_core::MAX_TAPS);

/// A device address (`CUdeviceptr`, or a `cudaMalloc`/PyTorch `data_ptr()` cast to an integer).
pub type blurpool_deviceptr = u64;

/// A CUDA stream (`CUstream` / `cudaStream_t`, e.g. PyTorch's
/// `torch.cuda.current_stream().cuda_stream`). NULL is the legacy default stream.
pub type blurpool_stream = *mut c_void;

/// What every function returns. `blurpool_last_error()` has the details of the last failure.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum blurpool_status {
    /// Success.
    BLURPOOL_STATUS_OK = 0,
    /// A null pointer where one is required, an out-of-range enum value, a bad operator
    /// configuration, or a shape that gives no output (e.g. reflect padding on a too-small map).
    BLURPOOL_STATUS_INVALID_ARGUMENT = 1,
    /// A data buffer is missing, misaligned, overlapping the output, or of the wrong length.
    BLURPOOL_STATUS_BUFFER = 2,
    /// No CUDA driver (libcuda) could be loaded on this machine.
    BLURPOOL_STATUS_NO_DRIVER = 3,
    /// The driver is there but the device ordinal names no device.
    BLURPOOL_STATUS_NO_DEVICE = 4,
    /// A CUDA driver call failed (the message has the driver's error).
    BLURPOOL_STATUS_CUDA = 5,
    /// The kernels had to be compiled at run time and NVRTC failed or is missing.
    BLURPOOL_STATUS_NVRTC = 6,
    /// The kernel module could not be loaded (e.g. a fatbin built for other GPUs).
    BLURPOOL_STATUS_KERNEL_LOAD = 7,
    /// The stream belongs to another CUDA context than the device's primary context.
    BLURPOOL_STATUS_CONTEXT_MISMATCH = 8,
    /// A bug in blurpool (a caught panic); please report the message.
    BLURPOOL_STATUS_INTERNAL = 9,
}

/// Which operator a descriptor describes (docs/SPEC.md). 0 is deliberately not an operator, so a
/// zero-filled descriptor is rejected.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum blurpool_op_kind {
    /// Dense max pooling, stride 1 (`max_*` fields).
    BLURPOOL_OP_MAX_POOL = 1,
    /// Blur + subsample (filter, `pad_*`, `stride_*` fields).
    BLURPOOL_OP_BLUR_POOL = 2,
    /// Dense max, then blur + subsample, fused (`max_*` and blur fields).
    BLURPOOL_OP_MAX_BLUR_POOL = 3,
    /// Conv (stride 1) + bias + activation, then blur + subsample, fused (`conv_*` except
    /// `conv_stride_*`, and blur fields).
    BLURPOOL_OP_CONV_BLUR_POOL = 4,
    /// Blur at stride 1, then strided conv + bias + activation, fused (`conv_*` fields incl.
    /// `conv_stride_*`, and blur fields with `stride_y = stride_x = 1`).
    BLURPOOL_OP_BLUR_CONV = 5,
}

/// Element type of every buffer of one call.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum blurpool_dtype {
    /// `float`.
    BLURPOOL_DTYPE_F32 = 0,
    /// IEEE half (raw `uint16_t` bits on the host).
    BLURPOOL_DTYPE_F16 = 1,
    /// bfloat16 (raw `uint16_t` bits on the host).
    BLURPOOL_DTYPE_BF16 = 2,
}

/// Memory layout of the input and output (weights are always Cout×(Cin/groups)×kh×kw).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum blurpool_layout {
    /// Contiguous N×C×H×W (PyTorch's default).
    BLURPOOL_LAYOUT_NCHW = 0,
    /// Contiguous N×H×W×C (PyTorch's `channels_last`).
    BLURPOOL_LAYOUT_NHWC = 1,
}

/// How the blur reads outside the map it filters.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum blurpool_pad_mode {
    /// Zeros (kornia, composer, timm 'constant', antialiased-cnns 'zero').
    BLURPOOL_PAD_ZERO = 0,
    /// Mirror without repeating the edge (PyTorch ReflectionPad2d; each pad < the map's size).
    BLURPOOL_PAD_REFLECT = 1,
    /// Clamp to the edge (PyTorch ReplicationPad2d).
    BLURPOOL_PAD_REPLICATE = 2,
}

/// Activation after a convolution.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum blurpool_activation {
    BLURPOOL_ACT_IDENTITY = 0,
    BLURPOOL_ACT_RELU = 1,
    BLURPOOL_ACT_RELU6 = 2,
}

/// A complete operator configuration: plain data, no pointers, no ownership. Fill it with a
/// `blurpool_preset_*` function (the libraries' geometry) or with `blurpool_desc_init` and then
/// by hand. Fields that the operator does not use are ignored. Every count is checked when the
/// descriptor is used: negative or out-of-range values give `BLURPOOL_STATUS_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct blurpool_op_desc {
    /// `sizeof(blurpool_op_desc)` as the caller compiled it (set by the preset and init
    /// functions); a mismatch means the caller's header and the library disagree.
    pub struct_size: u32,
    /// A `blurpool_op_kind`.
    pub op: i32,
    /// Vertical filter taps (the first `taps_y_len` are used).
    pub taps_y: [f64; BLURPOOL_MAX_TAPS],
    /// Horizontal filter taps (the first `taps_x_len` are used).
    pub taps_x: [f64; BLURPOOL_MAX_TAPS],
    /// Number of vertical taps, 1..=BLURPOOL_MAX_TAPS.
    pub taps_y_len: i32,
    /// Number of horizontal taps, 1..=BLURPOOL_MAX_TAPS.
    pub taps_x_len: i32,
    /// Nonzero: divide the taps by their sums (the usual blur). Zero: use them as given.
    pub normalize: i32,
    /// A `blurpool_pad_mode` for the blur.
    pub pad_mode: i32,
    /// Blur padding of the map it filters, per side (each ≥ 0).
    pub pad_top: i32,
    pub pad_bottom: i32,
    pub pad_left: i32,
    pub pad_right: i32,
    /// Blur (subsampling) strides, ≥ 1 (1 for BLURPOOL_OP_BLUR_CONV).
    pub stride_y: i32,
    pub stride_x: i32,
    /// Dense max window (≥ 1) and −∞ padding (≤ window/2).
    pub max_kernel_y: i32,
    pub max_kernel_x: i32,
    pub max_pad_y: i32,
    pub max_pad_x: i32,
    /// Convolution: channels, kernel, zero padding, groups.
    pub conv_in_channels: i32,
    pub conv_out_channels: i32,
    pub conv_kernel_y: i32,
    pub conv_kernel_x: i32,
    pub conv_pad_y: i32,
    pub conv_pad_x: i32,
    pub conv_groups: i32,
    /// Nonzero: the call passes a bias of `conv_out_channels` elements.
    pub conv_has_bias: i32,
    /// A `blurpool_activation`.
    pub conv_activation: i32,
    /// Convolution strides (BLURPOOL_OP_BLUR_CONV only), ≥ 1.
    pub conv_stride_y: i32,
    pub conv_stride_x: i32,
}

impl blurpool_op_desc {
    /// All zeros except `struct_size`: not yet a valid operator (op 0).
    pub(crate) fn zeroed() -> Self {
        blurpool_op_desc {
            struct_size: std::mem::size_of::<blurpool_op_desc>() as u32,
            op: 0,
            taps_y: [0.0; BLURPOOL_MAX_TAPS],
            taps_x: [0.0; BLURPOOL_MAX_TAPS],
            taps_y_len: 0,
            taps_x_len: 0,
            normalize: 0,
            pad_mode: 0,
            pad_top: 0,
            pad_bottom: 0,
            pad_left: 0,
            pad_right: 0,
            stride_y: 0,
            stride_x: 0,
            max_kernel_y: 0,
            max_kernel_x: 0,
            max_pad_y: 0,
            max_pad_x: 0,
            conv_in_channels: 0,
            conv_out_channels: 0,
            conv_kernel_y: 0,
            conv_kernel_x: 0,
            conv_pad_y: 0,
            conv_pad_x: 0,
            conv_groups: 0,
            conv_has_bias: 0,
            conv_activation: 0,
            conv_stride_y: 0,
            conv_stride_x: 0,
        }
    }
}
