"""actx under Inductor (torch.compile's default backend, and AOTInductor): fused by default, opaque
kernels on request; compiled results equal eager ones; the switch survives torch's caches."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch._inductor.utils import run_and_get_code

import torch_ext

from benchmark_compile import actx_calls
from samples import actx_operators, generator, make_values

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
# An external call of an actx kernel in Inductor's generated code (Python wrapper or C++ wrapper).
ACTX_CALL = re.compile(r"torch\.ops\.actx\.\w+\.default\(|aoti_torch_proxy_executor_call_function")


@pytest.fixture
def fusion():
    """Sets the fusion mode for one test (and Dynamo's caches afresh), restoring it after."""
    before = torch_ext.inductor.fusion_enabled()

    def set_mode(enabled):
        torch._dynamo.reset()
        torch_ext.inductor.set_fusion(enabled)

    yield set_mode
    torch_ext.inductor.set_fusion(before)
    torch._dynamo.reset()


def actx_kernel_calls(code: str) -> int:
    return len(ACTX_CALL.findall(code))


def activations(x, y, z, w, slope):
    """Every actx operator, each on its own input: forward, and through autograd both backward
    operators. (Chained, Inductor would keep half-type intermediates in float, as it does for
    torch's own operators, and the chain would differ from eager by design.)"""
    return (
        torch.ops.actx.prelu(x, w),
        torch.ops.actx.leaky_relu(y, slope),
        torch.ops.actx.leaky_relu_(z.clone(), max(slope, 0.0)),
    )


def forward_backward(fn, x, w, slope, grad):
    """fn's outputs and the gradients of all its inputs, for `grad` on every output."""
    inputs = [x.detach().clone().requires_grad_() for _ in range(3)] + [w.detach().requires_grad_()]
    outputs = fn(*inputs, slope)
    grads = torch.autograd.grad(outputs, inputs, [grad] * len(outputs))
    return (*outputs, *grads[:3], grads[3])


def test_inductor_table_holds_every_public_operator():
    # Guards the private hook: a torch release that stops reading this table fails here first.
    from torch._inductor.decomposition import select_decomp_table

    table = select_decomp_table()
    ops = [getattr(torch.ops.actx, name).default for name in actx_operators(public=True)]
    # The private operators have no formula: traced calls keep the input (docs/memory.md).
    assert set(torch_ext.inductor.DECOMPOSITIONS) == set(ops)
    for op in ops:
        assert op in table, op
    # ...and torch.export's default table does not hold them: exports keep actx's operators.
    assert not set(ops) & set(torch.export.default_decompositions())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "opaque"])
