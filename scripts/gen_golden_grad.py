#!/usr/bin/env python3
"""Generate the golden *gradient* vectors in tests/golden/grad_*.safetensors.

Each case runs a real library layer (antialiased-cnns, kornia, timm, MosaicML
composer, plain PyTorch max-pooling) forward on a small seeded input, then
torch autograd backward with a seeded random output gradient ``dy``. The Rust
test tests/backward.rs compares ``blurpool::backward`` against the stored
input (and weight/bias) gradients.

How to run (from the repository root, in the venv of scripts/gen_golden.py)::

    python scripts/gen_golden_grad.py      # writes tests/golden/grad_*.safetensors

Options: ``--out DIR`` writes somewhere else (default: tests/golden).

Precision: the stored inputs (x, weight, bias, dy) are float32. The forward
and the backward run in float64: the float32 tensors are widened exactly, the
library modules are cast with ``.double()`` (their blur filters are exact in
both precisions), and the float64 results are rounded once to float32 for
storage. So the stored ``y``, ``dx``, ``dweight``, ``dbias`` are the exact
gradients at the stored float32 inputs to within float64 rounding, then one
float32 rounding -- the same contract as the crate's CPU reference.
composer's functional ``blur_2d`` / ``blurmax_pool2d`` default filter is a
float32 tensor that ``F.conv2d`` refuses to mix with float64 input, so those
calls pass composer's own default filter (``_default_2d_filter()``) cast to
float64, or the custom taps' outer product built in float64.

Ties: the inputs of every max-pooling case except a few are drawn from the
grid {-1.5, -1, ..., 1.5} (``randint(-3, 4) / 2``), so most windows hold equal
maxima and PyTorch's first-max rule decides where the gradient goes. A few
cases carry NaN / +inf / -inf (a NaN wins its window, later NaNs take the
index, all -inf windows send their gradient to their first in-bounds cell).

Determinism: CPU only, one private generator per file seeded with a fixed
constant, deterministic algorithms, one thread. Two runs on the same machine
give byte-identical files.

File format: that of tests/golden/README.md (``<name>.x``, ``<name>.y``,
``<name>.weight``, ``<name>.bias``, ``__metadata__["cases"]``), plus per case:

* ``<name>.dy``      the output gradient, float32, NCHW, the shape of ``y``
* ``<name>.dx``      d(sum(y * dy))/dx, float32, NCHW, the shape of ``x``
* ``<name>.dweight`` (conv cases) float32, the shape of ``weight``
* ``<name>.dbias``   (conv cases with bias) float32, Cout
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_golden as gg  # noqa: E402  (helpers only; its output is unaffected)

import antialiased_cnns  # noqa: E402
import kornia  # noqa: E402
import timm.layers  # noqa: E402

GROUPS = ["grad_antialiased_cnns", "grad_kornia", "grad_timm", "grad_composer", "grad_torch_maxpool"]
MAX_TOTAL_BYTES = 1024 * 1024
SKIPPED = []
TIES = {}  # group -> [windows with a tied maximum, max windows]
ACTS = {"identity": lambda t: t, "relu": F.relu, "relu6": F.relu6}


class GradGroup(gg.Group):
    GROUPS = GROUPS

    def __init__(self, name):
        super().__init__(name)
        TIES.setdefault(name, [0, 0])

    def grid(self, *shape):
        """Values in {-1.5, -1, ..., 1.5}: most max windows hold equal maxima."""
        return torch.randint(-3, 4, shape, generator=self.gen).to(torch.float32) / 2.0

    def add(self, name, lib, op, args, x, fn, weight=None, bias=None, max_kp=None):
        """Run fn(x64, w64, b64) -> y64 forward and backward in float64 and store the case.

        max_kp = (kh, kw, ph, pw) of the dense max stage, to count tied windows.
        """
        self.check_name(name)
        assert x.dtype == torch.float32 and x.dim() == 4
        x64 = x.double().requires_grad_(True)
        w64 = weight.double().requires_grad_(True) if weight is not None else None
        b64 = bias.double().requires_grad_(True) if bias is not None else None
        try:
            y64 = fn(x64, w64, b64)
        except (RuntimeError, ValueError, AssertionError, IndexError, NotImplementedError) as e:
            SKIPPED.append((self.name, name, f"{type(e).__name__}: {str(e).splitlines()[0]}"))
            return
        assert y64.dtype == torch.float64 and y64.dim() == 4, (name, y64.dtype)
        dy = self.randn(*y64.shape)
        y64.backward(dy.double())
        dx = x64.grad.float()
        assert torch.isfinite(dx).all(), f"{name}: non-finite dx"
        self.names.add(name)
        t = self.tensors
        t[f"{name}.x"] = x.contiguous().clone()
        t[f"{name}.y"] = y64.detach().float().contiguous()
        t[f"{name}.dy"] = dy.contiguous()
        t[f"{name}.dx"] = dx.contiguous()
        if weight is not None:
            t[f"{name}.weight"] = weight.contiguous().clone()
            t[f"{name}.dweight"] = w64.grad.float().contiguous()
        if bias is not None:
            t[f"{name}.bias"] = bias.contiguous().clone()
            t[f"{name}.dbias"] = b64.grad.float().contiguous()
        self.cases.append({"name": name, "lib": lib, "op": op, "args": args})
        if max_kp is not None:
            tied, total = count_ties(x, *max_kp)
            TIES[self.name][0] += tied
            TIES[self.name][1] += total


def count_ties(x, kh, kw, ph, pw):
    """(windows whose maximum occurs more than once, windows) of the dense stride-1 max."""
    xp = F.pad(x.double(), (pw, pw, ph, ph), value=float("-inf"))
    patches = xp.unfold(2, kh, 1).unfold(3, kw, 1)
    m = patches.amax(dim=(-1, -2), keepdim=True)
    tied = ((patches == m).sum(dim=(-1, -2)) > 1) & torch.isfinite(m[..., 0, 0])
    return int(tied.sum()), m.numel()


def taps_filter64(taps_y, taps_x):
    """composer's (1,1,kH,kW) filter: default (float64) or the outer product of custom taps."""
    if taps_y is None:
        return load_composer()._default_2d_filter().to(torch.float64)
    ty = torch.tensor(taps_y, dtype=torch.float64)
    tx = torch.tensor(taps_x, dtype=torch.float64)
    return (ty[:, None] * tx[None, :])[None, None].contiguous()


