"""Every operator composed from torch ops: the path for CPU and meta tensors, float64, and any
device the fused kernels do not serve.

Why torch ops and not the C ABI's CPU reference: this path must give the libraries' own numbers
(a converted model on CPU reproduces the original's outputs), support autograd, float64,
``torch.compile``, ``torch.export`` and tracing, and run as fast as the original on CPU. The
libraries compute exactly this sequence (``F.max_pool2d`` at stride 1, ``F.pad`` in the blur's
mode, a depthwise ``F.conv2d`` with the normalised binomial filter at the stride), so the same
ops give the same numbers at the same speed, and PyTorch supplies the gradients. The C ABI's
reference (f64 accumulation, one rounding) stays available as :func:`blurpool_torch.reference`
as the oracle the CUDA kernels are tested against.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _lib
from ._lib import Desc

_PAD_MODES = {_lib.PAD_ZERO: "constant", _lib.PAD_REFLECT: "reflect", _lib.PAD_REPLICATE: "replicate"}


def blur_filter(desc: Desc, dtype: torch.dtype, device) -> Tensor:
    """The blur's 2-D filter (Fy × Fx) as the descriptor defines it (normalised to sum 1 unless
    the descriptor says otherwise), computed in float64 and rounded once to ``dtype``."""
    r = desc.plain()
    ty = torch.tensor(r["taps_y"], dtype=torch.float64)
    tx = torch.tensor(r["taps_x"], dtype=torch.float64)
    if r["normalize"]:
        ty, tx = ty / ty.sum(), tx / tx.sum()
    return (ty[:, None] * tx[None, :]).to(dtype=dtype, device=device)


def _blur(x: Tensor, desc: Desc, stride_y: int, stride_x: int) -> Tensor:
    r = desc.plain()
    pads = (r["pad_left"], r["pad_right"], r["pad_top"], r["pad_bottom"])
    if any(pads):
        if r["pad_mode"] == _lib.PAD_ZERO:
            x = F.pad(x, pads, mode="constant", value=0.0)
        else:
            x = F.pad(x, pads, mode=_PAD_MODES[r["pad_mode"]])
    c = x.shape[1]
    filt = blur_filter(desc, x.dtype, x.device)
    if filt.numel() == 1 and float(filt.reshape(())) == 1.0:
        return x[:, :, ::stride_y, ::stride_x]  # a 1-tap filter is a subsample (antialiased-cnns)
    w = filt.expand(c, 1, filt.shape[0], filt.shape[1])
    return F.conv2d(x, w, stride=(stride_y, stride_x), groups=c)


def _act(z: Tensor, code: int) -> Tensor:
    if code == _lib.ACT_RELU:
        return F.relu(z)
    if code == _lib.ACT_RELU6:
        return F.relu6(z)
    return z


def forward(x: Tensor, desc: Desc, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Tensor:
    """``desc`` on ``x`` in torch ops; the output keeps the input's memory format."""
    r = desc.plain()
    dense_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if dense_last else torch.contiguous_format
    op = r["op"]
    max_kernel, max_pad = (r["max_kernel_y"], r["max_kernel_x"]), (r["max_pad_y"], r["max_pad_x"])
    conv_pad = (r["conv_pad_y"], r["conv_pad_x"])
    if op == _lib.OP_MAX_POOL:
        y = F.max_pool2d(x, max_kernel, stride=1, padding=max_pad)
    elif op == _lib.OP_BLUR_POOL:
        y = _blur(x, desc, r["stride_y"], r["stride_x"])
    elif op == _lib.OP_MAX_BLUR_POOL:
        y = _blur(F.max_pool2d(x, max_kernel, stride=1, padding=max_pad), desc, r["stride_y"], r["stride_x"])
    elif op == _lib.OP_CONV_BLUR_POOL:
        z = F.conv2d(x, weight, bias, stride=1, padding=conv_pad, groups=r["conv_groups"])
        y = _blur(_act(z, r["conv_activation"]), desc, r["stride_y"], r["stride_x"])
    elif op == _lib.OP_BLUR_CONV:
        b = _blur(x, desc, 1, 1)
        stride = (r["conv_stride_y"], r["conv_stride_x"])
        y = _act(F.conv2d(b, weight, bias, stride=stride, padding=conv_pad, groups=r["conv_groups"]), r["conv_activation"])
    else:
        raise ValueError(f"unknown operator {op} in the descriptor")
    return y.contiguous(memory_format=fmt)
