"""The CPU side of the op package, instantiated the way the MAX ops and the
cpu_ops extension use it, for each dtype the PyTorch op accepts, so that
`mojo build --target-triple T --emit asm` compiles it for T (arm64 macOS,
Arm Linux) on this machine. tests/test_cpu_targets.py builds it; nothing
here is meant to be executed."""

from max.gpu.host import DeviceContext
from kernels.conv1d import correlate
from kernels.cpu import grad_kernel_cpu


def instantiate[dtype: DType](ctx: DeviceContext) raises:
    comptime P = Pointer[Scalar[dtype], MutAnyOrigin]
    # Never dereferenced: the program is compiled, not run.
    var out = P(unsafe_from_address=16)
    var x = P(unsafe_from_address=16)
    var taps = P(unsafe_from_address=16)
    # The ops' CPU branch: any K (conv1d_forward, conv1d_grad_input) and a
    # K known at compile time (the puzzle's conv1d).
    correlate["cpu", dtype](ctx, out, x, taps, 1, 16, 4, 0, False)
    correlate["cpu", dtype, known_k=4](ctx, out, x, taps, 1, 16, 4, 0, False)
    grad_kernel_cpu[dtype](taps, x, out, 1, 16, 4)


def main() raises:
    var ctx = DeviceContext(api="cpu")
    instantiate[DType.float32](ctx)
    instantiate[DType.float16](ctx)
    instantiate[DType.bfloat16](ctx)
    instantiate[DType.float64](ctx)
