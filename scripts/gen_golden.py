#!/usr/bin/env python3
"""Generate the golden test vectors in tests/golden/*.safetensors.

Each file is produced by calling the real PyTorch anti-aliasing libraries
(antialiased-cnns, kornia, timm, MosaicML composer) and plain PyTorch
max-pooling on small seeded random inputs. The Rust test suite reads these
files and compares its own output against the stored ``<case>.y`` tensors.

How to run (from the repository root)::

    python3 -m venv /tmp/golden-venv
    . /tmp/golden-venv/bin/activate
    pip install -r scripts/requirements-golden.txt
    # composer is only needed for one file of it; its dependency list is huge
    # and conflicts with recent torch, so install it without dependencies:
    pip install --no-deps mosaicml==0.32.1
    python scripts/gen_golden.py            # writes tests/golden/*.safetensors

Options: ``--out DIR`` writes somewhere else (default: tests/golden next to
this script's parent directory).

Determinism: CPU only, float32, ``torch.manual_seed``, one private
``torch.Generator`` per group seeded with a fixed constant,
``torch.use_deterministic_algorithms(True)`` and a single intra-op thread.
Running the script twice gives byte-identical files on the same machine.

File format (one file per group: antialiased_cnns, kornia, timm, composer,
torch_maxpool, seed). Per case ``<name>`` (``[a-z0-9_]+``, unique per file):

* ``<name>.x``      input, float32, N x C x H x W, contiguous
* ``<name>.y``      the library's output, float32, NCHW
* ``<name>.weight`` (conv cases) float32, Cout x Cin/groups x kh x kw
* ``<name>.bias``   (conv cases with bias) float32, Cout

``__metadata__`` holds one key, ``"cases"``: ``json.dumps`` of a list of
``{"name", "lib", "op", "args"}`` objects, see tests/golden/README.md.

Licence note: antialiased-cnns is CC BY-NC-SA 4.0. This script only imports
and calls it; none of its code is copied here. composer's blurpool layers
are Apache-2.0; they are imported (or, if importing the ``composer`` package
drags in missing dependencies, the single installed source file is loaded
with importlib), never copied.
"""

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import sys
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import antialiased_cnns
import kornia
import timm
import timm.layers

GROUPS = ["antialiased_cnns", "kornia", "timm", "composer", "torch_maxpool", "seed"]
NAME_RE = re.compile(r"^[a-z0-9_]+$")
MAX_TOTAL_BYTES = 2 * 1024 * 1024

# Combinations a library itself rejected: (group, case name, reason).
SKIPPED = []


# --------------------------------------------------------------------------
# setup
# --------------------------------------------------------------------------


def setup_determinism():
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


def load_composer_blurpool():
    """Return composer's blurpool_layers module.

    Importing ``composer`` runs its package ``__init__``, which imports many
    optional dependencies (requests, ...). With ``mosaicml`` installed via
    ``--no-deps`` that usually fails, so fall back to loading the single file
    ``composer/algorithms/blurpool/blurpool_layers.py`` from the installed
    package directory (it only needs torch).
    """
    try:
        return importlib.import_module("composer.algorithms.blurpool.blurpool_layers")
    except Exception:  # noqa: BLE001 - any missing optional dependency
        pass
    spec = importlib.util.find_spec("composer")  # does not execute __init__
    if spec is None or not spec.submodule_search_locations:
        sys.exit("composer (pip install --no-deps mosaicml) is not installed")
    pkg_dir = list(spec.submodule_search_locations)[0]
    path = os.path.join(pkg_dir, "algorithms", "blurpool", "blurpool_layers.py")
    fspec = importlib.util.spec_from_file_location("composer_blurpool_layers", path)
    mod = importlib.util.module_from_spec(fspec)
    fspec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------
# case collection
# --------------------------------------------------------------------------


