//! The CUDA kernels themselves, run on the CPU by the host emulator (emu/, through the
//! testkit's `Emu` runner), against the CPU reference over the same matrix as tests/gpu.rs:
//! every operator × dtype × layout × pad mode × filter × stride × window × size, fresh random
//! data, outputs poisoned, every element checked with the tolerances of testkit/src/check.rs.
//! `cargo test` runs a sixth of the dtype × layout combinations of every case; CI runs them all
//! (`BLURPOOL_FULL_MATRIX=1`, see testkit/src/matrix.rs).
//!
//! This runs everywhere, GPU or not. It checks the kernels' index arithmetic, padding, tails,
//! grid-stride loops and barrier discipline (each launch uses a small grid so the grid-stride
//! loop wraps), and, through guard zones around every buffer, that no kernel writes outside its
//! output or lets a read outside its inputs reach a result (guards hold NaN). It does not stand
//! in for a GPU run: f16 conversion goes through the host compiler, memory is host memory, and
//! nothing here says anything about speed (tests/gpu.rs and the GPU bundle do that part).

use blurpool::cuda::{kernel_symbols, KernelChoice, KernelVersion, Target};
use blurpool::{
    presets, Activation, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType, Layout,
    MaxBlurPool2d, MaxPool2d, Operator, PadMode, Shape4,
};
use blurpool_testkit::{matrix, CaseData, Emu};
use half::f16;
use rand::SeedableRng;

#[test]
fn every_kernel_entry_is_emulated() {
    // The same list the GPU loader resolves (Kernels::load): forward and backward families.
    let names = blurpool_emu::kernel_names();
    for s in kernel_symbols() {
        assert!(names.contains(&s), "{s} is not registered: {names:?}");
    }
}

