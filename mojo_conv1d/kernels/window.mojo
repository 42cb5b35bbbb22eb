"""The GPU kernels for short filters. correlate_short_gpu_kernel (up to
SMALL_K taps, bound by memory traffic): a thread owns one 16-byte vector of
outputs and loads the aligned vectors its window needs, blocks loop over a
row's tiles with the row's taps in registers. correlate_window_gpu_kernel
(up to WINDOW_K taps, 16-bit and float64 data): register windows shifted
between neighbouring lanes by warp shuffles, window_outputs() outputs per
thread. Both compute the sum given in common.mojo's docstring, with a filter
per row; gpu.mojo's correlate_gpu launches them.
"""

from std.math import ceildiv, isfinite
from std.sys import size_of
from max.gpu.globals import MAX_THREADS_PER_BLOCK_METADATA
from std.utils import StaticTuple
from max.gpu import WARP_SIZE, barrier, block_idx, grid_dim, lane_id, thread_idx
from max.gpu.primitives.warp import shuffle_down
from max.gpu.memory import AddressSpace
from std.memory import stack_allocation

from .common import (
    FLIP,
    HAS_BIAS,
    LOAD_VECTORS,
    SILU,
    STORE_VECTORS,
    WHOLE_VECTORS,
    accum_type,
    channel_of,
    finish,
    load_raw,
    load_vector,
    redo_non_finite,
    split_tile,
    store_vector,
    tap_value,
    to_accum,
    wide_product,
)


comptime SMALL_K = 12  # up to this many taps: the short kernel
comptime SMALL_TAPS = 16  # its taps in registers: SMALL_K rounded up to a power of two
comptime SMALL_STEP = 4  # taps per branch there, and its narrower bound on the taps (Mamba's K = 4)
comptime SMALL_THREADS = 128  # threads per block there
comptime SHORT_BLOCKS = 4096  # rows are split over blocks until there are about this many
comptime WINDOW_K = 16  # at most this many taps: window_outputs() outputs per thread; beyond, the tiled kernel
comptime MAX_BLOCKS = 1 << 20  # beyond this many blocks, blocks loop over tiles
comptime GRID_Y = 65535  # the most blocks a grid's y (and z) takes
comptime GROUP_BLOCKS = 8192  # rows of one tile: blocks taking several batches until there are about this many
comptime LONG_ROW_TILES = 16  # float32 rows of this many short-kernel tiles or more: blocks of SPLIT_TILES
comptime SPLIT_TILES = 4  # tiles a block takes there


def short_blocks_per_sm[dtype: DType, KMAX: Int]() -> Int:
    """The short kernel's launch bound, blocks resident per multiprocessor:
    16 (a full one, at 32 registers a thread) where that spills nothing,
    for up to SMALL_STEP taps of 32-bit or narrower data; else 8."""
    return 16 if KMAX == SMALL_STEP and size_of[dtype]() < 8 else 8


