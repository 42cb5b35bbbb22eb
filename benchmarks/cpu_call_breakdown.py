"""Where one CPU call of the op at N = 2^22, K = 4 spends its time, against
numpy.correlate and a copy of the same bytes: wall clock per call, the
minimum and the median of five rounds. See docs/kernel_tuning.md.

    python benchmarks/cpu_call_breakdown.py
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from max.driver import Buffer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mojo_conv1d import conv1d, ops  # noqa: E402

N, K = 2**22, 4


def ms_per_call(fn, calls: int = 30, rounds: int = 5) -> str:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e3)
    times.sort()
    return f"min {times[0]:6.2f} ms   median {times[len(times) // 2]:6.2f} ms"


def main() -> None:
    x, w = torch.randn(N), torch.randn(K)
    conv1d(x, w)  # builds and loads the op's CPU graph
    rows = x.view(1, -1)
    out, existing = torch.empty_like(rows), torch.empty(N)
    model = ops._model("conv1d_forward", torch.float32, torch.device("cpu"))
    buffers = [Buffer.from_dlpack(t) for t in (out, rows, w)]
    padded, taps = np.pad(x.numpy(), (0, K - 1)), w.numpy()
    print(f"N = 2^22, K = {K}, float32, {torch.get_num_threads()} threads")
    steps = {
        "conv1d(x, w), the public op": lambda: conv1d(x, w),
        "ops._run into a fresh output": lambda: ops._run("conv1d_forward", torch.empty_like(rows), rows, w),
        "ops._run into an existing output": lambda: ops._run("conv1d_forward", out, rows, w),
        "model.execute on buffers made once": lambda: model.execute(*buffers),
        "numpy.correlate": lambda: np.correlate(padded, taps, mode="valid"),
        "copy of the same bytes": lambda: existing.copy_(x),
        "torch.empty(N).fill_(0)": lambda: torch.empty(N).fill_(0),
    }
    for name, fn in steps.items():
        print(f"{name:38s} {ms_per_call(fn)}")


if __name__ == "__main__":
    main()
