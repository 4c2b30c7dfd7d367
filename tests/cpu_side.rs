//! What a CPU can check of the reference and of the CUDA layer: layout and dtype consistency of
//! the reference, exact published values, the kernel parameter block, the embedded sources and
//! (when libnvrtc can be loaded, as in CI) the run-time compilation path itself.

use blurpool::cuda::{self, build, KernelKind};
use blurpool::ops::Operator;
use blurpool::presets::{antialiased_cnns, composer, kornia, timm};
use blurpool::{reference, Activation, Conv2dSpec, DType, Layout, PadMode, Shape4};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn ops(c: usize) -> Vec<Operator> {
    let conv = Conv2dSpec::new(c, 4, (3, 3), (1, 1), 1, true, Activation::Relu).unwrap();
    let dw = Conv2dSpec::depthwise(c, (3, 3), (1, 1), false, Activation::Relu6).unwrap();
    vec![
        Operator::MaxPool(blurpool::MaxPool2d::new((3, 2), (1, 1)).unwrap()),
        Operator::BlurPool(antialiased_cnns::blur_pool(PadMode::Reflect, 4, 2, 0).unwrap()),
        Operator::BlurPool(timm::blur_pool2d(5, 3, PadMode::Zero).unwrap()),
        Operator::BlurPool(
            composer::blur_2d(
                (2, 3),
                Some((&[0.1, 0.7, 0.2], &[1.0, -0.5, 2.0, 0.5, 1.0])),
            )
            .unwrap(),
        ),
        Operator::MaxBlurPool(
            antialiased_cnns::max_blur_pool(2, 0, PadMode::Replicate, 3, 2, 0).unwrap(),
        ),
        Operator::MaxBlurPool(kornia::max_blur_pool2d(4, 2, 3).unwrap()),
        Operator::ConvBlurPool(
            antialiased_cnns::conv_blur_pool(conv, PadMode::Reflect, 3, 2, 0).unwrap(),
        ),
        Operator::ConvBlurPool(timm::conv_blur_pool(dw, 3, 2, PadMode::Reflect).unwrap()),
        match composer::blur_conv2d(conv, (2, 2), true).unwrap() {
            composer::BlurConv::BlurFirst(op) => Operator::BlurConv(op),
            composer::BlurConv::ConvFirst(_) => unreachable!(),
        },
    ]
}

fn to_nhwc<T: Copy>(s: Shape4, x: &[T]) -> Vec<T> {
    let mut out = x.to_vec();
    for n in 0..s.n {
        for c in 0..s.c {
            for y in 0..s.h {
                for xx in 0..s.w {
                    out[s.offset(Layout::Nhwc, n, c, y, xx)] =
                        x[s.offset(Layout::Nchw, n, c, y, xx)];
                }
            }
        }
    }
    out
}

#[test]
fn nhwc_and_nchw_give_the_same_numbers() {
    let mut rng = StdRng::seed_from_u64(11);
    let shape = Shape4::new(2, 3, 9, 11);
    for op in ops(3) {
        let x: Vec<f32> = (0..shape.numel().unwrap())
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let (w, b): (Vec<f32>, Option<Vec<f32>>) = match op.conv() {
            Some(c) => (
                (0..c.weight_len())
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect(),
                c.has_bias().then(|| vec![0.25; c.bias_len()]),
            ),
            None => (vec![], None),
        };
        let out = op.output_shape(shape).unwrap();
        let mut y1 = vec![0f32; out.numel().unwrap()];
        let mut y2 = y1.clone();
        reference::run(&op, shape, Layout::Nchw, &x, &w, b.as_deref(), &mut y1).unwrap();
        reference::run(
            &op,
            shape,
            Layout::Nhwc,
            &to_nhwc(shape, &x),
            &w,
            b.as_deref(),
            &mut y2,
        )
        .unwrap();
        assert_eq!(to_nhwc(out, &y1), y2, "{}", op.name());
    }
}

#[test]
fn half_types_round_the_same_result_once() {
    let mut rng = StdRng::seed_from_u64(12);
    let shape = Shape4::new(1, 3, 8, 10);
    for op in ops(3) {
        // Inputs exactly representable in bf16 (and so in f16 and f32).
        let x: Vec<f32> = (0..shape.numel().unwrap())
            .map(|_| bf16::from_f32(rng.random_range(-2.0..2.0)).to_f32())
            .collect();
        let w: Vec<f32> = op.conv().map_or(vec![], |c| {
            (0..c.weight_len())
                .map(|_| bf16::from_f32(rng.random_range(-1.0..1.0)).to_f32())
                .collect()
        });
        let b = op
            .conv()
            .and_then(|c| c.has_bias().then(|| vec![0.5f32; c.bias_len()]));
        let out = op.output_shape(shape).unwrap();
        let mut y32 = vec![0f32; out.numel().unwrap()];
        reference::run(&op, shape, Layout::Nchw, &x, &w, b.as_deref(), &mut y32).unwrap();
        let cast = |v: &[f32]| v.iter().map(|&e| f16::from_f32(e)).collect::<Vec<_>>();
        let mut y16 = vec![f16::ZERO; y32.len()];
        reference::run(
            &op,
            shape,
            Layout::Nchw,
            &cast(&x),
            &cast(&w),
            b.as_deref().map(cast).as_deref(),
            &mut y16,
        )
        .unwrap();
        for (a, r) in y16.iter().zip(&y32) {
            // One rounding of the f64 result vs rounding the f32-rounded result: ≤ 1 ulp apart.
            let ulp = 2.0 * 4.8828125e-4 * r.abs().max(6.1e-5);
            assert!(
                (a.to_f32() - r).abs() <= ulp,
                "{}: f16 {a} vs f32 {r}",
                op.name()
            );
        }
    }
}

