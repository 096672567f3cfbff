"""Sample inputs for every actx operator, and the references they are compared with.

Each sample is a fresh set of tensors (never shared between tests), with the special values
torch's own rule must handle: NaN, +-inf, +-0.0 and subnormal numbers.
"""

import dataclasses

import torch

import torch_ext  # noqa: F401  (loads the operators)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# Shapes with their channel dim at 1, as torch's prelu reads them.
SHAPES = [(), (0,), (1,), (37,), (3, 5), (2, 0, 3), (2, 3, 17), (2, 4, 5, 6), (2, 3, 4, 5, 3), (1, 1), (3, 70, 9)]

# How an input is laid out in memory, from a contiguous tensor of the same values.
LAYOUTS = {
    "contiguous": lambda t: t,
    "channels_last": lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else None,
    "channels_last_3d": lambda t: t.contiguous(memory_format=torch.channels_last_3d) if t.dim() == 5 else None,
    "transposed": lambda t: t.transpose(0, -1).contiguous().transpose(0, -1) if t.dim() >= 2 else None,
    "sliced": lambda t: torch.cat([t, t], dim=-1)[..., ::2] if t.dim() >= 1 else None,
    "expanded": lambda t: t[..., :1].expand(t.shape) if t.dim() >= 1 and t.shape[-1] > 1 else None,
}

SLOPES = [0.01, 0.0, -0.5, 1.75, 0.25]


def actx_operators(public: bool | None = None) -> list[str]:
    """The names of actx's tensor operators, read off the dispatcher (the settings such as
    _cpu_capability, which take no tensor, left out): all, or only the public ones (public=True)
    or the private ones, whose names start with an underscore (public=False)."""
    names = []
    for qualified in sorted(torch._C._dispatch_get_all_op_names()):
        namespace, _, name = qualified.partition("::")
        if namespace != "actx":
            continue
        schema = getattr(torch.ops.actx, name).default._schema
        if not any(str(a.type).startswith("Tensor") for a in schema.arguments):
            continue
        if public is None or public != name.startswith("_"):
            names.append(name)
    return names


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def make_values(shape, dtype, generator, requires_grad=False, away_from_zero=False, specials=True):
    """Random values with NaN, +-inf, +-0.0 and a subnormal sprinkled in (unless `specials` is False)."""
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    if away_from_zero:
        # Finite differences must not straddle the kink at 0.
        x = x.sign() * (x.abs() + 0.2)
    elif specials and x.numel() >= 8:
        flat = x.view(-1)
        tiny = torch.finfo(dtype).tiny / 4 if dtype != torch.float64 else 1e-310
        specials = torch.tensor(
            [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, -tiny, tiny, -3.0], dtype=torch.float64
        )
        index = torch.randperm(flat.numel(), generator=generator)[: specials.numel()]
        flat[index] = specials
    return x.to(dtype).requires_grad_(requires_grad)


@dataclasses.dataclass
class PreluSample:
    input: torch.Tensor
    weight: torch.Tensor
    # Shape the weight takes against the input in the reference (torch's [C] is [1, C, 1, ...]).
    weight_view: tuple[int, ...]
    name: str


