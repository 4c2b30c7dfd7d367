//! The trace is only as good as its hooks: a global access that bypasses `bp_ld`/`bp_st`
//! would be missing from every figure of the model. These tests run real kernels in trace mode
//! with every buffer redirected (the kernel is given decoy addresses; the hooks move each access
//! into the real buffers) and check that
//! * the traced output equals the untraced emulator's, bit for bit (the hooks change nothing);
//! * the decoys are untouched (no access went around the hooks: it would land in a decoy);
//! * every output byte is stored by a traced store, no traced store lands in an input, and
//!   the traced input loads at least cover the input once.

use std::ffi::c_void;

use blurpool::cuda::{KernelChoice, KernelVersion, Target};
use blurpool::presets::{antialiased_cnns, timm};
use blurpool::{
    Activation, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType, Layout, Operator,
    PadMode, Shape4,
};
use blurpool_emu::{AccessKind, Redirect, Sampling, TraceEvent};
use rand::{Rng, SeedableRng};

const POISON: u8 = 0xA5;

/// Random finite values of `dtype`, as bytes.
fn random_bytes(n: usize, dtype: DType, rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * dtype.size());
    for _ in 0..n {
        let v: f32 = rng.random_range(-4.0..4.0);
        match dtype {
            DType::F32 => out.extend_from_slice(&v.to_le_bytes()),
            DType::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_bits().to_le_bytes()),
        }
    }
    out
}

fn conv(c: usize, groups: usize) -> Conv2dSpec {
    Conv2dSpec::new(Conv2dArgs {
        in_channels: c,
        out_channels: c,
        kernel: (3, 3),
        padding: (1, 1),
        groups,
        bias: true,
        activation: Activation::Relu,
    })
    .unwrap()
}

