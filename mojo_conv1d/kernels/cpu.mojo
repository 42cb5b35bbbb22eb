"""The CPU kernels of the conv1d ops: correlate_cpu, the sum given in
common.mojo's docstring (SIMD over outputs, parallel over chunks of rows), and
grad_kernel_cpu, the gradient with respect to the kernel (partial sums added
in a fixed order); and the constants that size and route their work items.
"""

from std.math import ceildiv
from std.sys import simd_width_of
from max.algorithm import sync_parallelize

from .common import accum_type, finish


comptime CPU_CHUNK = 65536  # outputs per parallel work item: fewer, larger items cost the thread pool less
# Up to this many taps a call is memory-bound and runs on the calling thread:
# on a 2-core machine that measured faster than MAX's two workers, which,
# right after a PyTorch copy_, also compete with its still-spinning OpenMP threads.
comptime CPU_SERIAL_MAX_K = 8
# ... and below this many outputs: a larger call moves enough memory that the
# pool's second worker pays for itself, and its fresh output pages fault in
# on both cores.
comptime CPU_SERIAL_MAX_OUTPUTS = 1 << 23
comptime STREAM_ALIGN = 64  # output blocks starting at this byte alignment are written with streaming stores


def bias_values[dtype: DType](bias_address: Int, channels: Int) -> List[Scalar[accum_type[dtype]]]:
    """The `channels` biases at bias_address in the accumulator type, or
    zeros where the address is 0 (no bias)."""
    var values = List[Scalar[accum_type[dtype]]](length=channels, fill=0)
    if bias_address != 0:
        var bias = Pointer[Scalar[dtype], MutAnyOrigin](unsafe_from_address=bias_address)
        for c in range(channels):
            values[c] = bias.unsafe_load(c).cast[accum_type[dtype]]()
    return values^


@always_inline
def edge_span[
    dtype: DType, BLOCK: Int
](
    row_out: Pointer[Scalar[dtype], MutAnyOrigin],
    row_in: Pointer[Scalar[dtype], MutAnyOrigin],
    taps: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin],
    n: Int,
    k: Int,
    shift: Int,
    a: Int,
    b: Int,
    bias: Scalar[accum_type[dtype]],
    has_bias: Bool,
    silu: Bool,
):
    """correlate_cpu's outputs a .. b - 1 of one row, through a zero-padded
    copy of the inputs they read, BLOCK outputs at a time."""
    comptime acc = accum_type[dtype]
    if a >= b:
        return
    var blocks = ceildiv(b - a, BLOCK)
    var padded = List[Scalar[acc]](length=blocks * BLOCK + k, fill=0)
    var buf = padded.unsafe_ptr()
    for t in range(blocks * BLOCK + k - 1):
        var s = a - shift + t
        if s >= 0 and s < n:
            buf.unsafe_store(t, row_in.unsafe_load(s).cast[acc]())
    for q in range(blocks):
        # window_sums reads up to buf[blocks * BLOCK + k - 1], inside padded.
        var sum = rebind[SIMD[acc, BLOCK]](window_sums[acc, simd_width_of[acc](), BLOCK](
            rebind[Pointer[Scalar[acc], MutAnyOrigin]](buf.unsafe_offset(q * BLOCK)),
            rebind[Pointer[Scalar[accum_type[acc]], MutAnyOrigin]](taps),
            k,
        ))
        var result = finish(sum, SIMD[acc, BLOCK](bias), has_bias, silu).cast[dtype]()
        var i = a + q * BLOCK
        comptime for e in range(BLOCK):
            if i + e < b:
                row_out.unsafe_store(i + e, result[e])
    _ = padded^


