"""manipllm: ManipLLM (CVPR 2024) as software for a Franka arm and a RealSense camera.

The subpackages below hold a ROS-free core (geometry, prompts, model, control, sim, training); `nodes` holds the
thin rclpy shells over it.
"""

__version__ = "0.1.0"
