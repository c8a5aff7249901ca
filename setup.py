"""pip install of the manipllm_ros Python package (ROS-free core + rclpy nodes) and its console scripts.

The ROS interfaces (`manipllm.msg`, `manipllm.srv`, `manipllm.action`) are built separately by colcon from
CMakeLists.txt; see README "How the build works".
"""
from setuptools import find_packages, setup

NODES = ["camera_node", "pose_service_node", "franka_node"]

setup(
    name="manipllm_ros",
    version="0.1.0",
    description="ManipLLM as a ROS 2 node suite: MLLM contact-pose prediction, impedance control, TTA.",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={"manipllm_ros": ["py.typed", "assets/*", "assets/**/*"]},
    python_requires=">=3.11",
    entry_points={
        "console_scripts": ["manipllm=manipllm_ros.cli:main"]
        + [f"manipllm-{n.replace('_', '-')}=manipllm_ros.nodes.{n}:main" for n in NODES],
    },
)
