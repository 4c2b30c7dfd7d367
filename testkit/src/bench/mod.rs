//! The GPU side of the benchmarks, shared by `blurpool bench` and the criterion benches
//! (benches/fused.rs), so both time exactly the same launches of the same workloads
//! ([`crate::workloads`]).
//!
//! A [`Workload`] is [`prepare`]d once: inputs and outputs are allocated in rotating copies
//! (sample `i` uses copy `i mod k`, so no sample reads what the previous one left in a cache),
//! and each way of computing the result becomes a [`Path`]:
//! * `fused`: what the operator's `forward` (or `backward`) launches: a strip kernel or the
//!   tensor-core conv where one matches;
//! * `fused packed` (dense tensor-core v4 conv only): the same kernel reading weights packed
//!   once beforehand (`pack_weights` + `forward_packed`), without the packing launch;
//! * `fused v3`, `fused v2`, `fused v1`: the older kernels on the same data, where they differ
//!   (v3: the tensor-core conv before v4; v2: the strips before v4; v1: the general kernel);
//! * `separate`: the unfused max + blur built from the crate's fastest kernels for each half
//!   (the dense max kernel, the only one the crate has for MaxPool2d, and the blur that
//!   `BlurPool2d::forward` picks: a strip kernel for the suite's blur), with the max map in
//!   memory between them, as the libraries do it;
//! * `cudnn` (with the `cudnn` feature and libcudnn present): max pooling + depthwise conv with
//!   the blur's taps, or cuDNN's convolution followed by the crate's blur; cuDNN's convolution
//!   algorithm is the fastest of all it supports, picked by timing them ([`cudnn`]).
//!
//! Every path is timed cold ([`measure::ColdTimer`]: the L2 flushed before each sample, one
//! launch per sample, medians with their spread). Bytes (docs/SPEC.md §6): the minimum traffic of
//! the fused operator (input once + output once + weights; backward: what it must read and
//! write), the same for every path of a workload, so GB/s compares as speed. The rooflines
//! ([`roofline`]) are measured with the same method: the 1:1 device copy, and a read-mostly
//! stream that reads as many bytes per byte written as the workload does.

pub mod cudnn;
pub mod measure;
pub mod roofline;

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use rand::rngs::StdRng;
use rand::SeedableRng;

use blurpool::cuda::{
    ConvGrads, ForwardPtrs, KernelChoice, KernelVersion, Kernels, Launch, MaxGrads, Target,
};
use blurpool::{BlurPool2d, DType, Layout, MaxBlurPool2d, Operator, Shape4};

use crate::data::{random_vec, TestElement};
use crate::gpu::Gpu;
use crate::workloads::{BenchOp, Workload};

pub use measure::{ColdTimer, MeasureConfig, Stats};

/// One way of computing a workload's result; `run(i)` queues sample `i` on the stream.
pub struct Path {
    pub name: String,
    /// The kernels it launches, in order (symbols, or the cuDNN calls).
    pub kernels: Vec<String>,
    pub run: Box<dyn FnMut(usize) -> Result<(), String>>,
}

/// A prepared workload: its paths and the bytes model.
pub struct Prepared {
    pub workload: Workload,
    /// Minimum bytes of the fused operator: `read_bytes + write_bytes`.
    pub min_bytes: u64,
    /// Bytes it must read (inputs once, weights once).
    pub read_bytes: u64,
    /// Bytes it must write (outputs once).
    pub write_bytes: u64,
    /// Bytes of one input tensor.
    pub input_bytes: u64,
    /// Useful FLOPs of the dense convolution (2 per multiply-add of the stride-1 conv map), for
    /// TFLOP/s; None for the other operators.
    pub conv_flops: Option<f64>,
    pub paths: Vec<Path>,
    /// Why a path is missing (e.g. cuDNN not found), to print beside the table.
    pub notes: Vec<String>,
}

