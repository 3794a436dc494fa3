# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Bag library, make_sample_bag and segment_bag: bags written here, read back with rosbags."""

import json
import os
from pathlib import Path
import shutil

import numpy as np
import pytest

from lseg_ros.cli.sample_bag import entry as make_sample_bag
from lseg_ros.cli.segment_bag import entry as segment_bag
from lseg_ros.formats import bag
from lseg_ros.formats.bag_segmenter import output_prefixes, Progress
from lseg_ros.formats.image_codec import confidence_to_mono8, decode_compressed, decode_image
from lseg_ros.formats.sample_bag import (CAMERA_INFO_TOPIC, COMPRESSED_TOPIC, IMAGE_TOPIC,
                                         write_sample_bag)

H, W = 48, 64
LABELS = 'dog, grass, road, sky'
FRAMES = 3
STORAGES = ('sqlite3', 'mcap')
# sqlite3 bag: bgr8 camera; mcap bag: rgb8 camera (the overlay follows the camera's order)
ENCODING = {'sqlite3': 'bgr8', 'mcap': 'rgb8'}
TOPICS = (IMAGE_TOPIC, COMPRESSED_TOPIC)
OUT = {IMAGE_TOPIC: '/camera/image_raw/lseg',
       COMPRESSED_TOPIC: '/camera/image_raw/compressed/lseg'}


