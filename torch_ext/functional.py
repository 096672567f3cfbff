"""Typed wrappers with torch.nn.functional's signatures, so they are drop-in replacements."""

import torch
from torch import Tensor


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
