# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The Triton attention kernel computes softmax(q kᵀ / sqrt(d)) v, as PyTorch's SDPA does.

Without a GPU the kernel runs in Triton's interpreter (``TRITON_INTERPRET=1``, read when
Triton compiles a kernel's decorator, hence a fresh Python process).  Tests marked ``gpu``
run the compiled kernel and the backend's default on a CUDA GPU.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from lseg_ros.core.backends.torch_backend import TorchBackend
from lseg_ros.core.errors import BackendError

pytest.importorskip('triton')
CUDA = torch.cuda.is_available()

INTERPRETED = textwrap.dedent('''
    import torch
    from timm.models.vision_transformer import Block
    from lseg_ros.core.model import flash_attention as fa

    def qkv(images, heads, tokens, dim, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(images, tokens, 3, heads, dim, generator=g) * 2
        return x.permute(2, 0, 3, 1, 4).unbind(0)     # strided views, as in the blocks

    try:
        fa.run_kernel(*qkv(1, 1, 77, 16, seed=0), fa.Tiling(64, 64, 4, 3, False))
    except Exception as error:
        # Triton 3.6's interpreter passes scalars as 1-element arrays and loops with int()
        # of them, which NumPy 2.4 refuses; compiled kernels are not affected
        if type(error).__name__ != 'InterpreterError' or 'TypeError(' not in str(error) \
                or 'only 0-dimensional arrays can be converted' not in str(error):
            raise
        import numpy, triton
        print(f'skip: Triton {triton.__version__} interpreter with NumPy {numpy.__version__}: '
              f'{error}')
        raise SystemExit(0)

    # every tiling (64 or 128 queries, 64 or 128 keys per step, pointer or descriptor
    # loads), whole and partial key blocks (the rest in steps of 16, 32, 64 or 128 keys),
    # and the default choice
    tilings = [fa.Tiling(64, 64, 4, 3, False), fa.Tiling(128, 64, 8, 3, False),
               fa.Tiling(64, 128, 4, 2, True), fa.Tiling(128, 64, 8, 3, True), None]
    for shape in ((1, 2, 77, 64), (2, 4, 130, 32), (1, 3, 128, 16), (3, 2, 214, 64),
                  (1, 2, 180, 64)):
        q, k, v = qkv(*shape, seed=sum(shape))
        want = fa.sdpa(q, k, v)
        assert fa.tma_available(q, k, v) == (fa.TensorDescriptor is not None)
        for tiling in tilings:
            if tiling is not None and tiling.tma and fa.TensorDescriptor is None:
                continue
            got = fa.run_kernel(q, k, v, tiling)
            assert got.shape == (shape[0], shape[2], shape[1], shape[3]), got.shape
            err = (got - want).abs().max().item()
            assert err < 1e-5, (shape, tiling, err)
        got = fa.flash_attention(q, k, v)
        assert (got - want).abs().max().item() < 1e-5, shape
        print('default', fa.choose_tiling(q, k, v))
    # float16, as on the GPU (probabilities rounded to float16 before the value product)
    q, k, v = (t.half() for t in qkv(1, 2, 77, 64, seed=3))
    for tiling in tilings:
        if tiling is not None and tiling.tma and fa.TensorDescriptor is None:
            continue
        got = fa.run_kernel(q, k, v, tiling)
        assert got.dtype == torch.float16
        err = (got.float() - fa.sdpa(q.float(), k.float(), v.float())).abs().max().item()
        assert err < 4e-3, (tiling, err)
    # a view whose rows are not 16-byte aligned loads by pointers
    x = torch.randn(1, 77, 3 * 2 * 8 + 1)[..., 1:].reshape(1, 77, 3, 2, 8)
    assert not fa.tma_available(*x.permute(2, 0, 3, 1, 4).unbind(0))
    # the operator's registration (schema, fake tensor, autograd-free dispatch) and a trace
    q, k, v = qkv(2, 4, 70, 32, seed=5)
    torch.library.opcheck(fa.flash_attention, (q, k, v),
                          test_utils=('test_schema', 'test_faketensor',
                                      'test_aot_dispatch_static'))
    traced = torch.compile(lambda q, k, v: fa.flash_attention(q, k, v) * 2, backend='aot_eager',
                           fullgraph=True)
    assert torch.allclose(traced(q, k, v), 2 * fa.sdpa(q, k, v), atol=1e-5)
    assert fa.FALLBACK is None

    # a timm block with the kernel computes what it computed before
    torch.manual_seed(0)
    block = Block(64, 4, qkv_bias=True).eval()
    x = torch.randn(2, 97, 64)
    with torch.no_grad():
        before = block(x)
        assert fa.use_triton_attention(block) == 1
        assert isinstance(block.attn, fa.TritonAttention)
        after = block(x)
    assert sorted(block.state_dict()) == sorted(k for k in Block(64, 4, qkv_bias=True)
                                                .state_dict())
    assert torch.allclose(after, before, atol=1e-5), (after - before).abs().max()
    print('ok')
''')


