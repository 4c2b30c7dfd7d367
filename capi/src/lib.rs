//! # libblurpool: the C ABI of the blurpool kernels
//!
//! A descriptor-based C interface to the fused anti-aliased downsampling operators of the
//! `blurpool` crate (docs/SPEC.md), for any CUDA pipeline (C, C++, PyTorch through ctypes):
//!
//! * [`blurpool_op_desc`] describes one operator as plain data; the `blurpool_preset_*`
//!   functions fill it the way antialiased-cnns, kornia, timm and composer do.
//! * [`blurpool_output_shape`] says what the output will be (or why there is none).
//! * [`blurpool_forward`] launches the fused kernel on the caller's device buffers and stream;
//!   it never allocates, frees or retains caller memory.
//! * [`blurpool_reference_forward`] runs the CPU reference on host buffers.
//!
//! Every function returns a [`blurpool_status`]; the message of the last failure on the
//! calling thread is [`blurpool_last_error`]. No panic crosses the boundary and every
//! detectable bad input (null pointers, out-of-range enum values, bad configurations, wrong
//! buffer lengths on the host) is a status, never undefined behaviour. `include/blurpool.h` is
//! generated from this crate by cbindgen.

mod desc;
mod status;
mod types;

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use blurpool_core::cuda::{ForwardPtrs, GradPtrs, Kernels, Launch};
use blurpool_core::{presets, DType, Element, Layout, Operator, Shape4};
use cudarc::driver::sys::{CUcontext, CUstream};
use half::{bf16, f16};

use crate::status::{guard, CResult, Failure};
pub use crate::types::*;

// ---------------------------------------------------------------------------------------------
// Small helpers shared by the entry points.

/// Copies the caller's descriptor (null → error).
///
/// # Safety
/// `desc` is null or points to a readable `blurpool_op_desc`.
unsafe fn read_desc(desc: *const blurpool_op_desc) -> CResult<blurpool_op_desc> {
    if desc.is_null() {
        return Err(Failure::invalid("desc is NULL"));
    }
    // SAFETY: non-null, and the caller promises a readable descriptor; read_unaligned makes no
    // alignment assumption about foreign memory.
    Ok(unsafe { desc.read_unaligned() })
}

/// Copies a 4-element int64 shape (null → error).
///
/// # Safety
/// `shape` is null or points to 4 readable `int64_t`.
unsafe fn read_shape(what: &str, shape: *const i64) -> CResult<[i64; 4]> {
    if shape.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null, and the caller promises 4 readable int64 values.
    Ok(unsafe { shape.cast::<[i64; 4]>().read_unaligned() })
}

/// Writes a descriptor to the caller's `out` (null → error).
///
/// # Safety
/// `out` is null or points to a writable `blurpool_op_desc`.
unsafe fn write_desc(out: *mut blurpool_op_desc, op: Operator) -> CResult<()> {
    if out.is_null() {
        return Err(Failure::invalid("out is NULL"));
    }
    let d = desc::from_operator(&op)?;
    // SAFETY: non-null, and the caller promises a writable descriptor.
    unsafe { out.write_unaligned(d) };
    Ok(())
}

/// Validates the descriptor, dtype, layout and input shape of a forward call.
///
/// # Safety
/// As [`read_desc`] and [`read_shape`].
unsafe fn prepare(
    desc: *const blurpool_op_desc,
    dtype: i32,
    layout: i32,
    in_shape: *const i64,
) -> CResult<(Operator, DType, Layout, Shape4, Shape4)> {
    // SAFETY: forwarded to this function's contract.
    let d = unsafe { read_desc(desc) }?;
    let op = desc::to_operator(&d)?;
    let dtype = desc::dtype(dtype)?;
    let layout = desc::layout(layout)?;
    // SAFETY: forwarded to this function's contract.
    let input = desc::shape(unsafe { read_shape("in_shape", in_shape) }?)?;
    let output = op.output_shape(input)?;
    Ok((op, dtype, layout, input, output))
}

/// The kernels for one device ordinal's primary context, loaded once per process (the core
/// caches them; the primary context is retained for the life of the process, as the runtime
/// API and PyTorch do).
fn kernels_for(device_ordinal: i32) -> CResult<Arc<Kernels>> {
    let ordinal = usize::try_from(device_ordinal).map_err(|_| {
        Failure::invalid(format!(
            "device_ordinal is {device_ordinal}; it must be ≥ 0"
        ))
    })?;
    // The core checks that libcuda can be loaded before cudarc touches it (cudarc panics
    // otherwise), so a machine without a driver gets BLURPOOL_STATUS_NO_DRIVER.
    Ok(Kernels::for_device(ordinal)?)
}

/// BLURPOOL_STATUS_BUFFER naming the first null device pointer of `ptrs` (name, pointer).
fn check_non_null(ptrs: &[(&str, blurpool_deviceptr)]) -> CResult<()> {
    match ptrs.iter().find(|(_, p)| *p == 0) {
        Some((what, _)) => Err(Failure::buffer(format!("{what} is a null device pointer"))),
        None => Ok(()),
    }
}

