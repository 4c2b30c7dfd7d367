//! What a CPU can check of the reference and of the CUDA layer: layout and dtype consistency of
//! the reference, exact published values, the kernel parameter block, the embedded sources and
//! (when libnvrtc can be loaded, as in CI) the run-time compilation path itself.

use blurpool::cuda::{build_info, compile_nvrtc, kernel_symbols};
use blurpool::presets::{antialiased_cnns, composer, kornia, timm};
use blurpool::{reference, Activation, Conv2dArgs, Conv2dSpec, Layout, Operator, PadMode, Shape4};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn ops(c: usize) -> Vec<Operator> {
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: c,
        out_channels: 4,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 1,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap();
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
        reference::forward(&op, shape, Layout::Nchw, &x, &w, b.as_deref(), &mut y1).unwrap();
        reference::forward(
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
        reference::forward(&op, shape, Layout::Nchw, &x, &w, b.as_deref(), &mut y32).unwrap();
        let cast = |v: &[f32]| v.iter().map(|&e| f16::from_f32(e)).collect::<Vec<_>>();
        let mut y16 = vec![f16::ZERO; y32.len()];
        reference::forward(
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
fn build_script_records_what_it_built() {
    let info = build_info();
    if let Some(fatbin) = info.fatbin {
        assert!(!fatbin.is_empty());
        for arch in ["sm_80", "sm_86", "sm_89", "sm_90"] {
            if std::env::var("BLURPOOL_CUDA_ARCHS").is_err()
                && std::env::var("CUDA_COMPUTE_CAP").is_err()
            {
                assert!(info.archs.contains(arch), "{} lacks {arch}", info.archs);
            }
        }
        assert!(
            info.ptxas_report.contains("bp_maxblurpool"),
            "ptxas summary lists the kernels"
        );
        println!(
            "fatbin: {} bytes for {} (nvcc {})",
            fatbin.len(),
            info.archs,
            info.nvcc_release
        );
    } else {
        assert!(info.archs.is_empty() && info.ptxas_report.is_empty());
        println!("built without nvcc: kernels will be compiled at run time by NVRTC");
    }
}

/// The run-time path: NVRTC compiles the embedded sources to PTX with every entry point. Needs
/// only libnvrtc (no GPU), which a machine may lack, so it is ignored by default; CI installs
/// libnvrtc and runs it (`cargo test --test cpu_side -- --ignored`).
#[test]
#[ignore = "needs libnvrtc on LD_LIBRARY_PATH (CI: cargo test --test cpu_side -- --ignored)"]
fn nvrtc_compiles_the_embedded_sources() {
    // compute_80: what an A100 (and any device but compute capability 9.0) gets; compute_90a:
    // an H100 / H200 (Kernels::load), the only one with the wgmma kernel's instructions.
    for arch in ["compute_80", "compute_90a"] {
        let ptx = compile_nvrtc(arch).expect("NVRTC compiles the kernels");
        let text = ptx.to_src();
        let symbols = kernel_symbols();
        for sym in &symbols {
            assert!(
                text.contains(&format!(".entry {sym}(")),
                "{arch} PTX lacks {sym}"
            );
        }
        let wgmma = text.contains("wgmma.mma_async.sync.aligned.m64n128k16");
        assert_eq!(wgmma, arch == "compute_90a", "{arch}: wgmma in its PTX");
        println!(
            "NVRTC {arch}: {} bytes of PTX with all {} entry points (wgmma: {wgmma})",
            text.len(),
            symbols.len()
        );
    }
}

/// No kernel keeps anything in local memory: no spills (build.rs fails on those) and no stack
/// frame (a lambda capturing the parameter block by reference once put a 368-byte copy of it
/// there). Reads the ptxas table of the build, which only an nvcc build has.
#[test]
#[cfg_attr(
    not(blurpool_nvcc),
    ignore = "built without nvcc: there is no ptxas report"
)]
fn no_kernel_uses_local_memory() {
    let report = build_info().ptxas_report;
    let mut rows = 0;
    for line in report.lines().filter(|l| !l.starts_with('#')) {
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
    assert!(rows > 0, "empty ptxas table:\n{report}");
    println!("{rows} kernel × arch rows, none with a stack frame or spills");
}
