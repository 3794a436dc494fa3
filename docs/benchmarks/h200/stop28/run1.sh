#!/bin/bash
# Session 28, call 1: float16-pair exponentials in the attention kernel: micro, SASS,
# interleaved A/B of the whole default, fidelity, latency.
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
O=$OUT/c1; mkdir -p $O
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
timeout 150 python .device/attn4_probe.py $O/attention_exp16.json
step sass
timeout 30 bash .device/sass_count.sh $TRITON_CACHE_DIR | tail -30
step ab
timeout 170 python .device/ab.py $CKPT $O/ab_exp16.json
step fidelity
timeout 130 python tools/fidelity.py --checkpoint $CKPT --backend torch --preset torch-default --sizes 480x640,384x384,1024x1024 --output $O/fidelity_default.json | tail -12
step latency
timeout $((590-(SECONDS-t0))) python tools/latency.py --checkpoint $CKPT --warmup 5 --iterations 30 --no-baseline --no-peak --sizes 480x640,384x384 --batch 1,4 --backends torch-default --output $O/latency_default.json --table $O/latency_default.md
cat $O/latency_default.md
timeout $((595-(SECONDS-t0))) python tools/latency.py --checkpoint $CKPT --warmup 5 --iterations 30 --no-baseline --no-peak --sizes 1024x1024 --batch 1 --backends torch-default --output $O/latency_default_1024.json --table $O/latency_default_1024.md
cat $O/latency_default_1024.md
step end
