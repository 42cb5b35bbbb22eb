#!/usr/bin/env bash
# The GPU checks of record, run from a checkout on a machine with a CUDA GPU
# and the dependencies (torch, max, mojo) installed:
#   COMMIT=<sha> [TAG=name] bash benchmarks/run_on_gpu.sh puzzle|tests|devices|sanitize|bench|depthwise [args]
#   puzzle    the learner's loop timed: three runs of the solved puzzle (the
#             first one cold on a fresh machine) and one of the unsolved one
#   tests     the CUDA half of the suite (the CPU half runs in CI)
#   devices   the tests that need two GPUs, with both visible
#   sanitize  compute-sanitizer memcheck and racecheck over tests that run every GPU kernel
#   bench     benchmarks/bench_conv1d.py: CSV, plot and per-call CSV beside the log
#             (with --call-cost-only: the per-call costs alone)
#   depthwise benchmarks/bench_depthwise.py beside its peers: CSV and plot beside the log
# Each step writes a log that starts with the command, the date, the commit
# and the GPU, into $OUT when it is set, else into logs/; TAG names a second
# run of the same step, so that it does not overwrite the first.
set -uo pipefail
cd "$(dirname "$0")/.."
# The op from this checkout, whether or not it is installed (a machine where
# nothing can be installed runs it from here).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out=${OUT:-logs}
mkdir -p "$out"
step=$1
shift
name="${step}${TAG:+_$TAG}"
log="$out/h200_${name}.log"
{
  echo "\$ bash benchmarks/run_on_gpu.sh $step $*"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  # A copied tree has no git: the caller passes the commit it sent.
  echo "commit: ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch, max; print("torch", torch.__version__, "| max", getattr(max, "__version__", "?"))'
  python3 -c 'import torch; from max.driver import Accelerator as A; print("streams: torch current", torch.cuda.current_stream().cuda_stream, "| MAX default queue", A(0).default_queue.native_stream_handle)'
} > "$log" 2>&1
case "$step" in
  puzzle)
    TIMEFORMAT="wall %R s"
    for run in first second third; do
      echo "== $run run: python3 solutions/p20/p20.py" | tee -a "$log"
      { time python3 solutions/p20/p20.py "$@"; } 2>&1 | tee -a "$log"
    done
    echo "== unsolved: python3 problems/p20/p20.py" | tee -a "$log"
    { time python3 problems/p20/p20.py "$@"; } 2>&1 | tee -a "$log"
    ;;
  tests)
    # The CPU half of these tests runs in CI; here, the CUDA half.
    python3 -m pytest -q -p no:cacheprovider --timeout 120 -k "cuda or reduce_overhead or ordered_with or devices_must" \
      tests/test_conv1d_op.py tests/test_autograd.py tests/test_devices.py tests/test_depthwise.py tests/test_puzzle.py \
      "$@" 2>&1 | tee -a "$log"
    ;;
  devices)
    # The op on a device other than the current one, and a two-process
    # DistributedDataParallel run; a failure's output stays in the log.
    python3 -m pytest -q -p no:cacheprovider --timeout 300 -k "cuda or devices_must" tests/test_devices.py \
      "$@" 2>&1 | tee -a "$log"
    ;;
  bench)
    python3 benchmarks/bench_conv1d.py --out "$out/$name" "$@" 2>&1 | tee -a "$log"
    ;;
  depthwise)
    python3 benchmarks/bench_depthwise.py --device cuda --out "$out/$name" "$@" 2>&1 | tee -a "$log"
    ;;
  sanitize)
    for tool in memcheck racecheck; do
      echo "== compute-sanitizer --tool $tool" | tee -a "$log"
      compute-sanitizer --tool "$tool" --target-processes all \
        python3 -m pytest -q -p no:cacheprovider tests/test_conv1d_op.py tests/test_autograd.py tests/test_depthwise.py \
          -k "cuda and (2049 or seed or longer or gradients_match or unaligned or (two_tiles and bfloat16) or long_float32 or (kernels_match and float32) or (several_tiles and bfloat16) or short_filters_with)" "$@" 2>&1 | tail -15 | tee -a "$log"
    done
    ;;
  *)
    echo "unknown step $step" >&2
    exit 2
    ;;
esac
