# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Parameter overrides of launch/segment.launch.py (plain Python, testable without launch)."""

from typing import Dict

#: Launch arguments that override the parameters file only when they are not empty.
OVERRIDABLE = ('checkpoint', 'engine', 'backend')
TRUE = ('true', '1', 'yes', 'on')
FALSE = ('false', '0', 'no', 'off')


def launch_overrides(arguments: Dict[str, str]) -> Dict[str, object]:
    """Return the parameters a launch call sets on top of the parameters file.

    Empty arguments keep the file's value; ``use_sim_time`` becomes a bool.
    """
    overrides: Dict[str, object] = {name: arguments[name] for name in OVERRIDABLE
                                    if arguments.get(name, '').strip()}
    sim = arguments.get('use_sim_time', '').strip().lower()
    if sim:
        if sim not in TRUE + FALSE:
            raise ValueError(f'use_sim_time must be true or false, got {sim!r}')
        overrides['use_sim_time'] = sim in TRUE
    return overrides
