//! Unit tests of the build script's parts (build/*.rs, included here as they are in build.rs):
//! the ptxas report parser and the local-memory rule, the specialisation scanner, the arch
//! parser. A build script cannot host tests itself; these keep its logic honest.
#![allow(dead_code)] // build.rs uses every function; each test here only some

#[path = "../build/nvcc.rs"]
mod nvcc;
#[path = "../build/ptxas.rs"]
mod ptxas;
#[path = "../build/sources.rs"]
mod sources;

/// A shortened `nvcc -Xptxas -v` log of two archs: two kernels, a non-inlined device function,
/// a kernel that spills, one with a stack frame.
const LOG: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'bp_a_f16_nchw' for 'sm_80'
ptxas info    : Function properties for bp_a_f16_nchw
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 512 bytes smem, 368 bytes cmem[0]
ptxas info    : Function properties for _Z6helperi
    16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'bp_b_f32_nhwc' for 'sm_80'
ptxas info    : Function properties for bp_b_f32_nhwc
    0 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers, 368 bytes cmem[0], 4 bytes cmem[2]
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'bp_a_f16_nchw' for 'sm_90'
ptxas info    : Function properties for bp_a_f16_nchw
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 38 registers, used 1 barriers, 512 bytes smem
";

#[test]
fn ptxas_log_is_parsed_per_kernel_and_arch() {
    let rows = ptxas::parse(LOG);
    let find = |name: &str, arch: &str| {
        rows.iter()
            .find(|r| r.name == name && r.arch == arch)
            .unwrap_or_else(|| panic!("{name} {arch} missing: {rows:?}"))
    };
    let a80 = find("bp_a_f16_nchw", "sm_80");
    assert!(a80.entry);
    assert_eq!(
        (a80.registers, a80.smem, a80.cmem, a80.stack),
        (40, 512, 368, 0)
    );
    let b = find("bp_b_f32_nhwc", "sm_80");
    assert_eq!(
        (b.registers, b.spill_stores, b.spill_loads, b.cmem),
        (255, 8, 12, 372)
    );
    // The device function takes the arch of the block it appears in.
    let helper = find("_Z6helperi", "sm_80");
    assert!(!helper.entry);
    assert_eq!(helper.stack, 16);
    assert_eq!(find("bp_a_f16_nchw", "sm_90").registers, 38);
    assert_eq!(rows.len(), 4);
}

#[test]
fn local_memory_rule_names_spills_and_stack_frames() {
    let rows = ptxas::parse(LOG);
    let err = ptxas::check_local_memory(&rows).unwrap_err();
    assert!(err.contains("bp_b_f32_nhwc on sm_80"), "{err}");
    assert!(err.contains("8 bytes spill stores"), "{err}");
    assert!(err.contains("_Z6helperi on sm_80: 16 bytes stack"), "{err}");
    assert!(!err.contains("bp_a_f16_nchw"), "{err}");
    let clean: Vec<_> = rows
        .into_iter()
        .filter(|r| r.name == "bp_a_f16_nchw")
        .collect();
    assert!(ptxas::check_local_memory(&clean).is_ok());
}

#[test]
fn summary_table_has_one_row_per_function_and_arch() {
    let rows = ptxas::parse(LOG);
    let table = ptxas::format_summary(&rows, "13.0", "sm_80,sm_90", std::path::Path::new("x"));
    let body: Vec<&str> = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("function"))
        .collect();
    assert_eq!(body.len(), 4, "{table}");
    assert!(body
        .iter()
        .any(|l| l.starts_with("bp_b_f32_nhwc") && l.contains(" 255 ")));
    let line = ptxas::one_line(&rows);
    assert!(
        line.starts_with("2 kernels; max registers 255 (bp_b_f32_nhwc on sm_80); spill bytes 20"),
        "{line}"
    );
}

