//! The test matrix shared by the GPU tests (tests/gpu.rs) and the host-emulated kernel tests
//! (tests/emulated.rs): every operator × pad mode × filter 1..7 and a custom one × strides ×
//! max windows × sizes 1×1, prime, odd, even, wide, tall (batch and channels that divide no
//! block shape); conv groups 1, Cin and between, kernels 1/3/5/7, bias, each activation.
//!
//! `run_matrix` runs each case in every dtype × layout when the matrix is full (the GPU tests,
//! and CI with `BLURPOOL_FULL_MATRIX=1`), else each case in one dtype × layout chosen by a hash
//! of its position: every case, pad mode, filter and size still runs, every dtype and layout
//! runs on a sixth of them, and `cargo test` stays quick.

use blurpool::cuda::{specialised_kernels, KernelVersion, Specialised, Target};
use blurpool::reference;
use blurpool::{
    Activation, Blur, BlurConv2d, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType,
    Filter, Layout, MaxBlurPool2d, MaxPool2d, Operator, Pad2d, PadMode, Shape4,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::check::{check_in_dtype, Runner};
use crate::data::{CaseData, TestElement};
use crate::emu::Emu;

/// Environment variable that makes [`run_matrix`] run every case in every dtype × layout.
pub const FULL_MATRIX_ENV: &str = "BLURPOOL_FULL_MATRIX";

/// How much of the matrix a run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every case × every dtype × layout.
    Full,
    /// Every case in one dtype × layout (a sixth of the runs).
    Sample,
}

impl Coverage {
    /// `Full` when `BLURPOOL_FULL_MATRIX=1`, else `Sample`.
    pub fn from_env() -> Coverage {
        match std::env::var(FULL_MATRIX_ENV) {
            Ok(v) if v == "1" => Coverage::Full,
            _ => Coverage::Sample,
        }
    }
}

