# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Start the /lseg node with config/lseg.yaml.

    ros2 launch lseg_ros segment.launch.py image:=/camera/image_raw \\
        camera_info:=/camera/camera_info checkpoint:=/path/to/demo_e200.ckpt

Arguments left empty (checkpoint, engine, backend) keep the value of the parameters file.
No side effects: nothing is installed, downloaded or built here.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from lseg_ros.launch_args import launch_overrides

ARGUMENTS = (
    ('params_file', PathJoinSubstitution([FindPackageShare('lseg_ros'), 'config', 'lseg.yaml']),
     'parameters file (YAML) of the node'),
    ('image', 'image_raw', 'input sensor_msgs/Image topic (image/compressed for compressed)'),
    ('camera_info', 'camera_info', 'input sensor_msgs/CameraInfo topic'),
    ('checkpoint', '', 'official lang-seg checkpoint; empty keeps the parameters file value'),
    ('engine', '', 'TensorRT engine; empty keeps the parameters file value'),
    ('backend', '', 'auto | tensorrt | torch | onnxruntime; empty keeps the file value'),
    ('namespace', '', 'namespace of the node'),
    ('node_name', 'lseg', 'name of the node'),
    ('log_level', 'info', 'debug | info | warn | error | fatal'),
    ('use_sim_time', '', 'true to use /clock (ros2 bag play --clock); empty keeps the file value'),
)


def _node(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    overrides = launch_overrides(value)
    image = value['image']
    return [Node(
        package='lseg_ros', executable='lseg_node', name=value['node_name'],
        namespace=value['namespace'], output='screen', emulate_tty=True,
        parameters=[value['params_file'], overrides],
        remappings=[('image', image), ('image/compressed', image + '/compressed'),
                    ('camera_info', value['camera_info'])],
        ros_arguments=['--log-level', value['log_level']])]


def generate_launch_description():
    """Declare the arguments and the node."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS] + [OpaqueFunction(function=_node)])
