"""torch.compile benchmark: the same model with torch's and with actx's activations, eager and
compiled, in one process.

    python benchmarks/benchmark_compile.py [--threads 1,2] [--repeats 15] [--device cuda]
                                          [--only prelu,float32] [--quick] [--out bench_out]

Models: 3 blocks of Conv2d(32, 32, 3) -> BatchNorm2d -> activation on an (8, 32, 56, 56) input,
with LeakyReLU(0.1) or PReLU(32); and the activations alone (two PReLUs, then the loss) on
(32, 32, 56, 56). Tasks: a training step (forward, (y * y).mean(), backward) and an inference
forward (eval mode, no grad). Variants: torch eager, actx eager, torch compiled, actx compiled
(fused, the default) and actx compiled with opaque kernels (torch_ext.inductor.set_fusion(False)).

Every compiled variant is compiled afresh here (Inductor's on-disk caches are off, so no graph of
an earlier run or setting is timed), at the thread count it runs at (Inductor's CPU code bakes the
thread count in), and checked under the profiler: a fused actx model must call no actx kernel, an
opaque one must. Repetitions interleave the variants; the table reports medians. Writes
bench_out/benchmark_compile.json.
"""

import argparse
import copy
import json
import os
import statistics
import time
import types
from pathlib import Path

import torch

import torch_ext

from benchmark import cpu_name

VARIANTS = ("torch eager", "actx eager", "torch compiled", "actx compiled", "actx opaque")


class Blocks(torch.nn.Module):
    """Conv -> BatchNorm -> activation, three times."""

    def __init__(self, activation, channels=32, blocks=3):
        super().__init__()
        layers = []
        for _ in range(blocks):
            layers += [
                torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(channels),
                activation(),
            ]
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class Activations(torch.nn.Module):
    """The activations alone: two of them in a row."""

    def __init__(self, activation):
        super().__init__()
        self.body = torch.nn.Sequential(activation(), activation())

    def forward(self, x):
        return self.body(x)


class Step(torch.nn.Module):
    """What a variant compiles: model(x) and, for a training step, the loss."""

    def __init__(self, model, train: bool):
        super().__init__()
        self.model = model
        self.train_step = train

    def forward(self, x):
        y = self.model(x)
        return (y * y).mean() if self.train_step else y


def step_with_own_code(model, train: bool, variant: str) -> Step:
    """A Step whose forward is a code object of its own. Dynamo keeps compiled graphs per code
    object, and would let a second Step reuse the first one's graph (fused or not) when their
    guards pass."""
    forward = Step.forward
    code = forward.__code__.replace(co_name=f"forward_{variant.replace(' ', '_')}")
    cls = type(
        f"Step_{variant.replace(' ', '_')}",
        (Step,),
        {"forward": types.FunctionType(code, forward.__globals__, code.co_name)},
    )
    return cls(model, train)


ACTIVATIONS = {
    "LeakyReLU(0.1)": lambda: torch.nn.LeakyReLU(0.1),
    "PReLU(32)": lambda: torch.nn.PReLU(32, init=0.25),
}


def make_cases(quick: bool):
    """(model name, activation name, torch model factory, input shape)."""
    batch = 2 if quick else 8
    for name, act in ACTIVATIONS.items():
        yield "3x conv-bn-act", name, (lambda act=act: Blocks(act)), (batch, 32, 56, 56)
    yield "activations alone", "PReLU(32)", (lambda: Activations(ACTIVATIONS["PReLU(32)"])), (batch * 4, 32, 56, 56)


def compiled(module, fused: bool):
    """torch.compile(module), with actx's operators fused or opaque. Inductor compiles on the first
    call (the backward too, during the first forward), so that call runs under the setting."""
    fn = torch.compile(module, fullgraph=True)
    state = {"compiled": False}

    def call(*args):
        if state["compiled"]:
            return fn(*args)
        with torch_ext.inductor.fusion(fused):
            result = fn(*args)
        state["compiled"] = True
        return result

    return call


def actx_calls(fn) -> int:
    """How many actx operators one call of fn dispatches."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for event in prof.events() if event.name.startswith("actx::"))


def make_variants(factory, shape, dtype, memory_format, task, device):
    """{variant: fn} running one step of the task; fn of a compiled variant compiles on first call."""
    torch.manual_seed(0)
    base = factory().to(device=device, dtype=dtype).to(memory_format=memory_format)
    x = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=memory_format)
    if isinstance(base, Activations):
        x.requires_grad_(task == "train")
    models = {}
    for variant in VARIANTS:
        model = copy.deepcopy(base)
        if variant.startswith("actx"):
            torch_ext.replace_activations(model)
        if task == "infer":
            model.eval()
        module = step_with_own_code(model, task == "train", variant)
        if variant.endswith("compiled") or variant.endswith("opaque"):
            module = compiled(module, fused=variant != "actx opaque")
        models[variant] = (model, module)

    def step(model, module):
        if task == "train":
            model.zero_grad(set_to_none=True)
            if x.requires_grad:
                x.grad = None
            module(x).backward()
        else:
            with torch.no_grad():
                module(x)

    return {variant: (lambda m=m: step(*m)) for variant, m in models.items()}


def check_variants(variants):
    """Each variant runs the kernels it claims to: actx's under eager and opaque, none when fused."""
    expected = {
        "torch eager": False,
        "actx eager": True,
        "torch compiled": False,
        "actx compiled": False,
        "actx opaque": True,
    }
    for variant, fn in variants.items():
        calls = actx_calls(fn)
        if (calls > 0) != expected[variant]:
            raise RuntimeError(
                f"benchmark_compile: variant '{variant}' dispatched {calls} actx operators; "
                "it is not running the graph it is meant to time"
            )