/// SplitMix64: a well-mixed hash of a case's position (so the sampled dtype × layout does not
/// line up with the nested loops that generate the cases).
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of the random data: BLURPOOL_TEST_SEED, or the clock (printed either way).
pub fn seed() -> u64 {
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

/// Runs `cases` ([`Coverage::from_env`]); prints counts and fails with the first failures.
/// Returns the number of (case, dtype, layout) runs.
pub fn run_matrix(g: &impl Runner, test: &str, cases: &[(Operator, Shape4)]) -> usize {
    run_cases(g, test, cases, false, Coverage::from_env())
}

/// `run_matrix` for the backward: dx (and dweight, dbias).
pub fn run_backward_matrix(g: &impl Runner, test: &str, cases: &[(Operator, Shape4)]) -> usize {
    run_cases(g, test, cases, true, Coverage::from_env())
}

/// `run_matrix` / `run_backward_matrix` with an explicit coverage (the GPU tests run it all).
pub fn run_cases(
    g: &impl Runner,
    test: &str,
    cases: &[(Operator, Shape4)],
    backward: bool,
    coverage: Coverage,
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed());
    let (mut run, mut failures) = (0usize, Vec::new());
    let combos: Vec<(Layout, DType)> = Layout::ALL
        .into_iter()
        .flat_map(|l| DType::ALL.map(|d| (l, d)))
        .collect();
    for (i, (op, shape)) in cases.iter().enumerate() {
        let chosen: Vec<(Layout, DType)> = match coverage {
            Coverage::Full => combos.clone(),
            Coverage::Sample => vec![combos[(mix(i as u64) % combos.len() as u64) as usize]],
        };
        for (layout, dtype) in chosen {
            let r = check_in_dtype(g, &mut rng, op, *shape, layout, dtype, backward);
            run += 1;
            if let Err(e) = r {
                failures.push(e);
            }
        }
    }
    println!(
        "{test}: {run} cases run ({coverage:?} coverage of {} cases × {} dtype-layouts), {} passed, {} failed",
        cases.len(),
        combos.len(),
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
    run
}

/// Backward of the pooling operators: dense max (windows 1..3, padding), BlurPool (every blur
/// stage on two sizes) and MaxBlurPool (every blur stage × windows, rotating sizes).
pub fn backward_pooling_cases() -> Vec<(Operator, Shape4)> {
    let mut cases = max_pool_cases();
    for (i, b) in blurs().into_iter().enumerate() {
        cases.push((
            Operator::BlurPool(BlurPool2d::new(b.clone())),
            SIZES[i % SIZES.len()],
        ));
        for (k, (win, pad)) in [
            ((1, 1), (0, 0)),
            ((2, 2), (0, 0)),
            ((2, 2), (1, 1)),
            ((3, 3), (1, 1)),
        ]
        .into_iter()
        .enumerate()
        {
            cases.push((
                Operator::MaxBlurPool(MaxBlurPool2d::new(
                    MaxPool2d::new(win, pad).unwrap(),
                    b.clone(),
                )),
                SIZES[(i + k) % SIZES.len()],
            ));
        }
    }
    cases
}

/// Sizes: 1×1, prime, odd, even, wide, tall; batch and channels that divide nothing.
pub const SIZES: [Shape4; 6] = [
    Shape4::new(1, 1, 1, 1),
    Shape4::new(2, 3, 13, 17),
    Shape4::new(1, 5, 9, 11),
    Shape4::new(3, 2, 8, 10),
    Shape4::new(1, 3, 3, 41),
    Shape4::new(2, 1, 37, 4),
];

/// Filters 1..=7 and a custom non-binomial, asymmetric one (different taps per axis).
pub fn filters() -> Vec<Filter> {
    let mut f: Vec<Filter> = (1..=7).map(|k| Filter::binomial(k).unwrap()).collect();
    f.push(Filter::separable(&[0.1, 0.6, 0.3], &[0.2, 0.5, 0.2, 0.1]).unwrap());
    f
}

pub const STRIDES: [(usize, usize); 4] = [(1, 1), (2, 2), (3, 3), (2, 3)];

/// Blur stages: every pad mode × filter × stride, with antialiased-cnns-style asymmetric
/// padding ⌊(F−1)/2⌋ / ⌈(F−1)/2⌉ per axis.
pub fn blurs() -> Vec<Blur> {
    let mut out = Vec::new();
    for mode in PadMode::ALL {
        for f in filters() {
            for stride in STRIDES {
                let (fy, fx) = (f.size_y(), f.size_x());
                let pad = Pad2d {
                    top: (fy - 1) / 2,
                    bottom: fy / 2,
                    left: (fx - 1) / 2,
                    right: fx / 2,
                };
                out.push(Blur::new(f.clone(), stride, pad, mode).unwrap());
            }
        }
    }
    out
}

/// Dense max: windows 1..3, with and without padding, every size.
pub fn max_pool_cases() -> Vec<(Operator, Shape4)> {
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
    cases
}

/// BlurPool: every blur stage × every size.
pub fn blur_pool_cases() -> Vec<(Operator, Shape4)> {
    blurs()
        .into_iter()
        .flat_map(|b| SIZES.map(|s| (Operator::BlurPool(BlurPool2d::new(b.clone())), s)))
        .collect()
}

/// MaxBlurPool: every blur stage × max windows 1..3 with and without padding.
pub fn max_blur_pool_cases() -> Vec<(Operator, Shape4)> {
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
    cases
}

/// Sizes for the strip kernels: several strips of 8 output rows with a partial last one,
/// odd and even channel counts (NHWC half types pair channels), 1×1, 2×2, wide and tall.
pub const STRIP_SIZES: [Shape4; 7] = [
    Shape4::new(1, 1, 1, 1),
    Shape4::new(2, 3, 37, 17),
    Shape4::new(1, 4, 19, 23),
    Shape4::new(3, 2, 8, 10),
    Shape4::new(1, 5, 2, 2),
    Shape4::new(2, 6, 3, 41),
    Shape4::new(1, 7, 45, 4),
];

/// Sizes for the v4 strip kernels (NHWC, C a multiple of 8, so every dtype takes the 16-byte
/// vectors): one pixel, odd extents, rows shorter than the span, columns narrower than the
/// filter, several vectors per pixel.
pub const STRIP4_SIZES: [Shape4; 6] = [
    Shape4::new(1, 8, 1, 1),
    Shape4::new(2, 16, 37, 17),
    Shape4::new(1, 8, 19, 23),
    Shape4::new(3, 24, 8, 10),
    Shape4::new(1, 8, 2, 2),
    Shape4::new(2, 16, 3, 41),
];

/// Sizes for the v4 strips in NCHW: W a multiple of 8 (every dtype reads 16-byte row chunks)
/// or of 4 (f16/bf16 read 8-byte chunks, f32 16-byte ones) or 2 (f32 8-byte chunks; f16/bf16
/// v2): rows of 4 outputs (f32: one group reaching both ends; f16/bf16: narrower than a group,
/// so v2), 8 outputs on two rows (one group reaching both ends in every dtype), 10/12/14/18/20/
/// 24/32 outputs (whole groups and a tail, rows of y not a multiple of 8), odd heights, one
/// channel to twenty.
pub const STRIP4_NCHW_SIZES: [Shape4; 12] = [
    Shape4::new(1, 1, 8, 8),
    Shape4::new(2, 3, 37, 16),
    Shape4::new(1, 2, 19, 24),
    Shape4::new(1, 2, 5, 64),
    Shape4::new(1, 1, 2, 16),
    Shape4::new(2, 1, 3, 40),
    Shape4::new(1, 3, 21, 48),
    // 20 channels × 2 strips: 40 rows of items, warps across rows and planes.
    Shape4::new(1, 20, 19, 24),
    // 8-byte chunks in f16/bf16 (W % 8 == 4), in f32 (W % 4 == 2)
    Shape4::new(1, 2, 13, 28),
    Shape4::new(2, 3, 9, 20),
    Shape4::new(1, 2, 7, 36),
    Shape4::new(1, 2, 11, 18),
];

/// [`strip_cases`]' operators on [`STRIP4_SIZES`] (NHWC) or [`STRIP4_NCHW_SIZES`]: the v4
/// strips' matrix for `layout`.
pub fn strip4_cases(layout: Layout) -> Vec<(Operator, Shape4)> {
    let sizes: &[Shape4] = match layout {
        Layout::Nhwc => &STRIP4_SIZES,
        Layout::Nchw => &STRIP4_NCHW_SIZES,
    };
    let mut cases: Vec<(Operator, Shape4)> = strip_cases()
        .into_iter()
        .enumerate()
        .map(|(i, (op, _))| (op, sizes[i % sizes.len()]))
        .collect();
    if layout == Layout::Nchw {
        // The blur's padding a v4 group fills in on each side (kernels/strip.cuh,
        // bp_strip4_pad_columns): 2 and 3 columns at either end in every pad mode, with max
        // padding 0 and 1, on rows of 56 (f16: 7 groups of 28 outputs, 3 whole and a tail) and
        // 24 (one group and a tail, each reaching both ends); 4 at the left takes v2 (tests/emulated.rs pins it).
        for spec in specialised_kernels() {
            let Specialised::Pooling {
                window: k,
                filter: f,
                stride: st,
            } = spec
            else {
                continue;
            };
            for (i, (left, right)) in [(2, 3), (3, 2), (3, 3), (4, 1)].into_iter().enumerate() {
                for mode in PadMode::ALL {
                    for mp in if k == 1 { vec![0] } else { vec![0, 1] } {
                        let blur = Blur::new(
                            Filter::binomial(f).unwrap(),
                            (st, st),
                            Pad2d {
                                top: right,
                                bottom: left,
                                left,
                                right,
                            },
                            mode,
                        )
                        .unwrap();
                        let op = strip_pool_op(k, mp, blur);
                        let w = if (i + mp) % 2 == 0 { 56 } else { 24 };
                        cases.push((op, Shape4::new(1, 2, 11, w)));
                    }
                }
            }
        }
    }
    cases
}

/// Runs `cases` in `layout` with `r` (every dtype under full coverage, one per case, cycling,
/// under the sample) and returns the runs per kernel version the plans chose.
pub fn run_layout_cases(
    r: &Emu,
    test: &str,
    cases: &[(Operator, Shape4)],
    layout: Layout,
) -> std::collections::BTreeMap<KernelVersion, usize> {
    let mut rng = StdRng::seed_from_u64(seed());
    let coverage = Coverage::from_env();
    let (mut versions, mut failures) = (std::collections::BTreeMap::new(), Vec::new());
    let mut run = 0usize;
    for (i, (op, shape)) in cases.iter().enumerate() {
        let dtypes: Vec<DType> = match coverage {
            Coverage::Full => DType::ALL.to_vec(),
            Coverage::Sample => vec![DType::ALL[i % DType::ALL.len()]],
        };
        for dtype in dtypes {
            let target = Target::new(dtype, layout).with_choice(r.choice);
            if let Ok(plan) = op.plan(*shape, target) {
                *versions.entry(plan.version()).or_insert(0) += 1;
            }
            run += 1;
            if let Err(e) = check_in_dtype(r, &mut rng, op, *shape, layout, dtype, false) {
                failures.push(e);
            }
        }
    }
    println!(
        "{test}: {run} {layout:?} cases run ({coverage:?} coverage of {} cases), {} failed; plans by version: {versions:?}",
        cases.len(),
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
    versions
}

/// The binomial filter of size `f` and an asymmetric one: `taps` (cycled to length `f`) down
/// the rows and the same taps reversed across the columns, so a kernel that swaps the axes or
/// flips a filter fails.
fn binomial_and_skewed(f: usize, taps: [f64; 4]) -> [Filter; 2] {
    let rows: Vec<f64> = (0..f).map(|t| taps[t % 4]).collect();
    let cols: Vec<f64> = rows.iter().rev().copied().collect();
    [
        Filter::binomial(f).unwrap(),
        Filter::separable(&rows, &cols).unwrap(),
    ]
}

/// A strip specialisation's operator: BlurPool2d for max window `k` = 1, else MaxBlurPool2d
/// with a k×k max at padding `mp`, over `blur`.
fn strip_pool_op(k: usize, mp: usize, blur: Blur) -> Operator {
    if k == 1 {
        Operator::BlurPool(BlurPool2d::new(blur))
    } else {
        Operator::MaxBlurPool(MaxBlurPool2d::new(
            MaxPool2d::new((k, k), (mp, mp)).unwrap(),
            blur,
        ))
    }
}

/// Cases for every strip specialisation (kernels/strip.cu): each pad mode × the presets'
/// paddings (antialiased-cnns asymmetric, timm/composer symmetric, kornia, none, and wider
/// than the filter) × binomial and custom taps (negative ones too) × max padding 0 and 1,
/// sizes rotating. Under KernelChoice::Auto each valid case plans a strip kernel (checked by
/// `strip_cases_plan_strip_kernels`); under General the same cases test the v1 kernels.
pub fn strip_cases() -> Vec<(Operator, Shape4)> {
    let mut cases = Vec::new();
    let mut turn = 0usize;
    for spec in specialised_kernels() {
        let Specialised::Pooling {
            window: k,
            filter: f,
            stride: s,
        } = spec
        else {
            continue;
        };
        let filters = binomial_and_skewed(f, [0.7, -0.2, 0.45, 0.15]);
        let pads = [
            ((f - 1) / 2, f / 2),
            ((s - 1 + f - 1) / 2, (s - 1 + f - 1) / 2),
            ((f - 1) / 2, (f - 1) / 2 + 1),
            (0, 0),
            (f, f + 1),
        ];
        let max_pads: &[usize] = if k == 1 { &[0] } else { &[0, 1] };
        for mode in PadMode::ALL {
            for filter in &filters {
                for (before, after) in pads {
                    for &mp in max_pads {
                        let blur = Blur::new(
                            filter.clone(),
                            (s, s),
                            Pad2d {
                                top: before,
                                bottom: after,
                                left: before,
                                right: after,
                            },
                            mode,
                        )
                        .unwrap();
                        let op = strip_pool_op(k, mp, blur);
                        for _ in 0..3 {
                            cases.push((op.clone(), STRIP_SIZES[turn % STRIP_SIZES.len()]));
                            turn += 1;
                        }
                    }
                }
            }
        }
    }
    cases
}

/// The conv-blur variations both conv specialisations are tested over: each pad mode × conv
/// padding 0/1/2 × (no bias, identity), (bias, relu), (bias, relu6) × blur padding `pads`
/// (before, after; both axes) × `filters`, at stride (s, s): (blur, conv padding, bias,
/// activation).
fn conv_blur_grid(
    filters: &[Filter],
    pads: &[(usize, usize)],
    s: usize,
) -> Vec<(Blur, usize, bool, Activation)> {
    let mut out = Vec::new();
    for mode in PadMode::ALL {
        for conv_pad in [0, 1, 2] {
            for (bias, act) in [
                (false, Activation::Identity),
                (true, Activation::Relu),
                (true, Activation::Relu6),
            ] {
                for &(before, after) in pads {
                    for filter in filters {
                        let pad = Pad2d {
                            top: before,
                            bottom: after,
                            left: before,
                            right: after,
                        };
                        let blur = Blur::new(filter.clone(), (s, s), pad, mode).unwrap();
                        out.push((blur, conv_pad, bias, act));
                    }
                }
            }
        }
    }
    out
}

/// Cases for the depthwise ConvBlurPool strip kernels: each pad mode × conv padding 0/1/2 ×
/// (no bias, identity), (bias, relu), (bias, relu6) × blur paddings (antialiased-cnns, timm,
/// wider than the filter) × binomial and custom taps, sizes rotating (the conv is depthwise
/// over each size's own channel count).
pub fn strip_depthwise_cases() -> Vec<(Operator, Shape4)> {
    depthwise_cases_on(&STRIP_SIZES)
}

/// [`strip_depthwise_cases`]' operators on [`STRIP4_SIZES`] (NHWC) or [`STRIP4_NCHW_SIZES`]:
/// the v4 depthwise strips' matrix for `layout` (C or W a multiple of 8, so every dtype takes
/// the 16-byte vectors).
pub fn strip4_depthwise_cases(layout: Layout) -> Vec<(Operator, Shape4)> {
    match layout {
        Layout::Nhwc => depthwise_cases_on(&STRIP4_SIZES),
        Layout::Nchw => depthwise_cases_on(&STRIP4_NCHW_SIZES),
    }
}

fn depthwise_cases_on(sizes: &[Shape4]) -> Vec<(Operator, Shape4)> {
    let mut cases = Vec::new();
    let mut turn = 0usize;
    for spec in specialised_kernels() {
        let Specialised::DepthwiseConv {
            kernel: k,
            filter: f,
            stride: s,
        } = spec
        else {
            continue;
        };
        let custom: Vec<f64> = (0..f).map(|t| [0.55, 0.3, -0.15, 0.25][t % 4]).collect();
        let filters = [
            Filter::binomial(f).unwrap(),
            Filter::separable(&custom, &custom).unwrap(),
        ];
        let pads = [
            ((f - 1) / 2, f / 2),
            ((s - 1 + f - 1) / 2, (s - 1 + f - 1) / 2),
            (f, f + 1),
        ];
        for (blur, conv_pad, bias, act) in conv_blur_grid(&filters, &pads, s) {
            for _ in 0..2 {
                let size = sizes[turn % sizes.len()];
                turn += 1;
                let c = size.c;
                let conv = Conv2dSpec::new(Conv2dArgs {
                    in_channels: c,
                    out_channels: c,
                    kernel: (k, k),
                    padding: (conv_pad, conv_pad),
                    groups: c,
                    bias,
                    activation: act,
                })
                .unwrap();
                cases.push((
                    Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur.clone())),
                    size,
                ));
            }
        }
    }
    cases
}

