//! Fuzz: random and adversarial configurations through every public constructor, every
//! preset, `output_shape`, `plan`/`backward_plan`, the CPU reference and its gradients (with
//! wrong-length buffers), and, for small cases, the kernels themselves in the host emulator.
//!
//! Asserts, for every case: no panic (each call runs under `catch_unwind`; the first failures
//! are reported with the case that caused them), no huge allocation (a counting allocator
//! refuses any single allocation above 1 GiB and the harness reports it), every error a typed
//! `blurpool::Error` with a message, output shapes equal to the SPEC's formulas evaluated in
//! 128-bit arithmetic (so a wrapped size is caught in release builds too), weight lengths equal
//! to the exact product, and finite outputs for finite inputs when the filter and weights are
//! tame.
//!
//! `cargo test` runs a fixed seed for a bounded time (BLURPOOL_FUZZ_SECONDS, default 20) or
//! count (BLURPOOL_FUZZ_ITERS, default 50,000); `BLURPOOL_FUZZ_ITERS=1000000
//! BLURPOOL_FUZZ_SECONDS=0 cargo test --release --test fuzz` is the long run. Each case has its
//! own seed (BLURPOOL_FUZZ_SEED ⊕ its index), so a failure names the case to replay with
//! BLURPOOL_FUZZ_START=<index> BLURPOOL_FUZZ_ITERS=1; BLURPOOL_FUZZ_REPORT=<file> writes every
//! failure there.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use blurpool::cuda::{KernelChoice, KernelVersion, Target};
use blurpool::presets::{antialiased_cnns, composer, kornia, timm};
use blurpool::reference::{self, grad};
use blurpool::{
    Activation, Blur, BlurConv2d, BlurPool2d, Conv2dArgs, Conv2dSpec, ConvBlurPool2d, DType,
    Element, Filter, Layout, MaxBlurPool2d, MaxPool2d, Operator, Pad2d, PadMode, Shape4,
};
use blurpool_testkit::Emu;
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------------------------
// A global allocator that refuses huge single allocations (so an unbounded intermediate shows up
// as a reported failure instead of the machine swapping) and says which case asked.

const ALLOC_LIMIT: usize = 1 << 30;
static CURRENT_CASE: AtomicU64 = AtomicU64::new(u64::MAX);
static HUGE_ALLOC: AtomicBool = AtomicBool::new(false);

/// What the run exercised (printed, and checked to be non-trivial).
static BUILT: AtomicU64 = AtomicU64::new(0);
static SHAPES_OK: AtomicU64 = AtomicU64::new(0);
static FORWARD_OK: AtomicU64 = AtomicU64::new(0);
static BACKWARD_OK: AtomicU64 = AtomicU64::new(0);
static EMULATED: AtomicU64 = AtomicU64::new(0);

struct Limited;

