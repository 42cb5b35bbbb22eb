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

from std.sys import size_of


# Sums run in float32, or float64 for float64 data.
comptime accum_type[dtype: DType] = DType.float64 if dtype == DType.float64 else DType.float32

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
