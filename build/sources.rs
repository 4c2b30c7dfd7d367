//! The kernel sources: which files there are, which specialised kernels they instantiate, and
//! the two files build.rs generates for the library (`kernels.rs`: fatbin and sources;
//! `specialisations.rs`: the specialisation table the launch layer plans with). Plain std so
//! build.rs and its unit tests (tests/build_support.rs) include the same file.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// `kernels/*.cuh` (common.cuh first, then the others by name) and `kernels/*.cu` (by name).
pub fn list_kernel_files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
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
    // NVRTC sees the headers concatenated in this order: common.cuh is what the others use.
    headers.sort_by_key(|p| (file_name(p) != "common.cuh", file_name(p).to_string()));
    sources.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    (headers, sources)
}

/// The file name of a kernel file.
pub fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("kernel file names must be UTF-8")
}

/// Path as UTF-8 (for `include_bytes!`/`include_str!`).
pub fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("blurpool: path {path:?} is not UTF-8"))
}

/// The macros that instantiate a specialised kernel, and the number of integer arguments each
/// takes after the kernel's name: strip kernels, v2 and v4 (max window or depthwise conv kernel,
/// filter, stride; the v4 pooling one also its block's threads, the v4 depthwise one its block's
/// threads and the blocks per SM its registers must allow) and tensor-core conv kernels, v3 and
/// v4 (filter; v4 also the output tile's side; its sm_90a `wgmma` kernel the same).
pub const SPECIALISATION_MACROS: [(&str, usize); 7] = [
    ("BP_STRIP_VARIANT", 3),
    ("BP_STRIP_DW_VARIANT", 3),
    ("BP_STRIP4_VARIANT", 4),
    ("BP_STRIP4_DW_VARIANT", 5),
    ("BP_TC_VARIANT", 1),
    ("BP_TC4_VARIANT", 2),
    ("BP_TCW_VARIANT", 2),
];

/// One specialised kernel found in the sources: its macro, its name (the symbol stem) and its
/// integer arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specialisation {
    /// The instantiating macro.
    pub macro_name: String,
    /// The kernel's name (symbol stem).
    pub name: String,
    /// Its compile-time geometry.
    pub dims: Vec<u32>,
}

/// Every line of `text` that starts (in column 0) with an invocation of one of the
/// [`SPECIALISATION_MACROS`], parsed; Err says which line is malformed. `#define` lines and
/// indented or commented mentions are not invocations.
pub fn scan_specialisations(file: &str, text: &str) -> Result<Vec<Specialisation>, String> {
    let mut out = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let Some(&(mac, nargs)) = SPECIALISATION_MACROS
            .iter()
            .find(|(m, _)| line.starts_with(&format!("{m}(")))
        else {
            continue;
        };
        let bad = |why: &str| format!("{file}:{}: {why}: {line}", no + 1);
        let inner = line[mac.len() + 1..]
            .split(')')
            .next()
            .filter(|_| line.contains(')'))
            .ok_or_else(|| bad("no closing parenthesis"))?;
        let args: Vec<&str> = inner.split(',').map(str::trim).collect();
        if args.len() != nargs + 1 {
            return Err(bad(&format!("{mac} takes a name and {nargs} numbers")));
        }
        let name = args[0];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad("the kernel name must be an identifier"));
        }
        let dims = args[1..]
            .iter()
            .map(|a| {
                a.parse::<u32>()
                    .map_err(|_| bad("arguments must be integers"))
            })
            .collect::<Result<Vec<u32>, String>>()?;
        // A block size: the fourth number of BP_STRIP4_VARIANT and BP_STRIP4_DW_VARIANT (threads),
        // and the latter's fifth (blocks per SM).
        let bad_threads = |t: u32| t % 32 != 0 || !(32..=1024).contains(&t);
        if nargs >= 4 && bad_threads(dims[3]) {
            return Err(bad(
                "the block's threads must be a multiple of 32 from 32 to 1024",
            ));
        }
        if nargs == 5 && dims[4] == 0 {
            return Err(bad("the blocks per SM must be at least 1"));
        }
        out.push(Specialisation {
            macro_name: mac.to_string(),
            name: name.to_string(),
            dims,
        });
    }
    Ok(out)
}

/// The text of `specialisations.rs`: `SPECIALISATIONS: &[(macro, name, dims)]`.
pub fn specialisations_rs(all: &[Specialisation]) -> String {
    let mut rs = String::from(
        "// Generated by build.rs from the kernels' BP_*_VARIANT lines; do not edit.\n\
         /// (macro, kernel name, compile-time geometry) of every specialised kernel.\n\
         pub const SPECIALISATIONS: &[(&str, &str, &[u32])] = &[\n",
    );
    for s in all {
        writeln!(rs, "    ({:?}, {:?}, &{:?}),", s.macro_name, s.name, s.dims).unwrap();
    }
    rs.push_str("];\n");
    rs
}

/// What an nvcc build produced, for `kernels.rs`.
pub struct Built<'a> {
    /// The fatbin file.
    pub fatbin: &'a Path,
    /// Its targets.
    pub archs: &'a str,
    /// nvcc's release.
    pub nvcc_release: &'a str,
    /// The ptxas summary file.
    pub ptxas_summary: &'a Path,
}

/// The text of `kernels.rs`, the library's view of the build: the fatbin (or None), its archs,
/// nvcc's release, the sources for NVRTC (headers first) and the ptxas summary.
pub fn kernels_rs(built: Option<&Built<'_>>, headers: &[PathBuf], sources: &[PathBuf]) -> String {
    let mut rs = String::from("// Generated by build.rs; do not edit.\n\n");
    rs.push_str(
        "/// Fatbin with SASS for ARCHS and PTX for the lowest, or None when nvcc was not found at build time.\n",
    );
    match built {
        Some(b) => writeln!(
            rs,
            "pub const FATBIN: Option<&[u8]> = Some(include_bytes!({:?}));",
            path_str(b.fatbin)
        ),
        None => writeln!(rs, "pub const FATBIN: Option<&[u8]> = None;"),
    }
    .unwrap();
    rs.push_str("/// e.g. \"sm_80,sm_86,sm_89,sm_90+compute_80\"; \"\" without nvcc\n");
    writeln!(
        rs,
        "pub const ARCHS: &str = {:?};",
        built.map_or("", |b| b.archs)
    )
    .unwrap();
    rs.push_str("/// nvcc release used, e.g. \"13.0\"; \"\" without nvcc\n");
    writeln!(
        rs,
        "pub const NVCC_RELEASE: &str = {:?};",
        built.map_or("", |b| b.nvcc_release)
    )
    .unwrap();
    rs.push_str(
        "/// Kernel sources for the NVRTC path: headers (common.cuh first) then *.cu; (file name, text)\n",
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
    match built {
        Some(b) => writeln!(
            rs,
            "pub const PTXAS_SUMMARY: &str = include_str!({:?});",
            path_str(b.ptxas_summary)
        ),
        None => writeln!(rs, "pub const PTXAS_SUMMARY: &str = \"\";"),
    }
    .unwrap();
    rs
}
