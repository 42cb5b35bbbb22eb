"""float32 correlation on Hopper's tensor cores (warpgroup MMA, sm_90a), for
TC_MIN_K to TC_MAX_K taps: the op's fastest path there on the H200
(docs/kernels.md, "The tensor-core kernel").

A tile of TC_TILE outputs of one row of the sum (common.mojo's docstring) is
a matrix product D = A B:

    D[m, c] = out[TC_ROW m + c]            m < 64, c < TC_ROW
    A[m, t] = x[TC_ROW m + t - shift]      the inputs, a Hankel matrix (registers)
    B[t, c] = w'[t - c], zero outside the taps: their Toeplitz matrix (shared memory)

over t < 16 * steps, steps = ceil((k + TC_ROW - 1) / 16). The tensor cores
multiply bfloat16, so each float32 value is split into three bfloat16 parts
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
from std.memory import bitcast, stack_allocation
from max.gpu import barrier, block_idx, grid_dim, thread_idx
from max.gpu.compute.mma import (
    WGMMADescriptor,
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

from .common import split_tile


comptime TC_THREADS = 128  # one warpgroup
comptime TC_ROW = 32  # outputs per row of D: MMAs of shape m64 n32 k16
comptime TC_TILE = 64 * TC_ROW  # outputs per tile
comptime TC_MIN_K = 33  # below, no faster than the other kernels on an H200
comptime TC_MAX_K = 64  # B then has at most TC_STEPS steps of 16 rows
comptime TC_STEPS = ceildiv(TC_MAX_K + TC_ROW - 1, 16)
comptime TC_SPAN = TC_TILE + 16 * TC_STEPS  # inputs a tile reads
comptime TC_BLOCKS_PER_SM = 4  # as many as fit (122 registers a thread, 40 KB of shared memory)
comptime CORE = 64  # bfloat16 values in one 8 x 8 core matrix of B (128 bytes)
comptime CORES = (TC_ROW // 8) * 2  # core matrices in one step of B
comptime PARTS = 3
# (part of A, part of B) of each product, the smallest first.
comptime PRODUCTS = [(2, 0), (0, 2), (1, 1), (1, 0), (0, 1), (0, 0)]

comptime F32Ptr = Pointer[Float32, MutAnyOrigin]
comptime SharedBF16 = Pointer[BFloat16, MutUntrackedOrigin, address_space = AddressSpace.SHARED]


@always_inline
def padded(i: Int) -> Int:
    """Shared-memory slot of staged input i: 8 unused slots after every 32, so
    that the fragment reads of rows 32 inputs apart hit different banks."""
    return i + (i >> 5) * 8


comptime TC_BUFFER = padded(TC_SPAN) + 8  # one buffer of staged inputs


@always_inline
def widen_pairs[width: SIMDLength, //](h: SIMD[DType.bfloat16, width]) -> SIMD[DType.float32, width]:
    """h in float32 without conversions, two values per 32-bit word: the low
    half shifted up, the high half masked in place."""
    var u = bitcast[DType.uint32, width // 2](h)
    return bitcast[DType.float32, width]((u << 16).interleave(u & 0xFFFF0000))


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
def b_descriptor(bs: SharedBF16, part: Int, step: Int) -> WGMMADescriptor[DType.bfloat16]:
    """The descriptor of one part and step of B, laid out K-major without
    swizzling: core matrices (nb, kb) at (2 nb + kb) * 128 bytes, so 128
    bytes apart along K and 256 along N."""
    var address = Int(bs) + (part * TC_STEPS + step) * CORES * CORE * 2
    return WGMMADescriptor[DType.bfloat16](
        Int64((address >> 4) & 0x3FFF) | (Int64(128 >> 4) << 16) | (Int64(256 >> 4) << 32)
    )


@always_inline
def correlate_one(x_row: F32Ptr, w: F32Ptr, i: Int, n: Int, k: Int, shift: Int, flip: Bool) -> Float32:
    """out[i] by multiply-adds, inputs outside [0, n) read as zero."""
    var total = Float32(0)
    for j in range(k):
        var p = i + j - shift
        var xv = x_row.unsafe_load(p) if p >= 0 and p < n else Float32(0)
        total += xv * w.unsafe_load(k - 1 - j if flip else j)
    return total


def correlate_tensor_core_kernel[
    steps: Int
](
    output: F32Ptr,
    input: F32Ptr,
    kernel: F32Ptr,
    rows: Int64,
    n: Int64,
    k: Int64,
    shift: Int64,
    flip: Int32,
):
    """Each block (one warpgroup) loops over tiles b, b + grid, ... of all
    rows. It stages B once. A tile's inputs are copied into shared memory by
    cp.async a tile ahead (two buffers), zero-filled past the row's ends;
    each step's fragments of A are read from there, split, and its six MMAs
    issued before the next step's fragments are built, so the MMAs run while
    the warpgroup builds. Needs 16-byte aligned rows, shift % 4 == 0 and
    k + TC_ROW - 1 <= 16 steps. (steps is a parameter: with a run-time count
    the kernel took 132 registers instead of 120, too many for 4 blocks.)"""
    var bs = stack_allocation[
        PARTS * TC_STEPS * CORES * CORE, BFloat16, alignment=128, address_space = AddressSpace.SHARED
    ]()
    var xs = stack_allocation[2 * TC_BUFFER, Float32, alignment=128, address_space = AddressSpace.SHARED]()
    var tid = Int(thread_idx.x)
    var N = Int(n)
    var K = Int(k)
    var S = Int(shift)
    var flipped = flip != 0
    var tiles_per_row = ceildiv(N, TC_TILE)
    var total_tiles = Int(rows) * tiles_per_row

    # B, as three parts: part p of step s holds CORES core matrices (nb, kb),
    # rows c in [8 nb, 8 nb + 8), columns t in [16 s + 8 kb, + 8), each row's
    # 8 values of t contiguous. Two values of t per thread and pass.
    var e = tid
    while e < steps * TC_ROW * 8:
        var s = e // (TC_ROW * 8)
        var c = (e // 8) % TC_ROW
        var tl = 2 * (e % 8)
        var taps = SIMD[DType.float32, 2](0)
        comptime for h in range(2):
            var j = 16 * s + tl + h - c
            if j >= 0 and j < K:
                taps[h] = kernel.unsafe_load(K - 1 - j if flipped else j)
        var parts = split3(taps)
        var at = ((s * CORES + (c // 8) * 2 + tl // 8) * CORE) + (c % 8) * 8 + tl % 8
        bs.unsafe_store[alignment=4](at, parts[0])
        bs.unsafe_store[alignment=4](TC_STEPS * CORES * CORE + at, parts[1])
        bs.unsafe_store[alignment=4](2 * TC_STEPS * CORES * CORE + at, parts[2])
        e += TC_THREADS
    fence_async_view_proxy()  # B visible to the MMAs; the loop's first barrier, to every thread

    @always_inline
    @__parameter
    def copy_span(tile: Int, buffer: Int):
        """Starts copying the tile's inputs into the buffer, one commit group
        (empty past the last tile, so that there is one group per tile)."""
        if tile < total_tiles:
            var row_col = split_tile(tile, tiles_per_row, total_tiles)
            var x_row = input.unsafe_offset(row_col[0] * N)
            var start = row_col[1] * TC_TILE - S
            var src_tile = x_row.unsafe_offset(start)
            var dst_buffer = xs.unsafe_offset(buffer * TC_BUFFER)
            if start >= 0 and start + TC_SPAN <= N:
                # The whole span inside the row (most tiles): no checks.
                comptime for c in range(ceildiv(TC_SPAN // 4, TC_THREADS)):
                    var chunk = tid + c * TC_THREADS
                    if c * TC_THREADS + TC_THREADS <= TC_SPAN // 4 or chunk < TC_SPAN // 4:
                        async_copy[16](
                            src_tile.unsafe_offset(4 * chunk).unsafe_address_space_cast[AddressSpace.GLOBAL](),
                            dst_buffer.unsafe_offset(padded(4 * chunk)),
                        )
            else:
                var chunk = tid
                while chunk < TC_SPAN // 4:
                    var src = start + 4 * chunk
                    var dst = dst_buffer.unsafe_offset(padded(4 * chunk))
                    if src >= 0 and src + 4 <= N:
                        async_copy[16](x_row.unsafe_offset(src).unsafe_address_space_cast[AddressSpace.GLOBAL](), dst)
                    else:
                        var v = SIMD[DType.float32, 4](0)
                        comptime for h in range(4):
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
    var stride = Int(grid_dim.x)
    var tile = Int(block_idx.x)
    copy_span(tile, 0)
    var buffer = 0
    while tile < total_tiles:
        barrier()  # every thread is done with the other buffer
        copy_span(tile + stride, 1 - buffer)
        async_copy_wait_group(1)
        barrier()  # this tile's inputs, copied by every thread, are in place
        var x_at = buffer * TC_BUFFER
        var d = SIMD[DType.float32, TC_ROW // 2](0)
        comptime for s in range(steps):
            var c0 = 16 * s + 2 * q
            var v = SIMD[DType.float32, 8](0)
            v = v.insert[offset=0](xs.unsafe_load[width=2, alignment=8](x_at + padded(TC_ROW * r0 + c0)))
            v = v.insert[offset=2](xs.unsafe_load[width=2, alignment=8](x_at + padded(TC_ROW * r1 + c0)))
            v = v.insert[offset=4](xs.unsafe_load[width=2, alignment=8](x_at + padded(TC_ROW * r0 + c0 + 8)))
            v = v.insert[offset=6](xs.unsafe_load[width=2, alignment=8](x_at + padded(TC_ROW * r1 + c0 + 8)))
            var a = split3(v)
            wgmma_fence_aligned()
            comptime for i in range(6):
                comptime pa = PRODUCTS[i][0]
                comptime pb = PRODUCTS[i][1]
                d = wgmma_async[
                    64, TC_ROW, 16, DType.bfloat16, DType.float32, 8, TC_ROW // 2,
                    a_type=DType.bfloat16, b_type=DType.bfloat16,
                ](a[pa], b_descriptor(bs, pb, s), d)
        wgmma_commit_group_sync()
        wgmma_wait_group_sync()

        var row_col = split_tile(tile, tiles_per_row, total_tiles)
        var o_row = output.unsafe_offset(row_col[0] * N)
        var base = row_col[1] * TC_TILE
        # Accumulator 4 j + 2 h + l is D[r0 + 8 h, 8 j + 2 q + l].
        var o_thread = o_row.unsafe_offset(base + TC_ROW * r0 + 2 * q)
        var all_finite = isfinite(d.reduce_add())
        if base + TC_TILE <= N:
            comptime for j in range(TC_ROW // 8):
                comptime for h in range(2):
                    o_thread.unsafe_store[alignment=8](TC_ROW * 8 * h + 8 * j, d.slice[2, offset = 4 * j + 2 * h]())
        else:
            comptime for a in range(TC_ROW // 2):
                comptime at = TC_ROW * 8 * ((a // 2) % 2) + 8 * (a // 4) + a % 2
                if base + TC_ROW * r0 + 2 * q + at < N:
                    o_thread.unsafe_store(at, d[a])
        if not all_finite:
            # Rare: read this thread's outputs back and redo the non-finite ones.
            var x_row = input.unsafe_offset(row_col[0] * N)
            for a in range(TC_ROW // 2):
                var i = base + TC_ROW * r0 + 2 * q + TC_ROW * 8 * ((a // 2) % 2) + 8 * (a // 4) + a % 2
                if i < N and not isfinite(o_row.unsafe_load(i)):
                    o_row.unsafe_store(i, correlate_one(x_row, kernel, i, N, K, S, flipped))
        tile += stride
        buffer = 1 - buffer


def correlate_tensor_cores[
    dtype: DType
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
    vector_io: Bool,
) raises -> Bool:
    """Launches correlate_tensor_core_kernel and returns True where it applies:
    float32, a Hopper GPU (the kernels' compile target is sm_90a),
    TC_MIN_K <= k <= TC_MAX_K, and vector_io as correlate_gpu computes it
    (16-byte aligned rows; for float32, n and shift multiples of 4 as well).
    Returns False, launching nothing, anywhere else. correlate_gpu has
    returned before calling it for an empty input."""
    comptime if dtype == DType.float32 and DeviceContext.default_device_info.version == "sm_90a":
        if not vector_io or k < TC_MIN_K or k > TC_MAX_K:
            return False
        var steps = ceildiv(k + TC_ROW - 1, 16)
        var grid = min(rows * ceildiv(n, TC_TILE), ctx.get_attribute(DeviceAttribute.MULTIPROCESSOR_COUNT) * TC_BLOCKS_PER_SM)
        comptime for s in range(ceildiv(TC_MIN_K + TC_ROW - 1, 16), TC_STEPS + 1):
            if steps == s:
                stream.enqueue_function(
                    ctx.compile_function[correlate_tensor_core_kernel[s]](),
                    rebind[F32Ptr](output), rebind[F32Ptr](input), rebind[F32Ptr](kernel),
                    Int64(rows), Int64(n), Int64(k), Int64(shift), Int32(1 if flip else 0),
                    grid_dim=grid,
                    block_dim=TC_THREADS,
                )
        return True
    else:
        return False
