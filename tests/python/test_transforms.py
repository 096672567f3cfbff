"""torch.func transforms, forward-mode AD and compiled autograd on the actx operators, against
torch's built-ins. The Autograd kernels are written the way PyTorch's generated ones are (graph
nodes with saved variables, tangents from the primals), so what works with F.prelu and
F.leaky_relu has to work with them too: a torch::autograd::Function would have been refused by
torch.func, and its forward-mode tangents silently dropped."""

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vjp, vmap

import torch_ext

from samples import DTYPES, SLOPES, actx_operators, assert_same_values, generator, make_values

pytestmark = pytest.mark.filterwarnings("error:There is a performance drop")


def test_every_public_operator_has_a_batching_rule():
    # Without a rule vmap would run the operator one sample at a time (with the warning above).
    # The private ones: test_saved.py.
    for op in actx_operators(public=True):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"actx::{op}", "FuncTorchBatched"), op


def actx_prelu(x, w):
    return torch.ops.actx.prelu(x, w)


def actx_leaky_relu(x, slope):
    return torch.ops.actx.leaky_relu(x, slope)


def as_prelu(leaky_relu):
    """A leaky_relu with slope 0.2 made a function of (x, w) like prelu, so that one table of
    transforms serves both: w enters through a product with the output."""
    return lambda x, w: leaky_relu(x, 0.2) * w.sum()


PAIRS = {
    "prelu": (actx_prelu, F.prelu),
    "leaky_relu": (as_prelu(actx_leaky_relu), as_prelu(F.leaky_relu)),
}


def loss(f):
    return lambda x, w: f(x, w).pow(2).sum()


TRANSFORMS = {
    "grad": lambda f, x, w, tx, tw: grad(loss(f), argnums=(0, 1))(x, w),
    "vjp": lambda f, x, w, tx, tw: vjp(f, x, w)[1](tx),
    "jacrev": lambda f, x, w, tx, tw: jacrev(f, argnums=(0, 1))(x, w),
    "jvp": lambda f, x, w, tx, tw: jvp(f, (x, w), (tx, tw)),
    "jacfwd": lambda f, x, w, tx, tw: jacfwd(f, argnums=(0, 1))(x, w),
    "hessian": lambda f, x, w, tx, tw: hessian(loss(f), argnums=(0, 1))(x, w),
    # Per-sample gradients of the weight: the batch split by vmap, one gradient per sample.
    "per_sample_grad": lambda f, x, w, tx, tw: vmap(
        grad(lambda xi, w: loss(f)(xi.unsqueeze(0), w), argnums=1), in_dims=(0, None)
    )(x, w),
    "grad_of_grad": lambda f, x, w, tx, tw: grad(
        lambda x, w: grad(loss(f), argnums=1)(x, w).pow(2).sum(), argnums=(0, 1)
    )(x, w),
}


