"""The custom interfaces travel between two processes over real DDS: every message, both services, the action."""

from __future__ import annotations

import array
import math

import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor

from conftest import PYTHON, TEST_DIR

from manipllm.action import Manipulate
from manipllm.msg import AffordancePoint, AiaProbe, ContactPose, Latency, ManipulationOutcome, Reasoning
from manipllm.srv import PredictPose, ReportOutcome


def filled_messages() -> list:
    pose = ContactPose()
    pose.header.frame_id = "camera_color_optical_frame"
    pose.u, pose.v = 320, 241
    pose.point.x, pose.point.y, pose.point.z = 0.1, -0.2, 0.75
    pose.up.z, pose.forward.x = 1.0, 1.0
    pose.orientation.w = 1.0
    pose.base_frame = "fr3_link0"
    pose.approach_pose_base.position.z = 0.4
    pose.approach_distance = 0.08
    probe = AiaProbe(iteration=3, index=2, is_step=True, chosen=True)
    probe.direction.y = -1.0
    probe.displacement.y = -0.004
    outcome = ManipulationOutcome(prediction_id=2**40 + 5, success=True, ee_distance=0.21, joint_delta=0.35)
    outcome.final_joint_positions = [0.0, -0.78, 0.0, -2.35, 0.0, 1.57, 0.78]
    outcome.probes = [probe, AiaProbe(iteration=3, index=0)]
    outcome.ee_path = [pose.point, pose.point]
    return [
        AffordancePoint(u=10, v=20, score=0.875, verdict=True),
        probe,
        pose,
        Latency(total_ms=812.5, encode_ms=100.25, pose_ms=401.0),
        outcome,
        Reasoning(category="microwave", affordance_reasoning="pull the handle, far from the hinge",
                  raw_answer="The contact point is (320, 241), ..."),
    ]


def spin_until(executor, predicate, timeout: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.05)
    return predicate()


@pytest.mark.ros
def test_every_interface_crosses_processes(spawn, rclpy_context):
    peer = spawn([PYTHON, str(TEST_DIR / "peers" / "interface_peer.py")])
    peer.wait_for("ready")
    node = rclpy.create_node("interface_client", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)

    # Every message: publish, receive the echo from the other process, compare field by field.
    sent = filled_messages()
    received: dict[str, object] = {}
    pubs = []
    for msg in sent:
        name = type(msg).__name__
        pubs.append((node.create_publisher(type(msg), f"in/{name}", 10), msg))
        node.create_subscription(type(msg), f"echo/{name}", lambda m, n=name: received.setdefault(n, m), 10)

    def publish_all():
        for pub, msg in pubs:
            if type(msg).__name__ not in received:
                pub.publish(msg)
        return len(received) == len(sent)

    assert spin_until(executor, publish_all, timeout=30.0), f"echoes received: {sorted(received)}"
    for msg in sent:
        assert received[type(msg).__name__] == msg

    # PredictPose: every request field reaches the server.
    cli = node.create_client(PredictPose, "predict_pose")
    assert cli.wait_for_service(timeout_sec=20.0)
    req = PredictPose.Request(instruction="open the drawer", chain_of_thought=True)
    req.rgb.width, req.rgb.height, req.rgb.encoding, req.rgb.step = 4, 2, "rgb8", 12
    req.rgb.data = array.array("B", range(24))
    req.depth.width, req.depth.height, req.depth.encoding = 4, 2, "32FC1"
    req.depth.data = array.array("B", [0] * 32)
    req.camera_info.k = [615.0, 0.0, 2.0, 0.0, 615.0, 1.0, 0.0, 0.0, 1.0]
    req.camera_info.header.frame_id = "camera_color_optical_frame"
    future = cli.call_async(req)
    assert spin_until(executor, future.done)
    res = future.result()
    assert res.success and res.error == "open the drawer|4x2|32FC1|615.0"
    assert (res.pose.u, res.pose.v, res.pose.header.frame_id) == (2, 1, "camera_color_optical_frame")
    assert res.reasoning.raw_answer == "00010203" and res.prediction_id == 42 and res.adapter_version == 7
    assert res.latency.total_ms == 32.0

    # ReportOutcome.
    rcli = node.create_client(ReportOutcome, "report_outcome")
    assert rcli.wait_for_service(timeout_sec=20.0)
    rreq = ReportOutcome.Request(prediction_id=42, success=True)
    rreq.outcome = sent[4]
    rreq.outcome.failure_reason = "none"
    future = rcli.call_async(rreq)
    assert spin_until(executor, future.done)
    rres = future.result()
    assert rres.accepted and rres.updated and math.isclose(rres.loss, 0.21) and rres.adapter_version == 8
    assert rres.error == "none"

    # Manipulate action: goal, feedback, result.
    acli = ActionClient(node, Manipulate, "manipulate")
    assert acli.wait_for_server(timeout_sec=20.0)
    feedback = []
    goal = Manipulate.Goal(instruction="open the door", use_aia=True, prediction_id=42)
    send = acli.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback))
    assert spin_until(executor, send.done)
    handle = send.result()
    assert handle.accepted
    result_future = handle.get_result_async()
    assert spin_until(executor, result_future.done)
    outcome = result_future.result().result.outcome
    assert outcome.success and outcome.prediction_id == 42 and outcome.failure_reason == "open the door"
    assert [p.chosen for p in outcome.probes] == [False, False, True]
    assert feedback and feedback[0].phase == "probe" and len(feedback[0].probes) == 3

    node.destroy_node()
    assert peer.stop() in (0, -2)
