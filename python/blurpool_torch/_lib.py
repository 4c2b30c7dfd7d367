"""ctypes binding of libblurpool (capi/include/blurpool.h). No torch import here.

The library is found, in order, at:
  1. the path in the environment variable ``BLURPOOL_LIB``;
  2. inside this package: the copy ``pip install`` builds and ships
     (``libblurpool.cpython-*.so``, setuptools-rust's name for it), or a ``libblurpool.so``;
  3. ``$CARGO_TARGET_DIR/release`` and ``<repo>/target/release`` (then ``debug``), searching
     upwards from this file, so a source checkout works after
     ``cargo build --release -p blurpool-capi``.
It is loaded on first use, so importing the package never fails for want of it.
"""

from __future__ import annotations

import ctypes
import operator
import os
import threading
from pathlib import Path
from typing import Optional, Sequence

LIB_ENV = "BLURPOOL_LIB"
LIB_NAME = "libblurpool.so"
ABI_VERSION = 2
MAX_TAPS = 16

# blurpool_status
OK = 0
INVALID_ARGUMENT = 1
BUFFER = 2
NO_DRIVER = 3
NO_DEVICE = 4
CUDA = 5
NVRTC = 6
KERNEL_LOAD = 7
CONTEXT_MISMATCH = 8
INTERNAL = 9

# blurpool_op_kind
OP_MAX_POOL = 1
OP_BLUR_POOL = 2
OP_MAX_BLUR_POOL = 3
OP_CONV_BLUR_POOL = 4
OP_BLUR_CONV = 5

# blurpool_dtype / blurpool_layout
DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2
LAYOUT_NCHW, LAYOUT_NHWC = 0, 1

# blurpool_pad_mode, with the libraries' spellings
PAD_ZERO, PAD_REFLECT, PAD_REPLICATE = 0, 1, 2
_PAD_NAMES = {
    "zero": PAD_ZERO,
    "zeros": PAD_ZERO,
    "constant": PAD_ZERO,
    "reflect": PAD_REFLECT,
    "refl": PAD_REFLECT,
    "reflection": PAD_REFLECT,
    "replicate": PAD_REPLICATE,
    "repl": PAD_REPLICATE,
    "replication": PAD_REPLICATE,
    "edge": PAD_REPLICATE,
}

# blurpool_activation
ACT_IDENTITY, ACT_RELU, ACT_RELU6 = 0, 1, 2
_ACT_NAMES = {"identity": 0, "none": 0, "linear": 0, "relu": 1, "relu6": 2}


class BlurpoolError(RuntimeError):
    """A libblurpool call failed. ``status`` is the C status code, ``status_name`` its name,
    ``message`` the library's explanation (``blurpool_last_error``)."""

    def __init__(self, status: int, status_name: str, message: str, call: str = ""):
        self.status = status
        self.status_name = status_name
        self.message = message
        where = f"{call}: " if call else ""
        super().__init__(f"{where}{message} [{status_name}]")


class BlurpoolConfigError(BlurpoolError, ValueError):
    """A bad configuration, shape or buffer (BLURPOOL_STATUS_INVALID_ARGUMENT / _BUFFER)."""


class BlurpoolNoDriverError(BlurpoolError):
    """No CUDA driver on this machine (BLURPOOL_STATUS_NO_DRIVER) or no such device."""


class LibraryNotFoundError(OSError):
    """libblurpool.so could not be found or loaded."""


def pad_mode_code(name) -> int:
    """The blurpool_pad_mode for a library's spelling ('reflect', 'replicate', 'zero', 'constant')."""
    if isinstance(name, str) and name.lower() in _PAD_NAMES:
        return _PAD_NAMES[name.lower()]
    raise ValueError(f"unknown pad mode {name!r}: expected 'reflect', 'replicate', 'zero' (or 'constant')")


