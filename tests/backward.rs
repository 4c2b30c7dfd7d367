//! The CPU reference gradients (src/backward.rs):
//!
//! * (a) against central finite differences of the reference *forward* in f64, for every
//!   operator, pad mode, filter sizes 1..=7 (even ones included), strides 1..=3, odd sizes,
//!   groups and activations. Every operator is piecewise linear in each of x, weight, bias, so
//!   away from max ties and activation kinks a central difference is exact up to rounding: the
//!   check is tight (1e-9) and every coordinate of x, weight and bias is checked;
//! * (b) against golden gradients from torch autograd through antialiased-cnns, kornia, timm,
//!   composer and torch (tests/golden/grad_*.safetensors, scripts/gen_golden_grad.py), with
//!   ties in the max windows, NaN and ±inf;
//! * (c) NHWC gives exactly what NCHW gives, and the typed API is the f64 result rounded once;
//! * (d) bad buffer lengths and shapes give typed errors;
//!
//! and that the checks can fail: a perturbed gradient, a wrong pad fold and a wrong tie rule
//! are all caught.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use blurpool::presets::antialiased_cnns;
use blurpool::reference::grad::{self as backward, Grads};
use blurpool::reference::{self, Map};
use blurpool::{
    Activation, Blur, BlurConv2d, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, Element,
    Error, Filter, Layout, MaxBlurPool2d, MaxPool2d, Operator, Pad2d, PadMode, Shape4,
};
use common::max_rel_err;
use half::{bf16, f16};
use safetensors::SafeTensors;

/// f32: max relative error allowed against the golden gradients (same floor convention as the
/// forward golden tests, `common::max_rel_err`).
const F32_REL_TOL: f64 = 1e-5;
/// Finite-difference step (a power of two: x ± h is exact for the f32-representable inputs).
const FD_STEP: f64 = 1.0 / 4096.0;
/// Finite differences: |fd − g| ≤ FD_TOL · (1 + |g|) for every coordinate.
const FD_TOL: f64 = 1e-9;

// ------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------

/// SplitMix64 with Box–Muller normals: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Normal values with standard deviation `scale`, rounded to f32 so that the typed f32 API
    /// sees exactly the same numbers.
    fn normals(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let (u, v) = (self.uniform(), self.uniform());
                let g = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                (g * scale) as f32 as f64
            })
            .collect()
    }
    /// A random permutation of n values spaced 1/64 apart (exact in f32): no two are within a
    /// finite-difference step of each other, so no max window has a tie, even when perturbed.
    fn distinct(&mut self, n: usize) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n).map(|k| (k as f64 - n as f64 / 2.0) / 64.0).collect();
        for k in (1..n).rev() {
            let j = (self.next_u64() % (k as u64 + 1)) as usize;
            v.swap(k, j);
        }
        v
    }
}

fn map(shape: Shape4, data: Vec<f64>) -> Map {
    Map::new(shape, data).unwrap()
}

/// The forward on f64 maps, composed here from the reference's public stage functions (the
/// same composition as `reference::forward`, which `forward_map_is_the_reference_forward` checks).
fn forward_map(op: &Operator, x: &Map, w: &[f64], b: Option<&[f64]>) -> blurpool::Result<Map> {
    use reference::{blur_map, conv_map, dense_max_map};
    match op {
        Operator::MaxPool(m) => dense_max_map(m, x),
        Operator::BlurPool(p) => blur_map(p.blur(), x, "BlurPool2d"),
        Operator::MaxBlurPool(p) => {
            blur_map(p.blur(), &dense_max_map(p.max_pool(), x)?, "MaxBlurPool2d")
        }
        Operator::ConvBlurPool(p) => blur_map(
            p.blur(),
            &conv_map(p.conv(), (1, 1), x, w, b, "c")?,
            "ConvBlurPool2d",
        ),
        Operator::BlurConv(p) => conv_map(
            p.conv(),
            p.stride(),
            &blur_map(p.blur(), x, "BlurConv2d")?,
            w,
            b,
            "c",
        ),
    }
}

fn nchw_to(layout: Layout, s: Shape4, v: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for n in 0..s.n {
        for c in 0..s.c {
            for y in 0..s.h {
                for x in 0..s.w {
                    out[s.offset(layout, n, c, y, x)] = v[s.offset(Layout::Nchw, n, c, y, x)];
                }
            }
        }
    }
    out
}

fn to_nchw(layout: Layout, s: Shape4, v: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for n in 0..s.n {
        for c in 0..s.c {
            for y in 0..s.h {
                for x in 0..s.w {
                    out[s.offset(Layout::Nchw, n, c, y, x)] = v[s.offset(layout, n, c, y, x)];
                }
            }
        }
    }
    out
}

/// f32 gradients from the typed API.
struct TypedGrads {
    dx: Vec<f32>,
    dweight: Vec<f32>,
    dbias: Option<Vec<f32>>,
}

/// `grad::backward::<f32>` in `layout`, inputs and outputs given/returned in NCHW.
fn typed_backward(
    op: &Operator,
    shape: Shape4,
    layout: Layout,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    dy: &[f32],
) -> blurpool::Result<TypedGrads> {
    let out = op.output_shape(shape)?;
    let xl = nchw_to(layout, shape, x);
    let dyl = nchw_to(layout, out, dy);
    let mut dx = vec![f32::NAN; x.len()];
    let mut dweight = vec![f32::NAN; op.conv().map_or(0, |c| c.weight_len())];
    let mut dbias = op
        .conv()
        .filter(|c| c.has_bias())
        .map(|c| vec![f32::NAN; c.out_channels()]);
    backward::backward(
        op,
        shape,
        layout,
        &xl,
        w,
        b,
        &dyl,
        &mut dx,
        &mut dweight,
        dbias.as_deref_mut(),
    )?;
    Ok(TypedGrads {
        dx: to_nchw(layout, shape, &dx),
        dweight,
        dbias,
    })
}

// ------------------------------------------------------------------------------------------
// (a) finite differences
// ------------------------------------------------------------------------------------------

/// One finite-difference problem: an operator at a point (x, weight, bias) and an output
/// gradient dy; the loss is L = Σ dy·y.
struct Problem {
    label: String,
    op: Operator,
    x: Map,
    w: Vec<f64>,
    b: Option<Vec<f64>>,
    dy: Vec<f64>,
}

impl Problem {
    fn loss(&self, x: &Map, w: &[f64], b: Option<&[f64]>) -> f64 {
        let y = forward_map(&self.op, x, w, b)
            .unwrap_or_else(|e| panic!("{}: forward: {e}", self.label));
        y.data().iter().zip(&self.dy).map(|(y, g)| y * g).sum()
    }

    fn grads(&self) -> Grads {
        backward::backward_map(&self.op, &self.x, &self.w, self.b.as_deref(), &self.dy)
            .unwrap_or_else(|e| panic!("{}: backward: {e}", self.label))
    }
}

