//! The benchmark workloads (blurpool_testkit::workloads, the same rows `blurpool bench`
//! measures) as the launches each path makes, and running them through the model.

use std::sync::Arc;

use blurpool::cuda::{Buf, KernelChoice, KernelVersion, LaunchPlan, Target};
use blurpool::{DType, Operator, Shape4};
use blurpool_testkit::data::random_vec;
use blurpool_testkit::workloads::{BenchOp, Workload};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::hw::{Gpu, ALL};
use crate::predict::{code_figures, predict, LaunchModel};
use crate::sass::Sass;
use crate::trace::{trace_launch, AddressMap, Buffer, LaunchTrace, Sample, TraceLaunch};

/// A buffer of a path: the roles of docs/SPEC.md's launches, plus the unfused path's max map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Role {
    X,
    Weight,
    Bias,
    Dy,
    Dx,
    DWeight,
    DBias,
    Workspace,
    Y,
    MaxMap,
    /// The tensor-core v4 kernel's packed weights (written by its packing launch).
    PackedWeight,
}

impl Role {
    fn of(b: Buf) -> Role {
        match b {
            Buf::X => Role::X,
            Buf::Weight => Role::Weight,
            Buf::Bias => Role::Bias,
            Buf::Dy => Role::Dy,
            Buf::Dx => Role::Dx,
            Buf::DWeight => Role::DWeight,
            Buf::DBias => Role::DBias,
            Buf::Workspace => Role::Workspace,
        }
    }
}

/// One launch of a path.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub symbol: String,
    pub version: String,
    pub grid: u32,
    pub block: u32,
    /// Bytes of dynamic shared memory the launch gives each block.
    pub shared: u32,
    pub params: Vec<u8>,
    pub inputs: [Option<Role>; 4],
    pub output: Role,
}

/// A way of computing a workload: its launches in order.
#[derive(Debug, Clone)]
pub struct PathSpec {
    pub name: String,
    pub launches: Vec<LaunchSpec>,
}

/// A buffer to allocate: its role, bytes, element type, and the leading extent (N for
/// activations, 1 for weights) that random filling goes by.
#[derive(Debug, Clone, Copy)]
pub struct BufferSpec {
    pub role: Role,
    pub bytes: usize,
    pub dtype: Option<DType>, // None: f32 workspace
    pub images: usize,
    /// Inputs are filled with random values (where the sample reads them); outputs stay zero.
    pub input: bool,
}

/// A workload as the model runs it.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub workload: Workload,
    pub paths: Vec<PathSpec>,
    pub buffers: Vec<BufferSpec>,
    /// docs/SPEC.md §6: the minimum bytes the operator must read and write.
    pub min_read: u64,
    pub min_write: u64,
    /// Bytes of one input tensor (the copy roofline copies this much).
    pub input_bytes: u64,
    /// Elements of the path's result (forward: y; backward: dx), for per-output figures.
    pub outputs: u64,
}

/// The grid cap of the library on these GPUs: SMs × 32 (src/cuda/module.rs).
pub fn max_blocks(g: &Gpu) -> u32 {
    g.sms * 32
}

/// The launches of a forward plan: its weight packing first where it has one (the packed
/// weights then stand in for the weights), then its kernel.
pub fn forward_launches(
    plan: &LaunchPlan,
    input: Role,
    output: Role,
    max_blocks: u32,
    conv: bool,
) -> Vec<LaunchSpec> {
    let mut launches = Vec::new();
    let mut weight = Role::Weight;
    if let Some(pack) = plan.weight_pack() {
        launches.push(LaunchSpec {
            symbol: pack.symbol(),
            version: plan.version().name().to_string(),
            grid: pack.grid_dim(max_blocks),
            block: pack.block_dim(),
            shared: 0,
            params: plan.params_bytes().to_vec(),
            inputs: [Some(Role::Weight), None, None, None],
            output: Role::PackedWeight,
        });
        weight = Role::PackedWeight;
    }
    launches.push(LaunchSpec {
        symbol: plan.symbol(),
        version: plan.version().name().to_string(),
        grid: plan.grid_dim(max_blocks),
        block: plan.block_dim(),
        shared: plan.shared_bytes(),
        params: plan.params_bytes().to_vec(),
        inputs: if conv {
            [Some(input), Some(weight), Some(Role::Bias), None]
        } else {
            [Some(input), None, None, None]
        },
        output,
    });
    launches
}

