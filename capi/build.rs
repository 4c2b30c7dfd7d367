//! Generates the C header from `src/` with cbindgen into `$OUT_DIR/blurpool.h`.
//!
//! The checked-in copy is `include/blurpool.h`; `tests/header_current.rs` fails when it differs
//! from this output (build scripts must not write into the source tree). Regenerate it with
//! `BLURPOOL_UPDATE_HEADER=1 cargo test -p blurpool-capi --test header_current`.

use std::env;
use std::path::PathBuf;

/// The files cbindgen reads (everything `extern "C"` or `#[repr(C)]` lives in these).
const SOURCES: &[&str] = &["src/lib.rs", "src/types.rs"];

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("blurpool.h");
    println!("cargo::rerun-if-changed=cbindgen.toml");
    println!("cargo::rerun-if-changed=build.rs");
    for src in SOURCES {
        println!("cargo::rerun-if-changed={src}");
    }

    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("capi/cbindgen.toml: {e}"));
    // Parse the given files only (with_src), so no `cargo metadata` runs inside the build.
    let mut builder = cbindgen::Builder::new().with_config(config);
    for src in SOURCES {
        builder = builder.with_src(dir.join(src));
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate blurpool.h: {e}"));
    bindings.write_to_file(&out);
}
