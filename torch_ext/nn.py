"""Modules with torch.nn.LeakyReLU's and torch.nn.PReLU's constructor arguments, repr and
state_dict keys, so a checkpoint of either loads into the other; and FusedLeakyReLU with the
state_dict of StyleGAN2's (rosinality's, basicsr's, mmcv's). All work under torch.jit.script.
"""

import torch
from torch import Tensor

from . import functional as F


class LeakyReLU(torch.nn.Module):
    __constants__ = ["inplace", "negative_slope"]
    inplace: bool
    negative_slope: float

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        inplace_str = ", inplace=True" if self.inplace else ""
        return f"negative_slope={self.negative_slope}{inplace_str}"


class PReLU(torch.nn.Module):
    __constants__ = ["num_parameters"]
    num_parameters: int

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        self.num_parameters = num_parameters
        super().__init__()
        self.init = init
        self.weight = torch.nn.Parameter(torch.empty(num_parameters, **factory_kwargs))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.constant_(self.weight, self.init)

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class FusedLeakyReLU(torch.nn.Module):
    """StyleGAN2's FusedLeakyReLU: scale * leaky_relu(input + bias, negative_slope), the bias
    (a learned [channel] parameter, key "bias", zeros at first; none with bias=False) along dim 1.
    A checkpoint of rosinality's, basicsr's or mmcv's FusedLeakyReLU loads into it."""

    __constants__ = ["negative_slope", "scale"]
    negative_slope: float
    scale: float

    def __init__(
        self,
        channel: int,
        negative_slope: float = 0.2,
        scale: float = F.SQRT_2,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.channel = channel
        self.negative_slope = negative_slope
        self.scale = scale
        if bias:
            self.bias = torch.nn.Parameter(torch.zeros(channel, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.bias_leaky_relu(input, self.bias, self.negative_slope, self.scale)

    def extra_repr(self) -> str:
        return f"{self.channel}, negative_slope={self.negative_slope}, scale={self.scale}, bias={self.bias is not None}"


# StyleGAN2's FusedLeakyReLU as rosinality wrote it and basicsr, GFPGAN and mmcv (FusedBiasLeakyReLU)
# copied it: recognized by class name and attributes, since each copy is its own class.
_FUSED_LEAKY_RELU_NAMES = ("FusedLeakyReLU", "FusedBiasLeakyReLU")


def _is_foreign_fused_leaky_relu(module: torch.nn.Module) -> bool:
    return (
        type(module).__name__ in _FUSED_LEAKY_RELU_NAMES
        and not isinstance(module, FusedLeakyReLU)
        and hasattr(module, "negative_slope")
        and hasattr(module, "scale")
        and isinstance(getattr(module, "bias", None), torch.nn.Parameter)
        and module.bias.dim() == 1
    )


def replace_activations(model: torch.nn.Module) -> torch.nn.Module:
    """Swaps every torch.nn.LeakyReLU and torch.nn.PReLU in `model` for the actx modules, in place,
    and every FusedLeakyReLU of rosinality's StyleGAN2, basicsr or GFPGAN (FusedBiasLeakyReLU of mmcv)
    for actx's FusedLeakyReLU, keeping their settings, weights (the same Parameter objects, so
    optimizers keep tracking them) and training mode. Returns `model`."""
    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.LeakyReLU) and not isinstance(child, LeakyReLU):
            new = LeakyReLU(child.negative_slope, child.inplace)
        elif _is_foreign_fused_leaky_relu(child):
            new = FusedLeakyReLU(child.bias.numel(), float(child.negative_slope), float(child.scale), bias=False)
            new.bias = child.bias
        elif isinstance(child, torch.nn.PReLU) and not isinstance(child, PReLU):
            new = PReLU.__new__(PReLU)
            torch.nn.Module.__init__(new)
            new.num_parameters = child.num_parameters
            new.init = getattr(child, "init", 0.25)
            new.weight = child.weight
        else:
            replace_activations(child)
            continue
        new.train(child.training)
        setattr(model, name, new)
    return model
