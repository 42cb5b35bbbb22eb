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


def run(name: str, *tensors: torch.Tensor) -> None:
    """Mojo op `name` on (output, inputs...) on their GPU, on PyTorch's current
    stream there, as conv1d.mojo defines it (see _cpu.run). The tensors'
    device is made current for the launch when it is not, as a torch op does."""
    current = torch.cuda.current_device()
    index = tensors[0].device.index
    if index is None or index == current:
        _launch(name, current, tensors)
    else:
        with torch.cuda.device(index):
            _launch(name, index, tensors)


def _launch(name: str, index: int, tensors: tuple[torch.Tensor, ...]) -> None:
    gpu_ops, context = _devices.get(index) or device(index)
    stream = current_raw_stream(index)
    dtype = tensors[0].dtype
    code = DTYPE_CODES[dtype]
    if name == "conv1d_grad_kernel":
        grad_kernel, grad_output, input = tensors
        n = input.shape[-1]
        rows = input.numel() // n
        k = grad_kernel.shape[0]
        # From PyTorch's caching allocator on this stream: reused only by
        # work queued behind the kernels that read it.
        scratch_dtype = SCRATCH_DTYPES.get(dtype, torch.float32)
        scratch = torch.empty(gpu_ops.grad_kernel_scratch(rows, n, k), dtype=scratch_dtype, device=input.device)
        gpu_ops.grad_kernel(
            context, stream, code, grad_kernel.data_ptr(), grad_output.data_ptr(), input.data_ptr(),
            scratch.data_ptr(), rows, n, k,
        )
        return
    output, input, kernel = tensors
    n = input.shape[-1]
    rows = input.numel() // n
    k = kernel.shape[0]
    shift, flip = (0, 0) if name == "conv1d_forward" else (k - 1, 1)
    gpu_ops.correlate(context, stream, code, output.data_ptr(), input.data_ptr(), kernel.data_ptr(), rows, n, k, shift, flip)
