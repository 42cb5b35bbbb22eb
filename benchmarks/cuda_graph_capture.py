"""What happens when MAX's launch of the op is recorded in a CUDA graph (issue 7).

MAX launches on its own stream, not on the stream being captured. This script
shows what that means, on a GPU: each case records one forward call at
N = 4096, K = 7 with torch.cuda.graph, replays the graph on new input data,
and compares the output with F.conv1d. Each case runs in its own process with
a time limit, since a capture that goes wrong may hang.

    python benchmarks/cuda_graph_capture.py            # all cases
    python benchmarks/cuda_graph_capture.py --case fenced
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

CASES = {
    "torch": "F.conv1d alone (the control: a torch kernel on the capturing stream)",
    "unfenced": "model.execute on MAX's own stream, no fence with the capturing stream",
    "fenced": "the op's fence: MAX's stream waits for the capturing stream, and back after",
    "op": "the public conv1d (its _run has that fence)",
}


def run_case(case: str) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from max.driver import Buffer

    from mojo_conv1d import conv1d, ops

    device = torch.device("cuda", torch.cuda.current_device())
    n, k = 4096, 7
    x = torch.randn(1, n, device=device)
    w = torch.randn(k, device=device)
    out = torch.zeros_like(x)

    def reference():
        return F.conv1d(F.pad(x, (0, k - 1)).view(1, 1, -1), w.view(1, 1, -1)).view(1, n)

    def call():
        if case == "torch":
            out.copy_(reference())
            return
        if case == "op":
            out.copy_(conv1d(x, w))
            return
        accelerator, max_stream = ops._gpu(device)
        capturing = torch.cuda.current_stream(device)
        if case == "fenced":
            max_stream.wait_stream(capturing)
        handle = max_stream.cuda_stream
        model.execute(*[Buffer._from_dlpack(t.__dlpack__(), accelerator, handle) for t in (out, x, w)])
        if case == "fenced":
            capturing.wait_stream(max_stream)

    model = ops._model("conv1d_forward", torch.float32, device)
    call()  # compiled and run once outside the capture, as torch.compile would
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream(device)
    with torch.cuda.stream(side):
        with torch.cuda.graph(graph, stream=side):
            call()
    torch.cuda.synchronize()
    x.copy_(torch.randn_like(x))
    out.zero_()
    graph.replay()
    torch.cuda.synchronize()
    ops._gpu(device)[0].synchronize()
    error = (out - reference()).abs().max().item()
    return f"captured; replay on new data: max error {error:.2e} ({'right' if error < 1e-3 else 'WRONG'})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.case:
        try:
            print(run_case(args.case))
        except Exception as e:  # the point is to show what it raises
            print(f"raised {type(e).__name__}: {str(e).splitlines()[0][:300]}")
        return 0
    for case, what in CASES.items():
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, __file__, "--case", case], capture_output=True, text=True, timeout=args.timeout)
            lines = [line for line in done.stdout.splitlines() if line.strip()]
            result = lines[-1] if lines else f"exit code {done.returncode}; stderr: {done.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            result = f"no answer within {args.timeout:.0f} s: killed (a hang)"
        print(f"{case:9s} {what}\n          -> {result} [{time.perf_counter() - start:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