# ----------------------------------------------------------------------------- helpers
def read_all(path):
    """Return ``[(topic, msgtype, bag time, raw bytes, rosbags message)]`` via plain rosbags."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_HUMBLE)
    out = []
    with Reader(path) as reader:
        for connection, timestamp, data in reader.messages():
            out.append((connection.topic, connection.msgtype, timestamp, bytes(data),
                        store.deserialize_cdr(data, connection.msgtype)))
    return out


def type_description(msgtype):
    """Return the rosidl type description file (share/pkg/msg/Name.json) of a type, or None."""
    import importlib
    package, _, name = msgtype.split('/')
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(package)))
    except Exception:  # noqa: B902 - not in the ament index (pip-installed interfaces)
        pass
    module = importlib.import_module(package)
    candidates.append(Path(module.__file__).resolve().parents[4] / 'share' / package)
    for share in candidates:
        if (share / 'msg' / f'{name}.json').is_file():
            return share / 'msg' / f'{name}.json'
    return None


def by_topic(messages, topic):
    return [m for m in messages if m[0] == topic]


def stamp(msg):
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def image_array(msg):
    depth = {'mono8': 1, 'rgb8': 3, 'bgr8': 3}[msg.encoding]
    return np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, depth).squeeze()


def run(argv, capsys):
    """Run segment_bag in-process; return (exit code, stdout, stderr)."""
    code = segment_bag(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def seg_args(src, dst, checkpoint, *extra, topics=TOPICS):
    args = ['--input', str(src), '--output', str(dst), '--checkpoint', checkpoint,
            '--labels', LABELS, '--size', '64', '--device', 'cpu', '--backend', 'torch',
            '--no-progress']
    for topic in topics:
        args += ['--image-topic', topic]
    return args + list(extra)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """Sample bags of both storages: raw + compressed + camera_info, 3 frames of 64x48."""
    root = tmp_path_factory.mktemp('bags')
    paths = {}
    for storage in STORAGES:
        paths[storage] = root / f'in_{storage}'
        counts = write_sample_bag(paths[storage], frames=FRAMES, height=H, width=W,
                                  storage=storage, encoding=ENCODING[storage])
        assert counts == {IMAGE_TOPIC: FRAMES, COMPRESSED_TOPIC: FRAMES,
                          CAMERA_INFO_TOPIC: FRAMES}
    return paths


@pytest.fixture(scope='module')
def segmented(bags, rn_checkpoint, tmp_path_factory):
    """Run segment_bag once per storage (with features and a copied topic); return the paths."""
    root = tmp_path_factory.mktemp('segmented')
    results = {}
    for storage in STORAGES:
        out = root / f'out_{storage}'
        code = segment_bag(seg_args(bags[storage], out, rn_checkpoint, '--features',
                                    '--feature-stride', '2', '--copy-topic', CAMERA_INFO_TOPIC))
        assert code == 0
        results[storage] = out
    return results


@pytest.fixture(scope='module')
def pipeline(rn_checkpoint):
    from lseg_ros.core.pipeline import LsegPipeline
    return LsegPipeline.from_checkpoint(rn_checkpoint, backend='torch', device='cpu',
                                        input_size=64, labels=LABELS)


# ------------------------------------------------------------------------ segment_bag
@pytest.mark.parametrize('storage', STORAGES)
def test_output_has_one_result_per_frame_with_input_stamps(bags, segmented, storage):
    inputs = read_all(bags[storage])
    outputs = read_all(segmented[storage])
    assert (segmented[storage] / 'metadata.yaml').is_file()
    assert bag.storage_of(segmented[storage]) == storage
    for topic in TOPICS:
        frames = by_topic(inputs, topic)
        assert len(frames) == FRAMES
        for name in ('mask', 'confidence', 'overlay', 'features'):
            results = by_topic(outputs, f'{OUT[topic]}/{name}')
            assert len(results) == FRAMES, (topic, name)
            assert [m[2] for m in results] == [m[2] for m in frames]        # bag times
            assert [stamp(m[4]) for m in results] == [stamp(m[4]) for m in frames]
            assert {m[4].header.frame_id for m in results} == {'camera_optical_frame'}
        for m in by_topic(outputs, f'{OUT[topic]}/mask'):
            assert (m[4].encoding, m[4].height, m[4].width, m[4].step) == ('mono8', H, W, W)
            assert int(np.asarray(m[4].data).max()) < 4
        for m in by_topic(outputs, f'{OUT[topic]}/features'):
            assert m[4].encoding == '32FC512'
            grid = np.frombuffer(np.asarray(m[4].data).tobytes(), np.float32).reshape(
                m[4].height, m[4].width, 512)
            np.testing.assert_allclose(np.linalg.norm(grid, axis=2), 1.0, atol=1e-4)
    # stamps differ from bag times in the sample bag, so a swap would be caught
    first = by_topic(inputs, IMAGE_TOPIC)[0]
    assert first[2] != first[4].header.stamp.sec * 10**9 + first[4].header.stamp.nanosec
    # copied topic and the labels
    assert [m[3] for m in by_topic(outputs, CAMERA_INFO_TOPIC)] == \
        [m[3] for m in by_topic(inputs, CAMERA_INFO_TOPIC)]
    (labels,) = by_topic(outputs, '/lseg/labels')
    assert json.loads(labels[4].data) == {'labels': ['dog', 'grass', 'road', 'sky'],
                                          'version': 1, 'embedding_dim': 512}
    assert labels[2] == min(m[2] for m in inputs)      # before the first frame's outputs
    (embeddings,) = by_topic(outputs, '/lseg/text_embeddings')
    assert [d.size for d in embeddings[4].layout.dim] == [4, 512]
    matrix = np.asarray(embeddings[4].data).reshape(4, 512)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize('storage', STORAGES)
def test_masks_equal_the_model_core(bags, segmented, pipeline, storage):
    from lseg_ros.core.pipeline import OutputRequest
    inputs = read_all(bags[storage])
    outputs = read_all(segmented[storage])
    request = OutputRequest(confidence=True, overlay=True)
    for topic in TOPICS:
        masks = by_topic(outputs, f'{OUT[topic]}/mask')
        confidences = by_topic(outputs, f'{OUT[topic]}/confidence')
        overlays = by_topic(outputs, f'{OUT[topic]}/overlay')
        for i, (_, msgtype, _, _, msg) in enumerate(by_topic(inputs, topic)):
            if msgtype == bag.IMAGE:
                rgb = decode_image(msg.encoding, msg.height, msg.width, msg.step,
                                   np.asarray(msg.data).tobytes())
            else:
                rgb = decode_compressed(msg.format, np.asarray(msg.data).tobytes())
            result = pipeline.segment(rgb, request)
            np.testing.assert_array_equal(image_array(masks[i][4]), result.mask)
            np.testing.assert_array_equal(image_array(confidences[i][4]),
                                          confidence_to_mono8(result.confidence))
            overlay = overlays[i][4]
            bgr = ENCODING[storage] == 'bgr8'       # raw encoding, or named in the format
            assert overlay.encoding == ('bgr8' if bgr else 'rgb8')
            expected = result.overlay[:, :, ::-1] if bgr else result.overlay
            np.testing.assert_array_equal(image_array(overlay), expected)


def test_output_messages_are_valid_ros_messages(segmented):
    """Check that rclpy reads the messages and the type hashes are those of ROS."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    outputs = read_all(segmented['mcap'])
    mask = by_topic(outputs, f'{OUT[IMAGE_TOPIC]}/mask')[0]
    ros_mask = deserialize_message(mask[3], Image)
    assert (ros_mask.height, ros_mask.width, ros_mask.encoding) == (H, W, 'mono8')
    assert bytes(ros_mask.data) == np.asarray(mask[4].data).tobytes()
    assert json.loads(deserialize_message(by_topic(outputs, '/lseg/labels')[0][3],
                                          String).data)['labels'][0] == 'dog'
    # the type hashes recorded are those rosidl generates for the installed interfaces
    from rosbags.rosbag2 import Reader
    with Reader(segmented['sqlite3']) as reader:
        digests = {c.msgtype: c.digest for c in reader.connections}
        assert digests[bag.IMAGE].startswith('RIHS01_')
        checked = 0
        for msgtype, digest in digests.items():
            description = type_description(msgtype)
            if description is not None:
                hashes = json.loads(description.read_text())['type_hashes']
                assert digest == next(h['hash_string'] for h in hashes
                                      if h['type_name'] == msgtype)
                checked += 1
    if not checked:
        pytest.skip('no rosidl type descriptions installed to compare with')


