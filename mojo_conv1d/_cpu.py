"""The CPU path: the Mojo kernels called straight from a Python extension
module (cpu_ops.mojo), with the tensors' addresses and sizes.

A MAX graph's `execute` cost more per call than the kernel itself on the CPU,
so this path skips MAX: the extension is built on first use (build.py) and
imported once per process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType

import torch

from . import build

SOURCE = Path(__file__).with_name("cpu_ops.mojo")
DTYPE_CODES = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}  # cpu_ops.DTYPES
_lock = threading.Lock()
_module: ModuleType | None = None


def module() -> ModuleType:
    """cpu_ops, built unless cached, then imported; once per process."""
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            _module = build.import_extension(SOURCE)
    return _module


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
    """kernels/cpu.mojo's correlate_cpu on contiguous tensors: rows of input
    (..., n) into rows of output (..., n_out), row r with filter r % channels
    of kernel (channels, k), then bias (channels,) and SiLU where given."""
    n = input.shape[-1]
    cpu_ops = module()
    cpu_ops.correlate(
        DTYPE_CODES[input.dtype], output.data_ptr(), input.data_ptr(), kernel.data_ptr(),
        input.numel() // n, n, kernel.shape[-1], shift, int(flip), channels, output.shape[-1],
        0 if bias is None else bias.data_ptr(), int(silu),
    )


def correlate_channels_last(
    output: torch.Tensor,
    input: torch.Tensor,
    kernel: torch.Tensor,
    shift: int,
    flip: bool,
    bias: torch.Tensor | None = None,
    silu: bool = False,
) -> None:
    """kernels/cpu.mojo's correlate_channels_last_cpu: input and output
    (B, C, L) laid out as (B, L, C) in memory, kernel (C, k) contiguous,
    then bias (C,) and SiLU where given."""
    batch, channels, n = input.shape
    module().correlate_channels_last(
        DTYPE_CODES[input.dtype], output.data_ptr(), input.data_ptr(), kernel.data_ptr(),
        batch, channels, n, output.shape[-1], kernel.shape[-1], shift, int(flip),
        0 if bias is None else bias.data_ptr(), int(silu),
    )


def grad_kernel(grad_kernel: torch.Tensor, grad_output: torch.Tensor, input: torch.Tensor, shift: int = 0, channels: int = 1) -> None:
    """kernels/cpu.mojo's grad_kernel_cpu on contiguous tensors: grad_kernel
    (channels, k) from rows of grad_output (..., n_out) and input (..., n)."""
    n = input.shape[-1]
    cpu_ops = module()
    cpu_ops.grad_kernel(
        DTYPE_CODES[input.dtype], grad_kernel.data_ptr(), grad_output.data_ptr(), input.data_ptr(),
        input.numel() // n, n, grad_kernel.shape[-1], channels, grad_output.shape[-1], shift,
    )
