"""The op's CPU kernels as a Python extension module, so that a CPU call runs
the kernel directly instead of through a MAX graph, whose `execute` adds a
per-call cost that dominates at small K (docs/call_cost.md). _cpu.py builds
it on first use (build.py) and calls it with the tensors' addresses; it
checks nothing, ops.py does.
"""

from std.os import abort
from std.python import PythonObject
from std.python.bindings import PythonModuleBuilder

from kernels.cpu import correlate_channels_last_cpu, correlate_cpu, grad_kernel_cpu

# The dtype codes ops.py passes, in this order.
comptime DTYPES = [DType.float16, DType.bfloat16, DType.float32, DType.float64]


@export
def PyInit_cpu_ops() abi("C") -> PythonObject:
    try:
        var module = PythonModuleBuilder("cpu_ops")
        module.def_function[correlate](
            "correlate",
            docstring=(
                "correlate(dtype_code, out, input, kernel, rows, n, k, shift, flip, channels, n_out, bias, silu):"
                " kernels/cpu.mojo's correlate_cpu"
            ),
        )
        module.def_function[correlate_channels_last](
            "correlate_channels_last",
            docstring=(
                "correlate_channels_last(dtype_code, out, input, kernel, batch, channels, n, n_out, k, shift, flip, bias, silu):"
                " kernels/cpu.mojo's correlate_channels_last_cpu"
            ),
        )
        module.def_function[grad_kernel](
            "grad_kernel",
            docstring=(
                "grad_kernel(dtype_code, grad_kernel, grad_output, input, rows, n, k, channels, n_out, shift):"
                " kernels/cpu.mojo's grad_kernel_cpu"
            ),
        )
        return module.finalize()
    except e:
        abort(String("cpu_ops: could not create the module: ", e))


@always_inline
def address[dtype: DType](value: PythonObject) raises -> Pointer[Scalar[dtype], MutAnyOrigin]:
    return Pointer[Scalar[dtype], MutAnyOrigin](unsafe_from_address=Int(py=value))


def correlate(
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
    var code = Int(py=dtype_code)
    comptime for i in range(len(DTYPES)):
        comptime dtype = DTYPES[i]
        if code == i:
            correlate_cpu[dtype](
                address[dtype](output), address[dtype](input), address[dtype](kernel),
                Int(py=rows), Int(py=n), Int(py=k), Int(py=shift), Int(py=flip) != 0,
                Int(py=channels), Int(py=n_out), Int(py=bias), Int(py=silu) != 0,
            )
            return PythonObject(None)
    raise Error("cpu_ops.correlate: unknown dtype code " + String(code))


def correlate_channels_last(
    dtype_code: PythonObject,
    output: PythonObject,
    input: PythonObject,
    kernel: PythonObject,
    batch: PythonObject,
    channels: PythonObject,
    n: PythonObject,
    n_out: PythonObject,
    k: PythonObject,
    shift: PythonObject,
    flip: PythonObject,
    bias: PythonObject,
    silu: PythonObject,
) raises -> PythonObject:
    var code = Int(py=dtype_code)
    comptime for i in range(len(DTYPES)):
        comptime dtype = DTYPES[i]
        if code == i:
            correlate_channels_last_cpu[dtype](
                address[dtype](output), address[dtype](input), address[dtype](kernel),
                Int(py=batch), Int(py=channels), Int(py=n), Int(py=n_out), Int(py=k), Int(py=shift), Int(py=flip) != 0,
                Int(py=bias), Int(py=silu) != 0,
            )
            return PythonObject(None)
    raise Error("cpu_ops.correlate_channels_last: unknown dtype code " + String(code))


def grad_kernel(
    dtype_code: PythonObject,
    grad_kernel: PythonObject,
    grad_output: PythonObject,
    input: PythonObject,
    rows: PythonObject,
    n: PythonObject,
    k: PythonObject,
    channels: PythonObject,
    n_out: PythonObject,
    shift: PythonObject,
) raises -> PythonObject:
    var code = Int(py=dtype_code)
    comptime for i in range(len(DTYPES)):
        comptime dtype = DTYPES[i]
        if code == i:
            grad_kernel_cpu[dtype](
                address[dtype](grad_kernel), address[dtype](grad_output), address[dtype](input),
                Int(py=rows), Int(py=n), Int(py=k), Int(py=channels), Int(py=n_out), Int(py=shift),
            )
            return PythonObject(None)
    raise Error("cpu_ops.grad_kernel: unknown dtype code " + String(code))
