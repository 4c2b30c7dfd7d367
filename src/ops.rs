//! Operator configurations: what each operator computes ([docs/SPEC.md](../docs/SPEC.md)),
//! validated when built.
//!
//! Every constructor checks what it can without an input shape; `output_shape` checks the rest
//! (reflect padding against the map it pads, inputs too small to give an output, channel
//! counts). Both return [`Error`] variants that say what is wrong.

use crate::error::{at_most, Axis, Error, Result};
use crate::tensor::Shape4;

/// Largest number of taps per axis of a blur filter (binomial presets use at most 7).
pub const MAX_TAPS: usize = 16;

/// Largest spatial extent, channel count, window, kernel, stride, padding and group count
/// (2³¹ − 1): the kernels index them with 32-bit integers. Configurations are checked against
/// it when they are built, shapes when an output shape is asked for (docs/SPEC.md, §1).
pub const MAX_EXTENT: usize = i32::MAX as usize;

/// Largest number of elements of any tensor (input, output, intermediate map, weight):
/// 2⁵³ − 1, where the kernels' index split (a double-precision reciprocal) is exact.
pub const MAX_ELEMENTS: usize = (1 << 53) - 1;

/// A configuration value, checked against [`MAX_EXTENT`].
fn extent(what: &'static str, v: usize) -> Result<usize> {
    at_most(what, v as u128, MAX_EXTENT)
}

/// `shape` after checking each extent (but N) against [`MAX_EXTENT`] and the element count
/// against [`MAX_ELEMENTS`], exactly (in 128 bits).
pub(crate) fn checked_tensor(what: &'static str, shape: Shape4) -> Result<Shape4> {
    extent(what_channels(what), shape.c)?;
    extent(what_height(what), shape.h)?;
    extent(what_width(what), shape.w)?;
    let numel = shape.n as u128 * shape.c as u128 * shape.h as u128 * shape.w as u128;
    if numel > MAX_ELEMENTS as u128 {
        return Err(Error::ShapeOverflow(format!(
            "{} ({shape}) is {numel}, more than the kernels index ({MAX_ELEMENTS})",
            what_elements(what)
        )));
    }
    Ok(shape)
}

macro_rules! tensor_names {
    ($($name:ident => $suffix:literal),*) => {$(
        fn $name(what: &'static str) -> &'static str {
            match what {
                "input" => concat!("the input's ", $suffix),
                "output" => concat!("the output's ", $suffix),
                "max map" => concat!("the max map's ", $suffix),
                "conv map" => concat!("the conv map's ", $suffix),
                "blurred map" => concat!("the blurred map's ", $suffix),
                _ => concat!("a tensor's ", $suffix),
            }
        }
    )*};
}
tensor_names!(what_channels => "channels", what_height => "height", what_width => "width", what_elements => "element count");

/// Integer taps of the binomial filters 1..=7 (row F−1 of Pascal's triangle).
const BINOMIAL: [&[f64]; 7] = [
    &[1.0],
    &[1.0, 1.0],
    &[1.0, 2.0, 1.0],
    &[1.0, 3.0, 3.0, 1.0],
    &[1.0, 4.0, 6.0, 4.0, 1.0],
    &[1.0, 5.0, 10.0, 10.0, 5.0, 1.0],
    &[1.0, 6.0, 15.0, 20.0, 15.0, 6.0, 1.0],
];

/// A separable low-pass filter: vertical taps `a_y` and horizontal taps `a_x`, applied as the
/// cross-correlation with `a_y ⊗ a_x`, normalised by `(Σa_y)(Σa_x)` unless built unnormalised.
///
/// ```
/// use blurpool::Filter;
/// let f = Filter::binomial(3)?;
/// assert_eq!(f.weights_y(), &[0.25, 0.5, 0.25]);
/// let composer = Filter::unnormalized(&[1.0, 2.0, 1.0], &[1.0])?; // used as given
/// assert_eq!(composer.weights_y(), &[1.0, 2.0, 1.0]);
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    taps_y: Vec<f64>,
    taps_x: Vec<f64>,
    normalize: bool,
    // The effective weights (taps / their sum when normalised), computed once: plans read
    // them on every launch.
    weights_y: Vec<f64>,
    weights_x: Vec<f64>,
}

impl Filter {
    /// The binomial filter of size 1..=7 on both axes (`[1]`, `[1,1]`, `[1,2,1]`, …), normalised.
    pub fn binomial(size: usize) -> Result<Filter> {
        if !(1..=BINOMIAL.len()).contains(&size) {
            return Err(Error::BinomialSize(size));
        }
        Filter::separable(BINOMIAL[size - 1], BINOMIAL[size - 1])
    }

    /// Custom taps, the same on both axes, normalised.
    pub fn symmetric(taps: &[f64]) -> Result<Filter> {
        Filter::separable(taps, taps)
    }

