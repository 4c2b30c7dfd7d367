//! GPU tests: every kernel against the CPU reference over a matrix of dtypes × layouts × pad
//! modes × filters × strides × sizes (and windows, groups, activations), on fresh random data
//! with poisoned outputs. Without a CUDA device each test prints that it was skipped and why.
//!
//! Tolerances per dtype are stated (and applied) in src/verify.rs: f32 relative 1e-5, f16/bf16
//! one ulp of the output, plus the f32 summation bound 2·n·2⁻²⁴·Σ|terms|; dense max bit-exact.
//!
//! The seed of the random data is printed; set BLURPOOL_TEST_SEED to replay it.

use std::sync::Arc;

use blurpool::cuda::Kernels;
use blurpool::ops::Operator;
use blurpool::verify::{check_case, random_vec, run_gpu, CaseData, Gpu};
use blurpool::{
    reference, Activation, Blur, BlurConv2d, BlurPool2d, Conv2dSpec, ConvBlurPool2d, DType,
    Element, Filter, Layout, MaxBlurPool2d, MaxPool2d, Pad2d, PadMode, Shape4,
};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn gpu(test: &str) -> Option<Gpu> {
    if let Err(e) = blurpool::cuda::open_device(0) {
        println!("SKIPPED {test}: no CUDA device ({e})");
        return None;
    }
    // A device exists: from here on, failing to load the kernels is a test failure.
    let g = Gpu::open(0).expect("loading the kernels on a machine with a GPU must work");
    println!(
        "{test}: running on {}, kernels from {:?}",
        g.ctx.name().unwrap_or_default(),
        g.kernels.source()
    );
    Some(g)
}

