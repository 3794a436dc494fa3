# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The transport baseline of ``bench``: a node with no model that answers every frame.

Subscribes to an image topic with the node's input QoS (a raw subscription read like the
node's, :func:`lseg_ros.ros.conversions.image_from_serialized`) and publishes, from the
subscription callback, a mono8 image of the frame's size with the frame's header on
``~/mask`` with the node's output QoS, spun by the node's executor: the same messages cross
the same transport as with ``/lseg``, so ``bench --transport-baseline`` can report what the
node adds to it.
"""

import argparse
import array
import os
import sys

from lseg_ros.ros.params import QOS_CHOICES


def main(argv=None) -> int:
    """Run the echo node until interrupted."""
    parser = argparse.ArgumentParser(prog='transport_echo', description=__doc__)
    parser.add_argument('--name', default='lseg_echo', help='node name')
    parser.add_argument('--image-topic', default='image', help='image topic to answer')
    parser.add_argument('--input-qos', default='sensor_data', choices=QOS_CHOICES)
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image
    from lseg_ros.ros.conversions import image_from_serialized, UnreadableImage
    from lseg_ros.ros.executors import EXECUTOR_ENV, make_executor, spin_until_shutdown
    from lseg_ros.ros.qos import input_qos, OUTPUT_QOS

    rclpy.init()
    node = rclpy.create_node(args.name)
    publisher = node.create_publisher(Image, '~/mask', OUTPUT_QOS)
    zeros = {}

    def answer(raw: bytes) -> None:
        msg = image_from_serialized(raw)            # as the node reads its input
        if isinstance(msg, UnreadableImage):
            return
        size = (msg.height, msg.width)
        if size not in zeros:
            zeros[size] = array.array('B', bytes(msg.height * msg.width))
        out = Image(header=msg.header, height=msg.height, width=msg.width, encoding='mono8',
                    is_bigendian=0, step=msg.width)
        out.data = zeros[size]
        publisher.publish(out)

    node.create_subscription(Image, args.image_topic, answer, input_qos(args.input_qos),
                             raw=True)
    executor = make_executor(os.environ.get(EXECUTOR_ENV, 'auto'))    # as the node's
    executor.add_node(node)
    try:
        spin_until_shutdown(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
