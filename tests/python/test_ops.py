"""actx operators against torch's built-ins: values bit for bit, gradients, layouts, every CPU
instruction set, opcheck."""

import collections
import os

import pytest
import torch
import torch.nn.functional as F

import torch_ext

from benchmark import cpuinfo
from samples import (
    DTYPES,
    LAYOUTS,
    SLOPES,
    actx_operators,
    assert_same_values,
    assert_sum_close,
    bias_leaky_relu_samples,
    generator,
    is_dense,
    leaky_relu_samples,
    make_values,
    prelu_grad_input_reference,
    prelu_reference,
    prelu_samples,
    prelu_weight_shapes,
    strided_weight_samples,
    weight_grad_magnitude,
    weight_grad_reference,
)

ALL_LEVELS = ["scalar", "avx2", "avx512", "zen4"]  # in order of preference


def supported_capabilities():
    default = torch_ext.cpu_capability()
    levels = []
    for level in ALL_LEVELS:
        try:
            torch_ext.set_cpu_capability(level)
            levels.append(level)
        except RuntimeError:
            pass
    torch_ext.set_cpu_capability(default)
    return levels


SUPPORTED = supported_capabilities()


@pytest.fixture(params=ALL_LEVELS)
def capability(request):
    """Runs a test once per CPU instruction set; the ones this CPU lacks are skipped."""
    if request.param not in SUPPORTED:
        pytest.skip(f"this CPU does not support {request.param}")
    default = torch_ext.cpu_capability()
    torch_ext.set_cpu_capability(request.param)
    yield request.param
    torch_ext.set_cpu_capability(default)


def amd_family_19h() -> bool:
    """Whether /proc/cpuinfo names an AMD CPU of family 19h (Zen 3 or Zen 4)."""
    info = cpuinfo()
    return info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "25"


@pytest.mark.skipif("ACTX_CPU_CAPABILITY" in os.environ, reason="the level is forced")
def test_default_capability_is_the_best_supported():
    assert torch_ext.cpu_capability() == SUPPORTED[-1]


def test_zen4_level_exactly_on_amd_family_19h_with_avx512():
    """The zen4 tuning is offered where /proc/cpuinfo names AMD family 19h and the avx512 level is
    supported, and nowhere else."""
    assert ("zen4" in SUPPORTED) == ("avx512" in SUPPORTED and amd_family_19h())


def test_unknown_capability_is_an_error():
    with pytest.raises(RuntimeError, match="expected `capability` to be scalar, avx2, avx512 or zen4"):
        torch_ext.set_cpu_capability("sse9")


# ---- Forward values ----


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_matches_torch(capability, dtype):
    for x, name in leaky_relu_samples(dtype, generator()):
        for slope in SLOPES:
            expected = F.leaky_relu(x, slope)
            actual = torch.ops.actx.leaky_relu(x, slope)
            assert_same_values(actual, expected)
            if is_dense(x):
                assert actual.stride() == x.stride(), name


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_matches_torch(capability, dtype):
    for s in prelu_samples(dtype, generator()):
        actual = torch.ops.actx.prelu(s.input, s.weight)
        assert_same_values(actual, prelu_reference(s.input, s.weight, s.weight_view))
        if s.weight.dim() <= 1:  # the weights torch's prelu accepts
            assert_same_values(actual, F.prelu(s.input, s.weight))
        if is_dense(s.input):
            assert actual.stride() == s.input.stride(), s.name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_prelu_float32_weight_with_half_input(capability, dtype):
    for s in prelu_samples(dtype, generator(), weight_dtype=torch.float32):
        actual = torch.ops.actx.prelu(s.input, s.weight)
        assert actual.dtype == dtype
        assert_same_values(actual, prelu_reference(s.input, s.weight, s.weight_view))


def test_leaky_relu_is_prelu_with_one_weight(capability):
    x = make_values((4, 8, 33), torch.float32, generator())
    for slope in SLOPES:
        assert_same_values(torch.ops.actx.leaky_relu(x, slope), torch.ops.actx.prelu(x, torch.tensor([slope])))


