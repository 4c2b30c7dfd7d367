//! Launching: [`Launch`] (kernels + stream + layout) and each operator's `forward`,
//! `forward_raw`, `backward` and `backward_raw`. Every entry point computes the operator's plan
//! (pure, [`super::plan`]) and hands it to the one launch function of its direction
//! ([`Launch::run`], [`Launch::run_backward`]); the typed entries check buffer lengths first and
//! keep cudarc's stream-ordering guards alive until the kernel is queued. The one allocation:
//! the tensor-core v4 kernel's packed weights, a stream-ordered buffer of the plan's
//! [`super::WeightPack::len`] (cudarc's `alloc`, `cuMemAllocAsync` where the device has memory
//! pools), filled by the packing kernel and freed on the stream after the conv kernel.

use std::sync::Arc;

use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{
    CudaStream, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg, SyncOnDrop,
};

use super::module::Kernels;
use super::params::BpParams;
use super::plan::{BackwardPlan, Buf, KernelKind, LaunchPlan, Target, WeightPack};
use crate::error::{check_len, Error, Result};
use crate::ops::{BlurConv2d, BlurPool2d, ConvBlurPool2d, MaxBlurPool2d, MaxPool2d, Operator};
use crate::tensor::{DType, Element, Layout, Shape4};

/// Where and how operators run: loaded [`Kernels`], the caller's stream (of the kernels'
/// context) and the activations' layout.
///
/// ```no_run
/// use blurpool::cuda::{open_device, Kernels, Launch};
/// use blurpool::Layout;
/// let ctx = open_device(0)?;
/// let kernels = Kernels::for_context(&ctx)?;
/// let stream = ctx.new_stream()?;
/// let launch = Launch::new(&kernels, &stream, Layout::Nhwc)?; // Err(ContextMismatch) for another context's stream
/// # Ok::<(), blurpool::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    kernels: &'a Kernels,
    stream: &'a Arc<CudaStream>,
    layout: Layout,
}

/// Device pointers of a raw forward call, by role (0 where the operator has no such buffer:
/// `weight` and `bias` are only read by the conv operators, and `bias` only with a bias).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardPtrs {
    /// The input.
    pub x: CUdeviceptr,
    /// The conv weight (Cout×Cin/groups×kh×kw).
    pub weight: CUdeviceptr,
    /// The conv bias (Cout).
    pub bias: CUdeviceptr,
    /// The output.
    pub y: CUdeviceptr,
}

/// Device pointers of a raw backward call, by role (0 where the operator has no such buffer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradPtrs {
    /// The forward's input.
    pub x: CUdeviceptr,
    /// The conv weight.
    pub weight: CUdeviceptr,
    /// The conv bias.
    pub bias: CUdeviceptr,
    /// The output gradient.
    pub dy: CUdeviceptr,
    /// The input gradient (written).
    pub dx: CUdeviceptr,
    /// The weight gradient (written).
    pub dweight: CUdeviceptr,
    /// The bias gradient (written).
    pub dbias: CUdeviceptr,
    /// The f32 workspace ([`BackwardPlan::workspace_len`] elements).
    pub workspace: CUdeviceptr,
}

impl GradPtrs {
    /// The pointer for one role.
    pub fn get(&self, buf: Buf) -> CUdeviceptr {
        match buf {
            Buf::X => self.x,
            Buf::Weight => self.weight,
            Buf::Bias => self.bias,
            Buf::Dy => self.dy,
            Buf::Dx => self.dx,
            Buf::DWeight => self.dweight,
            Buf::DBias => self.dbias,
            Buf::Workspace => self.workspace,
        }
    }
}

/// The buffers of a dense max's backward (MaxPool2d, MaxBlurPool2d), by name: x and dy in,
/// dx out, all in the launch's layout.
pub struct MaxGrads<'a, T> {
    /// The forward's input (its argmax decides where the gradient goes).
    pub x: &'a dyn DevicePtr<T>,
    /// The output gradient.
    pub dy: &'a dyn DevicePtr<T>,
    /// The input gradient (overwritten).
    pub dx: &'a mut dyn DevicePtrMut<T>,
}

/// The buffers of ConvBlurPool2d's backward, by name. x, dy, dx are in the launch's layout;
/// weight and dweight are Cout×Cin/groups×kh×kw, bias and dbias Cout (present exactly when the
/// conv has a bias); `workspace` holds [`ConvBlurPool2d::backward_workspace_len`] f32s.
pub struct ConvGrads<'a, T> {
    /// The forward's input.
    pub x: &'a dyn DevicePtr<T>,
    /// The conv weight.
    pub weight: &'a dyn DevicePtr<T>,
    /// The conv bias.
    pub bias: Option<&'a dyn DevicePtr<T>>,
    /// The output gradient.
    pub dy: &'a dyn DevicePtr<T>,
    /// The input gradient (overwritten).
    pub dx: &'a mut dyn DevicePtrMut<T>,
    /// The weight gradient (overwritten).
    pub dweight: &'a mut dyn DevicePtrMut<T>,
    /// The bias gradient (overwritten).
    pub dbias: Option<&'a mut dyn DevicePtrMut<T>>,
    /// Scratch for the conv map's gradient.
    pub workspace: &'a mut dyn DevicePtrMut<f32>,
}