/// Compares `g` with central differences at every coordinate of x, weight and bias. Returns
/// (worst |fd − g| / (1 + |g|), where, number of coordinates checked).
fn fd_check(p: &Problem, g: &Grads) -> (f64, String, usize) {
    let h = FD_STEP;
    let mut worst = (0.0f64, String::new());
    let mut count = 0;
    let mut judge = |what: &str, k: usize, fd: f64, an: f64| {
        count += 1;
        let e = (fd - an).abs() / (1.0 + an.abs());
        if e > worst.0 || e.is_nan() {
            worst = (
                if e.is_nan() { f64::INFINITY } else { e },
                format!("{what}[{k}]: fd {fd:e}, backward {an:e}"),
            );
        }
    };
    assert_eq!(g.dx.shape(), p.x.shape(), "{}: dx shape", p.label);
    for k in 0..p.x.data().len() {
        let mut xp = p.x.clone();
        xp.data_mut()[k] += h;
        let lp = p.loss(&xp, &p.w, p.b.as_deref());
        xp.data_mut()[k] -= 2.0 * h;
        let lm = p.loss(&xp, &p.w, p.b.as_deref());
        judge("dx", k, (lp - lm) / (2.0 * h), g.dx.data()[k]);
    }
    assert_eq!(g.dweight.len(), p.w.len(), "{}: dweight length", p.label);
    for k in 0..p.w.len() {
        let mut wp = p.w.clone();
        wp[k] += h;
        let lp = p.loss(&p.x, &wp, p.b.as_deref());
        wp[k] -= 2.0 * h;
        let lm = p.loss(&p.x, &wp, p.b.as_deref());
        judge("dweight", k, (lp - lm) / (2.0 * h), g.dweight[k]);
    }
    assert_eq!(
        g.dbias.is_some(),
        p.b.is_some(),
        "{}: dbias presence",
        p.label
    );
    if let (Some(b), Some(db)) = (&p.b, &g.dbias) {
        for k in 0..b.len() {
            let mut bp = b.clone();
            bp[k] += h;
            let lp = p.loss(&p.x, &p.w, Some(&bp));
            bp[k] -= 2.0 * h;
            let lm = p.loss(&p.x, &p.w, Some(&bp));
            judge("dbias", k, (lp - lm) / (2.0 * h), db[k]);
        }
    }
    (worst.0, worst.1, count)
}

/// The conv operators' pre-activation z and the input of their convolution.
fn pre_activation(op: &Operator, x: &Map, w: &[f64], b: Option<&[f64]>) -> Option<(Map, Map)> {
    let linear = |c: &Conv2dSpec| {
        Conv2dSpec::new(Conv2dArgs {
            in_channels: c.in_channels(),
            out_channels: c.out_channels(),
            kernel: c.kernel(),
            padding: c.padding(),
            groups: c.groups(),
            bias: c.has_bias(),
            activation: Activation::Identity,
        })
        .unwrap()
    };
    match op {
        Operator::ConvBlurPool(p) => Some((
            reference::conv_map(&linear(p.conv()), (1, 1), x, w, b, "z").unwrap(),
            x.clone(),
        )),
        Operator::BlurConv(p) => {
            let xb = reference::blur_map(p.blur(), x, "b").unwrap();
            Some((
                reference::conv_map(&linear(p.conv()), p.stride(), &xb, w, b, "z").unwrap(),
                xb,
            ))
        }
        _ => None,
    }
}

/// Builds a conv problem whose pre-activations all stay clear of the activation's kinks by
/// more than a step can move them (redrawing the data until they do), and that has values on
/// the zero-gradient side of every kink.
fn conv_problem(label: String, op: Operator, shape: Shape4, rng: &mut Rng) -> Problem {
    let conv = *op.conv().unwrap();
    let act = conv.activation();
    let fan_in = (conv.in_channels() / conv.groups() * conv.kernel().0 * conv.kernel().1) as f64;
    for _attempt in 0..500 {
        let x = map(shape, rng.normals(shape.numel().unwrap(), 2.5));
        let w = rng.normals(conv.weight_len(), 1.5 / fan_in.sqrt());
        let b = conv
            .has_bias()
            .then(|| rng.normals(conv.out_channels(), 1.0));
        let (z, conv_in) = pre_activation(&op, &x, &w, b.as_deref()).unwrap();
        // |Δz| from one step: ≤ h·Σ|w[co]| (x, through the blur whose taps sum to 1), ≤ h·max|conv
        // input| (weight), ≤ h (bias).
        let per_co = conv.weight_len() / conv.out_channels();
        let wsum = w
            .chunks(per_co)
            .map(|c| c.iter().map(|v| v.abs()).sum::<f64>())
            .fold(0.0, f64::max);
        let xmax = conv_in.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let margin = 2.0 * FD_STEP * wsum.max(xmax).max(1.0);
        let kinks: &[f64] = match act {
            Activation::Identity => &[],
            Activation::Relu => &[0.0],
            Activation::Relu6 => &[0.0, 6.0],
        };
        if z.data()
            .iter()
            .any(|&v| kinks.iter().any(|&k| (v - k).abs() <= margin))
        {
            continue;
        }
        let low = z.data().iter().filter(|&&v| v < 0.0).count();
        let high = z.data().iter().filter(|&&v| v > 6.0).count();
        let covered = match act {
            Activation::Identity => true,
            Activation::Relu => low > 0,
            Activation::Relu6 => low > 0 && high > 0,
        };
        if !covered {
            continue;
        }
        let out = op.output_shape(shape).unwrap();
        let dy = rng.normals(out.numel().unwrap(), 1.0);
        return Problem {
            label,
            op,
            x,
            w,
            b,
            dy,
        };
    }
    panic!("{label}: could not draw data clear of the activation kinks");
}

fn plain_problem(
    label: String,
    op: Operator,
    shape: Shape4,
    rng: &mut Rng,
    distinct: bool,
) -> Problem {
    let n = shape.numel().unwrap();
    let x = map(
        shape,
        if distinct {
            rng.distinct(n)
        } else {
            rng.normals(n, 1.0)
        },
    );
    let out = op
        .output_shape(shape)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let dy = rng.normals(out.numel().unwrap(), 1.0);
    Problem {
        label,
        op,
        x,
        w: Vec::new(),
        b: None,
        dy,
    }
}

const SIZES: [(usize, usize); 4] = [(7, 9), (8, 6), (9, 7), (6, 5)];

