# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Parsing and validation of user label lists ("dog, grass, other").

Sizes are checked before anything else, so a flood (a huge parameter value, an endless
label) is refused in microseconds and never reaches CLIP's tokenizer, whose cost grows with
the square of a word's length.
"""

from typing import Iterable, Tuple, Union

from lseg_ros.core.errors import LabelError

#: More labels than this cannot be encoded in a mono16 mask.
MAX_LABELS = 65535
#: Longest label in characters (after trimming).  CLIP reads at most 75 tokens and ordinary
#: text runs 4 to 5 characters per token, so a label the 75-token rule accepts is shorter.
MAX_LABEL_CHARS = 400
#: Longest whole label list in characters (the comma-separated string, or the sum of the
#: entries' lengths).
MAX_LABELS_CHARS = 100_000


def parse_labels(value: Union[str, Iterable[str]]) -> Tuple[str, ...]:
    """Return the labels of a comma-separated string (or a list) as a tuple.

    Whitespace around each entry is trimmed.  An empty list, an empty entry
    (``"dog,,grass"``), a duplicate (compared case-insensitively with runs of
    whitespace collapsed, because CLIP's tokenizer lower-cases and so would give
    both the same embedding), a label longer than :data:`MAX_LABEL_CHARS` characters, a
    list longer than :data:`MAX_LABELS_CHARS` characters or with more than
    :data:`MAX_LABELS` labels raises :class:`LabelError` with the reason.  Nothing here
    tokenises.
    """
    if isinstance(value, str):
        if len(value) > MAX_LABELS_CHARS:
            raise LabelError(f'the label list is {len(value):,} characters long; at most '
                             f'{MAX_LABELS_CHARS:,} are accepted')
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
    total = 0
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, str):
            raise LabelError(f'label {index} is not a string: {entry!r}')
        total += len(entry)
        if total > MAX_LABELS_CHARS:
            raise LabelError(f'the label list is longer than {MAX_LABELS_CHARS:,} characters')
        if index > MAX_LABELS:
            raise LabelError(f'more than {MAX_LABELS} labels given; at most {MAX_LABELS} fit '
                             'a mono16 mask')
        label = entry.strip()
        if len(label) > MAX_LABEL_CHARS:
            raise LabelError(f'label {index} is {len(label):,} characters long '
                             f'({label[:24]!r}...); at most {MAX_LABEL_CHARS} are accepted '
                             '(CLIP reads at most 75 tokens)')
        if not label:
            raise LabelError(f'label {index} of {len(entries)} is empty '
                             f'(two commas in a row or a trailing comma?)')
        key = ' '.join(label.lower().split())
        if key in seen:
            raise LabelError(f'duplicate label {label!r} (entries {seen[key]} and {index})')
        seen[key] = index
        labels.append(label)
    return tuple(labels)


def parse_query(value: str) -> str:
    """Return a free-text query trimmed; ``''`` (no query) for an empty or blank one.

    A query is one text, commas included (``"a dog, running"``); longer than
    :data:`MAX_LABEL_CHARS` characters raises :class:`LabelError` (checked before any
    tokenisation, like a label).
    """
    if not isinstance(value, str):
        raise LabelError(f'the query is not a string: {value!r}')
    if len(value) > MAX_LABELS_CHARS:
        raise LabelError(f'the query is {len(value):,} characters long; at most '
                         f'{MAX_LABEL_CHARS} are accepted')
    query = value.strip()
    if len(query) > MAX_LABEL_CHARS:
        raise LabelError(f'the query is {len(query):,} characters long ({query[:24]!r}...); '
                         f'at most {MAX_LABEL_CHARS} are accepted (CLIP reads at most 75 '
                         'tokens)')
    return query


def format_labels(labels: Iterable[str]) -> str:
    """Return labels as the comma-separated string the ``labels`` parameter takes."""
    return ','.join(labels)
