"""Benchmark: depthwise_conv1d (one filter per channel, causal) against
PyTorch's grouped convolution, Dao-AILab's causal-conv1d, MAX's own causal
conv1d kernel and a copy of the same bytes.

On a CUDA machine (--device cuda), for the shapes of CUDA_SHAPES, in one
process:
  mojo            the op (mojo_conv1d.depthwise_conv1d), allocating its output
  causal_conv1d   causal_conv1d_fn from the causal-conv1d package (K = 2..4),
                  where it is installed
  cudnn_frontend  cudnn.ops.causal_conv1d from nvidia-cudnn-frontend, where
                  it is installed and the cuDNN it finds is 9.22 or newer
  max_state_space MAX's own kernel, causal_conv1d_varlen_fwd of
                  max.nn.state_space, as a one-node graph (forward, K <= 4)
  cudnn           F.conv1d(x, w, padding=K - 1, groups=C), cut to L
  copy            a device copy of the input's bytes (the roofline)
kernel_us is the device time of the kernels a call launches (profiler),
call_us wall clock per call over back-to-back calls, every case's measured
before the profiler first runs (it slows later launches). Then the backward pass
(gradients of x and w) at one shape, and the single-filter op
(mojo_conv1d.conv1d) at N = 2^26 in bfloat16 beside a copy.
Writes depthwise_cuda.csv and depthwise_cuda.png under --out.

On the CPU (the default without CUDA), for each shape (B, C, L) and K, in
one process, methods timed round-robin (so a busy spell of a shared machine
slows them alike), CPU_CALLS back-to-back calls per method and round, the
median of the rounds' time per call:
  mojo_kernel   the op's kernel alone, into an output made once
  mojo          the whole call, allocating its output
  mojo_strided  the whole call on a channel-last input (a (B, L, C) tensor
                transposed), which has a kernel of its own
  torch         F.conv1d(x, w, padding=K - 1, groups=C), cut to L
  mojo_silu     the whole call with a bias and SiLU (Mamba's layer), one pass
  torch_silu    the same with F.conv1d's bias and F.silu
  copy          a copy of the input's bytes (a clone of x) into a buffer
                made once
Every result is checked against float64 before it is timed.

Writes a table to stdout and a CSV under --out (default benchmarks/out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench_conv1d import write_csv
from mojo_conv1d import _cpu, conv1d, depthwise_conv1d

SHAPES = [((4, 256, 16384), 4), ((4, 256, 16384), 64), ((1, 1024, 2048), 4), ((8, 64, 4096), 4)]
ROUNDS = 7
# Calls per method and round on the CPU. The first call after another
# method's pays for the switch (pool threads waking, PyTorch's OpenMP threads
# still spinning after its op, caches refilled), and that can double a
# 4 ms call; back-to-back calls time the call itself.
CPU_CALLS = 5


def reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    k = w.shape[-1]
    return F.conv1d(x.double(), w.double()[:, None], padding=k - 1, groups=w.shape[0])[..., : x.shape[-1]]


# ((B, C, L), K, dtype): the shapes causal-conv1d's users run (Mamba's K = 4),
# and K = 64, which it does not take.
CUDA_SHAPES = [
    ((1, 1024, 2048), 4, torch.bfloat16),
    ((8, 2048, 4096), 4, torch.bfloat16),
    ((8, 4096, 2048), 4, torch.float16),
    ((4, 1024, 16384), 4, torch.float32),
    ((16, 1536, 1024), 4, torch.bfloat16),
    ((8, 2048, 4096), 64, torch.bfloat16),
]
BACKWARD_SHAPE = ((8, 2048, 4096), 4, torch.bfloat16)
SINGLE_FILTER_N = 2**26


class MaxStateSpace:
    """MAX's own causal depthwise conv1d (`causal_conv1d_varlen_fwd` of
    max.nn.state_space, a Mojo kernel that ships with MAX), as a one-node
    graph with symbolic sizes: one compiled graph per dtype and activation.
    Its kernel takes a batch's sequences one after another along the time
    axis, (C, B * L), so a call here passes a copy of x in that layout, made
    at the first call with that x: the time is its kernel's on the same
    values. Every sequence starts from zeros (no stored state), which is
    causal padding."""

    def __init__(self, device=None):
        from max.driver import Accelerator
        from max.dtype import DType
        from max.engine import InferenceSession

        self.device = device if device is not None else Accelerator()
        self.session = InferenceSession(devices=[self.device])
        self.dtypes = {torch.float32: DType.float32, torch.float16: DType.float16, torch.bfloat16: DType.bfloat16}
        self.models = {}
        self.calls = {}

    def model(self, dtype, silu: bool):
        if (dtype, silu) not in self.models:
            from max.dtype import DType
            from max.graph import BufferType, DeviceRef, Graph, TensorType
            from max.nn.state_space import causal_conv1d_varlen_fwd

            ref, dt = DeviceRef.from_device(self.device), self.dtypes[dtype]
            types = [
                TensorType(dt, ["dim", "seqlen"], ref),
                TensorType(dt, ["dim", "width"], ref),
                TensorType(dt, ["biases"], ref),  # empty for none
                BufferType(dt, ["batch", "dim", "state"], ref),
                TensorType(DType.int32, ["starts"], ref),
                TensorType(DType.uint32, ["batch"], ref),
                TensorType(DType.bool, ["batch"], ref),
            ]
            with Graph("max_causal_conv1d", input_types=types) as graph:
                x, w, b, state, starts, slots, from_state = graph.inputs
                graph.output(causal_conv1d_varlen_fwd(
                    x.tensor, w.tensor, b.tensor, state.buffer, starts.tensor, slots.tensor, from_state.tensor,
                    activation="silu" if silu else "none",
                ))
            self.models[(dtype, silu)] = self.session.load(graph)
        return self.models[(dtype, silu)]

    def __call__(self, x, w, b=None, silu=False):
        import numpy as np
        from max.driver import Buffer

        batch, channels, length = x.shape
        key = (x.data_ptr(), x.shape, w.data_ptr(), 0 if b is None else b.data_ptr(), silu)
        if key not in self.calls:
            rows = x.detach().transpose(0, 1).reshape(channels, batch * length).contiguous()
            bias = torch.empty(0, dtype=x.dtype, device=x.device) if b is None else b.detach()

            def small(array):
                return Buffer.from_numpy(array).to(self.device)

            inputs = [
                Buffer.from_dlpack(rows), Buffer.from_dlpack(w.detach().contiguous()), Buffer.from_dlpack(bias),
                Buffer.from_dlpack(torch.zeros(batch, channels, w.shape[-1] - 1, dtype=x.dtype, device=x.device)),
                small(np.arange(0, batch * length + 1, length, dtype=np.int32)),
                small(np.arange(batch, dtype=np.uint32)),
                small(np.zeros(batch, dtype=np.bool_)),
            ]
            # The tensors the buffers view stay referenced here.
            self.calls[key] = (self.model(x.dtype, silu), inputs, (x, w, b, rows, bias))
        model, inputs, _ = self.calls[key]
        out = torch.from_dlpack(model.execute(*inputs)[0])
        return out.view(channels, batch, length).transpose(0, 1)


FORWARD_ONLY = {"max_state_space"}
# The widths a peer is run at: causal-conv1d takes 2 to 4; MAX's kernel is
# the short convolution of its state-space layers (width 4 in its models).
PEER_MAX_K = {"causal_conv1d": 4, "max_state_space": 4}


def gpu_peers() -> dict:
    """The peers installed here: name -> fn(x, w, bias, silu), or a reason."""
    peers = {}
    try:
        from causal_conv1d import causal_conv1d_fn

        peers["causal_conv1d"] = lambda x, w, b=None, silu=False: causal_conv1d_fn(
            x, w, b, activation="silu" if silu else None
        )
    except ImportError as error:
        print(f"causal_conv1d: not available ({error})")
    try:
        import cudnn

        version = torch.backends.cudnn.version()
        if version is None or version < 92200:
            print(f"cudnn_frontend: not available (its causal_conv1d needs cuDNN >= 9.22; torch has {version})")
        else:
            peers["cudnn_frontend"] = lambda x, w, b=None, silu=False: cudnn.ops.causal_conv1d(
                x, w, b, "silu" if silu else None
            )
    except ImportError as error:
        print(f"cudnn_frontend: not available ({error})")
    try:
        peers["max_state_space"] = MaxStateSpace()
    except Exception as error:  # an older MAX, or no GPU MAX can use
        print(f"max_state_space: not available ({error})")
    return peers


def checked(methods: dict, check) -> dict:
    """The methods whose result passes `check`; a peer that fails to run
    here (a width or dtype it does not take) is named and left out."""
    kept = {}
    for name, fn in methods.items():
        if name == "copy":
            kept[name] = fn
            continue
        try:
            result = fn()
        except Exception as error:
            if name in ("mojo", "cudnn"):
                raise
            print(f"{name}: left out here ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
            continue
        check(name, result)
        kept[name] = fn
    return kept


def check_gpu(name: str, got: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b=None, silu=False) -> None:
    exact = F.conv1d(x.double(), w.double()[:, None], None if b is None else b.double(), padding=w.shape[-1] - 1,
                     groups=w.shape[0])[..., : x.shape[-1]]
    exact = F.silu(exact) if silu else exact
    tol = {torch.float32: 1e-4, torch.float16: 4e-3, torch.bfloat16: 3e-2}[x.dtype]
    err = ((got.double() - exact).abs() / (exact.abs() + 1)).max().item()
    if not err <= tol:
        raise AssertionError(f"{name}: relative error {err:.3g} > {tol:.3g} for {tuple(x.shape)} K={w.shape[-1]}")


def bench_cuda(args) -> list[dict]:
    from bench_conv1d import check, profiled_kernel_time, wall_times_per_call

    peers = gpu_peers()
    cases = []  # (shape, k, dtype, kind, methods, calls)

    def forward_cases(shape, k, dtype):
        x = torch.randn(shape, device="cuda").to(dtype)
        w = (torch.randn(shape[1], k, device="cuda") / k**0.5).to(dtype)
        src, dst = torch.empty_like(x), torch.empty_like(x)
        methods = {"mojo": lambda: depthwise_conv1d(x, w)}
        for name, peer in peers.items():
            if k <= PEER_MAX_K.get(name, k):
                methods[name] = lambda peer=peer: peer(x, w)
        methods["cudnn"] = lambda: F.conv1d(x, w[:, None], padding=k - 1, groups=shape[1])[..., : shape[2]]
        methods["copy"] = lambda: dst.copy_(src)
        cases.append((shape, k, dtype, "forward", checked(methods, lambda name, got: check_gpu(name, got, x, w)), 20))
        if shape == CUDA_SHAPES[1][0] and k == 4:
            bias = torch.randn(shape[1], device="cuda").to(dtype)
            silu = {"mojo": lambda: depthwise_conv1d(x, w, bias, activation="silu")}
            for name, peer in peers.items():
                silu[name] = lambda peer=peer: peer(x, w, bias, True)
            silu["cudnn"] = lambda: F.silu(F.conv1d(x, w[:, None], bias, padding=k - 1, groups=shape[1])[..., : shape[2]])
            cases.append((shape, k, dtype, "silu", checked(silu, lambda name, got: check_gpu(name, got, x, w, bias, True)), 20))

    def backward_case(shape, k, dtype):
        x = torch.randn(shape, device="cuda").to(dtype).requires_grad_()
        w = (torch.randn(shape[1], k, device="cuda") / k**0.5).to(dtype).requires_grad_()
        g = torch.randn(shape, device="cuda").to(dtype)
        forwards = {"mojo": lambda: depthwise_conv1d(x, w)}
        for name, peer in peers.items():
            if name not in FORWARD_ONLY:
                forwards[name] = lambda peer=peer: peer(x, w)
        forwards["cudnn"] = lambda: F.conv1d(x, w[:, None], padding=k - 1, groups=shape[1])[..., : shape[2]]
        outputs = {name: fn() for name, fn in forwards.items()}
        reference = torch.autograd.grad(outputs["cudnn"], (x, w), g, retain_graph=True)
        backward = {}
        for name, y in outputs.items():
            got = torch.autograd.grad(y, (x, w), g, retain_graph=True)
            for a, b in zip(got, reference):
                torch.testing.assert_close(a.float(), b.float(), rtol=3e-2, atol=3e-2 * b.float().abs().max().item())
            backward[name] = lambda y=y: torch.autograd.grad(y, (x, w), g, retain_graph=True)
        cases.append((shape, k, dtype, "backward", backward, 20))

    def single_filter_case(n, k):
        # The single-filter op on one long row: the bandwidth-bound K = 4 and
        # the tensor cores' K = 64, in bfloat16.
        x1 = torch.randn(n, device="cuda").to(torch.bfloat16)
        src, dst = torch.empty_like(x1), torch.empty_like(x1)
        w1 = (torch.randn(k, device="cuda") / k**0.5).to(torch.bfloat16)
        check("conv1d", conv1d(x1, w1), x1, w1)
        cases.append(((1, 1, n), k, torch.bfloat16, "conv1d", {"mojo": lambda: conv1d(x1, w1), "copy": lambda: dst.copy_(src)}, 20))

    for shape, k, dtype in CUDA_SHAPES:
        forward_cases(shape, k, dtype)
    backward_case(*BACKWARD_SHAPE)
    for k in (4, 64):
        single_filter_case(SINGLE_FILTER_N, k)

    # Every wall time before the first kernel time: once the profiler has
    # run, CUPTI stays attached to the process (pytorch/pytorch#144455) and
    # every later launch costs more, about twice as much for a short call.
    calls_of = [wall_times_per_call(methods, calls, rounds=5) for *_, methods, calls in cases]
    rows = []
    for (shape, k, dtype, kind, methods, calls), call in zip(cases, calls_of):
        kernel = {name: profiled_kernel_time(fn, calls) * 1e6 for name, fn in methods.items()}
        copy = kernel.get("copy")
        for name in methods:
            rows.append(dict(device="cuda", dtype=str(dtype).removeprefix("torch."), b=shape[0], c=shape[1],
                             length=shape[2], k=k, kind=kind, method=name, kernel_us=kernel[name],
                             call_us=call[name] * 1e6, copy_ratio=copy / kernel[name] if copy else ""))
            copy_text = f"  {copy / kernel[name]:6.1%} of copy" if copy else ""
            print(f"{kind:8} {str(shape):18} K={k:<3} {rows[-1]['dtype']:8} {name:15} kernel {kernel[name]:8.1f} us"
                  f"  call {call[name] * 1e6:8.1f} us{copy_text}")
    return rows


def plot_cuda(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = []
    for row in rows:
        key = (row["kind"], row["b"], row["c"], row["length"], row["k"], row["dtype"])
        if key not in groups:
            groups.append(key)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(methods)
    for m, method in enumerate(methods):
        xs, ys = [], []
        for g, key in enumerate(groups):
            for row in rows:
                if (row["kind"], row["b"], row["c"], row["length"], row["k"], row["dtype"]) == key and row["method"] == method:
                    xs.append(g + (m - (len(methods) - 1) / 2) * width)
                    ys.append(row["kernel_us"])
        ax.bar(xs, ys, width, label=method)
    labels = [f"{kind}\n({b}, {c}, {length})\nK={k} {dtype}" if kind != "conv1d" else f"conv1d\nN=2^26\nK={k} {dtype}"
              for kind, b, c, length, k, dtype in groups]
    ax.set_xticks(range(len(groups)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("kernel time per call (us, log scale)")
    ax.set_title(f"depthwise_conv1d on {torch.cuda.get_device_name()} (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.device == "cuda":
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, cuDNN {torch.backends.cudnn.version()}")
        rows = bench_cuda(args)
        write_csv(args.out / "depthwise_cuda.csv", rows)
        plot_cuda(rows, args.out / "depthwise_cuda.png")
        print(f"wrote {args.out}/depthwise_cuda.csv and .png")
        return 0
    print(f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads")
    rows = []
    for (b, c, length), k in SHAPES:
        x = torch.randn(b, c, length)
        w = torch.randn(c, k)
        bias = torch.randn(c)
        channel_last = x.transpose(1, 2).contiguous().transpose(1, 2)
        kernel_out = torch.empty_like(x)
        # The copy's source holds the input's bytes: an untouched empty()
        # reads as the kernel's zero page, from the cache, twice as fast.
        src, dst = x.clone(), torch.empty_like(x)

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
                for _ in range(CPU_CALLS):
                    fn()
                times[name].append((time.perf_counter() - start) / CPU_CALLS)
        copy_ms = statistics.median(times["copy"]) * 1e3
        for name, t in times.items():
            ms = statistics.median(t) * 1e3
            rows.append(dict(device="cpu", dtype="float32", b=b, c=c, length=length, k=k, method=name,
                             ms=ms, times_copy=ms / copy_ms))
            print(f"({b}, {c}, {length}) K={k:<3} {name:13} {ms:9.2f} ms  {ms / copy_ms:6.2f}x copy")
    write_csv(args.out / "depthwise_cpu.csv", rows)
    print(f"wrote {args.out}/depthwise_cpu.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
