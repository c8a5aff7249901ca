"""/predict_pose as a real process with a real (tiny, untrained) model: bad requests get clear error responses
and the node lives on; an unparseable model answer is reported as such, never as a default pose."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

from conftest import PYTHON

from manipllm.srv import PredictPose
from manipllm_ros.images import depth_fields, rgb_fields


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from manipllm_ros.model.config import ModelConfig
    from manipllm_ros.model.policy import PosePredictor

    path = tmp_path_factory.mktemp("tiny")
    PosePredictor.from_config(ModelConfig()).save(path)
    return path


def request(instruction="open the door", rgb=(48, 64), depth=(48, 64), encoding="rgb8"):
    req = PredictPose.Request(instruction=instruction, chain_of_thought=False)
    if rgb:
        img = np.random.default_rng(0).integers(0, 255, (*rgb, 3), dtype=np.uint8)
        for k, v in rgb_fields(img).items():
            setattr(req.rgb, k, v)
        req.rgb.encoding = encoding
    if depth:
        for k, v in depth_fields(np.full(depth, 0.7)).items():
            setattr(req.depth, k, v)
    req.camera_info.k = [60.0, 0.0, 32.0, 0.0, 60.0, 24.0, 0.0, 0.0, 1.0]
    return req


def call(executor, client, req, timeout=120.0):
    future = client.call_async(req)
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert future.done(), "no response"
    return future.result()


@pytest.mark.ros
def test_bad_requests_get_error_responses(spawn, rclpy_context, tiny_checkpoint):
    node_proc = spawn([PYTHON, "-m", "manipllm_ros.nodes.pose_service_node", "--ros-args",
                       "-p", f"model_path:={tiny_checkpoint}", "-p", "busy_policy:=queue",
                       "-p", f"tta_state_dir:={tiny_checkpoint.parent / 'tta'}"], name="pose_service")
    node_proc.wait_for("active: /predict_pose is serving", timeout=120)
    node = rclpy.create_node("pose_client", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    client = node.create_client(PredictPose, "predict_pose")
    assert client.wait_for_service(timeout_sec=30)

    # The hand-eye calibration is on /tf_static (latched: a late subscriber still gets it).
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from tf2_msgs.msg import TFMessage

    tf = []
    node.create_subscription(TFMessage, "/tf_static", tf.append,
                             QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    deadline = time.monotonic() + 20
    while not tf and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert tf and tf[0].transforms[0].child_frame_id == "camera_color_optical_frame"
    assert tf[0].transforms[0].header.frame_id == "fr3_link0"

    cases = [
        (request(instruction="  "), "instruction is empty"),
        (request(depth=(24, 32)), "differ in size"),
        (request(encoding="yuv422"), "encoding 'yuv422' is not supported"),
        (request(rgb=None, depth=None), "no recent image"),
    ]
    short = request()
    short.rgb.data = bytes(10)
    cases.append((short, "expected"))
    bad_k = request()
    bad_k.camera_info.k = [0.0] * 9
    cases.append((bad_k, "not a valid intrinsics matrix"))
    for req, expected in cases:
        res = call(executor, client, req)
        assert not res.success and expected in res.error, res.error
        assert node_proc.popen.poll() is None, "the node died on a bad request"

    # A well-formed request reaches the (untrained) model: its answer does not parse, and the service says so.
    res = call(executor, client, request())
    assert not res.success
    assert res.error.startswith("could not parse pose from model output"), res.error
    assert res.latency.total_ms > res.latency.model_ms > 0
    assert node_proc.popen.poll() is None

    # The TTA node lives in the same process: an outcome for a prediction that was never made is refused.
    from std_srvs.srv import Trigger

    from manipllm.srv import ReportOutcome

    report = node.create_client(ReportOutcome, "report_outcome")
    assert report.wait_for_service(timeout_sec=30)
    res = call(executor, report, ReportOutcome.Request(prediction_id=12345, success=True))
    assert not res.accepted and not res.updated and "unknown prediction id 12345" in res.error
    reset = node.create_client(Trigger, "reset_adapter")
    assert reset.wait_for_service(timeout_sec=30)
    res = call(executor, reset, Trigger.Request())
    assert res.success and "adapter version 1" in res.message
    node.destroy_node()
