"""Autograd through the fused op: registration (everywhere) and gradients on a GPU against torch's
own autograd through the same computation in plain PyTorch ops (skipped without CUDA)."""

import pytest
import torch
import torch.nn.functional as F

import blurpool_torch as bp

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)")


def test_backward_op_and_autograd_are_registered():
    assert hasattr(torch.ops.blurpool, "backward")
    # The forward op has an autograd kernel (not the default "not differentiable" fallthrough).
    assert torch._C._dispatch_has_kernel_for_dispatch_key("blurpool::forward", "Autograd")


_MODES = {0: "reflect", 1: "replicate", 2: "constant"}


def _torch_blur(y, r):
    """The descriptor's blur + subsample in plain torch ops: pad, then a depthwise conv with the
    (normalised) outer product of the taps."""
    ty = torch.tensor([r.taps_y[i] for i in range(r.taps_y_len)], dtype=torch.float64)
    tx = torch.tensor([r.taps_x[i] for i in range(r.taps_x_len)], dtype=torch.float64)
    w = ty[:, None] * tx[None, :]
    if r.normalize:
        w = w / w.sum()
    c = y.shape[1]
    w = w.to(y.dtype).to(y.device).expand(c, 1, *w.shape).contiguous()
    y = F.pad(y, (r.pad_left, r.pad_right, r.pad_top, r.pad_bottom), mode=_MODES[r.pad_mode])
    return F.conv2d(y, w, stride=(r.stride_y, r.stride_x), groups=c)


def _torch_max_blur(x, m):
    r = m.desc.raw
    y = F.max_pool2d(x, (r.max_kernel_y, r.max_kernel_x), stride=1, padding=(r.max_pad_y, r.max_pad_x))
    return _torch_blur(y, r)


@cuda
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_blur_pool_gradient_matches_torch(channels_last):
    torch.manual_seed(0)
    m = bp.MaxBlurPool2D(3)
    x = torch.randn(2, 4, 13, 12, device="cuda", dtype=torch.float64).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    ya = m(xa)
    yb = _torch_max_blur(xb, m)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ya)
    (ga,) = torch.autograd.grad(ya, xa, g)
    (gb,) = torch.autograd.grad(yb, xb, g)
    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-5)


@cuda
def test_conv_blur_pool_gradients_match_torch_and_are_deterministic():
    torch.backends.cudnn.allow_tf32 = False  # torch's conv must be a full-f32 comparison
    torch.manual_seed(1)
    m = bp.ConvBlurPool2d(6, 6, 3, padding=1, groups=2, bias=True, activation="relu").cuda()
    r = m.desc.raw
    x = torch.randn(2, 6, 11, 10, device="cuda", requires_grad=True)
    y = m(x)
    z = F.relu(F.conv2d(x, m.weight, m.bias, padding=1, groups=2))
    want = _torch_blur(z, r)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, m.weight, m.bias], g)
    wants = torch.autograd.grad(want, [x, m.weight, m.bias], g)
    for name, a, b in zip(["dx", "dweight", "dbias"], grads, wants):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=name)
    again = torch.autograd.grad(m(x), [x, m.weight, m.bias], g)
    for a, b in zip(grads, again):
        assert torch.equal(a, b), "repeated backward must be bitwise identical"
