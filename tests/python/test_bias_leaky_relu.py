"""bias_leaky_relu: StyleGAN2's fused bias + leaky ReLU + gain (+ NVlabs' clamp), against the
composition add -> leaky_relu -> mul -> clamp computed in float and rounded once (values bit for
bit), its gradients (every slope and gain sign, the clamp's zero), what autograd keeps, higher
derivatives, torch.func, and the ecosystem (compile, export, ONNX, TorchScript)."""

import io
import math

import pytest
import torch
from test_ops import capability  # noqa: F401  (the fixture: once per CPU instruction set)
from torch.func import grad, jacrev, jvp, vmap

import torch_ext

from samples import (
    BIAS_SETTINGS,
    DTYPES,
    assert_same_values,
    assert_sum_close,
    bias_leaky_relu_grads_reference,
    bias_leaky_relu_reference,
    bias_leaky_relu_samples,
    generator,
    make_values,
    saved_by,
)

A = torch.ops.actx
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def composition(x, bias, negative_slope, gain, clamp, dim):
    """What StyleGAN and GFPGAN users run when the extension does not build (in x's dtype)."""
    if bias is not None:
        shape = [1] * x.dim()
        shape[dim % x.dim()] = -1
        x = x + bias.reshape(shape)
    y = torch.nn.functional.leaky_relu(x, negative_slope) * gain
    return y if clamp is None else y.clamp(-clamp, clamp)


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", DTYPES)
def test_values_are_the_composition_computed_in_float(dtype):
    g = generator(70)
    for s in bias_leaky_relu_samples(dtype, g):
        actual = A.bias_leaky_relu(*s.args())
        assert actual.stride() == torch.empty_like(s.input).stride(), s.name
        assert_same_values(actual, bias_leaky_relu_reference(*s.args()))


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_zero_clamp_keeps_the_compositions_signed_zeros_and_nans(dtype):
    # clamp(v, -0.0, 0.0) leaves only zeros and NaN: v itself where v is a zero of either sign
    # (neither bound compares below or above it) or NaN, else the bound's zero.
    g = generator(78)
    for s in bias_leaky_relu_samples(dtype, g):
        x, bias, slope, gain, _, dim = s.args()
        args = (x, bias, slope, gain, 0.0, dim)
        assert_same_values(A.bias_leaky_relu(*args), bias_leaky_relu_reference(*args))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_float32_bias_with_a_half_input(dtype):
    g = generator(71)
    for s in bias_leaky_relu_samples(dtype, g, bias_dtype=torch.float32):
        assert_same_values(A.bias_leaky_relu(*s.args()), bias_leaky_relu_reference(*s.args()))
        if s.bias is not None:
            x = s.input.detach().requires_grad_()
            b = s.bias.detach().requires_grad_()
            y = A.bias_leaky_relu(x, b, s.negative_slope, s.gain, s.clamp, s.dim)
            (gb,) = torch.autograd.grad(y, b, torch.ones_like(y))
            assert gb.dtype == torch.float32


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masks", [True, False], ids=["bits", "input"])
def test_gradients_are_the_compositions_for_every_slope_and_gain(dtype, masks):
    g = generator(72)
    for s in bias_leaky_relu_samples(dtype, g):
        x = s.input.detach().requires_grad_()
        b = None if s.bias is None else s.bias.detach().requires_grad_()
        with torch_ext.backward_masks(masks):
            y = A.bias_leaky_relu(x, b, s.negative_slope, s.gain, s.clamp, s.dim)
        grad_out = make_values(x.shape, dtype, g, specials=False)
        inputs = (x,) if b is None else (x, b)
        actual = torch.autograd.grad(y, inputs, grad_out)
        grad_input, grad_bias, magnitude = bias_leaky_relu_grads_reference(s, grad_out)
        assert_same_values(actual[0], grad_input)
        if b is not None:
            assert_sum_close(actual[1], grad_bias.to(b.dtype), magnitude)


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("masks", [True, False], ids=["bits", "input"])
def test_special_values_get_the_gradient_of_torchs_composition(masks):
    # NaN, +-inf and zeros through add -> leaky_relu -> mul -> clamp with torch's own backward: a
    # NaN is not within the clamp's bounds, so torch.clamp passes it no gradient. At a bound
    # (the zero clamp's +-0) torch 2.15 passes none either; 2.11-2.14 passed it, not actx.
    specials = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-40, -1e-40, 1.0, -1.0, 3.0, -3.0]
    x = torch.tensor(specials * 3, dtype=torch.float64).reshape(1, 3, -1)
    b = torch.tensor([0.0, 0.5, -math.inf], dtype=torch.float64)
    g = torch.linspace(-2.0, 2.0, x.numel(), dtype=torch.float64).reshape(x.shape)
    for slope, gain, clamp in BIAS_SETTINGS + [(0.2, 2**0.5, 0.0)]:
        xt, bt = x.clone().requires_grad_(), b.clone().requires_grad_()
        expected = torch.autograd.grad(composition(xt, bt, slope, gain, clamp, 1), (xt, bt), g)
        if clamp is not None:
            v = composition(x, b, slope, gain, None, 1)
            grad_input = torch.where(v.abs() == clamp, 0.0, expected[0])
            expected = (grad_input, grad_input.sum((0, 2)))  # dL/db sums dL/dx
        xa, ba = x.clone().requires_grad_(), b.clone().requires_grad_()
        with torch_ext.backward_masks(masks):
            y = A.bias_leaky_relu(xa, ba, slope, gain, clamp, 1)
        grad_input, grad_bias = torch.autograd.grad(y, (xa, ba), g)
        # Equal values (the chain through a negative gain gives torch's zeros a sign; actx's are +0).
        torch.testing.assert_close(grad_input, expected[0], rtol=0, atol=0, equal_nan=True)
        assert_sum_close(grad_bias, expected[1], expected[0].abs().sum((0, 2)))


