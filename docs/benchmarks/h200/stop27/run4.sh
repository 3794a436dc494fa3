#!/bin/bash
# Session 27, call 2: the kernel's tilings in the package: GPU tests, micro, 1024 gap, fidelity, latency.
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
O=$OUT/c2; mkdir -p $O
exec > >(tee $O/log.txt) 2>&1
echo "commit $(cat .device/commit) (working tree)"; date
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python -c 'import torch,timm,triton;print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), timm.__version__, triton.__version__)'
CKPT=$(python -c 'from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import VIT_L16; print(c(VIT_L16))')
t0=$SECONDS
step() { echo "== $1 ($((SECONDS-t0)) s)"; }
step gpu_tests
timeout 100 python -m pytest -q -p no:cacheprovider test/model/test_flash_attention.py -m gpu 2>&1 | tail -3
step micro
timeout 70 python .device/attn3_probe.py $O/attn3.json
step fidelity
timeout 150 python tools/fidelity.py --checkpoint $CKPT --backend torch --preset torch-default --sizes 480x640,384x384,1024x1024 --output $O/fidelity_default.json | tail -12
step latency
timeout 130 python tools/latency.py --checkpoint $CKPT --warmup 5 --iterations 30 --no-baseline --no-peak --sizes 480x640,384x384 --batch 1,4 --backends torch-default torch-default-compile-off --output $O/latency.json --table $O/latency.md
cat $O/latency.md
timeout 60 python tools/latency.py --checkpoint $CKPT --warmup 5 --iterations 30 --no-baseline --no-peak --sizes 1024x1024 --batch 1 --backends torch-default torch-default-compile-off --output $O/latency_1024.json --table $O/latency_1024.md
cat $O/latency_1024.md
step gap
timeout $((585-(SECONDS-t0))) python .device/gap.py $CKPT $O/gap.json
step end
