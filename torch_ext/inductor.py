"""How torch.compile's Inductor (and AOTInductor) compiles actx's operators.

Fused (the default): in a graph that Inductor compiles, each actx operator, forward and backward,
becomes the torch expression of its formula (below), which Inductor fuses with the operators around
it (a BatchNorm before, the loss after) as it does torch's own activations. Each operator's values
are actx's bit for bit; the prelu weight gradient is the same sum in Inductor's order.

Opaque: Inductor calls actx's C++/CUDA kernels as external kernels, as it does for any custom
operator (docs/compile.md has the measurements behind the default).

Eager mode, TorchScript, torch.export and the ONNX export are not affected: they keep the actx
operators (Inductor rewrites them when it compiles, after export).

    torch_ext.inductor.set_fusion(False)     # or ACTX_INDUCTOR_FUSION=0 in the environment
    with torch_ext.inductor.fusion(False):   # for what is compiled inside the block

The setting applies to what Dynamo compiles after it: a function (or another instance of a module
class) compiled before keeps its graph until torch._dynamo.reset(). It is part of torch.compile's
on-disk cache keys, so no cache serves a graph compiled under the other setting.

Everything here that touches Inductor's internals (not public API; checked against torch 2.11) is
in this file, and tests/python/test_compile.py fails if a torch release changes it:
- torch._inductor.decomposition.decompositions: the table that Inductor's AOTAutograd tracing
  applies, and fast_random_decomps, the functools.cache'd copy of it that select_decomp_table()
  returns, rebuilt after the table is filled;
- torch._inductor.lowering.make_fallback: in opaque mode the entries return NotImplemented, and
  Inductor needs to be told to call the kernel of an operator that has an entry;
- torch.compiler.config.cache_key_tag: torch's FX graph and AOTAutograd caches hash it, but not the
  decomposition table, so without it a cached graph of one setting would be served under the other
  (or an older actx's graph under a newer one).
"""

import contextlib
import hashlib
import importlib.abc
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

_INDUCTOR_TABLE_MODULE = "torch._inductor.decomposition"
_ENV = "ACTX_INDUCTOR_FUSION"

actx = torch.ops.actx


# ---- The formulas, as Inductor sees them ----------------------------------------------------------
# x > 0 ? x : a * x, written so that Inductor's code does what actx's kernels do: half types are
# computed in float and rounded once (Inductor upcasts pointwise math), NaN and -0.0 take the slope
# branch, and the sign test is on the input itself.


def _slope_view(self: Tensor, weight: Tensor) -> Tensor:
    """prelu's weight aligned to `self`: torch's rule for a 0-d/1-d weight (one slope, or one per
    channel along dim 1), numpy-style broadcasting for two or more dims. The Meta kernel has
    already checked the shapes when Dynamo traced the call."""
    if weight.dim() <= 1 and self.dim() >= 2:
        return weight.reshape([-1] + [1] * (self.dim() - 2))
    if weight.dim() <= 1:
        return weight.reshape(())
    return weight


def _leaky_relu(self: Tensor, negative_slope=0.01) -> Tensor:
    return torch.where(self > 0, self, self * negative_slope)


def _leaky_relu_(self: Tensor, negative_slope=0.01) -> Tensor:
    # Only reached by graphs that are not functionalized (Inductor's own are: there leaky_relu_ is
    # already leaky_relu plus a copy).
    return self.copy_(_leaky_relu(self, negative_slope))


def _leaky_relu_backward(grad_output: Tensor, self: Tensor, negative_slope, self_is_result: bool) -> Tensor:
    # With self_is_result, `self` is the output; its sign is the input's (the autograd kernel only
    # allows that for negative_slope >= 0).
    return torch.where(self > 0, grad_output, grad_output * negative_slope)


def _prelu(self: Tensor, weight: Tensor) -> Tensor:
    # A float32 weight with a half input: the product in float32, rounded once to the input's type.
    return torch.where(self > 0, self, (_slope_view(self, weight) * self).to(self.dtype))


