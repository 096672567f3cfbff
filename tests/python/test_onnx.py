"""ONNX export (torch_ext.onnx): standard LeakyRelu/PRelu nodes, a valid model, the same values.

onnxruntime's CPU kernels for LeakyRelu and PRelu cover float32 and float16; float64 and bfloat16
models are run on onnx's reference evaluator instead.
"""

import io
import warnings

import ml_dtypes
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx.reference import ReferenceEvaluator

import torch_ext
import torch_ext.onnx

from samples import SLOPES, assert_same_values, make_values, prelu_weight_shapes

EXPORTERS = {"dynamo": True, "torchscript": False}
SHAPES = [(), (37,), (3, 5), (2, 3, 17), (2, 4, 5, 6)]


def export(model, args, dynamo, **kwargs) -> onnx.ModelProto:
    """The exported model (exported for inference, as torch asks), checked by onnx.checker (types
    and shapes inferred too)."""
    model.eval()
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation notices (actx supports it while torch has it).
        for message in (
            "You are using the legacy TorchScript-based ONNX export",
            "The feature will be removed. Please remove usage of this function",
        ):
            warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
        if dynamo:
            proto = torch_ext.onnx.export(model, args, dynamo=True, verbose=False, **kwargs).model_proto
        else:
            buffer = io.BytesIO()
            torch_ext.onnx.export(model, args, buffer, dynamo=False, **kwargs)
            proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return proto


def op_types(proto):
    return [node.op_type for node in proto.graph.node]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.contiguous().numpy()


def to_torch(a) -> torch.Tensor:
    a = np.array(a, order="C")  # a copy that keeps 0-d arrays 0-d (ascontiguousarray makes them 1-d)
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def run_onnxruntime(proto, inputs):
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [to_torch(a) for a in session.run(None, dict(zip(names, map(to_numpy, inputs), strict=True)))]


def run_reference(proto, inputs):
    names = [i.name for i in proto.graph.input]
    # The inputs hold infinities on purpose: the evaluator's numpy computes -inf * 0 = NaN as torch
    # does, and would warn about it.
    with np.errstate(invalid="ignore"):
        outputs = ReferenceEvaluator(proto).run(None, dict(zip(names, map(to_numpy, inputs), strict=True)))
    return [to_torch(a) for a in outputs]


def onnx_zero_rule(expected, x, slope):
    """ONNX defines LeakyRelu/PRelu as x for x >= 0, torch as slope * x for x <= 0: they differ only
    in the sign of a zero output where the slope is negative (torch: -slope * +0.0 = -0.0)."""
    slope = torch.as_tensor(slope, dtype=torch.float64)
    return torch.where((x == 0) & (slope < 0), x, expected)


class Activations(torch.nn.Module):
    """leaky_relu at every sample slope and prelu with every weight shape, on one input."""

    def forward(self, x, *weights):
        outs = [torch.ops.actx.leaky_relu(x, slope) for slope in SLOPES]
        return tuple(outs + [torch.ops.actx.prelu(x, w) for w in weights])


