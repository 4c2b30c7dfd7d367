//! One regression test per defect found by fuzzing the public API (issue 23). Each says what
//! the code did before its fix; each fails on that code (checked: see notes/robustness.md).
//! A counting allocator measures the largest allocation of the calls that used to allocate
//! without bound.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use blurpool::presets::{antialiased_cnns, timm};
use blurpool::{
    reference, Blur, BlurConv2d, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, Filter,
    Layout, MaxBlurPool2d, MaxPool2d, Operator, Pad2d, PadMode, Shape4,
};

/// The largest single allocation since the last reset (all threads; tests that read it hold
/// `MEASURE`).
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static MEASURE: Mutex<()> = Mutex::new(());

struct Counting;

// SAFETY: forwards to the system allocator; only records the size asked for.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The largest single allocation `f` makes, and its result.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let _g = MEASURE.lock().unwrap_or_else(|p| p.into_inner());
    LARGEST.store(0, Ordering::SeqCst);
    let r = f();
    (LARGEST.load(Ordering::SeqCst), r)
}

/// `f` must return (not panic); gives its result.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what} panicked"))
}

fn conv(args: Conv2dArgs) -> blurpool::Result<Conv2dSpec> {
    Conv2dSpec::new(args)
}

/// Before: `weight_len` multiplied unchecked; Cout 2^18 · Cin 2^16 · 2^15 · 2^15 wrapped to 0 in
/// release (a plan accepted it and the kernel read past a 0-length weight) and panicked in
/// debug. Now the spec is refused when built.
#[test]
fn weight_length_cannot_wrap() {
    let args = Conv2dArgs {
        in_channels: 1 << 16,
        out_channels: 1 << 18,
        kernel: (1 << 15, 1 << 15),
        ..Conv2dArgs::default()
    };
    let r = no_panic("Conv2dSpec::new", || conv(args));
    assert!(r.is_err(), "{r:?}");
}

/// Before: the kernels computed a filter's area `ckh * ckw` in int; a 65536 × 65536 kernel
/// (area 2^32) was accepted. Now kh·kw must fit in 31 bits.
#[test]
fn kernel_area_fits_the_kernels_int() {
    let args = Conv2dArgs {
        in_channels: 1,
        out_channels: 1,
        kernel: (1 << 16, 1 << 16),
        ..Conv2dArgs::default()
    };
    assert!(no_panic("Conv2dSpec::new", || conv(args)).is_err());
    let ok = Conv2dArgs {
        kernel: (1 << 15, (1 << 16) - 1),
        ..args
    };
    assert!(conv(ok).is_ok());
}

/// Before: an empty batch skipped the size check, so `len + pad` overflowed in
/// `Blur::output_len` for huge H (a panic in debug, a wrapped shape in release).
#[test]
fn empty_batch_of_impossible_images_is_refused() {
    let op = timm::blur_pool2d(3, 2, PadMode::Zero).unwrap();
    let r = no_panic("output_shape", || {
        op.output_shape(Shape4::new(0, 1, usize::MAX, 1))
    });
    assert!(r.is_err(), "{r:?}");
    let max = MaxPool2d::new((3, 3), (1, 1)).unwrap();
    let r = no_panic("output_shape", || {
        max.output_shape(Shape4::new(0, 1, 1, usize::MAX))
    });
    assert!(r.is_err(), "{r:?}");
}

/// Before: conv padding 2^63 gave `Ok(1×1×1×1)` in release (`len + 2p` wrapped) and panicked in
/// debug.
#[test]
fn huge_conv_padding_is_refused_not_wrapped() {
    let args = Conv2dArgs {
        in_channels: 1,
        out_channels: 1,
        kernel: (1, 1),
        padding: (1 << 63, 1 << 63),
        ..Conv2dArgs::default()
    };
    let built = no_panic("Conv2dSpec::new", || conv(args));
    if let Ok(c) = built {
        let op = ConvBlurPool2d::new(c, timm::blur(3, 2, PadMode::Zero).unwrap());
        let r = no_panic("output_shape", || op.output_shape(Shape4::new(1, 1, 1, 1)));
        assert!(r.is_err(), "a shape for padding 2^63: {r:?}");
    }
}

