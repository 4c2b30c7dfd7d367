//! GPU tests: every kernel against the CPU reference over the full matrix of dtypes × layouts
//! × pad modes × filters × strides × sizes (and windows, groups, activations), on fresh random
//! data with poisoned outputs.
//!
//! They need a CUDA GPU, so they are `#[ignore]`d: `cargo test` reports them as ignored, and a
//! GPU host runs them with `cargo test --test gpu -- --ignored` (the GPU bundle does). Run that
//! way without a GPU, each fails saying why.
//!
//! Tolerances per dtype are stated (and applied) in testkit/src/check.rs: f32 relative 1e-5,
//! f16/bf16 one ulp of the output, plus the f32 summation bound 2·n·2⁻²⁴·Σ|terms|; dense max
//! bit-exact. The seed of the random data is printed; set BLURPOOL_TEST_SEED to replay it.

use std::sync::Arc;

use blurpool::cuda::{KernelChoice, KernelVersion, Kernels, LoadFrom};
use blurpool::{
    reference, Activation, Conv2dArgs, Conv2dSpec, DType, Element, Layout, Operator, PadMode,
    Shape4,
};
use blurpool_testkit::check::random_backward_data;
use blurpool_testkit::gpu::{run_gpu, run_gpu_backward};
use blurpool_testkit::matrix::{self, Coverage};
use blurpool_testkit::{random_vec, CaseData, Gpu, GradsOf, Runner};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The device, or a failure that says why there is none (these tests run only when asked).
fn gpu(test: &str) -> Gpu {
    let g = Gpu::open(0).unwrap_or_else(|e| panic!("{test} needs a CUDA GPU: {e}"));
    println!(
        "{test}: running on {}, kernels from {:?}",
        g.ctx.name().unwrap_or_default(),
        g.kernels.source()
    );
    g
}

fn full(g: &impl Runner, test: &str, cases: &[(Operator, Shape4)]) {
    matrix::run_cases(g, test, cases, false, Coverage::Full);
}

fn full_backward(g: &impl Runner, test: &str, cases: &[(Operator, Shape4)]) {
    matrix::run_cases(g, test, cases, true, Coverage::Full);
}

fn run_matrix(test: &str, cases: &[(Operator, Shape4)]) {
    let g = gpu(test);
    full(&g, test, cases);
    g.ctx.check_err().expect("no deferred CUDA errors");
}

#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn max_pool_matches_reference() {
    run_matrix("max_pool", &matrix::max_pool_cases());
}

#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn blur_pool_matches_reference() {
    run_matrix("blur_pool", &matrix::blur_pool_cases());
}

#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn max_blur_pool_matches_reference() {
    run_matrix("max_blur_pool", &matrix::max_blur_pool_cases());
}

/// The strip kernels (v2) on their own matrix, and the general kernels on the same cases.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn strip_kernels_match_reference() {
    let g = gpu("strip_kernels");
    full(&g, "strip kernels", &matrix::strip_cases());
    let general = g.with_choice(KernelChoice::GENERAL);
    full(
        &general,
        "strip cases, general kernels",
        &matrix::strip_cases(),
    );
    let dw = matrix::strip_depthwise_cases();
    full(&g, "strip depthwise conv kernels", &dw);
    full(&general, "strip depthwise cases, general kernels", &dw);
    g.ctx.check_err().expect("no deferred CUDA errors");
}

/// The v4 strips, pooling and depthwise (16-byte vectors: NHWC with C % 8 == 0, NCHW with W % 8 == 0), on their own
/// matrix in every dtype and layout, and v2 on the same cases.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn strip4_kernels_match_reference() {
    let g = gpu("strip4_kernels");
    let v2 = g.with_choice(KernelChoice::AtMost(KernelVersion::V2));
    for layout in Layout::ALL {
        let cases = matrix::strip4_cases(layout);
        full(&g, "strip4 kernels", &cases);
        full(&v2, "strip4 cases, v2 kernels", &cases);
        let dw = matrix::strip4_depthwise_cases(layout);
        full(&g, "strip4 depthwise kernels", &dw);
        full(&v2, "strip4 depthwise cases, v2 kernels", &dw);
    }
    g.ctx.check_err().expect("no deferred CUDA errors");
}

