"""The custom op as the compiler sees it (runs on CPU: fake CUDA tensors, no kernel launched)."""

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import blurpool_torch as bp


def test_fake_cuda_shapes_and_memory_format():
    d = bp.Desc.antialiased_cnns_max_blur_pool()
    with FakeTensorMode():
        x = torch.empty(2, 3, 9, 9, device="cuda")
        y = torch.ops.blurpool.forward(x, None, None, *d.to_args())
        assert y.shape == (2, 3, 4, 4) and y.device.type == "cuda"
        assert y.is_contiguous()
        y = torch.ops.blurpool.forward(x.contiguous(memory_format=torch.channels_last), None, None, *d.to_args())
        assert y.is_contiguous(memory_format=torch.channels_last)


def test_meta_tensors():
    d = bp.Desc.timm_blur_pool2d()
    y = torch.ops.blurpool.forward(torch.empty(1, 3, 8, 8, device="meta"), None, None, *d.to_args())
    assert y.shape == (1, 3, 4, 4)


def test_export_is_one_op():
    """torch.export (dynamo, like torch.compile) keeps the fused layer as a single node."""
    m = bp.ConvBlurPool2d(3, 4, 3, padding=1, activation="relu", device="meta")
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        x = torch.empty(2, 3, 16, 16, device="cuda")
        m = m.to_empty(device="cuda")
        ep = torch.export.export(m, (x,))
    del mode
    calls = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert calls == [torch.ops.blurpool.forward.default], calls
