"""leaky_relu_: writes through to its input whatever the layout, works under autograd like torch's,
and refuses (leaving the input untouched) where torch's would be wrong or ambiguous."""

import pytest
import torch
import torch.nn.functional as F

import torch_ext

from samples import DTYPES, LAYOUTS, SLOPES, assert_same_values, generator, make_values


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed", "sliced"])
def test_inplace_writes_through_every_layout(dtype, layout):
    base = make_values((2, 3, 4, 5), dtype, generator())
    for slope in SLOPES:
        x = LAYOUTS[layout](base.clone())
        # A view into a larger buffer: the untouched part must stay as it was.
        strides = x.stride()
        expected = F.leaky_relu(x, slope)
        version = x._version
        out = torch.ops.actx.leaky_relu_(x, slope)
        assert out is x
        assert x._version > version
        assert x.stride() == strides
        assert_same_values(x, expected)


def test_inplace_leaves_the_rest_of_the_buffer_alone():
    buffer = torch.randn(4, 10)
    reference = buffer.clone()
    view = buffer[:, ::3]
    torch.ops.actx.leaky_relu_(view, 0.5)
    untouched = torch.ones_like(buffer, dtype=torch.bool)
    untouched[:, ::3] = False
    assert torch.equal(buffer[untouched], reference[untouched])
    assert torch.equal(buffer[:, ::3], F.leaky_relu(reference[:, ::3], 0.5))


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3, 2.0])
def test_inplace_under_autograd_matches_torch(slope):
    x0 = make_values((3, 4, 5), torch.float64, generator(1), away_from_zero=True)
    grad = torch.randn(3, 4, 5, dtype=torch.float64)
    results = []
    for fn in (torch.ops.actx.leaky_relu_, F.leaky_relu_):
        leaf = x0.clone().requires_grad_()
        y = leaf * 1.5  # a non-leaf, as in-place on a leaf that requires grad is refused
        fn(y, slope)
        y.backward(grad)
        results.append((y.detach(), leaf.grad))
    assert_same_values(results[0][0], results[1][0])
    assert_same_values(results[0][1], results[1][1])


def test_inplace_gradcheck():
    x = make_values((3, 4), torch.float64, generator(2), away_from_zero=True).requires_grad_()
    fn = lambda t: torch.ops.actx.leaky_relu_(t.clone(), 0.2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(fn, (x,), check_fwd_over_rev=True)


def test_inplace_on_a_view_of_a_non_leaf_updates_the_base_gradient():
    grads = []
    for fn in (torch.ops.actx.leaky_relu_, F.leaky_relu_):
        leaf = make_values((4, 6), torch.float64, generator(3), away_from_zero=True).requires_grad_()
        base = leaf * 1.0
        fn(base[:, 1:4], 0.1)
        assert type(base.grad_fn).__name__ == "CopySlices"
        base.sum().backward()
        grads.append(leaf.grad)
    assert_same_values(grads[0], grads[1])
    assert torch.equal(grads[0][:, [0, 4, 5]], torch.ones(4, 3, dtype=torch.float64))


def test_modified_saved_tensor_is_detected():
    # Another op saved x for its backward; overwriting x in place must be caught by autograd.
    leaf = torch.randn(5, requires_grad=True)
    x = leaf * 2
    y = x * x
    torch.ops.actx.leaky_relu_(x, 0.1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def assert_refused_and_untouched(x, slope, match):
    before = x.detach().clone()
    with pytest.raises(RuntimeError, match=match):
        torch.ops.actx.leaky_relu_(x, slope)
    assert torch.equal(x.detach(), before)


def test_negative_slope_under_autograd_is_refused_before_writing():
    y = torch.randn(4, 5, requires_grad=True) * 1.0
    assert_refused_and_untouched(y, -0.1, "needs negative_slope >= 0")


def test_negative_slope_without_autograd_is_fine():
    x = torch.randn(4, 5)
    expected = F.leaky_relu(x, -0.1)
    torch.ops.actx.leaky_relu_(x, -0.1)
    assert_same_values(x, expected)
    with torch.no_grad():
        y = torch.randn(4, 5, requires_grad=True) * 1.0
        expected = F.leaky_relu(y, -0.1)
        torch.ops.actx.leaky_relu_(y, -0.1)
        assert_same_values(y, expected)


def test_leaf_requiring_grad_is_refused_before_writing():
    assert_refused_and_untouched(torch.randn(3, 4, requires_grad=True), 0.1, "leaf tensor that requires grad")


def test_overlapping_memory_is_refused_before_writing():
    base = torch.randn(3, 1)
    x = base.expand(3, 4)
    with pytest.raises(RuntimeError, match="share memory"):
        torch.ops.actx.leaky_relu_(x, 0.1)
    assert torch.equal(base, x[:, :1])
    assert_refused_and_untouched(base.expand(3, 4), 0.1, "share memory")


def test_functional_wrapper_inplace_flag():
    x = torch.randn(8)
    expected = F.leaky_relu(x, 0.2)
    out = torch_ext.leaky_relu(x, 0.2, inplace=True)
    assert out is x
    assert_same_values(x, expected)
    y = torch.randn(8)
    assert torch_ext.leaky_relu_(y, 0.2) is y