def test_kernel_equals_sdpa_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET='1')
    done = subprocess.run([sys.executable, '-c', INTERPRETED], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if done.stdout.startswith('skip: '):
        pytest.skip(done.stdout[len('skip: '):].strip()[:300])
    assert done.stdout.strip().endswith('ok'), done.stdout
    # one processor: each of the three tilings is the default for one of the shapes
    from lseg_ros.core.model.flash_attention import TensorDescriptor
    for tiling in ('Tiling(block_m=64, block_n=128, warps=4, stages=2, tma=True)',
                   'Tiling(block_m=128, block_n=64, warps=8, stages=3, tma=False)',
                   'Tiling(block_m=64, block_n=64, warps=4, stages=3, tma=False)'):
        if TensorDescriptor is not None or 'tma=True' not in tiling:
            assert 'default ' + tiling in done.stdout, done.stdout


def test_tile_config_follows_the_measured_choice():
    from lseg_ros.core.model.flash_attention import tile_config, Tiling
    sms = 132                                                     # H200
    # 480x640 and 384x384, one image: 64 queries, 128 keys per step by descriptors
    assert tile_config(16, 1201, sms, True) == Tiling(64, 128, 4, 2, True)
    assert tile_config(16, 577, sms, True) == Tiling(64, 128, 4, 2, True)
    # without descriptors (before Hopper), and four images of 384x384: 64 and 64
    assert tile_config(16, 1201, sms, False) == Tiling(64, 64, 4, 3, False)
    assert tile_config(64, 577, sms, True) == Tiling(64, 64, 4, 3, False)
    # four images of 480x640 and 1024x1024: 128 queries with 8 warps
    assert tile_config(64, 1201, sms, True) == Tiling(128, 64, 8, 3, False)
    assert tile_config(16, 4097, sms, True) == Tiling(128, 64, 8, 3, False)


def test_the_keys_after_the_whole_blocks_take_one_narrow_step():
    from lseg_ros.core.model.flash_attention import tail_block
    # 1024x1024, and 384x384 with 64 keys per step: one key past 4096 and 576, a step of
    # 16 keys, not 64
    assert tail_block(4097, 64) == 16
    assert tail_block(577, 64) == 16
    # 480x640 with 128 keys per step: 49 keys past 1152 in a step of 64
    assert tail_block(1201, 128) == 64
    assert tail_block(1201, 64) == 64
    assert tail_block(577, 128) == 128
    assert tail_block(214, 64) == 32
    assert tail_block(4096, 64) == 16          # no rest: the step is not taken


def test_the_operator_falls_back_to_sdpa_when_the_kernel_fails(monkeypatch, caplog):
    from lseg_ros.core.model import flash_attention as fa

    def broken(*args):
        raise RuntimeError('no compiler')

    monkeypatch.setattr(fa, 'run_kernel', broken)
    monkeypatch.setattr(fa, 'FALLBACK', None)
    monkeypatch.setattr(fa, 'DESCRIPTOR_FALLBACK', None)
    monkeypatch.setattr(fa, 'tma_available', lambda *tensors: False)
    q, k, v = torch.randn(3, 1, 2, 10, 16).unbind(0)
    out = fa.flash_attention(q, k, v)
    torch.testing.assert_close(out, fa.sdpa(q, k, v))
    assert fa.FALLBACK == 'RuntimeError: no compiler'
    assert 'Triton attention failed here' in caplog.text
    # unsupported shapes go to SDPA without touching the kernel or the fallback
    monkeypatch.setattr(fa, 'FALLBACK', None)
    q, k, v = torch.randn(3, 1, 2, 10, 24).unbind(0)
    torch.testing.assert_close(fa.flash_attention(q, k, v), fa.sdpa(q, k, v))
    assert fa.FALLBACK is None


def test_the_backend_takes_triton_attention_in_fp16_for_vit_only(vit_weights, rn_checkpoint):
    from lseg_ros.core.model.checkpoint import load_weights
    with pytest.raises(BackendError, match='attention triton needs precision fp16'):
        TorchBackend(vit_weights, 'cpu', 'fp32', attention='triton')
    with pytest.raises(BackendError, match='attention triton is a ViT-L/16 option'):
        TorchBackend(load_weights(rn_checkpoint), 'cpu', 'fp32', attention='triton')
    with pytest.raises(BackendError, match='unknown attention kernel'):
        TorchBackend(vit_weights, 'cpu', 'fp32', attention='flash3')
    plain = TorchBackend(vit_weights, 'cpu', 'fp32')
    assert 'attention' not in plain.describe()          # the CPU default: PyTorch's SDPA
    plain.close()


def test_the_default_attention_is_the_kernel_on_hopper_only(monkeypatch, caplog):
    import importlib
    from lseg_ros.core.backends import torch_backend
    capability = {'value': (9, 0)}
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda device: capability['value'])
    assert torch_backend.default_attention('cuda:0', True, True) == 'triton'
    assert torch_backend.default_attention('cuda:0', False, True) is None     # fp32
    assert torch_backend.default_attention('cuda:0', True, False) is None     # ResNet101
    capability['value'] = (8, 9)
    assert torch_backend.default_attention('cuda:0', True, True) is None
    capability['value'] = (9, 0)
    real_import = importlib.import_module

    def broken(name, *args):
        if name.endswith('flash_attention'):
            raise OSError('libcuda.so.1: cannot open shared object file')
        return real_import(name, *args)

    monkeypatch.setattr(importlib, 'import_module', broken)
    assert torch_backend.default_attention('cuda:0', True, True) is None
    assert 'Triton does not import here (OSError' in caplog.text


