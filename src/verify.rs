//! Kernel verification against the CPU reference, shared by the GPU tests (tests/gpu.rs),
//! the CLI's `verify` and the GPU bundle.
//!
//! Tolerance per element (the output is rounded once to T on both sides; the kernel
//! accumulates in f32, the reference in f64):
//!   |gpu − ref| ≤ rtol_T·|ref| + 2·n·2⁻²⁴·S + tiny_T
//! where n is the number of products summed for that output, S the same sum over absolute
//! values (so cancellation is judged against the size of the terms, not the tiny result),
//! rtol_T = 1e-5 for f32 and one ulp (2⁻¹⁰ for f16, 2⁻⁷ for bf16) for the half types, and
//! tiny_T the smallest subnormal step of T. Dense max is a selection: it must be bit-exact.
//! Inputs are random, never zero; outputs are poisoned before each launch.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr};
use rand::rngs::StdRng;
use rand::Rng;

use crate::cuda::{open_device, Kernels};
use crate::ops::Operator;
use crate::{
    reference, Activation, Blur, BlurConv2d, BlurPool2d, Conv2dSpec, ConvBlurPool2d, DType,
    Element, Filter, Layout, MaxBlurPool2d, Shape4,
};

/// A device, its kernels and a stream, or the reason there is none.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub kernels: Arc<Kernels>,
    pub stream: Arc<CudaStream>,
}

impl Gpu {
    /// Opens device `ordinal`, loads the kernels and creates a stream; Err says why not (no
    /// driver, no device, kernels that do not load).
    pub fn open(ordinal: usize) -> crate::Result<Gpu> {
        let ctx = open_device(ordinal)?;
        let kernels = Kernels::for_context(&ctx)?;
        let stream = ctx.new_stream()?;
        Ok(Gpu {
            ctx,
            kernels,
            stream,
        })
    }
}

/// Random values in ±[0.25, 2): never zero, both signs, exactly representable after rounding.
pub fn random_vec<T: Element>(rng: &mut StdRng, n: usize, scale: f64) -> Vec<T> {
    (0..n)
        .map(|_| {
            let m: f64 = rng.random_range(0.25..2.0);
            let s = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
            T::from_f64(s * m * scale)
        })
        .collect()
}

/// A value no correct output takes, so an element the kernel fails to write is caught.
pub const POISON: f64 = -60000.0;

/// The same operator on absolute values (|taps|, identity activation): run on |x|, |w|, |b| it
/// gives S, the sum of the absolute terms of each output, for the tolerance.
pub fn abs_operator(op: &Operator) -> Operator {
    let abs_blur = |b: &Blur| {
        let f = b.filter();
        let wy: Vec<f64> = f.weights_y().iter().map(|v| v.abs()).collect();
        let wx: Vec<f64> = f.weights_x().iter().map(|v| v.abs()).collect();
        Blur::new(
            Filter::unnormalized(&wy, &wx).unwrap(),
            b.stride(),
            b.pad(),
            b.mode(),
        )
        .unwrap()
    };
    let abs_conv = |c: &Conv2dSpec| {
        Conv2dSpec::new(
            c.in_channels(),
            c.out_channels(),
            c.kernel(),
            c.padding(),
            c.groups(),
            c.has_bias(),
            Activation::Identity,
        )
        .unwrap()
    };
    match op {
        Operator::MaxPool(m) => Operator::MaxPool(*m),
        Operator::BlurPool(b) => Operator::BlurPool(BlurPool2d::new(abs_blur(b.blur()))),
        Operator::MaxBlurPool(m) => {
            Operator::MaxBlurPool(MaxBlurPool2d::new(*m.max_pool(), abs_blur(m.blur())))
        }
        Operator::ConvBlurPool(c) => {
            Operator::ConvBlurPool(ConvBlurPool2d::new(abs_conv(c.conv()), abs_blur(c.blur())))
        }
        Operator::BlurConv(c) => Operator::BlurConv(
            BlurConv2d::new(abs_blur(c.blur()), abs_conv(c.conv()), c.stride()).unwrap(),
        ),
    }
}