def test_large_and_odd_sizes_cover_vector_tails(capability):
    # Lengths around the vector widths and the threading grain, channels of odd sizes.
    g = generator(1)
    for n in [1, 7, 8, 9, 15, 16, 17, 31, 33, 32768 + 5, 3 * 32768 + 1]:
        x = make_values((n,), torch.float32, g)
        assert_same_values(torch.ops.actx.leaky_relu(x, 0.3), F.leaky_relu(x, 0.3))
    for shape in [(3, 3, 5, 7), (2, 19, 33, 3), (1, 700, 2, 3), (5, 3, 129)]:
        x = make_values(shape, torch.float32, g)
        w = torch.rand(shape[1], generator=g)
        assert_same_values(torch.ops.actx.prelu(x, w), F.prelu(x, w))
        if x.dim() == 4:
            xc = x.contiguous(memory_format=torch.channels_last)
            assert_same_values(torch.ops.actx.prelu(xc, w), F.prelu(x, w))


# ---- Gradients ----


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_gradient_matches_torch(capability, dtype):
    for x, _name in leaky_relu_samples(
        dtype, generator(), layouts={k: LAYOUTS[k] for k in ["contiguous", "channels_last", "transposed"]}
    ):
        grad = make_values(x.shape, dtype, generator(3))
        for slope in SLOPES:
            x1 = x.detach().requires_grad_()
            x2 = x.detach().requires_grad_()
            torch.ops.actx.leaky_relu(x1, slope).backward(grad)
            F.leaky_relu(x2, slope).backward(grad)
            assert_same_values(x1.grad, x2.grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_gradients_match_torch(capability, dtype):
    layouts = {k: LAYOUTS[k] for k in ["contiguous", "channels_last", "transposed", "sliced"]}
    for s in prelu_samples(dtype, generator(), layouts=layouts):
        grad = make_values(s.input.shape, dtype, generator(5))
        x = s.input.detach().requires_grad_()
        w = s.weight.detach().requires_grad_()
        torch.ops.actx.prelu(x, w).backward(grad)
        # Reference: torch's rule (x > 0 ? g : w * g, and x > 0 ? 0 : x * g summed), the sum in float64.
        expected_gx = prelu_grad_input_reference(s.input, grad, s.weight.reshape(s.weight_view))
        assert_same_values(x.grad, expected_gx)
        expected_gw = weight_grad_reference(s.input, grad, s.weight_view, s.weight.shape)
        magnitude = weight_grad_magnitude(s.input, grad, s.weight_view, s.weight.shape)
        assert_sum_close(w.grad, expected_gw.to(dtype), magnitude)
        if s.weight.dim() <= 1 and s.input.numel() > 0:
            x2 = s.input.detach().requires_grad_()
            w2 = s.weight.detach().requires_grad_()
            F.prelu(x2, w2).backward(grad)
            assert_same_values(x.grad, x2.grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_prelu_mixed_precision_weight_gradient_stays_float32(capability, dtype):
    g = generator(7)
    x = make_values((4, 6, 9, 9), dtype, g).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.rand(6, generator=g, requires_grad=True)
    grad = make_values(x.shape, dtype, generator(8))
    torch.ops.actx.prelu(x, w).backward(grad)
    assert w.grad.dtype == torch.float32 and x.grad.dtype == dtype
    xd = x.detach().double()
    expected = torch.where(xd > 0, 0.0, xd * grad.double()).sum((0, 2, 3))
    magnitude = torch.where(xd > 0, 0.0, (xd * grad.double()).abs()).sum((0, 2, 3))
    assert_sum_close(w.grad, expected.float(), magnitude)


@pytest.mark.parametrize(
    "dtype,weight_dtype", [(torch.float32, None), (torch.bfloat16, None), (torch.float16, torch.float32)]
)
def test_prelu_with_a_strided_weight(capability, dtype, weight_dtype):
    """A weight that is not contiguous gives the values and gradients of its contiguous copy."""
    for s in strided_weight_samples(dtype, generator(9), weight_dtype):
        assert not s.weight.is_contiguous(), s.name
        grad = make_values(s.input.shape, dtype, generator(10))
        assert_same_values(torch.ops.actx.prelu(s.input, s.weight), prelu_reference(s.input, s.weight, s.weight_view))
        gx, gw = torch.ops.actx.prelu_backward(grad, s.input, s.weight)
        gx_c, gw_c = torch.ops.actx.prelu_backward(grad, s.input, s.weight.contiguous())
        assert_same_values(gx, gx_c)
        assert_same_values(gw, gw_c)
        assert gw.shape == s.weight.shape and gw.dtype == s.weight.dtype, s.name


def gradcheck_inputs(shape, weight_shape, seed):
    g = generator(seed)
    x = make_values(shape, torch.float64, g, requires_grad=True, away_from_zero=True)
    w = (torch.rand(weight_shape, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    return x, w


GRADCHECK_CASES = [
    ((3, 4, 5), (4,)),
    ((2, 3, 4, 5), (1,)),
    ((2, 3, 4, 5), (3, 1, 1)),
    ((2, 3, 4, 5), (3, 1, 5)),
    ((6,), ()),
    ((), (1,)),
    ((4, 7), (1, 7)),
]


@pytest.mark.parametrize("shape,weight_shape", GRADCHECK_CASES)
def test_prelu_gradcheck_and_gradgradcheck(shape, weight_shape):
    x, w = gradcheck_inputs(shape, weight_shape, 11)
    # Reverse and forward mode, and forward over reverse (jacfwd of a gradient: hessians).
    assert torch.autograd.gradcheck(torch.ops.actx.prelu, (x, w), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(torch.ops.actx.prelu, (x, w), check_fwd_over_rev=True)
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_() if x.dim() == 4 else None
    if xc is not None:
        assert torch.autograd.gradcheck(torch.ops.actx.prelu, (xc, w), check_forward_ad=True)
        assert torch.autograd.gradgradcheck(torch.ops.actx.prelu, (xc, w), check_fwd_over_rev=True)


@pytest.mark.parametrize("slope", SLOPES)
def test_leaky_relu_gradcheck_and_gradgradcheck(slope):
    x, _ = gradcheck_inputs((3, 4, 5), (1,), 12)
    fn = lambda t: torch.ops.actx.leaky_relu(t, slope)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(fn, (x,), check_fwd_over_rev=True)


def test_double_backward_matches_torch():
    x, w = gradcheck_inputs((2, 3, 4, 5), (3,), 13)
    for fn_actx, fn_torch in [
        (torch.ops.actx.prelu, F.prelu),
        (lambda a, b: torch.ops.actx.leaky_relu(a, 0.2) * b.sum(), lambda a, b: F.leaky_relu(a, 0.2) * b.sum()),
    ]:
        results = []
        for fn in (fn_actx, fn_torch):
            xx = x.detach().requires_grad_()
            ww = w.detach().requires_grad_()
            out = fn(xx, ww)
            gx, gw = torch.autograd.grad((out * out).sum(), (xx, ww), create_graph=True)
            results.append(torch.autograd.grad((gx.sin().sum() + gw.cos().sum()), (xx, ww)))
        for a, b in zip(*results, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("masks", [True, False], ids=["bits", "input"])
def test_second_derivatives_at_zero_follow_the_first(masks):
    # At x == 0 exactly torch's second derivatives of prelu count x as positive, also in the terms
    # linear in the gradient and the weight, where its first derivatives take the slope's branch
    # (grad_input = w * g there). actx's follow the first derivatives (docs/python.md), and equal
    # torch's everywhere else.
    x = torch.tensor([[-2.0, -0.0, 0.0, 3.0], [0.0, -1.0, 2.0, -0.0]], dtype=torch.float64)
    w = torch.tensor([0.25, -0.5, 1.5, 0.75], dtype=torch.float64)
    g = torch.tensor([[1.0, 2.0, -3.0, 0.5], [-1.5, 0.25, 4.0, -2.0]], dtype=torch.float64)
    h_input = torch.tensor([[0.5, -1.0, 2.0, 1.0], [3.0, -0.5, 1.0, 0.25]], dtype=torch.float64)
    h_weight = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    seconds = []
    for fn in (torch.ops.actx.prelu, F.prelu):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        with torch_ext.backward_masks(masks):
            gx, gw = torch.autograd.grad(fn(xx, ww), (xx, ww), g, create_graph=True)
        seconds.append(torch.autograd.grad((gx * h_input).sum() + (gw * h_weight).sum(), (xx, ww)))
    (d_x, d_w), (torch_d_x, _) = seconds
    slope_side = x.le(0)  # x <= 0, -0.0 and 0.0 included, as the first derivatives have it
    # grad_weight sums x * g on the slope's side; grad_input is w * g there.
    assert torch.equal(d_x, torch.where(slope_side, g * h_weight, 0.0))
    assert torch.equal(d_w, torch.where(slope_side, g * h_input, 0.0).sum(0))
    away = x.ne(0)
    assert torch.equal(d_x[away], torch_d_x[away])


def reachable_nodes(*tensors):
    """Every node of the autograd graph behind `tensors`."""
    nodes, stack = [], [t.grad_fn for t in tensors]
    while stack:
        node = stack.pop()
        if node is not None and not any(node is seen for seen in nodes):
            nodes.append(node)
            stack.extend(next_node for next_node, _ in node.next_functions)
    return nodes


@pytest.mark.skipif(
    not hasattr(torch.autograd.graph, "node_creation_hook"), reason="node-creation hooks came with torch 2.14"
)
@pytest.mark.parametrize("masks", [True, False], ids=["bits", "inputs"])
def test_node_creation_hooks_see_every_actx_node(masks):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.full((3,), 0.25, dtype=torch.float64, requires_grad=True)
    seen = []

    def hook(node):
        # Fired once per node, when it is complete: edges wired, tensors saved.
        assert not any(node is s for s in seen)
        assert node.next_functions or node.name() == "torch::autograd::AccumulateGrad"
        seen.append(node)

    with torch_ext.backward_masks(masks), torch.autograd.graph.node_creation_hook(hook):
        y = torch.ops.actx.prelu(x * 1, w)
        z = torch.ops.actx.leaky_relu(y, 0.1)
        torch.ops.actx.leaky_relu_(z, 0.2)
        # Nodes made by the backward (double backward) fire too.
        gx, gw = torch.autograd.grad(z.sum(), (x, w), create_graph=True)
    graph = reachable_nodes(z, gx, gw)
    names = {node.name() for node in graph}
    assert any(name.startswith("actx::Prelu") for name in names), names
    assert any(name.startswith("actx::LeakyRelu") for name in names), names
    # Exactly the nodes of the graph, as for torch's own operators (which fire for AccumulateGrad
    # too); the first leaky_relu's node was replaced by leaky_relu_'s.
    assert all(any(node is s for s in seen) for node in graph), [n.name() for n in graph]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_channels_last_weight_gradient_matches_float64_at_every_thread_count(capability, dtype):
    # Channels_last: every element has its own weight (a row of C, or a pattern of short rows
    # expanded: to 64 elements, and to 1024 in the forward with parity bits, unless the pattern
    # would pass 2048), and the weight gradient is summed down the rows, chunk by chunk (32768
    # elements, so chunks cut rows and patterns). Channel counts below one vector, ending rows in a
    # partial vector, and spanning many vectors; from x and from parity bits; the same bits at
    # every thread count, forward and backward.
    g = generator(31)
    threads = torch.get_num_threads()
    try:
        for channels in (3, 5, 24, 63, 64, 65, 100, 200, 1000):
            batch = max(2, 3 * 32768 // (channels * 9 * 13))
            x = make_values((batch, channels, 9, 13), dtype, g, specials=False)
            x = x.contiguous(memory_format=torch.channels_last)
            grad = make_values(x.shape, dtype, g, specials=False).contiguous(memory_format=torch.channels_last)
            w = (torch.rand(channels, generator=g) + 0.5).to(dtype)
            y, parity, recoverable = torch.ops.actx._prelu_with_parity(x, w)
            # (float16 loses some x to underflow: then autograd keeps x, and only that path runs.)
            assert recoverable.item() or dtype == torch.float16
            expected_gx = prelu_grad_input_reference(x, grad, w.reshape(-1, 1, 1))
            expected_gw = weight_grad_reference(x, grad, (1, channels, 1, 1), (channels,))
            magnitude = weight_grad_magnitude(x, grad, (1, channels, 1, 1), (channels,))
            assert_same_values(y, F.prelu(x, w))
            first = None
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                again = torch.ops.actx._prelu_with_parity(x, w)
                assert_same_values(again[0], y)
                assert torch.equal(again[1], parity) and torch.equal(again[2], recoverable)
                results = [torch.ops.actx.prelu_backward(grad, x, w)]
                if recoverable.item():
                    results.append(torch.ops.actx._prelu_backward_from_parity(grad, parity, y, w))
                for gx, gw in results:
                    assert_same_values(gx, expected_gx)
                    assert_sum_close(gw, expected_gw.to(dtype), magnitude)
                first = first or results
                for (_, gw), (_, gw0) in zip(results, first, strict=True):
                    assert_same_values(gw, gw0)
    finally:
        torch.set_num_threads(threads)


def test_prelu_weight_gradient_does_not_depend_on_thread_count():
    g = generator(14)
    x = make_values((8, 16, 40, 40), torch.float32, g)
    grad = make_values(x.shape, torch.float32, generator(15))
    w = torch.rand(16, generator=g)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(torch.ops.actx.prelu_backward(grad, x, w))
    finally:
        torch.set_num_threads(threads)
    bits = lambda t: t.view(torch.int32)  # noqa: E731  (NaN included)
    for gx, gw in results[1:]:
        assert torch.equal(bits(gx), bits(results[0][0]))
        assert torch.equal(bits(gw), bits(results[0][1]))


# ---- The backward operators called directly ----


def test_backward_operators_match_torch():
    g = generator(16)
    x = make_values((2, 5, 6, 7), torch.float32, g)
    grad = make_values(x.shape, torch.float32, g)
    w = torch.rand(5, generator=g)
    assert_same_values(
        torch.ops.actx.leaky_relu_backward(grad, x, 0.1, False), torch.ops.aten.leaky_relu_backward(grad, x, 0.1, False)
    )
    gx, gw = torch.ops.actx.prelu_backward(grad, x, w)
    gx_ref, gw_ref = torch.ops.aten._prelu_kernel_backward(grad, x, w.reshape(1, 5, 1, 1))
    assert_same_values(gx, gx_ref)
    torch.testing.assert_close(gw, gw_ref.sum((0, 2, 3)), rtol=1e-5, atol=1e-5, equal_nan=True)


# ---- Meta tensors ----


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_meta_kernels_give_shapes_dtypes_and_strides(memory_format):
    x = torch.empty(2, 3, 4, 5, device="meta", dtype=torch.bfloat16).contiguous(memory_format=memory_format)
    w = torch.empty(3, device="meta", dtype=torch.float32)
    for out in (
        torch.ops.actx.leaky_relu(x, 0.1),
        torch.ops.actx.prelu(x, w),
        torch.ops.actx.leaky_relu_backward(x, x, 0.1, False),
    ):
        assert out.device.type == "meta" and out.shape == x.shape and out.dtype == x.dtype
        assert out.stride() == x.stride()
    gx, gw = torch.ops.actx.prelu_backward(x, x, w)
    assert gx.shape == x.shape and gw.shape == w.shape and gw.dtype == torch.float32
    with pytest.raises(RuntimeError, match="one per channel"):
        torch.ops.actx.prelu(x, torch.empty(4, device="meta"))


# ---- opcheck: schema, autograd registration, fake tensors, AOT dispatch ----


def finite_values(shape, dtype, g):
    # opcheck compares eager and traced outputs with NaN != NaN: finite values only.
    return make_values(shape, dtype, g, specials=False)


def opcheck_samples():
    g = generator(17)
    for dtype in DTYPES:
        x = finite_values((2, 3, 4, 5), dtype, g)
        xc = x.contiguous(memory_format=torch.channels_last)
        for t in (x, xc, finite_values((7,), dtype, g), finite_values((), dtype, g)):
            for w_shape, _ in prelu_weight_shapes(tuple(t.shape))[:3]:
                w = torch.rand(w_shape, generator=g).to(dtype)
                yield "prelu", (t, w)
                yield (
                    "prelu",
                    (
                        t.detach().requires_grad_(dtype in (torch.float32, torch.float64)),
                        w.detach().requires_grad_(dtype in (torch.float32, torch.float64)),
                    ),
                )
                yield "prelu_backward", (finite_values(t.shape, dtype, g), t, w)
                y, mask = torch.ops.actx._prelu_with_mask(t, w)
                yield "_prelu_with_mask", (t, w)
                yield "_prelu_backward_from_mask", (finite_values(t.shape, dtype, g), mask, y, w)
                if dtype != torch.float64:
                    y, parity, _ = torch.ops.actx._prelu_with_parity(t, w)
                    yield "_prelu_with_parity", (t, w)
                    yield "_prelu_backward_from_parity", (finite_values(t.shape, dtype, g), parity, y, w)
            out, mask = torch.ops.actx._leaky_relu_with_mask(t, 0.1)
            yield "_leaky_relu_with_mask", (t, 0.1)
            grad_out = finite_values(t.shape, dtype, g).as_strided(out.shape, out.stride())
            yield "_leaky_relu_backward_from_mask", (grad_out, mask, 0.1)
            yield "leaky_relu", (t, 0.1)
            yield "leaky_relu", (t.detach().requires_grad_(dtype in (torch.float32, torch.float64)), -0.3)
            yield "leaky_relu_", (t.clone(), 0.2)
            yield "leaky_relu_backward", (finite_values(t.shape, dtype, g), t, 0.1, False)
    for dtype in DTYPES:
        for s in bias_leaky_relu_samples(dtype, g, shapes=[(), (7,), (2, 3, 4, 5)], specials=False):
            grad_out = finite_values(s.input.shape, dtype, g)
            yield "bias_leaky_relu", s.args()
            yield "bias_leaky_relu_backward", (grad_out, *s.args())
            y, sign, saturation = torch.ops.actx._bias_leaky_relu_with_bits(*s.args())
            yield "_bias_leaky_relu_with_bits", s.args()
            yield (
                "_bias_leaky_relu_backward_from_bits",
                (grad_out.as_strided(y.shape, y.stride()), sign, saturation, *s.args()[1:]),
            )


def test_opcheck_every_operator():
    checked = collections.Counter()
    for name, args in opcheck_samples():
        torch.library.opcheck(getattr(torch.ops.actx, name).default, args)
        checked[name] += 1
    assert set(checked) == set(actx_operators()), set(actx_operators()) ^ set(checked)
    assert min(checked.values()) >= 10


@pytest.mark.slow
def test_more_than_2_31_elements():
    n = 2**31 + 1025
    x = torch.empty(n, dtype=torch.bfloat16).uniform_(-1, 1)
    tail = slice(n - 4096, n)
    y = torch.ops.actx.leaky_relu(x, 0.5)
    assert_same_values(y[tail], F.leaky_relu(x[tail], 0.5))
    del y
    torch.ops.actx.leaky_relu_(x, 0.5)
    x_tail = x[tail].clone()
    gx, gw = torch.ops.actx.prelu_backward(x, x, torch.tensor([2.0]))
    assert_same_values(gx[tail], torch.where(x_tail > 0, x_tail, (2.0 * x_tail.float()).to(torch.bfloat16)))
    assert gw.shape == (1,) and torch.isfinite(gw).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_slopes_and_weights(capability, dtype):
    # NaN and infinite slopes: NaN wherever torch has NaN, the same bits elsewhere.
    x = make_values((3, 16, 37), dtype, generator(20))
    for slope in [float("nan"), float("inf"), -float("inf"), 3e38, 1e-45]:
        assert_same_values(torch.ops.actx.leaky_relu(x, slope), F.leaky_relu(x, slope))
    for weight_dtype in {dtype, torch.float32} if dtype in (torch.float16, torch.bfloat16) else {dtype}:
        w = torch.rand(16, generator=generator(21)).to(weight_dtype)
        w[::3] = float("nan")
        w[1::5] = float("inf")
        # A NaN with a payload in its low bits (not one arithmetic would make).
        w[2] = float("nan")
        w[2:3].view(torch.int32 if weight_dtype == torch.float32 else torch.int16)[0] |= 0x7F
        assert torch.isnan(w[2])
        assert_same_values(torch.ops.actx.prelu(x, w), prelu_reference(x, w, (1, 16, 1)))
        xc = x.transpose(1, 2).contiguous().transpose(1, 2)  # weight per element of a row
        assert_same_values(torch.ops.actx.prelu(xc, w), prelu_reference(x, w, (1, 16, 1)))