    /// Custom vertical and horizontal taps (sizes may differ), normalised. Any finite taps
    /// whose sum is not zero, however large (the sum is taken after scaling by the largest
    /// magnitude, so it cannot overflow), as long as the normalised weights fit in f32.
    pub fn separable(taps_y: &[f64], taps_x: &[f64]) -> Result<Filter> {
        Filter::with_weights(taps_y, taps_x, true)
    }

    /// Custom taps used exactly as given (composer's convention), no normalisation; they must
    /// fit in f32 (the kernels' precision).
    pub fn unnormalized(taps_y: &[f64], taps_x: &[f64]) -> Result<Filter> {
        Filter::with_weights(taps_y, taps_x, false)
    }

    /// Number of vertical taps (Fy).
    pub fn size_y(&self) -> usize {
        self.taps_y.len()
    }

    /// Number of horizontal taps (Fx).
    pub fn size_x(&self) -> usize {
        self.taps_x.len()
    }

    /// Whether the taps are divided by their sum.
    pub fn is_normalized(&self) -> bool {
        self.normalize
    }

    /// The effective vertical weights (normalised if the filter is).
    pub fn weights_y(&self) -> &[f64] {
        &self.weights_y
    }

    /// The effective horizontal weights (normalised if the filter is).
    pub fn weights_x(&self) -> &[f64] {
        &self.weights_x
    }

    /// The taps as given (before normalisation), vertical then horizontal.
    pub fn taps(&self) -> (&[f64], &[f64]) {
        (&self.taps_y, &self.taps_x)
    }

    fn with_weights(taps_y: &[f64], taps_x: &[f64], normalize: bool) -> Result<Filter> {
        let mut weights = [Vec::new(), Vec::new()];
        for (axis, taps) in [taps_y, taps_x].into_iter().enumerate() {
            check_taps(taps)?;
            weights[axis] = if normalize {
                // Scaled by the largest magnitude first: the sum of at most MAX_TAPS values in
                // [-1, 1] cannot overflow, so [1e308, 1e308] normalises to [0.5, 0.5].
                let scale = taps.iter().fold(0f64, |m, t| m.max(t.abs()));
                let sum: f64 = taps.iter().map(|t| t / scale).sum();
                if scale == 0.0 || sum == 0.0 {
                    return Err(Error::ZeroTapSum);
                }
                taps.iter().map(|t| (t / scale) / sum).collect()
            } else {
                taps.to_vec()
            };
        }
        let [weights_y, weights_x] = weights;
        let offset = weights_y.len();
        // Weights the kernels' f32 cannot hold (also catches NaN, which cannot occur here).
        let fits = |w: f64| w.is_finite() && w.abs() <= f32::MAX as f64;
        let all = weights_y.iter().chain(&weights_x).enumerate();
        if let Some((i, &w)) = all.clone().find(|(_, &w)| !fits(w)) {
            let index = if i < offset { i } else { i - offset };
            return Err(Error::FilterWeight { index, value: w });
        }
        Ok(Filter {
            taps_y: taps_y.to_vec(),
            taps_x: taps_x.to_vec(),
            normalize,
            weights_y,
            weights_x,
        })
    }
}

fn check_taps(taps: &[f64]) -> Result<()> {
    if taps.is_empty() || taps.len() > MAX_TAPS {
        return Err(Error::FilterSize {
            size: taps.len(),
            max: MAX_TAPS,
        });
    }
    if let Some((index, &value)) = taps.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFiniteTap { index, value });
    }
    Ok(())
}

/// How the blur reads outside the map it filters. The discriminants are the numbers the
/// kernels and the C ABI (`blurpool_pad_mode`) use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum PadMode {
    /// Zeros (PyTorch `ZeroPad2d`, `F.pad(mode='constant')`, conv2d's own padding).
    Zero = 0,
    /// Mirror without repeating the edge (PyTorch `ReflectionPad2d`): −1 → 1, H → H−2.
    Reflect = 1,
    /// Clamp to the edge (PyTorch `ReplicationPad2d`).
    Replicate = 2,
}

impl PadMode {
    /// All modes.
    pub const ALL: [PadMode; 3] = [PadMode::Reflect, PadMode::Replicate, PadMode::Zero];

    /// The mode's number (`BP_PAD_*` in kernels/common.cuh, `blurpool_pad_mode` in C).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The mode with number `code`, if there is one.
    pub fn from_code(code: i32) -> Option<PadMode> {
        PadMode::ALL.into_iter().find(|m| m.code() == code)
    }