def activation_code(name) -> int:
    """The blurpool_activation for 'identity', 'relu' or 'relu6'."""
    if isinstance(name, str) and name.lower() in _ACT_NAMES:
        return _ACT_NAMES[name.lower()]
    raise ValueError(f"unknown activation {name!r}: expected 'identity', 'relu' or 'relu6'")


def _integer(name: str, v) -> int:
    """An integer argument: an int (or a numpy / torch integer scalar), never a bool or a float
    (which ctypes or int() would silently truncate)."""
    if isinstance(v, bool):
        raise TypeError(f"{name} must be an int, got a bool ({v})")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(v).__name__}") from None


def int32(name: str, v) -> int:
    """An int argument that fits the C ABI's int32."""
    v = _integer(name, v)
    if not -(2**31) <= v < 2**31:
        raise ValueError(f"{name} = {v} is out of range")
    return int(v)


class OpDesc(ctypes.Structure):
    """``blurpool_op_desc``, field for field."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("op", ctypes.c_int32),
        ("taps_y", ctypes.c_double * MAX_TAPS),
        ("taps_x", ctypes.c_double * MAX_TAPS),
        ("taps_y_len", ctypes.c_int32),
        ("taps_x_len", ctypes.c_int32),
        ("normalize", ctypes.c_int32),
        ("pad_mode", ctypes.c_int32),
        ("pad_top", ctypes.c_int32),
        ("pad_bottom", ctypes.c_int32),
        ("pad_left", ctypes.c_int32),
        ("pad_right", ctypes.c_int32),
        ("stride_y", ctypes.c_int32),
        ("stride_x", ctypes.c_int32),
        ("max_kernel_y", ctypes.c_int32),
        ("max_kernel_x", ctypes.c_int32),
        ("max_pad_y", ctypes.c_int32),
        ("max_pad_x", ctypes.c_int32),
        ("conv_in_channels", ctypes.c_int32),
        ("conv_out_channels", ctypes.c_int32),
        ("conv_kernel_y", ctypes.c_int32),
        ("conv_kernel_x", ctypes.c_int32),
        ("conv_pad_y", ctypes.c_int32),
        ("conv_pad_x", ctypes.c_int32),
        ("conv_groups", ctypes.c_int32),
        ("conv_has_bias", ctypes.c_int32),
        ("conv_activation", ctypes.c_int32),
        ("conv_stride_y", ctypes.c_int32),
        ("conv_stride_x", ctypes.c_int32),
    ]


# The int32 fields after struct_size, in order: what a descriptor travels as through
# torch.library (list[int] + two list[float]).
INT_FIELDS = tuple(n for n, t in OpDesc._fields_ if t is ctypes.c_int32)


def _candidates() -> list:
    here = Path(__file__).resolve().parent
    out = sorted(here.glob("libblurpool.*.so")) + [here / LIB_NAME]
    target = os.environ.get("CARGO_TARGET_DIR")
    dirs = [Path(target)] if target else []
    for parent in [here, *here.parents]:
        dirs.append(parent / "target")
    for profile in ("release", "debug"):
        out.extend(d / profile / LIB_NAME for d in dirs)
    return out


class Library:
    """The loaded libblurpool with typed entry points."""

    def __init__(self, path: Path):
        self.path = path
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise LibraryNotFoundError(f"cannot load {path}: {e}") from e
        self._lib = lib
        c_int32, c_size, c_i64p = ctypes.c_int32, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64)
        desc_p = ctypes.POINTER(OpDesc)
        vp = ctypes.c_void_p
        sigs = {
            "blurpool_version": (ctypes.c_char_p, []),
            "blurpool_abi_version": (ctypes.c_uint32, []),
            "blurpool_op_desc_size": (c_size, []),
            "blurpool_status_name": (ctypes.c_char_p, [c_int32]),
            "blurpool_last_error": (ctypes.c_char_p, []),
            "blurpool_driver_available": (c_int32, []),
            "blurpool_desc_init": (c_int32, [desc_p, c_int32]),
            "blurpool_desc_check": (c_int32, [desc_p]),
            "blurpool_preset_antialiased_cnns_blur_pool": (c_int32, [c_int32] * 4 + [desc_p]),
            "blurpool_preset_antialiased_cnns_max_blur_pool": (c_int32, [c_int32] * 6 + [desc_p]),
            "blurpool_preset_kornia_blur_pool2d": (c_int32, [c_int32] * 2 + [desc_p]),
            "blurpool_preset_kornia_max_blur_pool2d": (c_int32, [c_int32] * 3 + [desc_p]),
            "blurpool_preset_timm_blur_pool2d": (c_int32, [c_int32] * 3 + [desc_p]),
            "blurpool_preset_composer_blur_2d": (
                c_int32,
                [c_int32, c_int32, vp, c_int32, vp, c_int32, desc_p],
            ),
            "blurpool_preset_composer_blurmax_pool2d": (
                c_int32,
                [c_int32] * 6 + [vp, c_int32, vp, c_int32, desc_p],
            ),
            "blurpool_output_shape": (c_int32, [desc_p, c_i64p, c_i64p]),
            "blurpool_forward": (
                c_int32,
                [desc_p, c_int32, c_int32, c_i64p]
                + [ctypes.c_uint64] * 4
                + [vp, c_int32],
            ),
            "blurpool_packed_weight_len": (
                c_int32,
                [desc_p, c_int32, c_int32, c_i64p, c_int32, ctypes.POINTER(ctypes.c_uint64)],
            ),
            "blurpool_pack_weights": (
                c_int32,
                [desc_p, c_int32, c_int32, c_i64p] + [ctypes.c_uint64] * 2 + [vp, c_int32],
            ),
            "blurpool_forward_packed": (
                c_int32,
                [desc_p, c_int32, c_int32, c_i64p] + [ctypes.c_uint64] * 4 + [vp, c_int32],
            ),
            "blurpool_reference_forward": (
                c_int32,
                [desc_p, c_int32, c_int32, c_i64p, vp, c_size, vp, c_size, vp, c_size, vp, c_size],
            ),
            "blurpool_backward_workspace_len": (c_int32, [desc_p, c_i64p, ctypes.POINTER(ctypes.c_uint64)]),
            "blurpool_backward": (
                c_int32,
                [desc_p, c_int32, c_int32, c_i64p]
                + [ctypes.c_uint64] * 8
                + [vp, c_int32],
            ),
        }
        for name, (res, args) in sigs.items():
            try:
                f = getattr(lib, name)
            except AttributeError as e:
                raise LibraryNotFoundError(f"{path} has no {name}: is it an older libblurpool?") from e
            f.restype, f.argtypes = res, args
        abi = lib.blurpool_abi_version()
        size = lib.blurpool_op_desc_size()
        if abi != ABI_VERSION or size != ctypes.sizeof(OpDesc):
            raise LibraryNotFoundError(
                f"{path} implements C ABI {abi} with a {size}-byte descriptor; this binding expects ABI "
                f"{ABI_VERSION} and {ctypes.sizeof(OpDesc)} bytes: rebuild the library or update the package"
            )
        self.version = lib.blurpool_version().decode()

    def __getattr__(self, name):
        return getattr(self._lib, name)

    def check(self, status: int, call: str) -> None:
        """Raises the matching exception for a non-OK status."""
        if status == OK:
            return
        name = self._lib.blurpool_status_name(status).decode()
        message = self._lib.blurpool_last_error().decode("utf-8", "replace")
        if status in (INVALID_ARGUMENT, BUFFER):
            raise BlurpoolConfigError(status, name, message, call)
        if status in (NO_DRIVER, NO_DEVICE):
            raise BlurpoolNoDriverError(status, name, message, call)
        raise BlurpoolError(status, name, message, call)

    def driver_available(self) -> bool:
        return bool(self._lib.blurpool_driver_available())


_LOCK = threading.Lock()
_LIB: Optional[Library] = None


def lib() -> Library:
    """The process-wide library, loaded on first use."""
    global _LIB
    with _LOCK:
        if _LIB is None:
            env = os.environ.get(LIB_ENV)
            if env:
                path = Path(env)
                if not path.is_file():
                    raise LibraryNotFoundError(f"{LIB_ENV}={env} does not name a file")
                _LIB = Library(path)
            else:
                tried = _candidates()
                found = next((p for p in tried if p.is_file()), None)
                if found is None:
                    raise LibraryNotFoundError(
                        f"{LIB_NAME} not found. Build it with `cargo build --release -p blurpool-capi` "
                        f"in the blurpool repository, or set {LIB_ENV} to its path. Tried: "
                        + ", ".join(str(p) for p in tried)
                    )
                _LIB = Library(found)
        return _LIB


def _shape_array(shape: Sequence[int]):
    try:
        dims = list(shape)
    except TypeError:
        raise TypeError(f"a shape must be a sequence of 4 ints, got {type(shape).__name__}") from None
    if len(dims) != 4:
        raise ValueError(f"expected a 4-D (N, C, H, W) shape, got {tuple(dims)}")
    out = []
    for i, s in enumerate(dims):
        v = _integer(f"shape[{i}]", s)
        if not -(2**63) <= v < 2**63:
            raise ValueError(f"shape[{i}] = {v} is out of range")
        out.append(v)
    return (ctypes.c_int64 * 4)(*out)


_FROM_ARGS: dict = {}  # Desc.from_args's descriptors by their arguments


class Desc:
    """An operator descriptor (``blurpool_op_desc``). Build one with the preset class methods
    (each library's geometry) or from a raw :class:`OpDesc`; it is immutable by convention."""

    __slots__ = ("raw", "_plain")

    def __init__(self, raw: OpDesc):
        self.raw = raw
        self._plain = None
        self.plain()

    def plain(self) -> dict:
        """The descriptor's fields as plain Python values (ints and float tuples), computed once
        when the descriptor is made: what the torch-ops path reads, so that torch.compile never
        traces into ctypes."""
        if self._plain is None:
            r = self.raw
            d = {n: int(getattr(r, n)) for n in INT_FIELDS}
            d["taps_y"] = tuple(float(r.taps_y[i]) for i in range(r.taps_y_len))
            d["taps_x"] = tuple(float(r.taps_x[i]) for i in range(r.taps_x_len))
            # to_args's values (all MAX_TAPS taps), so that a call never reads the ctypes struct.
            d["args"] = (
                tuple(d[n] for n in INT_FIELDS),
                tuple(float(v) for v in r.taps_y),
                tuple(float(v) for v in r.taps_x),
            )
            self._plain = d
        return self._plain

    # -- presets --------------------------------------------------------------------------
    @classmethod
    def _preset(cls, fn: str, *args) -> "Desc":
        raw = OpDesc()
        L = lib()
        L.check(getattr(L, fn)(*args, ctypes.byref(raw)), fn)
        return cls(raw)

    @classmethod
    def antialiased_cnns_blur_pool(cls, pad_type="reflect", filt_size=4, stride=2, pad_off=0) -> "Desc":
        """antialiased-cnns ``BlurPool(C, pad_type, filt_size, stride, pad_off)``."""
        return cls._preset(
            "blurpool_preset_antialiased_cnns_blur_pool",
            pad_mode_code(pad_type),
            int32("filt_size", filt_size),
            int32("stride", stride),
            int32("pad_off", pad_off),
        )

    @classmethod
    def antialiased_cnns_max_blur_pool(
        cls, max_kernel=2, max_padding=0, pad_type="reflect", filt_size=4, stride=2, pad_off=0
    ) -> "Desc":
        """antialiased-cnns ``Sequential(MaxPool2d(max_kernel, 1, max_padding), BlurPool(...))``."""
        return cls._preset(
            "blurpool_preset_antialiased_cnns_max_blur_pool",
            int32("max_kernel", max_kernel),
            int32("max_padding", max_padding),
            pad_mode_code(pad_type),
            int32("filt_size", filt_size),
            int32("stride", stride),
            int32("pad_off", pad_off),
        )

    @classmethod
    def kornia_blur_pool2d(cls, kernel_size, stride=2) -> "Desc":
        """kornia ``blur_pool2d(x, kernel_size, stride)``."""
        return cls._preset(
            "blurpool_preset_kornia_blur_pool2d", _square("kernel_size", kernel_size), int32("stride", stride)
        )

    @classmethod
    def kornia_max_blur_pool2d(cls, kernel_size, stride=2, max_pool_size=2) -> "Desc":
        """kornia ``max_blur_pool2d(x, kernel_size, stride, max_pool_size)``."""
        return cls._preset(
            "blurpool_preset_kornia_max_blur_pool2d",
            _square("kernel_size", kernel_size),
            int32("stride", stride),
            int32("max_pool_size", max_pool_size),
        )

    @classmethod
    def timm_blur_pool2d(cls, filt_size=3, stride=2, pad_mode="reflect") -> "Desc":
        """timm ``BlurPool2d(channels, filt_size, stride, pad_mode)``."""
        return cls._preset(
            "blurpool_preset_timm_blur_pool2d",
            int32("filt_size", filt_size),
            int32("stride", stride),
            pad_mode_code(pad_mode),
        )

    @classmethod
    def composer_blur_2d(cls, stride=2, taps_y=None, taps_x=None) -> "Desc":
        """composer ``blur_2d(x, stride, filter)`` with separable taps (None: the default)."""
        sy, sx = _pair("stride", stride)
        ty, ny, tx, nx = _taps(taps_y, taps_x)
        return cls._preset("blurpool_preset_composer_blur_2d", sy, sx, ty, ny, tx, nx)

    @classmethod
    def composer_blurmax_pool2d(cls, kernel_size=(2, 2), stride=2, padding=0, taps_y=None, taps_x=None) -> "Desc":
        """composer ``blurmax_pool2d(x, kernel_size, stride, padding, filter)``."""
        ky, kx = _pair("kernel_size", kernel_size)
        sy, sx = _pair("stride", stride)
        py, px = _pair("padding", padding)
        ty, ny, tx, nx = _taps(taps_y, taps_x)
        return cls._preset("blurpool_preset_composer_blurmax_pool2d", ky, kx, sy, sx, py, px, ty, ny, tx, nx)

    # -- edits and queries ------------------------------------------------------------------
    def replace(self, **fields) -> "Desc":
        """A copy with some fields changed, e.g. ``op=OP_CONV_BLUR_POOL, conv_in_channels=...``."""
        raw = OpDesc.from_buffer_copy(self.raw)
        for k, v in fields.items():
            if k not in INT_FIELDS:
                raise TypeError(f"unknown or non-integer descriptor field {k!r}")
            setattr(raw, k, int32(k, v))
        return Desc(raw).check()

    def check(self) -> "Desc":
        """Raises :class:`BlurpoolConfigError` if the descriptor is invalid whatever the input."""
        L = lib()
        L.check(L.blurpool_desc_check(ctypes.byref(self.raw)), "blurpool_desc_check")
        return self

    def with_conv(
        self,
        in_channels,
        out_channels,
        kernel_size,
        padding=0,
        groups=1,
        bias=False,
        activation="identity",
        *,
        blur_first=False,
        conv_stride=1,
    ) -> "Desc":
        """This blur turned into a fused convolution operator: conv (stride 1) → act → this blur
        (CONV_BLUR_POOL), or with ``blur_first`` this blur (stride 1) → strided conv → act
        (BLUR_CONV)."""
        ky, kx = _pair("kernel_size", kernel_size)
        py, px = _pair("padding", padding)
        csy, csx = _pair("conv_stride", conv_stride)
        return self.replace(
            op=OP_BLUR_CONV if blur_first else OP_CONV_BLUR_POOL,
            conv_in_channels=in_channels,
            conv_out_channels=out_channels,
            conv_kernel_y=ky,
            conv_kernel_x=kx,
            conv_pad_y=py,
            conv_pad_x=px,
            conv_groups=groups,
            conv_has_bias=int(bool(bias)),
            conv_activation=activation_code(activation),
            conv_stride_y=csy,
            conv_stride_x=csx,
        )

    @property
    def op(self) -> int:
        return self.raw.op

    @property
    def has_conv(self) -> bool:
        return self.raw.op in (OP_CONV_BLUR_POOL, OP_BLUR_CONV)

    def output_shape(self, in_shape: Sequence[int]) -> tuple:
        """(N, C, H, W) of the output, or :class:`BlurpoolConfigError` saying why there is none."""
        src = _shape_array(in_shape)
        dst = (ctypes.c_int64 * 4)()
        L = lib()
        L.check(L.blurpool_output_shape(ctypes.byref(self.raw), src, dst), "blurpool_output_shape")
        return tuple(dst)

    def to_args(self):
        """(ints, taps_y, taps_x): the descriptor as torch.library arguments (fresh lists of the
        values :meth:`plain` computed when the descriptor was made)."""
        ints, ty, tx = self.plain()["args"]
        return list(ints), list(ty), list(tx)

    @classmethod
    def from_args(cls, ints: Sequence[int], taps_y: Sequence[float], taps_x: Sequence[float]) -> "Desc":
        """The descriptor :meth:`to_args` describes. The custom ops call this on every launch,
        so descriptors are kept by their arguments (a few hundred at most) and built once."""
        if len(ints) != len(INT_FIELDS) or len(taps_y) != MAX_TAPS or len(taps_x) != MAX_TAPS:
            raise ValueError("malformed blurpool descriptor arguments")
        key = (tuple(ints), tuple(taps_y), tuple(taps_x))
        hit = _FROM_ARGS.get(key)
        if hit is not None:
            return hit
        raw = OpDesc()
        raw.struct_size = ctypes.sizeof(OpDesc)
        for n, v in zip(INT_FIELDS, ints):
            setattr(raw, n, int32(n, v))
        raw.taps_y[:] = [float(v) for v in taps_y]
        raw.taps_x[:] = [float(v) for v in taps_x]
        desc = cls(raw)
        if len(_FROM_ARGS) >= 512:
            _FROM_ARGS.clear()
        _FROM_ARGS[key] = desc
        return desc

    def __eq__(self, other):
        return isinstance(other, Desc) and bytes(self.raw) == bytes(other.raw)

    def __hash__(self):
        return hash(bytes(self.raw))

    def __repr__(self):
        r = self.raw
        names = {1: "max_pool", 2: "blur_pool", 3: "max_blur_pool", 4: "conv_blur_pool", 5: "blur_conv"}
        parts = [names.get(r.op, f"op={r.op}")]
        if r.op != OP_MAX_POOL:
            parts.append(f"taps_y={list(r.taps_y[: r.taps_y_len])}, taps_x={list(r.taps_x[: r.taps_x_len])}")
            parts.append(f"pad=({r.pad_top},{r.pad_bottom},{r.pad_left},{r.pad_right}) mode={r.pad_mode}")
            parts.append(f"stride=({r.stride_y},{r.stride_x})")
        if r.op in (OP_MAX_POOL, OP_MAX_BLUR_POOL):
            parts.append(f"max=({r.max_kernel_y},{r.max_kernel_x}) pad=({r.max_pad_y},{r.max_pad_x})")
        if self.has_conv:
            parts.append(
                f"conv {r.conv_in_channels}->{r.conv_out_channels} k=({r.conv_kernel_y},{r.conv_kernel_x}) "
                f"groups={r.conv_groups} bias={r.conv_has_bias} act={r.conv_activation}"
            )
        return f"Desc({', '.join(parts)})"

    # -- raw calls --------------------------------------------------------------------------
    def _call(self, fn: str, dtype, layout, in_shape, *args) -> None:
        """Calls the C entry point ``fn`` with (desc, dtype, layout, in_shape, *args) and raises
        its status as an exception."""
        L = lib()
        L.check(getattr(L, fn)(ctypes.byref(self.raw), dtype, layout, _shape_array(in_shape), *args), fn)

    def _length(self, fn: str, *args) -> int:
        """A C entry point that writes an element count through its last argument."""
        n = ctypes.c_uint64(0)
        L = lib()
        L.check(getattr(L, fn)(ctypes.byref(self.raw), *args, ctypes.byref(n)), fn)
        return int(n.value)

    def forward_raw(self, dtype, layout, in_shape, x, weight, bias, y, stream, device):
        """``blurpool_forward`` on integer device addresses and an integer CUstream."""
        self._call("blurpool_forward", dtype, layout, in_shape, x, weight, bias, y, _stream(stream), device)

    def packed_weight_len(self, dtype, layout, in_shape, device) -> int:
        """Elements of packed weights ``forward_packed_raw`` reads on ``device`` (0: the kernel
        there reads the plain weights; call ``forward_raw``)."""
        return self._length("blurpool_packed_weight_len", dtype, layout, _shape_array(in_shape), device)

    def pack_weights_raw(self, dtype, layout, in_shape, weight, packed, stream, device):
        """``blurpool_pack_weights``: queues the packing of ``weight`` into ``packed``
        (``packed_weight_len`` elements, 16-byte aligned) on ``stream``."""
        self._call("blurpool_pack_weights", dtype, layout, in_shape, weight, packed, _stream(stream), device)

    def forward_packed_raw(self, dtype, layout, in_shape, x, packed, bias, y, stream, device):
        """``blurpool_forward_packed``: ``forward_raw`` reading weights packed by
        ``pack_weights_raw`` (one launch, no allocation)."""
        self._call(
            "blurpool_forward_packed", dtype, layout, in_shape, x, packed, bias, y, _stream(stream), device
        )

    def backward_workspace_len(self, in_shape) -> int:
        """f32 elements of device workspace ``blurpool_backward`` needs (0 for the pooling ops)."""
        return self._length("blurpool_backward_workspace_len", _shape_array(in_shape))

    def backward_raw(self, dtype, layout, in_shape, x, weight, bias, dy, dx, dweight, dbias, workspace, stream, device):
        """``blurpool_backward`` on integer device addresses (0 where unused) and a CUstream."""
        self._call(
            "blurpool_backward",
            dtype,
            layout,
            in_shape,
            *(x, weight, bias, dy, dx, dweight, dbias, workspace),
            _stream(stream),
            device,
        )

    def reference_raw(self, dtype, layout, in_shape, x, weight, bias, y):
        """``blurpool_reference_forward``; each buffer is (address or None, element count)."""
        self._call("blurpool_reference_forward", dtype, layout, in_shape, *x, *weight, *bias, *y)


def _stream(stream):
    """A CUstream argument from an integer handle (0 or None: the legacy default stream)."""
    return ctypes.c_void_p(stream or None)


def _pair(name, v):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int32(name, v[0]), int32(name, v[1])
    v = int32(name, v)
    return v, v


def _square(name, v) -> int:
    a, b = _pair(name, v)
    if a != b:
        raise ValueError(f"{name} {v!r}: only square binomial kernels are supported")
    return a


def _taps(taps_y, taps_x):
    """(array or None, n) for each axis; ctypes passes a double array as the pointer."""
    if taps_y is None and taps_x is None:
        return None, 0, None, 0
    if taps_y is None or taps_x is None:
        raise ValueError("give both taps_y and taps_x, or neither (composer's default filter)")
    out = []
    for name, t in (("taps_y", taps_y), ("taps_x", taps_x)):
        vals = [float(v) for v in t]
        if not 1 <= len(vals) <= MAX_TAPS:
            raise ValueError(f"{name} must have 1..{MAX_TAPS} taps, got {len(vals)}")
        out += [(ctypes.c_double * len(vals))(*vals), len(vals)]
    return tuple(out)
