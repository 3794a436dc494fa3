#!/bin/bash
# Session 29, call 1: narrow last key step (kernel and default), residual adds in the
# matrix products, GEMMs at 4096/4097 rows; the kernel's GPU tests.
echo "commit $(cat .device/commit) + working tree"; date
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
t0=$SECONDS
python -m pytest -q -p no:cacheprovider test/model/test_flash_attention.py 2>&1 | tail -3
echo "tests $((SECONDS-t0)) s"
python .device/k29.py $OUT/k29.json 2>&1 | grep -v Warning
echo "k29 $((SECONDS-t0)) s"
CKPT=$(python -c 'from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import VIT_L16; print(c(VIT_L16))')
left=$((570-(SECONDS-t0)))
echo "ab, $left s left"
timeout $left python .device/ab29.py $CKPT $OUT/ab29.json 2>&1 | grep -v -i warn | tail -30
echo "done $((SECONDS-t0)) s"