    /// Maps a padded coordinate `i` (may be negative or ≥ `n`) into `0..n`, or `None` for a
    /// zero-padded cell (and always for an empty axis, `n` = 0). Reflect mirrors once, so for
    /// |overhang| ≥ n it gives `None` too (configs refuse reflect padding ≥ the map).
    #[inline]
    pub fn source_index(self, i: i64, n: usize) -> Option<usize> {
        // (No extent reaches 2^63; one that did is treated as i64::MAX long.)
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if n == 0 {
            return None;
        }
        if (0..n).contains(&i) {
            return Some(i as usize);
        }
        match self {
            PadMode::Zero => None,
            PadMode::Replicate => Some(i.clamp(0, n - 1) as usize),
            PadMode::Reflect => {
                let r = if i < 0 {
                    i.checked_neg()?
                } else {
                    (n - 1).checked_mul(2)?.checked_sub(i)?
                };
                (0..n).contains(&r).then_some(r as usize)
            }
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PadMode::Reflect => "reflect",
            PadMode::Replicate => "replicate",
            PadMode::Zero => "zero",
        }
    }
}

impl std::str::FromStr for PadMode {
    type Err = Error;
    /// Accepts the spellings of the libraries: `reflect`/`refl`, `replicate`/`repl`,
    /// `zero`/`zeros`/`constant`.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "reflect" | "refl" | "reflection" => Ok(PadMode::Reflect),
            "replicate" | "repl" | "replication" | "edge" => Ok(PadMode::Replicate),
            "zero" | "zeros" | "constant" => Ok(PadMode::Zero),
            _ => Err(Error::UnknownName {
                what: "pad mode",
                got: s.into(),
                expected: "reflect, replicate, zero (or constant)",
            }),
        }
    }
}

/// Explicit padding per side, by name:
/// `Pad2d { top: 1, bottom: 2, left: 1, right: 2 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pad2d {
    /// Rows before the first.
    pub top: usize,
    /// Rows after the last.
    pub bottom: usize,
    /// Columns before the first.
    pub left: usize,
    /// Columns after the last.
    pub right: usize,
}

impl Pad2d {
    /// The same padding on all four sides.
    pub const fn uniform(p: usize) -> Self {
        Pad2d {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }

    /// `before` on top and left, `after` on bottom and right.
    pub const fn before_after(before: usize, after: usize) -> Self {
        Pad2d {
            top: before,
            bottom: after,
            left: before,
            right: after,
        }
    }
}

/// The blur-and-subsample stage shared by every operator: filter, padding of the map it reads,
/// and strides.
///
/// ```
/// use blurpool::{Blur, Filter, Pad2d, PadMode};
/// // timm's BlurPool2d(filt_size=3, stride=2): [1,2,1] taps, 1 pixel of reflect padding.
/// let blur = Blur::new(Filter::binomial(3)?, (2, 2), Pad2d::uniform(1), PadMode::Reflect)?;
/// assert_eq!(blur.stride(), (2, 2));
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Blur {
    filter: Filter,
    pad: Pad2d,
    mode: PadMode,
    stride_y: usize,
    stride_x: usize,
}

impl Blur {
    /// A blur with the given filter, strides (sy, sx), padding and pad mode (strides and
    /// paddings at most [`MAX_EXTENT`]).
    pub fn new(filter: Filter, stride: (usize, usize), pad: Pad2d, mode: PadMode) -> Result<Blur> {
        if stride.0 == 0 {
            return Err(Error::ZeroStride { axis: Axis::Height });
        }
        if stride.1 == 0 {
            return Err(Error::ZeroStride { axis: Axis::Width });
        }
        extent("the blur's vertical stride", stride.0)?;
        extent("the blur's horizontal stride", stride.1)?;
        extent("the blur's top padding", pad.top)?;
        extent("the blur's bottom padding", pad.bottom)?;
        extent("the blur's left padding", pad.left)?;
        extent("the blur's right padding", pad.right)?;
        Ok(Blur {
            filter,
            pad,
            mode,
            stride_y: stride.0,
            stride_x: stride.1,
        })
    }

    /// The filter.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }
    /// The padding of the map the blur reads.
    pub fn pad(&self) -> Pad2d {
        self.pad
    }
    /// How the padding is filled.
    pub fn mode(&self) -> PadMode {
        self.mode
    }
    /// (sy, sx).
    pub fn stride(&self) -> (usize, usize) {
        (self.stride_y, self.stride_x)
    }