/// Shapes and output channels for the tensor-core ConvBlurPool kernel (8×8 output pixels ×
/// 32 channels per block, 16 input channels per stage): 1×1, 2×2, several tiles with partial
/// last ones, wide and tall; Cin below, at and past one stage (C % 8 == 0 takes 16-byte loads
/// in NHWC), Cout below, at and past one channel tile. (Cin = Cout = 1 would be depthwise,
/// which the strip kernel serves.)
pub const TENSOR_CORE_SIZES: [(Shape4, usize); 8] = [
    (Shape4::new(1, 1, 1, 1), 2),
    (Shape4::new(2, 3, 13, 17), 5),
    (Shape4::new(1, 16, 19, 23), 32),
    (Shape4::new(1, 17, 21, 19), 33),
    (Shape4::new(2, 8, 2, 2), 40),
    (Shape4::new(1, 5, 3, 41), 3),
    (Shape4::new(1, 4, 45, 4), 7),
    (Shape4::new(1, 40, 9, 10), 70),
];

/// A dense (groups 1) 3×3 conv of `cin` → `cout` channels with zero padding `pad`.
fn dense3x3(cin: usize, cout: usize, pad: usize, bias: bool, act: Activation) -> Conv2dSpec {
    Conv2dSpec::new(Conv2dArgs {
        in_channels: cin,
        out_channels: cout,
        kernel: (3, 3),
        padding: (pad, pad),
        groups: 1,
        bias,
        activation: act,
    })
    .unwrap()
}

