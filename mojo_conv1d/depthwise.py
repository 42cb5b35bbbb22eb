"""Depthwise 1D convolution: one filter per channel, as `nn.Conv1d(C, C, K,
groups=C)` computes it and as sequence models use it (causal, often with a
bias and a SiLU, like Dao-AILab's causal-conv1d), on the same Mojo kernels
as `conv1d`.

    out[b, c, t] = act(bias[c] + sum over j < K of x[b, c, t + j - shift] * weight[c, j])

with x read as zero outside [0, L) and shift = K - 1 ("causal": out[t] sees
x[t-K+1 .. t]), (K - 1) // 2 ("same", as F.conv1d pads) or 0 ("valid", L - K + 1
outputs).

Two ops carry it, registered like conv1d's in ops.py: `depthwise_correlate`
(the sum, for any shift, taps optionally reversed, any output length, with
the bias and the SiLU applied in the same pass) and `depthwise_grad_weight`
(the filters' gradient). Their gradients are the two of them again (and a
few elementwise torch ops for the SiLU), so autograd works to any order.
"""

from __future__ import annotations

import math

import torch
from torch.autograd import forward_ad

from . import _cpu, _gpu
from .ops import _BODIES, _SUPPORTED, _contiguous, _direct, check_tensor

PADDINGS = ("causal", "same", "valid")
ACTIVATIONS = (None, "silu")

_lib = torch.library.Library("mojo_conv1d", "FRAGMENT")
_lib.define(
    "depthwise_correlate(Tensor x, Tensor weight, Tensor? bias, SymInt shift, bool flip, SymInt n_out, bool silu)"
    " -> Tensor"
)
_lib.define("depthwise_grad_weight(Tensor grad_output, Tensor x, SymInt shift, SymInt kernel_size) -> Tensor")


def _channels_last(x: torch.Tensor) -> bool:
    """x (B, C, L) is a (B, L, C) tensor transposed, as a sequence model's
    activations often are (and C > 1, else both layouts are the same), on
    the CPU, which has a kernel for that layout (a CUDA tensor is copied)."""
    if x.dim() != 3 or x.shape[1] == 1 or x.device.type != "cpu":
        return False
    b, c, length = x.shape
    return x.stride(1) == 1 and x.stride(2) == c and (b == 1 or x.stride(0) == c * length)


