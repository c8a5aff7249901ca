"""The one YAML schema shared by the CLI, the nodes and the launch files (`config/*.yaml`).

Each node reads the whole file (ROS parameter `config_file`) and its own section; launch arguments such as
`robot_ip` or `model_path` override single fields through ROS parameters of the same name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from manipllm_ros.control.config import ControlConfig
from manipllm_ros.model.views import MAX_VIEWS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FramesConfig(_Strict):
    """Frames and the hand-eye calibration that links the camera to the robot."""

    camera_frame: str = Field("camera_color_optical_frame", description="Optical frame of the colour image "
                              "(realsense-ros name); predictions are made in it.")
    base_frame: str = Field("fr3_link0", description="Robot base frame; approach poses are sent in it.")
    base_to_camera_xyz: list[float] = Field([0.5, 0.0, 0.8], min_length=3, max_length=3,
                                            description="Camera optical-frame origin in the base frame (m), from "
                                            "hand-eye calibration.")
    base_to_camera_quat_xyzw: list[float] = Field(
        [0.0, 1.0, 0.0, 0.0], min_length=4, max_length=4,
        description="Camera optical-frame orientation in the base frame (x, y, z, w). The default looks straight "
        "down with image x along base +x.")

    @field_validator("base_to_camera_quat_xyzw")
    @classmethod
    def _unit_quat(cls, q: list[float]) -> list[float]:
        n = float(np.linalg.norm(q))
        if not np.isfinite(n) or abs(n - 1.0) > 1e-3:
            raise ValueError(f"base_to_camera_quat_xyzw must be a unit quaternion, got norm {n:.4f}")
        return q

    def T_base_cam(self) -> np.ndarray:
        from manipllm_ros.geometry import make_transform, matrix_from_quaternion

        return make_transform(matrix_from_quaternion(self.base_to_camera_quat_xyzw), self.base_to_camera_xyz)


class CameraConfig(_Strict):
    """Where frames come from and how they are published (realsense-ros topic names by default)."""

    source: Literal["realsense", "bag", "sim"] = Field("realsense", description="RealSense device, a recorded "
                                                       "bag played through librealsense, or the MuJoCo camera.")
    serial: str = Field("", description="RealSense serial number; empty = the first camera found.")
    bag_path: str = Field("", description="Recording to play back when source = bag.")
    width: int = Field(640, gt=0, description="Colour and aligned depth width (px).")
    height: int = Field(480, gt=0, description="Colour and aligned depth height (px).")
    fps: int = Field(30, gt=0, description="Frame rate requested from the device and published.")
    color_topic: str = "/camera/camera/color/image_raw"
    depth_topic: str = "/camera/camera/aligned_depth_to_color/image_raw"
    info_topic: str = "/camera/camera/color/camera_info"
    depth_info_topic: str = Field("/camera/camera/aligned_depth_to_color/camera_info", description="CameraInfo of "
                                  "the aligned depth (the colour intrinsics), as realsense-ros publishes it.")
    qos_depth: int = Field(5, gt=0, description="History depth of the image publishers/subscribers.")
    qos_reliability: Literal["reliable", "best_effort"] = Field("reliable", description="best_effort matches "
                                                                "realsense-ros's sensor-data profile.")
    bag_loop: bool = Field(True, description="Start a recording again at its end (source = bag), so a short "
                           "recording feeds a long-running system.")
    bag_realtime: bool = Field(True, description="Play a recording at its recorded pace; false = as fast as it is "
                               "read (tests, offline processing).")
    sim_category: str = Field("storage_cabinet_door", description="Object category the MuJoCo camera looks at "
                              "(source = sim); one of manipllm_ros.sim.objects.ALL_CATEGORIES.")
    sim_seed: int = Field(0, ge=0, description="Seed of the simulated object and camera pose (source = sim); the "
                          "same seed gives the same scene.")
    sim_scene_host: str = Field("", description="Mirror franky-sim (source = sim): the address of its scene side "
                                "channel, which gives the object and its joint state (bringup sets it); empty = "
                                "render sim_category/sim_seed on its own.")


class PoseServiceConfig(_Strict):
    """The /predict_pose service."""

    model_path: str = Field("", description="Hugging Face checkpoint directory (base + processor), given by path; "
                            "never downloaded.")
    adapter_path: str = Field("", description="Directory of trained V/L adapters to load on activate (empty = "
                              "those saved with the checkpoint).")
    device: str = Field("auto", description="torch device: auto = cuda if available else cpu.")
    chain_of_thought: bool = Field(True, description="Default when a request does not say (requests always say).")
    contact: Literal["pose", "grounding", "agreement"] = Field(
        "pose", description="Contact pixel from the pose answer, the grounding answer, or of the two the one whose "
        "surface in the depth image faces the way the model's up says (agreement). grounding and agreement need a "
        "checkpoint trained with the grounding task (benchmarks/eval_contact_agreement.md).")
    up: Literal["model", "depth"] = Field("model", description="Gripper up (approach axis) from the model's pose "
                                          "answer, or minus the surface normal measured in the aligned depth at "
                                          "the contact (the model's where the depth there is no clean plane; "
                                          "benchmarks/eval_depth_up.md).")
    snap_radius_px: int = Field(0, ge=0, description="0 = off. Otherwise a contact whose depth surface disagrees "
                                "with the model's up by more than snap_max_angle_deg moves to the nearest pixel "
                                "within this radius whose surface agrees (contact.py; benchmarks/"
                                "eval_contact_agreement.md).")
    snap_max_angle_deg: float = Field(30.0, gt=0, le=180, description="Agreement threshold of the snap.")
    protrusion_radius_px: int = Field(0, ge=0, description="0 = off. Otherwise, before the snap, the contact moves "
                                      "onto the nearest raised part (handle, lever, button: 6-60 mm off the surface "
                                      "around it in the depth image) within this radius, and then is not snapped "
                                      "(contact.py; benchmarks/eval_contact_choices.md).")
    protrusion_facing_deg: float | None = Field(None, gt=0, lt=180, description="null = onto any raised part. "
                                                "Otherwise only onto one whose surface in the depth image faces "
                                                "the model's up within this angle (or is too curved to measure; "
                                                "benchmarks/eval_raised_facing.md). Needs protrusion_radius_px.")
    protrusion_skip_outline: bool = Field(False, description="Not onto a raised part that is the outline of the "
                                          "contact's own surface against what lies behind the object (a thin lid's "
                                          "far edge against the floor; contact.is_own_outline; benchmarks/"
                                          "eval_handle_snap.md). Needs protrusion_radius_px.")
    protrusion_stay_on_own: bool = Field(False, description="Keep a contact on a part it is already on: not onto "
                                         "the rim of its own surface (a lever plate's edge), and from a raised part "
                                         "(a toaster's lever) the surface snap moves only within it "
                                         "(contact.resolve_contact; benchmarks/eval_which_part.md). Needs "
                                         "protrusion_radius_px and snap_radius_px.")
    handle_radius_px: int = Field(0, ge=0, description="0 = off. Otherwise, first of all, a contact on one panel of "
                                  "a plane (a cabinet front) moves beside the nearest handle within this radius "
                                  "that is mounted on another panel of it, as the depth image shows them "
                                  "(handles.py; benchmarks/eval_handle_snap.md). A front set back 1 mm from the "
                                  "contact's is another panel: that needs depth precise to a fraction of a mm "
                                  "(benchmarks/eval_panels.md).")
    views: int = Field(1, ge=1, le=MAX_VIEWS, description="1 = the object window alone. N > 1: the model is "
                       "also asked on N - 1 jittered copies of its object window and the contact is the trimmed mean of the answers "
                       "(model/views.py; a checkpoint trained on object windows; ~N x the model time; "
                       "benchmarks/eval_contact_choices.md).")
    busy_policy: Literal["queue", "refuse"] = Field("queue", description="A request that arrives while the model "
                                                    "is busy waits (queue) or is answered 'busy' at once (refuse).")
    queue_timeout_s: float = Field(60.0, gt=0, description="How long a queued request may wait for the model.")
    frame_timeout_s: float = Field(1.0, gt=0, description="Latest camera frame older than this = 'no recent "
                                   "image'.")
    approach_distance: float = Field(0.08, ge=0, description="Approach pose offset back along -up from the "
                                     "contact (m).")
    depth_window: int = Field(7, ge=1, description="Odd window (px) searched for valid depth around the contact "
                              "pixel when the pixel itself is a depth hole.")
    remember_predictions: int = Field(256, ge=1, description="Predictions kept for ReportOutcome (oldest "
                                      "dropped).")

    @model_validator(mode="after")
    def _facing_needs_radius(self) -> PoseServiceConfig:
        if self.protrusion_facing_deg is not None and not self.protrusion_radius_px:
            raise ValueError("protrusion_facing_deg conditions the raised-part snap: set protrusion_radius_px too")
        if self.protrusion_skip_outline and not self.protrusion_radius_px:
            raise ValueError("protrusion_skip_outline conditions the raised-part snap: set protrusion_radius_px too")
        if self.protrusion_stay_on_own and not (self.protrusion_radius_px and self.snap_radius_px):
            raise ValueError("protrusion_stay_on_own conditions the raised-part and surface snaps: set "
                             "protrusion_radius_px and snap_radius_px too")
        return self


class TTAConfig(_Strict):
    """Test-time adaptation of the V-Adapter from real outcomes."""

    enabled: bool = True
    learning_rate: float = Field(1e-4, gt=0, description="AdamW learning rate of the V-Adapter steps.")
    state_dir: str = Field("~/.manipllm/tta", description="Adapters are saved here after every step, so a restart "
                           "resumes the adapted state.")


class BringupConfig(_Strict):
    """What `manipllm bringup` starts besides the nodes (simulation only; a real robot uses the launch files)."""

    franky_sim: bool = Field(True, description="Start franky-sim (the real libfranka protocol over loopback) with "
                             "an articulated part in its scene, and point the franka node at it.")
    franky_object: str = Field("door", description="The part in franky-sim's scene: door | drawer (hand-made), a "
                               "generated category (e.g. microwave) or FILE.xml:JOINT (third-party MJCF/URDF). With an "
                               "object other than door/drawer the camera mirrors it (same object, same joint state) "
                               "and frames.base_to_camera is set to that camera's pose.")
    franky_object_seed: int = Field(0, ge=0, description="Seed of a generated franky_object.")
    camera: bool = Field(True, description="Start camera_node (its source comes from the camera section).")
    pose_service: bool = Field(True, description="Start pose_service_node (with test-time adaptation).")
    franka: bool = Field(True, description="Start franka_node (/manipulate).")
    log_dir: str = Field("results/bringup", description="Each process's output goes to LOG_DIR/<name>.log.")
    startup_timeout_s: float = Field(300.0, gt=0, description="How long a process may take to become ready.")


class ManipllmConfig(_Strict):
    """The whole system."""

    frames: FramesConfig = Field(default_factory=FramesConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    pose_service: PoseServiceConfig = Field(default_factory=PoseServiceConfig)
    tta: TTAConfig = Field(default_factory=TTAConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    bringup: BringupConfig = Field(default_factory=BringupConfig)


def load_config(path: str | Path | None) -> ManipllmConfig:
    """Read a YAML config; a missing section takes its defaults, an unknown key is an error that names it."""
    if not path:
        return ManipllmConfig()
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: top level must be a mapping of sections")
    return ManipllmConfig.model_validate(data)
