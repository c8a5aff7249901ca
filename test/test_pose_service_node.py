"""/predict_pose as a real process: with a tiny untrained model, bad requests get clear error responses, the node
lives on, and an unparseable answer is reported as such (never a default pose); with the shipped demo model, the
full pose, RViz markers, and test-time adaptation from outcomes, across a restart."""

from __future__ import annotations

import time
from pathlib import Path

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


def start_pose_service(spawn, model, tta_dir, *params: str, name: str = "pose_service"):
    """pose_service_node as a real process with `model` and its own TTA state, once it serves /predict_pose."""
    proc = spawn([PYTHON, "-m", "manipllm_ros.nodes.pose_service_node", "--ros-args", "-p", f"model_path:={model}",
                  "-p", f"tta_state_dir:={tta_dir}", *(x for param in params for x in ("-p", param))], name=name)
    proc.wait_for("active: /predict_pose is serving", timeout=120)
    return proc


def client_node(rclpy_context, name: str):
    """This test process's node and executor (the client side)."""
    node = rclpy.create_node(name, context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    return node, executor


@pytest.mark.ros
def test_bad_requests_get_error_responses(spawn, rclpy_context, tiny_checkpoint):
    node_proc = start_pose_service(spawn, tiny_checkpoint, tiny_checkpoint.parent / "tta", "busy_policy:=queue")
    node, executor = client_node(rclpy_context, "pose_client")
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


DEMO_MODEL = Path(__file__).resolve().parents[1] / "models" / "demo-tiny"


def sim_request(category="microwave", seed=115):
    from manipllm_ros.sim.objects import generate_object
    from manipllm_ros.sim.world import World

    obj = generate_object(category, seed)
    world = World(obj, seed=seed)
    obs = world.observe()
    world.close()
    req = PredictPose.Request(instruction=obj.meta.instruction, chain_of_thought=True)
    for k, v in rgb_fields(obs.rgb).items():
        setattr(req.rgb, k, v)
    for k, v in depth_fields(obs.depth).items():
        setattr(req.depth, k, v)
    req.camera_info.k = obs.intrinsics.K.reshape(-1).tolist()
    return req, obs


@pytest.mark.ros
@pytest.mark.slow
def test_trained_model_pose_markers_and_tta_version(spawn, rclpy_context, tmp_path):
    """The shipped demo model through the real node: a full ContactPose, RViz markers to a subscriber, a TTA step
    from an outcome, the next prediction served by the new adapter version, and the version surviving a restart."""
    from std_srvs.srv import Trigger
    from visualization_msgs.msg import MarkerArray

    from manipllm.srv import ReportOutcome

    proc = start_pose_service(spawn, DEMO_MODEL, tmp_path / "tta")
    node, executor = client_node(rclpy_context, "tta_client")
    markers = []
    node.create_subscription(MarkerArray, "/manipllm/markers", markers.append, 10)
    predict = node.create_client(PredictPose, "predict_pose")
    report = node.create_client(ReportOutcome, "report_outcome")
    assert predict.wait_for_service(timeout_sec=30) and report.wait_for_service(timeout_sec=30)

    req, obs = sim_request()
    res = call(executor, predict, req)
    assert res.success, res.error
    assert res.adapter_version == 0 and res.prediction_id > 0
    p = res.pose
    assert 0 <= p.u < 640 and 0 <= p.v < 480
    assert abs(p.point.z - obs.depth[p.v, p.u]) < 0.05 or obs.depth[p.v, p.u] == 0  # lifted with the depth
    up = np.array([p.up.x, p.up.y, p.up.z])
    fwd = np.array([p.forward.x, p.forward.y, p.forward.z])
    assert abs(np.linalg.norm(up) - 1) < 1e-6 and abs(up @ fwd) < 1e-6
    a, c = p.approach_pose_base.position, p.contact_pose_base.position
    assert abs(np.linalg.norm([a.x - c.x, a.y - c.y, a.z - c.z]) - p.approach_distance) < 1e-6
    assert res.reasoning.category and res.reasoning.raw_answer.startswith("The contact point is")
    # The log names the whole pose (PoseResult.summary), so an episode that fails later can be traced to it.
    proc.wait_for(f"prediction {res.prediction_id}: pixel ({p.u}, {p.v}) (from pose), point [", timeout=10)
    assert "(camera), contact [" in proc.output()
    deadline = time.monotonic() + 10
    while not markers and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert markers and markers[0].markers[0].header.frame_id == p.base_frame

    rep = call(executor, report, ReportOutcome.Request(prediction_id=res.prediction_id, success=False))
    assert rep.accepted and rep.updated and np.isfinite(rep.loss) and rep.adapter_version == 1
    again = call(executor, report, ReportOutcome.Request(prediction_id=res.prediction_id, success=False))
    assert again.accepted and not again.updated and "already" in again.error  # one update per prediction
    res2 = call(executor, predict, req)
    assert res2.adapter_version == 1
    assert (tmp_path / "tta" / "current" / "tta.json").is_file()

    # A restart resumes the adapted state; reset returns to the start adapter (a new version).
    proc.stop()
    proc2 = start_pose_service(spawn, DEMO_MODEL, tmp_path / "tta", name="pose_service_restarted")
    proc2.wait_for("resumed adapted V-Adapter version 1", timeout=10)  # logged before "active"
    assert predict.wait_for_service(timeout_sec=30)
    assert call(executor, predict, req).adapter_version == 1
    reset = node.create_client(Trigger, "reset_adapter")
    assert reset.wait_for_service(timeout_sec=30)
    assert "adapter version 2" in call(executor, reset, Trigger.Request()).message
    node.destroy_node()


@pytest.mark.ros
def test_lifecycle_frees_the_model_and_configures_again(spawn, rclpy_context, tiny_checkpoint):
    """A lifecycle manager's cycle over DDS: deactivate frees the model (requests are refused with a reason),
    cleanup and configure again (new camera subscriptions, no leftovers), activate serves again."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    proc = start_pose_service(spawn, tiny_checkpoint, tiny_checkpoint.parent / "tta_lifecycle")
    node, executor = client_node(rclpy_context, "lifecycle_client")
    change = node.create_client(ChangeState, "/pose_service/change_state")
    predict = node.create_client(PredictPose, "predict_pose")
    assert change.wait_for_service(timeout_sec=30) and predict.wait_for_service(timeout_sec=30)

    def transition(tid: int) -> None:
        assert call(executor, change, ChangeState.Request(transition=Transition(id=tid))).success, tid

    transition(Transition.TRANSITION_DEACTIVATE)
    res = call(executor, predict, request())
    assert not res.success and "not active" in res.error, res.error
    transition(Transition.TRANSITION_CLEANUP)
    transition(Transition.TRANSITION_CONFIGURE)
    transition(Transition.TRANSITION_ACTIVATE)
    res = call(executor, predict, request())  # the model is back: an (unparseable) answer, not a refusal
    assert res.success or res.error.startswith("could not parse pose"), res.error
    res = call(executor, predict, request(rgb=None, depth=None))  # no camera: the reconfigured tap says so
    assert not res.success and res.error.startswith("no recent image"), res.error
    counts = {t: node.count_subscribers(t) for t in ("/camera/camera/color/image_raw",
                                                     "/camera/camera/aligned_depth_to_color/image_raw")}
    assert all(n == 1 for n in counts.values()), counts  # configure replaced its subscriptions, did not add
    assert node.count_publishers("/tf_static") == 1  # and kept its one calibration publisher
    assert "inactive: model freed" in proc.output()