/// The unfused path, "separate max + blur": the dense max kernel writes the max map into
/// `max_map` (of `op.max_map_shape(input)`), then the blur kernel reads it. This is what the
/// libraries do and what the benchmarks compare the fused kernel against.
pub fn forward_separate<T: TestElement>(
    op: &MaxBlurPool2d,
    launch: &Launch<'_>,
    input: Shape4,
    x: &dyn DevicePtr<T>,
    max_map: &mut CudaSlice<T>,
    y: &mut CudaSlice<T>,
) -> blurpool::Result<Shape4> {
    // Validate the whole operator (incl. reflect vs the max map) before launching anything.
    op.output_shape(input)?;
    let m = op.max_pool().forward(launch, input, x, max_map)?;
    BlurPool2d::new(op.blur().clone()).forward(launch, m, &*max_map, y)
}

/// Copies to rotate over: enough that together they exceed twice the L2 (at least 2, at most
/// 8). With the L2 flushed before each sample this is belt and braces: it also keeps the
/// page-table and write-combining state of consecutive samples apart.
fn copies_for(g: &Gpu, bytes: usize) -> Result<usize, String> {
    let l2 = measure::l2_bytes(g)?;
    Ok((2 * l2).div_ceil(bytes.max(1)).clamp(2, 8))
}

/// Dense tensor-core and FP32 peaks (FLOP/s) of the devices the project is lent, from NVIDIA's
/// datasheets (H100 SXM5 / H200 SXM: 989.4 TFLOP/s dense FP16/BF16 tensor, 66.9 TFLOP/s FP32;
/// H100 PCIe: 756.5 and 51.2). None for other devices.
pub fn peak_flops(device: &str, dtype: DType) -> Option<f64> {
    let d = device.to_ascii_uppercase();
    let (tensor, fp32) = if d.contains("H100") && d.contains("PCIE") {
        (756.5e12, 51.2e12)
    } else if d.contains("H100") || d.contains("H200") {
        (989.4e12, 66.9e12)
    } else {
        return None;
    };
    Some(match dtype {
        DType::F32 => fp32,
        DType::F16 | DType::BF16 => tensor,
    })
}

/// Uploads, allocates and builds every path of `w`.
pub fn prepare(g: &Gpu, w: &Workload) -> Result<Prepared, String> {
    match w.dtype {
        DType::F32 => prepare_typed::<f32>(g, w),
        DType::F16 => prepare_typed::<half::f16>(g, w),
        DType::BF16 => prepare_typed::<half::bf16>(g, w),
    }
}

/// The element types cuDNN can time (with the `cudnn` feature), or any element type without it.
#[cfg(feature = "cudnn")]
pub trait BenchElement: TestElement + cudarc::cudnn::CudnnDataType {}
#[cfg(feature = "cudnn")]
impl<T: TestElement + cudarc::cudnn::CudnnDataType> BenchElement for T {}
/// The element types cuDNN can time (with the `cudnn` feature), or any element type without it.
#[cfg(not(feature = "cudnn"))]
pub trait BenchElement: TestElement {}
#[cfg(not(feature = "cudnn"))]
impl<T: TestElement> BenchElement for T {}

fn e(e: blurpool::Error) -> String {
    e.to_string()
}
fn d(e: cudarc::driver::DriverError) -> String {
    e.to_string()
}

/// `k` copies of `v` on the device.
fn upload_copies<T: TestElement>(
    stream: &Arc<CudaStream>,
    v: &[T],
    k: usize,
) -> Result<Arc<Vec<CudaSlice<T>>>, String> {
    Ok(Arc::new(
        (0..k)
            .map(|_| stream.clone_htod(v))
            .collect::<Result<_, _>>()
            .map_err(d)?,
    ))
}

/// `k` zeroed buffers of `n` elements (at least one each).
fn alloc_copies<T: TestElement>(
    stream: &Arc<CudaStream>,
    n: usize,
    k: usize,
) -> Result<Vec<CudaSlice<T>>, String> {
    (0..k)
        .map(|_| stream.alloc_zeros::<T>(n.max(1)).map_err(d))
        .collect()
}

