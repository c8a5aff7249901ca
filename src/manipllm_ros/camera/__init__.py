"""Camera sources (RealSense camera, RealSense recording, MuJoCo camera) without ROS; the node publishes them."""

from manipllm_ros.camera.sources import (
    CameraError,
    DeviceNotFoundError,
    Frame,
    FrameSource,
    RealSenseSource,
    RecordingNotFoundError,
    SimSource,
    UnsupportedProfileError,
    list_realsense_serials,
    open_source,
)

__all__ = ["CameraError", "DeviceNotFoundError", "Frame", "FrameSource", "RealSenseSource", "RecordingNotFoundError",
           "SimSource", "UnsupportedProfileError", "list_realsense_serials", "open_source"]
