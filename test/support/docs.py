# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Reading the README tables."""

from pathlib import Path
import re

ROOT = Path(__file__).resolve().parents[2]


def readme_table(title):
    text = (ROOT / 'README.md').read_text()
    section = text.split(f'### {title}', 1)[1].split('\n#', 1)[0]
    rows = [line for line in section.splitlines() if line.startswith('| `')]
    return [[cell.strip() for cell in re.split(r'(?<!\\)\|', row)[1:-1]] for row in rows]
