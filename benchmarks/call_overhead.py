"""Where one call of the op spends its time, at N = 15 on the CPU (or --device cuda).

Times each layer of a call in isolation, from the public function down to
MAX's model.execute on buffers made in advance. See docs/overhead.md.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from max.driver import Buffer  # noqa: E402

from mojo_conv1d import conv1d, ops  # noqa: E402


# The floor of any Python-defined op: a torch.library op registered like ours
# (fake and autograd formulas) whose body only allocates its result.
@torch.library.custom_op("overhead_probe::empty_like", mutates_args=())
def _empty_like_op(input: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(input)


_empty_like_op.register_fake(lambda input, kernel: torch.empty_like(input))
_empty_like_op.register_autograd(lambda ctx, grad: (grad, None))


def per_call_us(fn, calls=3000, sync=lambda: None) -> float:
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls * 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sync = (lambda: None)
    if device.type == "cuda":
        from max.driver import Accelerator

        def sync():
            # MAX runs on its own stream: wait for the whole device, not only torch's stream.
            Accelerator().synchronize()
            torch.cuda.synchronize()

    x = torch.arange(15, dtype=torch.float32, device=device)
    w = torch.arange(4, dtype=torch.float32, device=device)
    rows, out, taps = ops._rows(x), torch.empty(1, 15, device=device), ops._taps(w)
    conv1d(x, w)  # compiles the graph (CUDA) or builds cpu_ops (CPU)
    # The op's MAX graph; on the CPU the op no longer uses it, and it is timed for comparison.
    model = ops._model("conv1d_forward", torch.float32, ops._device_key(device))
    buffers = [Buffer.from_dlpack(t) for t in (out, rows, taps)]

    def op_body_without_run():
        # What the op does around ops._run: checks, row view, output, taps.
        ops._check_args(x, w)
        r = ops._rows(x)
        torch.empty_like(r).view(x.shape)
        ops._taps(w)

    layers = {
        "conv1d(x, w): the public function": lambda: conv1d(x, w),
        "torch.ops.mojo_conv1d.conv1d (torch.library dispatch)": lambda: torch.ops.mojo_conv1d.conv1d(x, w),
        "an empty torch.library op (the dispatch floor)": lambda: torch.ops.overhead_probe.empty_like(x, w),
        "the op's body around ops._run (checks, views, output)": op_body_without_run,
        "ops._check_args alone": lambda: ops._check_args(x, w),
        ("ops._run: DLPack, stream fence, model.execute" if device.type == "cuda"
         else "ops._run: the cpu_ops extension's call (no MAX graph)"): lambda: ops._run("conv1d_forward", out, rows, taps),
        "Buffer.from_dlpack of the 3 tensors (MAX's general path)": lambda: [Buffer.from_dlpack(t) for t in (out, rows, taps)],
        "model.execute on buffers made in advance": lambda: model.execute(*buffers),
        "F.conv1d, for comparison": lambda: torch.nn.functional.conv1d(x.view(1, 1, -1), w.view(1, 1, -1)),
    }
    if device.type == "cuda":
        fence = ops._fence(ops._device_key(device))
        torch_stream = torch.cuda.current_stream(device)
        max_stream = fence.max_stream

        def fence_new_events():
            max_stream.wait_stream(torch_stream)
            torch_stream.wait_stream(max_stream)

        layers |= {
            "the stream fence, reused events (ops._StreamFence)": lambda: fence.close(fence.open()),
            "the stream fence, Stream.wait_stream (new events)": fence_new_events,
            "Buffer._from_dlpack of the 3 tensors (ops._run's path)": lambda: [
                Buffer._from_dlpack(t.__dlpack__(), fence.accelerator, max_stream.cuda_stream) for t in (out, rows, taps)
            ],
        }
    print(f"torch {torch.__version__}, device {device}")
    for name, fn in layers.items():
        print(f"{name:55s} {per_call_us(fn, sync=sync):8.1f} us")

    # The same graph on a large row: kernel time plus whatever the graph adds.
    # Compare with benchmarks/cpu_kernel_standalone.mojo (the kernel alone).
    n = 1 << 22
    big_x = torch.randn(1, n, device=device)
    big_out = torch.empty_like(big_x)
    for k in (1, 4, 64):
        big = [Buffer.from_dlpack(t) for t in (big_out, big_x, torch.randn(k, device=device))]
        us = per_call_us(lambda: model.execute(*big), calls=20, sync=sync)
        print(f"{f'model.execute, N = 2^22, K = {k}':55s} {us / 1000:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
