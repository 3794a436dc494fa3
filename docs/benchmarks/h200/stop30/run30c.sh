#!/bin/bash
# Session 30, call 3: what bounds attention at 4097 tokens (diagnostic variants, clocks).
echo "commit $(cat .device/commit) + .device probes"; date
export PYTHONPATH=$PWD
for m in 0 1 2; do GFA_EXP_MODE=$m timeout 100 python .device/g30c.py 2>&1 | grep -v Warning | tee -a $OUT/g30c.jsonl; done
