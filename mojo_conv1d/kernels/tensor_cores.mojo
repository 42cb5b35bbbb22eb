"""Correlation on Hopper's tensor cores (warpgroup MMA, sm_90a), for float32
and bfloat16 and tc_min_k() to TC_MAX_K taps: the op's fastest path
there on the H200 (docs/kernels.md, "The tensor-core kernel").

A tile of TC_TILE outputs of one row of the sum (common.mojo's docstring) is
a matrix product D = A B:

    D[m, c] = out[TC_ROW m + c]            m < 64, c < TC_ROW
    A[m, t] = x[TC_ROW m + t - shift]      the inputs, a Hankel matrix (registers)
    B[t, c] = w'[t - c], zero outside the taps: their Toeplitz matrix (shared memory)

over t < 16 * steps, steps = ceil((k + TC_ROW - 1) / 16). bfloat16 data go
to the tensor cores as they are, with float32 sums: one MMA per step. (The
MMA with A in registers does not instantiate for float16 in this MAX, so
float16 stays on the other kernels.) For float32 the tensor cores multiply bfloat16, so each float32
value is split into three bfloat16 parts
(x = x0 + x1 + x2, each the rounding of what the parts before it left), and
the six products of parts whose weights reach 2^-16 are summed in float32:
the error stays near float32's (about 5e-7 of sum |x w|, against 2e-7 for
multiply-adds).

A product against B's zeros turns an infinite or NaN input into NaN in
outputs whose window does not hold it, and an infinite tap into NaN
everywhere; so any output that comes out infinite or NaN is computed again
with multiply-adds, which gives exactly what the sum defines.
"""

from std.math import ceildiv, isfinite
from std.sys import size_of
from std.utils import StaticTuple
from max.gpu.globals import MAX_THREADS_PER_BLOCK_METADATA
from std.memory import stack_allocation
from max.gpu import barrier, block_idx, grid_dim, thread_idx
from max.gpu.compute.mma import (
    WGMMADescriptor,
    ld_matrix,
    wgmma_async,
    wgmma_commit_group_sync,
    wgmma_fence_aligned,
    wgmma_wait_group_sync,
)
from max.gpu.host import DeviceAttribute, DeviceContext, DeviceStream
from max.gpu.memory import (
    AddressSpace,
    async_copy,
    async_copy_commit_group,
    async_copy_wait_group,
    fence_async_view_proxy,
)

from .common import (
    FLIP,
    HAS_BIAS,
    LOAD_VECTORS,
    SILU,
    STORE_VECTORS,
    exact_sum,
    finish,
    split_tile,
    tap_value,
    widen_pairs,
)


