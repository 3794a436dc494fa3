#!/usr/bin/env bash
# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Run the test suite in the lseg_ros environment (after scripts/setup.sh).
#   bash scripts/test.sh [pytest arguments]      (default: the whole test/ folder)
set -eo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
source env.sh
export PYTHONUNBUFFERED=1
# Keep ROS 2 traffic of the tests on this machine and away from other graphs.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 100 ))}
if [ $# -eq 0 ]; then set -- test; fi
exec python -m pytest -ra --timeout 900 "$@"
