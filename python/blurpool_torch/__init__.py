"""PyTorch binding of libblurpool: fused anti-aliased downsampling (MaxBlurPool, BlurPool,
ConvBlurPool) on CUDA tensors, through the C ABI (ctypes) and one ``torch.library`` custom op
(``torch.ops.blurpool.forward``) that torch.compile treats as a single op.

* Functions (kornia's signatures): :func:`blur_pool2d`, :func:`max_blur_pool2d`, and
  :func:`conv_blur_pool2d`; :func:`apply` runs any :class:`Desc`.
* Modules with the libraries' arguments: :class:`BlurPool` and :class:`MaxBlurPool`
  (antialiased-cnns), :class:`MaxBlurPool2D` (kornia), :class:`BlurPool2d` (timm),
  :class:`ConvBlurPool2d`.
* The CPU reference through the same C ABI: :func:`reference` and ``reference_*``.

Inputs: 4-D CUDA tensors, float32/float16/bfloat16, contiguous or channels_last; the kernel
runs on ``torch.cuda.current_stream()`` and the output keeps the input's memory format.
The library (libblurpool.so) is found at run time: ``BLURPOOL_LIB``, next to this package, or
the repository's ``target/release``.
"""

from ._lib import (
    BlurpoolConfigError,
    BlurpoolError,
    BlurpoolNoDriverError,
    Desc,
    LibraryNotFoundError,
    lib,
)
from .modules import BlurPool, BlurPool2d, ConvBlurPool2d, MaxBlurPool, MaxBlurPool2D
from .ops import (
    apply,
    blur_pool2d,
    conv_blur_pool2d,
    max_blur_pool2d,
    reference,
    reference_blur_pool2d,
    reference_conv_blur_pool2d,
    reference_max_blur_pool2d,
)

__version__ = "0.1.0"

__all__ = [
    "BlurPool",
    "BlurPool2d",
    "BlurpoolConfigError",
    "BlurpoolError",
    "BlurpoolNoDriverError",
    "ConvBlurPool2d",
    "Desc",
    "LibraryNotFoundError",
    "MaxBlurPool",
    "MaxBlurPool2D",
    "apply",
    "blur_pool2d",
    "conv_blur_pool2d",
    "lib",
    "max_blur_pool2d",
    "reference",
    "reference_blur_pool2d",
    "reference_conv_blur_pool2d",
    "reference_max_blur_pool2d",
]
