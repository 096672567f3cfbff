"""torch_ext.nn modules: drop-in for torch.nn's (arguments, repr, state_dict), scriptable."""

import io

import pytest
import torch

import torch_ext


def test_leaky_relu_module_matches_torch():
    for kwargs in [{}, {"negative_slope": 0.2}, {"negative_slope": 0.1, "inplace": True}]:
        ours, theirs = torch_ext.nn.LeakyReLU(**kwargs), torch.nn.LeakyReLU(**kwargs)
        assert repr(ours) == repr(theirs)
        x = torch.randn(4, 5)
        assert torch.equal(ours(x.clone()), theirs(x.clone()))


def test_prelu_module_matches_torch_and_shares_checkpoints():
    for kwargs in [{}, {"num_parameters": 3, "init": 0.1}]:
        ours, theirs = torch_ext.nn.PReLU(**kwargs), torch.nn.PReLU(**kwargs)
        assert repr(ours) == repr(theirs)
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        theirs.weight.data.uniform_()
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(2, ours.num_parameters, 6)
        assert torch.equal(ours(x), theirs(x))
        theirs.load_state_dict(ours.state_dict())


def test_prelu_module_trains():
    m = torch_ext.nn.PReLU(3)
    x = -torch.rand(4, 3, 5)
    m(x).sum().backward()
    torch.testing.assert_close(m.weight.grad, x.sum((0, 2)))


@pytest.mark.parametrize(
    "module", [torch_ext.nn.LeakyReLU(0.3), torch_ext.nn.LeakyReLU(0.3, inplace=True), torch_ext.nn.PReLU(4, 0.2)]
)
def test_modules_script_save_and_load(module):
    scripted = torch.jit.script(module)
    x = torch.randn(2, 4, 3)
    expected = module(x.clone())
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    assert torch.equal(scripted(x.clone()), expected)
    assert torch.equal(loaded(x.clone()), expected)


def test_scripted_functions_have_gradients():
    @torch.jit.script
    def f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.ops.actx.prelu(torch.ops.actx.leaky_relu(x, 0.1), w)

    x = torch.randn(2, 3, 4, requires_grad=True)
    w = torch.rand(3, requires_grad=True)
    f(x, w).sum().backward()
    x2 = x.detach().requires_grad_()
    w2 = w.detach().requires_grad_()
    torch.nn.functional.prelu(torch.nn.functional.leaky_relu(x2, 0.1), w2).sum().backward()
    assert torch.equal(x.grad, x2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


def test_model_for_the_cpp_example_round_trips(tmp_path):
    from cpp_model import save

    scripted = save(tmp_path / "model.pt")
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    assert torch.equal(loaded(loaded.example_input), loaded.expected_output)
    assert "actx::prelu" in str(scripted.inlined_graph) and "actx::leaky_relu" in str(scripted.inlined_graph)