/// The fused paths of a forward `op` on the rotating inputs `xs`: `fused` (what `forward`
/// launches) and, where that is a specialised kernel (strip v2/v4, tensor-core v3/v4), `fused v3`,
/// `fused v2` and `fused v1`: the older kernels on the same data. `weight` only for the conv operators (no bias).
#[allow(clippy::too_many_arguments)]
fn fused_paths<T: TestElement>(
    op: &Operator,
    kernels: &Arc<Kernels>,
    stream: &Arc<CudaStream>,
    shape: Shape4,
    layout: Layout,
    xs: &Arc<Vec<CudaSlice<T>>>,
    weight: Option<Arc<CudaSlice<T>>>,
    copies: usize,
) -> Result<Vec<Path>, String> {
    let general = kernels.with_choice(KernelChoice::GENERAL);
    let symbol = |k: &Kernels| {
        op.plan(shape, k.target(T::DTYPE, layout))
            .map(|p| p.symbol())
            .map_err(e)
    };
    let strip = kernels.with_choice(KernelChoice::AtMost(KernelVersion::V2));
    let tc3 = kernels.with_choice(KernelChoice::AtMost(KernelVersion::V3));
    let mut versions = vec![("fused", kernels.clone())];
    // v1, v2, v3 and the newest side by side on the same data, where they are different kernels.
    let (newest, v2, v1) = (symbol(kernels)?, symbol(&strip)?, symbol(&general)?);
    let v3 = symbol(&tc3)?;
    if v3 != newest && v3 != v2 && v3 != v1 {
        versions.push(("fused v3", tc3));
    }
    if v2 != newest && v2 != v1 {
        versions.push(("fused v2", strip));
    }
    if newest != v1 {
        versions.push(("fused v1", general));
    }
    let n_out = op.output_shape(shape).and_then(|o| o.numel()).map_err(e)?;
    let mut paths = versions
        .into_iter()
        .map(|(name, k)| {
            // The weight packing (tensor-core v4) is part of the path and of its time.
            let plan = op.plan(shape, k.target(T::DTYPE, layout)).map_err(e)?;
            let kernels_used = plan
                .weight_pack()
                .map(|p| p.symbol())
                .into_iter()
                .chain([plan.symbol()])
                .collect();
            let (op, s, xs, wt) = (op.clone(), stream.clone(), xs.clone(), weight.clone());
            let mut ys = alloc_copies::<T>(stream, n_out, copies)?;
            Ok(Path {
                name: name.into(),
                kernels: kernels_used,
                run: Box::new(move |i| {
                    let launch = Launch::new(&k, &s, layout).map_err(e)?;
                    let x = &xs[i % xs.len()];
                    let n = ys.len();
                    let y = &mut ys[i % n];
                    match (&op, wt.as_deref()) {
                        (Operator::ConvBlurPool(o), Some(w)) => {
                            o.forward(&launch, shape, x, w, None, y)
                        }
                        (Operator::MaxBlurPool(o), None) => o.forward(&launch, shape, x, y),
                        (Operator::BlurPool(o), None) => o.forward(&launch, shape, x, y),
                        _ => return Err(format!("no fused path for {}", op.name())),
                    }
                    .map(|_| ())
                    .map_err(e)
                }),
            })
        })
        .collect::<Result<Vec<Path>, String>>()?;
    // The tensor-core v4 kernel with its weights packed once beforehand (an inference loop's
    // `pack_weights` + `forward_packed`): `fused` less the packing launch and its allocation.
    if let (Operator::ConvBlurPool(o), Some(w)) = (op, weight.as_deref()) {
        let plan = o.plan(shape, kernels.target(T::DTYPE, layout)).map_err(e)?;
        if let Some(pack) = plan.weight_pack() {
            let mut packed = stream.alloc_zeros::<T>(pack.len()).map_err(d)?;
            let launch = Launch::new(kernels, stream, layout).map_err(e)?;
            o.pack_weights(&launch, shape, w, &mut packed).map_err(e)?;
            let (o, k, s, xs) = (o.clone(), kernels.clone(), stream.clone(), xs.clone());
            let mut ys = alloc_copies::<T>(stream, n_out, copies)?;
            // `fused` first (the reports' reference path), then this one, then the versions.
            paths.insert(
                1,
                Path {
                    name: "fused packed".into(),
                    kernels: vec![plan.symbol()],
                    run: Box::new(move |i| {
                        let launch = Launch::new(&k, &s, layout).map_err(e)?;
                        let n = ys.len();
                        o.forward_packed(
                            &launch,
                            shape,
                            &xs[i % xs.len()],
                            &packed,
                            None,
                            &mut ys[i % n],
                        )
                        .map(|_| ())
                        .map_err(e)
                    }),
                },
            );
        }
    }
    Ok(paths)
}

