"""Real lab: RealSense camera + /predict_pose (with test-time adaptation in the same process) + Franka AIA
executor + RViz, all configured by one YAML file (config/real_robot.yaml by default).

    ros2 launch manipllm real_robot.launch.py robot_ip:=172.16.0.2 model_path:=/models/Qwen2.5-VL-3B-Instruct
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
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "config", "real_robot.yaml"]),
                              description="manipllm YAML config"),
        DeclareLaunchArgument("robot_ip", default_value="172.16.0.2", description="Franka FCI address"),
        DeclareLaunchArgument("model_path", default_value="", description="VLM checkpoint directory (overrides YAML)"),
        DeclareLaunchArgument("adapter_path", default_value="", description="trained adapter directory"),
        DeclareLaunchArgument("camera_serial", default_value="", description="RealSense serial (empty = first)"),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz"),
    ]
    nodes = [
        Node(package="manipllm", executable="camera_node", name="camera", output="screen",
             parameters=[common, {"source": "realsense", "serial": LaunchConfiguration("camera_serial")}]),
        LifecycleNode(package="manipllm", executable="pose_service_node", name="pose_service", namespace="",
                      output="screen",
                      parameters=[common, {"model_path": LaunchConfiguration("model_path"),
                                           "adapter_path": LaunchConfiguration("adapter_path"),
                                           "autostart": True}]),
        Node(package="manipllm", executable="franka_node", name="franka", output="screen",
             parameters=[common, {"robot_ip": LaunchConfiguration("robot_ip")}]),
        Node(package="rviz2", executable="rviz2", name="rviz", output="log",
             arguments=["-d", PathJoinSubstitution([share, "config", "manipllm.rviz"])],
             condition=IfCondition(LaunchConfiguration("rviz"))),
    ]
    return LaunchDescription(args + nodes)