fn seed() -> u64 {
    let s = std::env::var("BLURPOOL_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("BLURPOOL_TEST_SEED={s}");
    s
}

/// Runs `cases` over every dtype and layout; prints counts and fails with the first failures.
fn run_matrix(test: &str, cases: &[(Operator, Shape4)]) {
    let Some(g) = gpu(test) else { return };
    let mut rng = StdRng::seed_from_u64(seed());
    let (mut run, mut failures) = (0usize, Vec::new());
    for (op, shape) in cases {
        for layout in Layout::ALL {
            for dtype in DType::ALL {
                let r = match dtype {
                    DType::F32 => check_case::<f32>(&g, &mut rng, op, *shape, layout),
                    DType::F16 => check_case::<f16>(&g, &mut rng, op, *shape, layout),
                    DType::BF16 => check_case::<bf16>(&g, &mut rng, op, *shape, layout),
                };
                run += 1;
                if let Err(e) = r {
                    failures.push(e);
                }
            }
        }
    }
    g.ctx.check_err().expect("no deferred CUDA errors");
    println!(
        "{test}: {run} cases run, {} passed, {} failed",
        run - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{test}: {} failures, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Sizes: 1×1, prime, odd, even, wide, tall; batch and channels that divide nothing.
const SIZES: [Shape4; 6] = [
    Shape4::new(1, 1, 1, 1),
    Shape4::new(2, 3, 13, 17),
    Shape4::new(1, 5, 9, 11),
    Shape4::new(3, 2, 8, 10),
    Shape4::new(1, 3, 3, 41),
    Shape4::new(2, 1, 37, 4),
];

/// Filters 1..=7 and a custom non-binomial, asymmetric one (different taps per axis).
fn filters() -> Vec<Filter> {
    let mut f: Vec<Filter> = (1..=7).map(|k| Filter::binomial(k).unwrap()).collect();
    f.push(Filter::separable(&[0.1, 0.6, 0.3], &[0.2, 0.5, 0.2, 0.1]).unwrap());
    f
}

const STRIDES: [(usize, usize); 4] = [(1, 1), (2, 2), (3, 3), (2, 3)];

/// Blur stages: every pad mode × filter × stride, with antialiased-cnns-style asymmetric
/// padding ⌊(F−1)/2⌋ / ⌈(F−1)/2⌉ per axis.
fn blurs() -> Vec<Blur> {
    let mut out = Vec::new();
    for mode in PadMode::ALL {
        for f in filters() {
            for stride in STRIDES {
                let (fy, fx) = (f.size_y(), f.size_x());
                let pad = Pad2d::new((fy - 1) / 2, fy / 2, (fx - 1) / 2, fx / 2);
                out.push(Blur::new(f.clone(), stride, pad, mode).unwrap());
            }
        }
    }
    out
}

#[test]
fn max_pool_matches_reference() {
    let mut cases = Vec::new();
    for (k, p) in [
        ((1, 1), (0, 0)),
        ((2, 2), (0, 0)),
        ((2, 2), (1, 1)),
        ((3, 3), (0, 0)),
        ((3, 3), (1, 1)),
        ((2, 3), (1, 1)),
    ] {
        for s in SIZES {
            cases.push((Operator::MaxPool(MaxPool2d::new(k, p).unwrap()), s));
        }
    }
    run_matrix("max_pool", &cases);
}

#[test]
fn blur_pool_matches_reference() {
    let cases: Vec<_> = blurs()
        .into_iter()
        .flat_map(|b| SIZES.map(|s| (Operator::BlurPool(BlurPool2d::new(b.clone())), s)))
        .collect();
    run_matrix("blur_pool", &cases);
}

#[test]
fn max_blur_pool_matches_reference() {
    let windows = [
        ((1, 1), (0, 0)),
        ((2, 2), (0, 0)),
        ((2, 2), (1, 1)),
        ((3, 3), (0, 0)),
        ((3, 3), (1, 1)),
    ];
    let mut cases = Vec::new();
    for (i, b) in blurs().into_iter().enumerate() {
        for (k, p) in windows {
            // Every size for the common window; the others rotate through the sizes.
            let sizes: Vec<Shape4> = if k == (2, 2) && p == (0, 0) {
                SIZES.to_vec()
            } else {
                vec![SIZES[i % SIZES.len()], SIZES[(i + 3) % SIZES.len()]]
            };
            for s in sizes {
                cases.push((
                    Operator::MaxBlurPool(MaxBlurPool2d::new(
                        MaxPool2d::new(k, p).unwrap(),
                        b.clone(),
                    )),
                    s,
                ));
            }
        }
    }
    run_matrix("max_blur_pool", &cases);
}

/// (Cin, Cout, groups): dense, depthwise, in between.
const CONV_GROUPS: [(usize, usize, usize); 3] = [(3, 4, 1), (4, 4, 4), (4, 6, 2)];

fn conv_specs() -> Vec<Conv2dSpec> {
    let mut out = Vec::new();
    for (cin, cout, g) in CONV_GROUPS {
        for k in [1, 3, 5, 7] {
            for bias in [false, true] {
                for act in Activation::ALL {
                    out.push(
                        Conv2dSpec::new(cin, cout, (k, k), (k / 2, k / 2), g, bias, act).unwrap(),
                    );
                }
            }
        }
    }
    out
}

#[test]
fn conv_blur_pool_matches_reference() {
    let mut cases = Vec::new();
    let fs = [
        Filter::binomial(3).unwrap(),
        Filter::binomial(4).unwrap(),
        Filter::separable(&[0.1, 0.6, 0.3], &[0.2, 0.5, 0.2, 0.1]).unwrap(),
    ];
    for (i, conv) in conv_specs().into_iter().enumerate() {
        let mode = PadMode::ALL[i % 3];
        let f = fs[i % fs.len()].clone();
        let stride = STRIDES[1 + i % 3];
        let pad = Pad2d::new(
            (f.size_y() - 1) / 2,
            f.size_y() / 2,
            (f.size_x() - 1) / 2,
            f.size_x() / 2,
        );
        let blur = Blur::new(f, stride, pad, mode).unwrap();
        for s in [
            Shape4::new(2, conv.in_channels(), 9, 11),
            Shape4::new(1, conv.in_channels(), 8, 13),
        ] {
            cases.push((
                Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur.clone())),
                s,
            ));
        }
    }
    run_matrix("conv_blur_pool", &cases);
}

#[test]
fn blur_conv_matches_reference() {
    let mut cases = Vec::new();
    for (i, conv) in conv_specs().into_iter().enumerate() {
        let mode = PadMode::ALL[i % 3];
        let f = Filter::binomial([1, 3, 4, 5][i % 4]).unwrap();
        let p = f.size_y() / 2;
        let blur = Blur::new(f, (1, 1), Pad2d::new(p, p, p, p), mode).unwrap();
        let stride = STRIDES[1 + i % 3];
        for s in [
            Shape4::new(2, conv.in_channels(), 9, 11),
            Shape4::new(1, conv.in_channels(), 10, 7),
        ] {
            cases.push((
                Operator::BlurConv(BlurConv2d::new(blur.clone(), conv, stride).unwrap()),
                s,
            ));
        }
    }
    run_matrix("blur_conv", &cases);
}

/// NaN and ±inf through MaxBlurPool give exactly PyTorch's max_pool2d behaviour (the
/// reference follows PyTorch's rule and is itself checked against torch in tests/golden.rs).
#[test]
fn nan_and_inf_propagate_like_pytorch() {
    let Some(g) = gpu("nan_and_inf") else { return };
    let shape = Shape4::new(1, 2, 9, 10);
    let mut rng = StdRng::seed_from_u64(seed());
    let mut runs = 0;
    for layout in Layout::ALL {
        for (k, filt) in [(2, 1), (2, 3), (3, 4)] {
            let op = Operator::MaxBlurPool(
                blurpool::presets::antialiased_cnns::max_blur_pool(
                    k,
                    0,
                    PadMode::Reflect,
                    filt,
                    2,
                    0,
                )
                .unwrap(),
            );
            let mut data = CaseData::<f32>::random(&mut rng, &op, shape);
            for (i, v) in [
                (5, f32::NAN),
                (17, f32::INFINITY),
                (40, f32::NEG_INFINITY),
                (41, f32::NEG_INFINITY),
                (77, f32::NAN),
                (78, f32::INFINITY),
            ] {
                data.x[i] = v;
            }
            let out = op.output_shape(shape).unwrap();
            let mut want = vec![0f32; out.numel().unwrap()];
            reference::run(&op, shape, layout, &data.x, &[], None, &mut want).unwrap();
            let got = run_gpu(&g, &g.stream, &op, shape, layout, &data, false).unwrap();
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                let same = (a.is_nan() && b.is_nan())
                    || a == b
                    || (a.is_finite() && b.is_finite() && (a - b).abs() <= 1e-5 * b.abs().max(1.0));
                assert!(
                    same,
                    "{layout:?} k={k}: element {k}: gpu {a}, reference {b}"
                );
            }
            assert!(want.iter().any(|v| v.is_nan()), "the case must produce NaN");
            runs += 1;
        }
    }
    println!("nan_and_inf: {runs} cases passed");
}

