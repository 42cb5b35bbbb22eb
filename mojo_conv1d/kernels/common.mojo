"""What several of the conv1d kernels share: the sum they all compute (below),
the accumulator type, the block size THREADS, the split of a flat tile index
into (row, tile), and the bounds-checked vector loads and stores of the GPU
kernels. The other modules refer to this docstring for the sum.

Every op in this package computes, for each row r and each i in [0, n):

    out[r, i] = sum over j < k of  x[r, i + j - shift] * w'[j]

where x reads as zero outside [0, n) and w' is the kernel, reversed when `flip`.
The forward pass is shift = 0, flip = False; the gradient with respect to the
input is the same sum over grad_output with shift = k - 1, flip = True.
Sizes are runtime values, so one compiled kernel serves every length.
"""

from std.math import exp, isfinite
from std.memory import bitcast
from std.sys import is_nvidia_gpu, llvm_intrinsic, size_of
from std.sys._assembly import inlined_assembly


# Sums run in float32, or float64 for float64 data.
comptime accum_type[dtype: DType] = DType.float64 if dtype == DType.float64 else DType.float32


@always_inline
def wide_product(a: Int32, b: Int32) -> Int:
    """a * b in 64 bits. On NVIDIA GPUs one mul.wide.s32: LLVM forms it only
    from values that were 32-bit all along, not from a kernel's 64-bit
    arguments or thread indices narrowed to 32 bits, and a 64-bit product
    there takes five instructions."""
    comptime if is_nvidia_gpu():
        return Int(inlined_assembly["mul.wide.s32 $0, $1, $2;", Int64, constraints="=l,r,r", has_side_effect=False](a, b))
    else:
        return Int(a) * Int(b)


