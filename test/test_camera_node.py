"""camera_node as a real process over DDS: a librealsense recording comes out on realsense-ros's three topics
with one stamp and frame id per frame and the recording's content; streaming can be stopped and resumed; a
missing recording or an absent camera stop the node with a clear message."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor

from conftest import PYTHON

from manipllm_ros.camera.record import SyntheticRig, synthetic_rgb, write_synthetic_recording
from manipllm_ros.config import CameraConfig

RIG = SyntheticRig()
NODE = [PYTHON, "-m", "manipllm_ros.nodes.camera_node"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return write_synthetic_recording(tmp_path_factory.mktemp("camnode") / "synthetic.db3", 30, RIG, paced=True)


def config_file(tmp_path, **camera) -> str:
    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump({"camera": camera}))
    return str(path)


class Collector:
    """Subscribes to the three camera topics in the test process and keeps what arrives, by topic."""

    def __init__(self, context, reliability: str = "reliable") -> None:
        from sensor_msgs.msg import CameraInfo, Image

        from manipllm_ros.nodes.convert import qos_profile

        cam = CameraConfig()
        self.node = rclpy.create_node("camera_test_client", context=context)
        self.msgs: dict[str, list] = defaultdict(list)
        self.lock = threading.Lock()
        qos = qos_profile(10, reliability)
        for key, topic, cls in (("rgb", cam.color_topic, Image), ("depth", cam.depth_topic, Image),
                                ("info", cam.info_topic, CameraInfo),
                                ("depth_info", cam.depth_info_topic, CameraInfo)):
            self.node.create_subscription(cls, topic, lambda m, k=key: self._store(k, m), qos)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def _store(self, key, msg) -> None:
        with self.lock:
            self.msgs[key].append(msg)

    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
            if predicate():
                return True
        return False

    def count(self) -> int:
        return min(len(self.msgs[k]) for k in ("rgb", "depth", "info"))

    def close(self) -> None:
        self.node.destroy_node()


def stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.ros
def test_node_publishes_recording_on_realsense_topics(spawn, rclpy_context, recording, tmp_path):
    from std_srvs.srv import SetBool

    from manipllm_ros.images import K_from_camera_info, depth_from_msg, rgb_from_msg

    proc = spawn([*NODE, "--ros-args", "-p", f"config_file:={config_file(tmp_path, source='realsense')}",
                  "-p", "source:=bag", "-p", f"bag_path:={recording}"], name="camera_node")
    proc.wait_for("streaming recording", timeout=60)
    sub = Collector(rclpy_context)
    try:
        assert sub.spin_until(lambda: sub.count() >= 20, timeout=30), f"received {dict(sub.msgs)}:\n{proc.output()}"
        rgb_msgs, depth_msgs, info_msgs = (list(sub.msgs[k]) for k in ("rgb", "depth", "info"))
        by_stamp = {k: {stamp(m): m for m in msgs} for k, msgs in (("rgb", rgb_msgs), ("depth", depth_msgs),
                                                                      ("info", info_msgs))}
        common = set(by_stamp["rgb"]) & set(by_stamp["depth"]) & set(by_stamp["info"])
        assert len(common) >= 15, "colour, depth and camera_info of one frame must carry the same stamp"
        depth_info = {stamp(m): m for m in list(sub.msgs["depth_info"])}
        assert len(set(depth_info) & common) >= 15
        assert all(list(m.k) == list(by_stamp["info"][t].k) for t, m in depth_info.items() if t in common)
        assert len(by_stamp["rgb"]) == len(rgb_msgs), "every frame has its own stamp"
        for t in sorted(common)[:5]:
            rgb, depth, info = (by_stamp[k][t] for k in ("rgb", "depth", "info"))
            for m in (rgb, depth, info):
                assert m.header.frame_id == "camera_color_optical_frame"
                assert (m.width, m.height) == (RIG.width, RIG.height)
            assert rgb.encoding == "rgb8" and depth.encoding == "16UC1"
            img = rgb_from_msg(rgb)
            n = int(img[0, 0, 0])  # the synthetic recording writes its frame number into red
            assert np.array_equal(img, synthetic_rgb(n, RIG))
            d = depth_from_msg(depth)
            assert np.nanmin(d) == pytest.approx(RIG.box_m, abs=1e-3)
            assert np.nanmedian(d) == pytest.approx(RIG.wall_m, abs=1e-3)
            assert np.allclose(K_from_camera_info(info), RIG.color.K)
            assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
            assert list(info.p) == pytest.approx([615.0, 0, 321.25, 0, 0, 615.0, 238.75, 0, 0, 0, 1, 0])
        stamps = sorted(by_stamp["rgb"])
        assert abs(stamps[-1] * 1e-9 - time.time()) < 5.0, "stamps are host time, comparable to the receiver's"

        # Stop the source (a camera that dies), then resume.
        client = sub.node.create_client(SetBool, "/camera/enable_streaming")
        assert client.wait_for_service(timeout_sec=10)
        for enable in (False, True):
            future = client.call_async(SetBool.Request(data=enable))
            assert sub.spin_until(future.done, timeout=10) and future.result().success
            if not enable:
                # Frames read before the stop may still be in flight; none read after it may ever arrive. Stamps
                # are the node's host time at reading, on this same host.
                stopped_at = time.time_ns()
                before = len(sub.msgs["rgb"])
                sub.spin_until(lambda: False, timeout=2.0)
                late = [m for k in ("rgb", "depth", "info") for m in sub.msgs[k][before if k == "rgb" else 0:]
                        if stamp(m) > stopped_at]
                assert not late, f"{len(late)} frames were published after streaming was stopped"
            else:
                before = len(sub.msgs["rgb"])
                assert sub.spin_until(lambda: len(sub.msgs["rgb"]) >= before + 5, timeout=10)
    finally:
        sub.close()
    assert proc.stop() == 0
    assert "camera_node stopped: published" in proc.output()


@pytest.mark.ros
def test_node_sim_source_best_effort(spawn, node_env, rclpy_context, tmp_path):
    cfg = config_file(tmp_path, source="sim", width=160, height=120, fps=10, qos_reliability="best_effort",
                      sim_category="microwave", sim_seed=3)
    # The node runs with the shared-memory Fast DDS profile; the test process does not: they still talk.
    from manipllm_ros.camera.dds import fastdds_profile

    env = dict(node_env, FASTDDS_DEFAULT_PROFILES_FILE=str(fastdds_profile(tmp_path / "fastdds.xml")))
    proc = spawn([*NODE, "--ros-args", "-p", f"config_file:={cfg}"], name="camera_node", env=env)
    proc.wait_for("streaming MuJoCo camera", timeout=60)
    sub = Collector(rclpy_context, "best_effort")
    try:
        assert sub.spin_until(lambda: sub.count() >= 3, timeout=30), proc.output()
        from manipllm_ros.images import depth_from_msg

        rgb, depth = sub.msgs["rgb"][-1], sub.msgs["depth"][-1]
        assert (rgb.width, rgb.height, depth.width, depth.height) == (160, 120, 160, 120)
        d = depth_from_msg(depth)
        assert np.isfinite(d).mean() > 0.5 and 0.1 < np.nanmedian(d) < 10.0
    finally:
        sub.close()
    # SIGINT ends it cleanly: the renderer's GL context is freed in the thread that owns it.
    assert proc.stop() == 0, proc.output()
    assert "camera_node stopped: published" in proc.output()
    assert "XMLPARSER" not in proc.output() and "Error" not in proc.output(), proc.output()


@pytest.mark.ros
@pytest.mark.parametrize("args, message", [
    (["-p", "source:=bag", "-p", "bag_path:=/nonexistent/rec.db3"], "recording not found: /nonexistent/rec.db3"),
    (["-p", "source:=realsense", "-p", "serial:=123456789012"], "no RealSense camera with serial '123456789012'"),
    (["-p", "source:=bag"], "camera.source is 'bag' but camera.bag_path is empty"),
])
def test_node_refuses_bad_source(spawn, args, message):
    proc = spawn([*NODE, "--ros-args", *args], name="camera_node")
    proc.popen.wait(timeout=60)
    assert proc.popen.returncode == 2, proc.output()
    assert message in proc.output()


@pytest.mark.ros
@pytest.mark.slow
def test_stopped_camera_makes_predict_pose_answer_no_recent_image(spawn, rclpy_context, recording, tmp_path):
    """The fault path end to end: pose service fed by the camera node; the camera stops; /predict_pose answers
    'no recent image' once no frame has come for frame_timeout_s, instead of waiting on (the node waits at most
    that long for a first frame, so a request right after bring-up does not fail)."""
    from std_srvs.srv import SetBool

    from manipllm.srv import PredictPose
    from manipllm_ros.model.config import ModelConfig
    from manipllm_ros.model.policy import PosePredictor

    ckpt = tmp_path / "tiny"
    PosePredictor.from_config(ModelConfig()).save(ckpt)
    cfg = tmp_path / "system.yaml"
    cfg.write_text(yaml.safe_dump({"camera": {"source": "bag", "bag_path": str(recording)},
                                   "pose_service": {"model_path": str(ckpt), "frame_timeout_s": 1.0},
                                   "tta": {"state_dir": str(tmp_path / "tta")}}))
    cam = spawn([*NODE, "--ros-args", "-p", f"config_file:={cfg}"], name="camera_node")
    pose = spawn([PYTHON, "-m", "manipllm_ros.nodes.pose_service_node", "--ros-args", "-p", f"config_file:={cfg}"],
                 name="pose_service")
    cam.wait_for("streaming recording", timeout=60)
    pose.wait_for("active: /predict_pose is serving", timeout=120)
    node = rclpy.create_node("fault_client", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)

    def call(client, req, timeout=120.0):
        future = client.call_async(req)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert future.done(), "no response"
        return future.result()

    try:
        predict = node.create_client(PredictPose, "predict_pose")
        enable = node.create_client(SetBool, "/camera/enable_streaming")
        assert predict.wait_for_service(timeout_sec=30) and enable.wait_for_service(timeout_sec=30)
        req = PredictPose.Request(instruction="open the door", chain_of_thought=False)
        # While the camera streams, the request reaches the (untrained) model with the camera's frame.
        deadline = time.monotonic() + 30
        while True:
            res = call(predict, req)
            if "no recent image" not in res.error or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "no recent image" not in res.error, res.error
        assert res.error.startswith("could not parse pose from model output"), res.error

        assert call(enable, SetBool.Request(data=False)).success
        time.sleep(1.5)  # older than frame_timeout_s
        t0 = time.monotonic()
        res = call(predict, req, timeout=10)
        assert not res.success and res.error.startswith("no recent image"), res.error
        assert time.monotonic() - t0 < 5.0, "the answer must come within frame_timeout_s, not after waiting on"
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_fast_depth_encoding_matches_images_module():
    from manipllm_ros.images import depth_fields, depth_from_msg
    from manipllm_ros.nodes.camera_node import _image, depth_mm_fields

    rng = np.random.default_rng(0)
    d = rng.uniform(0.2, 5.0, (48, 64)).astype(np.float32)
    d[rng.random(d.shape) < 0.1] = np.nan
    d[0, :3] = [-1.0, 100.0, np.inf]
    fast, ref = depth_mm_fields(d), depth_fields(d)
    assert {k: v for k, v in fast.items() if k != "data"} == {k: v for k, v in ref.items() if k != "data"}
    a, b = (np.frombuffer(f["data"], "<u2").astype(int) for f in (fast, ref))
    assert np.abs(a - b).max() <= 1  # float32 rounding at half-millimetre ties
    back = depth_from_msg(_image(fast, "f", 0.0))
    assert np.array_equal(np.isnan(back), np.isnan(depth_from_msg(_image(ref, "f", 0.0))))
    assert back[0, 1] == pytest.approx(65.535) and np.isnan(back[0, 0]) and np.isnan(back[0, 2])


@pytest.mark.ros
def test_node_reports_end_of_recording(spawn, recording, tmp_path):
    cfg = config_file(tmp_path, source="bag", bag_path=str(recording), bag_loop=False, bag_realtime=False)
    proc = spawn([*NODE, "--ros-args", "-p", f"config_file:={cfg}"], name="camera_node")
    proc.wait_for("recording ended after", timeout=60)
    published = int(re.search(r"recording ended after (\d+) frames", proc.output()).group(1))
    assert published in (29, 30)  # all 30, or 29 when librealsense starts the playback at the second frame
    assert proc.popen.poll() is None, "the node stays up (its service too) after the recording ends"
    assert proc.stop() == 0
