"""The op's GPU kernels as a Python extension module: _gpu.py calls it with
the tensors' addresses and sizes, and the kernels are launched on the stream
PyTorch is using on the tensors' device, so a call is ordered, allocated and
captured into CUDA graphs like any torch op. It checks nothing; ops.py does.

build.py compiles it for one GPU architecture (`--target-accelerator`), once.
"""

from std.memory import OpaquePointer
from std.os import abort
from std.python import PythonObject
from std.python.bindings import PythonModuleBuilder
from max.gpu.host import DeviceContext
from max.gpu.host.device_context import _DeviceContextCpp, _DeviceContextPtr

from kernels.common import accum_type
from kernels.gpu import (
    correlate_gpu,
    grad_kernel_channels_gpu,
    grad_kernel_channels_scratch,
    grad_kernel_gpu,
    grad_kernel_scratch,
)

# The dtype codes _gpu.py passes, in this order (as in cpu_ops.mojo).
comptime DTYPES = [DType.float16, DType.bfloat16, DType.float32, DType.float64]


@export
def PyInit_gpu_ops() abi("C") -> PythonObject:
    try:
        var module = PythonModuleBuilder("gpu_ops")
        module.def_function[context](
            "context",
            docstring="context(device_index): the address of a DeviceContext for that GPU, kept for the process",
        )
        module.def_function[correlate](
            "correlate",
            docstring=(
                "correlate(context, stream, dtype_code, out, input, kernel, rows, n, k, shift, flip,"
                " channels, n_out, bias, silu): kernels/gpu.mojo's correlate_gpu on that stream"
            ),
        )
        module.def_function[scratch](
            "grad_kernel_scratch",
            docstring="grad_kernel_scratch(rows, n, k): elements of float32 (float64 for float64) grad_kernel needs",
        )
        module.def_function[grad_kernel](
            "grad_kernel",
            docstring=(
                "grad_kernel(context, stream, dtype_code, grad_kernel, grad_output, input, scratch, rows, n, k):"
                " kernels/gpu.mojo's grad_kernel_gpu on that stream"
            ),
        )
        module.def_function[channels_scratch](
            "grad_kernel_channels_scratch",
            docstring="grad_kernel_channels_scratch(rows, n_out, k): elements of float32 (float64 for float64) grad_kernel_channels needs",
        )
        module.def_function[grad_kernel_channels](
            "grad_kernel_channels",
            docstring=(
                "grad_kernel_channels(context, stream, dtype_code, grad_kernel, grad_output, input, scratch,"
                " batch, channels, n, n_out, k, shift): kernels/gpu.mojo's grad_kernel_channels_gpu on that stream"
            ),
        )
        return module.finalize()
    except e:
        abort(String("gpu_ops: could not create the module: ", e))


def context(device_index: PythonObject) raises -> PythonObject:
    # Made once per device and never released: a context made per call would
    # create and destroy a stream each time.
    var ctx = DeviceContext(Int(py=device_index))
    ctx._retain()
    return PythonObject(Int(ctx._handle.value()))


@always_inline
def borrowed_context(address: PythonObject) raises -> DeviceContext:
    """A DeviceContext that wraps `context`'s without owning it."""
    var raw = Pointer[_DeviceContextCpp, MutUntrackedOrigin](unsafe_from_address=Int(py=address))
    return DeviceContext(_DeviceContextPtr[mut=True](raw))


@always_inline
def address[dtype: DType](value: PythonObject) raises -> Pointer[Scalar[dtype], MutAnyOrigin]:
    return Pointer[Scalar[dtype], MutAnyOrigin](unsafe_from_address=Int(py=value))


def correlate(
    context: PythonObject,
    stream: PythonObject,
    dtype_code: PythonObject,
    output: PythonObject,
    input: PythonObject,
    kernel: PythonObject,
    rows: PythonObject,
    n: PythonObject,
    k: PythonObject,
    shift: PythonObject,
    flip: PythonObject,
    channels: PythonObject,
    n_out: PythonObject,
    bias: PythonObject,
    silu: PythonObject,
) raises -> PythonObject:
    var ctx = borrowed_context(context)
    var on = ctx.create_external_stream(OpaquePointer[MutAnyOrigin](unsafe_from_address=Int(py=stream)))
    var code = Int(py=dtype_code)
    comptime for i in range(len(DTYPES)):
        comptime dtype = DTYPES[i]
        if code == i:
            correlate_gpu[dtype](
                ctx, on, address[dtype](output), address[dtype](input), address[dtype](kernel),
                Int(py=rows), Int(py=n), Int(py=k), Int(py=shift), Int(py=flip) != 0,
                channels=Int(py=channels), n_out=Int(py=n_out), bias=Int(py=bias), silu=Int(py=silu) != 0,
            )
            return PythonObject(None)
    raise Error("gpu_ops.correlate: unknown dtype code " + String(code))


def scratch(rows: PythonObject, n: PythonObject, k: PythonObject) raises -> PythonObject:
    return PythonObject(grad_kernel_scratch(Int(py=rows), Int(py=n), Int(py=k)))


def grad_kernel(
    context: PythonObject,
    stream: PythonObject,
    dtype_code: PythonObject,
    grad_kernel: PythonObject,
    grad_output: PythonObject,
    input: PythonObject,
    partials: PythonObject,
    rows: PythonObject,
    n: PythonObject,
    k: PythonObject,
) raises -> PythonObject:
    var ctx = borrowed_context(context)
    var on = ctx.create_external_stream(OpaquePointer[MutAnyOrigin](unsafe_from_address=Int(py=stream)))
    var code = Int(py=dtype_code)
    comptime for i in range(len(DTYPES)):
        comptime dtype = DTYPES[i]
        if code == i:
            grad_kernel_gpu[dtype](
                ctx, on, address[dtype](grad_kernel), address[dtype](grad_output), address[dtype](input),
                address[accum_type[dtype]](partials), Int(py=rows), Int(py=n), Int(py=k),
            )
            return PythonObject(None)
    raise Error("gpu_ops.grad_kernel: unknown dtype code " + String(code))


def channels_scratch(rows: PythonObject, n_out: PythonObject, k: PythonObject) raises -> PythonObject:
    return PythonObject(grad_kernel_channels_scratch(Int(py=rows), Int(py=n_out), Int(py=k)))


def grad_kernel_channels(
    context: PythonObject,
    stream: PythonObject,
    dtype_code: PythonObject,
    grad_kernel: PythonObject,
    grad_output: PythonObject,
    input: PythonObject,
    partials: PythonObject,
    batch: PythonObject,
    channels: PythonObject,
    n: PythonObject,
    n_out: PythonObject,
    k: PythonObject,
    shift: PythonObject,
) raises -> PythonObject:
    var ctx = borrowed_context(context)
    var on = ctx.create_external_stream(OpaquePointer[MutAnyOrigin](unsafe_from_address=Int(py=stream)))
    var code = Int(py=dtype_code)
    comptime for i in range(len(DTYPES)):
        comptime dtype = DTYPES[i]
        if code == i:
            grad_kernel_channels_gpu[dtype](
                ctx, on, address[dtype](grad_kernel), address[dtype](grad_output), address[dtype](input),
                address[accum_type[dtype]](partials), Int(py=batch), Int(py=channels), Int(py=n), Int(py=n_out),
                Int(py=k), Int(py=shift),
            )
            return PythonObject(None)
    raise Error("gpu_ops.grad_kernel_channels: unknown dtype code " + String(code))
