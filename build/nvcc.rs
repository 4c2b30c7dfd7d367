//! Finding nvcc, choosing the SASS architectures and compiling the fatbin. Plain std so
//! build.rs and its unit tests (tests/build_support.rs) include the same file.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// SASS targets when neither `BLURPOOL_CUDA_ARCHS` nor `CUDA_COMPUTE_CAP` is set:
/// A100, RTX 30xx/A10, L4/RTX 40xx, H100/H200.
pub const DEFAULT_ARCHS: &[u32] = &[80, 86, 89, 90];

/// The variable's value, treating unset, empty and non-UTF-8 alike as "not set".
pub fn env_nonempty(var: &str) -> Option<String> {
    env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// A working nvcc: its path and the `release X.Y` it reports.
pub struct Nvcc {
    /// The executable.
    pub path: PathBuf,
    /// Its `release X.Y`.
    pub release: String,
}

/// Looks for nvcc in the documented order and returns the first one whose `--version` runs.
pub fn find_nvcc() -> Option<Nvcc> {
    // An explicit $NVCC that does not work is a configuration mistake: say so instead of
    // silently falling back to some other toolkit (or to NVRTC).
    if let Some(explicit) = env_nonempty("NVCC") {
        let path = PathBuf::from(&explicit);
        return match nvcc_release(&path) {
            Some(release) => Some(Nvcc { path, release }),
            None => panic!(
                "blurpool: NVCC={explicit:?} but `{explicit} --version` failed. Point NVCC at a \
                 working nvcc (e.g. NVCC=$(scripts/install-nvcc.sh | tail -1)) or unset it."
            ),
        };
    }
    nvcc_candidates().into_iter().find_map(|path| {
        let release = nvcc_release(&path)?;
        Some(Nvcc { path, release })
    })
}

/// Candidates after $NVCC: $CUDA_HOME, $CUDA_PATH, PATH, then the usual install location.
fn nvcc_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = env_nonempty(var) {
            candidates.push(Path::new(&root).join("bin").join("nvcc"));
        }
    }
    // A bare name makes Command search PATH.
    candidates.push(PathBuf::from("nvcc"));
    candidates.push(PathBuf::from("/usr/local/cuda/bin/nvcc"));
    candidates
}

/// Runs `nvcc --version`; None if it cannot be run. The release is "unknown" if the output
/// has no `release X.Y` (it always has one in CUDA 9 and later).
fn nvcc_release(nvcc: &Path) -> Option<String> {
    let out = Command::new(nvcc).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let release = text
        .split("release ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c == ',' || c.is_whitespace()).next())
        .filter(|r| !r.is_empty())
        .unwrap_or("unknown");
    Some(release.to_string())
}

/// No nvcc anywhere: fine for users (NVRTC at run time), an error where CI asked for nvcc.
pub fn no_nvcc() {
    let looked = "$NVCC, $CUDA_HOME/bin/nvcc, $CUDA_PATH/bin/nvcc, nvcc on PATH, \
                  /usr/local/cuda/bin/nvcc";
    if env::var("BLURPOOL_REQUIRE_NVCC").is_ok_and(|v| v == "1") {
        panic!(
            "blurpool: BLURPOOL_REQUIRE_NVCC=1 but no working nvcc was found (looked at {looked}).\n\
             Install the pinned nvcc with `scripts/install-nvcc.sh` and build with \
             NVCC=$(scripts/install-nvcc.sh | tail -1), or set NVCC / CUDA_HOME to an existing \
             CUDA toolkit, or unset BLURPOOL_REQUIRE_NVCC to fall back to run-time NVRTC."
        );
    }
    println!(
        "cargo:warning=blurpool: nvcc not found (looked at {looked}), so the CUDA kernels were not \
         compiled ahead of time; they will be compiled at run time with NVRTC (needs libnvrtc). \
         To build them now: NVCC=$(scripts/install-nvcc.sh | tail -1) cargo build, or set NVCC."
    );
}

/// SASS archs to build, sorted and deduplicated (e.g. [80, 86, 89, 90]), and where that list
/// came from (for error messages).
pub fn requested_archs() -> (Vec<u32>, String) {
    let (var, value) = match env_nonempty("BLURPOOL_CUDA_ARCHS") {
        Some(v) => ("BLURPOOL_CUDA_ARCHS", v),
        // candle and friends use CUDA_COMPUTE_CAP; honour it so one setting serves both.
        None => match env_nonempty("CUDA_COMPUTE_CAP") {
            Some(v) => ("CUDA_COMPUTE_CAP", v),
            None => {
                let origin = "the default list (set BLURPOOL_CUDA_ARCHS to change it)";
                return (DEFAULT_ARCHS.to_vec(), origin.to_string());
            }
        },
    };
    let mut archs: Vec<u32> = value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|token| {
            parse_arch(token).unwrap_or_else(|| {
                panic!(
                    "blurpool: {var}={value:?}: {token:?} is not a CUDA arch; expected a comma \
                     separated list such as `90` or `80,86,89,90` (`sm_90` and `9.0` also work)"
                )
            })
        })
        .collect();
    if archs.is_empty() {
        panic!("blurpool: {var}={value:?} names no arch; expected e.g. `90` or `80,90`");
    }
    archs.sort_unstable();
    archs.dedup();
    (archs, format!("{var}={value:?}"))
}

/// "90", "sm_90", "compute_90" or "9.0" → 90.
pub fn parse_arch(token: &str) -> Option<u32> {
    let digits = token
        .strip_prefix("sm_")
        .or_else(|| token.strip_prefix("compute_"))
        .unwrap_or(token)
        .replace('.', "");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&a| a >= 10)
}

