# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Sourced by the GPU scripts (gpu_check.sh, encoder_levers.sh) from the repository root:
# the environment of `make setup` when there is one (env.sh), else the machine's python3;
# on a machine without ROS 2 / open_clip give LSEG_ROS_WHEELS=DIR with the wheels (ROS 2
# kilted, open_clip_torch, ftfy, wcwidth): they are installed into a venv in /tmp that also
# sees the machine's packages (torch, timm, ...).
root=$(pwd)
if [ -f .venv/bin/python ]; then
  source env.sh
elif [ -n "${LSEG_ROS_WHEELS:-}" ]; then
  venv=/tmp/lseg_gpu_check_venv
  if [ ! -x "$venv/bin/python" ]; then
    sites=$(python3 -c 'import sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))')
    python3 -m venv "$venv"
    purelib=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    printf '%s\n' "$sites" > "$purelib/zz_machine_packages.pth"
    "$venv/bin/python" -m pip install -q --no-index --no-deps --no-compile "$LSEG_ROS_WHEELS"/*.whl
  fi
  source "$venv/bin/activate"
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
fi
