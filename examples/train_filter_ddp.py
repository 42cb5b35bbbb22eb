"""The filter of train_filter.py learned by several processes at once, with
DistributedDataParallel: each rank draws its own signals, DDP averages the
taps' gradients, and every rank must end with the same taps.

    torchrun --standalone --nproc-per-node 2 examples/train_filter_ddp.py   (one GPU per rank)
    torchrun --standalone --nproc-per-node 2 examples/train_filter_ddp.py --device cpu

Rank r works on cuda:r but leaves cuda:0 the current device, so the op must
follow its tensors' device rather than the current one.
"""

import argparse
import datetime
import os
import sys

import torch
import torch.distributed as dist

from mojo_conv1d import conv1d

# A rank that waits this long for the others gives up instead of hanging.
TIMEOUT = datetime.timedelta(minutes=2)
HIDDEN = [0.05, -0.1, 0.2, 0.5, 1.0, 0.5, 0.2, -0.1, 0.05]


class Filter(torch.nn.Module):
    def __init__(self, taps: int, device: torch.device):
        super().__init__()
        self.taps = torch.nn.Parameter(torch.zeros(taps, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv1d(x, self.taps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if args.device == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        # NCCL needs each rank's device current while it sets up; the
        # training loop below then runs with cuda:0 current on every rank.
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device, timeout=TIMEOUT)
        torch.cuda.set_device(0)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo", timeout=TIMEOUT)

    torch.manual_seed(0)  # the same starting taps on every rank (DDP also broadcasts them)
    model = torch.nn.parallel.DistributedDataParallel(Filter(len(HIDDEN), device))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    hidden = torch.tensor(HIDDEN, device=device)
    gen = torch.Generator().manual_seed(1000 + rank)  # each rank its own data
    for step in range(args.steps):
        signals = torch.randn(8, 512, generator=gen).to(device)
        loss = torch.nn.functional.mse_loss(model(signals), conv1d(signals, hidden))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    taps = model.module.taps.detach()
    gathered = [torch.empty_like(taps) for _ in range(world)]
    dist.all_gather(gathered, taps)
    same = all(torch.equal(t, gathered[0]) for t in gathered)
    error = (taps - hidden).abs().max().item()
    if rank == 0:
        print(f"{world} ranks on {args.device}: loss {loss.item():.3e}, largest tap error {error:.2e}")
        print("✅ taps equal on every rank" if same else "❌ ranks ended with different taps")
    dist.destroy_process_group()
    return 0 if same and error < 1e-2 else 1


if __name__ == "__main__":
    sys.exit(main())