/// Runs `op`'s forward launch on `shape` untraced and traced-with-redirects; checks as above.
fn check(op: &Operator, shape: Shape4, dtype: DType, layout: Layout, choice: KernelChoice) {
    let plan = op
        .plan(shape, Target::new(dtype, layout).with_choice(choice))
        .unwrap();
    let symbol = plan.symbol();
    let sz = dtype.size();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed ^ shape.numel().unwrap() as u64);
    let x = random_bytes(shape.numel().unwrap(), dtype, &mut rng);
    let (wlen, blen) = op.conv().map_or((0, 0), |c| (c.weight_len(), c.bias_len()));
    let w = random_bytes(wlen.max(1), dtype, &mut rng);
    let b = random_bytes(blen.max(1), dtype, &mut rng);
    // A kernel that reads packed weights (the tensor-core v4) gets them packed, untraced, by
    // the plan's packing kernel: its accesses are the ones under test.
    let w = match plan.weight_pack() {
        None => w,
        Some(pack) => {
            let mut packed = vec![POISON; pack.len() * sz];
            // SAFETY: w holds the conv's weight_len elements and `packed` the plan's
            // pack.len(), what the packing kernel reads and writes for these parameters.
            unsafe {
                blurpool_emu::launch(
                    &pack.symbol(),
                    pack.grid_dim(64),
                    pack.block_dim(),
                    0,
                    plan.params_bytes().as_ptr() as *const c_void,
                    w.as_ptr() as *const c_void,
                    std::ptr::null(),
                    std::ptr::null(),
                    std::ptr::null(),
                    packed.as_mut_ptr() as *mut c_void,
                )
            }
            .unwrap_or_else(|e| panic!("{}: {e}", pack.symbol()));
            packed
        }
    };
    let out_len = plan.output().numel().unwrap() * sz;
    let (grid, block, shared) = (plan.grid_dim(64), plan.block_dim(), plan.shared_bytes());
    let params = plan.params_bytes().to_vec();

    // Untraced.
    let mut y_plain = vec![POISON; out_len];
    // SAFETY: the plan's parameters describe x (its shape), w and b (the conv's lengths, at
    // least one element) and y (the plan's output), all alive and of those sizes.
    unsafe {
        blurpool_emu::launch(
            &symbol,
            grid,
            block,
            shared,
            params.as_ptr() as *const c_void,
            x.as_ptr() as *const c_void,
            w.as_ptr() as *const c_void,
            b.as_ptr() as *const c_void,
            std::ptr::null(),
            y_plain.as_mut_ptr() as *mut c_void,
        )
    }
    .unwrap_or_else(|e| panic!("{symbol}: {e}"));

    // Traced: the kernel sees decoys; the hooks redirect into copies of the real buffers.
    let decoy = |n: usize| vec![POISON; n];
    let (dx, dw, db, mut dy) = (
        decoy(x.len()),
        decoy(w.len()),
        decoy(b.len()),
        decoy(out_len),
    );
    let (mut rx, mut rw, mut rb) = (x.clone(), w.clone(), b.clone());
    let mut ry = vec![POISON; out_len];
    let redirect = |seen: &[u8], real: &mut [u8]| Redirect {
        seen: seen.as_ptr() as *const c_void,
        real: real.as_mut_ptr() as *mut c_void,
        len: seen.len() as u64,
    };
    let redirects = [
        redirect(&dx, &mut rx),
        redirect(&dw, &mut rw),
        redirect(&db, &mut rb),
        redirect(&dy, &mut ry),
    ];
    let in_ranges = [
        (dx.as_ptr() as u64, dx.len() as u64),
        (dw.as_ptr() as u64, dw.len() as u64),
        (db.as_ptr() as u64, db.len() as u64),
    ];
    let y_base = dy.as_ptr() as u64;
    let mut stored = vec![false; out_len];
    let mut bad = Vec::new();
    let mut loads = 0u64; // bytes
    let mut on_block = |_b: u32, events: &[TraceEvent]| -> bool {
        for e in events {
            let inside = |&(a, n): &(u64, u64)| e.addr >= a && e.addr + e.size as u64 <= a + n;
            match e.kind() {
                AccessKind::Store if inside(&(y_base, out_len as u64)) => {
                    let o = (e.addr - y_base) as usize;
                    stored[o..o + e.size as usize].fill(true);
                }
                AccessKind::Store if in_ranges.iter().any(inside) && bad.len() < 4 => {
                    bad.push(format!(
                        "a store into an input at {:#x} ({}:{})",
                        e.addr,
                        e.file(),
                        e.line
                    ));
                }
                AccessKind::Load if in_ranges.iter().any(inside) => loads += e.size as u64,
                // Shared memory (the block's own arrays) and loads of the output.
                _ => {}
            }
        }
        true
    };
    // SAFETY: as above; every access the kernel makes through its hooks lands in the `real`
    // copies, which have the decoys' lengths.
    let run = unsafe {
        blurpool_emu::launch_traced(
            &symbol,
            grid,
            block,
            shared,
            params.as_ptr() as *const c_void,
            [
                dx.as_ptr() as *const c_void,
                dw.as_ptr() as *const c_void,
                db.as_ptr() as *const c_void,
                std::ptr::null(),
            ],
            dy.as_mut_ptr() as *mut c_void,
            Sampling { max_iterations: 0 },
            &redirects,
            &mut on_block,
        )
    }
    .unwrap_or_else(|e| panic!("{symbol} traced: {e}"));
    let label = format!("{symbol} on {shape:?} {dtype:?} {layout:?}");
    assert_eq!(run.blocks_run, grid, "{label}: every block runs");
    assert!(
        bad.is_empty(),
        "{label}: accesses outside the buffers: {bad:?}"
    );
    assert!(
        ry == y_plain,
        "{label}: the traced output differs from the untraced one"
    );
    assert!(
        ry.iter().any(|&v| v != POISON),
        "{label}: nothing was written"
    );
    // Bytes, not accesses: a 16-byte vector load carries 4 or 8 elements.
    assert!(
        loads as usize >= x.len(),
        "{label}: {loads} bytes of traced input loads for {} bytes of input",
        x.len()
    );
    let missing = stored.iter().filter(|s| !**s).count();
    assert_eq!(
        missing, 0,
        "{label}: {missing} output bytes written without a traced store"
    );
    assert!(
        dx.iter().chain(&dw).chain(&db).all(|&v| v == POISON),
        "{label}: an input decoy was read-modified"
    );
    dy.iter_mut()
        .for_each(|v| assert_eq!(*v, POISON, "{label}: a store went around the hooks"));
}