// SAFETY: forwards to the system allocator; refusing (returning null) is allowed by GlobalAlloc.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            if !HUGE_ALLOC.swap(true, Ordering::SeqCst) {
                // No allocation here: a fixed message and a number formatted on the stack.
                let mut buf = [0u8; 96];
                let msg = b"fuzz: an allocation above 1 GiB was requested by case ";
                buf[..msg.len()].copy_from_slice(msg);
                let mut n = CURRENT_CASE.load(Ordering::SeqCst);
                let mut digits = [0u8; 20];
                let mut k = digits.len();
                loop {
                    k -= 1;
                    digits[k] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                let d = &digits[k..];
                buf[msg.len()..msg.len() + d.len()].copy_from_slice(d);
                buf[msg.len() + d.len()] = b'\n';
                use std::io::Write;
                let _ = std::io::stderr().write_all(&buf[..msg.len() + d.len() + 1]);
            }
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_LIMIT {
            HUGE_ALLOC.store(true, Ordering::SeqCst);
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Limited = Limited;

// ---------------------------------------------------------------------------------------------
// Generators: mostly small values, often edge values, sometimes huge ones.

const EDGES: [u64; 22] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    1 << 15,
    (1 << 16) + 1,
    (1 << 20),
    (1 << 30),
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    (1 << 53) - 1,
    1 << 53,
    1 << 62,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

fn size(rng: &mut StdRng) -> usize {
    match rng.random_range(0..20) {
        0..=14 => rng.random_range(0..=9),
        15 | 16 => EDGES[rng.random_range(0..EDGES.len())] as usize,
        17 | 18 => rng.random_range(0..=300),
        _ => rng.random::<u64>() as usize >> rng.random_range(0..64),
    }
}

/// A size for places that are often small but must also be fuzzed large (pads, strides).
fn small_or_edge(rng: &mut StdRng) -> usize {
    if rng.random_bool(0.8) {
        rng.random_range(0..=5)
    } else {
        size(rng)
    }
}

fn signed(rng: &mut StdRng) -> i64 {
    match rng.random_range(0..6) {
        0..=3 => rng.random_range(-4..=4),
        4 => [
            i64::MIN,
            i64::MIN + 1,
            -(1 << 62),
            1 << 62,
            i64::MAX - 1,
            i64::MAX,
        ][rng.random_range(0..6)],
        _ => rng.random::<i64>(),
    }
}

fn tap(rng: &mut StdRng) -> f64 {
    match rng.random_range(0..40) {
        0..=29 => rng.random_range(-1.0..2.0),
        30..=32 => 1.0,
        33 => 0.0,
        34 => 1e308,
        35 => -1e308,
        36 => f64::NAN,
        37 => f64::INFINITY,
        38 => 1e-300,
        _ => f64::MAX,
    }
}

fn taps(rng: &mut StdRng) -> Vec<f64> {
    let n = match rng.random_range(0..8) {
        0 => 0,
        1 => rng.random_range(17..20),
        _ => rng.random_range(1..=7),
    };
    (0..n).map(|_| tap(rng)).collect()
}

fn mode(rng: &mut StdRng) -> PadMode {
    PadMode::ALL[rng.random_range(0..3)]
}

fn activation(rng: &mut StdRng) -> Activation {
    Activation::ALL[rng.random_range(0..3)]
}

fn pair(rng: &mut StdRng, f: fn(&mut StdRng) -> usize) -> (usize, usize) {
    let a = f(rng);
    if rng.random_bool(0.7) {
        (a, a)
    } else {
        (a, f(rng))
    }
}

/// An outcome of building something: Ok, a typed error, or a panic (a failure).
type Built<T> = Result<T, String>;

/// Runs `f`, turning a panic into Err("panic: …") and a typed error into Err("error: …").
fn guarded<T>(what: &str, f: impl FnOnce() -> blurpool::Result<T>) -> (Option<T>, Option<String>) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => (Some(v), None),
        Ok(Err(e)) => {
            let msg = e.to_string();
            if msg.is_empty() {
                return (
                    None,
                    Some(format!("{what}: an error with an empty message: {e:?}")),
                );
            }
            (None, None)
        }
        Err(p) => (
            None,
            Some(format!("{what}: panicked: {}", panic_message(&*p))),
        ),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".into())
}

fn filter(rng: &mut StdRng) -> (Built<()>, Option<Filter>, String) {
    let (ty, tx) = (taps(rng), taps(rng));
    let kind = rng.random_range(0..4);
    let desc = match kind {
        0 => format!("Filter::binomial({})", ty.len()),
        1 => format!("Filter::symmetric({ty:?})"),
        2 => format!("Filter::separable({ty:?}, {tx:?})"),
        _ => format!("Filter::unnormalized({ty:?}, {tx:?})"),
    };
    let (f, err) = guarded(&desc, || match kind {
        0 => Filter::binomial(if rng.random_bool(0.1) {
            size(rng)
        } else {
            ty.len()
        }),
        1 => Filter::symmetric(&ty),
        2 => Filter::separable(&ty, &tx),
        _ => Filter::unnormalized(&ty, &tx),
    });
    let mut err = err;
    if let Some(f) = &f {
        // A normalised filter's weights sum to one on each axis (a tap sum that overflowed
        // once made them all zero); every weight fits in f32.
        for w in [f.weights_y(), f.weights_x()] {
            let (sum, abs) = w
                .iter()
                .fold((0f64, 0f64), |(s, a), v| (s + v, a + v.abs()));
            if f.is_normalized() && (sum - 1.0).abs() > 1e-12 * abs.max(1.0) {
                err.get_or_insert(format!("{desc}: normalised weights {w:?} sum to {sum}"));
            }
            if w.iter()
                .any(|v| !v.is_finite() || v.abs() > f32::MAX as f64)
            {
                err.get_or_insert(format!("{desc}: weights {w:?} do not fit in f32"));
            }
        }
    }
    (err.map_or(Ok(()), Err), f, desc)
}