def test_deterministic_and_overwrite(bags, segmented, rn_checkpoint, tmp_path, capsys):
    out = tmp_path / 'again'
    shutil.copytree(segmented['sqlite3'], out)
    before = read_all(out)
    # refuses to overwrite, output untouched
    code, _, err = run(seg_args(bags['sqlite3'], out, rn_checkpoint, '--features',
                                '--feature-stride', '2', '--copy-topic', CAMERA_INFO_TOPIC),
                       capsys)
    assert code == 1 and 'exists' in err and '--overwrite' in err
    assert [m[:4] for m in read_all(out)] == [m[:4] for m in before]
    # with --overwrite: the same input gives byte-identical messages
    code, stdout, _ = run(seg_args(bags['sqlite3'], out, rn_checkpoint, '--features',
                                   '--feature-stride', '2', '--copy-topic', CAMERA_INFO_TOPIC,
                                   '--overwrite'), capsys)
    assert code == 0, stdout
    assert 'segmented 6 frame(s)' in stdout
    assert [m[:4] for m in read_all(out)] == [m[:4] for m in before]


def test_options_storage_outputs_and_max_frames(bags, rn_checkpoint, tmp_path, capsys):
    out = tmp_path / 'mcap_from_sqlite'
    code, _, err = run(seg_args(bags['sqlite3'], out, rn_checkpoint, '--storage', 'mcap',
                                '--no-overlay', '--no-confidence', '--max-frames', '2',
                                topics=[COMPRESSED_TOPIC]), capsys)
    assert code == 0, err
    assert bag.storage_of(out) == 'mcap'
    topics = {m[0] for m in read_all(out)}
    assert topics == {'/camera/image_raw/lseg/mask', '/lseg/labels', '/lseg/text_embeddings'}
    assert len(by_topic(read_all(out), '/camera/image_raw/lseg/mask')) == 2


