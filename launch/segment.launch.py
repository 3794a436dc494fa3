# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Start the /lseg node with config/lseg.yaml and the package's Fast DDS profile.

    ros2 launch lseg_ros segment.launch.py image:=/camera/image_raw \\
        camera_info:=/camera/camera_info checkpoint:=/path/to/demo_e200.ckpt

``lifecycle:=true`` starts the managed node (``lseg_lifecycle_node``: it loads on configure,
see README "Managed node"); ``cameras:=front,rear`` serves several cameras (their topics are
``<name>/image_raw`` in the node's namespace; ``image``/``camera_info`` then do not apply,
remap per camera as in launch/two_cameras.launch.py).
Node-parameter arguments left empty (checkpoint, labels, device, input_size, ...) keep the
value of the parameters file.  ``dds_profile`` (default: the installed config/fastdds.xml)
is given to the node's process; empty leaves the environment alone.  When the node exits,
the launch ends; a non-zero exit (e.g. a start-up error) makes ``ros2 launch`` exit 1.
No side effects: nothing is installed, downloaded or built here.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from lseg_ros.ros.dds_profile import installed_profile, profile_environment
from lseg_ros.ros.launch_args import launch_overrides, OVERRIDABLE, parse_bool
from lseg_ros.ros.node_process import default_params_file
from lseg_ros.ros.params import BY_NAME

ARGUMENTS = (
    ('params_file', default_params_file(), 'parameters file (YAML) of the node'),
    ('image', '/camera/image_raw',
     'input sensor_msgs/Image topic (<image>/compressed with compressed_input)'),
    ('camera_info', '/camera/camera_info', 'input sensor_msgs/CameraInfo topic'),
    ('dds_profile', installed_profile(),
     'Fast DDS profile for the node process (shared memory for camera-sized frames); '
     'empty: leave the environment alone'),
    ('namespace', '', 'namespace of the node'),
    ('node_name', 'lseg', 'name of the node'),
    ('lifecycle', 'false', 'true: the managed node lseg_lifecycle_node (starts unconfigured)'),
    ('log_level', 'info', 'debug | info | warn | error | fatal'),
    ('use_sim_time', '', 'true to use /clock (ros2 bag play --clock); empty keeps the file value'),
) + tuple((name, '', f'{BY_NAME[name].description} Empty keeps the parameters file value.')
          for name in OVERRIDABLE)


def _on_node_exit(event, context):
    """End the launch with the node; a failed node makes the launch fail (exit code 1)."""
    if event.returncode:
        raise RuntimeError(f'{event.action.name} exited with code {event.returncode}')
    return [EmitEvent(event=Shutdown(reason='lseg_node exited'))]


def _node(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    overrides = launch_overrides(value)
    image = value['image']
    managed = parse_bool('lifecycle', value['lifecycle'])
    kind, executable = (LifecycleNode, 'lseg_lifecycle_node') if managed else \
        (Node, 'lseg_node')
    return [kind(
        package='lseg_ros', executable=executable, name=value['node_name'],
        namespace=value['namespace'], output='screen', emulate_tty=True,
        parameters=[value['params_file'], overrides],
        remappings=[('image', image), ('image/compressed', image + '/compressed'),
                    ('camera_info', value['camera_info'])],
        additional_env=profile_environment(value['dds_profile']),
        ros_arguments=['--log-level', value['log_level']], on_exit=_on_node_exit)]


def generate_launch_description():
    """Declare the arguments and the node."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS] + [OpaqueFunction(function=_node)])