def _prelu_backward(grad_output: Tensor, self: Tensor, weight: Tensor):
    # grad_input, and dL/dw: the sums of grad * x where x <= 0 over the dims the weight does not
    # vary along, accumulated in float (double for float64) as actx's kernels do.
    slope = _slope_view(self, weight)
    positive = self > 0
    grad_input = torch.where(positive, grad_output, (slope * grad_output).to(grad_output.dtype))
    accumulate = torch.float64 if self.dtype == torch.float64 else torch.float32
    terms = torch.where(positive, 0.0, grad_output.to(accumulate) * self.to(accumulate))
    # The slope view broadcasts right-aligned: the dims where it has size 1 are summed away.
    aligned = [1] * (self.dim() - slope.dim()) + list(slope.shape)
    dims = [d for d in range(self.dim()) if aligned[d] == 1]
    if dims:
        terms = terms.sum(dims, keepdim=True)
    return grad_input, terms.reshape(weight.shape).to(weight.dtype)


def _bias_view(self: Tensor, bias: Tensor, dim: int) -> Tensor:
    """bias_leaky_relu's 1-D bias shaped to broadcast along `dim` of self."""
    shape = [1] * self.dim()
    shape[dim % self.dim()] = -1
    return bias.reshape(shape)


def _compute_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _bias_leaky_relu_parts(self: Tensor, bias, negative_slope, gain, dim):
    """t = x + b in the compute type, its branch, and gain * leaky_relu(t): actx's kernels'
    operations in their order, so that the results are theirs bit for bit."""
    t = self.to(_compute_dtype(self))
    if bias is not None:
        t = t + _bias_view(self, bias, dim).to(t.dtype)
    positive = t > 0
    return positive, torch.where(positive, t, t * negative_slope) * gain


def _bias_leaky_relu(self: Tensor, bias=None, negative_slope=0.2, gain=2**0.5, clamp=None, dim=1) -> Tensor:
    _, v = _bias_leaky_relu_parts(self, bias, negative_slope, gain, dim)
    if clamp is not None:
        # NaN compares false both ways and stays NaN (torch.clamp's rule).
        v = torch.where(v > clamp, clamp, torch.where(v < -clamp, -clamp, v))
    return v.to(self.dtype)


def _bias_leaky_relu_backward(grad_output: Tensor, self: Tensor, bias, negative_slope, gain, clamp, dim):
    # dL/dx = (g * gain) * (t > 0 ? 1 : alpha), 0 where the output was clamped; dL/db its sums.
    positive, v = _bias_leaky_relu_parts(self, bias, negative_slope, gain, dim)
    through_gain = grad_output.to(v.dtype) * gain
    d = torch.where(positive, through_gain, through_gain * negative_slope)
    if clamp is not None:
        # Only -clamp < v < clamp passes (as actx's kernels: neither the bound nor NaN).
        d = torch.where((v > -clamp) & (v < clamp), d, 0.0)
    if bias is None:
        return d.to(grad_output.dtype), grad_output.new_empty(0)
    dims = [k for k in range(self.dim()) if k != dim % self.dim()]
    grad_bias = d.sum(dims) if dims else d
    return d.to(grad_output.dtype), grad_bias.to(bias.dtype)


DECOMPOSITIONS: dict[torch._ops.OpOverload, Callable] = {
    actx.leaky_relu.default: _leaky_relu,
    actx.leaky_relu_.default: _leaky_relu_,
    actx.leaky_relu_backward.default: _leaky_relu_backward,
    actx.prelu.default: _prelu,
    actx.prelu_backward.default: _prelu_backward,
    actx.bias_leaky_relu.default: _bias_leaky_relu,
    actx.bias_leaky_relu_backward.default: _bias_leaky_relu_backward,
}
# actx's private operators (what prelu's autograd kernel keeps for the backward) have no entry: a
# traced call keeps its input (docs/memory.md), so no compiled graph holds them.


# ---- The switch -----------------------------------------------------------------------------------


