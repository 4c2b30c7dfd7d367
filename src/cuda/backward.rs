//! Backward launches: each operator's gradient as a short, fixed sequence of gather kernels
//! (kernels/backward.cu). No atomics anywhere, so gradients are bitwise reproducible.
//!
//! * MaxPool2d, BlurPool2d, MaxBlurPool2d: one kernel, one thread per input-gradient element
//!   (MaxBlurPool2d's max-map gradient is evaluated on the fly and never written).
//! * ConvBlurPool2d: the conv map's gradient dz into an f32 workspace
//!   ([`ConvBlurPool2d::backward_workspace_len`] elements), then dx (transposed conv), dweight
//!   (one block per weight, a fixed tree reduction) and dbias (one block per channel).
//! * BlurConv2d: not yet on the GPU (the CPU reference has it: [`crate::backward`]).

use std::sync::Arc;

use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut};

use super::{
    check_bias_presence, checked_ptr, checked_ptr_mut, grid_blocks, Bias, BpParams, KernelKind,
    Kernels,
};
use crate::error::{Error, Result};
use crate::ops::{BlurPool2d, ConvBlurPool2d, MaxBlurPool2d, MaxPool2d, Operator};
use crate::tensor::{DType, Element, Layout, Shape4};

/// How a kernel's work is spread over the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// One thread per element (grid-stride loop over this many).
    Elements(i64),
    /// One block per element (block-stride loop over this many), for reductions.
    Blocks(i64),
}

impl Work {
    /// Elements to cover.
    pub fn count(self) -> i64 {
        match self {
            Work::Elements(n) | Work::Blocks(n) => n,
        }
    }

    /// Blocks to launch, at most `max_blocks` (the kernels loop over the rest).
    pub fn grid(self, max_blocks: u32) -> u32 {
        match self {
            Work::Elements(n) => grid_blocks(n, max_blocks),
            Work::Blocks(n) => n.clamp(1, max_blocks.max(1) as i64) as u32,
        }
    }
}

/// The buffers a backward step reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    X,
    Weight,
    Bias,
    Dy,
    Dx,
    DWeight,
    DBias,
    /// The f32 workspace (ConvBlurPool2d: the conv map's gradient).
    Workspace,
}

/// One kernel launch of a backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackwardStep {
    pub kind: KernelKind,
    pub work: Work,
    /// The kernel's four input pointers (None: unused, pass 0).
    pub inputs: [Option<Buf>; 4],
    pub output: Buf,
}

/// An operator's backward pass: the parameter block (the forward's), the launches in order, and
/// the f32 workspace they need.
#[derive(Debug, Clone, PartialEq)]
pub struct BackwardPlan {
    pub params: BpParams,
    pub output: Shape4,
    pub steps: Vec<BackwardStep>,
    /// Elements of f32 workspace (0: none).
    pub workspace_len: usize,
}

/// Device pointers of a backward call (0 where the operator has no such buffer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradPtrs {
    pub x: CUdeviceptr,
    pub weight: CUdeviceptr,
    pub bias: CUdeviceptr,
    pub dy: CUdeviceptr,
    pub dx: CUdeviceptr,
    pub dweight: CUdeviceptr,
    pub dbias: CUdeviceptr,
    pub workspace: CUdeviceptr,
}

impl Buf {
    /// The buffer's name in messages (the argument names of the C ABI).
    pub fn name(self) -> &'static str {
        match self {
            Buf::X => "x",
            Buf::Weight => "weight",
            Buf::Bias => "bias",
            Buf::Dy => "dy",
            Buf::Dx => "dx",
            Buf::DWeight => "dweight",
            Buf::DBias => "dbias",
            Buf::Workspace => "workspace",
        }
    }
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

fn step(kind: KernelKind, work: Work, inputs: [Option<Buf>; 4], output: Buf) -> BackwardStep {
    BackwardStep {
        kind,
        work,
        inputs,
        output,
    }
}

