//! Compiles every kernel in ../kernels for sm_90a (the library's arch 90 image: build/nvcc.rs
//! sass_target; the same code as sm_90 plus the wgmma kernel's) with line tables (`-lineinfo`, which does not
//! change the code), one cubin per .cu, plus the gates' serialised variant of the pooling family
//! (BP_GATE_VARIANT=1), for the model's SASS reader. Same nvcc search as the library's build
//! (build/nvcc.rs). Without nvcc the tool still builds; its SASS-based figures then say why
//! they are missing.

#[path = "../build/nvcc.rs"]
#[allow(dead_code)]
mod nvcc;

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let kernels = manifest.join("../kernels");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    println!("cargo::rerun-if-changed={}", kernels.display());
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../build/nvcc.rs");
    for var in ["NVCC", "CUDA_HOME", "CUDA_PATH", "PATH", "NVCC_CCBIN"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!(
        "cargo::rustc-env=BLURPOOL_MODEL_MARKS={}",
        mark_lines(&kernels).join(";")
    );
    let Some(nvcc) = nvcc::find_nvcc() else {
        println!(
            "cargo:warning=blurpool-model: no nvcc, so no sm_90 cubins: the model will report no \
             SASS figures (install one with scripts/install-nvcc.sh and set NVCC)"
        );
        println!("cargo::rustc-env=BLURPOOL_MODEL_CUBINS=");
        return;
    };
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&kernels)
        .expect("kernels/ next to model/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    // (source, output, extra defines)
    let mut jobs: Vec<(PathBuf, PathBuf, Vec<String>)> = sources
        .iter()
        .map(|s| {
            let stem = s.file_stem().unwrap().to_string_lossy().into_owned();
            (
                s.clone(),
                out.join(format!("{stem}.sm_90.cubin")),
                Vec::new(),
            )
        })
        .collect();
    jobs.push((
        kernels.join("pool_forward.cu"),
        out.join("gate_serialised.sm_90.cubin"),
        vec!["-DBP_GATE_VARIANT=1".into()],
    ));
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(src, dst, defs)| scope.spawn(|| compile(&nvcc.path, &kernels, src, dst, defs)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        if let Err(e) = r {
            panic!("blurpool-model: {e}");
        }
    }
    let list: Vec<String> = jobs
        .iter()
        .map(|(_, dst, _)| dst.to_string_lossy().into_owned())
        .collect();
    println!("cargo::rustc-env=BLURPOOL_MODEL_CUBINS={}", list.join(";"));
}

/// Every `bp_mark();` of the kernel sources (code, not comments) as `file:line`: the SASS
/// reader counts a block of such a line as often as the trace's marks there, and never when
/// the trace has none (a case no lane took).
fn mark_lines(kernels: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(kernels)
        .expect("kernels/ next to model/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu" || e == "cuh"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).expect("a kernel source");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("bp_mark();") {
                out.push(format!("{name}:{}", i + 1));
            }
        }
    }
    out
}

fn compile(
    nvcc: &Path,
    include: &Path,
    src: &Path,
    dst: &Path,
    defines: &[String],
) -> Result<(), String> {
    let mut cmd = Command::new(nvcc);
    cmd.args(["-cubin", "-O3", "-std=c++17", "-lineinfo", "-arch=sm_90a"]);
    if let Some(ccbin) = nvcc::env_nonempty("NVCC_CCBIN") {
        cmd.arg("-ccbin").arg(ccbin);
    }
    cmd.args(defines)
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(dst)
        .arg(src);
    let out = cmd
        .output()
        .map_err(|e| format!("could not run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