@pytest.mark.parametrize('encoding', ['mono8', '32FC1'])
def test_confidence_encoding_and_labels_as_the_node(bags, pipeline, rn_checkpoint, tmp_path,
                                                    capsys, encoding):
    """--confidence-encoding as the node's confidence_encoding; labels as the node's."""
    from lseg_ros.core.pipeline import OutputRequest
    from lseg_ros.formats.outputs import label_announcement, output_images
    out = tmp_path / encoding
    code, _, err = run(seg_args(bags['sqlite3'], out, rn_checkpoint, '--no-overlay',
                                '--confidence-encoding', encoding, '--max-frames', '1',
                                topics=[IMAGE_TOPIC]), capsys)
    assert code == 0, err
    outputs = read_all(out)
    (_, _, _, _, frame), = by_topic(read_all(bags['sqlite3']), IMAGE_TOPIC)[:1]
    rgb = decode_image(frame.encoding, frame.height, frame.width, frame.step,
                       np.asarray(frame.data).tobytes())
    result = pipeline.segment(rgb, OutputRequest(confidence=True))
    (confidence,) = by_topic(outputs, f'{OUT[IMAGE_TOPIC]}/confidence')
    msg = confidence[4]
    assert msg.encoding == encoding
    if encoding == '32FC1':
        assert msg.step == 4 * W
        got = np.frombuffer(np.asarray(msg.data).tobytes(), np.float32).reshape(H, W)
        np.testing.assert_array_equal(got, result.confidence)
    else:
        np.testing.assert_array_equal(image_array(msg), confidence_to_mono8(result.confidence))
    # the node's output contract, image for image and for the labels
    array, node_encoding = output_images(result, encoding)['confidence']
    assert node_encoding == encoding and np.asarray(msg.data).tobytes() == array.tobytes()
    announcement = label_announcement(pipeline.labels)
    (labels,) = by_topic(outputs, '/lseg/labels')
    assert labels[4].data == announcement.json_text()
    (embeddings,) = by_topic(outputs, '/lseg/text_embeddings')
    np.testing.assert_array_equal(np.asarray(embeddings[4].data, np.float32).reshape(4, 512),
                                  announcement.embeddings)


def test_confidence_encoding_is_checked(bags, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        segment_bag(seg_args(bags['sqlite3'], tmp_path / 'x', 'none.ckpt',
                             '--confidence-encoding', 'mono16'))
    assert exit_.value.code == 2 and '--confidence-encoding' in capsys.readouterr().err


def test_a_folder_of_bags_with_one_command(bags, rn_checkpoint, tmp_path, capsys):
    folder = bags['mcap'].parent                   # holds in_mcap and in_sqlite3
    out = tmp_path / 'segmented'
    code, stdout, err = run(seg_args(folder, out, rn_checkpoint, '--no-overlay',
                                     '--max-frames', '1', topics=[IMAGE_TOPIC]), capsys)
    assert code == 0, err
    assert '[1/2]' in err and '[2/2]' in err
    for storage in STORAGES:
        assert bag.storage_of(out / f'in_{storage}') == storage
        assert len(by_topic(read_all(out / f'in_{storage}'),
                            '/camera/image_raw/lseg/mask')) == 1
    # every input is checked before anything is loaded or written
    (folder.parent / 'mixed').mkdir()
    shutil.copytree(bags['mcap'], folder.parent / 'mixed' / 'good')
    write_sample_bag(folder.parent / 'mixed' / 'other', frames=1, height=H, width=W,
                     raw=False, camera_info=False)
    code, _, err = run(seg_args(folder.parent / 'mixed', tmp_path / 'o2', 'unused.ckpt',
                                topics=[IMAGE_TOPIC]), capsys)
    assert code == 1 and f"topic '{IMAGE_TOPIC}' is not in bag" in err and 'other' in err
    assert not (tmp_path / 'o2').exists()


def test_bad_options_are_refused_before_loading(bags, tmp_path, capsys):
    for extra, text in ((['--alpha', '2'], '--alpha must be within 0..1'),
                        (['--features', '--feature-stride', '0'], '--feature-stride'),
                        (['--max-frames', '-1'], '--max-frames')):
        code, _, err = run(seg_args(bags['mcap'], tmp_path / 'o', 'unused.ckpt', *extra),
                           capsys)
        assert code == 1 and text in err, err
    code, _, err = run(seg_args(bags['mcap'], tmp_path / 'o', 'unused.ckpt',
                                topics=[IMAGE_TOPIC, IMAGE_TOPIC]), capsys)
    assert code == 1 and 'given twice' in err


# ------------------------------------------------------------------------------ errors
def test_missing_topic_lists_the_image_topics(bags, tmp_path, capsys):
    out = tmp_path / 'out'
    code, _, err = run(seg_args(bags['mcap'], out, 'unused.ckpt', topics=['/camera/nope']),
                       capsys)
    assert code == 1
    assert "topic '/camera/nope' is not in bag" in err
    assert f'{IMAGE_TOPIC}, {COMPRESSED_TOPIC}' in err
    assert not out.exists()


def test_non_image_topic_is_refused(bags, tmp_path, capsys):
    code, _, err = run(seg_args(bags['mcap'], tmp_path / 'o', 'unused.ckpt',
                                topics=[CAMERA_INFO_TOPIC]), capsys)
    assert code == 1 and 'sensor_msgs/msg/CameraInfo' in err and 'expected' in err
    code, _, err = run(seg_args(bags['mcap'], tmp_path / 'o', 'unused.ckpt', '--copy-topic',
                                '/tf'), capsys)
    assert code == 1 and "--copy-topic '/tf' is not in bag" in err


def test_output_must_not_replace_input_or_other_files(bags, tmp_path, capsys):
    code, _, err = run(seg_args(bags['mcap'], bags['mcap'], 'unused.ckpt', '--overwrite'),
                       capsys)
    assert code == 1 and 'would overwrite the input bag' in err
    assert (bags['mcap'] / 'metadata.yaml').is_file()
    precious = tmp_path / 'home'
    precious.mkdir()
    (precious / 'notes.txt').write_text('keep me')
    code, _, err = run(seg_args(bags['mcap'], precious, 'unused.ckpt', '--overwrite'), capsys)
    assert code == 1 and 'not a rosbag2 bag directory' in err
    assert (precious / 'notes.txt').read_text() == 'keep me'


def test_output_inside_the_input_or_unwritable_is_refused_before_loading(
        bags, tmp_path, capsys):
    src = bags['mcap']
    for extra in ([], ['--overwrite']):
        code, _, err = run(seg_args(src, src / 'out', 'unused.ckpt', *extra), capsys)
        assert code == 1 and f'output {src / "out"} is inside the input bag {src}' in err
        assert not (src / 'out').exists()
    code, _, err = run(seg_args(src, src.parent, 'unused.ckpt', '--overwrite'), capsys)
    assert code == 1 and 'would overwrite the input bag' in err
    # an output folder that cannot be written: reported before the model loads (the
    # checkpoint does not exist, so a later check would have said so instead)
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    targets = [blocker / 'out']
    if Path('/sys').is_dir():
        targets.append(Path('/sys/lseg_ros_test/out'))         # read-only even for root
    if os.geteuid() != 0:
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o500)
        targets.append(locked / 'out')
    for target in targets:
        code, _, err = run(seg_args(src, target, 'unused.ckpt'), capsys)
        assert code == 1 and f'cannot write {target}' in err, err
        assert 'checkpoint' not in err and len(err.strip().splitlines()) == 1


