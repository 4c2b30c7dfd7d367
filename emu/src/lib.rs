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
    fn bp_emu_set_warp_split(on: i32);
    fn bp_emu_kernel_count() -> usize;
    fn bp_emu_kernel_name(i: usize) -> *const c_char;
    #[allow(clippy::too_many_arguments)]
    fn bp_emu_launch(
        name: *const c_char,
        grid: u32,
        block: u32,
        shared_bytes: u32,
        params: *const c_void,
        a: *const c_void,
        b: *const c_void,
        c: *const c_void,
        d: *const c_void,
        out: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    #[allow(clippy::too_many_arguments)]
    fn bp_emu_launch_traced(
        name: *const c_char,
        grid: u32,
        block: u32,
        shared_bytes: u32,
        params: *const c_void,
        a: *const c_void,
        b: *const c_void,
        c: *const c_void,
        d: *const c_void,
        out: *mut c_void,
        max_iters: u32,
        redirects: *const Redirect,
        n_redirects: usize,
        on_block: extern "C" fn(*mut c_void, u32, *const TraceEvent, usize) -> i32,
        ctx: *mut c_void,
        items_total: *mut i64,
        items_sampled: *mut u64,
        warp_iterations: *mut u64,
        blocks_run: *mut u32,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
}

/// What an access (or an mma) in trace mode was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKind {
    Load,
    Store,
    /// One lane's part of a warp's `mma.sync` (no memory).
    Mma,
    /// No access: the lane took a code path that holds none (`bp_mark` in kernels/common.cuh),
    /// so that the performance model can count how often that path's machine code runs.
    Mark,
    /// One lane's part of a warpgroup's `wgmma.mma_async.m64nNk16` (operands from shared
    /// memory by descriptor): the event's `size` is N / 8, the m16n8k16 products of its warp's
    /// 16 rows, and the operands' shared-memory reads are the model's to count (model/src/cache.rs).
    Wgmma,
}

/// One recorded access, as the emulator writes it (`TraceEvent` in cpp/emu.cpp).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TraceEvent {
    /// The address the kernel used.
    pub addr: u64,
    file: *const c_char,
    /// The source line that made the access.
    pub line: u32,
    /// `threadIdx.x`.
    pub thread: u16,
    /// Bytes accessed (0 for an mma; N / 8 for a wgmma of N columns).
    pub size: u8,
    kind: u8,
}

impl TraceEvent {
    /// An event as the emulator would record it, with no file name (for tests of code that
    /// consumes traces).
    pub fn synthetic(addr: u64, line: u32, thread: u16, size: u8, kind: AccessKind) -> TraceEvent {
        TraceEvent {
            addr,
            file: std::ptr::null(),
            line,
            thread,
            size,
            kind: match kind {
                AccessKind::Load => 0,
                AccessKind::Store => 1,
                AccessKind::Mma => 2,
                AccessKind::Mark => 3,
                AccessKind::Wgmma => 4,
            },
        }
    }
    /// Load, store, mma, mark or wgmma.
    pub fn kind(&self) -> AccessKind {
        match self.kind {
            0 => AccessKind::Load,
            1 => AccessKind::Store,
            3 => AccessKind::Mark,
            4 => AccessKind::Wgmma,
            _ => AccessKind::Mma,
        }
    }
    /// The source file that made the access (its path as the compiler saw it).
    pub fn file(&self) -> &'static str {
        if self.file.is_null() {
            return "";
        }
        // SAFETY: `file` is a `__builtin_FILE()` string literal of the emulator's own code:
        // NUL-terminated and static for the life of the program.
        unsafe { CStr::from_ptr(self.file) }.to_str().unwrap_or("")
    }
    /// A stable key for the source site: the file's address and the line.
    pub fn site_key(&self) -> (usize, u32) {
        (self.file as usize, self.line)
    }
}

/// A range of addresses the kernel sees (`seen`) whose accesses land in `real` instead.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Redirect {
    pub seen: *const c_void,
    pub real: *mut c_void,
    pub len: u64,
}

/// How to sample a traced launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Work-loop iterations each thread runs at most (0: all).
    pub max_iterations: u32,
}

/// What a traced launch ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceRun {
    /// Items of the kernel's work loop (elements, tiles or reduction outputs).
    pub items_total: i64,
    /// Items the traced blocks ran.
    pub items_sampled: u64,
    /// Work-loop iterations of each warp (its lane 0's), summed over the traced warps.
    pub warp_iterations: u64,
    /// Blocks run.
    pub blocks_run: u32,
}

