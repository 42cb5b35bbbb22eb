"""The Mojo conv1d kernels, through the PyTorch op, against float64 NumPy and
against torch.nn.functional.conv1d, over lengths that hit every edge of the
tiling: one element, one tile, a tile plus one, kernels longer than a block,
longer than the input, and a million elements."""

import numpy as np
import pytest
import torch
from conftest import DEVICES
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_close, correlate, random, torch_conv1d

from mojo_conv1d import conv1d

SIZES = [1, 2, 15, 16, 255, 256, 257, 2047, 2048, 2049, 4097, 1_000_003]
KERNEL_SIZES = [1, 4, 15, 16, 17, 64]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", KERNEL_SIZES)
@pytest.mark.parametrize("n", SIZES)
def test_matches_numpy_and_torch(n, k, device):
    x = random(n, device, seed=n)
    w = random(k, device, seed=k + 7)
    out = conv1d(x, w)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert_close(out, x, w)
    # float64 on the torch side too: on CUDA, cuDNN may use TF32 for float32.
    torch.testing.assert_close(out.double(), torch_conv1d(x.double(), w.double()), rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("n", "k"), [(1, 2), (3, 17), (15, 16), (100, 1500), (2049, 5000)])
def test_kernel_longer_than_input(n, k, device):
    x = random(n, device, seed=1)
    w = random(k, device, seed=2)
    assert_close(conv1d(x, w), x, w)


@pytest.mark.parametrize("device", DEVICES)
def test_seed_example(device):
    x = torch.arange(15, dtype=torch.float32, device=device)
    w = torch.arange(4, dtype=torch.float32, device=device)
    expected = [14, 20, 26, 32, 38, 44, 50, 56, 62, 68, 74, 80, 41, 14, 0]
    assert conv1d(x, w).cpu().tolist() == expected


@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6000), k=st.integers(1, 300), rows=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_random_shapes(device, n, k, rows, seed):
    x = random((rows, n), device, seed=seed)
    w = random(k, device, seed=seed + 1)
    assert_close(conv1d(x, w), x, w)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("rows", "n"), [(1, 3 * 2048 + 5), (3, 4096), (2, 2 * 2048 + 100), (4, 12)])
@pytest.mark.parametrize("k", [32, 33, 34, 49, 50, 64])
def test_tensor_core_tiles(rows, n, k, device):
    """float32 with 33 to 64 taps runs on the tensor cores of a Hopper GPU
    (op/tensor_cores.mojo), one kernel per count of 16-row steps of the taps'
    matrix (k = 33, 34 and 50 each start one; 32 is the last below): tiles of
    2048 outputs that end inside a row, several rows, and rows shorter than
    a tile. Elsewhere the same cases run on the other kernels."""
    x = random((rows, n), device, seed=n + k)
    w = random(k, device, seed=k)
    assert_close(conv1d(x, w), x, w)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_tensor_cores_several_tiles_a_block(dtype, device):
    """More tiles than the tensor-core kernel has blocks (a few per
    multiprocessor): with one filter a block takes tiles a grid apart, which
    here lie in different rows, and the last tiles end inside a row."""
    x = random((3, 700_001), device, dtype, seed=3)
    w = random(64, device, dtype, seed=4)
    assert_close(conv1d(x, w), x, w)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("k", "dtype"),
    # Every GPU kernel, with and without a partial last step of taps.
    [(4, torch.float32), (6, torch.float32), (17, torch.float32), (64, torch.float32), (300, torch.float32),
     (6, torch.float16), (15, torch.float16)],
)
@pytest.mark.parametrize("where", ["input", "kernel"])
def test_non_finite_values(where, k, dtype, device):
    """Infinities and NaNs give what float64 NumPy gives on the zero-padded
    input: an output whose window holds one is infinite or NaN, the others
    are finite, and past the row's end an infinite tap meets zeros (NaN, as
    in F.conv1d with zero padding). On the GPU the window and tiled kernels
    multiply zero taps too (padding to whole steps), which would turn an
    infinite input into NaN in outputs whose window does not hold it; they
    recompute such outputs over the filter's own taps (docs/kernels.md,
    "Non-finite values"), so the pattern is exact on every device."""
    x = random(5000, "cpu", seed=3)
    w = random(k, "cpu", seed=4)
    if where == "input":
        x[1000], x[1001], x[3000] = float("inf"), float("-inf"), float("nan")
        x[4000] = float("inf")
    else:
        w[k // 2] = float("inf")
    x, w = x.to(dtype), w.to(dtype)
    out = conv1d(x.to(device), w.to(device)).cpu().double().numpy()
    xd = x.double().numpy()
    with np.errstate(invalid="ignore"):
        exact = correlate(xd, w.double().numpy())[0]
    assert np.array_equal(np.isnan(out), np.isnan(exact))
    assert np.array_equal(np.isposinf(out), np.isposinf(exact))
    assert np.array_equal(np.isneginf(out), np.isneginf(exact))
    finite = np.isfinite(exact)
    # Most outputs stay finite, or with the infinite tap, infinite (not NaN).
    assert (finite if where == "input" else np.isinf(exact)).sum() > 4000
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    np.testing.assert_allclose(out[finite], exact[finite], rtol=tol, atol=tol * np.sqrt(k))