def test_what_autograd_keeps_is_one_bit_per_element_two_with_a_clamp():
    x = torch.randn(4, 8, 6, 6, requires_grad=True)
    b = torch.zeros(8, requires_grad=True)
    for clamp, bits in ((None, 1), (0.5, 2)):
        y, saved = saved_by(lambda: A.bias_leaky_relu(x, b, 0.2, 2**0.5, clamp, 1))  # noqa: B023
        assert y.grad_fn.name() == "actx::BiasLeakyReluBackwardFromBits"
        kept = sum(t.numel() * t.element_size() for t in saved if t is not b)
        assert kept == bits * x.numel() // 8, (clamp, kept)
        assert not any(t.untyped_storage().data_ptr() == y.untyped_storage().data_ptr() for t in saved)
    with torch_ext.backward_masks(False):
        y, saved = saved_by(lambda: A.bias_leaky_relu(x, b, 0.2, 2**0.5, None, 1))
    assert y.grad_fn.name() == "actx::BiasLeakyReluBackward" and saved[0] is x


@pytest.mark.parametrize("setting", BIAS_SETTINGS, ids=str)
@pytest.mark.parametrize("masks", [True, False], ids=["bits", "input"])
def test_gradcheck_gradgradcheck_and_forward_mode(setting, masks):
    slope, gain, clamp = setting
    g = generator(73)
    x = make_values((2, 3, 4), torch.float64, g, away_from_zero=True).requires_grad_()
    b = (torch.rand(3, generator=g, dtype=torch.float64) * 0.1).requires_grad_()

    def f(x, b):
        return A.bias_leaky_relu(x, b, slope, gain, clamp, 1)

    with torch_ext.backward_masks(masks):
        if clamp is not None:
            # Away from the clamp's kink too.
            x = x.detach().clamp(-0.3 * abs(clamp), 0.3 * abs(clamp)).requires_grad_() if gain else x
        assert torch.autograd.gradcheck(f, (x, b), check_forward_ad=True, check_batched_grad=True)
        assert torch.autograd.gradgradcheck(f, (x, b), check_fwd_over_rev=True, check_batched_grad=True)


