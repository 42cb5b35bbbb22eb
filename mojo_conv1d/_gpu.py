"""The CUDA (and ROCm) path: the Mojo kernels launched from a Python extension
module (gpu_ops.mojo) onto PyTorch's current stream of the tensors' device.

Because the launch is on PyTorch's stream, a call is ordered with the torch
ops around it, the caching allocator's reuse of freed memory is safe, and a
CUDA graph capture records the kernels like any other. The extension is built
on first use for the GPU's architecture (build.py) and imported once per
process; each GPU gets one Mojo DeviceContext, made on its first call.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType

import torch

from . import _cpu, build

SOURCE = Path(__file__).with_name("gpu_ops.mojo")
DTYPE_CODES = _cpu.DTYPE_CODES  # the same codes: gpu_ops.DTYPES
SCRATCH_DTYPES = {torch.float64: torch.float64}  # grad_kernel's partial sums: float32 unless float64

# The address of PyTorch's current stream on a device (what torch.compile's
# generated code asks for); absent from builds of torch without CUDA.
current_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
# The current device's index: torch.cuda.current_device() without its
# Python wrapper, which the calls here, on a CUDA tensor, do not need.
current_device = getattr(torch._C, "_cuda_getDevice", None)

_lock = threading.Lock()
_modules: dict[str, ModuleType] = {}
# Per device index: (the extension built for its architecture, its context).
_devices: dict[int, tuple[ModuleType, int]] = {}


def architecture(index: int) -> str:
    """The `--target-accelerator` of this GPU: sm_XY on NVIDIA, gfxNNN on AMD."""
    properties = torch.cuda.get_device_properties(index)
    if torch.version.hip:
        return properties.gcnArchName.split(":")[0]
    return f"sm_{properties.major}{properties.minor}"


def _module(target: str) -> ModuleType:
    if (found := _modules.get(target)) is None:
        found = _modules[target] = build.import_extension(SOURCE, target_accelerator=target)
    return found


def device(index: int) -> tuple[ModuleType, int]:
    """gpu_ops for this GPU and the address of its Mojo DeviceContext."""
    if (found := _devices.get(index)) is not None:
        return found
    with _lock:
        if (found := _devices.get(index)) is None:
            module = _module(architecture(index))
            found = _devices[index] = (module, module.context(index))
    return found


def correlate(
    output: torch.Tensor,
    input: torch.Tensor,
    kernel: torch.Tensor,
    shift: int,
    flip: bool,
    channels: int = 1,
    bias: torch.Tensor | None = None,
    silu: bool = False,
) -> None:
    """kernels/gpu.mojo's correlate_gpu on contiguous tensors, on PyTorch's
    current stream of their GPU: as _cpu.correlate, rows of input (..., n)
    into rows of output (..., n_out), row r with filter r % channels of
    kernel (channels, k), then bias (channels,) and SiLU where given. The
    tensors' device is made current for the launch when it is not, as a
    torch op does."""
    index = input.get_device()
    if index != current_device():
        with torch.cuda.device(index):
            correlate(output, input, kernel, shift, flip, channels, bias, silu)
        return
    gpu_ops, context = _devices.get(index) or device(index)
    n = input.shape[-1]
    gpu_ops.correlate(
        context, current_raw_stream(index), DTYPE_CODES[input.dtype], output.data_ptr(), input.data_ptr(),
        kernel.data_ptr(), input.numel() // n, n, kernel.shape[-1], shift, int(flip), channels, output.shape[-1],
        0 if bias is None else bias.data_ptr(), int(silu),
    )


def grad_kernel(
    grad_kernel: torch.Tensor, grad_output: torch.Tensor, input: torch.Tensor, shift: int = 0, channels: int = 1
) -> None:
    """The filters' gradient on contiguous tensors, as _cpu.grad_kernel:
    grad_kernel (channels, k) from rows of grad_output (..., n_out) and
    input (..., n). One filter over full-length rows takes gpu.mojo's
    grad_kernel_gpu (a thread per tap, for long filters over long rows);
    anything else grad_kernel_channels_gpu (a thread per run of positions,
    for a few taps per channel). Their scratch comes from PyTorch's caching
    allocator on this stream: reused only by work queued behind them."""
    index = input.get_device()
    if index != current_device():
        with torch.cuda.device(index):
            grad_kernel(grad_kernel, grad_output, input, shift, channels)
        return
    gpu_ops, context = _devices.get(index) or device(index)
    stream = current_raw_stream(index)
    dtype = input.dtype
    scratch_dtype = SCRATCH_DTYPES.get(dtype, torch.float32)
    n, n_out, k = input.shape[-1], grad_output.shape[-1], grad_kernel.shape[-1]
    rows = input.numel() // n
    if channels == 1 and shift == 0 and n_out == n:
        scratch = torch.empty(gpu_ops.grad_kernel_scratch(rows, n, k), dtype=scratch_dtype, device=input.device)
        gpu_ops.grad_kernel(
            context, stream, DTYPE_CODES[dtype], grad_kernel.data_ptr(), grad_output.data_ptr(), input.data_ptr(),
            scratch.data_ptr(), rows, n, k,
        )
        return
    scratch = torch.empty(gpu_ops.grad_kernel_channels_scratch(rows, n_out, k), dtype=scratch_dtype, device=input.device)
    gpu_ops.grad_kernel_channels(
        context, stream, DTYPE_CODES[dtype], grad_kernel.data_ptr(), grad_output.data_ptr(), input.data_ptr(),
        scratch.data_ptr(), rows // channels, channels, n, n_out, k, shift,
    )
