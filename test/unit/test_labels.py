# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Label parsing: trimming, and clear rejection of empty, duplicate and over-long entries."""

import random
import string
import time

import pytest

from lseg_ros.core.errors import LabelError
from lseg_ros.core.labels import (format_labels, MAX_LABEL_CHARS, MAX_LABELS, MAX_LABELS_CHARS,
                                  parse_labels)


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


@pytest.fixture()
def no_tokenizer(monkeypatch):
    """Make CLIP's BPE tokenizer fail if anything calls it."""
    from open_clip.tokenizer import SimpleTokenizer

    def refuse(self, text):
        raise AssertionError('the tokenizer was called')

    monkeypatch.setattr(SimpleTokenizer, 'encode', refuse)
    monkeypatch.setattr(SimpleTokenizer, 'bpe', refuse)


def test_label_floods_are_refused_before_tokenisation(no_tokenizer):
    rng = random.Random(0)
    word = ''.join(rng.choice(string.ascii_lowercase) for _ in range(20_000))
    for value in (word, f'dog, {word}, grass', ['dog', word]):
        start = time.perf_counter()
        with pytest.raises(LabelError, match='20,000 characters long'):
            parse_labels(value)
        assert time.perf_counter() - start < 0.5
    assert parse_labels('a' * MAX_LABEL_CHARS) == ('a' * MAX_LABEL_CHARS,)
    with pytest.raises(LabelError, match=f'label 2 is {MAX_LABEL_CHARS + 1} characters'):
        parse_labels('dog, ' + 'a' * (MAX_LABEL_CHARS + 1))
    start = time.perf_counter()
    with pytest.raises(LabelError, match='the label list is'):
        parse_labels('dog,' * (MAX_LABELS_CHARS // 4 + 1))
    with pytest.raises(LabelError, match='longer than'):
        parse_labels([f'label {i}' for i in range(MAX_LABELS_CHARS // 8)])
    assert time.perf_counter() - start < 0.5
    with pytest.raises(LabelError, match=f'more than {MAX_LABELS} labels'):
        parse_labels([chr(0xF0000 + i) for i in range(MAX_LABELS + 1)])  # one character each


def test_pipeline_refuses_long_labels_without_tokenising(rn_pipeline, no_tokenizer):
    word = 'x' * 20_000
    before = rn_pipeline.labels
    with pytest.raises(LabelError, match='characters long'):
        rn_pipeline.set_labels(f'dog, {word}')
    with pytest.raises(LabelError, match='characters long'):
        rn_pipeline.text_encoder.tokenize([word])
    assert rn_pipeline.labels is before