_COMPOSER = None


def load_composer():
    global _COMPOSER
    if _COMPOSER is None:
        _COMPOSER = gg.load_composer_blurpool()
    return _COMPOSER


def neg_inf_corners(x):
    """-inf 2x2 blocks in the top-left and bottom-right corners of channel 0: with max
    padding 1 the corner windows see only -inf in-bounds cells."""
    x = x.clone()
    x[:, 0, :2, :2] = float("-inf")
    x[:, 0, -2:, -2:] = float("-inf")
    return x


# --------------------------------------------------------------------------
# antialiased-cnns
# --------------------------------------------------------------------------


def gen_antialiased_cnns():
    g = GradGroup("grad_antialiased_cnns")
    i = 0
    sizes = [(7, 9), (8, 6), (9, 11), (6, 7)]

    def bp(c, a):
        return antialiased_cnns.BlurPool(
            c, pad_type=a["pad_type"], filt_size=a["filt_size"], stride=a["stride"], pad_off=a["pad_off"]
        ).double()

    # ---- BlurPool: filt 1..7 x pad x stride 1..3 ----
    for filt in range(1, 8):
        for pad in gg.AA_PADS:
            for stride in (1, 2, 3):
                h, w = sizes[i % len(sizes)]
                c = (1, 2, 3)[i % 3]
                n = 2 if i % 9 == 8 else 1
                i += 1
                a = {"pad_type": pad, "filt_size": filt, "stride": stride, "pad_off": 0}
                name = f"bp_f{filt}_{pad}_s{stride}_{h}x{w}"
                g.add(name, "antialiased_cnns", "blur_pool", a, g.randn(n, c, h, w), lambda x, _w, _b: bp(c, a)(x))
    for filt in (1, 3, 4):
        for pad in gg.AA_PADS:
            h, w = (9, 8)
            a = {"pad_type": pad, "filt_size": filt, "stride": 2, "pad_off": 1}
            name = f"bp_f{filt}_{pad}_o1_s2_{h}x{w}"
            g.add(name, "antialiased_cnns", "blur_pool", a, g.randn(1, 2, h, w), lambda x, _w, _b: bp(2, a)(x))

    # ---- MaxPool2d(k, 1, p) + BlurPool ----
    def mbp(name, mk, mp, pad, filt, stride, x):
        a = {
            "max_kernel": mk,
            "max_padding": mp,
            "pad_type": pad,
            "filt_size": filt,
            "stride": stride,
            "pad_off": 0,
        }
        c = x.shape[1]

        def fn(x64, _w, _b):
            return nn.Sequential(nn.MaxPool2d(mk, stride=1, padding=mp), bp(c, a))(x64)

        g.add(name, "antialiased_cnns", "max_blur_pool", a, x, fn, max_kp=(mk, mk, mp, mp))

    j = 0
    for filt in range(1, 8):
        for pad in gg.AA_PADS:
            stride = (filt + j) % 3 + 1
            h, w = sizes[j % len(sizes)]
            j += 1
            mbp(f"mbp_k2p0_f{filt}_{pad}_s{stride}_{h}x{w}_ties", 2, 0, pad, filt, stride, g.grid(1, 2, h, w))
    for filt in (2, 3, 4, 5):
        for pad in gg.AA_PADS:
            stride = (filt + j) % 3 + 1
            h, w = sizes[j % len(sizes)]
            j += 1
            mbp(f"mbp_k3p1_f{filt}_{pad}_s{stride}_{h}x{w}_ties", 3, 1, pad, filt, stride, g.grid(1, 2, h, w))
    mbp("mbp_k2p0_f4_reflect_s2_9x11_smooth", 2, 0, "reflect", 4, 2, g.randn(2, 2, 9, 11))
    mbp("mbp_k3p1_f3_replicate_s2_8x9_smooth", 3, 1, "replicate", 3, 2, g.randn(1, 3, 8, 9))
    mbp("mbp_nonfinite_k2p0_f3_reflect_s2", 2, 0, "reflect", 3, 2, gg.special_values_input(g, (2, 3, 9, 11)))
    mbp("mbp_nonfinite_k3p1_f4_zero_s2", 3, 1, "zero", 4, 2, gg.special_values_input(g, (1, 2, 10, 9)))
    mbp("mbp_neginf_k3p1_f3_replicate_s2", 3, 1, "replicate", 3, 2, neg_inf_corners(g.grid(1, 2, 8, 9)))

    # ---- conv -> act -> BlurPool (groups 1 / between / Cin) ----
    chans = [(3, 4, 1), (4, 6, 2), (4, 4, 4)]
    convs = [(3, 1), (1, 0), (5, 2), (3, 0)]
    k = 0
    for (cin, cout, groups) in chans:
        for act in ("identity", "relu", "relu6"):
            for rep in range(2):
                ks, padding = convs[(k + rep) % len(convs)]
                bias = k % 2 == 0
                filt = (3, 4, 2, 5)[k % 4]
                pad = gg.AA_PADS[k % 3]
                stride = (2, 1, 3)[k % 3] if rep else 2
                h, w = [(9, 10), (8, 9), (10, 8)][k % 3]
                n = 2 if k % 5 == 4 else 1
                k += 1
                a = {
                    "kernel_size": ks,
                    "padding": padding,
                    "groups": groups,
                    "bias": bias,
                    "act": act,
                    "pad_type": pad,
                    "filt_size": filt,
                    "stride": stride,
                    "pad_off": 0,
                }
                name = f"cbp_k{ks}p{padding}_g{groups}_ci{cin}_co{cout}_{'b' if bias else 'nb'}_{act}_f{filt}_{pad}_s{stride}"
                x = g.randn(n, cin, h, w, scale=4.0)
                fan_in = (cin // groups) * ks * ks
                weight = g.randn(cout, cin // groups, ks, ks, scale=1.5 / math.sqrt(fan_in))
                b = g.randn(cout) if bias else None

                def fn(x64, w64, b64, a=a, act=act, cout=cout):
                    z = F.conv2d(x64, w64, b64, stride=1, padding=a["padding"], groups=a["groups"])
                    return bp(cout, a)(ACTS[act](z))

                g.add(name, "antialiased_cnns", "conv_blur_pool", a, x, fn, weight=weight, bias=b)
    return g


# --------------------------------------------------------------------------
# kornia
# --------------------------------------------------------------------------


def gen_kornia():
    g = GradGroup("grad_kornia")
    i = 0
    for ks in range(1, 8):
        for stride in ((1, 2), (2, 3), (3, 1), (1, 2), (2, 3), (3, 1), (1, 2))[ks - 1]:
            h, w = [(9, 11), (8, 10), (7, 9)][i % 3]
            c = (1, 2, 3)[i % 3]
            i += 1
            a = {"kernel_size": ks, "stride": stride}
            g.add(
                f"bp_k{ks}_s{stride}_{h}x{w}",
                "kornia",
                "blur_pool2d",
                a,
                g.randn(1, c, h, w),
                lambda x, _w, _b, ks=ks, stride=stride: kornia.filters.blur_pool2d(x, ks, stride),
            )
    for ks in range(1, 6):
        for mps in (1, 2, 3):
            stride = (ks + mps) % 3 + 1
            h, w = [(9, 11), (8, 10), (7, 9)][i % 3]
            i += 1
            a = {"kernel_size": ks, "stride": stride, "max_pool_size": mps}
            g.add(
                f"mbp_k{ks}_m{mps}_s{stride}_{h}x{w}_ties",
                "kornia",
                "max_blur_pool2d",
                a,
                g.grid(1, 2, h, w),
                lambda x, _w, _b, ks=ks, stride=stride, mps=mps: kornia.filters.max_blur_pool2d(
                    x, ks, stride=stride, max_pool_size=mps
                ),
                max_kp=(mps, mps, 0, 0),
            )
    return g


# --------------------------------------------------------------------------
# timm
# --------------------------------------------------------------------------


def gen_timm():
    g = GradGroup("grad_timm")
    i = 0
    for filt in range(2, 8):
        for stride in (1, 2, 3):
            for pad_mode in ("reflect", "constant"):
                h, w = [(9, 11), (8, 10), (7, 8), (10, 7)][i % 4]
                c = (1, 2, 3)[i % 3]
                i += 1
                a = {"filt_size": filt, "stride": stride, "pad_mode": pad_mode}
                g.add(
                    f"bp_f{filt}_s{stride}_{pad_mode}_{h}x{w}",
                    "timm",
                    "blur_pool2d",
                    a,
                    g.randn(1, c, h, w),
                    lambda x, _w, _b, c=c, filt=filt, stride=stride, pad_mode=pad_mode: timm.layers.BlurPool2d(
                        channels=c, filt_size=filt, stride=stride, pad_mode=pad_mode
                    ).double()(x),
                )
    return g


# --------------------------------------------------------------------------
# composer
# --------------------------------------------------------------------------


def gen_composer():
    cb = load_composer()
    g = GradGroup("grad_composer")
    i = 0

    def blur(x, stride, ty, tx):
        c = x.shape[1]
        return cb.blur_2d(x, channels=c if c == 1 else -1, stride=tuple(stride), filter=taps_filter64(ty, tx))

    for (tag, ty, tx, stride) in [
        ("default", None, None, [1, 1]),
        ("default", None, None, [2, 2]),
        ("default", None, None, [2, 3]),
        ("t3x5", [0.1, 0.5, 0.2], [0.05, 0.2, 0.4, 0.25, 0.1], [2, 2]),
        ("t5x3", [1.0, -0.5, 2.0, 0.25, 0.5], [0.3, 0.9, -0.2], [1, 2]),
        ("t1x3", [1.5], [0.25, 0.5, 0.125], [3, 1]),
    ]:
        h, w = [(9, 11), (8, 10), (7, 9)][i % 3]
        c = (1, 2, 3)[i % 3]
        i += 1
        a = {"stride": stride, "taps_y": ty, "taps_x": tx}
        g.add(
            f"blur_{tag}_s{stride[0]}{stride[1]}_{h}x{w}",
            "composer",
            "blur_2d",
            a,
            g.randn(1, c, h, w),
            lambda x, _w, _b, stride=stride, ty=ty, tx=tx: blur(x, stride, ty, tx),
        )

    for (ks, stride, padding, ty, tx) in [
        ([2, 2], [2, 2], [0, 0], None, None),
        ([3, 3], [2, 2], [1, 1], None, None),
        ([1, 3], [2, 2], [0, 1], None, None),
        ([2, 2], [1, 1], [0, 0], None, None),
        ([3, 3], [2, 3], [0, 0], None, None),
        ([2, 3], [2, 2], [1, 1], None, None),
        ([2, 2], [2, 2], [0, 0], [0.1, 0.5, 0.2], [0.05, 0.2, 0.4, 0.25, 0.1]),
        ([3, 3], [2, 2], [1, 1], [0.2, 0.6, 0.2], [1.0]),
    ]:
        h, w = [(9, 11), (8, 10), (7, 9)][i % 3]
        i += 1
        tag = "default" if ty is None else f"t{len(ty)}x{len(tx)}"
        a = {"kernel_size": ks, "stride": stride, "padding": padding, "taps_y": ty, "taps_x": tx}
        g.add(
            f"bmp_k{ks[0]}{ks[1]}_s{stride[0]}{stride[1]}_p{padding[0]}{padding[1]}_{tag}_{h}x{w}_ties",
            "composer",
            "blurmax_pool2d",
            a,
            g.grid(1, 2, h, w),
            lambda x, _w, _b, ks=ks, stride=stride, padding=padding, ty=ty, tx=tx: cb.blurmax_pool2d(
                x,
                kernel_size=tuple(ks),
                stride=tuple(stride),
                padding=tuple(padding),
                filter=taps_filter64(ty, tx),
            ),
            max_kp=(ks[0], ks[1], padding[0], padding[1]),
        )

    configs = []
    for blur_first in (True, False):
        for (ks, padding) in (([3, 3], [1, 1]), ([1, 1], [0, 0])):
            for depthwise in (False, True):
                configs.append((blur_first, ks, [2, 2], padding, depthwise, len(configs) % 3 != 2))
    configs.append((True, [1, 3], [2, 1], [0, 1], False, True))
    configs.append((False, [3, 3], [2, 3], [0, 0], True, False))
    for k, (blur_first, ks, stride, padding, depthwise, bias) in enumerate(configs):
        cin, cout, groups = (4, 4, 4) if depthwise else (3, 5, 1)
        h, w = [(9, 11), (8, 10), (10, 9)][k % 3]
        n = 2 if k % 4 == 3 else 1
        a = {
            "kernel_size": ks,
            "stride": stride,
            "padding": padding,
            "groups": groups,
            "bias": bias,
            "blur_first": blur_first,
        }
        name = (
            f"bconv_{'bf' if blur_first else 'cf'}_k{ks[0]}{ks[1]}_s{stride[0]}{stride[1]}"
            f"_p{padding[0]}{padding[1]}_g{groups}_{'b' if bias else 'nb'}_{h}x{w}"
        )
        x = g.randn(n, cin, h, w)
        fan_in = (cin // groups) * ks[0] * ks[1]
        weight = g.randn(cout, cin // groups, ks[0], ks[1], scale=1.0 / math.sqrt(fan_in))
        b = g.randn(cout) if bias else None

        def fn(x64, w64, b64, cin=cin, cout=cout, ks=ks, stride=stride, padding=padding, groups=groups,
               bias=bias, blur_first=blur_first):
            m = cb.BlurConv2d(
                cin, cout, tuple(ks), tuple(stride), tuple(padding), groups=groups, bias=bias, blur_first=blur_first
            ).double()
            # Run the module with its conv parameters replaced by the float64 leaves whose
            # gradients are stored (the blur filter stays the module's own buffer).
            assert m.conv.weight.shape == w64.shape and (m.conv.bias is None) == (not bias)
            params = {"conv.weight": w64}
            if bias:
                params["conv.bias"] = b64
            return torch.func.functional_call(m, params, (x64,))

        g.add(name, "composer", "blur_conv2d", a, x, fn, weight=weight, bias=b)
    return g


# --------------------------------------------------------------------------
# torch max_pool2d
# --------------------------------------------------------------------------


def gen_torch_maxpool():
    g = GradGroup("grad_torch_maxpool")
    combos = []
    for k in (1, 2, 3):
        for p in range(0, k // 2 + 1):
            combos.append(([k, k], [1, 1], [p, p]))
    for p in ([0, 0], [1, 1], [0, 1], [1, 0]):
        combos.append(([2, 3], [1, 1], p))
    combos.append(([3, 2], [1, 1], [1, 0]))
    combos.append(([1, 3], [1, 1], [0, 1]))
    combos += [([2, 2], [2, 2], [0, 0]), ([3, 3], [2, 2], [1, 1]), ([2, 3], [2, 1], [1, 1]), ([3, 3], [3, 2], [0, 1])]
    i = 0

    def mp(name, ks, stride, padding, x):
        a = {"kernel_size": ks, "stride": stride, "padding": padding}
        g.add(
            name,
            "torch",
            "max_pool2d",
            a,
            x,
            lambda x64, _w, _b: F.max_pool2d(x64, tuple(ks), tuple(stride), tuple(padding)),
            max_kp=(ks[0], ks[1], padding[0], padding[1]),
        )

    for (ks, stride, padding) in combos:
        h, w = [(9, 11), (8, 10), (7, 9)][i % 3]
        c = (1, 2, 3)[i % 3]
        i += 1
        tag = f"k{ks[0]}{ks[1]}_s{stride[0]}{stride[1]}_p{padding[0]}{padding[1]}_{h}x{w}"
        mp(f"mp_{tag}_ties", ks, stride, padding, g.grid(1, c, h, w))
    for (ks, stride, padding) in (([2, 2], [1, 1], [0, 0]), ([3, 3], [1, 1], [1, 1]), ([2, 3], [2, 2], [1, 1])):
        tag = f"k{ks[0]}{ks[1]}_s{stride[0]}{stride[1]}_p{padding[0]}{padding[1]}"
        mp(f"mp_smooth_{tag}", ks, stride, padding, g.randn(1, 2, 8, 9))
        mp(f"mp_nonfinite_{tag}", ks, stride, padding, gg.special_values_input(g, (2, 3, 9, 10)))
    mp("mp_neginf_k33_s11_p11", [3, 3], [1, 1], [1, 1], neg_inf_corners(g.grid(1, 2, 7, 8)))
    mp("mp_neginf_k22_s11_p11", [2, 2], [1, 1], [1, 1], neg_inf_corners(g.grid(1, 2, 7, 8)))
    return g


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def verify(path, group):
    cases, tensors = gg.check_written(path, group, suffixes=("x", "y", "dy", "dx"))
    for c in cases:
        n = c["name"]
        assert tensors[f"{n}.dy"].shape == tensors[f"{n}.y"].shape
        assert tensors[f"{n}.dx"].shape == tensors[f"{n}.x"].shape
        if f"{n}.weight" in tensors:
            assert tensors[f"{n}.dweight"].shape == tensors[f"{n}.weight"].shape
        assert (f"{n}.bias" in tensors) == (f"{n}.dbias" in tensors)
    return len(cases)


def ties(name):
    tied, windows = TIES[name]
    return f", max windows with a tied maximum: {tied}/{windows}" if windows else ""


def main():
    gens = {
        "grad_antialiased_cnns": gen_antialiased_cnns,
        "grad_kornia": gen_kornia,
        "grad_timm": gen_timm,
        "grad_composer": gen_composer,
        "grad_torch_maxpool": gen_torch_maxpool,
    }
    assert list(gens) == GROUPS
    gg.write_groups(__doc__, gens, verify, MAX_TOTAL_BYTES, SKIPPED, describe=ties)


if __name__ == "__main__":
    main()
