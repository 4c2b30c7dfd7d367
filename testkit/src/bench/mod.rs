//! Benchmark workloads shared by the `blurpool bench` command and the criterion benches
//! (benches/fused.rs), so both time exactly the same launches.
//!
//! A [`Workload`] (operator × shape × dtype × layout) is [`prepare`]d once: inputs are uploaded
//! in enough copies to exceed twice the L2 cache (launch `i` reads copy `i mod k`, so the cache
//! is not what is measured), outputs and scratch are allocated, and each way of computing the
//! result becomes a [`Path`]: the fused kernel (`fused`: what `forward` launches, a strip
//! kernel or the tensor-core conv where one matches; `fused v1`: the general kernel, timed
//! where it differs), the crate's separate kernels, and, with the
//! `cudnn` feature and libcudnn present, cuDNN (max pooling + depthwise convolution with the
//! blur's taps, or cuDNN's convolution followed by the crate's blur kernel). Paths are timed with
//! CUDA events on the launches' own stream ([`time_path`]).
//!
//! Bytes (docs/SPEC.md, §6): the minimum traffic of the fused operator, input read once + output written
//! once + weights (backward: x and dy read, dx written). GB/s of every path of a workload use
//! the same bytes, so they compare as speed.

use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use rand::rngs::StdRng;
use rand::SeedableRng;

use blurpool::cuda::{ForwardPtrs, KernelChoice, Kernels, Launch, MaxGrads};
use blurpool::presets::timm;
use blurpool::{
    Activation, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType, Layout, MaxBlurPool2d,
    MaxPool2d, Operator, PadMode, Shape4,
};

use crate::data::{random_vec, TestElement};
use crate::gpu::Gpu;

/// The operators the benchmarks time. Geometry is timm's anti-aliased ResNet stem (max 3×3,
/// stride 1, pad 1 → binomial 3, stride 2, reflect), whose symmetric padding cuDNN can express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BenchOp {
    /// Fused MaxBlurPool vs separate max + blur vs cuDNN max pooling + depthwise conv.
    MaxBlurPool,
    /// BlurPool (blur 3, stride 2) vs cuDNN depthwise conv.
    BlurPool,
    /// ConvBlurPool with a depthwise 3×3 conv vs cuDNN depthwise conv + the crate's blur.
    ConvBlurPoolDepthwise,
    /// ConvBlurPool with a dense 3×3 conv (Cout = Cin) vs cuDNN conv + the crate's blur.
    ConvBlurPoolDense,
    /// Fused MaxBlurPool backward (dx from x and dy).
    MaxBlurPoolBackward,
}

impl BenchOp {
    pub const ALL: [BenchOp; 5] = [
        BenchOp::MaxBlurPool,
        BenchOp::BlurPool,
        BenchOp::ConvBlurPoolDepthwise,
        BenchOp::ConvBlurPoolDense,
        BenchOp::MaxBlurPoolBackward,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchOp::MaxBlurPool => "max_blur_pool",
            BenchOp::BlurPool => "blur_pool",
            BenchOp::ConvBlurPoolDepthwise => "conv_blur_pool_dw",
            BenchOp::ConvBlurPoolDense => "conv_blur_pool_dense",
            BenchOp::MaxBlurPoolBackward => "max_blur_pool_bwd",
        }
    }

    pub fn from_name(s: &str) -> Option<BenchOp> {
        BenchOp::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// One benchmark configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub op: BenchOp,
    pub shape: Shape4,
    pub dtype: DType,
    pub layout: Layout,
}

/// One way of computing a workload's result; `run(i)` queues launch `i` on the stream.
pub struct Path {
    pub name: String,
    pub run: Box<dyn FnMut(usize) -> Result<(), String>>,
}

/// A prepared workload: its paths and the bytes model.
pub struct Prepared {
    pub workload: Workload,
    /// Minimum bytes of the fused operator (see the module docs).
    pub min_bytes: u64,
    /// Bytes of one input tensor (the copy roofline copies this much).
    pub input_bytes: u64,
    pub paths: Vec<Path>,
    /// Why a path is missing (e.g. cuDNN not found), to print beside the table.
    pub notes: Vec<String>,
}

