//! CPU reference gradients: the backward oracle every GPU backward kernel is tested against.
//!
//! Same style as the forward [`crate::reference`]: the inputs are widened to f64 in a plain NCHW
//! [`Map`]; what the backward needs from the forward is recomputed (the argmax of each max
//! window by the forward's own scan, the pre-activation conv output with the reference's
//! `conv_map`, BlurConv2d's blurred map with `blur_map`); each stage's backward is a direct
//! loop over its definition that *scatters* the output gradient back along exactly the terms
//! of the forward sum; and only the final gradients are rounded to the element type (once per
//! element).
//!
//! Conventions (PyTorch's; checked against torch 2.15 in the golden venv, see
//! scripts/gen_golden_grad.py and tests/golden/README.md, "Gradients"):
//!
//! * **Blur + subsample** is linear; its backward is its transpose. Every tap that read
//!   `xp[i·sy+u, j·sx+v]` adds `wy[u]·wx[v]·dy[i,j]` to the source pixel that padded cell came
//!   from: reflect and replicate fold the contribution back onto the mirrored / clamped index
//!   (PyTorch's ReflectionPad2d / ReplicationPad2d backward), zero padding drops it.
//! * **Max (stride 1)**: the gradient of each window goes to its argmax, found exactly as
//!   PyTorch's `max_pool2d` forward finds the index it saves: the in-bounds cells are scanned
//!   row-major with `v > best || isnan(v)` starting from `best = -inf` and the index of the
//!   *first in-bounds cell* of the window. So among equal maxima the first wins, a NaN takes
//!   the index and later NaNs overwrite it, padding never wins, and a window whose in-bounds
//!   cells are all −inf sends its gradient to its first in-bounds cell. Verified in torch
//!   (CPU, float32 and float64, NCHW and channels_last, `return_indices=True` and autograd):
//!   ties `[[1,1],[1,1]]` → index 0; NaN windows → the last NaN; all −inf with k=2, p=1 on
//!   3×3 → indices `[[0,0,1,2],[0,0,1,2],[3,3,4,5],[6,6,7,8]]`. The gradients of windows that
//!   share an argmax add up (PyTorch's backward is that gather).
//! * **Activations** (derivative evaluated at the pre-activation z):
//!   - relu: `z <= 0 → 0`, else the gradient passes (PyTorch `threshold_backward(g, relu(z),
//!     0)`). Verified: relu'(0) = relu'(−0) = 0, relu'(tiny > 0) = 1, and relu'(NaN) = 1 on
//!     every CPU path (scalar and vectorised) in float32 and float64.
//!   - relu6: `z <= 0 || z >= 6 → 0`, else the gradient passes (PyTorch `hardtanh_backward(g,
//!     z, 0, 6)`). Verified: relu6'(0) = relu6'(6) = 0, relu6'(5.999) = relu6'(tiny) = 1.
//!     For z = NaN PyTorch itself is inconsistent: the CUDA kernel and the CPU scalar loop use
//!     this formula (NaN passes the gradient), but the CPU *vectorised* loop computes
//!     `(z > 0) & (z < 6)` (NaN gives 0), so on an AVX-512 CPU a NaN gets 1 in a tensor of 7
//!     float32 elements and 0 in one of 16. We follow the formula above (CUDA, scalar CPU).
//!   - identity: 1.
//! * **Convolution** (cross-correlation, zero padding, groups, stride): `dx` is the transposed
//!   convolution of dz, `dweight[co,ci,r,s] = Σ dz[n,co,i,j]·x[n, g·cin_g+ci, i·sy+r−py,
//!   j·sx+s−px]`, `dbias[co] = Σ dz[n,co,·,·]`; padded taps contribute nothing.
//!
//! The typed entry points take the input shape, the layout (shared by x, dy and dx), x, the
//! conv weight (Cout×Cin/groups×kh×kw, PyTorch's layout whatever the activations' layout) and
//! bias, and the output gradient dy; they *overwrite* dx (and dweight, dbias). Every buffer
//! length is checked ([`crate::Error::BufferLength`]); shape problems are the forward's errors.
//! [`backward_map`] and the `*_map_backward` functions are the same computation on f64 maps,
//! before the rounding (the finite-difference tests use them).
//!
//! ```
//! use blurpool::{reference::grad, MaxPool2d, Layout, Operator, Shape4};
//! // A 2×2 max over [[1, 3], [2, 0]]: the gradient goes to the 3.
//! let op = Operator::from(MaxPool2d::new((2, 2), (0, 0))?);
//! let (x, dy) = ([1f32, 3.0, 2.0, 0.0], [1f32]);
//! let mut dx = [0f32; 4];
//! grad::backward(&op, Shape4::new(1, 1, 2, 2), Layout::Nchw, &x, &[], None, &dy, &mut dx, &mut [], None)?;
//! assert_eq!(dx, [0.0, 1.0, 0.0, 0.0]);
//! # Ok::<(), blurpool::Error>(())
//! ```

