# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Example: one /lseg node (one model, one label set) for two cameras.

    ros2 launch lseg_ros two_cameras.launch.py checkpoint:=/path/to/demo_e200.ckpt

Cameras ``front`` and ``rear``: the node reads ``front/image_raw``, ``front/camera_info``,
``rear/image_raw`` and ``rear/camera_info`` (remapped below to the drivers' topics) and
publishes ``/lseg/front/mask``, ``/lseg/rear/mask``, ... (README "Several cameras").
Frames of one size that arrive within ``batch_window_ms`` are segmented in one call.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from lseg_ros.ros.dds_profile import installed_profile, profile_environment
from lseg_ros.ros.node_process import default_params_file

#: camera name -> the driver's image and camera_info topics.
CAMERAS = {'front': ('/front_camera/image_raw', '/front_camera/camera_info'),
           'rear': ('/rear_camera/image_raw', '/rear_camera/camera_info')}


def generate_launch_description():
    """Declare the checkpoint argument and the node with both cameras."""
    remappings = []
    for name, (image, info) in CAMERAS.items():
        remappings += [(f'{name}/image_raw', image), (f'{name}/camera_info', info)]
    return LaunchDescription([
        DeclareLaunchArgument('checkpoint', description='official lang-seg checkpoint'),
        Node(package='lseg_ros', executable='lseg_node', name='lseg', output='screen',
             parameters=[default_params_file(),
                         {'checkpoint': LaunchConfiguration('checkpoint'),
                          'cameras': ', '.join(CAMERAS)}],
             remappings=remappings,
             additional_env=profile_environment(installed_profile()))])
