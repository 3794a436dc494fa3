# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""export_onnx --int8/--fp8: calibrated Q/DQ graphs that ONNX Runtime runs and TensorRT builds.

ResNet101 at small sizes on the CPU.  The TensorRT-RTX builder (a test requirement) builds
engines without a GPU, so CI proves the graphs parse and build as explicitly quantised
networks; the engines cannot run here.
"""

import importlib.util
import json
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import onnx
from onnx import numpy_helper, TensorProto
import pytest

from lseg_ros.core.backends.artifacts import onnx_graph_types
from lseg_ros.core.model.checkpoint import load_weights
from lseg_ros.core.samples import sample_frame, sample_frames
from lseg_ros.deploy.fidelity import run_fidelity
from lseg_ros.deploy.quantize import (calibrate, DEFAULT_KEEP, FP8_MAX, model_opset,
                                      nodes_to_keep, QUANTISABLE, quantize_image_encoder,
                                      QuantizeError)

ROOT = Path(__file__).resolve().parents[2]
#: One frame (the fidelity tool's default is 20): what these tests bound is one image's cost.
FRAME = [sample_frame(5, 480, 640)]


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
                            'cpu', onnx=str(tmp_path / 'rn_int8.onnx'), images=FRAME)
    metrics = fidelity['cases'][0]['metrics']
    assert 0.99 < metrics['mean_cosine'] < 0.99999          # close, but not fp32
    # the fp32 export stays next to it; by default the decoder and head stay in fp32
    assert (tmp_path / 'rn_int8.onnx.fp32.onnx').is_file()
    fp32 = onnx.load(str(tmp_path / 'rn_int8.onnx.fp32.onnx'))
    kept = nodes_to_keep(fp32, DEFAULT_KEEP)
    assert '/scratch/head1/Conv' in kept and '/scratch/refinenet1/out_conv/Conv' in kept
    assert not any(name.startswith('/pretrained/') for name in kept)
    # bad combinations are refused
    for bad in (['--int8'], ['--fixed', '64x64', '--int8', '--fp16', '--opset', '17'],
                ['--fixed', '64x64', '--fp8', '--opset', '18'],
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


def test_default_keep_names_the_exported_vit_layers():
    """The patterns match the node names of the ViT-L/16 export (taken from one)."""
    names = ['/pretrained/model/proj/Conv', '/pretrained/model/blocks.0/attn/qkv/MatMul',
             '/pretrained/model/blocks.0/attn/proj/MatMul',
             '/pretrained/model/blocks.0/mlp/fc1/MatMul',
             '/pretrained/model/blocks.0/mlp/fc2/MatMul',
             '/pretrained/act_postprocess1/act_postprocess1.3/Conv', '/scratch/head1/Conv']
    weight = onnx.helper.make_tensor('w', TensorProto.FLOAT, (4, 4), np.ones(16).tolist())
    nodes = [onnx.helper.make_node('MatMul', ['x', 'w'], [f'y{i}'], name=name)
             for i, name in enumerate(names)]
    graph = onnx.helper.make_graph(
        nodes, 'g', [onnx.helper.make_tensor_value_info('x', TensorProto.FLOAT, (4, 4))],
        [onnx.helper.make_tensor_value_info('y0', TensorProto.FLOAT, (4, 4))], [weight])
    kept = nodes_to_keep(onnx.helper.make_model(graph), DEFAULT_KEEP)
    assert kept == sorted(['/pretrained/model/proj/Conv',           # the patch embedding
                           '/pretrained/model/blocks.0/mlp/fc2/MatMul',
                           '/pretrained/act_postprocess1/act_postprocess1.3/Conv',
                           '/scratch/head1/Conv'])


@pytest.fixture(scope='module')
def rn_qdq(rn_checkpoint, tmp_path_factory):
    """ResNet101 at 64x96: fp32 and fp16 exports (opset 19), Q/DQ graphs over each.

    One calibration serves every graph (``int8``, ``fp8``: over fp32; ``int8_fp16``,
    ``fp8_fp16``: over fp16).
    """
    from lseg_ros.deploy.export import export_image_encoder
    folder = tmp_path_factory.mktemp('qdq')
    weights = load_weights(rn_checkpoint)
    paths = {precision: export_image_encoder(
        weights, str(folder / f'rn_{precision}.onnx'), precision=precision, dynamic=False,
        size=(64, 96), opset=19, check=False).path for precision in ('fp32', 'fp16')}
    plan = calibrate(paths['fp32'], list(sample_frames(2, 64, 96)), (64, 96), weights.variant)
    for mode in ('int8', 'fp8'):
        for base in ('', '_fp16'):
            paths[mode + base] = str(folder / f'rn_{mode}{base}.onnx')
            quantize_image_encoder(paths['fp32'], paths[mode + base], [], (64, 96),
                                   weights.variant, mode=mode, plan=plan,
                                   float16_base=paths['fp16'] if base else None)
    return weights, paths


def onnx_quantization(path):
    """Return the Q/DQ kind of the graph at ``path``."""
    return onnx_graph_types(path)[1]


def dequantize_inputs(model):
    """Return the types of the quantised tensors of every DequantizeLinear."""
    types = {init.name: init.data_type for init in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    found = set()
    for node in model.graph.node:
        if node.op_type == 'DequantizeLinear':
            source = node.input[0]
            found.add(types[source] if source in types else
                      types[producers[source].input[2]])      # a QuantizeLinear's zero point
    return found


def test_qdq_graphs_have_float_biases_and_one_quantised_type(rn_qdq):
    """No int32 DequantizeLinear: TensorRT refuses one (ONNX Runtime's default for biases)."""
    _, paths = rn_qdq
    int8 = onnx.load(paths['int8'])
    assert dequantize_inputs(int8) == {TensorProto.INT8}
    assert onnx_quantization(paths['int8']) == 'int8'
    assert onnx_quantization(paths['fp32']) == ''


@pytest.mark.parametrize('name', ['int8', 'fp8', 'int8_fp16'])
def test_qdq_sit_on_the_inputs_of_the_quantised_layers_only(rn_qdq, name):
    """Placement as TensorRT recommends it (ONNX Runtime also quantises outputs and adds)."""
    _, paths = rn_qdq
    model = onnx.load(paths[name])
    consumers = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    quantised = 0
    for node in model.graph.node:
        if node.op_type == 'QuantizeLinear':
            (dq,) = consumers[node.output[0]]
            assert dq.op_type == 'DequantizeLinear'
            assert {c.op_type for c in consumers[dq.output[0]]} <= set(QUANTISABLE), node.name
            quantised += 1
    assert quantised > 80
    # weights: one DequantizeLinear each, straight into its layer
    weight_dqs = [n for n in model.graph.node if n.op_type == 'DequantizeLinear'
                  and n.input[0] in {i.name for i in model.graph.initializer}]
    assert len(weight_dqs) == 127 - 23                 # every layer but the kept decoder


def test_the_float16_base_keeps_every_other_layer_in_fp16(rn_qdq):
    from lseg_ros.core.backends.artifacts import onnx_graph_precision
    weights, paths = rn_qdq
    model = onnx.load(paths['int8_fp16'])
    onnx.checker.check_model(model)
    assert onnx_graph_precision(paths['int8_fp16']) == 'fp16'
    inits = {i.name: i for i in model.graph.initializer}
    head = next(n for n in model.graph.node if n.name.endswith('/scratch/head1/Conv'))
    assert inits[head.input[1]].data_type == TensorProto.FLOAT16      # kept: fp16 weights
    scales = [inits[n.input[1]].data_type for n in model.graph.node
              if n.op_type in ('QuantizeLinear', 'DequantizeLinear')]
    assert set(scales) == {TensorProto.FLOAT16}
    assert not any(i.data_type == TensorProto.FLOAT and i.dims for i in model.graph.initializer
                   if i.name in {n.input[1] for n in model.graph.node if n.op_type == 'Conv'})
    for name in ('int8_fp16', 'fp8_fp16'):
        metrics = run_fidelity(weights, 'onnxruntime', 'auto', [(64, 96)], 'cpu',
                               onnx=paths[name], images=FRAME)['cases'][0]['metrics']
        assert 0.98 < metrics['mean_cosine'] < 0.99999, name


def test_fp8_graph_quantises_weights_per_channel_and_runs_in_onnx_runtime(rn_qdq):
    weights, paths = rn_qdq
    model = onnx.load(paths['fp8'])
    onnx.checker.check_model(model)
    assert model_opset(model) == 19 and onnx_quantization(paths['fp8']) == 'fp8'
    assert dequantize_inputs(model) == {TensorProto.FLOAT8E4M3FN}
    # every weight within one float8 step of its fp32 value (scale max|w| / 448 per channel)
    floats = {i.name: numpy_helper.to_array(i) for i in onnx.load(paths['fp32']).graph.initializer}
    inits = {i.name: i for i in model.graph.initializer}
    checked = 0
    for node in model.graph.node:
        if node.op_type != 'DequantizeLinear' or node.input[0] not in inits:
            continue
        quantised = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]])
        assert np.abs(quantised).max() <= FP8_MAX
        original = floats[node.input[0][:-len('_quantized')]]
        shape = [-1] + [1] * (original.ndim - 1)       # Conv weights: per output channel
        restored = quantised * scale.reshape(shape)
        peak = np.abs(original).reshape(original.shape[0], -1).max(axis=1).reshape(shape)
        assert np.all(np.abs(restored - original) <= peak / 16 + 1e-12)
        checked += 1
    assert checked > 80
    # ONNX Runtime runs it through the backend (its graph optimisations off: with them the
    # float8 graph computes a mean cosine of 0.47 to fp32)
    fidelity = run_fidelity(weights, 'onnxruntime', 'auto', [(64, 96)], 'cpu',
                            onnx=paths['fp8'], images=FRAME)
    metrics = fidelity['cases'][0]['metrics']
    assert 0.98 < metrics['mean_cosine'] < 0.99999
    assert fidelity['backend']['quantization'] == 'fp8 Q/DQ'


