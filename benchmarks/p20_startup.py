"""Where a warm run of the puzzle (solutions/p20/p20.py) spends its time.

Runs the driver's steps one at a time on the CPU and prints the wall time of
each. Run it twice: the second run shows the warm-cache figures. See
docs/overhead.md.
"""

import sys
import time
from pathlib import Path

start = last = time.perf_counter()


def lap(step: str) -> None:
    global last
    now = time.perf_counter()
    print(f"{step:45s} {now - last:6.2f} s")
    last = now


import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "solutions" / "p20"))
import p20  # noqa: E402

lap("import torch, max and the driver")
library = p20.op_library()
lap("CustomOpLibrary(op_package()): load the .mojoc")
op = library.conv1d[{"input_size": 15, "conv_size": 4}]
x, w = torch.arange(15.0), torch.arange(4.0)
op(torch.empty_like(x), x, w)
lap("first call of conv1d[15, 4]: its graph")
torch.compile(op)(torch.empty_like(x), x, w)
lap("the same op under torch.compile, first call")
p20.conv1d_max_graph(np.arange(15, dtype=np.float32), np.arange(4, dtype=np.float32), "cpu")
lap("MAX Graph path: build, compile, run")
print(f"{'total':45s} {time.perf_counter() - start:6.2f} s")