/// The packed-weights buffer of `plan`, if it has a weight pack.
pub fn packed_weight_buffer(plan: &LaunchPlan) -> Option<BufferSpec> {
    plan.weight_pack().map(|pack| BufferSpec {
        role: Role::PackedWeight,
        bytes: pack.len() * plan.dtype().size(),
        dtype: Some(plan.dtype()),
        images: 1,
        input: false,
    })
}

fn e(e: blurpool::Error) -> String {
    e.to_string()
}

/// The paths of `w`: `fused` (what forward/backward launches), `fused v2`, `fused v3` and `fused v1` (the
/// strip and general kernels where those differ), `separate` (MaxBlurPool: dense max, then the blur).
pub fn spec(w: &Workload) -> Result<WorkloadSpec, String> {
    let mb = max_blocks(&crate::hw::H100);
    debug_assert!(
        ALL.iter().all(|g| max_blocks(g) == mb),
        "one grid for both GPUs"
    );
    let op = w.op.operator(w.shape).map_err(e)?;
    let shape = w.shape;
    let sz = w.dtype.size() as u64;
    let n_in = shape.numel().map_err(e)? as u64;
    let n_out = op.output_shape(shape).and_then(|s| s.numel()).map_err(e)? as u64;
    let (wlen, blen) = op
        .conv()
        .map_or((0, 0), |c| (c.weight_len() as u64, c.bias_len() as u64));
    let conv = op.conv().is_some();
    let target = Target::new(w.dtype, w.layout);
    let mut paths = Vec::new();
    let act = |n: u64| (n * sz) as usize;
    let mut buffers = vec![BufferSpec {
        role: Role::X,
        bytes: act(n_in),
        dtype: Some(w.dtype),
        images: shape.n,
        input: true,
    }];
    if conv {
        buffers.push(BufferSpec {
            role: Role::Weight,
            bytes: act(wlen),
            dtype: Some(w.dtype),
            images: 1,
            input: true,
        });
        buffers.push(BufferSpec {
            role: Role::Bias,
            bytes: act(blen.max(1)),
            dtype: Some(w.dtype),
            images: 1,
            input: true,
        });
    }
    let (min_read, min_write, outputs);
    if w.op.is_backward() {
        let plan = op.backward_plan(shape, target).map_err(e)?;
        let launches = plan
            .steps()
            .filter(|s| s.has_work())
            .map(|s| LaunchSpec {
                symbol: s.symbol(),
                version: "v1".into(),
                grid: s.grid_dim(mb),
                block: s.block_dim(),
                shared: 0,
                params: plan.params_bytes().to_vec(),
                inputs: s.inputs().map(|b| b.map(Role::of)),
                output: Role::of(s.output()),
            })
            .collect();
        paths.push(PathSpec {
            name: "fused".into(),
            launches,
        });
        buffers.push(BufferSpec {
            role: Role::Dy,
            bytes: act(n_out),
            dtype: Some(w.dtype),
            images: shape.n,
            input: true,
        });
        buffers.push(BufferSpec {
            role: Role::Dx,
            bytes: act(n_in),
            dtype: Some(w.dtype),
            images: shape.n,
            input: false,
        });
        if conv {
            buffers.push(BufferSpec {
                role: Role::DWeight,
                bytes: act(wlen),
                dtype: Some(w.dtype),
                images: 1,
                input: false,
            });
            buffers.push(BufferSpec {
                role: Role::DBias,
                bytes: act(blen.max(1)),
                dtype: Some(w.dtype),
                images: 1,
                input: false,
            });
        }
        buffers.push(BufferSpec {
            role: Role::Workspace,
            bytes: (plan.workspace_len().max(1)) * 4,
            dtype: None,
            images: shape.n,
            input: false,
        });
        let reads_x = !matches!(w.op, BenchOp::BlurPoolBackward);
        min_read = (n_out + if reads_x { n_in } else { 0 } + wlen) * sz;
        min_write = (n_in + wlen) * sz;
        outputs = n_in;
    } else {
        let fused = op.plan(shape, target).map_err(e)?;
        let general = op
            .plan(shape, target.with_choice(KernelChoice::GENERAL))
            .map_err(e)?;
        paths.push(PathSpec {
            name: "fused".into(),
            launches: forward_launches(&fused, Role::X, Role::Y, mb, conv),
        });
        buffers.extend(packed_weight_buffer(&fused));
        // v2 beside v4 where they differ, so a table shows v1, v2 and v4 on the same data.
        let v2 = op
            .plan(
                shape,
                target.with_choice(KernelChoice::AtMost(KernelVersion::V2)),
            )
            .map_err(e)?;
        if v2.symbol() != fused.symbol() && v2.symbol() != general.symbol() {
            paths.push(PathSpec {
                name: "fused v2".into(),
                launches: forward_launches(&v2, Role::X, Role::Y, mb, conv),
            });
        }
        // v3 beside v4 for the tensor-core conv (v2 is v1 there).
        let v3 = op
            .plan(
                shape,
                target.with_choice(KernelChoice::AtMost(KernelVersion::V3)),
            )
            .map_err(e)?;
        if v3.version() == KernelVersion::V3 && v3.symbol() != fused.symbol() {
            paths.push(PathSpec {
                name: "fused v3".into(),
                launches: forward_launches(&v3, Role::X, Role::Y, mb, conv),
            });
        }
        if general.symbol() != fused.symbol() {
            paths.push(PathSpec {
                name: "fused v1".into(),
                launches: forward_launches(&general, Role::X, Role::Y, mb, conv),
            });
        }
        if let Operator::MaxBlurPool(m) = &op {
            let map = m.max_map_shape(shape).map_err(e)?;
            let max = m.max_pool().plan(shape, target).map_err(e)?;
            let blur = blurpool::BlurPool2d::new(m.blur().clone())
                .plan(map, target)
                .map_err(e)?;
            paths.push(PathSpec {
                name: "separate".into(),
                launches: [
                    forward_launches(&max, Role::X, Role::MaxMap, mb, false),
                    forward_launches(&blur, Role::MaxMap, Role::Y, mb, false),
                ]
                .concat(),
            });
            buffers.push(BufferSpec {
                role: Role::MaxMap,
                bytes: act(map.numel().map_err(e)? as u64),
                dtype: Some(w.dtype),
                images: shape.n,
                input: false,
            });
        }
        buffers.push(BufferSpec {
            role: Role::Y,
            bytes: act(n_out),
            dtype: Some(w.dtype),
            images: shape.n,
            input: false,
        });
        min_read = (n_in + wlen) * sz;
        min_write = n_out * sz;
        outputs = n_out;
    }
    Ok(WorkloadSpec {
        workload: *w,
        paths,
        buffers,
        min_read,
        min_write,
        input_bytes: n_in * sz,
        outputs,
    })
}