def test_r1_penalty_second_order_equals_the_compositions():
    # StyleGAN2's R1: the gradient of the discriminator's output wrt its input, squared, backpropagated
    # to the weights (double backward through the activation).
    g = generator(74)
    x = make_values((4, 3, 8, 8), torch.float64, g, specials=False).requires_grad_()
    conv = torch.nn.Conv2d(3, 6, 3, dtype=torch.float64)
    bias = torch.nn.Parameter(torch.randn(6, dtype=torch.float64) * 0.1)
    results = []
    for act in (
        lambda t: torch_ext.bias_leaky_relu(t, bias, 0.2, 2**0.5),
        lambda t: composition(t, bias, 0.2, 2**0.5, None, 1),
    ):
        out = act(conv(x)).sum()
        (gx,) = torch.autograd.grad(out, x, create_graph=True)
        penalty = gx.square().sum()
        # The bias enters dD/dx only through the branches: no gradient (None) either way.
        results.append(torch.autograd.grad(penalty, (conv.weight, bias, x), allow_unused=True))
    for a, e in zip(*results, strict=True):
        if a is None or e is None:  # no gradient: None, or zeros
            assert all(t is None or not t.any() for t in (a, e))
        else:
            torch.testing.assert_close(a, e)


def test_torch_func_and_vmap():
    g = generator(75)
    x = make_values((5, 3, 4), torch.float64, g, specials=False)
    b = torch.randn(3, dtype=torch.float64, generator=g)

    # dim -2: the channels of a batch and of one sample alike.
    def f(b, x):
        return torch_ext.bias_leaky_relu(x, b, 0.2, 1.5, 0.8, dim=-2).square().sum()

    def f_ref(b, x):
        return composition(x, b, 0.2, 1.5, 0.8, -2).square().sum()

    torch.testing.assert_close(grad(f)(b, x), grad(f_ref)(b, x))
    torch.testing.assert_close(jacrev(f, argnums=1)(b, x), jacrev(f_ref, argnums=1)(b, x))
    v = torch.randn_like(x)
    torch.testing.assert_close(jvp(lambda t: f(b, t), (x,), (v,)), jvp(lambda t: f_ref(b, t), (x,), (v,)))
    # Per-sample gradients: one bias for the batch, each sample's sum.
    torch.testing.assert_close(vmap(grad(f), in_dims=(None, 0))(b, x), vmap(grad(f_ref), in_dims=(None, 0))(b, x))
    # vmap of the operators, batched in x (a batch dim elsewhere) or in the bias.
    xs = x.movedim(0, 2).contiguous()
    batched = vmap(lambda t: A.bias_leaky_relu(t, b, 0.2, 1.5, None, -2), in_dims=2)(xs)
    for k in range(x.shape[0]):
        assert_same_values(batched[k], A.bias_leaky_relu(x[k], b, 0.2, 1.5, None, -2))
    bs = torch.randn(4, 3, dtype=torch.float64, generator=g)
    per_bias = vmap(lambda c: A.bias_leaky_relu(x[0], c, 0.2, 1.5, None, 0))(bs)
    for k in range(bs.shape[0]):
        assert_same_values(per_bias[k], A.bias_leaky_relu(x[0], bs[k], 0.2, 1.5, None, 0))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "opaque"])
def test_compiled_equals_eager(fused):
    g = generator(76)
    # Special values (NaN, +-inf, zeros) and, in channel 0 (no bias there), 2 * 0.25 * 2: an output
    # at the clamp itself, which passes no gradient.
    x = make_values((2, 8, 5, 4), torch.float32, g).contiguous(memory_format=torch.channels_last)
    x[:, 0, 0] = 0.25
    b = torch.randn(8, generator=g)
    b[0] = 0.0
    w = make_values(x.shape, torch.float32, g, specials=False)

    def f(x, b):
        return (torch_ext.bias_leaky_relu(x * 2, b, 0.2, 2.0, 1.0) * w).sum()

    xs, bs = (t.clone().requires_grad_() for t in (x, b))
    xc, bc = (t.clone().requires_grad_() for t in (x, b))
    torch._dynamo.reset()
    with torch_ext.inductor.fusion(fused):
        compiled = torch.compile(f, fullgraph=True)
        out_c = compiled(xc, bc)
        out_c.backward()
    out_e = f(xs, bs)
    out_e.backward()
    torch.testing.assert_close(out_c, out_e, equal_nan=True)
    assert_same_values(xc.grad, xs.grad)
    assert bool((xs.grad[:, 0, 0] == 0).all())
    torch.testing.assert_close(bc.grad, bs.grad)


