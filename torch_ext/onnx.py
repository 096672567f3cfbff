"""ONNX export of models that use actx: the operators become ONNX's standard LeakyRelu and PRelu
(and, for bias_leaky_relu, Add, Mul and Clip).

torch.onnx.export does not know custom operators; this module tells it how to write actx's::

    import torch_ext.onnx
    torch_ext.onnx.export(model, (x,), "model.onnx")                  # torch.onnx.export, dynamo
    torch.onnx.export(model, (x,), "model.onnx",                      # the same, by hand
                      custom_translation_table=torch_ext.onnx.translation_table())
    torch_ext.onnx.export(model, (x,), "model.onnx", dynamo=False)    # the TorchScript exporter
    torch_ext.onnx.register_torchscript_symbolics()                   # ... to call it by hand

The translations are written so that an ONNX runtime computes what actx computes, bit for bit, but
for one rule of ONNX's own: LeakyRelu and PRelu return x for x >= 0 where torch returns slope * x
for x <= 0, so where the slope is negative a zero comes out with its sign kept (torch flips it).

- leaky_relu -> LeakyRelu(alpha=negative_slope). ONNX's alpha is a 32-bit float, which is the
  precision actx computes float32/float16/bfloat16 in; for a float64 input whose slope is not a
  float32 value the slope goes in as a float64 tensor of a PRelu node instead, so it is not rounded.
- prelu -> PRelu. ONNX broadcasts the slope numpy-style (right-aligned) while torch puts a 1-d
  weight on dim 1, so a 0-d/1-d weight is reshaped to [C, 1, ..., 1]; a weight of two or more dims
  already follows the ONNX rule. A float32 weight with a float16/bfloat16 input (PRelu needs one
  dtype) is computed as actx does: in float32, rounded once to the input's dtype.
- bias_leaky_relu -> Add (the bias, reshaped along `dim`), LeakyRelu, Mul (the gain), Clip (with a
  clamp), in float32 (float64 for a float64 input) with Casts around a float16/bfloat16 input, as
  actx computes it; the slope goes in as for leaky_relu.
- leaky_relu_ is an in-place operator; export functionalizes it into leaky_relu first.

Needs the onnx and onnxscript packages (and onnxruntime to run the result).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import torch_ext  # noqa: F401  (loads the operator library, so torch.ops.actx.* resolve)

# The opset the dynamo translations are written in; the exporter converts them to the model's.
_ONNXSCRIPT_OPSET = 18
# The TorchScript exporter's symbolics serve this opset and every later one.
_TORCHSCRIPT_OPSET = 9


# --- The translations, written once for both exporters ---------------------------------------------
# `graph` adds nodes: graph.node(op_type, *inputs, **attributes) and graph.constant(tensor).
# Element types are ONNX's (onnx.TensorProto's numbers), which both exporters can name.


def _slope_fits_alpha(negative_slope: float, elem_type: int) -> bool:
    """Whether LeakyRelu's float32 alpha is the slope actx applies to this element type."""
    from onnx import TensorProto

    if elem_type != TensorProto.DOUBLE:
        return True  # actx multiplies float32/float16/bfloat16 inputs by the slope as a float32
    return float(torch.tensor(negative_slope, dtype=torch.float32)) == negative_slope


def _leaky_relu_graph(graph, x, elem_type: int, negative_slope: float):
    if _slope_fits_alpha(negative_slope, elem_type):
        return graph.node("LeakyRelu", x, alpha=float(negative_slope))
    # A float64 input with a slope float32 cannot hold (0.01): a float64 PRelu slope keeps it.
    return graph.node("PRelu", x, graph.constant(torch.tensor(negative_slope, dtype=torch.float64)))


def _prelu_graph(graph, x, x_rank: int, x_type: int, weight, weight_rank: int, weight_type: int):
    from onnx import TensorProto

    slope = weight  # a weight of two or more dims broadcasts numpy-style, as in ONNX
    if weight_rank < 2:
        # One element, or one per channel on dim 1: [C, 1, ..., 1] puts it where torch does; a 0-d
        # input takes a 0-d slope (a [1] slope would make the output 1-d).
        target = [-1] + [1] * (x_rank - 2) if x_rank > 0 else []
        slope = graph.node("Reshape", weight, graph.constant(torch.tensor(target, dtype=torch.int64)))
    if weight_type == x_type:
        return graph.node("PRelu", x, slope)
    # Mixed precision (float32 weight, float16/bfloat16 input): actx computes in float32 and rounds
    # once, so does this; casting the slope down instead would round it first.
    wide = graph.node("PRelu", graph.node("Cast", x, to=TensorProto.FLOAT), slope)
    return graph.node("Cast", wide, to=x_type)


def _bias_leaky_relu_graph(
    graph, x, x_rank: int, x_type: int, bias, negative_slope: float, gain: float, clamp, dim: int
):
    from onnx import TensorProto

    wide = TensorProto.DOUBLE if x_type == TensorProto.DOUBLE else TensorProto.FLOAT
    compute = torch.float64 if wide == TensorProto.DOUBLE else torch.float32
    t = x if x_type == wide else graph.node("Cast", x, to=wide)
    if bias is not None:
        shape = [1] * x_rank
        shape[dim % x_rank] = -1
        b = graph.node("Reshape", bias, graph.constant(torch.tensor(shape, dtype=torch.int64)))
        t = graph.node("Add", t, graph.node("Cast", b, to=wide))
    v = _leaky_relu_graph(graph, t, wide, negative_slope)
    v = graph.node("Mul", v, graph.constant(torch.tensor(gain, dtype=compute)))
    if clamp is not None:
        c = torch.tensor(clamp, dtype=compute)
        v = graph.node("Clip", v, graph.constant(-c), graph.constant(c))
    return v if x_type == wide else graph.node("Cast", v, to=x_type)


