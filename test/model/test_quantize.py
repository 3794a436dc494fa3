# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""export_onnx --int8: a calibrated Q/DQ graph that ONNX Runtime runs (ResNet101, CPU)."""

import json
from pathlib import Path
import subprocess
import sys

import cv2
import onnx
import pytest

from lseg_ros.core.samples import sample_frame
from lseg_ros.deploy.fidelity import run_fidelity
from lseg_ros.deploy.quantize import (DEFAULT_KEEP, nodes_to_keep, quantize_image_encoder,
                                      QuantizeError)

ROOT = Path(__file__).resolve().parents[2]


def export_onnx(args, cwd):
    return subprocess.run([sys.executable, str(ROOT / 'tools' / 'export_onnx.py')] + args,
                          capture_output=True, text=True, cwd=cwd)


def weight_dequantized(model, node_name):
    """Return True when the weight input of the node comes from a DequantizeLinear."""
    producers = {out: n for n in model.graph.node for out in n.output}
    node = next(n for n in model.graph.node if n.name == node_name)
    return producers.get(node.input[1]) is not None and \
        producers[node.input[1]].op_type == 'DequantizeLinear'


def test_int8_export_calibrates_keeps_and_runs(rn_checkpoint, tmp_path):
    frames = tmp_path / 'frames'
    frames.mkdir()
    for index in range(2):
        cv2.imwrite(str(frames / f'{index}.png'), sample_frame(index, 96, 128)[:, :, ::-1])
    out = export_onnx(['--checkpoint', rn_checkpoint, '--output', 'rn_int8.onnx', '--fixed',
                       '64x96', '--int8', '--calibration', str(frames), '--keep', 'head1',
                       '--report', 'r.json', '--no-check'], tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'INT8 Q/DQ' in out.stdout and 'calibrated on 2 frames' in out.stdout
    report = json.loads((tmp_path / 'r.json').read_text())['int8']
    assert report['kept'] == ['/scratch/head1/Conv'] and report['calibration_frames'] == 2
    model = onnx.load(str(tmp_path / 'rn_int8.onnx'))
    onnx.checker.check_model(model)
    assert report['quantize_nodes'] == sum(n.op_type == 'QuantizeLinear'
                                           for n in model.graph.node) > 100
    assert not weight_dequantized(model, '/scratch/head1/Conv')
    assert weight_dequantized(model, '/scratch/refinenet1/out_conv/Conv')
    # ONNX Runtime runs it through the backend, and the fidelity tool measures what it costs
    from lseg_ros.core.model.checkpoint import load_weights
    fidelity = run_fidelity(load_weights(rn_checkpoint), 'onnxruntime', 'auto', [(64, 96)],
                            'cpu', onnx=str(tmp_path / 'rn_int8.onnx'))
    metrics = fidelity['cases'][0]['metrics']
    assert 0.99 < metrics['mean_cosine'] < 0.99999          # close, but not fp32
    # the fp32 export stays next to it; by default the decoder and head stay in fp32
    assert (tmp_path / 'rn_int8.onnx.fp32.onnx').is_file()
    fp32 = onnx.load(str(tmp_path / 'rn_int8.onnx.fp32.onnx'))
    kept = nodes_to_keep(fp32, DEFAULT_KEEP)
    assert '/scratch/head1/Conv' in kept and '/scratch/refinenet1/out_conv/Conv' in kept
    assert not any(name.startswith('/pretrained/') for name in kept)
    # bad combinations are refused
    for bad in (['--int8'], ['--fixed', '64x64', '--int8', '--fp16'],
                ['--fixed', '64x64', '--keep', 'head1']):
        out = export_onnx(['--checkpoint', rn_checkpoint, '--output', 'x.onnx'] + bad, tmp_path)
        assert out.returncode != 0 and 'error' in out.stderr, bad


def test_quantize_refuses_what_it_cannot_quantise(tmp_path):
    with pytest.raises(QuantizeError, match='not found'):
        quantize_image_encoder(str(tmp_path / 'missing.onnx'), str(tmp_path / 'q.onnx'),
                               [sample_frame(0, 32, 32)], (32, 32), None)
    with pytest.raises(QuantizeError, match='unknown quantisation'):
        quantize_image_encoder('x.onnx', 'y.onnx', [sample_frame(0, 32, 32)], (32, 32), None,
                               mode='fp4')


def test_attention_products_are_kept():
    from onnx import helper, TensorProto
    import numpy as np
    weight = helper.make_tensor('w', TensorProto.FLOAT, (4, 4), np.ones(16).tolist())
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['x', 'w'], ['y'], name='/blocks.0/mlp/fc1/MatMul'),
         helper.make_node('MatMul', ['y', 'y'], ['z'], name='/blocks.0/attn/MatMul')],
        'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, (4, 4))],
        [helper.make_tensor_value_info('z', TensorProto.FLOAT, (4, 4))], [weight])
    model = helper.make_model(graph)
    assert nodes_to_keep(model, []) == ['/blocks.0/attn/MatMul']
    assert nodes_to_keep(model, [], attention=False) == []
    assert nodes_to_keep(model, ['fc1']) == ['/blocks.0/attn/MatMul', '/blocks.0/mlp/fc1/MatMul']