/// One random operator, built through a random constructor or preset. Returns the operator (if
/// it was built), a description, and failures.
fn operator(rng: &mut StdRng, failures: &mut Vec<String>) -> (Option<Operator>, String) {
    let mut found = Vec::new();
    let mut note = |e: Option<String>| {
        if let Some(e) = e {
            found.push(e);
        }
    };
    let result = match rng.random_range(0..12) {
        // Presets, with adversarial arguments.
        0 => {
            let (pt, f, s, off) = (mode(rng), size(rng), small_or_edge(rng), signed(rng));
            let d = format!("antialiased_cnns::blur_pool({pt:?}, {f}, {s}, {off})");
            let (op, e) = guarded(&d, || antialiased_cnns::blur_pool(pt, f, s, off));
            note(e);
            (op.map(Operator::from), d)
        }
        1 => {
            let (k, p) = (small_or_edge(rng), small_or_edge(rng));
            let (pt, f, s, off) = (mode(rng), size(rng), small_or_edge(rng), signed(rng));
            let d = format!("antialiased_cnns::max_blur_pool({k}, {p}, {pt:?}, {f}, {s}, {off})");
            let (op, e) = guarded(&d, || antialiased_cnns::max_blur_pool(k, p, pt, f, s, off));
            note(e);
            (op.map(Operator::from), d)
        }
        2 => {
            let (k, s, m) = (size(rng), small_or_edge(rng), small_or_edge(rng));
            let d = format!("kornia::max_blur_pool2d({k}, {s}, {m})");
            let (op, e) = guarded(&d, || kornia::max_blur_pool2d(k, s, m));
            note(e);
            (op.map(Operator::from), d)
        }
        3 => {
            let (k, s) = (size(rng), small_or_edge(rng));
            let d = format!("kornia::blur_pool2d({k}, {s})");
            let (op, e) = guarded(&d, || kornia::blur_pool2d(k, s));
            note(e);
            (op.map(Operator::from), d)
        }
        4 => {
            let (f, s, m) = (size(rng), small_or_edge(rng), mode(rng));
            let d = format!("timm::blur_pool2d({f}, {s}, {m:?})");
            let (op, e) = guarded(&d, || timm::blur_pool2d(f, s, m));
            note(e);
            (op.map(Operator::from), d)
        }
        5 => {
            let (ty, tx) = (taps(rng), taps(rng));
            let custom = rng.random_bool(0.5);
            let (s, k, p) = (
                pair(rng, small_or_edge),
                pair(rng, small_or_edge),
                pair(rng, small_or_edge),
            );
            let d = format!(
                "composer::blurmax_pool2d({k:?}, {s:?}, {p:?}, {:?})",
                custom.then_some((&ty, &tx))
            );
            let (op, e) = guarded(&d, || {
                composer::blurmax_pool2d(k, s, p, custom.then_some((&ty[..], &tx[..])))
            });
            note(e);
            (op.map(Operator::from), d)
        }
        // Direct constructors.
        6 | 7 => {
            let (fe, f, fd) = filter(rng);
            note(fe.err());
            let Some(f) = f else { return (None, fd) };
            let stride = pair(rng, small_or_edge);
            let pad = Pad2d {
                top: small_or_edge(rng),
                bottom: small_or_edge(rng),
                left: small_or_edge(rng),
                right: small_or_edge(rng),
            };
            let m = mode(rng);
            let d = format!("Blur::new({fd}, {stride:?}, {pad:?}, {m:?})");
            let (blur, e) = guarded(&d, || Blur::new(f, stride, pad, m));
            note(e);
            let Some(blur) = blur else { return (None, d) };
            if rng.random_bool(0.5) {
                (
                    Some(Operator::from(BlurPool2d::new(blur))),
                    format!("BlurPool2d({d})"),
                )
            } else {
                let (k, p) = (pair(rng, small_or_edge), pair(rng, small_or_edge));
                let dm = format!("MaxPool2d::new({k:?}, {p:?})");
                let (max, e) = guarded(&dm, || MaxPool2d::new(k, p));
                note(e);
                let op = max.map(|m| Operator::from(MaxBlurPool2d::new(m, blur)));
                (op, format!("MaxBlurPool2d({dm}, {d})"))
            }
        }
        8 => {
            let (k, p) = (pair(rng, small_or_edge), pair(rng, small_or_edge));
            let d = format!("MaxPool2d::new({k:?}, {p:?})");
            let (max, e) = guarded(&d, || MaxPool2d::new(k, p));
            note(e);
            (max.map(Operator::from), d)
        }
        _ => {
            // Convolutions: spec, then ConvBlurPool2d / BlurConv2d / a preset.
            let args = Conv2dArgs {
                in_channels: if rng.random_bool(0.7) {
                    rng.random_range(1..=6)
                } else {
                    size(rng)
                },
                out_channels: if rng.random_bool(0.7) {
                    rng.random_range(1..=6)
                } else {
                    size(rng)
                },
                kernel: pair(rng, |r| {
                    if r.random_bool(0.8) {
                        r.random_range(1..=5)
                    } else {
                        size(r)
                    }
                }),
                padding: pair(rng, small_or_edge),
                groups: if rng.random_bool(0.6) {
                    1
                } else {
                    small_or_edge(rng)
                },
                bias: rng.random_bool(0.5),
                activation: activation(rng),
            };
            let d = format!("Conv2dSpec::new({args:?})");
            let (conv, e) = guarded(&d, || Conv2dSpec::new(args));
            note(e);
            let Some(conv) = conv else { return (None, d) };
            // weight_len must be the exact product (a wrapped one lets kernels read past the
            // weights).
            let exact = args.out_channels as u128
                * (args.in_channels / args.groups.max(1)) as u128
                * args.kernel.0 as u128
                * args.kernel.1 as u128;
            let (wl, e) = guarded(&format!("{d}.weight_len()"), || Ok(conv.weight_len()));
            note(e);
            if let Some(wl) = wl {
                if wl as u128 != exact {
                    note(Some(format!(
                        "{d}: weight_len() = {wl} but the product is {exact}"
                    )));
                }
            }
            match rng.random_range(0..4) {
                0 => {
                    let (pt, f, s, off) = (mode(rng), size(rng), small_or_edge(rng), signed(rng));
                    let d =
                        format!("antialiased_cnns::conv_blur_pool({d}, {pt:?}, {f}, {s}, {off})");
                    let (op, e) =
                        guarded(&d, || antialiased_cnns::conv_blur_pool(conv, pt, f, s, off));
                    note(e);
                    (op.map(Operator::from), d)
                }
                1 => {
                    let (f, s, m) = (size(rng), small_or_edge(rng), mode(rng));
                    let d = format!("timm::conv_blur_pool({d}, {f}, {s}, {m:?})");
                    let (op, e) = guarded(&d, || timm::conv_blur_pool(conv, f, s, m));
                    note(e);
                    (op.map(Operator::from), d)
                }
                2 => {
                    let s = pair(rng, small_or_edge);
                    let bf = rng.random_bool(0.5);
                    let d = format!("composer::blur_conv2d({d}, {s:?}, {bf})");
                    let (op, e) = guarded(&d, || composer::blur_conv2d(conv, s, bf));
                    note(e);
                    let op = op.map(|op| match op {
                        composer::BlurConv::BlurFirst(o) => Operator::from(o),
                        composer::BlurConv::ConvFirst(o) => Operator::from(o),
                    });
                    (op, d)
                }
                _ => {
                    let (fe, f, fd) = filter(rng);
                    note(fe.err());
                    let Some(f) = f else { return (None, fd) };
                    let pad = Pad2d {
                        top: small_or_edge(rng),
                        bottom: small_or_edge(rng),
                        left: small_or_edge(rng),
                        right: small_or_edge(rng),
                    };
                    let m = mode(rng);
                    let first = rng.random_bool(0.4);
                    let stride = pair(rng, small_or_edge);
                    let bstride = if first { (1, 1) } else { stride };
                    let db = format!("Blur::new({fd}, {bstride:?}, {pad:?}, {m:?})");
                    let (blur, e) = guarded(&db, || Blur::new(f, bstride, pad, m));
                    note(e);
                    let Some(blur) = blur else { return (None, db) };
                    if first {
                        let d = format!("BlurConv2d::new({db}, {d}, {stride:?})");
                        let (op, e) = guarded(&d, || BlurConv2d::new(blur, conv, stride));
                        note(e);
                        (op.map(Operator::from), d)
                    } else {
                        let d = format!("ConvBlurPool2d::new({d}, {db})");
                        (Some(Operator::from(ConvBlurPool2d::new(conv, blur))), d)
                    }
                }
            }
        }
    };
    failures.extend(found);
    result
}