@pytest.mark.parametrize("op", PAIRS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_torch_func_transforms_match_torch(op, transform):
    g = generator(31)
    x = make_values((3, 4, 5), torch.float64, g, away_from_zero=True)
    w = torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    tx = make_values(x.shape, torch.float64, g, specials=False)
    tw = torch.randn(w.shape, generator=g, dtype=torch.float64)
    ours, theirs = (TRANSFORMS[transform](f, x, w, tx, tw) for f in PAIRS[op])
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_per_sample_gradients_of_a_model():
    g = generator(32)
    x = make_values((6, 5), torch.float64, g, specials=False)
    models = []
    for prelu in (torch_ext.nn.PReLU(4), torch.nn.PReLU(4)):
        torch.manual_seed(0)
        models.append(torch.nn.Sequential(torch.nn.Linear(5, 4), prelu, torch.nn.Linear(4, 1)).double())
    models[0].load_state_dict(models[1].state_dict())
    results = []
    for model in models:
        params = {k: v.detach() for k, v in model.named_parameters()}
        sample_loss = lambda p, xi: functional_call(model, p, (xi.unsqueeze(0),)).pow(2).sum()  # noqa: E731
        results.append(vmap(grad(sample_loss), in_dims=(None, 0))(params, x))
    assert results[0].keys() == results[1].keys()
    for name in results[0]:
        assert results[0][name].shape[0] == x.shape[0]
        torch.testing.assert_close(results[0][name], results[1][name], rtol=1e-12, atol=1e-12)


def tangents(*duals):
    return [fwAD.unpack_dual(d).tangent for d in duals]


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_mode_tangents_equal_torch_bit_for_bit(dtype):
    """Dual tensors through every operator against torch's own forward-mode formulas: the same
    expressions in the same precision, so the same bits, NaN, infinities and x == 0 included."""
    g = generator(33)
    x = make_values((4, 3, 5, 7), dtype, g)
    grad_out = make_values(x.shape, dtype, g)
    w = torch.rand(3, generator=g).to(dtype)
    tx, tg = make_values(x.shape, dtype, g, specials=False), make_values(x.shape, dtype, g, specials=False)
    tw = torch.randn(3, generator=g).to(dtype)
    results = []
    for prelu, prelu_backward, leaky_relu, leaky_relu_backward in [
        (
            F.prelu,
            lambda a, b, c: torch.ops.aten._prelu_kernel_backward(a, b, c.view(1, 3, 1, 1)),
            F.leaky_relu,
            torch.ops.aten.leaky_relu_backward,
        ),
        (torch.ops.actx.prelu, torch.ops.actx.prelu_backward, actx_leaky_relu, torch.ops.actx.leaky_relu_backward),
    ]:
        with fwAD.dual_level():
            xd, gd, wd = fwAD.make_dual(x, tx), fwAD.make_dual(grad_out, tg), fwAD.make_dual(w, tw)
            grad_input, grad_weight = prelu_backward(gd, xd, wd)
            out = tangents(
                prelu(xd, wd), grad_input, grad_weight, leaky_relu(xd, 0.2), leaky_relu_backward(gd, xd, 0.2, False)
            )
        # torch's _prelu_kernel_backward leaves the weight gradient per element; autograd sums it.
        out[2] = out[2].sum_to_size(1, 3, 1, 1).view(3) if out[2].dim() == 4 else out[2]
        results.append(out)
    for name, ours, theirs in zip(
        ["prelu", "grad_input", "grad_weight", "leaky_relu", "leaky_relu_backward"], results[1], results[0], strict=True
    ):
        assert ours is not None, name
        assert_same_values(ours, theirs)


@pytest.mark.parametrize("slope", SLOPES)
def test_inplace_forward_mode_on_a_view_updates_the_base_tangent(slope):
    """leaky_relu_ on part of a dual tensor changes that part of the base's primal and tangent to
    what torch's out-of-place leaky_relu gives there. Any slope will do (the tangent is computed
    before the input is overwritten); torch's own leaky_relu_ refuses negative ones."""
    g = generator(34)
    x = make_values((4, 6), torch.float64, g)
    t = make_values(x.shape, torch.float64, g, specials=False)
    expected_primal, expected_tangent = x.clone(), t.clone()
    with fwAD.dual_level():
        part = fwAD.unpack_dual(F.leaky_relu(fwAD.make_dual(x[:, 1:4], t[:, 1:4]), slope))
        expected_primal[:, 1:4], expected_tangent[:, 1:4] = part.primal, part.tangent
        base = fwAD.make_dual(x.clone(), t.clone())
        torch.ops.actx.leaky_relu_(base[:, 1:4], slope)
        result = fwAD.unpack_dual(base)
        assert_same_values(result.primal, expected_primal)
        assert_same_values(result.tangent, expected_tangent)


@pytest.mark.parametrize("masks", [False, True], ids=["inputs", "masks"])
def test_graph_nodes_behave_like_torch_nodes(masks):
    g = generator(35)
    x = make_values((2, 3, 4), torch.float64, g, away_from_zero=True).requires_grad_()
    w = (torch.rand(3, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    events = []
    with (
        torch_ext.backward_masks(masks),
        torch.autograd.graph.saved_tensors_hooks(
            lambda t: events.append("pack") or t, lambda t: events.append("unpack") or t
        ),
    ):
        y = torch.ops.actx.prelu(x, w)
    # float64 with weights in range: the sign mask.
    assert y.grad_fn.name() == ("actx::PreluBackwardFromMask" if masks else "actx::PreluBackward")
    leaves = [f.variable for f, _ in y.grad_fn.next_functions]  # AccumulateGrad of each leaf
    assert len(leaves) == 2 and leaves[0] is x and leaves[1] is w
    saved = 3 if masks else 2  # output, mask, weight; or input, weight
    assert events == ["pack"] * saved
    y.sum().backward(retain_graph=True)
    assert events == ["pack"] * saved + ["unpack"] * saved
    first = (x.grad.clone(), w.grad.clone())
    y.sum().backward()  # retained: runs again and accumulates
    torch.testing.assert_close(x.grad, 2 * first[0])
    torch.testing.assert_close(w.grad, 2 * first[1])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()
    with torch_ext.backward_masks(masks):
        z = torch.ops.actx.leaky_relu(x, 0.1)
        y = torch.ops.actx.prelu(x, w)
    expected = torch.where(x > 0, 1.0, 0.1).to(x.dtype)
    with torch.no_grad():
        x.mul_(-1)
        y.mul_(1)
    if masks:
        # The mask is the sign of x when leaky_relu ran: x is free to change after. The prelu
        # output is what prelu keeps now.
        (grad,) = torch.autograd.grad(z.sum(), x)
        torch.testing.assert_close(grad, expected)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
    else:
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.sum().backward()


def test_compiled_autograd_matches_eager():
    """Compiled autograd traces the actx nodes of an eager forward into its graph; the slope is an
    input of that graph, not a constant baked into it, so a second slope gets its own gradients
    from the same graph."""
    from torch._dynamo import compiled_autograd
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    g = generator(36)
    x0 = make_values((4, 3, 5), torch.float32, g, away_from_zero=True)
    w0 = torch.rand(3, generator=g) + 0.1
    for slope in (0.2, 0.3):
        grads = []
        for prelu, leaky_relu, leaky_relu_, compiled in [
            (F.prelu, F.leaky_relu, F.leaky_relu_, False),
            (actx_prelu, actx_leaky_relu, torch.ops.actx.leaky_relu_, True),
        ]:
            x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
            y = leaky_relu(prelu(x, w), slope)
            leaky_relu_(y[1:], slope)
            loss_value = (y * y).sum()
            if compiled:
                with compiled_autograd._enable(torch.compile(backend="aot_eager")):
                    loss_value.backward()
            else:
                loss_value.backward()
            grads.append((x.grad, w.grad))
        for ours, theirs in zip(*grads, strict=True):
            torch.testing.assert_close(ours, theirs)
    assert counters["compiled_autograd"]["captures"] == 1


def per_sample(f, args, in_dims, size):
    """f called on each sample by itself, the results stacked: what vmap must equal."""
    outs = [
        f(*[a.select(d, i) if d is not None else a for a, d in zip(args, in_dims, strict=True)]) for i in range(size)
    ]
    if isinstance(outs[0], tuple):
        return tuple(torch.stack(o) for o in zip(*outs, strict=True))
    return (torch.stack(outs),)


def vmap_cases(dtype):
    """(name, operator, args, in_dims): every operator, batched in each argument alone and in all,
    with the batch dim first and elsewhere, samples of rank 0, 1 and 3, weights of 1, C and [1, W]."""
    g = generator(37)
    x, grad_out = make_values((6, 3, 4, 5), dtype, g), make_values((6, 3, 4, 5), dtype, g, specials=False)
    w, w_last = torch.rand(6, 4, generator=g).to(dtype), torch.rand(6, 1, 5, generator=g).to(dtype)
    leaky_relu = lambda t: torch.ops.actx.leaky_relu(t, 0.1)  # noqa: E731
    leaky_relu_backward = lambda a, b: torch.ops.actx.leaky_relu_backward(a, b, 0.1, False)  # noqa: E731
    prelu, prelu_backward = torch.ops.actx.prelu, torch.ops.actx.prelu_backward
    return [
        ("leaky_relu", leaky_relu, (x,), (0,)),
        ("leaky_relu batch dim 2", leaky_relu, (x.movedim(0, 2).contiguous(),), (2,)),
        ("leaky_relu_backward", leaky_relu_backward, (grad_out, x), (0, 0)),
        ("leaky_relu_backward self batched", leaky_relu_backward, (grad_out[0], x), (None, 0)),
        ("prelu", prelu, (x, w), (0, 0)),
        ("prelu self batched", prelu, (x, w[0]), (0, None)),
        ("prelu weight batched", prelu, (x[0], w), (None, 0)),
        ("prelu rank 0", prelu, (x[:, 0, 0, 0], w[:, :1]), (0, 0)),
        ("prelu rank 1", prelu, (x[:, 0, 0], w[:, :1]), (0, 0)),
        ("prelu [1, W] weight, batch dim 1", prelu, (x, w_last.movedim(0, 1).contiguous()), (0, 1)),
        ("prelu_backward", prelu_backward, (grad_out, x, w), (0, 0, 0)),
        ("prelu_backward self batched", prelu_backward, (grad_out[0], x, w[0]), (None, 0, None)),
        ("prelu_backward weight batched", prelu_backward, (grad_out[0], x[0], w), (None, None, 0)),
        ("prelu_backward rank 0", prelu_backward, (grad_out[:, 0, 0, 0], x[:, 0, 0, 0], w[:, 0]), (0, 0, 0)),
        ("prelu_backward [1, W] weight", prelu_backward, (grad_out, x, w_last), (0, 0, 0)),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_vmap_equals_per_sample_calls(dtype):
    for name, f, args, in_dims in vmap_cases(dtype):
        batched = vmap(f, in_dims=in_dims)(*args)
        expected = per_sample(f, args, in_dims, 6)
        batched = batched if isinstance(batched, tuple) else (batched,)
        assert len(batched) == len(expected), name
        assert_same_values(batched[0], expected[0])
        if len(batched) == 2:  # the weight gradient: the same sums, maybe in another order
            tolerance = 2e-2 if dtype == torch.bfloat16 else None
            torch.testing.assert_close(
                batched[1], expected[1], rtol=tolerance, atol=tolerance, equal_nan=True, msg=name
            )


def test_vmap_inplace_and_errors():
    g = generator(38)
    x = make_values((6, 3, 4), torch.float32, g)
    y = x.clone()
    vmap(lambda t: torch.ops.actx.leaky_relu_(t, 0.1))(y)
    assert_same_values(y, F.leaky_relu(x, 0.1))
    # A weight that does not fit a sample is refused with the same words as outside vmap.
    with pytest.raises(RuntimeError, match=r"actx::prelu: expected `weight` to have 1 element or one per channel"):
        vmap(torch.ops.actx.prelu)(x, torch.rand(6, 5))


def test_torch_compile_of_per_sample_gradients():
    """torch.compile(fullgraph=True) traces vmap(grad(...)) through the batching rules and the
    graph nodes (Meta kernels for the shapes): no graph break, the eager results."""
    torch._dynamo.reset()
    g = generator(39)
    x = make_values((8, 3, 5), torch.float32, g, away_from_zero=True)
    w = torch.rand(3, generator=g) + 0.1

    def per_sample_grads(prelu):
        sample_loss = lambda w, xi: prelu(xi.unsqueeze(0), w).pow(2).sum()  # noqa: E731
        return lambda w, x: vmap(grad(sample_loss), in_dims=(None, 0))(w, x)

    compiled = torch.compile(per_sample_grads(actx_prelu), fullgraph=True, backend="aot_eager")(w, x)
    torch.testing.assert_close(compiled, per_sample_grads(F.prelu)(w, x))
