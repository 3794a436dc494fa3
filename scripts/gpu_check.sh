#!/usr/bin/env bash
# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# The GPU check: run on a machine with a CUDA GPU before calling GPU work done.
#   bash scripts/gpu_check.sh [RESULTS_DIR]          (make gpu-check)
# 1. the GPU tests and the node tests (node started as the launch file starts it, default
#    parameters: device auto, best-effort input, frames through ROS with the shipped Fast
#    DDS profile);
# 2. a short bench: node spawned with device auto, 640x480 rgb8 at 30 Hz and peak, next to
#    the transport baseline and the in-process pipeline rate; its JSON is kept.
# Python: the environment of `make setup` when there is one (source env.sh), else the
# machine's python3 with rclpy; on a machine without ROS 2 give LSEG_ROS_WHEELS=DIR with
# the ROS 2 wheels (and open_clip_torch, ftfy, wcwidth): they are installed into a venv in
# /tmp that also sees the machine's packages (torch, timm, ...). Exit code: non-zero when a
# test or the bench failed. LSEG_GPU_CHECK_QUICK=1 (about 3 minutes instead of 5): the GPU
# tests and the node's default-settings camera test only, and a bench at 30 Hz without the
# in-process reference.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
results=${1:-$root/gpu_check}
mkdir -p "$results"
export PYTHONUNBUFFERED=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}

source scripts/gpu_env.sh
python - <<'PY' || { echo "gpu_check: no CUDA GPU or no rclpy here" >&2; exit 2; }
import rclpy, torch
assert torch.cuda.is_available(), 'torch sees no CUDA GPU'
print(f'gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, '
      f'rclpy from {rclpy.__file__}')
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$results/gpu.txt"

status=0
tests="test/ros/test_node_camera.py test/ros/test_node.py"
bench_extra="--pipeline-reference"
if [ -n "${LSEG_GPU_CHECK_QUICK:-}" ]; then
  tests="test/ros/test_node_camera.py::test_default_settings_segment_every_frame_of_a_640x480_camera"
  bench_extra=""
  export LSEG_BENCH_RATES=${LSEG_BENCH_RATES:-30} LSEG_BENCH_DURATION=${LSEG_BENCH_DURATION:-4}
fi
echo "== tests: GPU tests and the node tests (device auto) =="
python -m pytest -q -p no:cacheprovider --timeout 900 -o junit_family=xunit2 \
  --junitxml "$results/tests.xml" $tests $(grep -rl 'mark.gpu' test --include='test_*.py') \
  -m 'gpu or ros' 2>&1 | tee "$results/tests.log" \
  | tail -n 30
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== bench: lseg_node spawned with default parameters (device auto), ViT-L/16 =="
checkpoint=$(python -c 'from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import VIT_L16; print(c(VIT_L16))')
python -m lseg_ros.cli.bench --spawn --checkpoint "$checkpoint" --rates "${LSEG_BENCH_RATES:-30,peak}" \
  --duration "${LSEG_BENCH_DURATION:-6}" --warmup 3 --transport-baseline $bench_extra \
  --output "$results/bench.json" 2>&1 | tee "$results/bench.log" | tail -n 25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
grep -q 'backend torch on cuda' "$results/bench.node.log" || {
  echo "gpu_check: the node did not run on the GPU (see $results/bench.node.log)" >&2; status=1; }
echo "gpu_check: $([ $status -eq 0 ] && echo PASSED || echo FAILED) (results in $results)"
exit $status
