# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The latency and fidelity tools run end to end on the CPU (small ResNet101 inputs)."""

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from lseg_ros.core.errors import LsegError
from lseg_ros.deploy.export import export_image_encoder
from lseg_ros.deploy.fidelity import (compare, default_images, default_thresholds, json_report,
                                      judge_set, per_image_limits, plot_heatmaps,
                                      run_fidelity, set_miou, verdict)
from lseg_ros.deploy.latency import (BASELINE, build_specs, format_table, measure, parse_sizes,
                                     percentiles, plot, strict_fp32)

ROOT = Path(__file__).resolve().parents[2]
PNG = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def rn_weights(rn_checkpoint):
    from lseg_ros.core.model.checkpoint import load_weights
    return load_weights(rn_checkpoint)


@pytest.fixture(scope='module')
def rn_onnx(rn_weights, tmp_path_factory):
    path = tmp_path_factory.mktemp('rn_onnx') / 'rn.onnx'
    export_image_encoder(rn_weights, path, size=(64, 64), check_sizes=[(64, 64)])
    return str(path)


def test_parse_sizes_and_specs(rn_onnx):
    assert parse_sizes('384x384, 480x640,1024') == [(384, 384), (480, 640), (1024, 1024)]
    for bad in ('', '100x64', 'axb', '32x32x32'):
        with pytest.raises(LsegError):
            parse_sizes(bad)
    specs = build_specs(['torch-fp16-graph', 'torch-fp32-eager'], torch.device('cuda'),
                        onnx=[rn_onnx])
    assert [s.label for s in specs] == [BASELINE, 'torch-fp16-graph', 'onnxruntime-fp32']
    assert [s.label for s in build_specs(None, torch.device('cpu'))] == [BASELINE]
    with pytest.raises(LsegError, match='unknown backend preset'):
        build_specs(['tensorrt-magic'], torch.device('cpu'))


def test_percentiles():
    stats = percentiles(list(range(1, 101)))
    assert stats['p50'] == pytest.approx(50.5) and stats['p99'] == pytest.approx(99.01)
    assert stats['min'] == 1 and stats['max'] == 100 and stats['n'] == 100


def test_strict_fp32_restores_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with strict_fp32():
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_latency_measures_every_backend_on_cpu(rn_weights, rn_onnx, tmp_path):
    specs = build_specs(None, torch.device('cpu'), onnx=[rn_onnx])
    report = measure(rn_weights, specs, [(64, 64)], 'cpu', warmup=1, iterations=3)
    rows = {r['label']: r for r in report['results']}
    assert set(rows) == {BASELINE, 'onnxruntime-fp32'}
    for row in rows.values():
        assert 0 < row['min'] <= row['p50'] <= row['p90'] <= row['p99'] <= row['max']
        assert row['output_shape'] == [1, 512, 32, 32] and row['n'] == 3
        assert row['gflop'] > 1
    assert rows[BASELINE]['speedup_vs_eager_fp32'] == pytest.approx(1.0)
    assert report['environment']['torch'] == torch.__version__
    assert report['method']['iterations'] == 3
    assert 'onnxruntime-fp32' in format_table(report)
    path = plot([report], str(tmp_path / 'latency.png'))
    assert Path(path).read_bytes()[:8] == PNG
    json.dumps(report, default=str)


def test_compare_metrics_in_float64():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(1, 512, 240, 240), dim=1)
    b = a + 1e-3 * torch.randn_like(a)
    metrics, heat = compare(a, b, torch.randn(5, 512))
    # A float32 global cosine of such maps exceeds 1 (trt_guide 4.1); per pixel in float64
    # it cannot.
    assert 0.999 < metrics['mean_cosine'] <= 1.0
    assert metrics['min_cosine'] <= metrics['p01_cosine'] <= metrics['p1_cosine'] <= 1.0
    assert metrics['rel_l2'] == pytest.approx(1e-3 * np.sqrt(512), rel=0.05)
    assert heat.shape == (240, 240)
    assert metrics['agreement'] > 0.9 and 0 < metrics['miou'] <= 1
    same, _ = compare(a, a.clone(), torch.randn(5, 512))
    assert same['agreement'] == 1.0 and same['miou'] == 1.0 and same['rel_l2'] == 0.0
    failed = verdict(metrics, {'mean_cosine': 1.1, 'rel_l2': 1.0, 'agreement': None})
    assert len(failed) == 1 and failed[0].startswith('mean_cosine')
    nan = b.clone()
    nan[0, 0, 0, 0] = float('nan')
    assert 'non-finite' in verdict(compare(a, nan)[0], {})[0]
    with pytest.raises(LsegError, match='shapes differ'):
        compare(a, b[:, :, :10])


