"""CPU benchmark: actx against torch's built-in operators and against a copy of the same bytes.

    python benchmarks/benchmark.py [--threads 1,2] [--out bench_out] [--quick] [--device cuda]
                                  [--only forward,float16]

All variants of a case run in one process, at the same thread count, interleaved: each repetition
times every variant once, and the table reports medians. The roofline of a case is the time of
copy_ over the case's bytes: an elementwise forward reads and writes one tensor (a copy), a backward
reads two and writes one (1.5 copies). Writes bench_out/benchmark.json and bench_out/benchmark.png.

On CUDA a second table gives the GPU time per call: the operators alone (no autograd engine),
captured in a CUDA graph and replayed, so that the host's share of a call (Python, dispatch,
launches) drops out. A small tensor's wall time is mostly that host share.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import torch_ext

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def backward_timer(forward, inputs, grad):
    """Times only the backward pass of forward(*inputs), through autograd as a user runs it."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    out = forward(*leaves)
    return lambda: torch.autograd.grad(out, leaves, grad, retain_graph=True)


def make_cases(quick: bool):
    """(name, dtype, layout, streams, {variant: fn}, None) for every case; streams counts tensors
    read+written. (The last item is for the GPU cases' graph-timed variants.)"""
    shape = (8, 64, 56, 56) if quick else (32, 64, 56, 56)
    seq_shape = (2, 512, 4096) if quick else (8, 512, 4096)
    for dtype_name, dtype in DTYPES.items():
        for layout in ("nchw", "channels_last"):
            memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = torch.randn(shape).to(dtype).contiguous(memory_format=memory_format)
            g = torch.randn(shape).to(dtype).contiguous(memory_format=memory_format)
            w = torch.rand(shape[1]).to(dtype)
            dst = torch.empty_like(x)
            copy = lambda dst=dst, x=x: dst.copy_(x)  # noqa: E731
            yield (
                "leaky_relu forward",
                dtype_name,
                layout,
                2,
                {
                    "actx": lambda x=x: torch.ops.actx.leaky_relu(x, 0.01),
                    "torch": lambda x=x: F.leaky_relu(x, 0.01),
                    "copy": copy,
                },
                None,
            )
            yield (
                "prelu forward",
                dtype_name,
                layout,
                2,
                {
                    "actx": lambda x=x, w=w: torch.ops.actx.prelu(x, w),
                    "torch": lambda x=x, w=w: F.prelu(x, w),
                    "copy": copy,
                },
                None,
            )
            yield (
                "leaky_relu backward",
                dtype_name,
                layout,
                3,
                {
                    "actx": backward_timer(lambda t: torch.ops.actx.leaky_relu(t, 0.01), [x], g),
                    "torch": backward_timer(lambda t: F.leaky_relu(t, 0.01), [x], g),
                    "copy": copy,
                },
                None,
            )
            yield (
                "prelu backward",
                dtype_name,
                layout,
                3,
                {
                    "actx": backward_timer(torch.ops.actx.prelu, [x, w], g),
                    "torch": backward_timer(F.prelu, [x, w], g),
                    "copy": copy,
                },
                None,
            )
        # [N, L, C] activations with one slope per C: torch's prelu takes channels at dim 1, so a
        # user writes the formula; actx broadcasts the weight [C] as [1, 1, C] when shaped [1, C].
        xs = torch.randn(seq_shape).to(dtype)
        gs = torch.randn(seq_shape).to(dtype)
        ws = torch.rand(1, seq_shape[-1]).to(dtype)
        dst = torch.empty_like(xs)
        copy = lambda dst=dst, xs=xs: dst.copy_(xs)  # noqa: E731
        formula = lambda t, w: torch.where(t > 0, t, w * t)  # noqa: E731
        yield (
            "prelu [N,L,C] forward",
            dtype_name,
            "nlc",
            2,
            {"actx": lambda: torch.ops.actx.prelu(xs, ws), "torch": lambda: formula(xs, ws), "copy": copy},
            None,
        )
        yield (
            "prelu [N,L,C] backward",
            dtype_name,
            "nlc",
            3,
            {
                "actx": backward_timer(torch.ops.actx.prelu, [xs, ws], gs),
                "torch": backward_timer(formula, [xs, ws], gs),
                "copy": copy,
            },
            None,
        )
    small = torch.randn(64, 64)
    small_dst = torch.empty_like(small)
    yield (
        "leaky_relu 64x64 (per call)",
        "float32",
        "contiguous",
        2,
        {
            "actx": lambda: torch.ops.actx.leaky_relu(small, 0.01),
            "torch": lambda: F.leaky_relu(small, 0.01),
            "copy": lambda: small_dst.copy_(small),
        },
        None,
    )


