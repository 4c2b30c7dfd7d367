//! The `ptxas -v` report: parsing nvcc's log into per-kernel resources, the summary table the
//! library embeds, and the build's rules (no spills, no stack frames). Plain std so build.rs
//! and its unit tests (tests/build_support.rs) include the same file.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Resources of one function on one arch, as reported by `ptxas -v`.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Resources {
    pub name: String,
    /// "sm_90"; "?" if ptxas never said (a device function in a block without kernels).
    pub arch: String,
    /// true for `__global__` kernels, false for non-inlined `__device__` functions.
    pub entry: bool,
    pub registers: u64,
    pub stack: u64,
    pub spill_stores: u64,
    pub spill_loads: u64,
    pub smem: u64,
    /// Sum over all constant banks (cmem[0] holds the kernel parameters).
    pub cmem: u64,
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
pub fn parse(log: &str) -> Vec<Resources> {
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
pub fn demangle(rows: &mut [Resources]) {
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
pub fn format_summary(rows: &[Resources], release: &str, archs: &str, full_log: &Path) -> String {
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

/// The build's rule: no kernel may spill registers or keep a stack frame. Spills and stack go
/// through local memory (L1/L2/HBM) and quietly cost bandwidth in kernels whose whole point is
/// to be bandwidth-bound (a lambda capturing the parameter block by reference once put a copy
/// of it there). Err lists the offenders.
pub fn check_local_memory(rows: &[Resources]) -> Result<(), String> {
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.spill_stores > 0 || r.spill_loads > 0 || r.stack > 0)
        .map(|r| {
            format!(
                "  {} on {}: {} bytes stack, {} bytes spill stores, {} bytes spill loads{}",
                r.name,
                r.arch,
                r.stack,
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
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// One line for cargo: how many kernels, the largest register count, total spill bytes.
pub fn one_line(rows: &[Resources]) -> String {
    let kernels: Vec<&Resources> = rows.iter().filter(|r| r.entry).collect();
    let mut names: Vec<&str> = kernels.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    // rev(): max_by_key keeps the last maximum; report the first (by name, then arch).
    let max_regs = kernels.iter().rev().max_by_key(|r| r.registers);
    let spill_bytes: u64 = rows.iter().map(|r| r.spill_stores + r.spill_loads).sum();
    format!(
        "{} kernels; max registers {}; spill bytes {spill_bytes}",
        names.len(),
        max_regs.map_or("-".into(), |r| format!(
            "{} ({} on {})",
            r.registers, r.name, r.arch
        ))
    )
}