impl<'a> Launch<'a> {
    /// Launches on `stream` (which must belong to `kernels`' context) with activations in
    /// `layout`.
    pub fn new(
        kernels: &'a Kernels,
        stream: &'a Arc<CudaStream>,
        layout: Layout,
    ) -> Result<Launch<'a>> {
        kernels.check_stream(stream)?;
        Ok(Launch {
            kernels,
            stream,
            layout,
        })
    }

    /// The target this launch plans for with element type `dtype`.
    pub fn target(&self, dtype: DType) -> Target {
        self.kernels.target(dtype, self.layout)
    }

    /// The kernels.
    pub fn kernels(&self) -> &'a Kernels {
        self.kernels
    }

    /// The stream.
    pub fn stream(&self) -> &'a Arc<CudaStream> {
        self.stream
    }

    /// The activations' layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Queues a forward plan with its buffers: the one forward launch path. With
    /// [`WeightSource::Plain`], `ptrs.weight` holds the OIHW weights, and a plan whose kernel
    /// reads packed weights ([`LaunchPlan::weight_pack`]) packs them first into a buffer
    /// allocated on the stream; with [`WeightSource::Packed`], `ptrs.weight` already holds
    /// that image (from [`ConvBlurPool2d::pack_weights`]) and only the kernel is queued.
    ///
    /// # Safety
    /// The pointers must address device memory of the kernels' context holding the elements
    /// the plan's shapes need (weight/bias only for conv kernels, else may be 0; packed
    /// weights: `weight_pack().len()` elements, 16-byte aligned) in the plan's dtype, valid
    /// until the kernel has run on the stream; `y` must not overlap the inputs.
    unsafe fn run(&self, plan: &LaunchPlan, ptrs: ForwardPtrs, source: WeightSource) -> Result<()> {
        let ForwardPtrs { x, weight, bias, y } = ptrs;
        let weight = match (plan.weight_pack(), source) {
            (_, WeightSource::Packed) => {
                packed_plan(plan)?;
                check_aligned("packed weight", weight, PACKED_ALIGN)?;
                weight
            }
            (None, WeightSource::Plain) => weight,
            (Some(pack), WeightSource::Plain) => {
                if !plan.has_work() {
                    return Ok(());
                }
                // SAFETY: the packing kernel writes every one of the pack.len() elements
                // before the conv kernel (queued after it on the same stream) reads any;
                // nothing reads the buffer uninitialised. u16: both packed dtypes are 2-byte
                // types. The buffer is freed on this stream when `packed` drops at the end of
                // this function, after the conv launch below.
                let packed = unsafe { self.stream.alloc::<u16>(pack.len()) }?;
                let (packed_ptr, _gp) = packed.device_ptr(self.stream);
                // SAFETY: the weights are the caller's (contract above); the packed buffer was
                // just allocated on this stream with pack.len() elements of the plan's 2-byte
                // dtype (cudarc's allocations are 256-byte aligned).
                unsafe { self.queue_pack(plan, pack, weight, packed_ptr) }?;
                // SAFETY: the kernel reads the packed weights in place of the weights; the rest
                // is the caller's contract.
                return unsafe {
                    self.launch_kernel(
                        plan.kind,
                        plan.dtype,
                        &plan.params,
                        plan.grid_dim(self.kernels.max_blocks()),
                        [x, packed_ptr, bias, 0, y],
                    )
                };
            }
        };
        if !plan.has_work() {
            return Ok(());
        }
        // SAFETY: forwarded to the caller's contract; the fourth input slot belongs to the
        // backward kernels and is unused by forward kernels.
        unsafe {
            self.launch_kernel(
                plan.kind,
                plan.dtype,
                &plan.params,
                plan.grid_dim(self.kernels.max_blocks()),
                [x, weight, bias, 0, y],
            )
        }
    }

    /// Queues the packing of the OIHW `weight` into `packed` for `plan`'s kernel.
    ///
    /// # Safety
    /// `weight` holds the conv's weights and `packed` `pack.len()` elements, both of the plan's
    /// dtype, device memory of the kernels' context valid until the kernel has run.
    unsafe fn queue_pack(
        &self,
        plan: &LaunchPlan,
        pack: WeightPack,
        weight: CUdeviceptr,
        packed: CUdeviceptr,
    ) -> Result<()> {
        // SAFETY: the caller's contract; the packing kernel reads the weights (first input)
        // and writes pack.len() elements for the plan's parameter block (its output).
        unsafe {
            self.launch_kernel(
                pack.kind(),
                plan.dtype,
                &plan.params,
                pack.grid_dim(self.kernels.max_blocks()),
                [weight, 0, 0, 0, packed],
            )
        }
    }

    /// Queues every step of a backward plan: the one backward launch path.
    ///
    /// # Safety
    /// Every pointer the plan's steps name must address device memory of the kernels' context
    /// holding what its role needs (of the plan's dtype; the workspace of f32), valid until the
    /// kernels have run; outputs must not overlap the inputs or each other.
    unsafe fn run_backward(
        &self,
        plan: &BackwardPlan,
        dtype: DType,
        ptrs: &GradPtrs,
    ) -> Result<()> {
        for s in plan.steps().filter(|s| s.has_work()) {
            let [a, b, c, d] = s.inputs().map(|buf| buf.map_or(0, |buf| ptrs.get(buf)));
            // SAFETY: the caller guarantees every buffer the plan names (see above).
            unsafe {
                self.launch_kernel(
                    s.kind(),
                    dtype,
                    plan.params(),
                    s.grid_dim(self.kernels.max_blocks()),
                    [a, b, c, d, ptrs.get(s.output())],
                )
            }?;
        }
        Ok(())
    }

    /// One kernel launch: (parameter block, four inputs, one output), the signature of every
    /// kernel in kernels/*.cu.
    ///
    /// # Safety
    /// Each pointer must address device memory of the kernels' context holding what the
    /// kernel reads or writes through it for `params`, valid until the kernel has run.
    unsafe fn launch_kernel(
        &self,
        kind: KernelKind,
        dtype: DType,
        params: &BpParams,
        grid: u32,
        ptrs: [CUdeviceptr; 5],
    ) -> Result<()> {
        let func = self.kernels.function(kind, dtype, self.layout)?;
        let cfg = LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (kind.block_threads(), 1, 1),
            // The kernel's dynamic shared memory (its limit raised at load: Kernels::load).
            shared_mem_bytes: kind.dynamic_shared_bytes(),
        };
        let [a, b, c, d, out] = ptrs;
        let mut builder = self.stream.launch_builder(func);
        builder
            .arg(params)
            .arg(&a)
            .arg(&b)
            .arg(&c)
            .arg(&d)
            .arg(&out);
        // SAFETY: every kernel's signature is (BpParams, five pointers), matching the six
        // arguments pushed; pointer validity is the caller's contract above.
        unsafe { builder.launch(cfg) }?;
        Ok(())
    }

    /// A conv forward's buffers as [`ForwardPtrs`], each checked against its length (`input`
    /// and `output` elements for x and y; `weight`: its name, buffer and length, the OIHW
    /// weights or their packed image; `bias`: the buffer and the conv's bias length), with the
    /// guards that order them on the stream (hold them until the launch is queued).
    #[allow(clippy::type_complexity)]
    fn conv_ptrs<'b, T>(
        &self,
        (input, output): (Shape4, Shape4),
        x: &'b dyn DevicePtr<T>,
        weight: (&'static str, &'b dyn DevicePtr<T>, usize),
        bias: Option<(&'b dyn DevicePtr<T>, usize)>,
        y: &'b mut dyn DevicePtrMut<T>,
    ) -> Result<(ForwardPtrs, [Option<SyncOnDrop<'b>>; 4])>
    where
        'a: 'b,
    {
        let (what, weight, weight_len) = weight;
        let (x, gx) = self.ptr("input", x, input.numel()?)?;
        let (weight, gw) = self.ptr(what, weight, weight_len)?;
        let (bias, gb) = match bias {
            Some((b, len)) => self.ptr("bias", b, len).map(|(p, g)| (p, Some(g)))?,
            None => (0, None),
        };
        let (y, gy) = self.ptr_mut("output", y, output.numel()?)?;
        Ok((
            ForwardPtrs { x, weight, bias, y },
            [Some(gx), Some(gw), gb, Some(gy)],
        ))
    }

    /// A buffer's device pointer after checking its length, with the guard that orders it on
    /// the stream (hold it until the launch is queued).
    fn ptr<'b, T>(
        &self,
        what: &'static str,
        buf: &'b dyn DevicePtr<T>,
        need: usize,
    ) -> Result<(CUdeviceptr, SyncOnDrop<'b>)>
    where
        'a: 'b,
    {
        check_len(what, need, buf.len())?;
        Ok(buf.device_ptr(self.stream))
    }

    /// [`Launch::ptr`] for a buffer the kernel writes.
    fn ptr_mut<'b, T>(
        &self,
        what: &'static str,
        buf: &'b mut dyn DevicePtrMut<T>,
        need: usize,
    ) -> Result<(CUdeviceptr, SyncOnDrop<'b>)>
    where
        'a: 'b,
    {
        check_len(what, need, buf.len())?;
        Ok(buf.device_ptr_mut(self.stream))
    }
}

/// Where a forward's `ptrs.weight` points: the OIHW weights, or the packed image of them that
/// the plan's kernel reads ([`LaunchPlan::weight_pack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightSource {
    Plain,
    Packed,
}

