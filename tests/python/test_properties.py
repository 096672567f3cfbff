"""Property-based tests (hypothesis): random shapes, strides, dtypes, slopes and weight shapes;
actx equals the reference formula in values and gradients."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torch_ext  # noqa: F401

from samples import (
    DTYPES,
    assert_same_values,
    assert_sum_close,
    prelu_reference,
    weight_grad_magnitude,
    weight_grad_reference,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tensors(draw, dtype=None, min_dims=0):
    """A tensor with random shape, values (specials included), dtype and strides."""
    dtype = dtype or draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=min_dims, max_size=5)))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-40, -1e-40])
    mask = torch.rand(shape, generator=g) < 0.1
    if mask.any():
        x[mask] = specials[torch.randint(0, len(specials), (int(mask.sum()),), generator=g)].double()
    x = x.to(dtype)
    kind = draw(st.sampled_from(["contiguous", "permuted", "strided", "expanded"]))
    if kind == "permuted" and x.dim() >= 2:
        perm = draw(st.permutations(range(x.dim())))
        inverse = [perm.index(d) for d in range(x.dim())]
        x = x.permute(perm).contiguous().permute(inverse)
    elif kind == "strided" and x.dim() >= 1:
        step = draw(st.integers(2, 3))
        x = torch.repeat_interleave(x, step, dim=-1)[..., ::step]
    elif kind == "expanded" and x.dim() >= 1 and x.shape[0] > 1:
        x = x[:1].expand(x.shape)
    return x


@st.composite
def prelu_cases(draw):
    x = draw(tensors())
    nd = x.dim()
    choice = draw(st.sampled_from(["one", "channels", "broadcast"]))
    if choice == "channels" and nd >= 2:
        w_shape = (x.shape[1],)
        view = tuple(x.shape[1] if d == 1 else 1 for d in range(nd))
    elif choice == "broadcast" and nd >= 2:
        k = draw(st.integers(2, nd))
        view = tuple(x.shape[d] if d >= nd - k and draw(st.booleans()) else 1 for d in range(nd))
        w_shape = view[nd - k :]
    else:
        w_shape = draw(st.sampled_from([(), (1,)]))
        view = (1,) * nd
    mixed = x.dtype in (torch.float16, torch.bfloat16) and draw(st.booleans())
    w_dtype = torch.float32 if mixed else x.dtype
    w = (torch.rand(w_shape, dtype=torch.float64) * 3 - 1).to(w_dtype)
    return x, w, view


@SETTINGS
@given(x=tensors(), slope=st.floats(-3, 3, allow_nan=False, width=32))
def test_leaky_relu_property(x, slope):
    expected = prelu_reference(x, torch.tensor([slope], dtype=torch.float64), (1,) * x.dim())
    if x.dtype != torch.float64:
        # torch's rule multiplies by the slope rounded to the compute type (float).
        expected = prelu_reference(x, torch.tensor([slope], dtype=torch.float32), (1,) * x.dim())
    assert_same_values(torch.ops.actx.leaky_relu(x, slope), expected)
    assert_same_values(torch.ops.actx.leaky_relu(x, slope), torch.nn.functional.leaky_relu(x, slope))


@SETTINGS
@given(case=prelu_cases())
def test_prelu_property(case):
    x, w, view = case
    assert_same_values(torch.ops.actx.prelu(x, w), prelu_reference(x, w, view))


@SETTINGS
@given(case=prelu_cases())
def test_prelu_backward_property(case):
    x, w, view = case
    g = torch.randn(x.shape, dtype=torch.float64).to(x.dtype)
    gx, gw = torch.ops.actx.prelu_backward(g, x, w)
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    wb = w.to(compute).reshape(view)
    expected_gx = torch.where(x > 0, g.to(compute), wb * g.to(compute)).to(x.dtype)
    assert_same_values(gx, expected_gx)
    assert gw.shape == w.shape and gw.dtype == w.dtype
    assert_sum_close(
        gw, weight_grad_reference(x, g, view, w.shape).to(w.dtype), weight_grad_magnitude(x, g, view, w.shape)
    )
