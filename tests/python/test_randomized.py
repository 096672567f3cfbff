"""Randomized differential cases, seeded (the same cases every run): random shapes, memory layouts,
dtypes, parameters, weight and bias shapes and dtypes, and thread counts, at every CPU level; each
operator's values bit for bit and its gradients against the references of samples.py. The fixed
tables of the other tests hold the cases these found (a clamp's NaN, errors under autograd)."""

import random

import pytest
import torch
from test_ops import capability  # noqa: F401  (the fixture: once per CPU instruction set)

import torch_ext

from samples import (
    BIAS_SETTINGS,
    DTYPES,
    LAYOUTS,
    SLOPES,
    BiasSample,
    assert_same_values,
    assert_sum_close,
    bias_leaky_relu_grads_reference,
    bias_leaky_relu_reference,
    make_values,
    prelu_grad_input_reference,
    prelu_reference,
    weight_grad_magnitude,
    weight_grad_reference,
)

A = torch.ops.actx
CASES = 40


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def random_shape(rng):
    shape = [rng.choice([1, 2, 3, 5, 8, 17, 33, 64, 65]) for _ in range(rng.randint(1, 5))]
    while torch.Size(shape).numel() > 40000:
        shape[rng.randrange(len(shape))] //= 2
    return tuple(shape)


def random_layout(rng, t):
    """t, or a tensor of the same values laid out otherwise: its dims in a random order in memory,
    or one of samples.LAYOUTS (t where that layout does not apply)."""
    kind = rng.choice(["permuted", *LAYOUTS])
    if kind == "permuted" and t.dim() >= 2:
        order = list(range(t.dim()))
        rng.shuffle(order)
        return t.permute(order).contiguous().permute([order.index(d) for d in range(t.dim())])
    laid_out = LAYOUTS.get(kind, lambda t: None)(t)
    return t if laid_out is None else laid_out


def random_cases(seed):
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(CASES):
        dtype = rng.choice(DTYPES)
        shape = random_shape(rng)
        x = random_layout(rng, make_values(shape, dtype, gen, specials=rng.random() < 0.7))
        grad = make_values(shape, dtype, gen, specials=False)
        half = dtype in (torch.float16, torch.bfloat16)
        param_dtype = torch.float32 if half and rng.random() < 0.4 else dtype
        yield rng, gen, x, grad, param_dtype


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("seed", [1, 2])
def test_random_prelu(seed):
    for rng, gen, x, grad, weight_dtype in random_cases(100 + seed):
        torch.set_num_threads(rng.choice([1, 2]))
        shape = x.shape
        if x.dim() < 2 or rng.random() < 0.3:
            weight_shape, view = (1,), [1] * x.dim()
        elif rng.random() < 0.7:
            weight_shape, view = (shape[1],), [1, shape[1]] + [1] * (x.dim() - 2)
        else:  # numpy-style: one slope per element of a trailing dim
            d = rng.randrange(1, x.dim())
            weight_shape = (shape[d],) + (1,) * (x.dim() - 1 - d)
            weight_shape = (1,) + weight_shape if len(weight_shape) == 1 else weight_shape
            view = [1] * (x.dim() - len(weight_shape)) + list(weight_shape)
        scale = rng.choice([1.0, -1.0, 0.01, 100.0])
        w = (torch.rand(weight_shape, generator=gen, dtype=torch.float64) * scale).to(weight_dtype)
        xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
        y = A.prelu(xr, wr)
        assert_same_values(y, prelu_reference(x, w, view))
        if y.numel() == 0:
            continue
        grad_input, grad_weight = torch.autograd.grad(y, (xr, wr), grad)
        assert_same_values(grad_input, prelu_grad_input_reference(x, grad, w.reshape(view)))
        expected = weight_grad_reference(x, grad, view, weight_shape).to(grad_weight.dtype)
        assert_sum_close(grad_weight, expected, weight_grad_magnitude(x, grad, view, weight_shape))


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("seed", [1, 2])
def test_random_bias_leaky_relu(seed):
    for rng, gen, x, grad, bias_dtype in random_cases(200 + seed):
        torch.set_num_threads(rng.choice([1, 2]))
        slope, gain, clamp = rng.choice(BIAS_SETTINGS)
        dim = rng.randrange(-x.dim(), x.dim())
        bias = torch.randn(x.shape[dim], generator=gen, dtype=torch.float64).to(bias_dtype)
        bias = bias if rng.random() < 0.8 else None
        sample = BiasSample(x, bias, slope, gain, clamp, dim, "random")
        xr = x.detach().requires_grad_()
        br = None if bias is None else bias.detach().requires_grad_()
        y = A.bias_leaky_relu(xr, br, slope, gain, clamp, dim)
        assert_same_values(y, bias_leaky_relu_reference(*sample.args()))
        if y.numel() == 0:
            continue
        grad_input, grad_bias, magnitude = bias_leaky_relu_grads_reference(sample, grad)
        grads = torch.autograd.grad(y, (xr,) if br is None else (xr, br), grad)
        assert_same_values(grads[0], grad_input)
        if br is not None:
            assert_sum_close(grads[1], grad_bias.to(br.dtype), magnitude)


@pytest.mark.usefixtures("capability")
def test_random_leaky_relu_and_in_place():
    for rng, _, x, grad, _ in random_cases(300):
        torch.set_num_threads(rng.choice([1, 2]))
        slope = rng.choice(SLOPES)
        with torch_ext.backward_masks(rng.random() < 0.5):
            xr = x.detach().requires_grad_()
            y = A.leaky_relu(xr, slope)
            inplace_leaf = x.detach().requires_grad_()
            y_ = A.leaky_relu_(inplace_leaf * 1, max(slope, 0.0)) if x.stride().count(0) == 0 else None
        assert_same_values(y, torch.nn.functional.leaky_relu(x, slope))
        if y.numel() == 0:
            continue
        xt = x.detach().requires_grad_()
        (expected,) = torch.autograd.grad(torch.nn.functional.leaky_relu(xt, slope), (xt,), grad)
        assert_same_values(torch.autograd.grad(y, (xr,), grad)[0], expected)
        if y_ is not None:
            xt = x.detach().requires_grad_()
            reference = torch.nn.functional.leaky_relu(xt * 1, max(slope, 0.0))
            assert_same_values(y_, reference)
            (expected,) = torch.autograd.grad(reference, (xt,), grad)
            assert_same_values(torch.autograd.grad(y_, (inplace_leaf,), grad)[0], expected)