use crate::error::{check_len, Error, Result};
use crate::ops::{
    Activation, Blur, BlurConv2d, BlurPool2d, Conv2dSpec, ConvBlurPool2d, MaxBlurPool2d, MaxPool2d,
    Operator,
};
use crate::reference::{alloc_f64, blur_map, check_bias, conv_map, Map};
use crate::tensor::{Element, Layout, Shape4};

/// Index of (n, c, y, x) in an NCHW [`Map`] of `shape`.
#[inline]
fn at(shape: Shape4, n: usize, c: usize, y: usize, x: usize) -> usize {
    shape.offset(Layout::Nchw, n, c, y, x)
}

/// The activation's derivative at the pre-activation value `z` (PyTorch's conventions, see the
/// module docs): relu: 0 if z ≤ 0; relu6: 0 if z ≤ 0 or z ≥ 6; otherwise (NaN included) 1.
#[inline]
pub fn activation_grad(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if z <= 0.0 {
                0.0
            } else {
                1.0
            }
        }
        Activation::Relu6 => {
            if z <= 0.0 || z >= 6.0 {
                0.0
            } else {
                1.0
            }
        }
    }
}

/// Position (y, x) of the cell that owns the gradient of dense-max window (i, j): PyTorch's
/// argmax (first in-bounds cell to start, then `v > best || isnan(v)`, row-major).
pub fn max_window_argmax(
    op: &MaxPool2d,
    x: &Map,
    n: usize,
    c: usize,
    i: usize,
    j: usize,
) -> Option<(usize, usize)> {
    let (kh, kw) = op.kernel();
    let (py, px) = op.padding();
    let mut best = f64::NEG_INFINITY;
    let mut arg = None;
    for u in 0..kh {
        for v in 0..kw {
            let (y, xx) = ((i + u) as i64 - py as i64, (j + v) as i64 - px as i64);
            if y < 0 || xx < 0 || y >= x.shape().h as i64 || xx >= x.shape().w as i64 {
                continue; // padding never wins
            }
            let (y, xx) = (y as usize, xx as usize);
            if arg.is_none() {
                arg = Some((y, xx)); // PyTorch starts from the first in-bounds cell
            }
            let val = x.data()[at(x.shape(), n, c, y, xx)];
            if val > best || val.is_nan() {
                best = val;
                arg = Some((y, xx));
            }
        }
    }
    arg
}

/// Backward of the dense max: `dm` is the gradient of the max map (NCHW, the map's shape);
/// returns the gradient of `x`.
pub fn max_map_backward(op: &MaxPool2d, x: &Map, dm: &[f64]) -> Result<Map> {
    let ms = op.output_shape(x.shape())?;
    check_len("max-map gradient", ms.numel()?, dm.len())?;
    let mut dx = Map::zeros(x.shape())?;
    for n in 0..ms.n {
        for c in 0..ms.c {
            for i in 0..ms.h {
                for j in 0..ms.w {
                    // Every window has an in-bounds cell (padding ≤ window/2), so this is Some.
                    if let Some((y, xx)) = max_window_argmax(op, x, n, c, i, j) {
                        dx.data_mut()[at(x.shape(), n, c, y, xx)] += dm[at(ms, n, c, i, j)];
                    }
                }
            }
        }
    }
    Ok(dx)
}

