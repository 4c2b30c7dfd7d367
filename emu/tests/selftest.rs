//! The emulator's own mechanics: barriers order shared-memory traffic within a block, and a
//! barrier that only part of a block reaches is reported rather than silently passed.

use std::ffi::c_void;
use std::ptr::{null, null_mut};

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
    let r = unsafe {
        blurpool_emu::launch(
            "emu_selftest_divergent",
            1,
            64,
            null(),
            null(),
            null(),
            null(),
            null(),
            null_mut(),
        )
    };
    let e = r.unwrap_err();
    assert!(e.contains("divergent barrier"), "{e}");
}

#[test]
fn bad_launch_dimensions_are_refused() {
    // SAFETY: refused before any pointer is used.
    let r = unsafe {
        blurpool_emu::launch(
            "emu_selftest_reverse",
            1,
            2048,
            null(),
            null(),
            null(),
            null(),
            null(),
            null_mut(),
        )
    };
    assert_eq!(r.unwrap_err(), "bad launch dimensions");
}