/// The alignment the tensor-core v4 kernel's 16-byte `cp.async` copies of the packed weights
/// need.
const PACKED_ALIGN: u64 = 16;

/// [`Error::Misaligned`] unless `ptr` is a multiple of `align`.
fn check_aligned(what: &'static str, ptr: CUdeviceptr, align: u64) -> Result<()> {
    if ptr % align != 0 {
        return Err(Error::Misaligned {
            what,
            addr: ptr,
            align,
        });
    }
    Ok(())
}

/// The plan's weight packing, or why packed weights cannot be used with it.
fn packed_plan(plan: &LaunchPlan) -> Result<WeightPack> {
    plan.weight_pack().ok_or_else(|| {
        Error::Unsupported(format!(
            "the launch's kernel {} reads the OIHW weights, not packed ones (only the tensor-core \
             v4 kernel does: LaunchPlan::weight_pack); call forward with the weights",
            plan.symbol()
        ))
    })
}

fn check_bias_presence(spec_has_bias: bool, given: bool, what: &str) -> Result<()> {
    if spec_has_bias != given {
        return Err(Error::Conv(if spec_has_bias {
            format!("the operator was built with a bias but no {what} was passed")
        } else {
            format!("a {what} was passed but the operator was built without a bias")
        }));
    }
    Ok(())
}

/// `forward`/`forward_raw` of an operator without weights.
macro_rules! pooling_forward {
    ($op:ident, $what:literal, $example:literal) => {
        impl $op {
            #[doc = concat!($what, " on the GPU: `x` holds `input`, `y` receives `output_shape(input)`, both in the launch's layout; one kernel queued on the launch's stream. Returns the output shape.")]
            ///
            /// ```no_run
            /// # use blurpool::cuda::{open_device, Kernels, Launch};
            /// # use blurpool::{presets, Layout, PadMode, Shape4};
            /// # use half::f16;
            /// # let ctx = open_device(0)?;
            /// # let kernels = Kernels::for_context(&ctx)?;
            /// # let stream = ctx.new_stream()?;
            /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
            #[doc = $example]
            /// let input = Shape4::new(8, 64, 56, 56);
            /// let x = stream.alloc_zeros::<f16>(input.numel()?)?;
            /// let mut y = stream.alloc_zeros::<f16>(op.output_shape(input)?.numel()?)?;
            /// op.forward(&launch, input, &x, &mut y)?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn forward<T: Element>(
                &self,
                launch: &Launch<'_>,
                input: Shape4,
                x: &dyn DevicePtr<T>,
                y: &mut dyn DevicePtrMut<T>,
            ) -> Result<Shape4> {
                let plan = self.plan(input, launch.target(T::DTYPE))?;
                let (x, _gx) = launch.ptr("input", x, input.numel()?)?;
                let (y, _gy) = launch.ptr_mut("output", y, plan.output.numel()?)?;
                let ptrs = ForwardPtrs { x, y, ..ForwardPtrs::default() };
                // SAFETY: x and y come from live cudarc buffers of the checked lengths whose
                // guards (held to the end of this scope) order them on the stream; x is a
                // shared borrow and y an exclusive one, so they do not overlap.
                unsafe { launch.run(&plan, ptrs, WeightSource::Plain) }?;
                Ok(plan.output)
            }

            #[doc = concat!($what, " on raw device pointers (`ptrs.x`, `ptrs.y`) of element type `dtype`. Returns the output shape.")]
            ///
            /// ```no_run
            /// # use blurpool::cuda::{open_device, ForwardPtrs, Kernels, Launch};
            /// # use blurpool::{presets, DType, Layout, PadMode, Shape4};
            /// # use cudarc::driver::{DevicePtr, DevicePtrMut};
            /// # let ctx = open_device(0)?;
            /// # let kernels = Kernels::for_context(&ctx)?;
            /// # let stream = ctx.new_stream()?;
            /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
            #[doc = $example]
            /// let input = Shape4::new(8, 64, 56, 56);
            /// let x = stream.alloc_zeros::<u16>(input.numel()?)?; // f16 bits, e.g. a caller's buffer
            /// let mut y = stream.alloc_zeros::<u16>(op.output_shape(input)?.numel()?)?;
            /// let (xp, _gx) = x.device_ptr(&stream);
            /// let (yp, _gy) = y.device_ptr_mut(&stream);
            /// let ptrs = ForwardPtrs { x: xp, y: yp, ..ForwardPtrs::default() };
            /// // SAFETY: x and y are live allocations of this context holding the input and the
            /// // output of `input` in a 2-byte type, valid until the stream has run the kernel.
            /// unsafe { op.forward_raw(&launch, DType::F16, input, ptrs) }?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            ///
            /// # Safety
            /// `ptrs.x` and `ptrs.y` must be device allocations of the kernels' context
            /// holding `input` and `output_shape(input)` elements of `dtype`, valid until the
            /// kernel has run on the launch's stream, and must not overlap.
            pub unsafe fn forward_raw(
                &self,
                launch: &Launch<'_>,
                dtype: DType,
                input: Shape4,
                ptrs: ForwardPtrs,
            ) -> Result<Shape4> {
                let plan = self.plan(input, launch.target(dtype))?;
                // SAFETY: the caller guarantees the buffers (see above).
                unsafe { launch.run(&plan, ptrs, WeightSource::Plain) }?;
                Ok(plan.output)
            }
        }
    };
}