comptime TC_THREADS = 128  # one warpgroup
comptime TC_ROW = 32  # outputs per row of D: MMAs of shape m64 n32 k16
comptime TC_TILE = 64 * TC_ROW  # outputs per tile
comptime TC_MAX_K = 64  # B then has at most TC_STEPS steps of 16 rows
comptime TC_STEPS = ceildiv(TC_MAX_K + TC_ROW - 1, 16)
comptime TC_SPAN_K = 16 * TC_STEPS - TC_ROW + 1  # taps those steps hold, lead zeros included
comptime TC_SPAN = TC_TILE + 16 * TC_STEPS  # inputs a tile reads
comptime CORE = 64  # bfloat16 values in one 8 x 8 core matrix of B (128 bytes)
comptime CORES = (TC_ROW // 8) * 2  # core matrices in one step of B
comptime PARTS = 3  # bfloat16 parts of a float32 value
# (part of A, part of B) of each product of a float32 step, the smallest first.
comptime PRODUCTS = [(2, 0), (0, 2), (1, 1), (1, 0), (0, 1), (0, 0)]


def tc_blocks_per_sm[dtype: DType]() -> Int:
    """Blocks a multiprocessor holds, the launch bound: float32 fits four
    (128 registers a thread, 40 KB of shared memory); bfloat16 five (at
    most 102 registers, none spilled), which measured faster than four."""
    return 5 if dtype == DType.bfloat16 else 4


def tc_min_k[dtype: DType]() -> Int:
    """The fewest taps this kernel takes: for float32, below 33 it measured no
    faster than the other kernels on an H200; bfloat16 needs no split, and
    the window kernel takes it up to 16 taps."""
    return 33 if dtype == DType.float32 else 17


comptime mma_type[dtype: DType] = DType.bfloat16 if dtype == DType.float32 else dtype
comptime parts_of[dtype: DType] = PARTS if dtype == DType.float32 else 1
comptime Ptr[dtype: DType] = Pointer[Scalar[dtype], MutAnyOrigin]
comptime SharedB[dtype: DType] = Pointer[Scalar[mma_type[dtype]], MutUntrackedOrigin, address_space = AddressSpace.SHARED]


@always_inline
def padded(i: Int) -> Int:
    """Shared-memory slot of staged input i: 8 unused slots after every 32, so
    that the fragment reads of rows 32 inputs apart hit different banks."""
    return i + (i >> 5) * 8


comptime TC_BUFFER = padded(TC_SPAN) + 8  # one buffer of staged inputs
comptime TC_Y_ROW = TC_ROW + 8  # a row of D staged for the stores: 8 unused slots keep a warp's writes on different banks


@always_inline
def split3[width: SIMDLength, //](v: SIMD[DType.float32, width]) -> Tuple[
    SIMD[DType.bfloat16, width], SIMD[DType.bfloat16, width], SIMD[DType.bfloat16, width]
]:
    """v as three bfloat16 parts, each the rounding of what the parts before
    it left. Two values per conversion (cvt.rn.bf16x2.f32): this split, not
    the MMAs, set the kernel's pace, and converting values in pairs measured
    faster on an H200 than one conversion per value."""
    var h0 = v.cast[DType.bfloat16]()
    var r1 = v - widen_pairs(h0)
    var h1 = r1.cast[DType.bfloat16]()
    var h2 = (r1 - widen_pairs(h1)).cast[DType.bfloat16]()
    return (h0, h1, h2)


@always_inline
def b_descriptor[dtype: DType](bs: SharedB[dtype], part: Int, step: Int) -> WGMMADescriptor[mma_type[dtype]]:
    """The descriptor of one part and step of B, laid out K-major without
    swizzling: core matrices (nb, kb) at (2 nb + kb) * 128 bytes, so 128
    bytes apart along K and 256 along N."""
    var address = Int(bs) + (part * TC_STEPS + step) * CORES * CORE * 2
    return WGMMADescriptor[mma_type[dtype]](
        Int64((address >> 4) & 0x3FFF) | (Int64(128 >> 4) << 16) | (Int64(256 >> 4) << 32)
    )


# Launch bounds: tc_blocks_per_sm() blocks of TC_THREADS per multiprocessor,
# so ptxas keeps to 65536 / (blocks * 128) registers a thread.
@__llvm_metadata(
    MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(TC_THREADS)),
    `nvvm.minctasm`=SIMDLength(tc_blocks_per_sm[dtype]()),
)
def correlate_tensor_core_kernel[
    dtype: DType, steps: Int
](
    output: Ptr[dtype],
    input: Ptr[dtype],
    kernel: Ptr[dtype],
    bias: Ptr[dtype],
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
    """Each block (one warpgroup) loops over tiles of all rows: a run of
    consecutive ones, or every blocks-th one (bfloat16, one filter). It
    stages B for the tile's filter (row r uses filter r % channels, read
    after `lead` zeros as in window.mojo), again only when the filter
    changes. A tile's inputs are copied into shared memory by cp.async a
    tile ahead (two buffers), zero-filled past the row's ends; each step's
    fragments of A are read from there (in bfloat16 by one ldmatrix,
    in float32 by four loads, then split), and its
    MMAs issued before the next step's fragments are built, so the MMAs run
    while the warpgroup builds. Outputs get common.mojo's `finish`. Needs
    16-byte aligned rows, shift a multiple of 16 bytes' elements and
    k + TC_ROW - 1 <= 16 steps. (steps is a parameter: with a run-time count
    the float32 kernel took 132 registers instead of 120, too many for 4 blocks.)"""
    comptime MMA = mma_type[dtype]
    comptime P = parts_of[dtype]
    comptime VW = 16 // size_of[dtype]()  # elements per cp.async of 16 bytes
    var bs = stack_allocation[
        P * TC_STEPS * CORES * CORE, Scalar[MMA], alignment=128, address_space = AddressSpace.SHARED
    ]()
    var xs = stack_allocation[2 * TC_BUFFER, Scalar[dtype], alignment=128, address_space = AddressSpace.SHARED]()
    var ws = stack_allocation[TC_SPAN_K, Float32, alignment=16, address_space = AddressSpace.SHARED]()  # B's filter
    var tid = Int(thread_idx.x)
    var N = Int(n)
    var NO = Int(n_out)
    var K = Int(k)
    var KT = Int(taps)
    var LEAD = Int(lead)
    var S = Int(shift)
    var C = Int(channels)
    var f = Int(flags)
    var flipped = f & FLIP != 0
    var has_bias = f & HAS_BIAS != 0
    var silu = f & SILU != 0
    var tiles_per_row = ceildiv(NO, TC_TILE)
    var total_tiles = Int(rows) * tiles_per_row
    var channel_tiles = Int(rows) // C * tiles_per_row  # tiles of one channel's rows

    @always_inline
    @__parameter
    def place(tile: Int) -> Tuple[Int, Int, Int]:
        """(row, tile within the row, channel) of a tile, the tiles taken
        channel by channel (the rows b * channels + c of channel c together),
        so that a run of consecutive tiles changes filter seldom."""
        var c_rest = split_tile(tile, channel_tiles, total_tiles)
        var b_col = split_tile(c_rest[1], tiles_per_row, channel_tiles)
        return (b_col[0] * C + c_rest[0], b_col[1], c_rest[0])

    @always_inline
    @__parameter
    def stage_b(channel: Int):
        """B for this filter, as P parts: part p of step s holds CORES core
        matrices (nb, kb), rows c in [8 nb, 8 nb + 8), columns t in
        [16 s + 8 kb, + 8), each row's 8 values of t contiguous. Two values
        of t per thread and pass."""
        # The filter's taps first, one load per thread, so that building B
        # waits on memory once rather than once per pass.
        var w_row = kernel.unsafe_offset(channel * KT)
        if tid < TC_SPAN_K:
            ws.unsafe_store(tid, rebind[Float32](tap_value(w_row, tid, KT, LEAD, flipped)))
        barrier()
        var e = tid
        while e < steps * TC_ROW * 8:
            var s = e // (TC_ROW * 8)
            var c = (e // 8) % TC_ROW
            var tl = 2 * (e % 8)
            var pair = SIMD[DType.float32, 2](0)
            comptime for h in range(2):
                var j = 16 * s + tl + h - c
                if j >= 0 and j < K:
                    pair[h] = ws.unsafe_load(j)
            var at = ((s * CORES + (c // 8) * 2 + tl // 8) * CORE) + (c % 8) * 8 + tl % 8
            comptime if P == 1:
                bs.unsafe_store[alignment=4](at, pair.cast[MMA]())
            else:
                var parts = split3(pair)
                bs.unsafe_store[alignment=4](at, rebind[SIMD[MMA, 2]](parts[0]))
                bs.unsafe_store[alignment=4](TC_STEPS * CORES * CORE + at, rebind[SIMD[MMA, 2]](parts[1]))
                bs.unsafe_store[alignment=4](2 * TC_STEPS * CORES * CORE + at, rebind[SIMD[MMA, 2]](parts[2]))
            e += TC_THREADS
        fence_async_view_proxy()  # B visible to the MMAs; the next barrier, to every thread

    @always_inline
    @__parameter
    def copy_span(tile: Int, buffer: Int):
        """Starts copying the tile's inputs into the buffer, one commit group
        (empty past the last tile, so that there is one group per tile)."""
        if tile < total_tiles:
            var row_col = place(tile)
            var x_row = input.unsafe_offset(row_col[0] * N)
            var start = row_col[1] * TC_TILE - S
            var src_tile = x_row.unsafe_offset(start)
            var dst_buffer = xs.unsafe_offset(buffer * TC_BUFFER)
            if start >= 0 and start + TC_SPAN <= N:
                # The whole span inside the row (most tiles): no checks.
                comptime for c in range(ceildiv(TC_SPAN // VW, TC_THREADS)):
                    var chunk = tid + c * TC_THREADS
                    if c * TC_THREADS + TC_THREADS <= TC_SPAN // VW or chunk < TC_SPAN // VW:
                        async_copy[16](
                            src_tile.unsafe_offset(VW * chunk).unsafe_address_space_cast[AddressSpace.GLOBAL](),
                            dst_buffer.unsafe_offset(padded(VW * chunk)),
                        )
            else:
                var chunk = tid
                while chunk < TC_SPAN // VW:
                    var src = start + VW * chunk
                    var dst = dst_buffer.unsafe_offset(padded(VW * chunk))
                    if src >= 0 and src + VW <= N:
                        async_copy[16](x_row.unsafe_offset(src).unsafe_address_space_cast[AddressSpace.GLOBAL](), dst)
                    else:
                        var v = SIMD[dtype, VW](0)
                        comptime for h in range(VW):
                            if src + h >= 0 and src + h < N:
                                v[h] = x_row.unsafe_load(src + h)
                        dst.unsafe_store[alignment=16](0, v)
                    chunk += TC_THREADS
        async_copy_commit_group()

    # This thread's place in the fragments: rows r0 and r1 of D, pair q of columns.
    var lane = tid % 32
    var q = lane % 4
    var r0 = 16 * (tid // 32) + lane // 4
    var r1 = r0 + 8
    # The row of A and first column this lane points ldmatrix at.
    var m_lane = 16 * (tid // 32) + lane % 8 + 8 * ((lane // 8) % 2)
    var t_lane = 8 * (lane // 16)
    # Each block takes a run of consecutive tiles, so that with a filter per
    # row it restages B only when its run enters a new channel. bfloat16
    # with one filter instead takes tiles b, b + blocks, ... in block b: the
    # blocks running at once then read neighbouring spans of memory, which
    # measured faster there (and slower for float32).
    var blocks = Int(grid_dim.x)
    var per_block = ceildiv(total_tiles, blocks)
    var spread = dtype == DType.bfloat16 and C == 1
    var tile = Int(block_idx.x) if spread else Int(block_idx.x) * per_block
    var end = total_tiles if spread else min(total_tiles, tile + per_block)
    var stride = blocks if spread else 1
    var staged = -1  # the filter in B
    copy_span(tile if tile < end else total_tiles, 0)
    var buffer = 0
    while tile < end:
        barrier()  # every thread is done with the other buffer, and with B
        copy_span(tile + stride if tile + stride < end else total_tiles, 1 - buffer)
        var row_col = place(tile)
        var channel = row_col[2]
        if channel != staged:
            stage_b(channel)
            staged = channel
        async_copy_wait_group(1)
        barrier()  # this tile's inputs, copied by every thread, and B are in place
        var x_at = buffer * TC_BUFFER
        var d = SIMD[DType.float32, TC_ROW // 2](0)
        comptime for s in range(steps):
            comptime if P == 1:
                # One ldmatrix: lane l gives the address of row l % 8 of
                # 8 x 8 block l / 8 (blocks: rows r0's and r1's, then columns + 8).
                var v = ld_matrix[simd_width=8](xs.unsafe_offset(x_at + padded(TC_ROW * m_lane + 16 * s + t_lane)))
                wgmma_fence_aligned()
                d = wgmma_async[64, TC_ROW, 16, MMA, DType.float32, 8, TC_ROW // 2, a_type=MMA, b_type=MMA](
                    rebind[SIMD[MMA, 8]](v), b_descriptor[dtype](bs, 0, s), d
                )
            else:
                var c0 = 16 * s + 2 * q
                var v = SIMD[dtype, 8](0)
                v = v.insert[offset=0](xs.unsafe_load[width=2, alignment = 2 * size_of[dtype]()](x_at + padded(TC_ROW * r0 + c0)))
                v = v.insert[offset=2](xs.unsafe_load[width=2, alignment = 2 * size_of[dtype]()](x_at + padded(TC_ROW * r1 + c0)))
                v = v.insert[offset=4](xs.unsafe_load[width=2, alignment = 2 * size_of[dtype]()](x_at + padded(TC_ROW * r0 + c0 + 8)))
                v = v.insert[offset=6](xs.unsafe_load[width=2, alignment = 2 * size_of[dtype]()](x_at + padded(TC_ROW * r1 + c0 + 8)))
                var a = split3(rebind[SIMD[DType.float32, 8]](v))
                wgmma_fence_aligned()
                comptime for i in range(6):
                    comptime pa = PRODUCTS[i][0]
                    comptime pb = PRODUCTS[i][1]
                    d = wgmma_async[64, TC_ROW, 16, MMA, DType.float32, 8, TC_ROW // 2, a_type=MMA, b_type=MMA](
                        rebind[SIMD[MMA, 8]](a[pa]), b_descriptor[dtype](bs, pb, s), d
                    )
        wgmma_commit_group_sync()
        wgmma_wait_group_sync()

        var o_row = output.unsafe_offset(row_col[0] * NO)
        var base = row_col[1] * TC_TILE
        # Accumulator 4 j + 2 h + l is D[r0 + 8 h, 8 j + 2 q + l].
        var o_thread = o_row.unsafe_offset(base + TC_ROW * r0 + 2 * q)
        var row_bias = Float32(0)
        if has_bias:
            row_bias = bias.unsafe_load(channel).cast[DType.float32]()
        var values = finish[DType.float32, TC_ROW // 2](d, SIMD[DType.float32, TC_ROW // 2](row_bias), has_bias, silu).cast[dtype]()
        var all_finite = isfinite(d.reduce_add())

        @always_inline
        @__parameter
        def exact(i: Int) -> Scalar[dtype]:
            """Output i of the row over the filter's own taps (for the rare
            output that came out infinite or NaN)."""
            var x_row = input.unsafe_offset(row_col[0] * N)
            var w_row = kernel.unsafe_offset(channel * KT)
            var total = rebind[Float32](exact_sum(x_row, N, w_row, i, KT, LEAD, S, flipped))
            return finish[DType.float32, 1](total, row_bias, has_bias, silu).cast[dtype]()

        if base + TC_TILE <= NO and C == 1:
            # A whole tile of the one filter: through shared memory (this
            # tile's input buffer, which the MMAs are done with), so that the
            # stores to memory are 16-byte vectors; a thread's own outputs
            # are pairs 32 apart. With a filter per channel the two barriers
            # a tile measured slower than the pairs' half sectors.
            var ys = xs.unsafe_offset(x_at)
            barrier()  # every thread's fragments of this buffer are read
            comptime for j in range(TC_ROW // 8):
                comptime for h in range(2):
                    ys.unsafe_store[alignment = 2 * size_of[dtype]()](
                        TC_Y_ROW * (r0 + 8 * h) + 8 * j + 2 * q, values.slice[2, offset = 4 * j + 2 * h]()
                    )
            if not all_finite:
                # Rare: redo this thread's non-finite outputs where it staged them.
                for a in range(TC_ROW // 2):
                    var at = TC_Y_ROW * (r0 + 8 * ((a // 2) % 2)) + 8 * (a // 4) + 2 * q + a % 2
                    if not isfinite(ys.unsafe_load(at)):
                        ys.unsafe_store(at, exact(base + TC_ROW * r0 + 2 * q + TC_ROW * 8 * ((a // 2) % 2) + 8 * (a // 4) + a % 2))
            barrier()
            comptime ROW_VECTORS = TC_ROW // VW
            comptime for c in range(64 * ROW_VECTORS // TC_THREADS):
                var v = tid + c * TC_THREADS
                var row = v // ROW_VECTORS
                var col = (v % ROW_VECTORS) * VW
                o_row.unsafe_store[alignment=16](
                    base + TC_ROW * row + col, ys.unsafe_load[width=VW, alignment=16](TC_Y_ROW * row + col)
                )
        else:
            if base + TC_TILE <= NO:
                comptime for j in range(TC_ROW // 8):
                    comptime for h in range(2):
                        o_thread.unsafe_store[alignment = 2 * size_of[dtype]()](
                            TC_ROW * 8 * h + 8 * j, values.slice[2, offset = 4 * j + 2 * h]()
                        )
            else:
                comptime for a in range(TC_ROW // 2):
                    comptime at = TC_ROW * 8 * ((a // 2) % 2) + 8 * (a // 4) + a % 2
                    if base + TC_ROW * r0 + 2 * q + at < NO:
                        o_thread.unsafe_store(at, values[a])
            if not all_finite:
                # Rare: read this thread's outputs back and redo the non-finite ones.
                for a in range(TC_ROW // 2):
                    var i = base + TC_ROW * r0 + 2 * q + TC_ROW * 8 * ((a // 2) % 2) + 8 * (a // 4) + a % 2
                    if i < NO and not isfinite(o_row.unsafe_load(i)):
                        o_row.unsafe_store(i, exact(i))
        tile += stride
        buffer = 1 - buffer


def correlate_tensor_cores[
    dtype: DType
](
    ctx: DeviceContext,
    stream: DeviceStream,
    output: Ptr[dtype],
    input: Ptr[dtype],
    kernel: Ptr[dtype],
    bias: Ptr[dtype],
    rows: Int,
    n: Int,
    n_out: Int,
    k: Int,
    taps: Int,
    lead: Int,
    shift: Int,
    channels: Int,
    flags: Int,
) raises -> Bool:
    """Launches correlate_tensor_core_kernel and returns True where it applies:
    float32 or bfloat16 on a Hopper GPU (the kernels' compile target
    is sm_90a), at most TC_MAX_K taps, tc_min_k() <= k <= TC_SPAN_K (k counting
    the lead zeros), and
    16-byte loads and stores allowed by flags (aligned rows, shift a multiple
    of the vector width), as correlate_gpu computes them. Returns False,
    launching nothing, anywhere else. correlate_gpu has returned before
    calling it for an empty input."""
    comptime if (dtype == DType.float32 or dtype == DType.bfloat16) and DeviceContext.default_device_info.version == "sm_90a":
        if flags & (LOAD_VECTORS | STORE_VECTORS) != LOAD_VECTORS | STORE_VECTORS:
            return False
        if k < tc_min_k[dtype]() or taps > TC_MAX_K or k > TC_SPAN_K:
            return False
        var steps = ceildiv(k + TC_ROW - 1, 16)
        var grid = min(rows * ceildiv(n_out, TC_TILE), ctx.get_attribute(DeviceAttribute.MULTIPROCESSOR_COUNT) * tc_blocks_per_sm[dtype]())
        comptime for s in range(ceildiv(tc_min_k[dtype]() + TC_ROW - 1, 16), TC_STEPS + 1):
            if steps == s:
                stream.enqueue_function(
                    ctx.compile_function[correlate_tensor_core_kernel[dtype, s]](),
                    output, input, kernel, bias,
                    Int64(rows), Int64(n), Int64(n_out), Int64(k), Int64(taps), Int64(lead), Int64(shift),
                    Int64(channels), Int32(flags),
                    grid_dim=grid,
                    block_dim=TC_THREADS,
                )
        return True
    else:
        return False
