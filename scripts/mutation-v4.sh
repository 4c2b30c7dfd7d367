#!/bin/bash
# Mutation check of the v4 code (issue 25): each mutation is applied to a copy of the working
# tree, the emulated v4 tests run (`cargo test --test emulated -- $MUT_TESTS`, default
# `strip4 nan_and_inf`; the tensor-core mutations, tc4_*: MUT_TESTS=tensor_core), and the
# mutation must make them fail. Prints CAUGHT/ESCAPED per mutation; logs in $MUT_DIR.
# Needs only cargo and a C++ compiler (no nvcc, no GPU); about 1–3 minutes per mutation.
#   bash scripts/mutation-v4.sh            # all of them
#   bash scripts/mutation-v4.sh NAME...    # only those
#   MUT_TESTS=tensor_core bash scripts/mutation-v4.sh tc4_a_half_wrong ...
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
MUT_DIR=${MUT_DIR:-/tmp/blurpool-mutation}
mkdir -p "$MUT_DIR"
work=$MUT_DIR/tree
export CARGO_TARGET_DIR=$MUT_DIR/target
unset BLURPOOL_REQUIRE_NVCC NVCC
read -r -a tests <<< "${MUT_TESTS:-strip4 nan_and_inf}"
[ -f "$src/Cargo.toml" ] && [ -d "$src/kernels" ] || { echo "not a blurpool checkout: $src" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
# Tracked and untracked-but-not-ignored files only (no build outputs).
(cd "$src" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$work"
(cd $work && timeout 900 cargo test --release -q --test emulated -- "${tests[@]}" >$MUT_DIR/baseline.log 2>&1) || { echo "BASELINE FAILS"; exit 1; }
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
  (cd $work && timeout 600 cargo test --release -q --test emulated -- "${tests[@]}" >$MUT_DIR/$name.log 2>&1)
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
run nchw_shift_drops_odd_start kernels/strip.cuh 'x[i] = (PER == 1 || SH % 2 == 0) ? lo : (lo >> 16) | (hi << 16);' 'x[i] = lo;'
run nchw_pair_shift_wrong kernels/strip.cuh 'return e % 2 == 0 ? x[w] : (x[w] >> 16) | (x[w + 1] << 16);' 'return x[w];'
# (Equivalent for the pooling maps: groups start at first_column, so the span's start inside
# its chunk is 0 or 1 and the last chunk is never needed there; the depthwise map's longer
# span (E = M + 2) needs it, and its tests catch this.)
run nchw_last_chunk_skipped kernels/strip.cuh 'if (k * V < o + E) v = bp_load_u128(base + k * V);' 'if (k * V < E) v = bp_load_u128(base + k * V);'
# (Equivalent: the map-column bound in covers() implies j + lanes <= WO.)
run nchw_partial_group_vectorised kernels/pool_forward.cu 'return j + lanes <= WO && q0 >= 0' 'return q0 >= 0'
run nchw_vector_store_any_row kernels/strip.cuh '(WO % V == 0 && j_left % V == 0 &&' '(j_left % V == 0 &&'
run nchw_vector_store_unaligned_groups kernels/strip.cuh '(WO % V == 0 && j_left % V == 0 &&' '(WO % V == 0 &&'
run nchw_map_column_stride kernels/pool_forward.cu 'const int e = S * k + v;' 'const int e = k + v;'
# Depthwise v4 (kernels/conv_forward.cu: bp_strip4_dwconv_map, bp_strip4_nchw_dwconv_map)
run dw_taps_transposed kernels/conv_forward.cu 'for (int k = 0; k < lanes; ++k) acc[a][v][k] += wk[I - a][tap][k] * px[k];' 'for (int k = 0; k < lanes; ++k) acc[a][v][k] += wk[tap][I - a][k] * px[k];'
run dw_vector_taps_scattered kernels/conv_forward.cu 'wk[tap / KC][tap % KC][i / TAPS] = f[e];' 'wk[tap % KC][tap / KC][i / TAPS] = f[e];'
run dw_scalar_taps_wrong kernels/conv_forward.cu 'wk[a][t][k] = bp_to_f32(bp_ld(base + (k * KC + a) * KC + t));' 'wk[a][t][k] = bp_to_f32(bp_ld(base + (k * KC + t) * KC + a));'
run dw_vector_bias_dropped kernels/conv_forward.cu 'if (has_bias) to_f32(ld(b + it.c0), bias);' ''
run dw_edge_ignores_bounds kernels/conv_forward.cu '                    if (col < 0 || col >= W) continue;
                    float px[lanes];' '                    if (col < 0) continue;
                    float px[lanes];'
run dw_partial_sums_not_shifted kernels/conv_forward.cu 'for (int k = 0; k < lanes; ++k) acc[a][v][k] = acc[a + 1][v][k];' 'for (int k = 0; k < lanes; ++k) acc[a][v][k] = acc[a][v][k];'
run dw_nchw_partial_sums_not_reset kernels/conv_forward.cu 'for (int i = 0; i < M; ++i) acc[KC - 1][i] = bias;' ''
run dw_fast_span_off_by_one kernels/conv_forward.cu 'e[t] = ld(rowp + (it.q0 - cpx + t) * it.col_stride);' 'e[t] = ld(rowp + (it.q0 - cpx + t + 1) * it.col_stride);'
run dw_nchw_taps_flipped kernels/conv_forward.cu 'if (col >= 0 && col < M) z[col] += wk[a][t] * xf;' 'if (col >= 0 && col < M) z[col] += wk[a][KC - 1 - t] * xf;'
run dw_nchw_row_padding kernels/conv_forward.cu 'if (yy < 0 || yy >= H) continue; // zero padding rows of the conv' 'if (yy < 0) continue; // zero padding rows of the conv'
run dw_nchw_map_column_stride kernels/conv_forward.cu 'm[v][k] = bp_activate(z[S * k + v], act);' 'm[v][k] = bp_activate(z[k + v], act);'
# NCHW v4 item order (kernels/strip.cuh: chunks of 32 rows, groups then edge columns)
run nchw_chunk_last_partial kernels/strip.cuh 'const bool vec = li < rc * (G + TG);' 'const bool vec = li < 32 * (G + TG);'
run nchw_chunk_row_index kernels/strip.cuh 'bp_divmod(32 * chunk + row, strips, rcp_strips, rest, strip);' 'bp_divmod(row, strips, rcp_strips, rest, strip);'
# NCHW v4 tail group (kernels/strip.cuh: V columns ending at the last interior one, last in its
# row's vector items). Equivalent mutants, not listed: edges starting a column early or the tail
# a column early (the v2 walk then computes or rewrites those columns, with the same bits), and
# dropping tail_from's covers() test (every tail it returns covers: end − V lies past j_left).
run nchw_tail_store_skips_column kernels/strip.cuh 'tail ? j_left + G * V - j_tail : 0);' 'tail ? j_left + G * V - j_tail + 1 : 0);'
run nchw_tail_starts_early kernels/strip.cuh 'const int j = tail ? j_tail : j_left + (int)jl * V;' 'const int j = tail ? j_tail - 1 : j_left + (int)jl * V;'
run nchw_tail_missing kernels/strip.cuh 'const int TG = j_tail >= 0 ? 1 : 0;' 'const int TG = 0;'
run nchw_tail_first_in_row kernels/strip.cuh 'const bool tail = jl == G;' 'const bool tail = jl == 0;'
# Tensor-core v4 (kernels/conv_forward.cu: bp_convblurpool_tc4_run, bp_tc4_stage,
# bp_pack_tc4_weights); run with MUT_TESTS=tensor_core.
run tc4_a_half_wrong kernels/conv_forward.cu 'const int a_half = lane >> 4;' 'const int a_half = (lane >> 3) & 1;'
run tc4_b_row_wrong kernels/conv_forward.cu 'const int b_row = (lane >> 4) * 8 + (lane & 7)' 'const int b_row = (lane & 7)'
run tc4_wait_dropped kernels/conv_forward.cu '            bp_cp_async_wait_all();
            __syncthreads(); // stage s is in shared memory' '            __syncthreads(); // stage s is in shared memory'
run tc4_unswizzled_store kernels/conv_forward.cu 'bp_st(in_s + bp_tc4_at(pix, k >> 3) + (k & 7), v);' 'bp_st(in_s + pix * BP_TC4_ROW + k, v);'
run tc4_next_stage_weights kernels/conv_forward.cu 'wt + (long long)(s + 1) * BP_TC4_W_HALVES' 'wt + (long long)s * BP_TC4_W_HALVES'
run tc4_last_stage_skipped kernels/conv_forward.cu 'if (s + 1 < stages) {' 'if (s + 2 < stages) {'
run tc4_one_buffer kernels/conv_forward.cu '((s + 1) & 1) * D4::STAGE_HALVES' '(s & 1) * D4::STAGE_HALVES'
run tc4_zero_fill_dropped kernels/conv_forward.cu 'inside ? x + L::offset(n, ci, iy, ix, C, H, W) : x, inside);' 'inside ? x + L::offset(n, ci, iy, ix, C, H, W) : x, true);'
run tc4_pack_taps_flipped kernels/conv_forward.cu 'bp_ld(w + ((co * C + ci) * 9 + tap))' 'bp_ld(w + ((co * C + ci) * 9 + (8 - tap)))'
run tc4_pack_channel_bound kernels/conv_forward.cu 'if (co < CO && ci < C) v = bp_ld(w + ((co * C + ci)' 'if (co < CO) v = bp_ld(w + ((co * C + ci)'
# The epilogue both tensor-core forwards share (bp_tc_epilogue, bp_tc_decode_tile).
run tc_epilogue_bias_channel kernels/conv_forward.cu 'v += bp_to_f32(bp_ld(b + (tl.co0 + nl)));' 'v += bp_to_f32(bp_ld(b + nl));'
run tc_epilogue_partial_rows kernels/conv_forward.cu 'if (li >= tl.ni || lj >= tl.nj' 'if (li >= tl.nj || lj >= tl.nj'
run tc_decode_first_map_row kernels/conv_forward.cu 'tl.r0 = bp_tc_first_source(tl.i0, tl.ni, taps, p.pad_top' 'tl.r0 = bp_tc_first_source(tl.i0, tl.ni, taps, p.pad_left'