@always_inline
def window_sums[
    dtype: DType, W: Int, BLOCK: Int
](src: Pointer[Scalar[dtype], MutAnyOrigin], taps: Pointer[Scalar[accum_type[dtype]], MutAnyOrigin], k: Int) -> SIMD[
    accum_type[dtype], BLOCK
]:
    """sum over j < k of src[j : j + BLOCK] * taps[j], a block of V = BLOCK / W
    vectors of W outputs. The taps go W at a time: V + 1 vectors of inputs
    hold every window those W taps read, and each window is cut from two
    neighbouring vectors in registers (a shuffle) rather than loaded again,
    so a multiply-add costs no load (an unaligned load of a whole window,
    most of them across two cache lines, is what bounds the plain loop).
    The last k mod W taps (all of them, below W) read their windows from
    memory. From W taps on it reads src[0 : BLOCK + k]: one input past the
    last window, not used."""
    comptime acc = accum_type[dtype]
    comptime V = BLOCK // W
    var sums = SIMD[acc, BLOCK](0)
    var whole = k // W * W
    var g = 0
    while g < whole:
        var line = SIMD[acc, 2 * BLOCK](0)  # V + 1 vectors used; a SIMD's width is a power of two
        comptime for u in range(V + 1):
            line = line.insert[offset = u * W](src.unsafe_load[width=W](g + u * W).cast[acc]())
        comptime for jj in range(W):
            var tap = SIMD[acc, W](taps.unsafe_load(g + jj))
            comptime for v in range(V):
                var pair = line.slice[W, offset = v * W]().join(line.slice[W, offset = (v + 1) * W]())
                var window = pair.rotate_left[jj]().slice[W]()
                sums = sums.insert[offset = v * W](sums.slice[W, offset = v * W]() + window * tap)
        g += W
    for j in range(whole, k):
        sums += src.unsafe_load[width=BLOCK](j).cast[acc]() * taps.unsafe_load(j)
    return sums


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
    channels: Int = 1,
    n_out: Int = -1,
    bias_address: Int = 0,
    silu: Bool = False,
) raises:
    """The same sum as the GPU kernel. The interior of each row, where the
    whole window lies inside the row, runs BLOCK outputs at a time (several
    SIMD registers, one broadcast tap per step) with no bounds checks; the
    few outputs near the ends run one by one. Work items of CPU_CHUNK outputs
    go to MAX's thread pool, or, up to CPU_SERIAL_MAX_K taps and below
    CPU_SERIAL_MAX_OUTPUTS outputs, run on the calling thread.

    For the depthwise op: `kernel` holds `channels` filters of k taps, and
    row r uses filter r % channels (one filter, for the single-filter op);
    output rows hold n_out elements (n unless given), input rows n; then the
    channel's bias is added where bias_address (of `channels` values) is not
    0, and SiLU applied where silu is set (`finish`)."""
    comptime acc = accum_type[dtype]
    comptime W = simd_width_of[acc]()
    comptime BLOCK = 4 * W
    var out_n = n if n_out < 0 else n_out
    # The taps once, in the accumulator type and in the order the sum reads them.
    var tap_list = List[Scalar[acc]](capacity=channels * k)
    for c in range(channels):
        for j in range(k):
            tap_list.append(kernel.unsafe_load(c * k + (k - 1 - j if flip else j)).cast[acc]())
    var all_taps = tap_list.unsafe_ptr()
    var has_bias = bias_address != 0
    var bias_list = bias_values[dtype](bias_address, channels)
    var biases = bias_list.unsafe_ptr()
    var chunks_per_row = ceildiv(out_n, CPU_CHUNK)
    # Short rows go several to a work item, so that an item holds about
    # CPU_CHUNK outputs either way.
    var rows_per_item = max(1, CPU_CHUNK // out_n) if chunks_per_row == 1 else 1
    var items = ceildiv(rows, rows_per_item) * chunks_per_row

    def work(item: Int) {var output, var input, var all_taps, var biases, var has_bias, var silu, var n, var out_n, var k, var shift, var channels, var chunks_per_row, var rows_per_item, var rows}:
        var first_row = item // chunks_per_row * rows_per_item
        var i0 = (item % chunks_per_row) * CPU_CHUNK
        var i1 = min(i0 + CPU_CHUNK, out_n)
        for row in range(first_row, min(first_row + rows_per_item, rows)):
            var x = input.unsafe_offset(row * n)
            var out = output.unsafe_offset(row * out_n)
            var row_taps = rebind[Pointer[Scalar[acc], MutAnyOrigin]](all_taps.unsafe_offset((row % channels) * k))
            var row_bias = biases.unsafe_load(row % channels)
            # Whole window inside the row: i - shift >= 0 and i - shift + k <= n
            # (k + 1 for window_sums, whose last load reaches one input further).
            var reach = k + 1 if k >= W else k
            var lo = min(max(i0, shift), i1)
            var hi = max(min(i1, n - reach + 1 + shift), lo)
            var mid = lo + (hi - lo) // BLOCK * BLOCK  # the interior, in whole blocks
            var i = lo
            while i < mid:
                var sum = window_sums[dtype, W, BLOCK](x.unsafe_offset(i - shift), row_taps, k)
                var result = finish(sum, SIMD[acc, BLOCK](row_bias), has_bias, silu).cast[dtype]()
                if Int(out.unsafe_offset(i)) % STREAM_ALIGN == 0:
                    # A streaming store: the output line is written without
                    # being read into the cache first (a third less traffic).
                    # Its weak ordering is settled when the thread pool joins
                    # (a locked instruction), before anyone reads the output.
                    out.unsafe_store[alignment=STREAM_ALIGN, non_temporal=True](i, result)
                else:
                    out.unsafe_store(i, result)
                i += BLOCK
            # The outputs whose window crosses an end of the row, and what is
            # left of the interior: the same vector loop over a copy of the
            # inputs they read, zeros outside the row (multiplied like the
            # rest: zero times an infinite tap is NaN, as on the GPU).
            edge_span[dtype, BLOCK](out, x, row_taps, n, k, shift, i0, lo, row_bias, has_bias, silu)
            edge_span[dtype, BLOCK](out, x, row_taps, n, k, shift, mid, i1, row_bias, has_bias, silu)

    if k <= CPU_SERIAL_MAX_K and rows * out_n < CPU_SERIAL_MAX_OUTPUTS:
        for item in range(items):
            work(item)
    else:
        sync_parallelize(work, items)
    _ = tap_list^
    _ = bias_list^


def grad_kernel_cpu[
    dtype: DType
](
    grad_kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    grad_output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int,
    n: Int,
    k: Int,
    channels: Int = 1,
    n_out: Int = -1,
    shift: Int = 0,
) raises:
    """grad_kernel[c, j] = sum over rows r with r % channels == c and i of
    grad_output[r, i] * input[r, i + j - shift], input reading as zero
    outside [0, n); grad_output rows hold n_out elements (n unless given).
    Each work item writes the partial sums of its chunk for every tap; the
    partials are then added in a fixed order, so the result does not depend
    on how the work was scheduled."""
    comptime acc = accum_type[dtype]
    comptime W = simd_width_of[acc]()
    var out_n = n if n_out < 0 else n_out
    var chunks_per_row = ceildiv(out_n, CPU_CHUNK)
    var items = rows * chunks_per_row
    var partials = List[Scalar[acc]](length=items * k, fill=0)
    var parts = partials.unsafe_ptr()

    def work(item: Int) {var grad_output, var input, var parts, var n, var out_n, var k, var shift, var chunks_per_row}:
        var row = item // chunks_per_row
        var i0 = (item % chunks_per_row) * CPU_CHUNK
        var i1 = min(i0 + CPU_CHUNK, out_n)
        var g = grad_output.unsafe_offset(row * out_n)
        var x = input.unsafe_offset(row * n)
        for j in range(k):
            # input[row, i + j - shift] exists: shift - j <= i < n + shift - j.
            var start = max(i0, shift - j)
            var end = min(i1, n + shift - j)
            var vsum = SIMD[acc, W](0)
            var i = start
            while i + W <= end:
                vsum += g.unsafe_load[width=W](i).cast[acc]() * x.unsafe_load[width=W](i + j - shift).cast[acc]()
                i += W
            var sum = vsum.reduce_add()
            while i < end:
                sum += g.unsafe_load(i).cast[acc]() * x.unsafe_load(i + j - shift).cast[acc]()
                i += 1
            parts.unsafe_store(item * k + j, sum)

    sync_parallelize(work, items)
    for c in range(channels):
        for j in range(k):
            var sum = Scalar[acc](0)
            var row = c
            while row < rows:
                for item in range(row * chunks_per_row, (row + 1) * chunks_per_row):
                    sum += parts.unsafe_load(item * k + j)
                row += channels
            grad_kernel.unsafe_store(c * k + j, sum.cast[dtype]())
    _ = partials^


def correlate_channels_last_cpu[
    dtype: DType
](
    output: Pointer[Scalar[dtype], MutAnyOrigin],
    input: Pointer[Scalar[dtype], MutAnyOrigin],
    kernel: Pointer[Scalar[dtype], MutAnyOrigin],
    batch: Int,
    channels: Int,
    n: Int,
    n_out: Int,
    k: Int,
    shift: Int,
    flip: Bool,
    bias_address: Int = 0,
    silu: Bool = False,
) raises:
    """correlate_cpu's sum, one filter per channel, for tensors laid out
    channel-last: input[b, s, c] at (b * n + s) * channels + c, output[b, i, c]
    at (b * n_out + i) * channels + c, kernel (channels, k) as usual. SIMD runs
    over the channels, whose values for one position are contiguous, so a
    (B, L, C) activation is read where it lies instead of being transposed.
    The bias and SiLU as in correlate_cpu."""
    comptime acc = accum_type[dtype]
    comptime W = simd_width_of[acc]()
    comptime P = 4  # positions per step in the interior (s0 to s3 below)
    # The taps transposed to (k, channels), in the accumulator type and read order.
    var tap_list = List[Scalar[acc]](length=k * channels, fill=0)
    for c in range(channels):
        for j in range(k):
            tap_list[j * channels + c] = kernel.unsafe_load(c * k + (k - 1 - j if flip else j)).cast[acc]()
    var taps = tap_list.unsafe_ptr()
    var has_bias = bias_address != 0
    var bias_list = bias_values[dtype](bias_address, channels)
    var biases = bias_list.unsafe_ptr()
    var positions_per_item = max(1, CPU_CHUNK // max(channels, 1))
    var items = ceildiv(batch * n_out, positions_per_item)

    def work(item: Int) {var output, var input, var taps, var biases, var has_bias, var silu, var channels, var n, var n_out, var k, var shift, var positions_per_item, var batch}:
        var p0 = item * positions_per_item
        var p1 = min(p0 + positions_per_item, batch * n_out)
        var p = p0
        while p < p1:
            var b = p // n_out
            var i = p - b * n_out
            var x_row = input.unsafe_offset(b * n * channels)
            # P positions of one batch row whose windows lie inside it at
            # once: each tap vector loaded is then used P times.
            if p + P <= p1 and i + P <= n_out and i - shift >= 0 and i + P - 1 - shift + k <= n:
                var c = 0
                while c + W <= channels:
                    var s0 = SIMD[acc, W](0)
                    var s1 = SIMD[acc, W](0)
                    var s2 = SIMD[acc, W](0)
                    var s3 = SIMD[acc, W](0)
                    var src = x_row.unsafe_offset((i - shift) * channels + c)
                    for j in range(k):
                        var tap = taps.unsafe_offset(j * channels + c).unsafe_load[width=W]()
                        var at = src.unsafe_offset(j * channels)
                        s0 += at.unsafe_load[width=W]().cast[acc]() * tap
                        s1 += at.unsafe_offset(channels).unsafe_load[width=W]().cast[acc]() * tap
                        s2 += at.unsafe_offset(2 * channels).unsafe_load[width=W]().cast[acc]() * tap
                        s3 += at.unsafe_offset(3 * channels).unsafe_load[width=W]().cast[acc]() * tap
                    var out = output.unsafe_offset(p * channels + c)
                    var b = biases.unsafe_offset(c).unsafe_load[width=W]()
                    out.unsafe_store(finish(s0, b, has_bias, silu).cast[dtype]())
                    out.unsafe_offset(channels).unsafe_store(finish(s1, b, has_bias, silu).cast[dtype]())
                    out.unsafe_offset(2 * channels).unsafe_store(finish(s2, b, has_bias, silu).cast[dtype]())
                    out.unsafe_offset(3 * channels).unsafe_store(finish(s3, b, has_bias, silu).cast[dtype]())
                    c += W
                while c < channels:
                    comptime for q in range(P):
                        var sum = Scalar[acc](0)
                        for j in range(k):
                            sum += x_row.unsafe_load((i + q + j - shift) * channels + c).cast[acc]() * taps.unsafe_load(j * channels + c)
                        var value = finish[acc, 1](sum, biases.unsafe_load(c), has_bias, silu)
                        output.unsafe_store((p + q) * channels + c, value.cast[dtype]()[0])
                    c += 1
                p += P
                continue
            var out = output.unsafe_offset(p * channels)
            var c = 0
            while c + W <= channels:
                var sum = SIMD[acc, W](0)
                for j in range(k):
                    # Outside the row the input reads as zeros, multiplied like the rest (as in correlate_cpu).
                    var s = i + j - shift
                    var x = SIMD[acc, W](0)
                    if s >= 0 and s < n:
                        x = x_row.unsafe_offset(s * channels + c).unsafe_load[width=W]().cast[acc]()
                    sum += x * taps.unsafe_offset(j * channels + c).unsafe_load[width=W]()
                out.unsafe_offset(c).unsafe_store(finish(sum, biases.unsafe_offset(c).unsafe_load[width=W](), has_bias, silu).cast[dtype]())
                c += W
            while c < channels:
                var sum = Scalar[acc](0)
                for j in range(k):
                    var s = i + j - shift
                    var x = Scalar[acc](0)
                    if s >= 0 and s < n:
                        x = x_row.unsafe_load(s * channels + c).cast[acc]()
                    sum += x * taps.unsafe_load(j * channels + c)
                var value = finish[acc, 1](sum, biases.unsafe_load(c), has_bias, silu)
                out.unsafe_store(c, value.cast[dtype]()[0])
                c += 1
            p += 1

    if k <= CPU_SERIAL_MAX_K and batch * n_out * channels < CPU_SERIAL_MAX_OUTPUTS:
        for item in range(items):
            work(item)
    else:
        sync_parallelize(work, items)
    _ = tap_list^
    _ = bias_list^