/// An empty batch returns at once and touches nothing.
#[test]
fn empty_batch_is_a_no_op() {
    let Some(g) = gpu("empty_batch") else { return };
    let op = Operator::MaxBlurPool(
        blurpool::presets::antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0)
            .unwrap(),
    );
    let shape = Shape4::new(0, 3, 8, 8);
    let data = CaseData::<f32> {
        x: Vec::new(),
        w: Vec::new(),
        b: None,
    };
    let got = run_gpu(&g, &g.stream, &op, shape, Layout::Nchw, &data, false).unwrap();
    assert!(got.is_empty());
}

/// The same input 100 times gives bitwise identical output; so do other streams and the
/// raw-pointer entry.
#[test]
fn deterministic_across_runs_streams_and_entries() {
    let Some(g) = gpu("determinism") else { return };
    let mut rng = StdRng::seed_from_u64(seed());
    let shape = Shape4::new(2, 8, 33, 35);
    let conv = Conv2dSpec::new(8, 8, (3, 3), (1, 1), 2, true, Activation::Relu).unwrap();
    let ops = [
        Operator::MaxBlurPool(
            blurpool::presets::antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0)
                .unwrap(),
        ),
        Operator::BlurPool(blurpool::presets::timm::blur_pool2d(3, 2, PadMode::Reflect).unwrap()),
        Operator::ConvBlurPool(
            blurpool::presets::antialiased_cnns::conv_blur_pool(conv, PadMode::Zero, 3, 2, 0)
                .unwrap(),
        ),
    ];
    let other = g.ctx.new_stream().unwrap();
    let default = g.ctx.default_stream();
    for op in &ops {
        for layout in Layout::ALL {
            let data = CaseData::<f16>::random(&mut rng, op, shape);
            let first = run_gpu(&g, &g.stream, op, shape, layout, &data, false).unwrap();
            let bits = |v: &[f16]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
            for _ in 0..100 {
                assert_eq!(
                    bits(&run_gpu(&g, &g.stream, op, shape, layout, &data, false).unwrap()),
                    bits(&first)
                );
            }
            assert_eq!(
                bits(&run_gpu(&g, &other, op, shape, layout, &data, false).unwrap()),
                bits(&first),
                "another stream"
            );
            assert_eq!(
                bits(&run_gpu(&g, &default, op, shape, layout, &data, false).unwrap()),
                bits(&first),
                "default stream"
            );
            assert_eq!(
                bits(&run_gpu(&g, &g.stream, op, shape, layout, &data, true).unwrap()),
                bits(&first),
                "raw entry"
            );
        }
    }
    println!("determinism: 3 operators × 2 layouts × 100 runs bitwise identical, other streams and raw entry agree");
}

