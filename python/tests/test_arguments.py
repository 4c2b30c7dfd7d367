"""Python-level argument checks: the right exception type, and the library's message."""

import pytest
import torch

import blurpool_torch as bp


def x(*shape, dtype=torch.float32):
    return torch.rand(*(shape or (1, 3, 8, 8)), dtype=dtype)


def test_cpu_tensors_take_the_torch_path_and_match_the_reference():
    t = torch.randn(2, 3, 11, 13)
    w = torch.randn(4, 3, 3, 3)
    for fast, ref in (
        (lambda v: bp.max_blur_pool2d(v, 3), lambda v: bp.reference_max_blur_pool2d(v, 3)),
        (lambda v: bp.blur_pool2d(v, 3), lambda v: bp.reference_blur_pool2d(v, 3)),
        (lambda v: bp.conv_blur_pool2d(v, w, padding=1), lambda v: bp.reference_conv_blur_pool2d(v, w, padding=1)),
        (bp.MaxBlurPool2D(3), bp.MaxBlurPool2D(3).reference),
        (bp.BlurPool(3), bp.BlurPool(3).reference),
        (bp.MaxBlurPool(3), bp.MaxBlurPool(3).reference),
        (bp.BlurPool2d(3), bp.BlurPool2d(3).reference),
        (bp.BlurPool2D(3), bp.BlurPool2D(3).reference),
    ):
        assert not bp.uses_kernels(t)
        y, r = fast(t), ref(t)
        assert y.shape == r.shape
        torch.testing.assert_close(y, r, rtol=1e-5, atol=1e-5)


def test_cpu_path_keeps_the_memory_format():
    t = torch.randn(2, 3, 11, 13).contiguous(memory_format=torch.channels_last)
    y = bp.max_blur_pool2d(t, 3)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, bp.reference_max_blur_pool2d(t, 3), rtol=1e-5, atol=1e-5)


def test_not_a_tensor():
    with pytest.raises(TypeError, match="torch.Tensor"):
        bp.max_blur_pool2d([[1.0]], 3)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.bool])
def test_wrong_dtypes(dtype):
    with pytest.raises(TypeError, match="not supported"):
        bp.max_blur_pool2d(torch.zeros(1, 1, 8, 8, dtype=dtype), 3)
    with pytest.raises(TypeError, match="not supported"):
        bp.reference_max_blur_pool2d(torch.zeros(1, 1, 8, 8, dtype=dtype), 3)


def test_float64_runs_on_the_torch_path_but_not_in_the_c_reference():
    t = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    y = bp.max_blur_pool2d(t, 3)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y.float(), bp.reference_max_blur_pool2d(t.float(), 3), rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="not supported"):
        bp.reference_max_blur_pool2d(t, 3)


def test_wrong_rank():
    with pytest.raises(ValueError, match="4-D"):
        bp.reference_blur_pool2d(torch.zeros(8, 8), 3)


def test_non_contiguous_inputs():
    t = x(1, 3, 8, 16)[..., ::2]
    with pytest.raises(ValueError, match="contiguous"):
        bp.max_blur_pool2d(t, 3)
    with pytest.raises(ValueError, match="contiguous"):
        bp.reference_max_blur_pool2d(t, 3)
    with pytest.raises(ValueError, match="contiguous"):
        bp.reference_blur_pool2d(x(2, 3, 8, 8).transpose(2, 3), 3)


def test_bad_configs_carry_the_library_message():
    with pytest.raises(ValueError, match="binomial filter size 9") as e:
        bp.MaxBlurPool2D(9)
    assert isinstance(e.value, bp.BlurpoolConfigError)
    assert e.value.status_name == "BLURPOOL_STATUS_INVALID_ARGUMENT"
    with pytest.raises(ValueError, match="stride must be at least 1"):
        bp.BlurPool2d(filt_size=3, stride=0)
    with pytest.raises(ValueError, match="padding must be ≥ 0"):
        bp.BlurPool(3, pad_off=-3)
    with pytest.raises(ValueError, match="at most half the window"):
        bp.MaxBlurPool(3, max_kernel=2, max_padding=2)
    with pytest.raises(ValueError, match="unknown pad mode"):
        bp.BlurPool(3, pad_type="circular")
    with pytest.raises(ValueError, match="unknown activation"):
        bp.ConvBlurPool2d(3, 4, 3, activation="gelu")
    with pytest.raises(ValueError, match="groups"):
        bp.ConvBlurPool2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out of range"):
        bp.BlurPool(3, filt_size=2**32 + 3)
    with pytest.raises(TypeError, match="must be an int"):
        bp.BlurPool(3, filt_size=3.0)
    with pytest.raises(ValueError, match="odd sizes only"):
        bp.Desc.composer_blur_2d(2, [1.0, 1.0], [1.0, 1.0])


def test_shape_dependent_errors():
    # antialiased-cnns reflect, filt_size 5, on a 2×2 map: PyTorch crashes; we say why.
    with pytest.raises(ValueError, match="reflect padding 2 on the height axis"):
        bp.BlurPool(1, filt_size=5).reference(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="built for 3 channels but the input has 4"):
        bp.BlurPool(3).reference(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="input has 4 channels but the operator was built for 3"):
        bp.reference(torch.zeros(1, 4, 8, 8), bp.Desc.kornia_blur_pool2d(3).with_conv(3, 2, 1), torch.zeros(2, 3, 1, 1))


def test_conv_parameter_checks():
    inp = x(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"weight has shape \(6, 3, 3, 3\), expected \(6, 1, 3, 3\)"):
        bp.reference(inp, bp.Desc.kornia_blur_pool2d(3).with_conv(3, 6, 3, groups=3), torch.zeros(6, 3, 3, 3))
    with pytest.raises(TypeError, match="weight dtype torch.float16"):
        bp.reference_conv_blur_pool2d(inp, torch.zeros(4, 3, 3, 3, dtype=torch.float16))
    with pytest.raises(ValueError, match="bias must be given exactly"):
        bp.reference(inp, bp.Desc.kornia_blur_pool2d(3).with_conv(3, 4, 3, bias=True), torch.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match="bias has shape"):
        bp.reference_conv_blur_pool2d(inp, torch.zeros(4, 3, 3, 3), torch.zeros(5))
    with pytest.raises(ValueError, match="no convolution"):
        bp.reference(inp, bp.Desc.kornia_blur_pool2d(3), torch.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match="pad_off"):
        bp.ConvBlurPool2d(3, 4, 3, pad_off=1, style="timm")
    with pytest.raises(ValueError, match="style"):
        bp.ConvBlurPool2d(3, 4, 3, style="keras")


def test_reference_rejects_cuda_or_meta_tensors():
    with pytest.raises(TypeError, match="CPU tensors"):
        bp.reference_blur_pool2d(torch.zeros(1, 1, 8, 8, device="meta"), 3)
