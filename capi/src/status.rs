//! Failures, their status codes, the thread-local last-error message, and the guard every
//! `extern "C"` function runs its body in (no panic ever crosses the C boundary).

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use blurpool_core::Error;
use cudarc::driver::sys::CUresult;

use crate::types::blurpool_status::{self, *};

/// A failed call: the status to return and the message `blurpool_last_error()` will give.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: blurpool_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: blurpool_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(BLURPOOL_STATUS_INVALID_ARGUMENT, message)
    }

    pub fn buffer(message: impl Into<String>) -> Self {
        Failure::new(BLURPOOL_STATUS_BUFFER, message)
    }
}

pub(crate) type CResult<T> = Result<T, Failure>;

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::BufferLength { .. } | Error::Misaligned { .. } => BLURPOOL_STATUS_BUFFER,
            Error::NoCudaDriver => BLURPOOL_STATUS_NO_DRIVER,
            Error::ContextMismatch => BLURPOOL_STATUS_CONTEXT_MISMATCH,
            Error::KernelLoad { .. } => BLURPOOL_STATUS_KERNEL_LOAD,
            Error::Nvrtc(_) => BLURPOOL_STATUS_NVRTC,
            Error::Cuda(d) => driver_status(d),
            // Every other variant is about the configuration, the shapes or the arguments.
            _ => BLURPOOL_STATUS_INVALID_ARGUMENT,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

impl From<cudarc::driver::DriverError> for Failure {
    fn from(e: cudarc::driver::DriverError) -> Self {
        Failure {
            status: driver_status(&e),
            message: format!("CUDA driver error: {e}"),
        }
    }
}

fn driver_status(e: &cudarc::driver::DriverError) -> blurpool_status {
    match e.0 {
        CUresult::CUDA_ERROR_NO_DEVICE | CUresult::CUDA_ERROR_INVALID_DEVICE => {
            BLURPOOL_STATUS_NO_DEVICE
        }
        _ => BLURPOOL_STATUS_CUDA,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // Interior NULs cannot be represented in a C string; they never occur in our messages, but
    // replace them rather than lose the message.
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = c);
}

/// The current thread's last message (empty after a success). The pointer stays valid until the
/// next blurpool call on this thread that sets a message (every call except this one and the
/// constant getters).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}

/// Runs `body`, turns its result (or a panic) into a status, and records the message.
pub(crate) fn guard(body: impl FnOnce() -> CResult<()>) -> blurpool_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            BLURPOOL_STATUS_OK
        }
        Ok(Err(f)) => {
            set_last_error(&f.message);
            f.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            set_last_error(&format!(
                "internal error in blurpool (please report): {what}"
            ));
            BLURPOOL_STATUS_INTERNAL
        }
    }
}

/// Status code name, e.g. "BLURPOOL_STATUS_BUFFER".
pub(crate) fn status_name(code: i32) -> &'static std::ffi::CStr {
    match code {
        0 => c"BLURPOOL_STATUS_OK",
        1 => c"BLURPOOL_STATUS_INVALID_ARGUMENT",
        2 => c"BLURPOOL_STATUS_BUFFER",
        3 => c"BLURPOOL_STATUS_NO_DRIVER",
        4 => c"BLURPOOL_STATUS_NO_DEVICE",
        5 => c"BLURPOOL_STATUS_CUDA",
        6 => c"BLURPOOL_STATUS_NVRTC",
        7 => c"BLURPOOL_STATUS_KERNEL_LOAD",
        8 => c"BLURPOOL_STATUS_CONTEXT_MISMATCH",
        9 => c"BLURPOOL_STATUS_INTERNAL",
        _ => c"BLURPOOL_STATUS_UNKNOWN",
    }
}
