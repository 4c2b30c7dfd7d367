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
run group_split_wrong kernels/strip.cuh '                c0 = g * V;
                bp_divmod(rest, WO' '                c0 = g * 2;
                bp_divmod(rest, WO'
# NCHW v4 (bp_strip4_nchw_max_map, the column-group walk)
run nchw_shift_drops_odd_start kernels/strip.cuh 'const unsigned half = PER == 2 ? 16u * (unsigned)(o % 2) : 0u;' 'const unsigned half = 0u;'
run nchw_shift_two_words_dropped kernels/strip.cuh 't[i] = (CWD > 2 && (wq & 2)) ? by2 : by0;' 't[i] = by0;'
run nchw_shift_one_word_dropped kernels/strip.cuh 'u[i] = (wq & 1) ? t[i + 1] : t[i];' 'u[i] = t[i];'
run nchw_pair_shift_wrong kernels/strip.cuh 'return e % 2 == 0 ? x[w] : (x[w] >> 16) | (x[w + 1] << 16);' 'return x[w];'
run nchw_last_chunk_skipped kernels/strip.cuh 'chunk(row + (first + k) * CE, k * CE < o + E && inside, fill, w);' 'chunk(row + (first + k) * CE, k * CE < E && inside, fill, w);'
run nchw_map_column_stride kernels/pool_forward.cu 'const int e = S * k + v;' 'const int e = k + v;'
# NCHW v4 edges on the vector path (2026-12-06: chunks outside the row, the blur's padding
# columns, the tail group, the narrowed stores; kernels/strip.cuh)
run nchw_chunk_past_row_loaded kernels/strip.cuh 'const bool inside = (unsigned)(first + k) < chunks;' 'const bool inside = first + k >= 0;'
run nchw_chunk_left_of_row_loaded kernels/strip.cuh 'const bool inside = (unsigned)(first + k) < chunks;' 'const bool inside = first + k < (int)chunks;'
run nchw_max_fill_zero kernels/pool_forward.cu 'W, bp_word_neg_inf<T>(), x);' 'W, 0u, x);'
run nchw_dw_fill_neg_inf kernels/conv_forward.cu '(it.plane + yy * it.row_stride, it.q0 - cpx, W, 0u, near, x);' '(it.plane + yy * it.row_stride, it.q0 - cpx, W, 0xff800000u, near, x);'
run nchw_pad_left_reflect_off kernels/strip.cuh 'bp_strip4_entry<F, S, V>(m, 2 * P - e);' 'bp_strip4_entry<F, S, V>(m, 2 * P - e - 1);'
run nchw_pad_left_replicate_off kernels/strip.cuh 'const float replicate = bp_strip4_entry<F, S, V>(m, P);' 'const float replicate = bp_strip4_entry<F, S, V>(m, P + 1);'
run nchw_pad_left_zero_kept kernels/strip.cuh '            if (e >= P) continue;
            const float reflect = bp_strip4_entry<F, S, V>(m, 2 * P - e);
            const float replicate = bp_strip4_entry<F, S, V>(m, P);
            m[v][k] = mode == BP_PAD_REFLECT ? reflect : (mode == BP_PAD_REPLICATE ? replicate : 0.f);' '            if (e >= P) continue;
            const float reflect = bp_strip4_entry<F, S, V>(m, 2 * P - e);
            const float replicate = bp_strip4_entry<F, S, V>(m, P);
            m[v][k] = mode == BP_PAD_REFLECT ? reflect : (mode == BP_PAD_REPLICATE ? replicate : m[v][k]);'
run nchw_pad_right_reflect_off kernels/strip.cuh 'bp_strip4_entry<F, S, V>(m, 2 * (L - 1) - e);' 'bp_strip4_entry<F, S, V>(m, 2 * L - 1 - e);'
run nchw_pad_right_replicate_off kernels/strip.cuh 'const float replicate = bp_strip4_entry<F, S, V>(m, L - 1);' 'const float replicate = bp_strip4_entry<F, S, V>(m, L - 2);'
run nchw_pad_right_count_short kernels/strip.cuh 'pad_r = it.q0 + Map::M > WM ? it.q0 + Map::M - WM : 0;' 'pad_r = it.q0 + Map::M > WM + 1 ? it.q0 + Map::M - WM - 1 : 0;'
run nchw_pad_left_case_wrong kernels/strip.cuh 'case 2: bp_mark(); bp_strip4_pad_left<F, S, V, 2>(m, mode); break;' 'case 2: bp_mark(); bp_strip4_pad_left<F, S, V, 1>(m, mode); break;'
run nchw_pad_right_case_wrong kernels/strip.cuh 'case 2: bp_mark(); bp_strip4_pad_right<F, S, V, 2>(m, mode); break;' 'case 2: bp_mark(); bp_strip4_pad_right<F, S, V, 1>(m, mode); break;'
run nchw_pad_left_widest_case kernels/strip.cuh 'default: bp_mark(); bp_strip4_pad_left<F, S, V, 3>(m, mode); break;' 'default: bp_mark(); bp_strip4_pad_left<F, S, V, 2>(m, mode); break;'
run nchw_plan_wide_pads src/cuda/plan.rs 'const NCHW_MAX_PAD: i64 = 3;' 'const NCHW_MAX_PAD: i64 = 4;'
run nchw_tail_store_skips_column kernels/strip.cuh 'k_first = j - (WO - V);' 'k_first = j - (WO - V) + 1;'
run nchw_tail_starts_early kernels/strip.cuh '                j = WO - V;' '                j = WO - V - 1;'
run nchw_store_width_ignores_row kernels/strip.cuh 'if (((long long)WO * (long long)sizeof(T)) % b == 0 && ya % b == 0) {' 'if (ya % b == 0) {'
run nchw_store_half_vector_skipped kernels/strip.cuh 'if (h * V / 2 >= st.k_first) bp_store_u64' 'if (h * V / 2 > st.k_first) bp_store_u64'
run nchw_chunk8_words_swapped kernels/strip.cuh 'for (int i = 0; i < 2; ++i) w[i] = v.v[i];' 'for (int i = 0; i < 2; ++i) w[i] = v.v[1 - i];'
run nchw_chunk8_any_alignment kernels/strip.cuh 'if (p.w % (V / 2) == 0 && (xa & 7) == 0) return 8;' 'if (p.w % (V / 2) == 0) return 8;'
run nchw_chunk16_on_8_byte_rows kernels/strip.cuh 'if (p.w % V == 0 && (xa & 15) == 0) return 16;' 'if ((xa & 15) == 0) return 16;'
run nchw_plan_16_byte_rows_only src/cuda/plan.rs '            params.w % (lanes / 2) == 0' '            params.w % lanes == 0'
run dw_block_from_default src/cuda/plan.rs '(*k as usize, *f as usize, *s as usize, 0, *threads)' '(*k as usize, *f as usize, *s as usize, 0, BLOCK)'
run dw_grid_in_default_blocks src/cuda/plan.rs '.div_ceil(block.max(1) as u64)' '.div_ceil(BLOCK as u64)'
# The pooling v4 block (ninth round): the 3×3-max MaxBlurPool's 128 threads.
run pool_block_from_default src/cuda/plan.rs '(Family::StripPoolWide, [k, f, s, threads])
                | (Family::StripDepthwiseWide' '(Family::StripPoolWide, [k, f, s, _]) => (*k as usize, *f as usize, *s as usize, BLOCK),
                (Family::StripDepthwiseWide'
# The walk's partial output sums (ninth round), v2 and v4 alike.
run walk_tap_ignores_later_rows kernels/strip.cuh 'const int u = r_next - r_first - d * S;' 'const int u = r_next - r_first;'
run walk_sum_not_cleared kernels/strip.cuh 'for (int k = 0; k < V; ++k) acc[P - 1][k] = 0.f;' ''
run walk_tap_select_shifted kernels/strip.cuh 't = u == v ? p.ty[v] : t;' 't = u == v ? p.ty[v - 1] : t;'
run walk_sums_not_moved kernels/strip.cuh 'acc[d][k] = acc[d + 1][k];' 'acc[d][k] = acc[d][k];'
run nchw_plan_narrow_rows src/cuda/plan.rs '                && params.wo >= lanes' ''
# (Equivalent given the host's rule: the kernel's own WO, pad and own-padding checks in
# bp_strip4_fits, which only a plan that ignored src/cuda/plan.rs would reach.)
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
run dw_nchw_taps_flipped kernels/conv_forward.cu 'if (col >= 0 && col < M) acc[a][col] += wk[I - a][t] * xf;' 'if (col >= 0 && col < M) acc[a][col] += wk[I - a][KC - 1 - t] * xf;'
run dw_nchw_row_padding kernels/conv_forward.cu 'if (yy < 0 || yy >= H) return; // zero padding rows of the conv' 'if (yy < 0) return; // zero padding rows of the conv'
run dw_nchw_map_column_stride kernels/conv_forward.cu 'm[v][k] = bp_activate(acc[0][S * k + v], act);' 'm[v][k] = bp_activate(acc[0][k + v], act);'
# Tensor-core v4 (kernels/conv_forward.cu: bp_convblurpool_tc4_run, bp_tc4_stage,
# bp_pack_tc4_weights); run with MUT_TESTS=tensor_core.
run tc4_a_half_wrong kernels/conv_forward.cu 'const int a_half = lane >> 4;' 'const int a_half = (lane >> 3) & 1;'
run tc4_b_row_wrong kernels/conv_forward.cu 'const int b_off = bp_tc4_at((lane >> 4) * 8 + (lane & 7)' 'const int b_off = bp_tc4_at((lane & 7)'
run tc4_wait_dropped kernels/conv_forward.cu '            bp_cp_async_wait_all();
            __syncthreads(); // stage s is in shared memory' '            __syncthreads(); // stage s is in shared memory'
run tc4_unswizzled_store kernels/conv_forward.cu 'bp_st(in_s + bp_tc4_at(ty * BP_TC4_PITCH + tx, k >> 3) + (k & 7), v);' 'bp_st(in_s + (ty * BP_TC4_PITCH + tx) * BP_TC4_ROW + k, v);'
# The mma loop over constant steps (bp_tc4_mma_stage) and the 24-pixel pitch.
run tc4_stage_pitch kernels/conv_forward.cu 'bp_cp_async16(in_s + bp_tc4_at(ty * BP_TC4_PITCH + tx, half),' 'bp_cp_async16(in_s + bp_tc4_at(ty * D::IH + tx, half),'
run tc4_a_row_step kernels/conv_forward.cu 'a_at[ch] += BP_TC4_PITCH * BP_TC4_ROW;' 'a_at[ch] += (BP_TC4_PITCH - 1) * BP_TC4_ROW;'
run tc4_a_column_swizzle kernels/conv_forward.cu 'a_at[ch] = in_s + bp_tc4_at(a_pix[ch] + dx, a_half);' 'a_at[ch] = in_s + bp_tc4_at(a_pix[ch], a_half) + dx * BP_TC4_ROW;'
run tc4_b_tap_column kernels/conv_forward.cu 'b_at = w_s + b_off + dx * BP_TC4_COUT * BP_TC4_ROW;' 'b_at = w_s + b_off;'
run tc4_b_tap_row_step kernels/conv_forward.cu 'b_at += 3 * BP_TC4_COUT * BP_TC4_ROW;' 'b_at += BP_TC4_COUT * BP_TC4_ROW;'
run tc4_chunk_count kernels/conv_forward.cu 'if (all_chunks) // the same' 'if (!all_chunks) // the same'
run tc4_next_stage_weights kernels/conv_forward.cu 'wt + (long long)(s + 1) * BP_TC4_W_HALVES' 'wt + (long long)s * BP_TC4_W_HALVES'
run tc4_last_stage_skipped kernels/conv_forward.cu 'if (s + 1 < stages) {' 'if (s + 2 < stages) {'
run tc4_one_buffer kernels/conv_forward.cu '((s + 1) & 1) * D4::STAGE_HALVES' '(s & 1) * D4::STAGE_HALVES'
run tc4_zero_fill_dropped kernels/conv_forward.cu 'inside ? x + L::offset(n, ci, iy, ix, C, H, W) : x, inside);' 'inside ? x + L::offset(n, ci, iy, ix, C, H, W) : x, true);'
# The NCHW staging: 8 channels of a pixel a thread, one 16-byte store.
run tc4_nchw_stage_channel kernels/conv_forward.cu 'bp_ld(at + e * plane).bits' 'bp_ld(at + e).bits'
run tc4_nchw_stage_pack kernels/conv_forward.cu '(unsigned)v[2 * e] | (unsigned)v[2 * e + 1] << 16' '(unsigned)v[2 * e + 1] | (unsigned)v[2 * e] << 16'
run tc4_nchw_stage_channel_bound kernels/conv_forward.cu 'inside && c8 + e < C ? bp_ld' 'inside ? bp_ld'
run tc4_nchw_stage_half kernels/conv_forward.cu 'bp_store_u128(in_s + bp_tc4_at(ty * BP_TC4_PITCH + tx, half),' 'bp_store_u128(in_s + bp_tc4_at(ty * BP_TC4_PITCH + tx, 0),'
run tcw_nchw_stage_half kernels/conv_forward.cu 'bp_store_u128(in_s + (half * DW::NPIX + pix) * 8,' 'bp_store_u128(in_s + pix * 8,'
run tc4_pack_taps_flipped kernels/conv_forward.cu 'bp_ld(w + ((co * C + ci) * 9 + tap))' 'bp_ld(w + ((co * C + ci) * 9 + (8 - tap)))'
# The 64-channel block: the B fragments of n-tiles 4–7, the epilogue's second 32-channel group,
# the tile decode's channel tiles, and the host's dynamic shared memory (the emulator fails a
# launch that gives less than the kernel uses).
run tc4_b_upper_ntiles kernels/conv_forward.cu 'bp_ldmatrix_x4(b_at + 16 * q * BP_TC4_ROW, bq[q]);' 'bp_ldmatrix_x4(b_at + 16 * (q & 1) * BP_TC4_ROW, bq[q]);'
run tc4_epilogue_second_channel kernels/conv_forward.cu 'cell[u][v][1] = __uint_as_float(q.v[1]);' 'cell[u][v][1] = __uint_as_float(q.v[0]);'
run tc4_epilogue_lane_channels kernels/conv_forward.cu 'const int nl0 = CPL * lane; // NHWC' 'const int nl0 = lane; // NHWC'
run tc4_epilogue_pair_store_halves kernels/conv_forward.cu 'bp_store_u64(at, bp_u64{{word[0], word[1]}});' 'bp_store_u64(at, bp_u64{{word[1], word[0]}});'
run tc4_epilogue_pair_store_aligned kernels/conv_forward.cu '(reinterpret_cast<unsigned long long>(y) & (2 * CPL - 1)) == 0;' 'true;'
run tc4_epilogue_last_channel kernels/conv_forward.cu 'const int own = COUT - (tl.co0 + nl0) < CPL ? COUT - (tl.co0 + nl0) : CPL;' 'const int own = CPL;'
run tc4_decode_channel_tiles kernels/conv_forward.cu 'bp_tc_decode_tile<BP_TC4_COUT, TO>(p, tile, F)' 'bp_tc_decode_tile<BP_TC_COUT, TO>(p, tile, F)'
# 7 × 7 output tiles (tc4_tile_side): the tile's side in the decode, the count, the map tile and
# the host's shared bytes. (The host's block count only sizes the grid: the kernel's
# block-stride loop counts its own tiles, so a wrong host count is not a wrong result; and the
# kernel's tile count at side 8 instead of 7 is an equivalent mutant, since the host takes 7
# only where both sides need the same number of tiles.)
run tc4_side_decode kernels/conv_forward.cu 'bp_tc_decode_tile<BP_TC4_COUT, TO>(p, tile, F)' 'bp_tc_decode_tile<BP_TC4_COUT>(p, tile, F)'
run tc4_side_map_rows kernels/conv_forward.cu 'float *px = map_s + bp_tc_map_row<L, F, CO, TO>(rr);' 'float *px = map_s + bp_tc_map_row<L, F, CO>(rr);'
run tc4_side_last_row kernels/conv_forward.cu 'tl.ni = HO - tl.i0 < TO ? HO - tl.i0 : TO;' 'tl.ni = HO - tl.i0 < BP_TC_OUT ? HO - tl.i0 : BP_TC_OUT;'
run tc4_side_host_shared src/cuda/plan.rs 'tc4_shared_bytes(s.filter, s.tile)' 'tc4_shared_bytes(s.filter, 7)'
run tc4_host_shared_bytes src/cuda/plan.rs 'let map_floats = mh * mh * (ch + 8);' 'let map_floats = mh * mh * ch;'
run tc4_pack_channel_bound kernels/conv_forward.cu 'if (co < CO && ci < C) v = bp_ld(w + ((co * C + ci)' 'if (co < CO) v = bp_ld(w + ((co * C + ci)'
# The epilogue both tensor-core forwards share (bp_tc_epilogue, bp_tc_decode_tile).
run tc_epilogue_bias_channel kernels/conv_forward.cu 'bp_ld(b + (tl.co0 + nl + j))' 'bp_ld(b + (nl + j))'
run tc_epilogue_partial_rows kernels/conv_forward.cu 'if (warp >= tl.ni) return;' 'if (warp >= tl.nj) return;'
run tc_epilogue_partial_columns kernels/conv_forward.cu 'if (lj >= tl.nj) return;' 'if (lj >= tl.ni) return;'
run tc_map_store_pair kernels/conv_forward.cu '{{__float_as_uint(v0), __float_as_uint(v1)}}' '{{__float_as_uint(v0), __float_as_uint(v0)}}'
run tc_blur_nchw_channel_quad kernels/conv_forward.cu 'qoff = (q & 1) + 16 * (q >> 1);' 'qoff = (q & 1) + 2 * (q >> 1);'
run tc_blur_nchw_turn_channels kernels/conv_forward.cu 'const int nl = 2 * (k % 8) + 32 * (k / 8) + qoff;' 'const int nl = 2 * (k % 8) + 16 * (k / 8) + qoff;'
run tc_blur_nchw_padded_row kernels/conv_forward.cu '                if (rows[u] < 0) continue;
' ''
run tc_blur_reuse_rows kernels/conv_forward.cu 'for (int c = 0; c < CPL; ++c) cell[u][v][c] = cell[u + 2][v][c];' 'for (int c = 0; c < CPL; ++c) cell[u][v][c] = cell[u + 1][v][c];'
run tc_blur_padded_cell_zero kernels/conv_forward.cu 'cell[u][v][0] = inside ? bp_ld(row + col[v]) : 0.f;' 'cell[u][v][0] = inside ? bp_ld(row + col[v]) : 1.f;'
run tc4_blur_padded_cell_zero kernels/conv_forward.cu 'inside ? bp_load_u64(row + col[v]) : bp_u64{{0u, 0u}};' 'inside ? bp_load_u64(row + col[v]) : bp_u64{{0u, 0x3f800000u}};'
# The epilogue's blur (sources once a row and column, 32-bit reflection).
run tc_blur_reflect_off_by_one kernels/common.cuh 'return i < 0 ? -i : 2 * (len - 1) - i;' 'return i < 0 ? -i : 2 * len - 1 - i;'
run tc_blur_column_channel kernels/conv_forward.cu 'bp_tc_map_col<L, F, CO>(q - tl.c0, L::channels_last ? nl0 : 0);' 'bp_tc_map_col<L, F, CO>(q - tl.c0, 0);'
# The NCHW map stride at 64 channels (67): one that overlaps the next pixel's channels.
run tc4_nchw_map_stride_overlap kernels/conv_forward.cu ': (CO == BP_TC_COUT ? CO + 1 : CO + 4);' ': (CO == BP_TC_COUT ? CO + 1 : CO - 2);'
run tc_blur_row_origin kernels/conv_forward.cu 'bp_tc_map_row<L, F, CO, TO>(r - tl.r0)' 'bp_tc_map_row<L, F, CO, TO>(r - tl.c0)'
run tc_decode_first_map_row kernels/conv_forward.cu 'tl.r0 = bp_tc_first_source(tl.i0, tl.ni, taps, p.pad_top' 'tl.r0 = bp_tc_first_source(tl.i0, tl.ni, taps, p.pad_left'
# The tenth round (bp_strip4_span::load_near: NCHW MaxBlurPool 3×3 max and depthwise): run with
#   MUT_TESTS="strip4_nchw strip4_depthwise_nchw" bash scripts/mutation-v4.sh near_...
# (near_tag_unchecked is caught only in the emulator's split mode, whose held-back lanes meet
# the others an iteration later. Equivalent mutants, not listed: dropping the mask test (the
# emulator's poison never equals a tag) and any change to bp_strip4_near's side bits, such as
# expecting neighbours at the tail group: the tags do not match, so the lane loads, later; a
# speed loss, not a wrong result.)
run near_tag_unchecked kernels/strip.cuh ' && tag_l == own - (unsigned)CB;' ';'
run near_repair_dropped kernels/strip.cuh 'words<N>(at, true, fill, w); // the repair load' 'words<N>(at, false, fill, w); // the repair load'
run near_words_shifted kernels/strip.cuh 'got_l[i] = bp_shfl_up(m, first_right ? cw[2 * CWD - NL + i] : cw[CWD * (D + 1) - NL + i]);' 'got_l[i] = bp_shfl_up(m, first_right ? cw[2 * CWD - NL + i] : cw[CWD * (D + 1) - NL - 1 + i]);'
# The tail group and the group before it (eleventh round): the tail sends its first own chunk's
# words left instead of its last's. Equivalent in the emulator, not listed: the group before the
# tail sending its last chunk's words right instead of its first's (the tail takes them, but
# its left words feed only its output 0, and a tail stores from k_first = V − (WO mod V) ≥ 1
# on), and the tail's last-chunk tag left unflagged (a sharing tail's own chunks end inside the
# row for every pad bp_strip4_fits and the presets' reach allow).
run near_tail_sends_first kernels/strip.cuh 'bp_shfl_down(m, last_left ? cw[CWD * D + i] : cw[CWD + i]);' 'bp_shfl_down(m, cw[CWD + i]);'
run near_right_words_from_own kernels/strip.cuh 'for (int i = 0; i < NR; ++i) got_r[i] = bp_shfl_down(m, last_left ? cw[CWD * D + i] : cw[CWD + i]);' 'for (int i = 0; i < NR; ++i) got_r[i] = cw[CWD + i];'
run near_edge_words_misplaced kernels/strip.cuh 'const T *__restrict__ at_l = row + first * CE + (CWD - NL) * PER;' 'const T *__restrict__ at_l = row + first * CE;'
# The sm_90a wgmma kernel (MUT_TESTS=wgmma): its GEMM rows over the input tile's pitch, the
# descriptors' offsets and strides, the second 64-channel weight tile, the dropped rows, the
# epilogue's 4-channel stores, and the wgmma protocol (the emulator reports misuse).
run tcw_tap_row_pitch kernels/conv_forward.cu 'const unsigned a_tap = (tap / 3) * DW::P + tap % 3;' 'const unsigned a_tap = (tap / 3) * (DW::P - 1) + tap % 3;'
run tcw_chunk_offset kernels/conv_forward.cu 'bp_wgmma_m64n128k16<T>(acc[ch], a0 + a_tap + 128 * ch, b0 + b_tap);' 'bp_wgmma_m64n128k16<T>(acc[ch], a0 + a_tap + 64 * ch, b0 + b_tap);'
run tcw_a_plane_stride kernels/conv_forward.cu 'A_LBO = DW::NPIX * 16,' 'A_LBO = (DW::NPIX - 16) * 16,'
run tcw_b_tap_offset kernels/conv_forward.cu 'const unsigned b_tap = tap * 2 * BP_TCW_COUT;' 'const unsigned b_tap = tap * BP_TCW_COUT;'
# (Copying the second 64-channel weight tile where it lies past Cout, `valid = true`, reads past
# the packed buffer into channels no output stores: the results are the same, and the emulator
# does not bound cp.async reads, so it is not here; compute-sanitizer's memcheck in the GPU
# bundle is what sees it.)
run tcw_pitch_rows_kept kernels/conv_forward.cu 'if (m >= ROWS || qq >= D::MH) continue;' 'if (m >= ROWS) continue;'
run tcw_group_store_order kernels/conv_forward.cu '(unsigned)bp_from_f32<T>(sum[2 * c + 1]).bits << 16;' '(unsigned)bp_from_f32<T>(sum[2 * c]).bits << 16;'
run tcw_wait_dropped kernels/conv_forward.cu '            bp_wgmma_commit();
            bp_wgmma_wait_all();' '            bp_wgmma_commit();'
run tcw_fence_dropped kernels/conv_forward.cu '            bp_wgmma_fence();
#pragma unroll
            for (int tap = 0; tap < 9; ++tap) {' '#pragma unroll
            for (int tap = 0; tap < 9; ++tap) {'
# The NCHW epilogue's channel pairs (v4: float2 reads of an even map stride; MUT_TESTS=tensor_core).
run tc4_nchw_pair_second_value kernels/conv_forward.cu 'sum1 += w * __uint_as_float(pair.v[1]);' 'sum1 += w * __uint_as_float(pair.v[0]);'
run tc4_nchw_pair_channels kernels/conv_forward.cu 'const int nl = 8 * k + 2 * q;' 'const int nl = 8 * k + q;'
run tc4_nchw_pair_store_plane kernels/conv_forward.cu 'bp_st(at + (long long)HO * WO, bp_from_f32<T>(sum1));' 'bp_st(at + (long long)WO, bp_from_f32<T>(sum1));'
