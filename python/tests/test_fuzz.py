"""Fuzz of the Python binding: every public constructor, preset and function, called with random
and adversarial arguments (huge, negative and non-integer numbers, bools, strings, None, lists of
the wrong length, NaN/inf taps, tensors of odd shapes, dtypes and layouts).

The binding must answer each with a clean exception — BlurpoolError (the library's typed
errors), ValueError or TypeError — or a result; never another exception type, a crash or an
abort (the C library used to abort the process on some of these: issue 23). A fixed seed; set
BLURPOOL_PY_FUZZ_ITERS for more.
"""

import os
import random

import pytest
import torch

import blurpool_torch as bp

# MemoryError: a module whose persistent filter buffer (channels × F × F, as antialiased-cnns
# allocates it) does not fit in memory.
CLEAN = (bp.BlurpoolError, ValueError, TypeError, MemoryError)
ITERS = int(os.environ.get("BLURPOOL_PY_FUZZ_ITERS", "3000"))


def number(r: random.Random):
    return r.choice(
        [
            0,
            1,
            2,
            3,
            4,
            -1,
            -(2**31),
            2**31 - 1,
            2**31,
            2**63,
            -(2**63) - 1,
            10**30,
            r.randint(-5, 9),
            r.randint(-5, 9),
            1.5,
            float("nan"),
            float("inf"),
            True,
            False,
            None,
            "3",
            "reflect",
            [],
            [3],
            [3, 3],
            (2, 2, 2),
            [1.0, 2.0],
            object(),
        ]
    )


def mode(r: random.Random):
    return r.choice(["reflect", "replicate", "zero", "constant", "zeros", "circular", "", None, 1, "REFLECT"])


def taps(r: random.Random):
    return r.choice(
        [
            None,
            [],
            [1.0, 2.0, 1.0],
            [1.0] * 17,
            [float("nan"), 1.0, 1.0],
            [1e308, 1e308, 1e308],
            [float("inf")],
            "abc",
            [1, 2],
            3,
        ]
    )


def tensor(r: random.Random):
    shape = r.choice([(1, 3, 8, 8), (2, 1, 5, 7), (1, 3, 1, 1), (0, 3, 8, 8), (8, 8), (1, 3, 8), (1, 2, 3, 4, 5)])
    dtype = r.choice([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32])
    try:
        t = torch.rand(shape).to(dtype) if dtype.is_floating_point else torch.randint(0, 5, shape, dtype=dtype)
    except RuntimeError:
        t = torch.rand(1, 3, 8, 8)
    if t.dim() == 4 and r.random() < 0.3:
        t = t.contiguous(memory_format=torch.channels_last)
    if t.dim() == 4 and t.shape[-1] > 1 and r.random() < 0.1:
        t = t[..., ::2]
    return t