def test_a_label_on_one_pixel_weighs_in_the_miou_and_is_listed():
    # Two labels: the reference gives label 1 to a single feature pixel (4 pixels of the x2
    # upsampled label map), the test does not.  The maps agree on 252 of 256 pixels, yet
    # the mIoU is the mean of 252/256 (label 0) and 0.0 (label 1).
    a = torch.zeros(1, 2, 8, 8)
    a[0, 0] = 1.0
    a[0, 1, 3, 3], a[0, 0, 3, 3] = 1.0, 0.0
    b = a.clone()
    b[0, 1, 3, 3], b[0, 0, 3, 3] = 0.49, 0.51
    metrics, _ = compare(a, b, torch.eye(2))
    assert metrics['agreement'] == pytest.approx(1 - 4 / 256)      # x2 upsampled maps
    assert metrics['miou'] == pytest.approx((252 / 256 + 0.0) / 2)
    assert metrics['labels_present'] == 2
    small = [e for e in metrics['label_ious'] if e['label'] == 1][0]
    assert small == {'label': 1, 'iou': 0.0, 'intersection': 0, 'union': 4,
                     'reference_pixels': 4, 'test_pixels': 0}
    assert 'miou' in verdict(metrics, {'miou': 0.97})[0]


def test_set_miou_sums_over_the_images_and_does_not_count_labels_on_few_pixels():
    def entry(label, intersection, union, reference, test):
        return {'label': label, 'iou': intersection / union, 'intersection': intersection,
                'union': union, 'reference_pixels': reference, 'test_pixels': test}

    one = [entry(0, 90, 100, 95, 95), entry(1, 0, 1, 1, 0)]     # a near-tie pixel lost
    two = [entry(0, 100, 100, 100, 100)]
    summary = set_miou([one, two], min_label_pixels=100)
    assert summary['miou'] == pytest.approx(190 / 200)          # summed, not averaged
    assert summary['miou_every_label'] == pytest.approx((190 / 200 + 0.0) / 2)
    assert (summary['labels_counted'], summary['labels_not_counted'], summary['images']) == \
        (1, 1, 2)
    small = summary['labels'][1]
    assert small['counted'] is False and small['union'] == 1 and small['reference_pixels'] == 1
    # every label counts with 0, as in a per-image mIoU
    assert set_miou([one, two], 0)['miou'] == pytest.approx(summary['miou_every_label'])
    # a label the test invents on enough pixels counts (its union is the test's pixels)
    invented = set_miou([one + [entry(2, 0, 150, 0, 150)], two], 100)
    assert invented['labels_counted'] == 2
    assert invented['miou'] == pytest.approx((190 / 200 + 0.0) / 2)
    assert 'miou' in verdict({'miou': invented['miou']}, {'miou': 0.97})[0]
    assert set_miou([], 100)['miou'] == 1.0
    # a size passes when its set's mIoU and every image pass
    cases = [{'image': 0, 'metrics': {'label_ious': one}, 'failed': []},
             {'image': 1, 'metrics': {'label_ious': two}, 'failed': []}]
    assert judge_set(cases, {'miou': 0.9}, 100)['passed']
    assert judge_set(cases, {'miou': 0.97}, 100)['failed'][0].startswith('miou 0.95')
    cases[1]['failed'] = ['agreement 0.9 (needs >= 0.99)']
    verdict_ = judge_set(cases, {'miou': 0.9}, 100)
    assert not verdict_['passed'] and verdict_['images_failing'] == 1
    assert verdict_['failed'] == ['image 1: agreement 0.9 (needs >= 0.99)']
    assert per_image_limits({'miou': 0.97, 'agreement': 0.99}) == {'agreement': 0.99}


def test_default_images_are_the_distinct_sample_frames_then_mirrors():
    from lseg_ros.core.samples import DISTINCT_FRAMES, sample_frame
    frames = default_images(20, 48, 64)
    assert len(frames) == 20 and DISTINCT_FRAMES == 14
    assert len({f.tobytes() for f in frames}) == 20
    np.testing.assert_array_equal(frames[3], sample_frame(3, 48, 64))
    np.testing.assert_array_equal(frames[15], sample_frame(1, 48, 64)[:, ::-1])
    assert len({f.tobytes() for f in default_images(28, 48, 64)}) == 28
    with pytest.raises(LsegError, match='1 to 28 sample frames, not 29'):
        default_images(29, 48, 64)


def test_default_thresholds_depend_on_precision():
    fp16, fp32 = default_thresholds('fp16'), default_thresholds('fp32')
    assert fp16['mean_cosine'] < fp32['mean_cosine'] and fp16['rel_l2'] > fp32['rel_l2']


