#!/bin/bash
# Session 28, call 2: float16-pair exponentials and the row sums by the tensor cores:
# micro, SASS, interleaved A/B of the whole default, fidelity of the fastest variant.
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
O=$OUT/c2; mkdir -p $O
exec > >(tee $O/log.txt) 2>&1
echo "commit $(cat .device/commit) + working tree"; git diff --stat; date
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv
python -c 'import torch,timm,triton;print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), timm.__version__, triton.__version__)'
export TRITON_CACHE_DIR=/tmp/tcache28
CKPT=$(python -c 'from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import VIT_L16; print(c(VIT_L16))')
t0=$SECONDS
step() { echo "== $1 ($((SECONDS-t0)) s)"; }
step micro
timeout 170 python .device/attn4_probe.py $O/attention_variants.json
step sass
timeout 30 bash .device/sass_count.sh $TRITON_CACHE_DIR 2>&1 | head -40
step ab
timeout 200 python .device/ab.py $CKPT $O/ab_variants.json
step fidelity
timeout $((590-(SECONDS-t0))) python .device/fid_variant.py $O/ab_variants.json 1024x1024 --checkpoint $CKPT --backend torch --preset torch-default --sizes 480x640,384x384,1024x1024 --output $O/fidelity_variant.json | tail -8
step end
