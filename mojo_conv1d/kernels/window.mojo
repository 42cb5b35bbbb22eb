"""The register-window GPU kernel, correlate_window_gpu_kernel, for short
kernels (up to window_k_limit() taps): register windows, shifted between
neighbouring lanes by warp shuffles, with no shared-memory tiles. It computes
the sum given in common.mojo's docstring; gpu.mojo's correlate_gpu launches it
in two shapes (the SMALL_* one up to SMALL_K taps, window_outputs() outputs
per thread up to WINDOW_K taps).
"""

from std.math import ceildiv
from std.sys import size_of
from max.gpu import WARP_SIZE, barrier, block_idx, grid_dim, lane_id, thread_idx
from max.gpu.primitives.warp import shuffle_down
from max.gpu.memory import AddressSpace
from std.memory import stack_allocation

from .common import accum_type, load_vector, split_tile, store_vector


comptime SMALL_K = 12  # up to this many taps: one 16-byte vector of outputs per group, two groups per thread
comptime SMALL_TAPS = 16  # the taps array then: SMALL_K rounded up to whole 16-byte vectors of any dtype
comptime SMALL_STEP = 4  # taps per step then: a 16-bit vector of 8 outputs at K = 4 skips 4 zero taps
comptime SMALL_GROUPS = 2
comptime SMALL_THREADS = 128  # threads per block then: a block's fixed costs (its taps, a barrier) over 1024+ outputs
comptime WINDOW_K = 16  # at most this many taps: window_outputs() outputs per thread; beyond, the tiled kernel
comptime MAX_BLOCKS = 1 << 20  # beyond this many blocks, blocks loop over tiles


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