def test_fidelity_onnxruntime_against_torch_on_cpu(rn_weights, rn_onnx, tmp_path):
    report = run_fidelity(rn_weights, 'onnxruntime', 'auto', [(64, 64), (64, 96)], 'cpu',
                          labels='sky, grass, road, other', onnx=rn_onnx,
                          images=(frame for frame in default_images(3)))    # any iterable
    assert report['passed'] and report['backend']['backend'] == 'onnxruntime'
    assert report['images'] == 3 and len(report['cases']) == 6
    assert [s['size'] for s in report['sets']] == [[64, 64], [64, 96]]
    summary = report['sets'][0]
    assert summary['images'] == 3 and summary['passed'] and summary['miou'] > 0.99
    assert summary['min_label_pixels'] == report['min_label_pixels'] == 100
    assert {e['name'] for e in summary['labels']} <= {'sky', 'grass', 'road', 'other'}
    case = report['cases'][0]
    assert case['metrics']['rel_l2'] < 1e-4 and case['metrics']['agreement'] > 0.99
    names = {e['name'] for e in case['metrics']['label_ious']}
    assert names and names <= {'sky', 'grass', 'road', 'other'}
    assert len(case['input_sha256']) == 64 and case['feature_shape'] == [1, 512, 32, 32]
    assert report['thresholds'] == default_thresholds('fp32')
    assert Path(plot_heatmaps(report, str(tmp_path / 'h.png'))).read_bytes()[:8] == PNG
    json.dumps(json_report(report))


def run_tool(name, args, cwd):
    return subprocess.run([sys.executable, str(ROOT / 'tools' / f'{name}.py')] + args,
                          capture_output=True, text=True, cwd=cwd)


def test_latency_cli_end_to_end(rn_checkpoint, rn_onnx, tmp_path):
    out = run_tool('latency', ['--checkpoint', rn_checkpoint, '--sizes', '64x64', '--onnx',
                               rn_onnx, '--device', 'cpu', '--warmup', '1', '--iterations', '2',
                               '--output', 'l.json', '--plot', 'l.png', '--table', 'l.md'],
                   tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / 'l.json').read_text())
    assert [r['label'] for r in report['results']] == [BASELINE, 'onnxruntime-fp32']
    assert (tmp_path / 'l.png').read_bytes()[:8] == PNG
    assert '| torch-fp32-eager |' in (tmp_path / 'l.md').read_text()
    out = run_tool('latency', ['--checkpoint', rn_checkpoint, '--output', 'x.json',
                               '--sizes', '65x64'], tmp_path)
    assert out.returncode == 1 and 'latency: error: bad size' in out.stderr


def test_fidelity_cli_pass_and_fail(rn_checkpoint, rn_onnx, tmp_path):
    common = ['--checkpoint', rn_checkpoint, '--backend', 'onnxruntime', '--onnx', rn_onnx,
              '--sizes', '64x64', '--device', 'cpu', '--labels', 'sky, grass, other',
              '--frames', '2']
    out = run_tool('fidelity', common + ['--output', 'f.json', '--heatmap', 'f.png',
                                         '--min-label-pixels', '0'], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == 'PASS'
    assert '64x64: mean cos' in out.stdout and 'set mIoU' in out.stdout
    report = json.loads((tmp_path / 'f.json').read_text())
    assert report['passed'] and 'heatmaps' not in report
    assert report['images'] == 2 and report['min_label_pixels'] == 0
    assert (tmp_path / 'f.png').read_bytes()[:8] == PNG
    out = run_tool('fidelity', common + ['--output', 'g.json', '--min-mean-cosine', '1.1'],
                   tmp_path)
    assert out.returncode == 1
    assert out.stdout.strip().splitlines()[-1] == 'FAIL' and 'mean_cosine' in out.stdout
    assert json.loads((tmp_path / 'g.json').read_text())['passed'] is False
    out = run_tool('fidelity', ['--checkpoint', rn_checkpoint, '--backend', 'onnxruntime',
                                '--output', 'h.json', '--device', 'cpu'], tmp_path)
    assert out.returncode == 1 and 'needs an ONNX' in out.stderr
    for bad, says in ((['--frames', '0'], 'from 1 to 28'), (['--frames', '-1'], 'from 1 to 28'),
                      (['--frames', '29'], 'from 1 to 28'), (['--frames', 'x'], 'whole number'),
                      (['--min-label-pixels', '-1'], '0 or more')):
        out = run_tool('fidelity', common[:-2] + ['--output', 'i.json'] + bad, tmp_path)
        assert out.returncode == 2 and 'fidelity: error: argument' in out.stderr
        assert says in out.stderr, out.stderr
    assert not (tmp_path / 'i.json').exists()


def test_fidelity_cli_defaults_are_the_tools():
    from lseg_ros.cli import fidelity as cli
    from lseg_ros.deploy import fidelity
    assert (cli.DEFAULT_FRAMES, cli.MIN_LABEL_PIXELS, cli.MAX_FRAMES) == \
        (fidelity.DEFAULT_FRAMES, fidelity.MIN_LABEL_PIXELS, fidelity.MAX_FRAMES)