def test_generated_code_calls_actx_kernels_only_when_opaque(fused, device, fusion):
    fusion(fused)
    x = torch.randn(2, 4, 5, 5, device=device)
    w = torch.rand(4, device=device)
    g = torch.randn_like(x)
    compiled = torch.compile(activations, fullgraph=True)
    result, codes = run_and_get_code(lambda: forward_backward(compiled, x, w, 0.1, g))
    assert len(codes) == 2  # forward and backward graphs
    calls = [actx_kernel_calls(code) for code in codes]
    if fused:
        assert calls == [0, 0], codes
    else:
        assert calls[0] >= 3 and calls[1] >= 3, calls  # prelu, leaky_relu, leaky_relu_; backwards
    for a, b in zip(result, forward_backward(activations, x, w, 0.1, g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_compiled_operators_equal_eager(dynamic, layout, dtype, device, fusion):
    fusion(True)
    gen = generator(7)
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = make_values((3, 6, 4, 5), dtype, gen).contiguous(memory_format=memory_format).to(device)
    g = make_values((3, 6, 4, 5), dtype, gen, specials=False).contiguous(memory_format=memory_format).to(device)
    w = torch.tensor([0.25, -0.5, 0.0, 1.5, 0.01, -2.0], dtype=dtype, device=device)
    compiled = torch.compile(activations, fullgraph=True, dynamic=dynamic)
    for slope in (-0.3, 0.0):
        result = forward_backward(compiled, x, w, slope, g)
        expected = forward_backward(activations, x, w, slope, g)
        # Values and input gradients: bit for bit (NaN where eager has NaN), in eager's layout.
        for a, b in zip(result[:-1], expected[:-1], strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
            assert a.stride() == b.stride()
        # The weight gradient: the same sum in another order (NaN where eager's is NaN).
        torch.testing.assert_close(
            result[-1], expected[-1], rtol=2e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-4, equal_nan=True
        )


def prelu(x, w):
    return torch.ops.actx.prelu(x, w)


def prelu_forward_backward(fn, x, w, grad):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    out = fn(x, w)
    return (out, *torch.autograd.grad(out, (x, w), grad))


PRELU_WEIGHTS = {
    "one": ((1,), (5, 3, 4)),
    "scalar": ((), (5, 3, 4)),
    "channels": ((3,), (5, 3, 4)),
    "channels_1d_input": ((1,), (7,)),
    "broadcast_last": ((1, 4), (5, 3, 4)),
    "broadcast_full": ((3, 4), (5, 3, 4)),
    "same_shape": ((5, 3, 4), (5, 3, 4)),
    "0d_input": ((1,), ()),
}


@pytest.mark.parametrize("case", PRELU_WEIGHTS)
def test_compiled_prelu_weight_shapes_equal_eager(case, fusion):
    fusion(True)
    weight_shape, input_shape = PRELU_WEIGHTS[case]
    gen = generator(3)
    x = make_values(input_shape, torch.float32, gen, specials=False)
    g = make_values(input_shape, torch.float32, gen, specials=False)
    w = torch.rand(weight_shape, generator=gen) - 0.5
    compiled = torch.compile(prelu, fullgraph=True)
    result, expected = prelu_forward_backward(compiled, x, w, g), prelu_forward_backward(prelu, x, w, g)
    torch.testing.assert_close(result[0], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(result[1], expected[1], rtol=0, atol=0)
    torch.testing.assert_close(result[2], expected[2], rtol=1e-5, atol=1e-5)
    assert result[2].shape == w.shape


def test_compiled_prelu_mixed_precision_weight(fusion):
    # A float32 weight with a bfloat16 input: the product in float32, rounded once, as eager.
    fusion(True)
    gen = generator(5)
    x = make_values((4, 3, 8), torch.bfloat16, gen)
    g = make_values((4, 3, 8), torch.bfloat16, gen, specials=False)
    w = torch.tensor([0.3, -0.7, 0.11])
    result = prelu_forward_backward(torch.compile(prelu, fullgraph=True), x, w, g)
    expected = prelu_forward_backward(prelu, x, w, g)
    assert result[0].dtype == torch.bfloat16 and result[2].dtype == torch.float32
    torch.testing.assert_close(result[0], expected[0], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(result[1], expected[1], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(result[2], expected[2], rtol=1e-5, atol=1e-4, equal_nan=True)


def test_compiled_leaky_relu_in_place_mutates_its_input(fusion):
    fusion(True)

    def f(x):
        y = x * 2
        torch.ops.actx.leaky_relu_(y, 0.2)
        return y

    x = torch.randn(4, 7, requires_grad=True)
    compiled = torch.compile(f, fullgraph=True)
    result, codes = run_and_get_code(lambda: compiled(x))
    assert actx_kernel_calls("".join(codes)) == 0
    torch.testing.assert_close(result, f(x), rtol=0, atol=0)
    (gx,) = torch.autograd.grad(result.sum(), x)
    torch.testing.assert_close(gx, torch.where(x > 0, 2.0, 0.4))

    # A graph input mutated in place (no autograd): the caller's tensor changes, as in eager.
    data = torch.randn(5, 3)
    expected = data.clone()
    torch_ext.leaky_relu_(expected, 0.2)
    torch.compile(lambda t: torch.ops.actx.leaky_relu_(t, 0.2), fullgraph=True)(data)
    torch.testing.assert_close(data, expected, rtol=0, atol=0)


def test_in_place_formula_outside_functionalization():
    # Graphs that are not functionalized (make_fx with Inductor's table) meet the leaky_relu_ entry.
    from torch._inductor.decomposition import select_decomp_table
    from torch.fx.experimental.proxy_tensor import make_fx

    def f(x):
        return torch.ops.actx.leaky_relu_(x, 0.1)

    x = torch.randn(6)
    graph = make_fx(f, decomposition_table=select_decomp_table())(x.clone())
    assert "actx" not in str(graph.graph)
    data = x.clone()
    graph(data)
    torch.testing.assert_close(data, torch_ext.leaky_relu(x, 0.1), rtol=0, atol=0)


def test_errors_still_come_from_the_meta_kernels(fusion):
    fusion(True)
    compiled = torch.compile(lambda x, w: torch.ops.actx.prelu(x, w), fullgraph=True)
    with pytest.raises(Exception, match="expected `weight` to have 1 element or one per channel"):
        compiled(torch.randn(2, 3, 4), torch.rand(4))


def test_fusion_block_restores_the_setting():
    before = torch_ext.inductor.fusion_enabled()
    with pytest.raises(KeyError), torch_ext.inductor.fusion(not before):
        assert torch_ext.inductor.fusion_enabled() is (not before)
        raise KeyError  # an error inside the block restores the setting too
    assert torch_ext.inductor.fusion_enabled() is before


def test_set_fusion_checks_its_argument():
    with pytest.raises(TypeError, match="expected `enabled` to be a bool, got str"):
        torch_ext.inductor.set_fusion("no")


def test_switch_is_part_of_the_cache_key_tag():
    import torch.compiler.config as compiler_config

    before = torch_ext.inductor.fusion_enabled()
    saved_tag = compiler_config.cache_key_tag
    try:
        compiler_config.cache_key_tag = "user-tag"
        torch_ext.inductor.set_fusion(False)
        opaque = compiler_config.cache_key_tag
        torch_ext.inductor.set_fusion(True)
        fused = compiler_config.cache_key_tag
        assert opaque.startswith("user-tag") and fused.startswith("user-tag") and opaque != fused
        torch_ext.inductor.set_fusion(True)
        assert compiler_config.cache_key_tag == fused  # replaced, not appended again
    finally:
        torch_ext.inductor.set_fusion(before)
        compiler_config.cache_key_tag = saved_tag
        torch_ext.inductor._applied_tag = ""
        torch_ext.inductor._tag_caches()


CACHE_PROBE = textwrap.dedent("""
    import json, torch, torch_ext
    from benchmark_compile import actx_calls
    def f(x, w):
        return torch.ops.actx.prelu(torch.ops.actx.leaky_relu(x, 0.1), w).square().sum()
    x = torch.randn(2, 3, 4, requires_grad=True)
    w = torch.rand(3, requires_grad=True)
    compiled = torch.compile(f, fullgraph=True)
    compiled(x, w).backward()
    calls = actx_calls(lambda: compiled(x, w).backward())
    from torch._dynamo.utils import counters
    print(json.dumps({"actx_calls": calls, "aot_cache_hits": counters["aot_autograd"]["autograd_cache_hit"]}))
""")


def test_on_disk_caches_do_not_serve_the_other_setting(tmp_path):
    """Three fresh processes share one cache folder: fused, opaque, fused. Without the setting in
    the cache key, the second would be served the first one's fused graph."""
    env = dict(
        os.environ,
        TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONPATH=os.pathsep.join(
            [
                str(Path(torch_ext.__file__).parents[1]),
                str(Path(__file__).resolve().parents[2] / "benchmarks"),
                os.environ.get("PYTHONPATH", ""),
            ]
        ),
    )
    env.pop("TORCHINDUCTOR_FORCE_DISABLE_CACHES", None)

    def probe(fused):
        run = subprocess.run(
            [sys.executable, "-c", CACHE_PROBE],
            env=dict(env, ACTX_INDUCTOR_FUSION=str(int(fused))),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        return json.loads(run.stdout.strip().splitlines()[-1])

    first, second, third = probe(True), probe(False), probe(True)
    assert first["actx_calls"] == 0
    assert second["actx_calls"] > 0
    assert third["actx_calls"] == 0 and third["aot_cache_hits"] > 0  # the cache still works


def test_environment_variable_is_checked():
    env = dict(os.environ, ACTX_INDUCTOR_FUSION="maybe", PYTHONPATH=str(Path(torch_ext.__file__).parents[1]))
    run = subprocess.run(
        [sys.executable, "-c", "import torch_ext"], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0
    assert "expected ACTX_INDUCTOR_FUSION to be 1 or 0, got 'maybe'" in run.stderr


def test_importing_torch_ext_does_not_import_inductor():
    # The table is filled when Inductor is imported; a program that never compiles skips both.
    code = (
        "import sys, torch_ext; assert 'torch._inductor.decomposition' not in sys.modules; "
        "import torch._inductor.decomposition as d, torch; "
        "assert torch.ops.actx.prelu.default in d.select_decomp_table()"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(torch_ext.__file__).parents[1]))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


def test_export_keeps_actx_operators():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.act = torch_ext.nn.PReLU(3)

        def forward(self, x):
            return torch_ext.leaky_relu(self.act(x), 0.1)

    x = torch.randn(2, 3, 4)
    exported = torch.export.export(Model(), (x,))
    for program in (exported, exported.run_decompositions()):
        targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
        assert {"actx.prelu.default", "actx.leaky_relu.default"} <= targets, targets


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "opaque"])
def test_aot_inductor_package_runs_in_python(fused, tmp_path, fusion):
    # The package of the C++ examples (examples/cpp/deploy.cpp runs it from C++).
    from cpp_model import make_model, save_aoti

    path = save_aoti(tmp_path / "model.pt2", fused)
    model = make_model()
    loaded = torch._inductor.aoti_load_package(path)
    torch.testing.assert_close(loaded(model.example_input), model.expected_output, rtol=0, atol=0)
    calls_at_run_time = actx_calls(lambda: loaded(model.example_input))
    assert (calls_at_run_time > 0) == (not fused), calls_at_run_time
