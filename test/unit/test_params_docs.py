# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""config/lseg.yaml and the README's Parameters/Topics tables agree with the node."""

from pathlib import Path
import re

import yaml

from lseg_ros.ros.params import PARAMS
from support.docs import readme_table

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_has_every_parameter_with_its_default():
    data = yaml.safe_load((ROOT / 'config' / 'lseg.yaml').read_text())
    values = data['/**']['ros__parameters']
    assert list(values) == [p.name for p in PARAMS]
    for param in PARAMS:
        assert values[param.name] == param.default, param.name
        assert type(values[param.name]) is type(param.default), param.name
    for line in (ROOT / 'config' / 'lseg.yaml').read_text().splitlines():
        if re.match(r'^\s{4}\w+:', line):
            assert '#' in line, f'no comment: {line}'


def test_readme_parameters_table_matches():
    rows = readme_table('Parameters')
    assert [r[0].strip('`') for r in rows] == [p.name for p in PARAMS]
    for row, param in zip(rows, PARAMS):
        assert row[1] == param.type_name, param.name
        default = row[2].strip('`')
        default = '' if default == '""' else default
        assert default == (str(param.default).lower() if isinstance(param.default, bool)
                           else str(param.default)), param.name
        assert row[3] == param.constraint, param.name
        assert row[4] == ('no' if param.read_only else 'yes'), param.name
