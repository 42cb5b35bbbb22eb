"""The shared-memory tiled GPU kernel, correlate_gpu_kernel, for kernels longer
than the window kernel takes: shared-memory tiles, register-blocked outputs,
the next tile in flight. It computes the sum given in common.mojo's docstring;
gpu.mojo's correlate_gpu launches it.
"""

from std.math import ceildiv, isfinite
from std.sys import size_of
from max.gpu.globals import MAX_THREADS_PER_BLOCK_METADATA
from std.utils import StaticTuple
from max.gpu import barrier, block_idx, grid_dim, thread_idx
from max.gpu.memory import AddressSpace
from std.memory import stack_allocation

from .common import (
    FLIP,
    HAS_BIAS,
    LOAD_VECTORS,
    SILU,
    STORE_VECTORS,
    THREADS,
    accum_type,
    channel_of,
    finish,
    load_vector,
    redo_non_finite,
    split_tile,
    store_vector,
    tap_value,
)


comptime OUTPUTS_PER_THREAD = 16  # consecutive outputs each thread accumulates in registers
comptime TILE = THREADS * OUTPUTS_PER_THREAD  # outputs per block and step
comptime K_CHUNK = 256  # kernel taps staged in shared memory at a time
comptime BLOCKS_PER_SM = 8  # blocks launched per multiprocessor (as many as fit); each loops over tiles


@always_inline
def swizzle(i: Int) -> Int:
    """Shared-memory slot of staged element i: 4 unused slots after every 32.

    Thread t reads the R elements from R * t on, 16 bytes per load; without
    the gaps, the threads of a quarter warp would hit the same banks.
    Runs of 4 that start at a multiple of 4 stay contiguous and 16-byte aligned.
    """
    return i + (i >> 5) * 4


# Input elements staged per step, at most, plus one spare step of R that the
# inner loop may read ahead (and never use).
comptime STAGED = TILE + K_CHUNK + OUTPUTS_PER_THREAD