def test_descriptor_loads_that_fail_fall_back_to_pointer_loads(monkeypatch, caplog):
    from lseg_ros.core.model import flash_attention as fa
    launched = []

    def descriptors_broken(q, k, v, tiling):
        launched.append(tiling)
        if tiling.tma:
            raise RuntimeError('no TMA here')
        return fa.sdpa(q, k, v)

    monkeypatch.setattr(fa, 'run_kernel', descriptors_broken)
    monkeypatch.setattr(fa, 'FALLBACK', None)
    monkeypatch.setattr(fa, 'DESCRIPTOR_FALLBACK', None)
    monkeypatch.setattr(fa, 'tma_available', lambda *tensors: True)
    q, k, v = torch.randn(3, 1, 2, 77, 16).unbind(0)       # few tiles: descriptors chosen
    torch.testing.assert_close(fa.flash_attention(q, k, v), fa.sdpa(q, k, v))
    assert [tiling.tma for tiling in launched] == [True, False]
    assert fa.DESCRIPTOR_FALLBACK == 'RuntimeError: no TMA here'
    assert fa.FALLBACK is None                            # the kernel itself still runs
    assert 'tensor-descriptor loads failed here' in caplog.text
    fa.flash_attention(q, k, v)                           # from now on by pointers only
    assert [tiling.tma for tiling in launched] == [True, False, False]


