//! The machines the model predicts for, every figure in one place with its source. Sources are
//! those compiled in /work/shared/notes/gpu-model-anchors.md (its tags: [R] read in the source,
//! [D] derived, shown here, [P] a proxy from another SKU, [U] recalled, not re-read); the
//! repo's copy of what they mean is notes/model.md.

use serde::Serialize;

/// One GPU as the model sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Gpu {
    pub name: &'static str,
    /// Streaming multiprocessors. [R] NVIDIA spec tables (hpctech, Glenn Lockwood).
    pub sms: u32,
    /// SM clock, Hz (max boost). [R] NVIDIA final spec (prohardver); H200 "~1.98 GHz commonly
    /// stated" [R geektopia].
    pub clock_hz: f64,
    /// HBM peak, bytes/s. [R] spec tables.
    pub dram_spec_bps: f64,
    /// BabelStream Copy (1:1 read + write), bytes/s: the copy roofline. [R] Azure HPC results.
    pub dram_copy_bps: f64,
    /// BabelStream Dot (read-only), bytes/s. [R] Azure HPC results.
    pub dram_read_bps: f64,
    /// L2 size, bytes. [R] RRZE gpu-benches README / h200.txt (50 MB, two partitions).
    pub l2_bytes: u64,
    /// L2 → SM bandwidth for L2-resident data, bytes/s. [R] RRZE gpu-l2-cache h200.txt
    /// (9.7–10.2 TB/s at ≤ 40 MB); H100 SXM [P]: the same GH100 die and clock.
    pub l2_bps: f64,
    /// L1 + shared memory per SM, bytes. [R] CCCL sm_900_traits.
    pub l1_smem_bytes: u64,
    /// Shared memory reserved per block, bytes. [R] CCCL sm_900_traits (1 KiB).
    pub smem_reserved_per_block: u64,
    /// Residency per SM. [R] CCCL sm_900_traits.
    pub max_warps_per_sm: u32,
    pub max_blocks_per_sm: u32,
    pub regs_per_sm: u32,
    /// Register allocation unit per warp (registers). [U] CUDA occupancy calculator: 256 per warp,
    /// i.e. per-thread counts rounded up to a multiple of 8.
    pub reg_alloc_unit: u32,
    /// Warp instructions issued per SM per clock (4 schedulers × 1). [U/D] Ding & Williams'
    /// instruction roofline ceiling.
    pub issue_per_sm_clk: f64,
    /// SM clocks per global/shared memory warp request that the L1/shared stage accepts: one
    /// request every 2 cycles from any sub-core. [S, P] Huerta et al., arXiv:2503.20481 (Ampere).
    pub lsu_clk_per_request: f64,
    /// L1 data path, sectors (32 B) per SM per clock: ≈128 B/clk. [R] RRZE README.
    pub l1_sectors_per_clk: f64,
    /// Shared memory wavefronts per SM per clock (32 banks × 4 B). [U] CUDA programming guide.
    pub smem_wavefronts_per_clk: f64,
    /// DRAM latency under load, seconds: 785 ns, inferred from RRZE's gpu-stream read kernel on
    /// H200 (2.06 MiB in flight / 2.756 TB/s) [D]; unloaded it is ≈ 355 ns (700 cycles) [R MD].
    /// An upper bound: block turnover lowers the bytes really in flight in that measurement.
    pub dram_latency_s: f64,
    /// L1 hit latency, seconds: ≈ 40 cycles (39.6 [R MD]; 32–34 in RRZE's runs) at 1.98 GHz.
    pub l1_latency_s: f64,
    /// L2 hit latency, seconds: ≈ 405 cycles, the mean of the near (≈290) and far (≈520)
    /// partitions at 1.98 GHz [R MD, D].
    pub l2_latency_s: f64,
    /// Dense FP16/BF16 tensor-core peak, FLOP/s. [U] NVIDIA datasheet (989.4 TFLOP/s, SXM);
    /// mma.sync reaches less than this on Hopper (the full rate needs wgmma).
    pub tensor_flops: f64,
    /// Fixed cost of one launch as CUDA events see it, seconds. [U] typical 2–4 µs for a launch
    /// into an idle stream; the model adds it once per kernel.
    pub launch_s: f64,
}

impl Gpu {
    /// The DRAM bandwidth of a stream that reads `r` and writes `w` bytes: reads at the
    /// read-only rate, writes at the rate that makes a 1:1 copy run at the copy rate
    /// (1/copy = ½/read + ½/write, so write = 1 / (2/copy − 1/read)). [D]
    pub fn dram_write_bps(&self) -> f64 {
        1.0 / (2.0 / self.dram_copy_bps - 1.0 / self.dram_read_bps)
    }

    /// Seconds to move `read` and `write` DRAM bytes.
    pub fn dram_seconds(&self, read: f64, write: f64) -> f64 {
        read / self.dram_read_bps + write / self.dram_write_bps()
    }

    /// Seconds the 1:1 copy of `input_bytes` takes (2 × input_bytes moved) at the copy rate:
    /// what "% of the copy roofline" divides by, as the benchmark does.
    pub fn copy_seconds(&self, input_bytes: f64) -> f64 {
        2.0 * input_bytes / self.dram_copy_bps
    }
}

/// H100 SXM5 80 GB.
pub const H100: Gpu = Gpu {
    name: "H100 SXM",
    sms: 132,
    clock_hz: 1.98e9,
    dram_spec_bps: 3.35e12,
    dram_copy_bps: 2.90e12,
    dram_read_bps: 3.18e12,
    l2_bytes: 50 * 1024 * 1024,
    l2_bps: 9.7e12,
    l1_smem_bytes: 256 * 1024,
    smem_reserved_per_block: 1024,
    max_warps_per_sm: 64,
    max_blocks_per_sm: 32,
    regs_per_sm: 65536,
    reg_alloc_unit: 8,
    issue_per_sm_clk: 4.0,
    lsu_clk_per_request: 2.0,
    l1_sectors_per_clk: 4.0,
    smem_wavefronts_per_clk: 1.0,
    dram_latency_s: 785e-9,
    l1_latency_s: 40.0 / 1.98e9,
    l2_latency_s: 405.0 / 1.98e9,
    tensor_flops: 989.4e12,
    launch_s: 3e-6,
};

/// H200 SXM 141 GB.
pub const H200: Gpu = Gpu {
    name: "H200 SXM",
    dram_spec_bps: 4.8e12,
    dram_copy_bps: 4.01e12,
    dram_read_bps: 4.48e12,
    ..H100
};

/// The machines of the suite's table.
pub const ALL: [&Gpu; 2] = [&H100, &H200];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_write_rate_reproduces_the_copy_rate() {
        for g in ALL {
            let copy = g.dram_seconds(1e9, 1e9);
            assert!((2e9 / copy - g.dram_copy_bps).abs() / g.dram_copy_bps < 1e-9);
            assert!(g.dram_write_bps() < g.dram_read_bps);
        }
        // H100: write ≈ 2.665 TB/s
        assert!((H100.dram_write_bps() - 2.665e12).abs() < 0.01e12);
    }
}
