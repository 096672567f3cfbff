"""The benchmark runs end to end on the CPU and writes what the README's table is made of."""

import json
from pathlib import Path

import pytest
import torch

import torch_ext

import benchmark


def test_benchmark_writes_table_json_and_chart(tmp_path, capsys):
    benchmark.main(
        [
            "--quick",
            "--threads",
            "1",
            "--repeats",
            "1",
            "--seconds",
            "0.001",
            "--only",
            "prelu,float32,nchw",
            "--out",
            str(tmp_path),
        ]
    )
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert (tmp_path / "benchmark.png").stat().st_size > 0
    cases = {row["case"] for row in result["rows"]}
    assert cases == {"prelu forward", "prelu forward, training", "prelu backward"}
    for row in result["rows"]:
        assert row["threads"] == 1 and row["dtype"] == "float32" and row["layout"] == "nchw"
        assert row["actx_ms"] > 0 and row["torch_ms"] > 0 and row["floor_ms"] > 0
        assert row["speedup"] == pytest.approx(row["torch_ms"] / row["actx_ms"])
        assert not any(key.startswith("gpu_") for key in row)  # GPU time is for CUDA cases only
    printed = capsys.readouterr().out
    assert "| prelu backward | float32 | nchw | 1 |" in printed
    assert "GPU time per call" not in printed


def test_gpu_time_table_lists_only_rows_that_have_it():
    rows = [
        {
            "case": "a",
            "dtype": "float32",
            "layout": "nchw",
            "threads": 1,
            **benchmark.ratios({"actx": 1e-3, "torch": 2e-3, "floor": 1e-3}),
        },
        {
            "case": "b",
            "dtype": "float32",
            "layout": "nchw",
            "threads": 1,
            **benchmark.ratios({"actx": 1e-3, "torch": 2e-3, "floor": 1e-3}),
            **benchmark.ratios({"actx": 4e-6, "torch": 8e-6, "floor": 3e-6}, prefix="gpu_"),
        },
    ]
    table = benchmark.markdown_table(rows, prefix="gpu_").splitlines()
    assert len(table) == 3 and table[2] == "| b | float32 | nchw | 1 | 0.004 | 0.008 | 0.003 | 2.00x | 1.33 |"
    assert len(benchmark.markdown_table(rows).splitlines()) == 4


def test_capabilities_time_actx_again_at_each_level(tmp_path, capsys):
    levels = ["scalar", torch_ext.cpu_capability()]
    before = torch_ext.cpu_capability()
    benchmark.main(
        ["--quick", "--threads", "1", "--repeats", "1", "--seconds", "0.001", "--only", "64x64"]
        + ["--capabilities", ",".join(levels), "--out", str(tmp_path)]
    )
    assert torch_ext.cpu_capability() == before
    (row,) = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    for level in levels:
        assert row[f"actx@{level}_ms"] > 0
    header = capsys.readouterr().out.split("| case |")[1].splitlines()[0]
    assert header.endswith("| actx@scalar / actx | actx@" + levels[1] + " / actx |")


def test_capabilities_that_the_cpu_lacks_are_refused():
    with pytest.raises(SystemExit):
        benchmark.main(["--capabilities", "sse9", "--only", "nothing"])


def test_cpu_name_tells_vendor_family_and_vector_width():
    name = benchmark.cpu_name()
    if Path("/proc/cpuinfo").exists():
        assert " family " in name and " model " in name
        assert any(isa in name for isa in ("AVX-512", "AVX2", "no AVX2"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_benchmark_times_the_gpu(tmp_path):
    benchmark.main(
        [
            "--device",
            "cuda",
            "--repeats",
            "1",
            "--seconds",
            "0.001",
            "--only",
            "(32,float32,nchw",
            "--out",
            str(tmp_path),
        ]
    )
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert rows and all(row["gpu_actx_ms"] > 0 for row in rows)


def test_memory_benchmark_writes_json(tmp_path, capsys):
    import benchmark_memory

    benchmark_memory.main(["--quick", "--threads", "1", "--repeats", "1", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "benchmark_memory.json").read_text())["rows"]
    assert {(row["activation"], row["dtype"]) for row in rows} == {
        (a, d) for a in ("leaky_relu", "prelu") for d in ("float32", "bfloat16")
    }
    for row in rows:
        variants = row["variants"]
        assert set(variants) == {"torch", "actx", "actx inputs"}
        assert all(v["saved_bytes"] > 0 and v["step_seconds"] > 0 for v in variants.values())
        # Without masks actx keeps what torch keeps.
        assert variants["actx inputs"]["saved_bytes"] == variants["torch"]["saved_bytes"]
    assert "| leaky_relu | float32 | eager | 1 |" in capsys.readouterr().out


def test_bias_benchmark_writes_its_rows_with_the_bytes_kept(tmp_path, capsys):
    import benchmark_bias

    benchmark_bias.main(["--quick", "--threads", "1", "--repeats", "1", "--seconds", "0.001", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "benchmark_bias.json").read_text())["rows"]
    cases = {(row["case"], row["dtype"]) for row in rows}
    assert ("backward clamp", "bfloat16") in cases and ("discriminator step + R1", "float32") in cases
    numel = 8 * 64 * 56 * 56  # --quick's shape
    for row in rows:
        assert row["actx_ms"] > 0 and row["composition_ms"] > 0
        if row["case"].startswith("backward"):
            bits = 2 if "clamp" in row["case"] else 1
            assert row["saved_actx_bytes"] == bits * numel // 8
            # The composition keeps x + bias (and the clamp's input), in x's dtype.
            assert row["saved_composition_bytes"] == bits * numel * (4 if row["dtype"] == "float32" else 2)
    assert "| discriminator step + R1 | float32 | 1 |" in capsys.readouterr().out