def test_fp8_needs_opset_19(rn_qdq, tmp_path):
    weights, paths = rn_qdq
    fp32_17 = str(tmp_path / 'rn17.onnx')
    model = onnx.load(paths['fp32'])
    model.opset_import[0].version = 17
    onnx.save(model, fp32_17)
    with pytest.raises(QuantizeError, match='opset 19'):
        quantize_image_encoder(fp32_17, str(tmp_path / 'q.onnx'), [sample_frame(0, 64, 96)],
                               (64, 96), weights.variant, mode='fp8')
    assert not (tmp_path / 'q.onnx').exists()


@pytest.fixture(scope='module')
def rtx_engines(rn_qdq, tmp_path_factory):
    """Build every graph of :func:`rn_qdq` with TensorRT-RTX (ahead of time, no GPU)."""
    if importlib.util.find_spec('tensorrt_rtx') is None:
        pytest.skip('tensorrt_rtx is not installed (requirements-test.txt has it)')
    from lseg_ros.core.backends.artifacts import import_tensorrt
    from lseg_ros.deploy.engine_build import build_engine, BuildOptions
    folder = tmp_path_factory.mktemp('rtx')
    trt = import_tensorrt('tensorrt_rtx')
    return {name: build_engine(path, str(folder / f'{name}.engine'),
                               BuildOptions(opt_shapes={'': '64x96'}), trt=trt).metadata
            for name, path in rn_qdq[1].items()}


