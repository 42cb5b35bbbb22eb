"""Kernels of the conv1d ops, shared by every op: two GPU kernels (register
windows passed between lanes, for kernels of up to window_k_limit() taps;
shared-memory tiles for longer ones), their gradient-for-the-kernel reduction, and the CPU
versions. correlate_gpu first offers the work to tensor_cores.mojo (float32,
33 to 64 taps, Hopper GPUs).

Every op in this package computes, for each row r and each i in [0, n):

    out[r, i] = sum over j < k of  x[r, i + j - shift] * w'[j]

where x reads as zero outside [0, n) and w' is the kernel, reversed when `flip`.
The forward pass is shift = 0, flip = False; the gradient with respect to the
input is the same sum over grad_output with shift = k - 1, flip = True.
Sizes are runtime values, so one compiled kernel serves every length.
"""

from std.math import ceildiv
from std.sys import simd_width_of, size_of
from max.algorithm import sync_parallelize
from max.gpu.globals import MAX_THREADS_PER_BLOCK_METADATA
from std.utils import StaticTuple
from max.gpu import WARP_SIZE, barrier, block_idx, grid_dim, lane_id, thread_idx
from max.gpu.primitives.warp import shuffle_down
from max.gpu.host import DeviceAttribute, DeviceContext
from max.gpu.memory import AddressSpace
from std.memory import stack_allocation

from .tensor_cores import correlate_tensor_cores


# Sums run in float32, or float64 for float64 data.
comptime accum_type[dtype: DType] = DType.float64 if dtype == DType.float64 else DType.float32


# ===----------------------------------------------------------------------=== #
# GPU: shared-memory tiles, register-blocked outputs, the next tile in flight
# ===----------------------------------------------------------------------=== #

comptime THREADS = 64  # threads per block; a multiple of any warp/wavefront size
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