    /// Output extent along one axis for a map of extent `len`, with every check that applies.
    pub(crate) fn output_len(&self, what: &'static str, axis: Axis, len: usize) -> Result<usize> {
        let (before, after, taps, stride) = match axis {
            Axis::Height => (
                self.pad.top,
                self.pad.bottom,
                self.filter.size_y(),
                self.stride_y,
            ),
            Axis::Width => (
                self.pad.left,
                self.pad.right,
                self.filter.size_x(),
                self.stride_x,
            ),
        };
        if self.mode == PadMode::Reflect && before.max(after) >= len {
            return Err(Error::ReflectPadTooLarge {
                axis,
                pad: before.max(after),
                size: len,
            });
        }
        // Each term is at most MAX_EXTENT (checked when built / for the shape): exact in u128.
        // The padded extent itself must fit in 32 bits: the backward kernels walk padded
        // coordinates in int (pool_backward.cu / common.cuh, bp_adjoint_run).
        let padded = len as u128 + before as u128 + after as u128;
        at_most(
            match axis {
                Axis::Height => "the blur's padded map height",
                Axis::Width => "the blur's padded map width",
            },
            padded,
            MAX_EXTENT,
        )?;
        if padded < taps as u128 {
            return Err(Error::InputTooSmall {
                what,
                axis,
                size: len,
                detail: format!(
                    "padded to {padded} it is shorter than the {taps}-tap filter, so there is no output"
                ),
            });
        }
        let out = (padded - taps as u128) / stride as u128 + 1;
        at_most(
            match axis {
                Axis::Height => "the output's height",
                Axis::Width => "the output's width",
            },
            out,
            MAX_EXTENT,
        )
    }

    /// Output (H, W) for a map of (h, w).
    pub(crate) fn output_hw(
        &self,
        what: &'static str,
        h: usize,
        w: usize,
    ) -> Result<(usize, usize)> {
        Ok((
            self.output_len(what, Axis::Height, h)?,
            self.output_len(what, Axis::Width, w)?,
        ))
    }
}

/// BlurPool2d: blur + subsample of the input.
///
/// ```
/// use blurpool::{presets, Shape4};
/// let op = presets::timm::blur_pool2d(3, 2, blurpool::PadMode::Reflect)?;
/// assert_eq!(op.output_shape(Shape4::new(1, 8, 9, 9))?, Shape4::new(1, 8, 5, 5));
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BlurPool2d {
    blur: Blur,
}

impl BlurPool2d {
    /// Blur-pool with the given blur stage.
    pub fn new(blur: Blur) -> Self {
        BlurPool2d { blur }
    }
    /// The blur stage.
    pub fn blur(&self) -> &Blur {
        &self.blur
    }
    /// Output shape for `input`, or the reason there is none.
    pub fn output_shape(&self, input: Shape4) -> Result<Shape4> {
        input.check_input()?;
        let (h, w) = self.blur.output_hw("BlurPool2d", input.h, input.w)?;
        checked_tensor("output", Shape4::new(input.n, input.c, h, w))
    }
}

/// Dense (stride 1) max pooling with a kh×kw window and −∞ padding.
///
/// ```
/// use blurpool::{MaxPool2d, Shape4};
/// let max = MaxPool2d::new((3, 3), (1, 1))?; // kernel (kh, kw), padding (py, px)
/// assert_eq!(max.output_shape(Shape4::new(1, 1, 8, 8))?, Shape4::new(1, 1, 8, 8));
/// assert!(MaxPool2d::new((2, 2), (2, 2)).is_err()); // padding > window / 2
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPool2d {
    kernel: (usize, usize),
    padding: (usize, usize),
}

impl MaxPool2d {
    /// Window (kh, kw) and padding (py, px); PyTorch's rule: padding ≤ window/2 (so the two
    /// arguments swapped are always refused).
    pub fn new(kernel: (usize, usize), padding: (usize, usize)) -> Result<MaxPool2d> {
        for (axis, k, p) in [
            (Axis::Height, kernel.0, padding.0),
            (Axis::Width, kernel.1, padding.1),
        ] {
            if k == 0 {
                return Err(Error::ZeroWindow {
                    what: "max-pool window",
                    axis,
                });
            }
            extent("the max-pool window", k)?;
            if p > k / 2 {
                return Err(Error::MaxPoolPadding {
                    axis,
                    pad: p,
                    kernel: k,
                });
            }
        }
        Ok(MaxPool2d { kernel, padding })
    }
    /// (kh, kw).
    pub fn kernel(&self) -> (usize, usize) {
        self.kernel
    }
    /// (py, px).
    pub fn padding(&self) -> (usize, usize) {
        self.padding
    }

    fn map_len(&self, axis: Axis, len: usize) -> Result<usize> {
        let (k, p) = match axis {
            Axis::Height => (self.kernel.0, self.padding.0),
            Axis::Width => (self.kernel.1, self.padding.1),
        };
        let padded = len as u128 + 2 * p as u128;
        at_most("the max pool's padded input", padded, MAX_EXTENT)?;
        if padded < k as u128 {
            return Err(Error::InputTooSmall {
                what: "MaxPool2d",
                axis,
                size: len,
                detail: format!("with padding {p} it is smaller than the window {k}"),
            });
        }
        Ok((padded - k as u128 + 1) as usize) // ≤ len + 1 (p ≤ k/2)
    }