/// Backward of blur + subsample (its transpose): `dy` is the gradient of the blurred map (NCHW,
/// the blur's output shape for `input`); returns the gradient of the map of shape `input`.
pub fn blur_map_backward(
    blur: &Blur,
    input: Shape4,
    dy: &[f64],
    what: &'static str,
) -> Result<Map> {
    let (ho, wo) = blur.output_hw(what, input.h, input.w)?;
    let out = Shape4::new(input.n, input.c, ho, wo);
    check_len("output gradient (dy)", out.numel()?, dy.len())?;
    let (wy, wx) = (blur.filter().weights_y(), blur.filter().weights_x());
    let (sy, sx) = blur.stride();
    let pad = blur.pad();
    let mode = blur.mode();
    let mut dx = Map::zeros(input)?;
    for n in 0..out.n {
        for c in 0..out.c {
            for i in 0..ho {
                for j in 0..wo {
                    let g = dy[at(out, n, c, i, j)];
                    for (u, &a) in wy.iter().enumerate() {
                        // The same source index the forward read: reflect/replicate fold back
                        // onto it, zero padding (None) drops the contribution.
                        let Some(r) =
                            mode.source_index((i * sy + u) as i64 - pad.top as i64, input.h)
                        else {
                            continue;
                        };
                        for (v, &b) in wx.iter().enumerate() {
                            let Some(q) =
                                mode.source_index((j * sx + v) as i64 - pad.left as i64, input.w)
                            else {
                                continue;
                            };
                            dx.data_mut()[at(input, n, c, r, q)] += a * b * g;
                        }
                    }
                }
            }
        }
    }
    Ok(dx)
}

/// Gradients in f64: of the input (an NCHW [`Map`]) and, for the conv operators, of the weight
/// (Cout×Cin/groups×kh×kw) and the bias (Cout, when there is one).
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    /// Gradient of the input.
    pub dx: Map,
    /// Gradient of the weight (empty for the operators without a convolution).
    pub dweight: Vec<f64>,
    /// Gradient of the bias, when the convolution has one.
    pub dbias: Option<Vec<f64>>,
}

