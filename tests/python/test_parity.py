"""Parity bits: prelu with positive weights keeps its output and the lowest storage bit of each
input element, from which the backward recovers x exactly (docs/memory.md).

For x <= 0 the output is y = w * x rounded to x's dtype, so y / w lies within one step of x on
the dtype's grid: the quotient truncated to the grid is x or its neighbour towards zero, and the
parity bit tells them apart (float16 and bfloat16 multiply by 1 / w instead of dividing, which
their coarse grids allow). _prelu_with_parity checks every element and says whether the backward
recovers them all; the tests check the recovery on every float16 and bfloat16 value.
"""

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from test_ops import capability  # noqa: F401  (the fixture: once per CPU instruction set)

import torch_ext

from samples import (
    assert_same_values,
    assert_sum_close,
    bits_reference,
    generator,
    make_values,
    prelu_grad_input_reference,
    prelu_samples,
    saved_by,
    weight_grad_magnitude,
)

A = torch.ops.actx
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
PARITY_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
STORAGE = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


def parity_reference(x: torch.Tensor) -> torch.Tensor:
    return bits_reference((x.view(STORAGE[x.dtype]) & 1).bool(), x)


def normal_or_zero(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Where x and the exact w * x are zero or normal numbers: the elements whose x must be
    recovered. A product just below the normal range may still round up to a normal y, with
    fewer bits; and the kernels' float remainder y - q * w underflows where y is within 2^24 of
    float's smallest normal. The forward finds those (and overflows) and says so."""
    info = torch.finfo(x.dtype)
    smallest = max(info.tiny, torch.finfo(torch.float32).tiny * 2.0**24)
    xd = x.double()
    product = (xd * w.double()).abs()
    return (x == 0) | ((xd.abs() >= info.tiny) & (product >= smallest) & (product <= info.max))


def negative_values(dtype) -> torch.Tensor:
    """Every finite value of a 16-bit dtype with the sign bit set (-0.0 included), and +0.0."""
    bits = torch.arange(0x8000, 0x10000, dtype=torch.int32).to(torch.int16)
    values = bits.view(dtype)
    return torch.cat([values[values.isfinite()], torch.zeros(1, dtype=dtype)])


def recovered_weight_gradient(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """prelu_backward_from_parity's weight gradient for grad_output = 1: with one x <= 0 per
    channel (all others positive), x itself as the kernels recovered it."""
    y, parity, _ = A._prelu_with_parity(x, w)
    return A._prelu_backward_from_parity(torch.ones_like(x), parity, y, w)[1]


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", PARITY_DTYPES)
@pytest.mark.parametrize("specials", [True, False], ids=["specials", "plain"])
def test_parity_bits_are_the_lowest_storage_bit(dtype, specials):
    g = generator(60)
    for s in prelu_samples(dtype, g, specials=specials):
        for w in (s.weight.abs() + 0.01, s.weight):
            y, parity, recoverable = A._prelu_with_parity(s.input, w)
            assert_same_values(y, A.prelu(s.input, w))
            assert torch.equal(parity, parity_reference(s.input)), s.name
            assert recoverable.dtype == torch.bool and recoverable.shape == ()
            if bool(recoverable):
                # Every x comes back: the backward is prelu's own, from x.
                grad_out = make_values(s.input.shape, dtype, g, specials=False)
                actual = A._prelu_backward_from_parity(grad_out, parity, y, w)
                expected = A.prelu_backward(grad_out, s.input, w)
                assert_same_values(actual[0], expected[0])
                assert_sum_close(
                    actual[1], expected[1], weight_grad_magnitude(s.input, grad_out, s.weight_view, w.shape)
                )
            if bool(((w <= 0).reshape(s.weight_view) & (s.input < 0)).any()):
                assert not bool(recoverable), s.name  # x < 0 with w <= 0 gives y >= 0


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["per element", "permuted"])
def test_every_half_value_is_recovered(dtype, layout):
    values = negative_values(dtype)
    n = values.numel()
    g = generator(65)
    slopes = [0.25, 0.3, 0.7, 1.0, 1.7, 3.3, 1e-3, 90.0, 1 - 2**-8, 1 + 2**-7, 2 - 2**-7, 0.5 + 2**-9]
    slopes += (2.0 ** (torch.rand(12, generator=g) * 16 - 8)).tolist()
    for weight_dtype in (dtype, torch.float32):
        for slope in slopes:
            if layout == "per element":
                x = values.reshape(1, n)
                w = torch.full((n,), slope).to(weight_dtype)
                recovered = recovered_weight_gradient(x, w).to(dtype)
            else:  # the weight along dims apart in memory: the ATen path
                b = 2**7
                rows = values[: n - n % b].reshape(1, -1, 1, b)
                x = torch.cat([rows, torch.ones_like(rows)], dim=2)
                w = torch.full(rows.shape[1:], slope).to(weight_dtype)
                recovered = recovered_weight_gradient(x, w).to(dtype).reshape(-1)
                x = rows.reshape(1, -1)
            x = x.reshape(-1)
            must = normal_or_zero(x, torch.tensor(slope).to(weight_dtype))
            assert must.sum() > n // 2
            # Values (a sum of one -0.0 term is +0.0).
            assert torch.equal(recovered[must], x[must]), (dtype, weight_dtype, slope)
            # Where every element is normal, the forward says so.
            kept = x[must].reshape(1, -1)
            flag = A._prelu_with_parity(kept, torch.tensor([slope]).to(weight_dtype))[2]
            assert bool(flag), (dtype, weight_dtype, slope)


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_half_value_is_recovered_in_runs_of_one_weight(dtype):
    """Channels of one weight (NCHW-like, inner 64): there the kernels skip the check of a vector
    whose x all lie in the weight's range (kernel_table.h, ParityXRange). Each channel holds 64
    copies of one value, so that every vector is all of one value, in that range or not; grad_output
    2^-6 makes the channel's weight gradient that value, exactly. A value that does not come back
    must make the forward say so: checked alone for those nearest the values that do, on both
    sides, where a range too wide would take them in."""
    values = negative_values(dtype)
    n = values.numel()
    x = values.reshape(1, n, 1).expand(1, n, 64).contiguous()
    grad = torch.full_like(x, 2.0**-6)
    g = generator(67)
    slopes = [0.25, 0.3, 0.7, 1.0, 1.7, 3.3, 1e-3, 90.0, 1 - 2**-8, 1 + 2**-7, 2 - 2**-7, 0.5 + 2**-9]
    slopes += [2.0**-126, 2.0**126, 2.0**-20, 2.0**20, 1e-30, 1e30]
    slopes += (2.0 ** (torch.rand(8, generator=g) * 16 - 8)).tolist()
    for slope in slopes:
        # float32 weights holding the slope as a float16 or bfloat16 weight would, and as itself.
        for w_value in {float(torch.tensor(slope).to(dtype)), slope}:
            if not 0 < w_value < float("inf"):
                continue
            w = torch.full((n,), w_value)
            y, parity, _ = A._prelu_with_parity(x, w)
            recovered = A._prelu_backward_from_parity(grad, parity, y, w)[1]
            must = normal_or_zero(values, torch.tensor(w_value))
            if 2.0**-8 <= w_value <= 2.0**8:
                assert must.sum() > n // 2, w_value
            assert torch.equal(recovered[must], values[must].float()), (dtype, w_value)
            lost = recovered != values.float()
            small = values.abs() < 1  # values ascend in magnitude
            for v in torch.cat([values[lost & small][-16:], values[lost & ~small][:16]]):
                alone = v.reshape(1, 1, 1).expand(1, 1, 64).contiguous()
                assert not bool(A._prelu_with_parity(alone, w[:1])[2]), (dtype, w_value, float(v))


@pytest.mark.usefixtures("capability")
def test_float32_values_at_the_edges_of_binades_are_recovered():
    # x and w next to powers of two, where the grid's step changes.
    ends = torch.tensor([0, 1, 2, 3, 2**23 - 3, 2**23 - 2, 2**23 - 1], dtype=torch.float64)
    mantissas = 1 + ends * 2.0**-23
    x = -(mantissas[:, None] * 2.0 ** torch.arange(-60, 61, 7, dtype=torch.float64)).reshape(1, -1).float()
    for w_mantissa in mantissas.tolist() + [1.5, 1.25 + 2**-22]:
        for w_exponent in (-20, -3, -1, 0, 1, 5, 20):
            w = torch.full((x.shape[1],), w_mantissa * 2.0**w_exponent)
            recovered = recovered_weight_gradient(x, w)
            assert torch.equal(recovered, x[0]), (w_mantissa, w_exponent)
            assert bool(A._prelu_with_parity(x, w)[2])


@pytest.mark.usefixtures("capability")
def test_float32_values_across_the_range_are_recovered():
    g = generator(61)
    for scale in (-100, -30, 0, 30, 100):
        exponents = torch.randint(scale - 10, scale + 10, (64, 1), generator=g)
        x = -(torch.rand(64, 4096, generator=g) + 1) * 2.0**exponents
        x[:, ::2] = torch.rand(64, 2048, generator=g) + 1  # positive: one x <= 0 per (row, pair)
        # Weights: any positive float32, per channel.
        w = (torch.rand(4096, generator=g) + 0.5) * 2.0 ** torch.randint(-20, 21, (4096,), generator=g).float()
        for row in range(0, 64, 16):
            xr = x[row : row + 1]
            recovered = recovered_weight_gradient(xr, w)
            must = normal_or_zero(xr[0], w) & (xr[0] <= 0)
            assert torch.equal(recovered[must], xr[0][must])


def test_subnormal_outputs_are_not_recoverable():
    x = torch.tensor([[-1.0, 2.0, -1e-4, 0.5]], dtype=torch.float16)
    w = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float16)
    assert not bool(A._prelu_with_parity(x, w)[2])  # -2.5e-5: float16's subnormals
    assert bool(A._prelu_with_parity(x[:, :2], w[:2])[2])
    nan = torch.tensor([[float("nan"), -1.0]])
    assert bool(A._prelu_with_parity(nan, torch.tensor([0.5, 0.5]))[2])  # NaN stays NaN
    assert not bool(A._prelu_with_parity(torch.tensor([[-1.0]]), torch.tensor([-0.5]))[2])
    assert not bool(A._prelu_with_parity(torch.tensor([[-1.0e30]]), torch.tensor([1e10]))[2])  # overflow


