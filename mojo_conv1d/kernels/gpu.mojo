"""The host-side GPU entry points of the conv1d ops, shared by every op.

correlate_gpu computes the sum given in common.mojo's docstring, with a
filter per row where the depthwise op asks for one. It first offers the work
to tensor_cores.mojo (float32 from 33 taps, bfloat16 from 17, up to 64, on
Hopper GPUs); else it launches window.mojo's short kernel (up to SMALL_K
taps) or its register-window kernel (up to window_k_limit() taps), or
tiled.mojo's shared-memory tiles for longer ones. grad_kernel_gpu and
grad_kernel_channels_gpu launch grad_kernel.mojo's two-pass reductions for
the filters' gradient (one filter; a filter per channel). The CPU versions
are in cpu.mojo.
"""

from std.math import ceildiv
from std.sys import size_of
from max.gpu.host import DeviceAttribute, DeviceContext, DeviceStream

from .common import FLIP, HAS_BIAS, LOAD_VECTORS, SILU, STORE_VECTORS, THREADS, WHOLE_VECTORS, accum_type
from .grad_kernel import (
    G_VECTORS,
    GRAD_BLOCKS,
    GRAD_TAPS,
    GRAD_TILE,
    ROW_ITEMS,
    ROW_STEP,
    ROW_THREADS,
    X_VECTORS,
    grad_kernel_channels_kernel,
    grad_kernel_partials_kernel,
    grad_kernel_reduce_kernel,
    grad_kernel_rows_kernel,
    grad_kernel_short_kernel,
    row_load_width,
)
from .tensor_cores import TC_MAX_K, correlate_tensor_cores
from .tiled import BLOCKS_PER_SM, TILE, correlate_gpu_kernel
from .window import (
    GRID_Y,
    GROUP_BLOCKS,
    LONG_ROW_TILES,
    MAX_BLOCKS,
    SHORT_BLOCKS,
    SMALL_K,
    SMALL_STEP,
    SMALL_THREADS,
    SPLIT_TILES,
    WINDOW_K,
    correlate_short_gpu_kernel,
    correlate_window_gpu_kernel,
    window_k_limit,
    window_outputs,
)


