//! CI's regression gates, from the cheap parts of the model (the SASS and a small trace):
//!
//! 1. **No local memory**: no sm_90 kernel has a stack frame, local memory or LDL/STL
//!    instructions (spills), beyond the library build's own ptxas check.
//! 2. **Batched loads**: a specialised kernel (strip v2, tensor-core v3) keeps at least
//!    [`KEEP_FRACTION`] of the global loads in flight at first use recorded for it in
//!    `model/gates.json` (the dynamic mean over its loads, from the SASS scoreboards weighted
//!    by the trace), and one recorded at ≥ [`MIN_IN_FLIGHT`] (it batched its loads) stays at
//!    ≥ [`MIN_IN_FLIGHT`]: a kernel whose fast path used to batch its loads and now issues them
//!    one at a time fails. A kernel with no record (a new one) must reach [`MIN_IN_FLIGHT`].
//! 3. **Sector efficiency**: the specialised kernels' global loads use at least
//!    [`SECTOR_FLOOR`] of the bytes of the sectors they fetch, and at least
//!    [`SECTOR_KEEP`] of the share recorded for them.
//!
//! Today's kernels are recorded as they are (many issue one load at a time and NCHW ones use
//! 14–40 % of their sectors: issue 25's v4 is to fix that); the gates stop them getting worse
//! and hold new kernels to the floors.
//!
//! The gates check themselves on deliberately broken variants of the pooling strip kernels
//! (kernels/pool_forward.cu and strip.cuh under BP_GATE_VARIANT): the serialised one (each span
//! load's address depends on the value of the previous load) must fail gate 2 on every kernel
//! whose record batches its loads, and the uncoalesced one (lanes along strips instead of along
//! columns or channels) must fail gate 3 on every NHWC kernel (NCHW lanes already touch a
//! sector each). A variant that passes where it must fail breaks the gates, and CI.

use std::collections::BTreeMap;

use blurpool::cuda::{specialised_kernels, KernelChoice, KernelVersion, Specialised};
use blurpool::presets::timm;
use blurpool::{
    Activation, Blur, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType, Filter, Layout,
    MaxBlurPool2d, MaxPool2d, Operator, Pad2d, PadMode, Shape4,
};
use blurpool_testkit::workloads::{BenchOp, Workload};
use serde::{Deserialize, Serialize};

use crate::predict::code_figures;
use crate::sass::{Class, Sass};
use crate::suite::{PathSpec, Role, WorkloadSpec};
use crate::trace::Sample;

/// Gate 2's absolute floor: at least two loads in flight (for kernels that batched, and new ones).
pub const MIN_IN_FLIGHT: f64 = 2.0;
/// Gate 2's relative floor: at least this share of the recorded figure.
pub const KEEP_FRACTION: f64 = 0.75;
/// Gate 3's absolute floor on distinct bytes used per byte of sectors fetched.
pub const SECTOR_FLOOR: f64 = 0.1;
/// Gate 3's relative floor: at least this share of the recorded sector efficiency.
pub const SECTOR_KEEP: f64 = 0.85;

/// The recorded figures gates 2 and 3 compare with (`model/gates.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Kernel symbol → loads in flight when recorded.
    pub loads_in_flight: BTreeMap<String, f64>,
    /// Kernel symbol → sector efficiency when recorded.
    #[serde(default)]
    pub sector_efficiency: BTreeMap<String, f64>,
}

pub const BASELINE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gates.json");

impl Baseline {
    pub fn load() -> Result<Baseline, String> {
        let text =
            std::fs::read_to_string(BASELINE_PATH).map_err(|e| format!("{BASELINE_PATH}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{BASELINE_PATH}: {e}"))
    }
    pub fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())? + "\n";
        std::fs::write(BASELINE_PATH, text).map_err(|e| format!("{BASELINE_PATH}: {e}"))
    }
}

/// One specialised kernel's figures on its gate workload.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub symbol: String,
    pub loads_in_flight: f64,
    pub sector_efficiency: f64,
}

