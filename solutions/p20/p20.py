"""Puzzle 20: the 1D convolution Mojo op, from a MAX Graph to a PyTorch custom op.

The same Mojo package (./op) runs three ways here, and the results must agree:
  1. through PyTorch: CustomOpLibrary loads the package and torch.compile wraps
     the op, which writes into an output tensor that PyTorch allocated;
  2. through a MAX Graph that calls the same op;
  3. against a plain NumPy reference.

Run `python p20.py --help` for other sizes and devices.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import sys
import time
from pathlib import Path

# The puzzle's compiled graph is a single op call, so inductor has nothing to
# compile in parallel: its pool of worker processes would only cost their
# start and, at exit, their shutdown.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from max._mlir_context import MLIRThreadPoolExecutor  # noqa: E402
from max.experimental.torch import CustomOpLibrary  # noqa: E402

from mojo_conv1d.build import compiled_graphs, kernel_package  # noqa: E402

OP_SOURCE = Path(__file__).parent / "op"
CHAPTER = "book/src/puzzle_20/puzzle_20.md"


class PuzzleNotSolved(Exception):
    """Raised where the puzzle's one line still has to be written."""


def fill_in_here() -> None:
    """Stands in problems/ for the line to write; says where that line is."""
    caller = inspect.stack()[1]
    raise PuzzleNotSolved(f"{os.path.relpath(caller.filename)}:{caller.lineno}")


def note(message: str) -> None:
    """Progress notes go to stderr, so stdout is exactly the puzzle's output."""
    print(message, file=sys.stderr, flush=True)


@functools.cache
def op_library() -> CustomOpLibrary:
    """The Mojo package in ./op, loaded once per process. It is compiled to a
    .mojoc once and kept on disk until its sources change: given the source
    folder, MAX would compile it again in every process."""
    return CustomOpLibrary(kernel_package(OP_SOURCE))


# ANCHOR: conv1d_pytorch
def conv1d_pytorch(input_tensor: torch.Tensor, kernel_tensor: torch.Tensor) -> torch.Tensor:
    """1D convolution through the Mojo op, called from PyTorch."""
    ops = op_library()

    # PyTorch allocates the output tensor; the Mojo op writes into it.
    output_tensor = torch.empty_like(input_tensor)

    # The sizes are compile-time parameters of the Mojo op.
    conv1d = ops.conv1d[{"input_size": input_tensor.shape[0], "conv_size": kernel_tensor.shape[0]}]

    # ANCHOR: conv1d_pytorch_call
    torch.compile(conv1d)(output_tensor, input_tensor, kernel_tensor)
    # ANCHOR_END: conv1d_pytorch_call

    return output_tensor


# ANCHOR_END: conv1d_pytorch


def execute_signature() -> str:
    """file:line of the puzzle op's `execute`, whose arguments the call passes."""
    source = OP_SOURCE / "conv1d.mojo"
    lines = source.read_text().splitlines()
    registered = next(i for i, line in enumerate(lines) if '@extensibility.register("conv1d")' in line)
    line = next(i for i in range(registered, len(lines)) if "def execute" in lines[i])
    return f"{os.path.relpath(source)}:{line + 1}"


# ANCHOR: conv1d_max_graph
@functools.cache
def max_graph_model(input_size: int, conv_size: int, device: str):
    """A MAX Graph with one node, the same Mojo op; built and compiled once."""
    from max.driver import CPU, Accelerator
    from max.dtype import DType
    from max.engine import InferenceSession
    from max.graph import DeviceRef, Graph, TensorType, ops

    max_device = Accelerator() if device == "cuda" else CPU()
    ref = DeviceRef.from_device(max_device)
    with Graph(
        "conv1d_max_graph",
        input_types=[
            TensorType(DType.float32, [input_size], ref),
            TensorType(DType.float32, [conv_size], ref),
        ],
        custom_extensions=[kernel_package(OP_SOURCE)],
    ) as graph:
        input_value, kernel_value = graph.inputs
        # MAX allocates the output from out_types; no output tensor is passed in.
        output = ops.custom(
            name="conv1d",
            device=ref,
            values=[input_value, kernel_value],
            out_types=[TensorType(DType.float32, [input_size], ref)],
            parameters={"input_size": input_size, "conv_size": conv_size},
        )[0].tensor
        graph.output(output)
    model = InferenceSession(devices=[max_device]).load(graph)
    return max_device, model


def conv1d_max_graph(input_array: np.ndarray, kernel_array: np.ndarray, device: str) -> np.ndarray:
    from max.driver import CPU, Buffer

    max_device, model = max_graph_model(len(input_array), len(kernel_array), device)
    input_buffer = Buffer.from_numpy(input_array).to(max_device)
    kernel_buffer = Buffer.from_numpy(kernel_array).to(max_device)
    result = model.execute(input_buffer, kernel_buffer)[0]
    return result.to(CPU()).to_numpy()


# ANCHOR_END: conv1d_max_graph


def conv1d_numpy(input_array: np.ndarray, kernel_array: np.ndarray) -> np.ndarray:
    """output[i] = sum over j with i + j < N of input[i + j] * kernel[j], in float64."""
    padded = np.concatenate([input_array, np.zeros(len(kernel_array) - 1)]).astype(np.float64)
    return np.correlate(padded, kernel_array.astype(np.float64), mode="valid")


