//! # blurpool
//!
//! Fused CUDA kernels for anti-aliased downsampling (Zhang, "Making Convolutional Networks
//! Shift-Invariant Again", ICML 2019): dense evaluation → low-pass blur → subsample, in one
//! kernel that reads the input once and writes the output once. What each operator computes
//! (definitions, padding rules, presets, the bytes model) is the contract in the repository's
//! `docs/SPEC.md`.
//!
//! * [`ops`]: the operators ([`MaxBlurPool2d`], [`BlurPool2d`], [`ConvBlurPool2d`],
//!   [`BlurConv2d`], dense [`MaxPool2d`]) and their validated configurations.
//! * [`presets`]: antialiased-cnns, kornia, timm and composer geometry, so ported models get
//!   their library's numbers.
//! * [`reference`](mod@reference): the CPU reference (f64 accumulation), forward and gradients, the oracle of
//!   every kernel; it needs no GPU stack (build with `default-features = false` for a crate
//!   without cudarc).
//! * `cuda` (feature `cuda`, default): the launch layer over cudarc (your stream, your
//!   buffers; no allocation per call, except the dense tensor-core v4 conv's packed weights,
//!   a stream-ordered scratch buffer it allocates and frees on your stream, unless you pack
//!   them once yourself: `ConvBlurPool2d::pack_weights` and `forward_packed`).
//!
//! ```
//! use blurpool::{presets, PadMode, Shape4, Layout};
//! // antialiased-cnns' VGG/ResNet pattern: MaxPool2d(2, stride=1) → BlurPool(filt_size=4, stride=2)
//! let op = presets::antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0)?;
//! let input = Shape4::new(1, 1, 4, 4);
//! let out = op.output_shape(input)?;
//! assert_eq!(out, Shape4::new(1, 1, 2, 2));
//! let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
//! let mut y = vec![0f32; out.numel()?];
//! blurpool::reference::max_blur_pool(&op, input, Layout::Nchw, &x, &mut y)?;
//! # Ok::<(), blurpool::Error>(())
//! ```
#![deny(missing_docs)]

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod error;
pub mod ops;
pub mod presets;
pub mod reference;
pub mod tensor;

pub use error::{Axis, Error, Result};
pub use ops::{
    Activation, Blur, BlurConv2d, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, Filter,
    MaxBlurPool2d, MaxPool2d, Operator, Pad2d, PadMode, MAX_TAPS,
};
pub use tensor::{DType, Element, Layout, Shape4};

// The README's Rust examples compile as doctests (so the README cannot drift from the API).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
