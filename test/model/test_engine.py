# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Engine building logic: shapes, precision rules, metadata sidecar, cache key, errors.

TensorRT is not installed in CI: :mod:`test_engine_fakes` provides a test double of the API
calls, so these tests check lseg_ros's own logic (flags chosen, profiles passed, sidecar
content, rebuild decisions, error messages), not TensorRT.  ``test_real_tensorrt_rtx_build``
runs the real TensorRT-RTX builder when ``tensorrt_rtx`` is importable (it builds without a
GPU) and is skipped otherwise.
"""

import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys

from onnx import TensorProto
import pytest

from lseg_ros.core.backends.artifacts import (cache_key, check_metadata, engine_validity,
                                              EngineBuildError, import_tensorrt, onnx_sha256,
                                              read_metadata, sidecar_path)
from lseg_ros.core.errors import EngineMismatchError
from lseg_ros.deploy.engine_build import (build_engine, BuildOptions, choose_precision,
                                          complete_shape, engine_identity, parse_shape,
                                          resolve_profiles)
from support.onnx_models import tiny_onnx
from support.trt_fake import make_fake_trt

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fp32_onnx(tmp_path):
    return tiny_onnx(tmp_path / 'tiny.onnx')


@pytest.fixture
def fp16_onnx(tmp_path):
    return tiny_onnx(tmp_path / 'tiny16.onnx', TensorProto.FLOAT16)


def dynamic_options(**kwargs):
    return BuildOptions(min_shapes={'': '64x64'}, opt_shapes={'': '128x128'},
                        max_shapes={'': '256x256'}, **kwargs)


# ------------------------------------------------------------------------------- shapes
def test_parse_shape():
    assert parse_shape('480x640') == (None, (480, 640))
    assert parse_shape('image:1x3x480x640') == ('image', (1, 3, 480, 640))
    for bad in ('', 'axb', '0x32', '-1x32'):
        with pytest.raises(EngineBuildError):
            parse_shape(bad)


def test_complete_shape_fills_dynamic_then_trailing_dims():
    assert complete_shape('image', (1, 3, -1, -1), (480, 640)) == (1, 3, 480, 640)
    assert complete_shape('tokens', (-1, 77), (8,)) == (8, 77)
    assert complete_shape('image', (1, 3, 64, 64), (64, 64)) == (1, 3, 64, 64)
    assert complete_shape('image', (1, 3, -1, -1), (1, 3, 32, 64)) == (1, 3, 32, 64)
    with pytest.raises(EngineBuildError, match='fixed at 3'):
        complete_shape('image', (1, 3, -1, -1), (1, 4, 32, 32))
    with pytest.raises(EngineBuildError, match='dynamic'):
        complete_shape('image', (1, -1, -1, -1), (32, 32))


def test_resolve_profiles_rules():
    inputs = [('image', (1, 3, -1, -1))]
    profiles = resolve_profiles(inputs, dynamic_options())
    assert profiles == {'image': {'min': [1, 3, 64, 64], 'opt': [1, 3, 128, 128],
                                  'max': [1, 3, 256, 256]}}
    static = resolve_profiles(inputs, BuildOptions(opt_shapes={'': '480x640'}))
    assert static['image']['min'] == static['image']['max'] == [1, 3, 480, 640]
    with pytest.raises(EngineBuildError, match='--opt-shape'):
        resolve_profiles(inputs, BuildOptions())
    with pytest.raises(EngineBuildError, match='multiples of 32'):
        resolve_profiles(inputs, BuildOptions(opt_shapes={'': '100x100'}))
    with pytest.raises(EngineBuildError, match='min <= opt <= max'):
        resolve_profiles(inputs, BuildOptions(min_shapes={'': '256x256'},
                                              opt_shapes={'': '128x128'}))
    with pytest.raises(EngineBuildError, match="inputs are \\['image'\\]"):
        resolve_profiles(inputs, BuildOptions(opt_shapes={'': 'other:1x3x64x64'}))
    two = [('a', (-1, 4)), ('b', (-1, 4))]
    with pytest.raises(EngineBuildError, match='prefix'):
        resolve_profiles(two, BuildOptions(opt_shapes={'': '2'}))


# ---------------------------------------------------------------------------- precision
def test_precision_follows_the_graph_and_fp16_flag_is_only_a_trt10_fallback():
    trt10, trt11, rtx = make_fake_trt('trt10'), make_fake_trt('trt11'), make_fake_trt('rtx')
    for trt in (trt10, trt11, rtx):
        assert choose_precision('auto', 'fp16', trt) == ('fp16', True)
        assert choose_precision('auto', 'fp32', trt) == ('fp32', True)
        with pytest.raises(EngineBuildError, match='fp32 ONNX'):
            choose_precision('fp32', 'fp16', trt)
    assert choose_precision('fp16', 'fp32', trt10) == ('fp16', False)
    for trt in (trt11, rtx):
        with pytest.raises(EngineBuildError, match='strongly typed'):
            choose_precision('fp16', 'fp32', trt)


# ------------------------------------------------------------------------------ identity
def test_cache_key_changes_with_every_identity_field(fp32_onnx):
    trt = make_fake_trt('trt10')
    gpu = {'name': 'Orin', 'compute_capability': '8.7'}
    profiles = {'image': {'min': [1, 3, 64, 64], 'opt': [1, 3, 64, 64], 'max': [1, 3, 64, 64]}}
    base = engine_identity('a' * 64, trt, gpu, 'fp16', True, profiles, BuildOptions())
    key = cache_key(base)
    assert key == cache_key(json.loads(json.dumps(base)))
    variations = {
        'onnx_sha256': 'b' * 64, 'trt_version': '10.4.0', 'trt_module': 'tensorrt_rtx',
        'gpu': {'name': 'Orin', 'compute_capability': '8.9'}, 'precision': 'fp32',
        'strongly_typed': False, 'tf32': True, 'workspace_mib': 1024,
        'optimization_level': 5,
        'profiles': {'image': {'min': [1, 3, 64, 64], 'opt': [1, 3, 96, 96],
                               'max': [1, 3, 128, 128]}},
    }
    for field, value in variations.items():
        assert cache_key(dict(base, **{field: value})) != key, field
    rtx = engine_identity('a' * 64, make_fake_trt('rtx'), gpu, 'fp16', True, profiles,
                          BuildOptions(compute_capabilities=['SM89']))
    assert rtx['gpu'] is None and rtx['rtx_targets'] == ['SM89']


def test_onnx_sha256_covers_external_data(tmp_path):
    path = tiny_onnx(tmp_path / 'ext.onnx', external=True)
    first = onnx_sha256(path)
    data = tmp_path / 'ext.onnx.data'
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0xFF
    data.write_bytes(bytes(raw))
    assert onnx_sha256(path) != first
    data.unlink()
    with pytest.raises(EngineBuildError, match='missing'):
        onnx_sha256(path)


# --------------------------------------------------------------------------------- build
def test_build_writes_engine_and_sidecar_and_skips_when_up_to_date(fp16_onnx, tmp_path):
    trt = make_fake_trt('trt10')
    engine = str(tmp_path / 'out' / 'm.engine')
    cache = str(tmp_path / 'timing.cache')
    result = build_engine(fp16_onnx, engine, dynamic_options(timing_cache=cache,
                                                             workspace_mib=512), trt=trt)
    assert result.built and os.path.isfile(engine) and os.path.isfile(engine + '.json')
    meta = read_metadata(engine)
    identity = meta['identity']
    assert identity['onnx_sha256'] == onnx_sha256(fp16_onnx)
    assert identity['trt_module'] == 'tensorrt' and identity['trt_version'] == '10.3.0.26'
    assert identity['precision'] == 'fp16' and identity['strongly_typed'] is True
    assert identity['profiles']['image']['max'] == [1, 3, 256, 256]
    assert meta['io']['inputs'] == [{'name': 'image', 'shape': [1, 3, -1, -1],
                                     'dtype': 'FLOAT'}]
    assert meta['cache_key'] == cache_key(identity)
    # strongly typed network, no FP16 flag, workspace set, profile passed, cache written
    assert trt.network_flags == 1 << 5
    assert 'FP16' not in trt.config.flags
    assert trt.config.pool_limits == {'WORKSPACE': 512 << 20}
    assert trt.config.profiles[0].shapes['image'][1] == [1, 3, 128, 128]
    assert Path(cache).read_bytes() == b'+entry'
    # up to date: no second build
    again = build_engine(fp16_onnx, engine, dynamic_options(timing_cache=cache,
                                                            workspace_mib=512), trt=trt)
    assert not again.built and trt.calls['build'] == 1
    # any identity change rebuilds; so does --force and a modified engine file
    changed = build_engine(fp16_onnx, engine, dynamic_options(workspace_mib=256), trt=trt)
    assert changed.built and 'workspace_mib' in changed.reason
    assert build_engine(fp16_onnx, engine, dynamic_options(workspace_mib=256), trt=trt,
                        force=True).built
    with open(engine, 'ab') as handle:
        handle.write(b'tampered')
    assert build_engine(fp16_onnx, engine, dynamic_options(workspace_mib=256), trt=trt).built
    assert trt.calls['build'] == 4
    newer = make_fake_trt('trt10', version='10.4.0.1')
    rebuilt = build_engine(fp16_onnx, engine, dynamic_options(workspace_mib=256), trt=newer)
    assert rebuilt.built and 'trt_version' in rebuilt.reason


def test_fp32_engine_clears_tf32_unless_asked(fp32_onnx, tmp_path):
    trt = make_fake_trt('trt11')
    build_engine(fp32_onnx, str(tmp_path / 'a.engine'), dynamic_options(), trt=trt)
    assert 'TF32' not in trt.config.flags
    build_engine(fp32_onnx, str(tmp_path / 'b.engine'), dynamic_options(tf32=True), trt=trt)
    assert 'TF32' in trt.config.flags
    assert read_metadata(str(tmp_path / 'b.engine'))['identity']['tf32'] is True


def test_trt10_weak_typing_fallback_sets_fp16_flag(fp32_onnx, tmp_path):
    trt = make_fake_trt('trt10')
    result = build_engine(fp32_onnx, str(tmp_path / 'w.engine'),
                          dynamic_options(precision='fp16'), trt=trt)
    assert trt.network_flags == 0 and 'FP16' in trt.config.flags
    assert result.metadata['identity']['strongly_typed'] is False
    with pytest.raises(EngineBuildError, match='strongly typed'):
        build_engine(fp32_onnx, str(tmp_path / 'x.engine'), dynamic_options(precision='fp16'),
                     trt=make_fake_trt('trt11'))


def test_rtx_targets_and_no_timing_cache(fp16_onnx, tmp_path):
    trt = make_fake_trt('rtx')
    cache = tmp_path / 'rtx.cache'
    result = build_engine(fp16_onnx, str(tmp_path / 'r.engine'),
                          dynamic_options(compute_capabilities=['SM89', 'SM120'],
                                          timing_cache=str(cache)), trt=trt)
    assert trt.config.num_compute_capabilities == 2
    assert trt.config.capabilities == {0: 'SM89', 1: 'SM120'}
    assert result.metadata['identity']['rtx_targets'] == ['SM89', 'SM120']
    assert not cache.exists()
    with pytest.raises(EngineBuildError, match='unknown compute capability'):
        build_engine(fp16_onnx, str(tmp_path / 's.engine'),
                     dynamic_options(compute_capabilities=['SM90']), trt=trt)
    with pytest.raises(EngineBuildError, match='TensorRT-RTX option'):
        build_engine(fp16_onnx, str(tmp_path / 't.engine'),
                     dynamic_options(compute_capabilities=['SM89']), trt=make_fake_trt())
    trt.validity_bits = 2
    with open(result.engine, 'rb') as handle:
        assert engine_validity(trt, handle.read()) == {
            'validity': 'INVALID', 'diagnostics': ['UNSUPPORTED_CC'], 'diagnostics_bits': 2}


def test_every_parser_error_is_listed(fp32_onnx, tmp_path):
    trt = make_fake_trt()
    trt.parser_errors = [(4, '/blocks.0/attn/Foo', 'Foo', 'no importer for Foo'),
                         (9, '/head/Bar', 'Bar', 'unsupported attribute')]
    with pytest.raises(EngineBuildError) as info:
        build_engine(fp32_onnx, str(tmp_path / 'p.engine'), dynamic_options(), trt=trt)
    text = str(info.value)
    assert '2 error(s)' in text
    assert 'node #4' in text and '/blocks.0/attn/Foo' in text and 'no importer for Foo' in text
    assert 'node #9' in text and 'unsupported attribute' in text and 'UNSUPPORTED_NODE' in text
    assert not (tmp_path / 'p.engine').exists()


def test_build_failure_and_bad_inputs(fp32_onnx, tmp_path):
    trt = make_fake_trt()
    trt.fail_build = True
    with pytest.raises(EngineBuildError, match='fake build failure'):
        build_engine(fp32_onnx, str(tmp_path / 'f.engine'), dynamic_options(), trt=trt)
    with pytest.raises(EngineBuildError, match='not found'):
        build_engine(str(tmp_path / 'missing.onnx'), str(tmp_path / 'f.engine'), trt=trt)
    with pytest.raises(EngineBuildError, match='optimization level'):
        build_engine(fp32_onnx, str(tmp_path / 'f.engine'),
                     dynamic_options(optimization_level=7), trt=make_fake_trt())


# -------------------------------------------------------------------------- load checks
def test_check_metadata_reports_each_mismatch(fp16_onnx, tmp_path):
    trt = make_fake_trt('trt10')
    engine = str(tmp_path / 'm.engine')
    meta = build_engine(fp16_onnx, engine, dynamic_options(), trt=trt).metadata
    meta['identity']['gpu'] = {'name': 'Orin', 'compute_capability': '8.7'}
    same_gpu = {'name': 'Orin', 'compute_capability': '8.7'}
    assert check_metadata(meta, trt, same_gpu, 'fp16', onnx_sha256(fp16_onnx)) == []
    problems = check_metadata(meta, make_fake_trt('trt10', version='10.7.0'),
                              {'name': 'RTX 4090', 'compute_capability': '8.9'}, 'fp32',
                              'f' * 64)
    text = ' | '.join(problems)
    assert len(problems) == 4
    assert '10.3.0.26' in text and '10.7.0' in text
    assert 'compute capability 8.7' in text and '8.9' in text
    assert 'precision is fp16, requested fp32' in text
    assert 'ONNX file changed' in text
    assert check_metadata(meta, make_fake_trt('rtx'), same_gpu)[0].startswith(
        'built with tensorrt, loading with tensorrt_rtx')


def test_metadata_missing_or_corrupt(tmp_path):
    engine = tmp_path / 'x.engine'
    engine.write_bytes(b'plan')
    with pytest.raises(EngineMismatchError, match='no metadata'):
        read_metadata(str(engine))
    Path(sidecar_path(str(engine))).write_text('{not json')
    with pytest.raises(EngineMismatchError, match='cannot read'):
        read_metadata(str(engine))


def test_import_tensorrt_errors(monkeypatch):
    with pytest.raises(EngineBuildError, match='unknown TensorRT module'):
        import_tensorrt('tensorrt_llm')
    monkeypatch.setitem(sys.modules, 'tensorrt', None)
    monkeypatch.setitem(sys.modules, 'tensorrt_rtx', None)
    with pytest.raises(EngineBuildError, match='TensorRT is not installed'):
        import_tensorrt()


# ------------------------------------------------------------------------------------ CLI
def run_tool(args, cwd):
    env = dict(os.environ)
    return subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_engine.py')] + args,
                          capture_output=True, text=True, cwd=cwd, env=env)


def test_build_engine_cli_errors(fp32_onnx, tmp_path):
    out = run_tool(['--onnx', fp32_onnx], tmp_path)
    assert out.returncode == 2 and '--output' in out.stderr
    out = run_tool(['--onnx', fp32_onnx, '--output', str(tmp_path / 'e.engine'),
                    '--opt-shape', '64x64', '--opt-shape', '96x96'], tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith('build_engine: error: --opt-shape')
    if importlib.util.find_spec('tensorrt') is None and \
            importlib.util.find_spec('tensorrt_rtx') is None:
        out = run_tool(['--onnx', fp32_onnx, '--output', str(tmp_path / 'e.engine'),
                        '--opt-shape', '64x64'], tmp_path)
        assert out.returncode == 1
        assert out.stderr.strip().splitlines()[-1].startswith(
            'build_engine: error: TensorRT is not installed')


# --------------------------------------------------------------------- real TensorRT-RTX
@pytest.mark.skipif(importlib.util.find_spec('tensorrt_rtx') is None,
                    reason='tensorrt_rtx is not installed')
def test_real_tensorrt_rtx_build(fp16_onnx, tmp_path):
    trt = import_tensorrt('tensorrt_rtx')
    engine = str(tmp_path / 'rtx.engine')
    result = build_engine(fp16_onnx, engine, dynamic_options(), trt=trt)
    assert result.built and result.metadata['identity']['trt_module'] == 'tensorrt_rtx'
    assert os.path.getsize(engine) == result.metadata['engine_bytes']
    with open(engine, 'rb') as handle:
        validity = engine_validity(trt, handle.read())
    assert validity['validity'] in ('VALID', 'SUBOPTIMAL', 'INVALID')