/// Cases for the tensor-core ConvBlurPool kernels (dense 3×3 conv, filters 3 and 4, stride
/// 2): each pad mode × conv padding 0/1/2 × (no bias, identity), (bias, relu), (bias, relu6) ×
/// blur paddings (antialiased-cnns, timm, wider than the filter) × binomial and custom taps
/// (negative ones too), sizes and channel counts rotating. f16/bf16 plan the tensor-core
/// kernel under KernelChoice::Auto; f32 and KernelChoice::General run v1 on the same cases.
pub fn tensor_core_cases() -> Vec<(Operator, Shape4)> {
    let mut cases = Vec::new();
    let mut turn = 0usize;
    let filters = specialised_kernels().filter_map(|s| match s {
        Specialised::TensorCoreConv { filter } => Some(filter),
        _ => None,
    });
    for f in filters {
        let filters = binomial_and_skewed(f, [0.6, -0.15, 0.35, 0.2]);
        let pads = [((f - 1) / 2, f / 2), (f / 2, f / 2), (f, f + 1)];
        for (blur, conv_pad, bias, act) in conv_blur_grid(&filters, &pads, 2) {
            let (size, cout) = TENSOR_CORE_SIZES[turn % TENSOR_CORE_SIZES.len()];
            turn += 1;
            let conv = dense3x3(size.c, cout, conv_pad, bias, act);
            cases.push((
                Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur)),
                size,
            ));
        }
        // Blur padding that differs between the axes (top ≠ left, bottom ≠ right), which the
        // grid above never has: a kernel that mixes up the axes' pads must fail here.
        for (k, mode) in PadMode::ALL.into_iter().enumerate() {
            // Two full 8-output tiles along each axis and a partial one, so an interior tile's
            // map window (which has no slack) depends on its own axis' pad.
            let (size, cout) = [
                (Shape4::new(1, 8, 37, 35), 12),
                (Shape4::new(1, 17, 34, 38), 33),
            ][k % 2];
            let pad = Pad2d {
                top: (f - 1) / 2,
                bottom: f / 2 + 1,
                left: f / 2 + 1,
                right: (f - 1) / 2,
            };
            let blur = Blur::new(Filter::binomial(f).unwrap(), (2, 2), pad, mode).unwrap();
            let conv = dense3x3(size.c, cout, 1, true, Activation::Relu);
            cases.push((
                Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur)),
                size,
            ));
        }
    }
    cases
}

