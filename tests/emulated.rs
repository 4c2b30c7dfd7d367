//! The CUDA kernels themselves, run on the CPU by the host emulator (emu/), against the CPU
//! reference over the same matrix as tests/gpu.rs: every operator × dtype × layout × pad mode ×
//! filter × stride × window × size, fresh random data, outputs poisoned, every element checked
//! with the tolerances of src/verify.rs.
//!
//! This runs everywhere, GPU or not. It checks the kernels' index arithmetic, padding, tails,
//! grid-stride loops and barrier discipline (each launch uses a small grid so the grid-stride
//! loop wraps), and, through guard zones around every buffer, that no kernel writes outside its
//! output or lets a read outside its inputs reach a result (guards hold NaN). It does not stand
//! in for a GPU run: f16 conversion goes through the host compiler, memory is host memory, and
//! nothing here says anything about speed (tests/gpu.rs and the GPU bundle do that part).

mod matrix;

use std::ffi::c_void;

use blurpool::cuda::{Buf, KernelChoice, KernelKind, LaunchPlan, Target, BLOCK};
use blurpool::ops::Operator;
use blurpool::verify::{CaseData, GradsOf, Runner, POISON};
use blurpool::{Element, Layout, Shape4};

/// The emulator as a verify::Runner. `max_blocks` stands in for the GPU's SMs × 32: small, so
/// every launch of more than a few hundred outputs exercises the grid-stride loop. `choice`
/// picks the forward kernels as `Kernels::with_choice` does on a GPU.
pub struct Emu {
    pub max_blocks: u32,
    pub choice: KernelChoice,
}

/// Elements of guard on each side of every buffer.
const GUARD: usize = 64;

/// `data` with GUARD NaNs on each side: an out-of-bounds read that reaches a result makes it
/// NaN, which the comparison rejects.
fn guarded<T: Element>(data: &[T], fill: T) -> Vec<T> {
    let mut v = vec![fill; data.len() + 2 * GUARD];
    v[GUARD..GUARD + data.len()].copy_from_slice(data);
    v
}

/// Runs a forward plan's kernel on the emulator: x, weight and bias in, y out (the fourth
/// input slot belongs to the backward kernels and stays null).
///
/// # Safety
/// Each slice must hold what `plan` reads or writes through it for its shapes (the kernel trusts
/// the plan, not the slice lengths). `plan.params` goes in as the BpParams block the GPU launch
/// would pass.
unsafe fn launch_forward<T: Element>(
    plan: &LaunchPlan,
    layout: Layout,
    max_blocks: u32,
    x: &[T],
    w: &[T],
    b: &[T],
    y: &mut [T],
) -> Result<(), String> {
    // SAFETY: the caller guarantees the buffers; params lives in `plan` for the call.
    unsafe {
        blurpool_emu::launch(
            &plan.kind.symbol(T::DTYPE, layout),
            plan.work.grid(max_blocks),
            BLOCK,
            &plan.params as *const _ as *const c_void,
            x.as_ptr() as *const c_void,
            w.as_ptr() as *const c_void,
            b.as_ptr() as *const c_void,
            std::ptr::null(),
            y.as_mut_ptr() as *mut c_void,
        )
    }
}