/// Before: the presets did their padding arithmetic unchecked: `timm::blur_pool2d(3,
/// usize::MAX, _)` and `antialiased_cnns::blur_pool(_, 4, 2, i64::MAX)` panicked in debug.
#[test]
fn presets_refuse_extreme_arguments() {
    let r = no_panic("timm", || timm::blur_pool2d(3, usize::MAX, PadMode::Zero));
    assert!(r.is_err(), "{r:?}");
    let r = no_panic("antialiased_cnns", || {
        antialiased_cnns::blur_pool(PadMode::Reflect, 4, 2, i64::MAX)
    });
    assert!(r.is_err(), "{r:?}");
    let r = no_panic("antialiased_cnns", || {
        antialiased_cnns::blur_pool(PadMode::Reflect, 4, 2, i64::MIN)
    });
    assert!(r.is_err(), "{r:?}");
}

/// Before: strides near 2^63 were accepted and the reference subtracted the pad as i64 from
/// `i·s + u` (overflow); MaxPool2d's window had no bound either.
#[test]
fn strides_and_windows_beyond_the_kernels_are_refused() {
    let f = || Filter::binomial(3).unwrap();
    let r = no_panic("Blur::new", || {
        Blur::new(f(), ((1 << 63) - 1, 1), Pad2d::uniform(1), PadMode::Zero)
    });
    assert!(r.is_err(), "{r:?}");
    let r = no_panic("Blur::new", || {
        Blur::new(f(), (2, 2), Pad2d::before_after(0, 1 << 62), PadMode::Zero)
    });
    assert!(r.is_err(), "{r:?}");
    let r = no_panic("MaxPool2d::new", || MaxPool2d::new((usize::MAX, 1), (0, 0)));
    assert!(r.is_err(), "{r:?}");
}

/// Before: `bias = Some(&[])` on a conv without bias passed the length check (0 = 0) and then
/// indexed `b[co]`: a panic in both builds (INTERNAL through the C ABI).
#[test]
fn empty_bias_on_a_conv_without_bias_is_an_error() {
    let c = conv(Conv2dArgs {
        in_channels: 2,
        out_channels: 2,
        kernel: (3, 3),
        padding: (1, 1),
        ..Conv2dArgs::default()
    })
    .unwrap();
    let op = Operator::from(ConvBlurPool2d::new(
        c,
        timm::blur(3, 2, PadMode::Reflect).unwrap(),
    ));
    let shape = Shape4::new(1, 2, 6, 6);
    let x = vec![1f32; 72];
    let w = vec![0.1f32; c.weight_len()];
    let mut y = vec![0f32; 18];
    let r = no_panic("forward", || {
        reference::forward(&op, shape, Layout::Nchw, &x, &w, Some(&[]), &mut y)
    });
    assert!(r.is_err(), "{r:?}");
    let (mut dx, mut dw) = (vec![0f32; 72], vec![0f32; c.weight_len()]);
    let r = no_panic("backward", || {
        reference::grad::backward(
            &op,
            shape,
            Layout::Nchw,
            &x,
            &w,
            Some(&[]),
            &y,
            &mut dx,
            &mut dw,
            None,
        )
    });
    assert!(r.is_err(), "{r:?}");
}

/// Before: the reference allocated its intermediate maps before checking `y`, so zero padding
/// 20000 on a 1×1×1×1 input with `y = []` asked for 12.8 GB and aborted the process; at pad
/// 4096 the length error came after 0.4 s and 527 MB. Now the buffers are checked first.
#[test]
fn wrong_output_length_is_found_before_any_allocation() {
    let blur = Blur::new(
        Filter::binomial(3).unwrap(),
        (1, 1),
        Pad2d::uniform(20_000),
        PadMode::Zero,
    )
    .unwrap();
    for op in [
        Operator::from(BlurPool2d::new(blur.clone())),
        Operator::from(MaxBlurPool2d::new(
            MaxPool2d::new((1, 1), (0, 0)).unwrap(),
            blur,
        )),
    ] {
        let (largest, r) = largest_allocation(|| {
            no_panic("forward", || {
                reference::forward(
                    &op,
                    Shape4::new(1, 1, 1, 1),
                    Layout::Nchw,
                    &[1f32],
                    &[],
                    None,
                    &mut [],
                )
            })
        });
        assert!(
            matches!(r, Err(blurpool::Error::BufferLength { what: "output", .. })),
            "{r:?}"
        );
        assert!(largest < 1 << 20, "{} allocated {largest} bytes", op.name());
    }
}