class Group:
    """One golden file: its cases' tensors and metadata. Subclasses set their own GROUPS."""

    GROUPS = GROUPS

    def __init__(self, name):
        assert name in self.GROUPS
        self.name = name
        # Independent, fixed seed per group: adding cases to one group never
        # changes the inputs of another.
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(zlib.crc32(name.encode()) & 0x7FFFFFFF)
        self.tensors = {}
        self.cases = []
        self.names = set()

    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.gen, dtype=torch.float32) * scale

    def check_name(self, name):
        assert NAME_RE.match(name), name
        assert name not in self.names, f"duplicate case {name} in {self.name}"

    def skip(self, name, reason):
        self.check_name(name)
        SKIPPED.append((self.name, name, reason))

    def add(self, name, lib, op, args, x, y, weight=None, bias=None):
        self.check_name(name)
        assert x.dtype == torch.float32 and y.dtype == torch.float32
        assert x.dim() == 4 and y.dim() == 4, (name, x.shape, y.shape)
        self.names.add(name)
        self.tensors[f"{name}.x"] = x.detach().contiguous().clone()
        self.tensors[f"{name}.y"] = y.detach().contiguous().clone()
        if weight is not None:
            assert weight.dim() == 4 and weight.dtype == torch.float32
            self.tensors[f"{name}.weight"] = weight.detach().contiguous().clone()
        if bias is not None:
            assert bias.dim() == 1 and bias.dtype == torch.float32
            self.tensors[f"{name}.bias"] = bias.detach().contiguous().clone()
        self.cases.append({"name": name, "lib": lib, "op": op, "args": args})

    def save(self, out_dir):
        path = os.path.join(out_dir, f"{self.name}.safetensors")
        save_file(self.tensors, path, metadata={"cases": json.dumps(self.cases)})
        return path


def shape_cycle(i, h, w, cs=(1, 2, 3, 1, 5), n2_every=7):
    """Vary N in {1,2} and C in {1,2,3,5} deterministically with the case index."""
    c = cs[i % len(cs)]
    n = 2 if i % n2_every == n2_every - 1 else 1
    return (n, c, h, w)


def fmt_size(h, w):
    return f"{h}x{w}"


# --------------------------------------------------------------------------
# antialiased-cnns
# --------------------------------------------------------------------------

AA_PADS = ["reflect", "replicate", "zero"]


def aa_blurpool(c, a):
    return antialiased_cnns.BlurPool(
        c, pad_type=a["pad_type"], filt_size=a["filt_size"], stride=a["stride"], pad_off=a["pad_off"]
    )


def aa_try(g, name, fn):
    """Run fn(); on a library rejection record the skip and return None."""
    try:
        with torch.no_grad():
            return fn()
    except (RuntimeError, ValueError, AssertionError, IndexError, NotImplementedError) as e:
        msg = str(e).splitlines()[0] if str(e) else "(no message)"
        g.skip(name, f"{type(e).__name__}: {msg}")
        return None


def special_values_input(g, shape, scale=1.0):
    """Random input with NaN, +inf and -inf planted at a few positions.

    Includes a 2x2 block of -inf so that it survives a 2x2 max-pool.
    """
    x = g.randn(*shape, scale=scale)
    n, c, h, w = shape
    x[0, 0, 1, 2] = float("nan")
    x[0, 0, 4, 6] = float("inf")
    x[0, 0, h - 2, 1] = float("-inf")
    x[0, c - 1, h - 3:h - 1, w - 3:w - 1] = float("-inf")
    x[n - 1, c - 1, 2, w - 2] = float("nan")
    x[n - 1, 0, h - 1, w - 1] = float("inf")
    x[n - 1, c - 1, 0, 0] = float("-inf")
    return x


