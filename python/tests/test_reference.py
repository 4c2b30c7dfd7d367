"""The CPU reference through the C ABI against values that need no third-party library."""

import pytest
import torch
import torch.nn.functional as F

import blurpool_torch as bp

EYE5 = torch.eye(5)[None, None]


def test_kornia_doctest_blur_pool2d():
    # kornia.filters.blur_pool2d(torch.eye(5)[None, None], 3), from kornia's docstring.
    want = torch.tensor([[0.3125, 0.0625, 0.0], [0.0625, 0.375, 0.0625], [0.0, 0.0625, 0.3125]])
    assert torch.equal(bp.reference_blur_pool2d(EYE5, 3)[0, 0], want)


def test_kornia_doctest_max_blur_pool2d():
    want = torch.tensor([[0.5625, 0.3125], [0.3125, 0.875]])
    assert torch.equal(bp.reference_max_blur_pool2d(EYE5, 3)[0, 0], want)
    assert torch.equal(bp.MaxBlurPool2D(3).reference(EYE5)[0, 0], want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types(dtype):
    # Every value here is exact in f16 and bf16.
    got = bp.reference_max_blur_pool2d(EYE5.to(dtype), 3)
    assert got.dtype == dtype
    assert torch.equal(got.float()[0, 0], torch.tensor([[0.5625, 0.3125], [0.3125, 0.875]]))


def test_seed_signal_shift():
    """The paper's example: 0,0,1,1,... and its one-pixel shift; antialiased-cnns MaxBlurPool."""
    row = torch.tensor([float((i // 2) % 2) for i in range(16)])
    shifted = torch.cat([torch.zeros(1), row[:-1]])
    x = torch.stack([row.expand(4, 16), shifted.expand(4, 16)])[:, None].contiguous()  # 2×1×4×16
    y = bp.MaxBlurPool(1).reference(x)  # MaxPool2d(2, s1) → BlurPool(reflect, 4, 2)
    assert y.shape == (2, 1, 2, 8)
    assert y[0, 0, 0].tolist() == [0.625, 0.875] * 4
    assert y[1, 0, 0].tolist() == [0.125, 0.875, 0.625, 0.875, 0.625, 0.875, 0.625, 0.5]
    # Plain MaxPool2d(2, 2) flips half its outputs under the same shift.
    p = F.max_pool2d(x, 2)
    assert (p[0] != p[1]).float().mean() == 0.375


def test_channels_last_equals_contiguous():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 11)
    for m in (bp.MaxBlurPool(5), bp.BlurPool2d(5), bp.MaxBlurPool2D(3, stride=3)):
        a = m.reference(x)
        b = m.reference(x.contiguous(memory_format=torch.channels_last))
        assert b.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(a, b)


def _blur_torch(z, taps, pad, mode, stride):
    """Depthwise separable blur in plain torch (pad = (left, right, top, bottom))."""
    a = torch.tensor(taps, dtype=torch.float64)
    k = (a[:, None] * a[None, :]) / a.sum() ** 2
    c = z.shape[1]
    zp = F.pad(z, pad, mode=mode) if mode != "constant" else F.pad(z, pad)
    return F.conv2d(zp, k.expand(c, 1, *k.shape).to(z.dtype), stride=stride, groups=c)


@pytest.mark.parametrize("groups,act", [(1, "relu"), (4, "relu6"), (2, "identity")])
def test_conv_blur_pool_matches_plain_torch(groups, act):
    torch.manual_seed(1)
    x = torch.randn(2, 4, 10, 9)
    m = bp.ConvBlurPool2d(4, 8, 3, padding=1, groups=groups, activation=act, filt_size=4, stride=2)
    got = m.reference(x)
    z = F.conv2d(x.double(), m.weight.detach().double(), m.bias.detach().double(), padding=1, groups=groups)
    z = {"relu": F.relu, "relu6": F.relu6, "identity": lambda v: v}[act](z)
    want = _blur_torch(z, [1.0, 3.0, 3.0, 1.0], (1, 2, 1, 2), "reflect", 2)  # antialiased-cnns F=4
    assert got.shape == want.shape
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)


def test_composer_custom_taps_used_as_given():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 7, 7)
    d = bp.Desc.composer_blur_2d(1, [1.0, 2.0, 1.0], [1.0, 2.0, 1.0])  # not normalised: sums 16
    got = bp.reference(x, d)
    want = 16 * _blur_torch(x.double(), [1.0, 2.0, 1.0], (1, 1, 1, 1), "constant", 1)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)


def test_empty_batch():
    assert bp.MaxBlurPool(3).reference(torch.zeros(0, 3, 8, 8)).shape == (0, 3, 4, 4)
