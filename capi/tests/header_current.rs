//! The checked-in `include/blurpool.h` must equal what cbindgen generates from the current
//! sources (build.rs writes it to `$OUT_DIR/blurpool.h`).
//!
//! To update the checked-in header after changing the C ABI:
//! `BLURPOOL_UPDATE_HEADER=1 cargo test -p blurpool-capi --test header_current`

use std::path::Path;

#[test]
fn checked_in_header_is_current() {
    let generated_path = Path::new(env!("OUT_DIR")).join("blurpool.h");
    let checked_in_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/blurpool.h");
    let generated = std::fs::read_to_string(&generated_path).unwrap_or_else(|e| {
        panic!(
            "cannot read the generated header {}: {e}",
            generated_path.display()
        )
    });

    if std::env::var_os("BLURPOOL_UPDATE_HEADER").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&checked_in_path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", checked_in_path.display()));
        eprintln!("updated {}", checked_in_path.display());
        return;
    }

    let checked_in = std::fs::read_to_string(&checked_in_path).unwrap_or_default();
    if checked_in != generated {
        let first_diff = checked_in
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| {
                format!(
                    "first difference at line {}:\n  checked in: {a}\n  generated:  {b}",
                    i + 1
                )
            })
            .unwrap_or_else(|| {
                format!(
                    "one is a prefix of the other ({} vs {} lines)",
                    checked_in.lines().count(),
                    generated.lines().count()
                )
            });
        panic!(
            "capi/include/blurpool.h is stale: it differs from the header cbindgen generates from capi/src \
             ({}).\n{first_diff}\n\nUpdate it with:\n    BLURPOOL_UPDATE_HEADER=1 cargo test -p blurpool-capi --test header_current\n\
             and commit the result.",
            generated_path.display()
        );
    }
}