def activation_inputs(shape, dtype, weight_dtype=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = make_values(shape, dtype, g)
    weights = [
        (torch.rand(w_shape, generator=g, dtype=torch.float64) * 2 - 0.5).to(weight_dtype or dtype)
        for w_shape, _ in prelu_weight_shapes(shape)
    ]
    return (x, *weights)


def activation_slopes(x, *weights):
    """The slope each output of Activations applies, shaped to broadcast against x."""
    views = [view for _, view in prelu_weight_shapes(tuple(x.shape))]
    return list(SLOPES) + [w.reshape(view) for w, view in zip(weights, views, strict=True)]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(
    "dtype, weight_dtype", [(torch.float32, None), (torch.float16, None), (torch.float16, torch.float32)], ids=str
)
def test_activations_equal_onnxruntime_bit_for_bit(exporter, shape, dtype, weight_dtype):
    inputs = activation_inputs(shape, dtype, weight_dtype)
    proto = export(Activations(), inputs, EXPORTERS[exporter])
    types = set(op_types(proto))
    assert {"LeakyRelu", "PRelu"} <= types <= {"LeakyRelu", "PRelu", "Reshape", "Constant", "Cast"}
    expected = Activations()(*inputs)
    actual = run_onnxruntime(proto, inputs)
    assert len(actual) == len(expected)
    for a, e, slope in zip(actual, expected, activation_slopes(*inputs), strict=True):
        # NaN, +-inf, -0.0 and subnormals included.
        assert_same_values(a, onnx_zero_rule(e, inputs[0], slope))


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_float64_keeps_its_slope_exact(exporter):
    # LeakyRelu's alpha is a float32: a slope it holds exactly stays a LeakyRelu, 0.01 (which it
    # does not) becomes a PRelu with a float64 slope, so a float64 model computes what actx does.
    class Model(torch.nn.Module):
        def forward(self, x, w):
            return torch.ops.actx.leaky_relu(x, 0.5), torch.ops.actx.leaky_relu(x, 0.01), torch.ops.actx.prelu(x, w)

    inputs = activation_inputs((2, 4, 5, 6), torch.float64)[:2]
    proto = export(Model(), inputs, EXPORTERS[exporter])
    assert op_types(proto).count("LeakyRelu") == 1 and op_types(proto).count("PRelu") == 2
    for a, e in zip(run_reference(proto, inputs), Model()(*inputs), strict=True):
        assert_same_values(a, e)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_bfloat16_model(exporter):
    inputs = activation_inputs((2, 4, 5, 6), torch.bfloat16)
    proto = export(Activations(), inputs, EXPORTERS[exporter])
    actual = run_reference(proto, inputs)
    expected = Activations()(*inputs)
    # PRelu multiplies two bfloat16 numbers, exact in any wider type: bit for bit.
    for a, e in zip(actual[len(SLOPES) :], expected[len(SLOPES) :], strict=True):
        assert_same_values(a, e)
    # LeakyRelu: actx (like torch) rounds x * slope to float32 and then to bfloat16; the reference
    # evaluator multiplies in float64 and rounds once, which can differ by one bfloat16 step.
    for a, e in zip(actual[: len(SLOPES)], expected[: len(SLOPES)], strict=True):
        step = (a.view(torch.int16).int() - e.view(torch.int16).int()).abs()
        assert torch.equal(torch.isnan(a), torch.isnan(e))
        assert int(step[~torch.isnan(e)].max()) <= 1


class Net(torch.nn.Module):
    """A model as users write it: actx modules, the functional in-place form, a [1, C] weight."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = torch_ext.nn.PReLU(8, init=0.1)
        self.fc = torch.nn.Linear(8 * 6 * 6, 5)
        self.act2 = torch_ext.nn.LeakyReLU(0.1)
        self.w = torch.nn.Parameter(torch.linspace(-0.5, 0.5, 5).reshape(1, 5))

    def forward(self, x):
        y = self.act1(self.conv(x)).flatten(1)
        y = torch.ops.actx.prelu(self.act2(self.fc(y)), self.w)
        return torch_ext.leaky_relu(y * 2.0, 0.05, inplace=True)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_model_with_dynamic_batch(exporter):
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(4, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    if EXPORTERS[exporter]:
        kwargs = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)}
    else:
        kwargs = {"input_names": ["x"], "dynamic_axes": {"x": {0: "batch"}}}
    proto = export(model, (x,), EXPORTERS[exporter], **kwargs)
    assert op_types(proto).count("PRelu") == 2 and op_types(proto).count("LeakyRelu") == 2
    assert not [n for n in proto.graph.node if n.domain not in ("", "ai.onnx")]  # no custom ops
    for batch in (4, 7):
        x = torch.randn(batch, 3, 6, 6)
        (actual,) = run_onnxruntime(proto, [x])
        # Conv and Gemm round differently in onnxruntime; the activations themselves are exact.
        torch.testing.assert_close(actual, model(x).detach(), rtol=1e-5, atol=1e-6)


def test_scripted_model_exports():
    torch.manual_seed(0)
    model = Net().eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 6, 6)
    proto = export(scripted, (x,), dynamo=False)
    assert {"PRelu", "LeakyRelu"} <= set(op_types(proto))
    (actual,) = run_onnxruntime(proto, [x])
    torch.testing.assert_close(actual, model(x).detach(), rtol=1e-5, atol=1e-6)


def test_user_translations_are_kept():
    # export() adds actx's translations to the caller's table without replacing the caller's own.
    def my_leaky_relu(self, negative_slope: float = 0.01):
        import onnxscript

        return onnxscript.opset18.Relu(self)

    table = {torch.ops.actx.leaky_relu.default: my_leaky_relu}
    x, w = activation_inputs((2, 3, 4), torch.float32)[:2]
    model = Activations().eval()
    proto = torch_ext.onnx.export(model, (x, w), custom_translation_table=table, verbose=False).model_proto
    assert "LeakyRelu" not in op_types(proto) and "Relu" in op_types(proto) and "PRelu" in op_types(proto)
