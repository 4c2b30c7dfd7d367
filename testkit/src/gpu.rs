//! The GPU runner: a device, its kernels and a stream; uploads host data, poisons outputs,
//! runs an operator through the library's entry points and downloads the result.

use std::sync::Arc;

use blurpool::cuda::{
    open_device, ConvGrads, ForwardPtrs, GradPtrs, KernelChoice, Kernels, Launch, MaxGrads,
};
use blurpool::{Layout, Operator, Shape4};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use crate::check::{GradsOf, Runner};
use crate::data::{CaseData, TestElement, POISON};

/// A device, its kernels and a stream, or the reason there is none.
pub struct Gpu {
    /// The device's primary context.
    pub ctx: Arc<CudaContext>,
    /// The kernels loaded into it.
    pub kernels: Arc<Kernels>,
    /// A stream of that context.
    pub stream: Arc<CudaStream>,
}

impl Gpu {
    /// Opens device `ordinal`, loads the kernels and creates a stream; Err says why not (no
    /// driver, no device, kernels that do not load).
    pub fn open(ordinal: usize) -> blurpool::Result<Gpu> {
        let ctx = open_device(ordinal)?;
        let kernels = Kernels::for_context(&ctx)?;
        let stream = ctx.new_stream()?;
        Ok(Gpu {
            ctx,
            kernels,
            stream,
        })
    }

    /// The same device and stream with kernels that launch `choice` (e.g. the general
    /// kernels, to test them where a specialised one would be picked).
    pub fn with_choice(&self, choice: KernelChoice) -> Gpu {
        Gpu {
            ctx: self.ctx.clone(),
            kernels: self.kernels.with_choice(choice),
            stream: self.stream.clone(),
        }
    }

    /// The same device and kernels on another stream.
    pub fn on_stream(&self, stream: Arc<CudaStream>) -> Gpu {
        Gpu {
            ctx: self.ctx.clone(),
            kernels: self.kernels.clone(),
            stream,
        }
    }
}

/// Copies `v` to the device, as one element of `E::default()` when empty (cuMemAlloc refuses
/// 0 bytes).
pub fn upload_padded<E: cudarc::driver::DeviceRepr + Clone + Default + Unpin>(
    stream: &Arc<CudaStream>,
    v: &[E],
) -> blurpool::Result<CudaSlice<E>> {
    let mut padded = v.to_vec();
    if padded.is_empty() {
        padded.push(E::default());
    }
    Ok(stream.clone_htod(&padded)?)
}

/// Uploads, poisons, runs, downloads. `raw` goes through the raw-pointer entry instead of the
/// typed one.
pub fn run_gpu<T: TestElement>(
    g: &Gpu,
    op: &Operator,
    shape: Shape4,
    layout: Layout,
    data: &CaseData<T>,
    raw: bool,
) -> blurpool::Result<Vec<T>> {
    let stream = &g.stream;
    let launch = Launch::new(&g.kernels, stream, layout)?;
    let out = op.output_shape(shape)?;
    // cuMemAlloc refuses 0 bytes: allocate at least one element and pass exact-length views.
    let x_buf = upload_padded(stream, &data.x)?;
    let x = x_buf.slice(0..data.x.len());
    let w_buf = upload_padded(stream, &data.w)?;
    let w = w_buf.slice(0..data.w.len());
    let b_buf = match &data.b {
        Some(b) => Some(upload_padded(stream, b)?),
        None => None,
    };
    let n_out = out.numel()?;
    let mut y_buf = upload_padded(stream, &vec![T::from_f64(POISON); n_out])?;
    if raw {
        let (xp, _gx) = x.device_ptr(stream);
        let (wp, _gw) = w.device_ptr(stream);
        let (bp, _gb) = match &b_buf {
            Some(b) => {
                let (p, g) = b.device_ptr(stream);
                (p, Some(g))
            }
            None => (0, None),
        };
        let (yp, _gy) = y_buf.device_ptr_mut(stream);
        let ptrs = ForwardPtrs {
            x: xp,
            weight: if op.conv().is_some() { wp } else { 0 },
            bias: bp,
            y: yp,
        };
        // SAFETY: all pointers are live allocations of this context with the lengths the
        // shapes need (uploaded above), kept alive until after the synchronize below; y is its
        // own allocation.
        unsafe { op.forward_raw(&launch, T::DTYPE, shape, ptrs) }?;
    } else {
        let mut y = y_buf.slice_mut(0..n_out);
        match op {
            Operator::MaxPool(o) => o.forward(&launch, shape, &x, &mut y)?,
            Operator::BlurPool(o) => o.forward(&launch, shape, &x, &mut y)?,
            Operator::MaxBlurPool(o) => o.forward(&launch, shape, &x, &mut y)?,
            Operator::ConvBlurPool(o) => {
                let bv = b_buf.as_ref().map(|b| b as &dyn DevicePtr<T>);
                o.forward(&launch, shape, &x, &w, bv, &mut y)?
            }
            Operator::BlurConv(o) => {
                let bv = b_buf.as_ref().map(|b| b as &dyn DevicePtr<T>);
                o.forward(&launch, shape, &x, &w, bv, &mut y)?
            }
        };
    }
    stream.synchronize()?;
    let all = stream.clone_dtoh(&y_buf)?;
    Ok(all[..n_out].to_vec())
}

