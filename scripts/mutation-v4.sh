#!/bin/bash
# Mutation check of the v4 strip code (issue 25): each mutation is applied to a copy of the
# working tree, the emulated v4 tests run (`cargo test --test emulated -- strip4 nan_and_inf`),
# and the mutation must make them fail. Prints CAUGHT/ESCAPED per mutation; logs in $MUT_DIR.
# Needs only cargo and a C++ compiler (no nvcc, no GPU); about 1–3 minutes per mutation.
#   bash scripts/mutation-v4.sh            # all of them
#   bash scripts/mutation-v4.sh NAME...    # only those
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
MUT_DIR=${MUT_DIR:-/tmp/blurpool-mutation}
mkdir -p "$MUT_DIR"
work=$MUT_DIR/tree
export CARGO_TARGET_DIR=$MUT_DIR/target
unset BLURPOOL_REQUIRE_NVCC NVCC
[ -f "$src/Cargo.toml" ] && [ -d "$src/kernels" ] || { echo "not a blurpool checkout: $src" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
# Tracked and untracked-but-not-ignored files only (no build outputs).
(cd "$src" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$work"
(cd $work && timeout 900 cargo test --release -q --test emulated -- strip4 nan_and_inf >$MUT_DIR/baseline.log 2>&1) || { echo "BASELINE FAILS"; exit 1; }
echo "baseline passes"
only=("$@")
run() { # name file old new
  local name=$1 file=$2 old=$3 new=$4
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then return; fi
  cp $work/$file $MUT_DIR/orig
  python3 - "$work/$file" "$old" "$new" <<'PY'
import sys
p,old,new=sys.argv[1:]
s=open(p).read()
assert s.count(old)>=1, ("not found", old)
s=s.replace(old,new,1)
open(p,'w').write(s)
PY
  [ $? -eq 0 ] || { echo "ERROR   $name: mutation not applied"; return; }
  (cd $work && timeout 600 cargo test --release -q --test emulated -- strip4 nan_and_inf >$MUT_DIR/$name.log 2>&1)
  rc=$?
  cp $MUT_DIR/orig $work/$file
  if [ $rc -ne 0 ]; then
    echo "CAUGHT  $name by: $(sed -n '/^failures:$/,/^test result/p' $MUT_DIR/$name.log | grep -E '^    [a-z0-9_]+$' | sort -u | tr -d ' ' | tr '\n' ' ')"
  else
    echo "ESCAPED $name"
  fi
}
run hmax_drops_max kernels/pool_forward.cu 'for (int b = 1; b < K; ++b) h[v] = bp_vec_max_nan<T>(h[v], e[v + b]);' 'for (int b = 1; b < K; ++b) h[v] = bp_vec_max_nan<T>(h[v], e[v]);'
run span_start_off_by_one kernels/pool_forward.cu 'bp_load_u128(row + (it.qs[0] - mpx + t) * it.col_stride)' 'bp_load_u128(row + (it.qs[0] - mpx + t + 1) * it.col_stride)'
run vertical_max_skips_row kernels/pool_forward.cu 'for (int a = 1; a < K; ++a) best = bp_vec_max_nan<T>(best, hx[a][v]);' 'for (int a = 2; a < K; ++a) best = bp_vec_max_nan<T>(best, hx[a][v]);'
run unpack_swaps_halves kernels/common.cuh 'out[k] = bp_to_f32(T{(unsigned short)(v.v[k / 2] >> (16 * (k % 2)))});' 'out[k] = bp_to_f32(T{(unsigned short)(v.v[k / 2] >> (16 * (1 - k % 2)))});'
run pack_drops_high kernels/common.cuh '| ((unsigned)bp_from_f32<T>(in[2 * w + 1]).bits << 16);' '| ((unsigned)bp_from_f32<T>(in[2 * w]).bits << 16);'
# (Dropping the test of the second operand only is an equivalent mutant: `fa > fb ? a : b` then
# returns the NaN b itself. Dropping the first one's loses the NaN.)
run nan_first_operand_lost kernels/common.cuh 'if (fa != fa || fb != fb) return qnan;' 'if (fb != fb) return qnan;'
run fits_ignores_alignment kernels/strip.cuh '&& (bits & 15) == 0 &&' '&&'
run edge_path_ignores_bounds kernels/pool_forward.cu '                if (col < 0 || col >= W) continue;
                h[v] = bp_vec_max_nan<T>' '                if (col < 0) continue;
                h[v] = bp_vec_max_nan<T>'
run neg_inf_bf16_as_f16 kernels/common.cuh '(bp_is_bf16<T>::value ? 0xff80ff80u : 0xfc00fc00u)' '0xfc00fc00u'
run group_split_wrong kernels/strip.cuh '            c0 = g * V;
            bp_divmod(rest, WO' '            c0 = g * 2;
            bp_divmod(rest, WO'
# NCHW v4 (bp_strip4_nchw_max_map, the column-group walk)
run nchw_shift_drops_odd_start kernels/pool_forward.cu 'x[i] = (PER == 1 || SH % 2 == 0) ? lo : (lo >> 16) | (hi << 16);' 'x[i] = lo;'
run nchw_pair_shift_wrong kernels/pool_forward.cu 'return e % 2 == 0 ? x[w] : (x[w] >> 16) | (x[w + 1] << 16);' 'return x[w];'
# (Equivalent since edge columns are split off: groups start at first_column, so the span's
# start inside its chunk is 0 or 1 and the last chunk is never needed. Kept as a check that
# stays meaningful if the split changes.)
run nchw_last_chunk_skipped kernels/pool_forward.cu 'if (k * lanes < o + E) v = bp_load_u128(base + k * lanes);' 'if (k * lanes < E) v = bp_load_u128(base + k * lanes);'
# (Equivalent: the map-column bound in covers() implies j + lanes <= WO.)
run nchw_partial_group_vectorised kernels/pool_forward.cu 'return j + lanes <= WO && q0 >= 0' 'return q0 >= 0'
run nchw_vector_store_any_row kernels/strip.cuh '(WO % V == 0 && j_left % V == 0 &&' '(j_left % V == 0 &&'
run nchw_vector_store_unaligned_groups kernels/strip.cuh '(WO % V == 0 && j_left % V == 0 &&' '(WO % V == 0 &&'
run nchw_map_column_stride kernels/pool_forward.cu 'const int e = S * k + v;' 'const int e = k + v;'
