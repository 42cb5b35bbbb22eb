"""A float64 NumPy reference for the op, and a tolerance derived from it."""

import numpy as np
import torch

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
