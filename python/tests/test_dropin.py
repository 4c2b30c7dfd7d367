"""Drop-in use with timm and antialiased-cnns: constructor arguments, buffers, state_dict keys,
``convert``, and every device and dtype off the CUDA kernels (CPU, meta, float64) with autograd,
torch.compile, torch.export and tracing. All on CPU, random weights, no hub downloads."""

import copy

import pytest
import torch
from torch import nn

import blurpool_torch as bp

timm = pytest.importorskip("timm")
aa = pytest.importorskip("antialiased_cnns")
kornia = pytest.importorskip("kornia")
from timm.layers import BlurPool2d as TimmBlurPool2d  # noqa: E402


def rand(*shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(sum(shape))
    return torch.randn(*shape, generator=g, dtype=dtype)


# ---- timm's aa_layer ---------------------------------------------------------------------------

TIMM_AA_MODELS = ["resnet18", "resnetblur18", "cs3darknet_s", "ecaresnet26t"]


@pytest.mark.parametrize("name", TIMM_AA_MODELS)
def test_timm_aa_layer_builds_and_loads_timms_own_state_dict_strictly(name):
    torch.manual_seed(0)
    ours = timm.create_model(name, aa_layer=bp.BlurPool2d, pretrained=False).eval()
    torch.manual_seed(0)
    theirs = timm.create_model(name, aa_layer=TimmBlurPool2d, pretrained=False).eval()
    n = sum(isinstance(m, bp.BlurPool2d) for m in ours.modules())
    assert n >= 1, f"{name}: no BlurPool2d was built"
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_timm_passes_device_and_dtype():
    m = bp.BlurPool2d(channels=8, filt_size=3, stride=2, device="meta", dtype=torch.float16)
    assert m.filt.device.type == "meta" and m.filt.dtype == torch.float16
    assert tuple(m.filt.shape) == (8, 1, 3, 3)
    assert "filt" not in m.state_dict()  # non-persistent, as in timm


# ---- the modules against the originals -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_modules_give_the_originals_numbers_on_cpu(dtype):
    x = rand(2, 8, 17, 19, dtype=dtype)
    pairs = [
        (bp.BlurPool2d(8), TimmBlurPool2d(8)),
        (bp.BlurPool2d(None, 5, 2, "constant"), TimmBlurPool2d(None, 5, 2, "constant")),
        (bp.BlurPool(8), aa.BlurPool(8)),
        (bp.BlurPool(8, "replicate", 3, 2, 1), aa.BlurPool(8, "replicate", 3, 2, 1)),
        (bp.MaxBlurPool(8, 3, 1, "reflect", 3), nn.Sequential(nn.MaxPool2d(3, 1, 1), aa.BlurPool(8, filt_size=3))),
        (bp.MaxBlurPool2D(3), kornia.filters.MaxBlurPool2D(3)),
        (bp.BlurPool2D(5), kornia.filters.BlurPool2D(5)),
    ]
    for ours, theirs in pairs:
        ours, theirs = ours.to(dtype), theirs.to(dtype)
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0, msg=lambda m: f"{ours}: {m}")


def test_state_dict_keys_match_antialiased_cnns():
    assert bp.BlurPool(8).state_dict().keys() == aa.BlurPool(8).state_dict().keys()
    torch.testing.assert_close(bp.BlurPool(8).filt, aa.BlurPool(8).filt)
    pair = nn.Sequential(nn.MaxPool2d(2, 1), aa.BlurPool(8))
    assert bp.MaxBlurPool(8).state_dict().keys() == pair.state_dict().keys()
    bp.MaxBlurPool(8).load_state_dict(pair.state_dict(), strict=True)


