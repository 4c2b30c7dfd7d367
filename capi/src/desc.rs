//! Descriptor ↔ the main crate's operators, and the other argument conversions.

use blurpool_core::{
    Activation, Blur, BlurConv2d, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType,
    Filter, Layout, MaxBlurPool2d, MaxPool2d, Operator, Pad2d, PadMode, Shape4,
};

use crate::status::{CResult, Failure};
use crate::types::{blurpool_op_desc, blurpool_op_kind::*, BLURPOOL_MAX_TAPS};

/// A descriptor field that must be ≥ 0.
fn count(what: &str, v: i32) -> CResult<usize> {
    usize::try_from(v).map_err(|_| Failure::invalid(format!("{what} is {v}; it must be ≥ 0")))
}

/// Element type from its `blurpool_dtype` value.
pub(crate) fn dtype(v: i32) -> CResult<DType> {
    match v {
        0 => Ok(DType::F32),
        1 => Ok(DType::F16),
        2 => Ok(DType::BF16),
        _ => Err(Failure::invalid(format!(
            "dtype {v} is not a blurpool_dtype (0 = F32, 1 = F16, 2 = BF16)"
        ))),
    }
}

/// Layout from its `blurpool_layout` value.
pub(crate) fn layout(v: i32) -> CResult<Layout> {
    match v {
        0 => Ok(Layout::Nchw),
        1 => Ok(Layout::Nhwc),
        _ => Err(Failure::invalid(format!(
            "layout {v} is not a blurpool_layout (0 = NCHW, 1 = NHWC)"
        ))),
    }
}

/// Pad mode from its `blurpool_pad_mode` value (the core's `PadMode::code`, asserted equal to
/// the header's enum in capi/src/tests.rs).
pub(crate) fn pad_mode(v: i32) -> CResult<PadMode> {
    PadMode::from_code(v).ok_or_else(|| {
        Failure::invalid(format!(
            "pad mode {v} is not a blurpool_pad_mode (0 = ZERO, 1 = REFLECT, 2 = REPLICATE)"
        ))
    })
}

/// Activation from its `blurpool_activation` value (the core's `Activation::code`).
fn activation(v: i32) -> CResult<Activation> {
    Activation::from_code(v).ok_or_else(|| {
        Failure::invalid(format!(
            "conv_activation {v} is not a blurpool_activation (0 = IDENTITY, 1 = RELU, 2 = RELU6)"
        ))
    })
}

/// The logical N, C, H, W of a 4-element shape array.
pub(crate) fn shape(s: [i64; 4]) -> CResult<Shape4> {
    let mut d = [0usize; 4];
    for (i, (&v, name)) in s.iter().zip(["N", "C", "H", "W"]).enumerate() {
        d[i] = usize::try_from(v).map_err(|_| {
            Failure::invalid(format!("input shape {s:?}: {name} is {v}; it must be ≥ 0"))
        })?;
    }
    Ok(Shape4::new(d[0], d[1], d[2], d[3]))
}

/// A shape as the 4-element array written back to C.
pub(crate) fn shape_array(s: Shape4) -> CResult<[i64; 4]> {
    let mut out = [0i64; 4];
    for (o, v) in out.iter_mut().zip([s.n, s.c, s.h, s.w]) {
        *o = i64::try_from(v)
            .map_err(|_| Failure::invalid(format!("output shape {s} does not fit in int64")))?;
    }
    Ok(out)
}

fn filter(d: &blurpool_op_desc) -> CResult<Filter> {
    let mut taps: [&[f64]; 2] = [&[], &[]];
    for (slot, (len, all, name)) in taps.iter_mut().zip([
        (d.taps_y_len, &d.taps_y, "taps_y_len"),
        (d.taps_x_len, &d.taps_x, "taps_x_len"),
    ]) {
        let n = count(name, len)?;
        if !(1..=BLURPOOL_MAX_TAPS).contains(&n) {
            return Err(Failure::invalid(format!(
                "{name} is {n}; it must be 1..={BLURPOOL_MAX_TAPS}"
            )));
        }
        *slot = &all[..n];
    }
    Ok(if d.normalize != 0 {
        Filter::separable(taps[0], taps[1])?
    } else {
        Filter::unnormalized(taps[0], taps[1])?
    })
}

