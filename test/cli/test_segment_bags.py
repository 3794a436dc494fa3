# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""segment_bags: a local Ray run over generated bags equals segment_bag, message for message."""

import json
from pathlib import Path

import numpy as np
import pytest

from lseg_ros.formats import bag
from lseg_ros.formats.sample_bag import CAMERA_INFO_TOPIC, COMPRESSED_TOPIC, IMAGE_TOPIC, \
    write_sample_bag

pytest.importorskip('ray')

H, W = 48, 64
LABELS = 'dog, grass, road, sky'
TOPICS = (IMAGE_TOPIC, COMPRESSED_TOPIC)


def read_bag(path):
    """Return (sorted connections, [(topic, bag time, bytes)]) read with plain rosbags."""
    from rosbags.rosbag2 import Reader
    with Reader(path) as reader:
        connections = sorted((c.topic, c.msgtype, str(c.ext.offered_qos_profiles), c.digest)
                             for c in reader.connections)
        messages = [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]
    return connections, messages


def common_args(checkpoint):
    args = ['--checkpoint', checkpoint, '--labels', LABELS, '--size', '64', '--device', 'cpu',
            '--backend', 'torch', '--no-progress', '--copy-topic', CAMERA_INFO_TOPIC]
    for topic in TOPICS:
        args += ['--image-topic', topic]
    return args


def write_bag_with_bad_frame(path):
    """Write an rgb8 raw + compressed bag whose second raw frame is 32FC1 (unsupported)."""
    from lseg_ros.core.samples import sample_frame
    from lseg_ros.formats.image_codec import encode_compressed
    with bag.BagWriter(path, 'mcap') as writer:
        for topic, msgtype in ((IMAGE_TOPIC, bag.IMAGE), (COMPRESSED_TOPIC,
                                                          bag.COMPRESSED_IMAGE),
                               (CAMERA_INFO_TOPIC, bag.CAMERA_INFO)):
            writer.add_topic(topic, msgtype)
        for i in range(3):
            header = bag.make_header((10 + i, 0), 'cam')
            rgb = sample_frame(i, H, W)
            raw = (bag.image_message(np.zeros((H, W), np.float32), '32FC1', header) if i == 1
                   else bag.image_message(rgb, 'rgb8', header))
            writer.write(IMAGE_TOPIC, (10 + i) * 10**9, raw)
            writer.write(COMPRESSED_TOPIC, (10 + i) * 10**9 + 1, bag.compressed_message(
                encode_compressed(rgb, 'jpeg'), 'rgb8; jpeg compressed bgr8', header))
            writer.write(CAMERA_INFO_TOPIC, (10 + i) * 10**9 + 2, bag.camera_info_message(
                header, H, W, 50.0, 50.0, 32.0, 24.0))


@pytest.fixture
def one_thread():
    """Run torch on one CPU thread (segment_bags' actors then use one too).

    With several threads, CPU kernels may split sums differently under load, so two
    processes agree bit for bit only on one thread (GPU kernels do not depend on it).
    """
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def archive(tmp_path_factory):
    """Write three good bags, a corrupt one and one with a bad frame.

    Good: sqlite3 bgr8, mcap rgb8, and a single .mcap file with frames of another size.
    """
    root = tmp_path_factory.mktemp('archive')
    bags = root / 'bags'
    write_sample_bag(bags / 'day1_sqlite', frames=3, height=H, width=W, storage='sqlite3',
                     encoding='bgr8')
    write_sample_bag(bags / 'day2_mcap', frames=4, height=H, width=W, storage='mcap')
    single = root / 'single'
    write_sample_bag(single, frames=2, height=2 * H, width=2 * W, storage='mcap')
    (bags / 'day3.mcap').write_bytes(next(single.glob('*.mcap')).read_bytes())
    (bags / 'broken.mcap').write_bytes(b'not a bag at all' * 64)
    write_bag_with_bad_frame(bags / 'badframe')
    return root


