# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One camera of the node: its topics, publishers, frame slot, counters and camera models.

A node serves one camera (parameter ``cameras`` empty: the topics of a single-camera node,
``image``/``camera_info`` in and ``~/mask`` ... out) or several named ones
(``<name>/image_raw``/``<name>/camera_info`` in, relative so that remapping and namespaces
work, and ``~/<name>/mask`` ... out).  Every camera has its own newest-frame-wins slot,
statistics and drop counters; the label set is the node's, shared by all.
"""

import json
import time
from typing import Dict

from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from lseg_ros.formats.outputs import (CONFIDENCE, FEATURES, MASK, output_images, OVERLAY,
                                      SIMILARITY)
from lseg_ros.ros.camera_info import (CameraInfoCache, features_camera_info,
                                      image_camera_info)
from lseg_ros.ros.conversions import image_from_serialized, image_msgs, is_bgr
from lseg_ros.ros.frame_slot import RollingStats
from lseg_ros.ros.qos import CAMERA_INFO_QOS, OUTPUT_QOS

#: The single camera of a node without the ``cameras`` parameter.
SINGLE = ''


def input_topics(name: str, compressed: bool) -> Dict[str, str]:
    """Return the (relative) image and camera_info topics of camera ``name``."""
    image = 'image' if name == SINGLE else f'{name}/image_raw'
    return {'image': image + '/compressed' if compressed else image,
            'camera_info': 'camera_info' if name == SINGLE else f'{name}/camera_info'}


def output_prefix(name: str) -> str:
    """Return the private namespace of camera ``name``'s outputs: ``~/`` or ``~/<name>/``."""
    return '~/' if name == SINGLE else f'~/{name}/'


class Camera:
    """Publishers, subscriptions, slot and counters of one camera of ``node``."""

    def __init__(self, node, name: str, slot):
        self.node = node
        self.name = name
        self.slot = slot
        self.stats = RollingStats()
        self.infos = CameraInfoCache()
        self.lost = 0
        self.subscriptions = []
        prefix = output_prefix(name)
        self.pub = {topic: node.create_publisher(kind, prefix + topic, OUTPUT_QOS)
                    for topic, kind in (('mask', Image), ('confidence', Image),
                                        ('overlay', Image), ('features', Image),
                                        ('camera_info', CameraInfo),
                                        ('features/camera_info', CameraInfo),
                                        ('query/similarity', Image),
                                        ('result_info', String))}

    # ------------------------------------------------------------------------- topics
    def subscribe(self, qos, compressed: bool) -> None:
        """Subscribe to the camera's image (or compressed image) and camera_info topics.

        Raw images arrive as their serialized bytes (a raw subscription), read without
        rclpy's per-field conversion (:func:`image_from_serialized`): it cost milliseconds
        per camera-sized frame in the executor thread, and several cameras' frames queued
        behind each other.
        """
        topics = input_topics(self.name, compressed)
        events = SubscriptionEventCallbacks(message_lost=self._on_message_lost)
        self.subscriptions = [
            self.node.create_subscription(CompressedImage if compressed else Image,
                                          topics['image'],
                                          self.slot.put if compressed else self._on_serialized,
                                          qos, event_callbacks=events, raw=not compressed),
            self.node.create_subscription(CameraInfo, topics['camera_info'], self.infos.add,
                                          CAMERA_INFO_QOS)]

    def _on_serialized(self, raw: bytes) -> None:
        self.slot.put(image_from_serialized(raw))

    def unsubscribe(self) -> None:
        """Destroy the subscriptions (frames stop coming)."""
        for subscription in self.subscriptions:
            self.node.destroy_subscription(subscription)
        self.subscriptions = []

    def destroy(self) -> None:
        """Destroy the subscriptions and publishers."""
        self.unsubscribe()
        for publisher in self.pub.values():
            self.node.destroy_publisher(publisher)
        self.pub = {}

    def _on_message_lost(self, event) -> None:
        """Count frames the middleware lost before they reached the node (best effort)."""
        self.lost += event.total_count_change

    def wanted(self, topic: str, switch: bool = True) -> bool:
        """Whether output ``topic`` is switched on and has subscribers."""
        return switch and self.pub[topic].get_subscription_count() > 0

    # ------------------------------------------------------------------------ outputs
    def request(self, settings, query: bool):
        """Return the OutputRequest of this camera's next frame (outputs with subscribers).

        ``query``: a query is set (the similarity map is computed only with one).
        """
        from lseg_ros.core.pipeline import OutputRequest    # torch: not needed for --help
        want_features = self.wanted('features', settings['publish_features'])
        return OutputRequest(
            confidence=self.wanted('confidence', settings['publish_confidence']),
            overlay=self.wanted('overlay', settings['publish_overlay']),
            overlay_alpha=settings['overlay_alpha'],
            features_stride=settings['feature_stride'] if want_features else 0,
            similarity=query and self.wanted('query/similarity'))

    def publish(self, msg, rgb, result, request, settings, convert_ms: float,
                received: float) -> None:
        """Publish the outputs of one frame with its input header; record its statistics."""
        t1 = time.perf_counter()
        header = msg.header
        images = image_msgs(output_images(result, settings['confidence_encoding'],
                                          is_bgr(msg)), header)
        self.pub['mask'].publish(images[MASK])
        for name in (CONFIDENCE, OVERLAY):
            if name in images:
                self.pub[name].publish(images[name])
        if SIMILARITY in images:
            self.pub['query/similarity'].publish(images[SIMILARITY])
        info = self.infos.match(header)
        if info is not None and self.pub['camera_info'].get_subscription_count() > 0:
            self.pub['camera_info'].publish(image_camera_info(info, header, rgb.shape))
        if FEATURES in images:
            self.pub['features'].publish(images[FEATURES])
            if info is not None:
                self.pub['features/camera_info'].publish(features_camera_info(
                    info, header, result, request.features_stride, rgb.shape))
        publish_ms = 1000 * (time.perf_counter() - t1)
        stages = {k: v for k, v in result.timings.items() if k != 'total'}
        stages.update(convert=convert_ms, publish=publish_ms)
        latency_ms = 1000 * (time.monotonic() - received)
        self.stats.add(latency_ms, stages)
        if self.pub['result_info'].get_subscription_count() > 0:
            self.pub['result_info'].publish(String(data=json.dumps({
                'stamp': {'sec': header.stamp.sec, 'nanosec': header.stamp.nanosec},
                'frame_id': header.frame_id, 'label_version': result.label_set.version,
                'labels': len(result.label_set.labels), 'query': result.query,
                'outputs': list(images), 'latency_ms': latency_ms, 'stages_ms': stages})))

    def counters(self) -> Dict[str, int]:
        """Return the frame counters of the diagnostics: received, dropped, lost."""
        return {'received': self.slot.received, 'dropped': self.slot.dropped,
                'lost': self.lost}

    def status_name(self, node_name: str) -> str:
        """Return the name of the camera's diagnostic status."""
        suffix = '' if self.name == SINGLE else f' {self.name}'
        return f'{node_name}: segmentation{suffix}'
