//! The CUDA launch layer over cudarc (the `cuda` feature, on by default).
//!
//! * [`Kernels`]: the compiled module for one context (loaded once per context and cached),
//!   from the build's fatbin or, without one, compiled at run time by NVRTC.
//! * [`Launch`]: kernels + the caller's stream + the activations' layout. Each operator's
//!   `forward`/`backward` take a `Launch` and cudarc buffers (`CudaSlice`, `CudaView`,
//!   `CudaViewMut`), check their lengths against the shapes and queue the kernels; nothing is
//!   allocated per call. `forward_raw`/`backward_raw` take bare `CUdeviceptr`s by role
//!   ([`ForwardPtrs`], [`GradPtrs`]) for pipelines that own their memory.
//! * [`LaunchPlan`] / [`BackwardPlan`]: what a call will launch (kernel, version, grid,
//!   parameter block), as pure values from `plan` / `backward_plan`; the host emulator runs
//!   the same plans.
//!
//! ```no_run
//! use blurpool::cuda::{open_device, Kernels, Launch};
//! use blurpool::presets::antialiased_cnns;
//! use blurpool::{Layout, PadMode, Shape4};
//! use half::f16;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let op = antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0)?;
//! let input = Shape4::new(8, 64, 112, 112);
//! let ctx = open_device(0)?;
//! let kernels = Kernels::for_context(&ctx)?;
//! let stream = ctx.new_stream()?; // or kernels.borrow_stream(raw) for a caller's stream
//! let x = stream.clone_htod(&vec![f16::from_f32(1.0); input.numel()?])?;
//! let mut y = stream.alloc_zeros::<f16>(op.output_shape(input)?.numel()?)?;
//! let launch = Launch::new(&kernels, &stream, Layout::Nhwc)?;
//! op.forward(&launch, input, &x, &mut y)?; // one kernel, no allocation (pooling)
//! stream.synchronize()?;
//! # Ok(()) }
//! ```

mod launch;
mod module;
mod params;
mod plan;

pub use launch::{ConvGrads, ForwardPtrs, GradPtrs, Launch, MaxGrads};
pub use module::{
    build_info, compile_nvrtc, driver_available, open_device, BuildInfo, KernelSource, Kernels,
    LoadFrom, FORCE_NVRTC_ENV, KERNELS_ENV,
};
pub use plan::{
    kernel_symbols, specialised_kernels, BackwardPlan, BackwardStep, Buf, KernelChoice,
    KernelVersion, LaunchPlan, Specialised, Target, WeightPack,
};
