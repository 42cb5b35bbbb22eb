"""The GPU kernels of the gradient with respect to the kernel, a two-pass
deterministic reduction: grad_kernel_partials_kernel sums each tap over groups
of tiles into partial sums, and grad_kernel_reduce_kernel adds each tap's
partial sums in a fixed order, so the result does not depend on scheduling.
gpu.mojo's grad_kernel_gpu launches both.
"""

from std.math import ceildiv
from max.gpu import barrier, block_idx, thread_idx
from max.gpu.memory import AddressSpace
from std.memory import stack_allocation

from .common import THREADS, accum_type


comptime GRAD_TILE = 1024  # positions i one block reduces per step
comptime GRAD_TAPS = 256  # taps j per block: one per thread
comptime GRAD_BLOCKS = 8192  # about this many blocks in the first pass


def grad_kernel_partials_kernel[
    dtype: DType
](
    partials: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin],
    grad_output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int64,
    n: Int64,
    k: Int64,
    groups: Int64,
):
    """Thread t of block (g, b) sums grad_output[r, i] * input[r, i + j] for
    tap j = b * GRAD_TAPS + t over the tiles g, g + groups, ... of all rows,
    and writes that partial sum to partials[g, j]."""
    comptime acc = accum_type[dtype]
    var gs = stack_allocation[
        GRAD_TILE, Scalar[acc], address_space = AddressSpace.SHARED
    ]()
    var xs = stack_allocation[
        GRAD_TILE + GRAD_TAPS, Scalar[acc], address_space = AddressSpace.SHARED
    ]()
    var tid = Int(thread_idx.x)
    var N = Int(n)
    var j0 = Int(block_idx.y) * GRAD_TAPS
    var tiles_per_row = ceildiv(N, GRAD_TILE)
    var total_tiles = tiles_per_row * Int(rows)
    var sum = Scalar[acc](0)
    var tile = Int(block_idx.x)
    while tile < total_tiles:
        var row = tile // tiles_per_row
        var i0 = (tile % tiles_per_row) * GRAD_TILE
        var g_row = grad_output.unsafe_offset(row * N)
        var x_row = input.unsafe_offset(row * N)
        barrier()  # the previous tile's readers are done
        var t = tid
        while t < GRAD_TILE + GRAD_TAPS:
            if t < GRAD_TILE:
                var gv = Scalar[acc](0)
                if i0 + t < N:
                    gv = g_row.unsafe_load(i0 + t).cast[acc]()
                gs.unsafe_store(t, gv)
            var src = i0 + j0 + t
            var xv = Scalar[acc](0)
            if src < N:
                xv = x_row.unsafe_load(src).cast[acc]()
            xs.unsafe_store(t, xv)
            t += GRAD_TAPS
        barrier()
        for u in range(GRAD_TILE):
            sum += gs.unsafe_load(u) * xs.unsafe_load(u + tid)
        tile += Int(groups)
    var j = j0 + tid
    if j < Int(k):
        partials.unsafe_store(Int(block_idx.x) * Int(k) + j, sum)


def grad_kernel_reduce_kernel[
    dtype: DType
](
    grad_kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    partials: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin],
    k: Int64,
    groups: Int64,
):
    """Block j adds the `groups` partial sums of tap j in a fixed order."""
    comptime acc = accum_type[dtype]
    var part = stack_allocation[
        THREADS, Scalar[acc], address_space = AddressSpace.SHARED
    ]()
    var tid = Int(thread_idx.x)
    var j = Int(block_idx.x)
    var sum = Scalar[acc](0)
    var g = tid
    while g < Int(groups):
        sum += partials.unsafe_load(g * Int(k) + j)
        g += THREADS
    part.unsafe_store(tid, sum)
    barrier()
    var stride = THREADS // 2
    while stride > 0:
        if tid < stride:
            part.unsafe_store(tid, part.unsafe_load(tid) + part.unsafe_load(tid + stride))
        barrier()
        stride //= 2
    if tid == 0:
        grad_kernel.unsafe_store(j, part.unsafe_load(0).cast[dtype]())
