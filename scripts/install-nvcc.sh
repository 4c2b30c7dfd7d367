#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 nvcc from PyPI wheels, without root and without a CUDA toolkit.
#
#   NVCC=$(scripts/install-nvcc.sh | tail -1) cargo build
#
# Where: $BLURPOOL_TOOLS_DIR/nvcc, default <repo>/.tools/nvcc (git-ignored).
# Idempotent: an install that already reports release 13.0 and compiles a test kernel is kept.
# Progress goes to stderr; stdout is only the path of nvcc (its last line).
#
# Why these pins: nvcc 13.0 emits PTX ISA 9.0, which the driver on the GPU machines (580, CUDA
# 13.0) can JIT; newer nvcc emits PTX those drivers reject. All five wheels are needed: nvcc
# alone lacks cicc (nvvm), the crt headers, cuda_runtime.h (runtime) and <nv/target> (cccl),
# and unpinned companions resolve to newer, mismatched versions.
#
# The pip layout needs no PATH or CUDA_HOME changes: bin/nvcc.profile points nvcc at ../nvvm/bin
# (cicc), its own dir (ptxas, fatbinary) and ../include. A host C++ compiler (g++) must be on
# PATH. Other tools that run plain `nvcc` (cudarc's build script does) still need
# "$(dirname "$NVCC")" on PATH.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${BLURPOOL_TOOLS_DIR:-$REPO/.tools}
DEST=$TOOLS_DIR/nvcc
NVCC=$DEST/nvidia/cu13/bin/nvcc
WANT_RELEASE=13.0
PACKAGES=(
    "nvidia-cuda-nvcc==13.0.88"
    "nvidia-nvvm==13.0.88"
    "nvidia-cuda-crt==13.0.88"
    "nvidia-cuda-runtime==13.0.96"
    "nvidia-cuda-cccl==13.0.85"
    # libnvrtc: not needed by nvcc, but lets the tests exercise the run-time (NVRTC) compile
    # path on machines without a GPU (put nvidia/cu13/lib on LD_LIBRARY_PATH).
    "nvidia-cuda-nvrtc==13.0.88"
)

log() { echo "install-nvcc: $*" >&2; }

# True if $NVCC runs and says "release 13.0".
has_release() {
    [[ -x $NVCC ]] && "$NVCC" --version 2>/dev/null | grep -q "release $WANT_RELEASE,"
}

# True if $NVCC compiles a kernel that needs every wheel (cuda_fp16.h → runtime + crt headers,
# cicc from nvvm, ptxas) to a fatbin with SASS and PTX.
compiles() {
    local tmp rc=0
    tmp=$(mktemp -d)
    cat >"$tmp/smoke.cu" <<'EOF'
#include <cuda_fp16.h>
extern "C" __global__ void smoke(__half* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = __float2half(__half2float(x[i]) * 2.0f);
}
EOF
    "$NVCC" --fatbin -O3 -std=c++17 \
        -gencode arch=compute_80,code=sm_80 -gencode arch=compute_80,code=compute_80 \
        -o "$tmp/smoke.fatbin" "$tmp/smoke.cu" >&2 || rc=$?
    [[ $rc -eq 0 && -s $tmp/smoke.fatbin ]] || rc=1
    rm -rf "$tmp"
    return $rc
}

# The check of an existing install is quiet: a broken one is simply reinstalled.
if has_release && [[ -e $DEST/nvidia/cu13/lib/libnvrtc.so.13 ]] && compiles 2>/dev/null; then
    log "nvcc $WANT_RELEASE already installed in $DEST"
else
    log "installing ${PACKAGES[*]} into $DEST (about 300 MB)"
    mkdir -p "$DEST"
    # --upgrade makes pip replace a partial or different install in --target.
    python3 -m pip install --no-input --disable-pip-version-check --upgrade \
        --target "$DEST" "${PACKAGES[@]}" >&2
    if ! has_release; then
        log "ERROR: $NVCC does not report release $WANT_RELEASE after installing:"
        "$NVCC" --version >&2 || true
        exit 1
    fi
    if ! compiles; then
        log "ERROR: $NVCC could not compile a test kernel (is a host g++ on PATH?)"
        exit 1
    fi
    log "installed; test kernel compiled"
fi

echo "$NVCC"
