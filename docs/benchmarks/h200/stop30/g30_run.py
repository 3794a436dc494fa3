"""Run g30.py for each variant in its own process (a hung kernel loses one variant only)."""
import json
import subprocess
import sys
import time

VARIANTS = [
    dict(block_n=128, stages=3, consumers=3),
    dict(block_n=128, stages=3, consumers=3, pingpong=True),
    dict(block_n=128, stages=3, consumers=2, consumer_regs=240),
    dict(block_n=128, stages=3, consumers=2, consumer_regs=240, pingpong=True),
    dict(block_n=64, stages=3, consumers=3),
    dict(block_n=64, stages=4, consumers=3, pingpong=True),
    dict(block_n=128, stages=3, consumers=1, maxnreg=128),
    dict(block_n=64, stages=4, consumers=2, consumer_regs=240),
]
out = open(sys.argv[1], 'w')
T0 = time.time()
for kw in VARIANTS:
    if time.time() - T0 > float(sys.argv[2]):
        print('time budget spent, stop before', kw, flush=True)
        break
    try:
        r = subprocess.run([sys.executable, '.device/g30.py', json.dumps(kw)], capture_output=True,
                           text=True, timeout=75)
        rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith('{')]
        status = 'rc %d' % r.returncode
        tail = r.stderr[-1500:] if r.returncode else ''
    except subprocess.TimeoutExpired as e:
        rows, status = [json.loads(line) for line in (e.stdout or b'').decode().splitlines()
                        if line.startswith('{')], 'TIMEOUT'
        tail = (e.stderr or b'').decode()[-800:]
    rec = {'variant': kw, 'status': status, 'rows': rows, 'stderr_tail': tail}
    out.write(json.dumps(rec) + '\n')
    out.flush()
    print('[%.0fs]' % (time.time() - T0), json.dumps(kw), status, flush=True)
    for row in rows:
        print('   ', row, flush=True)
    if tail:
        print(tail, flush=True)
