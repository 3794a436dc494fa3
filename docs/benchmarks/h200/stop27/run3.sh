#!/bin/bash
# Session 27, call 1: attention kernel variants + model A/B + profiles at 1024x1024 and 384x384 b4.
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
O=$OUT/c1; mkdir -p $O
exec > >(tee $O/log.txt) 2>&1
echo "commit $(cat .device/commit) (working tree)"; date
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python -c 'import torch,timm,triton;print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), timm.__version__, triton.__version__)'
CKPT=$(python -c 'from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import VIT_L16; print(c(VIT_L16))')
t0=$SECONDS
MICRO_S=190 timeout 400 python .device/attn2_probe.py $CKPT $O
echo "rc $? at $((SECONDS-t0)) s"
timeout $((530-(SECONDS-t0))) python .device/prof.py $CKPT $O/prof_1024.txt 1024 1024 | head -40
echo "at $((SECONDS-t0)) s"
timeout $((575-(SECONDS-t0))) python .device/prof.py $CKPT $O/prof_384_b4.txt 384 384 4 | head -30
echo "end at $((SECONDS-t0)) s"
