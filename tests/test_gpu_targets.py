"""The package's GPU kernels compile for the H200 (sm_90), for MI300X
(gfx942) and for Apple GPUs on this GPU-less machine: `mojo build --emit asm`
writes one assembly file per kernel instantiation beside its output (PTX,
AMDGCN, or for Apple the LLVM IR of Metal's AIR)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

HARNESS = REPO / "tests" / "gpu_build" / "instantiate_kernels.mojo"
# Metal has no float64: this one instantiates the same kernels without it.
APPLE_HARNESS = REPO / "tests" / "gpu_build" / "instantiate_kernels_apple.mojo"
# (module, kernel): (instantiations per dtype, parameters). The short kernels
# (the forward's and the depthwise filters' gradient's, up to 12 taps) are
# counted apart: each has one per input offset in a 16-byte vector and bound
# on the taps (4 or 12), so 2 * (16 // element size) per dtype, and the
# forward's has its 4-tap 16-bit ones once more, taking two tiles a pass,
# and its 4-tap float32 ones, with the splits the grid's x; then all its
# 4-tap ones once more, the exact kernel for aligned taps and rows.
KERNELS = {
    ("tiled", "correlate_gpu_kernel"): (1, 13),
    ("window", "correlate_window_gpu_kernel"): (1, 13),
    ("grad_kernel", "grad_kernel_partials_kernel"): (1, 7),
    ("grad_kernel", "grad_kernel_reduce_kernel"): (1, 4),
    ("grad_kernel", "grad_kernel_rows_kernel"): (1, 12),
    ("grad_kernel", "grad_kernel_channels_kernel"): (1, 6),
}
# A kernel's symbol is `kernels_<module>_<kernel>` cut to this many characters,
# then a hash; each file is named after the output, "_" and the symbol.
SYMBOL_PREFIX = 30


def parameters(path: Path) -> int:
    """The kernel's parameter count: from its .entry in PTX, from its
    definition's numbered arguments in Apple's LLVM IR, from the explicit
    arguments of its metadata in AMDGCN."""
    text = path.read_text()
    if path.suffix == ".ptx":
        return re.search(r"\.entry\s+\S+\((.*?)\)", text, re.S).group(1).count(".param ")
    if path.suffix == ".ll":
        define = next(line for line in text.splitlines() if line.startswith("define void @kernels_"))
        return len(set(re.findall(r"%\d+\b", define)))
    return len(re.findall(r"\.value_kind:\s+(?:global_buffer|by_value)\b", text))


def mojo() -> str:
    beside_python = Path(sys.executable).parent / "mojo"
    return str(beside_python) if beside_python.exists() else shutil.which("mojo") or "mojo"


# (target, suffix of its files, harness, how many dtypes it instantiates).
# Of the four Apple GPU targets (apple-m1 to apple-m4) the suite compiles the
# first and the last, about 10 s each.
TARGETS = [
    ("sm_90", ".ptx", HARNESS, 4),
    ("gfx942", ".amdgcn", HARNESS, 4),
    ("apple-m1", ".ll", APPLE_HARNESS, 3),
    ("apple-m4", ".ll", APPLE_HARNESS, 3),
]
# Short-kernel instantiations: float16, bfloat16, float32 (and float64).
GRAD_SHORT = {4: 2 * (8 + 8 + 4 + 2), 3: 2 * (8 + 8 + 4)}
EXACT_SHORT = {4: (8 + 8) * 2 + 4 * 2 + 2, 3: (8 + 8) * 2 + 4 * 2}
SHORT = {dtypes: count + 8 + 8 + 4 + EXACT_SHORT[dtypes] for dtypes, count in GRAD_SHORT.items()}


@pytest.mark.parametrize(("target", "suffix", "harness", "dtypes"), TARGETS, ids=[t[0] for t in TARGETS])
def test_kernels_compile_for(target, suffix, harness, dtypes, tmp_path):
    result = subprocess.run(
        [mojo(), "build", "-I", str(REPO / "mojo_conv1d"), "-I", str(HARNESS.parent),
         "--target-accelerator", target, "--emit", "asm", str(harness), "-o", str(tmp_path / "kernels.s")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "warning" not in result.stderr, result.stderr[-4000:]
    files = sorted(p.name for p in tmp_path.glob(f"*{suffix}"))
    for (module, kernel), (shapes, params) in KERNELS.items():
        # Symbols are cut short, so grad_kernel.mojo's two kernels share a
        # prefix: their parameter counts tell them apart.
        prefix = f"kernels_{module}_{kernel}"[:SYMBOL_PREFIX]
        count = sum(prefix in name and parameters(tmp_path / name) == params for name in files)
        assert count == shapes * dtypes, f"{kernel}: {count} {suffix} files for {target}, expected {shapes * dtypes}: {files}"
    # The tensor-core kernel: float32 and bfloat16 on Hopper only, one
    # instantiation per count of 16-row steps (k = 33..64 needs 4, 5 or 6 in
    # float32; k = 17..64 in bfloat16, 3 to 6), each issuing warpgroup MMAs.
    tensor_core = [tmp_path / name for name in files if "tensor_cores_correlate" in name]
    assert len(tensor_core) == (7 if target == "sm_90" else 0), files
    assert all("wgmma.mma_async.sync.aligned.m64n32k16" in p.read_text() for p in tensor_core)
    # Apple's files are Metal's AIR, not some host's IR.
    assert suffix != ".ll" or all('target triple = "air64-apple' in (tmp_path / name).read_text() for name in files)
    short = [name for name in files if "kernels_window_correlate_short" in name]
    assert len(short) == SHORT[dtypes] and all(parameters(tmp_path / name) == 12 for name in short), files
    grad_prefix = "kernels_grad_kernel_grad_kernel_short_kernel"[:SYMBOL_PREFIX]
    grad_short = [name for name in files if grad_prefix in name and parameters(tmp_path / name) == 9]
    assert len(grad_short) == GRAD_SHORT[dtypes], files
    # Nothing else: every file is one of the kernels above.
    assert len(files) == sum(shapes for shapes, _ in KERNELS.values()) * dtypes + len(tensor_core) + len(short) + len(grad_short), files


def test_known_taps_compile_only_their_kernels(tmp_path):
    """With the taps known at compile time (the puzzle's conv_size), only the
    kernels that can run for that count are built: 4 taps, the short-window
    kernel alone; 15, the window kernel and the tiled one (which of the two
    runs depends on the dtype); 40, the tensor cores and the tiled kernel."""
    harness = REPO / "tests" / "gpu_build" / "instantiate_known_k.mojo"
    result = subprocess.run(
        [mojo(), "build", "-I", str(REPO / "mojo_conv1d"), "--target-accelerator", "sm_90",
         "--emit", "asm", str(harness), "-o", str(tmp_path / "known_k.s")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "warning" not in result.stderr, result.stderr[-4000:]
    names = [p.name for p in tmp_path.glob("*.ptx")]
    counts = {
        kind: sum(f"kernels_{kind}_" in name for name in names)
        for kind in ("window", "tiled", "tensor_cores", "grad_kernel")
    }
    # Window: the short shape (4 taps) and the long one (15); tiled: one
    # instantiation serves 15 and 40; tensor cores: their three step counts.
    assert counts == {"window": 2, "tiled": 1, "tensor_cores": 3, "grad_kernel": 0}, names


@pytest.mark.parametrize("target", ["sm_90", "gfx942"])
def test_gpu_extension_builds_for(target):
    """gpu_ops.mojo, the module the CUDA (or ROCm) path loads, built the way
    _gpu.py builds it on a GPU machine; it loads here too, where only making
    a context would fail. Its library holds every kernel for the target: on
    sm_90 the 174 of the window, tiled and grad_kernel families (106 short
    kernels in window, 44 in grad_kernel) and the 7 on the tensor cores, as
    PTX."""
    from mojo_conv1d import _gpu, build

    library = build.extension_module(_gpu.SOURCE, target_accelerator=target)
    data = library.read_bytes()
    families = {family: data.count(f"kernels_{family}_".encode()) for family in ("window", "tiled", "grad_kernel", "tensor_cores")}
    if target == "sm_90":
        entries = re.findall(rb"\.visible \.entry kernels_([a-z]+(?:_cores)?)_", data)
        assert len(entries) == 181, entries
        assert entries.count(b"tensor_cores") == 7, entries
    else:
        assert families["tensor_cores"] == 0 and all(families[f] for f in ("window", "tiled", "grad_kernel")), families
    module = build.import_extension(_gpu.SOURCE, target_accelerator=target)  # as _gpu.py loads it
    assert {"context", "correlate", "grad_kernel", "grad_kernel_scratch", "grad_kernel_channels",
            "grad_kernel_channels_scratch"} <= set(dir(module))
    # One partial sum per tap and first-pass block, as gpu.mojo computes it;
    # for the depthwise filters, per tap, row and split of a row.
    assert module.grad_kernel_scratch(8, 2**14, 4) % 4 == 0 and module.grad_kernel_scratch(1, 16, 3) == 3
    assert module.grad_kernel_channels_scratch(16384, 4096, 4) == 16384 * 4
    assert module.grad_kernel_channels_scratch(1, 2**20, 4) == 1024 * 4