def overflowing_input(dtype) -> tuple[float, torch.Tensor]:
    """A slope and a negative x of the dtype, its parity bit 1, whose product overflows."""
    slope, magnitude = {torch.float32: (1e10, 1e30), torch.float16: (1.7001953125, 38560.0)}.get(dtype, (2.0, 3.0e38))
    storage = torch.tensor([-magnitude]).to(dtype).view(STORAGE[dtype]) | 1
    value = storage.view(dtype)
    assert torch.isinf((value.float() * slope).to(dtype)).all() and bool(storage & 1)
    return slope, value


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", PARITY_DTYPES)
@pytest.mark.parametrize("layout", ["one weight", "per element"])
def test_one_unrecoverable_element_is_found_at_every_position(dtype, layout):
    """The loops check 64 elements at a time (one branch where a lane is outside the safe range),
    then vectors, then a partial vector: one overflowing x among 129 recoverable ones, at each
    position, is found, and its neighbours keep their parity bits."""
    slope, value = overflowing_input(dtype)
    n = 129
    w = torch.full((1,) if layout == "one weight" else (n,), slope).to(dtype)
    for position in range(n):
        x = -torch.linspace(0.5, 1.5, n).to(dtype)
        x[position] = value[0]
        x = x.reshape(1, 1, n) if layout == "one weight" else x.reshape(1, n)
        y, parity, recoverable = A._prelu_with_parity(x, w)
        assert not bool(recoverable), position
        assert torch.equal(parity, parity_reference(x)), position
        assert_same_values(y, torch.nn.functional.prelu(x, w))


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", PARITY_DTYPES)
@pytest.mark.parametrize("layout", ["one weight", "per element", "weight apart"])
def test_an_output_that_overflowed_is_not_recoverable(dtype, layout):
    """w * x past the dtype's range is stored as -inf; the step towards x's parity bit, when that
    bit is 1, turns -inf into a NaN, which the check once took for a NaN x: the call was called
    recoverable and the weight gradient came out NaN."""
    slope, value = overflowing_input(dtype)
    if layout == "one weight":  # runs of one weight (kernels)
        x, w, view = value.reshape(1, 1, 1).expand(1, 1, 64), torch.tensor([slope]), (1, 1, 1)
    elif layout == "per element":  # one weight per element (kernels)
        x, w, view = value.reshape(1, 1).expand(1, 64), torch.full((64,), slope), (1, 64)
    else:  # the weight along dims apart in memory (ATen operations)
        x, w, view = value.reshape(1, 1, 1, 1).expand(1, 1, 2, 64), torch.full((1, 1, 64), slope), (1, 1, 1, 64)
    x, w = x.contiguous(), w.to(dtype)
    assert not bool(A._prelu_with_parity(x, w)[2])
    leaves = [x.clone().requires_grad_(), w.clone().requires_grad_()]
    out = A.prelu(*leaves)
    assert out.grad_fn.name() == "actx::PreluBackward"  # x kept
    grad = torch.full_like(x, 2.0**-10)  # sums that stay finite
    grad_x, grad_w = torch.autograd.grad(out, leaves, grad)
    assert_same_values(grad_x, prelu_grad_input_reference(x, grad, w.reshape(view)))
    terms = (x.double() * grad.double()).expand(torch.broadcast_shapes(x.shape, view))
    reference = terms.sum_to_size(view).reshape(w.shape)
    assert torch.isfinite(grad_w).all()
    assert_sum_close(grad_w, reference.to(dtype), terms.abs().sum_to_size(view).reshape(w.shape))


