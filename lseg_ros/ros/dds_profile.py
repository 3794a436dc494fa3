# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The package's Fast DDS profile (config/fastdds.xml) and how a process gets it.

Fast DDS reads its XML profiles once, when the first participant of a process is created,
from the file named by ``FASTDDS_DEFAULT_PROFILES_FILE`` (Fast DDS 3: ROS 2 Kilted and
newer) or ``FASTRTPS_DEFAULT_PROFILES_FILE`` (Fast DDS 2: ROS 2 Jazzy, which ignores the
other name); Kilted still reads the old name but warns that it is deprecated, so only the
distribution's own variable is set (``ROS_DISTRO``; unset, as with the PyPI wheels, means
Kilted).  The profile only sets the participant's transports (no QoS), so
``RMW_FASTRTPS_USE_QOS_FROM_XML`` is not needed; rmw_fastrtps applies the default
participant profile to every participant.  Other RMWs ignore the variables.

One rule for the launch file (``dds_profile``), bench, demo and lseg_replay
(``--dds-profile``): the default is the installed profile, a path names another profile,
an empty value leaves the environment (and any profile the user set in it) alone.
"""

import os
from pathlib import Path
from typing import Dict, MutableMapping, Optional

from lseg_ros.ros.share import installed_config

PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
#: Distributions whose Fast DDS (2.x) reads FASTRTPS_DEFAULT_PROFILES_FILE only.
FAST_DDS_2_DISTROS = ('humble', 'iron', 'jazzy')
#: Value of a ``--dds-profile`` option / ``dds_profile`` argument meaning "the default".
DEFAULT = 'default'


def installed_profile() -> str:
    """Return the installed config/fastdds.xml (the source tree's when not installed)."""
    return installed_config('fastdds.xml')


def profile_in_effect(env: Optional[MutableMapping[str, str]] = None) -> Optional[str]:
    """Return the profile file the environment names for this distribution, if any."""
    env = os.environ if env is None else env
    for name in (profile_variable(), *PROFILE_VARIABLES):
        if env.get(name, '').strip():
            return env[name]
    return None


def profile_environment(profile: Optional[str] = DEFAULT) -> Dict[str, str]:
    """Return the variables to set for ``profile`` (see the module's rule); {} for none.

    Raises FileNotFoundError for a profile file that does not exist.
    """
    if profile is None or not profile.strip():
        return {}
    if profile == DEFAULT:
        profile = installed_profile()
    path = Path(profile).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f'Fast DDS profile {profile} does not exist')
    return {profile_variable(): str(path.resolve())}


def profile_variable(distro: Optional[str] = None) -> str:
    """Return the variable this ROS distribution's Fast DDS reads its profile file from."""
    distro = (os.environ.get('ROS_DISTRO', '') if distro is None else distro).strip().lower()
    return PROFILE_VARIABLES[1] if distro in FAST_DDS_2_DISTROS else PROFILE_VARIABLES[0]


def apply_profile(profile: Optional[str] = DEFAULT,
                  env: Optional[MutableMapping[str, str]] = None) -> Optional[str]:
    """Set the profile variables in ``env`` (default: this process, before ``rclpy.init``).

    Returns the profile file in effect (None when none is).
    """
    env = os.environ if env is None else env
    env.update(profile_environment(profile))
    return profile_in_effect(env)


def add_profile_argument(parser) -> None:
    """Add ``--dds-profile`` (this module's rule) to an argparse parser."""
    parser.add_argument('--dds-profile', default=DEFAULT, metavar='XML',
                        help='Fast DDS profile for this process and the processes it starts '
                             '(default: config/fastdds.xml of this package, shared memory for '
                             'camera-sized frames; "" leaves the environment alone)')
