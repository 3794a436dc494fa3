"""Session 28: tools/fidelity.py with the attention kernel's variant that ab.py measured fastest.

python fid_variant.py AB.json SIZE FIDELITY-ARGS...: the variant fastest at SIZE in AB.json.

Runs only with kernel_variants.diff applied to 785d193 (Tiling.exp16, Tiling.sum_mma).
"""
import json
import runpy
import sys

from lseg_ros.core.model import flash_attention as fa

ab = json.load(open(sys.argv[1]))['p50_ms'][sys.argv[2]]
name = min(ab, key=ab.get)
e, m = {'exp32_fadd': (False, False), 'exp32_mma': (False, True), 'exp16_mma': (True, True),
        'exp16_fadd': (True, False)}[name]
CHOOSE = fa.choose_tiling
fa.choose_tiling = lambda q, k, v: CHOOSE(q, k, v)._replace(exp16=e, sum_mma=m)
print('fidelity of the variant', name, ab, flush=True)
sys.argv = ['tools/fidelity.py'] + sys.argv[3:]
runpy.run_path('tools/fidelity.py', run_name='__main__')
