"""Benchmark: the Mojo conv1d op against cuDNN, Triton, a MAX Graph and a copy.

On a CUDA machine, for each dtype, N in 2^10..2^28 and K in {4, 16, 64, 256},
in one process:
  mojo        the project's PyTorch op (mojo_conv1d.conv1d)
  max_graph   the same Mojo kernels through a MAX Graph (how the op ran before)
  cudnn       torch.nn.functional.conv1d on an input padded beforehand
  triton      a plain Triton kernel of the same op (one output per lane, K static)
  copy        a device copy of the same bytes (the roofline)
Every result is checked against a float64 reference before it is timed,
and every call allocates its output.
Kernel time comes from the profiler (device time of the kernels one call
launches); call time is wall clock per call over back-to-back calls.
Then the per-call overhead at N=15 and the cost of a new length.

Without CUDA it benchmarks the CPU path against torch's CPU conv1d,
numpy.correlate and a copy. There the op's kernel time is its kernel alone,
called through the extension module (mojo_conv1d/cpu_ops.mojo) into an
output made once, as a GPU kernel writes into memory already allocated; its
call time is the whole op, which also allocates its output. The others have
call times only (the copy writes into a buffer made once).

Writes a table to stdout and CSV + PNG under --out (default benchmarks/out).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mojo_conv1d import _cpu, conv1d, ops

KERNEL_SIZES = (4, 16, 64, 256)


def reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """float64 result of the op, computed with torch on x's device."""
    xd, wd = x.double().view(1, 1, -1), w.double().view(1, 1, -1)
    return F.conv1d(F.pad(xd, (0, w.numel() - 1)), wd).view(-1)


