//! Tests of the C ABI through its `extern "C"` entry points, as a C caller would use them
//! (everything here runs without a GPU).

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

use blurpool_core::{presets, PadMode};

use super::*;
use crate::types::blurpool_status::*;

fn last_error() -> String {
    // SAFETY: blurpool_last_error never returns NULL and the string lives until the next call.
    unsafe { CStr::from_ptr(blurpool_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn kornia_blur(k: i32, s: i32) -> blurpool_op_desc {
    let mut d = blurpool_op_desc::zeroed();
    // SAFETY: `d` is a valid, writable descriptor.
    assert_eq!(
        unsafe { blurpool_preset_kornia_blur_pool2d(k, s, &mut d) },
        BLURPOOL_STATUS_OK
    );
    d
}

/// kornia's blur (k taps, stride s) turned into a ConvBlurPool2d over a `cin` → `cout`,
/// `kernel`×`kernel` conv with padding `pad` (no bias, no activation).
fn conv_blur(k: i32, s: i32, cin: i32, cout: i32, kernel: i32, pad: i32) -> blurpool_op_desc {
    let mut d = kornia_blur(k, s);
    d.op = blurpool_op_kind::BLURPOOL_OP_CONV_BLUR_POOL as i32;
    d.conv_in_channels = cin;
    d.conv_out_channels = cout;
    d.conv_kernel_y = kernel;
    d.conv_kernel_x = kernel;
    d.conv_pad_y = pad;
    d.conv_pad_x = pad;
    d
}

fn kornia_max_blur(k: i32, s: i32, m: i32) -> blurpool_op_desc {
    let mut d = blurpool_op_desc::zeroed();
    // SAFETY: `d` is a valid, writable descriptor.
    assert_eq!(
        unsafe { blurpool_preset_kornia_max_blur_pool2d(k, s, m, &mut d) },
        BLURPOOL_STATUS_OK
    );
    d
}

fn out_shape(d: &blurpool_op_desc, s: [i64; 4]) -> Result<[i64; 4], (blurpool_status, String)> {
    let mut o = [0i64; 4];
    // SAFETY: valid descriptor and two 4-element arrays.
    match unsafe { blurpool_output_shape(d, s.as_ptr(), o.as_mut_ptr()) } {
        BLURPOOL_STATUS_OK => Ok(o),
        st => Err((st, last_error())),
    }
}

fn reference_f32(
    d: &blurpool_op_desc,
    layout: i32,
    s: [i64; 4],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> Vec<f32> {
    let o = out_shape(d, s).expect("output shape");
    let mut y = vec![0f32; o.iter().product::<i64>() as usize];
    let (bp, bl) = b.map_or((null(), 0), |b| (b.as_ptr().cast::<c_void>(), b.len()));
    // SAFETY: every buffer is a live Rust allocation of the given length.
    let st = unsafe {
        blurpool_reference_forward(
            d,
            0,
            layout,
            s.as_ptr(),
            x.as_ptr().cast(),
            x.len(),
            w.as_ptr().cast(),
            w.len(),
            bp,
            bl,
            y.as_mut_ptr().cast(),
            y.len(),
        )
    };
    assert_eq!(st, BLURPOOL_STATUS_OK, "{}", last_error());
    y
}

fn eye5() -> Vec<f32> {
    (0..25)
        .map(|i| if i / 5 == i % 5 { 1.0 } else { 0.0 })
        .collect()
}

#[test]
fn info_functions() {
    // SAFETY: static NUL-terminated strings.
    let v = unsafe { CStr::from_ptr(blurpool_version()) }
        .to_str()
        .unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    assert_eq!(blurpool_abi_version(), BLURPOOL_ABI_VERSION);
    assert_eq!(
        blurpool_op_desc_size(),
        std::mem::size_of::<blurpool_op_desc>()
    );
    let name = |c| {
        unsafe { CStr::from_ptr(blurpool_status_name(c)) }
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(name(3), "BLURPOOL_STATUS_NO_DRIVER");
    assert_eq!(
        name(BLURPOOL_STATUS_INTERNAL as i32),
        "BLURPOOL_STATUS_INTERNAL"
    );
    assert_eq!(name(-1), "BLURPOOL_STATUS_UNKNOWN");
}

/// kornia's doctests: blur_pool2d(eye(5), 3) and max_blur_pool2d(eye(5), 3).
#[test]
fn kornia_doctests_through_the_abi() {
    let s = [1, 1, 5, 5];
    let d = kornia_blur(3, 2);
    assert_eq!(out_shape(&d, s).unwrap(), [1, 1, 3, 3]);
    let y = reference_f32(&d, 0, s, &eye5(), &[], None);
    assert_eq!(
        y,
        [0.3125, 0.0625, 0.0, 0.0625, 0.375, 0.0625, 0.0, 0.0625, 0.3125]
    );

    let d = kornia_max_blur(3, 2, 2);
    assert_eq!(out_shape(&d, s).unwrap(), [1, 1, 2, 2]);
    let y = reference_f32(&d, 0, s, &eye5(), &[], None);
    assert_eq!(y, [0.5625, 0.3125, 0.3125, 0.875]);
}

#[test]
fn half_types_are_raw_bits() {
    let d = kornia_blur(3, 2);
    let s = [1i64, 1, 5, 5];
    for (dtype, to, from) in [
        (
            1,
            (|v: f32| half::f16::from_f32(v).to_bits()) as fn(f32) -> u16,
            (|b| half::f16::from_bits(b).to_f32()) as fn(u16) -> f32,
        ),
        (
            2,
            |v: f32| half::bf16::from_f32(v).to_bits(),
            |b| half::bf16::from_bits(b).to_f32(),
        ),
    ] {
        let x: Vec<u16> = eye5().into_iter().map(to).collect();
        let mut y = vec![0u16; 9];
        // SAFETY: live buffers of the given lengths.
        let st = unsafe {
            blurpool_reference_forward(
                &d,
                dtype,
                0,
                s.as_ptr(),
                x.as_ptr().cast(),
                25,
                null(),
                0,
                null(),
                0,
                y.as_mut_ptr().cast(),
                9,
            )
        };
        assert_eq!(st, BLURPOOL_STATUS_OK, "{}", last_error());
        let y: Vec<f32> = y.into_iter().map(from).collect();
        assert_eq!(
            y,
            [0.3125, 0.0625, 0.0, 0.0625, 0.375, 0.0625, 0.0, 0.0625, 0.3125]
        );
    }
}

#[test]
fn nhwc_matches_nchw() {
    let mut d = blurpool_op_desc::zeroed();
    // SAFETY: writable descriptor.
    assert_eq!(
        unsafe { blurpool_preset_antialiased_cnns_max_blur_pool(2, 0, 1, 4, 2, 0, &mut d) },
        BLURPOOL_STATUS_OK
    );
    let (n, c, h, w) = (2usize, 3, 7, 6);
    let nchw: Vec<f32> = (0..n * c * h * w)
        .map(|i| ((i * 37) % 23) as f32 - 11.0)
        .collect();
    let mut nhwc = vec![0f32; nchw.len()];
    for (i, v) in nchw.iter().enumerate() {
        let (b, ch, yy, xx) = (i / (c * h * w), (i / (h * w)) % c, (i / w) % h, i % w);
        nhwc[((b * h + yy) * w + xx) * c + ch] = *v;
    }
    let s = [n as i64, c as i64, h as i64, w as i64];
    let a = reference_f32(&d, 0, s, &nchw, &[], None);
    let b = reference_f32(&d, 1, s, &nhwc, &[], None);
    let o = out_shape(&d, s).unwrap();
    let (ho, wo) = (o[2] as usize, o[3] as usize);
    for (i, &v) in a.iter().enumerate() {
        let (bb, ch, yy, xx) = (
            i / (c * ho * wo),
            (i / (ho * wo)) % c,
            (i / wo) % ho,
            i % wo,
        );
        assert_eq!(v, b[((bb * ho + yy) * wo + xx) * c + ch]);
    }
}

/// Every preset's descriptor builds back the operator the crate's preset builds.
#[test]
fn presets_round_trip() {
    let mut d = blurpool_op_desc::zeroed();
    // Filters compare by raw taps, which the crate does not expose (the descriptor holds the
    // effective weights), so compare descriptors: the preset's, and the one rebuilt from the
    // operator the descriptor describes.
    let check = |d: &blurpool_op_desc, op: Operator| {
        let want = desc::from_operator(&op).unwrap();
        assert_eq!(*d, want);
        assert_eq!(
            desc::from_operator(&desc::to_operator(d).unwrap()).unwrap(),
            want
        );
    };
    unsafe {
        // SAFETY (block): `d` is writable; tap arrays are live.
        assert_eq!(
            blurpool_preset_antialiased_cnns_blur_pool(2, 5, 2, 1, &mut d),
            BLURPOOL_STATUS_OK
        );
        check(
            &d,
            presets::antialiased_cnns::blur_pool(PadMode::Replicate, 5, 2, 1)
                .unwrap()
                .into(),
        );
        assert_eq!(d.taps_y[..5], [0.0625, 0.25, 0.375, 0.25, 0.0625]);
        assert_eq!(
            (d.pad_top, d.pad_bottom, d.pad_mode, d.stride_x, d.normalize),
            (3, 3, 2, 2, 1)
        );
        assert_eq!(
            blurpool_preset_antialiased_cnns_max_blur_pool(3, 1, 1, 4, 2, 0, &mut d),
            BLURPOOL_STATUS_OK
        );
        check(
            &d,
            presets::antialiased_cnns::max_blur_pool(3, 1, PadMode::Reflect, 4, 2, 0)
                .unwrap()
                .into(),
        );
        assert_eq!(
            blurpool_preset_kornia_max_blur_pool2d(5, 3, 2, &mut d),
            BLURPOOL_STATUS_OK
        );
        check(
            &d,
            presets::kornia::max_blur_pool2d(5, 3, 2).unwrap().into(),
        );
        assert_eq!(
            blurpool_preset_timm_blur_pool2d(3, 2, 0, &mut d),
            BLURPOOL_STATUS_OK
        );
        check(
            &d,
            presets::timm::blur_pool2d(3, 2, PadMode::Zero)
                .unwrap()
                .into(),
        );
        assert_eq!(
            blurpool_preset_composer_blur_2d(2, 2, null(), 0, null(), 0, &mut d),
            BLURPOOL_STATUS_OK
        );
        check(&d, presets::composer::blur_2d((2, 2), None).unwrap().into());
        let (ty, tx) = ([1.0, 4.0, 1.0], [0.5, 1.0, 2.0, 1.0, 0.5]);
        assert_eq!(
            blurpool_preset_composer_blur_2d(1, 2, ty.as_ptr(), 3, tx.as_ptr(), 5, &mut d),
            BLURPOOL_STATUS_OK
        );
        assert_eq!(d.normalize, 0);
        check(
            &d,
            presets::composer::blur_2d((1, 2), Some((&ty, &tx)))
                .unwrap()
                .into(),
        );
        assert_eq!(
            blurpool_preset_composer_blurmax_pool2d(2, 2, 2, 2, 0, 0, null(), 0, null(), 0, &mut d),
            BLURPOOL_STATUS_OK
        );
        check(
            &d,
            presets::composer::blurmax_pool2d((2, 2), (2, 2), (0, 0), None)
                .unwrap()
                .into(),
        );
    }
}

#[test]
fn conv_through_a_hand_filled_descriptor() {
    // A blur preset turned into conv → relu → blur (antialiased-cnns' strided conv pattern).
    let mut d = conv_blur(1, 2, 1, 2, 1, 0); // one-tap filter: a plain stride-2 subsample
    d.conv_has_bias = 1;
    d.conv_activation = blurpool_activation::BLURPOOL_ACT_RELU as i32;
    let s = [1, 1, 4, 4];
    assert_eq!(out_shape(&d, s).unwrap(), [1, 2, 2, 2]);
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let y = reference_f32(&d, 0, s, &x, &[1.0, -1.0], Some(&[0.5, 0.0]));
    assert_eq!(y, [0.5, 2.5, 8.5, 10.5, 0.0, 0.0, 0.0, 0.0]);
    // Bias missing although conv_has_bias is set: a buffer error, not a crash.
    let mut out = [0f32; 8];
    // SAFETY: live buffers of the given lengths.
    let st = unsafe {
        blurpool_reference_forward(
            &d,
            0,
            0,
            s.as_ptr(),
            x.as_ptr().cast(),
            16,
            [1f32, -1.0].as_ptr().cast(),
            2,
            null(),
            0,
            out.as_mut_ptr().cast(),
            8,
        )
    };
    assert_eq!(st, BLURPOOL_STATUS_BUFFER, "{}", last_error());
    assert!(last_error().contains("bias"), "{}", last_error());
}

#[test]
fn bad_arguments_are_statuses_with_messages() {
    let good = kornia_blur(3, 2);
    let s = [1i64, 1, 5, 5];
    let mut o = [0i64; 4];
    unsafe {
        // SAFETY (block): every pointer is null or live.
        assert_eq!(
            blurpool_output_shape(null(), s.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert!(last_error().contains("desc is NULL"));
        assert_eq!(
            blurpool_output_shape(&good, null(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert_eq!(
            blurpool_output_shape(&good, s.as_ptr(), null_mut()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert_eq!(
            blurpool_output_shape(&good, s.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_OK
        );
        assert_eq!(last_error(), "", "a success clears the message");

        assert_eq!(blurpool_desc_check(&good), BLURPOOL_STATUS_OK);
        assert_eq!(
            blurpool_desc_check(null()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        let mut bad = good;
        bad.op = blurpool_op_kind::BLURPOOL_OP_CONV_BLUR_POOL as i32;
        bad.conv_in_channels = 3;
        bad.conv_out_channels = 4;
        bad.conv_groups = 2;
        assert_eq!(blurpool_desc_check(&bad), BLURPOOL_STATUS_INVALID_ARGUMENT);
        assert!(
            last_error().contains("groups (2) must divide"),
            "{}",
            last_error()
        );
        let mut bad = good;
        bad.struct_size = 8;
        assert_eq!(
            blurpool_output_shape(&bad, s.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert!(last_error().contains("struct_size"), "{}", last_error());
        let mut bad = good;
        bad.op = 0;
        assert_eq!(
            blurpool_output_shape(&bad, s.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        let mut bad = good;
        bad.taps_x_len = 17;
        assert_eq!(
            blurpool_output_shape(&bad, s.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        let mut bad = good;
        bad.pad_left = -1;
        assert_eq!(
            blurpool_output_shape(&bad, s.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert!(last_error().contains("pad_left"), "{}", last_error());
        let mut bad = good;
        bad.pad_mode = 7;
        assert_eq!(
            blurpool_output_shape(&bad, s.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        let mut bad = good;
        bad.taps_y[1] = f64::NAN;
        assert_eq!(
            blurpool_output_shape(&bad, s.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert!(last_error().contains("not finite"), "{}", last_error());
        let neg = [1i64, -3, 5, 5];
        assert_eq!(
            blurpool_output_shape(&good, neg.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );

        // antialiased-cnns reflect with F = 5 on a 2×2 map: the typed error, not a crash.
        let mut d = blurpool_op_desc::zeroed();
        assert_eq!(
            blurpool_preset_antialiased_cnns_blur_pool(1, 5, 2, 0, &mut d),
            BLURPOOL_STATUS_OK
        );
        let tiny = [1i64, 1, 2, 2];
        assert_eq!(
            blurpool_output_shape(&d, tiny.as_ptr(), o.as_mut_ptr()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("reflect padding 2"),
            "{}",
            last_error()
        );

        // Presets reject what the libraries reject.
        assert_eq!(
            blurpool_preset_kornia_blur_pool2d(9, 2, &mut d),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("binomial filter size 9"),
            "{}",
            last_error()
        );
        assert_eq!(
            blurpool_preset_timm_blur_pool2d(3, 0, 1, &mut d),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert_eq!(
            blurpool_preset_antialiased_cnns_blur_pool(1, -4, 2, 0, &mut d),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert_eq!(
            blurpool_preset_antialiased_cnns_blur_pool(1, 3, 2, -2, &mut d),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert_eq!(
            blurpool_preset_kornia_blur_pool2d(3, 2, null_mut()),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert_eq!(
            blurpool_desc_init(&mut d, 0),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        let even = [1.0, 1.0];
        assert_eq!(
            blurpool_preset_composer_blur_2d(2, 2, even.as_ptr(), 2, even.as_ptr(), 2, &mut d),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
        assert_eq!(
            blurpool_preset_composer_blur_2d(2, 2, even.as_ptr(), 2, null(), 0, &mut d),
            BLURPOOL_STATUS_INVALID_ARGUMENT
        );
    }
}

#[test]
fn bad_host_buffers_are_buffer_errors() {
    let d = kornia_blur(3, 2);
    let s = [1i64, 1, 5, 5];
    let x = eye5();
    let mut y = vec![0f32; 10];
    let call = |xp: *const c_void, xl: usize, yp: *mut c_void, yl: usize, dtype: i32| {
        // SAFETY: each pointer is null or inside a live allocation covering its length.
        unsafe {
            blurpool_reference_forward(
                &d,
                dtype,
                0,
                s.as_ptr(),
                xp,
                xl,
                null(),
                0,
                null(),
                0,
                yp,
                yl,
            )
        }
    };
    let yp = y.as_mut_ptr().cast::<c_void>();
    assert_eq!(
        call(x.as_ptr().cast(), 24, yp, 9, 0),
        BLURPOOL_STATUS_BUFFER
    );
    assert!(
        last_error().contains("input buffer has 24 elements but the shape needs 25"),
        "{}",
        last_error()
    );
    assert_eq!(
        call(x.as_ptr().cast(), 25, yp, 10, 0),
        BLURPOOL_STATUS_BUFFER
    );
    assert_eq!(call(null(), 25, yp, 9, 0), BLURPOOL_STATUS_BUFFER);
    assert!(last_error().contains("x is NULL"));
    assert_eq!(
        call(x.as_ptr().cast(), 25, null_mut(), 9, 0),
        BLURPOOL_STATUS_BUFFER
    );
    // Misaligned f32 output.
    // SAFETY: one byte into a 40-byte allocation; the call rejects it before any access.
    let odd = unsafe { yp.cast::<u8>().add(1) }.cast::<c_void>();
    assert_eq!(
        call(x.as_ptr().cast(), 25, odd, 9, 0),
        BLURPOOL_STATUS_BUFFER
    );
    assert!(last_error().contains("aligned"), "{}", last_error());
    // Output overlapping the input.
    let mut buf = vec![0f32; 40];
    let bp = buf.as_mut_ptr();
    // SAFETY: both ranges lie inside `buf`; the call rejects the overlap before any access.
    assert_eq!(
        call(
            bp.cast_const().cast(),
            25,
            unsafe { bp.add(20) }.cast(),
            9,
            0
        ),
        BLURPOOL_STATUS_BUFFER
    );
    assert!(last_error().contains("overlaps"), "{}", last_error());
    assert_eq!(
        call(x.as_ptr().cast(), 25, yp, 9, 5),
        BLURPOOL_STATUS_INVALID_ARGUMENT
    );
    assert!(last_error().contains("dtype 5"), "{}", last_error());
    assert_eq!(call(x.as_ptr().cast(), 25, yp, 9, 0), BLURPOOL_STATUS_OK);
}

#[test]
fn forward_checks_before_the_driver_and_fails_cleanly_without_one() {
    let d = kornia_max_blur(3, 2, 2);
    let s = [1i64, 1, 5, 5];
    let f = |x, y, ordinal, shape: &[i64; 4]| {
        // SAFETY: no device pointer is dereferenced on the host; the calls below either fail
        // validation, find no driver, or (with a driver) fail before launching.
        unsafe { blurpool_forward(&d, 0, 0, shape.as_ptr(), x, 0, 0, y, null_mut(), ordinal) }
    };
    assert_eq!(f(0, 0x1000, 0, &s), BLURPOOL_STATUS_BUFFER);
    assert!(last_error().contains("x is a null device pointer"));
    assert_eq!(f(0x1000, 0, 0, &s), BLURPOOL_STATUS_BUFFER);
    assert_eq!(f(0x1000, 0x2000, -1, &s), BLURPOOL_STATUS_INVALID_ARGUMENT);
    // An empty batch is a no-op whatever the machine.
    assert_eq!(f(0, 0, 0, &[0, 1, 5, 5]), BLURPOOL_STATUS_OK);
    if blurpool_driver_available() == 0 {
        assert_eq!(f(0x1000, 0x2000, 0, &s), BLURPOOL_STATUS_NO_DRIVER);
        assert!(last_error().contains("no CUDA driver"), "{}", last_error());
    } else {
        // A driver is here: an ordinal no machine has must be NO_DEVICE, never a crash.
        assert_eq!(
            f(0x1000, 0x2000, 4096, &s),
            BLURPOOL_STATUS_NO_DEVICE,
            "{}",
            last_error()
        );
    }
}

#[test]
fn backward_workspace_and_checks_before_the_driver() {
    let len = |d: &blurpool_op_desc, s: [i64; 4]| {
        let mut n = u64::MAX;
        // SAFETY: valid descriptor, a 4-element shape and a writable u64.
        match unsafe { blurpool_backward_workspace_len(d, s.as_ptr(), &mut n) } {
            BLURPOOL_STATUS_OK => Ok(n),
            st => Err((st, last_error())),
        }
    };
    let pool = kornia_max_blur(3, 2, 2);
    assert_eq!(len(&pool, [2, 3, 9, 9]), Ok(0));
    // conv 1×1 (1 → 2 channels) + blur: the workspace is the conv map, N × Cout × H × W.
    let conv = conv_blur(1, 2, 1, 2, 1, 0);
    assert_eq!(len(&conv, [3, 1, 4, 5]), Ok(3 * 2 * 4 * 5));
    // SAFETY: null `len` is rejected.
    let st =
        unsafe { blurpool_backward_workspace_len(&conv, [1i64, 1, 4, 4].as_ptr(), null_mut()) };
    assert_eq!(st, BLURPOOL_STATUS_INVALID_ARGUMENT);

    let s = [1i64, 1, 5, 5];
    let bwd = |d: &blurpool_op_desc, x, dy, dx, dw, ws, shape: &[i64; 4]| {
        // SAFETY: no device pointer is dereferenced on the host; these calls fail validation,
        // find no driver, or are empty.
        unsafe {
            blurpool_backward(
                d,
                0,
                0,
                shape.as_ptr(),
                x,
                0x3000,
                0,
                dy,
                dx,
                dw,
                0,
                ws,
                null_mut(),
                0,
            )
        }
    };
    assert_eq!(
        bwd(&pool, 0, 0x1000, 0x2000, 0, 0, &s),
        BLURPOOL_STATUS_BUFFER
    );
    assert!(
        last_error().contains("x is a null device pointer"),
        "{}",
        last_error()
    );
    assert_eq!(
        bwd(&pool, 0x1000, 0, 0x2000, 0, 0, &s),
        BLURPOOL_STATUS_BUFFER
    );
    assert!(last_error().contains("dy is a null"), "{}", last_error());
    let c = [1i64, 1, 4, 4];
    assert_eq!(
        bwd(&conv, 0x1000, 0x2000, 0x3000, 0x4000, 0, &c),
        BLURPOOL_STATUS_BUFFER
    );
    assert!(
        last_error().contains("workspace is a null"),
        "{}",
        last_error()
    );
    assert_eq!(
        bwd(&conv, 0x1000, 0x2000, 0x3000, 0, 0x5000, &c),
        BLURPOOL_STATUS_BUFFER
    );
    assert!(
        last_error().contains("dweight is a null"),
        "{}",
        last_error()
    );
    // An empty batch is a no-op.
    assert_eq!(bwd(&pool, 0, 0, 0, 0, 0, &[0, 1, 5, 5]), BLURPOOL_STATUS_OK);
    if blurpool_driver_available() == 0 {
        assert_eq!(
            bwd(&pool, 0x1000, 0x2000, 0x3000, 0, 0, &s),
            BLURPOOL_STATUS_NO_DRIVER
        );
    }
    // BlurConv2d has no GPU backward yet: a clear refusal.
    let mut bc = conv;
    bc.op = blurpool_op_kind::BLURPOOL_OP_BLUR_CONV as i32;
    bc.stride_y = 1;
    bc.stride_x = 1;
    bc.conv_stride_y = 2;
    bc.conv_stride_x = 2;
    let r = len(&bc, [1, 1, 8, 8]);
    assert!(
        matches!(&r, Err((BLURPOOL_STATUS_INVALID_ARGUMENT, m)) if m.contains("not implemented on the GPU")),
        "{r:?}"
    );
}

#[test]
fn packed_weight_calls_check_before_the_driver() {
    // A dense 3×3 conv (16 → 32 channels, no bias) + blur: the case the tensor-core kernel takes.
    let conv = conv_blur(3, 2, 16, 32, 3, 1);
    let pool = kornia_max_blur(3, 2, 2);
    let s = [1i64, 16, 9, 9];
    let f16 = 1; // BLURPOOL_DTYPE_F16
    let len = |d: &blurpool_op_desc, out: *mut u64| {
        // SAFETY: a valid descriptor and shape; `out` is a writable u64 or NULL (rejected).
        unsafe { blurpool_packed_weight_len(d, f16, 1, s.as_ptr(), 0, out) }
    };
    let mut n = u64::MAX;
    // Operators without a convolution never read packed weights, on any machine.
    assert_eq!(len(&pool, &mut n), BLURPOOL_STATUS_OK);
    assert_eq!(n, 0);
    assert_eq!(len(&conv, null_mut()), BLURPOOL_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("len is NULL"), "{}", last_error());

    let pack = |d: &blurpool_op_desc, w, p| {
        // SAFETY: no device pointer is dereferenced on the host; these calls fail validation
        // or find no driver (or, with one, no device at this ordinal).
        unsafe { blurpool_pack_weights(d, f16, 1, s.as_ptr(), w, p, null_mut(), 4096) }
    };
    assert_eq!(
        pack(&pool, 0x1000, 0x2000),
        BLURPOOL_STATUS_INVALID_ARGUMENT
    );
    assert!(last_error().contains("conv_blur_pool"), "{}", last_error());
    assert_eq!(pack(&conv, 0, 0x2000), BLURPOOL_STATUS_BUFFER);
    assert!(
        last_error().contains("weight is a null"),
        "{}",
        last_error()
    );
    assert_eq!(pack(&conv, 0x1000, 0), BLURPOOL_STATUS_BUFFER);
    assert!(
        last_error().contains("packed is a null"),
        "{}",
        last_error()
    );

    let fwd = |d: &blurpool_op_desc, x, p, b, y, shape: &[i64; 4]| {
        // SAFETY: as above.
        unsafe { blurpool_forward_packed(d, f16, 1, shape.as_ptr(), x, p, b, y, null_mut(), 4096) }
    };
    assert_eq!(
        fwd(&pool, 0x1000, 0x2000, 0, 0x3000, &[1, 3, 9, 9]),
        BLURPOOL_STATUS_INVALID_ARGUMENT
    );
    assert_eq!(fwd(&conv, 0x1000, 0, 0, 0x3000, &s), BLURPOOL_STATUS_BUFFER);
    assert!(
        last_error().contains("packed is a null"),
        "{}",
        last_error()
    );
    assert_eq!(fwd(&conv, 0, 0x2000, 0, 0x3000, &s), BLURPOOL_STATUS_BUFFER);
    assert_eq!(fwd(&conv, 0x1000, 0x2000, 0, 0, &s), BLURPOOL_STATUS_BUFFER);
    assert_eq!(
        fwd(&conv, 0x1000, 0x2000, 0x4000, 0x3000, &s),
        BLURPOOL_STATUS_BUFFER
    );
    assert!(
        last_error().contains("conv_has_bias is 0"),
        "{}",
        last_error()
    );
    // An empty batch is a no-op whatever the machine.
    assert_eq!(fwd(&conv, 0, 0, 0, 0, &[0, 16, 9, 9]), BLURPOOL_STATUS_OK);
    // Past validation: no driver here, or (with one) no device 4096.
    let want = if blurpool_driver_available() == 0 {
        BLURPOOL_STATUS_NO_DRIVER
    } else {
        BLURPOOL_STATUS_NO_DEVICE
    };
    assert_eq!(
        fwd(&conv, 0x1000, 0x2000, 0, 0x3000, &s),
        want,
        "{}",
        last_error()
    );
    assert_eq!(pack(&conv, 0x1000, 0x2000), want, "{}", last_error());
}

#[test]
fn last_error_is_per_thread() {
    // SAFETY: null desc is rejected.
    assert_eq!(
        unsafe { blurpool_output_shape(null(), null(), null_mut()) },
        BLURPOOL_STATUS_INVALID_ARGUMENT
    );
    let here = last_error();
    let there = std::thread::spawn(last_error).join().unwrap();
    assert!(here.contains("desc is NULL"));
    assert_eq!(there, "");
}

/// The header's enums and the core's numbers (which the kernels use too) are one encoding.
#[test]
fn header_enums_are_the_cores_codes() {
    use blurpool_core::Activation;
    use blurpool_pad_mode::*;
    for (c, core) in [
        (BLURPOOL_PAD_ZERO, PadMode::Zero),
        (BLURPOOL_PAD_REFLECT, PadMode::Reflect),
        (BLURPOOL_PAD_REPLICATE, PadMode::Replicate),
    ] {
        assert_eq!(c as i32, core.code(), "{core:?}");
    }
    use blurpool_activation::*;
    for (c, core) in [
        (BLURPOOL_ACT_IDENTITY, Activation::Identity),
        (BLURPOOL_ACT_RELU, Activation::Relu),
        (BLURPOOL_ACT_RELU6, Activation::Relu6),
    ] {
        assert_eq!(c as i32, core.code(), "{core:?}");
    }
}