/// BLURPOOL_STATUS_BUFFER unless `bias` is given exactly when the conv has one.
fn check_bias_given(conv: &blurpool_core::Conv2dSpec, bias: blurpool_deviceptr) -> CResult<()> {
    if conv.has_bias() == (bias != 0) {
        return Ok(());
    }
    Err(Failure::buffer(if conv.has_bias() {
        "conv_has_bias is set but bias is a null device pointer"
    } else {
        "bias is given but conv_has_bias is 0"
    }))
}

/// Runs `queue` with a [`Launch`] on the caller's `stream` (NULL: the legacy default stream)
/// of device `device_ordinal`'s primary context, in `layout`; the thread's current context is
/// put back afterwards. The one way every entry point that queues work reaches the GPU.
///
/// # Safety
/// `stream` is NULL or a live stream that outlives this call.
unsafe fn with_launch(
    device_ordinal: i32,
    stream: blurpool_stream,
    layout: Layout,
    queue: impl FnOnce(&Launch<'_>) -> CResult<()>,
) -> CResult<()> {
    let kernels = kernels_for(device_ordinal)?;
    let _restore = RestoreContext::save()?;
    // SAFETY: the caller promises `stream` is a live stream (or NULL) that outlives this call;
    // a stream of another context is refused (CONTEXT_MISMATCH); the wrapper is dropped before
    // we return and never destroys it.
    let stream = unsafe { kernels.borrow_stream(stream as CUstream) }?;
    let launch = Launch::new(&kernels, &stream, layout)?;
    queue(&launch)
}

/// Puts back the thread's current CUDA context when dropped: launching binds the device's
/// primary context to the thread, and a caller whose current device is another one (the CUDA
/// runtime's `cudaSetDevice`, PyTorch's current device) must not see it changed.
struct RestoreContext(CUcontext);

impl RestoreContext {
    fn save() -> CResult<Self> {
        let current = cudarc::driver::result::ctx::get_current()?;
        Ok(RestoreContext(current.unwrap_or(std::ptr::null_mut())))
    }
}

impl Drop for RestoreContext {
    fn drop(&mut self) {
        // SAFETY: re-binds the context that was current on entry (or none); it is still alive
        // because its owner (the caller) has not returned yet.
        let _ = unsafe { cudarc::driver::result::ctx::set_current(self.0) };
    }
}

/// A host buffer as a slice, after checking null, alignment and size.
///
/// # Safety
/// If `ptr` is non-null it addresses `len` readable elements of `T` that nothing writes during
/// the call.
unsafe fn host_slice<'a, T>(what: &str, ptr: *const c_void, len: usize) -> CResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    check_host_ptr::<T>(what, ptr, len)?;
    // SAFETY: non-null, aligned, size fits isize (checked above); validity is the caller's.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<T>(), len) })
}

/// Like [`host_slice`] for the output.
///
/// # Safety
/// If `ptr` is non-null it addresses `len` writable elements of `T` that nothing else reads or
/// writes during the call.
unsafe fn host_slice_mut<'a, T>(what: &str, ptr: *mut c_void, len: usize) -> CResult<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    check_host_ptr::<T>(what, ptr, len)?;
    // SAFETY: non-null, aligned, size fits isize (checked above); exclusivity is the caller's,
    // and overlap with the inputs was rejected by `check_disjoint`.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<T>(), len) })
}

