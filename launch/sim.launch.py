"""Simulation on a ROS install: the MuJoCo camera + /predict_pose + the Franka executor against franky-sim,
configured by config/sim.yaml. Without a ROS install, `manipllm bringup --config config/sim.yaml` starts the same
nodes as separate processes from the same YAML.

    ros2 launch manipllm sim.launch.py model_path:=checkpoints/small
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("manipllm")
    config = LaunchConfiguration("config")
    common = {"config_file": config}
    args = [
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "config", "sim.yaml"]),
                              description="manipllm YAML config"),
        DeclareLaunchArgument("model_path", default_value="", description="VLM checkpoint directory (overrides YAML)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz"),
    ]
    nodes = [
        Node(package="manipllm", executable="camera_node", name="camera", output="screen",
             parameters=[common, {"source": "sim"}]),
        LifecycleNode(package="manipllm", executable="pose_service_node", name="pose_service", namespace="",
                      output="screen",
                      parameters=[common, {"model_path": LaunchConfiguration("model_path"), "autostart": True}]),
        Node(package="manipllm", executable="franka_node", name="franka", output="screen", parameters=[common]),
        Node(package="rviz2", executable="rviz2", name="rviz", output="log",
             arguments=["-d", PathJoinSubstitution([share, "config", "manipllm.rviz"])],
             condition=IfCondition(LaunchConfiguration("rviz"))),
    ]
    return LaunchDescription(args + nodes)
