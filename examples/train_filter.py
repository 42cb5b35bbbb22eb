"""Train a conv1d kernel by gradient descent until it reproduces a known filter.

A hidden 9-tap filter is applied to random signals with the Mojo op; a second
kernel starts at zero and learns it from (signal, filtered signal) pairs,
with gradients from the op's own backward kernels. The loss should fall by
many orders of magnitude and the learned taps should match the hidden ones.

    uv run poe train            (or: python examples/train_filter.py --device cuda)
"""

import argparse
import sys

import torch

from mojo_conv1d import conv1d


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)

    gen = torch.Generator().manual_seed(0)
    hidden = torch.tensor([0.05, -0.1, 0.2, 0.5, 1.0, 0.5, 0.2, -0.1, 0.05]).to(args.device)
    learned = torch.zeros_like(hidden, requires_grad=True)
    optimizer = torch.optim.Adam([learned], lr=0.05)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)

    print(f"Learning a {hidden.numel()}-tap filter on {args.device}")
    first = last = None
    for step in range(args.steps + 1):
        signals = torch.randn(16, 512, generator=gen).to(args.device)
        target = conv1d(signals, hidden)
        loss = torch.nn.functional.mse_loss(conv1d(signals, learned), target)
        first = loss.item() if first is None else first
        last = loss.item()
        if step % 50 == 0:
            print(f"step {step:4d}  loss {last:.3e}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()

    error = (learned.detach() - hidden).abs().max().item()
    print(f"hidden  taps: {[round(v, 3) for v in hidden.tolist()]}")
    print(f"learned taps: {[round(v, 3) for v in learned.detach().tolist()]}")
    print(f"loss {first:.3e} -> {last:.3e}; largest tap error {error:.2e}")
    converged = last < 1e-6 * first and error < 1e-3
    print("✅ converged" if converged else "❌ did not converge")
    return 0 if converged else 1


if __name__ == "__main__":
    sys.exit(main())