def check(name: str, got: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> None:
    exact = reference(x, w)
    magnitude = reference(x.abs(), w.abs())
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[x.dtype] * (w.numel() / 4) ** 0.5
    err = ((got.double() - exact).abs() / (magnitude + 1e-30)).max().item()
    if not err <= tol:
        raise AssertionError(f"{name}: relative error {err:.3g} > {tol:.3g} (N={x.numel()}, K={w.numel()})")


# --------------------------------------------------------------------------- GPU timing


def profiled_kernel_time(fn, calls: int) -> float:
    """Seconds of device kernel time per call, as the profiler records it."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    total_us = sum(e.device_time_total for e in prof.key_averages() if e.device_time_total > 0 and _is_kernel(e.key))
    return total_us * 1e-6 / calls


def _is_kernel(name: str) -> bool:
    """Device work of the call itself: kernels and device-to-device copies."""
    return not name.startswith(("Memcpy HtoD", "Memcpy DtoH", "Memset", "cudaDevice", "ProfilerStep"))


def wall_times_per_call(methods: dict, calls: int, syncs: dict | None = None, rounds: int = 7) -> dict:
    """Median over `rounds` (after one more, untimed) of wall clock per call
    for back-to-back calls, per method. The rounds go round-robin over the methods, so that a slow spell
    of the machine (the host's jitter moves a 20 us call by as much again)
    falls on all of them alike."""
    times = {name: [] for name in methods}
    for _ in range(rounds + 1):
        for name, fn in methods.items():
            sync = (syncs or {}).get(name, torch.cuda.synchronize)
            sync()
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            sync()
            times[name].append((time.perf_counter() - start) / calls)
    # The first round only warms up (the allocator's pool, the host's clocks).
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def triton_conv1d():
    """A plain Triton version: each lane computes one output, K is static.
    Like the other methods, a call allocates its output."""
    import triton
    import triton.language as tl

    @triton.jit
    def kernel(x_ptr, w_ptr, out_ptr, n, K: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for j in tl.static_range(K):
            w = tl.load(w_ptr + j).to(tl.float32)
            x = tl.load(x_ptr + offs + j, mask=offs + j < n, other=0.0).to(tl.float32)
            acc += x * w
        tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=offs < n)

    def run(x, w):
        out = torch.empty_like(x)
        n = x.numel()
        kernel[(triton.cdiv(n, 1024),)](x, w, out, n, K=w.numel(), BLOCK=1024)
        return out

    return run


def max_graph_conv1d(dtype: torch.dtype):
    """The package's Mojo op conv1d_forward in a one-node MAX Graph (symbolic
    lengths), the way the op ran before it launched on PyTorch's stream: MAX
    runs it on its own stream, and each call allocates its output with torch
    and hands the three tensors to MAX through DLPack."""
    from max.driver import Accelerator, Buffer
    from max.engine import InferenceSession
    from max.experimental.torch.torch import torch_dtype_to_max
    from max.graph import BufferType, DeviceRef, Graph, KernelLibrary, TensorType, ops

    from mojo_conv1d import build

    index = torch.cuda.current_device()
    accelerator = Accelerator(index)
    library = KernelLibrary()
    library.load_paths([build.kernel_package()])
    max_dtype, ref = torch_dtype_to_max(dtype), DeviceRef.GPU(index)
    types = [BufferType(max_dtype, ("rows", "n"), ref), TensorType(max_dtype, ("rows", "n"), ref),
             TensorType(max_dtype, ("k",), ref)]
    with Graph(f"conv1d_forward_{max_dtype.name}", input_types=types, kernel_library=library) as graph:
        ops.inplace_custom("conv1d_forward", ref, list(graph.inputs))
        graph.output()
    model = InferenceSession(devices=[accelerator]).load(graph)
    stream = accelerator.default_queue.native_stream_handle

    def run(x, w):
        out = torch.empty_like(x)
        # Handed over without DLPack's stream sync (sync() below orders the streams).
        model.execute(*[Buffer._from_dlpack(t.__dlpack__(), accelerator, stream) for t in (out.view(1, -1), x.view(1, -1), w)])
        return out

    def sync():
        accelerator.synchronize()
        torch.cuda.synchronize()

    return run, sync


def bench_gpu(args) -> list[dict]:
    rows = []
    triton_run = None
    try:
        triton_run = triton_conv1d()
    except ImportError:
        print("Triton is not installed: no triton column", file=sys.stderr)
    sizes = [2**p for p in range(args.min_log2, args.max_log2 + 1, 2)]
    for dtype in args.dtypes:
        graph_run, graph_sync = max_graph_conv1d(dtype)
        for n in sizes:
            x = torch.randn(n, device="cuda").to(dtype)
            # The roofline: read N elements and write N, the bytes the op must move.
            src, dst = torch.empty(n, device="cuda", dtype=dtype), torch.empty(n, device="cuda", dtype=dtype)
            for k in KERNEL_SIZES:
                w = torch.randn(k, device="cuda").to(dtype)
                padded = F.pad(x.view(1, 1, -1), (0, k - 1))
                methods = {
                    "mojo": lambda: conv1d(x, w),
                    "max_graph": lambda: graph_run(x, w),
                    "cudnn": lambda: F.conv1d(padded, w.view(1, 1, -1)).view(-1),
                    "copy": lambda: dst.copy_(src),
                }
                if triton_run is not None:
                    methods["triton"] = lambda: triton_run(x, w)
                calls = max(3, min(200, (2**26 // n) * 4))
                kernel_s = {}
                for name, fn in methods.items():
                    result = fn()
                    graph_sync()  # the MAX Graph runs on MAX's stream
                    if name != "copy":
                        check(name, result, x, w)
                    kernel_s[name] = profiled_kernel_time(fn, calls)
                call_s = wall_times_per_call(methods, calls, {"max_graph": graph_sync}, rounds=5)
                for name in methods:
                    rows.append(dict(device="cuda", dtype=str(dtype).removeprefix("torch."), n=n, k=k,
                                     method=name, kernel_us=kernel_s[name] * 1e6, call_us=call_s[name] * 1e6,
                                     bytes=(2 * n + k) * x.element_size()))
                print_group(rows[-len(methods):])
    return rows


# --------------------------------------------------------------------------- CPU


CPU_ROUNDS = 7  # timed rounds per method and shape on the CPU; the median is reported


def bench_cpu(args) -> list[dict]:
    rows = []
    sizes = [2**p for p in range(args.min_log2, min(args.max_log2, 22) + 1, 2)]
    for n in sizes:
        x = torch.randn(n)
        src, dst = torch.empty(n), torch.empty(n)
        kernel_out = torch.empty(1, n)
        for k in KERNEL_SIZES:
            w = torch.randn(k)
            wn = w.numpy()
            padded = F.pad(x.view(1, 1, -1), (0, k - 1))
            padded_np = padded.view(-1).numpy()

            def mojo_kernel():  # what the op runs after allocating its output
                _cpu.correlate(kernel_out, x.view(1, -1), w, 0, False)
                return kernel_out.view(-1)

            # The kernel alone runs after torch's conv1d, whose temporaries
            # (hundreds of MB) push the input out of the cache; so it does not
            # start on the input the op's call has just read, and the call,
            # after the copy, does not either.
            methods = {
                "mojo": lambda: conv1d(x, w),
                "torch_cpu": lambda: F.conv1d(padded, w.view(1, 1, -1)).view(-1),
                "mojo_kernel": mojo_kernel,
                "numpy": lambda: torch.from_numpy(np.correlate(padded_np, wn, mode="valid")),
                "copy": lambda: dst.copy_(src),
            }
            calls = max(2, min(50, 2**24 // (n * k)))
            for name, fn in methods.items():
                result = fn()
                if name != "copy":
                    check(name, result, x, w)
            # Rounds go round-robin over the methods, so that a busy spell of
            # a shared machine slows them alike rather than whichever ran then.
            times = {name: [] for name in methods}
            for _ in range(CPU_ROUNDS):
                for name, fn in methods.items():
                    start = time.perf_counter()
                    for _ in range(calls):
                        fn()
                    times[name].append((time.perf_counter() - start) / calls)
            median_us = {name: statistics.median(t) * 1e6 for name, t in times.items()}
            kernel_us = median_us.pop("mojo_kernel")  # reported as the op's kernel time
            for name, call_us in median_us.items():
                rows.append(dict(device="cpu", dtype="float32", n=n, k=k, method=name,
                                 kernel_us=kernel_us if name == "mojo" else float("nan"),
                                 call_us=call_us, bytes=(2 * n + k) * 4))
            print_group(rows[-len(median_us):])
    return rows


# --------------------------------------------------------------------------- overhead


def bench_overhead(device: str) -> list[dict]:
    """Per-call cost at N=15 and the first call at a length never seen before."""
    rows = []
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    x = torch.arange(15, dtype=torch.float32, device=device)
    w = torch.arange(4, dtype=torch.float32, device=device)
    compiled = torch.compile(conv1d)

    def torch_conv1d(x, w):
        return F.conv1d(x.view(1, 1, -1), w.view(1, 1, -1), padding=(0,))

    methods = {
        "mojo eager": lambda: conv1d(x, w),
        "mojo torch.compile": lambda: compiled(x, w),
        "F.conv1d": lambda: torch_conv1d(x, w),
    }
    if device == "cuda":
        # The whole compiled call replayed as a CUDA graph (the op is recorded
        # in it), and F.conv1d through the same two modes: what torch.compile
        # itself costs per call, whatever the op inside.
        graphed = torch.compile(conv1d, mode="reduce-overhead")
        methods["mojo torch.compile reduce-overhead"] = lambda: graphed(x, w)
        torch_compiled = torch.compile(torch_conv1d)
        torch_graphed = torch.compile(torch_conv1d, mode="reduce-overhead")
        methods["F.conv1d torch.compile"] = lambda: torch_compiled(x, w)
        methods["F.conv1d torch.compile reduce-overhead"] = lambda: torch_graphed(x, w)
        try:
            run = triton_conv1d()
            methods["triton launch"] = lambda: run(x, w)
        except ImportError:
            pass
    for name, fn in methods.items():
        for _ in range(3):  # compiled, and for reduce-overhead recorded, before timing
            fn()
    syncs = {name: sync for name in methods}
    for name, seconds in wall_times_per_call(methods, 2000, syncs).items():
        rows.append(dict(device=device, what=f"per call, N=15: {name}", us=seconds * 1e6))
    if device == "cuda":
        rows += bench_models_steps()
    for n in (12_345, 54_321):
        fresh = torch.randn(n, device=device)
        start = time.perf_counter()
        conv1d(fresh, w)
        sync()
        rows.append(dict(device=device, what=f"first call at a new length N={n}", us=(time.perf_counter() - start) * 1e6))
    for row in rows:
        print(f"{row['device']:5} {row['what']:45} {row['us']:12.1f} us")
    return rows


def bench_models_steps() -> list[dict]:
    """What a model sees: a training step (forward, then backward to both
    arguments) and a forward pass over a batch of rows, against F.conv1d on
    the same rows zero-padded on the right."""
    rows = []

    def torch_conv1d(x, w):
        return F.conv1d(F.pad(x.unsqueeze(1), (0, w.numel() - 1)), w.view(1, 1, -1)).squeeze(1)

    for shape in ((8, 2**14), (8, 2**20)):
        x = torch.randn(shape, device="cuda", requires_grad=True)
        w = torch.randn(4, device="cuda", requires_grad=True)
        grad = torch.randn(shape, device="cuda")
        steps = {}
        for name, op in (("mojo", conv1d), ("F.conv1d", torch_conv1d)):
            def step(op=op):
                x.grad = w.grad = None
                op(x, w).backward(grad)

            step()
            torch.testing.assert_close(x.grad.double(), ops._conv1d_grad_input(grad, w.detach()).double(), rtol=1e-4, atol=1e-4)
            steps[name] = step
        for name, seconds in wall_times_per_call(steps, 200 if shape[1] <= 2**14 else 20).items():
            rows.append(dict(device="cuda", what=f"training step {shape} float32 K=4: {name}", us=seconds * 1e6))
    x = torch.randn(32, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4, device="cuda", dtype=torch.bfloat16)
    padded = F.pad(x.unsqueeze(1), (0, 3))
    forwards = {"mojo": lambda: conv1d(x, w), "F.conv1d": lambda: F.conv1d(padded, w.view(1, 1, -1)).squeeze(1)}
    for fn in forwards.values():
        torch.testing.assert_close(fn().float(), torch_conv1d(x.float(), w.float()), rtol=2e-2, atol=2e-2)
    for name, seconds in wall_times_per_call(forwards, 2000).items():
        rows.append(dict(device="cuda", what=f"forward (32, 4096) bfloat16 K=4: {name}", us=seconds * 1e6))
    return rows


# --------------------------------------------------------------------------- output


def device_time_us(row: dict) -> float:
    """The profiler's kernel time where it measured one, else wall time per call."""
    kernel = row["kernel_us"]
    return kernel if kernel == kernel and kernel > 0 else row["call_us"]


def print_group(group: list[dict]) -> None:
    by = {r["method"]: r for r in group}
    copy_gbs = by["copy"]["bytes"] / device_time_us(by["copy"]) / 1e3
    ref = "cudnn" if "cudnn" in by else "torch_cpu"
    first = group[0]
    for r in group:
        t = device_time_us(r)
        gbs = r["bytes"] / t / 1e3
        r.update(time_us=t, gb_s=gbs, pct_of_copy=100 * gbs / copy_gbs, speedup_vs_ref=device_time_us(by[ref]) / t)
        line = (f"{first['device']:4} {first['dtype']:8} N=2^{int(np.log2(first['n'])):<2} K={first['k']:<3} "
                f"{r['method']:10} kernel {r['kernel_us']:10.1f} us  call {r['call_us']:10.1f} us  "
                f"{gbs:8.1f} GB/s  {r['pct_of_copy']:5.1f}% of copy  x{r['speedup_vs_ref']:.2f} vs {ref}")
        if "numpy" in by:
            numpy_us = by["numpy"]["call_us"]
            r.update(speedup_vs_numpy=numpy_us / t, call_speedup_vs_numpy=numpy_us / r["call_us"])
            line += f"  x{r['speedup_vs_numpy']:.2f} vs numpy"
            if t != r["call_us"]:
                line += f" (call x{r['call_speedup_vs_numpy']:.2f})"
        print(line)


def write_csv(path: Path, rows: list[dict]) -> None:
    """rows (dicts with the same keys) as a CSV file, its folder made if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(rows: list[dict], overhead: list[dict], out: Path) -> None:
    device = rows[0]["device"]
    write_csv(out / f"bench_{device}.csv", rows)
    write_csv(out / f"overhead_{device}.csv", overhead)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = sorted({r["dtype"] for r in rows})
    fig, axes = plt.subplots(len(dtypes), len(KERNEL_SIZES), figsize=(4 * len(KERNEL_SIZES), 3.4 * len(dtypes)),
                             squeeze=False, sharey=True)
    for i, dtype in enumerate(dtypes):
        for j, k in enumerate(KERNEL_SIZES):
            ax = axes[i][j]
            for method in dict.fromkeys(r["method"] for r in rows):
                pts = [(r["n"], r["gb_s"]) for r in rows if r["dtype"] == dtype and r["k"] == k and r["method"] == method]
                if pts:
                    style = dict(color="black", linestyle="--") if method == "copy" else dict(marker="o", markersize=3)
                    ax.plot(*zip(*pts), label=method, **style)
                if device == "cpu" and method == "mojo":  # its kernel above; here the whole call, allocation included
                    calls = [(r["n"], r["bytes"] / r["call_us"] / 1e3) for r in rows
                             if r["dtype"] == dtype and r["k"] == k and r["method"] == method]
                    ax.plot(*zip(*calls), label="mojo (call)", marker="x", markersize=3, linestyle=":")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{dtype}, K={k}")
            ax.set_xlabel("N")
            if j == 0:
                ax.set_ylabel("GB/s (input + output bytes / time)")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"conv1d bandwidth on {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}")
    fig.tight_layout()
    fig.savefig(out / f"bench_{device}.png", dpi=110)
    print(f"wrote {out}/bench_{device}.csv, overhead_{device}.csv, bench_{device}.png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-log2", type=int, default=10)
    parser.add_argument("--max-log2", type=int, default=28)
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--call-cost-only", action="store_true", help="only the per-call costs (overhead CSV)")
    args = parser.parse_args(argv)
    args.dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    if args.call_cost_only:
        write_csv(args.out / f"overhead_{args.device}.csv", bench_overhead(args.device))
        print(f"wrote {args.out}/overhead_{args.device}.csv")
        return 0
    rows = bench_gpu(args) if args.device == "cuda" else bench_cpu(args)
    overhead = bench_overhead(args.device)
    write_outputs(rows, overhead, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
