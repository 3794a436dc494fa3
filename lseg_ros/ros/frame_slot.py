# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A one-frame mailbox where the newest frame wins, and rolling statistics.

The subscription callback only calls :meth:`LatestSlot.put` (constant time, never blocks
on inference); the worker thread calls :meth:`LatestSlot.take`.  A frame that is replaced
before the worker took it is dropped and counted, so latency never grows with a queue.
"""

from collections import deque
import threading
import time
from typing import Any, Dict, Iterable, Optional

import numpy as np


class LatestSlot:
    """Holds at most one item; ``put`` replaces (and counts) an item not yet taken."""

    def __init__(self):
        self._cond = threading.Condition()
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
            self._cond.notify()

    def take(self, timeout: Optional[float] = None):
        """Wait for an item and return ``(item, monotonic receive time)``; None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout):
                return None
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