/// The tensor-core ConvBlurPool kernels (v4 and v3, f16/bf16 on sm_80+) on their own matrix, the
/// general kernels on the same cases, and one ResNet-like shape with several input-channel
/// stages and channel tiles.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn tensor_core_kernels_match_reference() {
    let g = gpu("tensor_core_kernels");
    let cases = matrix::tensor_core_cases();
    let target = g.kernels.target(DType::F16, Layout::Nhwc);
    let planned = cases[2].0.plan(cases[2].1, target).unwrap().symbol();
    println!(
        "tensor cores: {}, wgmma: {} (a case plans {planned})",
        target.tensor_cores(),
        target.wgmma()
    );
    full(&g, "tensor-core conv kernels (v4)", &cases);
    // More than 64 output channels at 7 × 7 tiles: the sm_90a wgmma kernel on an H100 / H200
    // whose module has sm_90a code, the mma.sync v4 kernel elsewhere.
    full(&g, "tensor-core wgmma cases (v4)", &matrix::wgmma_cases());
    let v3 = g.with_choice(KernelChoice::AtMost(KernelVersion::V3));
    full(&v3, "tensor-core conv kernels (v3)", &cases);
    let general = g.with_choice(KernelChoice::GENERAL);
    full(&general, "tensor-core cases, general kernels", &cases);
    let blur = blurpool::presets::antialiased_cnns::blur(PadMode::Reflect, 4, 2, 0).unwrap();
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 64,
        out_channels: 96,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 1,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap();
    let stem = (
        Operator::ConvBlurPool(blurpool::ConvBlurPool2d::new(conv, blur)),
        Shape4::new(2, 64, 30, 34),
    );
    full(&g, "tensor-core conv, 64 → 96 channels", &[stem]);
    g.ctx.check_err().expect("no deferred CUDA errors");
}

#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn conv_blur_pool_matches_reference() {
    run_matrix("conv_blur_pool", &matrix::conv_blur_pool_cases());
}

#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn blur_conv_matches_reference() {
    run_matrix("blur_conv", &matrix::blur_conv_cases());
}

#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn backward_pooling_matches_reference() {
    let g = gpu("backward_pooling");
    full_backward(&g, "backward_pooling", &matrix::backward_pooling_cases());
    g.ctx.check_err().expect("no deferred CUDA errors");
}

#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn backward_conv_blur_pool_matches_reference() {
    let g = gpu("backward_conv_blur_pool");
    full_backward(
        &g,
        "backward_conv_blur_pool",
        &matrix::conv_blur_pool_cases(),
    );
    g.ctx.check_err().expect("no deferred CUDA errors");
}

/// The backward kernels are gathers with fixed-order reductions: 100 runs, and a run on another
/// stream, give bitwise identical dx, dweight and dbias in every pad mode.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn backward_is_bitwise_deterministic() {
    let g = gpu("backward_determinism");
    let mut rng = StdRng::seed_from_u64(matrix::seed());
    let shape = Shape4::new(2, 8, 33, 35);
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 8,
        out_channels: 8,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 2,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap();
    let mut ops = Vec::new();
    for mode in PadMode::ALL {
        ops.push(Operator::MaxBlurPool(
            blurpool::presets::antialiased_cnns::max_blur_pool(2, 0, mode, 4, 2, 0).unwrap(),
        ));
        ops.push(Operator::BlurPool(
            blurpool::presets::timm::blur_pool2d(3, 2, mode).unwrap(),
        ));
        ops.push(Operator::ConvBlurPool(
            blurpool::presets::antialiased_cnns::conv_blur_pool(conv, mode, 3, 2, 0).unwrap(),
        ));
    }
    let other = g.ctx.new_stream().unwrap();
    let bits = |v: &GradsOf<f16>| {
        let b = |v: &[f16]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
        (b(&v.dx), b(&v.dweight), v.dbias.as_deref().map(b))
    };
    for op in &ops {
        for layout in Layout::ALL {
            let data = random_backward_data::<f16>(&mut rng, op, shape, layout);
            let dy: Vec<f16> = random_vec(
                &mut rng,
                op.output_shape(shape).unwrap().numel().unwrap(),
                1.0,
            );
            let first = run_gpu_backward(&g, op, shape, layout, &data, &dy, false).unwrap();
            for _ in 0..100 {
                let again = run_gpu_backward(&g, op, shape, layout, &data, &dy, false).unwrap();
                assert_eq!(bits(&again), bits(&first), "{op:?} {layout:?}");
            }
            let elsewhere = run_gpu_backward(
                &g.on_stream(other.clone()),
                op,
                shape,
                layout,
                &data,
                &dy,
                false,
            )
            .unwrap();
            assert_eq!(
                bits(&elsewhere),
                bits(&first),
                "{op:?} {layout:?}: another stream"
            );
        }
    }
    println!("backward_determinism: {} operators × 2 layouts × 100 runs bitwise identical, another stream agrees", ops.len());
}