fn shape(rng: &mut StdRng, op: &Operator) -> Shape4 {
    let c = match op.conv() {
        Some(conv) if rng.random_bool(0.9) => conv.in_channels(),
        _ => {
            if rng.random_bool(0.8) {
                rng.random_range(1..=5)
            } else {
                size(rng)
            }
        }
    };
    let hw = |rng: &mut StdRng| {
        if rng.random_bool(0.85) {
            rng.random_range(1..=24)
        } else {
            size(rng)
        }
    };
    let n = match rng.random_range(0..10) {
        0 => 0,
        1 => size(rng),
        _ => rng.random_range(1..=2),
    };
    Shape4::new(n, c, hw(rng), hw(rng))
}

// ---------------------------------------------------------------------------------------------
// The SPEC's output sizes in 128-bit arithmetic, with its limits (docs/SPEC.md §1: extents,
// padded extents < 2^31, element counts < 2^53): the oracle for `output_shape`.

const EXT: u128 = (1 << 31) - 1;
const ELEMS: u128 = (1 << 53) - 1;

/// A tensor of (n, c, h, w) within the limits, or None.
fn tensor(n: u128, c: u128, h: u128, w: u128) -> Option<[u128; 4]> {
    (c <= EXT && h <= EXT && w <= EXT && n * c * h * w <= ELEMS).then_some([n, c, h, w])
}