@pytest.mark.usefixtures("capability")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_per_element_ranges_follow_their_weights(dtype):
    """Per-element weights (channels last) give each lane its own range: x whose product with 90
    overflows, beside x = -1, with weights 90 and 0.25 in turn. With the lanes' ranges crossed, the
    overflowing x would pass in 0.25's range unchecked."""
    big = float(torch.finfo(dtype).max) / 2
    x = torch.tensor([-big, -1.0] * 32, dtype=dtype).reshape(1, 64)
    w = torch.tensor([90.0, 0.25] * 32, dtype=dtype)
    assert not bool(A._prelu_with_parity(x, w)[2])
    assert bool(A._prelu_with_parity(x[:, 1::2], w[1::2])[2])  # the x = -1 alone come back


@pytest.mark.usefixtures("capability")
def test_bfloat16_weights_without_a_normal_reciprocal_are_not_recoverable():
    """bfloat16 recovers x <= 0 as y * (1 / w): a weight outside [2^-126, 2^126] makes the call
    unrecoverable, so that autograd keeps x instead, and the gradients stay exact. float32 still
    divides, and recovers x with such weights. (float16 multiplies too, but its y underflows or
    overflows with any such weight, which the check finds anyway.)"""
    g = generator(66)
    cases = [(2.0**-126, 30, True), (2.0**-127, 30, False), (2.0**126, -20, True), (2.0**127, -20, False)]
    for slope, exponent, supported in cases:
        # |y| = slope * |x| within the range the kernels recover without checking each element.
        x = (-(2.0 ** (torch.rand(1, 256, generator=g) * 10 + exponent))).to(torch.bfloat16)
        w = torch.tensor([slope], dtype=torch.bfloat16)
        assert float(w) == slope
        assert bool(A._prelu_with_parity(x, w)[2]) == supported, slope
        leaves = [x.clone().requires_grad_(), w.clone().requires_grad_()]
        out = A.prelu(*leaves)
        expected = "actx::PreluBackwardFromParity" if supported else "actx::PreluBackward"
        assert out.grad_fn.name() == expected, slope
        grad = torch.randn(x.shape, generator=g).to(torch.bfloat16)
        grad_x, grad_w = torch.autograd.grad(out, leaves, grad)
        assert torch.equal(grad_x, (grad.float() * slope).to(torch.bfloat16))
        reference = (x.double() * grad.double()).sum().reshape(1)
        magnitude = (x.double() * grad.double()).abs().sum().reshape(1)
        assert_sum_close(grad_w, reference.to(torch.bfloat16), magnitude)
    for slope, x in ((2.0**127, [[-(2.0**-100), -3 * 2.0**-100]]), (2.0**-127, [[-(2.0**30), -3 * 2.0**30]])):
        assert bool(A._prelu_with_parity(torch.tensor(x), torch.tensor([slope, slope]))[2]), slope


