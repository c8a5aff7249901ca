"""pytest plugin (`-p manipllm_ros.pytest_rosenv`, set in pyproject.toml): re-execute pytest once with the ROS
environment. It must run as an early plugin: a conftest runs after pytest has redirected stdout, and a process
re-executed from there would write its report into pytest's capture file."""

from manipllm_ros.rosenv import ensure_ros_env

ensure_ros_env()