fn fd_problems() -> Vec<Problem> {
    let mut rng = Rng(0x5EED_B10B);
    let mut ps = Vec::new();
    let mut i = 0usize;
    let mut next_shape = |c: usize| {
        let (h, w) = SIZES[i % SIZES.len()];
        let n = if i % 5 == 4 { 2 } else { 1 };
        i += 1;
        Shape4::new(n, c, h, w)
    };

    // Dense max: windows 1..3, square and not, with and without padding (no ties).
    for (k, p) in [
        ((1, 1), (0, 0)),
        ((2, 2), (0, 0)),
        ((2, 2), (1, 1)),
        ((3, 3), (1, 1)),
        ((3, 3), (0, 0)),
    ]
    .into_iter()
    .chain([((2, 3), (1, 0)), ((3, 2), (0, 1)), ((1, 3), (0, 1))])
    {
        let op = Operator::MaxPool(MaxPool2d::new(k, p).unwrap());
        let s = next_shape(2);
        ps.push(plain_problem(
            format!("max_pool k{k:?} p{p:?} {s}"),
            op,
            s,
            &mut rng,
            true,
        ));
    }

    // BlurPool: binomial 1..=7 × pad modes × strides 1..=3 (antialiased-cnns padding, which is
    // asymmetric for even filters), odd and even sizes.
    for f in 1..=7 {
        for mode in PadMode::ALL {
            for s in 1..=3 {
                let op = Operator::BlurPool(antialiased_cnns::blur_pool(mode, f, s, 0).unwrap());
                let sh = next_shape(1 + (f + s) % 3);
                ps.push(plain_problem(
                    format!("blur_pool f{f} {} s{s} {sh}", mode.name()),
                    op,
                    sh,
                    &mut rng,
                    false,
                ));
            }
        }
    }
    // Custom separable taps (Fy ≠ Fx, unnormalised, negative taps), asymmetric padding, sy ≠ sx.
    /// (taps_y, taps_x, normalised, padding, stride)
    type Custom = (&'static [f64], &'static [f64], bool, Pad2d, (usize, usize));
    let customs: [Custom; 4] = [
        (
            &[0.1, 0.5, 0.2],
            &[0.05, 0.2, 0.4, 0.25, 0.1],
            false,
            Pad2d {
                top: 1,
                bottom: 1,
                left: 2,
                right: 2,
            },
            (2, 2),
        ),
        (
            &[1.0, -0.5, 2.0, 0.25],
            &[0.3, 0.9],
            true,
            Pad2d {
                top: 2,
                bottom: 0,
                left: 1,
                right: 3,
            },
            (1, 3),
        ),
        (
            &[1.5],
            &[0.25, 0.5, 0.125],
            false,
            Pad2d {
                top: 0,
                bottom: 1,
                left: 1,
                right: 1,
            },
            (3, 1),
        ),
        (
            &[1.0, 2.0, 3.0, 2.0, 1.0, 0.5],
            &[2.0, 1.0, 1.0],
            true,
            Pad2d {
                top: 3,
                bottom: 2,
                left: 0,
                right: 2,
            },
            (2, 3),
        ),
    ];
    for (ty, tx, norm, pad, stride) in customs {
        for mode in PadMode::ALL {
            let filter = if norm {
                Filter::separable(ty, tx)
            } else {
                Filter::unnormalized(ty, tx)
            }
            .unwrap();
            let op = Operator::BlurPool(BlurPool2d::new(
                Blur::new(filter, stride, pad, mode).unwrap(),
            ));
            let sh = next_shape(2);
            let label = format!(
                "blur_pool custom {}x{} {pad:?} {} s{stride:?} {sh}",
                ty.len(),
                tx.len(),
                mode.name()
            );
            ps.push(plain_problem(label, op, sh, &mut rng, false));
        }
    }

    // MaxBlurPool: the antialiased-cnns/DenseNet/kornia max windows × filters × modes × strides.
    let mut j = 0usize;
    for (mk, mp) in [(2, 0), (3, 1), (3, 0)] {
        for f in [1, 2, 3, 4, 5, 7] {
            let mode = PadMode::ALL[j % 3];
            let s = 1 + j % 3;
            j += 1;
            let op = Operator::MaxBlurPool(
                antialiased_cnns::max_blur_pool(mk, mp, mode, f, s, 0).unwrap(),
            );
            let sh = next_shape(2);
            let label = format!("max_blur_pool k{mk}p{mp} f{f} {} s{s} {sh}", mode.name());
            ps.push(plain_problem(label, op, sh, &mut rng, true));
        }
    }
    let blur = Blur::new(
        Filter::binomial(4).unwrap(),
        (2, 3),
        Pad2d {
            top: 1,
            bottom: 2,
            left: 2,
            right: 1,
        },
        PadMode::Reflect,
    )
    .unwrap();
    let op = Operator::MaxBlurPool(MaxBlurPool2d::new(
        MaxPool2d::new((2, 3), (1, 1)).unwrap(),
        blur,
    ));
    let sh = next_shape(3);
    ps.push(plain_problem(
        format!("max_blur_pool k(2,3)p(1,1) f4 reflect s(2,3) {sh}"),
        op,
        sh,
        &mut rng,
        true,
    ));

    // ConvBlurPool: groups 1 / between / Cin (depthwise) × activations × kernels (incl. even).
    let chans = [(3, 4, 1), (4, 6, 2), (4, 4, 4)];
    let convs = [
        ((3, 3), (1, 1)),
        ((1, 1), (0, 0)),
        ((5, 5), (2, 2)),
        ((3, 3), (0, 0)),
        ((2, 3), (1, 0)),
    ];
    let mut k = 0usize;
    for (cin, cout, groups) in chans {
        for act in Activation::ALL {
            for rep in 0..2 {
                let (kernel, padding) = convs[(k + rep) % convs.len()];
                let bias = k % 2 == 0;
                let f = [3, 4, 2, 5, 1, 7][k % 6];
                let mode = PadMode::ALL[k % 3];
                let s = 1 + (k + rep) % 3;
                k += 1;
                let conv = Conv2dSpec::new(Conv2dArgs {
                    in_channels: cin,
                    out_channels: cout,
                    kernel,
                    padding,
                    groups,
                    bias,
                    activation: act,
                })
                .unwrap();
                let op = Operator::ConvBlurPool(
                    antialiased_cnns::conv_blur_pool(conv, mode, f, s, 0).unwrap(),
                );
                let sh = next_shape(cin);
                let label = format!(
                    "conv_blur_pool ci{cin} co{cout} g{groups} k{kernel:?} p{padding:?} bias {bias} {} f{f} {} s{s} {sh}",
                    act.name(),
                    mode.name()
                );
                ps.push(conv_problem(label, op, sh, &mut rng));
            }
        }
    }

    // BlurConv: blur at stride 1 (binomial 3 zero = composer, and other modes/filters), strided
    // conv (sy ≠ sx too), groups, activations.
    let cases = [
        (
            3,
            PadMode::Zero,
            Pad2d::uniform(1),
            (3, 5, 1),
            ((3, 3), (1, 1)),
            (2, 2),
            Activation::Identity,
            true,
        ),
        (
            3,
            PadMode::Zero,
            Pad2d::uniform(1),
            (4, 4, 4),
            ((1, 1), (0, 0)),
            (2, 2),
            Activation::Relu,
            false,
        ),
        (
            4,
            PadMode::Reflect,
            Pad2d::before_after(1, 2),
            (4, 6, 2),
            ((3, 3), (1, 1)),
            (2, 3),
            Activation::Relu6,
            true,
        ),
        (
            2,
            PadMode::Replicate,
            Pad2d::before_after(0, 1),
            (3, 4, 1),
            ((1, 3), (0, 1)),
            (3, 1),
            Activation::Relu,
            true,
        ),
        (
            5,
            PadMode::Reflect,
            Pad2d::uniform(2),
            (2, 2, 2),
            ((3, 3), (0, 0)),
            (1, 1),
            Activation::Relu6,
            false,
        ),
        (
            1,
            PadMode::Zero,
            Pad2d::default(),
            (3, 3, 1),
            ((2, 2), (1, 1)),
            (3, 3),
            Activation::Identity,
            true,
        ),
        (
            7,
            PadMode::Replicate,
            Pad2d {
                top: 3,
                bottom: 3,
                left: 2,
                right: 4,
            },
            (4, 4, 4),
            ((3, 3), (1, 1)),
            (2, 2),
            Activation::Relu6,
            true,
        ),
    ];
    for (f, mode, pad, (cin, cout, groups), (kernel, padding), stride, act, bias) in cases {
        let blur = Blur::new(Filter::binomial(f).unwrap(), (1, 1), pad, mode).unwrap();
        let conv = Conv2dSpec::new(Conv2dArgs {
            in_channels: cin,
            out_channels: cout,
            kernel,
            padding,
            groups,
            bias,
            activation: act,
        })
        .unwrap();
        let op = Operator::BlurConv(BlurConv2d::new(blur, conv, stride).unwrap());
        let sh = next_shape(cin);
        let label = format!(
            "blur_conv f{f} {} {pad:?} ci{cin} co{cout} g{groups} k{kernel:?} s{stride:?} {} bias {bias} {sh}",
            mode.name(),
            act.name()
        );
        ps.push(conv_problem(label, op, sh, &mut rng));
    }
    ps
}

