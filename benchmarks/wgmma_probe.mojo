"""A probe, not part of the op: float32 correlation at K = 64 on Hopper's
warpgroup MMA (wgmma), timed against the op's multiply-add kernel.

A 1024-output tile is D[m, c] = out[16 m + c], m < 64, c < 16, and
D = A B with A[m, t] = x[16 m + t] (in registers) and B[t, c] = w[t - c]
(the taps' Toeplitz matrix, in shared memory), t < 80. float32 values are
split into three bfloat16 parts, and the six products whose parts weigh at
least 2^-16 are summed (Mojo 1.2 takes bfloat16 register fragments for
wgmma, not TF32 ones). One row of N = 2^26, sm_90a only.

The kernel's parameters are the experiments of logs/h200/2026-11-29_03*_wgmma_probe* and _04*:
wgmma_wide_kernel[NT] makes each row of D NT outputs long (the 0336 run),
wgmma_overlap_kernel[NT] builds the next tile's fragments in a second
register set while a tile's MMAs run (the 0340 run), and
wgmma_async_copy_kernel[NT] copies each tile's inputs into shared memory by
cp.async a tile ahead (the 0345 and 0346 runs, which repeat all the others);
swap exchanges B's two descriptor strides (wrong with swap), chains spreads
the products over that many accumulators, and mode 0 is the kernel, 1 its
MMAs alone (A built once), 2 its A building alone (no MMAs), 3 the kernel
with the inputs split once into shared memory (16-byte loads; the 0331 run
loaded one element at a time) and the fragments read by ldmatrix, 4 the
kernel step by step, each step's fragments built while the previous step's
MMAs run. wgmma_async_copy_kernel's BUFFERS (3: two tiles ahead, one barrier
a tile), interleave (each step's MMAs issued once its fragments are built)
and packed (the split two values per conversion) are the 0410 and 0415 runs.

    mojo run -I solutions/p20 benchmarks/wgmma_probe.mojo        # the 0415 run
    mojo run -I solutions/p20 benchmarks/wgmma_probe.mojo best   # one form, for ncu (0412)
    mojo run -I solutions/p20 benchmarks/wgmma_probe.mojo all    # and every earlier variant
"""

from std.math import ceildiv
from std.sys import argv
from std.time import perf_counter_ns
from max.gpu import barrier, block_idx, grid_dim, thread_idx
from max.gpu.compute.mma import (
    WGMMADescriptor,
    ld_matrix,
    wgmma_async,
    wgmma_commit_group_sync,
    wgmma_fence_aligned,
    wgmma_wait_group_sync,
)
from max.gpu.host import DeviceAttribute, DeviceContext
from max.gpu.memory import (
    AddressSpace,
    async_copy,
    async_copy_commit_group,
    async_copy_wait_all,
    async_copy_wait_group,
    fence_async_view_proxy,
)
from std.memory import stack_allocation
from op.kernels import correlate_gpu
# The op's tensor-core kernel grew out of this probe; these two are shared.
from op.tensor_cores import padded, split3 as split3_packed

comptime N = 1 << 26
comptime PAD = 128  # zeros after the row, so the last tile reads no bounds
comptime K = 64
comptime T = 80  # Toeplitz rows: K + 15 rounded up to whole steps of 16
comptime STEPS = T // 16
comptime PARTS = 3
comptime TILE = 1024
comptime THREADS = 128  # one warpgroup
comptime CORE = 64  # bfloat16 elements in one 8 x 8 core matrix (128 bytes)
comptime CALLS = 20
comptime SPAN = 16 * 64 + T  # inputs one tile reads
comptime SPAN_PAD = 1152  # one staged part, rounded up


comptime PRODUCTS = [(2, 0), (0, 2), (1, 1), (1, 0), (0, 1), (0, 0)]  # (part of A, part of B), smallest first
comptime SharedBF16 = Pointer[BFloat16, MutUntrackedOrigin, address_space = AddressSpace.SHARED]


@always_inline
def split3[width: SIMDLength, //](v: SIMD[DType.float32, width]) -> Tuple[
    SIMD[DType.bfloat16, width], SIMD[DType.bfloat16, width], SIMD[DType.bfloat16, width]
]:
    """v as three bfloat16 parts, each the rounding of what the ones before left."""
    var h0 = v.cast[DType.bfloat16]()
    var r1 = v - h0.cast[DType.float32]()
    var h1 = r1.cast[DType.bfloat16]()
    var h2 = (r1 - h1.cast[DType.float32]()).cast[DType.bfloat16]()
    return (h0, h1, h2)


