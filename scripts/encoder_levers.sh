#!/usr/bin/env bash
# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Issue 11's measurements on a GPU: each lever of the image encoder on its own, at 384x384,
# 480x640 and 1024x1024, batch 1 and 4 (tools/latency.py), their fidelity against fp32
# (tools/fidelity.py), and a kernel breakdown of the fp16 default at 480x640.
#   bash scripts/encoder_levers.sh RESULTS_DIR [STEP...]
# Steps (default: all, in this order): vit rn101 inductor fidelity profile; and on demand:
#   default   the torch GPU default (compiled) at every size: latency (ViT-L/16, batch 1 and
#             4) and fidelity against fp32 for both variants
#   autotune  Inductor's extra levers at 480x640, batch 1: max-autotune (Triton GEMM
#             templates, autotuned at compile time) and weight freezing (constant folding)
# Random official-layout weights (lseg_ros.core.model.synthetic); see docs/benchmarks.md.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
results=${1:?results directory}
shift
steps=${*:-vit rn101 inductor fidelity profile}
mkdir -p "$results"
source scripts/gpu_env.sh
export PYTHONUNBUFFERED=1
ckpt() { python -c "from lseg_ros.core.model.synthetic import cached_reference_checkpoint as c
from lseg_ros.core.model.variants import $1; print(c($1))"; }
vit=$(ckpt VIT_L16)
rn=$(ckpt RN101)
sizes=${LSEG_LEVER_SIZES:-384x384,480x640,1024x1024}
levers="torch-fp16-graph-nhwc torch-fp16-foldbn torch-fp16-ln16 torch-fp16-sdpa-flash
        torch-fp16-sdpa-cudnn torch-fp16-sdpa-efficient torch-fp8-rowwise torch-fp8-tensorwise
        ${LSEG_LEVER_EXTRA:-}"
latency() { python tools/latency.py --warmup 5 --iterations 30 "$@"; }
for step in $steps; do
  echo "== $step =="
  case $step in
    vit) latency --checkpoint "$vit" --sizes "$sizes" --batch 1,4 --backends $levers \
           --output "$results/latency_vit.json" --table "$results/latency_vit.md" ;;
    rn101) latency --checkpoint "$rn" --sizes 480x640 --batch 1,4 --no-peak \
             --backends torch-fp16-graph-nhwc torch-fp16-foldbn ${LSEG_LEVER_RN_EXTRA:-} \
             --output "$results/latency_rn101.json" --table "$results/latency_rn101.md" ;;
    inductor) latency --checkpoint "$vit" --sizes 480x640 --batch 1,4 --no-peak \
                --backends torch-fp16-inductor-graph ${LSEG_LEVER_INDUCTOR_EXTRA:-} \
                --output "$results/latency_inductor.json" --table "$results/latency_inductor.md" ;;
    fidelity)
      for preset in ${LSEG_LEVER_FIDELITY:-torch-fp16-graph-nhwc torch-fp16-foldbn torch-fp16-ln16 torch-fp8-rowwise torch-fp8-tensorwise}; do
        python tools/fidelity.py --checkpoint "$vit" --backend torch --preset "$preset" \
          --sizes "$sizes" --output "$results/fidelity_vit_$preset.json" | tail -n 5
      done
      python tools/fidelity.py --checkpoint "$rn" --backend torch --preset torch-fp16-foldbn \
        --sizes "$sizes" --output "$results/fidelity_rn101_torch-fp16-foldbn.json" | tail -n 5 ;;
    default)
      for variant in vit rn; do
        python tools/fidelity.py --checkpoint "${!variant}" --backend torch \
          --preset torch-default --sizes "$sizes" \
          --output "$results/fidelity_${variant}_default.json" | tail -n 5
      done
      latency --checkpoint "$vit" --sizes "${LSEG_DEFAULT_SIZES:-$sizes}" \
        --batch "${LSEG_DEFAULT_BATCH:-1,4}" --no-peak --no-baseline --backends torch-default \
        --output "$results/latency_vit_default_sizes.json" \
        --table "$results/latency_vit_default_sizes.md" ;;
    autotune)
      latency --checkpoint "$vit" --sizes 480x640 --batch 1 --no-peak --no-baseline \
        --backends torch-fp16-lean-inductor torch-fp16-lean-autotune \
        --output "$results/latency_vit_autotune.json" --table "$results/latency_vit_autotune.md"
      TORCHINDUCTOR_FREEZING=1 latency --checkpoint "$vit" --sizes 480x640 --batch 1 \
        --no-peak --no-baseline --backends torch-fp16-lean-inductor \
        --output "$results/latency_vit_freezing.json" --table "$results/latency_vit_freezing.md" ;;
    profile) python - "$vit" "$results/profile_480x640.txt" <<'PY'
import sys
import torch
from torch.profiler import profile, ProfilerActivity
from lseg_ros.core.backends.torch_backend import TorchBackend
from lseg_ros.core.model.checkpoint import load_weights
backend = TorchBackend(load_weights(sys.argv[1]), 'cuda:0', 'fp16', cuda_graph=False,
                       channels_last=True, cudnn_benchmark=True)
x = torch.randn(1, 3, 480, 640, device='cuda')
for _ in range(5):
    backend(x)
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(10):
        backend(x)
    torch.cuda.synchronize()
averages = prof.key_averages()
try:
    table = averages.table(sort_by='self_device_time_total', row_limit=40, max_name_column_width=90)
except (AttributeError, KeyError, ValueError):
    table = averages.table(sort_by='self_cuda_time_total', row_limit=40, max_name_column_width=90)
open(sys.argv[2], 'w').write(table)
print(table[:6000])
PY
    ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