/// A path's prediction on one GPU.
#[derive(Debug, Clone, Serialize)]
pub struct PathTotal {
    pub gpu: &'static str,
    pub time: f64,
    /// % of the 1:1 copy roofline: (min bytes / time) / copy rate, as the benchmark computes it.
    pub pct_of_copy: f64,
    /// % of the read-mostly roofline for this workload's read:write mix (reads at the
    /// read-only rate, writes at the derived write rate).
    pub pct_of_read_mostly: f64,
    /// The bound of the slowest launch.
    pub bound: &'static str,
}

/// One path's model.
#[derive(Debug, Clone, Serialize)]
pub struct PathModel {
    pub name: String,
    pub launches: Vec<LaunchModel>,
    pub totals: Vec<PathTotal>,
}

/// One workload's model.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadModel {
    pub op: String,
    pub shape: String,
    pub dtype: String,
    pub layout: String,
    pub min_bytes: u64,
    pub outputs: u64,
    pub paths: Vec<PathModel>,
}

fn fill_random(buf: &mut Buffer, dtype: Option<DType>, upto: usize, rng: &mut StdRng) {
    let bytes = buf.bytes_mut();
    let upto = upto.min(bytes.len());
    match dtype {
        Some(DType::F32) | None => {
            let v: Vec<f32> = random_vec(rng, upto / 4, 1.0);
            bytes[..v.len() * 4].copy_from_slice(bytemuck::cast_slice(&v));
        }
        Some(DType::F16) => {
            let v: Vec<half::f16> = random_vec(rng, upto / 2, 1.0);
            bytes[..v.len() * 2].copy_from_slice(bytemuck::cast_slice(&v));
        }
        Some(DType::BF16) => {
            let v: Vec<half::bf16> = random_vec(rng, upto / 2, 1.0);
            bytes[..v.len() * 2].copy_from_slice(bytemuck::cast_slice(&v));
        }
    }
}

