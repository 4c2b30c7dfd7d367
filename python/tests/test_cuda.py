"""The fused kernels on a GPU against the CPU reference (skipped without CUDA)."""

import pytest
import torch

import blurpool_torch as bp

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)")

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
LAYERS = [
    lambda: bp.MaxBlurPool(5),
    lambda: bp.BlurPool(5, pad_type="repl", filt_size=5),
    lambda: bp.MaxBlurPool2D(3),
    lambda: bp.BlurPool2d(5, filt_size=4, pad_mode="constant"),
]


def _check(got, want, dtype):
    torch.testing.assert_close(got.cpu().float(), want.float(), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_pooling_matches_reference(dtype, channels_last, layer):
    torch.manual_seed(0)
    m = LAYERS[layer]()
    x = torch.randn(2, 5, 13, 12).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = m(x.cuda())
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    _check(y, m.reference(x), dtype)


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("groups", [1, 6])
def test_conv_blur_pool_matches_reference(dtype, groups):
    torch.manual_seed(1)
    m = bp.ConvBlurPool2d(6, 6, 3, padding=1, groups=groups, activation="relu").to(dtype)
    x = torch.randn(2, 6, 11, 10).to(dtype)
    y = m.cuda()(x.cuda())
    _check(y, m.cpu().reference(x), dtype)


def test_runs_on_the_current_stream():
    m = bp.MaxBlurPool(4)
    x = torch.randn(8, 4, 64, 64, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        y = m(x)
    s.synchronize()
    _check(y, m.reference(x.cpu()), torch.float32)


def test_torch_compile_fullgraph():
    m = bp.MaxBlurPool(3)
    f = torch.compile(lambda t: m(t) * 2 + 1, fullgraph=True)
    x = torch.randn(2, 3, 16, 16, device="cuda")
    torch.testing.assert_close(f(x), m(x) * 2 + 1)


def test_opcheck():
    d = bp.Desc.antialiased_cnns_max_blur_pool()
    x = torch.randn(2, 3, 16, 16, device="cuda")
    torch.library.opcheck(
        torch.ops.blurpool.forward.default,
        (x, None, None, *d.to_args()),
        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
    )


def test_cpu_input_is_a_type_error_even_with_cuda():
    with pytest.raises(TypeError, match="CUDA tensors"):
        bp.MaxBlurPool(3)(torch.zeros(1, 3, 8, 8))


def test_packed_weights_give_the_forwards_bits():
    # A dense 3×3 conv in f16 NHWC: the tensor-core kernel that reads packed weights (sm_80+).
    torch.manual_seed(2)
    d = bp.Desc.antialiased_cnns_blur_pool("reflect", 4, 2, 0).with_conv(40, 70, 3, 1, 1, True, "relu")
    dev = torch.cuda.current_device()
    x = torch.randn(2, 40, 30, 34, device="cuda").half().contiguous(memory_format=torch.channels_last)
    w = (torch.randn(70, 40, 3, 3, device="cuda") * 0.2).half()
    b = torch.randn(70, device="cuda").half()
    n = d.packed_weight_len(bp._lib.DTYPE_F16, bp._lib.LAYOUT_NHWC, tuple(x.shape), dev)
    if torch.cuda.get_device_capability() < (8, 0):
        assert n == 0
        return
    assert n > 0
    packed = torch.empty(n, dtype=torch.float16, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    d.pack_weights_raw(bp._lib.DTYPE_F16, bp._lib.LAYOUT_NHWC, tuple(x.shape), w.data_ptr(), packed.data_ptr(), stream, dev)
    out = d.output_shape(tuple(x.shape))
    y = torch.full(out, float("nan"), dtype=torch.float16, device="cuda").contiguous(memory_format=torch.channels_last)
    y2 = y.clone()
    args = (bp._lib.DTYPE_F16, bp._lib.LAYOUT_NHWC, tuple(x.shape))
    d.forward_raw(*args, x.data_ptr(), w.data_ptr(), b.data_ptr(), y.data_ptr(), stream, dev)
    d.forward_packed_raw(*args, x.data_ptr(), packed.data_ptr(), b.data_ptr(), y2.data_ptr(), stream, dev)
    torch.cuda.synchronize()
    assert torch.isfinite(y).all()
    assert torch.equal(y.view(torch.int16), y2.view(torch.int16))
    with pytest.raises(bp.BlurpoolConfigError, match="aligned"):
        d.forward_packed_raw(*args, x.data_ptr(), packed.data_ptr() + 2, b.data_ptr(), y2.data_ptr(), stream, dev)
