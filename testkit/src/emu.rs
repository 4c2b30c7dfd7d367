//! The host emulator (`blurpool-emu`) as a [`Runner`]: the CUDA kernels' own sources compiled
//! as C++ and run on the CPU, launched with the same [`LaunchPlan`]s the GPU layer uses.
//!
//! Every buffer is allocated here from the operator's own shapes, with GUARD elements on each
//! side: inputs are guarded by NaN (an out-of-bounds read that reaches a result makes it NaN,
//! which the comparison rejects), outputs by a sentinel that must survive (an out-of-bounds
//! write is an error). So the runner is safe to call with any operator and shape.

use std::ffi::c_void;

use blurpool::cuda::{Buf, KernelChoice, KernelVersion, LaunchPlan, Target};
use blurpool::{Element, Layout, Operator, Shape4};

use crate::check::{GradsOf, Runner};
use crate::data::{CaseData, TestElement, POISON};

/// The emulator as a [`Runner`]. `max_blocks` stands in for the GPU's SMs × 32: small, so every
/// launch of more than a few hundred outputs exercises the grid-stride loops. `choice` picks
/// the forward kernels as `Kernels::with_choice` does on a GPU; `wgmma` whether the device has
/// sm_90a's wgmma (an H100 or H200; an A100 or L4 has not, and takes the mma.sync kernels).
#[derive(Debug, Clone, Copy)]
pub struct Emu {
    /// Grid size cap.
    pub max_blocks: u32,
    /// Which forward kernels.
    pub choice: KernelChoice,
    /// Whether the wgmma kernel may run ([`Target::with_wgmma`]).
    pub wgmma: bool,
}

impl Emu {
    /// The newest kernels, 3 blocks at most.
    pub const AUTO: Emu = Emu {
        max_blocks: 3,
        choice: KernelChoice::Auto,
        wgmma: true,
    };
    /// The newest kernels of a device without wgmma (the tensor-core conv's mma.sync v4).
    pub const NO_WGMMA: Emu = Emu {
        max_blocks: 3,
        choice: KernelChoice::Auto,
        wgmma: false,
    };
    /// The kernels up to v2 (the strip kernels v4 is compared with), 3 blocks at most.
    pub const V2: Emu = Emu {
        max_blocks: 3,
        choice: KernelChoice::AtMost(KernelVersion::V2),
        wgmma: true,
    };
    /// The kernels up to v3 (the tensor-core kernels v4 is compared with), 3 blocks at most.
    pub const V3: Emu = Emu {
        max_blocks: 3,
        choice: KernelChoice::AtMost(KernelVersion::V3),
        wgmma: true,
    };
    /// The general (v1) kernels, 3 blocks at most.
    pub const GENERAL: Emu = Emu {
        max_blocks: 3,
        choice: KernelChoice::GENERAL,
        wgmma: true,
    };