def test_ray_run_equals_segment_bag_reports_failures_and_resumes(
        archive, rn_checkpoint, one_thread, capsys):
    from lseg_ros.cli.segment_bag import entry as segment_bag
    from lseg_ros.cli.segment_bags import entry as segment_bags
    bags = archive / 'bags'
    good = ['day1_sqlite', 'day2_mcap', 'day3']
    reference = archive / 'reference'
    for name in good:
        source = bags / name if (bags / name).exists() else bags / f'{name}.mcap'
        assert segment_bag(['--input', str(source), '--output', str(reference / name)]
                           + common_args(rn_checkpoint)) == 0
    capsys.readouterr()
    # --batch-size 1: bit-identical to segment_bag (a batched encoder call may round a few
    # confidence values differently, see docs/rosbag.md)
    listing = archive / 'bags.txt'            # a list file: a folder of bags
    listing.write_text('# the archive\nbags\n')
    out = archive / 'out'
    report = archive / 'report.json'
    ray_args = ['--input', str(listing), '--output', str(out), '--num-cpus', '4',
                '--object-store-mb', '300', '--batch-size', '1', '--decode-workers', '2',
                '--report', str(report)] + common_args(rn_checkpoint)
    code = segment_bags(ray_args)
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert 'Traceback' not in captured.err
    assert 'broken.mcap' in captured.err and 'not an MCAP file' in captured.err
    assert "unsupported image encoding '32FC1'" in captured.err
    assert '3 bag(s) segmented, 0 skipped (already done), 2 failed of 5' in captured.out
    for name in good:                        # message for message, topics and QoS too
        (connections, messages), (expected_connections, expected) = \
            read_bag(out / name), read_bag(reference / name)
        assert connections == expected_connections, name
        assert [m[:2] for m in messages] == [m[:2] for m in expected], name
        differing = [m[:2] for m, e in zip(messages, expected) if m != e]
        assert not differing, (name, differing)
    assert sorted(p.name for p in out.iterdir()) == good + ['segment_bags_manifest.json']
    data = json.loads(report.read_text())
    assert data['bags'] == {'total': 5, 'segmented': 3, 'skipped': 0, 'failed': 2}
    assert data['frames'] == 2 * (3 + 4 + 2)
    assert {Path(f['bag']).name for f in data['failures']} == {'broken.mcap', 'badframe'}
    assert set(data['stage_seconds']) == {'decode', 'inference', 'encode', 'write'}
    assert data['frames_per_s'] > 0 and 'environment' in data
    manifest = json.loads((out / 'segment_bags_manifest.json').read_text())['bags']
    assert len(manifest) == 3
    # a second run skips the finished bags and retries only the failed ones
    before = {name: (out / name / 'metadata.yaml').stat().st_mtime_ns for name in good}
    code = segment_bags(ray_args)
    captured = capsys.readouterr()
    assert code == 1
    assert '0 bag(s) segmented, 3 skipped (already done), 2 failed of 5' in captured.out
    assert {name: (out / name / 'metadata.yaml').stat().st_mtime_ns for name in good} == before
    # other options are another run: the existing output is not skipped but refused
    code = segment_bags(['--input', str(bags / 'day1_sqlite')] + ray_args[2:]
                        + ['--no-overlay'])
    captured = capsys.readouterr()
    assert code == 1 and 'pass --overwrite' in captured.err
    assert '0 bag(s) segmented, 0 skipped (already done), 1 failed of 1' in captured.out


def test_help_and_bad_options_need_no_ray(tmp_path, capsys):
    from lseg_ros.cli.segment_bags import entry as segment_bags
    args = ['--input', str(tmp_path), '--output', str(tmp_path / 'o'), '--checkpoint', 'x',
            '--labels', 'a, b', '-t', '/cam']
    assert segment_bags(args + ['--num-actors', '0']) == 2
    assert '--num-actors must be 1 or more' in capsys.readouterr().err
    assert segment_bags(args + ['--batch-size', '0']) == 2
    assert segment_bags(args + ['--alpha', '2']) == 1


def test_auto_device_on_a_machine_without_gpu_asks_for_no_gpu(monkeypatch):
    """Without a GPU, --device auto must not make the actor wait forever for one."""
    import torch

    from lseg_ros.archive.runner import check_gpus
    from lseg_ros.cli.segment_bags import build_parser, config_from_args
    from lseg_ros.core.errors import LsegError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    base = ['--input', 'x', '--output', 'y', '-t', '/camera/image_raw', '--labels', 'a',
            '--checkpoint', 'c.ckpt']
    config = config_from_args(build_parser().parse_args(base))
    assert config['gpus_per_actor'] == 0.0
    check_gpus({'CPU': 2.0}, config)
    remote = config_from_args(build_parser().parse_args(base + ['--address', 'ray://h:10001']))
    assert remote['gpus_per_actor'] == 0.5          # the cluster's GPUs, not this machine's
    with pytest.raises(LsegError, match='asks for 0.5 GPU.*has 0'):
        check_gpus({'CPU': 2.0}, remote)


def test_default_actors_fill_the_clusters_gpus_two_per_gpu():
    from lseg_ros.archive.runner import resolve_actors
    from lseg_ros.cli.segment_bags import build_parser, config_from_args
    base = ['--input', 'x', '--output', 'y', '-t', '/camera/image_raw', '--labels', 'a',
            '--checkpoint', 'c.ckpt', '--device', 'cuda']
    config = config_from_args(build_parser().parse_args(base))
    assert config['num_actors'] is None and config['gpus_per_actor'] == 0.5
    assert resolve_actors({'GPU': 1.0}, config) == 2
    assert resolve_actors({'GPU': 8.0}, config) == 16
    assert resolve_actors({'GPU': 0.5}, config) == 1
    assert resolve_actors({'GPU': 8.0}, dict(config, num_actors=3)) == 3
    assert resolve_actors({'GPU': 8.0}, dict(config, gpus_per_actor=1.0)) == 8
    assert resolve_actors({'CPU': 4.0}, dict(config, gpus_per_actor=0.0)) == 1