    /// Output shape (stride 1): H + 2p − kh + 1.
    pub fn output_shape(&self, input: Shape4) -> Result<Shape4> {
        input.check_input()?;
        let out = Shape4::new(
            input.n,
            input.c,
            self.map_len(Axis::Height, input.h)?,
            self.map_len(Axis::Width, input.w)?,
        );
        checked_tensor("max map", out)
    }
}

/// MaxBlurPool2d = BlurPool2d ∘ MaxPool2d(stride 1); the blur pads the max map.
///
/// ```
/// use blurpool::{presets::antialiased_cnns, PadMode, Shape4};
/// // antialiased-cnns: MaxPool2d(2, stride=1) → BlurPool(filt_size=4, stride=2)
/// let op = antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0)?;
/// assert_eq!(op.max_map_shape(Shape4::new(1, 3, 8, 8))?, Shape4::new(1, 3, 7, 7));
/// assert_eq!(op.output_shape(Shape4::new(1, 3, 8, 8))?, Shape4::new(1, 3, 4, 4));
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MaxBlurPool2d {
    max: MaxPool2d,
    blur: Blur,
}

impl MaxBlurPool2d {
    /// Dense max followed by the blur stage.
    pub fn new(max: MaxPool2d, blur: Blur) -> Self {
        MaxBlurPool2d { max, blur }
    }
    /// The dense max.
    pub fn max_pool(&self) -> &MaxPool2d {
        &self.max
    }
    /// The blur stage (it pads the max map).
    pub fn blur(&self) -> &Blur {
        &self.blur
    }
    /// Shape of the max map (never materialised by the fused kernel).
    pub fn max_map_shape(&self, input: Shape4) -> Result<Shape4> {
        self.max.output_shape(input)
    }
    /// Output shape for `input`, or the reason there is none.
    pub fn output_shape(&self, input: Shape4) -> Result<Shape4> {
        let m = self.max.output_shape(input)?;
        let (h, w) = self.blur.output_hw("MaxBlurPool2d", m.h, m.w)?;
        checked_tensor("output", Shape4::new(m.n, m.c, h, w))
    }
}

/// Pointwise activation after a convolution. The discriminants are the numbers the kernels and
/// the C ABI (`blurpool_activation`) use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(i32)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity = 0,
    /// max(0, v).
    Relu = 1,
    /// min(max(0, v), 6).
    Relu6 = 2,
}

impl Activation {
    /// All activations.
    pub const ALL: [Activation; 3] = [Activation::Identity, Activation::Relu, Activation::Relu6];

    /// The activation's number (`BP_ACT_*` in kernels/common.cuh, `blurpool_activation` in C).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The activation with number `code`, if there is one.
    pub fn from_code(code: i32) -> Option<Activation> {
        Activation::ALL.into_iter().find(|a| a.code() == code)
    }

    /// Applies the activation (NaN passes through, as in PyTorch).
    #[inline]
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Activation::Identity => v,
            Activation::Relu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            // Written as the same comparisons as `bp_activate` in kernels/common.cuh rather than
            // `clamp`, so the reference and the kernel visibly agree on NaN (it passes through).
            #[allow(clippy::manual_clamp)]
            Activation::Relu6 => {
                if v < 0.0 {
                    0.0
                } else if v > 6.0 {
                    6.0
                } else {
                    v
                }
            }
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = Error;
    /// Accepts `identity`/`none`/`linear`, `relu`, `relu6`.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "identity" | "none" | "linear" => Ok(Activation::Identity),
            "relu" => Ok(Activation::Relu),
            "relu6" => Ok(Activation::Relu6),
            _ => Err(Error::UnknownName {
                what: "activation",
                got: s.into(),
                expected: "identity, relu, relu6",
            }),
        }
    }
}

/// The arguments of [`Conv2dSpec::new`] by name (`nn.Conv2d`'s names). The defaults are
/// `nn.Conv2d`'s where it has one (groups 1, padding 0) and no bias and no activation; the
/// channel counts and kernel have no sensible default, and 0 is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dArgs {
    /// Input channels (Cin).
    pub in_channels: usize,
    /// Output channels (Cout).
    pub out_channels: usize,
    /// (kh, kw).
    pub kernel: (usize, usize),
    /// Zero padding (py, px) on both sides of each axis.
    pub padding: (usize, usize),
    /// Groups (1: dense, Cin = Cout: depthwise).
    pub groups: usize,
    /// Whether the convolution adds a bias (Cout values).
    pub bias: bool,
    /// The activation after the bias.
    pub activation: Activation,
}

impl Default for Conv2dArgs {
    fn default() -> Self {
        Conv2dArgs {
            in_channels: 0,
            out_channels: 0,
            kernel: (0, 0),
            padding: (0, 0),
            groups: 1,
            bias: false,
            activation: Activation::Identity,
        }
    }
}

