"""`conv1d(input, kernel)` as a PyTorch operator backed by the Mojo kernels.

The op is registered with torch.library (a functional op with a fake
implementation and an autograd formula), in the pattern of
pytorch/extension-cpp. Its forward pass and both gradients are Mojo custom
ops from the puzzle's package. On CUDA devices they run through MAX graphs
whose lengths are symbolic: one graph per (op, dtype, device), compiled once
per process and reused for every length. On the CPU the same kernels run
straight from a small Mojo extension module (cpu_ops.mojo, built once and
cached), because a MAX graph's `execute` cost about a millisecond more per
call there than the kernel itself.

Semantics, for input of shape (N,) or (B, N) and kernel of shape (K,):

    out[..., i] = sum over j < K with i + j < N of input[..., i + j] * kernel[j]

i.e. a cross-correlation with zero padding on the right; out has input's shape.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import threading
from pathlib import Path
from types import ModuleType

import torch
from max.driver import CPU, Accelerator, Buffer
from max.dtype import DType
from max.engine import InferenceSession, Model
from max.experimental.torch.torch import torch_dtype_to_max
from max.graph import BufferType, DeviceRef, Graph, KernelLibrary, TensorType, ops

OP_PACKAGE = Path(__file__).resolve().parent / "kernels"
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# Each Mojo op takes (output, *inputs) and writes its result into the output
# buffer in place; these are their shapes, by symbolic dimension name.
_SIGNATURES = {
    "conv1d_forward": ([("rows", "n")], [("rows", "n"), ("k",)]),
    "conv1d_grad_input": ([("rows", "n")], [("rows", "n"), ("k",)]),
    "conv1d_grad_kernel": ([("k",)], [("rows", "n"), ("rows", "n")]),
}

_lock = threading.Lock()
_kernels: KernelLibrary | None = None
_sessions: dict[torch.device, InferenceSession] = {}
_models: dict[tuple[str, torch.dtype, torch.device], Model] = {}


def _device_key(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _model(name: str, dtype: torch.dtype, device: torch.device) -> Model:
    """The Mojo op `name` in a one-node MAX graph, compiled once per process for
    this dtype and device. Its sizes are symbolic, so a new length costs
    nothing, and the op writes straight into the output buffer passed to it
    (an in-place custom op: no copy of the result afterwards). The op uses it
    on CUDA; on the CPU only benchmarks/call_overhead.py still builds one, to
    time MAX's `execute` beside the op's cpu_ops path."""
    key = (name, dtype, device)
    if (model := _models.get(key)) is not None:
        return model
    global _kernels
    with _lock:
        if (model := _models.get(key)) is not None:
            return model
        if _kernels is None:
            _kernels = KernelLibrary()
            _kernels.load_paths([OP_PACKAGE])  # compiles the package, once
        if (session := _sessions.get(device)) is None:
            max_device = _gpu(device)[0] if device.type == "cuda" else CPU()
            session = _sessions[device] = InferenceSession(devices=[max_device])
        max_dtype: DType = torch_dtype_to_max(dtype)
        ref = DeviceRef.GPU(device.index) if device.type == "cuda" else DeviceRef.CPU()
        outputs, inputs = _SIGNATURES[name]
        types = [BufferType(max_dtype, shape, ref) for shape in outputs]
        types += [TensorType(max_dtype, shape, ref) for shape in inputs]
        graph_name = f"{name}_{max_dtype.name}_{device.type}{device.index or 0}"
        with Graph(graph_name, input_types=types, kernel_library=_kernels) as graph:
            ops.inplace_custom(name, ref, list(graph.inputs))
            graph.output()
        model = _models[key] = session.load(graph)
        return model


# The CPU path: cpu_ops.mojo, compiled into a Python extension module the first
# time a process needs it, and cached beside it under a name that hashes its
# sources (it and the op package), so that a changed kernel is rebuilt.
CPU_OPS_SOURCE = Path(__file__).with_name("cpu_ops.mojo")
CPU_OPS_CACHE = Path(__file__).with_name("__mojocache__")
_CPU_DTYPE_CODES = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}  # cpu_ops.DTYPES
_cpu_ops: ModuleType | None = None
_MOJO_INTEROP_ENV = ("PYTHONEXECUTABLE", "PYTHONPATH", "MOJO_PYTHON_LIBRARY")


def _cpu_ops_module() -> ModuleType:
    """cpu_ops, built with `mojo build --emit shared-lib` unless a build of
    the same sources is cached, then imported; once per process."""
    global _cpu_ops
    if _cpu_ops is not None:
        return _cpu_ops
    with _lock:
        if _cpu_ops is not None:
            return _cpu_ops
        digest = hashlib.sha256()
        for source in [CPU_OPS_SOURCE, *sorted(OP_PACKAGE.glob("*.mojo"))]:
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
        library = CPU_OPS_CACHE / f"cpu_ops.{digest.hexdigest()[:16]}.so"
        if not library.exists():
            CPU_OPS_CACHE.mkdir(exist_ok=True)
            partial = library.with_name(f"{library.name}.{os.getpid()}.{threading.get_ident()}.partial")
            build = ["build", str(CPU_OPS_SOURCE), "--emit", "shared-lib", "-I", str(OP_PACKAGE.parent), "-o", str(partial)]
            try:
                try:  # the mojo wheel's launcher points the compiler at its libraries
                    from mojo.run import subprocess_run_mojo
                except ImportError:  # a conda environment: mojo is on PATH
                    subprocess.run(["mojo", *build], capture_output=True, check=True, text=True)
                else:
                    subprocess_run_mojo(build, capture_output=True, check=True, text=True)
            except subprocess.CalledProcessError as error:
                partial.unlink(missing_ok=True)
                raise RuntimeError(f"conv1d: building {CPU_OPS_SOURCE.name} failed:\n{error.stderr}") from error
            os.replace(partial, library)  # atomic: another process sees the whole file or none
        spec = importlib.util.spec_from_file_location("cpu_ops", library)
        module = importlib.util.module_from_spec(spec)
        # Loading a Mojo extension sets these in the process's C environment
        # (Mojo's Python interop), where os.environ does not see them; a child
        # process would inherit PYTHONEXECUTABLE and start outside this venv.
        saved = {name: os.environ.get(name) for name in _MOJO_INTEROP_ENV}
        spec.loader.exec_module(module)
        for name, value in saved.items():
            if value is None:
                os.unsetenv(name)
            else:
                os.putenv(name, value)
        _cpu_ops = module
        return module


def _run_cpu(name: str, *tensors: torch.Tensor) -> None:
    """Mojo op `name` on the CPU through cpu_ops. The arguments are those of
    the ops in conv1d.mojo, and so is the mapping onto the two kernels: the
    input's gradient is the forward sum shifted by k - 1, the kernel reversed."""
    cpu_ops = _cpu_ops_module()
    code = _CPU_DTYPE_CODES[tensors[0].dtype]
    if name == "conv1d_grad_kernel":
        grad_kernel, grad_output, input = tensors
        rows, n = input.shape
        cpu_ops.grad_kernel(code, grad_kernel.data_ptr(), grad_output.data_ptr(), input.data_ptr(), rows, n, grad_kernel.shape[0])
        return
    output, input, kernel = tensors
    rows, n = input.shape
    k = kernel.shape[0]
    shift, flip = {"conv1d_forward": (0, 0), "conv1d_grad_input": (k - 1, 1)}[name]
    cpu_ops.correlate(code, output.data_ptr(), input.data_ptr(), kernel.data_ptr(), rows, n, k, shift, flip)


