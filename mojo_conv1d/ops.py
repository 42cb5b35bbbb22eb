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

import torch

from . import _cpu

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _run(name: str, *tensors: torch.Tensor) -> None:
    """Mojo op `name` (conv1d.mojo) on (output, inputs...), on their device."""
    if tensors[0].device.type == "cpu":
        _cpu.run(name, *tensors)
    else:
        from . import _gpu  # MAX's graph machinery only where a GPU is used

        _gpu.run(name, *tensors)


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
