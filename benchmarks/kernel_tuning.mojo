"""Times the forward GPU kernel alone, straight from Mojo, for several grid
sizes (blocks per multiprocessor), against a device-to-device copy of the
same bytes. Used to pick BLOCKS_PER_SM in solutions/p20/op/kernels.mojo; the
benchmark of record is bench_conv1d.py.

    mojo run -I solutions/p20 benchmarks/kernel_tuning.mojo [blocks per SM ...]
    mojo run -I solutions/p20 benchmarks/kernel_tuning.mojo --once K [window_k]

The tiled kernel runs once per grid size given (default: 2 3 4 6 8 12),
beside the window kernel where K allows it, and beside the tensor-core
kernel (op/tensor_cores.mojo) where the GPU and K allow it.
With --once, it launches the op's kernel for K taps once and exits (for ncu).
"""

from std.math import ceildiv
from std.sys import argv, size_of
from std.time import perf_counter_ns
from max.gpu.host import DeviceAttribute, DeviceContext
from op.kernels import BLOCKS_PER_SM, K_CHUNK, SMALL_K, THREADS, TILE, WINDOW_K, correlate_gpu
from op.tensor_cores import TC_MAX_K

comptime N = 1 << 26
comptime DT = DType.float32  # the data type timed (a variant may change it)
comptime CALLS = 20


def main() raises:
    var ctx = DeviceContext()
    comptime P = Pointer[Scalar[DT], MutAnyOrigin]
    var x_buf = ctx.enqueue_create_buffer[DT](N)
    var out_buf = ctx.enqueue_create_buffer[DT](N)
    var w_buf = ctx.enqueue_create_buffer[DT](1500)
    var host_x = ctx.enqueue_create_host_buffer[DT](N)
    var host_w = ctx.enqueue_create_host_buffer[DT](1500)
    var host_out = ctx.enqueue_create_host_buffer[DT](N)
    ctx.synchronize()
    for i in range(N):
        host_x[i] = Scalar[DT](Float32((i * 7919) % 1001) / 1001.0 - 0.5)
    for j in range(1500):
        host_w[j] = Scalar[DT](Float32((j * 31) % 17) / 17.0 - 0.5)
    ctx.enqueue_copy(x_buf, host_x)
    ctx.enqueue_copy(w_buf, host_w)
    ctx.synchronize()
    var out = rebind[P](out_buf.unsafe_ptr())
    var x = rebind[P](x_buf.unsafe_ptr())
    var w = rebind[P](w_buf.unsafe_ptr())
    var sms = ctx.get_attribute(DeviceAttribute.MULTIPROCESSOR_COUNT)
    var tiled_grids = List[Int]()
    var args = argv()
    if len(args) >= 3 and args[1] == "--once":
        var wk = Int(args[3]) if len(args) > 3 else -1  # -1: the op's choice
        correlate_gpu[DT](ctx, out, x, w, 1, N, Int(args[2]), 0, False, window_k=wk)
        ctx.synchronize()
        return
    for i in range(1, len(args)):
        tiled_grids.append(Int(args[i]))
    if len(tiled_grids) == 0:
        tiled_grids = [2, 3, 4, 6, 8, 12]
    print("multiprocessors", sms, "| N = 2^26", DT, "| THREADS", THREADS, "| TILE", TILE, "| K_CHUNK", K_CHUNK, "| tiles", ceildiv(N, TILE), "| mean of", CALLS, "launches")

    # The roofline: a device-to-device copy of the op's bytes (read N, write N).
    ctx.enqueue_copy(out_buf, x_buf)
    ctx.synchronize()
    var t0 = perf_counter_ns()
    for _ in range(CALLS):
        ctx.enqueue_copy(out_buf, x_buf)
    ctx.synchronize()
    var copy_us = Float64(perf_counter_ns() - t0) / 1e3 / CALLS
    print("copy", copy_us, "us", Float64(2 * N * size_of[DT]()) / copy_us / 1e3, "GB/s")

    # K <= SMALL_K runs the short-kernel window; up to WINDOW_K, the window
    # kernel, timed against the tiled one (window_k=0) at each grid size; beyond,
    # the tiled kernel. Up to TC_MAX_K the tensor-core kernel (the op's choice,
    # where it applies) runs first. Each configuration is spot-checked
    # against the host.
    var ks = [4, 8, 13, 16, 17, 18, 24, 32, 33, 40, 48, 49, 56, 64, 128, 256, 1500]
    for k in ks:
        var window_ks = List[Int]()
        var grids = List[Int]()
        var tensor_cores = List[Bool]()
        if k <= SMALL_K:
            window_ks.append(WINDOW_K)
            grids.append(BLOCKS_PER_SM)
            tensor_cores.append(False)
        else:
            if k <= TC_MAX_K:
                window_ks.append(-1)
                grids.append(BLOCKS_PER_SM)
                tensor_cores.append(True)
            if k <= WINDOW_K:
                window_ks.append(WINDOW_K)
                grids.append(BLOCKS_PER_SM)
                tensor_cores.append(False)
            for g in tiled_grids:
                window_ks.append(0)
                grids.append(g)
                tensor_cores.append(False)
        var line = "K=" + String(k) + " |"
        for c in range(len(grids)):
            var g = grids[c]
            var wk = window_ks[c]
            var tc = tensor_cores[c]
            correlate_gpu[DT](ctx, out, x, w, 1, N, k, 0, False, blocks_per_sm=g, window_k=wk, tensor_cores=tc)
            ctx.enqueue_copy(host_out, out_buf)
            ctx.synchronize()
            var worst = Float64(0)
            for s in range(64):
                var i = (s * 1048573) % N if s > 1 else (0 if s == 0 else N - 1)
                var want = Float64(0)
                for j in range(k):
                    if i + j < N:
                        want += Float64(host_x[i + j]) * Float64(host_w[j])
                worst = max(worst, abs(Float64(host_out[i]) - want) / (1.0 + abs(want)))
            var t = perf_counter_ns()
            for _ in range(CALLS):
                correlate_gpu[DT](ctx, out, x, w, 1, N, k, 0, False, blocks_per_sm=g, window_k=wk, tensor_cores=tc)
            ctx.synchronize()
            var us = Float64(perf_counter_ns() - t) / 1e3 / CALLS
            var label = "op's choice" if tc else (("window" if k > SMALL_K else "short") if wk > 0 else "tiled " + String(g) + "/SM")
            line += " " + label + " " + String(Float64(Int(us * 10)) / 10.0) + " us (" + String(Int(100 * copy_us / us)) + "% of copy, err " + String(Float32(worst)) + ")"
        print(line)