def test_integer_image_tensor_is_one_line_naming_it(bags, rn_checkpoint, tmp_path, capsys):
    import torch
    from lseg_ros.core.model.checkpoint import read_state_dict
    key = 'scratch.layer4_rn.weight'
    state = {'net.' + k: (v.to(torch.int64) if k == key else v)
             for k, v in read_state_dict(rn_checkpoint).items()}
    broken = tmp_path / 'int64.ckpt'
    torch.save({'state_dict': state}, broken)
    del state
    try:
        code, _, err = run(seg_args(bags['mcap'], tmp_path / 'out', str(broken)), capsys)
    finally:
        broken.unlink()
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f'tensor {key} has dtype int64, the official layout has float32' in err
    assert not (tmp_path / 'out').exists()


def write_bag_with_bad_frame(path):
    """Two good rgb8 frames, one 32FC1 frame, one good frame (sqlite3)."""
    from lseg_ros.core.samples import sample_frame
    with bag.BagWriter(path, 'sqlite3') as writer:
        writer.add_topic('/cam/image', bag.IMAGE)
        for i in range(4):
            header = bag.make_header((10 + i, 0), 'cam')
            if i == 2:
                msg = bag.image_message(np.zeros((H, W), np.float32), '32FC1', header)
            else:
                msg = bag.image_message(sample_frame(i, H, W), 'rgb8', header)
            writer.write('/cam/image', (10 + i) * 10**9, msg)


