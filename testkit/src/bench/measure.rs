//! Timing the way nvbench's cold measurements do it (docs: /work/shared/notes/
//! gpu-model-anchors.md §7): before every sample the L2 cache is flushed (a memset over a buffer
//! of the L2's size), then one launch is timed with CUDA events; samples are taken until the
//! spread settles (or a cap), and reported as a median with its spread. The SM clock is
//! measured in the same run (a clock64() spin timed by events), so a throttled run shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::sys::{CUdevice_attribute, CUevent_flags};
use cudarc::driver::{
    CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};

use crate::gpu::Gpu;

/// Summary of a set of timings (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub samples: usize,
    pub median: f64,
    /// 10th and 90th percentiles (nearest rank).
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Standard deviation over the mean.
    pub rel_stdev: f64,
}

impl Stats {
    /// The summary of `samples`, or None when there are none (or any is not finite).
    pub fn from_samples(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stats {
            samples: n,
            median,
            p10: rank(0.1),
            p90: rank(0.9),
            min: v[0],
            max: v[n - 1],
            mean,
            rel_stdev: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        })
    }
}

/// When to stop sampling (nvbench's `stdrel` criterion, with smaller defaults so that a
/// 15-minute GPU session covers the suite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureConfig {
    /// At least this many samples.
    pub min_samples: usize,
    /// At most this many.
    pub max_samples: usize,
    /// Stop once the samples add up to this much GPU time and the noise is below `max_noise`.
    pub min_gpu_time: Duration,
    /// Relative standard deviation that counts as settled.
    pub max_noise: f64,
    /// Wall-clock cap per measurement.
    pub timeout: Duration,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            min_samples: 10,
            max_samples: 200,
            min_gpu_time: Duration::from_millis(100),
            max_noise: 0.01,
            timeout: Duration::from_secs(2),
        }
    }
}

impl MeasureConfig {
    /// True once `gpu_time` over `n` samples with noise `rel_stdev` is enough (or `wall` ran out).
    pub fn done(&self, n: usize, gpu_time: f64, rel_stdev: f64, wall: Duration) -> bool {
        if n < self.min_samples {
            return false;
        }
        n >= self.max_samples
            || wall >= self.timeout
            || (gpu_time >= self.min_gpu_time.as_secs_f64() && rel_stdev <= self.max_noise)
    }
}

/// Flushes the L2 before each sample and times single launches with CUDA events.
pub struct ColdTimer {
    stream: Arc<CudaStream>,
    flush: CudaSlice<u8>,
    start: CudaEvent,
    end: CudaEvent,
}

fn driver(e: cudarc::driver::DriverError) -> String {
    e.to_string()
}

/// The device's L2 size in bytes.
pub fn l2_bytes(g: &Gpu) -> Result<usize, String> {
    Ok(g.ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
        .map_err(driver)?
        .max(1) as usize)
}

impl ColdTimer {
    pub fn new(g: &Gpu) -> Result<ColdTimer, String> {
        let stream = g.stream.clone();
        // Twice the L2: a memset of exactly its size may leave lines of the last launch behind
        // where the hashing of addresses to slices is uneven.
        let flush = stream.alloc_zeros::<u8>(2 * l2_bytes(g)?).map_err(driver)?;
        let ev = || {
            g.ctx
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(driver)
        };
        Ok(ColdTimer {
            stream,
            flush,
            start: ev()?,
            end: ev()?,
        })
    }

    /// GPU seconds of `run` (which queues work on the timer's stream) after an L2 flush.
    pub fn time_once(
        &mut self,
        run: &mut dyn FnMut() -> Result<(), String>,
    ) -> Result<f64, String> {
        self.stream.memset_zeros(&mut self.flush).map_err(driver)?;
        self.start.record(&self.stream).map_err(driver)?;
        run()?;
        self.end.record(&self.stream).map_err(driver)?;
        self.end.synchronize().map_err(driver)?;
        let ms = self.start.elapsed_ms(&self.end).map_err(driver)?;
        Ok(ms as f64 * 1e-3)
    }

    /// Cold samples of `run(i)` (i counts the samples, for buffer rotation) after one cold
    /// warm-up run, until `cfg` says stop.
    pub fn measure(
        &mut self,
        run: &mut dyn FnMut(usize) -> Result<(), String>,
        cfg: &MeasureConfig,
    ) -> Result<Stats, String> {
        self.time_once(&mut || run(0))?;
        let t0 = Instant::now();
        let mut samples = Vec::new();
        loop {
            let i = samples.len() + 1;
            samples.push(self.time_once(&mut || run(i))?);
            let s = Stats::from_samples(&samples).ok_or("a timing was not finite")?;
            if cfg.done(
                samples.len(),
                s.mean * s.samples as f64,
                s.rel_stdev,
                t0.elapsed(),
            ) {
                return Ok(s);
            }
        }
    }
}