/// The backward path of `op`: what its `backward` launches.
fn backward_path<T: TestElement>(
    g: &Gpu,
    op: &Operator,
    w: &Workload,
    xs: &Arc<Vec<CudaSlice<T>>>,
    weight: Option<Arc<CudaSlice<T>>>,
    rng: &mut StdRng,
    copies: usize,
) -> Result<Path, String> {
    let (shape, layout) = (w.shape, w.layout);
    let stream = g.stream.clone();
    let kernels = g.kernels.clone();
    let plan = op
        .backward_plan(shape, Target::new(T::DTYPE, layout))
        .map_err(e)?;
    let kernels_used = plan.steps().map(|s| s.symbol()).collect();
    let n_in = shape.numel().map_err(e)?;
    let n_out = plan.output().numel().map_err(e)?;
    let dys = upload_copies(&stream, &random_vec::<T>(rng, n_out, 1.0), copies)?;
    let mut dxs = alloc_copies::<T>(&stream, n_in, copies)?;
    let (op, xs) = (op.clone(), xs.clone());
    let run: Box<dyn FnMut(usize) -> Result<(), String>> = match &op {
        Operator::MaxBlurPool(o) => {
            let o = o.clone();
            Box::new(move |i| {
                let launch = Launch::new(&kernels, &stream, layout).map_err(e)?;
                let n = dxs.len();
                let grads = MaxGrads {
                    x: &xs[i % xs.len()],
                    dy: &dys[i % dys.len()],
                    dx: &mut dxs[i % n],
                };
                o.backward(&launch, shape, grads).map_err(e)
            })
        }
        Operator::BlurPool(o) => {
            let o = o.clone();
            Box::new(move |i| {
                let launch = Launch::new(&kernels, &stream, layout).map_err(e)?;
                let n = dxs.len();
                o.backward(&launch, shape, &dys[i % dys.len()], &mut dxs[i % n])
                    .map_err(e)
            })
        }
        Operator::ConvBlurPool(o) => {
            let o = o.clone();
            let w = weight.ok_or("a conv backward needs its weight")?;
            let mut dws = alloc_copies::<T>(&stream, o.conv().weight_len(), copies)?;
            let mut ws = stream
                .alloc_zeros::<f32>(o.backward_workspace_len(shape).map_err(e)?.max(1))
                .map_err(d)?;
            Box::new(move |i| {
                let launch = Launch::new(&kernels, &stream, layout).map_err(e)?;
                let (n, m) = (dxs.len(), dws.len());
                let grads = ConvGrads {
                    x: &xs[i % xs.len()],
                    weight: &*w,
                    bias: None,
                    dy: &dys[i % dys.len()],
                    dx: &mut dxs[i % n],
                    dweight: &mut dws[i % m],
                    dbias: None,
                    workspace: &mut ws,
                };
                o.backward(&launch, shape, grads).map_err(e)
            })
        }
        other => return Err(format!("no backward path for {}", other.name())),
    };
    Ok(Path {
        name: "fused".into(),
        kernels: kernels_used,
        run,
    })
}

