#!/bin/bash
# Session 30, call 2: the Gluon kernel with the exponentials under the value product.
# Call 1 ran the same with call 1's kernel (gfa_call1.diff), its variant list (in
# g30.jsonl) and g30.jsonl as the output.
echo "commit $(cat .device/commit) + .device probes"; date
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
python -c 'import torch, triton; print(torch.__version__, triton.__version__)'
python .device/g30_run.py $OUT/g30b.jsonl 420 2>&1 | grep -v Warning
cp .device/gfa.py $OUT/
