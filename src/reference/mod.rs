//! The CPU reference: the oracle every kernel is tested against (forward here, gradients in
//! [`grad`]).
//!
//! It stays simple and obviously right: each stage of the operator (dense max, convolution +
//! activation, blur + subsample) is a direct loop over its definition in docs/SPEC.md in f64,
//! and only the final output is rounded to the element type. No tiling, no fusion, no
//! cleverness. It needs no GPU stack.
//!
//! **Memory.** Every buffer length is checked before anything is allocated. The forward reads
//! the caller's buffers directly and evaluates each intermediate stage where the next one reads
//! it; it keeps an intermediate map in memory only when that is small (at most 4 × the input
//! and output, or 1 Mi values, within the workspace limit), so a padded map far larger than the
//! output costs time, not memory, and a forward never fails for memory. The gradients keep
//! their f64 maps in memory: each map is checked against the thread's workspace limit
//! ([`set_workspace_limit`], default [`DEFAULT_WORKSPACE_LIMIT`]) and allocated without
//! aborting, so a call that would need more gets [`Error::WorkspaceLimit`] or
//! [`Error::OutOfMemory`], never an abort.
//!
//! ```
//! use blurpool::{presets::kornia, reference, Layout, Operator, Shape4};
//! // kornia's doctest: blur_pool2d(eye(5), 3)
//! let eye: Vec<f32> = (0..25).map(|i| if i / 5 == i % 5 { 1.0 } else { 0.0 }).collect();
//! let op = Operator::from(kornia::blur_pool2d(3, 2)?);
//! let mut y = vec![0f32; 9];
//! reference::forward(&op, Shape4::new(1, 1, 5, 5), Layout::Nchw, &eye, &[], None, &mut y)?;
//! assert_eq!(y, [0.3125, 0.0625, 0.0, 0.0625, 0.375, 0.0625, 0.0, 0.0625, 0.3125]);
//! # Ok::<(), blurpool::Error>(())
//! ```

pub mod grad;

use std::cell::Cell;

use crate::error::{check_len, Error, Result};
use crate::ops::{
    Blur, BlurConv2d, BlurPool2d, Conv2dSpec, ConvBlurPool2d, MaxBlurPool2d, MaxPool2d, Operator,
};
use crate::tensor::{Element, Layout, Shape4};

/// The workspace limit a thread starts with: 2 GiB of f64 maps.
pub const DEFAULT_WORKSPACE_LIMIT: usize = 2 << 30;

thread_local! {
    static WORKSPACE_LIMIT: Cell<usize> = const { Cell::new(DEFAULT_WORKSPACE_LIMIT) };
}

/// Sets the largest map (in bytes) the reference may allocate on this thread and returns the
/// previous limit. Each call holds at most a few maps (the widened input, its gradient, one or
/// two intermediates), each at most this size.
///
/// ```
/// use blurpool::reference;
/// let before = reference::set_workspace_limit(64 << 30); // allow 64 GiB maps
/// reference::set_workspace_limit(before);
/// ```
pub fn set_workspace_limit(bytes: usize) -> usize {
    WORKSPACE_LIMIT.with(|l| l.replace(bytes))
}

/// The workspace limit in force on this thread (see [`set_workspace_limit`]).
pub fn workspace_limit() -> usize {
    WORKSPACE_LIMIT.with(|l| l.get())
}

/// `n` zeros within the workspace limit, or the typed error that says why not (never an abort).
pub(crate) fn alloc_f64(n: usize) -> Result<Vec<f64>> {
    let bytes = n as u128 * 8;
    let limit = workspace_limit();
    if bytes > limit as u128 {
        return Err(Error::WorkspaceLimit {
            needed: bytes,
            limit,
        });
    }
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        bytes: bytes as usize,
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// A dense f64 N×C×H×W array in NCHW order: what each stage of the reference produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    shape: Shape4,
    data: Vec<f64>,
}

impl Map {
    /// A map of `shape` holding `data` (NCHW order); its length must match the shape.
    pub fn new(shape: Shape4, data: Vec<f64>) -> Result<Map> {
        check_len("map", shape.numel()?, data.len())?;
        Ok(Map { shape, data })
    }