/// Small kernels of the harness itself (compiled at run time with NVRTC): a clock64() spin for
/// the SM clock, and the read-mostly roofline stream.
pub struct HarnessKernels {
    _module: Arc<CudaModule>,
    pub(crate) spin: CudaFunction,
    pub(crate) read_mostly: CudaFunction,
}

const HARNESS_SRC: &str = r#"
struct alignas(16) bp_u4 { unsigned x, y, z, w; };
// Spins for `cycles` SM clocks; thread 0 writes the clocks it saw.
extern "C" __global__ void bp_bench_spin(long long cycles, long long *out) {
    const long long t0 = clock64();
    long long t = t0;
    while (t - t0 < cycles) t = clock64();
    if (threadIdx.x == 0 && blockIdx.x == 0) *out = t - t0;
}
// out[i] = xor of in[j * n_out + i] over j < k: k 16-byte reads per 16-byte write, every read
// coalesced and independent of the others (a read-mostly stream like the pooling kernels').
extern "C" __global__ void bp_bench_read_mostly(const bp_u4 *__restrict__ in, bp_u4 *__restrict__ out,
                                                long long n_out, int k) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_out;
         i += (long long)gridDim.x * blockDim.x) {
        bp_u4 acc = {0u, 0u, 0u, 0u};
#pragma unroll 8
        for (int j = 0; j < k; ++j) {
            const bp_u4 v = in[(long long)j * n_out + i];
            acc.x ^= v.x; acc.y ^= v.y; acc.z ^= v.z; acc.w ^= v.w;
        }
        out[i] = acc;
    }
}
"#;

impl HarnessKernels {
    pub fn load(g: &Gpu) -> Result<HarnessKernels, String> {
        let major = g
            .ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .map_err(driver)?;
        let minor = g
            .ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .map_err(driver)?;
        let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(arch),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(HARNESS_SRC, opts)
            .map_err(|e| format!("compiling the harness kernels with NVRTC: {e}"))?;
        let module = g.ctx.load_module(ptx).map_err(driver)?;
        Ok(HarnessKernels {
            spin: module.load_function("bp_bench_spin").map_err(driver)?,
            read_mostly: module
                .load_function("bp_bench_read_mostly")
                .map_err(driver)?,
            _module: module,
        })
    }
}

/// The SM clock, measured (MHz), and the device's stated maximum (MHz).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clocks {
    pub sm_mhz: f64,
    pub sm_max_mhz: f64,
}

/// Spins one warp for 20M clocks and times it with events: clocks per second.
pub fn measure_clocks(g: &Gpu, k: &HarnessKernels) -> Result<Clocks, String> {
    const CYCLES: i64 = 20_000_000;
    let stream = &g.stream;
    let mut out = stream.alloc_zeros::<i64>(1).map_err(driver)?;
    let ev = || {
        g.ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(driver)
    };
    let (start, end) = (ev()?, ev()?);
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (32, 1, 1),
        shared_mem_bytes: 0,
    };
    start.record(stream).map_err(driver)?;
    let mut b = stream.launch_builder(&k.spin);
    b.arg(&CYCLES).arg(&mut out);
    // SAFETY: bp_bench_spin takes (long long, long long*); `out` holds one i64 and outlives
    // the launch (the stream is synchronised below before it drops).
    unsafe { b.launch(cfg) }.map_err(driver)?;
    end.record(stream).map_err(driver)?;
    end.synchronize().map_err(driver)?;
    let seconds = start.elapsed_ms(&end).map_err(driver)? as f64 * 1e-3;
    let seen = stream.clone_dtoh(&out).map_err(driver)?[0] as f64;
    let khz = g
        .ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)
        .map_err(driver)? as f64;
    Ok(Clocks {
        sm_mhz: seen / seconds / 1e6,
        sm_max_mhz: khz / 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_known_samples() {
        let s = Stats::from_samples(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.samples, s.median, s.min, s.max), (5, 3.0, 1.0, 5.0));
        assert_eq!((s.p10, s.p90), (1.0, 5.0));
        assert!((s.mean - 3.0).abs() < 1e-12);
        // sample stdev of 1..5 is sqrt(2.5)
        assert!((s.rel_stdev - 2.5f64.sqrt() / 3.0).abs() < 1e-12);
        let even = Stats::from_samples(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(even.median, 2.5);
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        let t = Stats::from_samples(&ten).unwrap();
        assert_eq!((t.p10, t.p90), (1.0, 9.0));
        assert!(Stats::from_samples(&[]).is_none());
        assert!(Stats::from_samples(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn sampling_stops_when_settled_or_capped() {
        let c = MeasureConfig::default();
        let w = Duration::from_millis(1);
        assert!(!c.done(5, 1.0, 0.0, w), "below min_samples");
        assert!(c.done(10, 0.2, 0.001, w), "settled");
        assert!(!c.done(10, 0.2, 0.05, w), "noisy");
        assert!(!c.done(10, 0.01, 0.001, w), "too little GPU time");
        assert!(c.done(200, 0.01, 0.5, w), "sample cap");
        assert!(c.done(10, 0.01, 0.5, Duration::from_secs(3)), "timeout");
    }
}
