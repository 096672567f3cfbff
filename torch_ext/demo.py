"""LeakyReLU or PReLU? The same function, f(x) = max(0, x) + a * min(0, x); LeakyReLU fixes a,
PReLU learns it (dL/da = sum of grad * min(0, x)). This demo shows both with actx's operators:

1. actx.leaky_relu with slope a and actx.prelu with weight a give bitwise the same output, and
   only prelu yields a gradient for a;
2. two identical small networks, one with LeakyReLU(0.01) and one with a per-channel PReLU
   (init 0.25), train on two interleaved spirals; the PReLU slopes move where the data pull them.

    python -m torch_ext.demo [--out demo_out] [--epochs 60] [--seed 0] [--threads 2] [--device cpu]

Writes functions.png, loss_curves.png, slopes.png and summary.json under --out.
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

import torch_ext


def spirals(n_per_class: int, noise: float, generator: torch.Generator):
    """Two interleaved spirals in the plane: points (n, 2) and labels (n,)."""
    t = torch.rand(n_per_class, generator=generator) * 3 * math.pi + 0.5
    arms = []
    for label, phase in ((0, 0.0), (1, math.pi)):
        r = t / (3 * math.pi)
        points = torch.stack([r * torch.cos(t + phase), r * torch.sin(t + phase)], dim=1)
        points = points + noise * torch.randn(points.shape, generator=generator)
        arms.append((points, torch.full((n_per_class,), label)))
    x = torch.cat([a[0] for a in arms])
    y = torch.cat([a[1] for a in arms])
    return x, y


def make_network(activation: str, width: int) -> torch.nn.Sequential:
    def act():
        if activation == "leaky_relu":
            return torch_ext.nn.LeakyReLU(0.01)
        return torch_ext.nn.PReLU(num_parameters=width, init=0.25)

    return torch.nn.Sequential(
        torch.nn.Linear(2, width),
        act(),
        torch.nn.Linear(width, width),
        act(),
        torch.nn.Linear(width, width),
        act(),
        torch.nn.Linear(width, 2),
    )


def show_same_function(device: str) -> dict:
    """Part 1: same output bit for bit; a gradient for the slope only in prelu."""
    a = 0.25
    x = torch.linspace(-3, 3, 1001, device=device, requires_grad=True)
    w = torch.tensor([a], device=device, requires_grad=True)
    y_leaky = torch_ext.leaky_relu(x, a)
    y_prelu = torch_ext.prelu(x, w)
    identical = bool(torch.equal(y_leaky.detach().view(torch.int32), y_prelu.detach().view(torch.int32)))
    grad = torch.ones_like(y_prelu)
    (gx_leaky,) = torch.autograd.grad(y_leaky, (x,), grad)
    gx_prelu, gw_prelu = torch.autograd.grad(y_prelu, (x, w), grad)
    expected_gw = float((grad * torch.clamp(x.detach(), max=0)).sum())
    print("1. The same function")
    print(f"   leaky_relu(x, {a}) and prelu(x, [{a}]) on {x.numel()} points: bitwise identical = {identical}")
    print(f"   d/dx identical = {torch.equal(gx_leaky, gx_prelu)}")
    print("   leaky_relu has no gradient for its slope (a Python float, a hyperparameter)")
    print(f"   prelu:  dL/da = {float(gw_prelu):.6f}   sum(grad * min(0, x)) = {expected_gw:.6f}")
    return {
        "bitwise_identical": identical,
        "input_gradients_identical": bool(torch.equal(gx_leaky, gx_prelu)),
        "prelu_slope_gradient": float(gw_prelu),
        "sum_grad_times_min0x": expected_gw,
    }


def train(activation, data, args, device):
    from tqdm import tqdm

    torch.manual_seed(args.seed)  # identical initial weights for both networks
    model = make_network(activation, args.width).to(device)
    x_train, y_train, x_test, y_test = data
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    losses, slopes = [], []
    batches = math.ceil(x_train.shape[0] / args.batch_size)
    bar = tqdm(range(args.epochs), desc=f"{activation:10s}", unit="epoch", ncols=90, mininterval=0.5)
    for _ in bar:
        order = torch.randperm(x_train.shape[0], generator=generator).to(device)
        total = 0.0
        for b in range(batches):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / x_train.shape[0])
        slopes.append([m.weight.detach().cpu().tolist() for m in model if isinstance(m, torch_ext.nn.PReLU)])
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    return {"losses": losses, "slopes": slopes, "accuracy": accuracy, "final_loss": losses[-1]}


def plot_functions(path):
    import matplotlib.pyplot as plt

    x = torch.linspace(-3, 3, 601, requires_grad=True)
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    for a in (0.01, 0.25, -0.25):
        y = torch_ext.prelu(x, torch.tensor([a]))
        (dy,) = torch.autograd.grad(y.sum(), x)
        ax_f.plot(x.detach(), y.detach(), label=f"a = {a}")
        ax_d.plot(x.detach(), dy, label=f"a = {a}")
    ax_f.set_title("f(x) = max(0, x) + a * min(0, x)")
    ax_d.set_title("df/dx: 1 for x > 0, a elsewhere")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.axvline(0, color="gray", linewidth=0.5)
        ax.legend()
    fig.suptitle("LeakyReLU (a fixed) and PReLU (a learned) are the same function of x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_losses(results, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        ax.plot(r["losses"], label=f"{name} (test accuracy {r['accuracy']:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross entropy)")
    ax.set_title("Two spirals: same network, same seed, different activation")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_slopes(slopes, path):
    import matplotlib.pyplot as plt

    history = torch.tensor(slopes)  # (epochs, layers, channels)
    layers = history.shape[1]
    fig, axes = plt.subplots(1, layers, figsize=(5 * layers, 4), sharey=True, squeeze=False)
    for layer, ax in enumerate(axes[0]):
        ax.plot(history[:, layer, :].numpy(), linewidth=0.6, alpha=0.7)
        ax.axhline(0.25, color="black", linestyle="--", linewidth=1, label="init 0.25")
        ax.axhline(0.01, color="red", linestyle=":", linewidth=1, label="LeakyReLU's 0.01")
        ax.set_title(f"PReLU layer {layer + 1}: slope of each channel")
        ax.set_xlabel("epoch")
        ax.legend()
    axes[0][0].set_ylabel("learned slope a")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="folder for the figures and summary.json")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=64, help="hidden channels (PReLU slopes per layer)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")

    import matplotlib

    matplotlib.use("Agg")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    same = show_same_function(args.device)

    print(
        f"\n2. Training on two spirals ({args.epochs} epochs, seed {args.seed}, {args.threads} threads, "
        f"{args.device}, actx {torch_ext.cpu_capability()} kernels)"
    )
    generator = torch.Generator().manual_seed(args.seed)
    x_train, y_train = spirals(1000, 0.02, generator)
    x_test, y_test = spirals(500, 0.02, generator)
    data = tuple(t.to(args.device) for t in (x_train, y_train, x_test, y_test))
    results = {name: train(name, data, args, args.device) for name in ("leaky_relu", "prelu")}

    for name, r in results.items():
        print(f"   {name:10s} final loss {r['final_loss']:.4f}   test accuracy {r['accuracy']:.3f}")
    final_slopes = torch.tensor(results["prelu"]["slopes"][-1])
    for layer, row in enumerate(final_slopes):
        print(
            f"   PReLU layer {layer + 1} learned slopes: min {row.min():.3f}  mean {row.mean():.3f}  "
            f"max {row.max():.3f}  (init 0.25; {int((row < 0).sum())} of {row.numel()} negative)"
        )

    plot_functions(out / "functions.png")
    plot_losses(results, out / "loss_curves.png")
    plot_slopes(results["prelu"]["slopes"], out / "slopes.png")
    summary = {
        "same_function": same,
        "settings": {k: getattr(args, k) for k in ("epochs", "seed", "threads", "device", "width", "batch_size", "lr")},
        "torch": torch.__version__,
        "cpu_capability": torch_ext.cpu_capability(),
        "results": {
            name: {"final_loss": r["final_loss"], "test_accuracy": r["accuracy"], "loss_curve": r["losses"]}
            for name, r in results.items()
        },
        "learned_slopes": final_slopes.tolist(),
        "seconds": round(time.perf_counter() - start, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nWrote {out}/functions.png, loss_curves.png, slopes.png and summary.json in {summary['seconds']} s")


if __name__ == "__main__":
    main()