    /// A map of zeros (within the workspace limit).
    pub fn zeros(shape: Shape4) -> Result<Map> {
        Ok(Map {
            shape,
            data: alloc_f64(shape.numel()?)?,
        })
    }

    /// The map's shape.
    pub fn shape(&self) -> Shape4 {
        self.shape
    }

    /// The values, NCHW order.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// The values, NCHW order, for changing in place (the shape stays).
    pub fn data_mut(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// The values, NCHW order.
    pub fn into_data(self) -> Vec<f64> {
        self.data
    }

    /// The value at (n, c, y, x), or `None` outside the shape.
    pub fn get(&self, n: usize, c: usize, y: usize, x: usize) -> Option<f64> {
        let s = self.shape;
        (n < s.n && c < s.c && y < s.h && x < s.w).then(|| self.at(n, c, y, x))
    }

    #[inline]
    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64 {
        self.data[self.shape.offset(Layout::Nchw, n, c, y, x)]
    }

    /// Widens a typed buffer in `layout` to f64 (within the workspace limit).
    pub fn from_slice<T: Element>(shape: Shape4, layout: Layout, data: &[T]) -> Result<Map> {
        check_len("input", shape.numel()?, data.len())?;
        materialize(&Tensor {
            data,
            shape,
            layout,
        })
    }

    /// Rounds into a typed buffer in `layout` (one rounding per element).
    pub fn write_to<T: Element>(&self, layout: Layout, out: &mut [T]) -> Result<()> {
        write(self, layout, out)
    }
}

// ---------------------------------------------------------------------------------------------
// Stages as fields: a value at every (n, c, y, x) of the stage's shape, computed where it is
// read (a materialised Map is one too).

trait Field {
    fn shape(&self) -> Shape4;
    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64;
}

impl Field for Map {
    fn shape(&self) -> Shape4 {
        self.shape
    }
    #[inline]
    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64 {
        Map::at(self, n, c, y, x)
    }
}

/// A caller's typed buffer, read in place.
struct Tensor<'a, T> {
    data: &'a [T],
    shape: Shape4,
    layout: Layout,
}

impl<T: Element> Field for Tensor<'_, T> {
    fn shape(&self) -> Shape4 {
        self.shape
    }
    #[inline]
    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64 {
        self.data[self.shape.offset(self.layout, n, c, y, x)].to_f64()
    }
}

/// Dense max with PyTorch's rule: scan row-major, take `v > best || isnan(v)`, padding never wins.
struct MaxField<'a, F> {
    op: &'a MaxPool2d,
    src: &'a F,
    shape: Shape4,
}

impl<F: Field> Field for MaxField<'_, F> {
    fn shape(&self) -> Shape4 {
        self.shape
    }
    fn at(&self, n: usize, c: usize, i: usize, j: usize) -> f64 {
        let (kh, kw) = self.op.kernel();
        let (py, px) = self.op.padding();
        let s = self.src.shape();
        let mut best = f64::NEG_INFINITY;
        for u in 0..kh {
            for v in 0..kw {
                // Extents, windows and pads are at most 2^31 − 1 (checked): exact in i64.
                let (y, xx) = ((i + u) as i64 - py as i64, (j + v) as i64 - px as i64);
                if y < 0 || xx < 0 || y >= s.h as i64 || xx >= s.w as i64 {
                    continue;
                }
                let val = self.src.at(n, c, y as usize, xx as usize);
                if val > best || val.is_nan() {
                    best = val;
                }
            }
        }
        best
    }
}

/// Blur + subsample: y[i,j] = Σ_u Σ_v wy[u]·wx[v]·xp[i·sy+u, j·sx+v].
struct BlurField<'a, F> {
    blur: &'a Blur,
    src: &'a F,
    shape: Shape4,
}

