"""The CPU path: the Mojo kernels called straight from a Python extension
module (cpu_ops.mojo), with the tensors' addresses and sizes.

A MAX graph's `execute` cost more per call than the kernel itself on the CPU,
so this path skips MAX: the extension is built on first use (build.py) and
imported once per process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

from . import build

SOURCE = Path(__file__).with_name("cpu_ops.mojo")
DTYPE_CODES = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}  # cpu_ops.DTYPES
# Loading a Mojo extension sets these in the process's C environment (Mojo's
# Python interop), where os.environ does not see them; a child process would
# inherit PYTHONEXECUTABLE and start outside this venv.
_MOJO_INTEROP_ENV = ("PYTHONEXECUTABLE", "PYTHONPATH", "MOJO_PYTHON_LIBRARY")

_lock = threading.Lock()
_module: ModuleType | None = None


@contextlib.contextmanager
def mojo_interop_env_kept() -> Iterator[None]:
    """Loading a Mojo extension inside this block leaves the C environment's
    _MOJO_INTEROP_ENV as they were."""
    saved = {name: os.environ.get(name) for name in _MOJO_INTEROP_ENV}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.unsetenv(name)
            else:
                os.putenv(name, value)


def module() -> ModuleType:
    """cpu_ops, built unless cached, then imported; once per process."""
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            library = build.extension_module(SOURCE)
            spec = importlib.util.spec_from_file_location("cpu_ops", library)
            loaded = importlib.util.module_from_spec(spec)
            with mojo_interop_env_kept():
                spec.loader.exec_module(loaded)
            _module = loaded
    return _module


def run(name: str, *tensors: torch.Tensor) -> None:
    """Mojo op `name` on (output, inputs...), as conv1d.mojo defines it: the
    input's gradient is the forward sum shifted by k - 1 with the taps reversed."""
    cpu_ops = module()
    code = DTYPE_CODES[tensors[0].dtype]
    if name == "conv1d_grad_kernel":
        grad_kernel, grad_output, input = tensors
        n = input.shape[-1]
        rows = input.numel() // n
        cpu_ops.grad_kernel(code, grad_kernel.data_ptr(), grad_output.data_ptr(), input.data_ptr(), rows, n, grad_kernel.shape[0])
        return
    output, input, kernel = tensors
    n = input.shape[-1]
    rows = input.numel() // n
    k = kernel.shape[0]
    shift, flip = {"conv1d_forward": (0, 0), "conv1d_grad_input": (k - 1, 1)}[name]
    cpu_ops.correlate(code, output.data_ptr(), input.data_ptr(), kernel.data_ptr(), rows, n, k, shift, flip)
