"""/predict_pose: a lifecycle node over `PoseService` (model loaded on activate, freed on deactivate).

The service runs in its own reentrant callback group on a multi-threaded executor, so a second request is
queued or refused by `busy_policy` while the model thinks. Camera frames are not delivered to callbacks: a request
takes the newest frame from the subscriptions' DDS caches (nodes/camera_tap.py says why).
"""

from __future__ import annotations

import gc
import sys

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from geometry_msgs.msg import PoseStamped
from rclpy.qos import DurabilityPolicy, QoSProfile
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from manipllm.srv import PredictPose
from manipllm_ros.config import ManipllmConfig, load_config
from manipllm_ros.images import K_from_camera_info, depth_from_msg, rgb_from_msg
from manipllm_ros.nodes.camera_tap import CameraTap
from manipllm_ros.nodes.convert import fill_predict_response, stamp_seconds, static_camera_transform
from manipllm_ros.nodes.markers import prediction_markers
from manipllm_ros.nodes.spin import run_node
from manipllm_ros.nodes.tta_node import TTANode
from manipllm_ros.pose_service import InputError, PoseService, RGBDFrame
from manipllm_ros.tta import TestTimeAdapter


CONTACT_TEXT = {"pose": "the pose answer", "grounding": "the grounding answer",
                "agreement": "the pose or grounding answer whose depth surface faces the model's up"}


class PoseServiceNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("pose_service")
        d = ParameterDescriptor
        self.declare_parameter("config_file", "", d(description="manipllm YAML config (config/*.yaml)"))
        self.declare_parameter("model_path", "", d(description="checkpoint directory; overrides the YAML"))
        self.declare_parameter("adapter_path", "", d(description="adapter directory; overrides the YAML"))
        self.declare_parameter("busy_policy", "", d(description="queue | refuse; overrides the YAML"))
        self.declare_parameter("contact", "", d(description="pose | grounding | agreement (where the contact "
                                                     "pixel comes from, contact.py); overrides the YAML"))
        self.declare_parameter("up", "", d(description="model | depth (gripper up = minus the measured surface "
                                                "normal); overrides the YAML"))
        self.declare_parameter("snap_radius_px", -1, d(description="snap a contact to the nearest surface that faces "
                                                            "the model's up within this radius (0 = off); -1 = "
                                                            "the YAML's"))
        self.declare_parameter("views", 0, d(description="ask on this many jittered object windows, contact = the "
                                                  "trimmed mean (1 = the window alone); 0 = the YAML's"))
        self.declare_parameter("protrusion_radius_px", -1, d(description="move a contact onto the nearest raised "
                                                                  "part within this radius (0 = off); -1 = the "
                                                                  "YAML's"))
        self.declare_parameter("protrusion_facing_deg", -1.0, d(description="only onto a raised part whose "
                                                                     "surface faces the model's up within this "
                                                                     "angle (0 = any); -1 = the YAML's"))
        self.declare_parameter("protrusion_skip_outline", -1, d(description="1 = not onto a raised part that is the "
                                                                     "outline of the contact's own surface, 0 = "
                                                                     "any; -1 = the YAML's"))
        self.declare_parameter("protrusion_stay_on_own", -1, d(description="1 = keep a contact on a part it is "
                                                                    "already on (not onto its own surface's rim; "
                                                                    "the snap only within its raised part), 0 = "
                                                                    "off; -1 = the YAML's"))
        self.declare_parameter("handle_radius_px", -1, d(description="move a contact on one panel of a plane "
                                                              "beside a handle on another panel within this "
                                                              "radius (0 = off); -1 = the YAML's"))
        self.declare_parameter("tta_state_dir", "", d(description="where adapted adapters persist; overrides "
                                                           "the YAML"))
        self.declare_parameter("autostart", True, d(description="configure and activate at start; false = wait "
                                                       "for a lifecycle manager"))
        self.cfg: ManipllmConfig | None = None
        self.service: PoseService | None = None
        self._tta: TTANode | None = None
        self._camera: CameraTap | None = None
        self._tf_static = None
        self._srv_group = ReentrantCallbackGroup()
        self.create_service(PredictPose, "predict_pose", self._on_predict, callback_group=self._srv_group)
        self._markers = self.create_publisher(MarkerArray, "/manipllm/markers", 10)
        self._approach = self.create_publisher(PoseStamped, "/manipllm/approach_pose", 10)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            cfg = load_config(self.get_parameter("config_file").value)
            for name in ("model_path", "adapter_path", "busy_policy", "contact", "up"):
                value = self.get_parameter(name).value
                if value:
                    setattr(cfg.pose_service, name, value)
            if self.get_parameter("snap_radius_px").value >= 0:
                cfg.pose_service.snap_radius_px = self.get_parameter("snap_radius_px").value
            if self.get_parameter("views").value > 0:
                cfg.pose_service.views = self.get_parameter("views").value
            if self.get_parameter("protrusion_radius_px").value >= 0:
                cfg.pose_service.protrusion_radius_px = self.get_parameter("protrusion_radius_px").value
            facing = float(self.get_parameter("protrusion_facing_deg").value)
            if facing >= 0:
                cfg.pose_service.protrusion_facing_deg = facing or None
            if self.get_parameter("protrusion_skip_outline").value >= 0:
                cfg.pose_service.protrusion_skip_outline = bool(self.get_parameter("protrusion_skip_outline").value)
            if self.get_parameter("protrusion_stay_on_own").value >= 0:
                cfg.pose_service.protrusion_stay_on_own = bool(self.get_parameter("protrusion_stay_on_own").value)
            if self.get_parameter("handle_radius_px").value >= 0:
                cfg.pose_service.handle_radius_px = self.get_parameter("handle_radius_px").value
            if self.get_parameter("tta_state_dir").value:
                cfg.tta.state_dir = self.get_parameter("tta_state_dir").value
            cfg = ManipllmConfig.model_validate(cfg.model_dump())  # re-validate the overrides
        except Exception as exc:
            self.get_logger().error(f"configuration failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.cfg = cfg
        cam = cfg.camera
        if self._camera is not None:  # configured again (after cleanup): the topics may have changed
            self._camera.destroy()
        self._camera = CameraTap(self, cam, cfg.frames.camera_frame)
        # The hand-eye calibration is this node's to publish: RViz and TF users see camera <-> base.
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        if self._tf_static is None:
            self._tf_static = self.create_publisher(TFMessage, "/tf_static", latched)
        self._tf_static.publish(TFMessage(transforms=[static_camera_transform(cfg.frames,
                                                                             self.get_clock().now().to_msg())]))
        ps = cfg.pose_service
        snap = f", snap within {ps.snap_radius_px} px" if ps.snap_radius_px else ""
        snap += f", mean of {ps.views} jittered windows" if ps.views > 1 else ""
        facing = (f" facing the model's up within {ps.protrusion_facing_deg:g} deg"
                  if ps.protrusion_facing_deg is not None else "")
        facing += " (not the contact surface's outline)" if ps.protrusion_skip_outline else ""
        facing += " (staying on a part the contact is on)" if ps.protrusion_stay_on_own else ""
        snap = (f", onto raised parts within {ps.protrusion_radius_px} px{facing}" if ps.protrusion_radius_px
                else "") + snap
        snap = (f", beside a handle on another panel within {ps.handle_radius_px} px" if ps.handle_radius_px
                else "") + snap
        self.get_logger().info(f"configured: model {ps.model_path or '(none)'}, "
                               f"contact from {CONTACT_TEXT[ps.contact]}, up from the "
                               f"{'depth image' if ps.up == 'depth' else 'model'}{snap}, "
                               f"camera topics under {cam.color_topic.rsplit('/', 3)[0]}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        assert self.cfg is not None
        ps = self.cfg.pose_service
        try:
            from manipllm_ros.model.policy import PosePredictor

            predictor = PosePredictor.load(ps.model_path, device=None if ps.device == "auto" else ps.device)
            if ps.adapter_path:
                predictor.load_adapters(ps.adapter_path)
        except Exception as exc:
            self.get_logger().error(f"could not load the model from '{ps.model_path}': {exc}")
            return TransitionCallbackReturn.FAILURE
        self.service = PoseService(predictor, ps, self.cfg.frames)
        self._tta = TTANode(TestTimeAdapter(self.service, self.cfg.tta))
        if self.executor is not None:
            self.executor.add_node(self._tta)
        self.get_logger().info("active: /predict_pose is serving")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        if self._tta is not None:
            if self.executor is not None:
                self.executor.remove_node(self._tta)
            self._tta.destroy_node()
            self._tta = None
        self.service = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        self.get_logger().info("inactive: model freed")
        return super().on_deactivate(state)

    # -- camera ---------------------------------------------------------------------------------------------
    def _wait_for_frame(self) -> RGBDFrame | None:
        """The newest camera frame younger than frame_timeout_s, waiting up to that long for one."""
        assert self.cfg is not None and self._camera is not None
        timeout = self.cfg.pose_service.frame_timeout_s
        return self._camera.wait(lambda: self.get_clock().now().nanoseconds * 1e-9, timeout, timeout)

    # -- service --------------------------------------------------------------------------------------------
    def _on_predict(self, req: PredictPose.Request, res: PredictPose.Response) -> PredictPose.Response:
        service = self.service
        if service is None or self.cfg is None:
            res.success, res.error = False, "pose service is not active (model not loaded): activate the node"
            return res
        try:
            if req.rgb.width or req.rgb.height or req.depth.width:
                frame = RGBDFrame(rgb_from_msg(req.rgb), depth_from_msg(req.depth),
                                  K_from_camera_info(req.camera_info), stamp_seconds(req.rgb.header.stamp),
                                  req.rgb.header.frame_id or self.cfg.frames.camera_frame)
            else:
                frame = self._wait_for_frame()
        except InputError as exc:
            res.success, res.error = False, f"bad request: {exc}"
            return res
        result = service.predict(req.instruction, frame, req.chain_of_thought)
        fill_predict_response(res, result, frame, self.cfg.frames)
        if result.success:
            self._publish_visuals(res)
            self.get_logger().info(result.summary())
        else:
            self.get_logger().warning(result.summary())
        return res

    def _publish_visuals(self, res: PredictPose.Response) -> None:
        stamp = self.get_clock().now().to_msg()
        self._markers.publish(prediction_markers(res.pose, stamp, res.reasoning.category,
                                                 res.reasoning.affordance_reasoning))
        msg = PoseStamped()
        msg.header.frame_id, msg.header.stamp = res.pose.base_frame, stamp
        msg.pose = res.pose.approach_pose_base
        self._approach.publish(msg)


def _autostart(node: PoseServiceNode) -> None:
    if node.get_parameter("autostart").value:
        node.trigger_configure()
        node.trigger_activate()
    else:
        node.get_logger().info("unconfigured: waiting for a lifecycle manager to configure and activate it")


def main(args: list[str] | None = None) -> int:
    return run_node(PoseServiceNode, lambda: MultiThreadedExecutor(num_threads=4), args, "pose_service_node",
                    on_start=_autostart)


if __name__ == "__main__":
    sys.exit(main())
