//! Kernel verification against the CPU reference, shared by the GPU tests (tests/gpu.rs), the
//! emulated tests (tests/emulated.rs), the CLI's `verify` and the GPU bundle.
//!
//! Tolerance per element (the output is rounded once to T on both sides; the kernel
//! accumulates in f32, the reference in f64):
//!   |gpu − ref| ≤ rtol_T·|ref| + 2·n·2⁻²⁴·S + tiny_T
//! where n is the number of products summed for that output, S the same sum over absolute
//! values (so cancellation is judged against the size of the terms, not the tiny result),
//! rtol_T = 1e-5 for f32 and one ulp (2⁻¹⁰ for f16, 2⁻⁷ for bf16) for the half types, and
//! tiny_T the smallest subnormal step of T. Dense max is a selection: it must be bit-exact.
//! Inputs are random, never zero; outputs are poisoned before each launch.

use blurpool::reference::{self, grad};
use blurpool::{
    Activation, Blur, BlurConv2d, BlurPool2d, Conv2dSpec, ConvBlurPool2d, DType, Element, Filter,
    Layout, MaxBlurPool2d, Operator, Shape4,
};
use rand::rngs::StdRng;

use crate::data::{random_vec, CaseData, TestElement, POISON};

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
    let abs_conv = |c: &Conv2dSpec| c.linear();
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

/// Relative tolerance per element type: 1e-5 for f32, one ulp for the half types.
pub fn rtol<T: Element>() -> f64 {
    match T::DTYPE {
        DType::F32 => 1e-5,
        _ => 2.0 * T::UNIT_ROUNDOFF,
    }
}

/// The smallest step of T near zero (subnormal for f16).
pub fn tiny<T: Element>() -> f64 {
    match T::DTYPE {
        DType::F32 => 1e-38,
        DType::F16 => 6e-8,
        DType::BF16 => 1e-38,
    }
}

/// Something that runs an operator's kernel on host data and returns the output: the GPU, or
/// the host emulator of the kernels (emu/, tests only). Err is the message of the refusal.
pub trait Runner {
    /// The operator's forward on `data` (x in `layout`, weights as PyTorch's).
    fn run<T: TestElement>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
    ) -> Result<Vec<T>, String>;

    /// The operator's backward for output gradient `dy`.
    fn run_backward<T: TestElement>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
        dy: &[T],
    ) -> Result<GradsOf<T>, String>;
}

/// Gradients in the element type: dx in the activations' layout, dweight and dbias (conv
/// operators; empty / None otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct GradsOf<T> {
    /// Input gradient.
    pub dx: Vec<T>,
    /// Weight gradient (conv operators; else empty).
    pub dweight: Vec<T>,
    /// Bias gradient (conv operators with a bias).
    pub dbias: Option<Vec<T>>,
}