pooling_forward!(
    MaxPool2d,
    "Dense max (stride 1)",
    "let op = blurpool::MaxPool2d::new((3, 3), (1, 1))?;"
);
pooling_forward!(
    BlurPool2d,
    "Blur + subsample",
    "let op = presets::timm::blur_pool2d(3, 2, PadMode::Reflect)?;"
);
pooling_forward!(
    MaxBlurPool2d,
    "Fused max + blur + subsample (the max map never reaches memory)",
    "let op = presets::antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0)?;"
);

/// `forward`/`forward_raw` of a conv operator.
macro_rules! conv_forward {
    ($op:ident, $what:literal, $example:literal) => {
        impl $op {
            #[doc = concat!($what, " on the GPU: one kernel queued on the launch's stream. `x` holds `input` and `y` receives `output_shape(input)` in the launch's layout; `weight` is Cout×(Cin/groups)×kh×kw and `bias` Cout (given exactly when the conv has a bias), in the activations' dtype. Returns the output shape.")]
            ///
            /// ```no_run
            /// # use blurpool::cuda::{open_device, Kernels, Launch};
            /// # use blurpool::{presets, Activation, Conv2dArgs, Conv2dSpec, Layout, PadMode, Shape4};
            /// # use half::f16;
            /// # let ctx = open_device(0)?;
            /// # let kernels = Kernels::for_context(&ctx)?;
            /// # let stream = ctx.new_stream()?;
            /// let launch = Launch::new(&kernels, &stream, Layout::Nhwc)?;
            /// let conv = Conv2dSpec::new(Conv2dArgs {
            ///     in_channels: 64, out_channels: 64, kernel: (3, 3), padding: (1, 1),
            ///     bias: true, activation: Activation::Relu, ..Default::default()
            /// })?;
            #[doc = $example]
            /// let input = Shape4::new(8, 64, 56, 56);
            /// let x = stream.alloc_zeros::<f16>(input.numel()?)?;
            /// let w = stream.alloc_zeros::<f16>(conv.weight_len())?;
            /// let b = stream.alloc_zeros::<f16>(conv.bias_len())?;
            /// let mut y = stream.alloc_zeros::<f16>(op.output_shape(input)?.numel()?)?;
            /// op.forward(&launch, input, &x, &w, Some(&b), &mut y)?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn forward<T: Element>(
                &self,
                launch: &Launch<'_>,
                input: Shape4,
                x: &dyn DevicePtr<T>,
                weight: &dyn DevicePtr<T>,
                bias: Option<&dyn DevicePtr<T>>,
                y: &mut dyn DevicePtrMut<T>,
            ) -> Result<Shape4> {
                let c = self.conv();
                check_bias_presence(c.has_bias(), bias.is_some(), "bias")?;
                let plan = self.plan(input, launch.target(T::DTYPE))?;
                let weight = ("weight", weight, c.weight_len());
                let bias = bias.map(|b| (b, c.bias_len()));
                let shapes = (input, plan.output);
                let (ptrs, _guards) = launch.conv_ptrs(shapes, x, weight, bias, y)?;
                // SAFETY: every pointer comes from a live cudarc buffer of the checked length
                // whose guard (held to the end of this scope) orders it on the stream; the
                // inputs are shared borrows and y an exclusive one, so y overlaps none.
                unsafe { launch.run(&plan, ptrs, WeightSource::Plain) }?;
                Ok(plan.output)
            }

            #[doc = concat!($what, " on raw device pointers (`ptrs.bias` = 0 when the conv has no bias). Returns the output shape.")]
            ///
            /// ```no_run
            /// # use blurpool::cuda::{open_device, ForwardPtrs, Kernels, Launch};
            /// # use blurpool::{presets, Activation, Conv2dArgs, Conv2dSpec, DType, Layout, PadMode, Shape4};
            /// # use cudarc::driver::{DevicePtr, DevicePtrMut};
            /// # let ctx = open_device(0)?;
            /// # let kernels = Kernels::for_context(&ctx)?;
            /// # let stream = ctx.new_stream()?;
            /// let launch = Launch::new(&kernels, &stream, Layout::Nhwc)?;
            /// let conv = Conv2dSpec::new(Conv2dArgs {
            ///     in_channels: 32, out_channels: 32, kernel: (3, 3), padding: (1, 1), ..Default::default()
            /// })?;
            #[doc = $example]
            /// let input = Shape4::new(4, 32, 28, 28);
            /// let x = stream.alloc_zeros::<f32>(input.numel()?)?;
            /// let w = stream.alloc_zeros::<f32>(conv.weight_len())?;
            /// let mut y = stream.alloc_zeros::<f32>(op.output_shape(input)?.numel()?)?;
            /// let (xp, _gx) = x.device_ptr(&stream);
            /// let (wp, _gw) = w.device_ptr(&stream);
            /// let (yp, _gy) = y.device_ptr_mut(&stream);
            /// let ptrs = ForwardPtrs { x: xp, weight: wp, bias: 0, y: yp };
            /// // SAFETY: live allocations of this context holding the input, the weight and the
            /// // output in f32, valid until the stream has run the kernel.
            /// unsafe { op.forward_raw(&launch, DType::F32, input, ptrs) }?;
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            ///
            /// # Safety
            /// `ptrs.x`, `ptrs.weight`, `ptrs.bias` (if the conv has one) and `ptrs.y` must be
            /// device allocations of the kernels' context holding `input`,
            /// `conv().weight_len()`, `conv().bias_len()` and `output_shape(input)` elements of
            /// `dtype`, valid until the kernel has run; `y` must not overlap the others.
            pub unsafe fn forward_raw(
                &self,
                launch: &Launch<'_>,
                dtype: DType,
                input: Shape4,
                ptrs: ForwardPtrs,
            ) -> Result<Shape4> {
                check_bias_presence(self.conv().has_bias(), ptrs.bias != 0, "bias")?;
                let plan = self.plan(input, launch.target(dtype))?;
                // SAFETY: the caller guarantees the buffers (see above).
                unsafe { launch.run(&plan, ptrs, WeightSource::Plain) }?;
                Ok(plan.output)
            }
        }
    };
}

