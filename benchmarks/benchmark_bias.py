"""bias_leaky_relu benchmark: actx's fused operator against what StyleGAN2 and GFPGAN users run
when the CUDA extension does not build, or on the CPU: the eager composition
leaky_relu(x + bias, 0.2) * sqrt(2) (then clamp), and that composition under torch.compile.

    python benchmarks/benchmark_bias.py [--threads 1,2] [--repeats 11] [--quick] [--compile]
                                       [--out bench_out]

Operator rows (interleaved medians, one process, equal thread counts): the forward against x.clone()
(the fair floor: it allocates its output too), the backward of both gradients (bias and input)
through autograd against torch.add(x, g); saved: the bytes autograd keeps for the backward, against
the composition's. Discriminator rows: one training step of a StyleGAN2-style discriminator with the
R1 penalty (double backward through every activation), composition against actx's
FusedLeakyReLU; --compile adds both models under torch.compile, in a step without R1 (AOTAutograd
compiles no double backward). Writes bench_out/benchmark_bias.json.
"""

import argparse
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

import torch_ext

from benchmark import backward_timer, cpu_name, time_variants

SQRT_2 = 2**0.5
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def composition(x, bias, clamp=None):
    # The bias in x's dtype: a float32 bias would turn a bfloat16 composition into a float32 one.
    y = F.leaky_relu(x + bias.to(x.dtype).view(1, -1, *[1] * (x.dim() - 2)), 0.2) * SQRT_2
    return y if clamp is None else y.clamp(-clamp, clamp)


def fused(x, bias, clamp=None):
    return torch.ops.actx.bias_leaky_relu(x, bias, 0.2, SQRT_2, clamp, 1)


def saved_bytes(fn, *inputs) -> int:
    """Bytes of the distinct storages autograd keeps for fn(*inputs)'s backward, the inputs'
    excepted (a caller keeps them anyway)."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    own = {t.untyped_storage().data_ptr() for t in leaves}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*leaves)
    return sum(storages.values())


def operator_cases(quick: bool, compile_too: bool):
    shape = (8, 64, 56, 56) if quick else (32, 64, 56, 56)
    for dtype_name, dtype in DTYPES.items():
        x = torch.randn(shape).to(dtype)
        g = torch.randn(shape).to(dtype)
        bias = torch.randn(shape[1])  # float32, as a mixed-precision model keeps it
        for clamp in (None, 256.0):
            suffix = "" if clamp is None else " clamp"
            forward = {
                "actx": lambda x=x, clamp=clamp: fused(x, bias, clamp),
                "composition": lambda x=x, clamp=clamp: composition(x, bias, clamp),
                "floor": lambda x=x: x.clone(),
            }
            backward = {
                "actx": backward_timer(lambda t, b, clamp=clamp: fused(t, b, clamp), [x, bias], g),
                "composition": backward_timer(lambda t, b, clamp=clamp: composition(t, b, clamp), [x, bias], g),
                "floor": lambda x=x, g=g: torch.add(x, g),
            }
            if compile_too:
                compiled = torch.compile(lambda t, b, clamp=clamp: composition(t, b, clamp), dynamic=False)
                forward["compiled composition"] = lambda x=x, compiled=compiled: compiled(x, bias)
                backward["compiled composition"] = backward_timer(compiled, [x, bias], g)
            saved = {
                "actx": saved_bytes(lambda t, b, clamp=clamp: fused(t, b, clamp), x, bias),
                "composition": saved_bytes(lambda t, b, clamp=clamp: composition(t, b, clamp), x, bias),
            }
            yield f"forward{suffix}", dtype_name, forward, None
            yield f"backward{suffix}", dtype_name, backward, saved


class Discriminator(torch.nn.Module):
    """StyleGAN2's discriminator in small: residual blocks of conv -> bias + leaky ReLU (the
    activation module given) -> conv with stride 2 -> activation, a skip of a strided 1x1 conv, then
    a linear head."""

    def __init__(self, activation, channels=(32, 64, 64)):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, channels[0], 1, bias=False)
        self.stem_act = activation(channels[0])
        self.blocks = torch.nn.ModuleList()
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            self.blocks.append(
                torch.nn.ModuleDict(
                    {
                        "conv1": torch.nn.Conv2d(c_in, c_in, 3, padding=1, bias=False),
                        "act1": activation(c_in),
                        "conv2": torch.nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                        "act2": activation(c_out),
                        "skip": torch.nn.Conv2d(c_in, c_out, 1, stride=2, bias=False),
                    }
                )
            )
        self.head = torch.nn.Linear(channels[-1], 1)

    def forward(self, x):
        x = self.stem_act(self.stem(x))
        for block in self.blocks:
            y = block["act2"](block["conv2"](block["act1"](block["conv1"](x))))
            x = (y + block["skip"](x)) * (0.5**0.5)
        return self.head(x.mean((2, 3)))


class CompositionLeakyReLU(torch.nn.Module):
    """rosinality's CPU path: a bias parameter, leaky_relu(x + bias, 0.2) * sqrt(2)."""

    def __init__(self, channel):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(channel))

    def forward(self, x):
        return composition(x, self.bias)


