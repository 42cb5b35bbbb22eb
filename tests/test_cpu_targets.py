"""The CPU side of the op compiles for the platforms a learner may have
besides Linux x86_64: macOS on Apple silicon and Arm Linux. Cross-compiled
here with `mojo build --target-triple T --emit asm`, without warnings:
cpu_ops.mojo, the Python extension the op's CPU path loads, and a harness
that instantiates the CPU branch of the MAX ops (conv1d.mojo's `correlate`,
with K known at compile time and not) and `grad_kernel_cpu` for each dtype."""

import re
import subprocess

import pytest
from conftest import REPO
from test_gpu_targets import mojo

SOURCES = {
    "cpu_ops": REPO / "mojo_conv1d" / "cpu_ops.mojo",
    "ops_harness": REPO / "tests" / "cpu_build" / "instantiate_cpu_ops.mojo",
}
# The triple, and a line only an arm64 assembly file for that OS has: Mach-O
# symbols start with "_"; ELF declares a function's type.
TRIPLES = {
    "arm64-apple-darwin": r"^_main:|^_PyInit_cpu_ops:",
    "aarch64-unknown-linux-gnu": r"^\s*\.type\s+(main|PyInit_cpu_ops),@function",
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("triple", TRIPLES)
def test_cpu_code_compiles_for(triple, source, tmp_path):
    out = tmp_path / f"{source}.s"
    result = subprocess.run(
        [mojo(), "build", "-I", str(REPO / "mojo_conv1d"), "--target-triple", triple,
         "--emit", "asm", str(SOURCES[source]), "-o", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "warning" not in result.stderr, result.stderr[-4000:]
    text = out.read_text()
    assert re.search(TRIPLES[triple], text, re.M), f"{out} does not look like {triple} assembly"
    # Arm64 code: its frame pointer and link register, x29 and x30.
    assert re.search(r"\bx29\b", text) and re.search(r"\bx30\b", text)