impl Runner for Emu {
    fn run<T: Element>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
    ) -> Result<Vec<T>, String> {
        let plan = op
            .plan_for(shape, Target::new(T::DTYPE, self.choice))
            .map_err(|e| e.to_string())?;
        let n_out = plan.output.numel().map_err(|e| e.to_string())?;
        let nan = T::from_f64(f64::NAN);
        let x = guarded(&data.x, nan);
        let w = guarded(&data.w, nan);
        let b = guarded(data.b.as_deref().unwrap_or(&[]), nan);
        let guard_value = T::from_f64(-12345.0);
        let mut y = guarded(&vec![T::from_f64(POISON); n_out], guard_value);
        if plan.work.count() > 0 {
            // SAFETY: every buffer holds the elements the shapes need plus GUARD on each side.
            unsafe {
                launch_forward(
                    &plan,
                    layout,
                    self.max_blocks,
                    &x[GUARD..],
                    &w[GUARD..],
                    &b[GUARD..],
                    &mut y[GUARD..],
                )
            }?;
        }
        check_guards("output", &y, n_out, guard_value)?;
        Ok(y[GUARD..GUARD + n_out].to_vec())
    }

    fn run_backward<T: Element>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
        dy: &[T],
    ) -> Result<GradsOf<T>, String> {
        let plan = op.backward_plan(shape).map_err(|e| e.to_string())?;
        let (wlen, blen) = op.conv().map_or((0, 0), |c| (c.weight_len(), c.bias_len()));
        let nan = T::from_f64(f64::NAN);
        let guard_value = T::from_f64(-12345.0);
        let x = guarded(&data.x, nan);
        let w = guarded(&data.w, nan);
        let b = guarded(data.b.as_deref().unwrap_or(&[]), nan);
        let dyg = guarded(dy, nan);
        let poison = |n: usize| guarded(&vec![T::from_f64(POISON); n], guard_value);
        let mut dx = poison(data.x.len());
        let mut dw = poison(wlen);
        let mut db = poison(blen);
        let mut ws = guarded(&vec![f32::NAN; plan.workspace_len], -12345.0f32);
        for step in &plan.steps {
            let input = |buf: Buf| -> *const c_void {
                let at = |v: &[T]| v[GUARD..].as_ptr() as *const c_void;
                match buf {
                    Buf::X => at(&x),
                    Buf::Weight => at(&w),
                    Buf::Bias => at(&b),
                    Buf::Dy => at(&dyg),
                    Buf::Workspace => ws[GUARD..].as_ptr() as *const c_void,
                    other => panic!("{other:?} is never a kernel input"),
                }
            };
            let [a, bb, c, d] = step.inputs.map(|i| i.map_or(std::ptr::null(), input));
            let out = match step.output {
                Buf::Dx => dx[GUARD..].as_mut_ptr() as *mut c_void,
                Buf::DWeight => dw[GUARD..].as_mut_ptr() as *mut c_void,
                Buf::DBias => db[GUARD..].as_mut_ptr() as *mut c_void,
                Buf::Workspace => ws[GUARD..].as_mut_ptr() as *mut c_void,
                other => panic!("{other:?} is never a kernel output"),
            };
            if step.work.count() == 0 {
                continue;
            }
            // SAFETY: params is the block the GPU launch passes; every buffer holds what its
            // role needs for these shapes plus GUARD elements on each side and outlives the
            // call; the output never aliases the step's inputs (the plan's roles differ).
            unsafe {
                blurpool_emu::launch(
                    &step.kind.symbol(T::DTYPE, layout),
                    step.work.grid(self.max_blocks),
                    BLOCK,
                    &plan.params as *const _ as *const c_void,
                    a,
                    bb,
                    c,
                    d,
                    out,
                )
            }?;
        }
        check_guards("dx", &dx, data.x.len(), guard_value)?;
        check_guards("dweight", &dw, wlen, guard_value)?;
        check_guards("dbias", &db, blen, guard_value)?;
        check_guards("workspace", &ws, plan.workspace_len, -12345.0f32)?;
        Ok(GradsOf {
            dx: dx[GUARD..GUARD + data.x.len()].to_vec(),
            dweight: if op.conv().is_some() {
                dw[GUARD..GUARD + wlen].to_vec()
            } else {
                Vec::new()
            },
            dbias: data.b.as_ref().map(|_| db[GUARD..GUARD + blen].to_vec()),
        })
    }
}

/// Err if anything outside `v`'s middle `n` elements changed (an out-of-bounds write).
fn check_guards<E: bytemuck::Pod>(what: &str, v: &[E], n: usize, guard: E) -> Result<(), String> {
    let bits = |e: &E| bytemuck::bytes_of(e).to_vec();
    for (i, g) in v[..GUARD].iter().chain(&v[GUARD + n..]).enumerate() {
        if bits(g) != bits(&guard) {
            return Err(format!(
                "the kernel wrote outside its {what} (guard element {i} changed)"
            ));
        }
    }
    Ok(())
}