def prelu_weight_shapes(shape) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(weight shape, its broadcast view against `shape`) pairs that actx accepts."""
    nd = len(shape)
    pairs = [((1,), (1,) * nd), ((), (1,) * nd)]
    if nd >= 2:
        channel_view = tuple(shape[1] if d == 1 else 1 for d in range(nd))
        pairs.append(((shape[1],), channel_view))
    if nd >= 2:
        last = (shape[-1],) if nd >= 1 else ()
        pairs.append(((1,) + last, (1,) * (nd - 1) + last))  # [1, C] against [..., C]
    if nd >= 3:
        pairs.append(((shape[1],) + (1,) * (nd - 2), tuple(shape[1] if d == 1 else 1 for d in range(nd))))
        pairs.append((tuple(shape[-2:]), (1,) * (nd - 2) + tuple(shape[-2:])))
    if nd >= 4:
        # Varies along dims 1 and 3: apart in memory for NCHW.
        view = tuple(shape[d] if d in (1, 3) else 1 for d in range(nd))
        pairs.append((view[1:], view))
    return pairs


def prelu_samples(dtype, generator, layouts=LAYOUTS, weight_dtype=None, shapes=SHAPES, specials=True):
    for shape in shapes:
        base = make_values(shape, dtype, generator, specials=specials)
        for layout_name, layout in layouts.items():
            x = layout(base.clone())
            if x is None:
                continue
            for w_shape, w_view in prelu_weight_shapes(shape):
                w = torch.rand(w_shape, generator=generator, dtype=torch.float64) * 2 - 0.5
                w = w.to(weight_dtype or dtype)
                yield PreluSample(x, w, w_view, f"{shape}-{layout_name}-w{tuple(w_shape)}")


def strided_weight_samples(dtype, generator, weight_dtype=None):
    """prelu samples whose weight is not contiguous: a transposed [H, W] and a sliced [C]."""
    wd = weight_dtype or dtype
    for layout_name in ("contiguous", "channels_last"):
        x = LAYOUTS[layout_name](make_values((2, 3, 4, 5), dtype, generator))
        w_hw = (torch.rand(5, 4, generator=generator, dtype=torch.float64) - 0.3).to(wd).t()
        yield PreluSample(x, w_hw, (1, 1, 4, 5), f"{layout_name}-w(4, 5)-transposed")
        w_c = (torch.rand(6, generator=generator, dtype=torch.float64) - 0.3).to(wd)[::2]
        yield PreluSample(x, w_c, (1, 3, 1, 1), f"{layout_name}-w(3,)-sliced")


def leaky_relu_samples(dtype, generator, layouts=LAYOUTS, shapes=SHAPES):
    for shape in shapes:
        base = make_values(shape, dtype, generator)
        for layout_name, layout in layouts.items():
            x = layout(base.clone())
            if x is not None:
                yield x, f"{shape}-{layout_name}"


@dataclasses.dataclass
class BiasSample:
    input: torch.Tensor
    bias: torch.Tensor | None
    negative_slope: float
    gain: float
    clamp: float | None
    dim: int
    name: str

    def args(self):
        return (self.input, self.bias, self.negative_slope, self.gain, self.clamp, self.dim)


# (negative_slope, gain, clamp): StyleGAN2's defaults, NVlabs' clamp, and the signs the originals'
# backward gets wrong (a negative slope, a negative or zero gain).
BIAS_SETTINGS = [(0.2, 2**0.5, None), (0.2, 2**0.5, 1.5), (-0.3, 1.25, None), (0.2, -2.0, 0.75), (0.1, 0.0, None)]


def bias_leaky_relu_samples(dtype, generator, layouts=LAYOUTS, bias_dtype=None, shapes=SHAPES, specials=True):
    """bias_leaky_relu's arguments over shapes, layouts, bias dims (1, the last, negative) or none,
    and BIAS_SETTINGS."""
    k = 0
    for shape in shapes:
        base = make_values(shape, dtype, generator, specials=specials)
        dims = [None] + sorted({1 % max(len(shape), 1), len(shape) - 1}) if len(shape) > 0 else [None]
        for layout_name, layout in layouts.items():
            x = layout(base.clone())
            if x is None:
                continue
            for dim in dims:
                slope, gain, clamp = BIAS_SETTINGS[k % len(BIAS_SETTINGS)]
                k += 1
                bias = None
                if dim is not None:
                    bias = (torch.randn(shape[dim], generator=generator, dtype=torch.float64)).to(bias_dtype or dtype)
                    dim = dim - len(shape) if k % 2 else dim  # negative dims too
                yield BiasSample(
                    x, bias, slope, gain, clamp, 1 if dim is None else dim, f"{shape}-{layout_name}-dim{dim}"
                )


def bias_leaky_relu_reference(x, bias, negative_slope, gain, clamp, dim) -> torch.Tensor:
    """The composition add -> leaky_relu -> mul -> clamp in float (double for float64), rounded
    once to x's dtype."""
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    t = x.to(compute)
    if bias is not None:
        shape = [1] * x.dim()
        shape[dim % x.dim()] = -1
        t = t + bias.to(compute).reshape(shape)
    v = torch.where(t > 0, t, t * negative_slope) * gain
    if clamp is not None:
        v = v.clamp(-clamp, clamp)
    return v.to(x.dtype)


def bias_leaky_relu_grads_reference(s: BiasSample, grad_out):
    """dL/dx as actx defines it (the composition's chain rule in float: (g * gain) * alpha on the
    slope's branch, 0 where clamped: wherever the value is not strictly within (-clamp, clamp), the
    bounds and NaN included), rounded once; dL/db, the sums of those terms in float64, and the
    sizes of the terms."""
    compute = torch.float64 if s.input.dtype == torch.float64 else torch.float32
    t = s.input.to(compute)
    shape = [1] * t.dim()
    if s.bias is not None:
        shape[s.dim % t.dim()] = t.shape[s.dim]
        t = t + s.bias.to(compute).reshape(shape)
    v = torch.where(t > 0, t, t * s.negative_slope) * s.gain
    through_gain = grad_out.to(compute) * s.gain
    d = torch.where(t > 0, through_gain, through_gain * s.negative_slope)
    if s.clamp is not None:
        d = torch.where((v > -s.clamp) & (v < s.clamp), d, 0.0)
    if s.bias is None:
        return d.to(s.input.dtype), None, None
    grad_bias = d.double().sum_to_size(shape).reshape(-1)
    magnitude = d.double().abs().sum_to_size(shape).reshape(-1)
    return d.to(s.input.dtype), grad_bias, magnitude