#[test]
fn unknown_kernel_is_an_error() {
    // SAFETY: the launch fails on the name before touching any pointer.
    let r = unsafe {
        blurpool_emu::launch(
            "bp_nothing",
            1,
            32,
            0,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r.unwrap_err(), "no kernel named bp_nothing");
}

#[test]
fn max_pool_emulated() {
    matrix::run_matrix(&Emu::AUTO, "max_pool (emulated)", &matrix::max_pool_cases());
}

#[test]
fn blur_pool_emulated() {
    matrix::run_matrix(
        &Emu::AUTO,
        "blur_pool (emulated)",
        &matrix::blur_pool_cases(),
    );
}

#[test]
fn max_blur_pool_emulated() {
    matrix::run_matrix(
        &Emu::AUTO,
        "max_blur_pool (emulated)",
        &matrix::max_blur_pool_cases(),
    );
}

#[test]
fn strip_cases_plan_strip_kernels() {
    let (mut strip, mut invalid) = (0, 0);
    let cases = matrix::strip_cases()
        .into_iter()
        .chain(matrix::strip_depthwise_cases());
    let target = Target::new(DType::F16, Layout::Nhwc);
    for (op, shape) in cases {
        match op.plan(shape, target) {
            Ok(plan) => {
                assert_eq!(
                    plan.version(),
                    KernelVersion::V2,
                    "{op:?} on {shape} plans {}",
                    plan.symbol()
                );
                strip += 1;
                let general = op
                    .plan(shape, target.with_choice(KernelChoice::GENERAL))
                    .unwrap();
                assert_eq!(general.version(), KernelVersion::V1);
                assert_eq!(
                    general.params_bytes(),
                    plan.params_bytes(),
                    "same parameter block"
                );
            }
            Err(_) => invalid += 1,
        }
    }
    println!("{strip} strip plans, {invalid} cases invalid for their size (refused alike)");
    assert!(strip > 500 && invalid < strip / 3, "{strip} / {invalid}");
}

#[test]
fn nan_and_inf_emulated() {
    let runs = matrix::nan_and_inf(&Emu::AUTO) + matrix::nan_and_inf(&Emu::GENERAL);
    println!("nan_and_inf (emulated): {runs} cases passed");
}

#[test]
fn strip_kernels_emulated() {
    // v2 itself (Auto would take v4 for the NHWC f32 cases with 4 channels).
    matrix::run_matrix(
        &Emu::V2,
        "strip kernels v2 (emulated)",
        &matrix::strip_cases(),
    );
}

/// Which version Auto must plan for an NCHW v4 matrix case in `dtype`: v4 when rows can be read
/// in 8-byte chunks (W a multiple of 4 halves or 2 floats), a row holds at least one group of
/// outputs (WO ≥ the vector's elements) and the blur pads at most 3 columns a side
/// (kernels/strip.cuh, BP_STRIP4_MAX_PAD); v2 when W is not such a multiple, a row holds no
/// group or the left pad is above 3; `None` for a right pad above 3 (v4 where the last output's
/// overhang past the map is at most 3).
fn nchw_v4_expected(op: &Operator, shape: Shape4, dtype: DType) -> Option<KernelVersion> {
    let out = op.output_shape(shape).ok()?;
    let pad = op.blur().expect("strip operators blur").pad();
    let lanes = 16 / dtype.size();
    // Rows read in 8-byte chunks at least: W a multiple of 4 halves or 2 floats.
    if out.w < lanes || pad.left > 3 || shape.w % (lanes / 2) != 0 {
        Some(KernelVersion::V2)
    } else if pad.right <= 3 {
        Some(KernelVersion::V4)
    } else {
        None
    }
}

/// NCHW: each case's plan in every dtype against [`nchw_v4_expected`]; returns how many
/// (case, dtype) pairs were pinned to v4 and to v2.
fn check_nchw_v4_plans(cases: &[(Operator, Shape4)]) -> (usize, usize) {
    let (mut v4, mut v2) = (0, 0);
    for (op, shape) in cases {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let Ok(plan) = op.plan(*shape, Target::new(dtype, Layout::Nchw)) else {
                continue;
            };
            if let Some(want) = nchw_v4_expected(op, *shape, dtype) {
                assert_eq!(plan.version(), want, "{op:?} on {shape} in {dtype:?}");
                if want == KernelVersion::V4 {
                    v4 += 1;
                } else {
                    v2 += 1;
                }
            } else {
                assert!(
                    matches!(plan.version(), KernelVersion::V2 | KernelVersion::V4),
                    "{op:?} on {shape} in {dtype:?}: {:?}",
                    plan.version()
                );
            }
        }
    }
    (v4, v2)
}

/// The v4 strips over the strip matrix's operators at sizes with C (NHWC) or W (NCHW) a
/// multiple of 8: NHWC, every valid case must plan v4; NCHW, as [`nchw_v4_expected`] says
/// (rows narrower than one group take v2). Every case matches the reference; the same cases
/// on v2.
fn strip4_in(layout: Layout) {
    strip4_matrix_in(
        layout,
        &matrix::strip4_cases(layout),
        [
            "strip kernels v4 (emulated)",
            "strip4 cases on v2 (emulated)",
        ],
        3,
        400,
    );
}

/// Runs a v4 matrix's `cases` in `layout` on Auto (names[0]) and on v2 (names[1]). NHWC: every
/// valid case must plan v4. NCHW: plans pinned by [`check_nchw_v4_plans`], more than
/// `v4_per_v2` v4 plans for each v2 one, and more than `min_v4_runs` runs on v4.
fn strip4_matrix_in(
    layout: Layout,
    cases: &[(Operator, Shape4)],
    names: [&str; 2],
    v4_per_v2: usize,
    min_v4_runs: usize,
) {
    let v4 = matrix::run_layout_cases(&Emu::AUTO, names[0], cases, layout);
    if layout == Layout::Nhwc {
        assert_eq!(
            v4.keys().copied().collect::<Vec<_>>(),
            [KernelVersion::V4],
            "every case plans v4: {v4:?}"
        );
    } else {
        let (pinned_v4, pinned_v2) = check_nchw_v4_plans(cases);
        println!("NCHW plans: {pinned_v4} pinned to v4, {pinned_v2} to v2: {v4:?}");
        assert!(
            pinned_v4 > v4_per_v2 * pinned_v2,
            "{pinned_v4} / {pinned_v2}"
        );
        assert!(
            v4.get(&KernelVersion::V4).copied().unwrap_or(0) > min_v4_runs,
            "{v4:?}"
        );
    }
    let v2 = matrix::run_layout_cases(&Emu::V2, names[1], cases, layout);
    assert_eq!(v2.keys().copied().collect::<Vec<_>>(), [KernelVersion::V2]);
}