fn check_host_ptr<T>(what: &str, ptr: *const c_void, len: usize) -> CResult<()> {
    if ptr.is_null() {
        return Err(Failure::buffer(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if (ptr as usize) % std::mem::align_of::<T>() != 0 {
        return Err(Failure::buffer(format!(
            "{what} is not aligned to {} bytes for its element type",
            std::mem::align_of::<T>()
        )));
    }
    match len.checked_mul(std::mem::size_of::<T>()) {
        Some(bytes)
            if bytes <= isize::MAX as usize && (ptr as usize).checked_add(bytes).is_some() =>
        {
            Ok(())
        }
        _ => Err(Failure::buffer(format!(
            "{what} length {len} is larger than the address space"
        ))),
    }
}

/// Rejects an output buffer that overlaps an input (the reference reads and writes through
/// Rust slices, which must not alias).
fn check_disjoint(
    elem: usize,
    y: (*mut c_void, usize),
    inputs: &[(&str, *const c_void, usize)],
) -> CResult<()> {
    let y0 = y.0 as usize;
    let y1 = y0.saturating_add(y.1.saturating_mul(elem));
    for &(what, p, len) in inputs {
        let (a0, a1) = (
            p as usize,
            (p as usize).saturating_add(len.saturating_mul(elem)),
        );
        if len > 0 && y.1 > 0 && a0 < y1 && y0 < a1 {
            return Err(Failure::buffer(format!(
                "y overlaps {what}: the output must be a separate buffer"
            )));
        }
    }
    Ok(())
}

/// The CPU reference for one element type.
///
/// # Safety
/// As [`blurpool_reference_forward`].
#[allow(clippy::too_many_arguments)]
unsafe fn reference_typed<T: Element>(
    op: &Operator,
    input: Shape4,
    layout: Layout,
    x: (*const c_void, usize),
    weight: (*const c_void, usize),
    bias: (*const c_void, usize),
    y: (*mut c_void, usize),
) -> CResult<()> {
    let conv = op.conv().is_some();
    let mut inputs = vec![("x", x.0, x.1)];
    if conv {
        inputs.push(("weight", weight.0, weight.1));
        inputs.push(("bias", bias.0, bias.1));
    }
    check_disjoint(std::mem::size_of::<T>(), y, &inputs)?;
    // SAFETY (all four): the caller's contract; null, alignment and size were checked.
    let xs = unsafe { host_slice::<T>("x", x.0, x.1) }?;
    let ws: &[T] = if conv {
        unsafe { host_slice::<T>("weight", weight.0, weight.1) }?
    } else {
        &[]
    };
    let bs: Option<&[T]> = if conv && !(bias.0.is_null() && bias.1 == 0) {
        Some(unsafe { host_slice::<T>("bias", bias.0, bias.1) }?)
    } else {
        None
    };
    let ys = unsafe { host_slice_mut::<T>("y", y.0, y.1) }?;
    blurpool_core::reference::forward(op, input, layout, xs, ws, bs, ys)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Library information.

/// The library's version, e.g. "0.1.0" (a static string; never free it).
#[no_mangle]
pub extern "C" fn blurpool_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The C ABI version this library implements; equals `BLURPOOL_ABI_VERSION` of the header it
/// was built with.
#[no_mangle]
pub extern "C" fn blurpool_abi_version() -> u32 {
    BLURPOOL_ABI_VERSION
}

/// `sizeof(blurpool_op_desc)` in this library (for bindings that declare the struct
/// themselves, e.g. Python's ctypes).
#[no_mangle]
pub extern "C" fn blurpool_op_desc_size() -> usize {
    std::mem::size_of::<blurpool_op_desc>()
}

/// The name of a status code, e.g. "BLURPOOL_STATUS_NO_DRIVER" (a static string).
#[no_mangle]
pub extern "C" fn blurpool_status_name(status: i32) -> *const c_char {
    status::status_name(status).as_ptr()
}

/// The message of the last failed call on this thread ("" after a success). The string
/// belongs to the library and stays valid until the next blurpool call on this thread
/// (calls to `blurpool_last_error`, `blurpool_version`, `blurpool_abi_version`,
/// `blurpool_op_desc_size`, `blurpool_status_name` and `blurpool_driver_available` leave it
/// alone). Never NULL.
#[no_mangle]
pub extern "C" fn blurpool_last_error() -> *const c_char {
    std::panic::catch_unwind(status::last_error_ptr).unwrap_or_else(|_| {
        c"blurpool_last_error: the message is unavailable (thread exiting)".as_ptr()
    })
}

/// 1 if a CUDA driver (libcuda) can be loaded on this machine, else 0. Calls no CUDA function.
#[no_mangle]
pub extern "C" fn blurpool_driver_available() -> i32 {
    std::panic::catch_unwind(blurpool_core::cuda::driver_available)
        .map(i32::from)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Descriptors.

/// Fills `*out` with a neutral descriptor for `op` (a `blurpool_op_kind`): `struct_size` set,
/// a one-tap filter, normalize 1, every stride, window and group count 1, everything else 0.
/// Set the fields the operator uses, then pass it on.
///
/// # Safety
/// `out` is NULL (an error) or points to a writable `blurpool_op_desc`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_desc_init(
    out: *mut blurpool_op_desc,
    op: i32,
) -> blurpool_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        let d = desc::init(op)?;
        // SAFETY: non-null, and the caller promises a writable descriptor.
        unsafe { out.write_unaligned(d) };
        Ok(())
    })
}

/// Checks a descriptor without an input shape: everything `blurpool_output_shape` checks except
/// what depends on the shape (e.g. reflect padding against the map, channel counts). OK or
/// BLURPOOL_STATUS_INVALID_ARGUMENT with the reason.
///
/// # Safety
/// `desc` is NULL (an error) or points to a readable `blurpool_op_desc`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_desc_check(desc: *const blurpool_op_desc) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc`.
        let d = unsafe { read_desc(desc) }?;
        desc::to_operator(&d).map(|_| ())
    })
}

