#!/usr/bin/env bash
# Builds capi/examples/c/example.c against libblurpool, shared and static, and runs both.
# Usage: capi/examples/c/build_and_run.sh   (from anywhere; builds the library if needed)
# Env: CC (default cc), CXX (default c++), CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
libdir=$target/release
include=$root/capi/include
out=$target/capi-example
mkdir -p "$out"
CC=${CC:-cc}
CXX=${CXX:-c++}

(cd "$root" && cargo build --release -p blurpool-capi)

# The header must also be valid C++ (it is meant for C++ pipelines too).
echo '#include "blurpool.h"' | "$CXX" -std=c++17 -Wall -Wextra -Werror -fsyntax-only -x c++ -I "$include" -

warn=(-std=c11 -Wall -Wextra -Werror -pedantic -O2)

# Shared: libblurpool.so, found at run time through the rpath.
"$CC" "${warn[@]}" -I "$include" "$here/example.c" -o "$out/example_shared" \
    -L "$libdir" -lblurpool -Wl,-rpath,"$libdir" -ldl -lm
# Static: libblurpool.a plus the system libraries the Rust standard library needs
# (`rustc --print native-static-libs` lists them).
"$CC" "${warn[@]}" -I "$include" "$here/example.c" -o "$out/example_static" \
    "$libdir/libblurpool.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

echo "== example_shared =="
"$out/example_shared"
echo
echo "== example_static =="
"$out/example_static" >"$out/static.txt"
"$out/example_shared" >"$out/shared.txt"
if cmp -s "$out/static.txt" "$out/shared.txt"; then
    echo "(same output as example_shared)"
else
    diff "$out/shared.txt" "$out/static.txt" || true
    echo "static and shared builds printed different output" >&2
    exit 1
fi
