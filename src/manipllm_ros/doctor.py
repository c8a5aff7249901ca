"""`manipllm doctor`: one line per dependency that the system needs, PASS/FAIL with a fix hint.

Each check exercises the component for real (creates a node, renders a frame, builds a software camera), because
"it imports" is not the same as "it works" on a machine that misses a system library.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

SETUP_HINT = "run `make setup` in the manipllm checkout"


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    hint: str = ""

    def line(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        text = f"{status}  {self.name:<28} {self.detail}"
        if not self.ok and self.hint:
            text += f"\n      fix: {self.hint}"
        return text


def check_rclpy() -> CheckResult:
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("manipllm_doctor", context=ctx)
        rmw = rclpy.get_rmw_implementation_identifier()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    return CheckResult("rclpy + rmw", True, f"node created on {rmw} (ROS_DISTRO={os.environ.get('ROS_DISTRO', '?')})")


def check_interfaces() -> CheckResult:
    from rclpy.serialization import deserialize_message, serialize_message

    from manipllm.action import Manipulate
    from manipllm.msg import AffordancePoint, AiaProbe, ContactPose, Latency, ManipulationOutcome, Reasoning
    from manipllm.srv import PredictPose, ReportOutcome

    msgs = [AffordancePoint, AiaProbe, ContactPose, Latency, ManipulationOutcome, Reasoning,
            PredictPose.Request, PredictPose.Response, ReportOutcome.Request, ReportOutcome.Response,
            Manipulate.Goal, Manipulate.Result, Manipulate.Feedback]
    for cls in msgs:
        msg = cls()
        assert deserialize_message(serialize_message(msg), cls) == msg
    return CheckResult("custom interfaces", True, f"{len(msgs)} manipllm msg/srv/action types serialize")


def check_mujoco() -> CheckResult:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import mujoco

    xml = """<mujoco><worldbody><light pos="0 0 2"/><camera name="c" pos="0 0 1"/>
      <geom type="box" size=".1 .1 .1" rgba="1 0 0 1"/></worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    t0 = time.perf_counter()
    with mujoco.Renderer(model, 120, 160) as renderer:
        renderer.update_scene(data, camera="c")
        rgb = renderer.render()
    ms = (time.perf_counter() - t0) * 1e3
    if not (rgb[..., 0] > 100).any():
        return CheckResult("MuJoCo rendering", False, "rendered an empty frame", "check MUJOCO_GL=egl and libEGL")
    return CheckResult("MuJoCo rendering", True,
                       f"mujoco {mujoco.__version__}, MUJOCO_GL={os.environ['MUJOCO_GL']}, 160x120 frame in {ms:.0f} ms")


def check_realsense() -> CheckResult:
    have_usb = b"libusb-1.0.so.0" in subprocess.run(["ldconfig", "-p"], capture_output=True).stdout
    if not have_usb:
        return CheckResult("pyrealsense2 + libusb", False, "libusb-1.0.so.0 not found",
                           "sudo apt-get install libusb-1.0-0")
    import pyrealsense2 as rs

    dev = rs.software_device()
    sensor = dev.add_sensor("Color")
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = 64, 48, 60.0, 60.0, 32.0, 24.0
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid, stream.width, stream.height = rs.stream.color, 0, 1, 64, 48
    stream.fps, stream.bpp, stream.fmt, stream.intrinsics = 30, 3, rs.format.rgb8, intr
    sensor.add_video_stream(stream)
    n_devices = len(rs.context().query_devices())
    return CheckResult("pyrealsense2 + libusb", True,
                       f"librealsense {rs.__version__ if hasattr(rs, '__version__') else '?'}, software device ok, "
                       f"{n_devices} RealSense camera(s) connected")


def _free_loopback_host() -> str:
    import random
    import socket

    for _ in range(100):
        host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        with socket.socket() as s:
            try:
                s.bind((host, 1337))
                return host
            except OSError:
                continue
    raise RuntimeError("no free loopback address for franky-sim")


def check_franky() -> CheckResult:
    """Start franky-sim on a private loopback address and read the robot state through the real libfranka client."""
    from importlib.metadata import version

    import franky

    from manipllm_ros.processes import child_setup

    host = _free_loopback_host()
    proc = subprocess.Popen([sys.executable, "-m", "franky_sim.run_server", "-s", "mujoco", "--hostname", host],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=child_setup)
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:  # the server prints its address once it listens
            if "Connect to the server" in line or time.monotonic() > deadline:
                break
        if proc.poll() is not None:
            raise RuntimeError(f"franky-sim exited with code {proc.returncode}")
        robot = franky.Robot(host, realtime_config=franky.RealtimeConfig.Ignore)
        q = robot.current_joint_state.position
        robot_ok = len(q) == 7
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return CheckResult("franky + franky-sim", robot_ok,
                       f"franky-control {version('franky-control')} read 7 joints from franky-sim "
                       f"{version('franky-sim')} at {host} over the libfranka protocol")


def check_torch() -> CheckResult:
    import torch

    x = torch.randn(64, 64)
    float((x @ x).sum())
    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "no CUDA (CPU)"
    return CheckResult("torch", True, f"torch {torch.__version__}, {cuda}, {torch.get_num_threads()} threads")


def check_transformers() -> CheckResult:
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        return CheckResult("transformers + peft", False, "torchvision is installed",
                           "pip uninstall torchvision (the CPU torch wheel and PyPI torchvision do not match)")
    import peft
    import transformers
    from transformers import Qwen2_5_VLForConditionalGeneration  # noqa: F401

    return CheckResult("transformers + peft", True,
                       f"transformers {transformers.__version__}, peft {peft.__version__}, Qwen2.5-VL class ok, "
                       f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}")


def check_hadolint() -> CheckResult:
    path = shutil.which("hadolint") or os.path.join(os.path.dirname(sys.executable), "hadolint")
    if not os.path.exists(path):
        return CheckResult("hadolint", False, "not found", SETUP_HINT)
    out = subprocess.run([path, "--version"], capture_output=True, text=True)
    return CheckResult("hadolint", out.returncode == 0, out.stdout.strip() or out.stderr.strip(), SETUP_HINT)


CHECKS: list[tuple[str, Callable[[], CheckResult], str]] = [
    ("rclpy + rmw", check_rclpy, SETUP_HINT),
    ("custom interfaces", check_interfaces, "run `make setup` (colcon builds them into install/)"),
    ("MuJoCo rendering", check_mujoco, "export MUJOCO_GL=egl; apt-get install libegl1"),
    ("pyrealsense2 + libusb", check_realsense, "sudo apt-get install libusb-1.0-0; " + SETUP_HINT),
    ("franky + franky-sim", check_franky, SETUP_HINT),
    ("torch", check_torch, "pip install torch==2.13.0 (CPU) or a CUDA build on a GPU machine"),
    ("transformers + peft", check_transformers, SETUP_HINT),
    ("hadolint", check_hadolint, SETUP_HINT),
]


def run_checks() -> list[CheckResult]:
    results = []
    for name, fn, hint in CHECKS:
        try:
            result = fn()
        except Exception as exc:  # a failing dependency is a FAIL line, never a crash of the doctor
            result = CheckResult(name, False, f"{type(exc).__name__}: {exc}".splitlines()[0][:160], hint)
        if not result.hint:
            result.hint = hint
        results.append(result)
    return results


def main() -> int:
    results = run_checks()
    for r in results:
        print(r.line(), flush=True)
    failed = [r.name for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
