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
            0,
            null(),
            null(),
            null(),
            null(),
            null(),
            null_mut(),
        )
    }
}

/// Launches `name` over (grid, block, dynamic shared bytes) with `x` as its first input and `y`
/// as its output, every other pointer null.
///
/// # Safety
/// The kernel must read no more of `x` and write no more of `y` than they hold.
unsafe fn launch_f32(
    name: &str,
    (grid, block, shared): (u32, u32, u32),
    x: &[f32],
    y: &mut [f32],
) -> Result<(), String> {
    // SAFETY: the caller's contract (above).
    unsafe {
        blurpool_emu::launch(
            name,
            grid,
            block,
            shared,
            null(),
            x.as_ptr() as *const c_void,
            null(),
            null(),
            null(),
            y.as_mut_ptr() as *mut c_void,
        )
    }
}

/// Launches `name` over (grid, block, dynamic shared bytes) with `a` and `b` as its two f16
/// inputs and `out` as its f32 output, every other pointer null.
///
/// # Safety
/// The kernel must read no more of `a` and `b` and write no more of `out` than they hold.
unsafe fn launch_f16_pair(
    name: &str,
    (grid, block, shared): (u32, u32, u32),
    a: &[half::f16],
    b: &[half::f16],
    out: &mut [f32],
) -> Result<(), String> {
    // SAFETY: the caller's contract (above).
    unsafe {
        blurpool_emu::launch(
            name,
            grid,
            block,
            shared,
            null(),
            a.as_ptr() as *const c_void,
            b.as_ptr() as *const c_void,
            null(),
            null(),
            out.as_mut_ptr() as *mut c_void,
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
    unsafe { launch_f32("emu_selftest_reverse", (grid, block, 0), &x, &mut y) }.unwrap();
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
    unsafe { launch_f16_pair("emu_selftest_mma", (1, 64, 0), &a, &b, &mut d) }.unwrap();
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

/// Runs `emu_selftest_shfl` over 2 blocks of 64 and returns each thread's
/// (mask, from up 1, from down 2, from lane 5).
fn run_shfl() -> Vec<[u32; 4]> {
    let mut out = vec![0xffff_ffffu32; 2 * 64 * 4];
    // SAFETY: the self-test kernel writes 4 u32 per thread (2 × 64 threads) and reads nothing.
    unsafe {
        blurpool_emu::launch(
            "emu_selftest_shfl",
            2,
            64,
            0,
            null(),
            null(),
            null(),
            null(),
            null(),
            out.as_mut_ptr() as *mut c_void,
        )
    }
    .unwrap();
    out.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

/// Checks every thread's shuffles against its mask: a source lane in the mask gives its value
/// (1000·block + thread); returns each warp's masks.
fn check_shfl(out: &[[u32; 4]]) -> Vec<Vec<u32>> {
    let mut masks = Vec::new();
    for (t, o) in out.iter().enumerate() {
        let (block, tid) = (t / 64, t % 64);
        let (warp, lane) = (tid / 32, tid % 32);
        if warp == 1 && lane >= 20 {
            assert_eq!(*o, [0; 4], "thread {t} returned first");
            continue;
        }
        if lane == 0 {
            masks.push(Vec::new());
        }
        let m = o[0];
        masks.last_mut().unwrap().push(m);
        assert_ne!(m >> lane & 1, 0, "thread {t}: its own lane is in its mask");
        let value = |l: usize| (1000 * block + warp * 32 + l) as u32;
        let src = [
            lane.checked_sub(1).unwrap_or(lane),
            if lane + 2 < 32 { lane + 2 } else { lane },
            5,
        ];
        for (k, &s) in src.iter().enumerate() {
            if m >> s & 1 != 0 {
                assert_eq!(o[k + 1], value(s), "thread {t} shuffle {k} from lane {s}");
            }
        }
    }
    masks
}

#[test]
fn activemask_gives_the_lanes_that_arrive_and_shuffles_follow_it() {
    blurpool_emu::set_warp_split(false);
    let masks = check_shfl(&run_shfl());
    // Warp 0 whole, warp 1 its first 20 lanes: each lane gets all of them.
    for (w, m) in masks.iter().enumerate() {
        let want = if w % 2 == 0 { u32::MAX } else { (1 << 20) - 1 };
        assert!(m.iter().all(|&x| x == want), "warp {w}: {m:x?}");
    }
}

#[test]
fn split_mode_breaks_the_lanes_at_an_activemask_into_groups() {
    blurpool_emu::set_warp_split(true);
    let outs: Vec<_> = (0..3).map(|_| run_shfl()).collect();
    blurpool_emu::set_warp_split(false);
    let mut split = 0;
    for out in &outs {
        for m in check_shfl(out) {
            let all = m.iter().fold(0u32, |a, &x| a | x);
            // The groups partition the lanes that arrived: each lane's mask is its group's.
            for (lane, &x) in m.iter().enumerate() {
                assert_ne!(x >> lane & 1, 0);
                for (k, &y) in m.iter().enumerate() {
                    if x >> k & 1 != 0 {
                        assert_eq!(y, x, "lanes {lane} and {k} disagree on their group");
                    }
                }
            }
            assert_eq!(all.count_ones() as usize, m.len());
            split += usize::from(m.iter().any(|&x| x != all));
        }
    }
    assert!(split > 0, "split mode never split a warp");
}

#[test]
fn shuffle_a_lane_of_its_mask_never_reaches_is_reported() {
    // SAFETY: the self-test kernel touches no memory.
    let e = unsafe { launch_without_buffers("emu_selftest_shfl_missing", 1, 32) }.unwrap_err();
    assert!(e.contains("warp collective"), "{e}");
    // SAFETY: as above.
    let e = unsafe { launch_without_buffers("emu_selftest_shfl_outside", 1, 32) }.unwrap_err();
    assert!(e.contains("not in its mask"), "{e}");
}

/// Runs `emu_selftest_dynamic` (one block of 256 threads) with `shared` bytes of dynamic shared
/// memory: what each thread first read there, then the reversal through it.
fn run_dynamic(shared: u32) -> Result<Vec<f32>, String> {
    let x: Vec<f32> = (0..256).map(|i| i as f32 + 0.5).collect();
    let mut y = vec![0f32; 512];
    // SAFETY: the self-test kernel reads 256 floats of x and writes 512 of y.
    unsafe { launch_f32("emu_selftest_dynamic", (1, 256, shared), &x, &mut y) }?;
    Ok(y)
}

#[test]
fn dynamic_shared_memory_is_the_launchs_and_poisoned() {
    let y = run_dynamic(1024).unwrap();
    // Before any store, every float of the buffer is the poison (0xff bytes: a NaN).
    assert!(
        y[..256].iter().all(|v| v.to_bits() == u32::MAX),
        "{:?}",
        &y[..4]
    );
    // The block sees one buffer: the reversal through it is right.
    for (i, v) in y[256..].iter().enumerate() {
        assert_eq!(*v, (255 - i) as f32 + 0.5);
    }
    // A second launch finds the poison again, not the first launch's floats.
    let again = run_dynamic(1024).unwrap();
    assert!(again[..256].iter().all(|v| v.to_bits() == u32::MAX));
}

#[test]
fn dynamic_shared_memory_short_of_the_kernels_need_fails_the_launch() {
    let err = run_dynamic(1020).unwrap_err();
    assert!(err.contains("dynamic shared memory"), "{err}");
    let err = run_dynamic(0).unwrap_err();
    assert!(err.contains("dynamic shared memory"), "{err}");
}

/// wgmma (emu.h): two warpgroups, each with its operands in a shared-memory layout of its own
/// (other leading and stride byte offsets), each queueing D = A·Bᵀ (over accumulators of 100,
/// which scale_d false drops) then D += A·Bᵀ as one group: before the wait the accumulators
/// still hold their 100s, after it 2·A·Bᵀ in the PTX
/// accumulator layout (values small multiples of 1/4: exact in any order). This checks the
/// emulator against its own reading of the PTX ISA (descriptor bits, canonical layout, fragment
/// layout); whether that reading is the hardware's only a GPU run can say.
#[test]
fn wgmma_reads_descriptors_and_completes_at_the_wait() {
    use half::f16;
    const N: usize = 24;
    let a: Vec<f16> = (0..64 * 16)
        .map(|i| f16::from_f32(((i * 7 % 11) as f32 - 5.0) * 0.25))
        .collect();
    let b: Vec<f16> = (0..N * 16)
        .map(|i| f16::from_f32(((i * 5 % 9) as f32 - 4.0) * 0.5))
        .collect();
    let mut out = vec![f32::NAN; 4 * 64 * N];
    // SAFETY: the self-test kernel reads 64·16 + 24·16 f16 and writes 4·64·24 f32, and uses the
    // 5632 bytes of dynamic shared memory the launch gives.
    unsafe { launch_f16_pair("emu_selftest_wgmma", (1, 256, 5632), &a, &b, &mut out) }.unwrap();
    for g in 0..2 {
        for m in 0..64 {
            for n in 0..N {
                let ab: f32 = (0..16)
                    .map(|k| a[m * 16 + k].to_f32() * b[n * 16 + k].to_f32())
                    .sum();
                let at = g * 64 * N + m * N + n;
                assert_eq!(out[at], 2.0 * ab, "warpgroup {g} ({m}, {n})");
                assert_eq!(
                    out[2 * 64 * N + at],
                    100.0,
                    "before the wait: warpgroup {g} ({m}, {n})"
                );
            }
        }
    }
}

#[test]
fn wgmma_misuse_is_reported() {
    let expect = [
        (0i32, "no wgmma.fence"),
        (1, "never waited for"),
        (2, "rest of their warpgroup"),
        (3, "no-swizzle"),
        (4, "no wgmma.fence"),
    ];
    for (which, what) in expect {
        let params = [which];
        // SAFETY: the self-test kernel reads its i32 parameter and at most the 4096 bytes of
        // dynamic shared memory the launch gives; it touches no other buffer.
        let r = unsafe {
            blurpool_emu::launch(
                "emu_selftest_wgmma_misuse",
                1,
                128,
                4096,
                params.as_ptr() as *const c_void,
                null(),
                null(),
                null(),
                null(),
                null_mut(),
            )
        };
        let e = r.unwrap_err();
        assert!(e.contains(what), "case {which}: {e}");
    }
}
