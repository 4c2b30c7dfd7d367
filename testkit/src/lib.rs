//! blurpool's test and benchmark harness (not part of the library's API; `publish = false`).
//!
//! * [`check`]: one case against the CPU reference, forward or backward, with the stated
//!   tolerances; the [`Runner`] trait that runs a kernel on host data.
//! * [`gpu::Gpu`] and [`emu::Emu`]: the two runners, a CUDA device and the host emulator of the
//!   same kernels (`blurpool-emu`), sharing [`blurpool::cuda::LaunchPlan`]s.
//! * [`matrix`]: the test matrix (every operator × dtype × layout × pad mode × filter × …),
//!   as a representative sample by default and in full with `BLURPOOL_FULL_MATRIX=1` (CI).
//! * [`workloads`]: the benchmark suite (operators, shapes, dtypes, layouts), without a GPU:
//!   what the CLI's `bench`, the criterion benches and the performance model all run.
//! * [`bench`]: the GPU side of the benchmarks (buffers, paths, timing).
//! * [`data`]: random inputs (never zero) and the poison value.

pub mod bench;
pub mod check;
pub mod data;
pub mod emu;
pub mod gpu;
pub mod matrix;
pub mod workloads;

pub use check::{check_backward_case, check_case, check_in_dtype, GradsOf, Runner};
pub use data::{random_vec, CaseData, TestElement, POISON};
pub use emu::Emu;
pub use gpu::Gpu;
