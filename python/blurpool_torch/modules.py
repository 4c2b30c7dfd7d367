"""nn.Module drop-ins with the constructor arguments, buffers and state_dict keys of the modules
they mirror (timm's ``device=``/``dtype=`` included), so that a model built with them loads the
original's checkpoints with ``strict=True``.

Each module holds its :class:`~blurpool_torch.Desc` (built once, in ``__init__``, so bad
arguments fail there). ``forward`` runs the fused CUDA kernel on CUDA tensors (float32, float16,
bfloat16) and the same operator composed from torch ops everywhere else (CPU, meta, float64), with
autograd on both; ``reference`` runs the C ABI's CPU reference.

The blur filter buffers (``filt``, ``kernel``) are kept for the state_dict and for code that
reads them; the operator uses the descriptor's binomial taps, which are the same numbers.
"""


import math
from typing import Optional

import torch
from torch import Tensor, nn

from . import _torch_path, ops
from ._lib import Desc, _integer


def _check_channels(layer: str, channels: Optional[int], x: Tensor):
    if channels is not None and isinstance(x, Tensor) and x.dim() == 4 and x.shape[1] != channels:
        raise ValueError(f"{layer} was built for {channels} channels but the input has {x.shape[1]}")


def _channels(name: str, v, optional: bool = False) -> Optional[int]:
    if v is None and optional:
        return None
    v = _integer(name, v)
    if not 1 <= v < 2**31:
        raise ValueError(f"{name} must be in 1 .. 2^31 − 1 (docs/SPEC.md §1), got {v}")
    return v


def _filter_buffer(desc: Desc, channels: Optional[int], device, dtype, materialise: bool = True) -> Tensor:
    """(channels or 1) × 1 × F × F copies of the blur filter (float32 unless ``dtype``): real
    copies when the buffer is persistent (its shape is in checkpoints), else an expanded view."""
    f = _torch_path.blur_filter(desc, torch.float32, "cpu")[None, None]
    f = f.to(device=device, dtype=dtype if dtype is not None else torch.float32)
    c = channels or 1
    if not materialise:
        return f.expand(c, 1, f.shape[2], f.shape[3])
    try:
        return f.repeat(c, 1, 1, 1)
    except RuntimeError as e:  # the allocator's "can't allocate memory"
        raise MemoryError(f"cannot allocate the {c}×1×{f.shape[2]}×{f.shape[3]} filter buffer: {e}") from None


def set_desc(m: nn.Module, desc: Desc) -> None:
    """Gives ``m`` its descriptor, and the descriptor's plain arguments (lists of ints and
    floats), which survive ``torch.jit.script``: a scripted copy has no ``desc`` attribute."""
    m.desc = desc
    ints, ty, tx = desc.to_args()
    m._desc_ints, m._desc_taps_y, m._desc_taps_x = ints, ty, tx


def desc_of(m) -> Desc:
    """``m``'s descriptor; for a scripted module, the one its plain arguments describe
    (``Desc.from_args`` keeps it, so it is built once)."""
    d = m.__dict__.get("desc")
    if d is None:
        d = Desc.from_args(m._desc_ints, m._desc_taps_y, m._desc_taps_x)
    return d


class _DescModule(nn.Module):
    # No class-level annotations: TorchScript would try to compile them (Optional[int] failed).
    channels = None

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x)

    # torch.jit.script compiles forward and leaves this to Python (the descriptor and the
    # kernels' checks are Python): a scripted model runs in Python; it cannot be saved.
    @torch.jit.ignore
    def _run(self, x: Tensor) -> Tensor:
        _check_channels(type(self).__name__, getattr(self, "channels", None), x)
        return ops.apply(x, desc_of(self))

    def reference(self, x: Tensor) -> Tensor:
        """The same layer by the C ABI's CPU reference (CPU tensors)."""
        _check_channels(type(self).__name__, self.channels, x)
        return ops.reference(x, self.desc)


