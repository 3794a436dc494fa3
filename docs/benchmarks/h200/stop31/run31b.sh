#!/bin/bash
# Session 31, call 2: FP8 kernel with the tensor cores' sums promoted every 32 terms.
echo "commit $(cat .device/commit) + .device probes"; date
LSEG_ROS_WHEELS=.device/whl source scripts/gpu_env.sh >/dev/null 2>&1 || true
export PYTHONPATH=$PWD
t0=$SECONDS
timeout 120 python .device/f8_promote.py $OUT/f8_promote.jsonl 2>&1 | grep -v Warning | tail -8
echo "kernels: $((SECONDS-t0)) s"
F8_PROMOTE=32 timeout 110 python .device/f8_fid.py pv $OUT/fidelity_fp8_pv_promote32.json 2>&1 | grep -E "^(pv|all|swapped)|Error" | tail -6
echo "fidelity pv promote 32: $((SECONDS-t0)) s"
cp .device/f8k.py .device/f8_promote.py $OUT/