conv_forward!(
    ConvBlurPool2d,
    "Fused conv (stride 1) + bias + activation + blur + subsample (the conv output never reaches memory)",
    "let op = presets::antialiased_cnns::conv_blur_pool(conv, PadMode::Reflect, 4, 2, 0)?;"
);
conv_forward!(
    BlurConv2d,
    "Fused blur (stride 1) + strided conv + bias + activation (the blurred map never reaches memory)",
    "let presets::composer::BlurConv::BlurFirst(op) = presets::composer::blur_conv2d(conv, (2, 2), true)? else { unreachable!() };"
);

/// Weights packed once, for inference loops that call the forward many times with the same
/// weights: the tensor-core v4 kernel reads its weights as a packed image
/// ([`LaunchPlan::weight_pack`]), which [`forward`](ConvBlurPool2d::forward) builds on every
/// call (a stream-ordered allocation and one more launch). The image depends only on the
/// weights and the dtype, not on N, H or W, so one pack serves every input whose plan has a
/// `weight_pack` of the same length; re-pack after changing the weights.
impl ConvBlurPool2d {
    /// Queues the packing of `weight` (Cout×Cin×3×3) into `packed`, which must hold
    /// `plan(input, launch.target(T::DTYPE))?.weight_pack()` elements and be 16-byte aligned
    /// (any cudarc allocation is). Errors when that plan's kernel does not read packed weights.
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, Kernels, Launch};
    /// # use blurpool::{presets, Activation, Conv2dArgs, Conv2dSpec, Layout, PadMode, Shape4};
    /// # use half::f16;
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nhwc)?;
    /// let conv = Conv2dSpec::new(Conv2dArgs {
    ///     in_channels: 64, out_channels: 64, kernel: (3, 3), padding: (1, 1), ..Default::default()
    /// })?;
    /// let op = presets::timm::conv_blur_pool(conv, 3, 2, PadMode::Reflect)?;
    /// let input = Shape4::new(8, 64, 56, 56);
    /// let x = stream.alloc_zeros::<f16>(input.numel()?)?;
    /// let w = stream.alloc_zeros::<f16>(conv.weight_len())?;
    /// let mut y = stream.alloc_zeros::<f16>(op.output_shape(input)?.numel()?)?;
    /// match op.plan(input, launch.target(blurpool::DType::F16))?.weight_pack() {
    ///     Some(pack) => {
    ///         let mut packed = stream.alloc_zeros::<f16>(pack.len())?;
    ///         op.pack_weights(&launch, input, &w, &mut packed)?; // once
    ///         for _ in 0..100 {
    ///             op.forward_packed(&launch, input, &x, &packed, None, &mut y)?;
    ///         }
    ///     }
    ///     None => {
    ///         op.forward(&launch, input, &x, &w, None, &mut y)?;
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pack_weights<T: Element>(
        &self,
        launch: &Launch<'_>,
        input: Shape4,
        weight: &dyn DevicePtr<T>,
        packed: &mut dyn DevicePtrMut<T>,
    ) -> Result<()> {
        let plan = self.plan(input, launch.target(T::DTYPE))?;
        let pack = packed_plan(&plan)?;
        let (weight, _gw) = launch.ptr("weight", weight, self.conv().weight_len())?;
        let (packed, _gp) = launch.ptr_mut("packed weight", packed, pack.len())?;
        check_aligned("packed weight", packed, PACKED_ALIGN)?;
        // SAFETY: both pointers come from live cudarc buffers of the checked lengths whose
        // guards (held to the end of this scope) order them on the stream; `packed` is an
        // exclusive borrow, so it does not overlap the weights.
        unsafe { launch.queue_pack(&plan, pack, weight, packed) }
    }

    /// [`pack_weights`](Self::pack_weights) on raw device pointers of element type `dtype`.
    ///
    /// # Safety
    /// `weight` must hold `conv().weight_len()` and `packed` the plan's `weight_pack().len()`
    /// elements of `dtype`, device memory of the kernels' context valid until the kernel has
    /// run on the launch's stream, not overlapping.
    pub unsafe fn pack_weights_raw(
        &self,
        launch: &Launch<'_>,
        dtype: DType,
        input: Shape4,
        weight: CUdeviceptr,
        packed: CUdeviceptr,
    ) -> Result<()> {
        let plan = self.plan(input, launch.target(dtype))?;
        let pack = packed_plan(&plan)?;
        check_aligned("packed weight", packed, PACKED_ALIGN)?;
        // SAFETY: the caller guarantees the buffers (see above).
        unsafe { launch.queue_pack(&plan, pack, weight, packed) }
    }

    /// [`forward`](Self::forward) reading weights packed by
    /// [`pack_weights`](Self::pack_weights) (`packed`: the plan's `weight_pack().len()`
    /// elements) instead of packing them on every call: one kernel, no allocation. Errors when
    /// the plan's kernel does not read packed weights. Returns the output shape.
    pub fn forward_packed<T: Element>(
        &self,
        launch: &Launch<'_>,
        input: Shape4,
        x: &dyn DevicePtr<T>,
        packed: &dyn DevicePtr<T>,
        bias: Option<&dyn DevicePtr<T>>,
        y: &mut dyn DevicePtrMut<T>,
    ) -> Result<Shape4> {
        let c = self.conv();
        check_bias_presence(c.has_bias(), bias.is_some(), "bias")?;
        let plan = self.plan(input, launch.target(T::DTYPE))?;
        let weight = ("packed weight", packed, packed_plan(&plan)?.len());
        let bias = bias.map(|b| (b, c.bias_len()));
        let shapes = (input, plan.output);
        let (ptrs, _guards) = launch.conv_ptrs(shapes, x, weight, bias, y)?;
        // SAFETY: every pointer comes from a live cudarc buffer of the checked length whose
        // guard (held to the end of this scope) orders it on the stream; the inputs are shared
        // borrows and y an exclusive one, so y overlaps none; run checks the alignment.
        unsafe { launch.run(&plan, ptrs, WeightSource::Packed) }?;
        Ok(plan.output)
    }

    /// [`forward_packed`](Self::forward_packed) on raw device pointers: `ptrs.weight` is the
    /// packed weights. Returns the output shape.
    ///
    /// # Safety
    /// As [`forward_raw`](Self::forward_raw), with `ptrs.weight` holding the plan's
    /// `weight_pack().len()` packed elements of `dtype` (16-byte aligned, checked).
    pub unsafe fn forward_packed_raw(
        &self,
        launch: &Launch<'_>,
        dtype: DType,
        input: Shape4,
        ptrs: ForwardPtrs,
    ) -> Result<Shape4> {
        check_bias_presence(self.conv().has_bias(), ptrs.bias != 0, "bias")?;
        let plan = self.plan(input, launch.target(dtype))?;
        // SAFETY: the caller guarantees the buffers (see above).
        unsafe { launch.run(&plan, ptrs, WeightSource::Packed) }?;
        Ok(plan.output)
    }
}

