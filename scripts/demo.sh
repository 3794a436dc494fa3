#!/usr/bin/env bash
# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# The main job: segment the bundled sample stream and write overlays + a summary.
# Uses models/demo_e200.ckpt when present, else an official-layout checkpoint with random
# weights (the masks are then untrained, and the demo says so loudly).
set -eo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
source env.sh
export PYTHONUNBUFFERED=1
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
exec python -m lseg_ros.cli.demo --output "${DEMO_OUTPUT:-$root/demo_output}" "$@"