def matches(result: np.ndarray, reference: np.ndarray, input_array, kernel_array) -> bool:
    # float32 sums of K terms: allow a few ulps of the largest term involved.
    scale = float(np.abs(input_array).max() * np.abs(kernel_array).max()) * len(kernel_array)
    return bool(np.allclose(result, reference, rtol=1e-5, atol=1e-6 * scale))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if available, else cpu (no mps: MAX takes cpu and cuda tensors only)")
    parser.add_argument("--size", type=int, help="input length N (default 15: the values 0..14)")
    parser.add_argument("--kernel-size", type=int, help="kernel length K (default 4: the values 0..3)")
    parser.add_argument("--seed", type=int, help="random input and kernel from this seed")
    args = parser.parse_args(argv)
    for name in ("size", "kernel_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA device here; use --device cpu")
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        # A Mac with an Apple GPU: max 26.7's CustomOpLibrary maps only cpu and
        # cuda tensors to MAX devices (max/experimental/torch/torch.py).
        note("[p20] MAX's CustomOpLibrary (max 26.7) takes cpu and cuda tensors only, so the puzzle runs on the CPU")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def make_inputs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    if args.size is None and args.kernel_size is None and args.seed is None:
        return np.arange(15, dtype=np.float32), np.arange(4, dtype=np.float32)
    rng = np.random.default_rng(args.seed or 0)
    size = args.size or 15
    kernel_size = args.kernel_size or 4
    return (
        rng.standard_normal(size).astype(np.float32),
        rng.standard_normal(kernel_size).astype(np.float32),
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    input_array, kernel_array = make_inputs(args)
    # A later run with the same device and sizes loads the two MAX graphs
    # this run compiles, instead of compiling them again.
    arch = "".join(map(str, torch.cuda.get_device_capability())) if args.device == "cuda" else ""
    with compiled_graphs(kernel_package(OP_SOURCE), f"{args.device}{arch}-{len(input_array)}-{len(kernel_array)}") as kept:
        return run_puzzle(args, input_array, kernel_array, first_run=not (kept / "manifest.json").is_file())


def run_puzzle(args: argparse.Namespace, input_array: np.ndarray, kernel_array: np.ndarray, first_run: bool) -> int:
    failures = 0
    # On a first run, once the line is written, the MAX Graph compiles in the
    # background while the PyTorch step compiles the same op: each of the two
    # compilations takes most of such a run. A later run loads both graphs
    # and gains nothing from a second thread. (MAX's executor gives the
    # thread the MLIR context that building a graph needs.)
    max_graph = None
    if first_run and "fill_in_here(" not in inspect.getsource(conv1d_pytorch):
        max_graph = MLIRThreadPoolExecutor(1).submit(max_graph_model, len(input_array), len(kernel_array), args.device)
    print("Puzzle 20: From MAX Graph to PyTorch Custom Ops")
    print("=" * 60)
    print(f"Input array: {input_array}")
    print(f"Convolution kernel: {kernel_array}")
    print()
    numpy_result = conv1d_numpy(input_array, kernel_array)
    print(f"NumPy reference result: {numpy_result.astype(np.float32)}")
    print()

    print(f"Testing PyTorch Custom Op (device: {args.device})")
    print("-" * 40)
    input_tensor = torch.from_numpy(input_array).to(args.device)
    kernel_tensor = torch.from_numpy(kernel_array).to(args.device)
    started = time.perf_counter()
    note(f"[p20] compiling conv1d[input_size={len(input_array)}, conv_size={len(kernel_array)}] for {args.device}")
    try:
        pytorch_result = conv1d_pytorch(input_tensor, kernel_tensor).cpu().numpy()
    except PuzzleNotSolved as unsolved:
        print()
        print("❌ Puzzle 20 is not solved yet.")
        print(f"   Write the one line at {unsolved}")
        print("   Hint: it runs the op `conv1d` picked just above it, so that the")
        print("   op fills output_tensor. The op's arguments are those of")
        print(f"   `execute` in {execute_signature()}.")
        print(f'   The chapter ({CHAPTER}) explains the call')
        print('   in its section "Code to complete".')
        return 1
    note(f"[p20] PyTorch custom op done in {time.perf_counter() - started:.1f} s")
    print(f"PyTorch custom op result: {pytorch_result}")
    if matches(pytorch_result, numpy_result, input_array, kernel_array):
        print("✅ PyTorch custom op verification PASSED")
    else:
        failures += 1
        print("❌ PyTorch custom op verification FAILED: differs from NumPy")
    print()

    print("Comparing with MAX Graph approach (like p15)")
    print("-" * 44)
    started = time.perf_counter()
    note(f"[p20] compiling the MAX Graph for {args.device}")
    if max_graph is not None:
        max_graph.result()  # compiled, or its error raised here
    max_graph_result = conv1d_max_graph(input_array, kernel_array, args.device)
    note(f"[p20] MAX Graph done in {time.perf_counter() - started:.1f} s")
    print(f"MAX Graph result: {max_graph_result}")
    if matches(max_graph_result, numpy_result, input_array, kernel_array):
        print("✅ MAX Graph verification PASSED")
    else:
        failures += 1
        print("❌ MAX Graph verification FAILED: differs from NumPy")
    if matches(pytorch_result, max_graph_result, input_array, kernel_array):
        print("✅ PyTorch and MAX Graph results MATCH")
    else:
        failures += 1
        print("❌ PyTorch and MAX Graph results DIFFER")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