def test_export_torchscript_and_onnx():
    import onnxruntime
    from test_onnx import export as onnx_export
    from test_onnx import op_types

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.act = torch_ext.nn.FusedLeakyReLU(4)

        def forward(self, x):
            return self.act(self.conv(x))

    model = Block().eval()
    with torch.no_grad():
        model.act.bias.copy_(torch.randn(4))
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    exported = torch.export.export(model, (x,))
    assert "actx.bias_leaky_relu" in str(exported.graph)
    assert_same_values(exported.module()(x), expected)
    scripted = torch.jit.script(model)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    assert_same_values(torch.jit.load(buffer)(x), expected)
    for dynamo in (True, False):
        proto = onnx_export(model, (x,), dynamo)
        assert {"Add", "LeakyRelu", "Mul"} <= set(op_types(proto))
        session = onnxruntime.InferenceSession(proto.SerializeToString())
        (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        # The convolution in onnxruntime may sum in another order; the activation adds nothing.
        torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-6, atol=1e-6)


def test_module_state_dict_is_stylegan2s():
    m = torch_ext.nn.FusedLeakyReLU(5, negative_slope=0.1, scale=1.5)
    assert list(m.state_dict()) == ["bias"] and m.state_dict()["bias"].shape == (5,)
    assert torch.equal(m.bias, torch.zeros(5))
    m.load_state_dict({"bias": torch.arange(5.0)})
    x = torch.randn(2, 5, 3)
    assert_same_values(m(x), bias_leaky_relu_reference(x, torch.arange(5.0), 0.1, 1.5, None, 1))
    assert torch_ext.nn.FusedLeakyReLU(5, bias=False).bias is None
    assert "FusedLeakyReLU(5, negative_slope=0.1, scale=1.5, bias=True)" == repr(m)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: A.bias_leaky_relu(torch.randn(2, 3), torch.randn(4)), r"expected `bias` to have self.size\(dim\) = 3"),
        (lambda: A.bias_leaky_relu(torch.randn(2, 3), torch.randn(3, 1)), "expected `bias` to be 1-D"),
        (lambda: A.bias_leaky_relu(torch.randn(2, 3), torch.randn(3), dim=2), "expected `dim` to name a dim"),
        (lambda: A.bias_leaky_relu(torch.randn(2, 3), clamp=-1.0), "expected `clamp` to be None or a number >= 0"),
        (lambda: A.bias_leaky_relu(torch.randn(2, 3), clamp=math.nan), "expected `clamp` to be None or a number >= 0"),
        (lambda: A.bias_leaky_relu(torch.randn(2, 3), gain=1j), "expected `gain` to be a real number"),
        (lambda: A.bias_leaky_relu(torch.randn(2, 3), torch.randn(3).double()), "expected `bias` to have the dtype"),
        (lambda: A.bias_leaky_relu(torch.ones(2, 3, dtype=torch.int32)), "expected `self` to have dtype"),
    ],
)
def test_bad_arguments_are_clear_errors(call, words):
    with pytest.raises(RuntimeError, match=words):
        call()


@CUDA
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_the_cpu(dtype):
    g = generator(77)
    for s in bias_leaky_relu_samples(dtype, g):
        args = [a.cuda() if isinstance(a, torch.Tensor) else a for a in s.args()]
        assert_same_values(A.bias_leaky_relu(*args).cpu(), A.bias_leaky_relu(*s.args()))
        grad_out = make_values(s.input.shape, dtype, g, specials=False)
        gi, gb = A.bias_leaky_relu_backward(grad_out.cuda(), *args)
        gi_c, gb_c = A.bias_leaky_relu_backward(grad_out, *s.args())
        assert_same_values(gi.cpu(), gi_c)
        torch.testing.assert_close(gb.cpu(), gb_c, rtol=1e-3, atol=1e-3)