# --- The dynamo exporter (torch.onnx.export(..., dynamo=True), torch's default) ---------------------


class _OnnxScriptGraph:
    def __init__(self):
        import onnxscript

        self._op = getattr(onnxscript, f"opset{_ONNXSCRIPT_OPSET}")

    def node(self, op_type, *inputs, **attributes):
        return getattr(self._op, op_type)(*inputs, **attributes)

    def constant(self, tensor):
        import onnx_ir

        return self._op.Constant(value=onnx_ir.tensor(tensor))


def _leaky_relu(self, negative_slope: float = 0.01):
    return _leaky_relu_graph(_OnnxScriptGraph(), self, int(self.dtype), negative_slope)


def _prelu(self, weight):
    return _prelu_graph(
        _OnnxScriptGraph(), self, len(self.shape), int(self.dtype), weight, len(weight.shape), int(weight.dtype)
    )


def _bias_leaky_relu(self, bias=None, negative_slope: float = 0.2, gain: float = 2**0.5, clamp=None, dim: int = 1):
    return _bias_leaky_relu_graph(
        _OnnxScriptGraph(), self, len(self.shape), int(self.dtype), bias, negative_slope, gain, clamp, dim
    )


def translation_table() -> dict[Callable, Callable]:
    """torch.onnx.export's custom_translation_table for the actx operators (dynamo exporter)."""
    return {
        torch.ops.actx.leaky_relu.default: _leaky_relu,
        torch.ops.actx.prelu.default: _prelu,
        torch.ops.actx.bias_leaky_relu.default: _bias_leaky_relu,
    }


# --- The TorchScript exporter (torch.onnx.export(..., dynamo=False)) --------------------------------


class _TorchScriptGraph:
    def __init__(self, g):
        self._g = g

    def node(self, op_type, *inputs, **attributes):
        # g.op names an attribute's type by a suffix: alpha_f, to_i.
        typed = {f"{k}_{'f' if isinstance(v, float) else 'i'}": v for k, v in attributes.items()}
        return self._g.op(op_type, *inputs, **typed)

    def constant(self, tensor):
        return self._g.op("Constant", value_t=tensor)


def _ts_elem_type(value) -> int:
    from onnx import TensorProto

    names = {
        "Float": TensorProto.FLOAT,
        "Double": TensorProto.DOUBLE,
        "Half": TensorProto.FLOAT16,
        "BFloat16": TensorProto.BFLOAT16,
    }
    return names[value.type().scalarType()]


def _ts_leaky_relu(g, self, negative_slope):
    from torch.onnx import symbolic_helper

    slope = symbolic_helper._maybe_get_const(negative_slope, "f")
    return _leaky_relu_graph(_TorchScriptGraph(g), self, _ts_elem_type(self), slope)


def _ts_prelu(g, self, weight):
    from torch.onnx import symbolic_helper

    rank = symbolic_helper._get_tensor_rank
    if rank(self) is None or rank(weight) is None:
        return symbolic_helper._unimplemented("actx::prelu", "an input of unknown rank", self)
    return _prelu_graph(
        _TorchScriptGraph(g), self, rank(self), _ts_elem_type(self), weight, rank(weight), _ts_elem_type(weight)
    )


def _ts_bias_leaky_relu(g, self, bias, negative_slope, gain, clamp, dim):
    from torch.onnx import symbolic_helper

    rank = symbolic_helper._get_tensor_rank(self)
    if rank is None:
        return symbolic_helper._unimplemented("actx::bias_leaky_relu", "an input of unknown rank", self)
    const = symbolic_helper._maybe_get_const
    bias = None if symbolic_helper._is_none(bias) else bias
    clamp = None if symbolic_helper._is_none(clamp) else const(clamp, "f")
    return _bias_leaky_relu_graph(
        _TorchScriptGraph(g),
        self,
        rank,
        _ts_elem_type(self),
        bias,
        const(negative_slope, "f"),
        const(gain, "f"),
        clamp,
        const(dim, "i"),
    )


def register_torchscript_symbolics() -> None:
    """Teaches the TorchScript exporter (dynamo=False) the actx operators; safe to call again."""
    torch.onnx.register_custom_op_symbolic("actx::leaky_relu", _ts_leaky_relu, _TORCHSCRIPT_OPSET)
    torch.onnx.register_custom_op_symbolic("actx::prelu", _ts_prelu, _TORCHSCRIPT_OPSET)
    # Clip with min and max as inputs: opset 11.
    torch.onnx.register_custom_op_symbolic("actx::bias_leaky_relu", _ts_bias_leaky_relu, 11)


def export(model, args: tuple[Any, ...] = (), f=None, *, dynamo: bool = True, **kwargs):
    """torch.onnx.export with the actx operators translated (see the module's docstring)."""
    if dynamo:
        table = dict(kwargs.pop("custom_translation_table", None) or {})
        for target, function in translation_table().items():
            table.setdefault(target, function)
        return torch.onnx.export(model, args, f, dynamo=True, custom_translation_table=table, **kwargs)
    register_torchscript_symbolics()
    return torch.onnx.export(model, args, f, dynamo=False, **kwargs)
