//! Build script: compiles every CUDA kernel in `kernels/` ahead of time into one fatbin, and
//! tells the library which specialised kernels the sources instantiate.
//!
//! * With nvcc: `$OUT_DIR/blurpool.fatbin` holds SASS for each requested arch plus one PTX for
//!   the lowest (so newer GPUs can JIT it). ptxas' resource report is saved and summarised, and
//!   the build fails if any kernel spills registers or has a stack frame.
//! * Without nvcc (or on docs.rs): the build still succeeds (unless BLURPOOL_REQUIRE_NVCC=1);
//!   the library compiles the embedded kernel sources at run time with NVRTC instead.
//! * Without the `cuda` feature: nothing CUDA is built.
//!
//! The work lives in `build/` (nvcc, ptxas report, sources), plain std files that
//! tests/build_support.rs unit-tests too.

#[path = "build/nvcc.rs"]
mod nvcc;
#[path = "build/ptxas.rs"]
mod ptxas;
#[path = "build/sources.rs"]
mod sources;

use std::env;
use std::fs;
use std::path::PathBuf;

/// Environment variables that change what this script does.
const ENV_TRIGGERS: &[&str] = &[
    "NVCC",
    "CUDA_HOME",
    "CUDA_PATH",
    "PATH",
    "BLURPOOL_CUDA_ARCHS",
    "CUDA_COMPUTE_CAP",
    "BLURPOOL_REQUIRE_NVCC",
    "BLURPOOL_PTXAS_REPORT",
    "NVCC_CCBIN",
    // nvcc reads these two itself; they change its output, so they must trigger a rebuild.
    "NVCC_PREPEND_FLAGS",
    "NVCC_APPEND_FLAGS",
    "DOCS_RS",
];

fn main() {
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-changed=build");
    println!("cargo::rerun-if-changed=build.rs");
    for var in ENV_TRIGGERS {
        println!("cargo::rerun-if-env-changed={var}");
    }
    // Set when nvcc built the fatbin (tests that read its ptxas report need one).
    println!("cargo::rustc-check-cfg=cfg(blurpool_nvcc)");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return; // the CPU-only library: no kernels to build or embed
    }
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let kernels_dir = manifest_dir.join("kernels");
    let (headers, cu) = sources::list_kernel_files(&kernels_dir);

    let mut specialisations = Vec::new();
    for file in &cu {
        let text = fs::read_to_string(file).expect("reading a kernel source");
        specialisations.extend(
            sources::scan_specialisations(sources::file_name(file), &text)
                .unwrap_or_else(|e| panic!("blurpool: {e}")),
        );
    }
    fs::write(
        out_dir.join("specialisations.rs"),
        sources::specialisations_rs(&specialisations),
    )
    .expect("writing specialisations.rs");

    let nvcc = if env::var_os("DOCS_RS").is_some() {
        println!(
            "cargo:warning=blurpool: DOCS_RS is set, so the CUDA kernels were not compiled ahead \
             of time; they will be compiled at run time with NVRTC"
        );
        None
    } else {
        let found = nvcc::find_nvcc();
        if found.is_none() {
            nvcc::no_nvcc();
        }
        found
    };
    let Some(nvcc) = nvcc else {
        // Don't leave artefacts of an earlier nvcc build around to confuse anyone.
        for stale in [
            "blurpool_all.cu",
            "blurpool.fatbin",
            "ptxas.txt",
            "ptxas_summary.txt",
        ] {
            let _ = fs::remove_file(out_dir.join(stale));
        }
        let rs = sources::kernels_rs(None, &headers, &cu);
        fs::write(out_dir.join("kernels.rs"), rs).expect("writing kernels.rs");
        return;
    };

    let fatbin = nvcc::compile_fatbin(&nvcc, &kernels_dir, &cu, &out_dir);
    println!("cargo::rustc-cfg=blurpool_nvcc");
    // ptxas -v writes to stderr; keep all of it (it also holds any compiler warnings).
    let ptxas_txt = out_dir.join("ptxas.txt");
    fs::write(&ptxas_txt, &fatbin.log).expect("writing ptxas.txt");
    nvcc::forward_compiler_warnings(&fatbin.log);
    let mut rows = ptxas::parse(&fatbin.log);
    ptxas::demangle(&mut rows);
    rows.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    let summary = ptxas::format_summary(&rows, &nvcc.release, &fatbin.archs, &ptxas_txt);
    let summary_path = out_dir.join("ptxas_summary.txt");
    fs::write(&summary_path, &summary).expect("writing ptxas_summary.txt");
    println!(
        "cargo:warning=blurpool: nvcc {} built {} for {}; ptxas report: {}",
        nvcc.release,
        ptxas::one_line(&rows),
        fatbin.archs,
        summary_path.display()
    );
    if env::var("BLURPOOL_PTXAS_REPORT").is_ok_and(|v| v == "1") {
        for line in summary.lines().filter(|l| !l.starts_with('#')) {
            println!("cargo:warning=ptxas {line}");
        }
    }
    if let Err(offenders) = ptxas::check_local_memory(&rows) {
        panic!(
            "blurpool: CUDA kernels use local memory (the build forbids spills and stack \
             frames):\n{offenders}\nReduce register pressure (smaller per-thread tiles, fewer \
             unrolled accumulators), relax __launch_bounds__, or stop taking the parameter \
             block's address. Full report: {}",
            ptxas_txt.display()
        );
    }
    let built = sources::Built {
        fatbin: &fatbin.path,
        archs: &fatbin.archs,
        nvcc_release: &nvcc.release,
        ptxas_summary: &summary_path,
    };
    fs::write(
        out_dir.join("kernels.rs"),
        sources::kernels_rs(Some(&built), &headers, &cu),
    )
    .expect("writing kernels.rs");
}