#[test]
fn forward_map_is_the_reference_forward() {
    // The finite differences differentiate `forward_map`; it must be the crate's forward.
    for p in fd_problems() {
        let y = forward_map(&p.op, &p.x, &p.w, p.b.as_deref()).unwrap();
        let x: Vec<f32> = p.x.data().iter().map(|&v| v as f32).collect();
        let w: Vec<f32> = p.w.iter().map(|&v| v as f32).collect();
        let b: Option<Vec<f32>> = p.b.as_ref().map(|b| b.iter().map(|&v| v as f32).collect());
        let mut yr = vec![f32::NAN; y.data().len()];
        reference::forward(
            &p.op,
            p.x.shape(),
            Layout::Nchw,
            &x,
            &w,
            b.as_deref(),
            &mut yr,
        )
        .unwrap();
        let want: Vec<f32> = y.data().iter().map(|&v| v as f32).collect();
        assert_eq!(yr, want, "{}", p.label);
    }
}

#[test]
fn gradients_match_finite_differences() {
    let problems = fd_problems();
    let mut per_op: HashMap<&'static str, (usize, usize, f64)> = HashMap::new();
    let mut failures = Vec::new();
    let mut worst = (0.0f64, String::new());
    for p in &problems {
        let (e, at, n) = fd_check(p, &p.grads());
        let entry = per_op.entry(p.op.name()).or_default();
        entry.0 += 1;
        entry.1 += n;
        entry.2 = entry.2.max(e);
        if e > worst.0 {
            worst = (e, format!("{}: {at}", p.label));
        }
        if e > FD_TOL {
            failures.push(format!("{}: error {e:.3e} at {at}", p.label));
        }
    }
    let mut names: Vec<_> = per_op.iter().collect();
    names.sort_by_key(|(k, _)| *k);
    for (op, (cases, coords, e)) in names {
        println!(
            "finite differences {op}: {cases} problems, {coords} coordinates, worst error {e:.3e}"
        );
    }
    println!(
        "finite differences: {} problems, worst {:.3e} ({})",
        problems.len(),
        worst.0,
        worst.1
    );
    for op in [
        "max_pool",
        "blur_pool",
        "max_blur_pool",
        "conv_blur_pool",
        "blur_conv",
    ] {
        assert!(
            per_op.contains_key(op),
            "no finite-difference problem for {op}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} problems fail:\n{}",
        failures.len(),
        problems.len(),
        failures.join("\n")
    );
}

/// The finite-difference check can fail: a perturbed gradient, and the gradient of a different
/// pad mode (the folding of reflect vs replicate vs zero), are caught.
#[test]
fn finite_differences_detect_wrong_gradients() {
    let problems = fd_problems();
    let p = problems
        .iter()
        .find(|p| p.op.name() == "conv_blur_pool" && p.b.is_some())
        .unwrap();
    let good = p.grads();
    assert!(fd_check(p, &good).0 <= FD_TOL);
    for which in 0..3 {
        let mut bad = good.clone();
        match which {
            0 => bad.dx.data_mut()[5] += 1e-6,
            1 => bad.dweight[2] *= 1.0 + 1e-6,
            _ => bad.dbias.as_mut().unwrap()[0] -= 1e-6,
        }
        let (e, at, _) = fd_check(p, &bad);
        assert!(
            e > FD_TOL,
            "perturbation {which} not detected (error {e:e} at {at})"
        );
    }
    // Reflect's gradient checked against the replicate and zero forwards (same geometry).
    let reflect =
        Operator::BlurPool(antialiased_cnns::blur_pool(PadMode::Reflect, 4, 2, 0).unwrap());
    let shape = Shape4::new(1, 2, 7, 8);
    let p = plain_problem("reflect".into(), reflect, shape, &mut Rng(7), false);
    let g = p.grads();
    assert!(fd_check(&p, &g).0 <= FD_TOL);
    for mode in [PadMode::Replicate, PadMode::Zero] {
        let other = Operator::BlurPool(antialiased_cnns::blur_pool(mode, 4, 2, 0).unwrap());
        let q = Problem {
            label: mode.name().into(),
            op: other,
            x: p.x.clone(),
            w: vec![],
            b: None,
            dy: p.dy.clone(),
        };
        assert!(
            fd_check(&q, &g).0 > 1e-3,
            "reflect's gradient passes for {}",
            mode.name()
        );
    }
}

// ------------------------------------------------------------------------------------------
// PyTorch's conventions, by hand (the same inputs were run through torch 2.15, see
// src/backward.rs)
// ------------------------------------------------------------------------------------------

fn max_dx(k: usize, p: usize, h: usize, w: usize, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let op = MaxPool2d::new((k, k), (p, p)).unwrap();
    let mut dx = vec![f32::NAN; x.len()];
    backward::max_pool_backward(&op, Shape4::new(1, 1, h, w), Layout::Nchw, x, dy, &mut dx)
        .unwrap();
    dx
}

#[test]
fn max_backward_follows_pytorch_ties_nan_and_padding() {
    // Ties: the first maximum in row-major order owns the gradient.
    let x = [1., 1., 0., 1., 1., 1., 2., 2., 2.];
    assert_eq!(
        max_dx(2, 0, 3, 3, &x, &[1.; 4]),
        [1., 1., 0., 0., 0., 0., 1., 1., 0.]
    );
    // NaN wins its window, later NaNs take the index over; gradients of shared argmaxes add.
    let nan = f32::NAN;
    let x = [nan, 1., 0., nan, 5., 1., 2., nan, 2.];
    assert_eq!(
        max_dx(2, 0, 3, 3, &x, &[1., 10., 100., 1000.]),
        [0., 0., 0., 1., 10., 0., 0., 1100., 0.]
    );
    // All in-bounds cells −inf: padding never wins, the first in-bounds cell gets the gradient
    // (torch: indices [[0,0,1,2],[0,0,1,2],[3,3,4,5],[6,6,7,8]]).
    let dy: Vec<f32> = (1..=16).map(|v| v as f32).collect();
    let x = [f32::NEG_INFINITY; 9];
    assert_eq!(
        max_dx(2, 1, 3, 3, &x, &dy),
        [14., 10., 12., 19., 11., 12., 27., 15., 16.]
    );
}

#[test]
fn activation_derivatives_follow_pytorch() {
    use backward::activation_grad as d;
    let (relu, relu6) = (Activation::Relu, Activation::Relu6);
    // relu: threshold_backward, 0 where z <= 0 (NaN passes the gradient).
    for (z, want) in [
        (-1.0, 0.0),
        (0.0, 0.0),
        (-0.0, 0.0),
        (1e-300, 1.0),
        (3.0, 1.0),
        (f64::INFINITY, 1.0),
    ] {
        assert_eq!(d(relu, z), want, "relu'({z})");
    }
    assert_eq!(d(relu, f64::NAN), 1.0);
    // relu6: hardtanh_backward, 0 where z <= 0 or z >= 6 (NaN passes: CUDA and scalar CPU).
    for (z, want) in [
        (-1.0, 0.0),
        (0.0, 0.0),
        (1e-300, 1.0),
        (5.999, 1.0),
        (6.0, 0.0),
        (7.0, 0.0),
        (f64::INFINITY, 0.0),
    ] {
        assert_eq!(d(relu6, z), want, "relu6'({z})");
    }
    assert_eq!(d(relu6, f64::NAN), 1.0);
    for z in [-1.0, 0.0, 6.0, f64::NAN] {
        assert_eq!(d(Activation::Identity, z), 1.0);
    }
}

// ------------------------------------------------------------------------------------------
// (b) golden gradients
// ------------------------------------------------------------------------------------------

fn golden_dir() -> PathBuf {
    match std::env::var_os("BLURPOOL_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden"),
    }
}

