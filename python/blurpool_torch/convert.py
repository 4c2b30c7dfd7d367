"""``convert(model)``: swap, in place, the anti-aliased downsampling layers of an existing model
for blurpool's, keeping its weights and its state_dict keys.

What it replaces (found by walking every submodule):

* antialiased-cnns ``BlurPool`` → :class:`~blurpool_torch.BlurPool`;
* timm ``BlurPool2d`` → :class:`~blurpool_torch.BlurPool2d`;
* kornia ``BlurPool2D`` / ``MaxBlurPool2D`` → :class:`~blurpool_torch.BlurPool2D` /
  :class:`~blurpool_torch.MaxBlurPool2D`;
* inside an ``nn.Sequential``, ``MaxPool2d(k, stride=1, padding=p)`` directly followed by one of
  the blur layers above (antialiased-cnns' and timm's max-blur pooling) → one fused MaxBlurPool:
  the max slot becomes a parameter-free pass-through and the blur slot the fused layer, so every
  later index, and every key, stays where it was;
* inside an ``nn.Sequential``, ``Conv2d(stride 1) → ReLU/ReLU6 (or nothing) → blur layer`` →
  :class:`~blurpool_torch.ConvBlurPool2d` sharing the conv's parameters in the conv's slot (its
  ``weight``/``bias`` keys unchanged); the activation and blur slots become pass-throughs that
  keep the blur's buffers (antialiased-cnns' ``filt`` stays in the state_dict).

A layer whose filter buffer is not the binomial filter its arguments describe (someone changed
it) is left alone and reported as skipped. The returned :class:`ConversionReport` lists every
replacement and skip.
"""


from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from . import _lib, modules, ops
from ._lib import Desc


@dataclass
class ConversionReport:
    """What :func:`convert` did: ``replaced`` is (module path, original, replacement) per
    swap; ``skipped`` is (module path, why) for layers it recognised but left alone."""

    replaced: List[Tuple[str, str, str]] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.replaced)

    def __str__(self) -> str:
        lines = [f"blurpool_torch.convert: {len(self.replaced)} replaced, {len(self.skipped)} skipped"]
        lines += [f"  {p or '<model>'}: {a} -> {b}" for p, a, b in self.replaced]
        lines += [f"  {p or '<model>'}: skipped ({why})" for p, why in self.skipped]
        return "\n".join(lines)


class PassThrough(nn.Module):
    """The slot of a layer that was fused into an earlier one: returns its input, and keeps the
    original's buffers so that the model's state_dict keys do not change."""

    def __init__(self, fused_into: str, buffers: Optional[dict] = None):
        super().__init__()
        self.fused_into = fused_into
        for name, (t, persistent) in (buffers or {}).items():
            self.register_buffer(name, t, persistent=persistent)

    def forward(self, x: Tensor) -> Tensor:
        return x

    def extra_repr(self):
        return f"fused into {self.fused_into}"


class _FusedLayer(nn.Module):
    """A blur layer's slot after the fusion of the layer(s) before it: runs ``desc`` (with
    ``conv``'s parameters when there is one) and keeps the blur layer's buffers."""

    def __init__(self, desc: Desc, what: str, buffers: dict, channels: Optional[int]):
        super().__init__()
        modules.set_desc(self, desc)
        self.what, self.channels = what, channels
        for name, (t, persistent) in buffers.items():
            self.register_buffer(name, t, persistent=persistent)

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x)

    @torch.jit.ignore
    def _run(self, x: Tensor) -> Tensor:
        modules._check_channels(self.what, self.channels, x)
        return ops.apply(x, modules.desc_of(self))

    def reference(self, x: Tensor) -> Tensor:
        """The same layer by the C ABI's CPU reference (CPU tensors)."""
        return ops.reference(x, self.desc)

    def extra_repr(self):
        return self.what


# ---- recognising the libraries' layers -----------------------------------------------------------


def _is(m: nn.Module, module_prefix: str, name: str) -> bool:
    t = type(m)
    return t.__name__ == name and t.__module__.split(".")[0] == module_prefix


def _qualified(m: nn.Module) -> str:
    return f"{type(m).__module__.split('.')[0]}.{type(m).__name__}"


def _buffers(m: nn.Module) -> dict:
    """name → (tensor, persistent) of ``m``'s own buffers."""
    non = getattr(m, "_non_persistent_buffers_set", set())
    return {n: (b, n not in non) for n, b in m.named_buffers(recurse=False)}


def _aa_pad_type(m: nn.Module) -> Optional[str]:
    pad = getattr(m, "pad", None)
    if isinstance(pad, nn.ReflectionPad2d):
        return "reflect"
    if isinstance(pad, nn.ReplicationPad2d):
        return "replicate"
    if isinstance(pad, nn.ZeroPad2d):
        return "zero"
    return None