/// A representative operator for each specialisation, with timm/antialiased-cnns geometry.
fn operator_for(s: Specialised) -> blurpool::Result<Operator> {
    let blur = |f: usize, st: usize| {
        Blur::new(
            Filter::binomial(f)?,
            (st, st),
            Pad2d {
                top: (f - 1) / 2,
                bottom: f / 2,
                left: (f - 1) / 2,
                right: f / 2,
            },
            PadMode::Reflect,
        )
    };
    Ok(match s {
        Specialised::Pooling {
            window: 1,
            filter,
            stride,
        }
        | Specialised::PoolingV4 {
            window: 1,
            filter,
            stride,
        } => Operator::BlurPool(BlurPool2d::new(blur(filter, stride)?)),
        Specialised::Pooling {
            window,
            filter,
            stride,
        }
        | Specialised::PoolingV4 {
            window,
            filter,
            stride,
        } => Operator::MaxBlurPool(MaxBlurPool2d::new(
            MaxPool2d::new((window, window), ((window - 1) / 2, (window - 1) / 2))?,
            blur(filter, stride)?,
        )),
        Specialised::DepthwiseConv {
            kernel,
            filter,
            stride,
        }
        | Specialised::DepthwiseConvV4 {
            kernel,
            filter,
            stride,
        } => {
            let c = 32;
            Operator::ConvBlurPool(ConvBlurPool2d::new(
                Conv2dSpec::new(Conv2dArgs {
                    in_channels: c,
                    out_channels: c,
                    kernel: (kernel, kernel),
                    padding: (kernel / 2, kernel / 2),
                    groups: c,
                    bias: false,
                    activation: Activation::Identity,
                })?,
                blur(filter, stride)?,
            ))
        }
        Specialised::TensorCoreConv { filter }
        | Specialised::TensorCoreConvV4 { filter, .. }
        | Specialised::TensorCoreConvWgmma { filter, .. } => {
            let c = 32;
            // The wgmma kernel is planned for more than 64 output channels.
            let cout = if matches!(s, Specialised::TensorCoreConvWgmma { .. }) {
                128
            } else {
                c
            };
            let b = if filter == 3 {
                timm::blur(3, 2, PadMode::Reflect)?
            } else {
                blur(filter, 2)?
            };
            Operator::ConvBlurPool(ConvBlurPool2d::new(
                Conv2dSpec::new(Conv2dArgs {
                    in_channels: c,
                    out_channels: cout,
                    kernel: (3, 3),
                    padding: (1, 1),
                    groups: 1,
                    bias: false,
                    activation: Activation::Identity,
                })?,
                b,
            ))
        }
    })
}

/// One gate workload: the operator on a shape in a dtype and layout, planned with a kernel
/// choice that lands on the specialisation under test.
pub type GateCase = (Operator, Shape4, DType, Layout, KernelChoice);

/// The gate workloads: each specialisation in each dtype and layout,
/// the v2 strips planned with `AtMost(V2)` (Auto takes v4 where it applies).
pub fn gate_cases() -> Result<Vec<GateCase>, String> {
    let mut out = Vec::new();
    for s in specialised_kernels() {
        let op = operator_for(s).map_err(|e| e.to_string())?;
        // v4 needs W a multiple of 8 in NCHW (rows of 16-byte chunks).
        let shape = match s {
            Specialised::PoolingV4 { .. } | Specialised::DepthwiseConvV4 { .. } => {
                Shape4::new(2, 32, 40, 48)
            }
            // 14 × 14 outputs: the plan takes 7 × 7 tiles (tc4_tile_side).
            Specialised::TensorCoreConvV4 { tile: 7, .. }
            | Specialised::TensorCoreConvWgmma { tile: 7, .. } => Shape4::new(2, 32, 28, 28),
            _ => Shape4::new(2, 32, 40, 44),
        };
        let dtypes: &[DType] = match s {
            Specialised::TensorCoreConv { .. }
            | Specialised::TensorCoreConvV4 { .. }
            | Specialised::TensorCoreConvWgmma { .. } => &[DType::F16, DType::BF16],
            _ => &DType::ALL,
        };
        let (layouts, choice): (&[Layout], _) = match s {
            Specialised::PoolingV4 { .. } | Specialised::DepthwiseConvV4 { .. } => {
                (&Layout::ALL, KernelChoice::Auto)
            }
            Specialised::TensorCoreConv { .. } => {
                (&Layout::ALL, KernelChoice::AtMost(KernelVersion::V3))
            }
            Specialised::TensorCoreConvV4 { .. } | Specialised::TensorCoreConvWgmma { .. } => {
                (&Layout::ALL, KernelChoice::Auto)
            }
            _ => (&Layout::ALL, KernelChoice::AtMost(KernelVersion::V2)),
        };
        for &d in dtypes {
            for &l in layouts {
                out.push((op.clone(), shape, d, l, choice));
            }
        }
    }
    Ok(out)
}