/// Uploads x, weight, bias and dy, poisons dx, dweight, dbias and the workspace (NaN), runs the
/// operator's backward through the typed entry (or the raw one with `raw`) and downloads the
/// gradients.
pub fn run_gpu_backward<T: TestElement>(
    g: &Gpu,
    op: &Operator,
    shape: Shape4,
    layout: Layout,
    data: &CaseData<T>,
    dy: &[T],
    raw: bool,
) -> blurpool::Result<GradsOf<T>> {
    let stream = &g.stream;
    let launch = Launch::new(&g.kernels, stream, layout)?;
    let plan = op.backward_plan(shape, launch.target(T::DTYPE))?;
    let poison = |n: usize| vec![T::from_f64(POISON); n];
    let (wlen, blen) = op.conv().map_or((0, 0), |c| (c.weight_len(), c.bias_len()));
    let n_in = data.x.len();
    let x = upload_padded(stream, &data.x)?;
    let w = upload_padded(stream, &data.w)?;
    let b = upload_padded(stream, data.b.as_deref().unwrap_or(&[]))?;
    let dyb = upload_padded(stream, dy)?;
    let mut dx = upload_padded(stream, &poison(n_in))?;
    let mut dw = upload_padded(stream, &poison(wlen))?;
    let mut db = upload_padded(stream, &poison(blen))?;
    let mut ws = upload_padded(stream, &vec![f32::NAN; plan.workspace_len()])?;
    let has_bias = data.b.is_some();
    if raw {
        let ptr = |s: &CudaSlice<T>| s.device_ptr(stream).0;
        let ptrs = GradPtrs {
            x: ptr(&x),
            weight: ptr(&w),
            bias: if has_bias { ptr(&b) } else { 0 },
            dy: ptr(&dyb),
            dx: ptr(&dx),
            dweight: ptr(&dw),
            dbias: if has_bias { ptr(&db) } else { 0 },
            workspace: ws.device_ptr(stream).0,
        };
        // SAFETY: every buffer is a live allocation of this context sized for its role
        // (uploaded above from host data of the shapes' lengths), kept alive until after the
        // synchronize; outputs are separate allocations.
        unsafe { op.backward_raw(&launch, T::DTYPE, shape, &ptrs) }?;
    } else {
        let n_out = plan.output().numel()?;
        let (xs, dys) = (x.slice(0..n_in), dyb.slice(0..n_out));
        let mut dxs = dx.slice_mut(0..n_in);
        match op {
            Operator::MaxPool(o) => o.backward(
                &launch,
                shape,
                MaxGrads {
                    x: &xs,
                    dy: &dys,
                    dx: &mut dxs,
                },
            )?,
            Operator::MaxBlurPool(o) => o.backward(
                &launch,
                shape,
                MaxGrads {
                    x: &xs,
                    dy: &dys,
                    dx: &mut dxs,
                },
            )?,
            Operator::BlurPool(o) => o.backward(&launch, shape, &dys, &mut dxs)?,
            Operator::ConvBlurPool(o) => {
                let ws_len = plan.workspace_len();
                let (wv, bv) = (w.slice(0..wlen), b.slice(0..blen));
                let mut dwv = dw.slice_mut(0..wlen);
                let mut dbv = db.slice_mut(0..blen);
                let mut wsv = ws.slice_mut(0..ws_len);
                o.backward(
                    &launch,
                    shape,
                    ConvGrads {
                        x: &xs,
                        weight: &wv,
                        bias: has_bias.then_some(&bv as &dyn DevicePtr<T>),
                        dy: &dys,
                        dx: &mut dxs,
                        dweight: &mut dwv,
                        dbias: if has_bias {
                            Some(&mut dbv as &mut dyn DevicePtrMut<T>)
                        } else {
                            None
                        },
                        workspace: &mut wsv,
                    },
                )?
            }
            Operator::BlurConv(_) => {
                // backward_plan above already refused it.
                unreachable!("BlurConv2d has no GPU backward plan")
            }
        }
    }
    stream.synchronize()?;
    let down = |s: &CudaSlice<T>, n: usize| -> blurpool::Result<Vec<T>> {
        Ok(stream.clone_dtoh(s)?[..n].to_vec())
    };
    Ok(GradsOf {
        dx: down(&dx, n_in)?,
        dweight: if op.conv().is_some() {
            down(&dw, wlen)?
        } else {
            Vec::new()
        },
        dbias: if has_bias {
            Some(down(&db, blen)?)
        } else {
            None
        },
    })
}

impl Runner for Gpu {
    fn run<T: TestElement>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
    ) -> Result<Vec<T>, String> {
        run_gpu(self, op, shape, layout, data, false).map_err(|e| e.to_string())
    }

    fn run_backward<T: TestElement>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
        dy: &[T],
    ) -> Result<GradsOf<T>, String> {
        run_gpu_backward(self, op, shape, layout, data, dy, false).map_err(|e| e.to_string())
    }
}