/// NaN and ±inf through MaxBlurPool give exactly PyTorch's max_pool2d behaviour (the
/// reference follows PyTorch's rule and is itself checked against torch in tests/golden.rs),
/// through the strip kernels and the general ones.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn nan_and_inf_propagate_like_pytorch() {
    let g = gpu("nan_and_inf");
    let runs = matrix::nan_and_inf(&g) + matrix::nan_and_inf(&g.with_choice(KernelChoice::GENERAL));
    println!("nan_and_inf: {runs} cases passed");
}

/// An empty batch returns at once and touches nothing.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn empty_batch_is_a_no_op() {
    let g = gpu("empty_batch");
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
    let got = run_gpu(&g, &op, shape, Layout::Nchw, &data, false).unwrap();
    assert!(got.is_empty());
}

/// Weights packed once (`pack_weights`) and read by `forward_packed` give the same bits as
/// `forward` (which packs on every call), for two input shapes sharing one pack; a misaligned
/// or short packed buffer and a plan that reads plain weights are typed errors.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn packed_weights_match_the_packing_forward() {
    use blurpool::cuda::Launch;
    use blurpool::Error;
    let g = gpu("packed_weights");
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 40,
        out_channels: 70,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 1,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap();
    let op = blurpool::presets::antialiased_cnns::conv_blur_pool(conv, PadMode::Reflect, 4, 2, 0)
        .unwrap();
    let launch = Launch::new(&g.kernels, &g.stream, Layout::Nhwc).unwrap();
    let target = launch.target(DType::F16);
    if !target.tensor_cores() {
        panic!("packed_weights needs a GPU with tensor cores (sm_80+); this one has none");
    }
    let mut rng = StdRng::seed_from_u64(matrix::seed());
    let w = g
        .stream
        .clone_htod(&random_vec::<f16>(&mut rng, conv.weight_len(), 0.2))
        .unwrap();
    let b = g
        .stream
        .clone_htod(&random_vec::<f16>(&mut rng, conv.bias_len(), 0.5))
        .unwrap();
    let first = Shape4::new(2, 40, 30, 34);
    let pack = op
        .plan(first, target)
        .unwrap()
        .weight_pack()
        .expect("v4 packs");
    let mut packed = g.stream.alloc_zeros::<f16>(pack.len()).unwrap();
    op.pack_weights(&launch, first, &w, &mut packed).unwrap();
    for input in [first, Shape4::new(1, 40, 17, 19)] {
        let x = g
            .stream
            .clone_htod(&random_vec::<f16>(&mut rng, input.numel().unwrap(), 1.0))
            .unwrap();
        let n_out = op.output_shape(input).unwrap().numel().unwrap();
        let mut y_plain = g.stream.clone_htod(&vec![f16::NAN; n_out]).unwrap();
        let mut y_packed = g.stream.clone_htod(&vec![f16::NAN; n_out]).unwrap();
        op.forward(&launch, input, &x, &w, Some(&b), &mut y_plain)
            .unwrap();
        op.forward_packed(&launch, input, &x, &packed, Some(&b), &mut y_packed)
            .unwrap();
        let (a, p) = (
            g.stream.clone_dtoh(&y_plain).unwrap(),
            g.stream.clone_dtoh(&y_packed).unwrap(),
        );
        assert!(
            a.iter().all(|v| v.is_finite()),
            "{input:?}: output not written"
        );
        let same = a.iter().zip(&p).all(|(u, v)| u.to_bits() == v.to_bits());
        assert!(same, "{input:?}: forward_packed differs from forward");
    }
    // A view one element in: 2 bytes past a 16-byte boundary.
    let big = g.stream.alloc_zeros::<f16>(pack.len() + 1).unwrap();
    let view = big.slice(1..);
    let x = g.stream.alloc_zeros::<f16>(first.numel().unwrap()).unwrap();
    let mut y = g
        .stream
        .alloc_zeros::<f16>(op.output_shape(first).unwrap().numel().unwrap())
        .unwrap();
    let e = op
        .forward_packed(&launch, first, &x, &view, Some(&b), &mut y)
        .unwrap_err();
    assert!(matches!(e, Error::Misaligned { align: 16, .. }), "{e}");
    let short = packed.slice(..pack.len() - 8);
    let e = op
        .forward_packed(&launch, first, &x, &short, Some(&b), &mut y)
        .unwrap_err();
    assert!(matches!(e, Error::BufferLength { .. }), "{e}");
    // f32 runs the general kernel, which reads the weights themselves.
    let w32 = g.stream.alloc_zeros::<f32>(conv.weight_len()).unwrap();
    let mut p32 = g.stream.alloc_zeros::<f32>(pack.len()).unwrap();
    let e = op.pack_weights(&launch, first, &w32, &mut p32).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    g.ctx.check_err().expect("no deferred CUDA errors");
}

