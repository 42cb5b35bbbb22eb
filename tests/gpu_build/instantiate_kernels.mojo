"""Instantiates every GPU kernel of the op package the way the ops do, for
each dtype the PyTorch op accepts, so that `mojo build --target-accelerator X
--emit asm` compiles all of them for X on a machine without a GPU.
tests/test_gpu_targets.py runs it; nothing here is meant to be executed."""

from max.gpu.host import DeviceContext
from kernels.common import accum_type
from kernels.gpu import correlate_gpu, grad_kernel_channels_gpu, grad_kernel_channels_scratch, grad_kernel_gpu, grad_kernel_scratch


def instantiate[dtype: DType](ctx: DeviceContext) raises:
    comptime P = Pointer[Scalar[dtype], MutAnyOrigin]
    var a = ctx.enqueue_create_buffer[dtype](16)
    var b = ctx.enqueue_create_buffer[dtype](16)
    var w = ctx.enqueue_create_buffer[dtype](4)
    var out = rebind[P](a.unsafe_ptr())
    var x = rebind[P](b.unsafe_ptr())
    var taps = rebind[P](w.unsafe_ptr())
    var partials = ctx.enqueue_create_buffer[accum_type[dtype]](grad_kernel_scratch(1, 16, 4))
    correlate_gpu[dtype](ctx, ctx.stream(), out, x, taps, 1, 16, 4, 0, False)
    grad_kernel_gpu[dtype](ctx, ctx.stream(), taps, x, out, rebind[Pointer[Scalar[accum_type[dtype]], MutAnyOrigin]](partials.unsafe_ptr()), 1, 16, 4)
    var channel_partials = ctx.enqueue_create_buffer[accum_type[dtype]](grad_kernel_channels_scratch(1, 16, 4))
    grad_kernel_channels_gpu[dtype](
        ctx, ctx.stream(), taps, x, out, rebind[Pointer[Scalar[accum_type[dtype]], MutAnyOrigin]](channel_partials.unsafe_ptr()),
        1, 1, 16, 16, 4, 3,
    )


def main() raises:
    var ctx = DeviceContext()
    instantiate[DType.float32](ctx)
    instantiate[DType.float16](ctx)
    instantiate[DType.bfloat16](ctx)
    instantiate[DType.float64](ctx)
    ctx.synchronize()