def torch_prelu_backward(grad, x, weight):
    """What autograd runs for torch's prelu: the built-in kernel with `weight` broadcast against x,
    whose weight gradient has x's shape, then the sum down to the weight's shape."""
    grad_input, grad_weight = torch.ops.aten._prelu_kernel_backward(grad, x, weight)
    return grad_input, grad_weight.sum_to_size(weight.shape)


def make_cuda_cases():
    """The GPU cases: forward and prelu backward, float32 and bfloat16, NCHW and channels_last."""
    for dtype_name in ("float32", "bfloat16"):
        dtype = DTYPES[dtype_name]
        for shape in ((32, 64, 56, 56), (64, 2048, 4096)):
            layouts = ("nchw", "channels_last") if len(shape) == 4 else ("ncl", "nlc")
            for layout in layouts:
                if layout == "nlc":  # [N, L, C] with one slope per C, as a [1, C] weight
                    x = torch.randn(shape[0], shape[2], shape[1], device="cuda", dtype=dtype)
                    w = torch.rand(1, shape[1], device="cuda", dtype=dtype)
                    reference = lambda t, w: torch.where(t > 0, t, w * t)  # noqa: E731
                    w_broadcast = w.view(1, 1, -1)
                else:
                    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                    x = torch.randn(shape, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
                    w = torch.rand(shape[1], device="cuda", dtype=dtype)
                    reference = F.prelu
                    w_broadcast = w.view((-1,) + (1,) * (len(shape) - 2))  # what F.prelu passes on
                g = torch.randn_like(x)
                dst = torch.empty_like(x)
                copy = lambda dst=dst, x=x: dst.copy_(x)  # noqa: E731
                name = f"{tuple(shape)}"
                forward = {
                    "actx": lambda x=x, w=w: torch.ops.actx.prelu(x, w),
                    "torch": lambda x=x, w=w, f=reference: f(x, w),
                    "copy": copy,
                }
                yield (f"prelu forward {name}", dtype_name, layout, 2, forward, forward)
                forward = {
                    "actx": lambda x=x: torch.ops.actx.leaky_relu(x, 0.01),
                    "torch": lambda x=x: F.leaky_relu(x, 0.01),
                    "copy": copy,
                }
                yield (f"leaky_relu forward {name}", dtype_name, layout, 2, forward, forward)
                yield (
                    f"prelu backward {name}",
                    dtype_name,
                    layout,
                    3,
                    {
                        "actx": backward_timer(torch.ops.actx.prelu, [x, w], g),
                        "torch": backward_timer(reference, [x, w], g),
                        "copy": copy,
                    },
                    {
                        "actx": lambda g=g, x=x, w=w: torch.ops.actx.prelu_backward(g, x, w),
                        "torch": lambda g=g, x=x, w=w_broadcast: torch_prelu_backward(g, x, w),
                        "copy": copy,
                    },
                )
                del x, g, dst


def time_variants(variants, repeats: int, target_seconds: float, sync=lambda: None):
    """Median seconds per call of each variant, repetitions interleaved across variants."""
    for fn in variants.values():  # warm-up, and how many calls make one timed batch
        fn()
    sync()
    start = time.perf_counter()
    variants["copy"]()
    sync()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(1, int(target_seconds / once))
    samples = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            sync()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            sync()
            samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in samples.items()}


def gpu_time_variants(variants, repeats: int, calls: int = 20):
    """Median GPU seconds per call of each variant: `calls` calls captured in one CUDA graph, the
    graphs replayed in turn and timed with CUDA events. Gaps between the kernels of a call count;
    the host's time does not."""
    graphs = {}
    for name, fn in variants.items():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the capture: lazy initialisation, allocator
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(calls):
                fn()
        graphs[name] = graph
    for graph in graphs.values():
        graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = {name: [] for name in graphs}
    for _ in range(repeats):
        for name, graph in graphs.items():
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples[name].append(start.elapsed_time(end) / 1e3 / calls)
    return {name: statistics.median(values) for name, values in samples.items()}


def ratios(t, streams, prefix=""):
    """The row fields of one set of timings (seconds per call of actx, torch and copy)."""
    roofline = t["copy"] * streams / 2
    return {
        f"{prefix}actx_ms": t["actx"] * 1e3,
        f"{prefix}torch_ms": t["torch"] * 1e3,
        f"{prefix}roofline_ms": roofline * 1e3,
        f"{prefix}speedup": t["torch"] / t["actx"],
        f"{prefix}actx_vs_roofline": t["actx"] / roofline,
    }


