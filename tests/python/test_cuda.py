"""The CUDA kernels against torch's built-ins on CUDA and against actx on the CPU. Skipped without a
GPU (the CPU machines that run CI build the CUDA code but cannot run it)."""

import pytest
import torch
import torch.nn.functional as F

import torch_ext  # noqa: F401

from samples import (
    DTYPES,
    LAYOUTS,
    SLOPES,
    assert_same_values,
    assert_sum_close,
    generator,
    is_dense,
    leaky_relu_samples,
    make_values,
    prelu_reference,
    prelu_samples,
    strided_weight_samples,
    weight_grad_magnitude,
    weight_grad_reference,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def cuda_samples(samples):
    for s in samples:
        s.input = _to_cuda_keep_layout(s.input)
        s.weight = s.weight.cuda()
        yield s


def _to_cuda_keep_layout(t):
    """t on the GPU with the same strides: .cuda() keeps those of a dense tensor (channels_last,
    transposed); an expanded view is expanded again on the GPU, and a sliced one is cut from a
    buffer that holds each value twice."""
    if 0 in t.stride():
        return t[..., :1].contiguous().cuda().expand(t.shape)
    if not is_dense(t):
        return torch.repeat_interleave(t, 2, dim=-1).cuda()[..., ::2]
    return t.cuda()


def assert_weight_grad_like_cpu(gw, gw_cpu, x, grad, weight_view):
    """CUDA's and the CPU's weight gradients agree up to the order of their sums."""
    assert_sum_close(gw.cpu(), gw_cpu, weight_grad_magnitude(x.cpu(), grad.cpu(), weight_view, gw.shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_cuda_matches_torch_and_cpu(dtype):
    for x, _name in leaky_relu_samples(dtype, generator()):
        xc = _to_cuda_keep_layout(x)
        for slope in SLOPES:
            actual = torch.ops.actx.leaky_relu(xc, slope)
            assert_same_values(actual.cpu(), F.leaky_relu(xc, slope).cpu())
            assert_same_values(actual.cpu(), torch.ops.actx.leaky_relu(x, slope))


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_cuda_matches_reference(dtype):
    for s in cuda_samples(prelu_samples(dtype, generator())):
        actual = torch.ops.actx.prelu(s.input, s.weight)
        assert_same_values(actual.cpu(), prelu_reference(s.input.cpu(), s.weight.cpu(), s.weight_view))
        if s.weight.dim() <= 1:
            assert_same_values(actual.cpu(), F.prelu(s.input, s.weight).cpu())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_prelu_cuda_mixed_precision(dtype):
    for s in cuda_samples(prelu_samples(dtype, generator(), weight_dtype=torch.float32)):
        actual = torch.ops.actx.prelu(s.input, s.weight)
        assert_same_values(actual.cpu(), prelu_reference(s.input.cpu(), s.weight.cpu(), s.weight_view))


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_cuda_gradients(dtype):
    layouts = {k: LAYOUTS[k] for k in ["contiguous", "channels_last", "transposed"]}
    for s in cuda_samples(prelu_samples(dtype, generator(), layouts=layouts)):
        grad = make_values(s.input.shape, dtype, generator(5)).cuda()
        gx, gw = torch.ops.actx.prelu_backward(grad, s.input, s.weight)
        gx_cpu, gw_cpu = torch.ops.actx.prelu_backward(grad.cpu(), s.input.cpu(), s.weight.cpu())
        assert_same_values(gx.cpu(), gx_cpu)
        x_cpu, grad_cpu = s.input.cpu(), grad.cpu()
        expected = weight_grad_reference(x_cpu, grad_cpu, s.weight_view, s.weight.shape)
        assert_sum_close(
            gw.cpu(), expected.to(dtype), weight_grad_magnitude(x_cpu, grad_cpu, s.weight_view, s.weight.shape)
        )


@pytest.mark.parametrize(
    "dtype,weight_dtype", [(torch.float32, None), (torch.bfloat16, None), (torch.bfloat16, torch.float32)]
)
def test_prelu_cuda_with_a_strided_weight(dtype, weight_dtype):
    """A weight that is not contiguous (kept so on the GPU) gives what the CPU gives."""
    for s in strided_weight_samples(dtype, generator(9), weight_dtype):
        x, w = s.input.cuda(), _to_cuda_keep_layout(s.weight)
        assert not w.is_contiguous(), s.name
        grad = make_values(s.input.shape, dtype, generator(10))
        assert_same_values(torch.ops.actx.prelu(x, w).cpu(), torch.ops.actx.prelu(s.input, s.weight))
        gx, gw = torch.ops.actx.prelu_backward(grad.cuda(), x, w)
        gx_cpu, gw_cpu = torch.ops.actx.prelu_backward(grad, s.input, s.weight)
        assert_same_values(gx.cpu(), gx_cpu)
        assert gw.dtype == w.dtype and gw.shape == w.shape, s.name
        assert_weight_grad_like_cpu(gw, gw_cpu, s.input, grad, s.weight_view)


@pytest.mark.parametrize(
    "dtype,weight_dtype",
    [
        (torch.float32, None),
        (torch.float64, None),
        (torch.float16, None),
        (torch.bfloat16, None),
        (torch.bfloat16, torch.float32),
    ],
)
def test_prelu_cuda_weight_per_last_dim(dtype, weight_dtype):
    """[N, L, C] with a [1, C] weight, as the CPU computes it: C a multiple of a 16-byte vector
    reads the weights in vectors (aligned weight), one element off the alignment or an odd C not."""
    g = generator(12)
    for c in (8, 16, 24, 64, 7):
        x = make_values((3, 5, c), dtype, g)
        grad = make_values(x.shape, dtype, g)
        w_full = (torch.rand(c + 1, generator=g, dtype=torch.float64) - 0.3).to(weight_dtype or dtype)
        w_full_cuda = w_full.cuda()
        for offset in (0, 1):
            w, w_cuda = w_full[offset : offset + c].view(1, c), w_full_cuda[offset : offset + c].view(1, c)
            assert_same_values(torch.ops.actx.prelu(x.cuda(), w_cuda).cpu(), torch.ops.actx.prelu(x, w))
            gx, gw = torch.ops.actx.prelu_backward(grad.cuda(), x.cuda(), w_cuda)
            gx_cpu, gw_cpu = torch.ops.actx.prelu_backward(grad, x, w)
            assert_same_values(gx.cpu(), gx_cpu)
            assert_weight_grad_like_cpu(gw, gw_cpu, x, grad, (1, 1, c))


def test_cuda_gradcheck_and_gradgradcheck():
    g = generator(11)
    for shape, w_shape in [((3, 4, 5), (4,)), ((2, 3, 4, 5), (3, 1, 5)), ((4, 7), (1, 7)), ((2, 3, 40, 40), (3,))]:
        x = make_values(shape, torch.float64, g, away_from_zero=True).cuda().requires_grad_()
        w = (torch.rand(w_shape, generator=g, dtype=torch.float64) + 0.1).cuda().requires_grad_()
        assert torch.autograd.gradcheck(torch.ops.actx.prelu, (x, w), check_forward_ad=True)
        assert torch.autograd.gradgradcheck(torch.ops.actx.prelu, (x, w), check_fwd_over_rev=True)
    x = make_values((3, 4, 5), torch.float64, g, away_from_zero=True).cuda().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: torch.ops.actx.leaky_relu(t, 0.3), (x,), check_forward_ad=True)


def test_cuda_weight_gradient_is_deterministic():
    g = generator(12)
    for shape in [(32, 64, 56, 56), (8, 512, 256)]:
        x = make_values(shape, torch.float32, g, specials=False).cuda()
        grad = make_values(shape, torch.float32, g, specials=False).cuda()
        w = torch.rand(shape[1]).cuda()
        first = torch.ops.actx.prelu_backward(grad, x, w)[1]
        for _ in range(3):
            assert torch.equal(torch.ops.actx.prelu_backward(grad, x, w)[1], first)
        if x.dim() == 4:  # the other kernel (columns) gives the same sums up to summation order
            cl = torch.channels_last
            other = torch.ops.actx.prelu_backward(grad.contiguous(memory_format=cl), x.contiguous(memory_format=cl), w)
            torch.testing.assert_close(other[1], first, rtol=1e-4, atol=1e-2)


def test_cuda_inplace_and_errors():
    x = torch.randn(4, 6, device="cuda")
    expected = F.leaky_relu(x, 0.2)
    assert torch.ops.actx.leaky_relu_(x, 0.2) is x
    assert_same_values(x.cpu(), expected.cpu())
    with pytest.raises(RuntimeError, match="expected `weight` on the same device as `self`"):
        torch.ops.actx.prelu(torch.randn(2, 3, device="cuda"), torch.rand(3))
    with pytest.raises(RuntimeError, match="expected `grad_output` on the same device as `self`"):
        torch.ops.actx.prelu_backward(torch.randn(2, 3), torch.randn(2, 3, device="cuda"), torch.rand(3, device="cuda"))


@pytest.mark.slow
def test_cuda_more_than_2_31_elements():
    n = 2**31 + 1025
    x = torch.empty(n, dtype=torch.bfloat16, device="cuda").uniform_(-1, 1)
    y = torch.ops.actx.leaky_relu(x, 0.5)
    tail = slice(n - 4096, n)
    assert_same_values(y[tail].cpu(), F.leaky_relu(x[tail], 0.5).cpu())
    del y
    gx, gw = torch.ops.actx.prelu_backward(x, x, torch.tensor([0.5], device="cuda"))
    assert_same_values(
        gx[tail].cpu(), torch.where(x[tail] > 0, x[tail], 0.5 * x[tail].float()).to(torch.bfloat16).cpu()
    )
    expected = torch.where(x > 0, 0.0, x.float() * x.float()).double().sum()
    torch.testing.assert_close(gw.double().cpu(), expected.cpu().reshape(1), rtol=1e-2, atol=0)


def torch_func_results(device):
    """jvp, jacrev and per-sample weight gradients (vmap of grad) of prelu on `device`."""
    g = generator(13)
    x = make_values((6, 3, 4, 5), torch.float64, g, away_from_zero=True).to(device)
    w = (torch.rand(3, generator=g, dtype=torch.float64) + 0.1).to(device)
    tx = make_values(x.shape, torch.float64, g, specials=False).to(device)
    prelu = torch.ops.actx.prelu
    sample_loss = lambda w, xi: prelu(xi.unsqueeze(0), w).pow(2).sum()  # noqa: E731
    return [
        *torch.func.jvp(lambda t: prelu(t, w), (x,), (tx,)),
        torch.func.jacrev(prelu, argnums=1)(x, w),
        torch.func.vmap(torch.func.grad(sample_loss), in_dims=(None, 0))(w, x),
    ]


def test_cuda_torch_func_matches_cpu():
    for cuda, cpu in zip(torch_func_results("cuda"), torch_func_results("cpu"), strict=True):
        assert cuda.is_cuda
        torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-12, atol=1e-12)
