# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Parameter overrides of launch/segment.launch.py (plain Python, testable without launch)."""

from typing import Dict

from lseg_ros.ros.params import BY_NAME

#: Node parameters that are also launch arguments; an empty argument keeps the parameters
#: file's value, a given one is converted to the parameter's type.
OVERRIDABLE = ('checkpoint', 'engine', 'backend', 'labels', 'device', 'precision',
               'input_size', 'input_qos', 'compressed_input', 'max_input_pixels', 'cameras',
               'query')
TRUE = ('true', '1', 'yes', 'on')
FALSE = ('false', '0', 'no', 'off')


def parse_bool(name: str, text: str) -> bool:
    """Return ``text`` as a bool, or raise ValueError naming the argument."""
    value = text.strip().lower()
    if value not in TRUE + FALSE:
        raise ValueError(f'{name} must be true or false, got {text!r}')
    return value in TRUE


def typed(name: str, text: str):
    """Convert the launch argument ``name`` to its node parameter's type."""
    kind = type(BY_NAME[name].default) if name in BY_NAME else str
    if kind is bool:
        return parse_bool(name, text)
    try:
        return kind(text.strip()) if kind in (int, float) else text
    except ValueError:
        raise ValueError(f'{name} must be {"an integer" if kind is int else "a number"}, '
                         f'got {text!r}') from None


def launch_overrides(arguments: Dict[str, str]) -> Dict[str, object]:
    """Return the parameters a launch call sets on top of the parameters file.

    Empty arguments keep the file's value; ``use_sim_time`` becomes a bool.
    """
    overrides: Dict[str, object] = {name: typed(name, arguments[name]) for name in OVERRIDABLE
                                    if arguments.get(name, '').strip()}
    sim = arguments.get('use_sim_time', '').strip()
    if sim:
        overrides['use_sim_time'] = parse_bool('use_sim_time', sim)
    return overrides
