"""torch_ext.compat: the code of basicsr 1.4.2 and mmcv 2.2.0 (installed from PyPI,
requirements/third-party.txt) running on actx, against each package's own reference formula; and
NVlabs' bias_act interface (torch_utils is not on PyPI: a stand-in with its interface and reference)."""

import importlib
import importlib.util
import sys
import types

import pytest
import torch

import torch_ext
from torch_ext import compat
from torch_ext.nn import FusedLeakyReLU

SQRT_2 = 2**0.5


def _bare_packages(monkeypatch, top: str, names: list[str]) -> None:
    """Registers `top` and its subpackages `names` as empty packages over their installed folders,
    so that importing one of their modules runs that module alone, not the package's __init__ (whose
    imports need opencv, mmengine and more)."""
    spec = importlib.util.find_spec(top)
    if spec is None:
        pytest.fail(f"{top} is not installed: scripts/bootstrap.sh installs requirements/third-party.txt")
    root = spec.submodule_search_locations[0]
    for name in [top, *names]:
        package = types.ModuleType(name)
        package.__path__ = [root + name[len(top) :].replace(".", "/")]
        monkeypatch.setitem(sys.modules, name, package)


@pytest.fixture
def forget_modules():
    """Removes the packages' modules a test imported from sys.modules afterwards."""
    yield
    for name in [name for name in sys.modules if name.split(".")[0] in ("basicsr", "mmcv")]:
        del sys.modules[name]


@pytest.fixture
def basicsr(monkeypatch, forget_modules):
    _bare_packages(monkeypatch, "basicsr", ["basicsr.ops"])
    return importlib.import_module("basicsr.ops.fused_act.fused_act")


@pytest.fixture
def mmcv(monkeypatch, forget_modules):
    _bare_packages(monkeypatch, "mmcv", ["mmcv.utils", "mmcv.ops"])
    # mmcv-lite ships mmcv's Python code without its compiled _ext, as a user without a build has it.
    unbuilt = types.ModuleType("mmcv._ext")

    def fused_bias_leakyrelu(*args, **kwargs):
        raise RuntimeError("mmcv._ext is not built")

    unbuilt.fused_bias_leakyrelu = fused_bias_leakyrelu
    monkeypatch.setitem(sys.modules, "mmcv._ext", unbuilt)
    return importlib.import_module("mmcv.ops.fused_bias_leakyrelu")


def make_input(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=dtype)
    x.view(-1)[::7] = 0.0  # the boundary, where the slope's branch is taken
    return x


def rosinality_reference(x, bias, negative_slope, scale):
    """rosinality's CPU path (StyleGAN2's fused_leaky_relu without the extension), in x's dtype."""
    return torch.nn.functional.leaky_relu(x + bias.view(1, -1, *[1] * (x.dim() - 2)), negative_slope) * scale


# --- basicsr -------------------------------------------------------------------------------------


def test_basicsr_without_its_extension_fails_on_the_cpu(basicsr):
    with pytest.raises(NameError, match="fused_act_ext"):
        basicsr.FusedLeakyReLU(3)(torch.randn(2, 3, 4))


def test_basicsr_module_runs_on_actx(basicsr):
    assert compat.install("basicsr") is basicsr
    layer = basicsr.FusedLeakyReLU(5)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(5))
    x = make_input(2, 5, 6, 7, dtype=torch.float32).requires_grad_()
    y = layer(x)
    assert y.grad_fn.name().startswith("actx::BiasLeakyRelu")
    assert torch.equal(y, rosinality_reference(x, layer.bias, 0.2, SQRT_2))
    (y * y).sum().backward()
    expected_x, expected_b = torch.autograd.grad(
        (rosinality_reference(x, layer.bias, 0.2, SQRT_2) ** 2).sum(), (x, layer.bias)
    )
    torch.testing.assert_close(x.grad, expected_x)
    torch.testing.assert_close(layer.bias.grad, expected_b)


@pytest.mark.parametrize("negative_slope", [0.2, 0.0])
def test_basicsr_function_through_the_extension_to_second_order(basicsr, negative_slope):
    # FusedLeakyReLUFunction calls fused_act_ext for the forward (grad=0), the backward and the
    # double backward (grad=1, the second with a bias gradient): all three served by actx.
    compat.install("basicsr")
    x = make_input(3, 4, 5).requires_grad_()
    bias = torch.randn(4, dtype=torch.float64, requires_grad=True)

    def fn(x, bias):
        return basicsr.FusedLeakyReLUFunction.apply(x, bias, negative_slope, SQRT_2)

    assert torch.equal(fn(x, bias), rosinality_reference(x, bias, negative_slope, SQRT_2))
    torch.autograd.gradcheck(fn, (x, bias))
    torch.autograd.gradgradcheck(fn, (x, bias))


