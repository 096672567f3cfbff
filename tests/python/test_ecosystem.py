"""actx in the rest of the PyTorch tool chain: torch.compile, torch.export, TorchScript round trips,
model surgery, autocast."""

import io

import pytest
import torch
import torch.nn.functional as F

import torch_ext


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = torch_ext.nn.PReLU(8)
        self.fc = torch.nn.Linear(8 * 6 * 6, 5)
        self.act2 = torch_ext.nn.LeakyReLU(0.1)
        self.w = torch.nn.Parameter(torch.full((1, 5), 0.3))

    def forward(self, x):
        y = self.act1(self.conv(x)).flatten(1)
        y = self.act2(self.fc(y))
        y = torch.ops.actx.leaky_relu(y, 0.2) + torch.ops.actx.prelu(y, self.w)
        return torch_ext.leaky_relu(y * 1.0, 0.05, inplace=True)


# The compiler and export paths run on the CPU everywhere and on CUDA where a GPU is present.
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]


def make_inputs(seed=0, device="cpu"):
    torch.manual_seed(seed)
    return Net().to(device), torch.randn(4, 3, 6, 6, device=device)


def forward_backward(model, x):
    x = x.detach().requires_grad_()
    out = model(x)
    out.square().sum().backward()
    return out.detach(), x.grad, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph_matches_eager(dynamic, device):
    torch._dynamo.reset()
    model, x = make_inputs(0, device)
    eager = forward_backward(model, x)
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, dynamic=dynamic, backend="aot_eager")
    result = forward_backward(compiled, x)
    torch.testing.assert_close(result[0], eager[0])
    torch.testing.assert_close(result[1], eager[1])
    for a, b in zip(result[2], eager[2], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_inductor_matches_eager(device):
    torch._dynamo.reset()
    model, x = make_inputs(1, device)
    eager = forward_backward(model, x)
    model.zero_grad()
    result = forward_backward(torch.compile(model, fullgraph=True), x)
    torch.testing.assert_close(result[0], eager[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(result[1], eager[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_export_and_run_again(device):
    model, x = make_inputs(2, device)
    model.eval()
    expected = model(x)
    exported = torch.export.export(model, (x,))
    assert any("actx" in str(node.target) for node in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(x), expected)
    buffer = io.BytesIO()
    torch.export.save(exported, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.export.load(buffer).module()(x), expected)


def test_torchscript_trace_and_script_round_trip():
    model, x = make_inputs(3)
    expected = model(x)
    for scripted in (torch.jit.trace(model, (x,)), torch.jit.script(model)):
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
        torch.testing.assert_close(scripted(x), expected)
        torch.testing.assert_close(loaded(x), expected)
        assert "actx::" in loaded.graph.__str__() or "actx::" in str(loaded.inlined_graph)


def test_replace_activations_keeps_weights_and_mode():
    torch.manual_seed(4)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 6),
        torch.nn.PReLU(6, init=0.1),
        torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.LeakyReLU(0.3, inplace=True)),
        torch.nn.PReLU(),
    )
    model[1].weight.data.uniform_()
    model.eval()
    x = torch.randn(5, 4)
    expected = model(x)
    weight = model[1].weight
    assert torch_ext.replace_activations(model) is model
    assert isinstance(model[1], torch_ext.nn.PReLU) and model[1].weight is weight
    assert isinstance(model[2][1], torch_ext.nn.LeakyReLU) and model[2][1].inplace
    assert isinstance(model[3], torch_ext.nn.PReLU)
    assert not model[1].training
    assert repr(model[2][1]) == "LeakyReLU(negative_slope=0.3, inplace=True)"
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(
    "device, dtype", [("cpu", torch.bfloat16), pytest.param("cuda", torch.float16, marks=requires_cuda)]
)
def test_autocast_behaves_as_torch(device, dtype):
    torch.manual_seed(5)
    linear = torch.nn.Linear(8, 8).to(device)
    x = torch.randn(4, 8, device=device)
    w = torch.rand(8, device=device)
    with torch.autocast(device, dtype=dtype):
        h = linear(x)
        ours = torch.ops.actx.leaky_relu(h, 0.1)
        theirs = F.leaky_relu(h, 0.1)
        assert ours.dtype == theirs.dtype == dtype
        assert torch.equal(ours, theirs)
        # torch's prelu refuses a float32 weight with a half input; actx takes it (mixed precision).
        out = torch.ops.actx.prelu(h, w)
        assert out.dtype == dtype
        assert torch.equal(out, torch.where(h > 0, h, (w * h.float()).to(dtype)))