/// Runs every path of `s` under `sample` and predicts it on every GPU.
pub fn run(s: &WorkloadSpec, sass: &Sass, sample: Sample) -> Result<WorkloadModel, String> {
    let mut paths = Vec::new();
    for p in &s.paths {
        paths.push(run_path(s, p, sass, sample)?);
    }
    let w = &s.workload;
    Ok(WorkloadModel {
        op: w.op.name().into(),
        shape: w.shape.to_string(),
        dtype: w.dtype.name().into(),
        layout: w.layout.name().into(),
        min_bytes: s.min_read + s.min_write,
        outputs: s.outputs,
        paths,
    })
}

/// Traces `p`'s launches (inputs random where the sample reads them: the first images, more
/// if the trace shows it read further), launching `emu_prefix` + each symbol in the emulator
/// (the gates' variants; "" for the kernels themselves).
pub fn trace_path(
    s: &WorkloadSpec,
    p: &PathSpec,
    sample: Sample,
    emu_prefix: &str,
) -> Result<Vec<LaunchTrace>, String> {
    let mut bufs: Vec<Buffer> = s
        .buffers
        .iter()
        .map(|b| Buffer::zeroed(&format!("{:?}", b.role), b.bytes))
        .collect();
    let mut rng = StdRng::seed_from_u64(11);
    let mut filled = vec![0usize; bufs.len()];
    let fill = |bufs: &mut [Buffer], filled: &mut [usize], want: &[usize], rng: &mut StdRng| {
        for (i, b) in s.buffers.iter().enumerate() {
            if b.input && want[i] > filled[i] {
                fill_random(&mut bufs[i], b.dtype, want[i], rng);
                filled[i] = want[i].min(b.bytes);
            }
        }
    };
    // Start with two images of every activation (all of a weight).
    let first: Vec<usize> = s
        .buffers
        .iter()
        .map(|b| b.bytes / b.images.max(1) * b.images.min(2))
        .collect();
    fill(&mut bufs, &mut filled, &first, &mut rng);
    for _attempt in 0..4 {
        let index = |r: Role| s.buffers.iter().position(|b| b.role == r);
        let map = {
            let refs: Vec<&Buffer> = bufs.iter().collect();
            AddressMap::new(&refs)
        };
        let mut traces = Vec::new();
        for l in &p.launches {
            let mut inputs = [std::ptr::null(); 4];
            for (slot, r) in inputs.iter_mut().zip(l.inputs) {
                if let Some(i) = r.and_then(index) {
                    *slot = bufs[i].ptr();
                }
            }
            let out_i = index(l.output).ok_or_else(|| format!("no buffer for {:?}", l.output))?;
            let out = bufs[out_i].ptr_mut();
            let symbol = format!("{emu_prefix}{}", l.symbol);
            let tl = TraceLaunch {
                symbol: &symbol,
                grid: l.grid,
                block: l.block,
                shared: l.shared,
                params: &l.params,
                inputs,
                out,
            };
            // SAFETY: every buffer was sized from the workload's own shapes (the operator's
            // input, output, weights and the plan's workspace) and the parameter block is the
            // plan's for that workload, so the kernel addresses inside them; the output buffer
            // is a different allocation from every input.
            let mut t = unsafe { trace_launch(&tl, &map, &[], sample) }?;
            t.symbol = l.symbol.clone();
            traces.push(t);
        }
        // Did the sample read inputs beyond what was filled? Fill further and run again.
        let mut want = filled.clone();
        let mut more = false;
        for t in &traces {
            for (i, &touched) in t.touched.iter().enumerate() {
                if s.buffers[i].input && touched as usize > filled[i] {
                    let per_image = s.buffers[i].bytes / s.buffers[i].images.max(1);
                    want[i] = (touched as usize).div_ceil(per_image.max(1)) * per_image;
                    more = true;
                }
            }
        }
        if !more {
            return Ok(traces);
        }
        fill(&mut bufs, &mut filled, &want, &mut rng);
    }
    Err(format!(
        "{}: the sample kept reading past the inputs it was given",
        p.name
    ))
}