def time_case(variants, repeats, sync):
    compile_seconds = {}
    for variant, fn in variants.items():  # first calls: compile (if compiled) and warm up
        sync()
        start = time.perf_counter()
        fn()
        sync()
        compile_seconds[variant] = time.perf_counter() - start
        fn()
    check_variants(variants)
    samples = {variant: [] for variant in variants}
    for _ in range(repeats):
        for variant, fn in variants.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            samples[variant].append(time.perf_counter() - start)
    return {v: statistics.median(s) for v, s in samples.items()}, compile_seconds


def warm_up_compiler(device):
    """One throwaway compile, so that the first timed one does not pay Inductor's one-time costs
    (imports, the C++ compiler's first run)."""
    torch._dynamo.reset()
    fn = torch.compile(lambda t: torch.ops.actx.leaky_relu(t * 2, 0.1).sum(), fullgraph=True)
    fn(torch.randn(8, 8, device=device, requires_grad=True)).backward()


def run(threads_list, repeats, quick, device, only):
    rows = []
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    warm_up_compiler(device)
    for threads in threads_list:
        torch.set_num_threads(threads)
        for model_name, act_name, factory, shape in make_cases(quick):
            for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
                for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
                    for task in ("train", "infer"):
                        if model_name == "activations alone" and task == "infer":
                            continue
                        label = f"{model_name} {act_name} {dtype_name} {layout} {task}"
                        if only and not all(word in label for word in only):
                            continue
                        torch._dynamo.reset()
                        variants = make_variants(factory, shape, dtype, fmt, task, device)
                        t, compile_s = time_case(variants, repeats, sync)
                        row = {
                            "model": model_name,
                            "activation": act_name,
                            "dtype": dtype_name,
                            "layout": layout,
                            "task": task,
                            "threads": threads,
                            **{f"{v} ms": t[v] * 1e3 for v in VARIANTS},
                            "compiled actx / torch": t["actx compiled"] / t["torch compiled"],
                            "opaque / fused": t["actx opaque"] / t["actx compiled"],
                            "compile s torch": compile_s["torch compiled"],
                            "compile s actx": compile_s["actx compiled"],
                        }
                        rows.append(row)
                        print(
                            f"{label:60s} {threads} thr  "
                            + "  ".join(f"{v} {t[v] * 1e3:8.2f}" for v in VARIANTS)
                            + f"  | actx/torch compiled {row['compiled actx / torch']:.3f}"
                            f"  opaque/fused {row['opaque / fused']:.3f}"
                            f"  compile s {compile_s['torch compiled']:.1f} vs {compile_s['actx compiled']:.1f}",
                            flush=True,
                        )
    return rows


def markdown_table(rows):
    lines = [
        "| model | activation | dtype | layout | task | threads | "
        + " | ".join(f"{v} ms" for v in VARIANTS)
        + " | compiled actx / torch | opaque / fused | compile s (torch, actx) |",
        "|---" * (6 + len(VARIANTS) + 3) + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['activation']} | {r['dtype']} | {r['layout']} | {r['task']} | "
            f"{r['threads']} | "
            + " | ".join(f"{r[f'{v} ms']:.2f}" for v in VARIANTS)
            + f" | {r['compiled actx / torch']:.3f} | {r['opaque / fused']:.3f} | "
            f"{r['compile s torch']:.1f}, {r['compile s actx']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}", help="comma-separated thread counts")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repetitions per case")
    parser.add_argument("--quick", action="store_true", help="smaller batches, 3 repetitions")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--only",
        default="",
        help="only the cases whose 'model activation dtype layout "
        "task' contains every comma-separated word (e.g. 'PReLU,float32,train')",
    )
    parser.add_argument("--out", default="bench_out", help="folder for benchmark_compile.json")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    # Every compiled variant is compiled here and now, never served from an on-disk cache.
    torch._inductor.config.force_disable_caches = True
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    threads = [torch.get_num_threads()] if args.device == "cuda" else sorted({int(t) for t in args.threads.split(",")})
    machine = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    print(
        f"actx under torch.compile, torch {torch.__version__}, {machine}, "
        f"actx CPU kernels {torch_ext.cpu_capability()}, threads {threads}"
    )
    rows = run(
        threads,
        3 if args.quick else args.repeats,
        args.quick,
        args.device,
        [word for word in args.only.split(",") if word],
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": machine,
        "torch": torch.__version__,
        "device": args.device,
        "capability": torch_ext.cpu_capability(),
        "cores": os.cpu_count(),
    }
    (out / "benchmark_compile.json").write_text(json.dumps({"machine": meta, "rows": rows}, indent=1))
    print()
    print(markdown_table(rows))
    print(f"\nwrote {out / 'benchmark_compile.json'}")


if __name__ == "__main__":
    main()
