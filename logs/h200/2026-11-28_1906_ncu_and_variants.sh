#!/usr/bin/env bash
# The script as run on the H200 at commit 0c2ac16 (a record, not a tool): ncu of the
# small-K kernel, then kernel_tuning.mojo against three variants of the op package.
set -uo pipefail
source /tmp/max-env.sh
mj() { python3 -c 'import sys; from mojo.run import subprocess_run_mojo as m; sys.exit(m(sys.argv[1:]).returncode)' "$@"; }
which ptxas ncu 2>&1 | tee $OUT/which.txt
mj build -I solutions/p20 benchmarks/kernel_tuning.mojo -o /tmp/tune 2>&1 | tail -3
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis"
timeout 120 ncu --clock-control none --kill yes --kernel-name regex:correlate_small --launch-skip 1 --launch-count 1 $S /tmp/tune > $OUT/ncu_small.txt 2>&1
timeout 150 ncu --clock-control none --kill yes --kernel-name regex:correlate_gpu_kernel --launch-skip 296 --launch-count 1 $S /tmp/tune > $OUT/ncu_tiled_k64.txt 2>&1
timeout 100 /tmp/tune > $OUT/tune_base.txt 2>&1
for v in "OUTPUTS_PER_THREAD = 16" "THREADS = 128"; do
  d=/tmp/var_$(echo $v | tr -d ' =')
  mkdir -p $d && cp -r solutions/p20/op $d/ && name=${v%% *}
  sed -i "s/^comptime $name = [0-9]*/comptime $v/" $d/op/kernels.mojo
  grep "^comptime $name" $d/op/kernels.mojo
  mj build -I $d benchmarks/kernel_tuning.mojo -o $d/tune 2>&1 | tail -3
  timeout 100 $d/tune > $OUT/tune_$(basename $d).txt 2>&1
done
ls -la $OUT
