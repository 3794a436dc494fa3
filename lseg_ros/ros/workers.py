# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's two worker threads: frames (segment and publish) and labels (embed and swap).

Each worker owns its daemon thread and gets what it does from the node as callbacks, so the
executor thread never runs inference.  The thread names are what shutdown reports as busy.
"""

import queue
import threading
import time
from typing import Callable, Optional

FRAME_THREAD = 'lseg-frames'
LABEL_THREAD = 'lseg-labels'
#: Seconds a worker waits for work before it checks whether to stop.
POLL_S = 0.5


class FrameWorker:
    """Take the newest frame from a :class:`LatestSlot` and ``process`` it, at most ``max_rate``.

    ``process(msg, received)`` segments and publishes; an exception is handed to
    ``on_error(error)`` (one bad frame must not stop the stream) unless the worker is
    stopping.  The loop ends when the slot is closed or ``running()`` turns False.
    """

    def __init__(self, slot, process: Callable, on_error: Callable[[Exception], None],
                 running: Callable[[], bool], max_rate: Callable[[], float],
                 on_start: Optional[Callable[[], None]] = None):
        self.slot = slot
        self.process = process
        self.on_error = on_error
        self.running = running
        self.max_rate = max_rate
        self.on_start = on_start
        self.thread = threading.Thread(target=self._run, name=FRAME_THREAD, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def _stopping(self) -> bool:
        return self.slot.closed or not self.running()

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
            got = self.slot.take(timeout=POLL_S)
            if got is None:
                continue
            last_start = time.monotonic()
            try:
                self.process(*got)
            except Exception as error:  # noqa: B902 - one bad frame must not stop the node
                if self._stopping():
                    return              # publishing fails once the context is shut down
                self.on_error(error)


class LabelWorker:
    """Apply label requests one at a time; requests queued meanwhile collapse to the newest.

    ``apply(labels)`` embeds, announces and installs them (the node's callback keeps the
    old labels and says why when they cannot be embedded).
    """

    def __init__(self, apply: Callable, on_start: Optional[Callable[[], None]] = None):
        self.apply = apply
        self.on_start = on_start
        self._queue: 'queue.Queue[Optional[tuple]]' = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=LABEL_THREAD, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def submit(self, labels) -> None:
        """Ask for ``labels`` (returns at once)."""
        self._queue.put((labels,))

    def stop(self) -> None:
        """Ask the thread to end after the request it is applying (if any)."""
        self._queue.put(None)

    def _run(self) -> None:
        if self.on_start is not None:
            self.on_start()
        while True:
            request = self._queue.get()
            if request is None:
                return
            while not self._queue.empty():        # coalesce: only the newest matters
                newer = self._queue.get()
                if newer is None:
                    return
                request = newer
            self.apply(request[0])
