#!/bin/bash
# Session 29, call 3: tools/latency.py on the final code (384x384 alone first, 1024x1024,
# then 480x640 and 384x384 at batch 1 and 4, one process each), then tools/fidelity.py.
echo "commit $(cat .device/commit) (working tree)"; date
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
t0=$SECONDS
CKPT=$(python -c 'from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import VIT_L16; print(c(VIT_L16))')
L="python tools/latency.py --checkpoint $CKPT --warmup 5 --iterations 30 --no-baseline --no-peak --backends torch-default"
$L --sizes 384x384 --batch 1 --output $OUT/lat_384.json --table $OUT/lat_384.md 2>&1 | grep "|"
echo "[$((SECONDS-t0)) s]"
$L --sizes 1024x1024 --batch 1 --output $OUT/lat_1024.json --table $OUT/lat_1024.md 2>&1 | grep "|"
echo "[$((SECONDS-t0)) s]"
$L --sizes 480x640,384x384 --batch 1,4 --output $OUT/lat_b4.json --table $OUT/lat_b4.md 2>&1 | grep "|"
echo "[$((SECONDS-t0)) s]"
left=$((585-(SECONDS-t0)))
echo "fidelity, $left s left"
[ $left -gt 100 ] && timeout $left python tools/fidelity.py --checkpoint $CKPT --backend torch --preset torch-default --sizes 480x640,384x384,1024x1024 --output $OUT/fidelity_default.json 2>&1 | grep -i -E "pass|fail|agree|size|\|" | tail -12
echo "done $((SECONDS-t0)) s"