def test_describe_names_the_attention_that_runs(vit_weights, monkeypatch):
    from lseg_ros.core.model import flash_attention as fa
    backend = TorchBackend(vit_weights, 'cpu', 'fp32', attention='sdpa')
    assert backend.describe()['levers'] == 'attention:sdpa'
    backend.attention = 'triton'                        # as on a Hopper GPU
    monkeypatch.setattr(fa, 'FALLBACK', None)
    assert backend.describe()['attention'] == 'triton'
    assert backend.describe()['levers'] == 'attention:triton'
    monkeypatch.setattr(fa, 'DESCRIPTOR_FALLBACK', 'CompilationError: tma')
    assert backend.describe()['attention'] == ('triton (pointer loads; tensor descriptors '
                                               'failed here: CompilationError: tma)')
    assert backend.describe()['levers'] == 'attention:triton'
    monkeypatch.setattr(fa, 'FALLBACK', 'CompilationError: ptxas')
    info = backend.describe()
    assert info['attention'] == 'sdpa (the Triton kernel failed here: CompilationError: ptxas)'
    assert info['levers'] == 'attention:sdpa'
    backend.close()


def test_triton_attention_refuses_a_mask():
    from timm.models.vision_transformer import Block
    from lseg_ros.core.model.flash_attention import TritonAttention
    attention = TritonAttention(Block(64, 4).attn)
    with pytest.raises(ValueError, match='without a mask'):
        attention(torch.randn(1, 5, 64), attn_mask=torch.ones(5, 5, dtype=torch.bool))


def test_measured_presets_keep_pytorchs_attention():
    from lseg_ros.deploy.latency import TORCH_PRESETS
    for name in ('torch-fp16-graph-nhwc', 'torch-fp16-lean', 'torch-fp8-rowwise',
                 'torch-default-sdpa-attention'):
        assert TORCH_PRESETS[name][1]['attention'] == 'sdpa', name
    assert TORCH_PRESETS['torch-fp16-sdpa-cudnn'][1]['attention'] == 'cudnn'
    assert 'attention' not in TORCH_PRESETS['torch-default'][1]


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason='needs a CUDA GPU')
def test_kernel_equals_sdpa_on_the_gpu():
    from lseg_ros.core.model import flash_attention as fa
    hopper = torch.cuda.get_device_capability()[0] >= 9
    # (2, 161): by descriptors, 33 keys after the whole blocks of 128 in a step of 64
    for images, tokens in ((1, 1201), (4, 577), (1, 4097), (2, 97), (2, 161)):
        x = torch.randn(images, tokens, 3, 16, 64, device='cuda', dtype=torch.float16)
        q, k, v = x.permute(2, 0, 3, 1, 4).unbind(0)
        assert fa.tma_available(q, k, v) == (hopper and fa.TensorDescriptor is not None)
        want = torch.nn.functional.scaled_dot_product_attention(
            q.float(), k.float(), v.float()).transpose(1, 2)
        got = fa.flash_attention(q, k, v)
        assert fa.FALLBACK is None
        assert (got.float() - want).abs().max().item() < 2e-3, (images, tokens)
        for tiling in (fa.Tiling(64, 64, 4, 3, False), fa.Tiling(128, 64, 8, 3, False)) \
                + ((fa.Tiling(64, 128, 4, 2, True),) if fa.tma_available(q, k, v) else ()):
            got = fa.run_kernel(q, k, v, tiling)
            assert (got.float() - want).abs().max().item() < 2e-3, (images, tokens, tiling)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason='needs a CUDA GPU')
def test_the_gpu_default_uses_the_kernel_on_hopper(vit_weights):
    hopper = torch.cuda.get_device_capability()[0] == 9
    backend = TorchBackend(vit_weights, 'cuda', 'auto')
    info = backend.describe()
    assert (info.get('attention') == 'triton') == hopper, info
    assert ('attention:triton' in info['levers']) == hopper
    x = torch.randn(1, 3, 96, 128, device='cuda')
    fp32 = TorchBackend(vit_weights, 'cuda', 'fp32', cuda_graph=False)
    ref = fp32(x).double()
    out = backend(x).double()
    assert 'compile_fallback' not in backend.describe()
    assert backend.describe().get('attention') == info.get('attention')   # no fallback
    assert torch.nn.functional.cosine_similarity(ref, out, dim=1).min() > 0.999
    backend.close()
    fp32.close()
