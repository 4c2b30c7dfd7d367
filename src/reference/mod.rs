//! The CPU reference: the oracle every kernel is tested against (forward here, gradients in
//! [`grad`]).
//!
//! It stays simple and obviously right: inputs are widened to f64 in a plain NCHW array, each
//! stage of the operator (dense max, convolution + activation, blur + subsample) is a direct loop
//! over its definition in docs/SPEC.md that materialises its result, and only the final output
//! is rounded to the element type. No tiling, no fusion, no cleverness. It needs no GPU stack.
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

use crate::error::{check_len, Error, Result};
use crate::ops::{
    Blur, BlurConv2d, BlurPool2d, Conv2dSpec, ConvBlurPool2d, MaxBlurPool2d, MaxPool2d, Operator,
};
use crate::tensor::{Element, Layout, Shape4};

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

    /// A map of zeros.
    pub fn zeros(shape: Shape4) -> Result<Map> {
        Ok(Map {
            shape,
            data: vec![0.0; shape.numel()?],
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

    #[inline]
    fn set(&mut self, n: usize, c: usize, y: usize, x: usize, v: f64) {
        let i = self.shape.offset(Layout::Nchw, n, c, y, x);
        self.data[i] = v;
    }

    /// Widens a typed buffer in `layout` to f64.
    pub fn from_slice<T: Element>(shape: Shape4, layout: Layout, data: &[T]) -> Result<Map> {
        check_len("input", shape.numel()?, data.len())?;
        let mut m = Map::zeros(shape)?;
        for n in 0..shape.n {
            for c in 0..shape.c {
                for y in 0..shape.h {
                    for x in 0..shape.w {
                        m.set(n, c, y, x, data[shape.offset(layout, n, c, y, x)].to_f64());
                    }
                }
            }
        }
        Ok(m)
    }

    /// Rounds into a typed buffer in `layout` (one rounding per element).
    pub fn write_to<T: Element>(&self, layout: Layout, out: &mut [T]) -> Result<()> {
        let s = self.shape;
        check_len("output", s.numel()?, out.len())?;
        for n in 0..s.n {
            for c in 0..s.c {
                for y in 0..s.h {
                    for x in 0..s.w {
                        out[s.offset(layout, n, c, y, x)] = T::from_f64(self.at(n, c, y, x));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Dense max with PyTorch's rule: scan row-major, take `v > best || isnan(v)`, padding never wins.
pub fn dense_max_map(op: &MaxPool2d, x: &Map) -> Result<Map> {
    let out = op.output_shape(x.shape)?;
    let (kh, kw) = op.kernel();
    let (py, px) = op.padding();
    let mut m = Map::zeros(out)?;
    for n in 0..out.n {
        for c in 0..out.c {
            for i in 0..out.h {
                for j in 0..out.w {
                    let mut best = f64::NEG_INFINITY;
                    for u in 0..kh {
                        for v in 0..kw {
                            let (y, xx) = ((i + u) as i64 - py as i64, (j + v) as i64 - px as i64);
                            if y < 0 || xx < 0 || y >= x.shape.h as i64 || xx >= x.shape.w as i64 {
                                continue;
                            }
                            let val = x.at(n, c, y as usize, xx as usize);
                            if val > best || val.is_nan() {
                                best = val;
                            }
                        }
                    }
                    m.set(n, c, i, j, best);
                }
            }
        }
    }
    Ok(m)
}

/// Blur + subsample of a map: `y[i,j] = Σ_u Σ_v wy[u]·wx[v]·xp[i·sy+u, j·sx+v]`.
pub fn blur_map(blur: &Blur, x: &Map, what: &'static str) -> Result<Map> {
    let (ho, wo) = blur.output_hw(what, x.shape.h, x.shape.w)?;
    let out = Shape4::new(x.shape.n, x.shape.c, ho, wo);
    let (wy, wx) = (blur.filter().weights_y(), blur.filter().weights_x());
    let (sy, sx) = blur.stride();
    let pad = blur.pad();
    let mode = blur.mode();
    let mut y = Map::zeros(out)?;
    for n in 0..out.n {
        for c in 0..out.c {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = 0.0;
                    for (u, &a) in wy.iter().enumerate() {
                        let Some(r) =
                            mode.source_index((i * sy + u) as i64 - pad.top as i64, x.shape.h)
                        else {
                            continue;
                        };
                        for (v, &b) in wx.iter().enumerate() {
                            let Some(q) =
                                mode.source_index((j * sx + v) as i64 - pad.left as i64, x.shape.w)
                            else {
                                continue;
                            };
                            acc += a * b * x.at(n, c, r, q);
                        }
                    }
                    y.set(n, c, i, j, acc);
                }
            }
        }
    }
    Ok(y)
}

/// conv2d (cross-correlation, zero padding, groups) at the given stride, + bias, then the activation.
pub fn conv_map(
    conv: &Conv2dSpec,
    stride: (usize, usize),
    x: &Map,
    weight: &[f64],
    bias: Option<&[f64]>,
    what: &'static str,
) -> Result<Map> {
    check_len("weight", conv.weight_len(), weight.len())?;
    check_len("bias", conv.bias_len(), bias.map_or(0, |b| b.len()))?;
    if x.shape.c != conv.in_channels() {
        return Err(Error::ChannelMismatch {
            expected: conv.in_channels(),
            got: x.shape.c,
        });
    }
    let (kh, kw) = conv.kernel();
    let (py, px) = conv.padding();
    let (sy, sx) = stride;
    let too_small = |axis, size| Error::InputTooSmall {
        what,
        axis,
        size,
        detail: "smaller than the convolution kernel".into(),
    };
    if x.shape.h + 2 * py < kh {
        return Err(too_small(crate::error::Axis::Height, x.shape.h));
    }
    if x.shape.w + 2 * px < kw {
        return Err(too_small(crate::error::Axis::Width, x.shape.w));
    }
    let out = Shape4::new(
        x.shape.n,
        conv.out_channels(),
        (x.shape.h + 2 * py - kh) / sy + 1,
        (x.shape.w + 2 * px - kw) / sx + 1,
    );
    let cin_g = conv.in_channels() / conv.groups();
    let cout_g = conv.out_channels() / conv.groups();
    let mut z = Map::zeros(out)?;
    for n in 0..out.n {
        for co in 0..out.c {
            let g = co / cout_g;
            for i in 0..out.h {
                for j in 0..out.w {
                    let mut acc = bias.map_or(0.0, |b| b[co]);
                    for ci in 0..cin_g {
                        for r in 0..kh {
                            let y = (i * sy + r) as i64 - py as i64;
                            if y < 0 || y >= x.shape.h as i64 {
                                continue;
                            }
                            for s in 0..kw {
                                let xx = (j * sx + s) as i64 - px as i64;
                                if xx < 0 || xx >= x.shape.w as i64 {
                                    continue;
                                }
                                let wv = weight[((co * cin_g + ci) * kh + r) * kw + s];
                                acc += wv * x.at(n, g * cin_g + ci, y as usize, xx as usize);
                            }
                        }
                    }
                    z.set(n, co, i, j, conv.activation().apply(acc));
                }
            }
        }
    }
    Ok(z)
}

fn widen<T: Element>(v: &[T]) -> Vec<f64> {
    v.iter().map(|e| e.to_f64()).collect()
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
    op.output_shape(shape)?;
    dense_max_map(op, &Map::from_slice(shape, layout, x)?)?.write_to(layout, y)
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
    op.output_shape(shape)?;
    blur_map(op.blur(), &Map::from_slice(shape, layout, x)?, "BlurPool2d")?.write_to(layout, y)
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
    op.output_shape(shape)?;
    let m = dense_max_map(op.max_pool(), &Map::from_slice(shape, layout, x)?)?;
    blur_map(op.blur(), &m, "MaxBlurPool2d")?.write_to(layout, y)
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
    op.output_shape(shape)?;
    let bias = bias.map(widen);
    let z = conv_map(
        op.conv(),
        (1, 1),
        &Map::from_slice(shape, layout, x)?,
        &widen(weight),
        bias.as_deref(),
        "ConvBlurPool2d",
    )?;
    blur_map(op.blur(), &z, "ConvBlurPool2d")?.write_to(layout, y)
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
    op.output_shape(shape)?;
    let b = blur_map(op.blur(), &Map::from_slice(shape, layout, x)?, "BlurConv2d")?;
    let bias = bias.map(widen);
    conv_map(
        op.conv(),
        op.stride(),
        &b,
        &widen(weight),
        bias.as_deref(),
        "BlurConv2d",
    )?
    .write_to(layout, y)
}

/// Runs any operator on host buffers in `layout` (`weight`/`bias` only for the conv
/// operators, else ignored and may be empty); `y` receives `op.output_shape(shape)`.
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