def test_unsupported_encoding_stops_with_a_clear_error_and_keeps_a_valid_bag(
        rn_checkpoint, tmp_path, capsys):
    src = tmp_path / 'bad'
    write_bag_with_bad_frame(src)
    out = tmp_path / 'out'
    code, _, err = run(seg_args(src, out, rn_checkpoint, '--no-overlay',
                                topics=['/cam/image']), capsys)
    assert code == 1
    assert "unsupported image encoding '32FC1'" in err
    assert '/cam/image frame 2' in err and 'the 2 frame(s) segmented before it are kept' in err
    assert 'Traceback' not in err
    masks = by_topic(read_all(out), '/cam/image/lseg/mask')       # closed, readable
    assert [stamp(m[4]) for m in masks] == [(10, 0), (11, 0)]
    # --skip-bad-frames: warn, count, go on
    code, stdout, err = run(seg_args(src, tmp_path / 'skip', rn_checkpoint, '--no-overlay',
                                     '--skip-bad-frames', topics=['/cam/image']), capsys)
    assert code == 0 and '1 undecodable frame(s) skipped' in stdout
    masks = by_topic(read_all(tmp_path / 'skip'), '/cam/image/lseg/mask')
    assert [stamp(m[4]) for m in masks] == [(10, 0), (11, 0), (13, 0)]


def test_frames_above_the_pixel_limit_are_refused_and_counted(rn_checkpoint, tmp_path, capsys):
    from lseg_ros.formats.image_codec import encode_compressed
    from lseg_ros.core.samples import sample_frame
    src = tmp_path / 'bomb'
    with bag.BagWriter(src, 'mcap') as writer:
        writer.add_topic('/cam/compressed', bag.COMPRESSED_IMAGE)
        for i in range(3):
            data = encode_compressed(sample_frame(i, H, W), 'png')
            if i == 1:                      # IHDR declares 20000 x 20000 (CRC not needed)
                data = data[:16] + (20000).to_bytes(4, 'big') * 2 + data[24:]
            writer.write('/cam/compressed', (10 + i) * 10**9,
                         bag.compressed_message(data, 'png', bag.make_header((10 + i, 0), 'c')))
    code, _, err = run(seg_args(src, tmp_path / 'out', rn_checkpoint, '--no-overlay',
                                topics=['/cam/compressed']), capsys)
    assert code == 1
    assert '/cam/compressed frame 1' in err and '20000x20000' in err
    assert '--max-input-pixels' in err and 'the 1 frame(s) segmented before it are kept' in err
    code, stdout, err = run(seg_args(src, tmp_path / 'skip', rn_checkpoint, '--no-overlay',
                                     '--skip-bad-frames', topics=['/cam/compressed']), capsys)
    assert code == 0, err
    assert '2 frame(s) -> /cam/lseg/*' in stdout
    assert f'1 frame(s) above --max-input-pixels {4096 * 4096} skipped' in stdout
    # a raised limit lets a frame through (here: still corrupt, so it is undecodable)
    code, stdout, _ = run(seg_args(src, tmp_path / 'all', rn_checkpoint, '--no-overlay',
                                   '--skip-bad-frames', '--max-input-pixels', '0',
                                   topics=['/cam/compressed']), capsys)
    assert code == 0 and '1 undecodable frame(s) skipped' in stdout
    code, _, err = run(seg_args(src, tmp_path / 'x', 'unused.ckpt', '--max-input-pixels', '-1',
                                topics=['/cam/compressed']), capsys)
    assert code == 1 and '--max-input-pixels must be 0' in err


def test_truncated_mcap_is_segmented_up_to_the_damage(rn_checkpoint, tmp_path, capsys):
    # 320x240 raw frames (230 kB) fill several 1 MB chunks; cut the file inside the last one
    src = tmp_path / 'cut'
    write_sample_bag(src, frames=10, height=240, width=320, compressed=False,
                     camera_info=False, storage='mcap')
    data_file = src / 'cut.mcap'
    data = data_file.read_bytes()
    data_file.write_bytes(data[:int(len(data) * 0.75)])
    with bag.BagReader(src) as reader:
        assert reader.truncated and 'truncated' in reader.truncated
        readable = reader.topics[IMAGE_TOPIC].count
    assert 0 < readable < 10
    out = tmp_path / 'out'
    code, _, err = run(seg_args(src, out, rn_checkpoint, '--no-overlay', '--no-confidence',
                                topics=[IMAGE_TOPIC]), capsys)
    assert code == 1
    assert 'is truncated' in err and f'the {readable} frame(s) segmented before it' in err
    assert 'Traceback' not in err
    assert len(by_topic(read_all(out), '/camera/image_raw/lseg/mask')) == readable