def steps_for(nt: Int) -> Int:
    """k16 steps of B for rows of D nt outputs long: K + nt - 1 rows, rounded up."""
    return ceildiv(K + nt - 1, 16)


@always_inline
def stage_taps[NT: Int](bs: SharedBF16, kernel: Pointer[Float32, MutAnyOrigin], tid: Int):
    """B, once per block, as three bfloat16 parts: part p of step s is NT / 4
    core matrices (nb, kb), rows c in [8 nb, 8 nb + 8), columns t in
    [16 s + 8 kb, + 8), each row's 8 values of t contiguous (K-major).
    Then the fence that makes them visible to wgmma (the caller's barrier
    makes them visible to the other threads)."""
    comptime STEPS_NT = steps_for(NT)
    comptime CORES = (NT // 8) * 2
    var e = tid
    while e < STEPS_NT * NT * 16:
        var s = e // (NT * 16)
        var c = (e // 16) % NT
        var tl = e % 16
        var t = 16 * s + tl
        var v = Float32(0)
        if t - c >= 0 and t - c < K:
            v = kernel.unsafe_load(t - c)
        var parts = split3(SIMD[DType.float32, 1](v))
        var within = (c % 8) * 8 + tl % 8
        var core = (c // 8) * 2 + tl // 8
        bs.unsafe_store(((0 * STEPS_NT + s) * CORES + core) * CORE + within, parts[0])
        bs.unsafe_store(((1 * STEPS_NT + s) * CORES + core) * CORE + within, parts[1])
        bs.unsafe_store(((2 * STEPS_NT + s) * CORES + core) * CORE + within, parts[2])
        e += THREADS
    fence_async_view_proxy()


@always_inline
def b_desc[NT: Int, swap: Bool = False](bs: SharedBF16, part: Int, s: Int) -> WGMMADescriptor[DType.bfloat16]:
    """The descriptor of part `part`, step s of B: core matrices (nb, kb) at
    (2 nb + kb) * 128 bytes, so 128 bytes apart along K and 256 along N (or
    the other way round, with swap, which is wrong)."""
    comptime CORES = (NT // 8) * 2
    var addr = Int(bs) + ((part * steps_for(NT) + s) * CORES) * CORE * 2
    var lbo = 256 if swap else 128
    var sbo = 128 if swap else 256
    return WGMMADescriptor[DType.bfloat16](
        Int64((addr >> 4) & 0x3FFF) | (Int64(lbo >> 4) << 16) | (Int64(sbo >> 4) << 32)
    )


@always_inline
def a_values[NT: Int](x: Pointer[Float32, MutAnyOrigin], r0: Int, r1: Int, q: Int, s: Int) -> SIMD[DType.float32, 8]:
    """This thread's 8 values of A (rows r0 and r1, step s) in fragment order,
    read from the tile's inputs x in memory."""
    var c0 = 16 * s + 2 * q
    var v = SIMD[DType.float32, 8](0)
    v = v.insert[offset=0](x.unsafe_load[width=2, alignment=8](NT * r0 + c0))
    v = v.insert[offset=2](x.unsafe_load[width=2, alignment=8](NT * r1 + c0))
    v = v.insert[offset=4](x.unsafe_load[width=2, alignment=8](NT * r0 + c0 + 8))
    v = v.insert[offset=6](x.unsafe_load[width=2, alignment=8](NT * r1 + c0 + 8))
    return v


@always_inline
def mma_tile[W: SIMDLength, //, NT: Int](parts: SIMD[DType.bfloat16, W], bs: SharedBF16) -> SIMD[DType.float32, NT // 2]:
    """Issues the tile's MMAs (every step, the six products) as one committed
    group and returns its accumulators (valid after the group's wait). Part
    p of step s of A is at lanes 8 (p * steps + s) of parts."""
    comptime STEPS_NT = steps_for(NT)
    var d = SIMD[DType.float32, NT // 2](0)
    wgmma_fence_aligned()
    comptime for s in range(STEPS_NT):
        comptime for i in range(6):
            comptime pa = PRODUCTS[i][0]
            comptime pb = PRODUCTS[i][1]
            d = wgmma_async[
                64, NT, 16, DType.bfloat16, DType.float32, 8, NT // 2, a_type=DType.bfloat16, b_type=DType.bfloat16
            ](parts.slice[8, offset = 8 * (pa * STEPS_NT + s)](), b_desc[NT](bs, pb, s), d)
    wgmma_commit_group_sync()
    return d


@always_inline
def store_tile[W: SIMDLength, //, NT: Int](o: Pointer[Float32, MutAnyOrigin], r0: Int, r1: Int, q: Int, d: SIMD[DType.float32, W]):
    """Writes this thread's accumulators of the tile starting at o."""
    comptime for j in range(NT // 8):
        var c = 8 * j + 2 * q
        o.unsafe_store[alignment=8](NT * r0 + c, d.slice[2, offset = 4 * j]())
        o.unsafe_store[alignment=8](NT * r1 + c, d.slice[2, offset = 4 * j + 2]())


def wgmma_kernel[swap: Bool, chains: Int, mode: Int](
    output: Pointer[Float32, MutAnyOrigin],
    input: Pointer[Float32, MutAnyOrigin],
    kernel: Pointer[Float32, MutAnyOrigin],
    tiles: Int64,
):
    """Rows of D 16 outputs long, in the variants the module docstring lists."""
    var bs = stack_allocation[
        PARTS * STEPS * 4 * CORE, BFloat16, alignment=128, address_space = AddressSpace.SHARED
    ]()
    var xs = stack_allocation[
        PARTS * SPAN_PAD, BFloat16, alignment=128, address_space = AddressSpace.SHARED
    ]()
    var tid = Int(thread_idx.x)
    stage_taps[16](bs, kernel, tid)
    barrier()
    var w = tid // 32
    var lane = tid % 32
    var g = lane // 4
    var q = lane % 4
    var r0 = 16 * w + g
    var r1 = r0 + 8
    var tile = Int(block_idx.x)
    var parts = SIMD[DType.bfloat16, 128](0)
    var first = True
    while tile < Int(tiles):
        var x = input.unsafe_offset(tile * TILE)
        comptime if mode == 4:
            # Step by step: the next step's fragments are loaded and split
            # while the MMAs of this one run; a step's registers are reused
            # only after its group has completed.
            @always_inline
            @parameter
            def build(s: Int) -> SIMD[DType.bfloat16, 32]:
                var sp = split3(a_values[16](x, r0, r1, q, s))
                return SIMD[DType.bfloat16, 32](0).insert[offset=0](sp[0]).insert[offset=8](sp[1]).insert[offset=16](sp[2])

            var d4 = SIMD[DType.float32, 8](0)
            var cur = build(0)
            comptime for s in range(STEPS):
                wgmma_fence_aligned()
                comptime for i in range(6):
                    comptime pa = PRODUCTS[i][0]
                    comptime pb = PRODUCTS[i][1]
                    d4 = wgmma_async[
                        64, 16, 16, DType.bfloat16, DType.float32, 8, 8, a_type=DType.bfloat16, b_type=DType.bfloat16
                    ](cur.slice[8, offset = 8 * pa](), b_desc[16, swap](bs, pb, s), d4)
                wgmma_commit_group_sync()
                comptime if s + 1 < STEPS:
                    var nxt = build(s + 1)
                    wgmma_wait_group_sync[0]()
                    cur = nxt
            wgmma_wait_group_sync[0]()
            store_tile[16](output.unsafe_offset(tile * TILE), r0, r1, q, d4)
            tile += Int(grid_dim.x)
            continue
        # chains accumulators, so that consecutive MMAs need not wait for each other.
        var acc = SIMD[DType.float32, 32](0)
        # A's fragments for all steps, split, before the MMAs: part p of
        # step s at lanes 8 (p * STEPS + s) ...
        comptime if mode == 3:
            # Split each input of the span once, into three staged bfloat16
            # parts; the fragments then come from shared memory by ldmatrix.
            barrier()  # the previous tile's ldmatrix reads are done
            var e2 = 4 * tid
            while e2 < SPAN:
                # 16 bytes of inputs per load, 8 bytes of each part per store.
                var sp = split3(x.unsafe_load[width=4, alignment=16](e2))
                xs.unsafe_store[alignment=8](e2, sp[0])
                xs.unsafe_store[alignment=8](SPAN_PAD + e2, sp[1])
                xs.unsafe_store[alignment=8](2 * SPAN_PAD + e2, sp[2])
                e2 += 4 * THREADS
            barrier()
            var mi = lane // 8
            var row = 16 * w + lane % 8 + 8 * (mi % 2)
            var kofs = 8 * (mi // 2)
            comptime for p in range(PARTS):
                comptime for s in range(STEPS):
                    parts = parts.insert[offset = 8 * (p * STEPS + s)](
                        ld_matrix[8](xs.unsafe_offset(p * SPAN_PAD + 16 * row + 16 * s + kofs))
                    )
        comptime for s in range(STEPS):
            if mode != 3 and (mode != 1 or first):
                var sp = split3(a_values[16](x, r0, r1, q, s))
                parts = parts.insert[offset = 8 * (0 * STEPS + s)](sp[0])
                parts = parts.insert[offset = 8 * (1 * STEPS + s)](sp[1])
                parts = parts.insert[offset = 8 * (2 * STEPS + s)](sp[2])
        first = False
        comptime if mode == 2:
            var acc2 = SIMD[DType.float32, 8](0)
            comptime for i in range(15):
                acc2 += parts.slice[8, offset = 8 * i]().cast[DType.float32]()
            var o2 = output.unsafe_offset(tile * TILE)
            o2.unsafe_store[alignment=8](16 * r0 + 2 * q, acc2.slice[2, offset=0]())
            tile += Int(grid_dim.x)
            continue
        wgmma_fence_aligned()
        comptime for s in range(STEPS):
            comptime for i in range(6):
                comptime pa = PRODUCTS[i][0]
                comptime pb = PRODUCTS[i][1]
                comptime ch = (s * 6 + i) % chains
                acc = acc.insert[offset = 8 * ch](
                    wgmma_async[
                        64, 16, 16, DType.bfloat16, DType.float32, 8, 8, a_type=DType.bfloat16, b_type=DType.bfloat16
                    ](parts.slice[8, offset = 8 * (pa * STEPS + s)](), b_desc[16, swap](bs, pb, s), acc.slice[8, offset = 8 * ch]())
                )
        wgmma_commit_group_sync()
        wgmma_wait_group_sync()
        var d = acc.slice[8, offset=0]()
        comptime for ch in range(1, chains):
            d += acc.slice[8, offset = 8 * ch]()
        store_tile[16](output.unsafe_offset(tile * TILE), r0, r1, q, d)
        tile += Int(grid_dim.x)


@always_inline
def build_parts[NT: Int](x: Pointer[Float32, MutAnyOrigin], r0: Int, r1: Int, q: Int) -> SIMD[DType.bfloat16, 256]:
    """A's fragments for every step of a tile, split: part p of step s at
    lanes 8 (p * steps + s)."""
    comptime STEPS_NT = steps_for(NT)
    var parts = SIMD[DType.bfloat16, 256](0)
    comptime for s in range(STEPS_NT):
        var sp = split3(a_values[NT](x, r0, r1, q, s))
        parts = parts.insert[offset = 8 * (0 * STEPS_NT + s)](sp[0])
        parts = parts.insert[offset = 8 * (1 * STEPS_NT + s)](sp[1])
        parts = parts.insert[offset = 8 * (2 * STEPS_NT + s)](sp[2])
    return parts


def wgmma_wide_kernel[NT: Int](
    output: Pointer[Float32, MutAnyOrigin],
    input: Pointer[Float32, MutAnyOrigin],
    kernel: Pointer[Float32, MutAnyOrigin],
    tiles: Int64,
):
    """Mode 0 with NT outputs per row of D: a tile is D[m, c] = out[NT m + c],
    so A's fragments serve NT outputs each, at the cost of K + NT - 1 rows
    of B (rounded up to 16)."""
    comptime TILE_NT = 64 * NT
    var bs = stack_allocation[
        PARTS * steps_for(NT) * (NT // 8) * 2 * CORE, BFloat16, alignment=128, address_space = AddressSpace.SHARED
    ]()
    var tid = Int(thread_idx.x)
    stage_taps[NT](bs, kernel, tid)
    barrier()
    var lane = tid % 32
    var q = lane % 4
    var r0 = 16 * (tid // 32) + lane // 4
    var r1 = r0 + 8
    var tile = Int(block_idx.x)
    while tile < Int(tiles):
        var parts = build_parts[NT](input.unsafe_offset(tile * TILE_NT), r0, r1, q)
        var d = mma_tile[NT](parts, bs)
        wgmma_wait_group_sync()
        store_tile[NT](output.unsafe_offset(tile * TILE_NT), r0, r1, q, d)
        tile += Int(grid_dim.x)


def wgmma_overlap_kernel[NT: Int](
    output: Pointer[Float32, MutAnyOrigin],
    input: Pointer[Float32, MutAnyOrigin],
    kernel: Pointer[Float32, MutAnyOrigin],
    tiles: Int64,
):
    """As wgmma_wide_kernel, with the next tile's fragments loaded and split while
    this tile's MMAs run: the MMAs are issued, then the next tile's A is built
    into a second set of registers, then the MMAs are waited for."""
    comptime TILE_NT = 64 * NT
    var bs = stack_allocation[
        PARTS * steps_for(NT) * (NT // 8) * 2 * CORE, BFloat16, alignment=128, address_space = AddressSpace.SHARED
    ]()
    var tid = Int(thread_idx.x)
    stage_taps[NT](bs, kernel, tid)
    barrier()
    var lane = tid % 32
    var q = lane % 4
    var r0 = 16 * (tid // 32) + lane // 4
    var r1 = r0 + 8

    # Two register sets, a and b, in turns (unrolled by two, so that neither
    # is copied into the other): the MMAs read one while the next tile's
    # fragments are written into the other.
    var stride = Int(grid_dim.x)
    var tile = Int(block_idx.x)
    if tile >= Int(tiles):
        return
    var set_a = build_parts[NT](input.unsafe_offset(tile * TILE_NT), r0, r1, q)
    while True:
        var d = mma_tile[NT](set_a, bs)
        var tile_b = tile + stride
        var set_b = SIMD[DType.bfloat16, 256](0)
        if tile_b < Int(tiles):
            set_b = build_parts[NT](input.unsafe_offset(tile_b * TILE_NT), r0, r1, q)
        wgmma_wait_group_sync()
        store_tile[NT](output.unsafe_offset(tile * TILE_NT), r0, r1, q, d)
        if tile_b >= Int(tiles):
            break
        var d_b = mma_tile[NT](set_b, bs)
        var tile_a = tile_b + stride
        if tile_a < Int(tiles):
            set_a = build_parts[NT](input.unsafe_offset(tile_a * TILE_NT), r0, r1, q)
        wgmma_wait_group_sync()
        store_tile[NT](output.unsafe_offset(tile_b * TILE_NT), r0, r1, q, d_b)
        if tile_a >= Int(tiles):
            break
        tile = tile_a


def wgmma_async_copy_kernel[NT: Int, BUFFERS: Int = 2, interleave: Bool = False, packed: Bool = False](
    output: Pointer[Float32, MutAnyOrigin],
    input: Pointer[Float32, MutAnyOrigin],
    kernel: Pointer[Float32, MutAnyOrigin],
    tiles: Int64,
):
    """As wgmma_wide_kernel, with each tile's inputs copied into shared memory
    by cp.async ahead of time, so that building A reads shared memory while
    later tiles' inputs arrive. With two buffers the copy runs one tile ahead
    and a tile waits at two barriers; with three, two tiles ahead and one
    barrier. With interleave, each step's MMAs are issued as soon as that
    step's fragments are built, so the MMAs run while later steps are built."""
    comptime TILE_NT = 64 * NT
    comptime STEPS_NT = steps_for(NT)
    comptime SPAN_NT = TILE_NT + 16 * STEPS_NT
    comptime BUF = padded(SPAN_NT) + 8
    var bs = stack_allocation[
        PARTS * STEPS_NT * (NT // 8) * 2 * CORE, BFloat16, alignment=128, address_space = AddressSpace.SHARED
    ]()
    var xs = stack_allocation[BUFFERS * BUF, Float32, alignment=128, address_space = AddressSpace.SHARED]()
    var tid = Int(thread_idx.x)
    stage_taps[NT](bs, kernel, tid)  # the loop's first barrier publishes it

    @always_inline
    @parameter
    def copy_span(tile: Int, buffer: Int):
        """Starts copying the tile's inputs into the buffer: one commit group
        (empty past the last tile, so that the groups stay one per tile)."""
        if tile < Int(tiles):
            var src = input.unsafe_offset(tile * TILE_NT)
            var chunk = tid
            while chunk < SPAN_NT // 4:
                async_copy[16](
                    src.unsafe_offset(4 * chunk).unsafe_address_space_cast[AddressSpace.GLOBAL](),
                    xs.unsafe_offset(buffer * BUF + padded(4 * chunk)),
                )
                chunk += THREADS
        async_copy_commit_group()

    var lane = tid % 32
    var q = lane % 4
    var r0 = 16 * (tid // 32) + lane // 4
    var r1 = r0 + 8
    var stride = Int(grid_dim.x)
    var tile = Int(block_idx.x)
    if tile >= Int(tiles):
        return
    comptime for b in range(BUFFERS - 1):
        copy_span(tile + b * stride, b)
    var buffer = 0
    while tile < Int(tiles):
        comptime if BUFFERS == 2:
            barrier()  # every thread is done with the other buffer
            copy_span(tile + stride, 1 - buffer)
            async_copy_wait_group(1)
            barrier()  # this tile's inputs, copied by every thread, are in place
        else:
            async_copy_wait_group(Int32(BUFFERS - 2))  # this thread's copies for this tile are done
            # Every thread's copies for this tile are in place, and every
            # thread is done with the buffer of the tile before, which the
            # copy below reuses.
            barrier()
            copy_span(tile + (BUFFERS - 1) * stride, (buffer + BUFFERS - 1) % BUFFERS)
        var x_at = buffer * BUF
        var parts = SIMD[DType.bfloat16, 256](0)
        var d = SIMD[DType.float32, NT // 2](0)
        comptime for s in range(STEPS_NT):
            var c0 = 16 * s + 2 * q
            var v = SIMD[DType.float32, 8](0)
            v = v.insert[offset=0](xs.unsafe_load[width=2, alignment=8](x_at + padded(NT * r0 + c0)))
            v = v.insert[offset=2](xs.unsafe_load[width=2, alignment=8](x_at + padded(NT * r1 + c0)))
            v = v.insert[offset=4](xs.unsafe_load[width=2, alignment=8](x_at + padded(NT * r0 + c0 + 8)))
            v = v.insert[offset=6](xs.unsafe_load[width=2, alignment=8](x_at + padded(NT * r1 + c0 + 8)))
            var sp = split3_packed(v) if packed else split3(v)
            comptime if interleave:
                wgmma_fence_aligned()
                comptime for i in range(6):
                    comptime pa = PRODUCTS[i][0]
                    comptime pb = PRODUCTS[i][1]
                    d = wgmma_async[
                        64, NT, 16, DType.bfloat16, DType.float32, 8, NT // 2, a_type=DType.bfloat16, b_type=DType.bfloat16
                    ](sp[pa], b_desc[NT](bs, pb, s), d)
            else:
                parts = parts.insert[offset = 8 * (0 * STEPS_NT + s)](sp[0])
                parts = parts.insert[offset = 8 * (1 * STEPS_NT + s)](sp[1])
                parts = parts.insert[offset = 8 * (2 * STEPS_NT + s)](sp[2])
        comptime if interleave:
            wgmma_commit_group_sync()
        else:
            d = mma_tile[NT](parts, bs)
        wgmma_wait_group_sync()
        store_tile[NT](output.unsafe_offset(tile * TILE_NT), r0, r1, q, d)
        tile += stride
        buffer = (buffer + 1) % BUFFERS

def main() raises:
    var ctx = DeviceContext()
    comptime P = Pointer[Float32, MutAnyOrigin]
    var x_buf = ctx.enqueue_create_buffer[DType.float32](N + PAD)
    var out_buf = ctx.enqueue_create_buffer[DType.float32](N)
    var w_buf = ctx.enqueue_create_buffer[DType.float32](K)
    var host_x = ctx.enqueue_create_host_buffer[DType.float32](N + PAD)
    var host_w = ctx.enqueue_create_host_buffer[DType.float32](K)
    var host_out = ctx.enqueue_create_host_buffer[DType.float32](N)
    ctx.synchronize()
    for i in range(N + PAD):
        host_x[i] = Float32((i * 7919) % 1001) / 1001.0 - 0.5 if i < N else 0
    for j in range(K):
        host_w[j] = Float32((j * 31) % 17) / 17.0 - 0.5
    ctx.enqueue_copy(x_buf, host_x)
    ctx.enqueue_copy(w_buf, host_w)
    ctx.synchronize()
    var out = rebind[P](out_buf.unsafe_ptr())
    var x = rebind[P](x_buf.unsafe_ptr())
    var w = rebind[P](w_buf.unsafe_ptr())
    var sms = ctx.get_attribute(DeviceAttribute.MULTIPROCESSOR_COUNT)
    var tiles = N // TILE
    print("N = 2^26 float32, K =", K, "| mean of", CALLS, "launches | error: max |got - exact| / (1 + |exact|) at 64 positions")

    @always_inline
    @parameter
    def check(label: String, us: Float64) raises:
        ctx.enqueue_copy(host_out, out_buf)
        ctx.synchronize()
        var worst = Float64(0)
        for s in range(64):
            var i = (s * 1048573) % N if s > 1 else (0 if s == 0 else N - 1)
            var want = Float64(0)
            for j in range(K):
                if i + j < N:
                    want += Float64(host_x[i + j]) * Float64(host_w[j])
            worst = max(worst, abs(Float64(host_out[i]) - want) / (1.0 + abs(want)))
        print(label, String(Float64(Int(us * 10)) / 10.0), "us, error", Float32(worst))

    @always_inline
    @parameter
    def time_kernel[kern: def(P, P, P, Int64) thin -> None](label: String, tile_outputs: Int, blocks_per_sm: Int) raises:
        """Clears the output, runs kern once, times CALLS launches and checks the result."""
        ctx.enqueue_memset(out_buf, 0)
        var n_tiles = N // tile_outputs
        var grid = min(n_tiles, sms * blocks_per_sm)
        ctx.enqueue_function[kern](out, x, w, Int64(n_tiles), grid_dim=grid, block_dim=THREADS)
        ctx.synchronize()
        var t = perf_counter_ns()
        for _ in range(CALLS):
            ctx.enqueue_function[kern](out, x, w, Int64(n_tiles), grid_dim=grid, block_dim=THREADS)
        ctx.synchronize()
        check(label + " " + String(blocks_per_sm) + "/SM", Float64(perf_counter_ns() - t) / 1e3 / CALLS)

    # The op's multiply-add kernel, for reference.
    correlate_gpu[DType.float32](ctx, out, x, w, 1, N, K, 0, False)
    ctx.synchronize()
    var t0 = perf_counter_ns()
    for _ in range(CALLS):
        correlate_gpu[DType.float32](ctx, out, x, w, 1, N, K, 0, False)
    ctx.synchronize()
    check("op (FFMA)", Float64(perf_counter_ns() - t0) / 1e3 / CALLS)

    if "best" in [String(a) for a in argv()]:
        # One launch set of the fastest form only, for a profiler.
        time_kernel[wgmma_async_copy_kernel[32, 3, True]]("wgmma, D rows of 32, 3 buffers, interleaved,", 64 * 32, 8)
        return
    comptime for buffers in [2, 3]:
        for blocks_per_sm in [4, 8]:
            time_kernel[wgmma_async_copy_kernel[32, buffers, True, True]](
                "wgmma, D rows of 32, cp.async into " + String(buffers) + " buffers, interleaved, packed split,", 64 * 32, blocks_per_sm
            )
    comptime for variant in range(4):
        comptime buffers = 2 + variant % 2
        comptime interleave = variant >= 2
        comptime for nt in [16, 32]:
            for blocks_per_sm in [4, 8]:
                time_kernel[wgmma_async_copy_kernel[nt, buffers, interleave]](
                    "wgmma, D rows of " + String(nt) + ", cp.async into " + String(buffers) + " buffers"
                    + (", each step's MMAs issued once built," if interleave else ","), 64 * nt, blocks_per_sm
                )
    if "all" not in [String(a) for a in argv()]:
        return
    comptime for nt in [16, 32]:
        for blocks_per_sm in [2, 4, 8]:
            time_kernel[wgmma_overlap_kernel[nt]](
                "wgmma, D rows of " + String(nt) + ", next tile built during the MMAs,", 64 * nt, blocks_per_sm
            )
    comptime for nt in [32, 64]:
        for blocks_per_sm in [4, 8]:
            time_kernel[wgmma_wide_kernel[nt]]("wgmma, D rows of " + String(nt), 64 * nt, blocks_per_sm)
    comptime for mode in [0, 1, 2, 3, 4]:
        var label = ["wgmma", "MMAs only (A built once: wrong results)", "A only (no MMAs: wrong results)", "wgmma, inputs split once into shared memory, fragments by ldmatrix", "wgmma, step by step, the next step's fragments built while this step's MMAs run"][mode]
        for blocks_per_sm in [4, 8, 12]:
            time_kernel[wgmma_kernel[False, 1, mode]](label, TILE, blocks_per_sm)
