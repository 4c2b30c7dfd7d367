//! cuDNN baselines through cudarc's bindings (libcudnn loaded at run time), with the `cudnn`
//! feature; without it, stand-ins that say why there is none. cuDNN pads with zeros only and
//! symmetrically, so its paths do the same work with zero padding; they are timed, not compared
//! numerically.
//!
//! The convolution algorithm is picked by timing, not by cuDNN's heuristic: every forward
//! algorithm cuDNN accepts for the descriptors is run cold a few times on the benchmark's own
//! buffers (what `cudnnFindConvolutionForwardAlgorithm` does; cudarc's safe API does not expose
//! the raw descriptors that call needs), and the fastest median wins.

#[cfg(not(feature = "cudnn"))]
mod imp {
    use std::sync::Arc;

    use cudarc::driver::CudaSlice;

    use blurpool::{ConvBlurPool2d, Layout, MaxBlurPool2d, Shape4};

    use crate::bench::Path;
    use crate::data::TestElement;
    use crate::gpu::Gpu;

    const WHY: &str = "built without the `cudnn` feature (cargo build --features cudnn)";

    pub fn max_blur<T: TestElement>(
        _: &Gpu,
        _: &MaxBlurPool2d,
        _: Shape4,
        _: Layout,
        _: Arc<Vec<CudaSlice<T>>>,
        _: usize,
    ) -> Result<Path, String> {
        Err(WHY.into())
    }

    pub fn blur<T: TestElement>(
        _: &Gpu,
        _: &blurpool::Blur,
        _: Shape4,
        _: Layout,
        _: Arc<Vec<CudaSlice<T>>>,
        _: usize,
    ) -> Result<Path, String> {
        Err(WHY.into())
    }

    pub fn conv_then_blur<T: TestElement>(
        _: &Gpu,
        _: &ConvBlurPool2d,
        _: Shape4,
        _: Layout,
        _: Arc<Vec<CudaSlice<T>>>,
        _: Arc<CudaSlice<T>>,
        _: usize,
    ) -> Result<Path, String> {
        Err(WHY.into())
    }
}

#[cfg(feature = "cudnn")]
mod imp {
    use std::ffi::c_int;
    use std::sync::Arc;

    use cudarc::cudnn::{sys, Cudnn, CudnnDataType, TensorDescriptor};
    use cudarc::driver::{CudaSlice, CudaStream};

    use blurpool::cuda::Launch;
    use blurpool::{Activation, BlurPool2d, ConvBlurPool2d, Layout, MaxBlurPool2d, Shape4};

    use crate::bench::measure::{ColdTimer, MeasureConfig};
    use crate::bench::Path;
    use crate::data::TestElement;
    use crate::gpu::Gpu;

    fn available() -> Result<(), String> {
        // SAFETY: only probes whether libcudnn can be opened.
        if unsafe { sys::is_culib_present() } {
            Ok(())
        } else {
            Err("libcudnn was not found (put the nvidia-cudnn wheel's lib folder on LD_LIBRARY_PATH)".into())
        }
    }

    fn ce(e: cudarc::cudnn::CudnnError) -> String {
        format!("{e:?}")
    }
    fn be(e: blurpool::Error) -> String {
        e.to_string()
    }
    fn de(e: cudarc::driver::DriverError) -> String {
        e.to_string()
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
            .map_err(ce)
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

    /// Every forward algorithm cuDNN has.
    const ALGOS: [sys::cudnnConvolutionFwdAlgo_t; 8] = [
        sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
        sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
        sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
        sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_DIRECT,
        sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_FFT,
        sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
        sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,
        sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
    ];

    /// A convolution (groups, stride, symmetric padding) with its fastest algorithm.
    struct Conv<T: CudnnDataType> {
        _h: Arc<Cudnn>,
        x: TensorDescriptor<T>,
        y: TensorDescriptor<T>,
        w: cudarc::cudnn::FilterDescriptor<T>,
        conv: cudarc::cudnn::ConvDescriptor<f32>,
        algo: sys::cudnnConvolutionFwdAlgo_t,
        workspace: Option<CudaSlice<u8>>,
    }

    impl<T: TestElement + CudnnDataType> Conv<T> {
        /// One launch with `algo` and `workspace`.
        fn launch(
            &self,
            algo: sys::cudnnConvolutionFwdAlgo_t,
            workspace: Option<&mut CudaSlice<u8>>,
            x: &CudaSlice<T>,
            w: &CudaSlice<T>,
            y: &mut CudaSlice<T>,
        ) -> Result<(), String> {
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
                    algo,
                    workspace,
                    (T::from_f64(1.0), T::from_f64(0.0)),
                    x,
                    w,
                    y,
                )
            }
            .map_err(ce)
        }

