"""The host-side GPU entry points of the conv1d ops, shared by every op.

correlate_gpu computes the sum given in common.mojo's docstring. It first
offers the work to tensor_cores.mojo (float32, 33 to 64 taps, Hopper GPUs);
else it launches one of two GPU kernels: window.mojo's register windows passed
between lanes, for kernels of up to window_k_limit() taps, or tiled.mojo's
shared-memory tiles for longer ones. grad_kernel_gpu launches grad_kernel.mojo's
two-pass reduction for the gradient with respect to the kernel. The CPU
versions are in cpu.mojo.
"""

from std.math import ceildiv
from std.sys import size_of
from max.gpu.host import DeviceAttribute, DeviceContext, DeviceStream

from .common import THREADS, accum_type
from .grad_kernel import GRAD_BLOCKS, GRAD_TAPS, GRAD_TILE, grad_kernel_partials_kernel, grad_kernel_reduce_kernel
from .tensor_cores import TC_MAX_K, TC_MIN_K, correlate_tensor_cores
from .tiled import BLOCKS_PER_SM, TILE, correlate_gpu_kernel
from .window import (
    MAX_BLOCKS,
    SMALL_GROUPS,
    SMALL_K,
    SMALL_STEP,
    SMALL_TAPS,
    SMALL_THREADS,
    WINDOW_K,
    correlate_window_gpu_kernel,
    window_k_limit,
    window_outputs,
)


def correlate_gpu[
    dtype: DType, known_k: Int = 0
](
    ctx: DeviceContext,
    stream: DeviceStream,
    output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int,
    n: Int,
    k: Int,
    shift: Int,
    flip: Bool,
    blocks_per_sm: Int = BLOCKS_PER_SM,
    window_k: Int = -1,
    tensor_cores: Bool = True,
) raises:
    """Launches the tensor-core kernel where it applies (float32 on Hopper,
    see tensor_cores.mojo); else the window kernel for k <= window_k (one
    vector of outputs per group up to SMALL_K); else correlate_gpu_kernel
    with blocks_per_sm blocks per multiprocessor (or one per tile when there
    are fewer tiles). window_k is window_k_limit[dtype]() unless given;
    tuning sets it (at most WINDOW_K), and tensor_cores, to compare the kernels.

    known_k is k when the caller knows it at compile time (the puzzle's op),
    else 0: then only the kernels that can run for that k are compiled, which
    saves most of the op's compile time."""
    if known_k != 0 and k != known_k:
        raise Error("correlate_gpu: compiled for ", known_k, " taps, called with ", k)
    if rows == 0 or n == 0:
        return
    # 16-byte accesses need 16-byte aligned rows, and spans that start on a
    # multiple of the vector width (tile, chunk and thread starts are).
    comptime VW = 16 // size_of[dtype]()
    var aligned = Int(output) % 16 == 0 and Int(input) % 16 == 0
    var vector_io = aligned and (rows == 1 or n % VW == 0) and shift % VW == 0
    comptime if known_k == 0 or (known_k >= TC_MIN_K and known_k <= TC_MAX_K):
        if tensor_cores and correlate_tensor_cores[dtype](ctx, stream, output, input, kernel, rows, n, k, shift, flip, vector_io):
            return
    var args = (Int64(rows), Int64(n), Int64(k), Int64(shift), Int32(1 if flip else 0), Int32(1 if vector_io else 0))
    comptime if known_k == 0 or known_k <= SMALL_K:
        if k <= SMALL_K:
            comptime small = correlate_window_gpu_kernel[dtype, VW, min(VW, SMALL_STEP), SMALL_GROUPS, SMALL_TAPS, SMALL_THREADS]
            var tiles = rows * ceildiv(n, SMALL_GROUPS * SMALL_THREADS * VW)
            stream.enqueue_function(
                ctx.compile_function[small](),
                output, input, kernel, args[0], args[1], args[2], args[3], args[4], args[5],
                grid_dim=min(tiles, MAX_BLOCKS),
                block_dim=SMALL_THREADS,
            )
            return
    comptime if known_k == 0 or (known_k > SMALL_K and known_k <= WINDOW_K):
        if k <= min(window_k if window_k >= 0 else window_k_limit[dtype](), WINDOW_K):
            comptime R = window_outputs[dtype]()
            comptime window = correlate_window_gpu_kernel[dtype, R, R, 1, WINDOW_K, THREADS]
            var tiles = rows * ceildiv(n, THREADS * R)
            stream.enqueue_function(
                ctx.compile_function[window](),
                output, input, kernel, args[0], args[1], args[2], args[3], args[4], args[5],
                grid_dim=min(tiles, MAX_BLOCKS),
                block_dim=THREADS,
            )
            return
    comptime if known_k == 0 or known_k > SMALL_K:
        var tiles = rows * ceildiv(n, TILE)
        var sms = ctx.get_attribute(DeviceAttribute.MULTIPROCESSOR_COUNT)
        comptime tiled = correlate_gpu_kernel[dtype]
        stream.enqueue_function(
            ctx.compile_function[tiled](),
            output, input, kernel, args[0], args[1], args[2], args[3], args[4], args[5],
            grid_dim=min(tiles, sms * blocks_per_sm),
            block_dim=THREADS,
        )


def grad_kernel_groups(rows: Int, n: Int, k: Int) -> Int:
    """Blocks along the positions in grad_kernel_gpu's first pass."""
    var tap_blocks = ceildiv(k, GRAD_TAPS)
    var total_tiles = ceildiv(n, GRAD_TILE) * rows
    return max(1, min(total_tiles, GRAD_BLOCKS // tap_blocks))


def grad_kernel_scratch(rows: Int, n: Int, k: Int) -> Int:
    """Elements (of accum_type) of the scratch buffer grad_kernel_gpu needs:
    one partial sum per tap and first-pass block."""
    return grad_kernel_groups(rows, n, k) * k


def grad_kernel_gpu[
    dtype: DType
](
    ctx: DeviceContext,
    stream: DeviceStream,
    grad_kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    grad_output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    partials: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin],
    rows: Int,
    n: Int,
    k: Int,
) raises:
    """Computes grad_kernel[j] = sum over rows r and i < n - j of
    grad_output[r, i] * input[r, i + j], in two launches on `stream`.
    `partials` holds grad_kernel_scratch(rows, n, k) elements; the caller
    allocates it in the stream's order, so it lives until both launches ran."""
    var tap_blocks = ceildiv(k, GRAD_TAPS)
    var groups = grad_kernel_groups(rows, n, k)
    comptime first = grad_kernel_partials_kernel[dtype]
    stream.enqueue_function(
        ctx.compile_function[first](),
        partials,
        grad_output,
        input,
        Int64(rows),
        Int64(n),
        Int64(k),
        Int64(groups),
        grid_dim=(groups, tap_blocks),
        block_dim=GRAD_TAPS,
    )
    comptime second = grad_kernel_reduce_kernel[dtype]
    stream.enqueue_function(
        ctx.compile_function[second](),
        grad_kernel,
        partials,
        Int64(k),
        Int64(groups),
        grid_dim=k,
        block_dim=THREADS,
    )