def _filter_matches(buf: Optional[Tensor], desc: Desc) -> bool:
    """The layer's filter buffer holds the binomial filter the descriptor computes with."""
    if buf is None or buf.is_meta:
        return True
    want = modules._torch_path.blur_filter(desc, torch.float64, "cpu")
    got = buf.detach().to("cpu", torch.float64)
    if got.shape[-2:] != want.shape:
        return False
    tol = 1e-3 if buf.dtype in (torch.float16, torch.bfloat16) else 1e-6
    return bool(torch.all((got - want).abs() <= tol))


def _blur_of(m: nn.Module):
    """For a recognised blur layer: (desc, buffer name, kind, factory kwargs) or None."""
    if _is(m, "antialiased_cnns", "BlurPool"):
        pad = _aa_pad_type(m)
        if pad is None:
            return None
        desc = Desc.antialiased_cnns_blur_pool(pad, m.filt_size, m.stride, m.pad_off)
        return desc, "filt", "antialiased-cnns BlurPool", m.channels
    if _is(m, "timm", "BlurPool2d"):
        return Desc.timm_blur_pool2d(m.filt_size, m.stride, m.pad_mode), "filt", "timm BlurPool2d", m.channels
    if _is(m, "kornia", "BlurPool2D"):
        return ops.blur_pool2d_desc(m.kernel_size, m.stride), "kernel", "kornia BlurPool2D", None
    if isinstance(m, (modules.BlurPool, modules.BlurPool2d, modules.BlurPool2D)):
        return m.desc, ("kernel" if isinstance(m, modules.BlurPool2D) else "filt"), type(m).__name__, m.channels
    return None


def _factory(m: nn.Module, buf_name: str) -> dict:
    b = getattr(m, buf_name, None)
    return {"device": b.device, "dtype": b.dtype} if isinstance(b, Tensor) else {}


def _replacement(m: nn.Module):
    """blurpool's module for a single layer, or (None, why-not) or (None, None) if not ours."""
    if _is(m, "antialiased_cnns", "BlurPool"):
        pad = _aa_pad_type(m)
        if pad is None:
            return None, f"unknown padding layer {type(getattr(m, 'pad', None)).__name__}"
        new = modules.BlurPool(m.channels, pad, m.filt_size, m.stride, m.pad_off, **_factory(m, "filt"))
        return (new, None) if _filter_matches(m.filt, new.desc) else (None, "its filt is not the binomial filter")
    if _is(m, "timm", "BlurPool2d"):
        new = modules.BlurPool2d(m.channels, m.filt_size, m.stride, m.pad_mode, **_factory(m, "filt"))
        return (new, None) if _filter_matches(m.filt, new.desc) else (None, "its filt is not the binomial filter")
    if _is(m, "kornia", "BlurPool2D"):
        new = modules.BlurPool2D(m.kernel_size, m.stride, **_factory(m, "kernel"))
        return (new, None) if _filter_matches(m.kernel, new.desc) else (None, "its kernel is not the binomial filter")
    if _is(m, "kornia", "MaxBlurPool2D"):
        new = modules.MaxBlurPool2D(m.kernel_size, m.stride, m.max_pool_size, m.ceil_mode, **_factory(m, "kernel"))
        return (new, None) if _filter_matches(m.kernel, new.desc) else (None, "its kernel is not the binomial filter")
    return None, None


def _plain_max_pool(m: nn.Module) -> Optional[Tuple[Tuple[int, int], Tuple[int, int]]]:
    """(kernel, padding) of an ``nn.MaxPool2d`` at stride 1, dilation 1, without ceil mode."""
    if type(m) is not nn.MaxPool2d:
        return None
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    if pair(m.stride) != (1, 1) or pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
        return None
    return pair(m.kernel_size), pair(m.padding)


def _activation(m: nn.Module) -> Optional[str]:
    if type(m) is nn.ReLU:
        return "relu"
    if type(m) is nn.ReLU6:
        return "relu6"
    if type(m) is nn.Identity:
        return "identity"
    return None


def _plain_conv(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.stride == (1, 1)
        and m.dilation == (1, 1)
        and m.padding_mode == "zeros"
        and not isinstance(m.padding, str)
    )


# ---- the walk ----------------------------------------------------------------------------------------