impl MaxPool2d {
    /// Gradient of the dense max with respect to x (PyTorch's argmax rule, deterministic):
    /// `dy` holds `output_shape(input)`, `dx` receives `input`.
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, Kernels, Launch, MaxGrads};
    /// # use blurpool::{Layout, MaxPool2d, Shape4};
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
    /// let op = MaxPool2d::new((2, 2), (0, 0))?;
    /// let input = Shape4::new(2, 8, 16, 16);
    /// let x = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// let dy = stream.alloc_zeros::<f32>(op.output_shape(input)?.numel()?)?;
    /// let mut dx = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// op.backward(&launch, input, MaxGrads { x: &x, dy: &dy, dx: &mut dx })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backward<T: Element>(
        &self,
        launch: &Launch<'_>,
        input: Shape4,
        grads: MaxGrads<'_, T>,
    ) -> Result<()> {
        let plan = self.backward_plan(input, launch.target(T::DTYPE))?;
        max_backward(launch, &plan, input, grads)
    }

    /// [`MaxPool2d::backward`] on raw device pointers (`x`, `dy`, `dx`).
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, GradPtrs, Kernels, Launch};
    /// # use blurpool::{DType, Layout, Shape4, MaxPool2d};
    /// # use cudarc::driver::{DevicePtr, DevicePtrMut};
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
    /// let op = MaxPool2d::new((2, 2), (0, 0))?;
    /// let input = Shape4::new(2, 8, 16, 16);
    /// let x = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// let dy = stream.alloc_zeros::<f32>(op.output_shape(input)?.numel()?)?;
    /// let mut dx = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// let ptrs = GradPtrs {
    ///     x: x.device_ptr(&stream).0,
    ///     dy: dy.device_ptr(&stream).0,
    ///     dx: dx.device_ptr_mut(&stream).0,
    ///     ..GradPtrs::default()
    /// };
    /// // SAFETY: live f32 allocations of this context of the shapes' lengths, kept until the
    /// // stream has run the kernels.
    /// unsafe { op.backward_raw(&launch, DType::F32, input, &ptrs) }?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    /// As [`Operator::backward_raw`].
    pub unsafe fn backward_raw(
        &self,
        launch: &Launch<'_>,
        dtype: DType,
        input: Shape4,
        ptrs: &GradPtrs,
    ) -> Result<()> {
        let plan = self.backward_plan(input, launch.target(dtype))?;
        // SAFETY: the caller's contract.
        unsafe { launch.run_backward(&plan, dtype, ptrs) }
    }
}

impl MaxBlurPool2d {
    /// Fused gradient with respect to x: the blur's adjoint of dy is routed to each window's
    /// argmax (recomputed from x, ties as PyTorch's max_pool2d backward) without writing the
    /// max map's gradient. `dy` holds `output_shape(input)`, `dx` receives `input`.
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, Kernels, Launch, MaxGrads};
    /// # use blurpool::{presets::antialiased_cnns, Layout, PadMode, Shape4};
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
    /// let op = antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0)?;
    /// let input = Shape4::new(2, 8, 16, 16);
    /// let x = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// let dy = stream.alloc_zeros::<f32>(op.output_shape(input)?.numel()?)?;
    /// let mut dx = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// op.backward(&launch, input, MaxGrads { x: &x, dy: &dy, dx: &mut dx })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backward<T: Element>(
        &self,
        launch: &Launch<'_>,
        input: Shape4,
        grads: MaxGrads<'_, T>,
    ) -> Result<()> {
        let plan = self.backward_plan(input, launch.target(T::DTYPE))?;
        max_backward(launch, &plan, input, grads)
    }

    /// [`MaxBlurPool2d::backward`] on raw device pointers (`x`, `dy`, `dx`).
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, GradPtrs, Kernels, Launch};
    /// # use blurpool::{DType, Layout, Shape4, presets::antialiased_cnns, PadMode};
    /// # use cudarc::driver::{DevicePtr, DevicePtrMut};
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
    /// let op = antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0)?;
    /// let input = Shape4::new(2, 8, 16, 16);
    /// let x = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// let dy = stream.alloc_zeros::<f32>(op.output_shape(input)?.numel()?)?;
    /// let mut dx = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// let ptrs = GradPtrs {
    ///     x: x.device_ptr(&stream).0,
    ///     dy: dy.device_ptr(&stream).0,
    ///     dx: dx.device_ptr_mut(&stream).0,
    ///     ..GradPtrs::default()
    /// };
    /// // SAFETY: live f32 allocations of this context of the shapes' lengths, kept until the
    /// // stream has run the kernels.
    /// unsafe { op.backward_raw(&launch, DType::F32, input, &ptrs) }?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    /// As [`Operator::backward_raw`].
    pub unsafe fn backward_raw(
        &self,
        launch: &Launch<'_>,
        dtype: DType,
        input: Shape4,
        ptrs: &GradPtrs,
    ) -> Result<()> {
        let plan = self.backward_plan(input, launch.target(dtype))?;
        // SAFETY: the caller's contract.
        unsafe { launch.run_backward(&plan, dtype, ptrs) }
    }
}