class BlurPool(_DescModule):
    """antialiased-cnns ``BlurPool(channels, pad_type='reflect', filt_size=4, stride=2, pad_off=0)``,
    with its persistent ``filt`` buffer (channels × 1 × F × F)."""

    def __init__(
        self,
        channels: int,
        pad_type: str = "reflect",
        filt_size: int = 4,
        stride: int = 2,
        pad_off: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.channels = _channels("channels", channels)
        self.pad_type, self.filt_size, self.stride, self.pad_off = pad_type, filt_size, stride, pad_off
        set_desc(self, Desc.antialiased_cnns_blur_pool(pad_type, filt_size, stride, pad_off))
        self.register_buffer("filt", _filter_buffer(self.desc, self.channels, device, dtype))

    def extra_repr(self):
        return (
            f"{self.channels}, pad_type={self.pad_type!r}, filt_size={self.filt_size}, "
            f"stride={self.stride}, pad_off={self.pad_off}"
        )


class MaxBlurPool(nn.Sequential):
    """antialiased-cnns' models' ``nn.Sequential(nn.MaxPool2d(max_kernel, stride=1,
    padding=max_padding), BlurPool(channels, pad_type, filt_size, stride, pad_off))``, fused into
    one operator. It is that Sequential (children ``0`` and ``1``, so state_dict keys such as
    ``maxpool.1.filt`` stay), with a fused ``forward``."""

    def __init__(
        self,
        channels: int,
        max_kernel: int = 2,
        max_padding: int = 0,
        pad_type: str = "reflect",
        filt_size: int = 4,
        stride: int = 2,
        pad_off: int = 0,
        device=None,
        dtype=None,
    ):
        desc = Desc.antialiased_cnns_max_blur_pool(max_kernel, max_padding, pad_type, filt_size, stride, pad_off)
        super().__init__(
            nn.MaxPool2d(max_kernel, stride=1, padding=max_padding),
            BlurPool(channels, pad_type, filt_size, stride, pad_off, device=device, dtype=dtype),
        )
        set_desc(self, desc)
        self.channels = self[1].channels

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x)

    @torch.jit.ignore
    def _run(self, x: Tensor) -> Tensor:
        _check_channels("MaxBlurPool", self.channels, x)
        return ops.apply(x, desc_of(self))

    def reference(self, x: Tensor) -> Tensor:
        """The same layer by the C ABI's CPU reference (CPU tensors)."""
        _check_channels("MaxBlurPool", self.channels, x)
        return ops.reference(x, self.desc)