_gpus: dict[torch.device, tuple[Accelerator, torch.cuda.ExternalStream]] = {}


def _gpu(device: torch.device) -> tuple[Accelerator, torch.cuda.ExternalStream]:
    """MAX's handle of this GPU and its stream (as a torch stream object)."""
    if (gpu := _gpus.get(device)) is None:
        accelerator = Accelerator(device.index)
        stream = torch.cuda.ExternalStream(accelerator.default_queue.native_stream_handle, device=device)
        gpu = _gpus.setdefault(device, (accelerator, stream))
    return gpu


class _StreamFence:
    """Orders MAX's stream with PyTorch's current stream around a launch:
    `open` makes MAX's stream wait for PyTorch's, `close` makes PyTorch's wait
    for MAX's. Each thread has its own per device (see _fence), so its two
    events are reused by every call (cheaper than new ones each time) and
    another thread's record cannot move the point this thread waits for."""

    def __init__(self, device: torch.device):
        self.device = device
        self.accelerator, self.max_stream = _gpu(device)
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
    """This thread's fence for this device."""
    fences = _local.__dict__.setdefault("fences", {})
    if (fence := fences.get(device)) is None:
        fence = fences[device] = _StreamFence(device)
    return fence


def _run(name: str, *tensors: torch.Tensor) -> None:
    """Runs Mojo op `name` on (output, inputs...), ordered on the GPU like
    any PyTorch kernel: MAX launches on its own stream, so that stream waits
    for PyTorch's current stream before the op, and PyTorch's stream waits for
    it after. (That second wait also covers the caching allocator: memory
    freed after the op is reused on PyTorch's stream, behind the wait, so no
    record_stream is needed.)

    The same fence lets a CUDA graph record the op: during a capture, the
    wait pulls MAX's stream into the capture and the wait back joins it, so
    the launch becomes a node of the graph (benchmarks/cuda_graph_capture.py
    shows it, and what goes wrong without the fence)."""
    first = tensors[0]
    device = _device_key(first.device)
    if device.type == "cpu":
        _run_cpu(name, *tensors)
        return
    model = _model(name, first.dtype, device)
    fence = _fence(device)
    torch_stream = fence.open()
    # The wait above orders the buffers already, so DLPack need not sync
    # streams again (torch's __dlpack__(stream=...) path is slow).
    handle = fence.max_stream.cuda_stream
    model.execute(*[Buffer._from_dlpack(t.__dlpack__(), fence.accelerator, handle) for t in tensors])
    fence.close(torch_stream)