/// antialiased-cnns `BlurPool(channels, pad_type, filt_size, stride, pad_off)`: binomial
/// `filt_size` (1..=7, the package's default is 4), padding ⌊(F−1)/2⌋+pad_off before and
/// ⌈(F−1)/2⌉+pad_off after. `pad_type` is a `blurpool_pad_mode` (the package's default is
/// REFLECT).
///
/// # Safety
/// `out` is NULL (an error) or points to a writable `blurpool_op_desc`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_preset_antialiased_cnns_blur_pool(
    pad_type: i32,
    filt_size: i32,
    stride: i32,
    pad_off: i32,
    out: *mut blurpool_op_desc,
) -> blurpool_status {
    guard(|| {
        let op = presets::antialiased_cnns::blur_pool(
            desc::pad_mode(pad_type)?,
            arg("filt_size", filt_size)?,
            arg("stride", stride)?,
            pad_off.into(),
        )?;
        // SAFETY: the caller's contract on `out`.
        unsafe { write_desc(out, op.into()) }
    })
}

/// antialiased-cnns' models' `nn.Sequential(nn.MaxPool2d(max_kernel, stride=1,
/// padding=max_padding), BlurPool(C, pad_type, filt_size, stride, pad_off))`: (2, 0) in
/// VGG/ResNet, (3, 1) in DenseNet, (3, 0) in AlexNet.
///
/// # Safety
/// `out` is NULL (an error) or points to a writable `blurpool_op_desc`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_preset_antialiased_cnns_max_blur_pool(
    max_kernel: i32,
    max_padding: i32,
    pad_type: i32,
    filt_size: i32,
    stride: i32,
    pad_off: i32,
    out: *mut blurpool_op_desc,
) -> blurpool_status {
    guard(|| {
        let op = presets::antialiased_cnns::max_blur_pool(
            arg("max_kernel", max_kernel)?,
            arg("max_padding", max_padding)?,
            desc::pad_mode(pad_type)?,
            arg("filt_size", filt_size)?,
            arg("stride", stride)?,
            pad_off.into(),
        )?;
        // SAFETY: the caller's contract on `out`.
        unsafe { write_desc(out, op.into()) }
    })
}

/// kornia `blur_pool2d(x, kernel_size, stride)`: binomial `kernel_size` (1..=7), zero padding
/// ⌊(F−1)/2⌋ before and ⌊F/2⌋ after.
///
/// # Safety
/// `out` is NULL (an error) or points to a writable `blurpool_op_desc`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_preset_kornia_blur_pool2d(
    kernel_size: i32,
    stride: i32,
    out: *mut blurpool_op_desc,
) -> blurpool_status {
    guard(|| {
        let op =
            presets::kornia::blur_pool2d(arg("kernel_size", kernel_size)?, arg("stride", stride)?)?;
        // SAFETY: the caller's contract on `out`.
        unsafe { write_desc(out, op.into()) }
    })
}

/// kornia `max_blur_pool2d(x, kernel_size, stride, max_pool_size)` (kornia's default
/// `max_pool_size` is 2; its `ceil_mode` has no effect).
///
/// # Safety
/// `out` is NULL (an error) or points to a writable `blurpool_op_desc`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_preset_kornia_max_blur_pool2d(
    kernel_size: i32,
    stride: i32,
    max_pool_size: i32,
    out: *mut blurpool_op_desc,
) -> blurpool_status {
    guard(|| {
        let op = presets::kornia::max_blur_pool2d(
            arg("kernel_size", kernel_size)?,
            arg("stride", stride)?,
            arg("max_pool_size", max_pool_size)?,
        )?;
        // SAFETY: the caller's contract on `out`.
        unsafe { write_desc(out, op.into()) }
    })
}

/// timm `BlurPool2d(channels, filt_size, stride, pad_mode)`: binomial `filt_size` (default 3),
/// symmetric padding ⌊((s−1)+(F−1))/2⌋; `pad_mode` REFLECT (timm's default) or ZERO
/// ('constant').
///
/// # Safety
/// `out` is NULL (an error) or points to a writable `blurpool_op_desc`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_preset_timm_blur_pool2d(
    filt_size: i32,
    stride: i32,
    pad_mode: i32,
    out: *mut blurpool_op_desc,
) -> blurpool_status {
    guard(|| {
        let op = presets::timm::blur_pool2d(
            arg("filt_size", filt_size)?,
            arg("stride", stride)?,
            desc::pad_mode(pad_mode)?,
        )?;
        // SAFETY: the caller's contract on `out`.
        unsafe { write_desc(out, op.into()) }
    })
}