/// A one-launch workload spec for the operator's forward plan, launching `emu_prefix` + symbol
/// in the emulator.
fn spec_for(case: &GateCase) -> Result<WorkloadSpec, String> {
    let (op, shape, dtype, layout, choice) = case;
    let (shape, dtype, layout) = (*shape, *dtype, *layout);
    let e = |e: blurpool::Error| e.to_string();
    let plan = op
        .plan(
            shape,
            blurpool::cuda::Target::new(dtype, layout).with_choice(*choice),
        )
        .map_err(e)?;
    let sz = dtype.size();
    let n_in = shape.numel().map_err(e)?;
    let n_out = plan.output().numel().map_err(e)?;
    let (wlen, blen) = op.conv().map_or((0, 0), |c| (c.weight_len(), c.bias_len()));
    let buf = |role, n: usize, images, input| crate::suite::BufferSpec {
        role,
        bytes: (n * sz).max(sz),
        dtype: Some(dtype),
        images,
        input,
    };
    Ok(WorkloadSpec {
        workload: Workload {
            op: BenchOp::MaxBlurPool, // a label only: the launches below are what runs
            shape,
            dtype,
            layout,
        },
        paths: vec![PathSpec {
            name: "fused".into(),
            launches: crate::suite::forward_launches(
                &plan,
                Role::X,
                Role::Y,
                crate::suite::max_blocks(&crate::hw::H100),
                true,
            ),
        }],
        buffers: [
            buf(Role::X, n_in, shape.n, true),
            buf(Role::Weight, wlen, 1, true),
            buf(Role::Bias, blen, 1, true),
            buf(Role::Y, n_out, shape.n, false),
        ]
        .into_iter()
        .chain(crate::suite::packed_weight_buffer(&plan))
        .collect(),
        min_read: ((n_in + wlen) * sz) as u64,
        min_write: (n_out * sz) as u64,
        input_bytes: (n_in * sz) as u64,
        outputs: n_out as u64,
    })
}

/// The figures of one gate case, tracing `emu_prefix` + symbol and reading `sass`.
pub fn figures(case: &GateCase, sass: &Sass, emu_prefix: &str) -> Result<Figures, String> {
    let spec = spec_for(case)?;
    let path = &spec.paths[0];
    let traces = crate::suite::trace_path(&spec, path, Sample::SUITE, emu_prefix)?;
    // The plan's kernel is the last launch (a weight packing may come first).
    let last = path.launches.len() - 1;
    let (l, t) = (&path.launches[last], &traces[last]);
    let f = sass.function(&l.symbol)?;
    let code = code_figures(f, t);
    let mem = crate::cache::simulate(
        t,
        &crate::cache::CacheConfig {
            l1_bytes_per_block: 64 * 1024,
            l2_bytes: crate::hw::H100.l2_bytes,
            lsu_clk_per_request: 2.0,
            l1_sectors_per_clk: 4.0,
            smem_wavefronts_per_clk: 1.0,
        },
    );
    Ok(Figures {
        symbol: l.symbol.clone(),
        loads_in_flight: code.loads_in_flight,
        sector_efficiency: mem.sector_efficiency(),
    })
}

/// Gate 1 over every function of `sass`: the offenders.
pub fn local_memory_offenders(sass: &Sass) -> Vec<String> {
    let mut out: Vec<String> = sass
        .functions
        .values()
        .filter_map(|f| {
            let r = f.resources;
            let lmem = f
                .instrs
                .iter()
                .filter(|i| i.class == Class::LocalAccess)
                .count();
            (r.stack > 0 || r.local > 0 || lmem > 0).then(|| {
                format!(
                    "{}: stack {} B, local {} B, {lmem} LDL/STL",
                    f.name, r.stack, r.local
                )
            })
        })
        .collect();
    out.sort();
    out
}

/// Gate 2 for one kernel: Err says why it fails.
pub fn check_in_flight(f: &Figures, base: &Baseline) -> Result<(), String> {
    let now = f.loads_in_flight;
    match base.loads_in_flight.get(&f.symbol).copied() {
        None if now < MIN_IN_FLIGHT => Err(format!(
            "{}: {now:.2} global loads in flight at first use (< {MIN_IN_FLIGHT}; a new kernel must batch its loads)",
            f.symbol
        )),
        Some(r) if r >= MIN_IN_FLIGHT && now < MIN_IN_FLIGHT => Err(format!(
            "{}: {now:.2} global loads in flight at first use (< {MIN_IN_FLIGHT}), recorded at {r:.2}: \
             its loads used to be batched and are now issued one at a time",
            f.symbol
        )),
        Some(r) if now < KEEP_FRACTION * r => Err(format!(
            "{}: {now:.2} global loads in flight at first use, down from {r:.2} recorded in gates.json (< {KEEP_FRACTION} of it)",
            f.symbol
        )),
        _ => Ok(()),
    }
}

