//! Build script: compiles every CUDA kernel in `kernels/` ahead of time into one fatbin.
//!
//! * With nvcc: `$OUT_DIR/blurpool.fatbin` holds SASS for each requested arch plus one PTX for
//!   the lowest arch (so newer GPUs can JIT it). ptxas resource usage is saved and summarised,
//!   and the build fails if any kernel spills registers.
//! * Without nvcc (or on docs.rs): the build still succeeds; the library compiles the embedded
//!   kernel sources at run time with NVRTC instead.
//!
//! Either way `$OUT_DIR/kernels.rs` is generated; the library `include!`s it.
//! Only std is used so the crate has no build-dependencies.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// SASS targets when neither `BLURPOOL_CUDA_ARCHS` nor `CUDA_COMPUTE_CAP` is set:
/// A100, RTX 30xx/A10, L4/RTX 40xx, H100/H200.
const DEFAULT_ARCHS: &[u32] = &[80, 86, 89, 90];

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

/// What a successful nvcc run produced.
struct Compiled {
    fatbin: PathBuf,
    archs: String,
    nvcc_release: String,
    ptxas_summary: PathBuf,
}

fn main() {
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-changed=build.rs");
    for var in ENV_TRIGGERS {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(blurpool_nvcc)");

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let kernels_dir = manifest_dir.join("kernels");
    let (headers, sources) = list_kernel_files(&kernels_dir);

    let compiled = if env::var_os("DOCS_RS").is_some() {
        println!(
            "cargo:warning=blurpool: DOCS_RS is set, so the CUDA kernels were not compiled ahead \
             of time; they will be compiled at run time with NVRTC"
        );
        None
    } else if let Some(nvcc) = find_nvcc() {
        Some(compile_fatbin(&nvcc, &kernels_dir, &sources, &out_dir))
    } else {
        no_nvcc();
        None
    };

    if compiled.is_some() {
        println!("cargo::rustc-cfg=blurpool_nvcc");
    } else {
        // Don't leave artefacts of an earlier nvcc build around to confuse anyone.
        for stale in [
            "blurpool_all.cu",
            "blurpool.fatbin",
            "ptxas.txt",
            "ptxas_summary.txt",
        ] {
            let _ = fs::remove_file(out_dir.join(stale));
        }
    }
    write_kernels_rs(&out_dir, compiled.as_ref(), &headers, &sources);
}

// ---------------------------------------------------------------------------------------------
// Finding nvcc

/// A working nvcc: its path and the `release X.Y` it reports.
struct Nvcc {
    path: PathBuf,
    release: String,
}

/// Looks for nvcc in the documented order and returns the first one whose `--version` runs.
fn find_nvcc() -> Option<Nvcc> {
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
fn no_nvcc() {
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

// ---------------------------------------------------------------------------------------------
// Kernel files

/// `kernels/*.cuh` and `kernels/*.cu`, each sorted by file name (deterministic output).
fn list_kernel_files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut headers = Vec::new();
    let mut sources = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return (headers, sources); // no kernels/ directory: nothing to build
    };
    for entry in entries {
        let path = entry.expect("reading kernels/").path();
        if !path.is_file() {
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("cuh") => headers.push(path),
            Some("cu") => sources.push(path),
            _ => {}
        }
    }
    headers.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    sources.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    (headers, sources)
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("kernel file names must be UTF-8")
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("blurpool: path {path:?} is not UTF-8"))
}

// ---------------------------------------------------------------------------------------------
// Architectures

