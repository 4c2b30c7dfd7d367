//! The analytical model: a launch's time on a GPU is the largest of the times its resources
//! need (a roofline over every resource, the form of Hong & Kim's memory-bound case and of
//! Volkov's latency-hiding analysis):
//!
//! * DRAM: the bytes the L2 model reads and writes, at the read-only and write rates that
//!   reproduce the measured copy rate (`hw::Gpu::dram_seconds`);
//! * L2: the bytes between L1 and L2 at the L2-resident bandwidth;
//! * issue: the estimated dynamic warp instructions over 4 schedulers × 1 instruction per clock
//!   per SM;
//! * LSU: the L1/shared stage's cycles per request (one request per 2 cycles; more lines,
//!   sectors or bank-conflict wavefronts take longer);
//! * latency (Little's law over requests): each warp keeps the loads it issues before the
//!   first use (from the SASS scoreboards) in flight, each request waiting the latency of the
//!   farthest level it needs (L1 hit, L2, DRAM: from the cache model); with W resident warps on
//!   S SMs the loads take Σ latency / (S × W × loads in flight);
//! * tensor cores: mma FLOPs at the dense peak;
//!
//! plus a fixed launch cost. The bound that binds is named. What it cannot see: queueing beyond
//! the loaded latency used, scheduler interleaving and dependency stalls other than loads,
//! tail effects of partial waves, DRAM page and refresh effects, the real tensor-core rate of
//! mma.sync on Hopper. Its error is unknown until a GPU measures the same workloads
//! (notes/model.md).

use std::collections::HashMap;

use serde::Serialize;

use crate::cache::{simulate, CacheConfig, MemStats};
use crate::hw::Gpu;
use crate::sass::{Class, Function};
use crate::trace::LaunchTrace;

/// Residency of a launch on one SM.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Occupancy {
    /// Blocks per SM the resources allow, and what limits them.
    pub blocks_per_sm: u32,
    pub limiter: &'static str,
    /// Blocks per SM this grid actually has resident (≤ blocks_per_sm), and their warps.
    pub resident_blocks: u32,
    pub warps_per_sm: u32,
    /// SMs with work.
    pub active_sms: u32,
}

/// Occupancy of `grid` blocks of `block` threads using `regs` registers per thread and
/// `shared` bytes of static shared memory per block.
pub fn occupancy(g: &Gpu, grid: u32, block: u32, regs: u32, shared: u32) -> Occupancy {
    let warps_per_block = block.div_ceil(32).max(1);
    let regs_alloc = regs.max(1).div_ceil(g.reg_alloc_unit) * g.reg_alloc_unit;
    let by_regs = g.regs_per_sm / (regs_alloc * 32 * warps_per_block).max(1);
    let by_warps = g.max_warps_per_sm / warps_per_block;
    let smem_per_block = shared as u64 + g.smem_reserved_per_block;
    let smem_per_sm = 228 * 1024; // [R] CCCL sm_900_traits: 228 KiB of shared memory per SM
    let by_smem = (smem_per_sm / smem_per_block) as u32;
    let mut limits = [
        (by_regs, "registers"),
        (by_warps, "warps"),
        (by_smem, "shared memory"),
        (g.max_blocks_per_sm, "blocks"),
    ];
    limits.sort_by_key(|l| l.0);
    let (blocks_per_sm, limiter) = limits[0];
    let active_sms = grid.clamp(1, g.sms);
    let resident_blocks = blocks_per_sm.min(grid.div_ceil(g.sms)).max(1);
    Occupancy {
        blocks_per_sm,
        limiter,
        resident_blocks,
        warps_per_sm: resident_blocks * warps_per_block,
        active_sms,
    }
}

/// The machine code's figures for one launch.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CodeFigures {
    pub registers: u32,
    pub shared_bytes: u32,
    pub stack_bytes: u32,
    pub local_bytes: u32,
    pub static_instructions: usize,
    /// Static global loads by width in bytes: "2B×16 4B×8".
    pub load_widths: String,
    /// Global loads in flight when one is first used: weighted by how often each load runs
    /// (the dynamic mean), and the most anywhere in the code.
    pub loads_in_flight: f64,
    pub loads_in_flight_max: u32,
    /// Estimated dynamic warp instructions of the whole launch.
    pub warp_instructions: f64,
}

