# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Start-up errors, compressed input with reliable QoS, and the bench against a live node."""

import json
import time

import numpy as np
import pytest

from lseg_ros.cli.bench import entry as bench_main
from lseg_ros.core.samples import sample_frame
from lseg_ros.formats.image_codec import encode_compressed
from support.images import jpeg_declaring
from support.ros import NodeProcess, RosClient, stamp_of

pytestmark = pytest.mark.ros


@pytest.mark.parametrize('checkpoint, message', [
    ('/nonexistent/demo_e200.ckpt', 'checkpoint not found: /nonexistent/demo_e200.ckpt'),
    ('', 'parameter checkpoint is empty'),
    ('GARBAGE', 'cannot read checkpoint'),
])
def test_bad_checkpoint_is_one_error_line_and_exit_1(checkpoint, message, tmp_path):
    if checkpoint == 'GARBAGE':
        checkpoint = tmp_path / 'broken.ckpt'
        checkpoint.write_bytes(b'not a checkpoint at all')
    proc = NodeProcess({'checkpoint': str(checkpoint), 'device': 'cpu'},
                       log_path=tmp_path / 'node.log')
    assert proc.wait_exit(120) == 1
    output = proc.output()
    proc.stop()
    errors = [line for line in output.splitlines() if 'ERROR' in line]
    assert len(errors) == 1 and message in errors[0], output
    assert 'Traceback' not in output


def test_bad_initial_labels_and_choices_fail_at_start(rn_checkpoint, tmp_path):
    for params, message in (({'labels': 'a,,b'}, 'label 2 of 3 is empty'),
                            ({'backend': 'magic'}, 'backend'),
                            ({'max_rate_hz': 10}, 'decimal point'),
                            ({'input_size': 8}, 'input_size')):
        proc = NodeProcess({'checkpoint': rn_checkpoint, 'device': 'cpu', **params},
                           log_path=tmp_path / 'node.log')
        assert proc.wait_exit(120) == 1
        output = proc.output()
        proc.stop()
        assert message in output and 'Traceback' not in output, output


def test_an_unknown_executor_fails_at_start_before_the_model_loads(
        rn_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv('LSEG_EXECUTOR', 'fast')
    proc = NodeProcess({'checkpoint': rn_checkpoint, 'device': 'cpu'},
                       log_path=tmp_path / 'node.log')
    assert proc.wait_exit(60) == 2
    output = proc.output()
    proc.stop()
    assert 'LSEG_EXECUTOR' in output and 'one of auto, events, single, multi' in output
    assert 'checkpoint' not in output and 'Traceback' not in output, output


def test_unusable_engine_is_a_warning_and_in_diagnostics(rn_checkpoint, tmp_path):
    """Backend auto with an unusable engine: one ROS warning naming it, diagnostics say why."""
    from diagnostic_msgs.msg import DiagnosticArray
    engine = tmp_path / 'model.engine'
    engine.write_bytes(np.random.default_rng(0).bytes(1024))
    proc = NodeProcess({'checkpoint': rn_checkpoint, 'device': 'cpu', 'engine': str(engine),
                        'warmup': False, 'input_size': 64}, name='lseg_engine',
                       log_path=tmp_path / 'node.log')
    client = RosClient('engine_client')
    try:
        client.subscribe(DiagnosticArray, '/diagnostics')

        def fallback():
            for msg in client.received('/diagnostics'):
                for status in msg.status:
                    if status.name.startswith('/lseg_engine:'):
                        return {kv.key: kv.value for kv in status.values}['engine_fallback']
        value = client.wait_for(fallback, 120)
        assert str(engine) in value and 'not used' in value, value
        warnings = [line for line in proc.output().splitlines() if 'WARN' in line]
        assert len(warnings) == 1 and str(engine) in warnings[0], proc.output()
        # the backend factory's Python logging record, in the node's format (and on /rosout)
        assert warnings[0].startswith('[WARN] [') and '[lseg_engine]' in warnings[0], \
            warnings[0]
    finally:
        client.close()
        assert proc.stop() == 0


def test_compressed_input_with_reliable_qos(rn_checkpoint, tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    proc = NodeProcess({'checkpoint': rn_checkpoint, 'input_size': 64, 'device': 'cpu',
                        'compressed_input': True, 'input_qos': 'reliable', 'warmup': False,
                        'labels': 'x, y'},
                       remaps={'image/compressed': '/cam/image/compressed'},
                       log_path=tmp_path / 'node.log')
    client = RosClient('compressed_client')
    try:
        client.subscribe(Image, '/lseg/mask')
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        publisher = client.node.create_publisher(CompressedImage, '/cam/image/compressed',
                                                 reliable)

        def send(index, fmt, data=None):
            rgb = sample_frame(index, 40, 56)
            msg = CompressedImage(format=fmt, data=data if data is not None
                                  else encode_compressed(rgb, fmt))
            msg.header.stamp = stamp_of(index)
            msg.header.frame_id = 'cam'
            publisher.publish(msg)

        def mask_of(index):
            return [m for m in client.received('/lseg/mask')
                    if m.header.stamp == stamp_of(index)]
        for index, fmt in ((1, 'jpeg'), (2, 'png')):
            client.wait_for(lambda: send(index, fmt) or mask_of(index), 120, poll=0.5)
            mask = mask_of(index)[0]
            assert (mask.width, mask.height, mask.encoding) == (56, 40, 'mono8')
        send(3, 'jpeg', data=b'\xff\xd8\xff' + bytes(200))      # corrupt JPEG
        send(4, 'jpeg', data=b'')
        send(6, 'jpeg', data=jpeg_declaring(30000, 30000))     # 631 bytes, 30000x30000
        time.sleep(1.0)
        client.wait_for(lambda: send(5, 'jpeg') or mask_of(5), 30, poll=0.3)
        assert not mask_of(3) and not mask_of(4) and not mask_of(6)
        assert 'frame skipped' in proc.output()
        assert 'declares 30000x30000' in proc.output(), proc.output()
    finally:
        client.close()
        assert proc.stop() == 0


def test_bench_runs_against_a_spawned_node(rn_checkpoint, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    code = bench_main(['--spawn', '--checkpoint', rn_checkpoint, '--device', 'cpu',
                       '--size', '64', '--width', '64', '--height', '48', '--rates', '4,peak',
                       '--duration', '3', '--warmup', '1', '--output', str(out),
                       '--node', '/lseg'])
    assert code == 0
    report = json.loads(out.read_text())
    assert [p['rate_hz'] for p in report['phases']] == [4.0, 'peak']
    for phase in report['phases']:
        assert phase['masks'] > 0 and phase['latency_ms']['p50'] > 0
        assert {'p50', 'p90', 'p99', 'max'} <= set(phase['latency_ms'])
        assert 'encoder' in phase['node_stages_p50_ms']
        assert phase['cpu']['node_percent_of_one_core'] >= 0
    assert report['startup_to_first_mask_s'] > 0
    assert report['environment']['python'] and report['environment']['torch']
    assert np.isfinite(report['phases'][0]['output_fps'])
    table = capsys.readouterr().out
    assert 'p99' in table and 'peak' in table
