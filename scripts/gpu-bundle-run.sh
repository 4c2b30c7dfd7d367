#!/usr/bin/env bash
# Runs on the GPU host, from inside the bundle made by scripts/gpu-bundle.sh:
#   ./run.sh [OUT_DIR] [PHASE...]      (phases: tests sanitize bench criterion; default: all)
# tests:     the GPU tests (forward and backward matrix + edge cases, incl. the >2^31-element
#            tensor and 100-run determinism), and the CPU-side and golden tests;
# sanitize:  the four compute-sanitizer tools over a reduced matrix (`blurpool verify`: every
#            operator × dtype × layout × pad mode, forward and backward);
# bench:     `blurpool bench` over the suite: OUT_DIR/bench/bench.{json,csv,svg}, host_overhead.json + bench.log;
# criterion: the criterion benches (bench-fused.log, criterion reports in OUT_DIR/criterion);
# ncu:       (not in the default) Nsight Compute's full set on one launch of the sm_90a wgmma
#            dense conv, f16 NHWC 64×256×56×56 (ncu-wgmma.csv, raw page): its shared-memory
#            wavefronts settle the model's assumption that a warpgroup's wgmma reads B once
#            (notes/kernels.md); ≤ BLURPOOL_TIMEOUT_NCU s (150), e.g. `./run.sh OUT ncu`.
# Every phase appends to OUT_DIR/summary.txt. Each command runs under `timeout` (seconds, from
# BLURPOOL_TIMEOUT_TESTS / _SANITIZE (per tool) / _BENCH / _CRITERION; defaults 240 a test binary, 60, 420, 150, so
# that "tests sanitize" and "bench criterion" each fit one 10-minute device call), and a phase
# that runs out says so in the summary (exit 124) instead of taking the call's other phases with it.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/results}
shift || true
PHASES=${*:-tests sanitize bench criterion}
mkdir -p "$OUT"
cd "$HERE"
export BLURPOOL_GOLDEN_DIR=$HERE/tests/golden
summary=$OUT/summary.txt
say() { echo "$*" | tee -a "$summary"; }
want() { [[ " $PHASES " == *" $1 "* ]]; }
T_TESTS=${BLURPOOL_TIMEOUT_TESTS:-240}
T_SANITIZE=${BLURPOOL_TIMEOUT_SANITIZE:-60}
T_BENCH=${BLURPOOL_TIMEOUT_BENCH:-420}
T_CRITERION=${BLURPOOL_TIMEOUT_CRITERION:-150}
T_NCU=${BLURPOOL_TIMEOUT_NCU:-150}
ran_out() { [[ $1 -eq 124 ]] && echo " (TIMED OUT after $2 s)"; }

# libnvrtc (for the NVRTC-path tests): the toolkit's, or the one in Python's nvidia wheels.
nvrtc=$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)
[[ -n $nvrtc ]] || nvrtc=$(python3 -c 'import nvidia, os; print(next(iter(nvidia.__path__)))' 2>/dev/null | xargs -I{} find {} -name 'libnvrtc.so*' 2>/dev/null | head -1)
[[ -n $nvrtc ]] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# libcudnn (for the cuDNN baselines): the toolkit's, or the nvidia-cudnn wheel PyTorch uses.
cudnn=$(ls /usr/lib/x86_64-linux-gnu/libcudnn.so.9* /usr/local/cuda/lib64/libcudnn.so.9* 2>/dev/null | head -1)
[[ -n $cudnn ]] || cudnn=$(python3 -c 'import nvidia, os; print(next(iter(nvidia.__path__)))' 2>/dev/null | xargs -I{} find {} -name 'libcudnn.so.9*' 2>/dev/null | head -1)
[[ -n $cudnn ]] && export LD_LIBRARY_PATH="$(dirname "$cudnn")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

say "blurpool GPU bundle, commit $(cat COMMIT), $(date -u +%Y-%m-%dT%H:%MZ), phases: $PHASES"
say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)"
say "libnvrtc: ${nvrtc:-not found}; libcudnn: ${cudnn:-not found}"

status=0
run_test() { # name, binary, extra env...
    local name=$1 bin=$2
    shift 2
    # --include-ignored: the GPU tests are #[ignore]d where there is no GPU; here they must run.
    timeout "$T_TESTS" env "$@" "bin/$bin" --include-ignored --test-threads=1 --nocapture >"$OUT/$name.log" 2>&1
    local rc=$?
    [[ $rc -eq 0 ]] || status=1
    say "== $name: exit $rc$(ran_out $rc "$T_TESTS"); $(grep -E '^test result' "$OUT/$name.log" | tail -1)"
    grep -E 'cases run|SKIPPED|passed$|agree|bitwise|matches' "$OUT/$name.log" | sed 's/^/   /' | tee -a "$summary" >/dev/null
}
if want tests; then
    run_test gpu-tests gpu BLURPOOL_BIG_TESTS=1
    run_test cpu-side cpu_side
    run_test golden golden
fi

sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if ! want sanitize; then
    :
elif [[ -z $sanitizer ]]; then
    say "== compute-sanitizer: NOT FOUND"
    status=1
else
    for tool in memcheck racecheck initcheck synccheck; do
        timeout "$T_SANITIZE" "$sanitizer" --tool "$tool" --error-exitcode 3 bin/blurpool verify --seed 1 >"$OUT/sanitizer-$tool.log" 2>&1
        rc=$?
        [[ $rc -eq 0 ]] || status=1
        say "== compute-sanitizer --tool $tool: exit $rc$(ran_out $rc "$T_SANITIZE"); $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer-$tool.log" | tail -1)"
    done
fi
if want bench; then
    timeout "$T_BENCH" bin/blurpool bench --quiet --out "$OUT/bench" >"$OUT/bench.log" 2>&1
    rc=$?
    [[ $rc -eq 0 ]] || status=1
    say "== blurpool bench: exit $rc$(ran_out $rc "$T_BENCH"); $(grep -c . "$OUT/bench/bench.csv" 2>/dev/null) csv lines (bench.log, bench/)"
fi
if want criterion; then
    CRITERION_HOME=$OUT/criterion timeout "$T_CRITERION" bin/bench-fused --bench >"$OUT/bench-fused.log" 2>&1
    rc=$?
    [[ $rc -eq 0 ]] || status=1
    say "== criterion: exit $rc$(ran_out $rc "$T_CRITERION"); $(grep -c 'thrpt:' "$OUT/bench-fused.log") benchmarks (bench-fused.log)"
fi
if want ncu; then
    ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    if [[ -z $ncu ]]; then
        say "== ncu: NOT FOUND"
        status=1
    else
        timeout "$T_NCU" "$ncu" --kernel-name regex:wgmma --launch-count 1 --set full --csv --page raw \
            --log-file "$OUT/ncu-wgmma.csv" \
            bin/blurpool bench --quiet --shape 64,256,56,56 --ops conv_blur_pool_dense --dtypes f16 \
            --layouts nhwc --min-samples 1 --max-samples 1 --out "$OUT/ncu-bench" >"$OUT/ncu-wgmma.log" 2>&1
        rc=$?
        [[ $rc -eq 0 ]] || status=1
        say "== ncu (wgmma conv): exit $rc$(ran_out $rc "$T_NCU"); $(grep -c wgmma "$OUT/ncu-wgmma.csv") rows naming the kernel (ncu-wgmma.csv, ncu-wgmma.log)"
    fi
fi
say "overall ($PHASES): $([[ $status -eq 0 ]] && echo PASS || echo FAIL)"
exit $status