def _fuse_sequential(seq: nn.Sequential, path: str, report: ConversionReport) -> None:
    keys = list(seq._modules.keys())
    i = 0
    while i < len(keys):
        cur = seq._modules[keys[i]]
        # conv (stride 1) → act → blur
        if i + 2 < len(keys) and _plain_conv(cur):
            act = _activation(seq._modules[keys[i + 1]])
            blur = _blur_of(seq._modules[keys[i + 2]])
            if act is not None and blur is not None:
                desc, buf, kind, channels = blur
                bm = seq._modules[keys[i + 2]]
                if channels is not None and channels != cur.out_channels:
                    report.skipped.append((f"{path}{keys[i]}", "the blur's channels differ from the conv's"))
                elif not _filter_matches(getattr(bm, buf, None), desc):
                    report.skipped.append((f"{path}{keys[i + 2]}", f"its {buf} is not the binomial filter"))
                else:
                    fused = modules.ConvBlurPool2d.__new__(modules.ConvBlurPool2d)
                    nn.Module.__init__(fused)
                    modules.set_desc(fused, desc.with_conv(
                        cur.in_channels, cur.out_channels, cur.kernel_size, cur.padding, cur.groups,
                        cur.bias is not None, act,
                    ))  # fmt: skip
                    fused.weight, fused.bias = cur.weight, cur.bias
                    fused._repr = f"fused from {type(cur).__name__} → {act} → {kind}"
                    where = f"{path}{keys[i]}"
                    seq._modules[keys[i]] = fused
                    seq._modules[keys[i + 1]] = PassThrough(where)
                    seq._modules[keys[i + 2]] = PassThrough(where, _buffers(bm))
                    report.replaced.append((where, f"Conv2d → {act} → {kind}", "blurpool_torch.ConvBlurPool2d"))
                    i += 3
                    continue
        # MaxPool2d(k, 1, p) → blur
        if i + 1 < len(keys):
            mp = _plain_max_pool(cur)
            blur = _blur_of(seq._modules[keys[i + 1]])
            if mp is not None and blur is not None:
                (ky, kx), (py, px) = mp
                desc, buf, kind, channels = blur
                bm = seq._modules[keys[i + 1]]
                if not _filter_matches(getattr(bm, buf, None), desc):
                    report.skipped.append((f"{path}{keys[i + 1]}", f"its {buf} is not the binomial filter"))
                else:
                    fused_desc = desc.replace(
                        op=_lib.OP_MAX_BLUR_POOL, max_kernel_y=ky, max_kernel_x=kx, max_pad_y=py, max_pad_x=px
                    )
                    where = f"{path}{keys[i + 1]}"
                    seq._modules[keys[i]] = PassThrough(where)
                    seq._modules[keys[i + 1]] = _FusedLayer(
                        fused_desc, f"MaxPool2d({ky}×{kx}, 1, {py}×{px}) → {kind}, fused", _buffers(bm), channels
                    )
                    report.replaced.append((f"{path}{keys[i]}+{keys[i + 1]}", f"MaxPool2d → {kind}", "blurpool_torch MaxBlurPool (fused)"))
                    i += 2
                    continue
        i += 1


def _walk(m: nn.Module, path: str, report: ConversionReport) -> None:
    if isinstance(m, nn.Sequential) and not isinstance(m, modules.MaxBlurPool):
        _fuse_sequential(m, path, report)
    for name, child in list(m._modules.items()):
        if child is None or isinstance(child, (PassThrough, _FusedLayer, modules.ConvBlurPool2d)):
            continue
        new, why = _replacement(child)
        if new is not None:
            new.train(child.training)
            m._modules[name] = new
            report.replaced.append((f"{path}{name}", _qualified(child), f"blurpool_torch.{type(new).__name__}"))
        elif why is not None:
            report.skipped.append((f"{path}{name}", why))
        else:
            _walk(child, f"{path}{name}.", report)


def convert(model: nn.Module) -> ConversionReport:
    """Swaps ``model``'s anti-aliased downsampling layers for blurpool's, in place (see the
    module's docstring for what is replaced), and returns what it did. The weights are kept
    (shared, not copied) and so are the state_dict keys: a checkpoint of the original loads into
    the converted model with ``strict=True`` and vice versa.

    >>> import torch, blurpool_torch
    >>> m = torch.nn.Sequential(torch.nn.MaxPool2d(2, 1), blurpool_torch.BlurPool(4))
    >>> print(blurpool_torch.convert(m))
    blurpool_torch.convert: 1 replaced, 0 skipped
      0+1: MaxPool2d → BlurPool -> blurpool_torch MaxBlurPool (fused)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert needs an nn.Module, got {type(model).__name__}")
    report = ConversionReport()
    new, why = _replacement(model)
    if new is not None or why is not None:
        raise TypeError(
            f"convert works in place on a model's submodules; the model itself is a {type(model).__name__}: "
            f"build blurpool's layer directly instead"
        )
    _walk(model, "", report)
    return report