/// Traces and predicts `p`.
pub fn run_path(
    s: &WorkloadSpec,
    p: &PathSpec,
    sass: &Sass,
    sample: Sample,
) -> Result<PathModel, String> {
    let traces = trace_path(s, p, sample, "")?;
    let mut launches = Vec::new();
    for (l, t) in p.launches.iter().zip(&traces) {
        let f = sass.function(&l.symbol)?;
        let mut code = code_figures(f, t);
        // Occupancy counts the block's shared memory: the cubin's static bytes and the launch's
        // dynamic ones (the tensor-core v4 kernel's stages and map tile).
        code.shared_bytes += l.shared;
        let predictions = ALL
            .iter()
            .map(|g| predict(g, f, t, &code, l.grid, l.block))
            .collect();
        launches.push(LaunchModel {
            symbol: l.symbol.clone(),
            grid: l.grid,
            block: l.block,
            code,
            items_total: t.run.items_total,
            items_sampled: t.run.items_sampled,
            blocks_sampled: t.run.blocks_run,
            events_sampled: t.events,
            predictions,
        });
    }
    let min_bytes = (s.min_read + s.min_write) as f64;
    let totals = ALL
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            let time: f64 = launches.iter().map(|l| l.predictions[gi].time).sum();
            let slowest = launches
                .iter()
                .max_by(|a, b| a.predictions[gi].time.total_cmp(&b.predictions[gi].time))
                .map_or("none", |l| l.predictions[gi].bound);
            let rm = g.dram_seconds(s.min_read as f64, s.min_write as f64);
            PathTotal {
                gpu: g.name,
                time,
                pct_of_copy: 100.0 * (min_bytes / time) / g.dram_copy_bps,
                pct_of_read_mostly: 100.0 * rm / time,
                bound: slowest,
            }
        })
        .collect();
    Ok(PathModel {
        name: p.name.clone(),
        launches,
        totals,
    })
}

/// Runs `workloads` on `threads` threads; results in the input order.
pub fn run_all(
    workloads: &[Workload],
    sass: &Arc<Sass>,
    sample: Sample,
    threads: usize,
    progress: &(dyn Fn(usize, &Workload) + Sync),
) -> Vec<Result<WorkloadModel, String>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<WorkloadModel, String>>>> =
        std::sync::Mutex::new(vec![None; workloads.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(w) = workloads.get(i) else { break };
                let r = spec(w).and_then(|s| run(&s, sass, sample));
                progress(i, w);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not run".into())))
        .collect()
}

/// The suite's workloads: every operator of the benchmarks at its shapes, every dtype and
/// layout (docs: notes/model.md).
pub fn suite_workloads() -> Vec<Workload> {
    blurpool_testkit::workloads::suite(&BenchOp::ALL, None, &DType::ALL, &blurpool::Layout::ALL)
}

/// A shape for quick runs (tests, gates).
pub fn small(op: BenchOp, dtype: DType, layout: blurpool::Layout) -> Workload {
    let shape = match op {
        BenchOp::ConvBlurPoolDense => Shape4::new(2, 32, 20, 20),
        _ => Shape4::new(2, 16, 30, 34),
    };
    Workload {
        op,
        shape,
        dtype,
        layout,
    }
}