#[test]
fn specialisations_are_read_from_their_macro_lines() {
    let text = "\
#define BP_STRIP_VARIANT(NAME, K, F, S) \\
    something
// BP_STRIP_VARIANT(bp_commented, 1, 2, 3) is not an invocation
BP_STRIP_VARIANT(bp_maxblurpool_k2f4s2, 2, 4, 2)
BP_STRIP_DW_VARIANT(bp_convblurpool_dw3f3s2, 3, 3, 2)
    BP_STRIP_VARIANT(bp_indented, 1, 1, 1)
BP_TC_VARIANT(bp_convblurpool_tc_k3f4s2, 4)
BP_STRIP4_DW_VARIANT(bp_convblurpool_dw3f3s2_v4, 3, 3, 2, 128, 3)
BP_STRIP4_VARIANT(bp_maxblurpool_k3f3s2_v4, 3, 3, 2, 128)
";
    let found = sources::scan_specialisations("x.cu", text).unwrap();
    let got: Vec<(&str, &str, &[u32])> = found
        .iter()
        .map(|s| (s.macro_name.as_str(), s.name.as_str(), s.dims.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "BP_STRIP_VARIANT",
                "bp_maxblurpool_k2f4s2",
                &[2u32, 4, 2][..]
            ),
            ("BP_STRIP_DW_VARIANT", "bp_convblurpool_dw3f3s2", &[3, 3, 2]),
            ("BP_TC_VARIANT", "bp_convblurpool_tc_k3f4s2", &[4]),
            (
                "BP_STRIP4_DW_VARIANT",
                "bp_convblurpool_dw3f3s2_v4",
                &[3, 3, 2, 128, 3]
            ),
            (
                "BP_STRIP4_VARIANT",
                "bp_maxblurpool_k3f3s2_v4",
                &[3, 3, 2, 128]
            ),
        ]
    );
    let rs = sources::specialisations_rs(&found);
    assert!(rs.contains(r#"("BP_TC_VARIANT", "bp_convblurpool_tc_k3f4s2", &[4]),"#));
}

#[test]
fn malformed_specialisation_lines_are_errors_with_their_place() {
    for (line, why) in [
        ("BP_STRIP_VARIANT(bp_x, 2, 4)", "takes a name and 3 numbers"),
        ("BP_TC_VARIANT(bp_x, four)", "integers"),
        ("BP_TC_VARIANT(bp-x, 4)", "identifier"),
        ("BP_TC_VARIANT(bp_x, 4", "closing parenthesis"),
        (
            "BP_STRIP4_DW_VARIANT(bp_x, 3, 3, 2)",
            "takes a name and 5 numbers",
        ),
        (
            "BP_STRIP4_DW_VARIANT(bp_x, 3, 3, 2, 100, 3)",
            "multiple of 32",
        ),
        (
            "BP_STRIP4_DW_VARIANT(bp_x, 3, 3, 2, 2048, 1)",
            "multiple of 32",
        ),
        ("BP_STRIP4_DW_VARIANT(bp_x, 3, 3, 2, 128, 0)", "at least 1"),
        (
            "BP_STRIP4_VARIANT(bp_x, 3, 3, 2)",
            "takes a name and 4 numbers",
        ),
        ("BP_STRIP4_VARIANT(bp_x, 3, 3, 2, 100)", "multiple of 32"),
        ("BP_STRIP4_VARIANT(bp_x, 3, 3, 2, 0)", "multiple of 32"),
    ] {
        let err = sources::scan_specialisations("k.cu", &format!("// ok\n{line}\n")).unwrap_err();
        assert!(err.starts_with("k.cu:2: ") && err.contains(why), "{err}");
    }
}

#[test]
fn the_real_kernels_have_every_specialisation_the_library_plans() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let (headers, cu) = sources::list_kernel_files(&dir);
    assert_eq!(
        sources::file_name(&headers[0]),
        "common.cuh",
        "NVRTC needs the shared header first"
    );
    let mut all = Vec::new();
    for f in &cu {
        all.extend(
            sources::scan_specialisations(
                sources::file_name(f),
                &std::fs::read_to_string(f).unwrap(),
            )
            .unwrap(),
        );
    }
    let specialised: Vec<_> = blurpool::cuda::specialised_kernels().collect();
    assert_eq!(all.len(), specialised.len());
    assert!(all.len() >= 9, "{all:?}");
}

#[test]
fn arch_tokens_parse_in_every_spelling() {
    for (token, want) in [
        ("90", Some(90)),
        ("sm_90", Some(90)),
        ("compute_80", Some(80)),
        ("8.6", Some(86)),
        ("sm_", None),
        ("9", None),
        ("ninety", None),
    ] {
        assert_eq!(nvcc::parse_arch(token), want, "{token}");
    }
}

#[test]
fn arch_90_builds_sm_90a_and_the_others_their_own() {
    // sm_90a: H100 / H200 code with wgmma (the dense conv's sm_90a kernel); one image per arch.
    assert_eq!(nvcc::sass_target(90), "sm_90a");
    for a in [80, 86, 89, 100, 120] {
        assert_eq!(nvcc::sass_target(a), format!("sm_{a}"));
    }
}
