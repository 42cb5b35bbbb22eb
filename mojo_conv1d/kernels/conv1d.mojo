"""The conv1d custom ops that MAX graphs and PyTorch (through CustomOpLibrary) call.

`conv1d` is the puzzle's op: its sizes are compile-time parameters, passed from
Python as `ops.conv1d[{"input_size": N, "conv_size": K}]`. `conv1d_forward`
is the same sum over rows with its sizes read at run time, so one compiled
graph serves every length; the benchmark runs it as its MAX Graph column.
Both run gpu.mojo's correlate_gpu or cpu.mojo's correlate_cpu. (The
trainable PyTorch op calls those kernels from Python extension modules,
gpu_ops.mojo and cpu_ops.mojo, without MAX.)
"""

import extensibility
from extensibility import InputTensor, IOSpec, ManagedTensorSlice, OutputTensor
from extensibility.managed_tensor_slice import IO
from max.gpu.host import DeviceContext

from .cpu import correlate_cpu
from .gpu import correlate_gpu


comptime Ptr[dtype: DType] = Pointer[Scalar[dtype], MutAnyOrigin]

# A tensor the op writes in place: the buffer the caller passed as its output.
# (OutputTensor would make MAX allocate the result and copy it over afterwards.)
comptime MutableTensor = ManagedTensorSlice[IOSpec[True, IO.Input](), static_spec=_]


def correlate[
    target: StaticString, dtype: DType, known_k: Int = 0
](
    ctx: DeviceContext,
    output: Ptr[dtype],
    input: Ptr[dtype],
    kernel: Ptr[dtype],
    rows: Int,
    n: Int,
    k: Int,
    shift: Int,
    flip: Bool,
) raises:
    comptime if target == "gpu":
        correlate_gpu[dtype, known_k](ctx, ctx.stream(), output, input, kernel, rows, n, k, shift, flip)
    elif target == "cpu":
        correlate_cpu[dtype](output, input, kernel, rows, n, k, shift, flip)
    else:
        raise Error("conv1d: no kernel for target '" + target + "' (only cpu and gpu)")


# ANCHOR: conv1d_op
@extensibility.register("conv1d")
struct Conv1D:
    @staticmethod
    def execute[
        # "cpu" or "gpu": MAX picks it from the device of the tensors.
        target: StaticString,
        input_size: Int,
        conv_size: Int,
        dtype: DType = DType.float32,
    ](
        output: OutputTensor[dtype=dtype, rank=1, static_spec=_],
        input: InputTensor[dtype=dtype, rank=1, static_spec=_],
        kernel: InputTensor[dtype=dtype, rank=1, static_spec=_],
        ctx: DeviceContext,
    ) raises:
        if input.dim_size(0) != input_size or output.dim_size(0) != input_size:
            raise Error("conv1d: input and output must have input_size elements")
        if kernel.dim_size(0) != conv_size:
            raise Error("conv1d: kernel must have conv_size elements")
        # conv_size is known here at compile time: only its kernel is built.
        correlate[target, dtype, known_k=conv_size](
            ctx,
            rebind[Ptr[dtype]](output.unsafe_ptr()),
            rebind[Ptr[dtype]](input.unsafe_ptr()),
            rebind[Ptr[dtype]](kernel.unsafe_ptr()),
            rows=1,
            n=input_size,
            k=conv_size,
            shift=0,
            flip=False,
        )
# ANCHOR_END: conv1d_op


@extensibility.register("conv1d_forward")
struct Conv1DForward:
    """Forward: output[r, i] = sum over j with i + j < n of input[r, i + j] * kernel[j]."""

    @staticmethod
    def execute[
        target: StaticString, dtype: DType
    ](
        output: MutableTensor,
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
