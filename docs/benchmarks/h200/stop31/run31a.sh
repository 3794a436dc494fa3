#!/bin/bash
# Session 31, call 1: FP8 attention (f8k.py): kernels and the fidelity gate (f8_run.py's
# end-to-end part, `e2e`, was not run).
echo "commit $(cat .device/commit) + .device probes"; date
LSEG_ROS_WHEELS=.device/whl source scripts/gpu_env.sh >/dev/null 2>&1 || true
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
python -c 'import torch, triton, numpy; print(torch.__version__, triton.__version__, numpy.__version__)'
t0=$SECONDS
timeout 200 python .device/f8_run.py $OUT/f8_kernels.jsonl kernels 2>&1 | grep -v Warning | tail -20
echo "kernels: $((SECONDS-t0)) s"
for m in pv all; do
  timeout 100 python .device/f8_fid.py $m $OUT/fidelity_fp8_$m.json 2>&1 | grep -E "^(pv|all|swapped)|Error" | tail -6
  echo "fidelity $m: $((SECONDS-t0)) s"
done
cp .device/f8k.py .device/f8_run.py .device/f8_fid.py $OUT/