def test_basicsr_extension_refuses_a_backward_it_would_get_wrong(basicsr):
    # The extension's backward sees only the output: with a negative slope its sign is not x's.
    compat.install("basicsr")
    x = make_input(2, 3, 4).requires_grad_()
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    y = basicsr.FusedLeakyReLUFunction.apply(x, bias, -0.5, SQRT_2)
    with pytest.raises(ValueError, match=r"alpha >= 0 and scale >= 0; got alpha=-0.5"):
        y.sum().backward()
    # The module goes through actx's operator, right for every slope.
    layer = basicsr.FusedLeakyReLU(3, negative_slope=-0.5, scale=-1.5).double()
    with torch.no_grad():
        layer.bias.copy_(torch.randn(3))  # off the kink at x + bias = 0
    torch.autograd.gradcheck(layer, (x,))


def test_basicsr_install_imports_the_module_and_archs_imported_before_use_actx(monkeypatch, forget_modules):
    _bare_packages(monkeypatch, "basicsr", ["basicsr.ops"])
    # What an architecture did at its import, before install: it holds basicsr's own function.
    from basicsr.ops.fused_act import fused_leaky_relu as imported_early

    compat.install("basicsr")
    x = make_input(2, 3, 4, dtype=torch.float32)
    bias = torch.randn(3)
    assert torch.equal(imported_early(x, bias), rosinality_reference(x, bias, 0.2, SQRT_2))
    assert sys.modules["basicsr.ops.fused_act"].fused_leaky_relu is compat.fused_leaky_relu


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_basicsr_half_types_on_the_cpu(basicsr, dtype):
    compat.install("basicsr")
    layer = basicsr.FusedLeakyReLU(4)  # a float32 bias, as in a mixed-precision model
    x = make_input(2, 4, 8, dtype=dtype)
    y = layer(x)
    assert y.dtype == dtype
    expected = torch.nn.functional.leaky_relu(x.float() + layer.bias.view(1, -1, 1), 0.2) * SQRT_2
    assert torch.equal(y, expected.to(dtype))


# --- mmcv ----------------------------------------------------------------------------------------


def test_mmcv_module_runs_on_actx_and_matches_its_reference(mmcv):
    assert compat.install("mmcv") is mmcv
    layer = mmcv.FusedBiasLeakyReLU(6, negative_slope=0.1, scale=1.5)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(6))
    x = make_input(2, 6, 5, 5, dtype=torch.float32).requires_grad_()
    y = layer(x)
    assert y.grad_fn.name().startswith("actx::BiasLeakyRelu")
    assert torch.equal(y, mmcv.bias_leakyrelu_ref(x, layer.bias, 0.1, 1.5))
    grads = torch.autograd.grad(y.sum(), (x, layer.bias))
    expected = torch.autograd.grad(mmcv.bias_leakyrelu_ref(x, layer.bias, 0.1, 1.5).sum(), (x, layer.bias))
    torch.testing.assert_close(grads, expected)


def test_mmcv_extension_function_to_second_order(mmcv):
    # mmcv's CUDA path (FusedBiasLeakyReLUFunction and its ext_module calls, with keywords), here on
    # the CPU: before install its extension is missing; after, actx serves it.
    x = make_input(2, 3, 4).requires_grad_()
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def fn(x, bias):
        return mmcv.FusedBiasLeakyReLUFunction.apply(x, bias, 0.2, SQRT_2)

    with pytest.raises(RuntimeError, match="not built"):
        fn(x, bias)
    compat.install("mmcv")
    assert torch.equal(fn(x, bias), mmcv.bias_leakyrelu_ref(x, bias, 0.2, SQRT_2))
    torch.autograd.gradcheck(fn, (x, bias))
    torch.autograd.gradgradcheck(fn, (x, bias))


# --- replace_activations -------------------------------------------------------------------------


def test_replace_activations_swaps_the_packages_modules_keeping_their_parameters(basicsr, mmcv):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        basicsr.FusedLeakyReLU(4),
        torch.nn.Conv2d(4, 5, 1),
        mmcv.FusedBiasLeakyReLU(5, 0.1, 2.0),
    )
    with torch.no_grad():
        model[1].bias.copy_(torch.randn(4))
        model[3].bias.copy_(torch.randn(5))
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        t = model[0](x)
        t = rosinality_reference(t, model[1].bias, 0.2, SQRT_2)
        t = model[2](t)
        expected = rosinality_reference(t, model[3].bias, 0.1, 2.0)
    biases = [model[1].bias, model[3].bias]
    state = model.state_dict()
    torch_ext.replace_activations(model)
    assert isinstance(model[1], FusedLeakyReLU) and isinstance(model[3], FusedLeakyReLU)
    assert model[1].bias is biases[0] and model[3].bias is biases[1]
    assert (model[3].negative_slope, model[3].scale, model[3].training) == (0.1, 2.0, False)
    assert model.state_dict().keys() == state.keys()
    with torch.no_grad():
        assert torch.equal(model(x), expected)