def r1_step(model, real):
    """One discriminator step on real images with the R1 penalty (gamma 10)."""
    real = real.detach().requires_grad_()
    logits = model(real)
    (grad_real,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    loss = F.softplus(-logits).mean() + 5.0 * grad_real.pow(2).sum((1, 2, 3)).mean()
    loss.backward()


def plain_step(model, real):
    """One discriminator step on real images without a penalty."""
    F.softplus(-model(real)).mean().backward()


def discriminator_cases(quick: bool, compile_too: bool):
    real = torch.randn(4 if quick else 16, 3, 64, 64)
    torch.manual_seed(0)
    reference = Discriminator(CompositionLeakyReLU)
    actx_model = Discriminator(torch_ext.nn.FusedLeakyReLU)
    actx_model.load_state_dict(reference.state_dict())
    variants = {
        "composition": lambda: r1_step(reference, real),
        "actx": lambda: r1_step(actx_model, real),
        "floor": lambda: real.clone(),
    }
    yield "discriminator step + R1", "float32", variants, None
    if compile_too:
        # AOTAutograd compiles no double backward, so the R1 step does not compile: the compiled rows
        # are the step without it (StyleGAN2 runs R1 lazily, every 16th step).
        compiled_reference = torch.compile(reference)
        compiled_actx = torch.compile(actx_model)
        yield (
            "discriminator step, compiled (no R1)",
            "float32",
            {
                "composition": lambda: plain_step(compiled_reference, real),
                "actx": lambda: plain_step(compiled_actx, real),
                "floor": lambda: real.clone(),
            },
            None,
        )


def run(threads_list, repeats, quick, target_seconds, compile_too):
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        for cases in (operator_cases(quick, compile_too), discriminator_cases(quick, compile_too)):
            for name, dtype, variants, saved in cases:
                # A step is long enough to time alone: one call a batch (the batch length is set
                # by the copy, a fraction of a step).
                operator = name.startswith(("forward", "backward"))
                t = time_variants(variants, repeats, target_seconds if operator else 0.0)
                row = {"case": name, "dtype": dtype, "threads": threads}
                row.update({f"{variant}_ms": seconds * 1e3 for variant, seconds in t.items() if variant != "floor"})
                if operator:
                    row["floor_ms"] = t["floor"] * 1e3
                    row["actx_vs_floor"] = t["actx"] / t["floor"]
                row["composition_vs_actx"] = t["composition"] / t["actx"]
                if saved is not None:
                    row["saved_actx_bytes"] = saved["actx"]
                    row["saved_composition_bytes"] = saved["composition"]
                rows.append(row)
                print(
                    "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                    flush=True,
                )
    return rows


def markdown_table(rows):
    lines = [
        "| case | dtype | threads | actx ms | composition ms | compiled composition ms | floor ms "
        "| composition / actx | actx / floor | saved: actx / composition |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        compiled = r.get("compiled composition_ms")
        if "compiled actx_ms" in r:
            compiled = f"{compiled:.3f} (actx compiled: {r['compiled actx_ms']:.3f})"
        elif compiled is not None:
            compiled = f"{compiled:.3f}"
        saved = (
            f"{r['saved_actx_bytes'] / 2**20:.2f} / {r['saved_composition_bytes'] / 2**20:.2f} MiB"
            if "saved_actx_bytes" in r
            else ""
        )
        floor = f"{r['floor_ms']:.3f}" if "floor_ms" in r else ""
        vs_floor = f"{r['actx_vs_floor']:.2f}" if "actx_vs_floor" in r else ""
        lines.append(
            f"| {r['case']} | {r['dtype']} | {r['threads']} | {r['actx_ms']:.3f} | {r['composition_ms']:.3f} | "
            f"{compiled or ''} | {floor} | {r['composition_vs_actx']:.2f}x | {vs_floor} | {saved} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}", help="comma-separated thread counts")
    parser.add_argument("--repeats", type=int, default=11, help="interleaved repetitions per case")
    parser.add_argument("--seconds", type=float, default=0.05, help="length of one timed batch")
    parser.add_argument("--quick", action="store_true", help="smaller tensors and batch")
    parser.add_argument("--compile", action="store_true", help="add the compositions (and models) under torch.compile")
    parser.add_argument("--out", default="bench_out", help="folder for benchmark_bias.json")
    args = parser.parse_args(argv)
    threads = sorted({int(t) for t in args.threads.split(",")})
    print(f"actx {torch_ext.cpu_capability()} kernels, torch {torch.__version__}, {cpu_name()}, threads {threads}")
    rows = run(threads, args.repeats, args.quick, args.seconds, args.compile)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"cpu": cpu_name(), "torch": torch.__version__, "capability": torch_ext.cpu_capability()}
    (out / "benchmark_bias.json").write_text(json.dumps({"machine": meta, "rows": rows}, indent=1))
    print()
    print(markdown_table(rows))
    print(f"\nwrote {out / 'benchmark_bias.json'}")


if __name__ == "__main__":
    main()
