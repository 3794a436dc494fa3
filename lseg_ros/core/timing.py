# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Per-stage timing that does not add GPU synchronisations (CUDA events on a GPU)."""

import time
from typing import Dict

import torch


class StageTimer:
    """Marks stage boundaries; :meth:`result` returns milliseconds per stage."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == 'cuda'
        self.marks = []
        self.mark('start')

    def mark(self, name: str) -> None:
        """End the stage called ``name`` (the first mark starts the clock).

        On a GPU the event is recorded on the current stream of the timer's device, not of
        the thread's current device: the pipeline waits on these events for its outputs.
        """
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            self.marks.append((name, event))
        else:
            self.marks.append((name, time.perf_counter()))

    def result(self) -> Dict[str, float]:
        """Milliseconds of each stage plus ``total``; synchronises on the last GPU event."""
        if self.cuda:
            self.marks[-1][1].synchronize()
            spans = {name: prev.elapsed_time(event)
                     for (_, prev), (name, event) in zip(self.marks, self.marks[1:]) if name}
        else:
            spans = {name: 1000.0 * (t - prev)
                     for (_, prev), (name, t) in zip(self.marks, self.marks[1:]) if name}
        spans['total'] = sum(spans.values())
        return spans
