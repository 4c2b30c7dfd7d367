"""The CPU reference, built from each module's library-shaped arguments, against the libraries
themselves (antialiased-cnns, kornia, timm), when they are installed."""

import itertools
import warnings

import pytest
import torch

import blurpool_torch as bp

torch.manual_seed(0)
X = torch.randn(2, 3, 11, 10)


def close(got, want):
    assert got.shape == want.shape, (got.shape, want.shape)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def _import(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip(name, reason=f"{name} is not installed (pip install {name})")


@pytest.mark.parametrize(
    "pad_type,filt_size,stride,pad_off",
    list(itertools.product(["reflect", "repl", "zero"], range(1, 8), [1, 2, 3], [0, 1])),
)
def test_antialiased_cnns_blur_pool(pad_type, filt_size, stride, pad_off):
    aa = _import("antialiased_cnns")
    want = aa.BlurPool(3, pad_type=pad_type, filt_size=filt_size, stride=stride, pad_off=pad_off)(X)
    close(bp.BlurPool(3, pad_type, filt_size, stride, pad_off).reference(X), want)


@pytest.mark.parametrize("max_kernel,max_padding,filt_size", [(2, 0, 4), (3, 1, 3), (3, 0, 5), (2, 0, 1)])
def test_antialiased_cnns_max_blur_pool(max_kernel, max_padding, filt_size):
    aa = _import("antialiased_cnns")
    seq = torch.nn.Sequential(
        torch.nn.MaxPool2d(max_kernel, stride=1, padding=max_padding), aa.BlurPool(3, filt_size=filt_size)
    )
    close(bp.MaxBlurPool(3, max_kernel, max_padding, filt_size=filt_size).reference(X), seq(X))


@pytest.mark.parametrize("kernel_size,stride", list(itertools.product(range(1, 8), [1, 2, 3])))
def test_kornia_blur_pool2d(kernel_size, stride):
    kornia = _import("kornia")
    close(bp.reference_blur_pool2d(X, kernel_size, stride), kornia.filters.blur_pool2d(X, kernel_size, stride))


@pytest.mark.parametrize(
    "kernel_size,stride,max_pool_size", list(itertools.product(range(1, 6), [1, 2, 3], [1, 2, 3]))
)
def test_kornia_max_blur_pool2d(kernel_size, stride, max_pool_size):
    kornia = _import("kornia")
    want = kornia.filters.MaxBlurPool2D(kernel_size, stride=stride, max_pool_size=max_pool_size)(X)
    close(bp.MaxBlurPool2D(kernel_size, stride, max_pool_size).reference(X), want)


@pytest.mark.parametrize(
    "filt_size,stride,pad_mode", list(itertools.product(range(2, 8), [1, 2, 3], ["reflect", "constant"]))
)
def test_timm_blur_pool2d(filt_size, stride, pad_mode):
    _import("timm")
    from timm.layers import BlurPool2d as TimmBlurPool2d

    want = TimmBlurPool2d(3, filt_size=filt_size, stride=stride, pad_mode=pad_mode)(X)
    close(bp.BlurPool2d(3, filt_size, stride, pad_mode).reference(X), want)


def test_antialiased_cnns_conv_relu_blur():
    aa = _import("antialiased_cnns")
    conv = torch.nn.Conv2d(3, 6, 3, padding=1)
    with torch.no_grad():
        want = aa.BlurPool(6, filt_size=4)(torch.relu(conv(X)))
        got = bp.ConvBlurPool2d.from_conv(conv, activation="relu", filt_size=4).reference(X)
    close(got, want)