struct Callback<'a> {
    on_block: &'a mut dyn FnMut(u32, &[TraceEvent]) -> bool,
    panicked: bool,
}

extern "C" fn trampoline(ctx: *mut c_void, block: u32, events: *const TraceEvent, n: usize) -> i32 {
    // SAFETY: ctx is the `Callback` that launch_traced passed, alive for the whole launch;
    // `events` points at `n` initialised events that live until this call returns.
    let cb = unsafe { &mut *(ctx as *mut Callback<'_>) };
    let events = if n == 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(events, n) }
    };
    // A panic must not unwind into C++.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (cb.on_block)(block, events)
    })) {
        Ok(more) => more as i32,
        Err(_) => {
            cb.panicked = true;
            0
        }
    }
}

/// Runs kernel `name` as [`launch`] does, in trace mode: every access the kernel makes through
/// its hooks is recorded, and `on_block(block, events)` receives each block's events when it
/// finishes (every thread's in program order); blocks run from 0 until the grid ends or
/// `on_block` returns false. Accesses inside a [`Redirect`]'s `seen` range land in its `real`
/// range.
///
/// # Safety
/// As [`launch`], where the buffers the kernel's accesses land in (after redirection) must
/// hold what the parameters describe; every `real` range must be `len` bytes of writable memory.
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch_traced(
    name: &str,
    grid: u32,
    block: u32,
    shared_bytes: u32,
    params: *const c_void,
    inputs: [*const c_void; 4],
    out: *mut c_void,
    sampling: Sampling,
    redirects: &[Redirect],
    on_block: &mut dyn FnMut(u32, &[TraceEvent]) -> bool,
) -> Result<TraceRun, String> {
    let cname = CString::new(name).map_err(|_| format!("bad kernel name {name:?}"))?;
    let mut err = vec![0 as c_char; 512];
    let mut cb = Callback {
        on_block,
        panicked: false,
    };
    let mut run = TraceRun::default();
    let [a, b, c, d] = inputs;
    // SAFETY: the pointer contract is the caller's (above); `cname`, `err`, `redirects` and
    // `cb` outlive the call, and the trampoline only reads events during their callback.
    let rc = unsafe {
        bp_emu_launch_traced(
            cname.as_ptr(),
            grid,
            block,
            shared_bytes,
            params,
            a,
            b,
            c,
            d,
            out,
            sampling.max_iterations,
            redirects.as_ptr(),
            redirects.len(),
            trampoline,
            &mut cb as *mut Callback<'_> as *mut c_void,
            &mut run.items_total,
            &mut run.items_sampled,
            &mut run.warp_iterations,
            &mut run.blocks_run,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if cb.panicked {
        return Err(format!("{name}: the trace callback panicked"));
    }
    if rc == 0 {
        Ok(run)
    } else {
        // SAFETY: the emulator wrote a NUL-terminated message into `err` (snprintf).
        Err(unsafe { CStr::from_ptr(err.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }
}

/// The symbol names of every kernel entry point, sorted: the names the fatbin exports, and the
/// performance gates' deliberately broken variants as `gate_uncoalesced:<name>` and
/// `gate_serialised:<name>` (cpp/variant_*.cpp, with the `gate-variants` feature).
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

/// Runs kernel `name` over `grid` blocks of `block` threads with `shared_bytes` of dynamic
/// shared memory (as a launch's `sharedMemBytes`; 0 for a kernel that declares none): a kernel
/// that uses more than that fails the launch.
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
    shared_bytes: u32,
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
            shared_bytes,
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

/// Split mode for the calling thread's later launches: the lanes that reach an
/// `__activemask()` together are broken into smaller groups (every lane alone, odd and even
/// lanes, two runs of lanes, and the even lanes alone while the odd ones wait to meet them
/// there an iteration later, in turn), as a GPU's independent thread scheduling may run them,
/// instead of all getting one mask. Kernels whose warp shuffles must not assume convergence
/// are tested in both modes. Launches on other threads are not affected.
pub fn set_warp_split(on: bool) {
    // SAFETY: sets a flag of the calling thread's emulator state; no pointers.
    unsafe { bp_emu_set_warp_split(i32::from(on)) }
}