    /// The plan this runner launches for `op` on `shape`.
    pub fn plan<T: Element>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
    ) -> blurpool::Result<LaunchPlan> {
        op.plan(
            shape,
            Target::new(T::DTYPE, layout)
                .with_choice(self.choice)
                .with_wgmma(self.wgmma),
        )
    }

    /// The forward with x and y starting `x_offset` / `y_offset` elements into their
    /// allocations (so a kernel sees buffers of every alignment a caller's views can have).
    pub fn forward_at<T: TestElement>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
        x_offset: usize,
        y_offset: usize,
    ) -> Result<Vec<T>, String> {
        self.forward_offsets(op, shape, layout, data, [x_offset, 0, 0, y_offset])
    }

    /// The forward with x, the weights, the bias and y starting `offsets` elements into their
    /// allocations (in that order).
    pub fn forward_offsets<T: TestElement>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
        [x_offset, w_offset, b_offset, y_offset]: [usize; 4],
    ) -> Result<Vec<T>, String> {
        let plan = self
            .plan::<T>(op, shape, layout)
            .map_err(|e| e.to_string())?;
        let n_out = plan.output().numel().map_err(|e| e.to_string())?;
        let nan = T::from_f64(f64::NAN);
        let x = Guarded::new(&data.x, nan, x_offset);
        let w = Guarded::new(&data.w, nan, w_offset);
        let b = Guarded::new(data.b.as_deref().unwrap_or(&[]), nan, b_offset);
        let sentinel = T::from_f64(-12345.0);
        let mut y = Guarded::new(&vec![T::from_f64(POISON); n_out], sentinel, y_offset);
        if plan.has_work() {
            // The weights the kernel reads: the packed image where the plan has a weight pack
            // (its own allocation, 16-byte aligned as the GPU layer's is), filled by the packing
            // kernel, poisoned first so that an element it skips shows.
            let mut packed = None;
            if let Some(pack) = plan.weight_pack() {
                let mut p = Guarded::new(&vec![T::from_f64(POISON); pack.len()], sentinel, 0);
                // SAFETY: w holds the conv's weight_len elements (plus guards) and p the plan's
                // pack.len(), which is what the packing kernel reads and writes for the plan.
                unsafe {
                    launch(
                        &pack.symbol(),
                        (pack.grid_dim(self.max_blocks), pack.block_dim(), 0),
                        plan.params_bytes(),
                        [
                            w.ptr(),
                            std::ptr::null(),
                            std::ptr::null(),
                            std::ptr::null(),
                        ],
                        p.ptr_mut(),
                    )
                }?;
                p.check("packed weights", sentinel)?;
                packed = Some(p);
            }
            let weights = packed.as_ref().map_or(w.ptr(), |p| p.ptr());
            // SAFETY: every buffer was sized from the operator's own shapes (x: the input,
            // w/b: the conv's weight_len/bias_len or the packed weights, y: the plan's output)
            // plus guards; the plan comes from the same operator and shape, so the kernel reads
            // and writes inside them; y is its own allocation.
            unsafe {
                launch(
                    &plan.symbol(),
                    (
                        plan.grid_dim(self.max_blocks),
                        plan.block_dim(),
                        plan.shared_bytes(),
                    ),
                    plan.params_bytes(),
                    [x.ptr(), weights, b.ptr(), std::ptr::null()],
                    y.ptr_mut(),
                )
            }?;
        }
        y.check("output", sentinel)?;
        Ok(y.data().to_vec())
    }
}

/// Elements of guard on each side of every buffer.
const GUARD: usize = 64;

/// A buffer with at least GUARD elements of `fill` on each side. At `offset` 0 the data starts
/// 16-byte aligned (as cudaMalloc'd memory is); at offset k it starts k elements later.
struct Guarded<E> {
    v: Vec<E>,
    start: usize,
    len: usize,
}

impl<E: bytemuck::Pod> Guarded<E> {
    fn new(data: &[E], fill: E, offset: usize) -> Self {
        let size = std::mem::size_of::<E>();
        let slack = 16 / size;
        let mut v = vec![fill; data.len() + GUARD + slack + offset + GUARD];
        let base = v.as_ptr() as usize;
        let aligned = (0..=slack)
            .map(|k| GUARD + k)
            .find(|&i| (base + i * size) % 16 == 0)
            .expect("some element among the first 16 bytes is 16-byte aligned");
        let start = aligned + offset;
        v[start..start + data.len()].copy_from_slice(data);
        Guarded {
            v,
            start,
            len: data.len(),
        }
    }
    fn ptr(&self) -> *const c_void {
        self.v[self.start..].as_ptr() as *const c_void
    }
    fn ptr_mut(&mut self) -> *mut c_void {
        self.v[self.start..].as_mut_ptr() as *mut c_void
    }
    fn data(&self) -> &[E] {
        &self.v[self.start..self.start + self.len]
    }
    /// Err if anything outside the middle changed (an out-of-bounds write).
    fn check(&self, what: &str, guard: E) -> Result<(), String> {
        let bits = |e: &E| bytemuck::bytes_of(e).to_vec();
        let outside = self.v[..self.start]
            .iter()
            .chain(&self.v[self.start + self.len..]);
        for (i, g) in outside.enumerate() {
            if bits(g) != bits(&guard) {
                return Err(format!(
                    "the kernel wrote outside its {what} (guard element {i} changed)"
                ));
            }
        }
        Ok(())
    }
}