/// Sizes and output channels of the `wgmma` cases: more than 64 output channels (one or two
/// 128-channel blocks, the last partly or wholly past Cout: 65, 96, 130, 200), inputs whose
/// channels take the 16-byte copies (16, 40, 24, 8) or the element path (33, 3), outputs of 13,
/// 14 or at most 7 a side (7 × 7 tiles) and some of 15 (8 × 8 tiles: the mma.sync kernel).
pub const WGMMA_SIZES: [(Shape4, usize); 6] = [
    (Shape4::new(1, 16, 28, 28), 128),
    (Shape4::new(1, 33, 27, 13), 130),
    (Shape4::new(2, 8, 14, 12), 65),
    (Shape4::new(1, 40, 12, 29), 200),
    (Shape4::new(1, 3, 9, 9), 256),
    (Shape4::new(1, 24, 28, 27), 96),
];

/// Cases for the sm_90a `wgmma` kernel (dense 3×3 conv, filter 3 at stride 2, Cout > 64, 7 × 7
/// output tiles): the grid of [`tensor_core_cases`] for filter 3 (pad modes × conv paddings ×
/// bias and activation × two blur paddings × binomial and skewed taps) over [`WGMMA_SIZES`].
pub fn wgmma_cases() -> Vec<(Operator, Shape4)> {
    let filters = binomial_and_skewed(3, [0.6, -0.15, 0.35, 0.2]);
    conv_blur_grid(&filters, &[(1, 1), (0, 1)], 2)
        .into_iter()
        .enumerate()
        .map(|(turn, (blur, conv_pad, bias, act))| {
            let (size, cout) = WGMMA_SIZES[turn % WGMMA_SIZES.len()];
            let conv = dense3x3(size.c, cout, conv_pad, bias, act);
            (
                Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur)),
                size,
            )
        })
        .collect()
}

