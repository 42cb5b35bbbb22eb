#!/usr/bin/env bash
# A record of the tuning runs on the H200 (not a tool): benchmarks/kernel_tuning.mojo
# built against variants of the op package (constants changed by sed), and ncu
# of the op's kernel for a few K.
#   bash benchmarks/tune_variants.sh "NAME|sed expression" ...
set -uo pipefail
source /tmp/max-env.sh
mj() { python3 -c 'import sys; from mojo.run import subprocess_run_mojo as m; sys.exit(m(sys.argv[1:]).returncode)' "$@"; }
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC') commit: ${COMMIT:-?}"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
names=()
for spec in "$@"; do
  name=${spec%%|*}; expr=${spec#*|}; names+=("$name")
  d=/tmp/var_$name; rm -rf $d; mkdir -p $d && cp -r solutions/p20/op $d/
  [ -n "$expr" ] && sed -i "$expr" $d/op/kernels.mojo
  echo "variant $name: sed '$expr'"; diff solutions/p20/op/kernels.mojo $d/op/kernels.mojo
  (mj build -I $d benchmarks/kernel_tuning.mojo -o $d/tune > $d/build.txt 2>&1; echo "built $name rc $?"; tail -3 $d/build.txt) &
done
wait
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section SchedulerStats"
for k in ${NCU_K:-}; do
  echo "== ncu ${names[0]} K=$k"
  timeout 90 ncu --clock-control none --kill yes --kernel-name regex:correlate_ --launch-count 1 $S /tmp/var_${names[0]}/tune --once $k > $OUT/ncu_${names[0]}_k$k.txt 2>&1
  grep -E 'Duration|Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Issue Slots Busy|Eligible|Block Limit Reg' $OUT/ncu_${names[0]}_k$k.txt | head -24
done
for name in "${names[@]}"; do
  echo "== tune $name ${TUNE_GRIDS:-2}"
  timeout 150 /tmp/var_$name/tune ${TUNE_GRIDS:-2} 2>&1 | tee $OUT/tune_$name.txt
done