/// kornia's doctest values on the 5×5 identity (exact fractions).
#[test]
fn kornia_doctest_values() {
    let shape = Shape4::new(1, 1, 5, 5);
    let eye: Vec<f32> = (0..25)
        .map(|i| if i / 5 == i % 5 { 1.0 } else { 0.0 })
        .collect();
    let mut y = vec![0f32; 9];
    reference::blur_pool(
        &kornia::blur_pool2d(3, 2).unwrap(),
        shape,
        Layout::Nchw,
        &eye,
        &mut y,
    )
    .unwrap();
    assert_eq!(
        y,
        [0.3125, 0.0625, 0.0, 0.0625, 0.375, 0.0625, 0.0, 0.0625, 0.3125]
    );
    let mut y = vec![0f32; 4];
    reference::max_blur_pool(
        &kornia::max_blur_pool2d(3, 2, 2).unwrap(),
        shape,
        Layout::Nchw,
        &eye,
        &mut y,
    )
    .unwrap();
    assert_eq!(y, [0.5625, 0.3125, 0.3125, 0.875]);
}

#[test]
fn max_follows_pytorch_nan_rule() {
    let op = blurpool::MaxPool2d::new((2, 2), (0, 0)).unwrap();
    let shape = Shape4::new(1, 1, 2, 3);
    let x = [1.0f32, f32::NAN, 5.0, f32::NEG_INFINITY, 2.0, 7.0];
    let mut y = [0f32; 2];
    reference::max_pool(&op, shape, Layout::Nchw, &x, &mut y).unwrap();
    assert!(
        y[0].is_nan() && y[1].is_nan(),
        "NaN wins its windows: {y:?}"
    );
}

#[test]
fn every_kernel_symbol_is_instantiated_in_the_sources() {
    let src = cuda::nvrtc_source();
    assert!(
        !src.contains("#include \""),
        "local includes must be inlined for NVRTC"
    );
    for kind in KernelKind::ALL {
        let stem = kind
            .symbol(DType::F16, Layout::Nchw)
            .trim_end_matches("_f16_nchw")
            .to_string();
        assert!(
            src.contains(&format!("BP_INSTANTIATE({stem})"))
                || src.contains(&format!("BP_INSTANTIATE_BWD({stem})"))
                || src.contains(&format!("BP_STRIP_VARIANT({stem},"))
                || src.contains(&format!("BP_STRIP_DW_VARIANT({stem},"))
                || src.contains(&format!("BP_TC_VARIANT({stem},")),
            "{stem} is not instantiated"
        );
    }
    assert_eq!(std::mem::size_of::<cuda::BpParams>(), 368);
    assert!(
        src.contains("static_assert(sizeof(BpParams) == 368"),
        "the C side must assert the same size"
    );
}

#[test]
fn build_script_records_what_it_built() {
    if let Some(fatbin) = build::FATBIN {
        assert!(!fatbin.is_empty());
        for arch in ["sm_80", "sm_86", "sm_89", "sm_90"] {
            if std::env::var("BLURPOOL_CUDA_ARCHS").is_err()
                && std::env::var("CUDA_COMPUTE_CAP").is_err()
            {
                assert!(build::ARCHS.contains(arch), "{} lacks {arch}", build::ARCHS);
            }
        }
        assert!(
            build::PTXAS_SUMMARY.contains("bp_maxblurpool"),
            "ptxas summary lists the kernels"
        );
        println!(
            "fatbin: {} bytes for {} (nvcc {})",
            fatbin.len(),
            build::ARCHS,
            build::NVCC_RELEASE
        );
    } else {
        println!("built without nvcc: kernels will be compiled at run time by NVRTC");
    }
}

/// The run-time path: NVRTC compiles the embedded sources to PTX with every entry point. Needs
/// only libnvrtc (no GPU); CI installs it. Skips, saying so, where it is missing.
#[test]
fn nvrtc_compiles_the_embedded_sources() {
    // SAFETY: only probes whether libnvrtc can be opened.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        println!("SKIPPED nvrtc compile: libnvrtc not found (put nvidia/cu13/lib of nvidia-cuda-nvrtc on LD_LIBRARY_PATH)");
        return;
    }
    let ptx = cuda::compile_nvrtc("compute_80").expect("NVRTC compiles the kernels");
    let text = ptx.to_src();
    for (kind, dtype, layout) in KernelKind::entry_points() {
        let sym = kind.symbol(dtype, layout);
        assert!(text.contains(&format!(".entry {sym}(")), "PTX lacks {sym}");
    }
    println!(
        "NVRTC: {} bytes of PTX with all {} entry points",
        text.len(),
        KernelKind::entry_points().count()
    );
}

/// No kernel keeps anything in local memory: no spills (build.rs fails on those) and no stack
/// frame (a lambda capturing the parameter block by reference once put a 368-byte copy of it
/// there). Reads the ptxas table of the build; skips without nvcc.
#[test]
fn no_kernel_uses_local_memory() {
    if build::FATBIN.is_none() {
        println!("SKIPPED local-memory check: built without nvcc (no ptxas report)");
        return;
    }
    let mut rows = 0;
    for line in build::PTXAS_SUMMARY.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 7 || cols[0] == "function" {
            continue;
        }
        rows += 1;
        let (stack, spill_st, spill_ld) = (cols[4], cols[5], cols[6]);
        assert!(
            stack == "0" && spill_st == "0" && spill_ld == "0",
            "{}: stack {stack}, spill stores {spill_st}, spill loads {spill_ld}",
            cols[0]
        );
    }
    assert!(rows > 0, "empty ptxas table:\n{}", build::PTXAS_SUMMARY);
    println!("{rows} kernel × arch rows, none with a stack frame or spills");
}