/// composer `blur_2d(x, stride, filter)`: zero padding ⌊F/2⌋ per side. With both tap pointers
/// NULL (and lengths 0) the filter is composer's default [1,2,1]⊗[1,2,1]/16; otherwise the
/// given odd-length taps are used as given (not normalised).
///
/// # Safety
/// `out` is NULL (an error) or points to a writable `blurpool_op_desc`; each tap pointer is
/// NULL or points to its length of readable doubles.
#[no_mangle]
pub unsafe extern "C" fn blurpool_preset_composer_blur_2d(
    stride_y: i32,
    stride_x: i32,
    taps_y: *const f64,
    taps_y_len: i32,
    taps_x: *const f64,
    taps_x_len: i32,
    out: *mut blurpool_op_desc,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on the tap pointers.
        let taps = unsafe { composer_taps(taps_y, taps_y_len, taps_x, taps_x_len) }?;
        let op = presets::composer::blur_2d(
            (arg("stride_y", stride_y)?, arg("stride_x", stride_x)?),
            taps,
        )?;
        // SAFETY: the caller's contract on `out`.
        unsafe { write_desc(out, op.into()) }
    })
}

/// composer `blurmax_pool2d(x, kernel_size, stride, padding, filter)`: dense max (window
/// `kernel_*`, −∞ padding `pad_*`), then `blur_2d` with the stride. Taps as in
/// `blurpool_preset_composer_blur_2d`.
///
/// # Safety
/// As `blurpool_preset_composer_blur_2d`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn blurpool_preset_composer_blurmax_pool2d(
    kernel_y: i32,
    kernel_x: i32,
    stride_y: i32,
    stride_x: i32,
    pad_y: i32,
    pad_x: i32,
    taps_y: *const f64,
    taps_y_len: i32,
    taps_x: *const f64,
    taps_x_len: i32,
    out: *mut blurpool_op_desc,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on the tap pointers.
        let taps = unsafe { composer_taps(taps_y, taps_y_len, taps_x, taps_x_len) }?;
        let op = presets::composer::blurmax_pool2d(
            (arg("kernel_y", kernel_y)?, arg("kernel_x", kernel_x)?),
            (arg("stride_y", stride_y)?, arg("stride_x", stride_x)?),
            (arg("pad_y", pad_y)?, arg("pad_x", pad_x)?),
            taps,
        )?;
        // SAFETY: the caller's contract on `out`.
        unsafe { write_desc(out, op.into()) }
    })
}

/// A non-negative integer argument.
fn arg(what: &str, v: i32) -> CResult<usize> {
    usize::try_from(v).map_err(|_| Failure::invalid(format!("{what} is {v}; it must be ≥ 0")))
}

/// Composer's optional custom taps: both NULL → default, else both given.
///
/// # Safety
/// Each pointer is NULL or points to its length of readable doubles.
unsafe fn composer_taps<'a>(
    ty: *const f64,
    ny: i32,
    tx: *const f64,
    nx: i32,
) -> CResult<Option<presets::composer::Taps<'a>>> {
    if ty.is_null() && tx.is_null() && ny == 0 && nx == 0 {
        return Ok(None);
    }
    let mut out: [&[f64]; 2] = [&[], &[]];
    for (slot, (p, n, what)) in out.iter_mut().zip([(ty, ny, "taps_y"), (tx, nx, "taps_x")]) {
        let n = arg(&format!("{what}_len"), n)?;
        if p.is_null() || n == 0 || n > BLURPOOL_MAX_TAPS {
            return Err(Failure::invalid(format!(
                "{what}: custom taps need both pointers non-NULL with 1..={BLURPOOL_MAX_TAPS} taps each \
                 (or both NULL with length 0 for composer's default filter)"
            )));
        }
        // SAFETY: non-null, n ≤ 16 doubles, readable by the caller's contract.
        *slot = unsafe { std::slice::from_raw_parts(p, n) };
    }
    Ok(Some((out[0], out[1])))
}

// ---------------------------------------------------------------------------------------------
// Shapes and forwards.