def window_k_limit[dtype: DType]() -> Int:
    """The most taps the window kernel takes for dtype. float32 from SMALL_K + 1
    taps on measured faster tiled on an H200; the 16-bit types measured faster
    with the window, so they keep it up to WINDOW_K."""
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
    """The same sum for k <= MAX_TAPS, with no shared-memory tiles: each
    input is loaded from memory once, into registers.

    A block of BLOCK threads covers GROUPS spans of BLOCK * R outputs; in each span thread t
    owns the R consecutive outputs from t * R on, and holds the R inputs
    there. A step of T taps (T divides R) needs the next T inputs of the
    window: they are the first T of the next lane's, passed down by warp
    shuffles, and only a warp's last lane loads them (all steps' before the
    first). So a step costs T shuffles and R * T multiply-adds, and the
    window slides by T; the steps are unrolled up to MAX_TAPS taps.
    gpu.mojo launches it with R = T = window_outputs(), where the
    multiply-adds set the pace.

    Row r uses filter r % channels (`taps` taps, read after `lead` zeros: k
    = taps + lead), staged in shared memory when the block's row changes
    channel; its n_out outputs get common.mojo's `finish`. A tile's input
    loads go out before the taps are staged, so the two overlap.
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
    var NO = Int(n_out)
    var K = Int(k)
    var C = Int(channels)
    var f = Int(flags)
    var load_io = f & LOAD_VECTORS != 0
    var store_io = f & STORE_VECTORS != 0
    var flip = f & FLIP != 0
    var has_bias = f & HAS_BIAS != 0
    var silu = f & SILU != 0
    var steps = ceildiv(K, T)
    var tiles_per_row = ceildiv(NO, BLOCK_OUTPUTS)
    var total = Int(rows) * tiles_per_row
    var staged = -1  # the channel whose taps are in ws
    var tile = Int(block_idx.x)
    while tile < total:  # the same for every thread of the block
        var row_col = split_tile(tile, tiles_per_row, total)
        var start = row_col[1] * BLOCK_OUTPUTS + tid * R - Int(shift)
        var x_row = input.unsafe_offset(row_col[0] * N)
        var out_row = output.unsafe_offset(row_col[0] * NO)
        # Every group's first loads go out before any arithmetic.
        var first = SIMD[acc, GROUPS * R](0)
        comptime for m in range(GROUPS):
            comptime for v in range(R // VW):
                first = first.insert[offset = m * R + v * VW](
                    load_vector[dtype, VW](x_row, start + m * SPAN + v * VW, N, load_io)
                )
        var channel = channel_of(row_col[0], C)
        if channel != staged:
            if staged >= 0:
                barrier()  # every thread is done with the previous taps
            var w_row = kernel.unsafe_offset(channel * Int(taps))
            var t = tid
            while t < MAX_TAPS:
                ws.unsafe_store(t, tap_value(w_row, t, Int(taps), Int(lead), flip))
                t += BLOCK
            barrier()
            staged = channel
        var row_bias = bias.unsafe_load(channel).cast[acc]() if has_bias else Scalar[acc](0)
        comptime for m in range(GROUPS):
            var src = start + m * SPAN  # the first input of this thread's window
            var current = first.slice[R, offset = m * R]()
            # The last lane's inputs past its window, for every step, loaded
            # before the steps (a load per step would wait on memory each step).
            var tail = SIMD[acc, MAX_TAPS](0)
            if last_lane:
                comptime for v in range(MAX_TAPS // TW):
                    if v * TW < steps * T:
                        tail = tail.insert[offset = v * TW](load_vector[dtype, TW](x_row, src + R + v * TW, N, load_io))
            var sums = SIMD[acc, R](0)
            comptime for s in range(MAX_TAPS // T):
                if s < steps:
                    # The T inputs past this window are the first T of the next lane's.
                    var following = SIMD[acc, R](0)  # only its first T are used
                    comptime for e in range(T):
                        following[e] = shuffle_down(current[e], 1)
                    if last_lane:
                        following = following.insert[offset=0](tail.slice[T, offset = s * T]())
                    var w = ws.unsafe_load[width=T, alignment = T * size_of[acc]()](s * T)
                    var window = current.join(following)
                    comptime for jj in range(T):
                        comptime for r in range(R):
                            sums[r] += window[r + jj] * w[jj]
                    comptime for e in range(R):  # slide by T (a slice's offset must be a multiple of its width)
                        current[e] = window[e + T]
            var values = finish[acc, R](sums, SIMD[acc, R](row_bias), has_bias, silu).cast[dtype]()
            var i = src + Int(shift)
            comptime for v in range(R // VW):
                store_vector(out_row, i + v * VW, NO, store_io, values.slice[VW, offset = v * VW]())
            if not isfinite(sums.reduce_add()):
                var w_row = kernel.unsafe_offset(channel * Int(taps))
                redo_non_finite[dtype](out_row, i, R, NO, x_row, N, w_row, Int(taps), Int(lead), Int(shift), flip, row_bias, has_bias, silu)
        tile += Int(grid_dim.x)


@always_inline
def short_taps[
    dtype: DType, KMAX: Int, VECTOR: Bool
](first_tap: Pointer[Scalar[dtype], MutAnyOrigin], k: Int, step: Int32) -> SIMD[accum_type[dtype], SMALL_TAPS]:
    """The short kernel's k <= KMAX taps, read from first_tap by steps of
    step (-1 for a flipped filter), in the accumulator type. With VECTOR
    they are k = KMAX taps aligned for one load, ending at first_tap when
    flipped."""
    var w = SIMD[accum_type[dtype], SMALL_TAPS](0)
    comptime if VECTOR:
        var start = first_tap.unsafe_offset(1 - KMAX if step < 0 else 0)
        var taps = to_accum(start.unsafe_load[width=KMAX, alignment = KMAX * size_of[dtype]()](0))
        return w.insert[offset=0](taps.reversed() if step < 0 else taps)
    comptime for j in range(KMAX):
        if j < k:
            w[j] = first_tap.unsafe_load(Int(Int32(j) * step)).cast[accum_type[dtype]]()
    return w


@__llvm_metadata(
    MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(SMALL_THREADS)),
    `nvvm.minctasm`=SIMDLength(short_blocks_per_sm[dtype, KMAX]()),
)
def correlate_short_gpu_kernel[
    dtype: DType, D: Int, KMAX: Int, U: Int, SPLITS_X: Bool, EXACT: Bool
](
    output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    taps: Pointer[Scalar[dtype], MutAnyOrigin],
    bias: Pointer[Scalar[dtype], MutAnyOrigin],
    n: Int64,
    n_out: Int64,
    shift: Int64,
    k: Int32,
    w_stride: Int32,
    batches: Int32,
    tiles_per_row: Int32,
    flags: Int32,
):
    """The same sum for k <= SMALL_K, where it is bound by memory traffic.

    The grid is (filters, batches, splits) blocks: block (c, b, s) takes
    row b * grid_dim.x + c, filter c (at taps + c * w_stride, the first tap
    it reads; w_stride is 0 where every row shares one filter, and then
    grid_dim.x counts rows), its bias and addresses once, then tiles s,
    s + splits, ... of the row's tiles_per_row tiles of SMALL_THREADS
    16-byte vectors of outputs, thread t owning vector t of each (aligned
    stores). The grid's shape gives each block its row, filter and tiles
    without a division, and offsets within a tile are 32-bit, so a block's
    setup is short: where a block has one tile (rows of SMALL_THREADS
    vectors or fewer) the setup is as much work as the tile. The launch
    bound keeps a thread to 32 registers where that spills nothing, so that
    a multiprocessor holds 16 blocks and enough loads are in flight.
    A thread's inputs start `shift` before its outputs, in the aligned
    vectors around its own: it loads them all (its neighbours load the same
    ones and the L1 cache serves those; passing them by warp shuffles
    measured slower). D is where the first input sits in the first of those
    vectors, (-shift) mod the vector width: a parameter, so every window
    index is known at compile time; in rows of whole aligned vectors a load
    lies wholly inside the row or outside it, one 32-bit compare. KMAX
    (SMALL_STEP or SMALL_K) bounds k, and the smaller one needs fewer
    registers. Up to SMALL_K the products are k per output, in branches of
    SMALL_STEP taps; up to SMALL_STEP every output takes SMALL_STEP
    unpredicated products, the taps past k being zeros (pass_over_tiles
    says how that stays exact). EXACT is the host's choice where k =
    SMALL_STEP, every filter is aligned for one load of its taps and the
    rows take 32-bit indices (WHOLE_VECTORS): only that case is compiled,
    so nothing else is checked and a block's setup is short, which is most
    of its time where it has one tile. The sums
    start at the channel's bias (zero without one), then `finish` applies
    SiLU. U tiles make a pass (1, or 2 for 16-bit data where a block walks
    its row's tiles in order): every load of the pass goes out before any
    sum, and with two the taps are read after the first pass's loads.
    With SPLITS_X the grid is (splits, filters, batches) instead: blocks
    start in the order of the grid's x, so the blocks running at once then
    share a few rows, each a span of them, instead of each reading a row of
    its own (measured faster for long float32 rows).
    """
    comptime acc = accum_type[dtype]
    comptime VW = 16 // size_of[dtype]()
    comptime R = VW  # outputs per thread and tile: one vector
    comptime WIN = 16 if size_of[dtype]() == 8 else 32  # >= D + R + KMAX - 1, a power of two
    comptime LOADS = ceildiv(D + R + KMAX - 1, VW)
    comptime SPAN = SMALL_THREADS * R
    var tid = Int32(thread_idx.x)
    var N = Int(n)
    var NO = Int(n_out)
    var K = Int(k)
    var load_io = flags & LOAD_VECTORS != 0
    var back = Int(shift) + D  # the first load starts this far before the outputs
    # Loads start on a multiple of VW (D makes them), so in aligned rows of
    # whole vectors each lies inside the row or wholly outside it; the host
    # says when rows (input and output) are also short enough for every
    # offset within one to be 32-bit.
    var fits = flags & WHOLE_VECTORS != 0
    var store_io = flags & STORE_VECTORS != 0
    var flip = flags & FLIP != 0
    var has_bias = flags & HAS_BIAS != 0
    var silu = flags & SILU != 0
    # The grid's (filters, batches, splits), or (splits, filters, batches) with SPLITS_X.
    var filters = Int32(grid_dim.y) if SPLITS_X else Int32(grid_dim.x)
    var channel = Int32(block_idx.y) if SPLITS_X else Int32(block_idx.x)
    var batch_step = Int32(grid_dim.z) if SPLITS_X else Int32(grid_dim.y)
    var splits = Int32(grid_dim.x) if SPLITS_X else Int32(grid_dim.z)
    var w_row = taps.unsafe_offset(wide_product(channel, w_stride))
    var step = Int32(-1) if flip else Int32(1)  # taps points at the last tap when flipped
    var o = tid * Int32(R)  # this thread's first output (and first load) in a tile

    @always_inline
    @__parameter
    def pass_over_tiles[EXACT: Bool, FITS: Bool]():
        """The block's tiles, U a pass. With KMAX = SMALL_STEP taps no
        product is predicated: EXACT reads k = KMAX taps in one load; else
        the taps past k are zeros and outputs that come out infinite or NaN
        are computed again (a zero tap times an infinite input is NaN).
        FITS (the host's WHOLE_VECTORS) computes every index within a row
        in 32 bits. Each case is a copy of the loop of its own: a branch on
        k inside one was compiled as both sums and a select, a check of
        every sum slowed the k = KMAX case, and 64-bit indices took as many
        instructions as a tile's sums."""
        var kk = KMAX if EXACT else K
        var needed = D + R + kk - 1  # window values used
        var w = SIMD[acc, SMALL_TAPS](0)  # zeros past the k taps
        var start = Scalar[acc](0)  # the channel's bias, or zero
        var n32 = Int32(n)  # exact with FITS, like the two below
        var no32 = Int32(n_out)
        var q = o - Int32(back)  # this thread's first load, from a tile's first output

        @always_inline
        @__parameter
        def read_taps():
            w = short_taps[dtype, KMAX, EXACT](w_row, kk, step)
            if has_bias:
                start = bias.unsafe_load(Int(channel) if w_stride != 0 else 0).cast[acc]()

        @always_inline
        @__parameter
        def one_pass[FIRST: Bool](batch: Int32, tile: Int32):
            """Tiles tile, tile + splits, ... (U of them) of row batch * filters + channel."""
            var row = batch * filters + channel
            var x_row: type_of(input)
            var out_row: type_of(output)
            comptime if FITS:
                x_row = input.unsafe_offset(wide_product(row, n32))
                out_row = output.unsafe_offset(wide_product(row, no32))
            else:
                x_row = input.unsafe_offset(Int(row) * N)
                out_row = output.unsafe_offset(Int(row) * NO)
            # U of the block's tiles a pass: all their loads, then the sums.
            var raws = SIMD[dtype, U * WIN](0)
            comptime for u in range(U):
                var t = tile + Int32(u) * splits
                if u == 0 or t < tiles_per_row:
                    comptime if FITS:
                        # Load v of this thread lies inside the row when
                        # its first index, as unsigned, is below n.
                        var at = t * Int32(SPAN) + q  # this thread's first load in tile t
                        var x_at = x_row.unsafe_offset(Int(at))
                        comptime for v in range(LOADS):
                            if v * VW < needed:
                                if UInt32(at + Int32(v * VW)) < UInt32(n32):
                                    raws = raws.insert[offset = u * WIN + v * VW](x_at.unsafe_load[width=VW, alignment=16](v * VW))
                    else:
                        var base = Int(t) * SPAN - back
                        comptime for v in range(LOADS):
                            if v * VW < needed:
                                raws = raws.insert[offset = u * WIN + v * VW](load_raw[dtype, VW](x_row, base + Int(o) + v * VW, N, load_io))
            comptime if FIRST and U == 2:
                # With two tiles a pass, the taps are read after the first
                # pass's loads: waiting on them before measured slower.
                read_taps()
            comptime for u in range(U):
                var t = tile + Int32(u) * splits
                if u == 0 or t < tiles_per_row:
                    var xs = to_accum(raws.slice[WIN, offset = u * WIN]())
                    var sums = SIMD[acc, R](start)
                    comptime if KMAX == SMALL_STEP:
                        comptime for j in range(KMAX):
                            comptime for r in range(R):
                                sums[r] += xs[D + r + j] * w[j]
                    else:
                        comptime for s in range(ceildiv(KMAX, SMALL_STEP)):
                            if s == 0 or s * SMALL_STEP < K:  # k >= 1
                                comptime for jj in range(SMALL_STEP):
                                    comptime j = s * SMALL_STEP + jj
                                    comptime if j < KMAX:
                                        if j == 0 or j < K:
                                            comptime for r in range(R):
                                                sums[r] += xs[D + r + j] * w[j]
                    var values = finish[acc, R](sums, SIMD[acc, R](0), False, silu).cast[dtype]()
                    var at: Int  # this thread's first output in the row
                    comptime if FITS:
                        # The host also found the output rows aligned.
                        var at32 = t * Int32(SPAN) + o
                        at = Int(at32)
                        if t * Int32(SPAN) + Int32(SPAN) <= no32:
                            out_row.unsafe_offset(at).unsafe_store[alignment=16](values)
                        else:
                            store_vector(out_row, at, NO, True, values)
                    else:
                        var first = Int(t) * SPAN
                        at = first + Int(o)
                        if store_io and first + SPAN <= NO:
                            out_row.unsafe_offset(first).unsafe_store[alignment=16](o, values)
                        else:
                            store_vector(out_row, at, NO, store_io, values)
                    comptime if KMAX == SMALL_STEP and not EXACT:
                        if not isfinite(sums.reduce_add()):
                            # Rare: a zero tap met an infinite input.
                            var w_start = w_row.unsafe_offset(1 - K if flip else 0)
                            redo_non_finite[dtype](
                                out_row, at, R, NO, x_row, N, w_start, K, 0, Int(shift), flip, start, has_bias, silu
                            )

        # The first pass outside the loop (the grid gives every block one):
        # no flag for the taps, and nothing of the loop's set up before its
        # loads go out.
        comptime if U == 1:
            read_taps()
        var batch = Int32(block_idx.z) if SPLITS_X else Int32(block_idx.y)
        var first_tile = Int32(block_idx.x) if SPLITS_X else Int32(block_idx.z)
        one_pass[True](batch, first_tile)
        var tile = first_tile + Int32(U) * splits
        while True:
            if tile >= tiles_per_row:
                batch += batch_step
                if batch >= batches:
                    return
                tile = first_tile
            one_pass[False](batch, tile)
            tile += Int32(U) * splits

    comptime if EXACT:
        pass_over_tiles[True, True]()
    else:
        if fits:
            pass_over_tiles[False, True]()
        else:
            pass_over_tiles[False, False]()