def prelu_reference(x: torch.Tensor, w: torch.Tensor, w_view) -> torch.Tensor:
    """torch's formula, x > 0 ? x : w * x, rounded once to x's dtype (as torch's prelu does)."""
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    xc = x.to(compute)
    out = torch.where(xc > 0, xc, w.to(compute).reshape(w_view) * xc).to(x.dtype)
    return out


def saved_by(fn):
    """fn()'s result and the tensors autograd packed for its backward."""
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        out = fn()
    return out, packed


def bits_reference(condition: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Packed bits of a bool tensor: bit k (bit k % 8 of byte k // 8) for the element at offset k
    of empty_like(x), as actx's masks and parity bits are laid out."""
    like = torch.empty_like(x)
    order = sorted(range(x.dim()), key=lambda d: -like.stride(d))
    bits = condition.permute(order).reshape(-1).cpu()
    bits = torch.cat([bits, bits.new_zeros((-bits.numel()) % 8)]).view(-1, 8).to(torch.int64)
    return (bits << torch.arange(8)).sum(1).to(torch.uint8).to(x.device)


def assert_same_values(actual: torch.Tensor, expected: torch.Tensor):
    """Bit for bit, -0.0 and infinities included; NaN wherever the reference has NaN."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    a = actual.detach().contiguous()
    e = expected.detach().contiguous()
    a_nan = torch.isnan(a)
    assert torch.equal(a_nan, torch.isnan(e)), "NaN positions differ"
    bits = {
        torch.float64: torch.int64,
        torch.float32: torch.int32,
        torch.float16: torch.int16,
        torch.bfloat16: torch.int16,
    }[a.dtype]
    a_bits = a.view(bits)[~a_nan]
    e_bits = e.view(bits)[~a_nan]
    mismatches = (a_bits != e_bits).nonzero()
    assert mismatches.numel() == 0, (
        f"{mismatches.numel()} values differ, e.g. {a[~a_nan][mismatches[0]]} vs {e[~a_nan][mismatches[0]]}"
    )


# Tolerance of a sum, relative to the sum of its terms' magnitudes, by the dtype it is kept in.
SUM_RTOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def assert_sum_close(actual: torch.Tensor, expected: torch.Tensor, magnitude: torch.Tensor):
    """actual and expected are sums whose terms' magnitudes add up to `magnitude`."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    a = actual.double()
    e = expected.double()
    tol = SUM_RTOL[actual.dtype] * magnitude.double() + 1e-30
    both_nan = torch.isnan(a) & torch.isnan(e)
    ok = both_nan | ((a - e).abs() <= tol) | (a == e)
    assert bool(ok.all()), f"max error {(a - e).abs().max()} over tolerance"


def prelu_grad_input_reference(x, grad, w_broadcast):
    """dL/dx by torch's rule, x > 0 ? grad : w * grad, computed in float (double for float64) and
    rounded once to x's dtype; w_broadcast: the weight shaped to broadcast against x."""
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.where(x > 0, grad.to(compute), w_broadcast.to(compute) * grad.to(compute)).to(x.dtype)


def weight_grad_reference(x, grad, w_view, weight_shape):
    """dL/dw by torch's rule, summed in float64: x > 0 ? 0 : x * grad over the broadcast dims."""
    xd = x.double()
    terms = torch.where(xd > 0, torch.zeros((), dtype=torch.float64), xd * grad.double())
    return terms.sum_to_size(w_view).reshape(weight_shape)


def weight_grad_magnitude(x, grad, w_view, weight_shape):
    """Sum over the broadcast dims of |x * grad| where x <= 0: the size of the terms of dL/dw."""
    xd = x.double()
    terms = torch.where(xd > 0, torch.zeros((), dtype=torch.float64), (xd * grad.double()).abs())
    return terms.sum_to_size(w_view).reshape(weight_shape)


def is_dense(t: torch.Tensor) -> bool:
    """Whether t's elements fill a block of memory without gaps or overlap (in some dim order)."""
    dims = sorted((s, n) for s, n in zip(t.stride(), t.shape, strict=True) if n != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True