/// Writes the output shape (N, C, H, W) of the operator for the input shape `in_shape`
/// (N, C, H, W; logical, whatever the layout) into `out_shape`, or returns why there is none
/// (e.g. reflect padding larger than the map, channels not matching the convolution).
///
/// # Safety
/// `desc` points to a readable descriptor, `in_shape` to 4 readable and `out_shape` to 4
/// writable `int64_t` (any of them NULL is an error).
#[no_mangle]
pub unsafe extern "C" fn blurpool_output_shape(
    desc: *const blurpool_op_desc,
    in_shape: *const i64,
    out_shape: *mut i64,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc` and `in_shape`.
        let d = unsafe { read_desc(desc) }?;
        let input = desc::shape(unsafe { read_shape("in_shape", in_shape) }?)?;
        let out = desc::to_operator(&d)?.output_shape(input)?;
        if out_shape.is_null() {
            return Err(Failure::invalid("out_shape is NULL"));
        }
        let arr = desc::shape_array(out)?;
        // SAFETY: non-null, and the caller promises 4 writable int64 values.
        unsafe { out_shape.cast::<[i64; 4]>().write_unaligned(arr) };
        Ok(())
    })
}

/// Runs the operator on the GPU: one fused kernel, queued on `stream`, reading `x` and writing
/// `y` (and reading `weight`/`bias` for the conv operators; pass 0 otherwise, and `bias` = 0
/// when `conv_has_bias` is 0). Returns as soon as the kernel is queued.
///
/// * `dtype` (`blurpool_dtype`) is the element type of x, weight, bias and y; `layout`
///   (`blurpool_layout`) that of x and y, which are dense and contiguous. Weights are
///   Cout×(Cin/groups)×kh×kw contiguous (PyTorch's conv weight layout), bias Cout.
/// * `in_shape` is the logical N, C, H, W of x; y must hold `blurpool_output_shape` elements.
/// * `stream` is any stream of device `device_ordinal`'s primary context (the one the CUDA
///   runtime and PyTorch use); NULL is the legacy default stream. The kernel is ordered after
///   the work already queued on it, and work queued after this call sees its result.
/// * Never frees or retains caller memory, and allocates only for the dense tensor-core
///   ConvBlurPool2d kernel, which packs its weights into a stream-ordered allocation on every
///   call (`blurpool_forward_packed` avoids that); the first call per device loads the
///   kernel module (the build's fatbin, or NVRTC) and keeps it for the life of the process.
///   The thread's current CUDA context is the same on return as on entry.
/// * An empty batch (N = 0) returns OK without touching CUDA.
///
/// Fails cleanly without a GPU: BLURPOOL_STATUS_NO_DRIVER when libcuda is absent,
/// BLURPOOL_STATUS_NO_DEVICE for a bad ordinal.
///
/// # Safety
/// `desc` and `in_shape` as in `blurpool_output_shape`. x (and weight, bias) must be device
/// memory of that context holding the elements the shapes say, y the output's, and all must
/// stay valid until the kernel has run on `stream`; y must not overlap the inputs. Device
/// pointers cannot be checked beyond being non-zero.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn blurpool_forward(
    desc: *const blurpool_op_desc,
    dtype: i32,
    layout: i32,
    in_shape: *const i64,
    x: blurpool_deviceptr,
    weight: blurpool_deviceptr,
    bias: blurpool_deviceptr,
    y: blurpool_deviceptr,
    stream: blurpool_stream,
    device_ordinal: i32,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc` and `in_shape`.
        let (op, dtype, layout, input, output) = unsafe { prepare(desc, dtype, layout, in_shape) }?;
        if output.numel()? == 0 {
            return Ok(());
        }
        check_non_null(&[("x", x), ("y", y)])?;
        if let Some(conv) = op.conv() {
            if weight == 0 {
                return Err(Failure::buffer(
                    "weight is a null device pointer (the operator has a convolution)",
                ));
            }
            check_bias_given(conv, bias)?;
        }
        let ptrs = ForwardPtrs { x, weight, bias, y };
        let queue = |launch: &Launch<'_>| {
            // SAFETY: the caller guarantees the device buffers (this function's contract);
            // their element counts match the shapes validated above.
            unsafe { op.forward_raw(launch, dtype, input, ptrs) }?;
            Ok(())
        };
        // SAFETY: the caller's contract on `stream`.
        unsafe { with_launch(device_ordinal, stream, layout, queue) }
    })
}

/// The ConvBlurPool2d of a descriptor, for the packed-weight calls.
fn conv_blur_pool(op: &Operator) -> CResult<&blurpool_core::ConvBlurPool2d> {
    match op {
        Operator::ConvBlurPool(o) => Ok(o),
        _ => Err(Failure::invalid(
            "packed weights exist only for conv_blur_pool descriptors",
        )),
    }
}

