"""Benchmark: depthwise_conv1d (one filter per channel, causal) against
PyTorch's grouped convolution and a copy of the same bytes.

For each shape (B, C, L) and K, in one process, methods timed round-robin
(so a busy spell of a shared machine slows them alike), the median of the
rounds:
  mojo_kernel   the op's kernel alone, into an output made once
  mojo          the whole call, allocating its output
  mojo_strided  the whole call on a channel-last input (a (B, L, C) tensor
                transposed), which has a kernel of its own
  torch         F.conv1d(x, w, padding=K - 1, groups=C), cut to L
  mojo_silu     the whole call with a bias and SiLU (Mamba's layer), one pass
  torch_silu    the same with F.conv1d's bias and F.silu
  copy          a copy of the input's bytes into a buffer made once
Every result is checked against float64 before it is timed. CPU only for
now: the op's CUDA kernels are not written yet.

Writes a table to stdout and a CSV under --out (default benchmarks/out).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mojo_conv1d import _cpu, depthwise_conv1d

SHAPES = [((4, 256, 16384), 4), ((4, 256, 16384), 64), ((1, 1024, 2048), 4), ((8, 64, 4096), 4)]
ROUNDS = 7


def reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    k = w.shape[-1]
    return F.conv1d(x.double(), w.double()[:, None], padding=k - 1, groups=w.shape[0])[..., : x.shape[-1]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads")
    rows = []
    for (b, c, length), k in SHAPES:
        x = torch.randn(b, c, length)
        w = torch.randn(c, k)
        bias = torch.randn(c)
        channel_last = x.transpose(1, 2).contiguous().transpose(1, 2)
        kernel_out = torch.empty_like(x)
        src, dst = torch.empty_like(x), torch.empty_like(x)

        def mojo_kernel():
            _cpu.correlate(kernel_out, x, w, k - 1, False, channels=c)
            return kernel_out

        methods = {
            "mojo_kernel": mojo_kernel,
            "mojo": lambda: depthwise_conv1d(x, w),
            "mojo_strided": lambda: depthwise_conv1d(channel_last, w),
            "torch": lambda: F.conv1d(x, w[:, None], padding=k - 1, groups=c)[..., :length],
            "mojo_silu": lambda: depthwise_conv1d(x, w, bias, activation="silu"),
            "torch_silu": lambda: F.silu(F.conv1d(x, w[:, None], bias, padding=k - 1, groups=c)[..., :length]),
            "copy": lambda: dst.copy_(src),
        }
        exact = reference(x, w)
        exact_silu = F.silu(exact + bias.double()[:, None])
        for name, fn in methods.items():
            if name != "copy":
                want = exact_silu if name.endswith("silu") else exact
                torch.testing.assert_close(fn().double(), want, rtol=1e-4, atol=1e-4 * k**0.5)
        times = {name: [] for name in methods}
        for _ in range(ROUNDS):
            for name, fn in methods.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        copy_ms = statistics.median(times["copy"]) * 1e3
        for name, t in times.items():
            ms = statistics.median(t) * 1e3
            rows.append(dict(device="cpu", dtype="float32", b=b, c=c, length=length, k=k, method=name,
                             ms=ms, times_copy=ms / copy_ms))
            print(f"({b}, {c}, {length}) K={k:<3} {name:13} {ms:9.2f} ms  {ms / copy_ms:6.2f}x copy")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "depthwise_cpu.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}/depthwise_cpu.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
