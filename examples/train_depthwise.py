"""A small causal sequence model trained twice from the same initial weights:
once with `DepthwiseConv1d`, once with `nn.Conv1d(C, C, K, groups=C)` cut to
causal, and the two loss curves compared step by step.

The task, made here: from a noisy multichannel signal, predict at each step a
mix of the channels' last few values (a causal target, so the model's short
depthwise convolution can learn it; the 1x1 mixing layer does the rest).

    uv run python examples/train_depthwise.py          (float32, 200 steps)
"""

import argparse
import sys

import torch
import torch.nn.functional as F

from mojo_conv1d import DepthwiseConv1d

CHANNELS, TAPS, LENGTH, BATCH = 16, 4, 256, 8


class CausalBlock(torch.nn.Module):
    """Depthwise causal conv with SiLU, then a 1x1 mix of the channels."""

    def __init__(self, depthwise: torch.nn.Module):
        super().__init__()
        self.depthwise = depthwise
        self.mix = torch.nn.Conv1d(CHANNELS, 1, 1)

    def forward(self, x):
        return self.mix(self.depthwise(x)).squeeze(1)


class TorchCausalDepthwise(torch.nn.Module):
    """The same layer written with PyTorch's grouped convolution."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(CHANNELS, CHANNELS, TAPS, groups=CHANNELS, padding=TAPS - 1)

    def forward(self, x):
        return F.silu(self.conv(x)[..., : x.shape[-1]])


def batches(steps: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(CHANNELS, TAPS, generator=gen) / TAPS
    for _ in range(steps):
        x = torch.randn(BATCH, CHANNELS, LENGTH, generator=gen)
        past = F.pad(x, (TAPS - 1, 0)).unfold(-1, TAPS, 1)  # (B, C, L, K): x[t-K+1 .. t]
        target = torch.tanh((past * hidden[:, None, :]).sum(-1)).mean(1)
        yield x, target


def train(model: torch.nn.Module, steps: int) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for x, target in batches(steps):
        loss = F.mse_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    reference = CausalBlock(TorchCausalDepthwise())
    ours = CausalBlock(DepthwiseConv1d(CHANNELS, TAPS, padding="causal", activation="silu"))
    # The same starting point: nn.Conv1d's weight and bias load into DepthwiseConv1d as they are.
    ours.depthwise.load_state_dict(reference.depthwise.conv.state_dict())
    ours.mix.load_state_dict(reference.mix.state_dict())

    theirs, mine = train(reference, args.steps), train(ours, args.steps)
    worst = max(abs(a - b) / abs(a) for a, b in zip(theirs, mine))
    for step in range(0, args.steps, max(1, args.steps // 5)):
        print(f"step {step:4d}  nn.Conv1d(groups=C) {theirs[step]:.6e}  DepthwiseConv1d {mine[step]:.6e}")
    print(f"step {args.steps - 1:4d}  nn.Conv1d(groups=C) {theirs[-1]:.6e}  DepthwiseConv1d {mine[-1]:.6e}")
    print(f"largest relative difference over {args.steps} steps: {worst:.2e}")
    agree = worst <= 1e-4 and mine[-1] < 0.5 * mine[0]
    print("✅ the loss curves agree" if agree else "❌ the loss curves differ")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