/// Every tensor of a golden file, by name: (data, shape).
fn load_tensors(group: &str) -> HashMap<String, (Vec<f32>, Vec<usize>)> {
    let path = golden_dir().join(format!("{group}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name} must be f32");
            let data = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, (data, t.shape().to_vec()))
        })
        .collect()
}

/// One golden gradient case, ready to run.
struct GradCase {
    name: String,
    op: Operator,
    shape: Shape4,
    x: Vec<f32>,
    y: Vec<f32>,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    dy: Vec<f32>,
    dx: Vec<f32>,
    dweight: Option<Vec<f32>>,
    dbias: Option<Vec<f32>>,
}

fn load_grad_cases(group: &str) -> Vec<GradCase> {
    let tensors = load_tensors(group);
    let get = |name: &str, what: &str| {
        tensors
            .get(&format!("{name}.{what}"))
            .map(|(d, _)| d.clone())
    };
    common::load_golden(group)
        .into_iter()
        .map(|c| {
            let op = c
                .operator()
                .unwrap_or_else(|e| panic!("{}: building the operator: {e}", c.name));
            let dy = get(&c.name, "dy").unwrap_or_else(|| panic!("{}: no dy", c.name));
            let dx = get(&c.name, "dx").unwrap_or_else(|| panic!("{}: no dx", c.name));
            assert_eq!(
                tensors[&format!("{}.dy", c.name)].1,
                tensors[&format!("{}.y", c.name)].1,
                "{}",
                c.name
            );
            GradCase {
                dweight: get(&c.name, "dweight"),
                dbias: get(&c.name, "dbias"),
                op,
                shape: c.input_shape,
                x: c.x,
                y: c.y,
                weight: c.weight.unwrap_or_default(),
                bias: c.bias,
                dy,
                dx,
                name: c.name,
            }
        })
        .collect()
}