/// ⌊(len + before + after − taps)/stride⌋ + 1, or None when there is no output.
fn blur_len(len: u128, before: u128, after: u128, taps: u128, stride: u128) -> Option<u128> {
    let padded = len + before + after;
    (padded <= EXT && padded >= taps && stride > 0).then(|| (padded - taps) / stride + 1)
}

fn conv_len(len: u128, pad: u128, k: u128, stride: u128) -> Option<u128> {
    let padded = len + 2 * pad;
    (padded <= EXT && padded >= k && stride > 0).then(|| (padded - k) / stride + 1)
}

fn blur_hw(b: &Blur, h: u128, w: u128) -> Option<(u128, u128)> {
    let p = b.pad();
    let (sy, sx) = b.stride();
    if b.mode() == PadMode::Reflect
        && ((p.top.max(p.bottom) as u128) >= h || (p.left.max(p.right) as u128) >= w)
    {
        return None;
    }
    Some((
        blur_len(
            h,
            p.top as u128,
            p.bottom as u128,
            b.filter().size_y() as u128,
            sy as u128,
        )?,
        blur_len(
            w,
            p.left as u128,
            p.right as u128,
            b.filter().size_x() as u128,
            sx as u128,
        )?,
    ))
}

/// The output (n, c, h, w) the SPEC defines, in u128, or None if there is none.
fn expected_output(op: &Operator, s: Shape4) -> Option<[u128; 4]> {
    if s.c == 0 || s.h == 0 || s.w == 0 {
        return None;
    }
    let [n, c, h, w] = tensor(s.n as u128, s.c as u128, s.h as u128, s.w as u128)?;
    let [n, c, h, w] = match op {
        Operator::MaxPool(m) => {
            let ((kh, kw), (ph, pw)) = (m.kernel(), m.padding());
            let (mh, mw) = (
                conv_len(h, ph as u128, kh as u128, 1)?,
                conv_len(w, pw as u128, kw as u128, 1)?,
            );
            tensor(n, c, mh, mw)?
        }
        Operator::BlurPool(b) => {
            let (h, w) = blur_hw(b.blur(), h, w)?;
            tensor(n, c, h, w)?
        }
        Operator::MaxBlurPool(mb) => {
            let ((kh, kw), (ph, pw)) = (mb.max_pool().kernel(), mb.max_pool().padding());
            let [_, _, mh, mw] = tensor(
                n,
                c,
                conv_len(h, ph as u128, kh as u128, 1)?,
                conv_len(w, pw as u128, kw as u128, 1)?,
            )?;
            let (h, w) = blur_hw(mb.blur(), mh, mw)?;
            tensor(n, c, h, w)?
        }
        Operator::ConvBlurPool(cb) => {
            let conv = cb.conv();
            if s.c != conv.in_channels() {
                return None;
            }
            let co = conv.out_channels() as u128;
            let ((kh, kw), (ph, pw)) = (conv.kernel(), conv.padding());
            let [_, _, zh, zw] = tensor(
                n,
                co,
                conv_len(h, ph as u128, kh as u128, 1)?,
                conv_len(w, pw as u128, kw as u128, 1)?,
            )?;
            let (h, w) = blur_hw(cb.blur(), zh, zw)?;
            tensor(n, co, h, w)?
        }
        Operator::BlurConv(bc) => {
            let conv = bc.conv();
            if s.c != conv.in_channels() {
                return None;
            }
            let (bh, bw) = blur_hw(bc.blur(), h, w)?;
            let [_, _, bh, bw] = tensor(n, c, bh, bw)?;
            let ((kh, kw), (ph, pw)) = (conv.kernel(), conv.padding());
            let (sy, sx) = bc.stride();
            tensor(
                n,
                conv.out_channels() as u128,
                conv_len(bh, ph as u128, kh as u128, sy as u128)?,
                conv_len(bw, pw as u128, kw as u128, sx as u128)?,
            )?
        }
    };
    Some([n, c, h, w])
}

