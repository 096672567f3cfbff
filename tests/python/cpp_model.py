"""The model that the C++ examples (examples/cpp) load: uses torch_ext.nn.PReLU and
torch.ops.actx.leaky_relu, saved as TorchScript (carrying an example input and Python's output for
it) and as two AOTInductor packages, one with actx's operators fused by Inductor and one calling
actx's kernels.

    python tests/python/cpp_model.py DIR   (with ACTX_LIBRARY=... to use another build)
writes DIR/model.pt, DIR/model_fused.pt2 and DIR/model_opaque.pt2.
"""

import sys
from pathlib import Path

import torch

try:
    import torch_ext
except ModuleNotFoundError:
    # Run as a script (ctest) where actx is not installed: the checkout's package, with the
    # library named by ACTX_LIBRARY. Never when imported by the tests: a checkout put on sys.path
    # there would be what the processes they spawn import, instead of the package under test.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import torch_ext


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 4)
        self.act = torch_ext.nn.PReLU(4, init=0.2)
        self.register_buffer("example_input", torch.randn(3, 6))
        self.register_buffer("expected_output", torch.empty(0))

    def forward(self, x):
        return torch.ops.actx.leaky_relu(self.act(self.fc(x)), 0.1)


def make_model() -> Model:
    torch.manual_seed(0)
    model = Model()
    with torch.no_grad():
        model.act.weight.uniform_(-0.5, 0.5)
        model.expected_output = model(model.example_input)
    return model


def save(path) -> torch.jit.ScriptModule:
    """The TorchScript model, at `path`."""
    scripted = torch.jit.script(make_model())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(path))
    return scripted


def save_aoti(path, fused: bool) -> str:
    """The AOTInductor package, at `path`: actx's operators fused by Inductor, or actx's kernels."""
    model = make_model().eval()
    with torch_ext.inductor.fusion(fused), torch.no_grad():
        exported = torch.export.export(model, (model.example_input,))
        return torch._inductor.aoti_compile_and_package(exported, package_path=str(path))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    save(out / "model.pt")
    save_aoti(out / "model_fused.pt2", fused=True)
    save_aoti(out / "model_opaque.pt2", fused=False)