/// MaxBlurPool on inputs holding NaN, +inf and −inf (strip and general geometries): the result
/// must be the reference's exactly where it is not finite, and within f32 rounding elsewhere.
/// Returns the number of cases run.
pub fn nan_and_inf(r: &impl Runner) -> usize {
    use half::{bf16, f16};
    // Two channels (the v1/v2 paths), and eight: the v4 kernels' 16-byte channel vectors in
    // NHWC (packed max.NaN on f16/bf16), in every dtype.
    nan_and_inf_in::<f32>(r, Shape4::new(1, 2, 9, 10), 1e-5)
        + nan_and_inf_in::<f32>(r, Shape4::new(1, 8, 9, 10), 1e-5)
        + nan_and_inf_in::<f16>(r, Shape4::new(1, 8, 9, 10), 2e-3)
        + nan_and_inf_in::<bf16>(r, Shape4::new(1, 8, 9, 10), 1.6e-2)
}

fn nan_and_inf_in<T: TestElement>(r: &impl Runner, shape: Shape4, tol: f64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed());
    let mut runs = 0;
    for layout in Layout::ALL {
        for (k, pad, filt, mode) in [
            (2, 0, 1, PadMode::Reflect),
            (2, 0, 3, PadMode::Zero),
            (2, 0, 4, PadMode::Reflect),
            (3, 1, 3, PadMode::Replicate),
            (3, 0, 4, PadMode::Reflect),
        ] {
            let f = Filter::binomial(filt).unwrap();
            let blur = Blur::new(
                f,
                (2, 2),
                Pad2d {
                    top: (filt - 1) / 2,
                    bottom: filt / 2,
                    left: (filt - 1) / 2,
                    right: filt / 2,
                },
                mode,
            )
            .unwrap();
            let op = Operator::MaxBlurPool(MaxBlurPool2d::new(
                MaxPool2d::new((k, k), (pad, pad)).unwrap(),
                blur,
            ));
            let mut data = CaseData::<T>::random(&mut rng, &op, shape);
            for (i, v) in [
                (5, f64::NAN),
                (17, f64::INFINITY),
                (40, f64::NEG_INFINITY),
                (41, f64::NEG_INFINITY),
                (77, f64::NAN),
                (78, f64::INFINITY),
            ] {
                data.x[i] = T::from_f64(v);
            }
            // A corner of −inf in every channel (the top-left 2×2 pixels): windows there hold
            // only −inf and the max's padding, so the padding's own −inf must not win as a
            // finite value (a kernel padding with the most negative finite number fails here).
            let (c, h, w) = (shape.c, shape.h, shape.w);
            for ch in 0..c {
                for (y, x) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let i = match layout {
                        Layout::Nchw => (ch * h + y) * w + x,
                        Layout::Nhwc => (y * w + x) * c + ch,
                    };
                    data.x[i] = T::from_f64(f64::NEG_INFINITY);
                }
            }
            let out = op.output_shape(shape).unwrap();
            let mut want = vec![T::from_f64(0.0); out.numel().unwrap()];
            reference::forward(&op, shape, layout, &data.x, &[], None, &mut want).unwrap();
            let got = r.run(&op, shape, layout, &data).unwrap();
            for (e, (a, b)) in got.iter().zip(&want).enumerate() {
                let (a, b) = (a.to_f64(), b.to_f64());
                let same = (a.is_nan() && b.is_nan())
                    || a == b
                    || (a.is_finite() && b.is_finite() && (a - b).abs() <= tol * b.abs().max(1.0));
                assert!(
                    same,
                    "{} {layout:?} {shape} {op:?}: element {e}: kernel {a}, reference {b}",
                    T::DTYPE.name()
                );
            }
            assert!(
                want.iter().any(|v| v.to_f64().is_nan()),
                "the case must produce NaN"
            );
            assert!(
                want.iter().any(|v| v.to_f64().is_infinite()),
                "the case must produce ±inf"
            );
            runs += 1;
        }
    }
    runs
}