# ---- convert ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: aa.resnet18(pretrained=False),
        lambda: aa.mobilenet_v2(pretrained=False),
        lambda: timm.create_model("resnetblur18", pretrained=False),
    ],
    ids=["aa-resnet18", "aa-mobilenet_v2", "timm-resnetblur18"],
)
def test_convert_reproduces_the_original_and_keeps_the_state_dict(build):
    torch.manual_seed(0)
    original = build().eval()
    converted = copy.deepcopy(original)
    report = bp.convert(converted)
    assert len(report) >= 4, str(report)
    assert not report.skipped, str(report)
    assert not any(type(m).__module__.split(".")[0] in ("antialiased_cnns",) and type(m).__name__ == "BlurPool"
                   for m in converted.modules())  # fmt: skip
    x = rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), original(x), rtol=0, atol=0)
    converted.load_state_dict(original.state_dict(), strict=True)
    original.load_state_dict(converted.state_dict(), strict=True)
    # weights are shared with the original's structure, not re-initialised
    for (ka, a), (kb, b) in zip(original.state_dict().items(), converted.state_dict().items()):
        assert ka == kb and torch.equal(a, b)


def test_convert_fuses_max_pool_pairs_and_names_them():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 1), aa.BlurPool(8), nn.Conv2d(8, 4, 1))
    ref = copy.deepcopy(m)
    report = bp.convert(m)
    assert [r[2] for r in report.replaced] == ["blurpool_torch MaxBlurPool (fused)"], str(report)
    assert isinstance(m[2], bp.PassThrough)
    assert m.state_dict().keys() == ref.state_dict().keys()
    x = rand(2, 3, 16, 16)
    torch.testing.assert_close(m(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("act", [nn.ReLU(), nn.ReLU6(), nn.Identity()])
@pytest.mark.parametrize("blur", [lambda c: aa.BlurPool(c), lambda c: TimmBlurPool2d(c)], ids=["aa", "timm"])
def test_convert_fuses_conv_act_blur_chains(act, blur):
    m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=True), act, blur(6))
    ref = copy.deepcopy(m)
    report = bp.convert(m)
    assert [r[2] for r in report.replaced] == ["blurpool_torch.ConvBlurPool2d"], str(report)
    assert m[0].weight is not None and m.state_dict().keys() == ref.state_dict().keys()
    x = rand(2, 3, 15, 17)
    torch.testing.assert_close(m(x), ref(x), rtol=1e-6, atol=1e-6)


def test_convert_skips_a_changed_filter_and_reports_it():
    b = aa.BlurPool(4)
    with torch.no_grad():
        b.filt.mul_(2.0)
    m = nn.Sequential(nn.Identity(), b)
    report = bp.convert(m)
    assert not report.replaced and report.skipped and "binomial" in report.skipped[0][1]
    assert m[1] is b


def test_convert_replaces_kornia_modules():
    m = nn.Sequential(kornia.filters.MaxBlurPool2D(3), kornia.filters.BlurPool2D(3))
    ref = copy.deepcopy(m)
    report = bp.convert(m)
    assert [type(x) for x in m] == [bp.MaxBlurPool2D, bp.BlurPool2D], str(report)
    x = rand(1, 4, 20, 20)
    torch.testing.assert_close(m(x), ref(x), rtol=0, atol=0)


def test_convert_rejects_non_modules_and_bare_layers():
    with pytest.raises(TypeError, match="nn.Module"):
        bp.convert([nn.ReLU()])
    with pytest.raises(TypeError, match="in place"):
        bp.convert(aa.BlurPool(4))


# ---- devices, dtypes, autograd, compile ---------------------------------------------------------------


def test_meta_tensors_give_shapes():
    x = torch.empty(2, 8, 33, 31, device="meta")
    for m in (bp.BlurPool2d(8), bp.BlurPool(8), bp.MaxBlurPool(8), bp.MaxBlurPool2D(3), bp.BlurPool2D(3)):
        y = m.to("meta")(x)
        assert y.device.type == "meta"
        assert tuple(y.shape) == m.desc.output_shape(x.shape)
    c = bp.ConvBlurPool2d(8, 4, 3, padding=1, device="meta")
    assert c(x).shape == (2, 4, 17, 16)


