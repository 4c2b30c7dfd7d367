#!/usr/bin/env bash
# Installs the pinned nvdisasm and cuobjdump (CUDA 13.2, PyPI wheels) that the performance model
# (blurpool-model) uses to read the sm_90 SASS of our nvcc 13.0 cubins. No root, no toolkit.
#
#   scripts/install-sass-tools.sh        # prints the bin directory on its last line
#
# Where: $BLURPOOL_TOOLS_DIR/sass, default <repo>/.tools/sass (git-ignored); blurpool-model finds
# the tools there by itself (or via BLURPOOL_NVDISASM / BLURPOOL_CUOBJDUMP, next to $NVCC, PATH).
# Why 13.2: the 13.0 wheels of these two tools are not on PyPI; 13.2 reads 13.0 cubins.
# Idempotent: an install whose nvdisasm reports release 13.2 is kept.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${BLURPOOL_TOOLS_DIR:-$REPO/.tools}
DEST=$TOOLS_DIR/sass
BIN=$DEST/nvidia/cu13/bin
PACKAGES=("nvidia-cuda-nvdisasm==13.2.86" "nvidia-cuda-cuobjdump==13.2.86")

log() { echo "install-sass-tools: $*" >&2; }
ok() { [[ -x $BIN/nvdisasm && -x $BIN/cuobjdump ]] && "$BIN/nvdisasm" --version 2>/dev/null | grep -q "release 13.2"; }

if ok; then
    log "nvdisasm/cuobjdump 13.2 already installed in $DEST"
else
    log "installing ${PACKAGES[*]} into $DEST"
    mkdir -p "$DEST"
    python3 -m pip install --no-input --disable-pip-version-check --upgrade --no-deps \
        --target "$DEST" "${PACKAGES[@]}" >&2
    chmod +x "$BIN/nvdisasm" "$BIN/cuobjdump" 2>/dev/null || true
    if ! ok; then
        log "ERROR: $BIN/nvdisasm does not report release 13.2 after installing"
        exit 1
    fi
fi
echo "$BIN"