fn max_backward<T: Element>(
    launch: &Launch<'_>,
    plan: &BackwardPlan,
    input: Shape4,
    grads: MaxGrads<'_, T>,
) -> Result<()> {
    let n_in = input.numel()?;
    let (x, _gx) = launch.ptr("input", grads.x, n_in)?;
    let (dy, _gdy) = launch.ptr("output gradient (dy)", grads.dy, plan.output().numel()?)?;
    let (dx, _gdx) = launch.ptr_mut("input gradient (dx)", grads.dx, n_in)?;
    let ptrs = GradPtrs {
        x,
        dy,
        dx,
        ..GradPtrs::default()
    };
    // SAFETY: every pointer comes from a live cudarc buffer whose length was checked against
    // the shapes and whose guard (held to the end of this scope) orders it on the stream;
    // inputs are shared borrows and dx an exclusive one, so they cannot overlap.
    unsafe { launch.run_backward(plan, T::DTYPE, &ptrs) }
}

impl BlurPool2d {
    /// Gradient of blur + subsample with respect to x (its transpose; x is not needed):
    /// `dy` holds `output_shape(input)`, `dx` receives `input`.
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, Kernels, Launch};
    /// # use blurpool::{presets::timm, Layout, PadMode, Shape4};
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
    /// let op = timm::blur_pool2d(3, 2, PadMode::Reflect)?;
    /// let input = Shape4::new(2, 8, 16, 16);
    /// let dy = stream.alloc_zeros::<f32>(op.output_shape(input)?.numel()?)?;
    /// let mut dx = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// op.backward(&launch, input, &dy, &mut dx)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backward<T: Element>(
        &self,
        launch: &Launch<'_>,
        input: Shape4,
        dy: &dyn DevicePtr<T>,
        dx: &mut dyn DevicePtrMut<T>,
    ) -> Result<()> {
        let plan = self.backward_plan(input, launch.target(T::DTYPE))?;
        let (dy, _gdy) = launch.ptr("output gradient (dy)", dy, plan.output().numel()?)?;
        let (dx, _gdx) = launch.ptr_mut("input gradient (dx)", dx, input.numel()?)?;
        let ptrs = GradPtrs {
            dy,
            dx,
            ..GradPtrs::default()
        };
        // SAFETY: as in `max_backward`: checked lengths, guards held to the end of scope, a
        // shared input and an exclusive output.
        unsafe { launch.run_backward(&plan, T::DTYPE, &ptrs) }
    }

    /// [`BlurPool2d::backward`] on raw device pointers (`dy`, `dx`).
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, GradPtrs, Kernels, Launch};
    /// # use blurpool::{DType, Layout, Shape4, presets::timm, PadMode};
    /// # use cudarc::driver::{DevicePtr, DevicePtrMut};
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
    /// let op = timm::blur_pool2d(3, 2, PadMode::Reflect)?;
    /// let input = Shape4::new(2, 8, 16, 16);
    /// let x = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// let dy = stream.alloc_zeros::<f32>(op.output_shape(input)?.numel()?)?;
    /// let mut dx = stream.alloc_zeros::<f32>(input.numel()?)?;
    /// let ptrs = GradPtrs {
    ///     x: x.device_ptr(&stream).0,
    ///     dy: dy.device_ptr(&stream).0,
    ///     dx: dx.device_ptr_mut(&stream).0,
    ///     ..GradPtrs::default()
    /// };
    /// // SAFETY: live f32 allocations of this context of the shapes' lengths, kept until the
    /// // stream has run the kernels.
    /// unsafe { op.backward_raw(&launch, DType::F32, input, &ptrs) }?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    /// As [`Operator::backward_raw`].
    pub unsafe fn backward_raw(
        &self,
        launch: &Launch<'_>,
        dtype: DType,
        input: Shape4,
        ptrs: &GradPtrs,
    ) -> Result<()> {
        let plan = self.backward_plan(input, launch.target(dtype))?;
        // SAFETY: the caller's contract.
        unsafe { launch.run_backward(&plan, dtype, ptrs) }
    }
}