fn prepare_typed<T: BenchElement>(g: &Gpu, w: &Workload) -> Result<Prepared, String> {
    let stream = g.stream.clone();
    let kernels: Arc<Kernels> = g.kernels.clone();
    let (shape, layout) = (w.shape, w.layout);
    let sz = std::mem::size_of::<T>() as u64;
    let n_in = shape.numel().map_err(e)?;
    let copies = copies_for(g, n_in * sz as usize)?;
    let mut rng = StdRng::seed_from_u64(7);
    let xs = upload_copies(&stream, &random_vec::<T>(&mut rng, n_in, 1.0), copies)?;
    let op = w.op.operator(shape).map_err(e)?;
    let n_out = op.output_shape(shape).and_then(|o| o.numel()).map_err(e)? as u64;
    let wlen = op.conv().map_or(0, |c| c.weight_len()) as u64;
    let weight = match op.conv() {
        Some(c) => Some(Arc::new(
            stream
                .clone_htod(&random_vec::<T>(&mut rng, c.weight_len(), 0.3))
                .map_err(d)?,
        )),
        None => None,
    };
    let n_in = n_in as u64;
    let mut paths = Vec::new();
    let mut notes = Vec::new();
    let (read_bytes, write_bytes) = match w.op {
        // dx from x and dy (MaxBlurPool: the argmax needs x).
        BenchOp::MaxBlurPoolBackward => ((n_in + n_out) * sz, n_in * sz),
        BenchOp::BlurPoolBackward => (n_out * sz, n_in * sz),
        // dx and dweight from x, weight and dy.
        BenchOp::ConvBlurPoolDepthwiseBackward => ((n_in + n_out + wlen) * sz, (n_in + wlen) * sz),
        _ => ((n_in + wlen) * sz, n_out * sz),
    };
    let conv_flops = match (&op, w.op) {
        (Operator::ConvBlurPool(o), BenchOp::ConvBlurPoolDense) => {
            let z = o.conv_map_shape(shape).map_err(e)?;
            let c = o.conv();
            let (kh, kw) = c.kernel();
            let macs =
                z.numel().map_err(e)? as f64 * (shape.c / c.groups()) as f64 * (kh * kw) as f64;
            Some(2.0 * macs)
        }
        _ => None,
    };
    if w.op.is_backward() {
        paths.push(backward_path(
            g,
            &op,
            w,
            &xs,
            weight.clone(),
            &mut rng,
            copies,
        )?);
    } else {
        paths.extend(fused_paths(
            &op,
            &kernels,
            &stream,
            shape,
            layout,
            &xs,
            weight.clone(),
            copies,
        )?);
    }
    match (&op, w.op) {
        (Operator::MaxBlurPool(mbp), BenchOp::MaxBlurPool | BenchOp::MaxBlurPoolAntialiased) => {
            let m = mbp.max_map_shape(shape).map_err(e)?;
            let target = kernels.target(T::DTYPE, layout);
            let blur = BlurPool2d::new(mbp.blur().clone());
            let kernels_used = vec![
                mbp.max_pool().plan(shape, target).map_err(e)?.symbol(),
                blur.plan(m, target).map_err(e)?.symbol(),
            ];
            let (o, k, s, xr) = (mbp.clone(), kernels.clone(), stream.clone(), xs.clone());
            let mut ys = alloc_copies::<T>(&stream, n_out as usize, copies)?;
            let mut mm = stream.alloc_zeros::<T>(m.numel().map_err(e)?).map_err(d)?;
            paths.push(Path {
                name: "separate".into(),
                kernels: kernels_used,
                run: Box::new(move |i| {
                    let launch = Launch::new(&k, &s, layout).map_err(e)?;
                    let n = ys.len();
                    forward_separate(
                        &o,
                        &launch,
                        shape,
                        &xr[i % xr.len()],
                        &mut mm,
                        &mut ys[i % n],
                    )
                    .map(|_| ())
                    .map_err(e)
                }),
            });
            cudnn_path(&mut paths, &mut notes, || {
                cudnn::max_blur::<T>(g, mbp, shape, layout, xs.clone(), copies)
            });
        }
        (Operator::BlurPool(bp), BenchOp::BlurPool) => {
            cudnn_path(&mut paths, &mut notes, || {
                cudnn::blur::<T>(g, bp.blur(), shape, layout, xs.clone(), copies)
            });
        }
        (
            Operator::ConvBlurPool(cbp),
            BenchOp::ConvBlurPoolDepthwise | BenchOp::ConvBlurPoolDense,
        ) => {
            let wt = weight.clone().ok_or("a conv workload has a weight")?;
            cudnn_path(&mut paths, &mut notes, || {
                cudnn::conv_then_blur::<T>(g, cbp, shape, layout, xs.clone(), wt, copies)
            });
        }
        _ => {}
    }
    Ok(Prepared {
        workload: *w,
        min_bytes: read_bytes + write_bytes,
        read_bytes,
        write_bytes,
        input_bytes: n_in * sz,
        conv_flops,
        paths,
        notes,
    })
}

