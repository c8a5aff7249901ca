"""The build a real ROS install uses (docker): one CMake project generates the `manipllm` interfaces AND installs
the `manipllm_ros` Python package and node executables (MANIPLLM_INSTALL_PYTHON=ON). Built here from scratch into
a temporary workspace, then both packages are imported from that install alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OPT_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


@pytest.mark.slow
def test_single_cmake_project_installs_interfaces_and_python_package(tmp_path):
    venv = Path(sys.prefix)
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}", CMAKE_PREFIX_PATH=str(venv),
               AMENT_PREFIX_PATH=str(venv))
    build = subprocess.run(
        [str(venv / "bin" / "colcon"), "--log-base", str(tmp_path / "log"), "build", "--paths", str(REPO),
         "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
         "--cmake-args", "-DMANIPLLM_INSTALL_PYTHON=ON", "-DBUILD_TESTING=OFF",
         f"-DPython3_EXECUTABLE={sys.executable}", f"-DPython3_NumPy_INCLUDE_DIR={OPT_NUMPY_INCLUDE}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    prefix = tmp_path / "install" / "manipllm"
    site = prefix / "lib" / "python3.11" / "site-packages"
    assert (site / "manipllm" / "srv" / "__init__.py").is_file()
    assert (site / "manipllm_ros" / "pose_service.py").is_file()
    for exe in ("camera_node", "pose_service_node", "franka_node"):
        assert os.access(prefix / "lib" / "manipllm" / exe, os.X_OK), exe
    assert (prefix / "share" / "manipllm" / "launch" / "real_robot.launch.py").is_file()

    code = ("import manipllm_ros, manipllm.srv as s; print(manipllm_ros.__file__); "
            "print(s.PredictPose.Request().chain_of_thought)")
    run_env = dict(env, PYTHONPATH=str(site), LD_LIBRARY_PATH=f"{prefix / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}",
                   PYTHONNOUSERSITE="1")
    # The install's site-packages goes first on sys.path, ahead of the editable checkout: manipllm_ros must
    # then come from the install.
    out = subprocess.run([sys.executable, "-c", code],
                         cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split()[:2]
    assert first.startswith(str(site)) and second == "False"