/// Products summed per output.
pub fn terms(op: &Operator) -> f64 {
    let taps = |b: &Blur| (b.filter().size_y() * b.filter().size_x()) as f64;
    let conv =
        |c: &Conv2dSpec| ((c.in_channels() / c.groups()) * c.kernel().0 * c.kernel().1 + 1) as f64;
    match op {
        Operator::MaxPool(_) => 0.0,
        Operator::BlurPool(b) => taps(b.blur()),
        Operator::MaxBlurPool(m) => taps(m.blur()),
        Operator::ConvBlurPool(c) => taps(c.blur()) * conv(c.conv()),
        Operator::BlurConv(c) => taps(c.blur()) * conv(c.conv()),
    }
}

pub fn rtol<T: Element>() -> f64 {
    match T::DTYPE {
        DType::F32 => 1e-5,
        _ => 2.0 * T::UNIT_ROUNDOFF,
    }
}

pub fn tiny<T: Element>() -> f64 {
    match T::DTYPE {
        DType::F32 => 1e-38,
        DType::F16 => 6e-8,
        DType::BF16 => 1e-38,
    }
}

/// The inputs of one case, on the host.
pub struct CaseData<T> {
    pub x: Vec<T>,
    pub w: Vec<T>,
    pub b: Option<Vec<T>>,
}

impl<T: Element> CaseData<T> {
    pub fn random(rng: &mut StdRng, op: &Operator, shape: Shape4) -> Self {
        let x = random_vec(rng, shape.numel().unwrap(), 1.0);
        let (w, b) = match op.conv() {
            Some(c) => {
                let fan_in = (c.in_channels() / c.groups() * c.kernel().0 * c.kernel().1) as f64;
                let w = random_vec(rng, c.weight_len(), 1.5 / fan_in.sqrt());
                let b = c.has_bias().then(|| random_vec(rng, c.bias_len(), 0.5));
                (w, b)
            }
            None => (Vec::new(), None),
        };
        CaseData { x, w, b }
    }
}

/// Uploads, poisons, runs, downloads. `raw` goes through the raw-pointer entry instead.
pub fn run_gpu<T: Element>(
    g: &Gpu,
    stream: &Arc<CudaStream>,
    op: &Operator,
    shape: Shape4,
    layout: Layout,
    data: &CaseData<T>,
    raw: bool,
) -> crate::Result<Vec<T>> {
    let out = op.output_shape(shape)?;
    // cuMemAlloc refuses 0 bytes: allocate at least one element and pass exact-length views.
    let upload = |v: &[T]| -> crate::Result<CudaSlice<T>> {
        let mut padded = v.to_vec();
        if padded.is_empty() {
            padded.push(T::default());
        }
        Ok(stream.clone_htod(&padded)?)
    };
    let x_buf = upload(&data.x)?;
    let x = x_buf.slice(0..data.x.len());
    let w_buf = if data.w.is_empty() {
        None
    } else {
        Some(upload(&data.w)?)
    };
    let b_buf = match &data.b {
        Some(b) => Some(upload(b)?),
        None => None,
    };
    let n_out = out.numel()?;
    let mut y_buf = upload(&vec![T::from_f64(POISON); n_out])?;
    let mut y = y_buf.slice_mut(0..n_out);
    if raw {
        let (xp, _gx) = x.device_ptr(stream);
        let (wp, _gw) = match &w_buf {
            Some(w) => {
                let (p, g) = w.device_ptr(stream);
                (p, Some(g))
            }
            None => (0, None),
        };
        let (bp, _gb) = match &b_buf {
            Some(b) => {
                let (p, g) = b.device_ptr(stream);
                (p, Some(g))
            }
            None => (0, None),
        };
        let (yp, _gy) = cudarc::driver::DevicePtrMut::device_ptr_mut(&mut y, stream);
        // SAFETY: all pointers are live allocations of this context with the lengths the
        // shapes need (uploaded above), kept alive until after the synchronize below.
        unsafe { op.forward_raw(&g.kernels, stream, T::DTYPE, shape, layout, xp, wp, bp, yp) }?;
    } else {
        let wv = w_buf.as_ref().map(|w| w as &dyn DevicePtr<T>);
        let bv = b_buf.as_ref().map(|b| b as &dyn DevicePtr<T>);
        op.forward(&g.kernels, stream, shape, layout, &x, wv, bv, &mut y)?;
    }
    stream.synchronize()?;
    let all = stream.clone_dtoh(&y_buf)?;
    Ok(all[..n_out].to_vec())
}

