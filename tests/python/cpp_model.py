"""The TorchScript model that the C++ example (examples/cpp) loads: uses torch_ext.nn.PReLU and
torch.ops.actx.leaky_relu, and carries an example input with Python's output for it.

    python tests/python/cpp_model.py OUT.pt   (with ACTX_LIBRARY=... to use another build)
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import torch_ext  # noqa: E402


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 4)
        self.act = torch_ext.nn.PReLU(4, init=0.2)
        self.register_buffer("example_input", torch.randn(3, 6))
        self.register_buffer("expected_output", torch.empty(0))

    def forward(self, x):
        return torch.ops.actx.leaky_relu(self.act(self.fc(x)), 0.1)


def save(path) -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    model = Model()
    with torch.no_grad():
        model.act.weight.uniform_(-0.5, 0.5)
        model.expected_output = model(model.example_input)
    scripted = torch.jit.script(model)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(path))
    return scripted


if __name__ == "__main__":
    save(sys.argv[1])
