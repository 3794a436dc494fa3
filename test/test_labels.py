# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Label parsing: trimming, and clear rejection of empty and duplicate entries."""

import pytest

from lseg_ros.core.errors import LabelError
from lseg_ros.core.labels import format_labels, parse_labels


def test_trims_whitespace():
    assert parse_labels(' dog,  grass ,other ') == ('dog', 'grass', 'other')
    assert parse_labels('dog') == ('dog',)
    assert parse_labels(['a b', 'c']) == ('a b', 'c')


@pytest.mark.parametrize('text, reason', [
    ('', 'empty'), ('   ', 'empty'), ('dog,,grass', 'label 2 of 3 is empty'),
    ('dog,', 'label 2 of 2 is empty'), ('dog, grass, dog', 'duplicate'),
    ('Dog, dog', 'duplicate'), ('big  dog, big dog', 'duplicate'),
])
def test_rejects_with_reason(text, reason):
    with pytest.raises(LabelError, match=reason):
        parse_labels(text)


def test_rejects_non_strings_and_empty_lists():
    with pytest.raises(LabelError):
        parse_labels([])
    with pytest.raises(LabelError):
        parse_labels(['dog', 3])


def test_format_round_trip():
    assert parse_labels(format_labels(('a', 'b c'))) == ('a', 'b c')
