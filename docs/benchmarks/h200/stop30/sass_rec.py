"""Session 30: SASS order of the Gluon kernels, compiled ahead of time for sm_90 (no GPU).

Needs Triton 3.6.0 (here installed apart in /tmp/tri36/t36), aot.py, gfa.py, and
gfa_call1.py / gfa_ser.py made by applying gfa_call1.diff / gfa_not_run.diff to gfa.py;
writes sass_order.txt on stdout.
"""
import sys, subprocess, importlib
sys.path.insert(0, '/tmp/g')
import aot
CUOBJ = '/tmp/tri36/t36/triton/backends/nvidia/bin/cuobjdump'
PTXAS = '/tmp/tri36/t36/triton/backends/nvidia/bin/ptxas'
KEYS = ('HGMMA', 'DEPBAR', 'MUFU.EX2', 'BAR.SYNC', 'SYNCS', 'WARPGROUP.ARRIVE', 'BRA')
for mod, kw, title in (('gfa_call1', dict(stages=2, overlap=True), "call 1's kernel, 3 x 64, N 128, S 2"),
                       ('gfa', dict(stages=3), "call 2's kernel, 3 x 64, N 128, S 3"),
                       ('gfa_ser', dict(stages=3), 'the form not run (value product left running across steps), 3 x 64, N 128, S 3')):
    aot.gfa = importlib.import_module(mod)
    tag = 'rec_' + mod
    extra = dict(flag='OVERLAP', pingpong=True) if mod == 'gfa_call1' else {}
    aot.compile_one(consumers=3, creg=160, tag=tag, stages=kw['stages'], **extra)
    sass = subprocess.run([CUOBJ, '-sass', f'/tmp/g/{tag}.cubin'], capture_output=True, text=True).stdout
    ops = []
    for line in sass.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[0].startswith('/*') and parts[0].endswith('*/'):
            op = parts[1] if not parts[1].startswith('@') else parts[2]
            if any(k in op for k in KEYS):
                ops.append(op.rstrip(';'))
    runs = []
    for op in ops:
        if runs and runs[-1][1] == op:
            runs[-1][0] += 1
        else:
            runs.append([1, op])
    ptx = subprocess.run([PTXAS, '-arch=sm_90a', '-v', f'/tmp/g/{tag}.ptx', '-o', '/tmp/g/x.cubin'], capture_output=True, text=True)
    print('==', title)
    print('ptxas:', ' '.join(l for l in ptx.stderr.splitlines() if 'C7512' in l) or 'no wgmma serialisation message')
    print('consumer instruction order (runs of the same opcode; the loop body of a middle key step is the third repetition):')
    print(' '.join(f'{n}x{op}' if n > 1 else op for n, op in runs[:90]))
    print()