// ---------------------------------------------------------------------------------------------
// The reference with right and wrong buffers; the emulator on small cases.

/// Largest buffers the harness allocates for a case (elements).
const SMALL: usize = 20_000;

fn tame(op: &Operator) -> bool {
    let Some(b) = op.blur() else { return true };
    let f = b.filter();
    let sum = |w: &[f64]| w.iter().map(|v| v.abs()).sum::<f64>();
    sum(f.weights_y()) * sum(f.weights_x()) < 1e3
}

fn lengths(rng: &mut StdRng, right: usize) -> usize {
    match rng.random_range(0..6) {
        0 => 0,
        1 => right.saturating_add(1),
        2 => right.saturating_sub(1),
        3 => rng.random_range(0..64),
        _ => right,
    }
}

fn reference_case<T: Element + blurpool_testkit::TestElement>(
    rng: &mut StdRng,
    op: &Operator,
    shape: Shape4,
    layout: Layout,
    failures: &mut Vec<String>,
    desc: &str,
) {
    let out = op.output_shape(shape).ok();
    let n_in = shape.numel().ok();
    let n_out = out.and_then(|o| o.numel().ok());
    let (lens, e) = guarded(&format!("{desc}: weight_len"), || {
        Ok(op.conv().map_or((0, 0), |c| (c.weight_len(), c.bias_len())))
    });
    if let Some(e) = e {
        failures.push(e);
    }
    let Some((wl, bl)) = lens else { return };
    // Right lengths only where the harness can afford them; wrong ones anywhere (small).
    // Half the cases give every buffer its right length (where affordable), the others one
    // wrong buffer or more.
    let all_right = rng.random_bool(0.5);
    let right = |n: Option<usize>| n.filter(|&n| n <= SMALL);
    let pick = |rng: &mut StdRng, n: Option<usize>| match right(n) {
        Some(n) if all_right => n,
        Some(n) => lengths(rng, n).min(SMALL + 1),
        None => rng.random_range(0..64),
    };
    let (lx, ly) = (pick(rng, n_in), pick(rng, n_out));
    let lw = pick(rng, Some(wl));
    let lb = pick(rng, Some(bl));
    let gen = |rng: &mut StdRng, n: usize| blurpool_testkit::random_vec::<T>(rng, n, 1.0);
    let x = gen(rng, lx);
    let w = gen(rng, lw);
    let bias_given = match op.conv() {
        Some(c) => {
            if all_right || rng.random_bool(0.85) {
                c.has_bias()
            } else {
                !c.has_bias()
            }
        }
        None => rng.random_bool(0.1),
    };
    let b = bias_given.then(|| gen(rng, lb));
    let mut y = vec![T::from_f64(-777.0); ly];
    let d = format!(
        "{desc}; reference::forward on {shape} {layout:?} {:?}, x {lx}, w {lw}, b {:?}, y {ly}",
        T::DTYPE,
        b.as_ref().map(|v| v.len())
    );
    let (ok, e) = guarded(&d, || {
        reference::forward(op, shape, layout, &x, &w, b.as_deref(), &mut y)
    });
    if let Some(e) = e {
        failures.push(e);
    }
    if ok.is_some() {
        FORWARD_OK.fetch_add(1, Ordering::Relaxed);
    }
    if ok.is_some() && tame(op) {
        let finite_in = x.iter().chain(&w).all(|v| v.to_f64().is_finite());
        if finite_in && y.iter().any(|v| !v.to_f64().is_finite()) {
            failures.push(format!("{d}: non-finite output from finite inputs"));
        }
    }
    // The gradients, with the same kind of buffers.
    let ldy = pick(rng, n_out);
    let dy = gen(rng, ldy);
    let mut dx = vec![T::default(); pick(rng, n_in)];
    let mut dw = vec![T::default(); pick(rng, Some(wl))];
    let ldb = pick(rng, Some(bl));
    let mut db = bias_given.then(|| vec![T::default(); ldb]);
    let d = format!(
        "{desc}; grad::backward on {shape} {layout:?}, dy {}, dx {}, dw {}",
        dy.len(),
        dx.len(),
        dw.len()
    );
    let (ok, e) = guarded(&d, || {
        grad::backward(
            op,
            shape,
            layout,
            &x,
            &w,
            b.as_deref(),
            &dy,
            &mut dx,
            &mut dw,
            db.as_deref_mut(),
        )
    });
    if let Some(e) = e {
        failures.push(e);
    }
    if ok.is_some() {
        BACKWARD_OK.fetch_add(1, Ordering::Relaxed);
    }
}