#[test]
fn strip4_kernels_emulated() {
    strip4_in(Layout::Nhwc);
}

#[test]
fn strip4_nchw_kernels_emulated() {
    strip4_in(Layout::Nchw);
}

/// Where v4 does not apply, Auto plans v2: NCHW, C not a multiple of the vector, and a choice
/// capped below v4.
#[test]
fn strip4_applies_only_where_it_fits() {
    let blur = presets::timm::blur(3, 2, PadMode::Reflect).unwrap();
    let op = Operator::MaxBlurPool(MaxBlurPool2d::new(
        MaxPool2d::new((3, 3), (1, 1)).unwrap(),
        blur,
    ));
    let plan = |c, dtype, layout, choice| {
        op.plan(
            Shape4::new(2, c, 20, 20),
            Target::new(dtype, layout).with_choice(choice),
        )
        .unwrap()
    };
    let auto = KernelChoice::Auto;
    let v = |c, d, l, ch| plan(c, d, l, ch).version();
    assert_eq!(v(16, DType::F16, Layout::Nhwc, auto), KernelVersion::V4);
    assert_eq!(
        plan(16, DType::F16, Layout::Nhwc, auto).symbol(),
        "bp_maxblurpool_k3f3s2_v4_f16_nhwc"
    );
    assert_eq!(v(4, DType::F32, Layout::Nhwc, auto), KernelVersion::V4);
    assert_eq!(v(4, DType::F16, Layout::Nhwc, auto), KernelVersion::V2);
    assert_eq!(v(12, DType::BF16, Layout::Nhwc, auto), KernelVersion::V2);
    assert_eq!(v(16, DType::F16, Layout::Nchw, auto), KernelVersion::V4); // W = 20: 8-byte chunks
    let nchw = |w, dtype| {
        op.plan(Shape4::new(1, 3, 9, w), Target::new(dtype, Layout::Nchw))
            .unwrap()
            .version()
    };
    assert_eq!(nchw(24, DType::F16), KernelVersion::V4);
    assert_eq!(nchw(20, DType::F32), KernelVersion::V4);
    assert_eq!(nchw(20, DType::BF16), KernelVersion::V4);
    assert_eq!(nchw(22, DType::BF16), KernelVersion::V2); // rows not 8-byte aligned
    assert_eq!(nchw(22, DType::F32), KernelVersion::V4);
    assert_eq!(nchw(21, DType::F32), KernelVersion::V2);
    let capped = KernelChoice::AtMost(KernelVersion::V3);
    assert_eq!(v(16, DType::F16, Layout::Nhwc, capped), KernelVersion::V2);
    // The grid covers C / 8 channel vectors per pixel, not C channels: 2 images × 8 vectors
    // × 2 strips of 8 rows × 10 columns = 320 threads (3 blocks of this kernel's 128), against
    // v2's 2560 (10 of 256).
    assert_eq!(
        plan(64, DType::F16, Layout::Nhwc, auto).grid_dim(u32::MAX),
        3
    );
    assert_eq!(
        plan(64, DType::F16, Layout::Nhwc, capped).grid_dim(u32::MAX),
        10
    );
}

/// The v4 depthwise strips over the depthwise matrix's operators at sizes with C (NHWC) or W
/// (NCHW) a multiple of 8: NHWC, every valid case must plan v4; NCHW, as
/// [`nchw_v4_expected`] says. Every case matches the reference; the same cases on v2.
fn strip4_depthwise_in(layout: Layout) {
    // Its blur pads reach f + 1 (5 for filter 4) and some of its sizes have rows of 18: those
    // NCHW cases take v2, so only more v4 plans than v2 ones are asked.
    strip4_matrix_in(
        layout,
        &matrix::strip4_depthwise_cases(layout),
        [
            "depthwise strips v4 (emulated)",
            "depthwise v4 cases on v2 (emulated)",
        ],
        1,
        300,
    );
}

