"""`conv1d(input, kernel)` as a PyTorch operator backed by the Mojo kernels.

The op is registered with torch.library (a functional op with a fake
implementation and an autograd formula), in the pattern of
pytorch/extension-cpp. Its forward pass and both gradients are Mojo ops of
the package in kernels/; `_cpu.py` and `_gpu.py` run them on each kind of
device.

Semantics, for input of shape (N,) or (B, N) and kernel of shape (K,):

    out[..., i] = sum over j < K with i + j < N of input[..., i + j] * kernel[j]

i.e. a cross-correlation with zero padding on the right; out has input's shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd import forward_ad

from . import _cpu, _gpu

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_SUPPORTED = frozenset(SUPPORTED_DTYPES)


def check_tensor(op: str, name: str, t) -> None:
    """A TypeError naming the argument unless t is a tensor of a supported dtype."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _SUPPORTED:
        raise TypeError(f"{op}: {name} has dtype {t.dtype}; supported: " + ", ".join(str(d) for d in SUPPORTED_DTYPES))


def _check_args(input: torch.Tensor, kernel: torch.Tensor) -> None:
    """Clear Python errors, naming the argument, before anything reaches Mojo."""
    # The common case in one expression; the checks below only name what is wrong.
    if (
        isinstance(input, torch.Tensor) and isinstance(kernel, torch.Tensor)
        and input.dtype in _SUPPORTED and kernel.dtype is input.dtype
        and kernel.ndim == 1 and 0 < input.ndim < 3 and input.numel() and kernel.numel()
        and (
            (input.is_cuda and kernel.is_cuda and input.get_device() == kernel.get_device())
            or (input.is_cpu and kernel.is_cpu)
        )
    ):
        return
    for name, t in (("input", input), ("kernel", kernel)):
        check_tensor("conv1d", name, t)
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


def _contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.is_contiguous() else t.contiguous()


# The ops' bodies, by (op name, device type), as registered with impl below.
_BODIES: dict[tuple[str, str], Callable] = {}


_PLAIN = frozenset((torch.Tensor, torch.nn.Parameter))
_is_compiling = torch.compiler.is_compiling
_dispatch_modes = torch._C._len_torch_dispatch_stack
_function_modes = torch._C._len_torch_function_stack
_transforms = torch._C._are_functorch_transforms_active
_tracing = torch._C._get_tracing_state
_profiling = torch._C._autograd._profiler_enabled


def _direct(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> bool:
    """Whether a call may run its op's body itself. Going through the
    dispatcher to the body registered with impl costs a call a few
    microseconds (docs/call_cost.md), and the dispatcher only passes the
    call on when the tensors are plain (or Parameters), nothing needs a
    gradient and nothing watches: no torch.compile, functorch transform,
    tracer, profiler, dispatch mode or function mode. Anything else goes
    through the op. Written out tensor by tensor: this runs on every call,
    and a generator over the tensors cost more than the checks."""
    if _is_compiling():  # first: Dynamo cannot trace the checks below
        return False
    if type(a) not in _PLAIN or type(b) not in _PLAIN or (c is not None and type(c) not in _PLAIN):
        return False
    if (a.requires_grad or b.requires_grad or (c is not None and c.requires_grad)) and torch.is_grad_enabled():
        return False
    return not (_dispatch_modes() or _function_modes() or _transforms() or _tracing() or _profiling())


# The three ops, defined with torch.library.define and given their kernels
# per device with impl: measured cheaper per call than torch.library.custom_op
# (docs/call_cost.md), and opcheck passes the same.
_lib = torch.library.Library("mojo_conv1d", "DEF")
_lib.define("conv1d(Tensor input, Tensor kernel) -> Tensor")
_lib.define("conv1d_grad_input(Tensor grad_output, Tensor kernel) -> Tensor")
_lib.define("conv1d_grad_kernel(Tensor grad_output, Tensor input, SymInt kernel_size) -> Tensor")


def _register_kernels(device: str, backend) -> None:
    """The ops' bodies on one kind of device; `backend` (_cpu or _gpu) runs
    the Mojo kernels on contiguous tensors. The input's gradient is the
    forward sum over grad_output shifted by k - 1 with the taps reversed."""

    def conv1d(input, kernel):
        _check_args(input, kernel)
        x = _contiguous(input)
        out = torch.empty_like(x)
        backend.correlate(out, x, _contiguous(kernel), 0, False)
        return out

    def conv1d_grad_input(grad_output, kernel):
        g = _contiguous(grad_output)
        grad_input = torch.empty_like(g)
        backend.correlate(grad_input, g, _contiguous(kernel), kernel.shape[0] - 1, True)
        return grad_input

    def conv1d_grad_kernel(grad_output, input, kernel_size):
        g = _contiguous(grad_output)
        grad_kernel = g.new_empty(kernel_size)
        backend.grad_kernel(grad_kernel, g, _contiguous(input))
        return grad_kernel

    for body in (conv1d, conv1d_grad_input, conv1d_grad_kernel):
        torch.library.impl(f"mojo_conv1d::{body.__name__}", device, lib=_lib)(body)
        _BODIES[body.__name__, device] = body


_register_kernels("cpu", _cpu)
_register_kernels("cuda", _gpu)

_conv1d = torch.ops.mojo_conv1d.conv1d.default
_conv1d_grad_input = torch.ops.mojo_conv1d.conv1d_grad_input.default
_conv1d_grad_kernel = torch.ops.mojo_conv1d.conv1d_grad_kernel.default


@torch.library.register_fake("mojo_conv1d::conv1d", lib=_lib)
def _(input, kernel):
    _check_args(input, kernel)
    return torch.empty_like(input, memory_format=torch.contiguous_format)


@torch.library.register_fake("mojo_conv1d::conv1d_grad_input", lib=_lib)
def _(grad_output, kernel):
    return torch.empty_like(grad_output, memory_format=torch.contiguous_format)


@torch.library.register_fake("mojo_conv1d::conv1d_grad_kernel", lib=_lib)
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
    if torch.is_grad_enabled() or torch._C._are_functorch_transforms_active():
        dx = _conv1d_grad_input(grad, w) if ctx.needs_input_grad[0] else None
        dw = _conv1d_grad_kernel(grad, x, w.shape[0]) if ctx.needs_input_grad[1] else None
        return dx, dw
    # A backward pass that records no graph (no create_graph): the ops'
    # autograd kernels would only pass the calls on, so they go below them.
    with torch._C._AutoDispatchBelowAutograd():
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


for name, backward in (
    ("conv1d", _conv1d_backward),
    ("conv1d_grad_input", _grad_input_backward),
    ("conv1d_grad_kernel", _grad_kernel_backward),
):
    torch.library.register_autograd(f"mojo_conv1d::{name}", backward, setup_context=_save_both, lib=_lib)


def conv1d(input: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlate each row of `input` ((N,) or (B, N)) with `kernel` ((K,)),
    zero-padded on the right: out[..., i] = sum_j input[..., i + j] * kernel[j].

    float16, bfloat16, float32 and float64 on cpu and cuda; sums accumulate in
    float32 (float64 for float64). Differentiable in both arguments."""
    _check_args(input, kernel)
    if forward_ad._current_level >= 0 and any(forward_ad.unpack_dual(t).tangent is not None for t in (input, kernel)):
        # The autograd formula is reverse-mode only; torch would drop the tangent silently.
        raise NotImplementedError("conv1d: forward-mode AD (dual tensors) is not supported; use backward()")
    if _direct(input, kernel):
        return _BODIES["conv1d", input.device.type](input, kernel)
    return _conv1d(input, kernel)