def _check_args(input: torch.Tensor, kernel: torch.Tensor) -> None:
    """Clear Python errors, naming the argument, before anything reaches Mojo."""
    for name, t in (("input", input), ("kernel", kernel)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"conv1d: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(
                f"conv1d: {name} has dtype {t.dtype}; supported: "
                + ", ".join(str(d) for d in SUPPORTED_DTYPES)
            )
        if t.device.type not in ("cpu", "cuda"):
            raise ValueError(f"conv1d: {name} is on {t.device}; only cpu and cuda are supported")
    if input.dim() not in (1, 2):
        raise ValueError(f"conv1d: input must have shape (N,) or (B, N), got {tuple(input.shape)}")
    if kernel.dim() != 1:
        raise ValueError(f"conv1d: kernel must have shape (K,), got {tuple(kernel.shape)}")
    if input.shape[-1] == 0 or input.numel() == 0:
        raise ValueError(f"conv1d: input is empty (shape {tuple(input.shape)})")
    if kernel.shape[0] == 0:
        raise ValueError("conv1d: kernel is empty (shape (0,))")
    if kernel.dtype != input.dtype:
        raise TypeError(f"conv1d: kernel dtype {kernel.dtype} differs from input dtype {input.dtype}")
    if kernel.device != input.device:
        raise ValueError(f"conv1d: kernel is on {kernel.device} but input is on {input.device}")


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(N,) or (B, N) as a contiguous (rows, N) tensor; a view when possible.
    Detached, since DLPack refuses tensors that require grad (autograd is
    handled by register_autograd, above this op)."""
    return t.detach().contiguous().view(-1, t.shape[-1])


def _taps(kernel: torch.Tensor) -> torch.Tensor:
    return kernel.detach().contiguous()


@torch.library.custom_op("mojo_conv1d::conv1d", mutates_args=())
def _conv1d(input: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    _check_args(input, kernel)
    x = _rows(input)
    out = torch.empty_like(x)
    _run("conv1d_forward", out, x, _taps(kernel))
    return out.view(input.shape)


@torch.library.custom_op("mojo_conv1d::conv1d_grad_input", mutates_args=())
def _conv1d_grad_input(grad_output: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    g = _rows(grad_output)
    grad_input = torch.empty_like(g)
    _run("conv1d_grad_input", grad_input, g, _taps(kernel))
    return grad_input.view(grad_output.shape)


@torch.library.custom_op("mojo_conv1d::conv1d_grad_kernel", mutates_args=())
def _conv1d_grad_kernel(
    grad_output: torch.Tensor, input: torch.Tensor, kernel_size: int
) -> torch.Tensor:
    g = _rows(grad_output)
    grad_kernel = g.new_empty(kernel_size)
    _run("conv1d_grad_kernel", grad_kernel, g, _rows(input))
    return grad_kernel


@_conv1d.register_fake
def _(input, kernel):
    _check_args(input, kernel)
    return torch.empty_like(input, memory_format=torch.contiguous_format)


@_conv1d_grad_input.register_fake
def _(grad_output, kernel):
    return torch.empty_like(grad_output, memory_format=torch.contiguous_format)


@_conv1d_grad_kernel.register_fake
def _(grad_output, input, kernel_size):
    return grad_output.new_empty(kernel_size)


# The three ops are linear in each argument and each one's gradients are the
# other two, so autograd is closed over them (double backward works too).
# With y = conv1d(x, w), g = dL/dy, gi = grad_input(g, w), gk = grad_kernel(g, x, K):
#   conv1d(x, w):           dx = grad_input(g, w),   dw = grad_kernel(g, x, K)
#   grad_input(g, w) = gi:  dg = conv1d(v, w),       dw = grad_kernel(g, v, K)   (v = dL/dgi)
#   grad_kernel(g, x) = gk: dg = conv1d(x, u),       dx = grad_input(g, u)       (u = dL/dgk)


def _save_both(ctx, inputs, output):
    first, second = inputs[0], inputs[1]
    ctx.save_for_backward(first, second)


def _conv1d_backward(ctx, grad):
    x, w = ctx.saved_tensors
    dx = _conv1d_grad_input(grad, w) if ctx.needs_input_grad[0] else None
    dw = _conv1d_grad_kernel(grad, x, w.shape[0]) if ctx.needs_input_grad[1] else None
    return dx, dw


def _grad_input_backward(ctx, v):
    g, w = ctx.saved_tensors
    dg = _conv1d(v, w) if ctx.needs_input_grad[0] else None
    dw = _conv1d_grad_kernel(g, v, w.shape[0]) if ctx.needs_input_grad[1] else None
    return dg, dw


def _grad_kernel_backward(ctx, u):
    g, x = ctx.saved_tensors
    dg = _conv1d(x, u) if ctx.needs_input_grad[0] else None
    dx = _conv1d_grad_input(g, u) if ctx.needs_input_grad[1] else None
    return dg, dx, None


_conv1d.register_autograd(_conv1d_backward, setup_context=_save_both)
_conv1d_grad_input.register_autograd(_grad_input_backward, setup_context=_save_both)
_conv1d_grad_kernel.register_autograd(_grad_kernel_backward, setup_context=_save_both)


def conv1d(input: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlate each row of `input` ((N,) or (B, N)) with `kernel` ((K,)),
    zero-padded on the right: out[..., i] = sum_j input[..., i + j] * kernel[j].

    float16, bfloat16, float32 and float64 on cpu and cuda; sums accumulate in
    float32 (float64 for float64). Differentiable in both arguments."""
    _check_args(input, kernel)
    return torch.ops.mojo_conv1d.conv1d(input, kernel)