def run(threads_list, repeats, quick, target_seconds, device="cpu", only=()):
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        cases = make_cuda_cases() if device == "cuda" else make_cases(quick)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for name, dtype, layout, streams, variants, graph_variants in cases:
            if only and not all(word in f"{name} {dtype} {layout}" for word in only):
                continue
            t = time_variants(variants, repeats, target_seconds, sync)
            rows.append({"case": name, "dtype": dtype, "layout": layout, "threads": threads, **ratios(t, streams)})
            r = rows[-1]
            line = (
                f"{name:28s} {dtype:9s} {layout:13s} {threads:2d}  actx {r['actx_ms']:9.4f} ms  "
                f"torch {r['torch_ms']:9.4f} ms  roofline {r['roofline_ms']:9.4f} ms  "
                f"speedup {r['speedup']:6.2f}x  actx/roofline {r['actx_vs_roofline']:5.2f}"
            )
            if graph_variants is not None:
                try:
                    r.update(ratios(gpu_time_variants(graph_variants, repeats), streams, prefix="gpu_"))
                    line += (
                        f"  | GPU time: actx {r['gpu_actx_ms']:8.4f} ms  speedup {r['gpu_speedup']:5.2f}x  "
                        f"actx/roofline {r['gpu_actx_vs_roofline']:5.2f}"
                    )
                except Exception as error:  # the wall-clock row stands without it
                    line += f"  | GPU time not measured: {type(error).__name__}: {error}"
            print(line, flush=True)
    return rows


def markdown_table(rows, prefix=""):
    """The rows as a markdown table; prefix "gpu_": their GPU-time fields, where measured."""
    rows = [r for r in rows if f"{prefix}actx_ms" in r]
    lines = [
        "| case | dtype | layout | threads | actx ms | torch ms | roofline ms | speedup | actx / roofline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['dtype']} | {r['layout']} | {r['threads']} | "
            f"{r[prefix + 'actx_ms']:.3f} | {r[prefix + 'torch_ms']:.3f} | {r[prefix + 'roofline_ms']:.3f} | "
            f"{r[prefix + 'speedup']:.2f}x | {r[prefix + 'actx_vs_roofline']:.2f} |"
        )
    return "\n".join(lines) if rows else ""


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in rows})
    fig, axes = plt.subplots(len(threads), 1, figsize=(14, 5 * len(threads)), squeeze=False)
    for ax, n in zip(axes[:, 0], threads, strict=True):
        sel = [r for r in rows if r["threads"] == n]
        labels = [f"{r['case']}\n{r['dtype']} {r['layout']}" for r in sel]
        xs = range(len(sel))
        ax.bar([i - 0.2 for i in xs], [1 / r["actx_vs_roofline"] for r in sel], 0.4, label="actx")
        ax.bar([i + 0.2 for i in xs], [r["roofline_ms"] / r["torch_ms"] for r in sel], 0.4, label="torch")
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
        ax.set_ylabel("fraction of copy roofline (higher is better)")
        ax.set_title(f"{n} thread(s)")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.legend()
    fig.suptitle(f"actx vs torch {torch.__version__} on {cpu_name()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--threads", default=f"1,{os.cpu_count()}", help="comma-separated thread counts (default: 1 and all cores)"
    )
    parser.add_argument("--repeats", type=int, default=11, help="interleaved repetitions per case")
    parser.add_argument("--seconds", type=float, default=0.05, help="length of one timed batch")
    parser.add_argument("--quick", action="store_true", help="smaller tensors, fewer repetitions")
    parser.add_argument("--out", default="bench_out", help="folder for benchmark.json and benchmark.png")
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="cuda: the GPU cases (threads do not apply)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="run only the cases whose 'case dtype layout' "
        "contains every comma-separated word (e.g. 'forward,float16')",
    )
    args = parser.parse_args(argv)
    threads = sorted({int(t) for t in args.threads.split(",")})
    repeats = 3 if args.quick else args.repeats
    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
        threads = [torch.get_num_threads()]
        print(f"actx CUDA kernels, torch {torch.__version__}, {torch.cuda.get_device_name()}")
    else:
        print(f"actx {torch_ext.cpu_capability()} kernels, torch {torch.__version__}, {cpu_name()}, threads {threads}")
    rows = run(threads, repeats, args.quick, args.seconds, args.device, [word for word in args.only.split(",") if word])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "capability": torch_ext.cpu_capability(),
        "cores": os.cpu_count(),
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
    }
    (out / "benchmark.json").write_text(json.dumps({"machine": meta, "rows": rows}, indent=1))
    plot(rows, out / "benchmark.png")
    print()
    print(markdown_table(rows))
    gpu_table = markdown_table(rows, prefix="gpu_")
    if gpu_table:
        print("\nGPU time per call (the operators alone, replayed from a CUDA graph):\n")
        print(gpu_table)
    print(f"\nwrote {out / 'benchmark.json'} and {out / 'benchmark.png'}")


if __name__ == "__main__":
    main()