#[test]
fn hooks_see_every_access_of_the_pooling_kernels() {
    // antialiased-cnns' ResNet MaxBlurPool (max 2, blur 4 reflect) and DenseNet's (max 3 pad 1).
    let mbp = Operator::MaxBlurPool(
        antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0).unwrap(),
    );
    let mbp3 = Operator::MaxBlurPool(
        antialiased_cnns::max_blur_pool(3, 1, PadMode::Reflect, 3, 2, 0).unwrap(),
    );
    let bp = Operator::BlurPool(BlurPool2d::new(timm::blur(4, 2, PadMode::Zero).unwrap()));
    // 5 channels, W = 23: v2 strips (and v1); 16 channels, W = 24: v4 (Auto), v2 below it.
    let v2 = KernelChoice::AtMost(KernelVersion::V2);
    let mut v4 = 0;
    for op in [&mbp, &mbp3, &bp] {
        for dtype in DType::ALL {
            for layout in Layout::ALL {
                for choice in [KernelChoice::Auto, KernelChoice::GENERAL] {
                    check(op, Shape4::new(2, 5, 19, 23), dtype, layout, choice);
                }
                for choice in [KernelChoice::Auto, v2] {
                    let shape = Shape4::new(2, 16, 19, 24);
                    let plan = op.plan(shape, Target::new(dtype, layout).with_choice(choice));
                    v4 += usize::from(plan.unwrap().version() == KernelVersion::V4);
                    check(op, shape, dtype, layout, choice);
                }
            }
        }
    }
    assert_eq!(
        v4, 18,
        "the three operators in every dtype and layout plan v4"
    );
}

#[test]
fn hooks_see_every_access_of_the_conv_kernels() {
    let blur = timm::blur(3, 2, PadMode::Reflect).unwrap();
    let dw = Operator::ConvBlurPool(ConvBlurPool2d::new(conv(6, 6), blur.clone()));
    // 6 channels, W = 17: the v2 depthwise strips; 16 channels, W = 24: v4, and v2 below it.
    let dw16 = Operator::ConvBlurPool(ConvBlurPool2d::new(conv(16, 16), blur.clone()));
    let dense = Operator::ConvBlurPool(ConvBlurPool2d::new(conv(16, 1), blur));
    let mut v4 = 0;
    for dtype in DType::ALL {
        for layout in Layout::ALL {
            check(
                &dw,
                Shape4::new(1, 6, 13, 17),
                dtype,
                layout,
                KernelChoice::Auto,
            );
            for choice in [KernelChoice::Auto, KernelChoice::AtMost(KernelVersion::V2)] {
                let shape = Shape4::new(1, 16, 13, 24);
                let plan = dw16.plan(shape, Target::new(dtype, layout).with_choice(choice));
                v4 += usize::from(plan.unwrap().version() == KernelVersion::V4);
                check(&dw16, shape, dtype, layout, choice);
            }
        }
    }
    assert_eq!(
        v4, 6,
        "the depthwise strip plans v4 in every dtype and layout"
    );
    // The tensor-core kernels (f16/bf16; v4, v3) and the general one they fall back from.
    for dtype in [DType::F16, DType::BF16] {
        for layout in Layout::ALL {
            for choice in [
                KernelChoice::Auto,
                KernelChoice::AtMost(KernelVersion::V3),
                KernelChoice::AtMost(KernelVersion::V1),
            ] {
                check(&dense, Shape4::new(1, 16, 11, 14), dtype, layout, choice);
            }
        }
    }
}
