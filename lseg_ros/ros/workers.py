# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's two worker threads: frames (segment and publish) and labels (embed and swap).

Each worker owns its daemon thread and gets what it does from the node as callbacks, so the
executor thread never runs inference.  The thread names are what shutdown reports as busy.
"""

import queue
import threading
import time
from typing import Callable, Dict, Optional

FRAME_THREAD = 'lseg-frames'
LABEL_THREAD = 'lseg-labels'
#: Seconds a worker waits for work before it checks whether to stop.
POLL_S = 0.5


class FrameWorker:
    """Gather the newest frames from a :class:`SlotGroup`, ``prepare`` and ``process`` them.

    ``prepare(frames)`` gets each group of ``[(camera, msg, received), ...]`` as it is
    gathered (see :meth:`SlotGroup.gather`; ``window()`` gives its batch window in seconds,
    None: one frame at a time) and returns a list of prepared frames (decoded and copied
    for the device while the other cameras' frames are on their way); ``process(prepared)``
    segments and publishes a round's.  An exception is handed to ``on_error(error)`` (one
    bad frame must not stop the stream) unless the worker is stopping.  The loop ends when
    the group is closed or ``running()`` turns False.  ``max_rate`` limits the rounds (one
    frame per camera at most) per second.
    """

    def __init__(self, slots, prepare: Callable, process: Callable,
                 on_error: Callable[[Exception], None],
                 running: Callable[[], bool], max_rate: Callable[[], float],
                 window: Callable[[], Optional[float]],
                 on_start: Optional[Callable[[], None]] = None):
        self.slots = slots
        self.prepare = prepare
        self.process = process
        self.on_error = on_error
        self.running = running
        self.max_rate = max_rate
        self.window = window
        self.on_start = on_start
        self.thread = threading.Thread(target=self._run, name=FRAME_THREAD, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def _stopping(self) -> bool:
        return self.slots.closed or not self.running()

    def _run(self) -> None:
        if self.on_start is not None:
            self.on_start()
        last_start = 0.0
        while not self._stopping():
            rate = self.max_rate()
            if rate > 0:
                delay = last_start + 1.0 / rate - time.monotonic()
                if delay > 0:
                    time.sleep(min(delay, POLL_S))
                    continue
            prepared, started = [], False
            try:
                for frames in self.slots.gather(POLL_S, self.window()):
                    if not started:
                        last_start, started = time.monotonic(), True
                    prepared += self.prepare(frames)
                if prepared:
                    self.process(prepared)
            except Exception as error:  # noqa: B902 - one bad frame must not stop the node
                if self._stopping():
                    return              # publishing fails once the context is shut down
                self.on_error(error)


class LabelWorker:
    """Apply text requests (new labels, a new query) one at a time, in the worker's thread.

    Requests of one kind queued meanwhile collapse to the newest.  ``apply(kind, value)``
    embeds, announces and installs them (the node's callback keeps the old value and says
    why when it cannot be embedded).
    """

    def __init__(self, apply: Callable, on_start: Optional[Callable[[], None]] = None):
        self.apply = apply
        self.on_start = on_start
        self._queue: 'queue.Queue[Optional[tuple]]' = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=LABEL_THREAD, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def submit(self, kind: str, value) -> None:
        """Ask for ``value`` of ``kind`` (e.g. labels, query); returns at once."""
        self._queue.put((kind, value))

    def stop(self) -> None:
        """Ask the thread to end after the request it is applying (if any)."""
        self._queue.put(None)

    def _run(self) -> None:
        if self.on_start is not None:
            self.on_start()
        while True:
            pending: Dict[str, object] = {}
            request = self._queue.get()
            while True:
                if request is None:
                    return
                pending.pop(request[0], None)           # coalesce: the newest per kind
                pending[request[0]] = request[1]
                if self._queue.empty():
                    break
                request = self._queue.get()
            for kind, value in pending.items():
                self.apply(kind, value)
