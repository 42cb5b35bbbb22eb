"""Times the CPU forward kernel called directly from Mojo, outside any MAX graph.

    mojo run -I solutions/p20 benchmarks/cpu_kernel_standalone.mojo

Compare with the same kernel inside a MAX graph (benchmarks/bench_conv1d.py):
the gap is what the graph's execution adds. See docs/overhead.md.
"""

from op.kernels import correlate_cpu
from std.sys import simd_width_of
from std.time import perf_counter_ns


def main() raises:
    comptime P = Pointer[Float32, MutAnyOrigin]
    var n = 1 << 22
    var x = List[Float32](length=n, fill=1.0)
    var out = List[Float32](length=n, fill=0.0)
    var w = List[Float32](length=64, fill=0.5)
    var px = rebind[P](x.unsafe_ptr())
    var po = rebind[P](out.unsafe_ptr())
    var pw = rebind[P](w.unsafe_ptr())
    print("N = 2^22 float32, SIMD width", simd_width_of[DType.float32](), "for float32")
    for k in [1, 4, 64]:
        correlate_cpu[DType.float32](po, px, pw, 1, n, k, 0, False)
        var start = perf_counter_ns()
        for _ in range(20):
            correlate_cpu[DType.float32](po, px, pw, 1, n, k, 0, False)
        print("K =", k, ":", Float64(perf_counter_ns() - start) / 20 / 1e6, "ms per call")