/// The kernels in the emulator where the case is small and cheap: they must not read or write
/// outside their buffers (the emulator's guards) and must agree with the reference.
fn emulated_case(
    rng: &mut StdRng,
    op: &Operator,
    shape: Shape4,
    failures: &mut Vec<String>,
    desc: &str,
) {
    let Ok(out) = op.output_shape(shape) else {
        return;
    };
    let (Ok(n_in), Ok(n_out)) = (shape.numel(), out.numel()) else {
        return;
    };
    // (u128: the harness must not overflow where the library might.)
    let wl = op.conv().map_or(0u128, |c| {
        c.out_channels() as u128
            * (c.in_channels() / c.groups()) as u128
            * c.kernel().0 as u128
            * c.kernel().1 as u128
    });
    let work_per_output = op.blur().map_or(1u128, |b| {
        (b.filter().size_y() * b.filter().size_x()) as u128
    }) * op.conv().map_or(1u128, |c| {
        (c.in_channels() / c.groups()) as u128 * c.kernel().0 as u128 * c.kernel().1 as u128
    });
    if n_in > 4096 || n_out > 4096 || wl > 4096 || n_out as u128 * work_per_output > 2_000_000 {
        return;
    }
    let layout = Layout::ALL[rng.random_range(0..2)];
    let choice = if rng.random_bool(0.5) {
        KernelChoice::Auto
    } else {
        KernelChoice::GENERAL
    };
    let emu = Emu {
        max_blocks: 2,
        choice,
        wgmma: true, // f32 only: no tensor-core kernel plans
    };
    let d = format!("{desc}; emulated on {shape} {layout:?} {choice:?}");
    EMULATED.fetch_add(1, Ordering::Relaxed);
    let r = catch_unwind(AssertUnwindSafe(|| {
        blurpool_testkit::check_case::<f32>(&emu, rng, op, shape, layout)
    }));
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failures.push(format!("{d}: {e}")),
        Err(_) => failures.push(format!("{d}: panicked")),
    }
}

fn plan_case(
    rng: &mut StdRng,
    op: &Operator,
    shape: Shape4,
    failures: &mut Vec<String>,
    desc: &str,
) {
    let dtype = DType::ALL[rng.random_range(0..3)];
    let layout = Layout::ALL[rng.random_range(0..2)];
    let choice = [
        KernelChoice::Auto,
        KernelChoice::GENERAL,
        KernelChoice::AtMost(KernelVersion::V2),
    ][rng.random_range(0..3)];
    let target = Target::new(dtype, layout).with_choice(choice);
    let d = format!("{desc}; plan({shape}, {target:?})");
    let (plan, e) = guarded(&d, || op.plan(shape, target));
    if let Some(e) = e {
        failures.push(e);
    }
    if let Some(plan) = plan {
        let (_, e) = guarded(&d, || {
            Ok((plan.grid_dim(4224), plan.has_work(), plan.symbol()))
        });
        if let Some(e) = e {
            failures.push(e);
        }
        if plan.output() != op.output_shape(shape).unwrap_or(plan.output()) {
            failures.push(format!("{d}: the plan's output differs from output_shape"));
        }
    }
    let (_, e) = guarded(&format!("{desc}; backward_plan"), || {
        op.backward_plan(shape, target)
    });
    if let Some(e) = e {
        failures.push(e);
    }
}

/// `PadMode::source_index` on any coordinate and extent: a source inside the extent, or none.
fn source_index_case(rng: &mut StdRng, failures: &mut Vec<String>) {
    let m = mode(rng);
    let n = size(rng);
    let i = signed(rng);
    let d = format!("{m:?}.source_index({i}, {n})");
    let (got, e) = guarded(&d, || Ok(m.source_index(i, n)));
    if let Some(e) = e {
        failures.push(e);
    }
    if let Some(Some(r)) = got {
        if r >= n {
            failures.push(format!("{d} = {r}, outside 0..{n}"));
        }
    }
}

