"""CPU benchmark: actx against torch's built-in operators and against the floor of each case.

    python benchmarks/benchmark.py [--threads 1,2] [--out bench_out] [--quick] [--device cuda]
                                  [--only forward,float16] [--capabilities avx2,avx512]

All variants of a case run in one process, at the same thread count, interleaved: each repetition
times every variant once, and the table reports medians. The floor of a case is the cheapest
operator that allocates and writes the same output from the same inputs: x.clone() for a forward
(one tensor in, a fresh one out), torch.add(x, g) for a backward (two in, a fresh one out). A copy_
into a preallocated tensor is cheaper still, but no operator that returns a fresh tensor reaches it
on large tensors: their pages are faulted in on first touch. --capabilities times actx's kernels
again at each named CPU level, interleaved with the rest (columns actx@<level>). Writes
bench_out/benchmark.json and bench_out/benchmark.png.

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


def cpuinfo() -> dict:
    """The fields of /proc/cpuinfo's first processor ({} where there is none)."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())}


def cpu_name() -> str:
    """The CPU's model name, vendor, family and model, and its widest vector instructions: a VM's
    model name alone ("AMD EPYC") does not tell Zen 3 from Zen 4."""
    info = cpuinfo()
    if not info:
        return platform.processor() or "unknown CPU"
    flags = set(info.get("flags", "").split())
    extras = [name for flag, name in (("avx512_bf16", "BF16"), ("avx512_fp16", "FP16")) if flag in flags]
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        isa = "+".join(["AVX-512", *extras])
    else:
        isa = "AVX2" if "avx2" in flags else "no AVX2"
    name = info.get("model name", platform.processor() or "unknown CPU")
    family = f"{info.get('vendor_id', '?')} family {info.get('cpu family', '?')} model {info.get('model', '?')}"
    return f"{name} ({family}, {isa})"


