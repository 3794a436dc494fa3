# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX export: graphs match PyTorch in ONNX Runtime; fp16 keeps LayerNorm/softmax in fp32."""

import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from lseg_ros.core.backends.artifacts import onnx_graph_precision
from lseg_ros.deploy.export import (compare_arrays, count_ops, export_image_encoder,
                                    export_text_encoder, ExportError, fp32_islands,
                                    image_encoder_module, onnxruntime_session)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def rn_weights(rn_checkpoint):
    from lseg_ros.core.model.checkpoint import load_weights
    return load_weights(rn_checkpoint)


def io_dims(path):
    model = onnx.load(path, load_external_data=False)

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    return ([(v.name, v.type.tensor_type.elem_type, dims(v)) for v in model.graph.input],
            [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in model.graph.output])


def test_dynamic_resnet_export_matches_torch_at_other_sizes(rn_weights, tmp_path):
    path = str(tmp_path / 'rn.onnx')
    result = export_image_encoder(rn_weights, path, size=(64, 96),
                                  check_sizes=[(64, 96), (96, 64)])
    assert [c['passed'] for c in result.checks] == [True, True]
    assert all(c['rel_l2'] < 1e-5 for c in result.checks)
    assert result.dynamic and result.opset == 17 and result.variant == 'rn101'
    inputs, outputs = io_dims(path)
    assert inputs == [('image', onnx.TensorProto.FLOAT, [1, 3, 'height', 'width'])]
    assert outputs == [('features', onnx.TensorProto.FLOAT,
                        [1, 512, 'feature_height', 'feature_width'])]
    assert onnx_graph_precision(path) == 'fp32'
    # a third size, not used at export: the output follows the input
    x = torch.randn(1, 3, 128, 160)
    with torch.inference_mode():
        expected = image_encoder_module(rn_weights)(x).numpy()
    actual = onnxruntime_session(path).run(None, {'image': x.numpy()})[0]
    assert actual.shape == (1, 512, 64, 80)
    assert compare_arrays(expected, actual)['rel_l2'] < 1e-5


def test_fixed_fp16_export_has_fp32_io(rn_weights, tmp_path):
    path = str(tmp_path / 'rn16.onnx')
    result = export_image_encoder(rn_weights, path, precision='fp16', dynamic=False,
                                  size=(64, 64))
    assert result.checks[0]['passed'] and result.checks[0]['min_cosine'] > 0.999
    assert onnx_graph_precision(path) == 'fp16'
    inputs, outputs = io_dims(path)
    assert inputs == [('image', onnx.TensorProto.FLOAT, [1, 3, 64, 64])]
    assert outputs == [('features', onnx.TensorProto.FLOAT, [1, 512, 32, 32])]
    assert count_ops(path)['Cast'] == 2


def test_vit_fp16_graph_keeps_layernorm_and_softmax_in_fp32(vit_weights, tmp_path):
    path = str(tmp_path / 'vit16.onnx')
    export_image_encoder(vit_weights, path, precision='fp16', dynamic=False, size=(32, 32),
                         check=False)
    ops = count_ops(path)
    assert ops['LayerNormalization'] == 48 and ops['Softmax'] == 24
    assert fp32_islands(path) == {'LayerNormalization': 48, 'Softmax': 24}
    assert onnx_graph_precision(path) == 'fp16'
    os.remove(path)


def test_text_encoder_export_dynamic_batch(rn_weights, tmp_path):
    from lseg_ros.core.model.text_encoder import ClipTextEncoder
    path = str(tmp_path / 'text.onnx')
    result = export_text_encoder(rn_weights, path)
    assert result.checks[0]['passed']
    inputs, outputs = io_dims(path)
    assert inputs == [('tokens', onnx.TensorProto.INT64, ['labels', 77])]
    encoder = ClipTextEncoder(rn_weights.text)
    session = onnxruntime_session(path)
    for labels in (['sky'], ['a red car', 'grass', 'other', 'person', 'tree']):
        tokens = encoder.tokenize(labels)
        actual = session.run(None, {'tokens': tokens.numpy()})[0]
        metrics = compare_arrays(encoder.encode(labels).numpy(), actual)
        assert metrics['rel_l2'] < 1e-5, labels


