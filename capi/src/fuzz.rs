//! Fuzz of the C ABI through its `extern "C"` entry points, as a careless or hostile C caller
//! would call them: NULL pointers, garbage descriptors (random bytes, random fields, valid
//! presets with one field perturbed), out-of-range enums, negative and huge shapes, host
//! buffers of wrong lengths, misaligned and overlapping buffers.
//!
//! Asserts: every call returns a status the header defines and never INTERNAL (a caught panic);
//! a failed call leaves a message in `blurpool_last_error`; a successful reference forward on
//! finite inputs with a tame filter gives finite outputs. The GPU entry points are called only
//! where they cannot launch: without a driver (CI), or with a NULL buffer.
//!
//! `cargo test -p blurpool-capi` runs a fixed seed for a bounded count
//! (BLURPOOL_CAPI_FUZZ_ITERS, default 20,000; BLURPOOL_FUZZ_SEED).

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::types::blurpool_status::*;

const STATUSES: [blurpool_status; 10] = [
    BLURPOOL_STATUS_OK,
    BLURPOOL_STATUS_INVALID_ARGUMENT,
    BLURPOOL_STATUS_BUFFER,
    BLURPOOL_STATUS_NO_DRIVER,
    BLURPOOL_STATUS_NO_DEVICE,
    BLURPOOL_STATUS_CUDA,
    BLURPOOL_STATUS_NVRTC,
    BLURPOOL_STATUS_KERNEL_LOAD,
    BLURPOOL_STATUS_CONTEXT_MISMATCH,
    BLURPOOL_STATUS_INTERNAL,
];

fn int(rng: &mut StdRng) -> i32 {
    match rng.random_range(0..10) {
        0..=5 => rng.random_range(-2..=9),
        6 => [i32::MIN, i32::MAX, i32::MAX - 1, -1, 1 << 20, 1 << 30][rng.random_range(0..6)],
        _ => rng.random(),
    }
}

fn dim(rng: &mut StdRng) -> i64 {
    match rng.random_range(0..10) {
        0..=6 => rng.random_range(0..=12),
        7 => [-1, i64::MIN, i64::MAX, 1 << 31, 1 << 53, 1 << 62][rng.random_range(0..6)],
        _ => rng.random(),
    }
}

fn tap(rng: &mut StdRng) -> f64 {
    match rng.random_range(0..12) {
        0..=7 => rng.random_range(-1.0..2.0),
        8 => f64::NAN,
        9 => f64::INFINITY,
        10 => 1e308,
        _ => 0.0,
    }
}

/// A descriptor: a preset's, a neutral one with random fields, or random bytes.
fn descriptor(rng: &mut StdRng) -> blurpool_op_desc {
    let mut d = blurpool_op_desc::zeroed();
    match rng.random_range(0..4) {
        0 => {
            // Random bytes, struct_size sometimes right.
            // SAFETY: blurpool_op_desc is plain data (ints and doubles); any bit pattern is a
            // value of it (doubles may be NaN, which the library must handle).
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    (&mut d as *mut blurpool_op_desc).cast::<u8>(),
                    std::mem::size_of::<blurpool_op_desc>(),
                )
            };
            rng.fill(bytes);
            if rng.random_bool(0.5) {
                d.struct_size = std::mem::size_of::<blurpool_op_desc>() as u32;
            }
        }
        1 => {
            // A preset, then one field perturbed.
            // SAFETY: `d` is a writable descriptor.
            let st = unsafe {
                match rng.random_range(0..4) {
                    0 => blurpool_preset_antialiased_cnns_max_blur_pool(
                        int(rng).rem_euclid(4),
                        0,
                        rng.random_range(0..3),
                        rng.random_range(1..=7),
                        rng.random_range(1..=3),
                        0,
                        &mut d,
                    ),
                    1 => blurpool_preset_timm_blur_pool2d(3, 2, 1, &mut d),
                    2 => blurpool_preset_kornia_max_blur_pool2d(
                        rng.random_range(1..=7),
                        2,
                        2,
                        &mut d,
                    ),
                    _ => blurpool_preset_antialiased_cnns_blur_pool(1, 4, 2, 0, &mut d),
                }
            };
            assert!(STATUSES.contains(&st) && st != BLURPOOL_STATUS_INTERNAL);
            perturb(rng, &mut d);
        }
        _ => {
            let op = rng.random_range(0..=6);
            // SAFETY: `d` is a writable descriptor.
            let st = unsafe { blurpool_desc_init(&mut d, op) };
            assert!(st != BLURPOOL_STATUS_INTERNAL);
            for _ in 0..rng.random_range(1..6) {
                perturb(rng, &mut d);
            }
            if rng.random_bool(0.5) {
                d.conv_in_channels = rng.random_range(1..=4);
                d.conv_out_channels = rng.random_range(1..=4);
                d.conv_kernel_y = rng.random_range(1..=3);
                d.conv_kernel_x = d.conv_kernel_y;
            }
        }
    }
    d
}