def window_kernel_for[dtype: DType](k: Int, window_k: Int) -> Int:
    """Which kernel correlate_gpu launches for k taps (tensor cores aside):
    0 the short kernel, 1 the window kernel, 2 the tiled kernel."""
    if k <= SMALL_K:
        return 0
    if k <= min(window_k if window_k >= 0 else window_k_limit[dtype](), WINDOW_K):
        return 1
    return 2


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
    channels: Int = 1,
    n_out: Int = -1,
    bias: Int = 0,
    silu: Bool = False,
    blocks_per_sm: Int = BLOCKS_PER_SM,
    window_k: Int = -1,
    tensor_cores: Bool = True,
) raises:
    """Launches the tensor-core kernel where it applies (Hopper, see
    tensor_cores.mojo); else the short kernel for k <= SMALL_K, the window
    kernel for k <= window_k, and correlate_gpu_kernel beyond,
    with blocks_per_sm blocks per multiprocessor (or one per tile when there
    are fewer tiles). window_k is window_k_limit[dtype]() unless given;
    tuning sets it (at most WINDOW_K), and tensor_cores, to compare the kernels.

    The depthwise op's arguments: row r uses filter r % channels of kernel
    (channels, k); rows of output have n_out elements (n unless given); bias
    is the address of (channels,) biases or 0 for none; silu applies SiLU
    after it (common.mojo's `finish`).

    known_k is k when the caller knows it at compile time (the puzzle's op),
    else 0: then only the kernels that can run for that k are compiled, which
    saves most of the op's compile time."""
    if known_k != 0 and k != known_k:
        raise Error("correlate_gpu: compiled for ", known_k, " taps, called with ", k)
    var NO = n if n_out < 0 else n_out
    if rows == 0 or NO == 0:
        return
    # 16-byte accesses need 16-byte aligned rows, and spans that start on a
    # multiple of the vector width: tile, chunk and thread starts are, and
    # the input's shift is made one by reading `lead` zero taps first (see
    # common.mojo's tap_value), where that keeps the same kernel.
    comptime VW = 16 // size_of[dtype]()
    var loads_ok = Int(input) % 16 == 0 and (rows == 1 or n % VW == 0)
    var stores_ok = Int(output) % 16 == 0 and (rows == 1 or NO % VW == 0)
    var to_aligned = (VW - shift % VW) % VW  # zero taps that make the shift a whole vector
    var lead = to_aligned
    if not loads_ok or window_kernel_for[dtype](k + lead, window_k) != window_kernel_for[dtype](k, window_k):
        lead = 0
    if k <= SMALL_K:
        lead = 0  # the short kernel aligns its loads itself
    var K = k + lead
    var S = shift + lead
    var flags = (LOAD_VECTORS if loads_ok and (S % VW == 0 or k <= SMALL_K) else 0) | (STORE_VECTORS if stores_ok else 0)
    flags |= (FLIP if flip else 0) | (HAS_BIAS if bias != 0 else 0) | (SILU if silu else 0)
    var b = Pointer[Scalar[dtype], MutAnyOrigin](unsafe_from_address=bias)
    comptime if known_k == 0 or (known_k >= 17 and known_k <= TC_MAX_K):
        if tensor_cores:
            # The tensor-core kernel aligns its own reads the same way.
            var tc_lead = to_aligned if loads_ok else 0
            if correlate_tensor_cores[dtype](
                ctx, stream, output, input, kernel, b, rows, n, NO, k + tc_lead, k, tc_lead, shift + tc_lead,
                channels, flags | (LOAD_VECTORS if loads_ok else 0),
            ):
                return
    var args = (
        Int64(rows), Int64(n), Int64(NO), Int64(K), Int64(k), Int64(lead), Int64(S), Int64(channels), Int32(flags)
    )
    comptime if known_k == 0 or known_k <= SMALL_K:
        if K <= SMALL_K:
            # The kernel for this offset of the first input within a vector.
            var d = to_aligned
            # Loads start on a multiple of VW, so in aligned rows of whole
            # vectors each lies inside the row or wholly outside it: the
            # kernel checks one 32-bit index per load, and keeps every index
            # within a row in 32 bits, where rows are short enough for that
            # and the output's rows are aligned too.
            var whole = loads_ok and stores_ok and n % VW == 0 and n < (1 << 30) and NO < (1 << 30) and abs(shift + d) < (1 << 30)
            var short_flags = flags | (WHOLE_VECTORS if whole else 0)
            # SMALL_STEP taps, every filter's aligned for one load, in such
            # rows: the kernel with nothing else to check.
            var exact = known_k == 0 and whole and k == SMALL_STEP and Int(kernel) % (SMALL_STEP * size_of[dtype]()) == 0
            # Each row in enough blocks for about SHORT_BLOCKS in all.
            var tiles_per_row = ceildiv(NO, SMALL_THREADS * VW)
            var splits = max(1, min(tiles_per_row, ceildiv(SHORT_BLOCKS, rows)))
            # 16-bit data up to SMALL_STEP taps: a block that walks its row's
            # tiles in order takes two a pass, so that their loads go out
            # together, and a row of two tiles is one block's pass, except
            # in the exact kernel, whose setup is short enough that a block
            # a tile measured faster.
            var pairs = size_of[dtype]() == 2 and K <= SMALL_STEP
            if pairs and tiles_per_row == 2 and not exact:
                splits = 1
            var per_pass = 2 if pairs and splits == 1 and tiles_per_row >= 2 else 1
            var across = channels if channels > 1 else rows
            # float32 rows of LONG_ROW_TILES tiles or more, several of them, up
            # to SMALL_STEP taps: blocks of SPLIT_TILES tiles, the splits the
            # grid's x, so that the blocks running at once cover a few spans
            # of rows instead of a row each (one row's blocks already do).
            var splits_x = known_k == 0 and size_of[dtype]() == 4 and K <= SMALL_STEP and tiles_per_row >= LONG_ROW_TILES and rows > 1 and across <= GRID_Y
            if splits_x:
                splits = ceildiv(tiles_per_row, SPLIT_TILES)
            if rows > Int(Int32.MAX) or tiles_per_row > Int(Int32.MAX):
                raise Error("correlate_gpu: ", rows, " rows of ", NO, " outputs are more than one launch takes")
            # The grid's x is the filter (every row where they share one),
            # its y the batch: blocks take batches y, y + grid y, ... A row
            # of one tile is as much setup as work, so there a block takes
            # several batches, as many as leave about GROUP_BLOCKS blocks.
            var batches = rows // across
            var group = max(1, min(batches, rows // GROUP_BLOCKS)) if tiles_per_row == 1 else 1
            var batch_blocks = min(GRID_Y, ceildiv(batches, group))
            var first_tap = kernel.unsafe_offset(k - 1 if flip else 0)
            var w_stride = Int32(k if channels > 1 else 0)
            comptime for D in range(VW if known_k == 0 else 1):
                if d == D:
                    # The kernel with 4 taps at most (Mamba's) needs fewer registers.
                    comptime for KM in range(2):
                        comptime KMAX = SMALL_STEP if KM == 0 else SMALL_K
                        comptime if known_k == 0 or (known_k <= SMALL_STEP) == (KM == 0):
                            if (K <= SMALL_STEP) == (KM == 0):
                                comptime for U in range(1, 3 if KMAX == SMALL_STEP and size_of[dtype]() == 2 else 2):
                                    comptime for X in range(2 if known_k == 0 and KMAX == SMALL_STEP and size_of[dtype]() == 4 else 1):
                                        comptime for E in range(2 if known_k == 0 and KMAX == SMALL_STEP else 1):
                                            if per_pass == U and splits_x == (X == 1) and exact == (E == 1):
                                                comptime short = correlate_short_gpu_kernel[dtype, D, KMAX, U, X == 1, E == 1]
                                                stream.enqueue_function(
                                                    ctx.compile_function[short](),
                                                    output, input, first_tap, b, Int64(n), Int64(NO), Int64(shift),
                                                    Int32(k), w_stride, Int32(batches), Int32(tiles_per_row), Int32(short_flags),
                                                    grid_dim=(splits, across, batch_blocks) if splits_x else (across, batch_blocks, splits),
                                                    block_dim=SMALL_THREADS,
                                                )
                                                return
            raise Error("correlate_gpu: the puzzle's kernel is built for shift 0")
    comptime if known_k == 0 or (known_k > SMALL_K and known_k <= WINDOW_K):
        if window_kernel_for[dtype](K, window_k) == 1:
            comptime R = window_outputs[dtype]()
            comptime window = correlate_window_gpu_kernel[dtype, R, R, 1, WINDOW_K, THREADS]
            var tiles = rows * ceildiv(NO, THREADS * R)
            stream.enqueue_function(
                ctx.compile_function[window](),
                output, input, kernel, b, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8],
                grid_dim=min(tiles, MAX_BLOCKS),
                block_dim=THREADS,
            )
            return
    comptime if known_k == 0 or known_k > SMALL_K:
        var tiles = rows * ceildiv(NO, TILE)
        var sms = ctx.get_attribute(DeviceAttribute.MULTIPROCESSOR_COUNT)
        comptime tiled = correlate_gpu_kernel[dtype]
        stream.enqueue_function(
            ctx.compile_function[tiled](),
            output, input, kernel, b, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8],
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


def grad_kernel_channels_splits(rows: Int, n_out: Int) -> Int:
    """Blocks per row in grad_kernel_channels_gpu's first pass: enough for
    about ROW_ITEMS blocks in all, at most one per ROW_STEP positions."""
    return max(1, min(ceildiv(ROW_ITEMS, rows), ceildiv(n_out, ROW_STEP)))


def grad_kernel_channels_scratch(rows: Int, n_out: Int, k: Int) -> Int:
    """Elements (of accum_type) of the scratch buffer grad_kernel_channels_gpu
    needs: one partial sum per row, split and tap."""
    return rows * grad_kernel_channels_splits(rows, n_out) * k


def grad_kernel_channels_gpu[
    dtype: DType
](
    ctx: DeviceContext,
    stream: DeviceStream,
    grad_kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    grad_output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    partials: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin],
    batch: Int,
    channels: Int,
    n: Int,
    n_out: Int,
    k: Int,
    shift: Int,
) raises:
    """The depthwise filters' gradient, grad_kernel (channels, k): tap j of
    channel c sums grad_output[r, i] * input[r, i + j - shift] over the rows
    r = b * channels + c (input rows of n, grad_output rows of n_out) and
    i < n_out, in two launches on `stream`. `partials` holds
    grad_kernel_channels_scratch(batch * channels, n_out, k) elements."""
    var rows = batch * channels
    if rows == 0:
        return
    comptime LW = row_load_width[dtype]()
    var splits = grad_kernel_channels_splits(rows, n_out)
    var x_ok = Int(input) % (LW * size_of[dtype]()) == 0 and (rows == 1 or n % LW == 0)
    var g_ok = Int(grad_output) % (LW * size_of[dtype]()) == 0 and (rows == 1 or n_out % LW == 0)
    var lead = (LW - shift % LW) % LW if x_ok else 0
    var flags = (X_VECTORS if x_ok else 0) | (G_VECTORS if g_ok else 0)
    var args = (
        Int64(rows), Int64(n), Int64(n_out), Int64(k + lead), Int64(k), Int64(lead), Int64(shift + lead),
        Int64(splits), Int32(flags),
    )
    if k <= SMALL_K:
        # The short kernel's reads: 16-byte vectors, the input's offset in
        # one (d) a kernel parameter.
        comptime VW = 16 // size_of[dtype]()
        var tiles_per_row = ceildiv(n_out, SMALL_THREADS * VW)
        var vectors = (X_VECTORS if Int(input) % 16 == 0 and (rows == 1 or n % VW == 0) else 0) | (
            G_VECTORS if Int(grad_output) % 16 == 0 and (rows == 1 or n_out % VW == 0) else 0
        )
        if rows > Int(Int32.MAX) or tiles_per_row > Int(Int32.MAX):
            raise Error("grad_kernel_channels_gpu: ", rows, " rows of ", n_out, " positions are more than one launch takes")
        var d = (VW - shift % VW) % VW
        comptime for D in range(VW):
            if d == D:
                comptime for KM in range(2):
                    comptime KMAX = SMALL_STEP if KM == 0 else SMALL_K
                    if (k <= SMALL_STEP) == (KM == 0):
                        comptime short = grad_kernel_short_kernel[dtype, D, KMAX]
                        stream.enqueue_function(
                            ctx.compile_function[short](),
                            partials, grad_output, input, Int64(n), Int64(n_out), Int64(shift),
                            Int32(k), Int32(tiles_per_row), Int32(vectors),
                            grid_dim=(rows, splits),
                            block_dim=SMALL_THREADS,
                        )
    else:
        comptime wide = grad_kernel_rows_kernel[dtype, 16]
        stream.enqueue_function(
            ctx.compile_function[wide](),
            partials, grad_output, input, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8],
            grid_dim=min(rows * splits, MAX_BLOCKS),
            block_dim=ROW_THREADS,
        )
    comptime second = grad_kernel_channels_kernel[dtype]
    stream.enqueue_function(
        ctx.compile_function[second](),
        grad_kernel, partials, Int64(batch), Int64(channels), Int64(k), Int64(splits),
        grid_dim=ceildiv(channels * k, THREADS),
        block_dim=THREADS,
    )