def _fusion_from_environment() -> bool:
    value = os.environ.get(_ENV, "1").strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"actx: expected {_ENV} to be 1 or 0, got {os.environ[_ENV]!r}")


_fusion = _fusion_from_environment()
# What this file's formulas are: a graph compiled with another version of them is another graph.
_FINGERPRINT = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
_applied_tag = ""


def fusion_enabled() -> bool:
    """Whether Inductor compiles actx's operators as fusible torch expressions (True, the default)
    or calls actx's kernels as opaque external kernels (False)."""
    return _fusion


def set_fusion(enabled: bool) -> None:
    """Chooses how Inductor compiles actx's operators from now on: fused (True) or opaque (False).
    Functions compiled before keep their graphs until torch._dynamo.reset()."""
    global _fusion
    if not isinstance(enabled, bool):
        raise TypeError(f"actx: set_fusion expected `enabled` to be a bool, got {type(enabled).__name__}")
    _fusion = enabled
    _tag_caches()


@contextlib.contextmanager
def fusion(enabled: bool) -> Iterator[None]:
    """set_fusion(enabled) inside the block and the setting before it after. Inductor compiles a
    function on its first call (its backward during the first forward), so that call must be made
    inside the block."""
    before = _fusion
    set_fusion(enabled)
    try:
        yield
    finally:
        set_fusion(before)


def _tag_caches() -> None:
    """Appends actx's setting to torch.compile's cache key tag, keeping whatever the user set."""
    global _applied_tag
    import torch.compiler.config as compiler_config

    current = compiler_config.cache_key_tag
    if _applied_tag and current.endswith(_applied_tag):
        current = current[: -len(_applied_tag)]
    _applied_tag = f"[actx {_FINGERPRINT} {'fused' if _fusion else 'opaque'}]"
    compiler_config.cache_key_tag = current + _applied_tag


def _lower_as_external_kernel(op: torch._ops.OpOverload) -> None:
    """What Inductor does by itself for a custom operator it has no decomposition for: an external
    kernel call with the default layout constraint of custom operators. It refuses to do so for an
    operator in its decomposition table, hence override_decomp."""
    from torch._inductor import lowering
    from torch._library.utils import get_layout_constraint_tag

    if op not in lowering.lowerings:
        constraint = lowering.tag_to_layout_constraint(get_layout_constraint_tag(op, with_default=True))
        lowering.make_fallback(op, layout_constraint=constraint, warn=False, override_decomp=True)


def _decomposition(op: torch._ops.OpOverload, formula: Callable) -> Callable:
    """The table entry of `op`: its formula when fusing; else (NotImplemented) the operator stays
    in the graph, and Inductor calls it."""

    def decompose(*args, **kwargs):
        if not _fusion:
            _lower_as_external_kernel(op)
            return NotImplemented
        return formula(*args, **kwargs)

    decompose.__name__ = f"actx_{op.__name__.split('.')[0]}_decomposition"
    return decompose


def _fill_inductor_table() -> None:
    from torch._inductor import decomposition

    for op, formula in DECOMPOSITIONS.items():
        decomposition.decompositions[op] = _decomposition(op, formula)
    # select_decomp_table() serves a functools.cache'd merge of the table; rebuild it.
    decomposition.fast_random_decomps.cache_clear()


class _FillTableOnImport(importlib.abc.MetaPathFinder):
    """Fills Inductor's table when Inductor is first imported, not before: importing it costs more
    than importing torch_ext, and a program that never compiles should not pay for it."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _INDUCTOR_TABLE_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        sys.meta_path.remove(self)
        exec_module = spec.loader.exec_module

        def exec_then_fill(module):
            exec_module(module)
            _fill_inductor_table()

        spec.loader.exec_module = exec_then_fill
        return spec


def _install() -> None:
    _tag_caches()
    if _INDUCTOR_TABLE_MODULE in sys.modules:
        _fill_inductor_table()
    else:
        sys.meta_path.insert(0, _FillTableOnImport())