#[test]
fn strip4_depthwise_kernels_emulated() {
    strip4_depthwise_in(Layout::Nhwc);
}

#[test]
fn strip4_depthwise_nchw_kernels_emulated() {
    strip4_depthwise_in(Layout::Nchw);
}

/// Runs a v4 matrix's NCHW `cases` on Auto in the emulator's split mode (each `__activemask()`
/// gives smaller groups: lanes alone, odd/even, two runs, lanes held back to meet the others an
/// iteration later), where the neighbours' words are often missing and the lanes load them
/// themselves; every case must match the reference, and more than `min_v4_runs` run on v4.
fn strip4_nchw_with_split_warps(cases: &[(Operator, Shape4)], name: &str, min_v4_runs: usize) {
    blurpool_emu::set_warp_split(true);
    let v4 = matrix::run_layout_cases(&Emu::AUTO, name, cases, Layout::Nchw);
    blurpool_emu::set_warp_split(false);
    assert!(
        v4.get(&KernelVersion::V4).copied().unwrap_or(0) > min_v4_runs,
        "{v4:?}"
    );
}

/// The NCHW v4 MaxBlurPool strips with the 3×3 max take their spans' outer chunks from the
/// neighbouring lanes (bp_strip4_span::load_near) and must not assume the warp converged.
#[test]
fn strip4_nchw_kernels_emulated_with_split_warps() {
    strip4_nchw_with_split_warps(
        &matrix::strip4_cases(Layout::Nchw),
        "strip kernels v4, split warps (emulated)",
        400,
    );
}

/// The depthwise NCHW v4 strips too (bp_strip4_span::load_near).
#[test]
fn strip4_depthwise_nchw_kernels_emulated_with_split_warps() {
    strip4_nchw_with_split_warps(
        &matrix::strip4_depthwise_cases(Layout::Nchw),
        "depthwise strips v4, split warps (emulated)",
        300,
    );
}

#[test]
fn strip_depthwise_kernels_emulated() {
    let cases = matrix::strip_depthwise_cases();
    matrix::run_matrix(
        &Emu::AUTO,
        "strip depthwise conv kernels (emulated)",
        &cases,
    );
    matrix::run_matrix(
        &Emu::GENERAL,
        "strip depthwise cases, general kernels (emulated)",
        &cases,
    );
}

#[test]
fn strip_cases_on_general_kernels_emulated() {
    matrix::run_matrix(
        &Emu::GENERAL,
        "strip cases, general kernels (emulated)",
        &matrix::strip_cases(),
    );
}

