"""franka_node as a real process against franky-sim (real libfranka protocol) with a hinged door: a /manipulate
goal runs approach → suction → AIA, streams feedback, and the outcome arrives on /manipllm/outcome. A restart
after an interrupted episode reports that episode as a failure."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor

from conftest import PYTHON

from manipllm.action import Manipulate
from manipllm.msg import ManipulationOutcome
from manipllm_ros.control.franky_sim_scene import FrankySimProcess, ObjectSpec, SceneClient
from manipllm_ros.geometry import quaternion_from_matrix

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def spin_until(executor, predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def goal_for(spec: ObjectSpec, prediction_id: int) -> Manipulate.Goal:
    goal = Manipulate.Goal(use_given_pose=True, use_aia=True, prediction_id=prediction_id)
    p, q = spec.contact_point(), quaternion_from_matrix(spec.contact_rotation())
    c = goal.pose.contact_pose_base
    c.position.x, c.position.y, c.position.z = (float(v) for v in p)
    c.orientation.x, c.orientation.y, c.orientation.z, c.orientation.w = (float(v) for v in q)
    goal.pose.approach_distance = 0.08
    return goal


def test_manipulate_opens_the_door_and_publishes_the_outcome(spawn, rclpy_context, tmp_path):
    spec = ObjectSpec(kind="door")
    journal = tmp_path / "episode.json"
    with FrankySimProcess(spec) as sim:
        scene = SceneClient(sim.hostname)
        args = [PYTHON, "-m", "manipllm_ros.nodes.franka_node", "--ros-args", "-p", f"robot_ip:={sim.hostname}",
                "-p", "end_effector:=franky_sim_suction", "-p", f"journal:={journal}"]
        franka = spawn(args, name="franka")
        node = rclpy.create_node("manipulate_client", context=rclpy_context)
        executor = SingleThreadedExecutor(context=rclpy_context)
        executor.add_node(node)
        outcomes: list[ManipulationOutcome] = []
        node.create_subscription(ManipulationOutcome, "/manipllm/outcome", outcomes.append, 10)
        # Created while the node starts, as a client program does: feedback is a topic, and a subscription made
        # just before the goal can still be unmatched when the first feedback ("approach") goes out.
        client = ActionClient(node, Manipulate, "manipulate")
        franka.wait_for("ready: /manipulate", timeout=90)
        assert client.wait_for_server(timeout_sec=30)

        q0 = scene.joint()
        feedback = []
        send = client.send_goal_async(goal_for(spec, 7), feedback_callback=lambda f: feedback.append(f.feedback))
        assert spin_until(executor, send.done, 30) and send.result().accepted
        result = send.result().get_result_async()
        assert spin_until(executor, result.done, 240), franka.output()[-2000:]
        out = result.result().result.outcome
        assert out.success, out.failure_reason
        assert scene.joint() - q0 > 0.1  # the door really opened past 0.1 rad in franky-sim
        assert out.prediction_id == 7 and out.ee_distance > 0.05 and len(out.ee_path) >= 2
        assert any(p.is_step for p in out.probes) and any(p.chosen for p in out.probes)
        assert {f.phase for f in feedback} >= {"approach", "probe", "step", "done"}
        assert spin_until(executor, lambda: outcomes, 10) and outcomes[0].prediction_id == 7
        assert outcomes[0].success

        # Kill the node mid-episode: the restarted node recovers and reports the lost episode as a failure.
        send = client.send_goal_async(goal_for(spec, 8))
        assert spin_until(executor, send.done, 30) and send.result().accepted
        time.sleep(3.0)  # the episode is under way (approach takes longer than this)
        franka.stop(signal.SIGKILL)
        outcomes.clear()
        franka2 = spawn(args, name="franka_restarted")
        franka2.wait_for("ready: /manipulate", timeout=90)
        assert spin_until(executor, lambda: outcomes, 20), franka2.output()[-2000:]
        assert outcomes[0].prediction_id == 8 and not outcomes[0].success
        assert "lost" in outcomes[0].failure_reason
        assert not np.isnan(scene.joint())
        node.destroy_node()
        scene.close()
