"""Instantiates correlate_gpu with the number of taps known at compile time,
as the puzzle's op does, for 4, 15 and 40 taps in float32.
tests/test_gpu_targets.py counts which kernels that compiles; nothing here is
meant to be executed."""

from max.gpu.host import DeviceContext
from kernels.gpu import correlate_gpu


def main() raises:
    var ctx = DeviceContext()
    comptime P = Pointer[Scalar[DType.float32], MutAnyOrigin]
    var buffer = ctx.enqueue_create_buffer[DType.float32](64)
    var p = rebind[P](buffer.unsafe_ptr())
    correlate_gpu[DType.float32, known_k=4](ctx, ctx.stream(), p, p, p, 1, 64, 4, 0, False)
    correlate_gpu[DType.float32, known_k=15](ctx, ctx.stream(), p, p, p, 1, 64, 15, 0, False)
    correlate_gpu[DType.float32, known_k=40](ctx, ctx.stream(), p, p, p, 1, 64, 40, 0, False)
    ctx.synchronize()
