"""PyTorch binding of libblurpool: fused anti-aliased downsampling (MaxBlurPool, BlurPool,
ConvBlurPool) through the C ABI (ctypes) and one ``torch.library`` custom op
(``torch.ops.blurpool.forward``) that torch.compile treats as a single op.

* Functions (kornia's signatures): :func:`blur_pool2d`, :func:`max_blur_pool2d`, and
  :func:`conv_blur_pool2d`; :func:`apply` runs any :class:`Desc`.
* Modules with the libraries' arguments, buffers and state_dict keys: :class:`BlurPool` and
  :class:`MaxBlurPool` (antialiased-cnns), :class:`BlurPool2D` and :class:`MaxBlurPool2D`
  (kornia), :class:`BlurPool2d` (timm, usable as ``aa_layer``), :class:`ConvBlurPool2d`.
* :func:`convert` swaps those libraries' layers in an existing model, in place.
* The CPU reference through the same C ABI: :func:`reference` and ``reference_*``.

Where it runs: CUDA tensors of float32/float16/bfloat16, contiguous or channels_last, take the
fused kernels on ``torch.cuda.current_stream()`` (output in the input's memory format); CPU and
meta tensors and float64 take the same operator composed from torch ops, as the libraries
compute it. Autograd on both. ``pip install ./python`` ships libblurpool inside the package
(else: ``BLURPOOL_LIB``, or the repository's ``target/release``).
"""

from ._lib import (
    BlurpoolConfigError,
    BlurpoolError,
    BlurpoolNoDriverError,
    Desc,
    LibraryNotFoundError,
    lib,
)
from .convert import ConversionReport, PassThrough, convert
from .modules import BlurPool, BlurPool2D, BlurPool2d, ConvBlurPool2d, MaxBlurPool, MaxBlurPool2D
from .ops import (
    apply,
    blur_pool2d,
    conv_blur_pool2d,
    max_blur_pool2d,
    reference,
    reference_blur_pool2d,
    reference_conv_blur_pool2d,
    reference_max_blur_pool2d,
    uses_kernels,
)

__version__ = "0.1.0"

__all__ = [
    "BlurPool",
    "BlurPool2D",
    "BlurPool2d",
    "ConversionReport",
    "BlurpoolConfigError",
    "BlurpoolError",
    "BlurpoolNoDriverError",
    "ConvBlurPool2d",
    "Desc",
    "LibraryNotFoundError",
    "MaxBlurPool",
    "MaxBlurPool2D",
    "PassThrough",
    "apply",
    "blur_pool2d",
    "conv_blur_pool2d",
    "convert",
    "lib",
    "max_blur_pool2d",
    "reference",
    "reference_blur_pool2d",
    "reference_conv_blur_pool2d",
    "reference_max_blur_pool2d",
    "uses_kernels",
]