/// A 2-D convolution's geometry: weights Cout×(Cin/groups)×kh×kw (PyTorch's layout, whatever
/// the activations' layout), optional bias, zero padding, groups, activation.
///
/// ```
/// use blurpool::{Activation, Conv2dArgs, Conv2dSpec};
/// let conv = Conv2dSpec::new(Conv2dArgs {
///     in_channels: 64,
///     out_channels: 128,
///     kernel: (3, 3),
///     padding: (1, 1),
///     bias: true,
///     activation: Activation::Relu,
///     ..Conv2dArgs::default()
/// })?;
/// assert_eq!(conv.weight_len(), 128 * 64 * 9);
/// assert!(Conv2dSpec::new(Conv2dArgs { groups: 3, ..conv.args() }).is_err()); // 3 ∤ 64
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dSpec {
    args: Conv2dArgs,
    // Computed (exactly, checked) when built: kernels index the weights with it.
    weight_len: usize,
}

impl Conv2dSpec {
    /// Validates channel/group divisibility, the window, each value against [`MAX_EXTENT`]
    /// and the weight's size (exact, at most [`MAX_ELEMENTS`]).
    pub fn new(args: Conv2dArgs) -> Result<Conv2dSpec> {
        let Conv2dArgs {
            in_channels,
            out_channels,
            kernel,
            padding,
            groups,
            ..
        } = args;
        if in_channels == 0 || out_channels == 0 {
            return Err(Error::Conv(format!(
                "in_channels ({in_channels}) and out_channels ({out_channels}) must be at least 1"
            )));
        }
        if groups == 0 {
            return Err(Error::Conv("groups must be at least 1".into()));
        }
        if in_channels % groups != 0 || out_channels % groups != 0 {
            return Err(Error::Conv(format!(
                "groups ({groups}) must divide both in_channels ({in_channels}) and out_channels ({out_channels})"
            )));
        }
        if kernel.0 == 0 {
            return Err(Error::ZeroWindow {
                what: "convolution kernel",
                axis: Axis::Height,
            });
        }
        if kernel.1 == 0 {
            return Err(Error::ZeroWindow {
                what: "convolution kernel",
                axis: Axis::Width,
            });
        }
        extent("in_channels", in_channels)?;
        extent("out_channels", out_channels)?;
        extent("the conv kernel's height", kernel.0)?;
        extent("the conv kernel's width", kernel.1)?;
        extent("the conv's vertical padding", padding.0)?;
        extent("the conv's horizontal padding", padding.1)?;
        // The kernels index one filter's taps (kh·kw) with 32 bits (conv_forward.cu,
        // bp_conv_point; conv_backward.cu: `p.ckh * p.ckw`): proven here.
        let taps = kernel.0 as u128 * kernel.1 as u128;
        at_most("the conv kernel's area (kh·kw)", taps, MAX_EXTENT)?;
        let weight_len = at_most(
            "the conv weight's element count",
            out_channels as u128 * (in_channels / groups) as u128 * taps,
            MAX_ELEMENTS,
        )?;
        Ok(Conv2dSpec { args, weight_len })
    }

    /// Depthwise convolution (groups = in = out channels).
    pub fn depthwise(
        channels: usize,
        kernel: (usize, usize),
        padding: (usize, usize),
        bias: bool,
        activation: Activation,
    ) -> Result<Conv2dSpec> {
        Conv2dSpec::new(Conv2dArgs {
            in_channels: channels,
            out_channels: channels,
            kernel,
            padding,
            groups: channels,
            bias,
            activation,
        })
    }