#[test]
fn tensor_core_cases_plan_tensor_core_kernels() {
    let (mut tc, mut invalid) = (0, 0);
    // Cases planned on each v4 output tile side (7: where its tiles compute fewer GEMM rows).
    let (mut side7, mut side8, mut wgmma) = (0, 0, 0);
    for (op, shape) in matrix::tensor_core_cases() {
        let target = Target::new(DType::F16, Layout::Nchw);
        let Ok(auto) = op.plan(shape, target) else {
            invalid += 1;
            continue;
        };
        assert_eq!(
            auto.version(),
            KernelVersion::V4,
            "{op:?} on {shape} plans {}",
            auto.symbol()
        );
        assert!(auto.weight_pack().is_some(), "v4 reads packed weights");
        if auto.symbol().contains("wgmma") {
            // Cout > 64 at 7 × 7 tiles: the sm_90a kernel; without wgmma, the mma.sync one
            // on the same packed weights.
            let mma = op.plan(shape, target.with_wgmma(false)).unwrap();
            assert!(mma.symbol().contains("t7_v4"), "{}", mma.symbol());
            assert_eq!(mma.weight_pack(), auto.weight_pack());
            wgmma += 1;
        } else if auto.symbol().contains("t7_v4") {
            side7 += 1;
        } else {
            side8 += 1;
        }
        let bf16 = op
            .plan(shape, Target::new(DType::BF16, Layout::Nchw))
            .unwrap();
        assert_eq!(bf16.version(), KernelVersion::V4);
        // v3 stays selectable, on the same parameter block, without a weight pack.
        let v3 = op
            .plan(
                shape,
                target.with_choice(KernelChoice::AtMost(KernelVersion::V3)),
            )
            .unwrap();
        assert_eq!(v3.version(), KernelVersion::V3);
        assert!(v3.weight_pack().is_none());
        assert_eq!(v3.params_bytes(), auto.params_bytes());
        // f32, the general choice and a device without tensor cores all take v1.
        for other in [
            Target::new(DType::F32, Layout::Nchw),
            target.with_choice(KernelChoice::GENERAL),
            target.with_choice(KernelChoice::AtMost(KernelVersion::V2)),
            target.with_tensor_cores(false),
        ] {
            let plan = op.plan(shape, other).unwrap();
            assert_eq!(plan.version(), KernelVersion::V1, "{other:?}");
            assert_eq!(
                plan.params_bytes(),
                auto.params_bytes(),
                "same parameter block"
            );
        }
        tc += 1;
    }
    println!(
        "{tc} tensor-core plans ({side7} on 7 × 7 output tiles, {side8} on 8 × 8, {wgmma} on \
         wgmma), {invalid} cases invalid for their size (refused alike)"
    );
    assert!(tc > 200 && invalid < tc / 3, "{tc} / {invalid}");
    assert!(
        side7 > 50 && side8 > 50,
        "both tile sides run: {side7} / {side8}"
    );
}

/// (f32 takes v1 on these cases; tests/gpu.rs also runs the half types on v1, which the
/// emulator leaves to conv_blur_pool_emulated to keep the tests quick.)
#[test]
fn tensor_core_kernels_emulated() {
    let cases = matrix::tensor_core_cases();
    matrix::run_matrix(
        &Emu::AUTO,
        "tensor-core conv kernels, v4 (emulated)",
        &cases,
    );
}

/// The wgmma cases plan the sm_90a kernel wherever their tiles are 7 × 7 (most of them), and
/// the mma.sync v4 kernel without wgmma.
#[test]
fn wgmma_cases_plan_the_wgmma_kernel() {
    let (mut wgmma, mut side8) = (0, 0);
    for (op, shape) in matrix::wgmma_cases() {
        for dtype in [DType::F16, DType::BF16] {
            for layout in Layout::ALL {
                let target = Target::new(dtype, layout);
                let plan = op.plan(shape, target).unwrap();
                let mma = op.plan(shape, target.with_wgmma(false)).unwrap();
                assert_eq!(plan.version(), KernelVersion::V4);
                assert!(!mma.symbol().contains("wgmma"), "{}", mma.symbol());
                if plan.symbol().contains("wgmma") {
                    assert!(mma.symbol().contains("t7_v4"), "{}", mma.symbol());
                    wgmma += 1;
                } else {
                    assert_eq!(plan.symbol(), mma.symbol(), "only side 8 leaves wgmma");
                    side8 += 1;
                }
            }
        }
    }
    println!("{wgmma} plans on wgmma, {side8} on 8 × 8 tiles");
    assert!(wgmma > 250 && side8 > 0, "{wgmma} / {side8}");
}

/// The sm_90a wgmma kernel (as the emulator runs wgmma: operands read at the wait).
#[test]
fn tensor_core_wgmma_kernels_emulated() {
    matrix::run_matrix(
        &Emu::AUTO,
        "tensor-core conv kernels, v4 wgmma (emulated)",
        &matrix::wgmma_cases(),
    );
}

/// The same cases on a device without wgmma: the mma.sync v4 kernel at 64 channels a block.
#[test]
fn tensor_core_wgmma_cases_without_wgmma_emulated() {
    matrix::run_matrix(
        &Emu::NO_WGMMA,
        "tensor-core conv kernels, v4 mma.sync on the wgmma cases (emulated)",
        &matrix::wgmma_cases(),
    );
}