impl Operator {
    /// The launches [`Operator::backward_raw`] makes for `input`, or the error it would return.
    pub fn backward_plan(&self, input: Shape4) -> Result<BackwardPlan> {
        use Buf::*;
        let (output, p) = self.launch_params(input)?;
        let (steps, workspace_len) = match self {
            Operator::MaxPool(_) => (
                vec![step(
                    KernelKind::MaxPoolBackward,
                    Work::Elements(p.total_in),
                    [Some(X), None, Some(Dy), None],
                    Dx,
                )],
                0,
            ),
            Operator::BlurPool(_) => (
                vec![step(
                    KernelKind::BlurPoolBackward,
                    Work::Elements(p.total_in),
                    [None, None, Some(Dy), None],
                    Dx,
                )],
                0,
            ),
            Operator::MaxBlurPool(_) => (
                vec![step(
                    KernelKind::MaxBlurPoolBackward,
                    Work::Elements(p.total_in),
                    [Some(X), None, Some(Dy), None],
                    Dx,
                )],
                0,
            ),
            Operator::ConvBlurPool(op) => {
                let c = op.conv();
                i32::try_from(c.weight_len()).map_err(|_| {
                    Error::ShapeOverflow(format!(
                        "the weight has {} elements; the backward kernels index it with 32 bits",
                        c.weight_len()
                    ))
                })?;
                let mut steps = vec![
                    step(
                        KernelKind::ConvBlurPoolDz,
                        Work::Elements(p.total_map),
                        [
                            Some(X),
                            Some(Weight),
                            Some(Dy),
                            c.has_bias().then_some(Bias),
                        ],
                        Workspace,
                    ),
                    step(
                        KernelKind::ConvDx,
                        Work::Elements(p.total_in),
                        [None, Some(Weight), Some(Workspace), None],
                        Dx,
                    ),
                    step(
                        KernelKind::ConvDw,
                        Work::Blocks(c.weight_len() as i64),
                        [Some(X), None, Some(Workspace), None],
                        DWeight,
                    ),
                ];
                if c.has_bias() {
                    steps.push(step(
                        KernelKind::ConvDb,
                        Work::Blocks(c.bias_len() as i64),
                        [None, None, Some(Workspace), None],
                        DBias,
                    ));
                }
                (steps, p.total_map as usize)
            }
            Operator::BlurConv(_) => {
                return Err(Error::Unsupported(
                    "BlurConv2d backward is not implemented on the GPU yet (the CPU reference \
                     blurpool::backward has it)"
                        .into(),
                ))
            }
        };
        Ok(BackwardPlan {
            params: p,
            output,
            steps,
            workspace_len,
        })
    }

    /// Gradients of any operator on raw device pointers: x, dy and dx in `layout`; weight,
    /// dweight (Cout×Cin/groups×kh×kw) and bias, dbias (Cout) for ConvBlurPool2d; and, for
    /// ConvBlurPool2d, an f32 workspace of `backward_plan(input)?.workspace_len` elements. dx,
    /// dweight and dbias are overwritten. Unused pointers may be 0.
    ///
    /// # Safety
    /// Every pointer the plan uses must be a device allocation of the kernels' context holding
    /// the elements its shape needs (of `dtype`; the workspace of f32), valid until the kernels
    /// have run on `stream`; the outputs must not overlap the inputs or each other.
    pub unsafe fn backward_raw(
        &self,
        kernels: &Kernels,
        stream: &CudaStream,
        dtype: DType,
        input: Shape4,
        layout: Layout,
        ptrs: &GradPtrs,
    ) -> Result<()> {
        let plan = self.backward_plan(input)?;
        if let Some(c) = self.conv() {
            check_bias_presence(c.has_bias(), ptrs.bias != 0)?;
            check_bias_presence(c.has_bias(), ptrs.dbias != 0)?;
        }
        for s in &plan.steps {
            let inputs = s.inputs.map(|b| b.map_or(0, |b| ptrs.get(b)));
            let [a, b, c, d] = inputs;
            // SAFETY: the caller guarantees every buffer the plan names (see above).
            unsafe {
                kernels.launch_work(
                    s.kind,
                    dtype,
                    layout,
                    stream,
                    &plan.params,
                    s.work,
                    [a, b, c, d, ptrs.get(s.output)],
                )
            }?;
        }
        Ok(())
    }
}

impl MaxPool2d {
    /// Gradient of the dense max with respect to x (PyTorch's argmax rule, deterministic):
    /// `dy` holds `output_shape(input)`, `dx` receives `input`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Element>(
        &self,
        kernels: &Kernels,
        stream: &Arc<CudaStream>,
        input: Shape4,
        layout: Layout,
        x: &impl DevicePtr<T>,
        dy: &impl DevicePtr<T>,
        dx: &mut impl DevicePtrMut<T>,
    ) -> Result<()> {
        let op = Operator::MaxPool(*self);
        pooling_backward(&op, kernels, stream, input, layout, Some(x), dy, dx)
    }
}

impl BlurPool2d {
    /// Gradient of blur + subsample with respect to x (its transpose; x is not needed):
    /// `dy` holds `output_shape(input)`, `dx` receives `input`.
    pub fn backward<T: Element>(
        &self,
        kernels: &Kernels,
        stream: &Arc<CudaStream>,
        input: Shape4,
        layout: Layout,
        dy: &impl DevicePtr<T>,
        dx: &mut impl DevicePtrMut<T>,
    ) -> Result<()> {
        let op = Operator::BlurPool(self.clone());
        pooling_backward::<T>(&op, kernels, stream, input, layout, None, dy, dx)
    }
}

