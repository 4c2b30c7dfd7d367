//! The emulator's own mechanics: barriers order shared-memory traffic within a block, and a
//! barrier that only part of a block reaches is reported rather than silently passed.

use std::ffi::c_void;
use std::ptr::{null, null_mut};

/// Launches `name` with every buffer pointer null.
///
/// # Safety
/// The kernel must touch no memory, or the launch must be refused before any pointer is used.
unsafe fn launch_without_buffers(name: &str, grid: u32, block: u32) -> Result<(), String> {
    // SAFETY: the caller promises that no pointer is dereferenced (above).
    unsafe {
        blurpool_emu::launch(
            name,
            grid,
            block,
            null(),
            null(),
            null(),
            null(),
            null(),
            null_mut(),
        )
    }
}

#[test]
fn barrier_orders_shared_memory() {
    let (grid, block) = (3u32, 128u32);
    let n = (grid * block) as usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut y = vec![f32::NAN; n];
    // SAFETY: the self-test kernel reads and writes grid × block floats.
    unsafe {
        blurpool_emu::launch(
            "emu_selftest_reverse",
            grid,
            block,
            null(),
            x.as_ptr() as *const c_void,
            null(),
            null(),
            null(),
            y.as_mut_ptr() as *mut c_void,
        )
    }
    .unwrap();
    for b in 0..grid as usize {
        for t in 0..block as usize {
            assert_eq!(y[b * 128 + t], x[b * 128 + 127 - t]);
        }
    }
}

#[test]
fn divergent_barrier_is_reported() {
    // SAFETY: the self-test kernel touches no memory.
    let r = unsafe { launch_without_buffers("emu_selftest_divergent", 1, 64) };
    let e = r.unwrap_err();
    assert!(e.contains("divergent barrier"), "{e}");
}

#[test]
fn bad_launch_dimensions_are_refused() {
    // SAFETY: refused before any pointer is used.
    let r = unsafe { launch_without_buffers("emu_selftest_reverse", 1, 2048) };
    assert_eq!(r.unwrap_err(), "bad launch dimensions");
}

/// Two warps, each one m16n8k16 through the warp collective: every lane loads its fragments
/// by the PTX layout (emu.h), and the warp gets D = A·B exactly (the values are small
/// multiples of 1/4, so f32 sums are exact in any order).
#[test]
fn mma_collective_multiplies_fragments() {
    use half::f16;
    let a: Vec<f16> = (0..256)
        .map(|i| f16::from_f32(((i * 7 % 11) as f32 - 5.0) * 0.25))
        .collect();
    let b: Vec<f16> = (0..128)
        .map(|i| f16::from_f32(((i * 5 % 9) as f32 - 4.0) * 0.5))
        .collect();
    let mut d = vec![f32::NAN; 2 * 128];
    // SAFETY: the self-test kernel reads 256 + 128 f16 and writes 128 f32 per warp (2 warps).
    unsafe {
        blurpool_emu::launch(
            "emu_selftest_mma",
            1,
            64,
            null(),
            a.as_ptr() as *const c_void,
            b.as_ptr() as *const c_void,
            null(),
            null(),
            d.as_mut_ptr() as *mut c_void,
        )
    }
    .unwrap();
    for warp in 0..2 {
        for m in 0..16 {
            for n in 0..8 {
                let want: f32 = (0..16)
                    .map(|k| a[m * 16 + k].to_f32() * b[k * 8 + n].to_f32())
                    .sum();
                assert_eq!(d[warp * 128 + m * 8 + n], want, "warp {warp} ({m}, {n})");
            }
        }
    }
}

#[test]
fn partial_warp_collective_is_reported() {
    // SAFETY: the self-test kernel touches no memory.
    let r = unsafe { launch_without_buffers("emu_selftest_partial_warp", 1, 64) };
    let e = r.unwrap_err();
    assert!(e.contains("warp collective"), "{e}");
}
