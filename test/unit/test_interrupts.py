# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Interruptions: SIGTERM like Ctrl-C (exit 143 / 130), outputs that appear only complete."""

import argparse
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

from lseg_ros.cli.common import run_main
from lseg_ros.core.interrupts import deferred, handle_signals, staged_path, Terminated
from lseg_ros.formats import bag
from lseg_ros.formats.sample_bag import write_sample_bag


def leftovers(directory: Path):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith('.partial'))


def test_staged_file_appears_only_when_complete(tmp_path):
    target = tmp_path / 'sub' / 'report.json'
    with staged_path(target, companions=('.data',)) as staged:
        assert Path(staged).name == 'report.json' and not target.exists()
        Path(staged).write_text('new')
        Path(staged + '.data').write_text('weights')
    assert target.read_text() == 'new' and Path(str(target) + '.data').read_text() == 'weights'
    for error in (KeyboardInterrupt, Terminated, RuntimeError):
        with pytest.raises(error):
            with staged_path(target) as staged:
                Path(staged).write_text('half')
                raise error()
        assert target.read_text() == 'new'
        assert leftovers(target.parent) == []


def test_staged_directory_replaces_the_old_one_as_a_whole(tmp_path):
    target = tmp_path / 'bag'
    target.mkdir()
    (target / 'old.db3').write_text('old')
    with staged_path(target) as staged:
        os.mkdir(staged)
        Path(staged, 'new.db3').write_text('new')
    assert sorted(p.name for p in target.iterdir()) == ['new.db3']
    assert leftovers(tmp_path) == []


def test_deferred_holds_signals_until_the_block_ends():
    reached = []
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with handle_signals():
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                reached.append('end of block')
            reached.append('after the block')
    assert reached == ['end of block']
    assert signal.getsignal(signal.SIGTERM) is before                # restored


@pytest.mark.parametrize('number, code, name', [(signal.SIGTERM, 143, 'SIGTERM'),
                                                (signal.SIGINT, 130, 'SIGINT')])
def test_run_main_exit_codes(number, code, name, capsys):
    # a shell starts background jobs with SIGINT ignored, which run_main rightly keeps
    before = signal.signal(number, signal.SIG_DFL if number == signal.SIGTERM
                           else signal.default_int_handler)

    def main(args):
        os.kill(os.getpid(), number)
        time.sleep(5)
        return 0

    try:
        assert run_main(main, argparse.ArgumentParser(prog='tool'), []) == code
    finally:
        signal.signal(number, before)
    assert capsys.readouterr().err.strip() == f'tool: interrupted ({name})'


def test_interrupted_sample_bag_leaves_nothing(tmp_path, monkeypatch):
    import lseg_ros.formats.sample_bag as sample_bag
    old = tmp_path / 'bag'
    write_sample_bag(old, frames=2, height=8, width=8)
    before = bag.describe(old)
    real = sample_bag.sample_frame

    def interrupted(index, height, width):
        if index == 3:
            raise Terminated()
        return real(index, height, width)

    monkeypatch.setattr(sample_bag, 'sample_frame', interrupted)
    for target, overwrite in ((tmp_path / 'new', False), (old, True)):
        with pytest.raises(Terminated):
            write_sample_bag(target, frames=10, height=8, width=8, overwrite=overwrite)
    assert not (tmp_path / 'new').exists() and bag.describe(old) == before
    assert leftovers(tmp_path) == []


def test_sigterm_to_make_sample_bag_leaves_no_partial_bag(tmp_path):
    out = tmp_path / 'big'
    process = subprocess.Popen(
        [sys.executable, '-m', 'lseg_ros.cli.sample_bag', '--output', str(out), '--frames',
         '100000', '--size', '480x640'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(tmp_path.glob('.big.*.partial/big/*')) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)                            # some frames written
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert 'make_sample_bag: interrupted (SIGTERM)' in err
    assert not out.exists() and leftovers(tmp_path) == []
