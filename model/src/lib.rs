//! blurpool's performance model (a dev tool; `publish = false`): see notes/model.md for what it
//! predicts and what it cannot.
//!
//! * [`trace`]: a kernel launch in the host emulator's trace mode, grouped into warp requests;
//! * [`cache`]: the L1 and L2 models between those requests and DRAM;
//! * [`sass`]: the kernels' sm_90 machine code (nvdisasm, cuobjdump);
//! * [`predict`]: the analytical model (the largest of the DRAM, L2, issue, LSU, latency and
//!   tensor-core times) over [`hw`]'s machines;
//! * [`suite`]: the benchmark workloads as launches, run through all of it;
//! * [`report`]: the table (Markdown and JSON); [`gates`]: CI's regression gates;
//! * [`sites`]: a launch's requests and LSU cycles per source site (`--sites`);
//! * [`compare`]: the model against a GPU's bench.json (its error per kernel path).

pub mod cache;
pub mod compare;
pub mod gates;
pub mod hw;
pub mod predict;
pub mod report;
pub mod sass;
pub mod sites;
pub mod suite;
pub mod trace;
