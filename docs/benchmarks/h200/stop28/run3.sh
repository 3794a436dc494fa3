#!/bin/bash
# Session 28, call 3 (diagnostic): the attention kernel with one part left out; register caps;
# the toolchain for a CUDA or Gluon attention kernel.
export LSEG_ROS_WHEELS=.device/whl
source scripts/gpu_env.sh
O=$OUT/c3; mkdir -p $O
exec > >(tee $O/log.txt) 2>&1
echo "commit $(cat .device/commit) (working tree)"; date
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv
timeout 150 python .device/free_probe.py $O/attention_parts.json
echo "== toolchain"
which nvcc; ls -d /usr/local/cuda* 2>&1 | head -3
python -c "import torch.utils.cpp_extension as c; print('CUDA_HOME', c.CUDA_HOME)"
python -c "import triton.experimental.gluon.language.nvidia.hopper as h; print('gluon hopper', [n for n in dir(h) if not n.startswith('_')])" 2>&1 | tail -1
pip list 2>/dev/null | grep -i -E "nvidia|cutlass|flash|cuda" | head -20