/// SASS archs to build, sorted and deduplicated (e.g. [80, 86, 89, 90]), and where that list
/// came from (for error messages).
fn requested_archs() -> (Vec<u32>, String) {
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
fn parse_arch(token: &str) -> Option<u32> {
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

// ---------------------------------------------------------------------------------------------
// Compiling

/// Compiles all kernels into `$OUT_DIR/blurpool.fatbin` with one nvcc call and checks ptxas'
/// resource report.
fn compile_fatbin(
    nvcc: &Nvcc,
    kernels_dir: &Path,
    sources: &[PathBuf],
    out_dir: &Path,
) -> Compiled {
    let (archs, origin) = requested_archs();
    check_archs_supported(nvcc, &archs, &origin);
    warn_if_ptx_too_new(&nvcc.release);

    // One translation unit → one nvcc/ptxas run and one module to load at run time.
    let unit = out_dir.join("blurpool_all.cu");
    let mut text = String::from("// Generated by build.rs: every kernels/*.cu, sorted by name.\n");
    for src in sources {
        let p = path_str(src);
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
        cmd.arg("-gencode")
            .arg(format!("arch=compute_{a},code=sm_{a}"));
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!(
            "blurpool: nvcc failed ({}).\ncommand: {cmd:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            out.status
        );
    }

    let arch_list: Vec<String> = archs.iter().map(|a| format!("sm_{a}")).collect();
    let archs_str = format!("{}+compute_{lowest}", arch_list.join(","));

    // ptxas -v writes to stderr; keep all of it (it also holds any compiler warnings).
    let ptxas_txt = out_dir.join("ptxas.txt");
    fs::write(&ptxas_txt, stderr.as_bytes()).expect("writing ptxas.txt");
    forward_compiler_warnings(&stderr);

    let mut rows = parse_ptxas(&stderr);
    demangle(&mut rows);
    rows.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    let summary = format_summary(&rows, &nvcc.release, &archs_str, &ptxas_txt);
    let ptxas_summary = out_dir.join("ptxas_summary.txt");
    fs::write(&ptxas_summary, &summary).expect("writing ptxas_summary.txt");
    report_ptxas(&rows, &archs_str, &nvcc.release, &ptxas_txt, &ptxas_summary);

    Compiled {
        fatbin,
        archs: archs_str,
        nvcc_release: nvcc.release.clone(),
        ptxas_summary,
    }
}

/// PTX from a toolkit newer than the driver cannot be JIT-compiled (the GPU machines run driver
/// 580 = CUDA 13.0); SASS is unaffected. Worth one warning, not an error.
fn warn_if_ptx_too_new(release: &str) {
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
fn forward_compiler_warnings(stderr: &str) {
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

// ---------------------------------------------------------------------------------------------
// ptxas -v report

/// Resources of one function on one arch, as reported by `ptxas -v`.
#[derive(Default, Debug)]
struct Resources {
    name: String,
    /// "sm_90"; "?" if ptxas never said (a device function in a block without kernels).
    arch: String,
    /// true for `__global__` kernels, false for non-inlined `__device__` functions.
    entry: bool,
    registers: u64,
    stack: u64,
    spill_stores: u64,
    spill_loads: u64,
    smem: u64,
    /// Sum over all constant banks (cmem[0] holds the kernel parameters).
    cmem: u64,
}

/// Parses nvcc's `-Xptxas -v` output, which looks like (one block per arch):
///
/// ```text
/// ptxas info    : 0 bytes gmem
/// ptxas info    : Compiling entry function 'k' for 'sm_80'
/// ptxas info    : Function properties for k
///     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 8 registers, used 0 barriers, 512 bytes smem, 360 bytes cmem[0]
/// ptxas info    : Function properties for _Z3devfi      <- non-inlined device function
///     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ```
///
/// Device functions carry no arch, so they take the arch of the block they appear in.
fn parse_ptxas(log: &str) -> Vec<Resources> {
    let mut rows: Vec<Resources> = Vec::new();
    let mut block_start = 0; // first row of the current per-arch block
    let mut block_arch: Option<String> = None;
    let mut current_entry: Option<usize> = None; // row that "Used N registers" belongs to
    let mut current_fn: Option<usize> = None; // row that the stack/spill line belongs to
    let mut entry_props_seen = false; // has the current kernel's own properties line come yet?

    for line in log.lines() {
        let info = line
            .strip_prefix("ptxas info")
            .map(|rest| rest.trim_start().strip_prefix(':').unwrap_or(rest).trim());
        if let Some(info) = info {
            if info.contains("bytes gmem") {
                // A new ptxas run (i.e. a new arch) starts.
                block_start = rows.len();
                block_arch = None;
                current_entry = None;
                current_fn = None;
            } else if let Some(rest) = info.strip_prefix("Compiling entry function") {
                let mut quoted = rest.split('\'').skip(1).step_by(2);
                let name = quoted.next().unwrap_or("?").to_string();
                let arch = quoted.next().unwrap_or("?").to_string();
                if block_arch.is_none() {
                    for row in &mut rows[block_start..] {
                        row.arch = arch.clone();
                    }
                    block_arch = Some(arch.clone());
                }
                rows.push(Resources {
                    name,
                    arch,
                    entry: true,
                    ..Default::default()
                });
                current_entry = Some(rows.len() - 1);
                current_fn = None;
                entry_props_seen = false;
            } else if let Some(name) = info.strip_prefix("Function properties for") {
                let name = name.trim();
                current_fn = match current_entry {
                    Some(i) if rows[i].name == name && !entry_props_seen => {
                        entry_props_seen = true;
                        Some(i)
                    }
                    _ => {
                        let arch = block_arch.clone().unwrap_or_else(|| "?".into());
                        rows.push(Resources {
                            name: name.into(),
                            arch,
                            ..Default::default()
                        });
                        Some(rows.len() - 1)
                    }
                };
            } else if let Some(used) = info.strip_prefix("Used") {
                if let Some(i) = current_entry {
                    parse_used(used, &mut rows[i]);
                }
            }
        } else if line.contains("bytes stack frame") {
            if let Some(i) = current_fn {
                parse_properties(line, &mut rows[i]);
            }
        }
    }
    rows
}

/// "N bytes stack frame, N bytes spill stores, N bytes spill loads"
fn parse_properties(line: &str, row: &mut Resources) {
    for item in line.split(',') {
        let (n, what) = leading_number(item);
        if what.contains("stack frame") {
            row.stack = n;
        } else if what.contains("spill stores") {
            row.spill_stores = n;
        } else if what.contains("spill loads") {
            row.spill_loads = n;
        }
    }
}

/// " 30 registers, used 0 barriers, 128 bytes cumulative stack size, 512 bytes smem, 360 bytes cmem[0]"
fn parse_used(line: &str, row: &mut Resources) {
    for item in line.split(',') {
        let (n, what) = leading_number(item);
        if what.starts_with("registers") {
            row.registers = n;
        } else if what.contains("smem") {
            row.smem += n;
        } else if what.contains("cmem") {
            row.cmem += n;
        }
    }
}

/// " 512 bytes smem" → (512, "bytes smem"); items without a number give (0, item).
fn leading_number(item: &str) -> (u64, &str) {
    let item = item.trim();
    let digits = item.bytes().take_while(u8::is_ascii_digit).count();
    let n = item[..digits].parse().unwrap_or(0);
    (n, item[digits..].trim())
}

/// Best effort: readable names for C++ (mangled) kernels via c++filt; `extern "C"` kernels
/// are already readable, and without c++filt the names stay as ptxas printed them.
fn demangle(rows: &mut [Resources]) {
    let mangled: Vec<String> = rows
        .iter()
        .filter(|r| r.name.starts_with("_Z"))
        .map(|r| r.name.clone())
        .collect();
    if mangled.is_empty() {
        return;
    }
    let Ok(out) = Command::new("c++filt").args(&mangled).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let demangled: Vec<&str> = text.lines().collect();
    if !out.status.success() || demangled.len() != mangled.len() {
        return;
    }
    let mut names = demangled.into_iter();
    for row in rows.iter_mut().filter(|r| r.name.starts_with("_Z")) {
        row.name = names.next().unwrap().to_string();
    }
}

const SUMMARY_LEGEND: &str = "\
# kind: kernel = __global__, device = non-inlined __device__ function
# bytes: stack = stack frame, spill_st/spill_ld = spill stores/loads, smem = static shared
#        memory, cmem = constant memory (sum of the cmem[N] banks ptxas printed; it prints
#        none for sm_90 kernel parameters)
";

/// The table written to ptxas_summary.txt (and embedded as `PTXAS_SUMMARY`).
fn format_summary(rows: &[Resources], release: &str, archs: &str, full_log: &Path) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(8).max(8);
    let mut s = String::new();
    writeln!(s, "# ptxas resource usage, nvcc {release}, targets {archs}").unwrap();
    writeln!(s, "# full log: {}", full_log.display()).unwrap();
    s.push_str(SUMMARY_LEGEND);
    writeln!(
        s,
        "{:<width$}  {:<6}  {:<6}  {:>4}  {:>6}  {:>8}  {:>8}  {:>6}  {:>6}",
        "function", "arch", "kind", "regs", "stack", "spill_st", "spill_ld", "smem", "cmem"
    )
    .unwrap();
    for r in rows {
        writeln!(
            s,
            "{:<width$}  {:<6}  {:<6}  {:>4}  {:>6}  {:>8}  {:>8}  {:>6}  {:>6}",
            r.name,
            r.arch,
            if r.entry { "kernel" } else { "device" },
            if r.entry {
                r.registers.to_string()
            } else {
                "-".into()
            },
            r.stack,
            r.spill_stores,
            r.spill_loads,
            r.smem,
            r.cmem
        )
        .unwrap();
    }
    s
}

/// Short cargo warning summary; every row with BLURPOOL_PTXAS_REPORT=1; fails on spills.
fn report_ptxas(rows: &[Resources], archs: &str, release: &str, full_log: &Path, summary: &Path) {
    let kernels: Vec<&Resources> = rows.iter().filter(|r| r.entry).collect();
    let mut kernel_names: Vec<&str> = kernels.iter().map(|r| r.name.as_str()).collect();
    kernel_names.sort_unstable();
    kernel_names.dedup();
    // rev(): max_by_key keeps the last maximum; report the first (by name, then arch).
    let max_regs = kernels.iter().rev().max_by_key(|r| r.registers);
    let spill_bytes: u64 = rows.iter().map(|r| r.spill_stores + r.spill_loads).sum();
    println!(
        "cargo:warning=blurpool: nvcc {release} built {} kernels for {archs}; max registers {}; \
         spill bytes {spill_bytes}; ptxas report: {} (full log: {})",
        kernel_names.len(),
        max_regs.map_or("-".into(), |r| format!(
            "{} ({} on {})",
            r.registers, r.name, r.arch
        )),
        summary.display(),
        full_log.display()
    );

    if env::var("BLURPOOL_PTXAS_REPORT").is_ok_and(|v| v == "1") {
        for r in rows {
            println!(
                "cargo:warning=ptxas {} {} {}: regs {} stack {} spill {}/{} smem {} cmem {}",
                r.arch,
                if r.entry { "kernel" } else { "device" },
                r.name,
                r.registers,
                r.stack,
                r.spill_stores,
                r.spill_loads,
                r.smem,
                r.cmem
            );
        }
    }

    // Spills go through local memory (L1/L2/HBM) and quietly cost bandwidth in kernels whose
    // whole point is to be bandwidth-bound, so they are treated as a build error.
    let spilling: Vec<String> = rows
        .iter()
        .filter(|r| r.spill_stores > 0 || r.spill_loads > 0)
        .map(|r| {
            format!(
                "  {} on {}: {} bytes spill stores, {} bytes spill loads{}",
                r.name,
                r.arch,
                r.spill_stores,
                r.spill_loads,
                if r.entry {
                    format!(" ({} registers)", r.registers)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    if !spilling.is_empty() {
        panic!(
            "blurpool: register spills in CUDA kernels (the build forbids them):\n{}\n\
             Reduce register pressure (smaller per-thread tiles, fewer unrolled accumulators) or \
             relax __launch_bounds__. Full report: {}",
            spilling.join("\n"),
            full_log.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// kernels.rs

/// Writes `$OUT_DIR/kernels.rs`, the only interface between this script and the library.
fn write_kernels_rs(
    out_dir: &Path,
    compiled: Option<&Compiled>,
    headers: &[PathBuf],
    sources: &[PathBuf],
) {
    let mut rs = String::from("// Generated by build.rs; do not edit.\n\n");
    rs.push_str(
        "/// Fatbin with SASS for ARCHS and PTX for the lowest, or None when nvcc was not found at build time.\n",
    );
    match compiled {
        Some(c) => writeln!(
            rs,
            "pub const FATBIN: Option<&[u8]> = Some(include_bytes!({:?}));",
            path_str(&c.fatbin)
        ),
        None => writeln!(rs, "pub const FATBIN: Option<&[u8]> = None;"),
    }
    .unwrap();

    rs.push_str("/// e.g. \"sm_80,sm_86,sm_89,sm_90+compute_80\"; \"\" without nvcc\n");
    writeln!(
        rs,
        "pub const ARCHS: &str = {:?};",
        compiled.map_or("", |c| c.archs.as_str())
    )
    .unwrap();

    rs.push_str("/// nvcc release used, e.g. \"13.0\"; \"\" without nvcc\n");
    writeln!(
        rs,
        "pub const NVCC_RELEASE: &str = {:?};",
        compiled.map_or("", |c| c.nvcc_release.as_str())
    )
    .unwrap();

    rs.push_str(
        "/// Kernel sources for the NVRTC path: headers (*.cuh, sorted) first, then *.cu (sorted); (file name, text)\n",
    );
    rs.push_str("pub const SOURCES: &[(&str, &str)] = &[\n");
    for file in headers.iter().chain(sources) {
        writeln!(
            rs,
            "    ({:?}, include_str!({:?})),",
            file_name(file),
            path_str(file)
        )
        .unwrap();
    }
    rs.push_str("];\n");

    rs.push_str("/// ptxas summary text (\"\" without nvcc)\n");
    match compiled {
        Some(c) => writeln!(
            rs,
            "pub const PTXAS_SUMMARY: &str = include_str!({:?});",
            path_str(&c.ptxas_summary)
        ),
        None => writeln!(rs, "pub const PTXAS_SUMMARY: &str = \"\";"),
    }
    .unwrap();

    fs::write(out_dir.join("kernels.rs"), rs).expect("writing kernels.rs");
}

// ---------------------------------------------------------------------------------------------

/// The variable's value, treating unset, empty and non-UTF-8 alike as "not set".
fn env_nonempty(var: &str) -> Option<String> {
    env::var(var).ok().filter(|v| !v.trim().is_empty())
}