def backward_timer(forward, inputs, grad):
    """Times only the backward pass of forward(*inputs), through autograd as a user runs it."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    out = forward(*leaves)
    return lambda: torch.autograd.grad(out, leaves, grad, retain_graph=True)


def make_cases(quick: bool):
    """(name, dtype, layout, {variant: fn}, None) for every case, the variants actx, torch and floor.
    (The last item is for the GPU cases' graph-timed variants.)"""
    shape = (8, 64, 56, 56) if quick else (32, 64, 56, 56)
    seq_shape = (2, 512, 4096) if quick else (8, 512, 4096)
    for dtype_name, dtype in DTYPES.items():
        for layout in ("nchw", "channels_last"):
            memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = torch.randn(shape).to(dtype).contiguous(memory_format=memory_format)
            g = torch.randn(shape).to(dtype).contiguous(memory_format=memory_format)
            w = torch.rand(shape[1]).to(dtype)
            forward_floor = lambda x=x: x.clone()  # noqa: E731
            backward_floor = lambda x=x, g=g: torch.add(x, g)  # noqa: E731
            yield (
                "leaky_relu forward",
                dtype_name,
                layout,
                {
                    "actx": lambda x=x: torch.ops.actx.leaky_relu(x, 0.01),
                    "torch": lambda x=x: F.leaky_relu(x, 0.01),
                    "floor": forward_floor,
                },
                None,
            )
            yield (
                "prelu forward",
                dtype_name,
                layout,
                {
                    "actx": lambda x=x, w=w: torch.ops.actx.prelu(x, w),
                    "torch": lambda x=x, w=w: F.prelu(x, w),
                    "floor": forward_floor,
                },
                None,
            )
            # The forward of a training step: what autograd keeps for the backward is computed too
            # (actx: parity bits beside the output; torch: a reference to x).
            leaves = [x.detach().requires_grad_(), w.detach().requires_grad_()]
            yield (
                "prelu forward, training",
                dtype_name,
                layout,
                {
                    "actx": lambda a=leaves: torch.ops.actx.prelu(*a),
                    "torch": lambda a=leaves: F.prelu(*a),
                    "floor": forward_floor,
                },
                None,
            )
            yield (
                "leaky_relu backward",
                dtype_name,
                layout,
                {
                    "actx": backward_timer(lambda t: torch.ops.actx.leaky_relu(t, 0.01), [x], g),
                    "torch": backward_timer(lambda t: F.leaky_relu(t, 0.01), [x], g),
                    "floor": backward_floor,
                },
                None,
            )
            yield (
                "prelu backward",
                dtype_name,
                layout,
                {
                    "actx": backward_timer(torch.ops.actx.prelu, [x, w], g),
                    "torch": backward_timer(F.prelu, [x, w], g),
                    "floor": backward_floor,
                },
                None,
            )
        # [N, L, C] activations with one slope per C: torch's prelu takes channels at dim 1, so a
        # user writes the formula; actx broadcasts the weight [C] as [1, 1, C] when shaped [1, C].
        xs = torch.randn(seq_shape).to(dtype)
        gs = torch.randn(seq_shape).to(dtype)
        ws = torch.rand(1, seq_shape[-1]).to(dtype)
        formula = lambda t, w: torch.where(t > 0, t, w * t)  # noqa: E731
        yield (
            "prelu [N,L,C] forward",
            dtype_name,
            "nlc",
            {"actx": lambda: torch.ops.actx.prelu(xs, ws), "torch": lambda: formula(xs, ws), "floor": xs.clone},
            None,
        )
        yield (
            "prelu [N,L,C] backward",
            dtype_name,
            "nlc",
            {
                "actx": backward_timer(torch.ops.actx.prelu, [xs, ws], gs),
                "torch": backward_timer(formula, [xs, ws], gs),
                "floor": lambda: torch.add(xs, gs),
            },
            None,
        )
    small = torch.randn(64, 64)
    yield (
        "leaky_relu 64x64 (per call)",
        "float32",
        "contiguous",
        {
            "actx": lambda: torch.ops.actx.leaky_relu(small, 0.01),
            "torch": lambda: F.leaky_relu(small, 0.01),
            "floor": small.clone,
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
                forward_floor = lambda x=x: x.clone()  # noqa: E731
                backward_floor = lambda x=x, g=g: torch.add(x, g)  # noqa: E731
                name = f"{tuple(shape)}"
                forward = {
                    "actx": lambda x=x, w=w: torch.ops.actx.prelu(x, w),
                    "torch": lambda x=x, w=w, f=reference: f(x, w),
                    "floor": forward_floor,
                }
                yield (f"prelu forward {name}", dtype_name, layout, forward, forward)
                forward = {
                    "actx": lambda x=x: torch.ops.actx.leaky_relu(x, 0.01),
                    "torch": lambda x=x: F.leaky_relu(x, 0.01),
                    "floor": forward_floor,
                }
                yield (f"leaky_relu forward {name}", dtype_name, layout, forward, forward)
                yield (
                    f"prelu backward {name}",
                    dtype_name,
                    layout,
                    {
                        "actx": backward_timer(torch.ops.actx.prelu, [x, w], g),
                        "torch": backward_timer(reference, [x, w], g),
                        "floor": backward_floor,
                    },
                    {
                        "actx": lambda g=g, x=x, w=w: torch.ops.actx.prelu_backward(g, x, w),
                        "torch": lambda g=g, x=x, w=w_broadcast: torch_prelu_backward(g, x, w),
                        "floor": backward_floor,
                    },
                )
                del x, g


def time_variants(variants, repeats: int, target_seconds: float, sync=lambda: None, prepare=lambda name: None):
    """Median seconds per call of each variant, repetitions interleaved across variants; the variant
    "floor" sets how many calls make one timed batch. prepare(name) runs before each variant's batch,
    untimed."""
    for name, fn in variants.items():  # warm-up
        prepare(name)
        fn()
    sync()
    prepare("floor")
    start = time.perf_counter()
    variants["floor"]()
    sync()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(1, int(target_seconds / once))
    samples = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            prepare(name)
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


def ratios(t, prefix=""):
    """The row fields of one set of timings (seconds per call of actx, torch and floor, and of actx
    at other CPU levels, actx@<level>)."""
    row = {
        f"{prefix}actx_ms": t["actx"] * 1e3,
        f"{prefix}torch_ms": t["torch"] * 1e3,
        f"{prefix}floor_ms": t["floor"] * 1e3,
        f"{prefix}speedup": t["torch"] / t["actx"],
        f"{prefix}actx_vs_floor": t["actx"] / t["floor"],
    }
    for name, seconds in t.items():
        if name.startswith("actx@"):
            row[f"{prefix}{name}_ms"] = seconds * 1e3
    return row


def with_capabilities(variants, capabilities):
    """variants and, for each CPU level, actx's variant again as actx@<level>."""
    return {**variants, **{f"actx@{level}": variants["actx"] for level in capabilities}}


def capability_setter(capabilities):
    """prepare() for time_variants: actx@<level> runs at that level, every other variant at the
    level in force when the benchmark started."""
    default = torch_ext.cpu_capability()

    def prepare(name):
        if capabilities:
            torch_ext.set_cpu_capability(name[len("actx@") :] if name.startswith("actx@") else default)

    return prepare


def run(threads_list, repeats, quick, target_seconds, device="cpu", only=(), capabilities=()):
    rows = []
    prepare = capability_setter(capabilities)
    for threads in threads_list:
        torch.set_num_threads(threads)
        cases = make_cuda_cases() if device == "cuda" else make_cases(quick)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for name, dtype, layout, variants, graph_variants in cases:
            if only and not all(word in f"{name} {dtype} {layout}" for word in only):
                continue
            t = time_variants(with_capabilities(variants, capabilities), repeats, target_seconds, sync, prepare)
            rows.append({"case": name, "dtype": dtype, "layout": layout, "threads": threads, **ratios(t)})
            r = rows[-1]
            line = (
                f"{name:28s} {dtype:9s} {layout:13s} {threads:2d}  actx {r['actx_ms']:9.4f} ms  "
                f"torch {r['torch_ms']:9.4f} ms  floor {r['floor_ms']:9.4f} ms  "
                f"speedup {r['speedup']:6.2f}x  actx/floor {r['actx_vs_floor']:5.2f}"
            )
            for level in capabilities:
                line += f"  actx@{level}/actx {r[f'actx@{level}_ms'] / r['actx_ms']:5.2f}"
            if graph_variants is not None:
                try:
                    r.update(ratios(gpu_time_variants(graph_variants, repeats), prefix="gpu_"))
                    line += (
                        f"  | GPU time: actx {r['gpu_actx_ms']:8.4f} ms  speedup {r['gpu_speedup']:5.2f}x  "
                        f"actx/floor {r['gpu_actx_vs_floor']:5.2f}"
                    )
                except Exception as error:  # the wall-clock row stands without it
                    line += f"  | GPU time not measured: {type(error).__name__}: {error}"
            print(line, flush=True)
    return rows


def markdown_table(rows, prefix=""):
    """The rows as a markdown table; prefix "gpu_": their GPU-time fields, where measured. Rows
    timed at other CPU levels get a column actx@<level> / actx each."""
    rows = [r for r in rows if f"{prefix}actx_ms" in r]
    levels = list(
        dict.fromkeys(key[len(prefix) + 5 : -3] for r in rows for key in r if key.startswith(f"{prefix}actx@"))
    )
    lines = [
        "| case | dtype | layout | threads | actx ms | torch ms | floor ms | speedup | actx / floor |"
        + "".join(f" actx@{level} / actx |" for level in levels),
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(levels),
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['dtype']} | {r['layout']} | {r['threads']} | "
            f"{r[prefix + 'actx_ms']:.3f} | {r[prefix + 'torch_ms']:.3f} | {r[prefix + 'floor_ms']:.3f} | "
            f"{r[prefix + 'speedup']:.2f}x | {r[prefix + 'actx_vs_floor']:.2f} |"
            + "".join(f" {r[f'{prefix}actx@{level}_ms'] / r[prefix + 'actx_ms']:.2f} |" for level in levels)
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
        ax.bar([i - 0.2 for i in xs], [1 / r["actx_vs_floor"] for r in sel], 0.4, label="actx")
        ax.bar([i + 0.2 for i in xs], [r["floor_ms"] / r["torch_ms"] for r in sel], 0.4, label="torch")
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
        ax.set_ylabel("floor time / operator time (higher is better)")
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
    parser.add_argument(
        "--capabilities",
        default="",
        help="also time actx's CPU kernels at these comma-separated levels (e.g. 'avx2,avx512')",
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
    capability = torch_ext.cpu_capability()
    capabilities = [level for level in args.capabilities.split(",") if level]
    if capabilities and args.device == "cuda":
        parser.error("--capabilities: CPU levels do not apply to --device cuda")
    for level in capabilities:
        try:
            torch_ext.set_cpu_capability(level)
        except RuntimeError as error:
            parser.error(f"--capabilities: {error}")
    if capabilities:
        torch_ext.set_cpu_capability(capability)
    only = [word for word in args.only.split(",") if word]
    rows = run(threads, repeats, args.quick, args.seconds, args.device, only, capabilities)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "capability": capability,
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