/// Before: a right-padded map of 2^62 with `y = []` overflowed the capacity computation of the
/// intermediate (a "capacity overflow" panic in both builds). Now the padding is refused.
#[test]
fn right_pad_2_pow_62_is_refused() {
    let r = no_panic("blur", || {
        Blur::new(
            Filter::binomial(1).unwrap(),
            (1, 1),
            Pad2d {
                right: 1 << 62,
                ..Pad2d::default()
            },
            PadMode::Zero,
        )
        .map(|b| {
            let op = BlurPool2d::new(b);
            reference::blur_pool(&op, Shape4::new(1, 1, 1, 1), Layout::Nchw, &[1f32], &mut [])
        })
    });
    assert!(
        matches!(r, Err(_) | Ok(Err(_))),
        "the padding or the call must be refused: {r:?}"
    );
}

/// Before: a blur-first conv with a large blur padding materialised the whole blurred map
/// (86–258 GB for a pad near 2^30) although the output had a few elements. Now intermediates
/// far larger than the output are evaluated where they are read.
#[test]
fn huge_padded_intermediate_is_not_materialised() {
    let pad = 1 << 24; // the blurred map is (2^25)² = 2^50 values; the output 2 × 2
    let blur = Blur::new(
        Filter::binomial(3).unwrap(),
        (1, 1),
        Pad2d::uniform(pad),
        PadMode::Zero,
    )
    .unwrap();
    let c = conv(Conv2dArgs {
        in_channels: 1,
        out_channels: 1,
        kernel: (1, 1),
        bias: true,
        ..Conv2dArgs::default()
    })
    .unwrap();
    let op = BlurConv2d::new(blur, c, (pad, pad)).unwrap();
    let shape = Shape4::new(1, 1, 2, 2);
    let out = op.output_shape(shape).unwrap();
    assert_eq!(out, Shape4::new(1, 1, 2, 2));
    let x = [1f32, 2.0, 3.0, 4.0];
    let mut y = vec![f32::NAN; 4];
    let (largest, r) = largest_allocation(|| {
        reference::blur_conv(&op, shape, Layout::Nchw, &x, &[2.0], Some(&[0.5]), &mut y)
    });
    r.unwrap();
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    // Output (1, 1) samples the blurred map at (pad, pad), whose taps [¼, ½, ¼] on each axis
    // start on x's first row and column: (1·¼·¼ + 2·¼·½ + 3·½·¼ + 4·½·½) = 27/16; output (0, 0)
    // samples pure padding.
    assert_eq!(y[3], 2.0 * 27.0 / 16.0 + 0.5);
    assert_eq!(y[0], 0.5);
}

/// Before: a normalised filter whose taps' sum overflowed (`[1e308, 1e308]`) silently became
/// all zeros. Now the sum is scaled: the weights are `[0.5, 0.5]`.
#[test]
fn normalising_huge_taps_keeps_their_ratio() {
    let f = Filter::symmetric(&[1e308, 1e308]).unwrap();
    assert_eq!(f.weights_y(), &[0.5, 0.5]);
    let f = Filter::separable(&[f64::MAX, f64::MAX, f64::MAX], &[1.0]).unwrap();
    assert!(f.weights_y().iter().all(|&w| (w - 1.0 / 3.0).abs() < 1e-15));
    // Unnormalised taps the kernels' f32 cannot hold are refused.
    assert!(Filter::unnormalized(&[1e300], &[1.0]).is_err());
}

/// Before: `PadMode::source_index` clamped with min > max (a panic) for an extent of 0.
#[test]
fn source_index_on_an_empty_axis_has_no_source() {
    for mode in PadMode::ALL {
        for i in [-5i64, -1, 0, 1, 7, i64::MIN, i64::MAX] {
            assert_eq!(no_panic("source_index", || mode.source_index(i, 0)), None);
        }
        // Extremes give some answer inside the axis, or none, but never a panic.
        for (i, n) in [
            (i64::MAX, usize::MAX),
            (i64::MIN, usize::MAX),
            (i64::MAX, 1 << 62),
        ] {
            if let Some(r) = no_panic("source_index", || mode.source_index(i, n)) {
                assert!(r < n);
            }
        }
    }
    assert_eq!(
        PadMode::Reflect.source_index(-3, 2),
        None,
        "overhang ≥ extent"
    );
    assert_eq!(PadMode::Reflect.source_index(-1, 2), Some(1));
}