/// Compares one case; Err describes the first bad element.
pub fn check_case<T: TestElement>(
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
    reference::forward(
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
    reference::forward(
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

/// Random inputs for a backward case. For a conv with relu/relu6, whose derivative jumps at 0
/// (and 6), inputs are redrawn until no pre-activation lies within 1e-3·max|z| of a jump, where
/// the kernel's f32 and the reference's f64 could legitimately pick different sides.
pub fn random_backward_data<T: Element>(
    rng: &mut StdRng,
    op: &Operator,
    shape: Shape4,
    layout: Layout,
) -> CaseData<T> {
    let mut data = CaseData::random(rng, op, shape);
    let Some(conv) = op.conv() else { return data };
    if conv.activation() == Activation::Identity || !matches!(op, Operator::ConvBlurPool(_)) {
        return data;
    }
    let linear = conv.linear();
    for _ in 0..100 {
        let widen = |v: &[T]| v.iter().map(|e| e.to_f64()).collect::<Vec<f64>>();
        let Ok(x) = reference::Map::from_slice(shape, layout, &data.x) else {
            return data;
        };
        let b = data.b.as_deref().map(widen);
        let Ok(z) = reference::conv_map(&linear, (1, 1), &x, &widen(&data.w), b.as_deref(), "")
        else {
            return data;
        };
        let top = z.data().iter().fold(0f64, |m, v| m.max(v.abs()));
        let delta = 1e-3 * top;
        let near = |v: f64| v.abs() <= delta || (v - 6.0).abs() <= delta;
        if !z.data().iter().any(|&v| near(v)) {
            break;
        }
        data = CaseData::random(rng, op, shape);
    }
    data
}

/// Compares one backward case (dx, and dweight/dbias for the conv operators) against the CPU
/// reference ([`blurpool::reference::grad`]) with the tolerance of the forward: rtol_T·|ref| +
/// 2·n·2⁻²⁴·S + tiny_T, S the same gradient computed on absolute values (|taps|, |w|, |dy|, and
/// |x| where x is a factor rather than a selector), n a bound on the terms per element.
pub fn check_backward_case<T: TestElement>(
    r: &impl Runner,
    rng: &mut StdRng,
    op: &Operator,
    shape: Shape4,
    layout: Layout,
) -> Result<(), String> {
    let ctx = || {
        format!(
            "backward {} {:?} {} {:?} {op:?}",
            op.name(),
            T::DTYPE,
            shape,
            layout
        )
    };
    let data = random_backward_data::<T>(rng, op, shape, layout);
    let out = match op.output_shape(shape) {
        Ok(out) => out,
        Err(e) => {
            return match r.run_backward(op, shape, layout, &data, &[]) {
                Err(ge) if ge == e.to_string() => Ok(()),
                other => Err(format!(
                    "{}: reference refuses ({e}) but the kernels gave {:?}",
                    ctx(),
                    other.map(|_| ())
                )),
            }
        }
    };
    let dy: Vec<T> = random_vec(rng, out.numel().unwrap(), 1.0);
    let (wlen, blen) = op.conv().map_or((0, 0), |c| (c.weight_len(), c.bias_len()));
    let reference_grads = |op: &Operator, x: &[T], w: &[T], b: Option<&[T]>, dy: &[T]| {
        let mut g = GradsOf {
            dx: vec![T::default(); x.len()],
            dweight: vec![T::default(); wlen],
            dbias: b.map(|_| vec![T::default(); blen]),
        };
        grad::backward(
            op,
            shape,
            layout,
            x,
            w,
            b,
            dy,
            &mut g.dx,
            &mut g.dweight,
            g.dbias.as_deref_mut(),
        )
        .map(|_| g)
    };
    let want = reference_grads(op, &data.x, &data.w, data.b.as_deref(), &dy)
        .map_err(|e| format!("{}: reference: {e}", ctx()))?;
    let abs = |v: &[T]| {
        v.iter()
            .map(|e| T::from_f64(e.to_f64().abs()))
            .collect::<Vec<T>>()
    };
    let is_conv = op.conv().is_some();
    let xs = if is_conv {
        abs(&data.x)
    } else {
        data.x.clone()
    };
    let ab = data.b.as_deref().map(abs);
    let sums = reference_grads(
        &abs_operator(op),
        &xs,
        &abs(&data.w),
        ab.as_deref(),
        &abs(&dy),
    )
    .map_err(|e| format!("{}: reference on |terms|: {e}", ctx()))?;
    let got = r
        .run_backward(op, shape, layout, &data, &dy)
        .map_err(|e| format!("{}: {e}", ctx()))?;

    // Bounds on the terms per gradient element: each axis of the blur's adjoint folds at most
    // 3 runs of padded cells onto a source (longer only for replicate, whose runs are the pads).
    let blur_terms = |b: &Blur| {
        let p = b.pad();
        let fold = |pad: usize| 3 + pad;
        (b.filter().size_y()
            * fold(p.top.max(p.bottom))
            * b.filter().size_x()
            * fold(p.left.max(p.right))) as f64
    };
    let (n_dx, n_dw) = match op {
        Operator::MaxPool(m) => ((m.kernel().0 * m.kernel().1) as f64, 0.0),
        Operator::BlurPool(b) => (blur_terms(b.blur()), 0.0),
        Operator::MaxBlurPool(m) => (
            (m.max_pool().kernel().0 * m.max_pool().kernel().1) as f64 * blur_terms(m.blur()),
            0.0,
        ),
        Operator::ConvBlurPool(c) => {
            let k = c.conv().kernel();
            let cout_g = c.conv().out_channels() / c.conv().groups();
            let z = c.conv_map_shape(shape).unwrap();
            let bt = blur_terms(c.blur());
            (
                (cout_g * k.0 * k.1) as f64 * bt,
                (z.n * z.h * z.w) as f64 * bt,
            )
        }
        Operator::BlurConv(_) => (0.0, 0.0),
    };
    let compare = |what: &str, got: &[T], want: &[T], sums: &[T], n: f64| -> Result<(), String> {
        if got.len() != want.len() {
            return Err(format!(
                "{}: {what} has {} elements, expected {}",
                ctx(),
                got.len(),
                want.len()
            ));
        }
        for (k, ((&gv, &wv), &sv)) in got.iter().zip(want).zip(sums).enumerate() {
            let (gf, wf) = (gv.to_f64(), wv.to_f64());
            if gf == POISON {
                return Err(format!("{}: {what}[{k}] was never written", ctx()));
            }
            let tol = rtol::<T>() * wf.abs() + 2.0 * n * 2f64.powi(-24) * sv.to_f64() + tiny::<T>();
            if !((gf - wf).abs() <= tol || (gf.is_nan() && wf.is_nan()) || gf == wf) {
                return Err(format!(
                    "{}: {what}[{k}]: kernels {gf}, reference {wf} (S = {})",
                    ctx(),
                    sv.to_f64()
                ));
            }
        }
        Ok(())
    };
    compare("dx", &got.dx, &want.dx, &sums.dx, n_dx)?;
    if is_conv {
        compare("dweight", &got.dweight, &want.dweight, &sums.dweight, n_dw)?;
        match (&got.dbias, &want.dbias, &sums.dbias) {
            (Some(g), Some(w), Some(s)) => compare("dbias", g, w, s, n_dw)?,
            (None, None, _) => {}
            _ => return Err(format!("{}: dbias presence differs", ctx())),
        }
    }
    Ok(())
}

/// [`check_case`] (forward) or [`check_backward_case`] in the element type `dtype`.
pub fn check_in_dtype(
    r: &impl Runner,
    rng: &mut StdRng,
    op: &Operator,
    shape: Shape4,
    layout: Layout,
    dtype: DType,
    backward: bool,
) -> Result<(), String> {
    use half::{bf16, f16};
    match (dtype, backward) {
        (DType::F32, false) => check_case::<f32>(r, rng, op, shape, layout),
        (DType::F16, false) => check_case::<f16>(r, rng, op, shape, layout),
        (DType::BF16, false) => check_case::<bf16>(r, rng, op, shape, layout),
        (DType::F32, true) => check_backward_case::<f32>(r, rng, op, shape, layout),
        (DType::F16, true) => check_backward_case::<f16>(r, rng, op, shape, layout),
        (DType::BF16, true) => check_backward_case::<bf16>(r, rng, op, shape, layout),
    }
}
