"""/manipulate: runs a manipulation episode on a Franka (real, or franky-sim) and publishes its outcome.

A thin shell over `manipllm_ros.manipulation.run_manipulation`: goal → contact pose (given, or asked of
/predict_pose), feedback for every probe and step, cancel stops the arm, result + /manipllm/outcome.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from visualization_msgs.msg import MarkerArray

from manipllm.action import Manipulate
from manipllm.msg import AiaProbe, ManipulationOutcome
from manipllm.srv import PredictPose
from manipllm_ros.config import ManipllmConfig, load_config
from manipllm_ros.control.arm import ArmError, EEPose
from manipllm_ros.geometry import matrix_from_quaternion, quaternion_from_matrix
from manipllm_ros.manipulation import EpisodeJournal, run_manipulation
from manipllm_ros.nodes.convert import point, pose, vector
from manipllm_ros.nodes.markers import prediction_markers
from manipllm_ros.nodes.spin import run_node
from manipllm_ros.nodes.tta_node import OUTCOME_TOPIC


def make_end_effector(kind: str, robot_ip: str, engage: str, release: str, sense: str):
    from manipllm_ros.control import end_effectors as ee

    if kind == "franky_sim_suction":
        return ee.FrankySimSuction(robot_ip)
    if kind == "franka_hand":
        return ee.FrankaHand(robot_ip)
    if kind == "suction_command":
        if not engage or not release:
            raise ValueError("end_effector 'suction_command' needs suction_engage_cmd and suction_release_cmd")
        return ee.CommandSuction(engage, release, sense or None)
    raise ValueError(f"unknown end_effector '{kind}' (franky_sim_suction | franka_hand | suction_command)")


class FrankaNode(Node):
    def __init__(self) -> None:
        super().__init__("franka")
        d = ParameterDescriptor
        self.declare_parameter("config_file", "", d(description="manipllm YAML config (config/*.yaml)"))
        self.declare_parameter("robot_ip", "", d(description="FCI address; overrides control.franky.robot_ip"))
        self.declare_parameter("end_effector", "suction_command", d(
            description="suction_command (a valve behind shell commands) | franky_sim_suction | franka_hand"))
        self.declare_parameter("suction_engage_cmd", "", d(description="command that opens the vacuum valve"))
        self.declare_parameter("suction_release_cmd", "", d(description="command that closes the vacuum valve"))
        self.declare_parameter("suction_sense_cmd", "", d(description="command whose exit 0 = part held"))
        self.declare_parameter("journal", "~/.manipllm/franka_episode.json", d(
            description="marks an episode in progress, so a restart reports it as lost"))
        cfg: ManipllmConfig = load_config(self.get_parameter("config_file").value)
        ip = self.get_parameter("robot_ip").value or cfg.control.franky.robot_ip
        self.franky_cfg = cfg.control.franky.model_copy(update={"robot_ip": ip})
        self.aia_cfg = cfg.control.aia
        self.base_frame = cfg.frames.base_frame
        self.group = ReentrantCallbackGroup()
        self.outcome_pub = self.create_publisher(ManipulationOutcome, OUTCOME_TOPIC, 10)
        self.marker_pub = self.create_publisher(MarkerArray, "/manipllm/markers", 10)
        self.predict = self.create_client(PredictPose, "predict_pose", callback_group=self.group)
        self.journal = EpisodeJournal(self.get_parameter("journal").value)
        self._busy = threading.Lock()

        from manipllm_ros.control.franky_arm import FrankyArm

        g = self.get_parameter
        effector = make_end_effector(g("end_effector").value, ip, g("suction_engage_cmd").value,
                                     g("suction_release_cmd").value, g("suction_sense_cmd").value)
        self.arm = FrankyArm(self.franky_cfg, effector)
        self.arm.connect()
        self.arm.recover()
        lost = self.journal.pending()
        if lost is not None:
            self.get_logger().warning(f"episode for prediction {lost} was lost in a restart: reporting it as a "
                                      "failure")
            self._report_lost_when_heard(lost)
        ActionServer(self, Manipulate, "manipulate", self._execute, callback_group=self.group,
                     goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT)
        self.get_logger().info(f"ready: /manipulate on the robot at {ip}")

    # -- action ---------------------------------------------------------------------------------------------
    def _on_goal(self, goal: Manipulate.Goal) -> GoalResponse:
        if self._busy.locked():
            self.get_logger().warning("goal rejected: an episode is already running")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _ask_pose(self, instruction: str):
        if not self.predict.wait_for_service(timeout_sec=5.0):
            return None, "/predict_pose is not available"
        req = PredictPose.Request(instruction=instruction, chain_of_thought=True)
        event, box = threading.Event(), {}
        future = self.predict.call_async(req)
        future.add_done_callback(lambda f: (box.setdefault("res", f.result()), event.set()))
        if not event.wait(600.0):
            return None, "/predict_pose did not answer within 600 s"
        res = box["res"]
        return (res, "") if res.success else (None, f"/predict_pose: {res.error}")

    def _execute(self, handle) -> Manipulate.Result:
        with self._busy:
            return self._run(handle)

    def _run(self, handle) -> Manipulate.Result:
        goal: Manipulate.Goal = handle.request
        result = Manipulate.Result()
        contact_pose, pid = goal.pose, goal.prediction_id
        if not goal.use_given_pose:
            res, err = self._ask_pose(goal.instruction)
            if res is None:
                result.outcome = self._failure(pid, err)
                self._publish_outcome(result.outcome)
                handle.abort()
                return result
            contact_pose, pid = res.pose, res.prediction_id
        c = contact_pose.contact_pose_base
        q = c.orientation
        try:
            R = matrix_from_quaternion([q.x, q.y, q.z, q.w])
        except ValueError as exc:
            result.outcome = self._failure(pid, f"contact orientation is invalid: {exc}")
            self._publish_outcome(result.outcome)
            handle.abort()
            return result
        contact = EEPose(np.array([c.position.x, c.position.y, c.position.z]), R)

        feedback = Manipulate.Feedback()
        probes: list[AiaProbe] = []
        state = {"iteration": 0, "index": 0, "start": None}

        def on_phase(phase: str) -> None:
            feedback.phase = phase
            handle.publish_feedback(feedback)

        def on_move(kind: str, r) -> None:
            if state["start"] is None:
                state["start"] = np.asarray(r.start.position, dtype=float)
            msg = AiaProbe(iteration=state["iteration"], index=state["index"], is_step=kind == "step")
            msg.direction, msg.displacement = vector(r.direction), vector(r.displacement)
            msg.ee_pose = pose(r.end.position, quaternion_from_matrix(r.end.rotation))
            probes.append(msg)
            state["index"] += 1
            if kind == "step":
                state["iteration"] += 1
                state["index"] = 0
            feedback.phase, feedback.iteration = kind, state["iteration"]
            feedback.probes = [p for p in probes if p.iteration == msg.iteration]
            feedback.distance_moved = float(np.linalg.norm(np.asarray(r.end.position) - state["start"]))
            handle.publish_feedback(feedback)

        self.journal.begin(pid)
        try:
            run = run_manipulation(self.arm, contact, policy="aia" if goal.use_aia else "straight",
                                   aia=self.aia_cfg, approach_distance=contact_pose.approach_distance or 0.08,
                                   **self.franky_cfg.approach_kwargs(),
                                   on_move=on_move, on_phase=on_phase, cancelled=lambda: handle.is_cancel_requested)
        except ArmError as exc:  # run_manipulation reports physical failures itself; this is a backend fault
            self.arm.stop()
            run = None
            result.outcome = self._failure(pid, f"arm error: {exc}")
        finally:
            self.journal.end()
        if run is not None:
            out = result.outcome
            out.prediction_id, out.success, out.failure_reason = pid, run.success, run.failure_reason
            out.ee_distance, out.ee_displacement = run.ee_distance, vector(run.ee_displacement)
            out.joint_delta = float("nan")
            out.ee_path = [point(p) for p in run.ee_path]
            out.probes = probes
            out.duration_s = run.duration_s
            self._mark_chosen(out, run)
            self.marker_pub.publish(prediction_markers(contact_pose, self.get_clock().now().to_msg(),
                                                       path=run.ee_path))
        self._publish_outcome(result.outcome)
        if handle.is_cancel_requested:
            handle.canceled()
        elif result.outcome.success:
            handle.succeed()
        else:
            handle.abort()
        self.get_logger().info(f"episode for prediction {pid}: "
                               f"{'success' if result.outcome.success else result.outcome.failure_reason}")
        return result

    @staticmethod
    def _mark_chosen(out: ManipulationOutcome, run) -> None:
        if run.record is None:
            return
        for it in run.record.iterations:
            for p in out.probes:
                if p.iteration == it.index and not p.is_step and p.index == it.chosen:
                    p.chosen = True

    # -- outcomes -------------------------------------------------------------------------------------------
    def _failure(self, pid: int, reason: str) -> ManipulationOutcome:
        out = ManipulationOutcome(prediction_id=pid, success=False, failure_reason=reason)
        out.joint_delta = float("nan")
        return out

    def _report_lost_when_heard(self, pid: int, wait_s: float = 10.0) -> None:
        """Publish the lost episode once a subscriber (the TTA node) is matched, or after `wait_s` anyway."""
        t0 = self.get_clock().now()

        def tick() -> None:
            waited = (self.get_clock().now() - t0).nanoseconds * 1e-9
            if self.outcome_pub.get_subscription_count() == 0 and waited < wait_s:
                return
            timer.cancel()
            self._publish_outcome(self._failure(pid, "episode lost: the franka node restarted while it was running"))

        timer = self.create_timer(0.2, tick)

    def _publish_outcome(self, out: ManipulationOutcome) -> None:
        out.header.stamp = self.get_clock().now().to_msg()
        out.header.frame_id = self.base_frame
        self.outcome_pub.publish(out)

    def destroy_node(self) -> None:
        try:
            self.arm.stop()
            self.arm.disconnect()
        except ArmError:
            pass
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    # A robot that cannot be reached is a clear message and exit code, not a trace.
    return run_node(FrankaNode, lambda: MultiThreadedExecutor(num_threads=4), args, "franka_node")


if __name__ == "__main__":
    sys.exit(main())