/// Runs kernel `symbol` over (grid, block, dynamic shared bytes) with its parameter block and
/// five pointers (four inputs, one output).
///
/// # Safety
/// `params` must be the kernel's parameter block and each pointer must address host memory
/// holding what the kernel reads or writes through it for those parameters (or be null where
/// it reads nothing); `out` must not alias the inputs.
unsafe fn launch(
    symbol: &str,
    (grid, block, shared): (u32, u32, u32),
    params: &[u8],
    inputs: [*const c_void; 4],
    out: *mut c_void,
) -> Result<(), String> {
    let [a, b, c, d] = inputs;
    // SAFETY: forwarded to the caller's contract; `params` outlives the call.
    unsafe {
        blurpool_emu::launch(
            symbol,
            grid,
            block,
            shared,
            params.as_ptr() as *const c_void,
            a,
            b,
            c,
            d,
            out,
        )
    }
}

impl Runner for Emu {
    fn run<T: TestElement>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
    ) -> Result<Vec<T>, String> {
        self.forward_at(op, shape, layout, data, 0, 0)
    }

    fn run_backward<T: TestElement>(
        &self,
        op: &Operator,
        shape: Shape4,
        layout: Layout,
        data: &CaseData<T>,
        dy: &[T],
    ) -> Result<GradsOf<T>, String> {
        let plan = op
            .backward_plan(shape, Target::new(T::DTYPE, layout))
            .map_err(|e| e.to_string())?;
        let (wlen, blen) = op.conv().map_or((0, 0), |c| (c.weight_len(), c.bias_len()));
        let nan = T::from_f64(f64::NAN);
        let sentinel = T::from_f64(-12345.0);
        let x = Guarded::new(&data.x, nan, 0);
        let w = Guarded::new(&data.w, nan, 0);
        let b = Guarded::new(data.b.as_deref().unwrap_or(&[]), nan, 0);
        let dyg = Guarded::new(dy, nan, 0);
        let poison = |n: usize| Guarded::new(&vec![T::from_f64(POISON); n], sentinel, 0);
        let mut dx = poison(data.x.len());
        let mut dw = poison(wlen);
        let mut db = poison(blen);
        let mut ws = Guarded::new(&vec![f32::NAN; plan.workspace_len()], -12345.0f32, 0);
        for step in plan.steps().filter(|s| s.has_work()) {
            let input = |buf: Buf| -> Result<*const c_void, String> {
                Ok(match buf {
                    Buf::X => x.ptr(),
                    Buf::Weight => w.ptr(),
                    Buf::Bias => b.ptr(),
                    Buf::Dy => dyg.ptr(),
                    Buf::Workspace => ws.ptr(),
                    other => return Err(format!("{other:?} is never a kernel input")),
                })
            };
            let mut inputs = [std::ptr::null(); 4];
            for (slot, buf) in inputs.iter_mut().zip(step.inputs()) {
                if let Some(buf) = buf {
                    *slot = input(buf)?;
                }
            }
            let out = match step.output() {
                Buf::Dx => dx.ptr_mut(),
                Buf::DWeight => dw.ptr_mut(),
                Buf::DBias => db.ptr_mut(),
                Buf::Workspace => ws.ptr_mut(),
                other => return Err(format!("{other:?} is never a kernel output")),
            };
            // SAFETY: the parameter block is the plan's; every buffer holds what its role
            // needs for these shapes (allocated here from the operator's shapes and the plan's
            // workspace length) plus guards, and outlives the call; the output never aliases
            // the step's inputs (the plan's roles differ and each role has its own buffer).
            unsafe {
                launch(
                    &step.symbol(),
                    (step.grid_dim(self.max_blocks), step.block_dim(), 0),
                    plan.params_bytes(),
                    inputs,
                    out,
                )
            }?;
        }
        dx.check("dx", sentinel)?;
        dw.check("dweight", sentinel)?;
        db.check("dbias", sentinel)?;
        ws.check("workspace", -12345.0f32)?;
        Ok(GradsOf {
            dx: dx.data().to_vec(),
            dweight: if op.conv().is_some() {
                dw.data().to_vec()
            } else {
                Vec::new()
            },
            dbias: data.b.as_ref().map(|_| db.data().to_vec()),
        })
    }
}
