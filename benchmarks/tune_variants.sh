#!/usr/bin/env bash
# A record of the tuning runs on the H200 (not a tool): benchmarks/kernel_tuning.mojo
# built against variants of the op package (constants changed by sed), and ncu
# of the op's kernel for a few K.
#   bash benchmarks/tune_variants.sh "NAME|sed expression[|kernels file]" ...
# A third field names a kernels.mojo to start from instead of the working tree's.
set -uo pipefail
source /tmp/max-env.sh
mj() { python3 -c 'import sys; from mojo.run import subprocess_run_mojo as m; sys.exit(m(sys.argv[1:]).returncode)' "$@"; }
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC') commit: ${COMMIT:-?}"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
names=()
for spec in "$@"; do
  IFS='|' read -r name expr from <<< "$spec"; names+=("$name")
  d=/tmp/var_$name; rm -rf $d; mkdir -p $d && cp -r solutions/p20/op $d/
  [ -n "${from:-}" ] && cp "$from" $d/op/kernels.mojo && echo "variant $name starts from $from"
  [ -n "$expr" ] && sed -i "$expr" $d/op/kernels.mojo
  echo "variant $name: sed '$expr'"; diff solutions/p20/op/kernels.mojo $d/op/kernels.mojo
  (mj build -I $d benchmarks/kernel_tuning.mojo -o $d/tune > $d/build.txt 2>&1; echo "built $name rc $?"; tail -3 $d/build.txt) &
done
wait
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section SchedulerStats"
# NCU="NAME:K:WINDOW_K ...": ncu of variant NAME's kernel for K taps (window_k as given),
# with the warps' stall reasons per issued instruction.
M="--metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\\.ratio"
for spec in ${NCU:-}; do
  IFS=: read -r name k wk <<< "$spec"
  echo "== ncu $name K=$k window_k=$wk"
  timeout 90 ncu --clock-control none --kill yes --kernel-name regex:correlate_ --launch-count 1 $S $M /tmp/var_$name/tune --once $k $wk > $OUT/ncu_${name}_k${k}_w$wk.txt 2>&1
  grep -E 'Duration|Throughput|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Block Limit Reg|highest-utilized' $OUT/ncu_${name}_k${k}_w$wk.txt | head -20
  grep -E 'issue_stalled' $OUT/ncu_${name}_k${k}_w$wk.txt | awk '$NF+0 > 0.05' | sort -k3 -g -r | head -12
done
for name in "${names[@]}"; do
  echo "== tune $name ${TUNE_GRIDS:-2}"
  timeout 150 /tmp/var_$name/tune ${TUNE_GRIDS:-2} 2>&1 | tee $OUT/tune_$name.txt
done