def test_truncated_sqlite_and_garbage_files_give_clear_errors(bags, tmp_path, capsys):
    src = tmp_path / 'cut_db'
    shutil.copytree(bags['sqlite3'], src)
    (db,) = src.glob('*.db3')
    db.write_bytes(db.read_bytes()[:db.stat().st_size // 2])
    code, _, err = run(seg_args(src, tmp_path / 'o1', 'unused.ckpt'), capsys)
    assert code == 1 and 'corrupt or truncated' in err and 'Traceback' not in err
    assert not (tmp_path / 'o1').exists()
    junk = tmp_path / 'junk.mcap'
    junk.write_bytes(b'this is not a bag' * 100)
    code, _, err = run(seg_args(junk, tmp_path / 'o2', 'unused.ckpt'), capsys)
    assert code == 1 and 'not an MCAP file' in err
    code, _, err = run(seg_args(tmp_path / 'nothing', tmp_path / 'o3', 'unused.ckpt'), capsys)
    assert code == 1 and 'input bag not found' in err


@pytest.mark.parametrize('storage', STORAGES)
def test_sigterm_stops_and_keeps_a_readable_bag(rn_checkpoint, tmp_path, storage):
    """SIGTERM is handled like Ctrl-C: exit 143, the frames written so far stay readable."""
    import signal
    import subprocess
    import sys
    frames = 200
    src = tmp_path / 'long'
    write_sample_bag(src, frames=frames, height=H, width=W, compressed=False,
                     camera_info=False, storage=storage)
    out = tmp_path / 'out'
    args = [a for a in seg_args(src, out, rn_checkpoint, topics=[IMAGE_TOPIC])
            if a != '--no-progress']
    process = subprocess.Popen([sys.executable, '-m', 'lseg_ros.cli.segment_bag'] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stderr:               # the progress line comes after frame 1
            lines.append(line)
            if f'/{frames} frames' in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=120)
    finally:
        process.kill()
    err = ''.join(lines) + rest
    assert process.returncode == 143, err
    assert 'Traceback' not in err
    kept = int(err.split('interrupted (SIGTERM); ')[1].split(' frame(s) kept')[0])
    assert 1 <= kept < frames, err
    messages = read_all(out)                      # plain rosbags reads it: index, metadata
    assert bag.storage_of(out) == storage
    for suffix in ('mask', 'confidence', 'overlay'):
        assert len(by_topic(messages, f'/camera/image_raw/lseg/{suffix}')) == kept
    assert len(by_topic(messages, '/lseg/labels')) == 1


# ---------------------------------------------------------------------- bag library
def test_reader_lists_topics_and_decodes_frames(bags):
    with bag.BagReader(bags['mcap']) as reader:
        assert reader.storage == 'mcap'
        assert reader.image_topics == [IMAGE_TOPIC, COMPRESSED_TOPIC]
        assert reader.topics[IMAGE_TOPIC].count == FRAMES
        frames = list(reader.frames([IMAGE_TOPIC, COMPRESSED_TOPIC]))
    assert [f.index for f in frames if f.topic == IMAGE_TOPIC] == list(range(FRAMES))
    assert all(f.rgb.shape == (H, W, 3) and f.rgb.flags.writeable for f in frames)
    times = [f.timestamp for f in frames]
    assert times == sorted(times)
    raw = [f for f in frames if not f.compressed]
    sec, nanosec = raw[0].stamp                  # header stamp, 4 ms before bag time
    assert sec * 10**9 + nanosec + 4_000_000 == raw[0].timestamp


def test_read_image_frames_for_the_bench(bags):
    frames = bag.read_image_frames(bags['sqlite3'], COMPRESSED_TOPIC, count=2)
    assert len(frames) == 2 and frames[0].shape == (H, W, 3)
    with pytest.raises(bag.BagTopicError, match='has 2 image topics'):
        bag.read_image_frames(bags['sqlite3'])


def test_directory_without_metadata_is_read_through_its_storage_file(bags, tmp_path):
    copy = tmp_path / 'interrupted'
    shutil.copytree(bags['sqlite3'], copy)
    (copy / 'metadata.yaml').unlink()
    with bag.BagReader(copy) as reader:
        assert len(list(reader.messages([IMAGE_TOPIC]))) == FRAMES
    (single,) = copy.glob('*.db3')
    with bag.BagReader(single) as reader:         # a bare storage file works as well
        assert reader.topics[COMPRESSED_TOPIC].count == FRAMES


def test_bag_tools_work_without_ros(tmp_path):
    """bag.py, make_sample_bag and segment_bag import and run with no ROS 2 installed."""
    import subprocess
    import sys
    code = (
        'import sys\n'
        "for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'rosgraph_msgs'):\n"
        '    sys.modules[name] = None\n'
        'from lseg_ros.formats import bag, sample_bag\n'
        'import lseg_ros.cli.segment_bag\n'
        f'sample_bag.write_sample_bag({str(tmp_path / "b")!r}, frames=1, height=8, width=8)\n'
        f'print(len(bag.read_image_frames({str(tmp_path / "b")!r}, {IMAGE_TOPIC!r})))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '1'


def test_overlay_encoding_follows_the_camera():
    assert not bag.source_is_bgr(bag.IMAGE, 'rgb8')
    assert bag.source_is_bgr(bag.IMAGE, 'bgra8')
    assert bag.source_is_bgr(bag.COMPRESSED_IMAGE, 'bgr8; jpeg compressed bgr8')
    assert not bag.source_is_bgr(bag.COMPRESSED_IMAGE, 'rgb8; jpeg compressed bgr8')
    assert bag.source_is_bgr(bag.COMPRESSED_IMAGE, 'jpeg')


def test_output_topic_names():
    assert output_prefixes(['/cam/image_raw/compressed']) == {
        '/cam/image_raw/compressed': '/cam/image_raw/lseg'}
    both = output_prefixes(['/cam/image_raw', '/cam/image_raw/compressed'])
    assert both == {'/cam/image_raw': '/cam/image_raw/lseg',
                    '/cam/image_raw/compressed': '/cam/image_raw/compressed/lseg'}


def test_progress_line():
    class Stream:
        text = ''

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    progress = Progress(10, stream=Stream())
    assert progress.stream.text == ''             # nothing before the first frame
    progress.update(5)
    assert progress.line().startswith('[############............] 5/10 frames  50.0 %')
    assert 'frames/s' in progress.line() and 'ETA' in progress.line()
    assert progress.stream.text.startswith('segment_bag: [###')     # at once, one line
    progress.update(1)                           # then every 10 s only
    assert progress.stream.text.count('\n') == 1
    progress.finish()
    assert progress.stream.text.splitlines()[-1].startswith(
        'segment_bag: [##############..........] 6/10 frames')
    unknown = Progress(0, stream=Stream())
    unknown.update(3)
    assert unknown.line().startswith('3 frames ') and 'frames/s' in unknown.line()

    class Terminal(Stream):
        def isatty(self):
            return True

    drawn = Progress(4, stream=Terminal())       # a terminal: tqdm redraws the line in place
    for _ in range(4):
        drawn.update()
    drawn.finish()
    assert '\r[########################] 4/4 frames 100.0 %' in drawn.stream.text
    assert drawn.stream.text.endswith('\n') and 'segment_bag: ' not in drawn.stream.text
    silent = Progress(4, stream=Terminal(), enabled=False)
    silent.update(4)
    silent.finish()
    assert silent.stream.text == ''


def test_make_sample_bag_cli_is_deterministic(tmp_path, capsys):
    argv = ['--frames', '2', '--size', '24x32', '--storage', 'mcap', '--no-camera-info']
    assert make_sample_bag(['--output', str(tmp_path / 'a')] + argv) == 0
    assert make_sample_bag(['--output', str(tmp_path / 'b')] + argv) == 0
    assert 'sensor_msgs/msg/CompressedImage' in capsys.readouterr().out
    first, second = read_all(tmp_path / 'a'), read_all(tmp_path / 'b')
    assert [m[:4] for m in first] == [m[:4] for m in second]
    assert {m[0] for m in first} == {IMAGE_TOPIC, COMPRESSED_TOPIC}
    assert make_sample_bag(['--output', str(tmp_path / 'a')] + argv) == 1     # exists
    assert make_sample_bag(['--output', str(tmp_path / 'c'), '--size', 'big']) == 1
