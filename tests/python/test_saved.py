"""What autograd keeps for the backward instead of the input (docs/memory.md).

On the CPU, leaky_relu keeps the sign mask of its input alone; prelu its output, its weight and one
bit per element: parity bits (positive weights; test_parity.py) or the sign mask (float32/float64,
weights in range). The switch (torch_ext.backward_masks) brings back the input. Gradients stay
torch's: bit for bit for the input, to summation order for the prelu weight.
"""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from test_ops import capability  # noqa: F401  (the fixture: once per CPU instruction set)
from torch.func import grad, vmap

import torch_ext

from benchmark_memory import make_network, saved_bytes
from samples import (
    DTYPES,
    SLOPES,
    actx_operators,
    assert_same_values,
    assert_sum_close,
    bits_reference,
    generator,
    leaky_relu_samples,
    make_values,
    prelu_samples,
    saved_by,
    weight_grad_magnitude,
    weight_grad_reference,
)

A = torch.ops.actx
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def mask_reference(x: torch.Tensor) -> torch.Tensor:
    """Bit k (bit k % 8 of byte k // 8): x > 0 for the element at offset k of empty_like(x)."""
    return bits_reference(x > 0, x)


def grad_input_reference(x, g, w):
    """x > 0 ? g : w * g, in the compute type, rounded once (actx's and torch's rule)."""
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.where(x > 0, g.to(compute), w.to(compute) * g.to(compute)).to(g.dtype)


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# ---- leaky_relu: the sign mask ----


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_masks_are_the_sign_of_the_input(dtype):
    g = generator(40)
    for x, name in leaky_relu_samples(dtype, g):
        out, mask = A._leaky_relu_with_mask(x, 0.1)
        assert mask.dtype == torch.uint8 and mask.shape == ((x.numel() + 7) // 8,), name
        assert torch.equal(mask, mask_reference(x)), name
        assert_same_values(out, A.leaky_relu(x, 0.1))


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_keeps_only_the_mask_and_its_gradient_is_torchs(dtype):
    g = generator(41)
    for slope in SLOPES:
        for x, name in leaky_relu_samples(dtype, g):
            x.requires_grad_()
            out, saved = saved_by(lambda: A.leaky_relu(x, slope))  # noqa: B023
            assert len(saved) == 1 and saved[0].dtype == torch.uint8, name
            assert saved[0].numel() == (x.numel() + 7) // 8, name
            assert out.grad_fn.name() == "actx::LeakyReluBackwardFromMask"
            grad_out = make_values(x.shape, dtype, g, specials=False)
            (actual,) = torch.autograd.grad(out, x, grad_out)
            (expected,) = torch.autograd.grad(F.leaky_relu(x, slope), x, grad_out)
            assert_same_values(actual, expected)


def test_leaky_relu_output_may_be_modified_in_place_as_with_torch():
    # The reason leaky_relu keeps the mask and not its output (docs/memory.md).
    x = torch.randn(4, 8, requires_grad=True)
    y = A.leaky_relu(x, 0.1)
    y.add_(1)
    (actual,) = torch.autograd.grad(y.sum(), x)
    (expected,) = torch.autograd.grad(F.leaky_relu(x, 0.1).add_(1).sum(), x)
    assert_same_values(actual, expected)


def test_gradients_in_another_layout_meet_the_mask():
    # The backward lays the incoming gradient out as the output before reading the bits.
    g = generator(42)
    x = make_values((2, 8, 5, 3), torch.float32, g).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad_out = make_values((3, 5, 8, 2), torch.float32, g).permute(3, 2, 1, 0)  # another layout
    (actual,) = torch.autograd.grad(A.leaky_relu(x, 0.2), x, grad_out)
    assert_same_values(actual, torch.ops.aten.leaky_relu_backward(grad_out, x.detach(), 0.2, False))
    w = torch.rand(8, generator=g) + 0.1
    y, mask = A._prelu_with_mask(x.detach(), w)
    grad_x, _ = A._prelu_backward_from_mask(grad_out, mask, y, w)
    assert grad_x.stride() == y.stride()
    assert_same_values(grad_x, A.prelu_backward(grad_out, x.detach(), w)[0])


# ---- prelu: its output, weight and one bit per element ----


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_masks_are_the_sign_of_the_input(dtype):
    g = generator(40)
    for s in prelu_samples(dtype, g):
        out, mask = A._prelu_with_mask(s.input, s.weight)
        assert torch.equal(mask, mask_reference(s.input)), s.name
        assert_same_values(out, A.prelu(s.input, s.weight))


def prelu_keeps(x: torch.Tensor, w: torch.Tensor) -> str:
    """What prelu's autograd node keeps beside the weight (docs/memory.md)."""
    if x.dtype != torch.float64 and bool(((w > 0) & w.isfinite()).all()):
        return "parity" if bool(A._prelu_with_parity(x, w)[2]) else "input"
    if x.dtype in (torch.float32, torch.float64) and bool(((w.abs() >= 2**-20) & (w.abs() <= 2**20)).all()):
        return "mask"
    return "input"


NODE_NAMES = {
    "parity": "actx::PreluBackwardFromParity",
    "mask": "actx::PreluBackwardFromMask",
    "input": "actx::PreluBackward",
}


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights", ["mixed", "positive"])
@pytest.mark.parametrize("specials", [True, False], ids=["specials", "plain"])
def test_prelu_keeps_output_and_bits(dtype, weights, specials):
    g = generator(43)
    kinds = set()
    for s in prelu_samples(dtype, g, specials=specials):
        x = s.input.detach().requires_grad_()
        w = s.weight.detach()
        w = (w.abs() + 0.01 if weights == "positive" else w).requires_grad_()
        kind = prelu_keeps(s.input, w.detach())
        kinds.add(kind)
        out, saved = saved_by(lambda: A.prelu(x, w))  # noqa: B023
        assert out.grad_fn.name() == NODE_NAMES[kind], s.name
        if kind == "input":
            assert len(saved) == 2 and saved[0] is x, s.name
        else:
            assert len(saved) == 3, s.name
            assert same_storage(saved[0], out), s.name
            assert saved[1].dtype == torch.uint8 and saved[2] is w, s.name
        grad_out = make_values(x.shape, dtype, g, specials=False)
        grad_x, grad_w = torch.autograd.grad(out, (x, w), grad_out)
        assert_same_values(grad_x, grad_input_reference(s.input, grad_out, w.detach().reshape(s.weight_view)))
        assert_sum_close(
            grad_w,
            weight_grad_reference(s.input, grad_out, s.weight_view, w.shape).to(w.dtype),
            weight_grad_magnitude(s.input, grad_out, s.weight_view, w.shape),
        )
    if weights == "positive" and dtype != torch.float64 and not specials:
        assert "parity" in kinds
    if weights == "mixed" and dtype in (torch.float32, torch.float64):
        assert "mask" in kinds


@pytest.mark.parametrize(
    "case",
    [
        "zero weight",
        "nan weight",
        "inf weight",
        "negative tiny weight",
        "negative huge weight",
        "float16 negative weight",
        "bfloat16 negative weight",
        "float16 subnormal output",
        "switched off",
    ],
)
def test_prelu_keeps_its_input_where_the_output_cannot_stand_for_it(case):
    g = generator(44)
    dtype = torch.float16 if "float16" in case else torch.bfloat16 if "bfloat16" in case else torch.float32
    x = make_values((2, 4, 3, 5), dtype, g, specials=False)
    if case == "float16 subnormal output":
        x[0, 0, 0, 0] = -1e-4  # times 0.25: below float16's smallest normal, rounded to fewer bits
    x.requires_grad_()
    w = torch.tensor([0.25, 0.5, 0.1, 0.3], dtype=dtype)
    w[1] = {"zero weight": 0.0, "nan weight": float("nan"), "inf weight": float("inf")}.get(case, w[1])
    w[2] = {"negative tiny weight": -(2.0**-21), "negative huge weight": -(2.0**21)}.get(case, w[2])
    if "negative weight" in case:
        w[3] = -0.3
    w.requires_grad_()
    with torch_ext.backward_masks(case != "switched off"):
        out, saved = saved_by(lambda: A.prelu(x, w))
    assert len(saved) == 2 and saved[0] is x and saved[1] is w
    assert out.grad_fn.name() == "actx::PreluBackward"
    grad_out = make_values(x.shape, dtype, g, specials=False)
    actual = torch.autograd.grad(out, (x, w), grad_out)
    expected = torch.autograd.grad(F.prelu(x, w), (x, w), grad_out)
    assert_same_values(actual[0], expected[0])
    torch.testing.assert_close(actual[1], expected[1], equal_nan=True)


def test_prelu_recovered_weight_gradient_is_within_torchs_float32_error():
    # The decision behind float32/float64 only: against float64, the weight gradient recovered
    # from the output is no less exact than torch's own float32 one.
    g = generator(45)
    x = make_values((8, 16, 12, 12), torch.float32, g, specials=False).requires_grad_()
    w = (torch.rand(16, generator=g) * 0.5 + 0.01).requires_grad_()
    grad_out = make_values(x.shape, torch.float32, g, specials=False)
    (actx_w,) = torch.autograd.grad(A.prelu(x, w), w, grad_out)
    (torch_w,) = torch.autograd.grad(F.prelu(x, w), w, grad_out)
    xd, wd = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    (exact,) = torch.autograd.grad(F.prelu(xd, wd), wd, grad_out.double())
    scale = exact.abs().max()
    assert (actx_w.double() - exact).abs().max() <= 2 * (torch_w.double() - exact).abs().max() + 1e-6 * scale


def test_double_backward_and_forward_over_reverse_on_every_path():
    g = generator(46)
    x = make_values((2, 3, 4), torch.float64, g, away_from_zero=True).requires_grad_()
    w = (torch.rand(3, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    for masks in (True, False):
        with torch_ext.backward_masks(masks):
            assert torch.autograd.gradgradcheck(A.prelu, (x, w), check_fwd_over_rev=True)
            for slope in (-0.3, 0.2):
                assert torch.autograd.gradgradcheck(
                    lambda t: A.leaky_relu(t, slope),  # noqa: B023
                    (x,),
                    check_fwd_over_rev=True,
                )


def test_switch():
    x = torch.randn(3, 8, requires_grad=True)
    assert torch_ext.backward_masks_enabled()
    with torch_ext.backward_masks(False):
        assert not torch_ext.backward_masks_enabled()
        out, saved = saved_by(lambda: A.leaky_relu(x, 0.1))
        assert len(saved) == 1 and saved[0] is x and out.grad_fn.name() == "actx::LeakyReluBackward"
    assert torch_ext.backward_masks_enabled()
    assert torch_ext.set_backward_masks(True) is True
    with pytest.raises(TypeError, match="expected `enabled` to be a bool"):
        torch_ext.set_backward_masks(0)


def test_environment_variable_switches_masks_off():
    code = "import torch_ext; print(torch_ext.backward_masks_enabled())"
    env = dict(os.environ, ACTX_BACKWARD_MASKS="0")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_no_bits_without_a_backward():
    x = torch.randn(4, 64)
    w = torch.rand(1, requires_grad=True)
    with torch.profiler.profile() as prof:
        A.leaky_relu(x, 0.1)  # x needs no gradient
        A.prelu(x, w.detach())
        with torch.no_grad():
            A.leaky_relu(x.requires_grad_(), 0.1)
            A.prelu(x, w)
    names = {e.name for e in prof.events()}
    assert "actx::leaky_relu" in names and "actx::prelu" in names
    assert not {f"actx::{name}" for name in actx_operators(public=False)} & names


def test_bit_arguments_are_checked():
    g = torch.randn(4, 5)
    _, mask = A._leaky_relu_with_mask(torch.randn(4, 5), 0.1)
    with pytest.raises(RuntimeError, match="expected `mask` to be a dense uint8 tensor"):
        A._leaky_relu_backward_from_mask(g, mask.float(), 0.1)
    with pytest.raises(RuntimeError, match=r"one bit per element of `grad_output` \(3 bytes for 20 elements\)"):
        A._leaky_relu_backward_from_mask(g, mask[:2], 0.1)
    with pytest.raises(RuntimeError, match="expected `grad_output` to be dense"):
        A._leaky_relu_backward_from_mask(torch.randn(4, 10)[:, ::2], mask, 0.1)
    y, mask = A._prelu_with_mask(torch.randn(4, 5), torch.rand(5))
    with pytest.raises(RuntimeError, match="expected `mask` to be a dense uint8 tensor"):
        A._prelu_backward_from_mask(g, mask.float(), y, torch.rand(5))
    with pytest.raises(RuntimeError, match=r"one bit per element of `grad_output` \(3 bytes for 20 elements\)"):
        A._prelu_backward_from_mask(g, mask[:2], y, torch.rand(5))
    with pytest.raises(RuntimeError, match="expected `mask` to be 1-D"):
        A._prelu_backward_from_mask(g, mask.view(1, -1), y, torch.rand(5))
    with pytest.raises(RuntimeError, match="expected `weight` to have 1 element or one per channel"):
        A._prelu_backward_from_mask(g, mask, y, torch.rand(3))


# ---- Transforms ----


@pytest.mark.parametrize("kind", ["parity", "mask", "leaky_relu"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_batched_gradients_through_the_bits(kind, layout):
    # torch.autograd.grad(..., is_grads_batched=True) (jacobians, gradcheck's batched checks) runs
    # a node's formula under vmap: the one place where a vmapped program meets a private operator.
    g = generator(47)
    x = make_values((3, 4, 5, 2), torch.float32, g, specials=False)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.rand(4, generator=g) + 0.1
    if kind == "mask":
        w[1] = -0.5
    w.requires_grad_()
    if kind == "leaky_relu":
        y, inputs = A.leaky_relu(x, 0.1), (x,)
        assert y.grad_fn.name() == "actx::LeakyReluBackwardFromMask"
    else:
        y, inputs = A.prelu(x, w), (x, w)
        assert y.grad_fn.name() == NODE_NAMES[kind]
    vs = make_values((6, 3, 4, 5, 2), torch.float32, g, specials=False)
    batched = torch.autograd.grad(y, inputs, vs, is_grads_batched=True, retain_graph=True)
    for b in range(vs.shape[0]):
        one = torch.autograd.grad(y, inputs, vs[b], retain_graph=True)
        for batched_grad, sample_grad in zip(batched, one, strict=True):
            assert_same_values(batched_grad[b], sample_grad)
    # A rule for the backward operators only: the forward ones never run under vmap.
    for name in actx_operators(public=False):
        expected = "backward" in name
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"actx::{name}", "FuncTorchBatched") == expected, name


def test_per_sample_gradients_keep_the_input():
    # vmap(grad(...)): the autograd kernels run on functorch's tensors, whose values they do not
    # read; they keep the input.
    g = generator(48)
    x = make_values((6, 3, 5), torch.float64, g, specials=False)
    w = torch.rand(5, generator=g, dtype=torch.float64) + 0.1  # a sample's channels: dim 1

    def loss(w, x):
        return (A.leaky_relu(A.prelu(x, w), 0.2) ** 2).sum()

    def torch_loss(w, x):
        return (F.leaky_relu(F.prelu(x, w), 0.2) ** 2).sum()

    actual = vmap(grad(loss), in_dims=(None, 0))(w, x)
    expected = vmap(grad(torch_loss), in_dims=(None, 0))(w, x)
    torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("activation", ["leaky_relu", "prelu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_conv_bn_networks_keep_at_most_0_72_of_torchs_bytes(activation, dtype):
    x = torch.randn(2, 32, 12, 12, dtype=dtype, requires_grad=True)
    reference = make_network(activation, actx=False).to(dtype)
    kept = {}
    for name, actx, masks in [("torch", False, True), ("actx", True, True), ("actx inputs", True, False)]:
        model = make_network(activation, actx).to(dtype)
        model.load_state_dict(reference.state_dict())
        with torch_ext.backward_masks(masks):
            kept[name] = saved_bytes(model, x)
    assert kept["actx inputs"] == kept["torch"]
    assert kept["actx"] <= 0.72 * kept["torch"]


@CUDA
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_keeps_what_torch_keeps_and_its_bits_are_the_cpus(dtype):
    g = generator(50)
    for x, name in leaky_relu_samples(dtype, g):
        x = x.cuda().requires_grad_()
        out, saved = saved_by(lambda: A.leaky_relu(x, 0.1))  # noqa: B023
        assert out.grad_fn.name() == "actx::LeakyReluBackward", name
        out, mask = A._leaky_relu_with_mask(x.detach(), 0.1)
        assert torch.equal(mask, mask_reference(x.detach())), name
        grad_out = make_values(x.shape, dtype, g, specials=False).cuda()
        grad_x = A._leaky_relu_backward_from_mask(grad_out.as_strided(out.shape, out.stride()), mask, 0.1)
        assert_same_values(grad_x, torch.ops.aten.leaky_relu_backward(grad_out, x.detach(), 0.1, False))
    for s in prelu_samples(dtype, g):
        x, w = s.input.cuda(), s.weight.cuda()
        # Until a fused CUDA kernel has been measured: the input (docs/memory.md).
        out, saved = saved_by(lambda: A.prelu(x.detach().requires_grad_(), w))  # noqa: B023
        assert out.grad_fn.name() == "actx::PreluBackward", s.name
        # The private operators' ATen path, which ACTX_CUDA_BACKWARD_BITS=1 turns on.
        y, mask = A._prelu_with_mask(x, w)
        assert torch.equal(mask, mask_reference(x)), s.name
        grad_out = make_values(x.shape, dtype, g, specials=False).cuda()
        grad_x, _ = A._prelu_backward_from_mask(grad_out, mask, y, w)
        assert_same_values(grad_x, grad_input_reference(x, grad_out, w.reshape(s.weight_view)))


def _bit_operators(x, w, g):
    y, mask = A._prelu_with_mask(x * 2, w)
    z, zmask = A._leaky_relu_with_mask(y, 0.1)
    gy = A._leaky_relu_backward_from_mask(g * 3, zmask, 0.1)
    return (z, mask, zmask, *A._prelu_backward_from_mask(gy, mask, y, w))


def test_compiled_private_operators_equal_eager():
    # Only a program that calls them by name meets them compiled; Inductor calls their kernels.
    g = generator(51)
    x = make_values((2, 8, 5, 4), torch.float32, g).contiguous(memory_format=torch.channels_last)
    w = torch.rand(8, generator=g) + 0.1
    grad_out = make_values(x.shape, torch.float32, g, specials=False)
    torch._dynamo.reset()
    compiled = torch.compile(_bit_operators, fullgraph=True)(x, w, grad_out)
    eager = _bit_operators(x, w, grad_out)
    for actual, expected in zip(compiled[:-1], eager[:-1], strict=True):
        if actual.dtype == torch.uint8:
            assert torch.equal(actual, expected)
        else:
            assert_same_values(actual, expected)
    torch.testing.assert_close(compiled[-1], eager[-1], equal_nan=True)


def test_traced_graphs_keep_the_input():
    # Under torch.compile the autograd kernels keep the input and let Inductor's partitioner
    # decide what the compiled graph saves (docs/memory.md).
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def keep(gm, inputs):
        graphs.append(gm.code)
        return make_boxed_func(gm)

    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3), torch_ext.nn.LeakyReLU(0.1), torch_ext.nn.PReLU(4))
    compiled = torch.compile(model, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep))
    compiled(torch.randn(2, 4, 8, 8, requires_grad=True)).sum().backward()
    code = "\n".join(graphs)
    assert "actx.leaky_relu.default" in code and "actx.leaky_relu_backward.default" in code
    assert "actx.prelu_backward.default" in code
    assert not any(f"actx.{name}." in code for name in actx_operators(public=False))