# --- NVlabs' bias_act (stylegan2-ada-pytorch, stylegan3) -----------------------------------------


class _Spec(types.SimpleNamespace):
    pass


def _stylegan_stand_in() -> types.ModuleType:
    """torch_utils.ops.bias_act's interface: activation_funcs with each activation's default alpha and
    gain, and bias_act(x, b, dim, act, alpha, gain, clamp, impl), whose reference path adds b along
    dim, applies the activation, multiplies by gain (when not 1) and clamps to [-clamp, clamp] (clamp
    None or negative: no clamp); impl="cuda" needs the compiled plugin."""
    module = types.ModuleType("torch_utils.ops.bias_act")
    funcs = {
        "linear": lambda x, alpha: x,
        "relu": lambda x, alpha: torch.nn.functional.relu(x),
        "lrelu": lambda x, alpha: torch.nn.functional.leaky_relu(x, alpha),
        "tanh": lambda x, alpha: torch.tanh(x),
    }
    defaults = {"linear": (0.0, 1.0), "relu": (0.0, SQRT_2), "lrelu": (0.2, SQRT_2), "tanh": (0.0, 1.0)}
    module.activation_funcs = {
        name: _Spec(func=funcs[name], def_alpha=defaults[name][0], def_gain=defaults[name][1]) for name in funcs
    }
    module.calls = []

    def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="cuda"):
        module.calls.append((act, impl))
        if impl == "cuda":
            raise RuntimeError("the bias_act plugin could not be built")
        spec = module.activation_funcs[act]
        alpha = float(alpha if alpha is not None else spec.def_alpha)
        gain = float(gain if gain is not None else spec.def_gain)
        clamp = float(clamp if clamp is not None else -1)
        if b is not None:
            x = x + b.reshape([-1 if i == dim else 1 for i in range(x.dim())])
        x = spec.func(x, alpha)
        if gain != 1:
            x = x * gain
        if clamp >= 0:
            x = x.clamp(-clamp, clamp)
        return x

    module.bias_act = bias_act
    return module


@pytest.fixture
def stylegan(monkeypatch):
    module = _stylegan_stand_in()
    monkeypatch.setitem(sys.modules, "torch_utils.ops.bias_act", module)
    return module


@pytest.mark.parametrize(
    "act, alpha, gain, clamp, dim",
    [
        ("lrelu", None, None, None, 1),
        ("lrelu", 0.3, 1.0, 256.0, 1),
        ("relu", None, None, 0.5, 2),
        ("linear", None, 2.0, None, 0),
    ],
)
def test_stylegan_bias_act_runs_on_actx(stylegan, act, alpha, gain, clamp, dim):
    reference = stylegan.bias_act
    compat.install("stylegan")
    compat.install("stylegan")  # again: still one layer over NVlabs' function
    assert stylegan.bias_act._actx_original is reference
    x = make_input(3, 4, 5, dtype=torch.float32).requires_grad_()
    b = torch.randn(x.shape[dim], requires_grad=True)
    y = stylegan.bias_act(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    assert y.grad_fn.name().startswith("actx::BiasLeakyRelu")
    expected = reference(x, b, dim, act, alpha, gain, clamp, impl="ref")
    assert torch.equal(y, expected)
    grads = torch.autograd.grad((y * y).sum(), (x, b))
    torch.testing.assert_close(grads, torch.autograd.grad((expected * expected).sum(), (x, b)))


def test_stylegan_other_activations_take_nvlabs_reference_path(stylegan):
    compat.install("stylegan")
    x = torch.randn(2, 3)
    assert torch.equal(stylegan.bias_act(x, act="tanh"), torch.tanh(x))
    assert stylegan.calls[-1] == ("tanh", "ref")


def test_install_names_what_it_serves():
    with pytest.raises(ValueError, match=r"expected one of \['basicsr', 'mmcv', 'stylegan'\], got 'gfpgan'"):
        compat.install("gfpgan")


def test_install_says_which_module_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_utils", None)  # an import of it fails
    with pytest.raises(ImportError, match=r"install\('stylegan'\): cannot import torch_utils.ops.bias_act"):
        compat.install("stylegan")


@pytest.mark.parametrize("act, grad, match", [(2, 0, "act 1 .* or 3"), (3, 2, "grad 0 .* or 1")])
def test_extension_arguments_are_checked(act, grad, match):
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match=match):
        compat.FusedBiasActExtension.fused_bias_act(x, x.new_empty(0), x.new_empty(0), act, grad, 0.2, 1.0)