@always_inline
def split_tile(tile: Int, tiles_per_row: Int, total_tiles: Int) -> Tuple[Int, Int]:
    """(row, tile within the row) of a flat tile index. A 64-bit division is a
    call on the GPU, and a call waits for every load in flight (the next
    tile's too): divide in 32 bits where the count allows."""
    if total_tiles == tiles_per_row:
        return (0, tile)
    var row = Int(UInt32(tile) // UInt32(tiles_per_row)) if total_tiles <= Int(UInt32.MAX) else tile // tiles_per_row
    return (row, tile - row * tiles_per_row)


# Input elements staged per step, at most, plus one spare step of R that the
# inner loop may read ahead (and never use).
comptime STAGED = TILE + K_CHUNK + OUTPUTS_PER_THREAD


@always_inline
def load_vector[
    dtype: DType, width: Int
](
    row: Pointer[Scalar[dtype], MutAnyOrigin], start: Int, n: Int, vector_io: Bool
) -> SIMD[accum_type[dtype], width]:
    """The elements row[start : start + width] in the accumulator type, zeros outside [0, n).
    One load of up to 16 bytes when vector_io allows it and the vector lies
    inside (start is then a multiple of width)."""
    comptime acc = accum_type[dtype]
    if vector_io and start >= 0 and start + width <= n:
        return row.unsafe_load[width=width, alignment = min(16, width * size_of[dtype]())](start).cast[acc]()
    var values = SIMD[acc, width](0)
    comptime for e in range(width):
        if start + e >= 0 and start + e < n:
            values[e] = row.unsafe_load(start + e).cast[acc]()
    return values


@always_inline
def store_vector[
    dtype: DType, width: Int
](
    row: Pointer[Scalar[dtype], MutAnyOrigin], start: Int, n: Int, vector_io: Bool, values: SIMD[dtype, width]
):
    """Writes values to row[start : start + width], skipping what lies past n.
    One 16-byte store when vector_io allows it and the vector lies inside."""
    if vector_io and start + width <= n:
        row.unsafe_store[alignment=16](start, values)
        return
    comptime for e in range(width):
        if start + e < n:
            row.unsafe_store(start + e, values[e])


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
# it then takes 107 in float32 instead of 127, and the kernel is 1-3 % faster
# (logs/h200/2026-11-29_0235_tune_pair_form.log). float64 sums take two
# registers each: half as many blocks, so that nothing spills.
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
    rows: Int64,
    n: Int64,
    k: Int64,
    shift: Int64,
    flip: Int32,
    vector_io: Int32,
):
    """Each block loops over tiles of TILE consecutive outputs (tile b, b + grid,
    ... over all rows), one step per tile and chunk of up to K_CHUNK taps.

    A step stages the input span it needs (TILE plus a halo of the chunk's
    taps) in shared memory, zero-filled past the row's ends, so the inner loop
    has no bounds checks. The global loads for the next step are issued into
    registers before the current step's arithmetic, so they are in flight
    while it runs, and stored after it into the second of two buffers: one
    barrier per step. Each thread keeps its outputs in registers across chunks.
    With vector_io (16-byte aligned rows and span), global memory is read and
    written 16 bytes per access.
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
    var K = Int(k)
    var io = vector_io != 0
    var base = tid * R
    var tiles_per_row = ceildiv(N, TILE)
    var total_tiles = Int(rows) * tiles_per_row
    var chunks = ceildiv(K, K_CHUNK)

    # The loads of one step, held in registers until they go to shared memory.
    var main = SIMD[acc, MAIN * VW](0)
    var halo = SIMD[acc, HALO * VW](0)

    @always_inline
    @parameter
    def stage(buffer: Int, chunk: Int, taps_too: Bool):
        """Stores the step's loads (and, when taps_too, its chunk's taps,
        zero-padded to a multiple of R) into the given buffer."""
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
            var t = tid
            while t < kc_padded:
                var tap = Scalar[acc](0)
                if t < kc:
                    var j = k0 + t
                    if flip != 0:
                        j = K - 1 - j
                    tap = kernel.unsafe_load(j).cast[acc]()
                ws.unsafe_store(buffer * WS + t, tap)
                t += THREADS

    var tile = Int(block_idx.x)
    var chunk = 0
    if tile >= total_tiles:
        return
    load_step[dtype](main, halo, input, tile, chunk, tiles_per_row, total_tiles, N, K, Int(shift), io)
    stage(0, 0, True)
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
        var w_at = ws.unsafe_offset(buffer * WS if chunks > 1 else 0)
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
            var out_row = output.unsafe_offset(row_col[0] * N)
            if io and row_col[1] * TILE + TILE <= N:
                comptime for m in range(R // VW):
                    out_row.unsafe_store[alignment=16](i0 + m * VW, sums.slice[VW, offset = m * VW]().cast[dtype]())
            else:
                comptime for m in range(R // VW):
                    store_vector(out_row, i0 + m * VW, N, io, sums.slice[VW, offset = m * VW]().cast[dtype]())
            sums = SIMD[acc, R](0)
        if not more:
            break
        # The other buffer was last read in the previous step, which every
        # thread finished before the barrier below was passed: one barrier
        # per step.
        buffer = 1 - buffer
        stage(buffer, next_chunk, chunks > 1)
        barrier()
        tile = next_tile
        chunk = next_chunk


# ===----------------------------------------------------------------------=== #
# GPU: register windows, shifted between neighbouring lanes
# ===----------------------------------------------------------------------=== #

comptime SMALL_K = 12  # up to this many taps: one 16-byte vector of outputs per group, two groups per thread
comptime SMALL_TAPS = 16  # the taps array then: SMALL_K rounded up to whole 16-byte vectors of any dtype
comptime SMALL_STEP = 4  # taps per step then: a 16-bit vector of 8 outputs at K = 4 skips 4 zero taps
comptime SMALL_GROUPS = 2
comptime SMALL_THREADS = 128  # threads per block then: a block's fixed costs (its taps, a barrier) over 1024+ outputs
comptime WINDOW_K = 16  # at most this many taps: window_outputs() outputs per thread; beyond, the tiled kernel
comptime MAX_BLOCKS = 1 << 20  # beyond this many blocks, blocks loop over tiles


def window_k_limit[dtype: DType]() -> Int:
    """The most taps the window kernel takes for dtype. float32 from SMALL_K + 1
    taps on is faster tiled (H200, K = 16: 157 against 167 µs); the 16-bit
    types keep the window (124 against 129 µs)."""
    return SMALL_K if dtype == DType.float32 else WINDOW_K


def window_outputs[dtype: DType]() -> Int:
    """Consecutive outputs per thread of the window kernel beyond SMALL_K:
    16, or 8 for float64 (whose accumulators take two registers each)."""
    return 8 if size_of[dtype]() == 8 else 16


def correlate_window_gpu_kernel[
    dtype: DType, R: Int, T: Int, GROUPS: Int, MAX_TAPS: Int, BLOCK: Int
](
    output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int64,
    n: Int64,
    k: Int64,
    shift: Int64,
    flip: Int32,
    vector_io: Int32,
):
    """The same sum for k <= MAX_TAPS, with no shared-memory tiles: each
    input is loaded from memory once, into registers.

    A block of BLOCK threads covers GROUPS spans of BLOCK * R outputs; in each span thread t
    owns the R consecutive outputs from t * R on, and holds the R inputs
    there. A step of T taps (T divides R) needs the next T inputs of the
    window: they are the first T of the next lane's, passed down by warp
    shuffles, and only a warp's last lane loads them (one step ahead). So a
    step costs T shuffles and R * T multiply-adds, and the window slides by T.
    Short kernels (R one 16-byte vector, T = SMALL_STEP, two groups) are
    bound by memory traffic; longer ones (R = T = 16) by the multiply-adds.
    """
    comptime acc = accum_type[dtype]
    comptime VW = 16 // size_of[dtype]()
    comptime TW = min(T, VW)  # elements per load of the last lane's next inputs
    comptime SPAN = BLOCK * R
    comptime BLOCK_OUTPUTS = GROUPS * SPAN
    var ws = stack_allocation[
        MAX_TAPS, Scalar[acc], alignment=64, address_space = AddressSpace.SHARED
    ]()
    var tid = Int(thread_idx.x)
    var last_lane = Int(lane_id()) == WARP_SIZE - 1
    var N = Int(n)
    var K = Int(k)
    var io = vector_io != 0
    # The taps, once per block, zero-padded to MAX_TAPS.
    var t = tid
    while t < MAX_TAPS:
        var tap = Scalar[acc](0)
        if t < K:
            tap = kernel.unsafe_load(K - 1 - t if flip != 0 else t).cast[acc]()
        ws.unsafe_store(t, tap)
        t += BLOCK
    barrier()
    var steps = ceildiv(K, T)
    var tiles_per_row = ceildiv(N, BLOCK_OUTPUTS)
    var total = Int(rows) * tiles_per_row
    var tile = Int(block_idx.x)
    while tile < total:  # the same for every thread of the block
        var row_col = split_tile(tile, tiles_per_row, total)
        var start = row_col[1] * BLOCK_OUTPUTS + tid * R - Int(shift)
        var x_row = input.unsafe_offset(row_col[0] * N)
        var out_row = output.unsafe_offset(row_col[0] * N)
        # Every group's first loads go out before any arithmetic.
        var first = SIMD[acc, GROUPS * R](0)
        comptime for m in range(GROUPS):
            comptime for v in range(R // VW):
                first = first.insert[offset = m * R + v * VW](
                    load_vector[dtype, VW](x_row, start + m * SPAN + v * VW, N, io)
                )
        comptime for m in range(GROUPS):
            var src = start + m * SPAN  # the first input of this thread's window
            var current = first.slice[R, offset = m * R]()
            # The last lane's next T inputs, loaded a step before they are used.
            var tail = SIMD[acc, T](0)
            if last_lane:
                comptime for v in range(T // TW):
                    tail = tail.insert[offset = v * TW](load_vector[dtype, TW](x_row, src + R + v * TW, N, io))
            var sums = SIMD[acc, R](0)
            for s in range(steps):
                # The T inputs past this window are the first T of the next lane's.
                var following = SIMD[acc, R](0)  # only its first T are used
                comptime for e in range(T):
                    following[e] = shuffle_down(current[e], 1)
                if last_lane:
                    following = following.insert[offset=0](tail)
                    if s + 1 < steps:
                        comptime for v in range(T // TW):
                            tail = tail.insert[offset = v * TW](
                                load_vector[dtype, TW](x_row, src + R + (s + 1) * T + v * TW, N, io)
                            )
                var taps = ws.unsafe_load[width=T, alignment = T * size_of[acc]()](s * T)
                var window = current.join(following)
                comptime for jj in range(T):
                    comptime for r in range(R):
                        sums[r] += window[r + jj] * taps[jj]
                comptime for e in range(R):  # slide by T (a slice's offset must be a multiple of its width)
                    current[e] = window[e + T]
            var i = src + Int(shift)
            comptime for v in range(R // VW):
                store_vector(out_row, i + v * VW, N, io, sums.slice[VW, offset = v * VW]().cast[dtype]())
        tile += Int(grid_dim.x)


def correlate_gpu[
    dtype: DType
](
    ctx: DeviceContext,
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
    tuning sets it (at most WINDOW_K), and tensor_cores, to compare the kernels."""
    if rows == 0 or n == 0:
        return
    # 16-byte accesses need 16-byte aligned rows, and spans that start on a
    # multiple of the vector width (tile, chunk and thread starts are).
    comptime VW = 16 // size_of[dtype]()
    var aligned = Int(output) % 16 == 0 and Int(input) % 16 == 0
    var vector_io = aligned and (rows == 1 or n % VW == 0) and shift % VW == 0
    if tensor_cores and correlate_tensor_cores[dtype](ctx, output, input, kernel, rows, n, k, shift, flip, vector_io):
        return
    var args = (Int64(rows), Int64(n), Int64(k), Int64(shift), Int32(1 if flip else 0), Int32(1 if vector_io else 0))
    if k <= SMALL_K:
        comptime small = correlate_window_gpu_kernel[dtype, VW, min(VW, SMALL_STEP), SMALL_GROUPS, SMALL_TAPS, SMALL_THREADS]
        var tiles = rows * ceildiv(n, SMALL_GROUPS * SMALL_THREADS * VW)
        ctx.enqueue_function[small](
            output, input, kernel, args[0], args[1], args[2], args[3], args[4], args[5],
            grid_dim=min(tiles, MAX_BLOCKS),
            block_dim=SMALL_THREADS,
        )
        return
    if k <= min(window_k if window_k >= 0 else window_k_limit[dtype](), WINDOW_K):
        comptime R = window_outputs[dtype]()
        comptime window = correlate_window_gpu_kernel[dtype, R, R, 1, WINDOW_K, THREADS]
        var tiles = rows * ceildiv(n, THREADS * R)
        ctx.enqueue_function[window](
            output, input, kernel, args[0], args[1], args[2], args[3], args[4], args[5],
            grid_dim=min(tiles, MAX_BLOCKS),
            block_dim=THREADS,
        )
        return
    var tiles = rows * ceildiv(n, TILE)
    var sms = ctx.get_attribute(DeviceAttribute.MULTIPROCESSOR_COUNT)
    comptime tiled = correlate_gpu_kernel[dtype]
    ctx.enqueue_function[tiled](
        output, input, kernel, args[0], args[1], args[2], args[3], args[4], args[5],
        grid_dim=min(tiles, sms * blocks_per_sm),
        block_dim=THREADS,
    )