impl MaxBlurPool2d {
    /// Fused gradient with respect to x: the blur's adjoint of dy is routed to each window's
    /// argmax (recomputed from x, ties as PyTorch's max_pool2d backward) without writing the
    /// max map's gradient. `dy` holds `output_shape(input)`, `dx` receives `input`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Element>(
        &self,
        kernels: &Kernels,
        stream: &Arc<CudaStream>,
        input: Shape4,
        layout: Layout,
        x: &impl DevicePtr<T>,
        dy: &impl DevicePtr<T>,
        dx: &mut impl DevicePtrMut<T>,
    ) -> Result<()> {
        let op = Operator::MaxBlurPool(self.clone());
        pooling_backward(&op, kernels, stream, input, layout, Some(x), dy, dx)
    }
}

#[allow(clippy::too_many_arguments)]
fn pooling_backward<T: Element>(
    op: &Operator,
    kernels: &Kernels,
    stream: &Arc<CudaStream>,
    input: Shape4,
    layout: Layout,
    x: Option<&dyn DevicePtr<T>>,
    dy: &dyn DevicePtr<T>,
    dx: &mut dyn DevicePtrMut<T>,
) -> Result<()> {
    let out = op.output_shape(input)?;
    let (n_in, n_out) = (input.numel()?, out.numel()?);
    let (xp, _gx) = match x {
        Some(x) => checked_ptr("input", x, n_in, stream).map(|(p, g)| (p, Some(g)))?,
        None => (0, None),
    };
    let (dyp, _gdy) = checked_ptr("output gradient (dy)", dy, n_out, stream)?;
    let (dxp, _gdx) = checked_ptr_mut("input gradient (dx)", dx, n_in, stream)?;
    let ptrs = GradPtrs {
        x: xp,
        dy: dyp,
        dx: dxp,
        ..Default::default()
    };
    // SAFETY: every pointer comes from a live cudarc buffer whose length was checked against
    // the shapes and whose guard (held to the end of this scope) orders it on `stream`; inputs
    // are shared borrows and outputs exclusive ones, so they cannot overlap.
    unsafe { op.backward_raw(kernels, stream, T::DTYPE, input, layout, &ptrs) }
}

impl ConvBlurPool2d {
    /// f32 elements of workspace [`ConvBlurPool2d::backward`] needs for `input`: the conv map's
    /// gradient (N × Cout × the conv map).
    pub fn backward_workspace_len(&self, input: Shape4) -> Result<usize> {
        self.conv_map_shape(input)?.numel()
    }

    /// Gradients with respect to x, the weight and the bias (when the conv has one), in three
    /// deterministic passes over `workspace` (see [`ConvBlurPool2d::backward_workspace_len`]).
    /// `dy` holds `output_shape(input)`; dx, dweight and dbias are overwritten.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Element>(
        &self,
        kernels: &Kernels,
        stream: &Arc<CudaStream>,
        input: Shape4,
        layout: Layout,
        x: &impl DevicePtr<T>,
        weight: &dyn DevicePtr<T>,
        bias: Bias<'_, T>,
        dy: &impl DevicePtr<T>,
        dx: &mut impl DevicePtrMut<T>,
        dweight: &mut dyn DevicePtrMut<T>,
        dbias: Option<&mut dyn DevicePtrMut<T>>,
        workspace: &mut dyn DevicePtrMut<f32>,
    ) -> Result<()> {
        let c = self.conv();
        check_bias_presence(c.has_bias(), bias.is_some())?;
        check_bias_presence(c.has_bias(), dbias.is_some())?;
        let op = Operator::ConvBlurPool(self.clone());
        let out = op.output_shape(input)?;
        let (xp, _gx) = checked_ptr("input", x, input.numel()?, stream)?;
        let (wp, _gw) = checked_ptr("weight", weight, c.weight_len(), stream)?;
        let (dyp, _gdy) = checked_ptr("output gradient (dy)", dy, out.numel()?, stream)?;
        let (dxp, _gdx) = checked_ptr_mut("input gradient (dx)", dx, input.numel()?, stream)?;
        let (dwp, _gdw) =
            checked_ptr_mut("weight gradient (dweight)", dweight, c.weight_len(), stream)?;
        let ws_len = self.backward_workspace_len(input)?;
        let (wsp, _gws) = checked_ptr_mut("workspace", workspace, ws_len, stream)?;
        let (bp, _gb) = match bias {
            Some(b) => checked_ptr("bias", b, c.bias_len(), stream).map(|(p, g)| (p, Some(g)))?,
            None => (0, None),
        };
        let (dbp, _gdb) = match dbias {
            Some(db) => checked_ptr_mut("bias gradient (dbias)", db, c.bias_len(), stream)
                .map(|(p, g)| (p, Some(g)))?,
            None => (0, None),
        };
        let ptrs = GradPtrs {
            x: xp,
            weight: wp,
            bias: bp,
            dy: dyp,
            dx: dxp,
            dweight: dwp,
            dbias: dbp,
            workspace: wsp,
        };
        // SAFETY: as in `pooling_backward`: checked lengths, guards held to the end of scope,
        // shared inputs and exclusive outputs.
        unsafe { op.backward_raw(kernels, stream, T::DTYPE, input, layout, &ptrs) }
    }
}
