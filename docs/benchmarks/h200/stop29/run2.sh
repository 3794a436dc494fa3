#!/bin/bash
# Session 29, call 2: programmatic dependent launch (attention kernel; Inductor's kernels).
echo "commit $(cat .device/commit) + working tree"; date
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
t0=$SECONDS
python -c "import numpy, triton, torch; print('numpy', numpy.__version__, 'triton', triton.__version__, 'torch', torch.__version__)"
python -m pytest -q -p no:cacheprovider -rs test/model/test_flash_attention.py 2>&1 | tail -4
echo "tests $((SECONDS-t0)) s"
CKPT=$(python -c 'from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import VIT_L16; print(c(VIT_L16))')
left=$((570-(SECONDS-t0)))
echo "ab, $left s left"
timeout $left python .device/ab29b.py $CKPT $OUT/ab29b.json 2>&1 | grep -v -i "warn\|Extern Choice" | tail -30
echo "done $((SECONDS-t0)) s"
