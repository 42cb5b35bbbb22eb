"""Experiment: the forward op in a graph that writes into the output buffer.

CustomOpLibrary's graph runs the op into a tensor MAX allocates and then
copies it into the output buffer PyTorch passed (mo.custom + mo.mutable.store).
This script copies the op package to a temporary folder, adds a variant of
conv1d_forward whose output is a mutable input (so that
max.graph.ops.inplace_custom can write straight into the buffer), and times
both graphs on the same buffers, alternating. See docs/overhead.md.

    python benchmarks/inplace_experiment.py [--device cpu|cuda]
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from max.driver import CPU, Accelerator, Buffer
from max.dtype import DType
from max.engine import InferenceSession
from max.experimental.torch import CustomOpLibrary
from max.experimental.torch.torch import MaxOp
from max.graph import BufferType, DeviceRef, Graph, TensorType, ops

OP_PACKAGE = Path(__file__).resolve().parents[1] / "solutions" / "p20" / "op"

INPLACE_OP = '''

from extensibility import ManagedTensorSlice, IOSpec
from extensibility.managed_tensor_slice import IO


@extensibility.register("conv1d_forward_inplace")
struct Conv1DForwardInplace:
    @staticmethod
    def execute[
        target: StaticString, dtype: DType
    ](
        output: ManagedTensorSlice[IOSpec[True, IO.Input](), static_spec=_],
        input: InputTensor[dtype=dtype, rank=2, static_spec=_],
        kernel: InputTensor[dtype=dtype, rank=1, static_spec=_],
        ctx: DeviceContext,
    ) raises:
        correlate[target, dtype](
            ctx,
            rebind[Ptr[dtype]](output.unsafe_ptr()),
            rebind[Ptr[dtype]](input.unsafe_ptr()),
            rebind[Ptr[dtype]](kernel.unsafe_ptr()),
            rows=input.dim_size(0),
            n=input.dim_size(1),
            k=kernel.dim_size(0),
            shift=0,
            flip=False,
        )
'''


def median_ms(fn, sync, calls=30) -> float:
    fn()
    sync()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[calls // 2] * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--log2n", type=int, default=22)
    args = parser.parse_args(argv)
    package = Path(tempfile.mkdtemp()) / "op"
    shutil.copytree(OP_PACKAGE, package)
    with open(package / "conv1d.mojo", "a") as f:
        f.write(INPLACE_OP)

    max_device = Accelerator() if args.device == "cuda" else CPU()
    ref = DeviceRef.from_device(max_device)
    rows_n, k_dim = ["rows", "n"], ["k"]
    with Graph("conv1d_inplace", input_types=[BufferType(DType.float32, rows_n, ref), TensorType(DType.float32, rows_n, ref),
                                               TensorType(DType.float32, k_dim, ref)], custom_extensions=[package]) as graph:
        out, x, w = graph.inputs
        ops.inplace_custom("conv1d_forward_inplace", ref, [out, x, w])
        graph.output()
    inplace = InferenceSession(devices=[max_device]).load(graph)

    library = CustomOpLibrary(package)
    copying = MaxOp(library.conv1d_forward, "conv1d_copying", library,
                    input_types=[TensorType(DType.float32, rows_n, ref), TensorType(DType.float32, k_dim, ref)],
                    output_types=[TensorType(DType.float32, rows_n, ref)])
    copying_model = library._session.load(copying.graph(copying.input_types, copying.output_types))

    def sync():
        max_device.synchronize()
        if args.device == "cuda":
            torch.cuda.synchronize()

    n = 1 << args.log2n
    x_t = torch.randn(1, n, device=args.device)
    print(f"device {args.device}, N = 2^{args.log2n} float32, median of 30 calls of model.execute")
    for k in (1, 4, 64):
        w_t = torch.randn(k, device=args.device)
        expected = torch.nn.functional.conv1d(torch.nn.functional.pad(x_t.double().view(1, 1, -1), (0, k - 1)),
                                              w_t.double().view(1, 1, -1)).view(1, -1)
        for name, model in (("mo.custom + store (CustomOpLibrary)", copying_model), ("inplace_custom", inplace)):
            out_t = torch.full_like(x_t, float("nan"))
            buffers = [Buffer.from_dlpack(t) for t in (out_t, x_t, w_t)]
            ms = median_ms(lambda: model.execute(*buffers), sync)
            error = (out_t.double() - expected).abs().max().item()
            print(f"K = {k:3}  {name:38s} {ms:8.2f} ms   max error {error:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