@always_inline
def load_step[
    dtype: DType, main_width: Int, halo_width: Int
](
    mut main: SIMD[accum_type[dtype], main_width],
    mut halo: SIMD[accum_type[dtype], halo_width],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    tile: Int,
    chunk: Int,
    tiles_per_row: Int,
    total_tiles: Int,
    n: Int,
    k: Int,
    shift: Int,
    vector_io: Bool,
):
    """Issues this thread's global loads of one step's input span into main
    (its vectors of the tile) and halo (its vectors past the tile)."""
    comptime VW = 16 // size_of[dtype]()
    var tid = Int(thread_idx.x)
    var row_col = split_tile(tile, tiles_per_row, total_tiles)
    var x_row = input.unsafe_offset(row_col[0] * n)
    var src0 = row_col[1] * TILE + chunk * K_CHUNK - shift
    var halo_len = ceildiv(min(K_CHUNK, k - chunk * K_CHUNK), OUTPUTS_PER_THREAD) * OUTPUTS_PER_THREAD
    comptime acc = accum_type[dtype]
    if vector_io and src0 >= 0 and src0 + TILE + halo_len <= n:
        # The whole span lies inside the row (most steps): no per-vector checks.
        comptime for m in range(main_width // VW):
            var v = tid + m * THREADS
            main = main.insert[offset = m * VW](x_row.unsafe_load[width=VW, alignment=16](src0 + v * VW).cast[acc]())
        comptime for h in range(halo_width // VW):
            var v = tid + h * THREADS
            if v * VW < halo_len:
                halo = halo.insert[offset = h * VW](
                    x_row.unsafe_load[width=VW, alignment=16](src0 + TILE + v * VW).cast[acc]()
                )
        return
    comptime for m in range(main_width // VW):
        var v = tid + m * THREADS
        main = main.insert[offset = m * VW](load_vector[dtype, VW](x_row, src0 + v * VW, n, vector_io))
    comptime for h in range(halo_width // VW):
        var v = tid + h * THREADS
        if v * VW < halo_len:
            halo = halo.insert[offset = h * VW](load_vector[dtype, VW](x_row, src0 + TILE + v * VW, n, vector_io))


# Launch bounds: THREADS per block and BLOCKS_PER_SM blocks resident per
# multiprocessor, so ptxas keeps to 65536 / (8 * 64) = 128 registers a thread;
# it then allocates fewer registers in float32 than without the bound, and the
# kernel measured faster on an H200. float64 sums take two registers each:
# half as many blocks, so that nothing spills.
@__llvm_metadata(
    MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(THREADS)),
    `nvvm.minctasm`=SIMDLength(BLOCKS_PER_SM if size_of[dtype]() < 8 else BLOCKS_PER_SM // 2),
)
def correlate_gpu_kernel[
    dtype: DType
](
    output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    bias: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int64,
    n: Int64,
    n_out: Int64,
    k: Int64,
    taps: Int64,
    lead: Int64,
    shift: Int64,
    channels: Int64,
    flags: Int32,
):
    """Each block loops over tiles of TILE consecutive outputs (tile b, b + grid,
    ... over all rows), one step per tile and chunk of up to K_CHUNK taps.

    A step stages the input span it needs (TILE plus a halo of the chunk's
    taps) in shared memory, zero-filled past the row's ends, so the inner loop
    has no bounds checks. The global loads for the next step are issued into
    registers before the current step's arithmetic, so they are in flight
    while it runs, and stored after it into the second of two buffers: one
    barrier per step. Each thread keeps its outputs in registers across chunks.
    With 16-byte aligned rows and span (flags), global memory is read and
    written 16 bytes per access. Row r uses filter r % channels, read as in
    window.mojo (lead zeros first); with more than one filter every step
    stages its tile's taps, and each row's n_out outputs get `finish`.
    """
    comptime acc = accum_type[dtype]
    comptime R = OUTPUTS_PER_THREAD
    comptime VW = 16 // size_of[dtype]()  # elements per 16-byte global access
    comptime MAIN = TILE // (VW * THREADS)  # vectors of the tile each thread loads
    comptime HALO = ceildiv(K_CHUNK, VW * THREADS)  # halo vectors per thread, at most
    comptime XS = swizzle(STAGED)  # one buffer of staged inputs
    comptime WS = K_CHUNK + R  # one buffer of taps
    # Two buffers of each: a step's loads go into one while the other is read.
    var xs = stack_allocation[
        2 * XS, Scalar[acc], alignment=64, address_space = AddressSpace.SHARED
    ]()
    var ws = stack_allocation[
        2 * WS, Scalar[acc], alignment=64, address_space = AddressSpace.SHARED
    ]()
    var tid = Int(thread_idx.x)
    var N = Int(n)
    var NO = Int(n_out)
    var K = Int(k)
    var C = Int(channels)
    var f = Int(flags)
    var io = f & LOAD_VECTORS != 0
    var store_io = f & STORE_VECTORS != 0
    var flip = f & FLIP != 0
    var has_bias = f & HAS_BIAS != 0
    var silu = f & SILU != 0
    var per_row = C > 1  # the taps change with the row: staged every step
    var KT = Int(taps)  # the filter's own taps (k counts the lead zeros too)
    var base = tid * R
    var tiles_per_row = ceildiv(NO, TILE)
    var total_tiles = Int(rows) * tiles_per_row
    var chunks = ceildiv(K, K_CHUNK)

    # The loads of one step, held in registers until they go to shared memory.
    var main = SIMD[acc, MAIN * VW](0)
    var halo = SIMD[acc, HALO * VW](0)

    @always_inline
    @__parameter
    def stage(buffer: Int, tile: Int, chunk: Int, taps_too: Bool):
        """Stores the step's loads (and, when taps_too, its tile's chunk of
        taps, zero-padded to a multiple of R) into the given buffer."""
        var k0 = chunk * K_CHUNK
        var kc = min(K_CHUNK, K - k0)
        var kc_padded = ceildiv(kc, R) * R
        var x_at = xs.unsafe_offset(buffer * XS)
        comptime for m in range(MAIN):
            var v = tid + m * THREADS
            x_at.unsafe_store[alignment=16](swizzle(v * VW), main.slice[VW, offset = m * VW]())
        comptime for h in range(HALO):
            var v = tid + h * THREADS
            if v * VW < kc_padded:
                x_at.unsafe_store[alignment=16](swizzle(TILE + v * VW), halo.slice[VW, offset = h * VW]())
        if taps_too:
            var row = split_tile(tile, tiles_per_row, total_tiles)[0]
            var w_row = kernel.unsafe_offset(channel_of(row, C) * KT)
            var t = tid
            while t < kc_padded:
                var tap = Scalar[acc](0)
                if t < kc:
                    tap = tap_value(w_row, k0 + t, KT, Int(lead), flip)
                ws.unsafe_store(buffer * WS + t, tap)
                t += THREADS

    var tile = Int(block_idx.x)
    var chunk = 0
    if tile >= total_tiles:
        return
    load_step[dtype](main, halo, input, tile, chunk, tiles_per_row, total_tiles, N, K, Int(shift), io)
    stage(0, tile, 0, True)
    barrier()
    var buffer = 0
    var sums = SIMD[acc, R](0)
    while True:
        var next_tile = tile
        var next_chunk = chunk + 1
        if next_chunk == chunks:
            next_chunk = 0
            next_tile += Int(grid_dim.x)
        var more = next_tile < total_tiles
        if more:
            load_step[dtype](main, halo, input, next_tile, next_chunk, tiles_per_row, total_tiles, N, K, Int(shift), io)

        # Slide a window of 2R inputs over the staged span: each step of R
        # taps reads R new inputs and R taps, and does R * R multiply-adds.
        # The next step's shared-memory reads are issued before this step's
        # arithmetic, so their latency hides behind it. With a single chunk
        # the taps are the same at every step: staged once, in buffer 0.
        var kc_padded = ceildiv(min(K_CHUNK, K - chunk * K_CHUNK), R) * R
        var x_at = xs.unsafe_offset(buffer * XS)
        var w_at = ws.unsafe_offset(buffer * WS if chunks > 1 or per_row else 0)
        var window = x_at.unsafe_load[width=R, alignment=16](swizzle(base))
        var ahead = x_at.unsafe_load[width=R, alignment=16](swizzle(base + R))
        var taps = w_at.unsafe_load[width=R, alignment=16](0)
        var j0 = 0
        while j0 < kc_padded:
            var next_ahead = x_at.unsafe_load[width=R, alignment=16](swizzle(base + 2 * R + j0))
            var next_taps = w_at.unsafe_load[width=R, alignment=16](j0 + R)
            var full = window.join(ahead)
            comptime for jj in range(R):
                comptime for r in range(R):
                    sums[r] += full[r + jj] * taps[jj]
            window = ahead
            ahead = next_ahead
            taps = next_taps
            j0 += R

        if chunk == chunks - 1:
            # Each thread writes its R consecutive outputs, 16 bytes per store.
            var row_col = split_tile(tile, tiles_per_row, total_tiles)
            var i0 = row_col[1] * TILE + base
            var out_row = output.unsafe_offset(row_col[0] * NO)
            var row_bias = Scalar[acc](0)
            if has_bias:
                row_bias = bias.unsafe_load(channel_of(row_col[0], C)).cast[acc]()
            var values = finish[acc, R](sums, SIMD[acc, R](row_bias), has_bias, silu).cast[dtype]()
            if store_io and row_col[1] * TILE + TILE <= NO:
                comptime for m in range(R // VW):
                    out_row.unsafe_store[alignment=16](i0 + m * VW, values.slice[VW, offset = m * VW]())
            else:
                comptime for m in range(R // VW):
                    store_vector(out_row, i0 + m * VW, NO, store_io, values.slice[VW, offset = m * VW]())
            if not isfinite(sums.reduce_add()):
                var x_row = input.unsafe_offset(row_col[0] * N)
                var w_row = kernel.unsafe_offset(channel_of(row_col[0], C) * KT)
                redo_non_finite[dtype](out_row, i0, R, NO, x_row, N, w_row, KT, Int(lead), Int(shift), flip, row_bias, has_bias, silu)
            sums = SIMD[acc, R](0)
        if not more:
            break
        # The other buffer was last read in the previous step, which every
        # thread finished before the barrier below was passed: one barrier
        # per step.
        buffer = 1 - buffer
        stage(buffer, next_tile, next_chunk, chunks > 1 or per_row)
        barrier()
        tile = next_tile
        chunk = next_chunk
