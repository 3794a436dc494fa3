# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The encoder's speed levers compute what the plain network computes (CPU checks).

GPU-only parts (CUDA graphs, SDPA kernels, FP8 tensor cores, fidelity against fp32) are
measured on the GPU by tools/latency.py and tools/fidelity.py (docs/benchmarks.md).
"""

import pytest
import torch
from torch import nn

from lseg_ros.core.backends.torch_backend import TorchBackend
from lseg_ros.core.errors import BackendError
from lseg_ros.core.model.checkpoint import build_image_encoder, load_weights
from lseg_ros.core.model.fp8 import (calibrate_amax, convert_to_fp8, fp8_supported,
                                     StaticFp8Linear)
from lseg_ros.core.model.fusion import (fold_batchnorm, fold_projections, gelu_into_matmul,
                                        LinearGelu, patch_embedding_as_matmul,
                                        reassemble_as_matmul)
from lseg_ros.core.model.image_encoder import is_patch_transpose, PatchEmbed, unpatchify
from lseg_ros.deploy.latency import build_specs, measure


@pytest.fixture(scope='module')
def rn_weights(rn_checkpoint):
    return load_weights(rn_checkpoint)


def assert_close(got, expected):
    """Check equality up to float32 rounding of a different order of operations."""
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


def assert_same_function(plain, changed, batch=2, seed=0):
    """Check that ``changed`` computes what ``plain`` computes on a random 64x96 batch."""
    x = torch.randn(batch, 3, 64, 96, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assert_close(changed(x), plain(x))


def test_fold_batchnorm_keeps_the_function(rn_weights):
    plain = build_image_encoder(rn_weights)
    folded = build_image_encoder(rn_weights)
    # the reference weights have running statistics far from (0, 1): folding matters
    count = fold_batchnorm(folded)
    # stem 1 + 33 bottlenecks x 3 + 4 downsamples + 4 fusion blocks x 2 units x 2
    assert count == 1 + 33 * 3 + 4 + 16
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert_same_function(plain, folded)


def test_fold_projections_keeps_the_function(rn_weights):
    plain = build_image_encoder(rn_weights)
    folded = build_image_encoder(rn_weights)
    assert fold_projections(folded) == 4
    assert isinstance(folded.scratch.head1, nn.Identity)
    assert folded.scratch.refinenet1.out_conv.weight.shape == (512, 256, 1, 1)
    assert fold_projections(folded) == 0                    # folding twice changes nothing
    assert_same_function(plain, folded)


def test_patch_embedding_as_matmul_equals_the_convolution():
    """Both input layouts, a size that is not a multiple of 16 (the conv drops the rest)."""
    embed = PatchEmbed()
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        embed.proj.weight.copy_(torch.randn(embed.proj.weight.shape, generator=generator))
        embed.proj.bias.copy_(torch.randn(embed.proj.bias.shape, generator=generator))
    x = torch.randn(2, 3, 40, 57, generator=generator)
    with torch.no_grad():
        expected = embed(x)
        embed.use_matmul()
        for layout in (torch.contiguous_format, torch.channels_last):
            got = embed(x.contiguous(memory_format=layout))
            assert got.shape == expected.shape == (2, 2 * 3, 1024)
            assert_close(got, expected)
    assert 'matmul_weight' not in embed.state_dict()


def test_patch_embedding_as_matmul_keeps_the_encoder(vit_weights):
    plain = build_image_encoder(vit_weights)
    changed = build_image_encoder(vit_weights)
    assert patch_embedding_as_matmul(changed) == 1
    assert patch_embedding_as_matmul(changed) == 0           # twice changes nothing
    assert_same_function(plain, changed, batch=1, seed=3)


def test_gelu_into_matmul_keeps_the_encoder_on_the_cpu(vit_weights):
    """On the CPU the epilogue is the exact GELU (on CUDA the tanh one: a GPU test)."""
    plain = build_image_encoder(vit_weights)
    changed = build_image_encoder(vit_weights)
    assert gelu_into_matmul(changed) == 24
    assert gelu_into_matmul(changed) == 0
    mlp = changed.pretrained.model.blocks[0].mlp
    assert isinstance(mlp.fc1, LinearGelu) and isinstance(mlp.act, nn.Identity)
    assert_same_function(plain, changed, batch=1, seed=6)


def test_unpatchify_equals_a_transposed_convolution_with_stride_equal_to_its_kernel():
    """A k x k / k transposed convolution is a matrix product and a rearrangement of it."""
    generator = torch.Generator().manual_seed(7)
    for k, channels in ((4, 6), (2, 5), (1, 3)):
        conv = nn.ConvTranspose2d(8, channels, k, stride=k)
        assert is_patch_transpose(conv)
        x = torch.randn(2, 8, 3, 5, generator=generator)
        weight = conv.weight.detach().permute(2, 3, 1, 0).reshape(-1, 8)
        tokens = x.flatten(2).transpose(1, 2)                   # (B, 3*5, 8), row-major grid
        with torch.no_grad():
            got = unpatchify(torch.nn.functional.linear(tokens, weight, conv.bias.repeat(k * k)),
                             3, 5, k)
            expected = conv(x)
        assert got.shape == expected.shape == (2, channels, 3 * k, 5 * k)
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert_close(got, expected)
    assert not is_patch_transpose(nn.ConvTranspose2d(8, 8, 4, stride=2))     # overlapping
    assert not is_patch_transpose(nn.ConvTranspose2d(8, 8, 2, stride=2, padding=1))
    assert not is_patch_transpose(nn.Conv2d(8, 8, 2, stride=2))


def test_reassemble_as_matmul_keeps_the_encoder(vit_weights):
    """Readout without concatenation, 1x1 and transposed convolutions as matrix products."""
    plain = build_image_encoder(vit_weights)
    changed = build_image_encoder(vit_weights)
    assert reassemble_as_matmul(changed) == 4
    assert reassemble_as_matmul(changed) == 0               # twice changes nothing
    backbone = changed.pretrained
    # the two transposed convolutions (4x4/4, 2x2/2) become matrix products; the 3x3/2
    # convolution of the coarsest stage stays a convolution
    assert backbone.act_postprocess1.resample_weight.shape == (16 * 256, 256)
    assert backbone.act_postprocess2.resample_weight.shape == (4 * 512, 512)
    assert backbone.act_postprocess4.resample_weight is None
    assert not any('resample' in key for key in changed.state_dict())
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        for got, expected in zip(changed.pretrained(x), plain.pretrained(x)):
            assert_close(got, expected)
        # exact in real arithmetic: in float64 only rounding of the order remains
        got, expected = changed.double()(x.double()), plain.double()(x.double())
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10 * expected.abs().max())


def test_torch_backend_patch_matmul(vit_weights, rn_weights):
    backend = TorchBackend(vit_weights, 'cpu', 'fp32', patch_matmul=True)
    assert backend.describe()['patch_matmul'] == 'True'
    assert backend.model.pretrained.model.patch_embed.matmul_weight is not None
    plain = build_image_encoder(vit_weights)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = plain(x)
    got = backend(x)
    assert_close(got, expected)
    backend.close()
    assert 'patch_matmul' not in TorchBackend(vit_weights, 'cpu', 'fp32').describe()
    for option in ('patch_matmul', 'gelu_epilogue', 'reassemble_matmul'):
        with pytest.raises(BackendError, match=f'{option} is a ViT-L/16 option'):
            TorchBackend(rn_weights, 'cpu', 'fp32', **{option: True})
    epilogue = TorchBackend(vit_weights, 'cpu', 'fp32', gelu_epilogue=True)
    assert epilogue.describe()['gelu_epilogue'].startswith('True')
    epilogue.close()
    # an explicit GELU epilogue and FP8 exclude each other (said before any device check)
    with pytest.raises(BackendError, match='gelu_epilogue and fp8 exclude each other'):
        TorchBackend(vit_weights, 'cpu', 'fp32', gelu_epilogue=True, fp8='rowwise')


def test_torch_backend_reassemble_matmul_and_the_levers_summary(vit_weights):
    backend = TorchBackend(vit_weights, 'cpu', 'fp32', reassemble_matmul=True, fold_bn=True,
                           patch_matmul=True)
    info = backend.describe()
    assert info['reassemble_matmul'] == 'True'
    assert info['levers'] == 'fold_bn,patch_matmul,reassemble_matmul'
    assert backend.model.pretrained.act_postprocess1.matmul
    plain = build_image_encoder(vit_weights)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = plain(x)
    assert_close(backend(x), expected)
    backend.close()
    plain_info = TorchBackend(vit_weights, 'cpu', 'fp32').describe()
    assert 'reassemble_matmul' not in plain_info and plain_info['levers'] == '-'


def test_torch_backend_decodes_one_image_of_a_batch_at_a_time(rn_weights):
    """The backbone gets the batch; the last decoder stage (most memory) one image at a time."""
    backend = TorchBackend(rn_weights, 'cpu', 'fp32', fold_projections=True)
    assert backend.describe()['fold_projections'] == 'True'
    calls = {'coarse': [], 'fine': []}
    coarse, fine = backend._coarse, backend._fine

    def record(name, function):
        def recorded(*args):
            calls[name].append(args[0].shape[0])
            return function(*args)
        return recorded

    backend._coarse = record('coarse', coarse)
    backend._fine = record('fine', fine)
    x = torch.randn(3, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    out = backend(x)
    assert calls == {'coarse': [3], 'fine': [1, 1, 1]}
    plain = build_image_encoder(rn_weights)
    with torch.no_grad():
        expected = plain(x)
    assert out.shape == expected.shape == (3, 512, 32, 48)
    assert_close(out, expected)
    backend.close()


def test_static_fp8_linear_is_close_to_the_linear():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    x = torch.randn(33, 64)
    expected = linear(x).detach()
    for rowwise in (True, False):
        fp8 = StaticFp8Linear(linear, float(x.abs().max()), rowwise=rowwise)
        assert fp8.weight.dtype == torch.float8_e4m3fn
        got = fp8(x.unsqueeze(0)).squeeze(0)
        assert got.shape == expected.shape and got.dtype == x.dtype
        error = (got - expected).norm() / expected.norm()
        assert error < 0.06, (rowwise, error)      # e4m3 has a 3-bit mantissa


def test_calibration_converts_only_the_block_linears():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Module()
            self.mlp.fc1 = nn.Linear(16, 32)
            self.mlp.fc2 = nn.Linear(32, 16)

        def forward(self, x):
            return self.mlp.fc2(torch.relu(self.mlp.fc1(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([Block(), Block()])
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    net = Net()
    x = torch.randn(8, 16)
    amax = calibrate_amax(net, [x])
    assert sorted(amax) == ['blocks.0.mlp.fc1', 'blocks.0.mlp.fc2', 'blocks.1.mlp.fc1',
                            'blocks.1.mlp.fc2']
    assert amax['blocks.0.mlp.fc1'] == pytest.approx(float(x.abs().max()))
    assert convert_to_fp8(net, amax) == 4
    assert isinstance(net.blocks[1].mlp.fc2, StaticFp8Linear)
    assert isinstance(net.head, nn.Linear)
    assert net(x).shape == (8, 4)


def test_torch_backend_checks_the_lever_options(rn_weights):
    assert not fp8_supported('cpu')
    cases = [({'fp8': 'rowwise'}, 'fp8 needs'), ({'fp8': 'fast'}, 'fp8 must be'),
             ({'layernorm': 'bf16'}, 'layernorm must be'),
             ({'attention': 'magic'}, 'unknown attention kernel')]
    for options, message in cases:
        with pytest.raises(BackendError, match=message):
            TorchBackend(rn_weights, 'cpu', 'fp32', **options)
    folded = TorchBackend(rn_weights, 'cpu', 'fp32', fold_bn=True)
    assert folded.describe()['fold_bn'] == 'True'


def test_latency_measures_batches(rn_weights):
    report = measure(rn_weights, build_specs(None, torch.device('cpu')), [(64, 64)], 'cpu',
                     warmup=1, iterations=2, batches=(1, 2))
    rows = {r['batch']: r for r in report['results']}
    assert sorted(rows) == [1, 2]
    assert rows[1]['batch_gain'] == pytest.approx(1.0)
    assert rows[2]['frames_per_s'] == pytest.approx(2e3 / rows[2]['p50'])
    assert rows[2]['per_image_ms'] == pytest.approx(rows[2]['p50'] / 2)