const EMU: Emu = Emu {
    max_blocks: 3,
    choice: KernelChoice::Auto,
};
const EMU_GENERAL: Emu = Emu {
    max_blocks: 3,
    choice: KernelChoice::General,
};

#[test]
fn every_kernel_entry_is_emulated() {
    // The same list the GPU loader resolves (Kernels::load): forward and backward families.
    let names = blurpool_emu::kernel_names();
    for (kind, dtype, layout) in KernelKind::entry_points() {
        let s = kind.symbol(dtype, layout);
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
    matrix::run_matrix(&EMU, "max_pool (emulated)", &matrix::max_pool_cases());
}

#[test]
fn blur_pool_emulated() {
    matrix::run_matrix(&EMU, "blur_pool (emulated)", &matrix::blur_pool_cases());
}

#[test]
fn max_blur_pool_emulated() {
    matrix::run_matrix(
        &EMU,
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
    for (op, shape) in cases {
        match op.plan_for(shape, Target::new(blurpool::DType::F16, KernelChoice::Auto)) {
            Ok(plan) => {
                assert!(
                    matches!(plan.kind, KernelKind::Strip(_)),
                    "{op:?} on {shape} plans {:?}",
                    plan.kind
                );
                strip += 1;
                let general = op
                    .plan_for(
                        shape,
                        Target::new(blurpool::DType::F16, KernelChoice::General),
                    )
                    .unwrap();
                assert!(!matches!(general.kind, KernelKind::Strip(_)));
                assert_eq!(general.params, plan.params, "same parameter block");
            }
            Err(_) => invalid += 1,
        }
    }
    println!("{strip} strip plans, {invalid} cases invalid for their size (refused alike)");
    assert!(strip > 500 && invalid < strip / 3, "{strip} / {invalid}");
}

#[test]
fn nan_and_inf_emulated() {
    let runs = matrix::nan_and_inf(&EMU) + matrix::nan_and_inf(&EMU_GENERAL);
    println!("nan_and_inf (emulated): {runs} cases passed");
}

#[test]
fn strip_kernels_emulated() {
    matrix::run_matrix(&EMU, "strip kernels (emulated)", &matrix::strip_cases());
}

#[test]
fn strip_depthwise_kernels_emulated() {
    let cases = matrix::strip_depthwise_cases();
    matrix::run_matrix(&EMU, "strip depthwise conv kernels (emulated)", &cases);
    matrix::run_matrix(
        &EMU_GENERAL,
        "strip depthwise cases, general kernels (emulated)",
        &cases,
    );
}

#[test]
fn strip_cases_on_general_kernels_emulated() {
    matrix::run_matrix(
        &EMU_GENERAL,
        "strip cases, general kernels (emulated)",
        &matrix::strip_cases(),
    );
}

#[test]
fn tensor_core_cases_plan_tensor_core_kernels() {
    use blurpool::DType;
    let (mut tc, mut invalid) = (0, 0);
    for (op, shape) in matrix::tensor_core_cases() {
        let plan = |dtype, choice, tensor_cores| {
            op.plan_for(
                shape,
                Target {
                    dtype,
                    choice,
                    tensor_cores,
                },
            )
        };
        let Ok(auto) = plan(DType::F16, KernelChoice::Auto, true) else {
            invalid += 1;
            continue;
        };
        assert!(
            matches!(auto.kind, KernelKind::ConvTensorCore { .. }),
            "{op:?} on {shape} plans {:?}",
            auto.kind
        );
        assert_eq!(
            plan(DType::BF16, KernelChoice::Auto, true).unwrap().kind,
            auto.kind
        );
        // f32, the general choice and a device without tensor cores all take v1.
        for (dtype, choice, tensor_cores) in [
            (DType::F32, KernelChoice::Auto, true),
            (DType::F16, KernelChoice::General, true),
            (DType::F16, KernelChoice::Auto, false),
        ] {
            let other = plan(dtype, choice, tensor_cores).unwrap();
            assert!(
                !matches!(other.kind, KernelKind::ConvTensorCore { .. }),
                "{dtype:?} {choice:?} {tensor_cores}: {:?}",
                other.kind
            );
            assert_eq!(other.params, auto.params, "same parameter block");
        }
        tc += 1;
    }
    println!("{tc} tensor-core plans, {invalid} cases invalid for their size (refused alike)");
    assert!(tc > 200 && invalid < tc / 3, "{tc} / {invalid}");
}

/// (f32 takes v1 on these cases; tests/gpu.rs also runs the half types on v1, which the
/// emulator leaves to conv_blur_pool_emulated to keep CI's debug build quick.)
#[test]
fn tensor_core_kernels_emulated() {
    let cases = matrix::tensor_core_cases();
    matrix::run_matrix(&EMU, "tensor-core conv kernels (emulated)", &cases);
}

#[test]
fn conv_blur_pool_emulated() {
    matrix::run_matrix(
        &EMU,
        "conv_blur_pool (emulated)",
        &matrix::conv_blur_pool_cases(),
    );
}

#[test]
fn blur_conv_emulated() {
    matrix::run_matrix(&EMU, "blur_conv (emulated)", &matrix::blur_conv_cases());
}

#[test]
fn backward_pooling_emulated() {
    matrix::run_backward_matrix(
        &EMU,
        "backward pooling (emulated)",
        &matrix::backward_pooling_cases(),
    );
}

#[test]
fn backward_conv_blur_pool_emulated() {
    matrix::run_backward_matrix(
        &EMU,
        "backward conv_blur_pool (emulated)",
        &matrix::conv_blur_pool_cases(),
    );
}

#[test]
fn blur_conv_backward_is_refused_clearly() {
    let op = matrix::blur_conv_cases()[0].0.clone();
    let e = op
        .backward_plan(Shape4::new(1, 3, 8, 8))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not implemented on the GPU"), "{e}");
}

/// Buffers that are only 2-byte aligned (a view starting at an odd f16 element): the NHWC
/// half-type strip kernels must fall back from 4-byte channel pairs (the emulator faults on a
/// misaligned vector access, as a GPU would) and give the same bits as on aligned buffers.
#[test]
fn strip_kernels_accept_buffers_at_odd_elements() {
    use half::f16;
    let blur = blurpool::presets::timm::blur(3, 2, blurpool::PadMode::Reflect).unwrap();
    let op = Operator::MaxBlurPool(blurpool::MaxBlurPool2d::new(
        blurpool::MaxPool2d::new((3, 3), (1, 1)).unwrap(),
        blur,
    ));
    let shape = Shape4::new(2, 4, 19, 23);
    let plan = op
        .plan_for(shape, Target::new(blurpool::DType::F16, KernelChoice::Auto))
        .unwrap();
    assert!(matches!(plan.kind, KernelKind::Strip(_)), "{:?}", plan.kind);
    let n_in = shape.numel().unwrap();
    let n_out = plan.output.numel().unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(matrix::seed());
    let x: Vec<f16> = blurpool::verify::random_vec(&mut rng, n_in, 1.0);
    let run = |offset: usize| -> Result<Vec<f16>, String> {
        let mut xs = vec![f16::ZERO; n_in + 2];
        xs[offset..offset + n_in].copy_from_slice(&x);
        let mut ys = vec![f16::from_f64(POISON); n_out + 2];
        // SAFETY: xs and ys hold the input and the output from `offset` on; MaxBlurPool reads
        // no weights or bias.
        unsafe {
            launch_forward(
                &plan,
                Layout::Nhwc,
                EMU.max_blocks,
                &xs[offset..],
                &[],
                &[],
                &mut ys[offset..],
            )
        }?;
        Ok(ys[offset..offset + n_out].to_vec())
    };
    // Vec<f16> is only 2-byte aligned: of offsets 0 and 1, one is 4-byte aligned, one not.
    let (a, b) = (
        run(0).expect("offset 0"),
        run(1).expect("no misaligned 4-byte access at offset 1"),
    );
    let bits = |v: &[f16]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    let aligned = a;
    let mut want = vec![f16::ZERO; n_out];
    blurpool::reference::run(&op, shape, Layout::Nhwc, &x, &[], None, &mut want).unwrap();
    let close = aligned
        .iter()
        .zip(&want)
        .all(|(g, w)| (g.to_f64() - w.to_f64()).abs() <= 2e-3 * w.to_f64().abs() + 1e-3);
    assert!(close, "matches the reference");
}

/// The tensor-core kernel loads 8 NHWC channels (16 bytes) at once only when C % 8 == 0 and
/// the input is 16-byte aligned; an input starting at an odd f16 element must take the
/// element-wise path (the emulator faults on a misaligned 16-byte access, as a GPU would) and
/// give the same bits.
#[test]
fn tensor_core_kernel_accepts_buffers_at_odd_elements() {
    use half::f16;
    let blur = blurpool::presets::timm::blur(3, 2, blurpool::PadMode::Reflect).unwrap();
    let conv =
        blurpool::Conv2dSpec::new(16, 8, (3, 3), (1, 1), 1, true, blurpool::Activation::Relu)
            .unwrap();
    let op = Operator::ConvBlurPool(blurpool::ConvBlurPool2d::new(conv, blur));
    let shape = Shape4::new(1, 16, 11, 13);
    let plan = op
        .plan_for(shape, Target::new(blurpool::DType::F16, KernelChoice::Auto))
        .unwrap();
    assert!(
        matches!(plan.kind, KernelKind::ConvTensorCore { .. }),
        "{:?}",
        plan.kind
    );
    let n_in = shape.numel().unwrap();
    let n_out = plan.output.numel().unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(matrix::seed());
    let x: Vec<f16> = blurpool::verify::random_vec(&mut rng, n_in, 1.0);
    let w: Vec<f16> = blurpool::verify::random_vec(&mut rng, conv.weight_len(), 0.1);
    let b: Vec<f16> = blurpool::verify::random_vec(&mut rng, conv.bias_len(), 0.5);
    let mut xs = vec![f16::ZERO; n_in + 16];
    // The first element of xs that is 16-byte aligned, and the one after it.
    let aligned = (0..8)
        .find(|&k| (xs[k..].as_ptr() as usize) % 16 == 0)
        .expect("an f16 vector has a 16-byte aligned element among its first 8");
    let mut run = |offset: usize| -> Result<Vec<u16>, String> {
        xs.fill(f16::ZERO);
        xs[offset..offset + n_in].copy_from_slice(&x);
        let mut ys = vec![f16::from_f64(POISON); n_out];
        // SAFETY: xs holds the input from `offset` on, w and b the weights and bias, ys the
        // output.
        unsafe {
            launch_forward(
                &plan,
                Layout::Nhwc,
                EMU.max_blocks,
                &xs[offset..],
                &w,
                &b,
                &mut ys,
            )
        }?;
        Ok(ys.iter().map(|v| v.to_bits()).collect())
    };
    let (vec8, scalar) = (
        run(aligned).expect("aligned"),
        run(aligned + 1).expect("no misaligned 16-byte access at an odd element"),
    );
    assert_eq!(vec8, scalar);
    let mut want = vec![f16::ZERO; n_out];
    blurpool::reference::run(&op, shape, Layout::Nhwc, &x, &w, Some(&b), &mut want).unwrap();
    let close = vec8.iter().zip(&want).all(|(&g, w)| {
        (f16::from_bits(g).to_f64() - w.to_f64()).abs() <= 2e-3 * w.to_f64().abs() + 2e-3
    });
    assert!(close, "matches the reference");
}
