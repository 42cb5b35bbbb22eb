"""The GPU kernels of the gradient with respect to the kernel, each a
two-pass deterministic reduction (partial sums, then the partials added in a
fixed order, so the result does not depend on scheduling).

One filter shared by every row (the conv1d op): grad_kernel_partials_kernel
sums each tap over groups of tiles, a thread per tap, and
grad_kernel_reduce_kernel adds each tap's partials; gpu.mojo's
grad_kernel_gpu launches both. One filter per channel (the depthwise op, few
taps, many rows): grad_kernel_short_kernel (up to SMALL_K taps, reading as
window.mojo's short kernel does) or grad_kernel_rows_kernel (more taps) sums
every tap over a span of one row, a thread per run of positions, and
grad_kernel_channels_kernel adds the partials of each channel's rows;
gpu.mojo's grad_kernel_channels_gpu launches them.
"""

from std.math import ceildiv
from std.sys import size_of
from max.gpu import WARP_SIZE, barrier, block_idx, grid_dim, lane_id, thread_idx
from max.gpu.primitives.warp import shuffle_down
from max.gpu.memory import AddressSpace
from std.memory import stack_allocation

from .common import THREADS, accum_type, load_raw, load_vector, split_tile
from .window import SMALL_STEP, SMALL_TAPS, SMALL_THREADS


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


comptime ROW_THREADS = 128  # threads per block of grad_kernel_rows_kernel
comptime ROW_POSITIONS = 8  # consecutive positions per thread and step there
comptime ROW_STEP = ROW_THREADS * ROW_POSITIONS  # positions per block and step
comptime ROW_ITEMS = 1024  # rows are split until about this many blocks
comptime X_VECTORS = 1  # flags: input rows allow vector loads of row_load_width()
comptime G_VECTORS = 2  # flags: grad_output rows do


def row_load_width[dtype: DType]() -> Int:
    """Elements per load in grad_kernel_rows_kernel: 4 (2 for float64). Narrow
    loads keep the lead zeros that align them (see tap_value) to at most 3."""
    return 2 if size_of[dtype]() == 8 else 4