fn one_case(index: u64, seed: u64, failures: &mut Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    source_index_case(&mut rng, failures);
    let (op, desc) = operator(&mut rng, failures);
    let Some(op) = op else { return };
    BUILT.fetch_add(1, Ordering::Relaxed);
    let desc = format!("case {index}: {desc}");
    for _ in 0..3 {
        let shape = shape(&mut rng, &op);
        let d = format!("{desc}; output_shape({shape})");
        let (out, e) = guarded(&d, || op.output_shape(shape));
        if let Some(e) = e {
            failures.push(e);
            continue;
        }
        let want = expected_output(&op, shape);
        if out.is_some() {
            SHAPES_OK.fetch_add(1, Ordering::Relaxed);
        }
        let got = out.map(|o| [o.n as u128, o.c as u128, o.h as u128, o.w as u128]);
        if got != want {
            failures.push(format!(
                "{d}: output_shape {got:?}, the SPEC's formula in 128 bits {want:?}"
            ));
        }
        plan_case(&mut rng, &op, shape, failures, &desc);
        let layout = Layout::ALL[rng.random_range(0..2)];
        match rng.random_range(0..3) {
            0 => reference_case::<f32>(&mut rng, &op, shape, layout, failures, &desc),
            1 => reference_case::<f16>(&mut rng, &op, shape, layout, failures, &desc),
            _ => reference_case::<bf16>(&mut rng, &op, shape, layout, failures, &desc),
        }
        if rng.random_bool(0.02) {
            emulated_case(&mut rng, &op, shape, failures, &desc);
        }
        if HUGE_ALLOC.load(Ordering::SeqCst) {
            failures.push(format!(
                "{desc} on {shape}: asked for more than 1 GiB in one allocation"
            ));
            HUGE_ALLOC.store(false, Ordering::SeqCst);
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn fuzz_public_api() {
    // Panics are caught and reported per case; the default hook would print each one.
    std::panic::set_hook(Box::new(|_| {}));
    let seed = env_u64("BLURPOOL_FUZZ_SEED", 0x5eed_b10b);
    let iters = env_u64("BLURPOOL_FUZZ_ITERS", 50_000);
    let start = env_u64("BLURPOOL_FUZZ_START", 0);
    let seconds = env_u64("BLURPOOL_FUZZ_SECONDS", 20);
    let deadline = (seconds > 0).then(|| Instant::now() + Duration::from_secs(seconds));
    let mut failures = Vec::new();
    let mut done = 0u64;
    for index in start..start.saturating_add(iters) {
        if deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        CURRENT_CASE.store(index, Ordering::SeqCst);
        let mut found = Vec::new();
        // A panic that escapes the per-call guards (an unguarded library call, or the harness
        // itself) is a failure of this case too.
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| one_case(index, seed, &mut found))) {
            found.push(format!(
                "case {index}: panicked outside a guarded call: {}",
                panic_message(&*p)
            ));
        }
        failures.extend(found);
        done += 1;
    }
    let _ = std::panic::take_hook();
    if let Ok(path) = std::env::var("BLURPOOL_FUZZ_REPORT") {
        std::fs::write(&path, failures.join("\n")).expect("writing the fuzz report");
    }
    let stat = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "fuzz: seed {seed:#x}, cases {start}..{} ({done} run), {} failures; operators built {}, \
         shapes with an output {}, reference forwards that ran {}, gradients {}, emulated {}",
        start + done,
        failures.len(),
        stat(&BUILT),
        stat(&SHAPES_OK),
        stat(&FORWARD_OK),
        stat(&BACKWARD_OK),
        stat(&EMULATED),
    );
    assert!(
        failures.is_empty(),
        "{} failures; the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The harness itself: a deliberately wrong formula in the oracle must be caught, so a passing
/// fuzz run is evidence.
#[test]
fn fuzz_oracle_agrees_with_known_shapes() {
    let op =
        Operator::from(antialiased_cnns::max_blur_pool(2, 0, PadMode::Reflect, 4, 2, 0).unwrap());
    assert_eq!(
        expected_output(&op, Shape4::new(1, 3, 8, 8)),
        Some([1, 3, 4, 4])
    );
    let op = Operator::from(timm::blur_pool2d(4, 2, PadMode::Reflect).unwrap());
    assert_eq!(
        expected_output(&op, Shape4::new(1, 1, 128, 128)),
        Some([1, 1, 65, 65])
    );
    let op = Operator::from(kornia::blur_pool2d(4, 2).unwrap());
    assert_eq!(
        expected_output(&op, Shape4::new(1, 1, 10, 10)),
        Some([1, 1, 5, 5])
    );
    assert_eq!(expected_output(&op, Shape4::new(1, 0, 10, 10)), None);
}
