#!/usr/bin/env bash
# Builds, here, everything a GPU run needs into one git-ignored folder (default gpu-bundle/)
# that runs on any x86-64 Linux host with an NVIDIA driver and no Rust toolchain:
#
#   scripts/gpu-bundle.sh            # build (release) and collect
#   gpu-bundle/run.sh [OUT_DIR] [PHASE...]   # on the GPU host (phases: tests sanitize bench
#                                            # criterion, default; and ncu): summary in OUT_DIR
#
# The bundle holds the release test binaries (gpu, cpu_side, golden + the golden files they
# read), the criterion bench binary and the `blurpool` CLI, each with the fatbin embedded and
# built with the `cudnn` feature (the cuDNN baselines; libcudnn is loaded at run time).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-$REPO/gpu-bundle}
cd "$REPO"

if [[ -z ${NVCC:-} ]]; then
    NVCC=$(scripts/install-nvcc.sh | tail -1)
fi
export NVCC BLURPOOL_REQUIRE_NVCC=1 CUDARC_CUDA_VERSION=13000
export PATH="$(dirname "$NVCC"):$PATH"

# Cargo prints each built executable as JSON; keep those of the named targets.
executables() {
    python3 -c '
import json, sys
want = set(sys.argv[1:])
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in want:
        print(m["target"]["name"], m["executable"])
' "$@"
}

rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/tests/golden"
cargo test --release --no-run --message-format=json -p blurpool --features cudnn --test gpu --test cpu_side --test golden 2>/dev/null |
    executables gpu cpu_side golden | while read -r name exe; do cp "$exe" "$DEST/bin/$name"; done
cargo bench --no-run --message-format=json -p blurpool --features cudnn --bench fused 2>/dev/null |
    executables fused | while read -r name exe; do cp "$exe" "$DEST/bin/bench-$name"; done
# The CLI (blurpool-cli); its path comes from cargo, so CARGO_TARGET_DIR is honoured.
cargo build --release --message-format=json -p blurpool-cli --features cudnn --bin blurpool 2>/dev/null |
    executables blurpool | while read -r name exe; do cp "$exe" "$DEST/bin/$name"; done
cp tests/golden/*.safetensors "$DEST/tests/golden/"
for b in gpu cpu_side golden bench-fused blurpool; do
    [[ -x $DEST/bin/$b ]] || { echo "gpu-bundle: missing $b" >&2; exit 1; }
done
strip "$DEST"/bin/* 2>/dev/null || true
git rev-parse HEAD >"$DEST/COMMIT"
cp scripts/gpu-bundle-run.sh "$DEST/run.sh"
chmod +x "$DEST/run.sh"
du -sh "$DEST"
echo "gpu-bundle: ready in $DEST (run: $DEST/run.sh OUT_DIR)"