/// (Cin, Cout, groups): dense, depthwise, in between.
pub const CONV_GROUPS: [(usize, usize, usize); 3] = [(3, 4, 1), (4, 4, 4), (4, 6, 2)];

pub fn conv_specs() -> Vec<Conv2dSpec> {
    let mut out = Vec::new();
    for (cin, cout, g) in CONV_GROUPS {
        for k in [1, 3, 5, 7] {
            for bias in [false, true] {
                for act in Activation::ALL {
                    out.push(
                        Conv2dSpec::new(Conv2dArgs {
                            in_channels: cin,
                            out_channels: cout,
                            kernel: (k, k),
                            padding: (k / 2, k / 2),
                            groups: g,
                            bias,
                            activation: act,
                        })
                        .unwrap(),
                    );
                }
            }
        }
    }
    out
}

/// ConvBlurPool: groups 1, Cin and between × kernels 1/3/5/7 × bias × activations.
pub fn conv_blur_pool_cases() -> Vec<(Operator, Shape4)> {
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
        let pad = Pad2d {
            top: (f.size_y() - 1) / 2,
            bottom: f.size_y() / 2,
            left: (f.size_x() - 1) / 2,
            right: f.size_x() / 2,
        };
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
    cases
}

/// BlurConv: the same conv specs after a stride-1 blur, strided conv.
pub fn blur_conv_cases() -> Vec<(Operator, Shape4)> {
    let mut cases = Vec::new();
    for (i, conv) in conv_specs().into_iter().enumerate() {
        let mode = PadMode::ALL[i % 3];
        let f = Filter::binomial([1, 3, 4, 5][i % 4]).unwrap();
        let p = f.size_y() / 2;
        let blur = Blur::new(
            f,
            (1, 1),
            Pad2d {
                top: p,
                bottom: p,
                left: p,
                right: p,
            },
            mode,
        )
        .unwrap();
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
    cases
}
