#!/usr/bin/env python3
"""Side-by-side: the same input through each PyTorch library's anti-aliased max-pool and through
blurpool's fused kernel, on one GPU, in one process.

    python python/bench/side_by_side.py [--shape 64,64,112,112] [--dtype float16]
                                        [--channels-last] [--iters 200] [--out FILE.md]

Rows (each compared with the blurpool module that mirrors it, same arguments):
  * antialiased-cnns: nn.Sequential(MaxPool2d(2, stride=1), BlurPool(C, filt_size=4, stride=2))
    vs blurpool_torch.MaxBlurPool(C)
  * torch.compile(mode="max-autotune") of that same antialiased-cnns module
  * kornia.filters.max_blur_pool2d(x, 3) vs blurpool_torch.max_blur_pool2d(x, 3)
  * timm: nn.Sequential(MaxPool2d(2, stride=1), timm.layers.BlurPool2d(C, filt_size=4, stride=2))
    vs the fused MaxBlurPool with timm's blur geometry (a timm BlurPool2d descriptor turned
    into max 2×2 stride 1 + blur)
Every pair's outputs must agree (tolerance of the dtype) before anything is timed. Times are the
median of --iters CUDA-event measurements of one call each, after 20 warm-up calls; GB/s is over
the minimum bytes (input read once + output written once). A library that is not installed is
listed as skipped with the reason. Needs a CUDA GPU, torch, and libblurpool.so built
(cargo build --release -p blurpool-capi) or BLURPOOL_LIB pointing at it.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import statistics
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import blurpool_torch as bp  # noqa: E402

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def median_time(fn, x, iters: int) -> float:
    """Median seconds of one call, CUDA events around each call on the current stream."""
    for _ in range(20):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn(x)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e-3)
    return statistics.median(times)


def try_import(name: str):
    try:
        return importlib.import_module(name), None
    except Exception as e:  # noqa: BLE001 (any import failure is a reason to skip)
        return None, f"{type(e).__name__}: {e}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="64,64,112,112", help="N,C,H,W")
    ap.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    n, c, h, w = (int(v) for v in a.shape.split(","))
    dtype = getattr(torch, a.dtype)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w, device="cuda", dtype=dtype).contiguous(memory_format=fmt)

    rows, notes = [], []

    def add(label: str, theirs, ours):
        """Checks agreement, times both, records one row per implementation."""
        with torch.no_grad():
            want, got = theirs(x), ours(x)
            torch.testing.assert_close(got.float(), want.float(), rtol=TOL[dtype], atol=TOL[dtype])
            bytes_ = x.numel() * x.element_size() + got.numel() * got.element_size()
            t_theirs = median_time(theirs, x, a.iters)
            t_ours = median_time(ours, x, a.iters)
        rows.append((label, t_theirs, bytes_ / t_theirs / 1e9, 1.0))
        rows.append((f"  blurpool (fused) for {label}", t_ours, bytes_ / t_ours / 1e9, t_theirs / t_ours))

    aa, why = try_import("antialiased_cnns")
    if aa is not None:
        ref = nn.Sequential(nn.MaxPool2d(2, stride=1), aa.BlurPool(c, filt_size=4, stride=2)).cuda().to(dtype)
        ours = bp.MaxBlurPool(c).cuda()
        add("antialiased-cnns MaxPool2d(2,1)+BlurPool(4,2)", ref, ours)
        try:
            compiled = torch.compile(ref, mode="max-autotune")
            add("torch.compile(max-autotune) of antialiased-cnns", compiled, ours)
        except Exception as e:  # noqa: BLE001
            notes.append(f"torch.compile row skipped: {type(e).__name__}: {e}")
    else:
        notes.append(f"antialiased-cnns skipped: {why}")

    kornia, why = try_import("kornia")
    if kornia is not None:
        add(
            "kornia max_blur_pool2d(3)",
            lambda t: kornia.filters.max_blur_pool2d(t, 3),
            lambda t: bp.max_blur_pool2d(t, 3),
        )
    else:
        notes.append(f"kornia skipped: {why}")

    timm_layers, why = try_import("timm.layers")
    if timm_layers is not None:
        ref = nn.Sequential(nn.MaxPool2d(2, stride=1), timm_layers.BlurPool2d(c, filt_size=4, stride=2)).cuda().to(dtype)
        from blurpool_torch import _lib, ops

        fused = _lib.Desc.timm_blur_pool2d(4, 2, "reflect").replace(
            op=_lib.OP_MAX_BLUR_POOL, max_kernel_y=2, max_kernel_x=2, max_pad_y=0, max_pad_x=0
        )
        add("timm MaxPool2d(2,1)+BlurPool2d(4,2)", ref, lambda t: ops.apply(t, fused))
    else:
        notes.append(f"timm skipped: {why}")

    dev = torch.cuda.get_device_name()
    head = (
        f"Side by side on {dev}, torch {torch.__version__}, input {tuple(x.shape)} {a.dtype} "
        f"{'channels_last' if a.channels_last else 'contiguous'}, median of {a.iters} "
        f"(CUDA events), {datetime.date.today()}"
    )
    lines = [head, "", "| implementation | time (µs) | GB/s (min bytes) | blurpool speedup |", "|---|---:|---:|---:|"]
    for label, t, gbs, speed in rows:
        lines.append(f"| {label} | {t * 1e6:.1f} | {gbs:.0f} | {speed:.2f}× |")
    lines += [""] + [f"* {n}" for n in notes]
    text = "\n".join(lines)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