fn blur(d: &blurpool_op_desc) -> CResult<Blur> {
    let pad = Pad2d {
        top: count("pad_top", d.pad_top)?,
        bottom: count("pad_bottom", d.pad_bottom)?,
        left: count("pad_left", d.pad_left)?,
        right: count("pad_right", d.pad_right)?,
    };
    let stride = (
        count("stride_y", d.stride_y)?,
        count("stride_x", d.stride_x)?,
    );
    Ok(Blur::new(filter(d)?, stride, pad, pad_mode(d.pad_mode)?)?)
}

fn max_pool(d: &blurpool_op_desc) -> CResult<MaxPool2d> {
    Ok(MaxPool2d::new(
        (
            count("max_kernel_y", d.max_kernel_y)?,
            count("max_kernel_x", d.max_kernel_x)?,
        ),
        (
            count("max_pad_y", d.max_pad_y)?,
            count("max_pad_x", d.max_pad_x)?,
        ),
    )?)
}

fn conv(d: &blurpool_op_desc) -> CResult<Conv2dSpec> {
    Ok(Conv2dSpec::new(Conv2dArgs {
        in_channels: count("conv_in_channels", d.conv_in_channels)?,
        out_channels: count("conv_out_channels", d.conv_out_channels)?,
        kernel: (
            count("conv_kernel_y", d.conv_kernel_y)?,
            count("conv_kernel_x", d.conv_kernel_x)?,
        ),
        padding: (
            count("conv_pad_y", d.conv_pad_y)?,
            count("conv_pad_x", d.conv_pad_x)?,
        ),
        groups: count("conv_groups", d.conv_groups)?,
        bias: d.conv_has_bias != 0,
        activation: activation(d.conv_activation)?,
    })?)
}

/// Validates a descriptor and builds the operator it describes.
pub(crate) fn to_operator(d: &blurpool_op_desc) -> CResult<Operator> {
    let expected = std::mem::size_of::<blurpool_op_desc>();
    if d.struct_size as usize != expected {
        return Err(Failure::invalid(format!(
            "descriptor struct_size is {} but this library's blurpool_op_desc has {expected} bytes: \
             initialise it with blurpool_desc_init or a blurpool_preset_* function, and use the \
             blurpool.h that matches the library",
            d.struct_size
        )));
    }
    let op = match d.op {
        x if x == BLURPOOL_OP_MAX_POOL as i32 => Operator::MaxPool(max_pool(d)?),
        x if x == BLURPOOL_OP_BLUR_POOL as i32 => Operator::BlurPool(BlurPool2d::new(blur(d)?)),
        x if x == BLURPOOL_OP_MAX_BLUR_POOL as i32 => Operator::MaxBlurPool(MaxBlurPool2d::new(max_pool(d)?, blur(d)?)),
        x if x == BLURPOOL_OP_CONV_BLUR_POOL as i32 => Operator::ConvBlurPool(ConvBlurPool2d::new(conv(d)?, blur(d)?)),
        x if x == BLURPOOL_OP_BLUR_CONV as i32 => Operator::BlurConv(BlurConv2d::new(
            blur(d)?,
            conv(d)?,
            (count("conv_stride_y", d.conv_stride_y)?, count("conv_stride_x", d.conv_stride_x)?),
        )?),
        other => {
            return Err(Failure::invalid(format!(
                "op {other} is not a blurpool_op_kind (1 = MAX_POOL, 2 = BLUR_POOL, 3 = MAX_BLUR_POOL, \
                 4 = CONV_BLUR_POOL, 5 = BLUR_CONV)"
            )))
        }
    };
    Ok(op)
}

fn small(what: &str, v: usize) -> CResult<i32> {
    i32::try_from(v).map_err(|_| {
        Failure::invalid(format!(
            "{what} = {v} does not fit in the descriptor's int32"
        ))
    })
}

fn write_blur(d: &mut blurpool_op_desc, b: &Blur) -> CResult<()> {
    let f = b.filter();
    // The descriptor holds the effective weights. For a normalised filter they already sum to
    // one and renormalising them is exact for the binomial presets (sums are powers of two).
    // The crate exposes no raw taps (see the report), so custom normalised filters round-trip
    // through their weights.
    let (wy, wx) = (f.weights_y(), f.weights_x());
    d.taps_y[..wy.len()].copy_from_slice(wy);
    d.taps_x[..wx.len()].copy_from_slice(wx);
    d.taps_y_len = small("taps_y_len", wy.len())?;
    d.taps_x_len = small("taps_x_len", wx.len())?;
    d.normalize = i32::from(f.is_normalized());
    d.pad_mode = b.mode().code();
    let p = b.pad();
    d.pad_top = small("pad_top", p.top)?;
    d.pad_bottom = small("pad_bottom", p.bottom)?;
    d.pad_left = small("pad_left", p.left)?;
    d.pad_right = small("pad_right", p.right)?;
    let (sy, sx) = b.stride();
    d.stride_y = small("stride_y", sy)?;
    d.stride_x = small("stride_x", sx)?;
    Ok(())
}