/// Runs every case of a gradient group: forward y, then dx (and dweight, dbias) against the
/// library's autograd, in NCHW; and the NHWC gradients must equal the NCHW ones exactly.
fn check_grad_group(group: &str, min_cases: usize) {
    let cases = load_grad_cases(group);
    assert!(
        cases.len() >= min_cases,
        "{group}: only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut worst: HashMap<&str, (f64, String)> = HashMap::new();
    let mut note =
        |what: &'static str, name: &str, got: &[f32], want: &[f32], failures: &mut Vec<String>| {
            match max_rel_err(got, want) {
                Ok((e, k)) => {
                    let w = worst.entry(what).or_default();
                    if e > w.0 {
                        *w = (e, name.to_string());
                    }
                    if e > F32_REL_TOL {
                        failures.push(format!(
                            "{name}: {what} rel err {e:.3e} at {k}: got {}, want {}",
                            got[k], want[k]
                        ));
                    }
                }
                Err(msg) => failures.push(format!("{name}: {what}: {msg}")),
            }
        };
    let mut conv_cases = 0;
    for c in &cases {
        match c.op.output_shape(c.shape) {
            Ok(s) if s.numel().unwrap() == c.y.len() => {}
            other => {
                failures.push(format!(
                    "{}: output shape {other:?} does not fit y ({} values)",
                    c.name,
                    c.y.len()
                ));
                continue;
            }
        }
        let mut y = vec![f32::NAN; c.y.len()];
        if let Err(e) = reference::forward(
            &c.op,
            c.shape,
            Layout::Nchw,
            &c.x,
            &c.weight,
            c.bias.as_deref(),
            &mut y,
        ) {
            failures.push(format!("{}: forward failed: {e}", c.name));
            continue;
        }
        note("y", &c.name, &y, &c.y, &mut failures);
        let g = match typed_backward(
            &c.op,
            c.shape,
            Layout::Nchw,
            &c.x,
            &c.weight,
            c.bias.as_deref(),
            &c.dy,
        ) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{}: backward failed: {e}", c.name));
                continue;
            }
        };
        note("dx", &c.name, &g.dx, &c.dx, &mut failures);
        if c.op.conv().is_some() {
            conv_cases += 1;
            match &c.dweight {
                Some(want) => note("dweight", &c.name, &g.dweight, want, &mut failures),
                None => failures.push(format!("{}: conv case without dweight", c.name)),
            }
            match (&g.dbias, &c.dbias) {
                (Some(got), Some(want)) => note("dbias", &c.name, got, want, &mut failures),
                (None, None) => {}
                _ => failures.push(format!("{}: bias gradient presence differs", c.name)),
            }
        }
        // (c) NHWC: the same numbers, bit for bit.
        let h = typed_backward(
            &c.op,
            c.shape,
            Layout::Nhwc,
            &c.x,
            &c.weight,
            c.bias.as_deref(),
            &c.dy,
        )
        .unwrap();
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
        if !same(&h.dx, &g.dx) || !same(&h.dweight, &g.dweight) || h.dbias != g.dbias {
            failures.push(format!("{}: NHWC gradients differ from NCHW", c.name));
        }
    }
    let mut report: Vec<_> = worst
        .iter()
        .map(|(k, (e, n))| format!("{k} {e:.3e} ({n})"))
        .collect();
    report.sort();
    println!(
        "{group}: {} cases ({conv_cases} with conv), worst relative errors: {}",
        cases.len(),
        report.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{group}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_gradients_antialiased_cnns() {
    check_grad_group("grad_antialiased_cnns", 100);
}

#[test]
fn golden_gradients_kornia() {
    check_grad_group("grad_kornia", 25);
}

#[test]
fn golden_gradients_timm() {
    check_grad_group("grad_timm", 30);
}

#[test]
fn golden_gradients_composer() {
    check_grad_group("grad_composer", 20);
}

#[test]
fn golden_gradients_torch_max_pool() {
    check_grad_group("grad_torch_maxpool", 20);
}

/// The golden comparison can fail: a perturbed dx or dweight is caught.
#[test]
fn golden_gradient_comparison_detects_a_wrong_value() {
    let cases = load_grad_cases("grad_antialiased_cnns");
    let c = cases
        .iter()
        .find(|c| c.op.conv().is_some() && c.bias.is_some())
        .unwrap();
    let g = typed_backward(
        &c.op,
        c.shape,
        Layout::Nchw,
        &c.x,
        &c.weight,
        c.bias.as_deref(),
        &c.dy,
    )
    .unwrap();
    let k =
        c.dx.iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
    let mut dx = g.dx.clone();
    dx[k] *= 1.0 + 1e-4;
    let (e, at) = max_rel_err(&dx, &c.dx).unwrap();
    assert!(
        e > F32_REL_TOL && at == k,
        "perturbed dx not caught: {e:e} at {at}"
    );
    let mut dw = g.dweight.clone();
    dw[0] += 1e-3 * dw.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max_rel_err(&dw, c.dweight.as_ref().unwrap()).unwrap().0 > F32_REL_TOL);
}

/// A "last maximum wins" argmax (`v >= best`): the wrong tie rule, to show the goldens tell it
/// apart from PyTorch's first-maximum rule.
fn max_backward_last_wins(op: &MaxPool2d, x: &Map, dm: &[f64]) -> Vec<f64> {
    let ms = op.output_shape(x.shape()).unwrap();
    let (kh, kw) = op.kernel();
    let (py, px) = op.padding();
    let s = x.shape();
    let mut dx = vec![0.0; x.data().len()];
    for n in 0..ms.n {
        for c in 0..ms.c {
            for i in 0..ms.h {
                for j in 0..ms.w {
                    let mut best = (f64::NEG_INFINITY, None);
                    for u in 0..kh {
                        for v in 0..kw {
                            let (y, xx) = ((i + u) as i64 - py as i64, (j + v) as i64 - px as i64);
                            if y < 0 || xx < 0 || y >= s.h as i64 || xx >= s.w as i64 {
                                continue;
                            }
                            let k = s.offset(Layout::Nchw, n, c, y as usize, xx as usize);
                            if best.1.is_none() || x.data()[k] >= best.0 || x.data()[k].is_nan() {
                                best = (x.data()[k], Some(k));
                            }
                        }
                    }
                    dx[best.1.unwrap()] += dm[ms.offset(Layout::Nchw, n, c, i, j)];
                }
            }
        }
    }
    dx
}

/// The tie cases exercise the first-max rule: wherever a window with a repeated maximum gets
/// a gradient, the last-max rule disagrees with the library's gradient, and ours agrees.
#[test]
fn golden_ties_decide_the_first_max_rule() {
    let mut tie_cases = 0;
    let mut caught = 0;
    for group in [
        "grad_antialiased_cnns",
        "grad_kornia",
        "grad_composer",
        "grad_torch_maxpool",
    ] {
        for c in load_grad_cases(group) {
            let (max, dm) = match &c.op {
                Operator::MaxPool(m) => (*m, c.dy.iter().map(|&v| v as f64).collect::<Vec<_>>()),
                Operator::MaxBlurPool(p) => {
                    let ms = p.max_map_shape(c.shape).unwrap();
                    let dy: Vec<f64> = c.dy.iter().map(|&v| v as f64).collect();
                    (
                        *p.max_pool(),
                        backward::blur_map_backward(p.blur(), ms, &dy, "t")
                            .unwrap()
                            .into_data(),
                    )
                }
                _ => continue,
            };
            let x = map(c.shape, c.x.iter().map(|&v| v as f64).collect());
            // Windows with a repeated finite maximum that receive a gradient.
            let ms = max.output_shape(c.shape).unwrap();
            let (kh, kw) = max.kernel();
            let (py, px) = max.padding();
            let mut relevant = 0;
            for n in 0..ms.n {
                for ch in 0..ms.c {
                    for i in 0..ms.h {
                        for j in 0..ms.w {
                            if dm[ms.offset(Layout::Nchw, n, ch, i, j)] == 0.0 {
                                continue;
                            }
                            let mut vals = Vec::new();
                            for u in 0..kh {
                                for v in 0..kw {
                                    let (y, xx) =
                                        ((i + u) as i64 - py as i64, (j + v) as i64 - px as i64);
                                    if y >= 0
                                        && xx >= 0
                                        && y < c.shape.h as i64
                                        && xx < c.shape.w as i64
                                    {
                                        vals.push(
                                            x.data()[c.shape.offset(
                                                Layout::Nchw,
                                                n,
                                                ch,
                                                y as usize,
                                                xx as usize,
                                            )],
                                        );
                                    }
                                }
                            }
                            let m = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                            if m.is_finite()
                                && !vals.iter().any(|v| v.is_nan())
                                && vals.iter().filter(|&&v| v == m).count() > 1
                            {
                                relevant += 1;
                            }
                        }
                    }
                }
            }
            if relevant == 0 {
                continue;
            }
            tie_cases += 1;
            let last: Vec<f32> = max_backward_last_wins(&max, &x, &dm)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let e = max_rel_err(&last, &c.dx).unwrap().0;
            if e > F32_REL_TOL {
                caught += 1;
            } else {
                println!("{group}/{}: last-max rule not told apart ({relevant} tied windows, error {e:e})", c.name);
            }
        }
    }
    println!("tie rule: {caught} of {tie_cases} golden max cases with gradient-carrying ties reject last-max");
    assert!(tie_cases >= 50, "only {tie_cases} golden cases with ties");
    assert_eq!(caught, tie_cases);
}

