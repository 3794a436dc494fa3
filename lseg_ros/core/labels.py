# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Parsing and validation of user label lists ("dog, grass, other")."""

from typing import Iterable, Tuple, Union

from lseg_ros.core.errors import LabelError

#: More labels than this cannot be encoded in a mono16 mask.
MAX_LABELS = 65535


def parse_labels(value: Union[str, Iterable[str]]) -> Tuple[str, ...]:
    """Return the labels of a comma-separated string (or a list) as a tuple.

    Whitespace around each entry is trimmed.  An empty list, an empty entry
    (``"dog,,grass"``) or a duplicate (compared case-insensitively with runs of
    whitespace collapsed, because CLIP's tokenizer lower-cases and so would give
    both the same embedding) raises :class:`LabelError` with the reason.
    """
    if isinstance(value, str):
        if not value.strip():
            raise LabelError('the label list is empty: give comma-separated labels, '
                             'e.g. "dog, grass, other"')
        entries = value.split(',')
    else:
        entries = list(value)
        if not entries:
            raise LabelError('the label list is empty')
    labels = []
    seen = {}
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, str):
            raise LabelError(f'label {index} is not a string: {entry!r}')
        label = entry.strip()
        if not label:
            raise LabelError(f'label {index} of {len(entries)} is empty '
                             f'(two commas in a row or a trailing comma?)')
        key = ' '.join(label.lower().split())
        if key in seen:
            raise LabelError(f'duplicate label {label!r} (entries {seen[key]} and {index})')
        seen[key] = index
        labels.append(label)
    if len(labels) > MAX_LABELS:
        raise LabelError(f'{len(labels)} labels given; at most {MAX_LABELS} fit a mono16 mask')
    return tuple(labels)


def format_labels(labels: Iterable[str]) -> str:
    """Return labels as the comma-separated string the ``labels`` parameter takes."""
    return ','.join(labels)
