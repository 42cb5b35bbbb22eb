"""The CUDA path: each Mojo op of the kernel package in a one-node MAX graph,
ordered with PyTorch's current stream.

The graphs' lengths are symbolic, so one compiled graph per (op, dtype,
device) serves every length; the op writes in place into the buffer PyTorch
allocated. MAX launches on its own stream, so a pair of events fences it with
PyTorch's stream around each launch; the same fence lets a CUDA graph capture
record the launch as a node.
"""

from __future__ import annotations

import threading

import torch
from max.driver import Accelerator, Buffer
from max.dtype import DType
from max.engine import InferenceSession, Model
from max.experimental.torch.torch import torch_dtype_to_max
from max.graph import BufferType, DeviceRef, Graph, KernelLibrary, TensorType, ops

from . import build

# Each Mojo op takes (output, *inputs) and writes its result into the output
# buffer in place; these are their shapes, by symbolic dimension name.
SIGNATURES = {
    "conv1d_forward": ([("rows", "n")], [("rows", "n"), ("k",)]),
    "conv1d_grad_input": ([("rows", "n")], [("rows", "n"), ("k",)]),
    "conv1d_grad_kernel": ([("k",)], [("rows", "n"), ("rows", "n")]),
}

_lock = threading.Lock()
_kernels: KernelLibrary | None = None
_sessions: dict[torch.device, InferenceSession] = {}
_models: dict[tuple[str, torch.dtype, torch.device], Model] = {}
_gpus: dict[torch.device, tuple[Accelerator, torch.cuda.ExternalStream]] = {}


def gpu(device: torch.device) -> tuple[Accelerator, torch.cuda.ExternalStream]:
    """MAX's handle of this GPU and its stream (as a torch stream object)."""
    if (found := _gpus.get(device)) is None:
        accelerator = Accelerator(device.index)
        stream = torch.cuda.ExternalStream(accelerator.default_queue.native_stream_handle, device=device)
        found = _gpus.setdefault(device, (accelerator, stream))
    return found


def model(name: str, dtype: torch.dtype, device: torch.device) -> Model:
    """The Mojo op `name` in a one-node MAX graph, compiled once per process
    for this dtype and device."""
    key = (name, dtype, device)
    if (found := _models.get(key)) is not None:
        return found
    global _kernels
    with _lock:
        if (found := _models.get(key)) is not None:
            return found
        if _kernels is None:
            _kernels = KernelLibrary()
            _kernels.load_paths([build.kernel_package()])
        if (session := _sessions.get(device)) is None:
            session = _sessions[device] = InferenceSession(devices=[gpu(device)[0]])
        max_dtype: DType = torch_dtype_to_max(dtype)
        ref = DeviceRef.GPU(device.index)
        outputs, inputs = SIGNATURES[name]
        types = [BufferType(max_dtype, shape, ref) for shape in outputs]
        types += [TensorType(max_dtype, shape, ref) for shape in inputs]
        with Graph(f"{name}_{max_dtype.name}_cuda{device.index}", input_types=types, kernel_library=_kernels) as graph:
            ops.inplace_custom(name, ref, list(graph.inputs))
            graph.output()
        found = _models[key] = session.load(graph)
        return found


class _StreamFence:
    """Orders MAX's stream with PyTorch's current stream around a launch:
    `open` makes MAX's stream wait for PyTorch's, `close` makes PyTorch's wait
    for MAX's. Each thread has its own per device, so its two events are
    reused by every call and another thread's record cannot move the point
    this thread waits for."""

    def __init__(self, device: torch.device):
        self.device = device
        self.accelerator, self.max_stream = gpu(device)
        self.before, self.after = torch.cuda.Event(), torch.cuda.Event()

    def open(self) -> torch.cuda.Stream:
        torch_stream = torch.cuda.current_stream(self.device)
        self.before.record(torch_stream)
        self.max_stream.wait_event(self.before)
        return torch_stream

    def close(self, torch_stream: torch.cuda.Stream) -> None:
        self.after.record(self.max_stream)
        torch_stream.wait_event(self.after)


_local = threading.local()


def _fence(device: torch.device) -> _StreamFence:
    fences = _local.__dict__.setdefault("fences", {})
    if (fence := fences.get(device)) is None:
        fence = fences[device] = _StreamFence(device)
    return fence


def run(name: str, *tensors: torch.Tensor) -> None:
    """Mojo op `name` on (output, inputs...) on their GPU. The wait after the
    launch also covers the caching allocator: memory freed after the op is
    reused on PyTorch's stream, behind the wait, so no record_stream is needed.
    During a CUDA graph capture the first wait pulls MAX's stream into the
    capture and the second joins it back, so the launch is recorded."""
    device = tensors[0].device
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    compiled = model(name, tensors[0].dtype, device)
    fence = _fence(device)
    torch_stream = fence.open()
    # The fence orders the buffers already, so DLPack need not sync streams
    # again (torch's __dlpack__(stream=...) path is slow).
    handle = fence.max_stream.cuda_stream
    compiled.execute(*[Buffer._from_dlpack(t.__dlpack__(), fence.accelerator, handle) for t in tensors])
    fence.close(torch_stream)
