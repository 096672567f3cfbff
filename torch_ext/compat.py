"""Drop-in: the fused bias + leaky ReLU of StyleGAN2's descendants served by actx.

`install(package)` makes a package's existing code run on actx's operators without editing it and
without compiling anything:

- "basicsr" (and so GFPGAN): basicsr.ops.fused_act's compiled extension `fused_act_ext`;
- "mmcv": mmcv.ops.fused_bias_leakyrelu's extension (`ext_module.fused_bias_leakyrelu`);
- "stylegan": NVlabs' torch_utils.ops.bias_act (stylegan2-ada-pytorch, stylegan3) for act "lrelu",
  "relu" and "linear"; other activations go on to NVlabs' own reference path.

Those packages look their extension up at call time (a module-level name), so installing before or
after they are imported works alike. Besides the extension, the package's fused function (the one its
FusedLeakyReLU module calls) becomes actx's differentiable operator: it keeps one bit per element
for the backward instead of the output, and its gradient is right for every slope and gain. The
extension interface itself receives only the forward's output for the backward, whose sign decides
the branch only for a slope >= 0 and a gain >= 0; outside that it raises instead of answering wrong.
"""

import importlib
import sys
import types

import torch
from torch import Tensor

from .functional import SQRT_2, bias_leaky_relu

__all__ = ["FusedBiasActExtension", "install", "PACKAGES"]


def _bias_along_dim1(bias: Tensor, like: Tensor) -> Tensor:
    return bias.reshape([-1 if i == 1 else 1 for i in range(like.dim())])


class FusedBiasActExtension:
    """The interface of rosinality's compiled `fused_bias_act` (basicsr's fused_act_ext.fused_bias_act,
    mmcv's _ext.fused_bias_leakyrelu), on every device and dtype actx supports.

    act 3 is leaky ReLU with slope alpha, act 1 linear; the bias (empty: none) is added along dim 1.
    grad 0: scale * act(input + bias). grad 1 (the backward): input is an incoming gradient (plus, for
    second order, a gradient of the bias in `bias`), refer the forward's output, and the result is
    scale * (input + bias) where refer > 0 and scale * alpha * (input + bias) elsewhere.
    """

    @staticmethod
    def fused_bias_act(
        input: Tensor, bias: Tensor, refer: Tensor, act: int, grad: int, alpha: float, scale: float
    ) -> Tensor:
        if act not in (1, 3):
            raise ValueError(f"actx.compat: fused_bias_act expected act 1 (linear) or 3 (leaky ReLU), got {act}")
        if grad not in (0, 1):
            raise ValueError(f"actx.compat: fused_bias_act expected grad 0 (forward) or 1 (backward), got {grad}")
        slope = float(alpha) if act == 3 else 1.0
        scale = float(scale)
        bias_or_none = bias if bias.numel() > 0 else None
        if grad == 0:
            return torch.ops.actx.bias_leaky_relu(input, bias_or_none, slope, scale, None, 1)
        if act == 3 and not (slope >= 0 and scale >= 0):
            raise ValueError(
                "actx.compat: fused_bias_act's backward (grad=1) decides each element's branch by the sign of "
                "the forward's output `refer`, which is right only for alpha >= 0 and scale >= 0; got "
                f"alpha={alpha}, scale={scale}. torch_ext.bias_leaky_relu and torch_ext.nn.FusedLeakyReLU "
                "are right for every slope and gain"
            )
        if act == 3 and refer.shape != input.shape:
            raise ValueError(
                f"actx.compat: fused_bias_act's backward expected `refer` (the forward's output) of the "
                f"gradient's shape {list(input.shape)}, got {list(refer.shape)}"
            )
        total = input if bias_or_none is None else input + _bias_along_dim1(bias_or_none, input)
        if act == 3:
            total = torch.ops.actx.leaky_relu_backward(total, refer, slope, False)
        return total * scale

    @staticmethod
    def fused_bias_leakyrelu(
        input: Tensor,
        bias: Tensor,
        empty: Tensor,
        act: int = 3,
        grad: int = 0,
        alpha: float = 0.2,
        scale: float = SQRT_2,
    ) -> Tensor:
        """mmcv's name and keywords for fused_bias_act."""
        return FusedBiasActExtension.fused_bias_act(input, bias, empty, act, grad, alpha, scale)


def fused_leaky_relu(input: Tensor, bias: Tensor | None, negative_slope: float = 0.2, scale: float = SQRT_2) -> Tensor:
    """rosinality's and basicsr's fused_leaky_relu (mmcv's fused_bias_leakyrelu), differentiable to any
    order by actx's autograd."""
    return bias_leaky_relu(input, bias, float(negative_slope), float(scale))


def _import(package: str, name: str) -> types.ModuleType:
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"actx.compat.install({package!r}): cannot import {name} ({error})") from error


def _set(name: str, attribute: str, value: object) -> None:
    # The attribute in a package module that re-exports it, where that module is loaded.
    module = sys.modules.get(name)
    if module is not None and hasattr(module, attribute):
        setattr(module, attribute, value)


def _install_basicsr() -> types.ModuleType:
    module = _import("basicsr", "basicsr.ops.fused_act.fused_act")
    module.fused_act_ext = FusedBiasActExtension
    module.fused_leaky_relu = fused_leaky_relu
    _set("basicsr.ops.fused_act", "fused_leaky_relu", fused_leaky_relu)
    return module


def _install_mmcv() -> types.ModuleType:
    module = _import("mmcv", "mmcv.ops.fused_bias_leakyrelu")
    module.ext_module = FusedBiasActExtension
    module.fused_bias_leakyrelu = fused_leaky_relu
    _set("mmcv.ops", "fused_bias_leakyrelu", fused_leaky_relu)
    return module


# NVlabs' activations that are a leaky ReLU, with their slope (None: the caller's alpha, or the default).
_STYLEGAN_SLOPES = {"linear": 1.0, "relu": 0.0, "lrelu": None}


def _install_stylegan() -> types.ModuleType:
    module = _import("stylegan", "torch_utils.ops.bias_act")
    original = getattr(module.bias_act, "_actx_original", module.bias_act)
    specs = module.activation_funcs

    def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="cuda"):
        if act not in _STYLEGAN_SLOPES:
            return original(x, b, dim, act, alpha, gain, clamp, impl="ref")
        slope = _STYLEGAN_SLOPES[act]
        if slope is None:
            slope = float(alpha if alpha is not None else specs[act].def_alpha)
        gain = float(gain if gain is not None else specs[act].def_gain)
        # NVlabs: clamp None (or -1) is no clamp.
        clamp = None if clamp is None or clamp < 0 else float(clamp)
        return torch.ops.actx.bias_leaky_relu(x, b, slope, gain, clamp, dim)

    bias_act.__doc__ = original.__doc__
    bias_act._actx_original = original
    module.bias_act = bias_act
    return module


PACKAGES = {"basicsr": _install_basicsr, "mmcv": _install_mmcv, "stylegan": _install_stylegan}


def install(package: str) -> types.ModuleType:
    """Serves `package`'s fused bias + leaky ReLU with actx ("basicsr", "mmcv" or "stylegan"; see the
    module's doc). Imports the package's module if it is not loaded yet, and returns it. Safe to
    call again."""
    if package not in PACKAGES:
        raise ValueError(f"actx.compat.install: expected one of {sorted(PACKAGES)}, got {package!r}")
    return PACKAGES[package]()