impl<F: Field> Field for BlurField<'_, F> {
    fn shape(&self) -> Shape4 {
        self.shape
    }
    fn at(&self, n: usize, c: usize, i: usize, j: usize) -> f64 {
        let b = self.blur;
        let (wy, wx) = (b.filter().weights_y(), b.filter().weights_x());
        let (sy, sx) = b.stride();
        let pad = b.pad();
        let mode = b.mode();
        let s = self.src.shape();
        let mut acc = 0.0;
        for (u, &a) in wy.iter().enumerate() {
            // i·sy + u ≤ the padded extent, which is below 2^33 (checked): exact in i64.
            let Some(r) = mode.source_index((i * sy + u) as i64 - pad.top as i64, s.h) else {
                continue;
            };
            for (v, &w) in wx.iter().enumerate() {
                let Some(q) = mode.source_index((j * sx + v) as i64 - pad.left as i64, s.w) else {
                    continue;
                };
                acc += a * w * self.src.at(n, c, r, q);
            }
        }
        acc
    }
}

/// conv2d (cross-correlation, zero padding, groups) at `stride`, + bias, then the activation.
struct ConvField<'a, F> {
    conv: &'a Conv2dSpec,
    stride: (usize, usize),
    src: &'a F,
    weight: &'a [f64],
    bias: Option<&'a [f64]>,
    shape: Shape4,
}

impl<F: Field> Field for ConvField<'_, F> {
    fn shape(&self) -> Shape4 {
        self.shape
    }
    fn at(&self, n: usize, co: usize, i: usize, j: usize) -> f64 {
        let conv = self.conv;
        let (kh, kw) = conv.kernel();
        let (py, px) = conv.padding();
        let (sy, sx) = self.stride;
        let s = self.src.shape();
        let cin_g = conv.in_channels() / conv.groups();
        let cout_g = conv.out_channels() / conv.groups();
        let g = co / cout_g;
        let mut acc = self.bias.map_or(0.0, |b| b[co]);
        for ci in 0..cin_g {
            for r in 0..kh {
                let y = (i * sy + r) as i64 - py as i64;
                if y < 0 || y >= s.h as i64 {
                    continue;
                }
                for t in 0..kw {
                    let xx = (j * sx + t) as i64 - px as i64;
                    if xx < 0 || xx >= s.w as i64 {
                        continue;
                    }
                    let wv = self.weight[((co * cin_g + ci) * kh + r) * kw + t];
                    acc += wv * self.src.at(n, g * cin_g + ci, y as usize, xx as usize);
                }
            }
        }
        conv.activation().apply(acc)
    }
}

/// Every value of `f` in a Map (within the workspace limit).
fn materialize(f: &impl Field) -> Result<Map> {
    let mut m = Map::zeros(f.shape())?;
    let s = m.shape;
    let mut k = 0;
    for n in 0..s.n {
        for c in 0..s.c {
            for y in 0..s.h {
                for x in 0..s.w {
                    m.data[k] = f.at(n, c, y, x);
                    k += 1;
                }
            }
        }
    }
    Ok(m)
}

/// A stage the next one reads: kept in memory when that is cheap (the values are the same
/// either way), evaluated where it is read otherwise.
enum Stage<F> {
    Kept(Map),
    Lazy(F),
}

impl<F: Field> Field for Stage<F> {
    fn shape(&self) -> Shape4 {
        match self {
            Stage::Kept(m) => m.shape,
            Stage::Lazy(f) => f.shape(),
        }
    }
    #[inline]
    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64 {
        match self {
            Stage::Kept(m) => m.at(n, c, y, x),
            Stage::Lazy(f) => f.at(n, c, y, x),
        }
    }
}

/// `f` materialised if it has at most max(4 × (input + output), 2²⁰) values, fits the
/// workspace limit and can be allocated; else left lazy.
fn stage<F: Field>(f: F, input: Shape4, output: Shape4) -> Stage<F> {
    let small = |s: Shape4| s.numel().unwrap_or(usize::MAX);
    let budget = small(input)
        .saturating_add(small(output))
        .saturating_mul(4)
        .max(1 << 20);
    if small(f.shape()) <= budget {
        if let Ok(m) = materialize(&f) {
            return Stage::Kept(m);
        }
    }
    Stage::Lazy(f)
}

