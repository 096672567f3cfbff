"""Typed wrappers with torch.nn.functional's signatures, so they are drop-in replacements."""

import torch
from torch import Tensor

SQRT_2 = 2**0.5


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """Like torch.nn.functional.leaky_relu: x if x > 0 else negative_slope * x."""
    if inplace:
        return torch.ops.actx.leaky_relu_(input, negative_slope)
    return torch.ops.actx.leaky_relu(input, negative_slope)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """Like torch.nn.functional.leaky_relu_: in place; under autograd negative_slope must be >= 0."""
    return torch.ops.actx.leaky_relu_(input, negative_slope)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """Like torch.nn.functional.prelu: x if x > 0 else weight * x.

    weight has one element or input.size(1) elements, as in torch; a weight of two or more dims
    broadcasts against input numpy-style (for example [C, 1, 1] for NCHW, or [C] as [1, 1, C]).
    """
    return torch.ops.actx.prelu(input, weight)


def bias_leaky_relu(
    input: Tensor,
    bias: Tensor | None = None,
    negative_slope: float = 0.2,
    gain: float = SQRT_2,
    clamp: float | None = None,
    dim: int = 1,
) -> Tensor:
    """StyleGAN2's fused bias + leaky ReLU + gain, with NVlabs' optional clamp:
    clamp(gain * leaky_relu(input + bias, negative_slope), -clamp, clamp), computed in float
    (double for float64) and rounded once.

    bias (optional) is 1-D with input.size(dim) elements, added along `dim`, of input's dtype or
    float32 with a float16/bfloat16 input. clamp (optional) is >= 0; the gradient is 0 where the
    output was clamped. rosinality's fused_leaky_relu(input, bias, negative_slope, scale) is
    bias_leaky_relu(input, bias, negative_slope, scale); NVlabs' bias_act(x, b, dim, act="lrelu",
    alpha, gain, clamp) is bias_leaky_relu(x, b, alpha, gain, clamp, dim).
    """
    return torch.ops.actx.bias_leaky_relu(input, bias, negative_slope, gain, clamp, dim)
