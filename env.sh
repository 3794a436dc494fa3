# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Enter the lseg_ros environment in a shell:  source env.sh
# (system ROS 2 if installed, the .venv made by 'make setup', and the built workspace)
_lseg_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
if [ ! -x "$_lseg_root/.venv/bin/python" ]; then
  echo "lseg_ros: no environment yet; run 'make setup' (or 'make demo' / 'make test') first" >&2
  return 1 2>/dev/null || exit 1
fi
for _d in ${ROS_DISTRO:-} kilted jazzy rolling; do
  if [ -f "/opt/ros/$_d/setup.bash" ]; then source "/opt/ros/$_d/setup.bash"; break; fi
done
source "$_lseg_root/.venv/bin/activate"
# ROS 2 from PyPI: the wheels install their ament index (package.xml, messages) into the
# venv, which is then a ROS prefix like /opt/ros/<distro> (ros2 interface show, launch).
if [ -d "$_lseg_root/.venv/share/ament_index" ]; then
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$_lseg_root/.venv:"*) ;;
    *) export AMENT_PREFIX_PATH="$_lseg_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
  esac
fi
if [ -f "$_lseg_root/install/setup.bash" ]; then
  source "$_lseg_root/install/setup.bash"
  export PATH="$_lseg_root/install/lseg_ros/lib/lseg_ros:$PATH"
fi
unset _d _lseg_root
