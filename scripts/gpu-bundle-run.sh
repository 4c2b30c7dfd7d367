#!/usr/bin/env bash
# Runs on the GPU host, from inside the bundle made by scripts/gpu-bundle.sh:
#   ./run.sh [OUT_DIR]
# 1. the GPU tests (full matrix + edge cases, incl. the >2^31-element tensor), and the CPU-side
#    and golden tests; 2. the four compute-sanitizer tools over a reduced matrix (`blurpool
#    verify`: every operator × dtype × layout × pad mode); 3. OUT_DIR/summary.txt.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/results}
mkdir -p "$OUT"
cd "$HERE"
export BLURPOOL_GOLDEN_DIR=$HERE/tests/golden
summary=$OUT/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }

# libnvrtc (for the NVRTC-path tests): the toolkit's, or the one in Python's nvidia wheels.
nvrtc=$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)
[[ -n $nvrtc ]] || nvrtc=$(python3 -c 'import nvidia, os; print(next(iter(nvidia.__path__)))' 2>/dev/null | xargs -I{} find {} -name 'libnvrtc.so*' 2>/dev/null | head -1)
[[ -n $nvrtc ]] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

say "blurpool GPU bundle, commit $(cat COMMIT), $(date -u +%Y-%m-%dT%H:%MZ)"
say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)"
say "libnvrtc: ${nvrtc:-not found}"

status=0
run_test() { # name, binary, extra env...
    local name=$1 bin=$2
    shift 2
    env "$@" "bin/$bin" --test-threads=1 --nocapture >"$OUT/$name.log" 2>&1
    local rc=$?
    [[ $rc -eq 0 ]] || status=1
    say "== $name: exit $rc; $(grep -E '^test result' "$OUT/$name.log" | tail -1)"
    grep -E 'cases run|SKIPPED|passed$|agree|bitwise|matches' "$OUT/$name.log" | sed 's/^/   /' | tee -a "$summary" >/dev/null
}
run_test gpu-tests gpu BLURPOOL_BIG_TESTS=1
# On a GPU host a skipped GPU test is a failure: the point of the bundle is that they run.
if grep -q SKIPPED "$OUT/gpu-tests.log"; then
    say "== gpu-tests: some GPU tests SKIPPED on this host (see gpu-tests.log): FAIL"
    status=1
fi
run_test cpu-side cpu_side
run_test golden golden

sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [[ -z $sanitizer ]]; then
    say "== compute-sanitizer: NOT FOUND"
    status=1
else
    for tool in memcheck racecheck initcheck synccheck; do
        "$sanitizer" --tool "$tool" --error-exitcode 3 bin/blurpool verify --seed 1 >"$OUT/sanitizer-$tool.log" 2>&1
        rc=$?
        [[ $rc -eq 0 ]] || status=1
        say "== compute-sanitizer --tool $tool: exit $rc; $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer-$tool.log" | tail -1)"
    done
fi
say "overall: $([[ $status -eq 0 ]] && echo PASS || echo FAIL)"
exit $status