def test_cpu_autograd_matches_finite_differences_in_float64():
    x = rand(1, 2, 9, 8, dtype=torch.float64).requires_grad_()
    for f in (bp.BlurPool2d(2).double(), bp.BlurPool(2, "replicate", 3).double(), bp.MaxBlurPool(2).double()):
        assert torch.autograd.gradcheck(f, (x,))
    c = bp.ConvBlurPool2d(2, 3, 3, padding=1, activation="identity").double()
    assert torch.autograd.gradcheck(c, (x,))


def test_torch_compile_export_and_trace_on_cpu():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), bp.MaxBlurPool(8), bp.BlurPool2d(8)).eval()
    x = rand(2, 3, 32, 32)
    want = m(x)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), want)
    exported = torch.export.export(m, (x,))
    torch.testing.assert_close(exported.module()(x), want)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(m, (x,))
    torch.testing.assert_close(traced(x), want)


# ---- errors named in the issue, and their kin ------------------------------------------------------------


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: bp.conv_blur_pool2d([[1.0]], torch.rand(4, 3, 3, 3)), TypeError, "torch.Tensor"),
        (lambda: bp.conv_blur_pool2d(rand(1, 3, 8, 8), [[1.0]]), TypeError, "weight"),
        (lambda: bp.conv_blur_pool2d(rand(1, 3, 8, 8), torch.rand(4, 3, 3, 3), bias=[1.0]), TypeError, "bias"),
        (lambda: bp.ConvBlurPool2d(3, 4, kernel_size=True), TypeError, "bool"),
        (lambda: bp.ConvBlurPool2d(3, 4, 3, bias=2), TypeError, "bias must be a bool"),
        (lambda: bp.MaxBlurPool2D(True), TypeError, "bool"),
        (lambda: bp.BlurPool2d(channels=True), TypeError, "bool"),
        (lambda: bp.BlurPool2d(channels=0), ValueError, "channels"),
        (lambda: bp.BlurPool(2**31), ValueError, "channels"),
        (lambda: bp.BlurPool2d(8, filt_size=2.5), TypeError, "int"),
        (lambda: bp.BlurPool2d(8)(rand(1, 4, 8, 8)), ValueError, "8 channels"),
        (lambda: bp.blur_pool2d(torch.zeros(1, 1, 8, 8, dtype=torch.int64), 3), TypeError, "not supported"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- install ---------------------------------------------------------------------------------------


def test_an_installed_package_loads_its_own_library():
    """`pip install ./python` ships libblurpool inside the package; with no BLURPOOL_LIB the
    installed package must load that copy (CI runs this test against the installed package)."""
    import os
    from pathlib import Path

    pkg = Path(bp.__file__).resolve().parent
    repo_python = Path(__file__).resolve().parents[1]
    if pkg.parent == repo_python:
        pytest.skip("testing the source tree, not an installed package (pip install ./python)")
    if os.environ.get("BLURPOOL_LIB"):
        pytest.skip("BLURPOOL_LIB is set: it overrides the bundled library")
    assert Path(bp.lib().path).resolve().parent == pkg, bp.lib().path


def test_torch_jit_script_runs_in_python():
    """torch.jit.script compiles the modules' forward and leaves the descriptor and kernel call
    to Python (torch.jit.ignore): a scripted model runs, in Python; it cannot be saved."""
    import warnings

    x = rand(2, 4, 16, 16)
    layers = [bp.BlurPool2d(4), bp.BlurPool(4), bp.MaxBlurPool(4), bp.MaxBlurPool2D(3), bp.BlurPool2D(3),
              bp.ConvBlurPool2d(4, 4, 3, padding=1)]  # fmt: skip
    torch.manual_seed(0)
    model = aa.resnet18(pretrained=False).eval()
    converted = copy.deepcopy(model)
    bp.convert(converted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in layers:
            torch.testing.assert_close(torch.jit.script(m)(x), m(x), rtol=0, atol=0)
        xi = rand(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(torch.jit.script(converted)(xi), model(xi), rtol=0, atol=0)