/// Something that runs an operator's kernel on host data and returns the output: the GPU, or
/// the host emulator of the kernels (emu/, tests only). Err is the message of the refusal.
pub trait Runner {
    fn run<T: Element>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
    ) -> Result<Vec<T>, String>;
}

impl Runner for Gpu {
    fn run<T: Element>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
    ) -> Result<Vec<T>, String> {
        run_gpu(self, &self.stream, op, shape, layout, data, false).map_err(|e| e.to_string())
    }
}

/// Compares one case; Err describes the first bad element.
pub fn check_case<T: Element>(
    g: &impl Runner,
    rng: &mut StdRng,
    op: &Operator,
    shape: Shape4,
    layout: Layout,
) -> Result<(), String> {
    let ctx = || format!("{} {:?} {} {:?} {op:?}", op.name(), T::DTYPE, shape, layout);
    let data = CaseData::<T>::random(rng, op, shape);
    let out = match op.output_shape(shape) {
        Ok(out) => out,
        Err(e) => {
            // Invalid for this shape: the GPU entry must refuse it the same way.
            return match g.run(op, shape, layout, &data) {
                Err(ge) if ge == e.to_string() => Ok(()),
                other => Err(format!(
                    "{}: reference refuses ({e}) but GPU gave {:?}",
                    ctx(),
                    other.map(|_| ())
                )),
            };
        }
    };
    let mut want = vec![T::default(); out.numel().unwrap()];
    reference::run(
        op,
        shape,
        layout,
        &data.x,
        &data.w,
        data.b.as_deref(),
        &mut want,
    )
    .map_err(|e| format!("{}: {e}", ctx()))?;
    let abs = |v: &[T]| {
        v.iter()
            .map(|e| T::from_f64(e.to_f64().abs()))
            .collect::<Vec<T>>()
    };
    let mut sums = vec![T::default(); want.len()];
    let ab = data.b.as_deref().map(abs);
    reference::run(
        &abs_operator(op),
        shape,
        layout,
        &abs(&data.x),
        &abs(&data.w),
        ab.as_deref(),
        &mut sums,
    )
    .unwrap();
    let got = g
        .run(op, shape, layout, &data)
        .map_err(|e| format!("{}: {e}", ctx()))?;
    let n = terms(op);
    for (k, ((&gv, &wv), &sv)) in got.iter().zip(&want).zip(&sums).enumerate() {
        let (gf, wf) = (gv.to_f64(), wv.to_f64());
        if gf == POISON {
            return Err(format!("{}: element {k} was never written", ctx()));
        }
        let ok = if n == 0.0 {
            gv == wv || (gf.is_nan() && wf.is_nan())
        } else {
            let tol = rtol::<T>() * wf.abs() + 2.0 * n * 2f64.powi(-24) * sv.to_f64() + tiny::<T>();
            (gf - wf).abs() <= tol || (gf.is_nan() && wf.is_nan()) || gf == wf
        };
        if !ok {
            return Err(format!(
                "{}: element {k}: gpu {gf}, reference {wf} (S = {})",
                ctx(),
                sv.to_f64()
            ));
        }
    }
    Ok(())
}
