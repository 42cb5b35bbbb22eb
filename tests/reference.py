"""References for the op (float64 NumPy, padded torch conv1d), a tolerance
derived from them, the tests' random inputs, and a dispatch mode that
records the ops a call reaches."""

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

# Unit roundoff of the type the sums accumulate in, and of the stored result.
_ACCUM_EPS = {torch.float64: 2.0**-53}
_STORE_EPS = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24, torch.float64: 2.0**-53}


def correlate(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """out[..., i] = sum over j with i + j < N of x[..., i + j] * w[j], in float64."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    w = np.asarray(w, dtype=np.float64)
    padded = np.concatenate([x, np.zeros((x.shape[0], len(w) - 1))], axis=1)
    return np.stack([np.correlate(row, w, mode="valid") for row in padded])


def assert_close(result: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> None:
    """|result - exact| within the rounding of K products summed in the op's
    accumulator plus one rounding to the output dtype, relative to the sum of
    |terms| at each position (which does not shrink when terms cancel)."""
    xs = x.detach().double().cpu().numpy()
    ws = w.detach().double().cpu().numpy()
    exact = correlate(xs, ws)
    magnitude = correlate(np.abs(xs), np.abs(ws))
    accum_eps = _ACCUM_EPS.get(x.dtype, 2.0**-24)
    bound = (4 * (len(ws) + 2) * accum_eps + 2 * _STORE_EPS[x.dtype]) * magnitude + 1e-300
    got = result.detach().double().cpu().numpy().reshape(exact.shape)
    err = np.abs(got - exact)
    worst = np.unravel_index(np.argmax(err / bound), err.shape)
    assert np.all(err <= bound), (
        f"error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst} "
        f"(got {got[worst]!r}, exact {exact[worst]!r}, N={exact.shape[-1]}, K={len(ws)})"
    )


def random(shape, device, dtype=torch.float32, seed=0, requires_grad=False) -> torch.Tensor:
    """Standard normal values from a fixed seed, the same on every device."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)
    return t.requires_grad_(requires_grad)


def torch_conv1d(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The same sum with PyTorch's own conv1d (a cross-correlation): pad right by K - 1."""
    rows = x.reshape(-1, 1, x.shape[-1])
    return F.conv1d(F.pad(rows, (0, w.shape[0] - 1)), w.view(1, 1, -1)).reshape(x.shape)


class SeenOps(TorchDispatchMode):
    """Inside `with SeenOps() as seen:`, seen.ops lists the ops (as
    "namespace.name.overload") that reached the dispatcher."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))