@pytest.mark.parametrize('name', ['int8', 'fp8', 'int8_fp16', 'fp8_fp16'])
def test_tensorrt_rtx_builds_the_qdq_graphs(rtx_engines, name):
    built = rtx_engines[name]
    assert built['onnx_quantization'] == name.split('_')[0]
    assert built['identity']['strongly_typed']
    assert built['identity']['precision'] == ('fp16' if name.endswith('fp16') else 'fp32')
    # quantised weights: smaller than the engine of the graph's float type (the decoder is
    # kept in it)
    plain = rtx_engines['fp16' if name.endswith('fp16') else 'fp32']
    assert built['engine_bytes'] < 0.85 * plain['engine_bytes']


def test_fp8_over_fp16_from_the_command_line(rn_checkpoint, tmp_path):
    out = export_onnx(['--checkpoint', rn_checkpoint, '--output', 'rn.onnx', '--fixed', '64x96',
                       '--fp8', '--fp16', '--calibration-frames', '1', '--report', 'r.json',
                       '--no-check'], tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'FP8 Q/DQ over fp16' in out.stdout
    report = json.loads((tmp_path / 'r.json').read_text())
    assert report['fp8']['float_type'] == 'fp16' and report['float16_base']['opset'] == 19
    for name in ('rn.onnx', 'rn.onnx.fp32.onnx', 'rn.onnx.fp16.onnx'):
        assert (tmp_path / name).is_file(), name
    assert onnx_quantization(str(tmp_path / 'rn.onnx')) == 'fp8'


def test_apply_qdq_shares_weights_and_follows_the_graph_order():
    """A weight read by three layers (one of them transposed), a plan in any order."""
    import onnxruntime as ort
    from onnx import helper
    from lseg_ros.deploy.quantize import apply_qdq
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((8, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['x', 'w'], ['a'], name='mm1'),
         helper.make_node('Relu', ['a'], ['r'], name='relu'),
         helper.make_node('MatMul', ['r', 'w'], ['b'], name='mm2'),
         helper.make_node('Gemm', ['b', 'w'], ['y'], name='gemm', transB=1)],
        'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, (4, 8))],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, (4, 8))],
        [numpy_helper.from_array(weight, 'w')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 19)])
    x = rng.standard_normal((4, 8)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {'x': x})[0]
    plan = {'gemm': {0: ('activation', 0.5), 1: ('weight', 0)},          # last node first
            'mm2': {0: ('activation', 0.1), 1: ('weight', 1)},
            'mm1': {0: ('activation', 0.03), 1: ('weight', 1)}}
    quantised = apply_qdq(plan, model, 'int8')
    onnx.checker.check_model(quantised, full_check=True)
    dqs = [n for n in quantised.graph.node if n.op_type == 'DequantizeLinear'
           and n.input[0].endswith('_quantized')]
    assert len(dqs) == 2                          # axis 1 once for both MatMuls, axis 0 once
    got = ort.InferenceSession(quantised.SerializeToString()).run(None, {'x': x})[0]
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 0.05


def test_float16_scales_are_never_subnormal():
    from lseg_ros.deploy.quantize import quantise_weight, scales_as
    tiny = np.finfo(np.float16).tiny
    weight = np.full((2, 3), 1e-6, np.float32)
    weight[1] = 0.5
    for mode in ('int8', 'fp8'):
        values, scales = quantise_weight(weight, 0, mode, np.float16)
        assert scales.dtype == np.float16 and scales.min() >= tiny
        restored = values.astype(np.float32) * scales.astype(np.float32)[:, None]
        assert np.allclose(restored[1], 0.5, rtol=0.07)
    assert scales_as(1e-9, np.float16) == tiny and scales_as(1e-9, np.float32) > 0