/// One launch's prediction on one GPU.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    pub gpu: &'static str,
    pub occupancy: Occupancy,
    /// Bytes in flight per SM (Little's law's numerator).
    pub bytes_in_flight_per_sm: f64,
    pub t_dram: f64,
    pub t_l2: f64,
    pub t_issue: f64,
    pub t_lsu: f64,
    pub t_latency: f64,
    pub t_tensor: f64,
    pub t_launch: f64,
    /// max(bounds) + launch, seconds.
    pub time: f64,
    pub bound: &'static str,
    /// The whole launch's memory counts (the sample's, scaled).
    pub mem: MemStats,
}

/// One launch: its code figures, the sample, and a prediction per GPU.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LaunchModel {
    pub symbol: String,
    pub grid: u32,
    pub block: u32,
    pub code: CodeFigures,
    pub items_total: i64,
    pub items_sampled: u64,
    pub blocks_sampled: u32,
    pub events_sampled: u64,
    pub predictions: Vec<Prediction>,
}

/// The sites of a trace as the SASS reader names them, and each one's dynamic warp requests in
/// the sample (a mark's: how often warps took its path).
fn site_requests(t: &LaunchTrace) -> (HashMap<(String, u32), usize>, Vec<f64>) {
    let sites: HashMap<(String, u32), usize> = t
        .sites
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.file.clone(), s.line), i))
        .collect();
    let mut counts = vec![0.0; t.sites.len()];
    for b in &t.blocks {
        for r in b {
            counts[r.site as usize] += 1.0;
        }
    }
    (sites, counts)
}

