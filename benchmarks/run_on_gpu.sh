#!/usr/bin/env bash
# What we run on the lent H200 (see ../shared/gpu/README.md for staging MAX):
#   COMMIT=<sha> [TAG=name] bash benchmarks/run_on_gpu.sh tests|bench|sanitize|overhead|capture|tune [args]
# Each step writes a log that starts with the command, the date and the GPU,
# into $OUT (the device tool brings it back) or logs/ when $OUT is unset;
# TAG names a second run of the same step, so that it does not overwrite the first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-logs}
mkdir -p "$out"
step=$1
shift
name="${step}${TAG:+_$TAG}"
log="$out/h200_${name}.log"
{
  echo "\$ bash benchmarks/run_on_gpu.sh $step $*"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  # No git on the device machine: the caller passes the commit it sent.
  echo "commit: ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch, max; print("torch", torch.__version__, "| max", getattr(max, "__version__", "?"))'
  python3 -c 'import torch; from max.driver import Accelerator as A; print("streams: torch current", torch.cuda.current_stream().cuda_stream, "| MAX default queue", A(0).default_queue.native_stream_handle)'
} > "$log" 2>&1
case "$step" in
  tests)
    # The CPU half of these tests runs in CI; here, the CUDA half.
    python3 -m pytest -q -p no:cacheprovider --timeout 120 -k "cuda or reduce_overhead or ordered_with or devices_must" \
      tests/test_conv1d_op.py tests/test_autograd.py tests/test_puzzle.py "$@" 2>&1 | tee -a "$log"
    ;;
  bench)
    python3 benchmarks/bench_conv1d.py --out "$out/$name" "$@" 2>&1 | tee -a "$log"
    ;;
  sanitize)
    for tool in memcheck racecheck; do
      echo "== compute-sanitizer --tool $tool" | tee -a "$log"
      compute-sanitizer --tool "$tool" --target-processes all \
        python3 -m pytest -q -p no:cacheprovider tests/test_conv1d_op.py tests/test_autograd.py \
          -k "cuda and (2049 or seed or longer or gradients_match)" "$@" 2>&1 | tail -15 | tee -a "$log"
    done
    ;;
  overhead)
    python3 benchmarks/call_overhead.py --device cuda "$@" 2>&1 | tee -a "$log"
    ;;
  capture)
    python3 benchmarks/cuda_graph_capture.py "$@" 2>&1 | tee -a "$log"
    ;;
  tune)
    # Through the mojo wheel's launcher, which points the compiler at its libraries.
    python3 -c 'import sys; from mojo.run import subprocess_run_mojo as mojo; sys.exit(mojo(sys.argv[1:]).returncode)' \
      run -I solutions/p20 benchmarks/kernel_tuning.mojo "$@" 2>&1 | tee -a "$log"
    ;;
  *)
    echo "unknown step $step" >&2
    exit 2
    ;;
esac