/// Adds the cuDNN path, or a note saying why there is none.
fn cudnn_path(
    paths: &mut Vec<Path>,
    notes: &mut Vec<String>,
    make: impl FnOnce() -> Result<Path, String>,
) {
    match make() {
        Ok(p) => paths.push(p),
        Err(why) => notes.push(format!("no cuDNN baseline: {why}")),
    }
}

/// Host time per launch of the fused MaxBlurPool, in µs: through `forward` (cudarc buffers:
/// length checks, the launch plan, cudarc's stream-ordering events on each buffer, the launch)
/// and through `forward_raw` (device pointers: validation, plan, launch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostOverhead {
    pub forward_us: f64,
    pub forward_raw_us: f64,
}

/// Measures [`HostOverhead`] on a tiny workload (1×8×16×16 f16 NHWC, far less GPU work per
/// launch than host work, so the launch queue never fills): the median of 21 batches of 100
/// launches, wall-clock on the host, the stream drained between batches.
pub fn host_overhead(g: &Gpu) -> Result<HostOverhead, String> {
    use half::f16;
    let op = crate::workloads::max_blur_pool_op().map_err(e)?;
    let shape = Shape4::new(1, 8, 16, 16);
    let out = op.output_shape(shape).map_err(e)?;
    let stream = g.stream.clone();
    let x = stream
        .clone_htod(&random_vec::<f16>(
            &mut StdRng::seed_from_u64(3),
            shape.numel().map_err(e)?,
            1.0,
        ))
        .map_err(d)?;
    let mut y = stream
        .alloc_zeros::<f16>(out.numel().map_err(e)?)
        .map_err(d)?;
    let median_us = |launch: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
        const BATCH: usize = 100;
        let mut per_launch = Vec::new();
        for _ in 0..21 {
            stream.synchronize().map_err(d)?;
            let t0 = std::time::Instant::now();
            for _ in 0..BATCH {
                launch()?;
            }
            per_launch.push(t0.elapsed().as_secs_f64() * 1e6 / BATCH as f64);
        }
        stream.synchronize().map_err(d)?;
        Ok(Stats::from_samples(&per_launch)
            .ok_or("no host timings")?
            .median)
    };
    let launch = Launch::new(&g.kernels, &stream, Layout::Nhwc).map_err(e)?;
    let forward_us = median_us(&mut || {
        op.forward(&launch, shape, &x, &mut y)
            .map(|_| ())
            .map_err(e)
    })?;
    let forward_raw_us = {
        use cudarc::driver::DevicePtrMut;
        let (xp, _gx) = x.device_ptr(&stream);
        let (yp, _gy) = y.device_ptr_mut(&stream);
        median_us(&mut || {
            // SAFETY: xp and yp address live buffers of this context holding the input and
            // output of `shape` in f16; their guards outlive every launch (the stream is
            // drained before they drop).
            let ptrs = ForwardPtrs {
                x: xp,
                y: yp,
                ..ForwardPtrs::default()
            };
            unsafe { op.forward_raw(&launch, DType::F16, shape, ptrs) }
                .map(|_| ())
                .map_err(e)
        })?
    };
    Ok(HostOverhead {
        forward_us,
        forward_raw_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_known_for_the_lent_devices_only() {
        assert_eq!(
            peak_flops("NVIDIA H100 80GB HBM3", DType::F16),
            Some(989.4e12)
        );
        assert_eq!(peak_flops("NVIDIA H200", DType::BF16), Some(989.4e12));
        assert_eq!(peak_flops("NVIDIA H100 PCIe", DType::F32), Some(51.2e12));
        assert_eq!(peak_flops("NVIDIA A100-SXM4-80GB", DType::F16), None);
    }
}
