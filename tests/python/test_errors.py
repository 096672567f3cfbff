"""Every bad input gets a RuntimeError that names the argument and what was expected."""

import warnings

import pytest
import torch

import torch_ext  # noqa: F401  (loads the operators)

actx = torch.ops.actx


def x4(dtype=torch.float32):
    return torch.randn(2, 3, 4, 5, dtype=dtype)


def quantized():
    # torch 2.15 deprecates creating quantized tensors; while it has them, actx refuses them with its
    # own error, which this file tests.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="torch.quantize_per_tensor, torch.quantize_per_channel and other quantized tensor creation "
            "functions that produce tensors with dtype torch.quint8, torch.qint8, and torch.qint32 are deprecated",
            category=UserWarning,
        )
        return torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8)


# (description, call, words the message contains)
BAD_INPUTS = [
    (
        "weight count matches neither 1 nor channels",
        lambda: actx.prelu(x4(), torch.rand(4)),
        r"`weight` to have 1 element or one per channel \(self.size\(1\) = 3\), got 4",
    ),
    (
        "1-d input takes one weight",
        lambda: actx.prelu(torch.randn(5), torch.rand(5)),
        r"one per channel \(self.size\(1\) = 1\), got 5",
    ),
    (
        "0-d input takes one weight",
        lambda: actx.prelu(torch.tensor(1.0), torch.rand(2)),
        "a 0-d `self` takes a `weight` of one element",
    ),
    (
        "weight with more dims than input",
        lambda: actx.prelu(torch.randn(3, 4), torch.rand(1, 3, 4)),
        "has more dims than `self`",
    ),
    (
        "weight not broadcastable",
        lambda: actx.prelu(x4(), torch.rand(3, 2, 1)),
        r"does not broadcast to `self`.*expected 1 or 4",
    ),
    (
        "weight that would grow the input",
        lambda: actx.prelu(torch.randn(3, 1), torch.rand(1, 4)),
        "does not broadcast to `self`",
    ),
    (
        "weight dtype mismatch",
        lambda: actx.prelu(x4(), torch.rand(3, dtype=torch.float64)),
        r"`weight` to have the dtype of `self` \(Float\) or float32 for a float16/bfloat16 `self`, got Double",
    ),
    ("half weight with bfloat16 input", lambda: actx.prelu(x4(torch.bfloat16), torch.rand(3).half()), "got Half"),
    ("float64 weight with half input", lambda: actx.prelu(x4(torch.half), torch.rand(3).double()), "got Double"),
    (
        "integer input",
        lambda: actx.leaky_relu(torch.arange(6), 0.1),
        "expected `self` to have dtype float32, float64, float16 or bfloat16, got Long",
    ),
    (
        "bool input",
        lambda: actx.prelu(torch.ones(2, 3, dtype=torch.bool), torch.rand(3)),
        "expected `self` to have dtype .*got Bool",
    ),
    ("complex input", lambda: actx.leaky_relu(torch.randn(4, dtype=torch.complex64), 0.1), "got ComplexFloat"),
    (
        "integer weight",
        lambda: actx.prelu(x4(), torch.ones(3, dtype=torch.int32)),
        "expected `weight` to have dtype .*got Int",
    ),
    (
        "sparse input",
        lambda: actx.leaky_relu(torch.eye(3).to_sparse(), 0.1),
        "expected `self` to be a dense \\(strided\\) tensor, got layout Sparse",
    ),
    (
        "quantized input",
        lambda: actx.leaky_relu(quantized(), 0.1),
        "quantized",
    ),
    ("complex slope", lambda: actx.leaky_relu(torch.randn(4), 1j), "`negative_slope` to be a real number"),
    ("in-place on overlapping memory", lambda: actx.leaky_relu_(torch.randn(3, 1).expand(3, 4), 0.1), "share memory"),
    (
        "in-place on a leaf that requires grad",
        lambda: actx.leaky_relu_(torch.randn(3, requires_grad=True), 0.1),
        "leaf tensor that requires grad",
    ),
    (
        "in-place under autograd with negative slope",
        lambda: actx.leaky_relu_(torch.randn(3, requires_grad=True) * 1, -0.5),
        "needs negative_slope >= 0",
    ),
    (
        "leaky_relu_backward with mismatched shapes",
        lambda: actx.leaky_relu_backward(torch.randn(3), torch.randn(4), 0.1, False),
        r"expected `grad_output` to have the shape of `self` \[4\], got \[3\]",
    ),
    (
        "leaky_relu_backward with mismatched dtypes",
        lambda: actx.leaky_relu_backward(torch.randn(3).double(), torch.randn(3), 0.1, False),
        r"`grad_output` to have the dtype of `self` \(Float\), got Double",
    ),
    (
        "leaky_relu_backward of an in-place result with negative slope",
        lambda: actx.leaky_relu_backward(torch.randn(3), torch.randn(3), -0.1, True),
        "needs negative_slope >= 0",
    ),
    (
        "prelu_backward with mismatched shapes",
        lambda: actx.prelu_backward(torch.randn(2, 3), x4(), torch.rand(3)),
        "expected `grad_output` to have the shape of `self`",
    ),
    ("prelu_backward with a bad weight", lambda: actx.prelu_backward(x4(), x4(), torch.rand(5)), "one per channel"),
    # Without a GPU, the meta device stands in for "another device" (test_cuda.py checks CUDA vs CPU).
    (
        "input and weight on different devices",
        lambda: actx.prelu(x4(), torch.rand(3, device="meta")),
        r"expected `weight` on the same device as `self` \(cpu\), got meta",
    ),
    (
        "grad_output on another device",
        lambda: actx.prelu_backward(torch.empty(2, 3, 4, 5, device="meta"), x4(), torch.rand(3)),
        "expected `grad_output` on the same device as `self`",
    ),
    (
        "slope that overflows float32",
        lambda: actx.leaky_relu(torch.randn(3), 1e300),
        "cannot be converted to type float without overflow",
    ),
]


@pytest.mark.parametrize("description,call,match", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(description, call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_failed_inplace_calls_leave_input_untouched():
    for make, slope in [
        (lambda: torch.randn(3, 1).expand(3, 4), 0.1),
        (lambda: torch.randn(3, requires_grad=True), 0.1),
        (lambda: torch.randn(3, requires_grad=True) * 1, -0.5),
        (lambda: torch.randn(3), 1e300),
    ]:
        x = make()
        before = x.detach().clone()
        with pytest.raises(RuntimeError):
            actx.leaky_relu_(x, slope)
        assert torch.equal(x.detach(), before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("masks", [True, False], ids=["bits", "input"])
def test_errors_under_autograd_name_the_operator_called(dtype, masks):
    # With a gradient to compute, autograd runs a private operator that also keeps bits for the
    # backward; its argument errors still name the public operator the user called.
    x = x4(dtype).requires_grad_()
    calls = [
        (lambda: actx.leaky_relu(x, 1j), "leaky_relu", "`negative_slope` to be a real number"),
        (lambda: actx.prelu(x, torch.rand(4, dtype=dtype)), "prelu", "`weight` to have 1 element"),
        (lambda: actx.bias_leaky_relu(x, torch.rand(5, dtype=dtype)), "bias_leaky_relu", "`bias` to have"),
    ]
    with torch_ext.backward_masks(masks):
        for call, op, words in calls:
            with pytest.raises(RuntimeError, match=f"^actx::{op}: expected {words}"):
                call()