def _new_output(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """The output, (B, C, n_out), in x's layout."""
    if _channels_last(x):
        return x.new_empty(x.shape[0], n_out, x.shape[1]).transpose(1, 2)
    return x.new_empty(*x.shape[:-1], n_out)


def _register_kernels(device: str, backend) -> None:
    """The two ops' bodies on one kind of device; `backend` (_cpu or _gpu)
    runs the Mojo kernels."""

    def depthwise_correlate(x, weight, bias, shift, flip, n_out, silu):
        # weight is (C, K), or (C, 1, K) from depthwise_conv1d's direct call.
        weight = _contiguous(weight)
        bias = None if bias is None else _contiguous(bias)
        if not x.is_contiguous():
            if _channels_last(x):
                out = _new_output(x, n_out)
                backend.correlate_channels_last(out, x, weight, shift, flip, bias=bias, silu=silu)
                return out
            x = x.contiguous()
        out = x.new_empty(*x.shape[:-1], n_out)
        backend.correlate(out, x, weight, shift, flip, channels=weight.shape[0], bias=bias, silu=silu)
        return out

    def depthwise_grad_weight(grad_output, x, shift, kernel_size):
        x = _contiguous(x)
        grad_weight = x.new_empty(x.shape[-2], kernel_size)
        backend.grad_kernel(grad_weight, _contiguous(grad_output), x, shift=shift, channels=x.shape[-2])
        return grad_weight

    for body in (depthwise_correlate, depthwise_grad_weight):
        torch.library.impl(f"mojo_conv1d::{body.__name__}", device, lib=_lib)(body)
        _BODIES[body.__name__, device] = body


_register_kernels("cpu", _cpu)
_register_kernels("cuda", _gpu)


@torch.library.register_fake("mojo_conv1d::depthwise_correlate", lib=_lib)
def _(x, weight, bias, shift, flip, n_out, silu):
    return _new_output(x, n_out)


@torch.library.register_fake("mojo_conv1d::depthwise_grad_weight", lib=_lib)
def _(grad_output, x, shift, kernel_size):
    return x.new_empty(x.shape[-2], kernel_size)


_correlate = torch.ops.mojo_conv1d.depthwise_correlate.default
_grad_weight = torch.ops.mojo_conv1d.depthwise_grad_weight.default

# With y = correlate(x, w, b, shift, flip, n_out, silu), g = dL/dy, and g'
# = g, or g * silu'(z) with z = correlate(x, w, b, shift, flip, n_out, False)
# recomputed when silu (the SiLU's input is not kept):
#   dx = correlate(g', w, None, K - 1 - shift, not flip, L, False)
#   dw = grad_weight(g', x, shift, K), reversed when flip;   db = g' summed per channel
# and for gw = grad_weight(g, x, shift, K), with u = dL/dgw:
#   dg = correlate(x, u, None, shift, False, len(g), False)
#   dx = correlate(g, u, None, K - 1 - shift, True, L, False)


def _save_correlate(ctx, inputs, output):
    x, weight, bias, shift, flip, n_out, silu = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.shift, ctx.flip, ctx.n_out, ctx.silu = shift, flip, n_out, silu


def _correlate_backward(ctx, grad):
    x, weight, bias = ctx.saved_tensors
    k, length = weight.shape[-1], x.shape[-1]
    if ctx.silu:
        z = _correlate(x, weight, bias, ctx.shift, ctx.flip, ctx.n_out, False)
        sigmoid = torch.sigmoid(z)
        grad = grad * sigmoid * (1 + z * (1 - sigmoid))
    dx = dw = db = None
    if ctx.needs_input_grad[0]:
        dx = _correlate(grad, weight, None, k - 1 - ctx.shift, not ctx.flip, length, False)
    if ctx.needs_input_grad[1]:
        dw = _grad_weight(grad, x, ctx.shift, k)
        dw = dw.flip(-1) if ctx.flip else dw
    if bias is not None and ctx.needs_input_grad[2]:
        db = grad.sum(-1).reshape(-1, weight.shape[0]).sum(0)
    return dx, dw, db, None, None, None, None


def _save_grad_weight(ctx, inputs, output):
    grad_output, x, shift, kernel_size = inputs
    ctx.save_for_backward(grad_output, x)
    ctx.shift = shift


def _grad_weight_backward(ctx, u):
    grad_output, x = ctx.saved_tensors
    k = u.shape[-1]
    dg = _correlate(x, u, None, ctx.shift, False, grad_output.shape[-1], False) if ctx.needs_input_grad[0] else None
    dx = _correlate(grad_output, u, None, k - 1 - ctx.shift, True, x.shape[-1], False) if ctx.needs_input_grad[1] else None
    return dg, dx, None, None


torch.library.register_autograd(
    "mojo_conv1d::depthwise_correlate", _correlate_backward, setup_context=_save_correlate, lib=_lib
)
torch.library.register_autograd(
    "mojo_conv1d::depthwise_grad_weight", _grad_weight_backward, setup_context=_save_grad_weight, lib=_lib
)


def _check_args(x, weight, bias, padding, activation) -> None:
    """Clear Python errors, naming the argument, before anything reaches Mojo."""
    # The common case first, each attribute read once (this runs on every
    # call); the checks below only name what is wrong.
    if isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor):
        dtype, shape, w_shape = x.dtype, x.shape, weight.shape
        if (
            dtype in _SUPPORTED and weight.dtype is dtype
            and 1 < len(shape) < 4 and 0 not in shape
            and (len(w_shape) == 2 or (len(w_shape) == 3 and w_shape[1] == 1))
            and w_shape[0] == shape[-2] and w_shape[-1]
            and (padding == "causal" or padding == "same" or (padding == "valid" and w_shape[-1] <= shape[-1]))
            and (activation is None or activation == "silu")
        ):
            device = x.device
            if (
                (device.type == "cuda" or device.type == "cpu") and weight.device == device
                and (bias is None or (isinstance(bias, torch.Tensor) and bias.dtype is dtype
                                      and bias.shape == w_shape[:1] and bias.device == device))
            ):
                return
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if t is None and name == "bias":
            continue
        check_tensor("depthwise_conv1d", name, t)
        if t.dtype != x.dtype:
            raise TypeError(f"depthwise_conv1d: {name} dtype {t.dtype} differs from x dtype {x.dtype}")
        if t.device != x.device:
            raise ValueError(f"depthwise_conv1d: {name} is on {t.device} but x is on {x.device}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"depthwise_conv1d: x is on {x.device}; only cpu and cuda are supported")
    if x.dim() not in (2, 3):
        raise ValueError(f"depthwise_conv1d: x must have shape (B, C, L) or (C, L), got {tuple(x.shape)}")
    channels = x.shape[-2]
    if not (weight.dim() == 2 or (weight.dim() == 3 and weight.shape[1] == 1)):
        raise ValueError(f"depthwise_conv1d: weight must have shape (C, K) or (C, 1, K), got {tuple(weight.shape)}")
    if weight.shape[0] != channels:
        raise ValueError(f"depthwise_conv1d: weight has {weight.shape[0]} channels but x has {channels}")
    if weight.shape[-1] == 0:
        raise ValueError("depthwise_conv1d: weight has no taps (K = 0)")
    if bias is not None and tuple(bias.shape) != (channels,):
        raise ValueError(f"depthwise_conv1d: bias must have shape ({channels},), got {tuple(bias.shape)}")
    if padding not in PADDINGS:
        raise ValueError(f"depthwise_conv1d: padding must be one of {PADDINGS}, got {padding!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"depthwise_conv1d: activation must be None or 'silu', got {activation!r}")
    if x.numel() == 0:
        raise ValueError(f"depthwise_conv1d: x is empty (shape {tuple(x.shape)})")
    if padding == "valid" and weight.shape[-1] > x.shape[-1]:
        raise ValueError(
            f"depthwise_conv1d: padding 'valid' needs K <= L, got K = {weight.shape[-1]} and L = {x.shape[-1]}"
        )


def depthwise_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: str = "causal",
    activation: str | None = None,
) -> torch.Tensor:
    """Each channel of x ((B, C, L) or (C, L)) convolved with its own filter
    (weight (C, K), or (C, 1, K) as nn.Conv1d(groups=C) stores it), plus
    bias (C,), then SiLU if activation="silu". padding "causal" (output t
    sees inputs t-K+1 .. t), "same" or "valid" as in F.conv1d. float16,
    bfloat16, float32 and float64; sums accumulate in float32 (float64 for
    float64). Differentiable in x, weight and bias."""
    _check_args(x, weight, bias, padding, activation)
    k, n_out = weight.shape[-1], x.shape[-1]
    if padding == "causal":
        shift = k - 1
    elif padding == "same":
        shift = (k - 1) // 2
    else:
        shift, n_out = 0, n_out - k + 1
    silu = activation == "silu"
    if forward_ad._current_level >= 0 and any(
        t is not None and forward_ad.unpack_dual(t).tangent is not None for t in (x, weight, bias)
    ):
        raise NotImplementedError("depthwise_conv1d: forward-mode AD (dual tensors) is not supported; use backward()")
    if _direct(x, weight, bias):
        # The body reads a (C, 1, K) weight as (C, K); only autograd needs the reshape.
        return _BODIES["depthwise_correlate", x.device.type](x, weight, bias, shift, False, n_out, silu)
    if weight.dim() == 3:
        weight = weight.reshape(weight.shape[0], k)
    return _correlate(x, weight, bias, shift, False, n_out, silu)


class DepthwiseConv1d(torch.nn.Module):
    """`nn.Conv1d(channels, channels, kernel_size, groups=channels)` on the
    Mojo kernels, with padding "causal", "same" or "valid" and an optional
    SiLU. Its `weight` (channels, 1, kernel_size) and `bias` load from such
    a module's state_dict, and start from the same initial distribution."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        padding: str = "causal",
        bias: bool = True,
        activation: str | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        for name, value in (("channels", channels), ("kernel_size", kernel_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DepthwiseConv1d: {name} must be a positive int, got {value!r}")
        if padding not in PADDINGS:
            raise ValueError(f"DepthwiseConv1d: padding must be one of {PADDINGS}, got {padding!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"DepthwiseConv1d: activation must be None or 'silu', got {activation!r}")
        self.channels, self.kernel_size = channels, kernel_size
        self.padding, self.activation = padding, activation
        factory = {"device": device, "dtype": dtype}
        self.weight = torch.nn.Parameter(torch.empty(channels, 1, kernel_size, **factory))
        self.bias = torch.nn.Parameter(torch.empty(channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv1d's initialisation: fan_in is 1 * kernel_size for a depthwise conv.
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.kernel_size)
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv1d(x, self.weight, self.bias, self.padding, self.activation)

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, padding={self.padding!r}, "
            f"bias={self.bias is not None}, activation={self.activation!r}"
        )