/// The v3 tensor-core kernels stay selectable (`KernelChoice::AtMost(V3)`) and right.
#[test]
fn tensor_core_v3_kernels_emulated() {
    let cases = matrix::tensor_core_cases();
    matrix::run_matrix(&Emu::V3, "tensor-core conv kernels, v3 (emulated)", &cases);
}

#[test]
fn conv_blur_pool_emulated() {
    matrix::run_matrix(
        &Emu::AUTO,
        "conv_blur_pool (emulated)",
        &matrix::conv_blur_pool_cases(),
    );
}

#[test]
fn blur_conv_emulated() {
    matrix::run_matrix(
        &Emu::AUTO,
        "blur_conv (emulated)",
        &matrix::blur_conv_cases(),
    );
}

#[test]
fn backward_pooling_emulated() {
    matrix::run_backward_matrix(
        &Emu::AUTO,
        "backward pooling (emulated)",
        &matrix::backward_pooling_cases(),
    );
}

#[test]
fn backward_conv_blur_pool_emulated() {
    matrix::run_backward_matrix(
        &Emu::AUTO,
        "backward conv_blur_pool (emulated)",
        &matrix::conv_blur_pool_cases(),
    );
}

#[test]
fn blur_conv_backward_is_refused_clearly() {
    let op = matrix::blur_conv_cases()[0].0.clone();
    let e = op
        .backward_plan(
            Shape4::new(1, 3, 8, 8),
            Target::new(DType::F32, Layout::Nchw),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("not implemented on the GPU"), "{e}");
}

/// `op` on `shape` in f16 NHWC at x/y offsets 0 (16-byte aligned) and 1 (2 bytes past): the
/// same bits (no misaligned vector access: the emulator faults on one, as a GPU would), and
/// the reference's numbers.
fn same_bits_at_odd_offsets(op: &Operator, shape: Shape4, version: KernelVersion) {
    same_bits_at_odd_offsets_in(op, shape, version, Layout::Nhwc)
}

fn same_bits_at_odd_offsets_in(
    op: &Operator,
    shape: Shape4,
    version: KernelVersion,
    layout: Layout,
) {
    let plan = Emu::AUTO.plan::<f16>(op, shape, layout).unwrap();
    assert_eq!(plan.version(), version, "{}", plan.symbol());
    let mut rng = rand::rngs::StdRng::seed_from_u64(matrix::seed());
    let data = CaseData::<f16>::random(&mut rng, op, shape);
    let bits = |v: Vec<f16>| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
    let run = |xo: usize, yo: usize| {
        Emu::AUTO
            .forward_at(op, shape, layout, &data, xo, yo)
            .map(bits)
    };
    let aligned = run(0, 0).expect("aligned buffers");
    // Odd elements (no vector path), and 4 halves = 8 bytes (NCHW v4 reads 8-byte row chunks
    // where 16 are not aligned; NHWC v4 takes v2), 2 halves = 4 bytes.
    for (xo, yo) in [(1, 0), (0, 1), (1, 1), (4, 0), (4, 4), (2, 2)] {
        let odd = run(xo, yo).unwrap_or_else(|e| panic!("offsets {xo}/{yo}: {e}"));
        assert_eq!(odd, aligned, "offsets {xo}/{yo}");
    }
    let mut want = vec![f16::ZERO; plan.output().numel().unwrap()];
    blurpool::reference::forward(
        op,
        shape,
        layout,
        &data.x,
        &data.w,
        data.b.as_deref(),
        &mut want,
    )
    .unwrap();
    let close = aligned.iter().zip(&want).all(|(&g, w)| {
        (f16::from_bits(g).to_f64() - w.to_f64()).abs() <= 2e-3 * w.to_f64().abs() + 2e-3
    });
    assert!(close, "matches the reference");
}

