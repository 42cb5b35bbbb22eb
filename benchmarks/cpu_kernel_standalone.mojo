"""Times the CPU forward kernel called directly from Mojo, outside any MAX graph.

    mojo run -I solutions/p20 benchmarks/cpu_kernel_standalone.mojo

Each K is timed warm (back-to-back calls: the 16 MB input stays in a 32 MB
L3) and cold (a 128 MB buffer is written before each call, as other work
would, so the input comes from memory). Compare with the same kernel inside
a MAX graph (benchmarks/bench_conv1d.py): the gap is what the graph's
execution adds. See docs/overhead.md.
"""

from op.kernels import correlate_cpu
from std.sys import simd_width_of
from std.time import perf_counter_ns

comptime CALLS = 15


def main() raises:
    comptime P = Pointer[Float32, MutAnyOrigin]
    var n = 1 << 22
    var x = List[Float32](length=n, fill=1.0)
    var out = List[Float32](length=n, fill=0.0)
    var flush = List[Float32](length=1 << 25, fill=0.0)
    var w = List[Float32](length=64, fill=0.5)
    var px = rebind[P](x.unsafe_ptr())
    var po = rebind[P](out.unsafe_ptr())
    var pw = rebind[P](w.unsafe_ptr())
    print("N = 2^22 float32, SIMD width", simd_width_of[DType.float32](), "for float32; ms per call, median of", CALLS)
    for k in [1, 4, 64]:
        correlate_cpu[DType.float32](po, px, pw, 1, n, k, 0, False)
        var warm = List[Float64]()
        var cold = List[Float64]()
        for _ in range(CALLS):
            var start = perf_counter_ns()
            correlate_cpu[DType.float32](po, px, pw, 1, n, k, 0, False)
            warm.append(Float64(perf_counter_ns() - start) / 1e6)
        for _ in range(CALLS):
            for i in range(len(flush)):
                flush[i] = Float32(i)
            var start = perf_counter_ns()
            correlate_cpu[DType.float32](po, px, pw, 1, n, k, 0, False)
            cold.append(Float64(perf_counter_ns() - start) / 1e6)
        sort(warm)
        sort(cold)
        print("K =", k, ": warm", warm[CALLS // 2], "ms, cold", cold[CALLS // 2], "ms")
