"""`manipllm doctor` passes on this machine, from any directory, without anything sourced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from manipllm_ros.rosenv import GUARD

MANIPLLM = Path(sys.executable).parent / "manipllm"


def clean_env() -> dict[str, str]:
    """The environment of a fresh shell: none of the variables that our re-exec or ROS set."""
    drop = {GUARD, "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "AMENT_PREFIX_PATH", "LD_LIBRARY_PATH", "PYTHONPATH",
            "RMW_IMPLEMENTATION", "ROS_DISTRO", "CMAKE_PREFIX_PATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_doctor_passes_from_any_directory(tmp_path):
    out = subprocess.run([str(MANIPLLM), "doctor"], cwd=tmp_path, env=clean_env(), capture_output=True,
                         text=True, timeout=300)
    lines = [l for l in out.stdout.splitlines() if l.startswith(("PASS", "FAIL"))]
    assert out.returncode == 0, out.stdout + out.stderr
    names = " ".join(lines)
    for check in ("rclpy + rmw", "custom interfaces", "MuJoCo rendering", "pyrealsense2 + libusb",
                  "franky + franky-sim", "torch", "transformers + peft"):
        assert check in names
    assert all(l.startswith("PASS") for l in lines), out.stdout


def test_env_runs_a_command_with_the_interfaces(tmp_path):
    code = "from manipllm.srv import PredictPose; print(PredictPose.Request().instruction == '')"
    out = subprocess.run([str(MANIPLLM), "env", "--", sys.executable, "-c", code], cwd=tmp_path,
                         env=clean_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
