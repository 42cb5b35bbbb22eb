"""The GPU kernels instantiated for Apple GPUs. Metal has no float64, so
this instantiates every GPU kernel of the op package as
instantiate_kernels.mojo does, for float32, float16 and bfloat16 only.
tests/test_gpu_targets.py compiles it with `mojo build --target-accelerator
apple-mN --emit asm`; nothing here is meant to be executed (the op and the
puzzle run on cpu and cuda only)."""

from max.gpu.host import DeviceContext
from instantiate_kernels import instantiate


def main() raises:
    var ctx = DeviceContext()
    instantiate[DType.float32](ctx)
    instantiate[DType.float16](ctx)
    instantiate[DType.bfloat16](ctx)
    ctx.synchronize()
