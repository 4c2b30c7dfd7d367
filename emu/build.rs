//! Compiles every kernel in ../kernels as host C++ (BP_HOST_EMULATION) together with the
//! emulator in cpp/, into a static library the Rust side calls.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let kernels = manifest.join("../kernels");
    println!("cargo::rerun-if-changed={}", kernels.display());
    println!("cargo::rerun-if-changed=cpp");
    println!("cargo::rerun-if-changed=build.rs");

    // One translation unit: the emulator first, then every .cu in a fixed order. (One object, so
    // the kernels' self-registering static constructors are linked with the launcher that the
    // Rust side references; a separate object in the archive would be dropped by the linker.)
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&kernels)
        .expect("kernels/ next to emu/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut unity = String::from("#include \"emu.cpp\"\n");
    for s in &sources {
        unity.push_str(&format!(
            "#include \"{}\"\n",
            s.canonicalize().unwrap().display()
        ));
    }
    let unity_path = out.join("emu_kernels.cpp");
    std::fs::write(&unity_path, unity).unwrap();

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .define("BP_HOST_EMULATION", None)
        .include(manifest.join("cpp"))
        .include(&kernels)
        .file(&unity_path);
    // The performance gates' deliberately broken kernels (model/src/gates.rs), only for the
    // model: two more compilations of the pooling family that `cargo test` does not need.
    if std::env::var_os("CARGO_FEATURE_GATE_VARIANTS").is_some() {
        build
            .define("BP_EMU_GATE_VARIANTS", None)
            .file(manifest.join("cpp/variant_uncoalesced.cpp"))
            .file(manifest.join("cpp/variant_serialised.cpp"));
    }
    build
        .opt_level(2)
        .warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        // Kernels reuse shared memory across types (staged halves, then an f32 map), as CUDA
        // code does; the host compiler must not assume distinct types never alias.
        .flag("-fno-strict-aliasing")
        // `#pragma unroll` is nvcc's; the host compiler may unroll as it likes.
        .flag_if_supported("-Wno-unknown-pragmas")
        .compile("blurpool_emu");
}