    /// The arguments it was built from (e.g. to build a variant with `..spec.args()`).
    pub fn args(&self) -> Conv2dArgs {
        self.args
    }
    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.args.in_channels
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.args.out_channels
    }
    /// (kh, kw).
    pub fn kernel(&self) -> (usize, usize) {
        self.args.kernel
    }
    /// (py, px), zero padding.
    pub fn padding(&self) -> (usize, usize) {
        self.args.padding
    }
    /// Groups.
    pub fn groups(&self) -> usize {
        self.args.groups
    }
    /// Whether there is a bias.
    pub fn has_bias(&self) -> bool {
        self.args.bias
    }
    /// The activation after the bias.
    pub fn activation(&self) -> Activation {
        self.args.activation
    }
    /// The same convolution without its activation (the pre-activation the backward needs).
    pub fn linear(&self) -> Conv2dSpec {
        Conv2dSpec {
            args: Conv2dArgs {
                activation: Activation::Identity,
                ..self.args
            },
            weight_len: self.weight_len,
        }
    }
    /// Number of weight elements: Cout·(Cin/groups)·kh·kw (exact: checked when built).
    pub fn weight_len(&self) -> usize {
        self.weight_len
    }
    /// Number of bias elements expected (Cout, or 0 without bias).
    pub fn bias_len(&self) -> usize {
        if self.args.bias {
            self.args.out_channels
        } else {
            0
        }
    }

    fn check_input_channels(&self, input: Shape4) -> Result<()> {
        input.check_input()?;
        if input.c != self.args.in_channels {
            return Err(Error::ChannelMismatch {
                expected: self.args.in_channels,
                got: input.c,
            });
        }
        Ok(())
    }

    /// Output extent of the convolution along an axis at the given stride.
    pub(crate) fn conv_len(
        &self,
        what: &'static str,
        axis: Axis,
        len: usize,
        stride: usize,
    ) -> Result<usize> {
        let (k, p) = match axis {
            Axis::Height => (self.args.kernel.0, self.args.padding.0),
            Axis::Width => (self.args.kernel.1, self.args.padding.1),
        };
        // Each term is at most MAX_EXTENT (checked): exact in u128. The padded extent must fit
        // in 32 bits: the backward kernels add the padding to a coordinate in int
        // (conv_backward.cu, bp_conv_dx).
        let padded = len as u128 + 2 * p as u128;
        at_most(
            match axis {
                Axis::Height => "the conv's padded input height",
                Axis::Width => "the conv's padded input width",
            },
            padded,
            MAX_EXTENT,
        )?;
        if padded < k as u128 {
            return Err(Error::InputTooSmall {
                what,
                axis,
                size: len,
                detail: format!("with conv padding {p} it is smaller than the kernel {k}"),
            });
        }
        at_most(
            match axis {
                Axis::Height => "the convolution's output height",
                Axis::Width => "the convolution's output width",
            },
            (padded - k as u128) / stride as u128 + 1,
            MAX_EXTENT,
        )
    }
}

/// ConvBlurPool2d = BlurPool2d ∘ act ∘ Conv2d(stride 1): antialiased-cnns' and timm's order.
///
/// ```
/// use blurpool::{presets::timm, Conv2dSpec, Activation, PadMode, Shape4};
/// let dw = Conv2dSpec::depthwise(32, (3, 3), (1, 1), false, Activation::Relu6)?;
/// let op = timm::conv_blur_pool(dw, 3, 2, PadMode::Reflect)?;
/// assert_eq!(op.output_shape(Shape4::new(1, 32, 16, 16))?, Shape4::new(1, 32, 8, 8));
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConvBlurPool2d {
    conv: Conv2dSpec,
    blur: Blur,
}

impl ConvBlurPool2d {
    /// Convolution at stride 1, activation, then the blur stage.
    pub fn new(conv: Conv2dSpec, blur: Blur) -> Self {
        ConvBlurPool2d { conv, blur }
    }
    /// The convolution.
    pub fn conv(&self) -> &Conv2dSpec {
        &self.conv
    }
    /// The blur stage (it pads the conv map).
    pub fn blur(&self) -> &Blur {
        &self.blur
    }
    /// Shape of the full-resolution conv output (never materialised by the fused kernel).
    pub fn conv_map_shape(&self, input: Shape4) -> Result<Shape4> {
        self.conv.check_input_channels(input)?;
        let h = self
            .conv
            .conv_len("ConvBlurPool2d", Axis::Height, input.h, 1)?;
        let w = self
            .conv
            .conv_len("ConvBlurPool2d", Axis::Width, input.w, 1)?;
        checked_tensor(
            "conv map",
            Shape4::new(input.n, self.conv.out_channels(), h, w),
        )
    }
    /// Output shape for `input`, or the reason there is none.
    pub fn output_shape(&self, input: Shape4) -> Result<Shape4> {
        let z = self.conv_map_shape(input)?;
        let (h, w) = self.blur.output_hw("ConvBlurPool2d", z.h, z.w)?;
        checked_tensor("output", Shape4::new(z.n, z.c, h, w))
    }
}

/// BlurConv2d = act ∘ Conv2d(stride s) ∘ Blur(stride 1): composer's and ffcv's `blur_first` order.
///
/// ```
/// use blurpool::{presets::composer, Conv2dArgs, Conv2dSpec, Shape4};
/// let conv = Conv2dSpec::new(Conv2dArgs {
///     in_channels: 8, out_channels: 16, kernel: (3, 3), padding: (1, 1), ..Default::default()
/// })?;
/// let composer::BlurConv::BlurFirst(op) = composer::blur_conv2d(conv, (2, 2), true)? else {
///     unreachable!()
/// };
/// assert_eq!(op.output_shape(Shape4::new(1, 8, 10, 10))?, Shape4::new(1, 16, 5, 5));
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BlurConv2d {
    blur: Blur,
    conv: Conv2dSpec,
    stride: (usize, usize),
}