def calls(r: random.Random):
    """One random call of the public API: (description, zero-argument callable)."""
    n = lambda: number(r)  # noqa: E731
    choices = [
        ("Desc.antialiased_cnns_blur_pool", lambda: bp.Desc.antialiased_cnns_blur_pool(mode(r), n(), n(), n())),
        (
            "Desc.antialiased_cnns_max_blur_pool",
            lambda: bp.Desc.antialiased_cnns_max_blur_pool(n(), n(), mode(r), n(), n(), n()),
        ),
        ("Desc.kornia_blur_pool2d", lambda: bp.Desc.kornia_blur_pool2d(n(), n())),
        ("Desc.kornia_max_blur_pool2d", lambda: bp.Desc.kornia_max_blur_pool2d(n(), n(), n())),
        ("Desc.timm_blur_pool2d", lambda: bp.Desc.timm_blur_pool2d(n(), n(), mode(r))),
        ("Desc.composer_blur_2d", lambda: bp.Desc.composer_blur_2d(n(), taps(r), taps(r))),
        ("Desc.composer_blurmax_pool2d", lambda: bp.Desc.composer_blurmax_pool2d(n(), n(), n(), taps(r), taps(r))),
        ("BlurPool", lambda: bp.BlurPool(n(), mode(r), n(), n(), n())),
        ("MaxBlurPool", lambda: bp.MaxBlurPool(n(), n(), n(), mode(r), n(), n(), n())),
        ("MaxBlurPool2D", lambda: bp.MaxBlurPool2D(n(), n(), n(), r.choice([True, False, None, 1]))),
        ("BlurPool2d", lambda: bp.BlurPool2d(n(), n(), n(), mode(r))),
        (
            "ConvBlurPool2d",
            lambda: bp.ConvBlurPool2d(n(), n(), n(), n(), n(), r.choice([True, False]), r.choice(["relu", "x", None])),
        ),
        ("reference_blur_pool2d", lambda: bp.reference_blur_pool2d(tensor(r), n(), n())),
        ("reference_max_blur_pool2d", lambda: bp.reference_max_blur_pool2d(tensor(r), n(), n(), n())),
        ("blur_pool2d", lambda: bp.blur_pool2d(tensor(r), n(), n())),
        ("max_blur_pool2d", lambda: bp.max_blur_pool2d(tensor(r), n(), n(), n())),
        (
            "conv_blur_pool2d",
            lambda: bp.conv_blur_pool2d(tensor(r), r.choice([tensor(r), torch.rand(4, 3, 3, 3), [1.0], None]), None),
        ),
        (
            "Desc.output_shape",
            lambda: bp.Desc.timm_blur_pool2d(3, 2, "reflect").output_shape(r.choice([[1, 3, 8, 8], [n(), n(), n(), n()], [1, 2], "x"])),
        ),
        (
            "Desc.replace",
            lambda: bp.Desc.timm_blur_pool2d(3, 2, "reflect").replace(**{r.choice(["stride_y", "pad_top", "op", "nope", "taps_y"]): n()}),
        ),
        (
            "module forward on a random tensor",
            lambda: r.choice([bp.BlurPool(3), bp.BlurPool2d(), bp.MaxBlurPool2D(3), bp.MaxBlurPool(3)]).reference(tensor(r)),
        ),
    ]
    return r.choice(choices)


def test_fuzz_only_clean_exceptions():
    r = random.Random(0x5EED)
    kinds = {}
    bad = []
    for i in range(ITERS):
        what, call = calls(r)
        try:
            call()
            kinds["ok"] = kinds.get("ok", 0) + 1
        except CLEAN as e:
            kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
        except Exception as e:  # noqa: BLE001 - the point: anything else is a defect
            bad.append(f"case {i} {what}: {type(e).__name__}: {e}")
    print(f"python fuzz: {ITERS} calls, outcomes {sorted(kinds.items())}")
    assert not bad, f"{len(bad)} unclean exceptions, first ones:\n" + "\n".join(bad[:15])
    assert kinds.get("ok", 0) > ITERS // 50, f"too few calls succeeded to exercise the success paths: {kinds}"


def test_fuzz_huge_paddings_do_not_abort():
    """Calls that used to abort the process (issue 23): a wrong output length checked only after
    allocating a 12.8 GB intermediate, and a blur-first conv whose blurred map (2^52 values) was
    materialised although the output has 4."""
    d = bp.Desc.antialiased_cnns_blur_pool("zero", 3, 1, 20000)
    x = torch.ones(1, 1, 1, 1)
    with pytest.raises(bp.BlurpoolConfigError, match="output"):
        # dtype 0 = F32, layout 0 = NCHW; y given as 0 elements
        d.reference_raw(0, 0, [1, 1, 1, 1], (x.data_ptr(), 1), (None, 0), (None, 0), (None, 0))
    blur = bp.Desc.composer_blur_2d(1, [1.0, 2.0, 1.0], [1.0, 2.0, 1.0]).replace(
        pad_top=2**25, pad_bottom=2**25, pad_left=2**25, pad_right=2**25
    )
    conv = blur.with_conv(1, 1, 1, blur_first=True, conv_stride=2**25, bias=True)
    assert conv.output_shape([1, 1, 1, 1]) == (1, 1, 2, 2)
    y = bp.reference(x, conv, torch.full((1, 1, 1, 1), 2.0), torch.full((1,), 0.5))
    assert y.shape == (1, 1, 2, 2) and torch.isfinite(y).all()