/// Fails with the list nvcc supports if any requested arch is not in `nvcc --list-gpu-code`.
fn check_archs_supported(nvcc: &Nvcc, archs: &[u32], origin: &str) {
    let out = match Command::new(&nvcc.path).arg("--list-gpu-code").output() {
        Ok(out) if out.status.success() => out,
        // Very old nvcc lacks the flag; let the compile itself report unsupported archs.
        _ => return,
    };
    let supported: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let missing: Vec<String> = archs
        .iter()
        .map(|a| format!("sm_{a}"))
        .filter(|sm| !supported.contains(sm))
        .collect();
    if !missing.is_empty() {
        panic!(
            "blurpool: nvcc {} ({}) cannot build {}, requested by {origin}.\n\
             This nvcc supports: {}",
            nvcc.release,
            nvcc.path.display(),
            missing.join(", "),
            supported.join(", ")
        );
    }
}

/// What one nvcc run produced: the fatbin, its targets, and nvcc's stderr (ptxas' `-v`
/// report and any warnings).
pub struct Fatbin {
    /// `$OUT_DIR/blurpool.fatbin`.
    pub path: PathBuf,
    /// e.g. `sm_80,sm_86,sm_89,sm_90a+compute_80`.
    pub archs: String,
    /// nvcc's stderr.
    pub log: String,
}

/// The SASS target nvcc builds for arch `a`: `sm_90a` for 90 (H100, H200: the same machine code
/// as sm_90, plus `wgmma`, which the dense tensor-core conv's sm_90a kernel needs; it runs on
/// compute capability 9.0 only, as sm_90 SASS does), else `sm_{a}`. One image per arch, so
/// which of two the driver would pick is never a question.
pub fn sass_target(a: u32) -> String {
    if a == 90 {
        "sm_90a".to_string()
    } else {
        format!("sm_{a}")
    }
}

/// Compiles every `.cu` in `sources` into `$OUT_DIR/blurpool.fatbin` with one nvcc call (one
/// translation unit: one ptxas run and one module to load), SASS for each requested arch
/// ([`sass_target`]) plus PTX for the lowest.
pub fn compile_fatbin(
    nvcc: &Nvcc,
    kernels_dir: &Path,
    sources: &[PathBuf],
    out_dir: &Path,
) -> Fatbin {
    let (archs, origin) = requested_archs();
    check_archs_supported(nvcc, &archs, &origin);
    warn_if_ptx_too_new(&nvcc.release);

    let unit = out_dir.join("blurpool_all.cu");
    let mut text = String::from("// Generated by build.rs: every kernels/*.cu, sorted by name.\n");
    for src in sources {
        let p = src.to_str().expect("kernel paths are UTF-8");
        assert!(
            !p.contains('"') && !p.contains('\n'),
            "blurpool: unusable kernel path {p:?}"
        );
        writeln!(text, "#include \"{p}\"").unwrap();
    }
    fs::write(&unit, text).expect("writing blurpool_all.cu");

    let fatbin = out_dir.join("blurpool.fatbin");
    let mut cmd = Command::new(&nvcc.path);
    cmd.args([
        "--fatbin",
        "-O3",
        "-std=c++17",
        "-Xptxas",
        "-v",
        "--threads",
        "0",
    ]);
    if let Some(ccbin) = env_nonempty("NVCC_CCBIN") {
        cmd.arg("-ccbin").arg(ccbin);
    }
    let lowest = archs[0];
    for a in &archs {
        let sm = sass_target(*a);
        let compute = sm.replacen("sm_", "compute_", 1);
        cmd.arg("-gencode").arg(format!("arch={compute},code={sm}"));
    }
    cmd.arg("-gencode")
        .arg(format!("arch=compute_{lowest},code=compute_{lowest}"));
    cmd.arg("-I")
        .arg(kernels_dir)
        .arg("-o")
        .arg(&fatbin)
        .arg(&unit);

    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("blurpool: could not run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        panic!(
            "blurpool: nvcc failed ({}).\ncommand: {cmd:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            out.status
        );
    }
    let arch_list: Vec<String> = archs.iter().map(|&a| sass_target(a)).collect();
    Fatbin {
        path: fatbin,
        archs: format!("{}+compute_{lowest}", arch_list.join(",")),
        log: stderr,
    }
}

/// PTX from a toolkit newer than the driver cannot be JIT-compiled (the GPU machines run driver
/// 580 = CUDA 13.0); SASS is unaffected. Worth one warning, not an error.
pub fn warn_if_ptx_too_new(release: &str) {
    let mut parts = release.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version > (13, 0) {
        println!(
            "cargo:warning=blurpool: nvcc {release} is newer than the pinned 13.0; its PTX only \
             JITs on drivers for CUDA {release}+ (SASS is fine). Pinned nvcc: scripts/install-nvcc.sh"
        );
    }
}

/// Passes nvcc's own warnings (host compiler, cudafe, ptxas) on to cargo so they are seen.
pub fn forward_compiler_warnings(stderr: &str) {
    const MAX_LINES: usize = 20;
    let diagnostics: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        // Everything except the -v resource lines themselves.
        .filter(|l| !l.starts_with("ptxas info") && !l.contains("bytes stack frame"))
        .collect();
    for line in diagnostics.iter().take(MAX_LINES) {
        println!("cargo:warning=nvcc: {line}");
    }
    if diagnostics.len() > MAX_LINES {
        println!(
            "cargo:warning=nvcc: … {} more lines in ptxas.txt",
            diagnostics.len() - MAX_LINES
        );
    }
}