fn perturb(rng: &mut StdRng, d: &mut blurpool_op_desc) {
    let v = int(rng);
    match rng.random_range(0..26) {
        0 => d.op = v,
        1 => d.taps_y_len = v,
        2 => d.taps_x_len = v,
        3 => d.normalize = v,
        4 => d.pad_mode = v,
        5 => d.pad_top = v,
        6 => d.pad_bottom = v,
        7 => d.pad_left = v,
        8 => d.pad_right = v,
        9 => d.stride_y = v,
        10 => d.stride_x = v,
        11 => d.max_kernel_y = v,
        12 => d.max_kernel_x = v,
        13 => d.max_pad_y = v,
        14 => d.max_pad_x = v,
        15 => d.conv_in_channels = v,
        16 => d.conv_out_channels = v,
        17 => d.conv_kernel_y = v,
        18 => d.conv_kernel_x = v,
        19 => d.conv_pad_y = v,
        20 => d.conv_groups = v,
        21 => d.conv_has_bias = v,
        22 => d.conv_activation = v,
        23 => d.conv_stride_y = v,
        24 => d.taps_y[rng.random_range(0..BLURPOOL_MAX_TAPS)] = tap(rng),
        _ => d.struct_size = rng.random(),
    }
}

fn last_error() -> String {
    // SAFETY: never NULL; valid until the next call on this thread.
    unsafe { CStr::from_ptr(blurpool_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn check(what: &str, st: blurpool_status, failures: &mut Vec<String>) {
    if !STATUSES.contains(&st) {
        failures.push(format!("{what}: status {st:?} is not in the header"));
    } else if st == BLURPOOL_STATUS_INTERNAL {
        failures.push(format!("{what}: INTERNAL ({})", last_error()));
    } else if st != BLURPOOL_STATUS_OK && last_error().is_empty() {
        failures.push(format!("{what}: {st:?} without a message"));
    }
}

/// A host buffer of `n` elements of `size` bytes, or NULL, maybe offset by one byte
/// (misaligned) — the pointer and the length the caller claims.
struct Host {
    storage: Vec<u64>,
    offset: usize,
    claimed: usize,
    null: bool,
}

impl Host {
    fn new(rng: &mut StdRng, right: usize, size: usize, fill: impl Fn(&mut StdRng) -> f64) -> Host {
        let claimed = match rng.random_range(0..16) {
            0 => 0,
            1 => right.saturating_add(1),
            2 => right.saturating_sub(1),
            // Claims no allocation can have (more than isize::MAX bytes): refused unread.
            3 => [usize::MAX, 1 << 62][rng.random_range(0..2)],
            _ => right,
        };
        let null = rng.random_range(0..40) == 0;
        let offset = usize::from(rng.random_range(0..16) == 0);
        // Huge claims get a token allocation: the library must refuse them unread.
        let real = if claimed <= 1 << 14 { claimed } else { 4 };
        let mut storage = vec![0u64; (real * size).div_ceil(8) + 2];
        // SAFETY: storage holds at least real·size + 16 bytes, viewed as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(storage.as_mut_ptr().cast::<u8>(), storage.len() * 8)
        };
        // Finite values of the element size (f32, or f16 bits; bf16 reads them as other
        // finite numbers).
        for i in 0..real {
            let v = fill(rng) as f32;
            let at = offset + i * size;
            if size == 4 {
                bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
            } else {
                bytes[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
            }
        }
        Host {
            storage,
            offset,
            claimed,
            null,
        }
    }
    fn ptr(&mut self) -> *mut c_void {
        if self.null {
            return null_mut();
        }
        // SAFETY: offset ≤ 1 < storage's byte length.
        unsafe {
            self.storage
                .as_mut_ptr()
                .cast::<u8>()
                .add(self.offset)
                .cast()
        }
    }
}

fn reference_call(
    rng: &mut StdRng,
    d: &blurpool_op_desc,
    failures: &mut Vec<String>,
    what: &str,
) -> bool {
    let dtype = if rng.random_bool(0.9) {
        rng.random_range(0..3)
    } else {
        int(rng)
    };
    let layout = if rng.random_bool(0.9) {
        rng.random_range(0..2)
    } else {
        int(rng)
    };
    let in_shape = [
        if rng.random_bool(0.8) {
            rng.random_range(0..=2)
        } else {
            dim(rng)
        },
        if rng.random_bool(0.5) {
            i64::from(d.conv_in_channels.max(1))
        } else {
            dim(rng)
        },
        if rng.random_bool(0.8) {
            rng.random_range(1..=12)
        } else {
            dim(rng)
        },
        if rng.random_bool(0.8) {
            rng.random_range(1..=12)
        } else {
            dim(rng)
        },
    ];
    let mut out_shape = [0i64; 4];
    // SAFETY: d, in_shape and out_shape are live.
    let st = unsafe { blurpool_output_shape(d, in_shape.as_ptr(), out_shape.as_mut_ptr()) };
    check(&format!("{what}: output_shape({in_shape:?})"), st, failures);
    let numel = |s: &[i64; 4]| {
        s.iter()
            .try_fold(1usize, |a, &v| {
                usize::try_from(v).ok().and_then(|v| a.checked_mul(v))
            })
            .unwrap_or(0)
            .min(1 << 14)
    };
    let (n_in, n_out) = (
        numel(&in_shape),
        if st == BLURPOOL_STATUS_OK {
            numel(&out_shape)
        } else {
            4
        },
    );
    let size = if dtype == 0 { 4 } else { 2 };
    let wl = (d.conv_out_channels.max(0) as usize)
        .saturating_mul(d.conv_in_channels.max(0) as usize)
        .saturating_mul(d.conv_kernel_y.max(0) as usize)
        .saturating_mul(d.conv_kernel_x.max(0) as usize)
        .min(1 << 14);
    let mut x = Host::new(rng, n_in, size, |r| r.random_range(-2.0..2.0));
    let mut w = Host::new(rng, wl, size, |r| r.random_range(-0.5..0.5));
    let mut b = Host::new(rng, d.conv_out_channels.max(0) as usize, size, |r| {
        r.random_range(-0.5..0.5)
    });
    let mut y = Host::new(rng, n_out, size, |_| -777.0);
    let overlap = rng.random_range(0..20) == 0;
    let (yp, yl) = if overlap {
        (x.ptr(), x.claimed)
    } else {
        (y.ptr(), y.claimed)
    };
    let desc_ptr: *const blurpool_op_desc = if rng.random_range(0..30) == 0 {
        null()
    } else {
        d
    };
    let shape_ptr = if rng.random_range(0..30) == 0 {
        null()
    } else {
        in_shape.as_ptr()
    };
    // SAFETY: every pointer is NULL or addresses at least as many elements as claimed, except
    // the deliberately huge claims, which the library must refuse before reading (the point
    // of the test; a read there would be caught by the sanitizers this also runs under).
    let st = unsafe {
        blurpool_reference_forward(
            desc_ptr,
            dtype,
            layout,
            shape_ptr,
            x.ptr(),
            x.claimed,
            w.ptr(),
            w.claimed,
            b.ptr(),
            b.claimed,
            yp,
            yl,
        )
    };
    check(
        &format!("{what}: reference_forward(dtype {dtype}, layout {layout}, {in_shape:?})"),
        st,
        failures,
    );
    let forward_ok = st == BLURPOOL_STATUS_OK;
    let mut len = 0u64;
    // SAFETY: pointers are live or NULL.
    let st = unsafe {
        blurpool_backward_workspace_len(
            desc_ptr,
            shape_ptr,
            if rng.random_bool(0.9) {
                &mut len
            } else {
                null_mut()
            },
        )
    };
    check(&format!("{what}: backward_workspace_len"), st, failures);
    // The GPU entries, only where they cannot launch on garbage pointers.
    let no_driver = blurpool_driver_available() == 0;
    let dev = |rng: &mut StdRng| -> u64 {
        if no_driver && rng.random_bool(0.7) {
            rng.random::<u64>() | 1
        } else {
            0
        }
    };
    let (dx, dw, db, dyp) = (dev(rng), dev(rng), dev(rng), dev(rng));
    let xptr = if no_driver { dev(rng) } else { 0 };
    // SAFETY: without a driver the call cannot reach a launch; with one, x is NULL so it is
    // refused first. The stream is NULL (the legacy stream) or garbage that is never used.
    let st = unsafe {
        blurpool_forward(
            desc_ptr,
            dtype,
            layout,
            shape_ptr,
            xptr,
            dw,
            db,
            dyp,
            null_mut(),
            int(rng),
        )
    };
    check(&format!("{what}: forward"), st, failures);
    // SAFETY: as above.
    let st = unsafe {
        blurpool_backward(
            desc_ptr,
            dtype,
            layout,
            shape_ptr,
            xptr,
            dw,
            db,
            dyp,
            dx,
            dw,
            db,
            dx,
            null_mut(),
            int(rng),
        )
    };
    check(&format!("{what}: backward"), st, failures);
    forward_ok
}

fn presets(rng: &mut StdRng, failures: &mut Vec<String>) {
    let mut d = blurpool_op_desc::zeroed();
    let out: *mut blurpool_op_desc = if rng.random_range(0..20) == 0 {
        null_mut()
    } else {
        &mut d
    };
    let taps: Vec<f64> = (0..BLURPOOL_MAX_TAPS + 2).map(|_| tap(rng)).collect();
    let (ny, nx) = (int(rng).rem_euclid(20), int(rng).rem_euclid(20));
    let (py, px) = if rng.random_bool(0.5) {
        (null(), null())
    } else {
        (taps.as_ptr(), taps.as_ptr())
    };
    let (ny, nx) = if py.is_null() && rng.random_bool(0.5) {
        (0, 0)
    } else {
        (ny.min(18), nx.min(18))
    };
    // SAFETY: `out` is NULL or writable; the tap pointers are NULL or hold 18 doubles, and the
    // lengths are at most 18.
    let st = unsafe {
        match rng.random_range(0..7) {
            0 => blurpool_preset_antialiased_cnns_blur_pool(
                int(rng),
                int(rng),
                int(rng),
                int(rng),
                out,
            ),
            1 => blurpool_preset_antialiased_cnns_max_blur_pool(
                int(rng),
                int(rng),
                int(rng),
                int(rng),
                int(rng),
                int(rng),
                out,
            ),
            2 => blurpool_preset_kornia_blur_pool2d(int(rng), int(rng), out),
            3 => blurpool_preset_kornia_max_blur_pool2d(int(rng), int(rng), int(rng), out),
            4 => blurpool_preset_timm_blur_pool2d(int(rng), int(rng), int(rng), out),
            5 => blurpool_preset_composer_blur_2d(int(rng), int(rng), py, ny, px, nx, out),
            _ => blurpool_preset_composer_blurmax_pool2d(
                int(rng),
                int(rng),
                int(rng),
                int(rng),
                int(rng),
                int(rng),
                py,
                ny,
                px,
                nx,
                out,
            ),
        }
    };
    check("preset", st, failures);
    if st == BLURPOOL_STATUS_OK {
        // SAFETY: d is a live descriptor.
        check(
            "desc_check(preset)",
            unsafe { blurpool_desc_check(&d) },
            failures,
        );
    }
}

#[test]
fn fuzz_c_abi() {
    let seed = std::env::var("BLURPOOL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cab1u64);
    let iters: u64 = std::env::var("BLURPOOL_CAPI_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut failures = Vec::new();
    let mut ok_forwards = 0u64;
    for i in 0..iters {
        let mut rng = StdRng::seed_from_u64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let what = format!("case {i}");
        presets(&mut rng, &mut failures);
        let d = descriptor(&mut rng);
        // SAFETY: d is live.
        check(
            &format!("{what}: desc_check"),
            unsafe { blurpool_desc_check(&d) },
            &mut failures,
        );
        if reference_call(&mut rng, &d, &mut failures, &what) {
            ok_forwards += 1;
        }
        // SAFETY: static strings.
        let name = unsafe { CStr::from_ptr(blurpool_status_name(int(&mut rng))) };
        assert!(!name.to_bytes().is_empty());
    }
    println!(
        "C ABI fuzz: seed {seed:#x}, {iters} cases, {} failures, {ok_forwards} reference forwards that ran",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures; the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
