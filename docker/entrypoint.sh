#!/usr/bin/env bash
# Source ROS and the manipllm workspace, then run the command (default: the real-robot launch).
set -e
# shellcheck disable=SC1090
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck disable=SC1091
source /ws/install/setup.bash
exec "$@"