/// Writes into `len` the number of elements (of `dtype`) of packed weights that
/// `blurpool_forward_packed` reads for this operator, dtype, layout and input shape on device
/// `device_ordinal`, or 0 when the kernel it runs there reads the plain weights (then call
/// `blurpool_forward`). Only the dense tensor-core ConvBlurPool2d kernel (3×3 conv, half types,
/// sm_80 and newer) reads packed weights; for it `blurpool_forward` packs the weights into a
/// stream-ordered allocation on every call, which the packed calls avoid. The length depends
/// only on the channel counts, so one packed buffer serves every input shape with a non-zero
/// length.
///
/// # Safety
/// `desc` and `in_shape` as in `blurpool_output_shape`; `len` points to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_packed_weight_len(
    desc: *const blurpool_op_desc,
    dtype: i32,
    layout: i32,
    in_shape: *const i64,
    device_ordinal: i32,
    len: *mut u64,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc` and `in_shape`.
        let (op, dtype, layout, input, _) = unsafe { prepare(desc, dtype, layout, in_shape) }?;
        if len.is_null() {
            return Err(Failure::invalid("len is NULL"));
        }
        let n = match &op {
            Operator::ConvBlurPool(o) => {
                let kernels = kernels_for(device_ordinal)?;
                let plan = o.plan(input, kernels.target(dtype, layout))?;
                plan.weight_pack().map_or(0, |p| p.len())
            }
            _ => 0,
        };
        // SAFETY: non-null, and the caller promises a writable uint64_t.
        unsafe { len.write_unaligned(n as u64) };
        Ok(())
    })
}

/// Queues on `stream` the packing of the ConvBlurPool2d weights `weight` (Cout×Cin×3×3) into
/// `packed`, a 16-byte aligned device buffer of `blurpool_packed_weight_len` elements of
/// `dtype`, for `blurpool_forward_packed`. Re-pack after changing the weights.
/// BLURPOOL_STATUS_INVALID_ARGUMENT when that length is 0 (the kernel reads the plain weights).
///
/// # Safety
/// `desc` and `in_shape` as in `blurpool_output_shape`; `weight` and `packed` device memory of
/// device `device_ordinal`'s primary context holding those elements, valid until the kernel has
/// run on `stream`, not overlapping; `stream` as in `blurpool_forward`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn blurpool_pack_weights(
    desc: *const blurpool_op_desc,
    dtype: i32,
    layout: i32,
    in_shape: *const i64,
    weight: blurpool_deviceptr,
    packed: blurpool_deviceptr,
    stream: blurpool_stream,
    device_ordinal: i32,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc` and `in_shape`.
        let (op, dtype, layout, input, _) = unsafe { prepare(desc, dtype, layout, in_shape) }?;
        let op = conv_blur_pool(&op)?;
        check_non_null(&[("weight", weight), ("packed", packed)])?;
        let queue = |launch: &Launch<'_>| {
            // SAFETY: the caller guarantees both device buffers (this function's
            // contract); the core checks the alignment and that the plan reads packed
            // weights.
            unsafe { op.pack_weights_raw(launch, dtype, input, weight, packed) }?;
            Ok(())
        };
        // SAFETY: the caller's contract on `stream`.
        unsafe { with_launch(device_ordinal, stream, layout, queue) }
    })
}

/// `blurpool_forward` for ConvBlurPool2d reading `packed` (filled by `blurpool_pack_weights`)
/// in place of the weights: one kernel, and no allocation. The same conventions and failures
/// as `blurpool_forward`, plus BLURPOOL_STATUS_INVALID_ARGUMENT when the kernel for this case
/// reads the plain weights (`blurpool_packed_weight_len` is 0) and BLURPOOL_STATUS_BUFFER when
/// `packed` is not 16-byte aligned.
///
/// # Safety
/// As `blurpool_forward`, with `packed` holding `blurpool_packed_weight_len` packed elements.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn blurpool_forward_packed(
    desc: *const blurpool_op_desc,
    dtype: i32,
    layout: i32,
    in_shape: *const i64,
    x: blurpool_deviceptr,
    packed: blurpool_deviceptr,
    bias: blurpool_deviceptr,
    y: blurpool_deviceptr,
    stream: blurpool_stream,
    device_ordinal: i32,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc` and `in_shape`.
        let (op, dtype, layout, input, output) = unsafe { prepare(desc, dtype, layout, in_shape) }?;
        let op = conv_blur_pool(&op)?;
        if output.numel()? == 0 {
            return Ok(());
        }
        check_non_null(&[("x", x), ("packed", packed), ("y", y)])?;
        check_bias_given(op.conv(), bias)?;
        let ptrs = ForwardPtrs {
            x,
            weight: packed,
            bias,
            y,
        };
        let queue = |launch: &Launch<'_>| {
            // SAFETY: the caller guarantees the device buffers (this function's contract);
            // their element counts match the shapes validated above.
            unsafe { op.forward_packed_raw(launch, dtype, input, ptrs) }?;
            Ok(())
        };
        // SAFETY: the caller's contract on `stream`.
        unsafe { with_launch(device_ordinal, stream, layout, queue) }
    })
}

/// Writes into `len` the number of f32 elements of device workspace `blurpool_backward` needs
/// for this operator and input shape: N × Cout × the conv map for ConvBlurPool2d, 0 for the
/// pooling operators (which need none).
///
/// # Safety
/// `desc` and `in_shape` as in `blurpool_output_shape`; `len` points to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn blurpool_backward_workspace_len(
    desc: *const blurpool_op_desc,
    in_shape: *const i64,
    len: *mut u64,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc` and `in_shape`.
        let d = unsafe { read_desc(desc) }?;
        let input = desc::shape(unsafe { read_shape("in_shape", in_shape) }?)?;
        // The workspace does not depend on dtype and layout; any target gives the same length.
        let target = blurpool_core::cuda::Target::new(DType::F32, Layout::Nchw);
        let plan = desc::to_operator(&d)?.backward_plan(input, target)?;
        if len.is_null() {
            return Err(Failure::invalid("len is NULL"));
        }
        // SAFETY: non-null, and the caller promises a writable uint64_t.
        unsafe { len.write_unaligned(plan.workspace_len() as u64) };
        Ok(())
    })
}