/// The estimated dynamic warp instructions of `f` in the traced launch `t` (scaled to the whole
/// launch) by source line: each instruction counted at the frame just inside the outermost
/// line of its inlining chain that lies in `file` (for "strip.cuh": the line of the strip
/// walk, or of the run loop around it, that the instruction belongs to), else its innermost
/// line (`file` None: always the innermost); largest first. `--sites` prints both: where the
/// issue bound comes from.
pub fn instructions_by_line(
    f: &Function,
    t: &LaunchTrace,
    file: Option<&str>,
) -> Vec<(String, f64)> {
    let (sites, counts) = site_requests(t);
    let marks = crate::sass::Sass::mark_lines();
    let (_, per_instr) = f.dynamic_instructions(&sites, &counts, &marks, t.warps_sampled() as f64);
    let mut by: HashMap<String, f64> = HashMap::new();
    for (ins, n) in f.instrs.iter().zip(&per_instr) {
        let c = &ins.chain;
        let at = file
            .and_then(|file| c.iter().rposition(|(fl, _)| fl == file))
            .map(|i| &c[i.saturating_sub(1)])
            .or(c.first())
            .map_or_else(|| "?".to_string(), |(fl, l)| format!("{fl}:{l}"));
        *by.entry(at).or_default() += n * t.scale();
    }
    let mut v: Vec<(String, f64)> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// Code figures of `f` for the traced launch `t` (sample counts scaled by `t.scale()`), and
/// the dynamic weights of its loads.
pub fn code_figures(f: &Function, t: &LaunchTrace) -> CodeFigures {
    let (sites, counts) = site_requests(t);
    let marks = crate::sass::Sass::mark_lines();
    let (dyn_instr, per_instr) =
        f.dynamic_instructions(&sites, &counts, &marks, t.warps_sampled() as f64);
    let inflight = f.loads_in_flight();
    let mut widths: std::collections::BTreeMap<u8, u32> = Default::default();
    let (mut wsum, mut w) = (0.0, 0.0);
    let mut max_inflight = 0;
    for (i, ins) in f.instrs.iter().enumerate() {
        if ins.class != Class::GlobalLoad {
            continue;
        }
        *widths.entry(ins.width).or_default() += 1;
        let n = inflight.get(&i).copied().unwrap_or(1);
        max_inflight = max_inflight.max(n);
        wsum += per_instr[i] * n as f64;
        w += per_instr[i];
    }
    CodeFigures {
        registers: f.resources.registers,
        shared_bytes: f.resources.shared,
        stack_bytes: f.resources.stack,
        local_bytes: f.resources.local,
        static_instructions: f.instrs.len(),
        load_widths: widths
            .iter()
            .map(|(b, n)| format!("{b}B×{n}"))
            .collect::<Vec<_>>()
            .join(" "),
        loads_in_flight: if w > 0.0 { wsum / w } else { 0.0 },
        loads_in_flight_max: max_inflight,
        warp_instructions: dyn_instr * t.scale(),
    }
}

/// Predicts a traced launch of `f` on `g`.
pub fn predict(
    g: &Gpu,
    f: &Function,
    t: &LaunchTrace,
    code: &CodeFigures,
    grid: u32,
    block: u32,
) -> Prediction {
    let occ = occupancy(g, grid, block, code.registers, code.shared_bytes);
    let smem_used =
        occ.resident_blocks as u64 * (code.shared_bytes as u64 + g.smem_reserved_per_block);
    let l1_per_block =
        g.l1_smem_bytes.saturating_sub(smem_used) / occ.resident_blocks.max(1) as u64;
    let cfg = CacheConfig {
        l1_bytes_per_block: l1_per_block,
        l2_bytes: g.l2_bytes,
        lsu_clk_per_request: g.lsu_clk_per_request,
        l1_sectors_per_clk: g.l1_sectors_per_clk,
        smem_wavefronts_per_clk: g.smem_wavefronts_per_clk,
    };
    let _ = f;
    let mem = simulate(t, &cfg).scaled(t.scale());
    let sms = occ.active_sms as f64;
    let (dram_r, dram_w) = mem.dram_bytes();
    let t_dram = g.dram_seconds(dram_r, dram_w);
    let t_l2 = mem.l2_bytes() / g.l2_bps;
    let t_issue = code.warp_instructions / (sms * g.issue_per_sm_clk * g.clock_hz);
    let t_lsu = mem.lsu_cycles / (sms * g.clock_hz);
    let t_tensor = mem.mma * 2.0 * 16.0 * 8.0 * 16.0 / g.tensor_flops;
    // Little's law over the load requests: a warp keeps `loads_in_flight` requests
    // outstanding (the SASS's batch before the first use), each waiting its level's latency
    // (all-L1-hit requests the L1 latency, L2-served ones the L2 latency, those with a DRAM
    // sector the DRAM latency); the resident warps of the active SMs overlap them.
    let latency_sum = mem.ld_req_l1 * g.l1_latency_s
        + mem.ld_req_l2 * g.l2_latency_s
        + mem.ld_req_dram * g.dram_latency_s;
    let bytes_per_request = if mem.ld_requests > 0.0 {
        mem.ld_bytes / mem.ld_requests
    } else {
        0.0
    };
    let bif_per_sm = occ.warps_per_sm as f64 * code.loads_in_flight * bytes_per_request;
    let t_latency = if code.loads_in_flight > 0.0 && occ.warps_per_sm > 0 {
        latency_sum / (sms * occ.warps_per_sm as f64 * code.loads_in_flight)
    } else {
        0.0
    };
    let bounds = [
        (t_dram, "DRAM"),
        (t_l2, "L2"),
        (t_issue, "issue"),
        (t_lsu, "LSU"),
        (t_latency, "latency"),
        (t_tensor, "tensor"),
    ];
    let (worst, bound) = bounds
        .iter()
        .copied()
        .fold((0.0, "none"), |a, b| if b.0 > a.0 { b } else { a });
    Prediction {
        gpu: g.name,
        occupancy: occ,
        bytes_in_flight_per_sm: bif_per_sm,
        t_dram,
        t_l2,
        t_issue,
        t_lsu,
        t_latency,
        t_tensor,
        t_launch: g.launch_s,
        time: worst + g.launch_s,
        bound,
        mem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::H100;

    #[test]
    fn occupancy_follows_registers_and_the_grid() {
        // 64 registers × 256 threads = 16,384 per block: 4 blocks of 65,536.
        let o = occupancy(&H100, 10_000, 256, 64, 0);
        assert_eq!(
            (o.blocks_per_sm, o.limiter, o.warps_per_sm),
            (4, "registers", 32)
        );
        // 32 registers: 8 blocks (64 warps) by registers and warps alike
        let o = occupancy(&H100, 10_000, 256, 32, 0);
        assert_eq!((o.blocks_per_sm, o.warps_per_sm), (8, 64));
        // 57 registers round up to 64
        assert_eq!(occupancy(&H100, 10_000, 256, 57, 0).blocks_per_sm, 4);
        // a small grid: 66 blocks on 132 SMs
        let o = occupancy(&H100, 66, 256, 32, 0);
        assert_eq!((o.active_sms, o.resident_blocks), (66, 1));
        // 40 KB of shared memory per block: 5 blocks (228 KiB / 41 KiB)
        assert_eq!(
            occupancy(&H100, 10_000, 256, 16, 40 * 1024).blocks_per_sm,
            5
        );
    }
}
