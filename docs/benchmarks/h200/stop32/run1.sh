#!/bin/bash
# Session 32, call 1: the closing figures of issue 11 by tools/latency.py on the final code:
# ViT-L/16 at the three sizes, batch 1, against eager fp32 and the compute floor (one run);
# ViT-L/16 batch 1 and 4 at 384x384 and 480x640 (one run); ResNet101 at 480x640, batch 1 and 4.
echo "commit $(cat .device/commit) (working tree; git status clean here)"; date
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
python -c "import sys, numpy, triton, torch, timm; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'triton', triton.__version__, 'torch', torch.__version__, 'cudnn', torch.backends.cudnn.version(), 'timm', timm.__version__)"
t0=$SECONDS
ck() { python -c "from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import $1; print(c($1))"; }
VIT=$(ck VIT_L16); RN=$(ck RN101)
echo "[checkpoints $((SECONDS-t0)) s]"
python tools/latency.py --checkpoint $VIT --sizes 384x384,480x640,1024x1024 --batch 1 \
  --backends torch-default --output $OUT/final_vit_b1.json --table $OUT/final_vit_b1.md \
  --plot $OUT/final_vit_b1.png 2>&1 | grep "|"
echo "[$((SECONDS-t0)) s]"
python tools/latency.py --checkpoint $VIT --sizes 384x384,480x640 --batch 1,4 --no-baseline \
  --no-peak --backends torch-default --output $OUT/final_vit_b4.json \
  --table $OUT/final_vit_b4.md 2>&1 | grep "|"
echo "[$((SECONDS-t0)) s]"
left=$((590-(SECONDS-t0)))
echo "rn101, $left s left"
timeout $left python tools/latency.py --checkpoint $RN --sizes 480x640 --batch 1,4 \
  --backends torch-default --output $OUT/final_rn101.json --table $OUT/final_rn101.md 2>&1 | grep "|"
echo "done $((SECONDS-t0)) s"
