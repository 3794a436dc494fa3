#!/bin/bash
# Count the exponential instructions in the attention kernels Triton compiled (cache in $1).
bin=$(python -c 'import triton, os; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin"))')
ls $bin
for f in $(ls -t $1/*/_attention_kernel*.cubin 2>/dev/null); do
  meta=$(python -c "import json; d = json.load(open('${f%.cubin}.json')); print(d.get('name'), 'warps', d.get('num_warps'), 'stages', d.get('num_stages'))" 2>/dev/null)
  sass=$($bin/cuobjdump -sass $f 2>/dev/null || $bin/nvdisasm $f 2>/dev/null)
  echo "$meta: MUFU.EX2 $(grep -c 'MUFU.EX2' <<<"$sass"), of them F16 $(grep -c 'MUFU.EX2.F16' <<<"$sass"); GMMA $(grep -c 'HGMMA' <<<"$sass"); ptx ex2.approx.f16x2 $(grep -c 'ex2.approx.f16x2' ${f%.cubin}.ptx 2>/dev/null)"
done
