"""Session 31: tools/fidelity.py's gate for the fp16 default with the FP8 attention kernel.

python f8_fid.py MODE OUT_JSON   (MODE: all = both products FP8, pv = the value product only)
The test backend is the fp16 default uncompiled (CUDA graph), its attention modules swapped.
"""
import json
import sys

sys.path.insert(0, '.device')
import f8k  # noqa: E402
from lseg_ros.core.model.checkpoint import load_weights  # noqa: E402
from lseg_ros.core.model.synthetic import cached_reference_checkpoint  # noqa: E402
from lseg_ros.core.model.variants import VIT_L16  # noqa: E402
from lseg_ros.deploy import fidelity  # noqa: E402

mode = sys.argv[1]
original = fidelity.create_backend
made = []


def create(name, weights, device, precision, **kw):
    backend = original(name, weights, device, precision, **kw)
    if not made:
        print('swapped', f8k.swap_attention(backend.model, mode == 'all'), flush=True)
    made.append(backend)
    return backend


fidelity.create_backend = create
report = fidelity.run_fidelity(load_weights(cached_reference_checkpoint(VIT_L16)), 'torch',
                               'fp16', [(480, 640), (384, 384), (1024, 1024)], 'cuda',
                               compile_mode=None)
report.pop('heatmaps')
for s in report['sets']:
    cases = [c for c in report['cases'] if c['size'] == s['size']]
    print(mode, s['size'], 'PASS' if s['passed'] else 'FAIL',
          'min mean_cos %.7f' % min(c['metrics']['mean_cosine'] for c in cases),
          'min agreement %.4f' % min(c['metrics']['agreement'] for c in cases),
          'set mIoU %.4f' % s['miou'], 'images failing', s['images_failing'], flush=True)
report['probe'] = {'attention': 'f8k FP8 kernel', 'mode': mode, 'tiling': f8k.DEFAULT_TILING}
with open(sys.argv[2], 'w') as f:
    json.dump(report, f, default=str)
