#!/usr/bin/env bash
# ncu of the tiled kernel at K = 64, then benchmarks/kernel_tuning.mojo against
# variants of the op package (threads per block and taps per chunk changed by sed).
set -uo pipefail
source /tmp/max-env.sh
mj() { python3 -c 'import sys; from mojo.run import subprocess_run_mojo as m; sys.exit(m(sys.argv[1:]).returncode)' "$@"; }
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC') commit: ${COMMIT:-?}"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
variants="T256_C1024 T32_C256 T64_C256 T128_C512"
for v in $variants; do
  t=${v#T}; t=${t%%_*}; c=${v##*_C}
  d=/tmp/var_$v; mkdir -p $d && cp -r solutions/p20/op $d/
  sed -i "s/^comptime THREADS = [0-9]*/comptime THREADS = $t/; s/^comptime K_CHUNK = [0-9]*/comptime K_CHUNK = $c/" $d/op/kernels.mojo
  (mj build -I $d benchmarks/kernel_tuning.mojo -o $d/tune > $d/build.txt 2>&1; echo "built $v rc $?") &
done
wait
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section SchedulerStats"
for v in T256_C1024 T32_C256; do
  echo "== ncu $v K=64"
  timeout 90 ncu --clock-control none --kill yes --kernel-name regex:correlate_gpu_kerne --launch-count 1 $S /tmp/var_$v/tune --once 64 > $OUT/ncu_$v.txt 2>&1
  grep -E 'Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Issue Slots Busy|Block Limit|Eligible|Stall|stalled' $OUT/ncu_$v.txt | head -40
done
declare -A grids=([T256_C1024]="2 3" [T32_C256]="12 16 20 24 32" [T64_C256]="6 8 10 12 16" [T128_C512]="3 4 5 6 8")
for v in $variants; do
  echo "== tune $v"
  timeout 100 /tmp/var_$v/tune ${grids[$v]} 2>&1 | tee $OUT/tune_$v.txt
done