@always_inline
def widen_pairs[width: SIMDLength, //](h: SIMD[DType.bfloat16, width]) -> SIMD[DType.float32, width]:
    """h in float32 without conversions, two values per 32-bit word: the low
    half shifted up, the high half masked in place (a bfloat16 is the top
    half of the float32 of the same value)."""
    var u = bitcast[DType.uint32, width // 2](h)
    return bitcast[DType.float32, width]((u << 16).interleave(u & 0xFFFF0000))


@always_inline
def to_accum[dtype: DType, width: SIMDLength](v: SIMD[dtype, width]) -> SIMD[accum_type[dtype], width]:
    """v in the accumulator type: bfloat16 by widen_pairs, one instruction a
    value where a conversion of the high half took two."""
    comptime if dtype == DType.bfloat16:
        return rebind[SIMD[accum_type[dtype], width]](widen_pairs(rebind[SIMD[DType.bfloat16, width]](v)))
    else:
        return v.cast[accum_type[dtype]]()

# The bits of the GPU kernels' `flags` argument.
comptime LOAD_VECTORS = 1  # input rows (and shift) allow 16-byte loads
comptime STORE_VECTORS = 2  # output rows allow 16-byte stores
comptime FLIP = 4  # the taps are read reversed
comptime HAS_BIAS = 8  # add the channel's bias
comptime SILU = 16  # then apply SiLU
comptime WHOLE_VECTORS = 32  # short kernel: aligned rows of whole vectors, in and out below 2^30 values (indices in 32 bits)

comptime THREADS = 64  # threads per block (tiled and window kernels, gradient reduction); a multiple of any warp/wavefront size


@always_inline
def split_tile(tile: Int, tiles_per_row: Int, total_tiles: Int) -> Tuple[Int, Int]:
    """(row, tile within the row) of a flat tile index. A 64-bit division is a
    call on the GPU, and a call waits for every load in flight (the next
    tile's too): divide in 32 bits where the count allows."""
    if total_tiles == tiles_per_row:
        return (0, tile)
    var row = Int(UInt32(tile) // UInt32(tiles_per_row)) if total_tiles <= Int(UInt32.MAX) else tile // tiles_per_row
    return (row, tile - row * tiles_per_row)


@always_inline
def load_raw[
    dtype: DType, width: Int
](
    row: Pointer[Scalar[dtype], MutAnyOrigin], start: Int, n: Int, vector_io: Bool
) -> SIMD[dtype, width]:
    """The elements row[start : start + width], zeros outside [0, n).
    One load of up to 16 bytes when vector_io allows it and the vector lies
    inside (start is then a multiple of width)."""
    if vector_io and start >= 0 and start + width <= n:
        return row.unsafe_load[width=width, alignment = min(16, width * size_of[dtype]())](start)
    var values = SIMD[dtype, width](0)
    comptime for e in range(width):
        if start + e >= 0 and start + e < n:
            values[e] = row.unsafe_load(start + e)
    return values


@always_inline
def load_vector[
    dtype: DType, width: Int
](
    row: Pointer[Scalar[dtype], MutAnyOrigin], start: Int, n: Int, vector_io: Bool
) -> SIMD[accum_type[dtype], width]:
    """load_raw's elements in the accumulator type."""
    return load_raw[dtype, width](row, start, n, vector_io).cast[accum_type[dtype]]()


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
def finish[
    acc: DType, width: Int
](sum: SIMD[acc, width], bias: SIMD[acc, width], has_bias: Bool, silu: Bool) -> SIMD[acc, width]:
    """The depthwise op's epilogue on sums in the accumulator type: the
    channel's bias, then SiLU (x * sigmoid(x)); nothing for the other ops."""
    var value = sum
    if has_bias:
        value += bias
    if silu:
        # accum_type is float32 or float64; exp wants to see which.
        comptime if acc == DType.float64:
            var v = rebind[SIMD[DType.float64, width]](value)
            value = rebind[SIMD[acc, width]](v / (1 + exp(-v)))
        else:
            var v = rebind[SIMD[DType.float32, width]](value)
            var d = 1 + exp(-v)
            comptime if is_nvidia_gpu():
                # The approximate reciprocal (within an ulp, like the exp
                # before it) rather than an IEEE division's call.
                var r = SIMD[DType.float32, width](0)
                comptime for e in range(width):
                    r[e] = llvm_intrinsic["llvm.nvvm.rcp.approx.ftz.f", Float32](d[e])
                value = rebind[SIMD[acc, width]](v * r)
            else:
                value = rebind[SIMD[acc, width]](v / d)
    return value


@always_inline
def channel_of(row: Int, channels: Int) -> Int:
    """The filter of a row: row % channels (rows are (batch, channel) pairs),
    in 32 bits where the row allows it (see split_tile)."""
    if channels == 1:
        return 0
    if row <= Int(UInt32.MAX):
        return Int(UInt32(row) % UInt32(channels))
    return row % channels


@always_inline
def tap_value[
    dtype: DType
](taps: Pointer[Scalar[dtype], MutAnyOrigin], e: Int, count: Int, lead: Int, flip: Bool) -> Scalar[accum_type[dtype]]:
    """Tap e of a filter of `count` taps read with `lead` zeros in front
    (reversed when flip), in the accumulator type: zero outside the filter.
    The zeros let a kernel read its inputs from an aligned start (shift + lead
    a multiple of the vector width) and still compute the same sum."""
    var j = e - lead
    if j < 0 or j >= count:
        return 0
    return taps.unsafe_load(count - 1 - j if flip else j).cast[accum_type[dtype]]()


def exact_sum[
    dtype: DType
](
    x_row: Pointer[Scalar[dtype], MutAnyOrigin],
    n: Int,
    w_row: Pointer[Scalar[dtype], MutAnyOrigin],
    at: Int,
    taps: Int,
    lead: Int,
    shift: Int,
    flip: Bool,
) -> Scalar[accum_type[dtype]]:
    """Output `at` of a row by multiply-adds over the filter's own taps (no
    lead zeros), inputs outside [0, n) read as zero (and multiplied, so an
    infinite tap there gives NaN, as with F.conv1d's zero padding)."""
    comptime acc = accum_type[dtype]
    var total = Scalar[acc](0)
    for j in range(taps):
        var p = at + j + lead - shift
        var xv = x_row.unsafe_load(p).cast[acc]() if p >= 0 and p < n else Scalar[acc](0)
        total += xv * w_row.unsafe_load(taps - 1 - j if flip else j).cast[acc]()
    return total


def redo_non_finite[
    dtype: DType
](
    out_row: Pointer[Scalar[dtype], MutAnyOrigin],
    i: Int,
    count: Int,
    n_out: Int,
    x_row: Pointer[Scalar[dtype], MutAnyOrigin],
    n: Int,
    w_row: Pointer[Scalar[dtype], MutAnyOrigin],
    taps: Int,
    lead: Int,
    shift: Int,
    flip: Bool,
    bias: Scalar[accum_type[dtype]],
    has_bias: Bool,
    silu: Bool,
):
    """Computes again, by multiply-adds over the filter's own taps, each of
    out_row[i : i + count] that came out infinite or NaN. A kernel that
    multiplies zeros (lead zeros, padding to a whole step) by an infinite
    input gets NaN where the sum has no such term; so a thread whose sums are
    not all finite reads its outputs back and redoes those (rarely run).
    shift counts the lead zeros, as the kernels use it."""
    comptime acc = accum_type[dtype]
    for r in range(count):
        var at = i + r
        if at < n_out and not isfinite(out_row.unsafe_load(at)):
            var total = exact_sum(x_row, n, w_row, at, taps, lead, shift, flip)
            out_row.unsafe_store(at, finish[acc, 1](total, bias, has_bias, silu).cast[dtype]())
