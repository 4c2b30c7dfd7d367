//! Runs blurpool's CUDA kernels on the host CPU, for tests on machines without a GPU.
//!
//! `build.rs` compiles every `kernels/*.cu` as C++ with `BP_HOST_EMULATION` defined (see
//! `cpp/emu.h`): each CUDA thread becomes a coroutine, a block's threads are interleaved at
//! `__syncthreads()` (a barrier that not every thread reaches is reported as an error), and
//! blocks run one after another. This checks the kernels' index arithmetic, padding, tails and
//! barrier discipline on any machine; it proves nothing about speed, or about ordering between
//! blocks. Warp-synchronous code is limited to explicit warp collectives (the tensor-core
//! `mma.sync`, emulated from the PTX fragment layout), which every lane of a warp must reach.
//!
//! The caller passes the same parameter block and grid the GPU launch layer would use, and host
//! buffers in place of device pointers.

use std::ffi::{c_char, c_void, CStr, CString};

extern "C" {
    fn bp_emu_kernel_count() -> usize;
    fn bp_emu_kernel_name(i: usize) -> *const c_char;
    #[allow(clippy::too_many_arguments)]
    fn bp_emu_launch(
        name: *const c_char,
        grid: u32,
        block: u32,
        params: *const c_void,
        a: *const c_void,
        b: *const c_void,
        c: *const c_void,
        d: *const c_void,
        out: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
}

/// The symbol names of every kernel entry point, sorted (the same names the fatbin exports).
pub fn kernel_names() -> Vec<String> {
    // SAFETY: the registry is filled by static constructors before main and never changes;
    // each returned pointer is a NUL-terminated string owned by it.
    unsafe {
        (0..bp_emu_kernel_count())
            .map(|i| {
                CStr::from_ptr(bp_emu_kernel_name(i))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

/// Runs kernel `name` over `grid` blocks of `block` threads.
///
/// # Safety
/// `params` must point to the kernel's parameter block (`BpParams`), and `a`, `b`, `c`, `d`, `out`
/// to host memory holding at least the elements of the kernel's element type that the
/// parameters describe (or be null where the kernel does not read them); `out` must not alias
/// the inputs.
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch(
    name: &str,
    grid: u32,
    block: u32,
    params: *const c_void,
    a: *const c_void,
    b: *const c_void,
    c: *const c_void,
    d: *const c_void,
    out: *mut c_void,
) -> Result<(), String> {
    let cname = CString::new(name).map_err(|_| format!("bad kernel name {name:?}"))?;
    let mut err = vec![0 as c_char; 512];
    // SAFETY: the pointer contract is the caller's (above); `cname` and `err` outlive the call
    // and `err`'s length is passed.
    let rc = unsafe {
        bp_emu_launch(
            cname.as_ptr(),
            grid,
            block,
            params,
            a,
            b,
            c,
            d,
            out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // SAFETY: the emulator wrote a NUL-terminated message into `err` (snprintf).
        Err(unsafe { CStr::from_ptr(err.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }
}
