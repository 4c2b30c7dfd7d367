"""The ctypes binding itself: loading, ABI agreement, descriptors, the no-driver path."""

import ctypes

import pytest
import torch

import blurpool_torch as bp
from blurpool_torch import _lib


def test_import_and_library():
    lib = bp.lib()
    assert lib.version == bp.__version__
    assert lib.blurpool_abi_version() == _lib.ABI_VERSION
    assert lib.blurpool_op_desc_size() == ctypes.sizeof(_lib.OpDesc)
    assert lib.blurpool_status_name(_lib.NO_DRIVER) == b"BLURPOOL_STATUS_NO_DRIVER"


def test_library_path_from_env(monkeypatch, tmp_path):
    loaded = bp.lib().path
    monkeypatch.setattr(_lib, "_LIB", None)
    monkeypatch.setenv(_lib.LIB_ENV, str(tmp_path / "nope.so"))
    with pytest.raises(bp.LibraryNotFoundError, match="does not name a file"):
        bp.lib()
    monkeypatch.setenv(_lib.LIB_ENV, str(loaded))
    assert bp.lib().path == loaded


def test_presets_fill_the_libraries_geometry():
    d = bp.Desc.antialiased_cnns_blur_pool("reflect", 4, 2, 0).raw
    assert (d.op, d.taps_y_len, d.pad_top, d.pad_bottom, d.pad_mode, d.stride_y) == (_lib.OP_BLUR_POOL, 4, 1, 2, 1, 2)
    assert list(d.taps_x[:4]) == [0.125, 0.375, 0.375, 0.125]
    d = bp.Desc.kornia_max_blur_pool2d(3, 2, 2).raw
    assert (d.op, d.max_kernel_y, d.pad_top, d.pad_bottom, d.pad_mode) == (_lib.OP_MAX_BLUR_POOL, 2, 1, 1, 0)
    d = bp.Desc.timm_blur_pool2d(3, 2, "constant").raw
    assert (d.pad_top, d.pad_mode) == (1, 0)
    d = bp.Desc.composer_blur_2d(2, [1.0, 2.0, 1.0], [1.0, 0.0, -1.0]).raw
    assert (d.normalize, d.taps_x_len, list(d.taps_x[:3])) == (0, 3, [1.0, 0.0, -1.0])


def test_descriptor_round_trips_through_op_arguments():
    d = bp.Desc.antialiased_cnns_max_blur_pool(3, 1, "replicate", 5, 3, 1)
    assert bp.Desc.from_args(*d.to_args()) == d
    c = d.with_conv(8, 16, 3, 1, 2, True, "relu6")
    assert c.op == _lib.OP_CONV_BLUR_POOL and c.has_conv
    assert bp.Desc.from_args(*c.to_args()) == c
    assert c.output_shape((2, 8, 10, 10)) == (2, 16, 4, 4)


def test_forward_without_a_driver_is_a_clean_error():
    if bp.lib().driver_available():
        pytest.skip("a CUDA driver is installed here; tests/test_cuda.py covers the GPU path")
    d = bp.Desc.kornia_max_blur_pool2d(3)
    with pytest.raises(bp.BlurpoolNoDriverError, match="no CUDA driver") as e:
        # Placeholder device addresses: without a driver the library stops before using them.
        d.forward_raw(_lib.DTYPE_F32, _lib.LAYOUT_NCHW, (1, 1, 5, 5), 0x1000, 0, 0, 0x2000, 0, 0)
    assert e.value.status_name == "BLURPOOL_STATUS_NO_DRIVER"


def test_packed_weight_calls_check_before_the_driver():
    pool = bp.Desc.kornia_max_blur_pool2d(3)
    conv = bp.Desc.timm_blur_pool2d(3, 2, "reflect").with_conv(16, 32, 3, 1, 1, False, "identity")
    s = (1, 16, 9, 9)
    # Pooling never reads packed weights, with or without a driver.
    assert pool.packed_weight_len(_lib.DTYPE_F16, _lib.LAYOUT_NHWC, (1, 3, 9, 9), 0) == 0
    with pytest.raises(bp.BlurpoolConfigError, match="conv_blur_pool"):
        pool.pack_weights_raw(_lib.DTYPE_F16, _lib.LAYOUT_NHWC, (1, 3, 9, 9), 0x1000, 0x2000, 0, 0)
    with pytest.raises(bp.BlurpoolConfigError, match="packed is a null"):
        conv.forward_packed_raw(_lib.DTYPE_F16, _lib.LAYOUT_NHWC, s, 0x1000, 0, 0, 0x2000, 0, 0)
    with pytest.raises(bp.BlurpoolConfigError, match="weight is a null"):
        conv.pack_weights_raw(_lib.DTYPE_F16, _lib.LAYOUT_NHWC, s, 0, 0x2000, 0, 0)
    # An empty batch never touches CUDA.
    conv.forward_packed_raw(_lib.DTYPE_F16, _lib.LAYOUT_NHWC, (0, 16, 9, 9), 0, 0, 0, 0, 0, 0)
    if not bp.lib().driver_available():
        with pytest.raises(bp.BlurpoolNoDriverError):
            conv.packed_weight_len(_lib.DTYPE_F16, _lib.LAYOUT_NHWC, s, 0)


def test_forward_checks_arguments_before_the_driver():
    d = bp.Desc.kornia_max_blur_pool2d(3)
    with pytest.raises(bp.BlurpoolConfigError, match="x is a null device pointer"):
        d.forward_raw(_lib.DTYPE_F32, _lib.LAYOUT_NCHW, (1, 1, 5, 5), 0, 0, 0, 0x2000, 0, 0)
    with pytest.raises(bp.BlurpoolConfigError, match="dtype 9"):
        d.forward_raw(9, _lib.LAYOUT_NCHW, (1, 1, 5, 5), 0x1000, 0, 0, 0x2000, 0, 0)
    # An empty batch never touches CUDA.
    d.forward_raw(_lib.DTYPE_F32, _lib.LAYOUT_NCHW, (0, 1, 5, 5), 0, 0, 0, 0, 0, 0)


def test_module_reprs_and_state():
    m = bp.BlurPool(4, pad_type="repl", filt_size=3)
    assert "pad_type='repl'" in repr(m)
    assert m.reference(torch.ones(1, 4, 6, 6)).shape == (1, 4, 3, 3)
    c = bp.ConvBlurPool2d(4, 6, 3, padding=1)
    assert c.weight.shape == (6, 4, 3, 3) and c.bias.shape == (6,)
    assert set(dict(c.named_parameters())) == {"weight", "bias"}