/// The same input 100 times gives bitwise identical output; so do other streams and the
/// raw-pointer entry.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn deterministic_across_runs_streams_and_entries() {
    let g = gpu("determinism");
    let mut rng = StdRng::seed_from_u64(matrix::seed());
    let shape = Shape4::new(2, 8, 33, 35);
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 8,
        out_channels: 8,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 2,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap();
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
            let first = run_gpu(&g, op, shape, layout, &data, false).unwrap();
            let bits = |v: &[f16]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
            for _ in 0..100 {
                assert_eq!(
                    bits(&run_gpu(&g, op, shape, layout, &data, false).unwrap()),
                    bits(&first)
                );
            }
            assert_eq!(
                bits(
                    &run_gpu(&g.on_stream(other.clone()), op, shape, layout, &data, false).unwrap()
                ),
                bits(&first),
                "another stream"
            );
            assert_eq!(
                bits(
                    &run_gpu(
                        &g.on_stream(default.clone()),
                        op,
                        shape,
                        layout,
                        &data,
                        false
                    )
                    .unwrap()
                ),
                bits(&first),
                "default stream"
            );
            assert_eq!(
                bits(&run_gpu(&g, op, shape, layout, &data, true).unwrap()),
                bits(&first),
                "raw entry"
            );
        }
    }
    println!("determinism: 3 operators × 2 layouts × 100 runs bitwise identical, other streams and raw entry agree");
}