fn write_max(d: &mut blurpool_op_desc, m: &MaxPool2d) -> CResult<()> {
    let ((ky, kx), (py, px)) = (m.kernel(), m.padding());
    d.max_kernel_y = small("max_kernel_y", ky)?;
    d.max_kernel_x = small("max_kernel_x", kx)?;
    d.max_pad_y = small("max_pad_y", py)?;
    d.max_pad_x = small("max_pad_x", px)?;
    Ok(())
}

fn write_conv(d: &mut blurpool_op_desc, c: &Conv2dSpec, stride: (usize, usize)) -> CResult<()> {
    d.conv_in_channels = small("conv_in_channels", c.in_channels())?;
    d.conv_out_channels = small("conv_out_channels", c.out_channels())?;
    d.conv_kernel_y = small("conv_kernel_y", c.kernel().0)?;
    d.conv_kernel_x = small("conv_kernel_x", c.kernel().1)?;
    d.conv_pad_y = small("conv_pad_y", c.padding().0)?;
    d.conv_pad_x = small("conv_pad_x", c.padding().1)?;
    d.conv_groups = small("conv_groups", c.groups())?;
    d.conv_has_bias = i32::from(c.has_bias());
    d.conv_activation = c.activation().code();
    d.conv_stride_y = small("conv_stride_y", stride.0)?;
    d.conv_stride_x = small("conv_stride_x", stride.1)?;
    Ok(())
}

/// The descriptor of an operator (what the preset functions return). Fields the operator does
/// not use keep `blurpool_desc_init`'s neutral values (stride 1, groups 1, ...), so switching
/// `op` by hand (e.g. a blur preset turned into CONV_BLUR_POOL) starts from sane values.
pub(crate) fn from_operator(op: &Operator) -> CResult<blurpool_op_desc> {
    let kind = match op {
        Operator::MaxPool(_) => BLURPOOL_OP_MAX_POOL,
        Operator::BlurPool(_) => BLURPOOL_OP_BLUR_POOL,
        Operator::MaxBlurPool(_) => BLURPOOL_OP_MAX_BLUR_POOL,
        Operator::ConvBlurPool(_) => BLURPOOL_OP_CONV_BLUR_POOL,
        Operator::BlurConv(_) => BLURPOOL_OP_BLUR_CONV,
    };
    let mut d = init(kind as i32)?;
    match op {
        Operator::MaxPool(m) => write_max(&mut d, m)?,
        Operator::BlurPool(b) => write_blur(&mut d, b.blur())?,
        Operator::MaxBlurPool(mb) => {
            write_max(&mut d, mb.max_pool())?;
            write_blur(&mut d, mb.blur())?;
        }
        Operator::ConvBlurPool(cb) => {
            write_conv(&mut d, cb.conv(), (1, 1))?;
            write_blur(&mut d, cb.blur())?;
        }
        Operator::BlurConv(bc) => {
            write_conv(&mut d, bc.conv(), bc.stride())?;
            write_blur(&mut d, bc.blur())?;
        }
    }
    Ok(d)
}

/// The neutral descriptor `blurpool_desc_init` gives for `op`.
pub(crate) fn init(op: i32) -> CResult<blurpool_op_desc> {
    let mut d = blurpool_op_desc::zeroed();
    if !(BLURPOOL_OP_MAX_POOL as i32..=BLURPOOL_OP_BLUR_CONV as i32).contains(&op) {
        return Err(Failure::invalid(format!(
            "op {op} is not a blurpool_op_kind (1 = MAX_POOL ... 5 = BLUR_CONV)"
        )));
    }
    d.op = op;
    d.taps_y[0] = 1.0;
    d.taps_x[0] = 1.0;
    d.taps_y_len = 1;
    d.taps_x_len = 1;
    d.normalize = 1;
    d.stride_y = 1;
    d.stride_x = 1;
    d.max_kernel_y = 1;
    d.max_kernel_x = 1;
    d.conv_groups = 1;
    d.conv_stride_y = 1;
    d.conv_stride_x = 1;
    Ok(d)
}