impl BlurConv2d {
    /// `blur` must have stride 1 (the subsampling is the convolution's `stride`).
    pub fn new(blur: Blur, conv: Conv2dSpec, stride: (usize, usize)) -> Result<BlurConv2d> {
        if blur.stride() != (1, 1) {
            return Err(Error::Conv(format!(
                "BlurConv2d blurs at stride 1 and subsamples in the convolution, but the blur has stride {:?}",
                blur.stride()
            )));
        }
        if stride.0 == 0 {
            return Err(Error::ZeroStride { axis: Axis::Height });
        }
        if stride.1 == 0 {
            return Err(Error::ZeroStride { axis: Axis::Width });
        }
        extent("the conv's vertical stride", stride.0)?;
        extent("the conv's horizontal stride", stride.1)?;
        Ok(BlurConv2d { blur, conv, stride })
    }
    /// The blur stage (stride 1).
    pub fn blur(&self) -> &Blur {
        &self.blur
    }
    /// The convolution.
    pub fn conv(&self) -> &Conv2dSpec {
        &self.conv
    }
    /// The convolution's (sy, sx).
    pub fn stride(&self) -> (usize, usize) {
        self.stride
    }
    /// Shape of the blurred map (never materialised by the fused kernel).
    pub fn blur_map_shape(&self, input: Shape4) -> Result<Shape4> {
        self.conv.check_input_channels(input)?;
        let (h, w) = self.blur.output_hw("BlurConv2d", input.h, input.w)?;
        checked_tensor("blurred map", Shape4::new(input.n, input.c, h, w))
    }
    /// Output shape for `input`, or the reason there is none.
    pub fn output_shape(&self, input: Shape4) -> Result<Shape4> {
        let b = self.blur_map_shape(input)?;
        let h = self
            .conv
            .conv_len("BlurConv2d", Axis::Height, b.h, self.stride.0)?;
        let w = self
            .conv
            .conv_len("BlurConv2d", Axis::Width, b.w, self.stride.1)?;
        checked_tensor("output", Shape4::new(b.n, self.conv.out_channels(), h, w))
    }
}

/// Any of the operators, for code that handles them uniformly (tests, tools, the C ABI).
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// Dense max.
    MaxPool(MaxPool2d),
    /// Blur + subsample.
    BlurPool(BlurPool2d),
    /// Dense max, blur, subsample.
    MaxBlurPool(MaxBlurPool2d),
    /// Conv, activation, blur, subsample.
    ConvBlurPool(ConvBlurPool2d),
    /// Blur, strided conv, activation.
    BlurConv(BlurConv2d),
}

impl Operator {
    /// Output shape for `input`, or the reason there is none.
    pub fn output_shape(&self, input: Shape4) -> Result<Shape4> {
        match self {
            Operator::MaxPool(op) => op.output_shape(input),
            Operator::BlurPool(op) => op.output_shape(input),
            Operator::MaxBlurPool(op) => op.output_shape(input),
            Operator::ConvBlurPool(op) => op.output_shape(input),
            Operator::BlurConv(op) => op.output_shape(input),
        }
    }

    /// The convolution, for the operators that have one.
    pub fn conv(&self) -> Option<&Conv2dSpec> {
        match self {
            Operator::ConvBlurPool(op) => Some(op.conv()),
            Operator::BlurConv(op) => Some(op.conv()),
            _ => None,
        }
    }

    /// The blur stage, for the operators that have one.
    pub fn blur(&self) -> Option<&Blur> {
        match self {
            Operator::MaxPool(_) => None,
            Operator::BlurPool(op) => Some(op.blur()),
            Operator::MaxBlurPool(op) => Some(op.blur()),
            Operator::ConvBlurPool(op) => Some(op.blur()),
            Operator::BlurConv(op) => Some(op.blur()),
        }
    }

    /// Short name (`max_pool`, `blur_pool`, `max_blur_pool`, `conv_blur_pool`, `blur_conv`).
    pub fn name(&self) -> &'static str {
        match self {
            Operator::MaxPool(_) => "max_pool",
            Operator::BlurPool(_) => "blur_pool",
            Operator::MaxBlurPool(_) => "max_blur_pool",
            Operator::ConvBlurPool(_) => "conv_blur_pool",
            Operator::BlurConv(_) => "blur_conv",
        }
    }
}

macro_rules! operator_from {
    ($($ty:ident => $var:ident),*) => {$(
        impl From<$ty> for Operator {
            fn from(op: $ty) -> Operator {
                Operator::$var(op)
            }
        }
    )*};
}
operator_from!(MaxPool2d => MaxPool, BlurPool2d => BlurPool, MaxBlurPool2d => MaxBlurPool, ConvBlurPool2d => ConvBlurPool, BlurConv2d => BlurConv);