fn blur3() -> blurpool::Result<blurpool::Blur> {
    timm::blur(3, 2, PadMode::Reflect)
}

/// The MaxBlurPool of the benchmarks (timm's aa stem geometry).
pub fn max_blur_pool_op() -> blurpool::Result<MaxBlurPool2d> {
    Ok(MaxBlurPool2d::new(
        MaxPool2d::new((3, 3), (1, 1))?,
        blur3()?,
    ))
}

fn conv_blur_pool_op(c: usize, depthwise: bool) -> blurpool::Result<ConvBlurPool2d> {
    let groups = if depthwise { c } else { 1 };
    let conv = Conv2dSpec::new(Conv2dArgs {
        in_channels: c,
        out_channels: c,
        kernel: (3, 3),
        padding: (1, 1),
        groups,
        bias: false,
        activation: Activation::Identity,
    })?;
    Ok(ConvBlurPool2d::new(conv, blur3()?))
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

/// Input copies so that together they exceed twice the L2 cache (at most 8).
fn copies_for(g: &Gpu, bytes: usize) -> Result<usize, String> {
    let l2 = g
        .ctx
        .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
        .map_err(|e| e.to_string())? as usize;
    Ok((2 * l2).div_ceil(bytes.max(1)).clamp(2, 8))
}

/// GPU time per launch of `path`: CUDA events around `iters` back-to-back launches on `stream`
/// after `warmup` untimed ones.
pub fn time_path(
    stream: &Arc<CudaStream>,
    path: &mut Path,
    warmup: usize,
    iters: usize,
) -> Result<Duration, String> {
    let ctx = stream.context();
    let err = |e: cudarc::driver::DriverError| e.to_string();
    let start = ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(err)?;
    let end = ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(err)?;
    for i in 0..warmup {
        (path.run)(i)?;
    }
    start.record(stream).map_err(err)?;
    for i in 0..iters {
        (path.run)(i)?;
    }
    end.record(stream).map_err(err)?;
    let ms = start.elapsed_ms(&end).map_err(err)?;
    Ok(Duration::from_secs_f64(
        ms as f64 * 1e-3 / iters.max(1) as f64,
    ))
}

/// The device-to-device copy of `bytes` (read + written: 2·bytes moved), rotating over buffers
/// that exceed the L2 cache: the roofline every GB/s figure is compared with.
pub fn copy_path(g: &Gpu, bytes: usize) -> Result<(Path, u64), String> {
    let d = |e: cudarc::driver::DriverError| e.to_string();
    let copies = copies_for(g, bytes)?;
    let stream = g.stream.clone();
    let srcs: Vec<CudaSlice<u8>> = (0..copies)
        .map(|_| stream.alloc_zeros::<u8>(bytes))
        .collect::<Result<_, _>>()
        .map_err(d)?;
    let mut dst = stream.alloc_zeros::<u8>(bytes).map_err(d)?;
    let run = Box::new(move |i: usize| {
        stream
            .memcpy_dtod(&srcs[i % srcs.len()], &mut dst)
            .map_err(|e| e.to_string())
    });
    Ok((
        Path {
            name: "copy".into(),
            run,
        },
        2 * bytes as u64,
    ))
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
    let e = |e: blurpool::Error| e.to_string();
    let d = |e: cudarc::driver::DriverError| e.to_string();
    let op = max_blur_pool_op().map_err(e)?;
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
        per_launch.sort_by(f64::total_cmp);
        Ok(per_launch[per_launch.len() / 2])
    };
    let launch = Launch::new(&g.kernels, &stream, Layout::Nhwc).map_err(e)?;
    let forward_us = median_us(&mut || {
        op.forward(&launch, shape, &x, &mut y)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    let forward_raw_us = {
        use cudarc::driver::{DevicePtr, DevicePtrMut};
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
                .map_err(|e| e.to_string())
        })?
    };
    Ok(HostOverhead {
        forward_us,
        forward_raw_us,
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

/// The fused paths of `op` on the rotating inputs `xs`: `fused` (what `forward` launches) and,
/// where that is a specialised kernel (strip v2, tensor-core v3), `fused v1`: the general kernel
/// on the same data. `weight` only for the conv operators (no bias).
#[allow(clippy::too_many_arguments)]
fn fused_paths<T: TestElement>(
    op: &Operator,
    kernels: &Arc<Kernels>,
    stream: &Arc<CudaStream>,
    shape: Shape4,
    layout: Layout,
    xs: &Arc<Vec<CudaSlice<T>>>,
    weight: Option<Arc<CudaSlice<T>>>,
) -> Result<Vec<Path>, String> {
    let general = kernels.with_choice(KernelChoice::GENERAL);
    let kind = |k: &Kernels| {
        op.plan(shape, k.target(T::DTYPE, layout))
            .map(|p| p.symbol())
            .map_err(|e| e.to_string())
    };
    let mut versions = vec![("fused", kernels.clone())];
    if kind(kernels)? != kind(&general)? {
        versions.push(("fused v1", general));
    }
    let n_out = op
        .output_shape(shape)
        .and_then(|o| o.numel())
        .map_err(|e| e.to_string())?;
    versions
        .into_iter()
        .map(|(name, k)| {
            let (op, s, xs, wt) = (op.clone(), stream.clone(), xs.clone(), weight.clone());
            let mut y = stream
                .alloc_zeros::<T>(n_out.max(1))
                .map_err(|e| e.to_string())?;
            Ok(Path {
                name: name.into(),
                run: Box::new(move |i| {
                    let launch = Launch::new(&k, &s, layout).map_err(|e| e.to_string())?;
                    let x = &xs[i % xs.len()];
                    match (&op, wt.as_deref()) {
                        (Operator::ConvBlurPool(o), Some(w)) => {
                            o.forward(&launch, shape, x, w, None, &mut y)
                        }
                        (Operator::MaxBlurPool(o), None) => o.forward(&launch, shape, x, &mut y),
                        (Operator::BlurPool(o), None) => o.forward(&launch, shape, x, &mut y),
                        _ => return Err(format!("no fused path for {}", op.name())),
                    }
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                }),
            })
        })
        .collect()
}

fn prepare_typed<T: BenchElement>(g: &Gpu, w: &Workload) -> Result<Prepared, String> {
    let e = |e: blurpool::Error| e.to_string();
    let d = |e: cudarc::driver::DriverError| e.to_string();
    let stream = g.stream.clone();
    let kernels: Arc<Kernels> = g.kernels.clone();
    let (shape, layout) = (w.shape, w.layout);
    let sz = std::mem::size_of::<T>();
    let n_in = shape.numel().map_err(e)?;
    let copies = copies_for(g, n_in * sz)?;
    let mut rng = StdRng::seed_from_u64(7);
    let host: Vec<T> = random_vec(&mut rng, n_in, 1.0);
    let xs: Arc<Vec<CudaSlice<T>>> = Arc::new(
        (0..copies)
            .map(|_| stream.clone_htod(&host))
            .collect::<Result<_, _>>()
            .map_err(d)?,
    );
    let mut paths = Vec::new();
    let mut notes = Vec::new();
    let alloc = |n: usize| stream.alloc_zeros::<T>(n.max(1)).map_err(d);
    let min_bytes;
    match w.op {
        BenchOp::MaxBlurPool => {
            let op = max_blur_pool_op().map_err(e)?;
            let out = op.output_shape(shape).map_err(e)?;
            let m = op.max_map_shape(shape).map_err(e)?;
            min_bytes = ((n_in + out.numel().map_err(e)?) * sz) as u64;
            let fused = Operator::MaxBlurPool(op.clone());
            paths.extend(fused_paths(
                &fused, &kernels, &stream, shape, layout, &xs, None,
            )?);
            {
                let (op, k, s, xs) = (op.clone(), kernels.clone(), stream.clone(), xs.clone());
                let mut y = alloc(out.numel().map_err(e)?)?;
                let mut mm = alloc(m.numel().map_err(e)?)?;
                paths.push(Path {
                    name: "separate".into(),
                    run: Box::new(move |i| {
                        let launch = Launch::new(&k, &s, layout).map_err(|e| e.to_string())?;
                        forward_separate(&op, &launch, shape, &xs[i % xs.len()], &mut mm, &mut y)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }),
                });
            }
            cudnn_path(&mut paths, &mut notes, || {
                cudnn::max_blur::<T>(&stream, &op, shape, layout, xs.clone())
            });
        }
        BenchOp::BlurPool => {
            let op = BlurPool2d::new(blur3().map_err(e)?);
            let out = op.output_shape(shape).map_err(e)?;
            min_bytes = ((n_in + out.numel().map_err(e)?) * sz) as u64;
            let fused = Operator::BlurPool(op.clone());
            paths.extend(fused_paths(
                &fused, &kernels, &stream, shape, layout, &xs, None,
            )?);
            cudnn_path(&mut paths, &mut notes, || {
                cudnn::blur::<T>(&stream, op.blur(), shape, layout, xs.clone())
            });
        }
        BenchOp::ConvBlurPoolDepthwise | BenchOp::ConvBlurPoolDense => {
            let op =
                conv_blur_pool_op(shape.c, w.op == BenchOp::ConvBlurPoolDepthwise).map_err(e)?;
            let out = op.output_shape(shape).map_err(e)?;
            let wlen = op.conv().weight_len();
            min_bytes = ((n_in + out.numel().map_err(e)? + wlen) * sz) as u64;
            let weight = Arc::new(
                stream
                    .clone_htod(&random_vec::<T>(&mut rng, wlen, 0.3))
                    .map_err(d)?,
            );
            let fused = Operator::ConvBlurPool(op.clone());
            let wt = Some(weight.clone());
            paths.extend(fused_paths(
                &fused, &kernels, &stream, shape, layout, &xs, wt,
            )?);
            cudnn_path(&mut paths, &mut notes, || {
                cudnn::conv_then_blur::<T>(
                    &stream,
                    &kernels,
                    &op,
                    shape,
                    layout,
                    xs.clone(),
                    weight.clone(),
                )
            });
        }
        BenchOp::MaxBlurPoolBackward => {
            let op = max_blur_pool_op().map_err(e)?;
            let out = op.output_shape(shape).map_err(e)?;
            let n_out = out.numel().map_err(e)?;
            min_bytes = ((2 * n_in + n_out) * sz) as u64;
            let dy = stream
                .clone_htod(&random_vec::<T>(&mut rng, n_out, 1.0))
                .map_err(d)?;
            let (k, s, xs) = (kernels.clone(), stream.clone(), xs.clone());
            let mut dx = alloc(n_in)?;
            paths.push(Path {
                name: "fused".into(),
                run: Box::new(move |i| {
                    let launch = Launch::new(&k, &s, layout).map_err(|e| e.to_string())?;
                    let grads = MaxGrads {
                        x: &xs[i % xs.len()],
                        dy: &dy,
                        dx: &mut dx,
                    };
                    op.backward(&launch, shape, grads)
                        .map_err(|e| e.to_string())
                }),
            });
        }
    }
    Ok(Prepared {
        workload: *w,
        min_bytes,
        input_bytes: (n_in * sz) as u64,
        paths,
        notes,
    })
}

/// Adds the cuDNN path, or a note saying why there is none.
#[allow(unused_variables)]
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

#[cfg(not(feature = "cudnn"))]
mod cudnn {
    //! Stand-ins when the crate is built without the `cudnn` feature.
    use super::*;

    const WHY: &str = "built without the `cudnn` feature (cargo build --features cudnn)";

    pub fn max_blur<T: TestElement>(
        _: &Arc<CudaStream>,
        _: &MaxBlurPool2d,
        _: Shape4,
        _: Layout,
        _: Arc<Vec<CudaSlice<T>>>,
    ) -> Result<Path, String> {
        Err(WHY.into())
    }

    pub fn blur<T: TestElement>(
        _: &Arc<CudaStream>,
        _: &blurpool::Blur,
        _: Shape4,
        _: Layout,
        _: Arc<Vec<CudaSlice<T>>>,
    ) -> Result<Path, String> {
        Err(WHY.into())
    }

    pub fn conv_then_blur<T: TestElement>(
        _: &Arc<CudaStream>,
        _: &Arc<Kernels>,
        _: &ConvBlurPool2d,
        _: Shape4,
        _: Layout,
        _: Arc<Vec<CudaSlice<T>>>,
        _: Arc<CudaSlice<T>>,
    ) -> Result<Path, String> {
        Err(WHY.into())
    }
}

#[cfg(feature = "cudnn")]
mod cudnn {
    //! cuDNN baselines through cudarc's bindings (libcudnn loaded at run time). cuDNN pads with
    //! zeros only and symmetrically, so its paths do the same work with zero padding; they are
    //! timed, not compared numerically.
    use super::*;
    use cudarc::cudnn::{sys, Cudnn, CudnnDataType, TensorDescriptor};
    use std::ffi::c_int;

    fn available() -> Result<(), String> {
        // SAFETY: only probes whether libcudnn can be opened.
        if unsafe { sys::is_culib_present() } {
            Ok(())
        } else {
            Err("libcudnn was not found (put the nvidia-cudnn wheel's lib folder on LD_LIBRARY_PATH)".into())
        }
    }

    fn format(layout: Layout) -> sys::cudnnTensorFormat_t {
        match layout {
            Layout::Nchw => sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
            Layout::Nhwc => sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
        }
    }

    fn dims(s: Shape4) -> Result<[c_int; 4], String> {
        let c = |v: usize| c_int::try_from(v).map_err(|_| format!("{s} is too large for cuDNN"));
        Ok([c(s.n)?, c(s.c)?, c(s.h)?, c(s.w)?])
    }

    fn tensor<T: CudnnDataType>(
        h: &Arc<Cudnn>,
        s: Shape4,
        layout: Layout,
    ) -> Result<TensorDescriptor<T>, String> {
        h.create_4d_tensor::<T>(format(layout), dims(s)?)
            .map_err(|e| format!("{e:?}"))
    }

    /// The blur's taps as a depthwise filter (C × 1 × Fy × Fx), and its symmetric padding.
    fn blur_filter<T: TestElement>(
        blur: &blurpool::Blur,
        c: usize,
    ) -> Result<(Vec<T>, [c_int; 2]), String> {
        let p = blur.pad();
        if p.top != p.bottom || p.left != p.right {
            return Err("cuDNN convolutions pad symmetrically; this blur does not".into());
        }
        let (wy, wx) = (blur.filter().weights_y(), blur.filter().weights_x());
        let mut taps = Vec::with_capacity(c * wy.len() * wx.len());
        for _ in 0..c {
            for a in wy {
                for b in wx {
                    taps.push(T::from_f64(a * b));
                }
            }
        }
        Ok((taps, [p.top as c_int, p.left as c_int]))
    }

    /// A convolution (groups, stride, symmetric padding) as a path-ready closure state.
    struct Conv<T: CudnnDataType> {
        h: Arc<Cudnn>,
        x: TensorDescriptor<T>,
        y: TensorDescriptor<T>,
        w: cudarc::cudnn::FilterDescriptor<T>,
        conv: cudarc::cudnn::ConvDescriptor<f32>,
        algo: sys::cudnnConvolutionFwdAlgo_t,
        workspace: Option<CudaSlice<u8>>,
    }

    #[allow(clippy::too_many_arguments)]
    fn conv<T: TestElement + CudnnDataType>(
        stream: &Arc<CudaStream>,
        input: Shape4,
        output: Shape4,
        layout: Layout,
        kernel: (usize, usize),
        pad: [c_int; 2],
        stride: (usize, usize),
        groups: usize,
    ) -> Result<Conv<T>, String> {
        let ce = |e: cudarc::cudnn::CudnnError| format!("{e:?}");
        let h = Cudnn::new(stream.clone()).map_err(ce)?;
        let x = tensor::<T>(&h, input, layout)?;
        let y = tensor::<T>(&h, output, layout)?;
        let w = h
            .create_4d_filter::<T>(
                format(layout),
                [
                    output.c as c_int,
                    (input.c / groups) as c_int,
                    kernel.0 as c_int,
                    kernel.1 as c_int,
                ],
            )
            .map_err(ce)?;
        let mut conv = h
            .create_conv2d::<f32>(
                pad,
                [stride.0 as c_int, stride.1 as c_int],
                [1, 1],
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            )
            .map_err(ce)?;
        conv.set_group_count(groups as i32).map_err(ce)?;
        conv.set_math_type(sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
            .map_err(ce)?;
        let fwd = cudarc::cudnn::ConvForward {
            conv: &conv,
            x: &x,
            w: &w,
            y: &y,
        };
        let algo = fwd.pick_algorithm().map_err(ce)?;
        let ws = fwd.get_workspace_size(algo).map_err(ce)?;
        let workspace = if ws > 0 {
            Some(stream.alloc_zeros::<u8>(ws).map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(Conv {
            h,
            x,
            y,
            w,
            conv,
            algo,
            workspace,
        })
    }

    impl<T: TestElement + CudnnDataType> Conv<T> {
        fn run(
            &mut self,
            x: &CudaSlice<T>,
            w: &CudaSlice<T>,
            y: &mut CudaSlice<T>,
        ) -> Result<(), String> {
            let _ = &self.h;
            let fwd = cudarc::cudnn::ConvForward {
                conv: &self.conv,
                x: &self.x,
                w: &self.w,
                y: &self.y,
            };
            // SAFETY: the descriptors were built for exactly these buffers' shapes, dtype and
            // layout (allocated by the caller from the same shapes), and the workspace has the
            // size cuDNN asked for this algorithm.
            unsafe {
                fwd.launch(
                    self.algo,
                    self.workspace.as_mut(),
                    (T::from_f64(1.0), T::from_f64(0.0)),
                    x,
                    w,
                    y,
                )
            }
            .map_err(|e| format!("{e:?}"))
        }
    }

    /// cuDNN max pooling into a max map, then a depthwise convolution with the blur's taps.
    pub fn max_blur<T: TestElement + CudnnDataType>(
        stream: &Arc<CudaStream>,
        op: &MaxBlurPool2d,
        shape: Shape4,
        layout: Layout,
        xs: Arc<Vec<CudaSlice<T>>>,
    ) -> Result<Path, String> {
        available()?;
        let ce = |e: cudarc::cudnn::CudnnError| format!("{e:?}");
        let e = |e: blurpool::Error| e.to_string();
        let m = op.max_map_shape(shape).map_err(e)?;
        let out = op.output_shape(shape).map_err(e)?;
        let (taps, pad) = blur_filter::<T>(op.blur(), shape.c)?;
        let f = op.blur().filter();
        let mut blur = conv::<T>(
            stream,
            m,
            out,
            layout,
            (f.size_y(), f.size_x()),
            pad,
            op.blur().stride(),
            shape.c,
        )?;
        let h = blur.h.clone();
        let (k, p) = (op.max_pool().kernel(), op.max_pool().padding());
        let pool = h
            .create_poolingnd::<T>(
                &[k.0 as c_int, k.1 as c_int],
                &[p.0 as c_int, p.1 as c_int],
                &[1, 1],
                sys::cudnnPoolingMode_t::CUDNN_POOLING_MAX,
                sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
            )
            .map_err(ce)?;
        let xd = tensor::<T>(&h, shape, layout)?;
        let md = tensor::<T>(&h, m, layout)?;
        let d = |e: cudarc::driver::DriverError| e.to_string();
        let mut mm = stream.alloc_zeros::<T>(m.numel().map_err(e)?).map_err(d)?;
        let mut y = stream
            .alloc_zeros::<T>(out.numel().map_err(e)?)
            .map_err(d)?;
        let w = stream.clone_htod(&taps).map_err(d)?;
        Ok(Path {
            name: "cudnn".into(),
            run: Box::new(move |i| {
                let fwd = cudarc::cudnn::PoolingForward {
                    pooling: &pool,
                    x: &xd,
                    y: &md,
                };
                // SAFETY: the descriptors describe exactly xs[i] (shape, dtype, layout) and the
                // max map buffer allocated from the same shape.
                unsafe {
                    fwd.launch(
                        (T::from_f64(1.0), T::from_f64(0.0)),
                        &xs[i % xs.len()],
                        &mut mm,
                    )
                }
                .map_err(|e| format!("{e:?}"))?;
                blur.run(&mm, &w, &mut y)
            }),
        })
    }

    /// A depthwise convolution with the blur's taps.
    pub fn blur<T: TestElement + CudnnDataType>(
        stream: &Arc<CudaStream>,
        b: &blurpool::Blur,
        shape: Shape4,
        layout: Layout,
        xs: Arc<Vec<CudaSlice<T>>>,
    ) -> Result<Path, String> {
        available()?;
        let e = |e: blurpool::Error| e.to_string();
        let d = |e: cudarc::driver::DriverError| e.to_string();
        let out = BlurPool2d::new(b.clone()).output_shape(shape).map_err(e)?;
        let (taps, pad) = blur_filter::<T>(b, shape.c)?;
        let f = b.filter();
        let mut c = conv::<T>(
            stream,
            shape,
            out,
            layout,
            (f.size_y(), f.size_x()),
            pad,
            b.stride(),
            shape.c,
        )?;
        let w = stream.clone_htod(&taps).map_err(d)?;
        let mut y = stream
            .alloc_zeros::<T>(out.numel().map_err(e)?)
            .map_err(d)?;
        Ok(Path {
            name: "cudnn".into(),
            run: Box::new(move |i| c.run(&xs[i % xs.len()], &w, &mut y)),
        })
    }

    /// cuDNN's convolution (stride 1) into the full-resolution map, then the crate's blur kernel.
    pub fn conv_then_blur<T: TestElement + CudnnDataType>(
        stream: &Arc<CudaStream>,
        kernels: &Arc<Kernels>,
        op: &ConvBlurPool2d,
        shape: Shape4,
        layout: Layout,
        xs: Arc<Vec<CudaSlice<T>>>,
        weight: Arc<CudaSlice<T>>,
    ) -> Result<Path, String> {
        available()?;
        let e = |e: blurpool::Error| e.to_string();
        let d = |e: cudarc::driver::DriverError| e.to_string();
        let spec = op.conv();
        if spec.has_bias() || spec.activation() != Activation::Identity {
            return Err("the baseline covers conv without bias or activation".into());
        }
        let z = op.conv_map_shape(shape).map_err(e)?;
        let out = op.output_shape(shape).map_err(e)?;
        let (py, px) = spec.padding();
        let mut c = conv::<T>(
            stream,
            shape,
            z,
            layout,
            spec.kernel(),
            [py as c_int, px as c_int],
            (1, 1),
            spec.groups(),
        )?;
        let blur = BlurPool2d::new(op.blur().clone());
        let mut zbuf = stream.alloc_zeros::<T>(z.numel().map_err(e)?).map_err(d)?;
        let mut y = stream
            .alloc_zeros::<T>(out.numel().map_err(e)?)
            .map_err(d)?;
        let (k, s) = (kernels.clone(), stream.clone());
        Ok(Path {
            name: "cudnn conv + blur".into(),
            run: Box::new(move |i| {
                c.run(&xs[i % xs.len()], &weight, &mut zbuf)?;
                let launch = Launch::new(&k, &s, layout).map_err(|e| e.to_string())?;
                blur.forward(&launch, z, &zbuf, &mut y)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }),
        })
    }
}