/// The NVRTC path compiles the same sources and gives bitwise the same results as the fatbin.
#[test]
fn nvrtc_path_matches_fatbin() {
    let Some(g) = gpu("nvrtc_path") else { return };
    let nvrtc = match Kernels::load(&g.ctx, true) {
        Ok(k) => Arc::new(k),
        Err(blurpool::Error::Nvrtc(msg)) if msg.contains("not found") => {
            println!("SKIPPED nvrtc_path: {msg}");
            return;
        }
        Err(e) => panic!("NVRTC path failed: {e}"),
    };
    let g2 = Gpu {
        ctx: g.ctx.clone(),
        kernels: nvrtc,
        stream: g.stream.clone(),
    };
    let mut rng = StdRng::seed_from_u64(seed());
    let shape = Shape4::new(2, 6, 17, 19);
    let conv = Conv2dSpec::new(6, 6, (3, 3), (1, 1), 3, true, Activation::Relu6).unwrap();
    let ops = [
        Operator::MaxBlurPool(blurpool::presets::kornia::max_blur_pool2d(3, 2, 2).unwrap()),
        Operator::ConvBlurPool(
            blurpool::presets::timm::conv_blur_pool(conv, 3, 2, PadMode::Reflect).unwrap(),
        ),
    ];
    for op in &ops {
        for layout in Layout::ALL {
            let data = CaseData::<bf16>::random(&mut rng, op, shape);
            let a = run_gpu(&g, &g.stream, op, shape, layout, &data, false).unwrap();
            let b = run_gpu(&g2, &g.stream, op, shape, layout, &data, false).unwrap();
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{op:?} {layout:?}"
            );
        }
    }
    println!(
        "nvrtc_path: {:?} and {:?} agree bitwise",
        g.kernels.source(),
        g2.kernels.source()
    );
}

/// A tensor of more than 2^31 elements (f16, ~4.3 GB in, ~1 GB out) is right at its far end.
/// Needs ~6 GB of GPU memory; runs only with BLURPOOL_BIG_TESTS=1 (the GPU bundle sets it).
#[test]
fn more_than_2_pow_31_elements() {
    if std::env::var("BLURPOOL_BIG_TESTS").is_err() {
        println!("SKIPPED big_tensor: set BLURPOOL_BIG_TESTS=1 (needs ~6 GB of GPU memory)");
        return;
    }
    let Some(g) = gpu("big_tensor") else { return };
    let op = Operator::MaxBlurPool(
        blurpool::presets::antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 3, 2, 0)
            .unwrap(),
    );
    // 2^31 + a bit: N×C×H×W = 33×1024×256×256 > 2^31.
    let shape = Shape4::new(33, 1024, 256, 256);
    let n = shape.numel().unwrap();
    assert!(n > 1 << 31);
    for layout in Layout::ALL {
        let mut rng = StdRng::seed_from_u64(seed());
        let host: Vec<f16> = random_vec(&mut rng, n, 1.0);
        let data = CaseData {
            x: host,
            w: Vec::new(),
            b: None,
        };
        let got = run_gpu(&g, &g.stream, &op, shape, layout, &data, false).unwrap();
        // Check the last image in full against the reference (it lies beyond 2^31).
        let last = Shape4::new(1, shape.c, shape.h, shape.w);
        let per = last.numel().unwrap();
        let (xs, out) = (&data.x[n - per..], op.output_shape(last).unwrap());
        let mut want = vec![f16::ZERO; out.numel().unwrap()];
        reference::run(&op, last, layout, xs, &[], None, &mut want).unwrap();
        let tail = &got[got.len() - want.len()..];
        let bad = tail
            .iter()
            .zip(&want)
            .filter(|(a, b)| {
                (a.to_f64() - b.to_f64()).abs() > 2.0 * f16::UNIT_ROUNDOFF * b.to_f64().abs() + 1e-6
            })
            .count();
        assert_eq!(bad, 0, "{layout:?}: {bad} wrong elements in the last image");
        println!(
            "big_tensor {layout:?}: {n} elements, last image ({} outputs) matches",
            want.len()
        );
    }
}