# ===----------------------------------------------------------------------=== #
# GPU: gradient with respect to the kernel, a two-pass deterministic reduction
# ===----------------------------------------------------------------------=== #

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


def grad_kernel_gpu[
    dtype: DType
](
    ctx: DeviceContext,
    grad_kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    grad_output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int,
    n: Int,
    k: Int,
) raises:
    """Computes grad_kernel[j] = sum over rows r and i < n - j of
    grad_output[r, i] * input[r, i + j]."""
    comptime acc = accum_type[dtype]
    var tap_blocks = ceildiv(k, GRAD_TAPS)
    var total_tiles = ceildiv(n, GRAD_TILE) * rows
    var groups = max(1, min(total_tiles, GRAD_BLOCKS // tap_blocks))
    var partials = ctx.enqueue_create_buffer[acc](groups * k)
    comptime first = grad_kernel_partials_kernel[dtype]
    ctx.enqueue_function[first](
        rebind[Pointer[Scalar[acc], MutAnyOrigin]](partials.unsafe_ptr()),
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
    ctx.enqueue_function[second](
        grad_kernel,
        rebind[Pointer[Scalar[acc], MutAnyOrigin]](partials.unsafe_ptr()),
        Int64(k),
        Int64(groups),
        grid_dim=k,
        block_dim=THREADS,
    )
    # Keep the scratch buffer alive until both launches are enqueued: its
    # release is ordered on the stream after them.
    _ = partials^


# ===----------------------------------------------------------------------=== #
# CPU: SIMD over outputs, parallel over chunks of rows
# ===----------------------------------------------------------------------=== #

comptime CPU_CHUNK = 65536  # outputs per parallel work item: fewer, larger items cost the thread pool less
# Up to this many taps a call is memory-bound and runs on the calling thread:
# on a 2-core machine it was faster there (K = 4: 1.13-1.18 ms against
# 1.78-3.68 ms on MAX's two workers when neither ran right after a PyTorch
# copy_, whose spinning OpenMP threads then compete with the workers;
# logs/cpu/2026-11-29_0458_cpu_serial_small_k.log).
comptime CPU_SERIAL_MAX_K = 8
comptime STREAM_ALIGN = 64  # output blocks starting at this byte alignment are written with streaming stores


def correlate_cpu[
    dtype: DType
](
    output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int,
    n: Int,
    k: Int,
    shift: Int,
    flip: Bool,
) raises:
    """The same sum as the GPU kernel. The interior of each row, where the
    whole window lies inside the row, runs BLOCK outputs at a time (several
    SIMD registers, one broadcast tap per step) with no bounds checks; the
    few outputs near the ends run one by one. Work items of CPU_CHUNK outputs
    go to MAX's thread pool, or, up to CPU_SERIAL_MAX_K taps, run on the
    calling thread."""
    comptime acc = accum_type[dtype]
    comptime W = simd_width_of[acc]()
    comptime BLOCK = 4 * W
    # The taps once, in the accumulator type and in the order the sum reads them.
    var tap_list = List[Scalar[acc]](capacity=k)
    for j in range(k):
        tap_list.append(kernel.unsafe_load(k - 1 - j if flip else j).cast[acc]())
    var taps = tap_list.unsafe_ptr()
    var chunks_per_row = ceildiv(n, CPU_CHUNK)

    def work(item: Int) {var output, var input, var taps, var n, var k, var shift, var chunks_per_row}:
        var row = item // chunks_per_row
        var i0 = (item % chunks_per_row) * CPU_CHUNK
        var i1 = min(i0 + CPU_CHUNK, n)
        var x = input.unsafe_offset(row * n)
        var out = output.unsafe_offset(row * n)
        # Whole window inside the row: i - shift >= 0 and i - shift + k <= n.
        var lo = min(max(i0, shift), i1)
        var hi = max(min(i1, n - k + 1 + shift), lo)
        var i = i0
        while i < i1:
            if i >= lo and i + BLOCK <= hi:
                var sum = SIMD[acc, BLOCK](0)
                var src = x.unsafe_offset(i - shift)
                for j in range(k):
                    sum += src.unsafe_load[width=BLOCK](j).cast[acc]() * taps.unsafe_load(j)
                var result = sum.cast[dtype]()
                if Int(out.unsafe_offset(i)) % STREAM_ALIGN == 0:
                    # A streaming store: the output line is written without
                    # being read into the cache first (a third less traffic).
                    # Its weak ordering is settled when the thread pool joins
                    # (a locked instruction), before anyone reads the output.
                    out.unsafe_store[alignment=STREAM_ALIGN, non_temporal=True](i, result)
                else:
                    out.unsafe_store(i, result)
                i += BLOCK
            else:
                # Inputs outside the row read as zeros, and are multiplied
                # like the rest (zero times an infinite tap is NaN, as on the GPU).
                var sum = Scalar[acc](0)
                for j in range(k):
                    var s = i + j - shift
                    var value = Scalar[acc](0)
                    if s >= 0 and s < n:
                        value = x.unsafe_load(s).cast[acc]()
                    sum += value * taps.unsafe_load(j)
                out.unsafe_store(i, sum.cast[dtype]())
                i += 1

    if k <= CPU_SERIAL_MAX_K:
        for item in range(rows * chunks_per_row):
            work(item)
    else:
        sync_parallelize(work, rows * chunks_per_row)
    _ = tap_list^


def grad_kernel_cpu[
    dtype: DType
](
    grad_kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    grad_output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int,
    n: Int,
    k: Int,
) raises:
    """Each work item writes the partial sums of its chunk for every tap; the
    partials are then added in a fixed order, so the result does not depend
    on how the work was scheduled."""
    comptime acc = accum_type[dtype]
    comptime W = simd_width_of[acc]()
    var chunks_per_row = ceildiv(n, CPU_CHUNK)
    var items = rows * chunks_per_row
    var partials = List[Scalar[acc]](length=items * k, fill=0)
    var parts = partials.unsafe_ptr()

    def work(item: Int) {var grad_output, var input, var parts, var n, var k, var chunks_per_row}:
        var row = item // chunks_per_row
        var i0 = (item % chunks_per_row) * CPU_CHUNK
        var i1 = min(i0 + CPU_CHUNK, n)
        var g = grad_output.unsafe_offset(row * n)
        var x = input.unsafe_offset(row * n)
        for j in range(k):
            var end = min(i1, n - j)  # input[row, i + j] exists
            var vsum = SIMD[acc, W](0)
            var i = i0
            while i + W <= end:
                vsum += g.unsafe_load[width=W](i).cast[acc]() * x.unsafe_load[width=W](i + j).cast[acc]()
                i += W
            var sum = vsum.reduce_add()
            while i < end:
                sum += g.unsafe_load(i).cast[acc]() * x.unsafe_load(i + j).cast[acc]()
                i += 1
            parts.unsafe_store(item * k + j, sum)

    sync_parallelize(work, items)
    for j in range(k):
        var sum = Scalar[acc](0)
        for item in range(items):
            sum += parts.unsafe_load(item * k + j)
        grad_kernel.unsafe_store(j, sum.cast[dtype]())
    _ = partials^
