# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ament_python package setup for lseg_ros."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'lseg_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    package_data={PACKAGE: ['core/model/manifests/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml', 'README.md']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    # segment_bags (bag archives on Ray Data): pip install 'lseg_ros[archive]'
    extras_require={'archive': ['ray[data]>=2.51']},
    zip_safe=False,
    maintainer='lseg_ros maintainers',
    maintainer_email='maintainers@lseg-ros.dev',
    description='Open-vocabulary semantic segmentation (LSeg + CLIP) for ROS 2',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'lseg_segment = lseg_ros.cli.segment:entry',
            'lseg_node = lseg_ros.ros.node:entry',
            'lseg_lifecycle_node = lseg_ros.ros.lifecycle_node:entry',
            'bench = lseg_ros.cli.bench:entry',
            'segment_bag = lseg_ros.cli.segment_bag:entry',
            'segment_bags = lseg_ros.cli.segment_bags:entry',
            'make_sample_bag = lseg_ros.cli.sample_bag:entry',
            'lseg_replay = lseg_ros.cli.replay:entry',
            'lseg_demo = lseg_ros.cli.demo:entry',
            'export_onnx = lseg_ros.cli.export_onnx:entry',
            'build_engine = lseg_ros.cli.build_engine:entry',
            'latency = lseg_ros.cli.latency:entry',
            'fidelity = lseg_ros.cli.fidelity:entry',
            'archive_bench = lseg_ros.cli.archive_bench:entry',
        ],
    },
)