class BlurPool2D(_DescModule):
    """kornia ``BlurPool2D(kernel_size, stride=2)``, with its non-persistent ``kernel`` buffer."""

    def __init__(self, kernel_size, stride: int = 2, device=None, dtype=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        set_desc(self, ops.blur_pool2d_desc(kernel_size, stride))
        self.register_buffer("kernel", _filter_buffer(self.desc, None, device, dtype)[0, 0], persistent=False)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxBlurPool2D(_DescModule):
    """kornia ``MaxBlurPool2D(kernel_size, stride=2, max_pool_size=2, ceil_mode=False)``, fused,
    with its non-persistent ``kernel`` buffer."""

    def __init__(
        self, kernel_size, stride: int = 2, max_pool_size: int = 2, ceil_mode: bool = False, device=None, dtype=None
    ):
        super().__init__()
        self.kernel_size, self.stride, self.max_pool_size, self.ceil_mode = kernel_size, stride, max_pool_size, ceil_mode
        set_desc(self, ops.max_blur_pool2d_desc(kernel_size, stride, max_pool_size, ceil_mode))
        self.register_buffer("kernel", _filter_buffer(self.desc, None, device, dtype)[0, 0], persistent=False)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, max_pool_size={self.max_pool_size}"


class BlurPool2d(_DescModule):
    """timm ``BlurPool2d(channels=None, filt_size=3, stride=2, pad_mode='reflect', device=None,
    dtype=None)`` (``pad_mode`` 'reflect' or 'constant'), with its non-persistent ``filt`` buffer
    ((channels or 1) × 1 × F × F). Usable as timm's ``aa_layer``."""

    def __init__(
        self,
        channels: Optional[int] = None,
        filt_size: int = 3,
        stride: int = 2,
        pad_mode: str = "reflect",
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.channels = _channels("channels", channels, optional=True)
        self.filt_size, self.stride, self.pad_mode = filt_size, stride, pad_mode
        set_desc(self, Desc.timm_blur_pool2d(filt_size, stride, pad_mode))
        self.register_buffer(
            "filt", _filter_buffer(self.desc, self.channels, device, dtype, materialise=False), persistent=False
        )

    def extra_repr(self):
        return f"channels={self.channels}, filt_size={self.filt_size}, stride={self.stride}, pad_mode={self.pad_mode!r}"


class ConvBlurPool2d(nn.Module):
    """A blurred strided convolution, fused: ``BlurPool(act(Conv2d(stride=1)(x)))`` as in
    antialiased-cnns' and timm's models (``style``), with ``nn.Conv2d``'s parameters
    (``weight`` Cout×Cin/groups×kh×kw, ``bias``) and initialisation.

    ``ConvBlurPool2d.from_conv(conv, ...)`` reuses an existing stride-1 ``nn.Conv2d``'s
    parameters (e.g. when porting antialiased-cnns' ``conv(stride 1) → ReLU → BlurPool``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        padding=0,
        groups: int = 1,
        bias: bool = True,
        activation: str = "identity",
        filt_size: int = 4,
        stride: int = 2,
        pad_type: str = "reflect",
        pad_off: int = 0,
        style: str = "antialiased_cnns",
        device=None,
        dtype=None,
    ):
        super().__init__()
        in_channels = _channels("in_channels", in_channels)
        out_channels = _channels("out_channels", out_channels)
        set_desc(self, ops.conv_blur_pool2d_desc(
            in_channels, out_channels, kernel_size, padding, groups, bias, activation, filt_size, stride, pad_type,
            pad_off, style,
        ))  # fmt: skip
        r = self.desc.raw
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, r.conv_kernel_y, r.conv_kernel_x, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()
        self._repr = (
            f"{in_channels}, {out_channels}, kernel_size={(r.conv_kernel_y, r.conv_kernel_x)}, "
            f"padding={(r.conv_pad_y, r.conv_pad_x)}, groups={groups}, bias={bias}, activation={activation!r}, "
            f"filt_size={filt_size}, stride={stride}, pad_type={pad_type!r}, pad_off={pad_off}, style={style!r}"
        )

    def reset_parameters(self):
        # nn.Conv2d's initialisation (a no-op on meta tensors).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, activation="identity", **blur) -> "ConvBlurPool2d":
        """Wraps a stride-1, dilation-1, zero-padded ``nn.Conv2d`` (its parameters are shared)."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"from_conv needs an nn.Conv2d, got {type(conv).__name__}")
        if conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError("from_conv needs a Conv2d with stride 1, dilation 1 and padding_mode='zeros'")
        if isinstance(conv.padding, str):
            raise ValueError("from_conv needs numeric padding")
        m = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding, conv.groups,
            conv.bias is not None, activation, device="meta", **blur,
        )  # fmt: skip
        m.weight = conv.weight
        m.bias = conv.bias
        return m

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x)

    @torch.jit.ignore
    def _run(self, x: Tensor) -> Tensor:
        return ops.apply(x, desc_of(self), self.weight, self.bias)

    def reference(self, x: Tensor) -> Tensor:
        """The same layer by the C ABI's CPU reference (CPU tensors and parameters)."""
        return ops.reference(x, self.desc, self.weight.detach(), None if self.bias is None else self.bias.detach())

    def extra_repr(self):
        return self._repr
