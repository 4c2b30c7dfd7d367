//! The rooflines every GB/s figure is compared with, measured like the kernels (cold, one launch
//! per sample, buffers rotated): the 1:1 device-to-device copy, and a read-mostly stream that
//! reads `k` bytes for each byte it writes (`k` of the workload: MaxBlurPool at stride 2 reads
//! four input bytes per output byte), since HBM reads alone run faster than a copy (BabelStream
//! on H100: 3.18 TB/s read-only vs 2.90 copy; notes in /work/shared/notes/gpu-model-anchors.md §3).

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::measure::HarnessKernels;
use super::Path;
use crate::gpu::Gpu;

fn driver(e: cudarc::driver::DriverError) -> String {
    e.to_string()
}

/// The copy of `bytes` (2·bytes moved) between rotating buffers; returns the path and the
/// bytes it moves.
pub fn copy_path(g: &Gpu, bytes: usize) -> Result<(Path, u64), String> {
    let stream = g.stream.clone();
    let srcs: Vec<CudaSlice<u8>> = (0..2)
        .map(|_| stream.alloc_zeros::<u8>(bytes.max(1)))
        .collect::<Result<_, _>>()
        .map_err(driver)?;
    let mut dsts: Vec<CudaSlice<u8>> = (0..2)
        .map(|_| stream.alloc_zeros::<u8>(bytes.max(1)))
        .collect::<Result<_, _>>()
        .map_err(driver)?;
    let run = Box::new(move |i: usize| {
        stream
            .memcpy_dtod(&srcs[i % 2], &mut dsts[i % 2])
            .map_err(driver)
    });
    Ok((
        Path {
            name: "copy".into(),
            kernels: vec!["cuMemcpyDtoD".into()],
            run,
        },
        2 * bytes as u64,
    ))
}

/// Bytes read per byte written of a workload, rounded to a whole number ≥ 1.
pub fn read_ratio(read_bytes: u64, write_bytes: u64) -> u32 {
    if write_bytes == 0 {
        return 1;
    }
    ((read_bytes as f64 / write_bytes as f64).round() as u32).clamp(1, 64)
}

/// The read-mostly stream: `k`·`write_bytes` read, `write_bytes` written, 16 bytes per access;
/// returns the path and the bytes it moves.
pub fn read_mostly_path(
    g: &Gpu,
    kernels: &HarnessKernels,
    write_bytes: u64,
    k: u32,
) -> Result<(Path, u64), String> {
    let stream = g.stream.clone();
    let n_out = (write_bytes.div_ceil(16)).max(1) as usize;
    let n_in = n_out
        .checked_mul(k as usize)
        .ok_or("read-mostly roofline: too many bytes")?;
    let ins: Vec<CudaSlice<u8>> = (0..2)
        .map(|_| stream.alloc_zeros::<u8>(n_in * 16))
        .collect::<Result<_, _>>()
        .map_err(driver)?;
    let mut outs: Vec<CudaSlice<u8>> = (0..2)
        .map(|_| stream.alloc_zeros::<u8>(n_out * 16))
        .collect::<Result<_, _>>()
        .map_err(driver)?;
    let sms = g
        .ctx
        .attribute(
            cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        )
        .map_err(driver)? as u64;
    let blocks = (n_out as u64).div_ceil(256).clamp(1, sms.max(1) * 16) as u32;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let f = kernels.read_mostly.clone();
    let (n_out_i, k_i) = (n_out as i64, k as i32);
    let run = Box::new(move |i: usize| {
        let mut b = stream.launch_builder(&f);
        b.arg(&ins[i % 2])
            .arg(&mut outs[i % 2])
            .arg(&n_out_i)
            .arg(&k_i);
        // SAFETY: bp_bench_read_mostly(const u4*, u4*, long long n_out, int k) reads k·n_out
        // and writes n_out 16-byte elements: ins[.] holds n_in = k·n_out of them and outs[.]
        // n_out, both alive as long as this closure (which owns them).
        unsafe { b.launch(cfg) }.map(|_| ()).map_err(driver)
    });
    Ok((
        Path {
            name: format!("read-mostly {k}:1"),
            kernels: vec!["bp_bench_read_mostly".into()],
            run,
        },
        (n_in + n_out) as u64 * 16,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ratios_of_the_suite() {
        // MaxBlurPool at stride 2: input = 4 × output.
        assert_eq!(read_ratio(4000, 1000), 4);
        // a backward: reads x and dy (1.25 × dx), writes dx
        assert_eq!(read_ratio(1250, 1000), 1);
        assert_eq!(read_ratio(10, 0), 1);
        assert_eq!(read_ratio(u64::MAX, 1), 64);
    }
}