// ------------------------------------------------------------------------------------------
// (c) layouts and element types
// ------------------------------------------------------------------------------------------

fn typed_equals_rounded_map<T: Element>(p: &Problem) {
    let round = |v: &[f64]| v.iter().map(|&a| T::from_f64(a)).collect::<Vec<T>>();
    let widen = |v: &[T]| v.iter().map(|a| a.to_f64()).collect::<Vec<f64>>();
    let (x, w, b, dy) = (
        round(p.x.data()),
        round(&p.w),
        p.b.as_deref().map(round),
        round(&p.dy),
    );
    let out = p.op.output_shape(p.x.shape()).unwrap();
    let want = backward::backward_map(
        &p.op,
        &map(p.x.shape(), widen(&x)),
        &widen(&w),
        b.as_deref().map(widen).as_deref(),
        &widen(&dy),
    )
    .unwrap();
    for layout in Layout::ALL {
        let mut xl = vec![T::default(); x.len()];
        let mut dyl = vec![T::default(); dy.len()];
        let s = p.x.shape();
        for n in 0..s.n {
            for c in 0..s.c {
                for yy in 0..s.h {
                    for xx in 0..s.w {
                        xl[s.offset(layout, n, c, yy, xx)] =
                            x[s.offset(Layout::Nchw, n, c, yy, xx)];
                    }
                }
            }
            for c in 0..out.c {
                for yy in 0..out.h {
                    for xx in 0..out.w {
                        dyl[out.offset(layout, n, c, yy, xx)] =
                            dy[out.offset(Layout::Nchw, n, c, yy, xx)];
                    }
                }
            }
        }
        let mut dx = vec![T::default(); x.len()];
        let mut dw = vec![T::default(); w.len()];
        let mut db = b.as_ref().map(|b| vec![T::default(); b.len()]);
        backward::backward(
            &p.op,
            s,
            layout,
            &xl,
            &w,
            b.as_deref(),
            &dyl,
            &mut dx,
            &mut dw,
            db.as_deref_mut(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", p.label));
        let mut want_dx = vec![T::default(); x.len()];
        want.dx.write_to(layout, &mut want_dx).unwrap();
        let bits = |v: &[T]| v.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&dx),
            bits(&want_dx),
            "{} {:?} {:?}: dx",
            p.label,
            T::DTYPE,
            layout
        );
        assert_eq!(
            bits(&dw),
            bits(&round(&want.dweight)),
            "{} {:?}: dweight",
            p.label,
            T::DTYPE
        );
        assert_eq!(
            db.as_deref().map(bits),
            want.dbias.as_deref().map(|g| bits(&round(g))),
            "{}: dbias",
            p.label
        );
    }
}

/// The typed API (f32, f16, bf16; NCHW and NHWC) is the f64 map gradient rounded once.
#[test]
fn typed_gradients_are_the_f64_gradients_rounded_once() {
    for p in fd_problems().iter().step_by(3) {
        typed_equals_rounded_map::<f32>(p);
        typed_equals_rounded_map::<f16>(p);
        typed_equals_rounded_map::<bf16>(p);
    }
}

/// NHWC equals NCHW on the finite-difference problems too (the goldens check it per case).
#[test]
fn nhwc_gradients_equal_nchw() {
    for p in fd_problems() {
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (x, w, b, dy) = (f(p.x.data()), f(&p.w), p.b.as_deref().map(f), f(&p.dy));
        let a =
            typed_backward(&p.op, p.x.shape(), Layout::Nchw, &x, &w, b.as_deref(), &dy).unwrap();
        let c =
            typed_backward(&p.op, p.x.shape(), Layout::Nhwc, &x, &w, b.as_deref(), &dy).unwrap();
        assert_eq!(a.dx, c.dx, "{}", p.label);
        assert_eq!(a.dweight, c.dweight, "{}", p.label);
        assert_eq!(a.dbias, c.dbias, "{}", p.label);
    }
}

// ------------------------------------------------------------------------------------------
// (d) typed errors
// ------------------------------------------------------------------------------------------

fn buffer_error(r: blurpool::Result<()>) -> Option<(&'static str, usize, usize)> {
    match r {
        Err(Error::BufferLength {
            what,
            expected,
            got,
        }) => Some((what, expected, got)),
        _ => None,
    }
}