/// Gradients on the GPU, queued on `stream`: dx from dy (and x), and for ConvBlurPool2d also
/// dweight and dbias (when `conv_has_bias`), using an f32 `workspace` of
/// `blurpool_backward_workspace_len` elements (0 for the pooling operators). Deterministic:
/// every kernel is a gather with a fixed summation order, so repeated calls give bitwise
/// identical gradients in every pad mode. dx, dweight and dbias are overwritten.
///
/// Same conventions as `blurpool_forward`: x, dy and dx in `layout`; weight and dweight
/// Cout×(Cin/groups)×kh×kw; bias and dbias Cout; pointers 0 where the operator has no such
/// buffer (x is needed by every operator but BlurPool2d). BlurConv2d has no GPU backward yet
/// (BLURPOOL_STATUS_INVALID_ARGUMENT, with the reason in `blurpool_last_error`).
///
/// # Safety
/// As `blurpool_forward`, for every buffer named here: device memory of that context holding
/// the elements the shapes say (the workspace: f32), valid until the kernels have run on
/// `stream`; the outputs must not overlap the inputs or each other.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn blurpool_backward(
    desc: *const blurpool_op_desc,
    dtype: i32,
    layout: i32,
    in_shape: *const i64,
    x: blurpool_deviceptr,
    weight: blurpool_deviceptr,
    bias: blurpool_deviceptr,
    dy: blurpool_deviceptr,
    dx: blurpool_deviceptr,
    dweight: blurpool_deviceptr,
    dbias: blurpool_deviceptr,
    workspace: blurpool_deviceptr,
    stream: blurpool_stream,
    device_ordinal: i32,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc` and `in_shape`.
        let (op, dtype, layout, input, _) = unsafe { prepare(desc, dtype, layout, in_shape) }?;
        let plan = op.backward_plan(input, blurpool_core::cuda::Target::new(dtype, layout))?;
        if input.numel()? == 0 {
            return Ok(());
        }
        let ptrs = GradPtrs {
            x,
            weight,
            bias,
            dy,
            dx,
            dweight,
            dbias,
            workspace,
        };
        // Every buffer a step of the plan uses must be given.
        for step in plan.steps() {
            for buf in step.inputs().into_iter().flatten().chain([step.output()]) {
                if ptrs.get(buf) == 0 {
                    return Err(Failure::buffer(format!(
                        "{} is a null device pointer, and this operator's backward needs it",
                        buf.name()
                    )));
                }
            }
        }
        if let Some(conv) = op.conv() {
            if conv.has_bias() != (bias != 0) || conv.has_bias() != (dbias != 0) {
                return Err(Failure::buffer(
                    "bias and dbias must be given exactly when conv_has_bias is set",
                ));
            }
        }
        let queue = |launch: &Launch<'_>| {
            // SAFETY: the caller guarantees the device buffers (this function's contract);
            // every pointer the plan uses was checked non-zero above.
            unsafe { op.backward_raw(launch, dtype, input, &ptrs) }?;
            Ok(())
        };
        // SAFETY: the caller's contract on `stream`.
        unsafe { with_launch(device_ordinal, stream, layout, queue) }
    })
}

/// The CPU reference (f64 accumulation, one rounding per output; the oracle of the kernels) on
/// host buffers, with the same descriptor, dtype and layout conventions as `blurpool_forward`.
/// Lengths are in elements and are checked against the shapes. Half types are raw `uint16_t`
/// bits. `weight`/`bias` are ignored for operators without a convolution; for the conv
/// operators pass `bias` = NULL with `bias_len` = 0 when `conv_has_bias` is 0.
///
/// # Safety
/// `desc` and `in_shape` as in `blurpool_output_shape`; each data pointer is NULL (an error
/// unless its length is 0) or points to its length of elements, readable (writable for y),
/// with y not written by anyone else during the call. Null, misaligned, overlapping and
/// wrong-length buffers are reported as BLURPOOL_STATUS_BUFFER.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn blurpool_reference_forward(
    desc: *const blurpool_op_desc,
    dtype: i32,
    layout: i32,
    in_shape: *const i64,
    x: *const c_void,
    x_len: usize,
    weight: *const c_void,
    weight_len: usize,
    bias: *const c_void,
    bias_len: usize,
    y: *mut c_void,
    y_len: usize,
) -> blurpool_status {
    guard(|| {
        // SAFETY: the caller's contract on `desc` and `in_shape`.
        let (op, dtype, layout, input, _) = unsafe { prepare(desc, dtype, layout, in_shape) }?;
        let (x, w, b, y) = (
            (x, x_len),
            (weight, weight_len),
            (bias, bias_len),
            (y, y_len),
        );
        // SAFETY: the caller's contract on the host buffers (this function's).
        unsafe {
            match dtype {
                DType::F32 => reference_typed::<f32>(&op, input, layout, x, w, b, y),
                DType::F16 => reference_typed::<f16>(&op, input, layout, x, w, b, y),
                DType::BF16 => reference_typed::<bf16>(&op, input, layout, x, w, b, y),
            }
        }
    })
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