impl ConvBlurPool2d {
    /// Gradients with respect to x, the weight and the bias (when the conv has one), in three
    /// deterministic passes over the workspace. dx, dweight and dbias are overwritten.
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, ConvGrads, Kernels, Launch};
    /// # use blurpool::{presets, Activation, Conv2dSpec, Layout, PadMode, Shape4};
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
    /// let conv = Conv2dSpec::depthwise(8, (3, 3), (1, 1), false, Activation::Relu6)?;
    /// let op = presets::timm::conv_blur_pool(conv, 3, 2, PadMode::Reflect)?;
    /// let input = Shape4::new(2, 8, 16, 16);
    /// let alloc = |n: usize| stream.alloc_zeros::<f32>(n);
    /// let (x, w, dy) = (alloc(input.numel()?)?, alloc(conv.weight_len())?, alloc(op.output_shape(input)?.numel()?)?);
    /// let (mut dx, mut dw) = (alloc(input.numel()?)?, alloc(conv.weight_len())?);
    /// let mut ws = alloc(op.backward_workspace_len(input)?)?;
    /// op.backward(&launch, input, ConvGrads {
    ///     x: &x, weight: &w, bias: None, dy: &dy,
    ///     dx: &mut dx, dweight: &mut dw, dbias: None, workspace: &mut ws,
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backward<T: Element>(
        &self,
        launch: &Launch<'_>,
        input: Shape4,
        grads: ConvGrads<'_, T>,
    ) -> Result<()> {
        let c = self.conv();
        check_bias_presence(c.has_bias(), grads.bias.is_some(), "bias")?;
        check_bias_presence(c.has_bias(), grads.dbias.is_some(), "dbias")?;
        let plan = self.backward_plan(input, launch.target(T::DTYPE))?;
        let n_in = input.numel()?;
        let (x, _gx) = launch.ptr("input", grads.x, n_in)?;
        let (weight, _gw) = launch.ptr("weight", grads.weight, c.weight_len())?;
        let (dy, _gdy) = launch.ptr("output gradient (dy)", grads.dy, plan.output().numel()?)?;
        let (dx, _gdx) = launch.ptr_mut("input gradient (dx)", grads.dx, n_in)?;
        let (dweight, _gdw) =
            launch.ptr_mut("weight gradient (dweight)", grads.dweight, c.weight_len())?;
        let (workspace, _gws) =
            launch.ptr_mut("workspace", grads.workspace, plan.workspace_len())?;
        let (bias, _gb) = match grads.bias {
            Some(b) => launch
                .ptr("bias", b, c.bias_len())
                .map(|(p, g)| (p, Some(g)))?,
            None => (0, None),
        };
        let (dbias, _gdb) = match grads.dbias {
            Some(db) => launch
                .ptr_mut("bias gradient (dbias)", db, c.bias_len())
                .map(|(p, g)| (p, Some(g)))?,
            None => (0, None),
        };
        let ptrs = GradPtrs {
            x,
            weight,
            bias,
            dy,
            dx,
            dweight,
            dbias,
            workspace,
        };
        // SAFETY: as in `max_backward`: checked lengths, guards held to the end of scope,
        // shared inputs and exclusive outputs (distinct `&mut` borrows cannot overlap).
        unsafe { launch.run_backward(&plan, T::DTYPE, &ptrs) }
    }

    /// [`ConvBlurPool2d::backward`] on raw device pointers (`ptrs.bias`/`ptrs.dbias` = 0
    /// when the conv has no bias).
    ///
    /// ```no_run
    /// # use blurpool::cuda::{open_device, GradPtrs, Kernels, Launch};
    /// # use blurpool::{presets, Activation, Conv2dSpec, DType, Layout, PadMode, Shape4};
    /// # use cudarc::driver::{DevicePtr, DevicePtrMut};
    /// # let ctx = open_device(0)?;
    /// # let kernels = Kernels::for_context(&ctx)?;
    /// # let stream = ctx.new_stream()?;
    /// let launch = Launch::new(&kernels, &stream, Layout::Nchw)?;
    /// let conv = Conv2dSpec::depthwise(8, (3, 3), (1, 1), false, Activation::Relu6)?;
    /// let op = presets::timm::conv_blur_pool(conv, 3, 2, PadMode::Reflect)?;
    /// let input = Shape4::new(2, 8, 16, 16);
    /// let alloc = |n: usize| stream.alloc_zeros::<f32>(n);
    /// let (x, w, dy) = (alloc(input.numel()?)?, alloc(conv.weight_len())?, alloc(op.output_shape(input)?.numel()?)?);
    /// let (mut dx, mut dw) = (alloc(input.numel()?)?, alloc(conv.weight_len())?);
    /// let mut ws = alloc(op.backward_workspace_len(input)?)?;
    /// let ptrs = GradPtrs {
    ///     x: x.device_ptr(&stream).0,
    ///     weight: w.device_ptr(&stream).0,
    ///     dy: dy.device_ptr(&stream).0,
    ///     dx: dx.device_ptr_mut(&stream).0,
    ///     dweight: dw.device_ptr_mut(&stream).0,
    ///     workspace: ws.device_ptr_mut(&stream).0,
    ///     ..GradPtrs::default()
    /// };
    /// // SAFETY: live f32 allocations of this context of the lengths their roles need, kept
    /// // until the stream has run the kernels.
    /// unsafe { op.backward_raw(&launch, DType::F32, input, &ptrs) }?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    /// As [`Operator::backward_raw`].
    pub unsafe fn backward_raw(
        &self,
        launch: &Launch<'_>,
        dtype: DType,
        input: Shape4,
        ptrs: &GradPtrs,
    ) -> Result<()> {
        let c = self.conv();
        check_bias_presence(c.has_bias(), ptrs.bias != 0, "bias")?;
        check_bias_presence(c.has_bias(), ptrs.dbias != 0, "dbias")?;
        let plan = self.backward_plan(input, launch.target(dtype))?;
        // SAFETY: the caller's contract.
        unsafe { launch.run_backward(&plan, dtype, ptrs) }
    }
}

impl Operator {
    /// Any operator's forward on raw device pointers (`weight`/`bias` = 0 where unused): the
    /// operator's own `forward_raw` (see [`MaxBlurPool2d::forward_raw`] and
    /// [`ConvBlurPool2d::forward_raw`] for examples). Returns the output shape.
    ///
    /// # Safety
    /// As the operator's own `forward_raw`.
    pub unsafe fn forward_raw(
        &self,
        launch: &Launch<'_>,
        dtype: DType,
        input: Shape4,
        ptrs: ForwardPtrs,
    ) -> Result<Shape4> {
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            match self {
                Operator::MaxPool(op) => op.forward_raw(launch, dtype, input, ptrs),
                Operator::BlurPool(op) => op.forward_raw(launch, dtype, input, ptrs),
                Operator::MaxBlurPool(op) => op.forward_raw(launch, dtype, input, ptrs),
                Operator::ConvBlurPool(op) => op.forward_raw(launch, dtype, input, ptrs),
                Operator::BlurConv(op) => op.forward_raw(launch, dtype, input, ptrs),
            }
        }
    }

    /// Any operator's gradients on raw device pointers: x, dy and dx in the launch's layout;
    /// weight, dweight (Cout×Cin/groups×kh×kw) and bias, dbias (Cout) for ConvBlurPool2d, with
    /// an f32 workspace of `backward_plan(..)?.workspace_len()` elements. dx, dweight and
    /// dbias are overwritten; unused pointers may be 0. BlurConv2d has no GPU backward yet
    /// ([`Error::Unsupported`]). Examples: [`MaxBlurPool2d::backward_raw`],
    /// [`ConvBlurPool2d::backward_raw`].
    ///
    /// # Safety
    /// Every pointer the plan uses must be a device allocation of the kernels' context holding
    /// the elements its shape needs (of `dtype`; the workspace of f32), valid until the kernels
    /// have run on the launch's stream; the outputs must not overlap the inputs or each other.
    pub unsafe fn backward_raw(
        &self,
        launch: &Launch<'_>,
        dtype: DType,
        input: Shape4,
        ptrs: &GradPtrs,
    ) -> Result<()> {
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            match self {
                Operator::MaxPool(op) => op.backward_raw(launch, dtype, input, ptrs),
                Operator::BlurPool(op) => op.backward_raw(launch, dtype, input, ptrs),
                Operator::MaxBlurPool(op) => op.backward_raw(launch, dtype, input, ptrs),
                Operator::ConvBlurPool(op) => op.backward_raw(launch, dtype, input, ptrs),
                Operator::BlurConv(_) => {
                    self.backward_plan(input, launch.target(dtype)).map(|_| ())
                }
            }
        }
    }
}