/// Rounds every value of `f` into `out` (in `layout`), which must hold its shape.
fn write<T: Element>(f: &impl Field, layout: Layout, out: &mut [T]) -> Result<()> {
    let s = f.shape();
    check_len("output", s.numel()?, out.len())?;
    for n in 0..s.n {
        for c in 0..s.c {
            for y in 0..s.h {
                for x in 0..s.w {
                    out[s.offset(layout, n, c, y, x)] = T::from_f64(f.at(n, c, y, x));
                }
            }
        }
    }
    Ok(())
}

/// The conv's weight and bias widened to f64, after checking them: `weight` must have
/// `weight_len` elements, `bias` be given exactly when the conv has one, with Cout elements.
fn conv_params<T: Element>(
    conv: &Conv2dSpec,
    weight: &[T],
    bias: Option<&[T]>,
) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
    check_len("weight", conv.weight_len(), weight.len())?;
    let bias = check_bias(conv, bias)?;
    let widen = |v: &[T]| -> Result<Vec<f64>> {
        let mut out = alloc_f64(v.len())?;
        for (o, e) in out.iter_mut().zip(v) {
            *o = e.to_f64();
        }
        Ok(out)
    };
    Ok((widen(weight)?, bias.map(widen).transpose()?))
}

/// `bias` if it is given exactly when the conv has one, with Cout elements.
pub(crate) fn check_bias<'a, B: ?Sized + BiasLen>(
    conv: &Conv2dSpec,
    bias: Option<&'a B>,
) -> Result<Option<&'a B>> {
    match (conv.has_bias(), bias) {
        (true, None) => Err(Error::BufferLength {
            what: "bias",
            expected: conv.bias_len(),
            got: 0,
        }),
        // A bias with elements is a wrong length (as before); an empty one is still a bias.
        (false, Some(b)) if b.len() > 0 => Err(Error::BufferLength {
            what: "bias",
            expected: 0,
            got: b.len(),
        }),
        (false, Some(_)) => Err(Error::Conv(
            "a bias was passed but the convolution has none (pass None)".into(),
        )),
        (true, Some(b)) => {
            check_len("bias", conv.bias_len(), b.len())?;
            Ok(Some(b))
        }
        (false, None) => Ok(None),
    }
}

