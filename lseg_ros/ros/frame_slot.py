# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One-frame mailboxes where the newest frame wins, and rolling statistics.

The subscription callback only calls :meth:`LatestSlot.put` (constant time, never blocks
on inference); the worker thread gathers frames from a :class:`SlotGroup` (one slot per
camera).  A frame that is replaced before the worker took it is dropped and counted, so
latency never grows with a queue.
"""

from collections import deque
import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np


class LatestSlot:
    """Holds at most one item; ``put`` replaces (and counts) an item not yet taken."""

    def __init__(self, condition: Optional[threading.Condition] = None):
        self._cond = condition or threading.Condition()
        self._item = None
        self._stamp = 0.0
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, item: Any) -> None:
        """Offer the newest item; an older item still waiting is dropped."""
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._stamp = time.monotonic()
            self.received += 1
            self._cond.notify_all()

    def take(self, timeout: Optional[float] = None):
        """Wait for an item and return ``(item, monotonic receive time)``; None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout):
                return None
            return self.pop_waiting()

    @property
    def ready(self) -> bool:
        """Whether an item waits (call with the slot's condition held)."""
        return self._item is not None

    @property
    def stamp(self) -> float:
        """Monotonic receive time of the waiting item (call with the condition held)."""
        return self._stamp

    def pop_waiting(self):
        """Return ``(item, stamp)`` and empty the slot (condition held); None when empty."""
        if self._item is None:
            return None
        item, stamp, self._item = self._item, self._stamp, None
        return item, stamp

    def close(self) -> None:
        """Wake the worker so it can exit."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed


class SlotGroup:
    """The slots of several cameras (by name), waited on together by one worker.

    :meth:`gather` gives the frames to segment next.  With a batch window it waits, from
    the receive time of the oldest waiting frame, at most ``window_s`` for the other
    cameras' frames.  Without (``window_s`` None) it gives only the oldest waiting frame:
    cameras are served one frame at a time, in the order their frames came.
    """

    def __init__(self, names: Sequence[str]):
        if not names:
            raise ValueError('a slot group needs at least one camera')
        self._cond = threading.Condition()
        self.slots: Dict[str, LatestSlot] = {name: LatestSlot(self._cond) for name in names}
        self._closed = False

    def gather(self, timeout: Optional[float], window_s: Optional[float]
               ) -> Iterator[List[Tuple[str, Any, float]]]:
        """Yield the frames of the next round as they come: ``[(name, item, received)]``.

        Waits at most ``timeout`` for a first frame (nothing is yielded without one).  With
        a window, yields every waiting frame, then, until every camera has given one frame
        or ``window_s`` has passed since the oldest frame's receive time, each camera's
        frame as it comes (a frame that waited longer than the window, e.g. during
        inference, is never held back).  The caller may work on the frames between yields
        (e.g. copy them for the device) while the others are on their way.  Without a
        window (None) yields only the oldest waiting frame.  Each group is oldest first.
        """
        slots = self.slots
        with self._cond:
            def any_ready():
                return self._closed or any(s.ready for s in slots.values())
            if not self._cond.wait_for(any_ready, timeout) or self._closed:
                return
            if window_s is None:
                name = min((s.stamp, n) for n, s in slots.items() if s.ready)[1]
                taken = [(name,) + slots[name].pop_waiting()]
            else:
                deadline = min(s.stamp for s in slots.values() if s.ready) + window_s
                taken = self._pop_ready(set())
        yield taken
        if window_s is None:
            return
        names = {frame[0] for frame in taken}
        while len(names) < len(slots):
            with self._cond:
                def new_ready():
                    return self._closed or any(
                        s.ready for n, s in slots.items() if n not in names)
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait_for(new_ready, wait)
                if self._closed:
                    return
                taken = self._pop_ready(names)
            if not taken:
                return
            names.update(frame[0] for frame in taken)
            yield taken

    def _pop_ready(self, skip) -> List[Tuple[str, Any, float]]:
        """Pop the waiting frames of the cameras not in ``skip``, oldest first (lock held)."""
        taken = [(name,) + slot.pop_waiting() for name, slot in self.slots.items()
                 if name not in skip and slot.ready]
        return sorted(taken, key=lambda frame: frame[2])

    def close(self) -> None:
        """Wake the worker so it can exit."""
        with self._cond:
            self._closed = True
            for slot in self.slots.values():
                slot.close()                     # the same (reentrant) condition

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed


def percentiles(values: Iterable[float], qs=(50, 90, 99)) -> Dict[str, float]:
    """Return ``{'p50': …, 'p90': …, 'p99': …, 'max': …, 'mean': …}`` (NaN when empty)."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        return {**{f'p{q}': float('nan') for q in qs}, 'max': float('nan'),
                'mean': float('nan')}
    out = {f'p{q}': float(np.percentile(data, q)) for q in qs}
    out.update(max=float(data.max()), mean=float(data.mean()))
    return out


class RollingStats:
    """Latency and per-stage times of the last ``window`` frames, and the output rate."""

    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self.latency_ms = deque(maxlen=window)
        self.stages: Dict[str, deque] = {}
        self.done_times = deque(maxlen=window)
        self.processed = 0
        self.bad = 0

    def add(self, latency_ms: float, stages: Dict[str, float]) -> None:
        """Record one processed frame."""
        with self._lock:
            self.processed += 1
            self.latency_ms.append(latency_ms)
            self.done_times.append(time.monotonic())
            for name, value in stages.items():
                self.stages.setdefault(name, deque(maxlen=self.latency_ms.maxlen)).append(value)

    def add_bad(self) -> None:
        """Record a frame that could not be used."""
        with self._lock:
            self.bad += 1

    def snapshot(self) -> Dict[str, Any]:
        """Return fps, latency percentiles and per-stage medians of the window."""
        with self._lock:
            times = list(self.done_times)
            now = time.monotonic()
            recent = [t for t in times if now - t <= 5.0]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and \
                recent[-1] > recent[0] else 0.0
            return {'fps': fps, 'latency': percentiles(self.latency_ms),
                    'stages_p50': {k: float(np.median(v)) for k, v in self.stages.items() if v},
                    'processed': self.processed, 'bad': self.bad}