def test_parity_arguments_are_checked():
    x = torch.randn(4, 5)
    y, parity, _ = A._prelu_with_parity(x, torch.rand(5))
    with pytest.raises(RuntimeError, match="expected `self` of dtype float32, float16 or bfloat16"):
        A._prelu_with_parity(x.double(), torch.rand(5, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="expected `result` of dtype float32, float16 or bfloat16"):
        A._prelu_backward_from_parity(x.double(), parity, y.double(), torch.rand(5, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="expected `parity` to be a dense uint8 tensor"):
        A._prelu_backward_from_parity(x, parity.float(), y, torch.rand(5))
    with pytest.raises(RuntimeError, match=r"expected `parity` to be 1-D with one bit per element"):
        A._prelu_backward_from_parity(x, parity[:1], y, torch.rand(5))


def test_second_derivatives_match_the_path_that_keeps_x():
    # Double backward and forward over reverse through prelu_backward_from_parity's autograd
    # kernel, against the node that keeps x (float32: the parity path has no float64).
    g = generator(63)
    x = make_values((2, 3, 4), torch.float32, g, away_from_zero=True)
    w = torch.rand(3, generator=g) + 0.1
    grad_out, v_x, v_w = (make_values(t.shape, torch.float32, g, specials=False) for t in (x, x, w))

    def second_order(masks):
        xr, wr, gr = (t.clone().requires_grad_() for t in (x, w, grad_out))
        with torch_ext.backward_masks(masks):
            out, kept = saved_by(lambda: A.prelu(xr, wr.reshape(3, 1)))
        assert any(t.dtype == torch.uint8 for t in kept) == masks  # the parity path, or the one that keeps x
        gx, gw = torch.autograd.grad(out, (xr, wr), gr, create_graph=True)
        return torch.autograd.grad((gx * v_x).sum() + (gw * v_w).sum(), (xr, wr, gr))

    for actual, expected in zip(second_order(True), second_order(False), strict=True):
        torch.testing.assert_close(actual, expected)
    # Forward mode through the backward operator: its tangents are the ones the mask operator
    # computes (for a positive weight y > 0 is the sign mask).
    w = w.reshape(3, 1)
    y, parity, _ = A._prelu_with_parity(x, w)
    mask = A._prelu_with_mask(x, w)[1]
    tangents = [make_values(t.shape, torch.float32, g, specials=False) for t in (grad_out, y, w)]
    results = []
    for op, bits in ((A._prelu_backward_from_parity, parity), (A._prelu_backward_from_mask, mask)):
        with fwAD.dual_level():
            duals = [fwAD.make_dual(p, t) for p, t in zip((grad_out, y, w), tangents, strict=True)]
            outs = op(duals[0], bits, duals[1], duals[2])
            results.append([fwAD.unpack_dual(o).tangent for o in outs])
    for actual, expected in zip(*results, strict=True):
        torch.testing.assert_close(actual, expected)


@CUDA
@pytest.mark.parametrize("dtype", PARITY_DTYPES)
def test_cuda_parity_matches_the_cpu(dtype):
    g = generator(64)
    for s in prelu_samples(dtype, g, specials=False):
        w = s.weight.abs() + 0.01
        y, parity, flag = A._prelu_with_parity(s.input, w)
        cy, cparity, cflag = A._prelu_with_parity(s.input.cuda(), w.cuda())
        assert torch.equal(cparity.cpu(), parity) and bool(cflag) == bool(flag), s.name
        assert_same_values(cy.cpu(), y)
        if bool(flag):
            grad_out = make_values(s.input.shape, dtype, g, specials=False)
            gx, gw = A._prelu_backward_from_parity(grad_out.cuda(), cparity, cy, w.cuda())
            expected = A._prelu_backward_from_parity(grad_out, parity, y, w)
            assert_same_values(gx.cpu(), expected[0])
            torch.testing.assert_close(gw.cpu(), expected[1], rtol=1e-3, atol=1e-3)
