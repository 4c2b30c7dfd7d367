"""The functional API: one ``torch.library`` custom op (``blurpool::forward``) that launches the
fused kernel on PyTorch's current stream, the library-shaped functions on top of it, and the
CPU reference through the C ABI.

Off CUDA's kernels (CPU and meta tensors, float64) :func:`apply` composes the operator from
torch ops instead (``_torch_path``), and PyTorch differentiates it.

Autograd on CUDA: ``blurpool::forward`` has a registered backward, ``blurpool::backward``, which runs
the crate's deterministic gather kernels (bitwise reproducible in every pad mode, also under
``torch.use_deterministic_algorithms(True)``): dx for every operator but BlurConv2d, and dweight,
dbias for ConvBlurPool2d. BlurConv2d (composer's blur-first conv) raises on backward for now.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import _lib, _torch_path
from ._lib import Desc

_DTYPES = {torch.float32: _lib.DTYPE_F32, torch.float16: _lib.DTYPE_F16, torch.bfloat16: _lib.DTYPE_BF16}


# ---- argument checks ---------------------------------------------------------------------------


def _layout(x: Tensor) -> int:
    """NCHW for contiguous tensors, NHWC for channels_last ones (contiguous wins when both hold)."""
    if x.is_contiguous():
        return _lib.LAYOUT_NCHW
    if x.is_contiguous(memory_format=torch.channels_last):
        return _lib.LAYOUT_NHWC
    raise ValueError(
        f"blurpool needs a dense tensor, contiguous (NCHW) or channels_last (NHWC); got strides "
        f"{tuple(x.stride())} for shape {tuple(x.shape)}: call .contiguous() or "
        f".contiguous(memory_format=torch.channels_last) first"
    )


def _memory_format(layout: int):
    return torch.channels_last if layout == _lib.LAYOUT_NHWC else torch.contiguous_format


def _check_input(x, *, cuda: bool) -> int:
    """Type, rank, dtype, density and device of the input; returns its layout."""
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"input must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"input dtype {x.dtype} is not supported here: use float32, float16 or bfloat16")
    layout = _layout(x)
    if cuda and x.device.type != "cuda":
        raise TypeError(
            f"input is on {x.device}, but blurpool's kernels run on CUDA tensors; move it with "
            f".cuda(), or use blurpool_torch.reference(...) for the CPU reference"
        )
    if not cuda and x.device.type != "cpu":
        raise TypeError(f"the reference runs on CPU tensors, but input is on {x.device}; use .cpu()")
    return layout


def _check_params(desc: Desc, x: Tensor, weight, bias, contiguous: bool = True):
    """Weight/bias against the descriptor and the input; returns (weight, bias), made
    contiguous for the kernels."""
    r = desc.raw
    if not desc.has_conv:
        if weight is not None or bias is not None:
            raise ValueError("weight/bias were given but the operator has no convolution")
        return None, None
    if not isinstance(weight, Tensor):
        raise TypeError("the convolution needs a weight tensor")
    want = (r.conv_out_channels, r.conv_in_channels // max(r.conv_groups, 1), r.conv_kernel_y, r.conv_kernel_x)
    if tuple(weight.shape) != want:
        raise ValueError(f"weight has shape {tuple(weight.shape)}, expected {want} (Cout, Cin/groups, kh, kw)")
    params = [("weight", weight)]
    if bool(r.conv_has_bias) != (bias is not None):
        raise ValueError("bias must be given exactly when the operator was built with bias=True")
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError("bias must be a tensor")
        if tuple(bias.shape) != (r.conv_out_channels,):
            raise ValueError(f"bias has shape {tuple(bias.shape)}, expected ({r.conv_out_channels},)")
        params.append(("bias", bias))
    for name, p in params:
        if p.dtype != x.dtype:
            raise TypeError(f"{name} dtype {p.dtype} differs from the input's {x.dtype}")
        if p.device != x.device:
            raise TypeError(f"{name} is on {p.device} but the input is on {x.device}")
    if not contiguous:
        return weight, bias
    # Conv weights are read as Cout×Cin/g×kh×kw whatever the activations' layout (a model moved
    # to channels_last has channels_last weights too): make them dense in that order.
    return weight.contiguous(), (bias.contiguous() if bias is not None else None)


# ---- the custom op -----------------------------------------------------------------------------


@torch.library.custom_op("blurpool::forward", mutates_args=(), device_types="cuda")
def _forward(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    config: list[int],
    taps_y: list[float],
    taps_x: list[float],
) -> Tensor:
    desc = Desc.from_args(config, taps_y, taps_x)
    layout = _layout(x)
    out_shape = desc.output_shape(x.shape)
    y = torch.empty(out_shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(layout))
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        desc.forward_raw(
            _DTYPES[x.dtype],
            layout,
            tuple(x.shape),
            x.data_ptr(),
            weight.data_ptr() if weight is not None else 0,
            bias.data_ptr() if bias is not None else 0,
            y.data_ptr(),
            stream,
            x.device.index if x.device.index is not None else torch.cuda.current_device(),
        )
    return y


@_forward.register_fake
def _forward_fake(x, weight, bias, config, taps_y, taps_x):
    desc = Desc.from_args(config, taps_y, taps_x)
    out_shape = desc.output_shape([int(s) for s in x.shape])
    return torch.empty(out_shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(_layout(x)))


@torch.library.custom_op("blurpool::backward", mutates_args=(), device_types="cuda")
def _backward(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    dy: Tensor,
    config: list[int],
    taps_y: list[float],
    taps_x: list[float],
) -> list[Tensor]:
    """Gradients [dx, dweight, dbias] (empty tensors where the operator has no such input)."""
    desc = Desc.from_args(config, taps_y, taps_x)
    layout = _layout(x)
    fmt = _memory_format(layout)
    dy = dy.contiguous(memory_format=fmt)
    dx = torch.empty_like(x, memory_format=fmt)
    dw = torch.empty_like(weight) if weight is not None else x.new_empty(0)
    db = torch.empty_like(bias) if bias is not None else x.new_empty(0)
    ws = torch.empty(desc.backward_workspace_len(tuple(x.shape)), dtype=torch.float32, device=x.device)
    ptr = lambda t: t.data_ptr() if t is not None and t.numel() > 0 else 0  # noqa: E731
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        desc.backward_raw(
            _DTYPES[x.dtype],
            layout,
            tuple(x.shape),
            ptr(x),
            ptr(weight),
            ptr(bias),
            ptr(dy),
            ptr(dx),
            ptr(dw) if weight is not None else 0,
            ptr(db) if bias is not None else 0,
            ptr(ws),
            stream,
            x.device.index if x.device.index is not None else torch.cuda.current_device(),
        )
    return [dx, dw, db]


@_backward.register_fake
def _backward_fake(x, weight, bias, dy, config, taps_y, taps_x):
    fmt = _memory_format(_layout(x))
    dw = torch.empty_like(weight) if weight is not None else x.new_empty(0)
    db = torch.empty_like(bias) if bias is not None else x.new_empty(0)
    return [torch.empty_like(x, memory_format=fmt), dw, db]


def _setup_context(ctx, inputs, output):
    x, weight, bias, config, taps_y, taps_x = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.args = (config, taps_y, taps_x)


def _autograd_backward(ctx, dy):
    x, weight, bias = ctx.saved_tensors
    dx, dw, db = torch.ops.blurpool.backward(x, weight, bias, dy, *ctx.args)
    return (
        dx,
        dw if weight is not None else None,
        db if bias is not None else None,
        None,
        None,
        None,
    )


torch.library.register_autograd("blurpool::forward", _autograd_backward, setup_context=_setup_context)


# ---- generic entry points ----------------------------------------------------------------------


def uses_kernels(input: Tensor) -> bool:
    """True where :func:`apply` runs the fused CUDA kernel: a CUDA tensor of float32, float16 or
    bfloat16. Everything else (CPU and meta tensors, float64) takes the torch-ops path."""
    return isinstance(input, Tensor) and input.device.type == "cuda" and input.dtype in _DTYPES


def _check_any_input(x) -> None:
    """The checks of every path: a 4-D floating tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"input must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"input dtype {x.dtype} is not supported: use a floating type (float32, float16, bfloat16; float64 off CUDA's kernels)")


def apply(input: Tensor, desc: Desc, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Tensor:
    """Runs the operator ``desc`` on ``input``, with autograd.

    * CUDA tensors of float32/float16/bfloat16: one fused kernel on the current stream
      (``torch.ops.blurpool.forward``, with its backward kernels).
    * CPU and meta tensors, float64 anywhere: the same operator composed from torch ops, as the
      libraries compute it (``_torch_path``: same numbers as timm/antialiased-cnns/kornia on
      CPU, autograd, ``torch.compile``/``torch.export``/tracing).

    The output has the input's dtype and memory format (contiguous or channels_last)."""
    _check_any_input(input)
    if not torch.compiler.is_compiling():
        desc.output_shape(input.shape)  # config errors as BlurpoolConfigError before any work
    if not uses_kernels(input):
        _layout(input)
        weight, bias = _check_params(desc, input, weight, bias, contiguous=False)
        return _torch_path.forward(input, desc, weight, bias)
    _check_input(input, cuda=True)
    weight, bias = _check_params(desc, input, weight, bias)
    ints, ty, tx = desc.to_args()
    return torch.ops.blurpool.forward(input, weight, bias, ints, ty, tx)


def reference(input: Tensor, desc: Desc, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Tensor:
    """The CPU reference of ``desc`` through the C ABI (f64 accumulation, one rounding)."""
    layout = _check_input(input, cuda=False)
    weight, bias = _check_params(desc, input, weight, bias)
    out_shape = desc.output_shape(input.shape)
    y = torch.empty(out_shape, dtype=input.dtype, memory_format=_memory_format(layout))

    def buf(t):
        return (t.data_ptr() or None, t.numel()) if t is not None else (None, 0)

    desc.reference_raw(
        _DTYPES[input.dtype], layout, tuple(input.shape), buf(input), buf(weight), buf(bias), (y.data_ptr(), y.numel())
    )
    return y


# ---- library-shaped functions ------------------------------------------------------------------


def blur_pool2d_desc(kernel_size, stride=2) -> Desc:
    return Desc.kornia_blur_pool2d(kernel_size, stride)


def max_blur_pool2d_desc(kernel_size, stride=2, max_pool_size=2, ceil_mode=False) -> Desc:
    if not isinstance(ceil_mode, bool):
        raise TypeError("ceil_mode must be a bool")
    # kornia ignores ceil_mode (its max runs at stride 1 without padding), and so do we.
    return Desc.kornia_max_blur_pool2d(kernel_size, stride, max_pool_size)


def conv_blur_pool2d_desc(
    in_channels,
    out_channels,
    kernel_size,
    padding=0,
    groups=1,
    bias=False,
    activation="identity",
    filt_size=4,
    stride=2,
    pad_type="reflect",
    pad_off=0,
    style="antialiased_cnns",
) -> Desc:
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool (whether the conv has one), got {type(bias).__name__}")
    if style == "antialiased_cnns":
        blur = Desc.antialiased_cnns_blur_pool(pad_type, filt_size, stride, pad_off)
    elif style == "timm":
        # (timm's geometry for the blur stage)
        if pad_off:
            raise ValueError("pad_off is an antialiased-cnns argument; timm has none")
        blur = Desc.timm_blur_pool2d(filt_size, stride, pad_type)
    else:
        raise ValueError(f"style must be 'antialiased_cnns' or 'timm', got {style!r}")
    return blur.with_conv(in_channels, out_channels, kernel_size, padding, groups, bias, activation)


def blur_pool2d(input: Tensor, kernel_size, stride=2) -> Tensor:
    """kornia's ``blur_pool2d(input, kernel_size, stride)`` (fused on CUDA, torch ops elsewhere)."""
    return apply(input, blur_pool2d_desc(kernel_size, stride))


def max_blur_pool2d(input: Tensor, kernel_size, stride=2, max_pool_size=2, ceil_mode=False) -> Tensor:
    """kornia's ``max_blur_pool2d(input, kernel_size, stride, max_pool_size, ceil_mode)`` (fused on
    CUDA, torch ops elsewhere)."""
    return apply(input, max_blur_pool2d_desc(kernel_size, stride, max_pool_size, ceil_mode))


def _conv_desc_for(input, weight, bias, padding, groups, activation, filt_size, stride, pad_type, pad_off, style):
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.dim() != 4:
        raise ValueError(f"input must be 4-D (N, C, H, W), got shape {tuple(input.shape)}")
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        raise TypeError("weight must be a 4-D tensor (Cout, Cin/groups, kh, kw)")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"bias must be a tensor or None, got {type(bias).__name__}")
    cout, _, kh, kw = weight.shape
    return conv_blur_pool2d_desc(
        input.shape[1], cout, (kh, kw), padding, groups, bias is not None, activation, filt_size, stride,
        pad_type, pad_off, style,
    )  # fmt: skip


def conv_blur_pool2d(
    input: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    padding=0,
    groups=1,
    activation="identity",
    filt_size=4,
    stride=2,
    pad_type="reflect",
    pad_off=0,
    style="antialiased_cnns",
) -> Tensor:
    """``BlurPool(act(conv2d(input, weight, bias, stride=1, padding, groups)))``, fused: the
    full-resolution conv output never reaches memory. ``style`` picks the blur geometry:
    'antialiased_cnns' (``pad_type``, ``pad_off``) or 'timm' (``pad_type`` is its pad_mode)."""
    desc = _conv_desc_for(input, weight, bias, padding, groups, activation, filt_size, stride, pad_type, pad_off, style)
    return apply(input, desc, weight, bias)


def reference_blur_pool2d(input: Tensor, kernel_size, stride=2) -> Tensor:
    """:func:`blur_pool2d` by the CPU reference."""
    return reference(input, blur_pool2d_desc(kernel_size, stride))


def reference_max_blur_pool2d(input: Tensor, kernel_size, stride=2, max_pool_size=2, ceil_mode=False) -> Tensor:
    """:func:`max_blur_pool2d` by the CPU reference."""
    return reference(input, max_blur_pool2d_desc(kernel_size, stride, max_pool_size, ceil_mode))


def reference_conv_blur_pool2d(
    input: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    padding=0,
    groups=1,
    activation="identity",
    filt_size=4,
    stride=2,
    pad_type="reflect",
    pad_off=0,
    style="antialiased_cnns",
) -> Tensor:
    """:func:`conv_blur_pool2d` by the CPU reference."""
    desc = _conv_desc_for(input, weight, bias, padding, groups, activation, filt_size, stride, pad_type, pad_off, style)
    return reference(input, desc, weight, bias)