/// A slice's length, for [`check_bias`] over typed and f64 biases alike.
pub(crate) trait BiasLen {
    fn len(&self) -> usize;
}
impl<T> BiasLen for [T] {
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Map-level stages (the gradients and the finite-difference tests compose these).

/// Dense max with PyTorch's rule: scan row-major, take `v > best || isnan(v)`, padding never
/// wins; the max map of `x`.
pub fn dense_max_map(op: &MaxPool2d, x: &Map) -> Result<Map> {
    let shape = op.output_shape(x.shape)?;
    materialize(&MaxField { op, src: x, shape })
}

/// Blur + subsample of a map: `y[i,j] = Σ_u Σ_v wy[u]·wx[v]·xp[i·sy+u, j·sx+v]`.
pub fn blur_map(blur: &Blur, x: &Map, what: &'static str) -> Result<Map> {
    let (ho, wo) = blur.output_hw(what, x.shape.h, x.shape.w)?;
    let shape = Shape4::new(x.shape.n, x.shape.c, ho, wo);
    materialize(&BlurField {
        blur,
        src: x,
        shape,
    })
}

/// conv2d (cross-correlation, zero padding, groups) at the given stride, + bias, then the
/// activation, of a map.
pub fn conv_map(
    conv: &Conv2dSpec,
    stride: (usize, usize),
    x: &Map,
    weight: &[f64],
    bias: Option<&[f64]>,
    what: &'static str,
) -> Result<Map> {
    let shape = conv_shape(conv, stride, x.shape, what)?;
    check_len("weight", conv.weight_len(), weight.len())?;
    let bias = check_bias(conv, bias)?;
    materialize(&ConvField {
        conv,
        stride,
        src: x,
        weight,
        bias,
        shape,
    })
}

/// The output shape of `conv` at `stride` on a map of shape `x`.
fn conv_shape(
    conv: &Conv2dSpec,
    stride: (usize, usize),
    x: Shape4,
    what: &'static str,
) -> Result<Shape4> {
    if x.c != conv.in_channels() {
        return Err(Error::ChannelMismatch {
            expected: conv.in_channels(),
            got: x.c,
        });
    }
    let h = conv.conv_len(what, crate::error::Axis::Height, x.h, stride.0)?;
    let w = conv.conv_len(what, crate::error::Axis::Width, x.w, stride.1)?;
    Ok(Shape4::new(x.n, conv.out_channels(), h, w))
}

// ---------------------------------------------------------------------------------------------
// The typed forwards: validate everything, then evaluate the stages where they are read.

/// Checks the input and output buffers against the shapes (before any work).
fn check_io<T>(input: Shape4, output: Shape4, x: &[T], y: &[T]) -> Result<()> {
    check_len("input", input.numel()?, x.len())?;
    check_len("output", output.numel()?, y.len())
}

/// Dense MaxPool2d (stride 1) on host buffers in `layout`.
///
/// ```
/// use blurpool::{reference, Layout, MaxPool2d, Shape4};
/// let op = MaxPool2d::new((2, 2), (0, 0))?;
/// let mut y = [0f32; 2];
/// reference::max_pool(&op, Shape4::new(1, 1, 2, 3), Layout::Nchw, &[1., 5., 2., 3., 4., 0.], &mut y)?;
/// assert_eq!(y, [5.0, 5.0]);
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn max_pool<T: Element>(
    op: &MaxPool2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    y: &mut [T],
) -> Result<()> {
    let out = op.output_shape(shape)?;
    check_io(shape, out, x, y)?;
    let src = Tensor {
        data: x,
        shape,
        layout,
    };
    write(
        &MaxField {
            op,
            src: &src,
            shape: out,
        },
        layout,
        y,
    )
}

/// BlurPool2d on host buffers in `layout`.
///
/// ```
/// use blurpool::{presets::antialiased_cnns, reference, Layout, PadMode, Shape4};
/// // A constant stays constant under a normalised blur, whatever the padding.
/// let op = antialiased_cnns::blur_pool(PadMode::Reflect, 3, 2, 0)?;
/// let mut y = [0f32; 4];
/// reference::blur_pool(&op, Shape4::new(1, 1, 4, 4), Layout::Nchw, &[2.0; 16], &mut y)?;
/// assert_eq!(y, [2.0; 4]);
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn blur_pool<T: Element>(
    op: &BlurPool2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    y: &mut [T],
) -> Result<()> {
    let out = op.output_shape(shape)?;
    check_io(shape, out, x, y)?;
    let src = Tensor {
        data: x,
        shape,
        layout,
    };
    write(
        &BlurField {
            blur: op.blur(),
            src: &src,
            shape: out,
        },
        layout,
        y,
    )
}

/// MaxBlurPool2d: dense max, then blur + subsample of the max map (host buffers in `layout`).
///
/// ```
/// use blurpool::{presets::kornia, reference, Layout, Shape4};
/// // kornia's doctest: max_blur_pool2d(eye(5), 3)
/// let eye: Vec<f32> = (0..25).map(|i| if i / 5 == i % 5 { 1.0 } else { 0.0 }).collect();
/// let mut y = [0f32; 4];
/// reference::max_blur_pool(&kornia::max_blur_pool2d(3, 2, 2)?, Shape4::new(1, 1, 5, 5), Layout::Nchw, &eye, &mut y)?;
/// assert_eq!(y, [0.5625, 0.3125, 0.3125, 0.875]);
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn max_blur_pool<T: Element>(
    op: &MaxBlurPool2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    y: &mut [T],
) -> Result<()> {
    let out = op.output_shape(shape)?;
    check_io(shape, out, x, y)?;
    let src = Tensor {
        data: x,
        shape,
        layout,
    };
    let m = stage(
        MaxField {
            op: op.max_pool(),
            src: &src,
            shape: op.max_map_shape(shape)?,
        },
        shape,
        out,
    );
    write(
        &BlurField {
            blur: op.blur(),
            src: &m,
            shape: out,
        },
        layout,
        y,
    )
}

/// ConvBlurPool2d: conv (stride 1) + bias + activation, then blur + subsample (host buffers:
/// x and y in `layout`, weight Cout×Cin/groups×kh×kw, bias Cout).
///
/// ```
/// use blurpool::{presets::timm, reference, Activation, Conv2dSpec, Layout, PadMode, Shape4};
/// // A 1×1 depthwise conv with weight 2 and bias −1, ReLU, then timm's blur.
/// let conv = Conv2dSpec::depthwise(1, (1, 1), (0, 0), true, Activation::Relu)?;
/// let op = timm::conv_blur_pool(conv, 3, 2, PadMode::Reflect)?;
/// let mut y = [0f32; 4];
/// reference::conv_blur_pool(&op, Shape4::new(1, 1, 4, 4), Layout::Nchw, &[1.0; 16], &[2.0], Some(&[-1.0]), &mut y)?;
/// assert_eq!(y, [1.0; 4]);
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn conv_blur_pool<T: Element>(
    op: &ConvBlurPool2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) -> Result<()> {
    let out = op.output_shape(shape)?;
    check_io(shape, out, x, y)?;
    let (w, b) = conv_params(op.conv(), weight, bias)?;
    let src = Tensor {
        data: x,
        shape,
        layout,
    };
    let z = stage(
        ConvField {
            conv: op.conv(),
            stride: (1, 1),
            src: &src,
            weight: &w,
            bias: b.as_deref(),
            shape: op.conv_map_shape(shape)?,
        },
        shape,
        out,
    );
    write(
        &BlurField {
            blur: op.blur(),
            src: &z,
            shape: out,
        },
        layout,
        y,
    )
}

/// BlurConv2d: blur at stride 1, then the strided conv + bias + activation (buffers as
/// [`conv_blur_pool`]).
///
/// ```
/// use blurpool::{presets::composer, reference, Conv2dArgs, Conv2dSpec, Layout, Shape4};
/// let conv = Conv2dSpec::new(Conv2dArgs { in_channels: 1, out_channels: 1, kernel: (1, 1), ..Default::default() })?;
/// let composer::BlurConv::BlurFirst(op) = composer::blur_conv2d(conv, (2, 2), true)? else { unreachable!() };
/// let mut y = [0f32; 4];
/// reference::blur_conv(&op, Shape4::new(1, 1, 4, 4), Layout::Nchw, &[1.0; 16], &[3.0], None, &mut y)?;
/// assert_eq!(y, [3.0 * 9.0 / 16.0, 3.0 * 12.0 / 16.0, 3.0 * 12.0 / 16.0, 3.0]); // zero padding at the top-left border
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn blur_conv<T: Element>(
    op: &BlurConv2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) -> Result<()> {
    let out = op.output_shape(shape)?;
    check_io(shape, out, x, y)?;
    let (w, b) = conv_params(op.conv(), weight, bias)?;
    let src = Tensor {
        data: x,
        shape,
        layout,
    };
    let blurred = stage(
        BlurField {
            blur: op.blur(),
            src: &src,
            shape: op.blur_map_shape(shape)?,
        },
        shape,
        out,
    );
    let conv = ConvField {
        conv: op.conv(),
        stride: op.stride(),
        src: &blurred,
        weight: &w,
        bias: b.as_deref(),
        shape: out,
    };
    write(&conv, layout, y)
}

/// Runs any operator on host buffers in `layout` (`weight`/`bias` only for the conv
/// operators, else ignored and may be empty); `y` receives `op.output_shape(shape)`. For the
/// conv operators `bias` must be given exactly when the convolution has one.
pub fn forward<T: Element>(
    op: &Operator,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) -> Result<()> {
    match op {
        Operator::MaxPool(op) => max_pool(op, shape, layout, x, y),
        Operator::BlurPool(op) => blur_pool(op, shape, layout, x, y),
        Operator::MaxBlurPool(op) => max_blur_pool(op, shape, layout, x, y),
        Operator::ConvBlurPool(op) => conv_blur_pool(op, shape, layout, x, weight, bias, y),
        Operator::BlurConv(op) => blur_conv(op, shape, layout, x, weight, bias, y),
    }
}