#[test]
fn bad_buffers_give_typed_errors() {
    let shape = Shape4::new(2, 4, 9, 8);
    let n_in = shape.numel().unwrap();
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 4,
        out_channels: 6,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 2,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap();
    let conv_nb = Conv2dSpec::new(Conv2dArgs {
        in_channels: 4,
        out_channels: 4,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 4,
        bias: false,
        activation: Activation::Relu6,
    })
    .unwrap();
    let blur = antialiased_cnns::blur(PadMode::Reflect, 3, 2, 0).unwrap();
    let blur1 = Blur::new(
        Filter::binomial(3).unwrap(),
        (1, 1),
        Pad2d::uniform(1),
        PadMode::Zero,
    )
    .unwrap();
    let ops = [
        Operator::MaxPool(MaxPool2d::new((2, 2), (0, 0)).unwrap()),
        Operator::BlurPool(BlurPool2d::new(blur.clone())),
        Operator::MaxBlurPool(
            antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0).unwrap(),
        ),
        Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur.clone())),
        Operator::ConvBlurPool(ConvBlurPool2d::new(conv_nb, blur.clone())),
        Operator::BlurConv(BlurConv2d::new(blur1, conv, (2, 2)).unwrap()),
    ];
    for op in &ops {
        let name = op.name();
        let n_out = op.output_shape(shape).unwrap().numel().unwrap();
        let (wl, bl) = op.conv().map_or((0, 0), |c| (c.weight_len(), c.bias_len()));
        let x = vec![0.5f32; n_in];
        let w = vec![0.25f32; wl];
        let b = (bl > 0).then(|| vec![0.1f32; bl]);
        let dy = vec![1f32; n_out];
        let run = |x: &[f32],
                   w: &[f32],
                   b: Option<&[f32]>,
                   dy: &[f32],
                   dxl: usize,
                   dwl: usize,
                   dbl: Option<usize>| {
            let mut dx = vec![0f32; dxl];
            let mut dw = vec![0f32; dwl];
            let mut db = dbl.map(|l| vec![0f32; l]);
            backward::backward(
                op,
                shape,
                Layout::Nhwc,
                x,
                w,
                b,
                dy,
                &mut dx,
                &mut dw,
                db.as_deref_mut(),
            )
        };
        let dbl = b.as_ref().map(|b| b.len());
        run(&x, &w, b.as_deref(), &dy, n_in, wl, dbl)
            .unwrap_or_else(|e| panic!("{name}: valid call failed: {e}"));
        let e = buffer_error(run(&x[1..], &w, b.as_deref(), &dy, n_in, wl, dbl));
        assert_eq!(e, Some(("input", n_in, n_in - 1)), "{name}: short x");
        let e = buffer_error(run(&x, &w, b.as_deref(), &dy[1..], n_in, wl, dbl));
        assert_eq!(
            e,
            Some(("output gradient (dy)", n_out, n_out - 1)),
            "{name}: short dy"
        );
        let e = buffer_error(run(&x, &w, b.as_deref(), &dy, n_in + 1, wl, dbl));
        assert_eq!(
            e,
            Some(("input gradient (dx)", n_in, n_in + 1)),
            "{name}: long dx"
        );
        if op.conv().is_none() {
            // weight, bias and their gradients are ignored.
            run(&x, &[1.0], Some(&[1.0]), &dy, n_in, 3, Some(2)).unwrap();
            continue;
        }
        let e = buffer_error(run(&x, &w[1..], b.as_deref(), &dy, n_in, wl, dbl));
        assert_eq!(e, Some(("weight", wl, wl - 1)), "{name}: short weight");
        let e = buffer_error(run(&x, &w, b.as_deref(), &dy, n_in, wl + 2, dbl));
        assert_eq!(
            e,
            Some(("weight gradient (dweight)", wl, wl + 2)),
            "{name}: long dweight"
        );
        if let Some(b) = &b {
            let e = buffer_error(run(&x, &w, None, &dy, n_in, wl, dbl));
            assert_eq!(e, Some(("bias", bl, 0)), "{name}: missing bias");
            let e = buffer_error(run(&x, &w, Some(b), &dy, n_in, wl, None));
            assert_eq!(
                e,
                Some(("bias gradient (dbias)", bl, 0)),
                "{name}: missing dbias"
            );
            let e = buffer_error(run(&x, &w, Some(b), &dy, n_in, wl, Some(bl - 1)));
            assert_eq!(
                e,
                Some(("bias gradient (dbias)", bl, bl - 1)),
                "{name}: short dbias"
            );
        } else {
            let e = buffer_error(run(&x, &w, Some(&[1.0; 4]), &dy, n_in, wl, None));
            assert_eq!(e, Some(("bias", 0, 4)), "{name}: unexpected bias");
            let e = buffer_error(run(&x, &w, None, &dy, n_in, wl, Some(4)));
            assert_eq!(
                e,
                Some(("bias gradient (dbias)", 0, 4)),
                "{name}: unexpected dbias"
            );
        }
    }

    // The per-operator entry points check too.
    let bp = BlurPool2d::new(blur.clone());
    let mut dx = vec![0f32; n_in];
    let r = backward::blur_pool_backward(&bp, shape, Layout::Nchw, &[0f32; 3], &mut dx);
    assert!(matches!(
        r,
        Err(Error::BufferLength {
            what: "output gradient (dy)",
            ..
        })
    ));
    let mp = MaxPool2d::new((3, 3), (1, 1)).unwrap();
    let r = backward::max_pool_backward(
        &mp,
        shape,
        Layout::Nchw,
        &vec![0f32; n_in],
        &vec![0f32; n_in],
        &mut dx[1..],
    );
    assert!(matches!(
        r,
        Err(Error::BufferLength {
            what: "input gradient (dx)",
            ..
        })
    ));

    // The f64 map level.
    let x = map(shape, vec![0.0; n_in]);
    let r = backward::max_map_backward(&mp, &x, &[0.0; 5]);
    assert!(
        matches!(
            r,
            Err(Error::BufferLength {
                what: "max-map gradient",
                ..
            })
        ),
        "{r:?}"
    );
    let r = backward::blur_map_backward(&blur, shape, &[0.0; 5], "t");
    assert!(
        matches!(
            r,
            Err(Error::BufferLength {
                what: "output gradient (dy)",
                ..
            })
        ),
        "{r:?}"
    );
    let r = backward::backward_map(&ops[3], &x, &vec![0.0; conv.weight_len()], None, &[0.0; 1]);
    assert!(
        matches!(
            r,
            Err(Error::BufferLength {
                what: "output gradient (dy)",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn bad_shapes_give_the_forwards_errors() {
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 4,
        out_channels: 4,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 1,
        bias: false,
        activation: Activation::Identity,
    })
    .unwrap();
    let reflect5 = antialiased_cnns::blur(PadMode::Reflect, 5, 2, 0).unwrap();
    let op = Operator::ConvBlurPool(ConvBlurPool2d::new(conv, reflect5.clone()));
    let shape = Shape4::new(1, 3, 8, 8);
    let z = vec![0f32; shape.numel().unwrap()];
    let mut dx = z.clone();
    let mut dw = vec![0f32; conv.weight_len()];
    let r = backward::backward(
        &op,
        shape,
        Layout::Nchw,
        &z,
        &dw.clone(),
        None,
        &[0f32; 16],
        &mut dx,
        &mut dw,
        None,
    );
    assert!(
        matches!(
            r,
            Err(Error::ChannelMismatch {
                expected: 4,
                got: 3
            })
        ),
        "{r:?}"
    );
    // Reflect padding 2 of a 2-wide map.
    let op = Operator::BlurPool(BlurPool2d::new(reflect5));
    let shape = Shape4::new(1, 1, 2, 9);
    let r = backward::backward::<f32>(
        &op,
        shape,
        Layout::Nchw,
        &[0.; 18],
        &[],
        None,
        &[0.; 5],
        &mut [0.; 18],
        &mut [],
        None,
    );
    assert!(matches!(r, Err(Error::ReflectPadTooLarge { .. })), "{r:?}");
    let r = backward::backward::<f32>(
        &op,
        Shape4::new(1, 0, 9, 9),
        Layout::Nchw,
        &[],
        &[],
        None,
        &[],
        &mut [],
        &mut [],
        None,
    );
    assert!(matches!(r, Err(Error::ZeroDim { .. })), "{r:?}");
}

/// An empty batch is a no-op that still zeroes the weight and bias gradients.
#[test]
fn empty_batch_gives_zero_parameter_gradients() {
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 2,
        out_channels: 3,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 1,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap();
    let op = Operator::ConvBlurPool(ConvBlurPool2d::new(
        conv,
        antialiased_cnns::blur(PadMode::Zero, 3, 2, 0).unwrap(),
    ));
    let w = vec![1f32; conv.weight_len()];
    let mut dw = vec![f32::NAN; conv.weight_len()];
    let mut db = vec![f32::NAN; 3];
    let shape = Shape4::new(0, 2, 5, 5);
    backward::backward(
        &op,
        shape,
        Layout::Nhwc,
        &[],
        &w,
        Some(&[0.0; 3]),
        &[],
        &mut [],
        &mut dw,
        Some(&mut db),
    )
    .unwrap();
    assert!(dw.iter().chain(&db).all(|&v| v == 0.0));
}