/// Backward of [`conv_map`] (conv at `stride`, + bias, then the activation): `dy` is the
/// gradient of the activated output (NCHW, the conv's output shape).
pub fn conv_map_backward(
    conv: &Conv2dSpec,
    stride: (usize, usize),
    x: &Map,
    weight: &[f64],
    bias: Option<&[f64]>,
    dy: &[f64],
    what: &'static str,
) -> Result<Grads> {
    // The pre-activation z, from the reference forward with the activation switched off.
    let z = conv_map(&conv.linear(), stride, x, weight, bias, what)?;
    let out = z.shape();
    check_len("output gradient (dy)", out.numel()?, dy.len())?;
    let act = conv.activation();
    let (kh, kw) = conv.kernel();
    let (py, px) = conv.padding();
    let (sy, sx) = stride;
    let cin_g = conv.in_channels() / conv.groups();
    let cout_g = conv.out_channels() / conv.groups();
    let mut dx = Map::zeros(x.shape())?;
    let mut dweight = alloc_f64(conv.weight_len())?;
    let mut dbias = match conv.has_bias() {
        true => Some(alloc_f64(conv.out_channels())?),
        false => None,
    };
    for n in 0..out.n {
        for co in 0..out.c {
            let g = co / cout_g;
            for i in 0..out.h {
                for j in 0..out.w {
                    let k = at(out, n, co, i, j);
                    let dz = dy[k] * activation_grad(act, z.data()[k]);
                    if let Some(db) = dbias.as_mut() {
                        db[co] += dz;
                    }
                    for ci in 0..cin_g {
                        for r in 0..kh {
                            let y = (i * sy + r) as i64 - py as i64;
                            if y < 0 || y >= x.shape().h as i64 {
                                continue; // zero padding: no input, no weight gradient
                            }
                            for s in 0..kw {
                                let xx = (j * sx + s) as i64 - px as i64;
                                if xx < 0 || xx >= x.shape().w as i64 {
                                    continue;
                                }
                                let wi = ((co * cin_g + ci) * kh + r) * kw + s;
                                let xi = at(x.shape(), n, g * cin_g + ci, y as usize, xx as usize);
                                dx.data_mut()[xi] += weight[wi] * dz;
                                dweight[wi] += x.data()[xi] * dz;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(Grads { dx, dweight, dbias })
}

/// MaxBlurPool2d backward on maps: blur transpose onto the max map, then each window's
/// gradient to its argmax.
pub fn max_blur_pool_map_backward(op: &MaxBlurPool2d, x: &Map, dy: &[f64]) -> Result<Map> {
    let ms = op.max_map_shape(x.shape())?;
    let dm = blur_map_backward(op.blur(), ms, dy, "MaxBlurPool2d")?;
    max_map_backward(op.max_pool(), x, dm.data())
}

/// ConvBlurPool2d backward on maps: blur transpose onto act(z), then the conv (+ act) backward.
pub fn conv_blur_pool_map_backward(
    op: &ConvBlurPool2d,
    x: &Map,
    weight: &[f64],
    bias: Option<&[f64]>,
    dy: &[f64],
) -> Result<Grads> {
    let zs = op.conv_map_shape(x.shape())?;
    let da = blur_map_backward(op.blur(), zs, dy, "ConvBlurPool2d")?;
    conv_map_backward(
        op.conv(),
        (1, 1),
        x,
        weight,
        bias,
        da.data(),
        "ConvBlurPool2d",
    )
}

/// BlurConv2d backward on maps: the strided conv (+ act) backward on the blurred map, then the
/// blur transpose of its input gradient.
pub fn blur_conv_map_backward(
    op: &BlurConv2d,
    x: &Map,
    weight: &[f64],
    bias: Option<&[f64]>,
    dy: &[f64],
) -> Result<Grads> {
    op.blur_map_shape(x.shape())?;
    let b = blur_map(op.blur(), x, "BlurConv2d")?;
    let mut grads = conv_map_backward(op.conv(), op.stride(), &b, weight, bias, dy, "BlurConv2d")?;
    grads.dx = blur_map_backward(op.blur(), x.shape(), grads.dx.data(), "BlurConv2d")?;
    Ok(grads)
}

/// Gradients of any operator on f64 maps: `x` is the input, `dy` the output gradient (NCHW, the
/// operator's output shape). `weight`/`bias` are used by the conv operators only.
pub fn backward_map(
    op: &Operator,
    x: &Map,
    weight: &[f64],
    bias: Option<&[f64]>,
    dy: &[f64],
) -> Result<Grads> {
    let out = op.output_shape(x.shape())?;
    check_len("output gradient (dy)", out.numel()?, dy.len())?;
    let plain = |dx| {
        Ok(Grads {
            dx,
            dweight: Vec::new(),
            dbias: None,
        })
    };
    match op {
        Operator::MaxPool(op) => plain(max_map_backward(op, x, dy)?),
        Operator::BlurPool(op) => plain(blur_map_backward(op.blur(), x.shape(), dy, "BlurPool2d")?),
        Operator::MaxBlurPool(op) => plain(max_blur_pool_map_backward(op, x, dy)?),
        Operator::ConvBlurPool(op) => conv_blur_pool_map_backward(op, x, weight, bias, dy),
        Operator::BlurConv(op) => blur_conv_map_backward(op, x, weight, bias, dy),
    }
}

fn widen<T: Element>(v: &[T]) -> Result<Vec<f64>> {
    let mut out = alloc_f64(v.len())?;
    for (o, e) in out.iter_mut().zip(v) {
        *o = e.to_f64();
    }
    Ok(out)
}

fn narrow_into<T: Element>(what: &'static str, v: &[f64], out: &mut [T]) -> Result<()> {
    check_len(what, v.len(), out.len())?;
    for (o, &g) in out.iter_mut().zip(v) {
        *o = T::from_f64(g);
    }
    Ok(())
}

/// Gradients of any operator. x, dy and dx are in `layout`; `weight`, `dweight` are
/// Cout×Cin/groups×kh×kw and `bias`, `dbias` Cout (PyTorch's layouts, whatever `layout` is), used
/// by the conv operators only (elsewhere they are ignored: pass `&[]`, `None`, `&mut []`, `None`).
/// `dbias` must be `Some` exactly when the convolution has a bias. The gradients are computed in
/// f64 and rounded once; dx, dweight and dbias are overwritten. Every buffer length is checked
/// before any work is done; `x` is checked for every operator, also for BlurPool2d, whose
/// gradient does not depend on it.
#[allow(clippy::too_many_arguments)] // mirrors the forward's (op, shape, layout, buffers…)
pub fn backward<T: Element>(
    op: &Operator,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    dy: &[T],
    dx: &mut [T],
    dweight: &mut [T],
    dbias: Option<&mut [T]>,
) -> Result<()> {
    let out = op.output_shape(shape)?;
    check_len("input", shape.numel()?, x.len())?;
    check_len("output gradient (dy)", out.numel()?, dy.len())?;
    check_len("input gradient (dx)", shape.numel()?, dx.len())?;
    let conv = op.conv();
    if let Some(conv) = conv {
        check_len("weight", conv.weight_len(), weight.len())?;
        check_bias(conv, bias)?;
        check_len(
            "weight gradient (dweight)",
            conv.weight_len(),
            dweight.len(),
        )?;
        match (conv.has_bias(), dbias.as_deref()) {
            (true, Some(db)) => check_len("bias gradient (dbias)", conv.bias_len(), db.len())?,
            (false, None) => {}
            (true, None) => {
                return Err(Error::BufferLength {
                    what: "bias gradient (dbias)",
                    expected: conv.bias_len(),
                    got: 0,
                })
            }
            (false, Some(db)) if !db.is_empty() => {
                return Err(Error::BufferLength {
                    what: "bias gradient (dbias)",
                    expected: 0,
                    got: db.len(),
                })
            }
            (false, Some(_)) => {
                return Err(Error::Conv(
                    "a dbias was passed but the convolution has no bias (pass None)".into(),
                ))
            }
        }
    }
    let g = Map::from_slice(out, layout, dy)?;
    let bias = bias.map(widen).transpose()?;
    let grads = backward_map(
        op,
        &Map::from_slice(shape, layout, x)?,
        &widen(weight)?,
        bias.as_deref(),
        g.data(),
    )?;
    grads.dx.write_to(layout, dx)?;
    if conv.is_some() {
        narrow_into("weight gradient (dweight)", &grads.dweight, dweight)?;
        if let (Some(g), Some(out)) = (grads.dbias.as_deref(), dbias) {
            narrow_into("bias gradient (dbias)", g, out)?;
        }
    }
    Ok(())
}

/// Gradient of dense MaxPool2d (stride 1) with respect to x.
///
/// ```
/// use blurpool::{reference::grad, Layout, MaxPool2d, Shape4};
/// // Ties: the first maximum scanned takes the gradient (PyTorch's rule).
/// let mut dx = [0f32; 4];
/// grad::max_pool_backward(&MaxPool2d::new((2, 2), (0, 0))?, Shape4::new(1, 1, 2, 2), Layout::Nchw,
///     &[7.0, 7.0, 7.0, 7.0], &[1.0], &mut dx)?;
/// assert_eq!(dx, [1.0, 0.0, 0.0, 0.0]);
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn max_pool_backward<T: Element>(
    op: &MaxPool2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    dy: &[T],
    dx: &mut [T],
) -> Result<()> {
    backward(
        &Operator::MaxPool(*op),
        shape,
        layout,
        x,
        &[],
        None,
        dy,
        dx,
        &mut [],
        None,
    )
}

/// Gradient of BlurPool2d with respect to x (the blur is linear: x is not needed).
///
/// ```
/// use blurpool::{presets::timm, reference::grad, Layout, PadMode, Shape4};
/// // The adjoint of a normalised blur keeps the total: reflect padding folds the border back.
/// let op = timm::blur_pool2d(3, 2, PadMode::Reflect)?;
/// let shape = Shape4::new(1, 1, 6, 6);
/// let mut dx = [0f32; 36];
/// grad::blur_pool_backward(&op, shape, Layout::Nchw, &[1.0; 9], &mut dx)?;
/// assert!((dx.iter().sum::<f32>() - 9.0).abs() < 1e-6);
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn blur_pool_backward<T: Element>(
    op: &BlurPool2d,
    shape: Shape4,
    layout: Layout,
    dy: &[T],
    dx: &mut [T],
) -> Result<()> {
    let out = op.output_shape(shape)?;
    check_len("output gradient (dy)", out.numel()?, dy.len())?;
    check_len("input gradient (dx)", shape.numel()?, dx.len())?;
    let g = Map::from_slice(out, layout, dy)?;
    blur_map_backward(op.blur(), shape, g.data(), "BlurPool2d")?.write_to(layout, dx)
}

/// Gradient of MaxBlurPool2d with respect to x.
///
/// ```
/// use blurpool::{presets::kornia, reference::grad, Layout, Shape4};
/// let op = kornia::max_blur_pool2d(3, 2, 2)?;
/// let x: Vec<f32> = (0..25).map(|v| v as f32).collect(); // the max of every window is its last cell
/// let mut dx = [0f32; 25];
/// grad::max_blur_pool_backward(&op, Shape4::new(1, 1, 5, 5), Layout::Nchw, &x, &[1.0; 4], &mut dx)?;
/// assert_eq!(dx[0], 0.0); // the first cell is nobody's maximum
/// # Ok::<(), blurpool::Error>(())
/// ```
pub fn max_blur_pool_backward<T: Element>(
    op: &MaxBlurPool2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    dy: &[T],
    dx: &mut [T],
) -> Result<()> {
    backward(
        &Operator::MaxBlurPool(op.clone()),
        shape,
        layout,
        x,
        &[],
        None,
        dy,
        dx,
        &mut [],
        None,
    )
}

/// Gradients of ConvBlurPool2d (conv at stride 1 → act → blur + subsample) with respect to x,
/// the weight and the bias (see [`backward`] for the buffers).
///
/// ```
/// use blurpool::{presets::timm, reference::grad, Activation, Conv2dSpec, Layout, PadMode, Shape4};
/// let conv = Conv2dSpec::depthwise(1, (1, 1), (0, 0), true, Activation::Identity)?;
/// let op = timm::conv_blur_pool(conv, 3, 2, PadMode::Reflect)?;
/// let (mut dx, mut dw, mut db) = ([0f32; 16], [0f32; 1], [0f32; 1]);
/// grad::conv_blur_pool_backward(&op, Shape4::new(1, 1, 4, 4), Layout::Nchw, &[1.0; 16], &[2.0],
///     Some(&[0.5]), &[1.0; 4], &mut dx, &mut dw, Some(&mut db))?;
/// assert_eq!(db, [4.0]); // four outputs, each a normalised blur of the bias
/// # Ok::<(), blurpool::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn conv_blur_pool_backward<T: Element>(
    op: &ConvBlurPool2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    dy: &[T],
    dx: &mut [T],
    dweight: &mut [T],
    dbias: Option<&mut [T]>,
) -> Result<()> {
    backward(
        &Operator::ConvBlurPool(op.clone()),
        shape,
        layout,
        x,
        weight,
        bias,
        dy,
        dx,
        dweight,
        dbias,
    )
}

/// Gradients of BlurConv2d (blur at stride 1 → strided conv → act) with respect to x, the weight
/// and the bias (see [`backward`] for the buffers).
///
/// ```
/// use blurpool::{presets::composer, reference::grad, Conv2dArgs, Conv2dSpec, Layout, Shape4};
/// let conv = Conv2dSpec::new(Conv2dArgs { in_channels: 1, out_channels: 1, kernel: (1, 1), bias: true, ..Default::default() })?;
/// let composer::BlurConv::BlurFirst(op) = composer::blur_conv2d(conv, (2, 2), true)? else { unreachable!() };
/// let (mut dx, mut dw, mut db) = ([0f32; 16], [0f32; 1], [0f32; 1]);
/// grad::blur_conv_backward(&op, Shape4::new(1, 1, 4, 4), Layout::Nchw, &[1.0; 16], &[1.0],
///     Some(&[0.0]), &[1.0; 4], &mut dx, &mut dw, Some(&mut db))?;
/// assert_eq!(db, [4.0]);
/// # Ok::<(), blurpool::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn blur_conv_backward<T: Element>(
    op: &BlurConv2d,
    shape: Shape4,
    layout: Layout,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    dy: &[T],
    dx: &mut [T],
    dweight: &mut [T],
    dbias: Option<&mut [T]>,
) -> Result<()> {
    backward(
        &Operator::BlurConv(op.clone()),
        shape,
        layout,
        x,
        weight,
        bias,
        dy,
        dx,
        dweight,
        dbias,
    )
}