/// The NVRTC path compiles the same sources and gives bitwise the same results as the fatbin.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn nvrtc_path_matches_fatbin() {
    let g = gpu("nvrtc_path");
    let nvrtc = match Kernels::load(&g.ctx, LoadFrom::Nvrtc) {
        Ok(k) => Arc::new(k),
        Err(e) => panic!("NVRTC path failed: {e}"),
    };
    let g2 = Gpu {
        ctx: g.ctx.clone(),
        kernels: nvrtc,
        stream: g.stream.clone(),
    };
    let mut rng = StdRng::seed_from_u64(matrix::seed());
    let shape = Shape4::new(2, 6, 17, 19);
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: 6,
        out_channels: 6,
        kernel: (3, 3),
        padding: (1, 1),
        groups: 3,
        bias: true,
        activation: Activation::Relu6,
    })
    .unwrap();
    let ops = [
        Operator::MaxBlurPool(blurpool::presets::kornia::max_blur_pool2d(3, 2, 2).unwrap()),
        Operator::ConvBlurPool(
            blurpool::presets::timm::conv_blur_pool(conv, 3, 2, PadMode::Reflect).unwrap(),
        ),
    ];
    for op in &ops {
        for layout in Layout::ALL {
            let data = CaseData::<bf16>::random(&mut rng, op, shape);
            let a = run_gpu(&g, op, shape, layout, &data, false).unwrap();
            let b = run_gpu(&g2, op, shape, layout, &data, false).unwrap();
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
/// Needs ~6 GB of GPU memory: fails unless BLURPOOL_BIG_TESTS=1 (the GPU bundle sets it).
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn more_than_2_pow_31_elements() {
    assert!(
        std::env::var("BLURPOOL_BIG_TESTS").is_ok(),
        "this test needs ~6 GB of GPU memory: set BLURPOOL_BIG_TESTS=1 to run it, or pass \
         --skip more_than_2_pow_31_elements"
    );
    let g = gpu("big_tensor");
    let op = Operator::MaxBlurPool(
        blurpool::presets::antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 3, 2, 0)
            .unwrap(),
    );
    // 2^31 + a bit: N×C×H×W = 33×1024×256×256 > 2^31.
    let shape = Shape4::new(33, 1024, 256, 256);
    let n = shape.numel().unwrap();
    assert!(n > 1 << 31);
    let mut rng = StdRng::seed_from_u64(matrix::seed());
    let data = CaseData {
        x: random_vec::<f16>(&mut rng, n, 1.0),
        w: Vec::new(),
        b: None,
    };
    // The strip kernel (this geometry has one) and the general kernel.
    let general = g.with_choice(KernelChoice::GENERAL);
    for (layout, g) in Layout::ALL
        .into_iter()
        .flat_map(|l| [(l, &g), (l, &general)])
    {
        let got = run_gpu(g, &op, shape, layout, &data, false).unwrap();
        // Check the last image in full against the reference (it lies beyond 2^31).
        let last = Shape4::new(1, shape.c, shape.h, shape.w);
        let per = last.numel().unwrap();
        let (xs, out) = (&data.x[n - per..], op.output_shape(last).unwrap());
        let mut want = vec![f16::ZERO; out.numel().unwrap()];
        reference::forward(&op, last, layout, xs, &[], None, &mut want).unwrap();
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
            "big_tensor {layout:?} ({:?} kernels): {n} elements, last image ({} outputs) matches",
            g.kernels.choice(),
            want.len()
        );
    }
}

/// A borrowed stream must belong to the kernels' context: one of another context on the same
/// device is refused with ContextMismatch (before issue 23 the wrapper took the kernels'
/// context on trust, so the check could never fail), while a stream of the right context and the
/// null stream are accepted.
#[test]
#[ignore = "needs a CUDA GPU (cargo test --test gpu -- --ignored)"]
fn borrowed_streams_of_another_context_are_refused() {
    use cudarc::driver::sys;
    let g = gpu("stream_context");
    // SAFETY: plain driver calls on handles created here and destroyed at the end; the other
    // context is popped off this thread before the kernels' context is used again.
    unsafe {
        let mut dev: sys::CUdevice = 0;
        sys::cuDeviceGet(&mut dev, 0).result().unwrap();
        let mut other: sys::CUcontext = std::ptr::null_mut();
        sys::cuCtxCreate_v4(&mut other, std::ptr::null_mut(), 0, dev)
            .result()
            .unwrap();
        let mut foreign: sys::CUstream = std::ptr::null_mut();
        sys::cuStreamCreate(&mut foreign, 0).result().unwrap();
        let mut popped: sys::CUcontext = std::ptr::null_mut();
        sys::cuCtxPopCurrent_v2(&mut popped).result().unwrap();
        assert_eq!(popped, other);
        let refused = g.kernels.borrow_stream(foreign);
        assert!(
            matches!(refused, Err(blurpool::Error::ContextMismatch)),
            "{refused:?}"
        );
        let own = g.kernels.borrow_stream(g.stream.cu_stream());
        assert!(own.is_ok(), "{own:?}");
        let null = g.kernels.borrow_stream(std::ptr::null_mut());
        assert!(null.is_ok(), "{null:?}");
        sys::cuCtxPushCurrent_v2(other).result().unwrap();
        sys::cuStreamDestroy_v2(foreign).result().unwrap();
        sys::cuCtxPopCurrent_v2(&mut popped).result().unwrap();
        sys::cuCtxDestroy_v2(other).result().unwrap();
    }
}
