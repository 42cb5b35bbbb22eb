"""Where the op runs: the tensors' GPU whatever the current device is, several
processes training together (DistributedDataParallel), and inputs past 2^31
elements on the GPU."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import HAS_CUDA, REPO
from reference import correlate, random

from mojo_conv1d import conv1d

TWO_GPUS = HAS_CUDA and torch.cuda.device_count() >= 2
needs_two_gpus = pytest.mark.skipif(not TWO_GPUS, reason="needs two CUDA devices")


@needs_two_gpus
def test_cuda_op_follows_its_tensors_device_not_the_current_one():
    torch.cuda.set_device(0)
    x = random((3, 5000), "cuda:1", seed=1, requires_grad=True)
    w = random(9, "cuda:1", seed=2, requires_grad=True)
    y = conv1d(x, w)
    y.backward(torch.ones_like(y))
    assert y.device == x.grad.device == w.grad.device == torch.device("cuda:1")
    assert torch.cuda.current_device() == 0
    # The same on the CPU path, which the other tests check against NumPy.
    xc = x.detach().cpu().requires_grad_()
    wc = w.detach().cpu().requires_grad_()
    yc = conv1d(xc, wc)
    yc.backward(torch.ones_like(yc))
    for got, want in ((y, yc), (x.grad, xc.grad), (w.grad, wc.grad)):
        torch.testing.assert_close(got.detach().cpu(), want.detach(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=needs_two_gpus)]
)
def test_ddp_example_ends_with_equal_taps_on_every_rank(device):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(REPO / "examples" / "train_filter_ddp.py"), "--device", device],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "✅ taps equal on every rank" in result.stdout


def _windows_match(out: torch.Tensor, x: torch.Tensor, w: torch.Tensor, starts, length: int = 4096) -> None:
    """out (one flat row) against float64 sums over a few windows of it,
    including the end of the row (where the padding zeros come in)."""
    k = w.numel()
    wd = w.double().cpu().numpy()
    for start in starts:
        stop = min(start + length, x.numel())
        piece = x[start : min(stop + k - 1, x.numel())].double().cpu().numpy()
        expected = correlate(piece, wd)[0][: stop - start]
        got = out[start:stop].double().cpu().numpy()
        tol = 2e-3 if x.dtype == torch.float16 else 1e-5
        assert abs(got - expected).max() <= tol * (1 + abs(expected).max()), f"window at {start}"


@pytest.mark.skipif(not HAS_CUDA or torch.cuda.get_device_properties(0).total_memory < 60 * 2**30,
                    reason="needs a CUDA device with 60 GB")
@pytest.mark.parametrize(
    ("shape", "dtype", "k"),
    [((33, 2**26), torch.float32, 4), ((33, 2**26), torch.float32, 64), ((2**31 + 1000,), torch.float16, 4)],
    ids=["33x2^26-f32-k4", "33x2^26-f32-k64", "2^31+1000-f16-k4"],
)
def test_cuda_inputs_past_2_31_elements(shape, dtype, k):
    gen = torch.Generator(device="cuda").manual_seed(5)
    x = torch.randn(shape, device="cuda", generator=gen).to(dtype)
    w = torch.randn(k, device="cuda", generator=gen).to(dtype)
    out = conv1d(x, w)
    torch.cuda.synchronize()
    n = shape[-1]
    if len(shape) == 2:  # the first row, and the last rows, which lie past element 2^31
        for row in (0, shape[0] - 2, shape[0] - 1):
            _windows_match(out[row], x[row], w, [0, n // 2, n - 4096])
    else:
        _windows_match(out, x, w, [0, 2**31 - 2048, n - 4096])
    del out, x
    torch.cuda.empty_cache()