/// The NHWC half-type strip kernels take 4-byte channel pairs only on 4-byte aligned buffers.
#[test]
fn strip_kernels_accept_buffers_at_odd_elements() {
    let blur = presets::timm::blur(3, 2, PadMode::Reflect).unwrap();
    let op = Operator::MaxBlurPool(MaxBlurPool2d::new(
        MaxPool2d::new((3, 3), (1, 1)).unwrap(),
        blur,
    ));
    same_bits_at_odd_offsets(&op, Shape4::new(2, 4, 19, 23), KernelVersion::V2);
}

/// The v4 strips take 16-byte vectors only when x (and in NHWC y) is 16-byte aligned; NCHW takes
/// 8-byte row chunks where x is 8-byte aligned; at any other offset the same kernel takes the v2
/// walk; the bits are the same in every case.
#[test]
fn strip4_kernels_accept_buffers_at_odd_elements() {
    let blur = presets::timm::blur(3, 2, PadMode::Reflect).unwrap();
    let op = Operator::MaxBlurPool(MaxBlurPool2d::new(
        MaxPool2d::new((3, 3), (1, 1)).unwrap(),
        blur,
    ));
    same_bits_at_odd_offsets(&op, Shape4::new(2, 16, 19, 23), KernelVersion::V4);
    let blur4 = presets::antialiased_cnns::blur(PadMode::Reflect, 4, 2, 0).unwrap();
    let op = Operator::BlurPool(blurpool::BlurPool2d::new(blur4));
    same_bits_at_odd_offsets(&op, Shape4::new(1, 8, 13, 9), KernelVersion::V4);
    // NCHW: an odd x takes the v2 walk, an odd y the vector walk with element stores.
    same_bits_at_odd_offsets_in(
        &op,
        Shape4::new(1, 3, 13, 40),
        KernelVersion::V4,
        Layout::Nchw,
    );
}

/// The v4 depthwise strips: x and y as the pooling strips; NHWC loads a channel vector's taps
/// (and biases) as 16-byte vectors only when w (and b) are 16-byte aligned, else element by
/// element, with the same bits.
#[test]
fn strip4_depthwise_kernels_accept_buffers_at_odd_elements() {
    let blur = presets::timm::blur(3, 2, PadMode::Reflect).unwrap();
    for (layout, shape) in [
        (Layout::Nhwc, Shape4::new(2, 16, 13, 11)),
        (Layout::Nchw, Shape4::new(1, 3, 13, 40)),
    ] {
        let conv = Conv2dSpec::new(Conv2dArgs {
            in_channels: shape.c,
            out_channels: shape.c,
            kernel: (3, 3),
            padding: (1, 1),
            groups: shape.c,
            bias: true,
            activation: Activation::Relu,
        })
        .unwrap();
        let op = Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur.clone()));
        same_bits_at_odd_offsets_in(&op, shape, KernelVersion::V4, layout);
        let plan = Emu::AUTO.plan::<f16>(&op, shape, layout).unwrap();
        assert!(
            plan.symbol().starts_with("bp_convblurpool_dw3f3s2_v4"),
            "{}",
            plan.symbol()
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(matrix::seed());
        let data = CaseData::<f16>::random(&mut rng, &op, shape);
        let bits = |o| {
            Emu::AUTO
                .forward_offsets(&op, shape, layout, &data, o)
                .unwrap()
                .iter()
                .map(|e| e.to_bits())
                .collect::<Vec<_>>()
        };
        let aligned = bits([0, 0, 0, 0]);
        for o in [[0, 1, 0, 0], [0, 0, 1, 0], [0, 3, 5, 0], [1, 1, 1, 1]] {
            assert_eq!(bits(o), aligned, "{layout:?} offsets {o:?}");
        }
    }
}