def test_bad_export_requests(rn_weights, tmp_path):
    with pytest.raises(ExportError, match='multiples of 32'):
        export_image_encoder(rn_weights, tmp_path / 'a.onnx', size=(100, 64))
    with pytest.raises(ExportError, match='opset 21'):
        export_image_encoder(rn_weights, tmp_path / 'a.onnx', opset=21)
    with pytest.raises(ExportError, match='needs a size'):
        export_image_encoder(rn_weights, tmp_path / 'a.onnx', dynamic=False)
    with pytest.raises(ExportError, match='only be checked at that size'):
        export_image_encoder(rn_weights, tmp_path / 'a.onnx', dynamic=False, size=(64, 64),
                             check_sizes=[(96, 96)])
    with pytest.raises(ExportError, match='precision'):
        export_image_encoder(rn_weights, tmp_path / 'a.onnx', precision='int8')


def test_beyond_tolerance_fails_loudly(rn_weights, tmp_path):
    with pytest.raises(ExportError, match='differs from PyTorch beyond tolerance'):
        export_image_encoder(rn_weights, tmp_path / 'strict.onnx', dynamic=False,
                             size=(64, 64), tolerance={'max_rel_l2': 0.0, 'min_cosine': 1.5})
    assert list(tmp_path.iterdir()) == []           # no file that looks like a good export


def test_interrupted_export_leaves_no_file(rn_weights, tmp_path, monkeypatch):
    from lseg_ros.deploy import export
    from lseg_ros.core.interrupts import Terminated

    def interrupted(path, *args, **kwargs):
        assert os.path.getsize(path) > 0 and not (tmp_path / 'rn.onnx').exists()
        raise Terminated()

    monkeypatch.setattr(export, 'check_image_encoder', interrupted)
    with pytest.raises(Terminated):
        export_image_encoder(rn_weights, tmp_path / 'rn.onnx', dynamic=False, size=(64, 64),
                             external_data=True)
    assert list(tmp_path.iterdir()) == []


def test_compare_arrays_is_float64_per_pixel():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 512, 60, 60)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = a + 1e-3 * rng.standard_normal(a.shape).astype(np.float32)
    metrics = compare_arrays(a, b)
    assert 0.99 < metrics['mean_cosine'] <= 1.0 and metrics['min_cosine'] <= 1.0
    assert not compare_arrays(a, b[:, :, :10])['shape_ok']


def run_tool(args, cwd):
    return subprocess.run([sys.executable, str(ROOT / 'tools' / 'export_onnx.py')] + args,
                          capture_output=True, text=True, cwd=cwd)


def test_export_cli_from_another_directory(rn_checkpoint, tmp_path):
    out = run_tool(['--checkpoint', rn_checkpoint, '--output', 'text.onnx', '--text',
                    '--report', 'report.json'], tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'wrote text.onnx' in out.stdout and '-> ok' in out.stdout
    assert (tmp_path / 'text.onnx').exists() and (tmp_path / 'report.json').exists()


def test_export_cli_errors(rn_checkpoint, tmp_path):
    out = run_tool(['--checkpoint', rn_checkpoint], tmp_path)
    assert out.returncode == 2 and '--output' in out.stderr
    out = run_tool(['--checkpoint', str(tmp_path / 'none.ckpt'), '--output', 'x.onnx'],
                   tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith(
        'export_onnx: error: checkpoint not found')
    out = run_tool(['--checkpoint', rn_checkpoint, '--output', 'x.onnx', '--fixed', '50x64'],
                   tmp_path)
    assert out.returncode == 1 and 'multiples of 32' in out.stderr
    out = run_tool(['--checkpoint', rn_checkpoint, '--output', 'x.onnx', '--text', '--fp16'],
                   tmp_path)
    assert out.returncode == 1 and '--text takes no' in out.stderr
