#!/usr/bin/env bash
# CI for the C ABI (capi/) and the PyTorch binding (python/), run by .ci/run after the main tests:
#   1. build libblurpool.{so,a} (release),
#   2. the C ABI's Rust tests, including "the checked-in include/blurpool.h is current",
#   3. build and run the C example (shared and static),
#   4. a venv with torch (PyPI, CPU is enough) + pytest, then pytest python/tests.
# Needs Rust, python3 (with venv or pip), cc and c++; nvcc is optional (the build falls back to
# NVRTC at run time without it). Nothing is cached outside the repository: the venv lives in
# $CARGO_TARGET_DIR (default target/), and pip runs with --no-cache-dir.
#
# Env: BLURPOOL_CI_PYTHON=/path/to/python  use an interpreter that already has torch + pytest
#      instead of creating the venv (for local runs).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}

step() {
    echo
    echo "---------------- capi: $* ----------------"
}

step "cargo build --release -p blurpool-capi"
cargo build --release -p blurpool-capi
ls -l "$target/release/libblurpool.so" "$target/release/libblurpool.a"

step "cargo test --release -p blurpool-capi (ABI tests, header is current)"
cargo test --release -p blurpool-capi

step "C example (capi/examples/c/build_and_run.sh)"
capi/examples/c/build_and_run.sh

step "python environment"
py=${BLURPOOL_CI_PYTHON:-}
if [[ -z $py ]]; then
    venv=$target/capi-venv
    pip_args=(--no-cache-dir --disable-pip-version-check --progress-bar off)
    if [[ -x $venv/bin/python ]] || python3 -m venv "$venv"; then
        py=$venv/bin/python
        "$py" -m pip install "${pip_args[@]}" -r python/requirements-ci.txt
    else
        # No venv module (e.g. Debian without python3-venv): install into a private directory.
        echo "python3 -m venv failed; installing into $target/capi-pylib with pip --target"
        python3 -m pip install "${pip_args[@]}" --upgrade --target "$target/capi-pylib" -r python/requirements-ci.txt
        export PYTHONPATH="$target/capi-pylib${PYTHONPATH:+:$PYTHONPATH}"
        py=python3
    fi
fi
"$py" -c 'import sys, torch; print(sys.executable, "torch", torch.__version__, "cuda available:", torch.cuda.is_available())'

step "pip install ./python (setuptools-rust builds libblurpool into the package)"
# One pip command; the installed package must find its bundled library with no BLURPOOL_LIB.
unset BLURPOOL_LIB
if [[ ${py} == python3 ]]; then
    python3 -m pip install "${pip_args[@]}" --target "$target/capi-pylib" ./python
else
    "$py" -m pip install --no-cache-dir --disable-pip-version-check --progress-bar off ./python
fi
rm -rf python/build python/*.egg-info   # setuptools' in-tree leftovers (also git-ignored)
(cd "$target" && "$py" -c 'import blurpool_torch as b, pathlib; p = pathlib.Path(b.lib().path); print("installed:", pathlib.Path(b.__file__).parent, "library:", p); assert p.parent == pathlib.Path(b.__file__).resolve().parent')

step "pytest python/tests (against the installed package)"
set +e
"$py" -m pytest python/tests -ra -p no:cacheprovider
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "ERROR: pytest collected no tests (exit 5)" >&2
    exit 1
fi
if [[ $rc -ne 0 ]]; then
    echo "ERROR: pytest failed (exit $rc)" >&2
    exit "$rc"
fi

step "a wheel built the same way works elsewhere (installed into an empty directory)"
rm -rf "$target/wheel" "$target/wheel-site"
"$py" -m pip wheel --no-cache-dir --disable-pip-version-check --no-deps -w "$target/wheel" ./python
rm -rf python/build python/*.egg-info
"$py" -m pip install --no-cache-dir --disable-pip-version-check --no-deps --target "$target/wheel-site" "$target"/wheel/blurpool_torch-*.whl
(cd /tmp && PYTHONPATH="$target/wheel-site${PYTHONPATH:+:$PYTHONPATH}" "$py" -c 'import blurpool_torch as b, torch, pathlib; assert pathlib.Path(b.lib().path).parent == pathlib.Path(b.__file__).resolve().parent; y = b.BlurPool2d(3)(torch.randn(1, 3, 8, 8)); print("wheel ok:", b.lib().path, tuple(y.shape))')
echo "capi: all checks passed"