/// The v4 depthwise kernels run blocks of the threads their line in the sources names
/// (filter 3: 128, three per SM, for 12 warps at their 168 registers; filter 4: 256), and the
/// grid counts blocks of that size.
#[test]
fn strip4_depthwise_blocks_are_their_variants() {
    let shape = Shape4::new(2, 16, 20, 20);
    for (filter, threads) in [(3, 128u32), (4, 256)] {
        let blur = presets::timm::blur(filter, 2, PadMode::Reflect).unwrap();
        let conv = Conv2dSpec::new(Conv2dArgs {
            in_channels: 16,
            out_channels: 16,
            kernel: (3, 3),
            padding: (1, 1),
            groups: 16,
            bias: true,
            activation: Activation::Relu,
        })
        .unwrap();
        let op = Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur));
        let plan = op
            .plan(shape, Target::new(DType::F16, Layout::Nhwc))
            .unwrap();
        assert_eq!(
            plan.symbol(),
            format!("bp_convblurpool_dw3f{filter}s2_v4_f16_nhwc")
        );
        assert_eq!(plan.block_dim(), threads, "filter {filter}");
        // 2 images × 4 groups of 4 channels × 2 strips of 8 rows × 10 columns = 160 threads.
        assert_eq!(
            plan.grid_dim(u32::MAX),
            160u32.div_ceil(threads),
            "filter {filter}"
        );
        // v2 keeps blocks of 256.
        let v2 = op
            .plan(
                shape,
                Target::new(DType::F16, Layout::Nhwc)
                    .with_choice(KernelChoice::AtMost(KernelVersion::V3)),
            )
            .unwrap();
        assert_eq!((v2.version(), v2.block_dim()), (KernelVersion::V2, 256));
    }
}

/// The pooling v4 kernels run the block their line in the sources names: 128 threads for
/// MaxBlurPool (20 warps a SM at 96 registers in NCHW: 2.5 blocks of 256), 256 for BlurPool;
/// the plan, the grid and the launch take it from there.
#[test]
fn strip4_pooling_blocks_are_their_variants() {
    // 2 images × 16 planes × 3 strips × 3 column groups (WO = 20) = 288 threads.
    let shape = Shape4::new(2, 16, 40, 40);
    for (window, filter, stem, threads) in [
        (3, 3, "maxblurpool_k3f3s2", 128u32),
        (2, 3, "maxblurpool_k2f3s2", 128),
        (2, 4, "maxblurpool_k2f4s2", 128),
        (1, 3, "blurpool_f3s2", 256),
    ] {
        let blur = presets::timm::blur(filter, 2, PadMode::Reflect).unwrap();
        let op = if window == 1 {
            Operator::BlurPool(BlurPool2d::new(blur))
        } else {
            Operator::MaxBlurPool(MaxBlurPool2d::new(
                MaxPool2d::new((window, window), (1, 1)).unwrap(),
                blur,
            ))
        };
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let plan = op.plan(shape, Target::new(DType::F16, layout)).unwrap();
            assert_eq!(plan.symbol(), format!("bp_{stem}_v4_f16_{}", layout.name()));
            assert_eq!(plan.block_dim(), threads, "{stem} {layout:?}");
            if layout == Layout::Nchw {
                assert_eq!(plan.grid_dim(u32::MAX), 288u32.div_ceil(threads), "{stem}");
            }
        }
        let v2 = op
            .plan(
                shape,
                Target::new(DType::F16, Layout::Nchw)
                    .with_choice(KernelChoice::AtMost(KernelVersion::V3)),
            )
            .unwrap();
        assert_eq!((v2.version(), v2.block_dim()), (KernelVersion::V2, 256));
    }
}

/// The tensor-core kernel loads 8 NHWC channels (16 bytes) at once only when C % 8 == 0 and
/// the input is 16-byte aligned.
#[test]
fn tensor_core_kernel_accepts_buffers_at_odd_elements() {
    let blur = presets::timm::blur(3, 2, PadMode::Reflect).unwrap();
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 16,
        out_channels: 8,
        kernel: (3, 3),
        padding: (1, 1),
        bias: true,
        activation: Activation::Relu,
        ..Conv2dArgs::default()
    })
    .unwrap();
    let op = Operator::ConvBlurPool(ConvBlurPool2d::new(conv, blur));
    // v4: the input tile takes cp.async only on 16-byte aligned NHWC inputs (C % 8 == 0).
    same_bits_at_odd_offsets(&op, Shape4::new(1, 16, 11, 13), KernelVersion::V4);
}