        fn run(
            &mut self,
            x: &CudaSlice<T>,
            w: &CudaSlice<T>,
            y: &mut CudaSlice<T>,
        ) -> Result<(), String> {
            let mut ws = self.workspace.take();
            let r = self.launch(self.algo, ws.as_mut(), x, w, y);
            self.workspace = ws;
            r
        }
    }

    /// Builds the convolution and picks its algorithm by timing every one cuDNN accepts on
    /// `x`, `w`, `y` (the benchmark's own buffers): 5 cold samples each, fastest median.
    #[allow(clippy::too_many_arguments)]
    fn conv<T: TestElement + CudnnDataType>(
        g: &Gpu,
        input: Shape4,
        output: Shape4,
        layout: Layout,
        kernel: (usize, usize),
        pad: [c_int; 2],
        stride: (usize, usize),
        groups: usize,
        x: &CudaSlice<T>,
        w: &CudaSlice<T>,
        y: &mut CudaSlice<T>,
    ) -> Result<Conv<T>, String> {
        let stream: &Arc<CudaStream> = &g.stream;
        let h = Cudnn::new(stream.clone()).map_err(ce)?;
        let xd = tensor::<T>(&h, input, layout)?;
        let yd = tensor::<T>(&h, output, layout)?;
        let wd = h
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
        let mut cd = h
            .create_conv2d::<f32>(
                pad,
                [stride.0 as c_int, stride.1 as c_int],
                [1, 1],
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            )
            .map_err(ce)?;
        cd.set_group_count(groups as i32).map_err(ce)?;
        cd.set_math_type(sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
            .map_err(ce)?;
        let mut c = Conv {
            _h: h,
            x: xd,
            y: yd,
            w: wd,
            conv: cd,
            algo: ALGOS[0],
            workspace: None,
        };
        let mut timer = ColdTimer::new(g)?;
        let cfg = MeasureConfig {
            min_samples: 5,
            max_samples: 5,
            ..MeasureConfig::default()
        };
        let mut best: Option<(f64, sys::cudnnConvolutionFwdAlgo_t, Option<CudaSlice<u8>>)> = None;
        let mut tried = Vec::new();
        for algo in ALGOS {
            let size = {
                let fwd = cudarc::cudnn::ConvForward {
                    conv: &c.conv,
                    x: &c.x,
                    w: &c.w,
                    y: &c.y,
                };
                match fwd.get_workspace_size(algo) {
                    Ok(s) => s,
                    Err(_) => continue, // not supported for these descriptors
                }
            };
            let mut ws = if size > 0 {
                match stream.alloc_zeros::<u8>(size) {
                    Ok(b) => Some(b),
                    Err(_) => continue, // more workspace than the device has free
                }
            } else {
                None
            };
            if c.launch(algo, ws.as_mut(), x, w, y).is_err() {
                continue;
            }
            let t = timer.measure(&mut |_| c.launch(algo, ws.as_mut(), x, w, y), &cfg)?;
            tried.push(format!("{algo:?} {:.1} µs", t.median * 1e6));
            if best.as_ref().is_none_or(|b| t.median < b.0) {
                best = Some((t.median, algo, ws));
            }
        }
        let (_, algo, ws) = best.ok_or("cuDNN ran none of its convolution algorithms")?;
        c.algo = algo;
        c.workspace = ws;
        Ok(c)
    }

    /// cuDNN max pooling into a max map, then a depthwise convolution with the blur's taps.
    pub fn max_blur<T: TestElement + CudnnDataType>(
        g: &Gpu,
        op: &MaxBlurPool2d,
        shape: Shape4,
        layout: Layout,
        xs: Arc<Vec<CudaSlice<T>>>,
        copies: usize,
    ) -> Result<Path, String> {
        available()?;
        let stream = g.stream.clone();
        let m = op.max_map_shape(shape).map_err(be)?;
        let out = op.output_shape(shape).map_err(be)?;
        let (taps, pad) = blur_filter::<T>(op.blur(), shape.c)?;
        let f = op.blur().filter();
        let mut mm = stream
            .alloc_zeros::<T>(m.numel().map_err(be)?)
            .map_err(de)?;
        let mut ys: Vec<CudaSlice<T>> = (0..copies)
            .map(|_| {
                stream
                    .alloc_zeros::<T>(out.numel().map_err(be)?.max(1))
                    .map_err(de)
            })
            .collect::<Result<_, _>>()?;
        let w = stream.clone_htod(&taps).map_err(de)?;
        let mut blur = conv::<T>(
            g,
            m,
            out,
            layout,
            (f.size_y(), f.size_x()),
            pad,
            op.blur().stride(),
            shape.c,
            &mm,
            &w,
            &mut ys[0],
        )?;
        let h = blur._h.clone();
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
        let algo = format!("{:?}", blur.algo);
        Ok(Path {
            name: "cudnn".into(),
            kernels: vec![
                "cudnnPoolingForward".into(),
                format!("cudnnConvolutionForward {algo}"),
            ],
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
                .map_err(ce)?;
                let n = ys.len();
                blur.run(&mm, &w, &mut ys[i % n])
            }),
        })
    }

    /// A depthwise convolution with the blur's taps.
    pub fn blur<T: TestElement + CudnnDataType>(
        g: &Gpu,
        b: &blurpool::Blur,
        shape: Shape4,
        layout: Layout,
        xs: Arc<Vec<CudaSlice<T>>>,
        copies: usize,
    ) -> Result<Path, String> {
        available()?;
        let stream = g.stream.clone();
        let out = BlurPool2d::new(b.clone()).output_shape(shape).map_err(be)?;
        let (taps, pad) = blur_filter::<T>(b, shape.c)?;
        let f = b.filter();
        let w = stream.clone_htod(&taps).map_err(de)?;
        let mut ys: Vec<CudaSlice<T>> = (0..copies)
            .map(|_| {
                stream
                    .alloc_zeros::<T>(out.numel().map_err(be)?.max(1))
                    .map_err(de)
            })
            .collect::<Result<_, _>>()?;
        let mut c = conv::<T>(
            g,
            shape,
            out,
            layout,
            (f.size_y(), f.size_x()),
            pad,
            b.stride(),
            shape.c,
            &xs[0],
            &w,
            &mut ys[0],
        )?;
        Ok(Path {
            name: "cudnn".into(),
            kernels: vec![format!("cudnnConvolutionForward {:?}", c.algo)],
            run: Box::new(move |i| {
                let n = ys.len();
                c.run(&xs[i % xs.len()], &w, &mut ys[i % n])
            }),
        })
    }

    /// cuDNN's convolution (stride 1) into the full-resolution map, then the crate's blur kernel.
    pub fn conv_then_blur<T: TestElement + CudnnDataType>(
        g: &Gpu,
        op: &ConvBlurPool2d,
        shape: Shape4,
        layout: Layout,
        xs: Arc<Vec<CudaSlice<T>>>,
        weight: Arc<CudaSlice<T>>,
        copies: usize,
    ) -> Result<Path, String> {
        available()?;
        let stream = g.stream.clone();
        let spec = op.conv();
        if spec.has_bias() || spec.activation() != Activation::Identity {
            return Err("the baseline covers conv without bias or activation".into());
        }
        let z = op.conv_map_shape(shape).map_err(be)?;
        let out = op.output_shape(shape).map_err(be)?;
        let (py, px) = spec.padding();
        let mut zbuf = stream
            .alloc_zeros::<T>(z.numel().map_err(be)?)
            .map_err(de)?;
        let mut c = conv::<T>(
            g,
            shape,
            z,
            layout,
            spec.kernel(),
            [py as c_int, px as c_int],
            (1, 1),
            spec.groups(),
            &xs[0],
            &weight,
            &mut zbuf,
        )?;
        let blur = BlurPool2d::new(op.blur().clone());
        let blur_symbol = blur
            .plan(z, g.kernels.target(T::DTYPE, layout))
            .map_err(be)?
            .symbol();
        let mut ys: Vec<CudaSlice<T>> = (0..copies)
            .map(|_| {
                stream
                    .alloc_zeros::<T>(out.numel().map_err(be)?.max(1))
                    .map_err(de)
            })
            .collect::<Result<_, _>>()?;
        let (k, s) = (g.kernels.clone(), stream.clone());
        Ok(Path {
            name: "cudnn conv + blur".into(),
            kernels: vec![format!("cudnnConvolutionForward {:?}", c.algo), blur_symbol],
            run: Box::new(move |i| {
                c.run(&xs[i % xs.len()], &weight, &mut zbuf)?;
                let launch = Launch::new(&k, &s, layout).map_err(be)?;
                let n = ys.len();
                blur.forward(&launch, z, &zbuf, &mut ys[i % n])
                    .map(|_| ())
                    .map_err(be)
            }),
        })
    }
}

pub use imp::*;
