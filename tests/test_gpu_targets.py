"""The package's GPU kernels compile for the H200 (sm_90) and for MI300X
(gfx942) on this GPU-less machine: `mojo build --emit asm` writes one
assembly file per kernel instantiation beside its output."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

HARNESS = REPO / "tests" / "gpu_build" / "instantiate_kernels.mojo"
DTYPES = 4  # the harness instantiates each kernel for f32, f16, bf16 and f64
# Instantiations per dtype: the window kernel has two shapes (short kernels, and up to WINDOW_K taps).
KERNELS = {"correlate_gpu_kernel": 1, "correlate_window_gpu_kernel": 2, "grad_kernel_partials_kernel": 1, "grad_kernel_reduce_kernel": 1}


def mojo() -> str:
    beside_python = Path(sys.executable).parent / "mojo"
    return str(beside_python) if beside_python.exists() else shutil.which("mojo") or "mojo"


@pytest.mark.parametrize(("target", "suffix"), [("sm_90", ".ptx"), ("gfx942", ".amdgcn")])
def test_kernels_compile_for(target, suffix, tmp_path):
    result = subprocess.run(
        [mojo(), "build", "-I", str(REPO / "mojo_conv1d"), "--target-accelerator", target,
         "--emit", "asm", str(HARNESS), "-o", str(tmp_path / "kernels.s")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    files = sorted(p.name for p in tmp_path.glob(f"*{suffix}"))
    for kernel, shapes in KERNELS.items():
        # File names are cut short; match on the first 19 characters of the kernel's name.
        count = sum(kernel[:19] in name for name in files)
        assert count == shapes * DTYPES, f"{kernel}: {count} {suffix} files for {target}, expected {shapes * DTYPES}: {files}"
    # The tensor-core kernel: float32 on Hopper only, one instantiation per
    # count of 16-row steps (k = 33..64 needs 4, 5 or 6), each issuing warpgroup MMAs.
    tensor_core = [tmp_path / name for name in files if "tensor_cores_correlate" in name]
    assert len(tensor_core) == (3 if target == "sm_90" else 0), files
    assert all("wgmma.mma_async.sync.aligned.m64n32k16" in p.read_text() for p in tensor_core)


def test_wgmma_probe_compiles_for_sm90a(tmp_path):
    """benchmarks/wgmma_probe.mojo, which docs/kernel_tuning.md cites, still
    builds for the H200 and still issues warpgroup MMAs (Hopper only, so
    sm_90a and no AMD target)."""
    probe = REPO / "benchmarks" / "wgmma_probe.mojo"
    result = subprocess.run(
        [mojo(), "build", "-I", str(REPO / "mojo_conv1d"), "--target-accelerator", "sm_90a",
         "--emit", "asm", str(probe), "-o", str(tmp_path / "probe.s")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ptx = [p for p in tmp_path.glob("*.ptx") if "wgmma" in p.name]
    assert ptx, sorted(p.name for p in tmp_path.glob("*"))
    # Every kernel of the probe issues them but one: mode 2 times building A alone.
    without = [p.name for p in ptx if "wgmma.mma_async.sync.aligned" not in p.read_text()]
    assert len(ptx) >= 2 and len(without) == 1, without