def gen_antialiased_cnns():
    g = Group("antialiased_cnns")
    i = 0

    # ---- blur_pool: full grid on an odd and an even size --------------------
    sizes = [(9, 11), (8, 10)]
    for filt in range(1, 8):
        for pad in AA_PADS:
            for off in (0, 1):
                for stride in (1, 2, 3):
                    for (h, w) in sizes:
                        name = f"bp_f{filt}_{pad}_o{off}_s{stride}_{fmt_size(h, w)}"
                        a = {"pad_type": pad, "filt_size": filt, "stride": stride, "pad_off": off}
                        shape = shape_cycle(i, h, w, cs=(1, 2, 1, 3, 1, 5), n2_every=11)
                        i += 1
                        x = g.randn(*shape)
                        y = aa_try(g, name, lambda: aa_blurpool(shape[1], a)(x))
                        if y is not None:
                            g.add(name, "antialiased_cnns", "blur_pool", a, x, y)

    # ---- blur_pool: odd H with even W and vice versa --------------------------
    for filt in range(1, 8):
        for pad in AA_PADS:
            for stride in (2, 3):
                for (h, w) in [(7, 10), (6, 9)]:
                    off = (filt + stride) % 2
                    name = f"bpmix_f{filt}_{pad}_o{off}_s{stride}_{fmt_size(h, w)}"
                    a = {"pad_type": pad, "filt_size": filt, "stride": stride, "pad_off": off}
                    shape = shape_cycle(i, h, w, cs=(1, 2, 1, 3), n2_every=11)
                    i += 1
                    x = g.randn(*shape)
                    y = aa_try(g, name, lambda: aa_blurpool(shape[1], a)(x))
                    if y is not None:
                        g.add(name, "antialiased_cnns", "blur_pool", a, x, y)

    # ---- blur_pool: tiny 3x4 inputs (reflect rejects pad >= dim) ---------------
    for filt in range(1, 8):
        for pad in AA_PADS:
            for off in (0, 1):
                h, w = 3, 4
                name = f"bptiny_f{filt}_{pad}_o{off}_s2_{fmt_size(h, w)}"
                a = {"pad_type": pad, "filt_size": filt, "stride": 2, "pad_off": off}
                shape = (1, 2, h, w)
                x = g.randn(*shape)
                y = aa_try(g, name, lambda: aa_blurpool(shape[1], a)(x))
                if y is not None:
                    g.add(name, "antialiased_cnns", "blur_pool", a, x, y)

    # ---- max_blur_pool ----------------------------------------------------------
    def mbp(name, max_kernel, max_padding, pad, filt, stride, off, h, w, x=None):
        nonlocal i
        a = {
            "max_kernel": max_kernel,
            "max_padding": max_padding,
            "pad_type": pad,
            "filt_size": filt,
            "stride": stride,
            "pad_off": off,
        }
        if x is None:
            shape = shape_cycle(i, h, w)
            i += 1
            x = g.randn(*shape)
        c = x.shape[1]

        def run():
            m = nn.Sequential(
                nn.MaxPool2d(max_kernel, stride=1, padding=max_padding),
                antialiased_cnns.BlurPool(c, pad_type=pad, filt_size=filt, stride=stride, pad_off=off),
            )
            return m(x)

        y = aa_try(g, name, run)
        if y is not None:
            g.add(name, "antialiased_cnns", "max_blur_pool", a, x, y)

    for filt in range(1, 8):
        for j, pad in enumerate(AA_PADS):
            h, w = [(9, 11), (8, 10), (9, 10)][(filt + j) % 3]
            mbp(f"mbp_k2p0_f{filt}_{pad}_s2_{fmt_size(h, w)}", 2, 0, pad, filt, 2, 0, h, w)
    for filt in (2, 3, 4, 5):
        for pad in ("reflect", "zero"):
            for stride in (1, 3):
                h, w = (9, 11) if stride == 1 else (10, 8)
                mbp(f"mbp_k2p0_f{filt}_{pad}_s{stride}_{fmt_size(h, w)}", 2, 0, pad, filt, stride, 0, h, w)
    for filt in (3, 4):
        mbp(f"mbp_k2p0_f{filt}_replicate_o1_s2_9x10", 2, 0, "replicate", filt, 2, 1, 9, 10)
    for filt in (3, 4):
        for pad in AA_PADS:
            mbp(f"mbp_k3p1_f{filt}_{pad}_s2_9x11", 3, 1, pad, filt, 2, 0, 9, 11)
    for filt in (3, 4):
        for pad in ("reflect", "zero"):
            mbp(f"mbp_k3p0_f{filt}_{pad}_s2_10x9", 3, 0, pad, filt, 2, 0, 10, 9)

    # NaN / +inf / -inf inputs
    xs = special_values_input(g, (2, 3, 9, 11))
    mbp("mbp_nonfinite_k2p0_f1_reflect_s2", 2, 0, "reflect", 1, 2, 0, 9, 11, x=xs)
    xs = special_values_input(g, (2, 3, 9, 11))
    mbp("mbp_nonfinite_k2p0_f3_reflect_s2", 2, 0, "reflect", 3, 2, 0, 9, 11, x=xs)
    xs = special_values_input(g, (1, 2, 10, 9))
    mbp("mbp_nonfinite_k3p1_f3_zero_s2", 3, 1, "zero", 3, 2, 0, 10, 9, x=xs)
    xs = special_values_input(g, (1, 2, 8, 10))
    mbp("mbp_nonfinite_k2p0_f1_zero_o1_s2", 2, 0, "zero", 1, 2, 1, 8, 10, x=xs)

    # ---- conv_blur_pool -------------------------------------------------------------
    acts = {"identity": lambda t: t, "relu": F.relu, "relu6": F.relu6}
    convs = [(1, 0), (3, 1), (5, 2), (3, 0)]
    chans = [(3, 4, 1), (4, 6, 2), (4, 4, 4), (2, 4, 2)]
    k_idx = 0
    relu6_clipped = 0
    relu6_total = 0
    for (ks, padding) in convs:
        for (cin, cout, groups) in chans:
            for act in ("identity", "relu", "relu6"):
                bias = k_idx % 2 == 0
                filt = (3, 4)[(k_idx // 2) % 2]
                pad = ("reflect", "zero")[(k_idx // 4) % 2]
                k_idx += 1
                h, w = [(9, 11), (8, 10), (11, 8), (10, 9)][k_idx % 4]
                n = 2 if k_idx % 5 == 0 else 1
                name = (
                    f"cbp_k{ks}p{padding}_g{groups}_ci{cin}_co{cout}_{'b' if bias else 'nb'}_{act}"
                    f"_f{filt}_{pad}_s2"
                )
                a = {
                    "kernel_size": ks,
                    "padding": padding,
                    "groups": groups,
                    "bias": bias,
                    "act": act,
                    "pad_type": pad,
                    "filt_size": filt,
                    "stride": 2,
                    "pad_off": 0,
                }
                # scaled so that relu6 clips a good share of the values
                x = g.randn(n, cin, h, w, scale=4.0)
                fan_in = (cin // groups) * ks * ks
                weight = g.randn(cout, cin // groups, ks, ks, scale=1.5 / math.sqrt(fan_in))
                b = g.randn(cout, scale=1.0) if bias else None
                with torch.no_grad():
                    pre = acts[act](F.conv2d(x, weight, b, stride=1, padding=padding, groups=groups))
                    if act == "relu6":
                        relu6_clipped += int((pre == 6.0).sum())
                        relu6_total += pre.numel()
                    bp = antialiased_cnns.BlurPool(cout, pad_type=pad, filt_size=filt, stride=2, pad_off=0)
                    y = bp(pre)
                g.add(name, "antialiased_cnns", "conv_blur_pool", a, x, y, weight=weight, bias=b)
    # a few with stride 1/3 and pad_off 1
    for (ks, padding, cin, cout, groups, act, filt, pad, stride, off) in [
        (3, 1, 3, 5, 1, "relu6", 3, "replicate", 1, 0),
        (3, 1, 4, 4, 4, "relu", 4, "reflect", 3, 0),
        (1, 0, 2, 3, 1, "identity", 5, "zero", 2, 1),
        (5, 2, 3, 3, 3, "relu6", 2, "reflect", 2, 1),
    ]:
        name = f"cbp_k{ks}p{padding}_g{groups}_ci{cin}_co{cout}_b_{act}_f{filt}_{pad}_o{off}_s{stride}"
        a = {
            "kernel_size": ks,
            "padding": padding,
            "groups": groups,
            "bias": True,
            "act": act,
            "pad_type": pad,
            "filt_size": filt,
            "stride": stride,
            "pad_off": off,
        }
        x = g.randn(1, cin, 9, 10, scale=4.0)
        fan_in = (cin // groups) * ks * ks
        weight = g.randn(cout, cin // groups, ks, ks, scale=1.5 / math.sqrt(fan_in))
        b = g.randn(cout)
        with torch.no_grad():
            pre = acts[act](F.conv2d(x, weight, b, stride=1, padding=padding, groups=groups))
            if act == "relu6":
                relu6_clipped += int((pre == 6.0).sum())
                relu6_total += pre.numel()
            y = antialiased_cnns.BlurPool(cout, pad_type=pad, filt_size=filt, stride=stride, pad_off=off)(pre)
        g.add(name, "antialiased_cnns", "conv_blur_pool", a, x, y, weight=weight, bias=b)
    print(f"  relu6 cases: {relu6_clipped}/{relu6_total} pre-blur values clipped at 6")
    assert relu6_clipped > 0
    return g


# --------------------------------------------------------------------------
# kornia
# --------------------------------------------------------------------------


def gen_kornia():
    g = Group("kornia")
    i = 0
    for ks in range(1, 8):
        for stride in (1, 2, 3):
            for (h, w) in [(9, 11), (8, 10), (7, 10)]:
                if (h, w) == (7, 10) and stride != 2:
                    continue
                name = f"bp_k{ks}_s{stride}_{fmt_size(h, w)}"
                a = {"kernel_size": ks, "stride": stride}
                shape = shape_cycle(i, h, w)
                i += 1
                x = g.randn(*shape)
                y = aa_try(g, name, lambda: kornia.filters.blur_pool2d(x, ks, stride))
                if y is not None:
                    g.add(name, "kornia", "blur_pool2d", a, x, y)
    for ks in range(1, 6):
        for mps in (1, 2, 3):
            for stride in (2, 3):
                h, w = [(9, 11), (8, 10), (10, 9)][(ks + mps + stride) % 3]
                name = f"mbp_k{ks}_m{mps}_s{stride}_{fmt_size(h, w)}"
                a = {"kernel_size": ks, "stride": stride, "max_pool_size": mps}
                shape = shape_cycle(i, h, w)
                i += 1
                x = g.randn(*shape)
                y = aa_try(
                    g,
                    name,
                    lambda: kornia.filters.max_blur_pool2d(x, ks, stride=stride, max_pool_size=mps),
                )
                if y is not None:
                    g.add(name, "kornia", "max_blur_pool2d", a, x, y)
    # max_blur_pool2d at stride 1 for two kernels
    for ks in (3, 4):
        name = f"mbp_k{ks}_m2_s1_9x10"
        a = {"kernel_size": ks, "stride": 1, "max_pool_size": 2}
        x = g.randn(1, 3, 9, 10)
        y = aa_try(g, name, lambda: kornia.filters.max_blur_pool2d(x, ks, stride=1, max_pool_size=2))
        if y is not None:
            g.add(name, "kornia", "max_blur_pool2d", a, x, y)
    return g


# --------------------------------------------------------------------------
# timm
# --------------------------------------------------------------------------


def gen_timm():
    g = Group("timm")
    i = 0
    for filt in range(1, 8):
        for stride in (1, 2, 3):
            for pad_mode in ("reflect", "constant"):
                for (h, w) in [(9, 11), (8, 10)]:
                    name = f"bp_f{filt}_s{stride}_{pad_mode}_{fmt_size(h, w)}"
                    a = {"filt_size": filt, "stride": stride, "pad_mode": pad_mode}
                    shape = shape_cycle(i, h, w)
                    i += 1
                    x = g.randn(*shape)
                    y = aa_try(
                        g,
                        name,
                        lambda: timm.layers.BlurPool2d(
                            channels=shape[1], filt_size=filt, stride=stride, pad_mode=pad_mode
                        )(x),
                    )
                    if y is not None:
                        g.add(name, "timm", "blur_pool2d", a, x, y)
    # odd/even mixes at stride 2
    for filt in range(2, 8):
        for pad_mode in ("reflect", "constant"):
            h, w = (7, 10) if filt % 2 else (10, 7)
            name = f"bpmix_f{filt}_s2_{pad_mode}_{fmt_size(h, w)}"
            a = {"filt_size": filt, "stride": 2, "pad_mode": pad_mode}
            shape = shape_cycle(i, h, w)
            i += 1
            x = g.randn(*shape)
            y = aa_try(
                g,
                name,
                lambda: timm.layers.BlurPool2d(channels=shape[1], filt_size=filt, stride=2, pad_mode=pad_mode)(x),
            )
            if y is not None:
                g.add(name, "timm", "blur_pool2d", a, x, y)
    # tiny input: reflect padding >= dim is rejected by torch
    for filt in (5, 7):
        for pad_mode in ("reflect", "constant"):
            name = f"bptiny_f{filt}_s3_{pad_mode}_3x4"
            a = {"filt_size": filt, "stride": 3, "pad_mode": pad_mode}
            x = g.randn(1, 2, 3, 4)
            y = aa_try(
                g,
                name,
                lambda: timm.layers.BlurPool2d(channels=2, filt_size=filt, stride=3, pad_mode=pad_mode)(x),
            )
            if y is not None:
                g.add(name, "timm", "blur_pool2d", a, x, y)
    return g


# --------------------------------------------------------------------------
# composer
# --------------------------------------------------------------------------


def taps_filter(taps_y, taps_x):
    """(1,1,kH,kW) float32 outer product taps_y x taps_x, not normalised.

    composer's blur_2d reads ``filter.shape`` as 4-D (a 2-D filter raises
    ValueError in _padding_for_filt_2d_same), so the 4-D form is used.
    """
    if taps_y is None and taps_x is None:
        return None
    ty = torch.tensor(taps_y, dtype=torch.float32)
    tx = torch.tensor(taps_x, dtype=torch.float32)
    return (ty[:, None] * tx[None, :])[None, None].contiguous()


def gen_composer():
    cb = load_composer_blurpool()
    g = Group("composer")

    def blur(x, stride, filt):
        # channels=C with a (1,1,kH,kW) filter makes F.conv2d fail for C>1
        # (groups=C needs C filters), so for C>1 use composer's dynamic mode
        # (channels=-1) which repeats the filter per channel itself.
        c = x.shape[1]
        return cb.blur_2d(x, channels=c if c == 1 else -1, stride=tuple(stride), filter=filt)

    i = 0
    # blur_2d, default filter
    for stride in ([1, 1], [2, 2], [2, 3], [3, 1]):
        for (h, w) in [(9, 11), (8, 10)]:
            name = f"blur_default_s{stride[0]}{stride[1]}_{fmt_size(h, w)}"
            a = {"stride": stride, "taps_y": None, "taps_x": None}
            shape = shape_cycle(i, h, w)
            i += 1
            x = g.randn(*shape)
            with torch.no_grad():
                y = blur(x, stride, None)
            g.add(name, "composer", "blur_2d", a, x, y)
    # blur_2d, custom separable (non-binomial, non-symmetric) filters
    customs = [
        ("t3x3", [0.2, 0.6, 0.2], [0.2, 0.6, 0.2]),
        ("t3x5", [0.1, 0.5, 0.2], [0.05, 0.2, 0.4, 0.25, 0.1]),
        ("t5x3", [1.0, -0.5, 2.0, 0.25, 0.5], [0.3, 0.9, -0.2]),
        ("t1x3", [1.5], [0.25, 0.5, 0.125]),
        ("t5x1", [0.1, 0.2, 0.3, 0.2, 0.1], [0.7]),
    ]
    for (tag, ty, tx) in customs:
        for stride in ([1, 1], [2, 2], [2, 3]):
            h, w = [(9, 11), (8, 10), (7, 12)][i % 3]
            name = f"blur_{tag}_s{stride[0]}{stride[1]}_{fmt_size(h, w)}"
            a = {"stride": stride, "taps_y": ty, "taps_x": tx}
            shape = shape_cycle(i, h, w)
            i += 1
            x = g.randn(*shape)
            with torch.no_grad():
                y = blur(x, stride, taps_filter(ty, tx))
            g.add(name, "composer", "blur_2d", a, x, y)

    # blurmax_pool2d
    bmp = [
        ([2, 2], [2, 2], [0, 0], None, None),
        ([3, 3], [2, 2], [1, 1], None, None),
        ([1, 3], [2, 2], [0, 1], None, None),
        ([2, 2], [1, 1], [0, 0], None, None),
        ([3, 3], [2, 3], [0, 0], None, None),
        ([2, 3], [2, 2], [1, 1], None, None),
        ([2, 2], [2, 2], [0, 0], [0.1, 0.5, 0.2], [0.05, 0.2, 0.4, 0.25, 0.1]),
        ([3, 3], [2, 2], [1, 1], [0.2, 0.6, 0.2], [1.0]),
    ]
    for j, (ks, stride, padding, ty, tx) in enumerate(bmp):
        for (h, w) in [(9, 11), (8, 10)]:
            tag = "default" if ty is None else f"t{len(ty)}x{len(tx)}"
            name = (
                f"bmp_k{ks[0]}{ks[1]}_s{stride[0]}{stride[1]}_p{padding[0]}{padding[1]}_{tag}_{fmt_size(h, w)}"
            )
            a = {"kernel_size": ks, "stride": stride, "padding": padding, "taps_y": ty, "taps_x": tx}
            shape = shape_cycle(i, h, w)
            i += 1
            x = g.randn(*shape)
            with torch.no_grad():
                y = cb.blurmax_pool2d(
                    x, kernel_size=tuple(ks), stride=tuple(stride), padding=tuple(padding), filter=taps_filter(ty, tx)
                )
            g.add(name, "composer", "blurmax_pool2d", a, x, y)

    # BlurConv2d (the module's conv submodule is `.conv`, an nn.Conv2d)
    k_idx = 0
    configs = []
    for blur_first in (True, False):
        for (ks, padding) in (([3, 3], [1, 1]), ([1, 1], [0, 0])):
            for depthwise in (False, True):
                for bias in (True, False):
                    configs.append((blur_first, ks, [2, 2], padding, depthwise, bias))
    configs.append((True, [1, 3], [2, 1], [0, 1], False, True))
    configs.append((False, [1, 3], [2, 1], [0, 1], True, False))
    configs.append((False, [3, 3], [2, 3], [0, 0], False, True))
    for (blur_first, ks, stride, padding, depthwise, bias) in configs:
        if depthwise:
            cin = cout = groups = 4
        else:
            cin, cout, groups = 3, 5, 1
        h, w = [(9, 11), (8, 10), (10, 9)][k_idx % 3]
        n = 2 if k_idx % 4 == 3 else 1
        k_idx += 1
        name = (
            f"bconv_{'bf' if blur_first else 'cf'}_k{ks[0]}{ks[1]}_s{stride[0]}{stride[1]}"
            f"_p{padding[0]}{padding[1]}_g{groups}_{'b' if bias else 'nb'}_{fmt_size(h, w)}"
        )
        a = {
            "kernel_size": ks,
            "stride": stride,
            "padding": padding,
            "groups": groups,
            "bias": bias,
            "blur_first": blur_first,
        }
        x = g.randn(n, cin, h, w)
        fan_in = (cin // groups) * ks[0] * ks[1]
        weight = g.randn(cout, cin // groups, ks[0], ks[1], scale=1.0 / math.sqrt(fan_in))
        b = g.randn(cout) if bias else None
        m = cb.BlurConv2d(
            cin, cout, tuple(ks), tuple(stride), tuple(padding), groups=groups, bias=bias, blur_first=blur_first
        )
        with torch.no_grad():
            assert m.conv.weight.shape == weight.shape
            m.conv.weight.copy_(weight)
            if bias:
                m.conv.bias.copy_(b)
            else:
                assert m.conv.bias is None
            y = m(x)
        g.add(name, "composer", "blur_conv2d", a, x, y, weight=weight, bias=b)
    return g


# --------------------------------------------------------------------------
# torch max_pool2d
# --------------------------------------------------------------------------


def gen_torch_maxpool():
    g = Group("torch_maxpool")
    i = 0
    combos = []
    for k in (1, 2, 3):
        for p in range(0, k // 2 + 1):
            combos.append(([k, k], [1, 1], [p, p]))
    for p in ([0, 0], [1, 1], [0, 1], [1, 0]):
        combos.append(([2, 3], [1, 1], p))
    combos.append(([3, 2], [1, 1], [1, 0]))
    combos.append(([1, 3], [1, 1], [0, 1]))
    # a few strided ones
    combos += [([2, 2], [2, 2], [0, 0]), ([3, 3], [2, 2], [1, 1]), ([2, 3], [2, 1], [1, 1]), ([3, 3], [3, 2], [0, 1])]
    for (ks, stride, padding) in combos:
        for (h, w) in [(9, 11), (8, 10)]:
            name = (
                f"mp_k{ks[0]}{ks[1]}_s{stride[0]}{stride[1]}_p{padding[0]}{padding[1]}_{fmt_size(h, w)}"
            )
            a = {"kernel_size": ks, "stride": stride, "padding": padding}
            shape = shape_cycle(i, h, w)
            i += 1
            x = g.randn(*shape)
            y = F.max_pool2d(x, tuple(ks), tuple(stride), tuple(padding))
            g.add(name, "torch", "max_pool2d", a, x, y)
    for (ks, stride, padding) in (([2, 2], [1, 1], [0, 0]), ([3, 3], [1, 1], [1, 1]), ([2, 3], [2, 2], [1, 1])):
        name = f"mp_nonfinite_k{ks[0]}{ks[1]}_s{stride[0]}{stride[1]}_p{padding[0]}{padding[1]}"
        a = {"kernel_size": ks, "stride": stride, "padding": padding}
        x = special_values_input(g, (2, 3, 9, 10))
        y = F.max_pool2d(x, tuple(ks), tuple(stride), tuple(padding))
        g.add(name, "torch", "max_pool2d", a, x, y)
    return g


# --------------------------------------------------------------------------
# seed: the paper's example
# --------------------------------------------------------------------------


def gen_seed():
    g = Group("seed")
    w = 16
    row = torch.tensor([1.0 if (j // 2) % 2 == 1 else 0.0 for j in range(w)], dtype=torch.float32)
    signal = row.repeat(4, 1)[None, None].contiguous()  # 1x1x4x16
    shift = torch.zeros_like(signal)
    shift[..., 1:] = signal[..., :-1]
    mp_args = {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]}
    mbp_args = {
        "max_kernel": 2,
        "max_padding": 0,
        "pad_type": "reflect",
        "filt_size": 4,
        "stride": 2,
        "pad_off": 0,
    }
    blur = nn.Sequential(
        nn.MaxPool2d(2, stride=1, padding=0),
        antialiased_cnns.BlurPool(1, pad_type="reflect", filt_size=4, stride=2, pad_off=0),
    )
    with torch.no_grad():
        for (tag, x) in (("signal", signal), ("shift1", shift)):
            y_mp = F.max_pool2d(x, (2, 2), (2, 2), (0, 0))
            y_mbp = blur(x)
            g.add(f"maxpool_{tag}", "torch", "max_pool2d", mp_args, x, y_mp)
            g.add(f"maxblurpool_{tag}", "antialiased_cnns", "max_blur_pool", mbp_args, x, y_mbp)
            print(f"  input {tag:7s}         : {x[0, 0, 0].tolist()}")
            print(f"  maxpool_{tag:7s}     : {[round(v, 4) for v in y_mp[0, 0, 0].tolist()]}")
            print(f"  maxblurpool_{tag:7s} : {[round(v, 4) for v in y_mbp[0, 0, 0].tolist()]}")
    return g


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def check_written(path, group, suffixes=("x", "y")):
    """Reload a written file and compare with what was meant to be written; every case must
    have the tensors named by suffixes. Returns (cases, tensors)."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert set(meta.keys()) == {"cases"}, meta.keys()
    cases = json.loads(meta["cases"])
    assert cases == group.cases
    tensors = load_file(path)
    assert keys == set(group.tensors)
    for k, v in group.tensors.items():
        t = tensors[k]
        assert t.dtype == torch.float32 and t.shape == v.shape
        assert torch.equal(t.isnan(), v.isnan()), k
        assert torch.equal(torch.nan_to_num(t), torch.nan_to_num(v)), k
    for c in cases:
        for suffix in suffixes:
            assert f"{c['name']}.{suffix}" in keys, (c["name"], suffix)
    return cases, tensors


def verify(path, group):
    return len(check_written(path, group)[0])


def write_groups(doc, gens, verify_fn, max_total, skipped, describe=lambda name: ""):
    """The scripts' main: parse --out, generate each group (gens: name -> generator, in order),
    save and verify it, print sizes, what the libraries rejected and the package versions."""
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(here), "tests", "golden"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    setup_determinism()
    total = 0
    for name, gen in gens.items():
        print(f"[{name}]")
        g = gen()
        path = g.save(args.out)
        n = verify_fn(path, g)
        size = os.path.getsize(path)
        total += size
        print(f"  wrote {path}: {n} cases, {size} bytes{describe(name)}")
    print(f"total {total} bytes")
    assert total < max_total, f"golden files too large: {total} bytes"
    if skipped:
        print(f"skipped {len(skipped)} combinations rejected by the library:")
        for (grp, name, reason) in skipped:
            print(f"  {grp}/{name}: {reason}")
    versions = {}
    for dist in ("torch", "numpy", "safetensors", "antialiased-cnns", "kornia", "timm", "mosaicml"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "?"
    print("versions:", versions)


def main():
    gens = {
        "antialiased_cnns": gen_antialiased_cnns,
        "kornia": gen_kornia,
        "timm": gen_timm,
        "composer": gen_composer,
        "torch_maxpool": gen_torch_maxpool,
        "seed": gen_seed,
    }
    assert list(gens) == GROUPS
    write_groups(__doc__, gens, verify, MAX_TOTAL_BYTES, SKIPPED)


if __name__ == "__main__":
    main()
