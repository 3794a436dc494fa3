# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's frame slots and worker: a round's frames are gathered as they come."""

import threading
import time

from lseg_ros.ros.frame_slot import SlotGroup
from lseg_ros.ros.workers import FrameWorker


def put_later(group, name, item, delay):
    timer = threading.Timer(delay, group.slots[name].put, args=(item,))
    timer.start()
    return timer


def names(groups):
    return [[frame[0] for frame in frames] for frames in groups]


def test_a_window_gives_the_waiting_frames_then_each_late_one_as_it_comes():
    group = SlotGroup(['a', 'b', 'c'])
    group.slots['b'].put('b0')
    group.slots['a'].put('a0')
    put_later(group, 'c', 'c0', 0.2)
    rounds = group.gather(1.0, 2.0)
    first = next(rounds)
    assert [f[:2] for f in first] == [('b', 'b0'), ('a', 'a0')]   # oldest first
    started = time.monotonic()
    late = next(rounds)
    assert [f[:2] for f in late] == [('c', 'c0')]
    assert time.monotonic() - started < 1.0       # every camera has one: no wait for 2 s
    assert list(rounds) == []


def test_a_window_ends_without_the_missing_camera_and_keeps_a_second_frame():
    group = SlotGroup(['a', 'b'])
    group.slots['a'].put('a0')
    rounds = group.gather(1.0, 0.15)
    assert names([next(rounds)]) == [['a']]
    group.slots['a'].put('a1')                     # a's next frame: for the next round
    started = time.monotonic()
    assert list(rounds) == []                      # b never came: the window closes
    assert 0.05 < time.monotonic() - started < 1.0
    assert names(group.gather(1.0, 0.0)) == [['a']]
    assert group.slots['a'].ready is False


def test_without_a_window_only_the_oldest_frame_is_given():
    group = SlotGroup(['a', 'b'])
    group.slots['b'].put('b0')
    group.slots['a'].put('a0')
    assert names(group.gather(1.0, None)) == [['b']]
    assert names(group.gather(1.0, None)) == [['a']]
    assert list(group.gather(0.05, None)) == []    # timeout: nothing


def test_the_worker_prepares_a_frame_before_the_window_closes():
    """The first camera's frame is prepared while the second one is still on its way."""
    group = SlotGroup(['a', 'b'])
    events, done = [], threading.Event()

    def prepare(frames):
        events.extend(('prepare', f[0], time.monotonic()) for f in frames)
        return [f[1] for f in frames]

    def process(prepared):
        events.append(('process', tuple(prepared), time.monotonic()))
        done.set()

    worker = FrameWorker(group, prepare, process, on_error=lambda e: None,
                         running=lambda: True, max_rate=lambda: 0.0, window=lambda: 1.0)
    worker.start()
    group.slots['a'].put('a0')
    time.sleep(0.2)
    arrived = time.monotonic()
    group.slots['b'].put('b0')
    assert done.wait(5.0)
    group.close()
    worker.thread.join(2.0)
    assert [e[:2] for e in events] == [('prepare', 'a'), ('prepare', 'b'),
                                       ('process', ('a0', 'b0'))]
    assert events[0][2] < arrived                  # a was prepared before b arrived
    assert events[2][2] - arrived < 0.9            # processed when b came, not at 1 s