/// Gate 3 for one kernel.
pub fn check_sectors(f: &Figures, base: &Baseline) -> Result<(), String> {
    let now = f.sector_efficiency;
    if now < SECTOR_FLOOR {
        return Err(format!(
            "{}: its loads use {:.0}% of the sector bytes they fetch (< {:.0}%)",
            f.symbol,
            100.0 * now,
            100.0 * SECTOR_FLOOR
        ));
    }
    if let Some(r) = base.sector_efficiency.get(&f.symbol).copied() {
        if now < SECTOR_KEEP * r {
            return Err(format!(
                "{}: its loads use {:.0}% of the sector bytes they fetch, down from {:.0}% recorded (< {SECTOR_KEEP} of it)",
                f.symbol,
                100.0 * now,
                100.0 * r
            ));
        }
    }
    Ok(())
}

/// What `--gates` found.
#[derive(Debug, Default)]
pub struct GateReport {
    pub figures: Vec<Figures>,
    pub failures: Vec<String>,
    /// The self-check: what each broken variant did (must be failures).
    pub variant_checks: Vec<String>,
    pub variant_escapes: Vec<String>,
    /// Variants the gates are not expected to catch there (the kernel already looks like them).
    pub variant_not_applicable: Vec<String>,
}

/// Runs every gate, and the self-check on the broken variants. `record` rewrites
/// `model/gates.json` from this run's figures instead of comparing with it.
pub fn run(record: bool) -> Result<GateReport, String> {
    let sass = Sass::kernels()?;
    let variant = Sass::serialised_variant()?;
    let base = if record {
        Baseline::default()
    } else {
        Baseline::load()?
    };
    let mut rep = GateReport::default();
    rep.failures.extend(
        local_memory_offenders(&sass)
            .into_iter()
            .map(|o| format!("local memory: {o}")),
    );
    let mut recorded = Baseline::default();
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    for case in gate_cases()? {
        let (op, l) = (&case.0, case.3);
        let f = figures(&case, &sass, "")?;
        recorded
            .loads_in_flight
            .insert(f.symbol.clone(), round(f.loads_in_flight));
        recorded
            .sector_efficiency
            .insert(f.symbol.clone(), round(f.sector_efficiency));
        // Recording compares with what it records (so the self-check below has its baseline).
        let cmp = if record { &recorded } else { &base };
        if let Err(e) = check_in_flight(&f, cmp) {
            rep.failures.push(e);
        }
        if let Err(e) = check_sectors(&f, cmp) {
            rep.failures.push(e);
        }
        // The self-check on the pooling strip kernels (the ones with variants).
        if matches!(op, Operator::MaxBlurPool(_) | Operator::BlurPool(_)) {
            let batched = cmp
                .loads_in_flight
                .get(&f.symbol)
                .is_some_and(|&r| r >= MIN_IN_FLIGHT);
            let v = figures(&case, &variant, "gate_serialised:")?;
            match (check_in_flight(&v, cmp), batched) {
                (Err(e), _) => rep.variant_checks.push(format!("serialised variant caught: {e}")),
                (Ok(()), true) => rep.variant_escapes.push(format!(
                    "serialised variant of {} passed gate 2 ({:.2} loads in flight)",
                    v.symbol, v.loads_in_flight
                )),
                (Ok(()), false) => rep.variant_not_applicable.push(format!(
                    "serialised variant of {}: {:.2} loads in flight, the kernel's own {:.2} (it does not batch; nothing to lose)",
                    v.symbol, v.loads_in_flight, f.loads_in_flight
                )),
            }
            let u = figures(&case, &sass, "gate_uncoalesced:")?;
            match (check_sectors(&u, cmp), l == Layout::Nhwc) {
                (Err(e), _) => rep.variant_checks.push(format!("uncoalesced variant caught: {e}")),
                (Ok(()), true) => rep.variant_escapes.push(format!(
                    "uncoalesced variant of {} passed gate 3 ({:.0}% sector efficiency)",
                    u.symbol,
                    100.0 * u.sector_efficiency
                )),
                (Ok(()), false) => rep.variant_not_applicable.push(format!(
                    "uncoalesced variant of {} (NCHW): {:.0}% sector efficiency, the kernel's own {:.0}%",
                    u.symbol,
                    100.0 * u.sector_efficiency,
                    100.0 * f.sector_efficiency
                )),
            }
        }
        rep.figures.push(f);
    }
    if record {
        recorded.save()?;
    }
    Ok(rep)
}
