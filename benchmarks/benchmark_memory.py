"""Training memory benchmark: what autograd keeps for the backward of a Conv-BN-activation network,
with torch's activations and with actx's (one-bit sign masks, the default, and its inputs, the
behaviour of torch_ext.set_backward_masks(False)), and the training step's time.

    python benchmarks/benchmark_memory.py [--threads 1,2] [--repeats 15] [--device cuda]
                                         [--quick] [--compile] [--out bench_out]

Network: 3 blocks of Conv2d(32, 32, 3) -> BatchNorm2d -> activation, then a 1x1 Conv2d head, on an
(8, 32, 56, 56) input; LeakyReLU(0.1) or PReLU(32); float32 and bfloat16. Saved bytes: the unique
storages that autograd packs during the forward (torch.autograd.graph.saved_tensors_hooks), the
parameters left out (they exist with or without a backward); on CUDA also the peak of
torch.cuda.max_memory_allocated over a step, less the memory held before it. Step time: forward,
(y * y).mean(), backward; repetitions interleave the variants, the table reports medians.
--compile adds the networks under torch.compile (Inductor chooses what its graphs save; the same
hooks see what the compiled function keeps). Writes bench_out/benchmark_memory.json.
"""

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch

import torch_ext

from benchmark import cpu_name
from benchmark_compile import step_with_own_code

VARIANTS = {
    # name: (actx activations, backward masks)
    "torch": (False, None),
    "actx": (True, True),
    "actx inputs": (True, False),
}


def make_network(activation: str, actx: bool, channels: int = 32, blocks: int = 3) -> torch.nn.Module:
    nn = torch_ext.nn if actx else torch.nn
    layers = []
    for _ in range(blocks):
        act = nn.LeakyReLU(0.1) if activation == "leaky_relu" else nn.PReLU(channels)
        layers += [
            torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(channels),
            act,
        ]
    layers.append(torch.nn.Conv2d(channels, channels, 1))
    return torch.nn.Sequential(*layers)


def saved_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of model(x), parameters
    excepted."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = model(x)
    del y
    return sum(storages.values())


@contextlib.contextmanager
def masks(setting):
    if setting is None:
        yield
    else:
        with torch_ext.backward_masks(setting):
            yield


def train_step(step, x):
    step(x).backward()


def cuda_peak_bytes(model, x) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    train_step(model, x)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def measure(activation, dtype, device, compiled, repeats, shape):
    """Saved bytes and median step seconds of every variant for one network."""
    torch.manual_seed(0)
    reference = make_network(activation, actx=False).to(device, dtype)
    x = torch.randn(shape, device=device, dtype=dtype).requires_grad_()
    variants = {}
    for name, (actx, setting) in VARIANTS.items():
        model = make_network(activation, actx).to(device, dtype)
        model.load_state_dict(reference.state_dict())
        # The training step (forward and loss), and the forward alone, whose saved bytes are the
        # network's. Compiled, each is a code object of its own per variant: Dynamo would let one
        # variant's graph serve another whose guards pass.
        label = f"{name} {activation} {dtype} {compiled}"
        step = step_with_own_code(model, True, label)
        forward = step_with_own_code(model, False, label + " forward")
        if compiled:
            step, forward = torch.compile(step), torch.compile(forward)
        variants[name] = (step, forward, setting)
    result = {}
    for name, (step, forward, setting) in variants.items():
        with masks(setting):
            train_step(step, x)  # compiles, under the variant's setting
            entry = {"saved_bytes": saved_bytes(forward, x)}
            if device == "cuda":
                entry["cuda_peak_bytes"] = cuda_peak_bytes(step, x)
        result[name] = entry
    samples = {name: [] for name in variants}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(repeats):
        for name, (step, _, setting) in variants.items():
            with masks(setting):
                sync()
                start = time.perf_counter()
                train_step(step, x)
                sync()
                samples[name].append(time.perf_counter() - start)
    for name in variants:
        result[name]["step_seconds"] = statistics.median(samples[name])
    return result


def run(threads_list, repeats, device, quick, compile_too):
    shape = (2, 32, 16, 16) if quick else (8, 32, 56, 56)
    rows = []
    threads_before = torch.get_num_threads()
    # Every compiled variant is compiled here, at the thread count it runs at, never served from an
    # on-disk cache (a graph compiled for another thread count runs slower). The settings of the
    # caller (the test suite calls this) are restored after.
    with torch._inductor.config.patch(force_disable_caches=True):
        try:
            for threads in threads_list if device == "cpu" else [threads_before]:
                torch.set_num_threads(threads)
                for compiled in [False, True] if compile_too else [False]:
                    for activation in ["leaky_relu", "prelu"]:
                        for dtype in [torch.float32, torch.bfloat16]:
                            result = measure(activation, dtype, device, compiled, repeats, shape)
                            rows.append(
                                {
                                    "activation": activation,
                                    "dtype": str(dtype).replace("torch.", ""),
                                    "compiled": compiled,
                                    "threads": threads,
                                    "variants": result,
                                }
                            )
                            print(markdown_row(rows[-1]), flush=True)
        finally:
            torch.set_num_threads(threads_before)
    return rows


def markdown_row(row) -> str:
    v = row["variants"]
    torch_bytes = v["torch"]["saved_bytes"]
    cells = [
        row["activation"],
        row["dtype"],
        "compiled" if row["compiled"] else "eager",
        str(row["threads"]),
        f"{torch_bytes / 2**20:.1f}",
        f"{v['actx']['saved_bytes'] / 2**20:.1f}",
        f"{v['actx']['saved_bytes'] / torch_bytes:.3f}",
        f"{v['actx inputs']['saved_bytes'] / torch_bytes:.3f}",
        f"{v['actx']['step_seconds'] * 1e3:.1f}",
        f"{v['actx']['step_seconds'] / v['actx inputs']['step_seconds']:.3f}",
        f"{v['actx']['step_seconds'] / v['torch']['step_seconds']:.3f}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| activation | dtype | mode | threads | torch saved MiB | actx saved MiB | actx/torch bytes "
    "| actx inputs/torch bytes | actx step ms | step actx/actx inputs | step actx/torch |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="small tensors, for a smoke test")
    parser.add_argument("--compile", action="store_true", help="also the networks under torch.compile")
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args(argv)
    threads_list = [int(t) for t in args.threads.split(",")]
    machine = cpu_name() if args.device == "cpu" else torch.cuda.get_device_name()
    versions = f"torch {torch.__version__}; actx {torch_ext.__version__}"
    print(f"{machine}; {versions}; CPU kernels: {torch_ext.cpu_capability()}")
    print(HEADER, flush=True)
    rows = run(threads_list, args.repeats, args.device, args.quick, args.compile)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark_memory.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
