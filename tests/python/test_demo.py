"""The demo runs, writes its outputs, and gives the same numbers for the same seed."""

import json

from torch_ext import demo


def run(out, seed):
    demo.main(["--out", str(out), "--epochs", "2", "--seed", str(seed), "--threads", "1", "--width", "8"])
    return json.loads((out / "summary.json").read_text())


def test_demo_outputs_and_determinism(tmp_path):
    first = run(tmp_path / "a", 3)
    second = run(tmp_path / "b", 3)
    for name in ("functions.png", "loss_curves.png", "slopes.png", "summary.json"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    assert first["same_function"]["bitwise_identical"]
    assert abs(first["same_function"]["prelu_slope_gradient"] - first["same_function"]["sum_grad_times_min0x"]) < 1e-3
    assert first["results"] == second["results"] and first["learned_slopes"] == second["learned_slopes"]
    assert first["results"]["prelu"]["final_loss"] != first["results"]["leaky_relu"]["final_loss"]