def grad_kernel_rows_kernel[
    dtype: DType, TAPS: Int
](
    partials: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin],
    grad_output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int64,
    n: Int64,
    n_out: Int64,
    k: Int64,
    taps: Int64,
    lead: Int64,
    shift: Int64,
    splits: Int64,
    flags: Int32,
):
    """Block b sums, for item b = (row r, split s), b + grid, ..., every tap
    j < taps of grad_output[r, i] * input[r, i + j + lead - shift] over the
    split's span of positions i < n_out, and writes the sum to
    partials[(r * splits + s) * taps + j]. shift counts `lead` extra places
    (a multiple of the load width with them); the k = taps + lead taps go
    TAPS at a time. Each thread holds ROW_POSITIONS values of grad_output
    and the inputs they meet, and keeps TAPS sums in registers; a block adds
    its threads' sums with warp shuffles, then across warps."""
    comptime acc = accum_type[dtype]
    comptime LW = row_load_width[dtype]()
    comptime PW = ROW_POSITIONS
    comptime WARPS = ROW_THREADS // WARP_SIZE
    var warp_sums = stack_allocation[WARPS * TAPS, Scalar[acc], address_space = AddressSpace.SHARED]()
    var tid = Int(thread_idx.x)
    var N = Int(n)
    var NO = Int(n_out)
    var K = Int(k)
    var KT = Int(taps)
    var LEAD = Int(lead)
    var S = Int(shift)
    var SPLITS = Int(splits)
    var x_io = Int(flags) & X_VECTORS != 0
    var g_io = Int(flags) & G_VECTORS != 0
    var per_split = ceildiv(ceildiv(NO, ROW_STEP), SPLITS) * ROW_STEP
    var total = Int(rows) * SPLITS
    var item = Int(block_idx.x)
    while item < total:
        var row_split = split_tile(item, SPLITS, total)
        var g_row = grad_output.unsafe_offset(row_split[0] * NO)
        var x_row = input.unsafe_offset(row_split[0] * N)
        var p_begin = row_split[1] * per_split
        var p_end = min(NO, p_begin + per_split)
        var j0 = 0
        while j0 < K:
            var sums = SIMD[acc, TAPS](0)
            var p = p_begin + tid * PW
            while p < p_end:
                var g = SIMD[acc, PW](0)
                comptime for v in range(PW // LW):
                    g = g.insert[offset = v * LW](load_vector[dtype, LW](g_row, p + v * LW, NO, g_io))
                var x = SIMD[acc, 2 * max(PW, TAPS)](0)  # a power of two; PW + TAPS are used
                comptime for v in range((PW + TAPS) // LW):
                    x = x.insert[offset = v * LW](load_vector[dtype, LW](x_row, p + j0 - S + v * LW, N, x_io))
                comptime for jj in range(TAPS):
                    comptime for e in range(PW):
                        sums[jj] += g[e] * x[e + jj]
                p += ROW_STEP
            # The block's sum of each tap: within warps, then across them.
            comptime for jj in range(TAPS):
                var v = sums[jj]
                var offset = WARP_SIZE // 2
                while offset > 0:
                    v += shuffle_down(v, UInt32(offset))
                    offset //= 2
                if Int(lane_id()) == 0:
                    warp_sums.unsafe_store(Int(tid // WARP_SIZE) * TAPS + jj, v)
            barrier()
            if tid < TAPS:
                var total_sum = Scalar[acc](0)
                comptime for w in range(WARPS):
                    total_sum += warp_sums.unsafe_load(w * TAPS + tid)
                var j = j0 + tid - LEAD  # the real tap
                if j >= 0 and j < KT and j0 + tid < K:
                    partials.unsafe_store(item * KT + j, total_sum)
            barrier()  # warp_sums is read before the next chunk writes it
            j0 += TAPS
        item += Int(grid_dim.x)


def grad_kernel_channels_kernel[
    dtype: DType
](
    grad_kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    partials: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin],
    batch: Int64,
    channels: Int64,
    taps: Int64,
    splits: Int64,
):
    """Thread (c, j) adds the partials of tap j over the rows b * channels + c
    and their splits, in a fixed order, into grad_kernel[c, j]."""
    comptime acc = accum_type[dtype]
    var KT = Int(taps)
    var C = Int(channels)
    var SPLITS = Int(splits)
    var index = Int(block_idx.x) * THREADS + Int(thread_idx.x)
    if index >= C * KT:
        return
    var c = index // KT
    var j = index - c * KT
    var sum = Scalar[acc](0)
    for b in range(Int(batch)):
        var at = (b * C + c) * SPLITS * KT + j
        for s in range(SPLITS):
            sum += partials.unsafe_load(at + s * KT)
    grad_kernel.unsafe_store(index, sum.cast[dtype]())


@always_inline
def add_products[
    dtype: DType, D: Int, KMAX: Int, CHECK: Bool, T: Int, R: Int, W: Int
](
    mut sums: SIMD[accum_type[dtype], T], g: SIMD[dtype, R], raw: SIMD[dtype, W], k: Int, valid: Int
):
    """sums[j] += g[e] * raw[D + e + j] for j < k, over e < R (e < valid when
    CHECK), in branches of SMALL_STEP taps as the short kernel."""
    comptime acc = accum_type[dtype]
    comptime for s in range(ceildiv(KMAX, SMALL_STEP)):
        if s * SMALL_STEP < k:
            comptime for jj in range(SMALL_STEP):
                comptime j = s * SMALL_STEP + jj
                comptime if j < KMAX:
                    if j < k:
                        comptime for e in range(R):
                            comptime if CHECK:
                                if e < valid:
                                    sums[j] += g[e].cast[acc]() * raw[D + e + j].cast[acc]()
                            else:
                                sums[j] += g[e].cast[acc]() * raw[D + e + j].cast[acc]()


def grad_kernel_short_kernel[
    dtype: DType, D: Int, KMAX: Int
](
    partials: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin],
    grad_output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    n: Int64,
    n_out: Int64,
    shift: Int64,
    k: Int32,
    tiles_per_row: Int32,
    flags: Int32,
):
    """grad_kernel_rows_kernel's partial sums for k <= SMALL_K, laid out the
    same (partials[(r * splits + s) * k + j] for block (r, s)), reading its
    inputs as window.mojo's short kernel does: the grid is rows x splits,
    block (r, s) takes tiles s, s + splits, ... of row r's tiles of
    SMALL_THREADS 16-byte vectors of positions i < n_out. Thread t loads
    vector t of grad_output and the aligned input vectors around it (D is
    where input i - shift sits in the first, a parameter), and adds k
    products per position to k sums in registers; then the block adds its
    threads' sums, within warps by shuffles, then across warps."""
    comptime acc = accum_type[dtype]
    comptime VW = 16 // size_of[dtype]()
    comptime R = VW  # positions per thread and tile: one vector
    comptime WIN = 16 if size_of[dtype]() == 8 else 32  # >= LOADS * VW, a power of two
    comptime LOADS = ceildiv(D + R + KMAX - 1, VW)
    comptime SPAN = SMALL_THREADS * R
    comptime WARPS = SMALL_THREADS // WARP_SIZE
    var warp_sums = stack_allocation[WARPS * KMAX, Scalar[acc], address_space = AddressSpace.SHARED]()
    var tid = Int32(thread_idx.x)
    var N = Int(n)
    var NO = Int(n_out)
    var K = Int(k)
    var x_io = flags & X_VECTORS != 0
    var g_io = flags & G_VECTORS != 0
    var back = Int(shift) + D  # the first input load starts this far before the positions
    var needed = D + R + K - 1  # window values used
    var row = Int(block_idx.x)
    var x_row = input.unsafe_offset(row * N)
    var g_row = grad_output.unsafe_offset(row * NO)
    var splits = Int32(grid_dim.y)
    var sums = SIMD[acc, SMALL_TAPS](0)  # KMAX of them used
    var tile = Int32(block_idx.y)
    while tile < tiles_per_row:
        var first = Int(tile) * SPAN  # the block's first position
        var base = first - back  # its first input load
        var o = tid * Int32(R)
        var raw = SIMD[dtype, WIN](0)
        var g: SIMD[dtype, R]
        var mine = base + Int(o)
        if x_io and g_io and (
            (base >= 0 and base + SPAN + LOADS * VW <= N and first + SPAN <= NO)
            or (mine >= 0 and mine + LOADS * VW <= N and first + Int(o) + R <= NO)
        ):
            # The block's loads all lie inside the rows (most tiles), or at
            # least this thread's do: no checks.
            g = g_row.unsafe_offset(first).unsafe_load[width=R, alignment=16](o)
            var x_at = x_row.unsafe_offset(base)
            comptime for v in range(LOADS):
                if v * VW < needed:
                    raw = raw.insert[offset = v * VW](x_at.unsafe_load[width=VW, alignment=16](o + Int32(v * VW)))
        else:
            g = load_raw[dtype, R](g_row, first + Int(o), NO, g_io)
            comptime for v in range(LOADS):
                if v * VW < needed:
                    raw = raw.insert[offset = v * VW](load_raw[dtype, VW](x_row, base + Int(o) + v * VW, N, x_io))
            # Positions past n_out add nothing, even where their input is not finite.
            add_products[dtype, D, KMAX, True, SMALL_TAPS](sums, g, raw, K, NO - (first + Int(o)))
            tile += splits
            continue
        add_products[dtype, D, KMAX, False, SMALL_TAPS](sums, g, raw, K, R)
        tile += splits
    # The block's sum of each tap: within warps, then across them.
    comptime for j in range(KMAX):
        if j < K:
            var v = sums[j]
            var offset = WARP_SIZE // 2
            while offset > 0:
                v += shuffle_down(v, UInt32(offset))
                offset //= 2
            if Int(lane_id()) == 0:
                warp_sums.unsafe_store(Int(tid) // WARP_SIZE * KMAX + j, v)
    barrier()
    if Int(tid) < K:
        var total = Scalar[acc](0)
        comptime for w in range(WARPS):
            total += warp_sums.unsafe_load(w * KMAX + Int(tid))
        partials.unsafe_store((row * Int(splits) + Int(block_idx.y)) * K + Int(tid), total)
