"""The ROS 2 environment for manipllm processes, without `source install/setup.bash`.

The ROS wheels find their own libraries (ros_wheels_bootstrapper re-executes Python with LD_LIBRARY_PATH set);
our colcon-built interfaces live in `install/manipllm`, which the dynamic loader only sees if LD_LIBRARY_PATH
names it when the process starts. So `manipllm` re-executes itself once with the environment below, and every
node process it starts inherits it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

GUARD = "_MANIPLLM_ROS_ENV"
PY_SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def repo_root() -> Path:
    """The checkout this package was installed from (editable install), used to find `install/`."""
    return Path(__file__).resolve().parents[2]


def install_prefix() -> Path | None:
    """The colcon install prefix of the `manipllm` package, if it was built in this checkout."""
    override = os.environ.get("MANIPLLM_INSTALL_PREFIX")
    candidates = [Path(override)] if override else []
    candidates.append(repo_root() / "install" / "manipllm")
    for prefix in candidates:
        if (prefix / "share" / "manipllm" / "package.xml").is_file():
            return prefix
    return None


def _prepend(value: str | None, *items: str) -> str:
    parts = [p for p in (value or "").split(os.pathsep) if p]
    new = [i for i in items if i and i not in parts]
    return os.pathsep.join(new + parts)


def ros_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: os.environ) plus what ROS and our interfaces need."""
    env = dict(os.environ if base is None else base)
    prefix = install_prefix()
    venv = sys.prefix
    libs = [str(p) for p in Path(venv, PY_SITE).glob("ros_*.libs")]
    # Every package colcon installed beside manipllm (the vendored tf2_msgs) needs the same three paths.
    prefixes = sorted(p for p in prefix.parent.iterdir() if (p / "share").is_dir()) if prefix else []
    prefixes.sort(key=lambda p: p != prefix)
    env["AMENT_PREFIX_PATH"] = _prepend(env.get("AMENT_PREFIX_PATH"), *map(str, prefixes), venv)
    env["LD_LIBRARY_PATH"] = _prepend(env.get("LD_LIBRARY_PATH"), *(str(p / "lib") for p in prefixes),
                                      f"{venv}/lib", *libs)
    if prefixes:
        env["PYTHONPATH"] = _prepend(env.get("PYTHONPATH"), *(str(p / PY_SITE) for p in prefixes))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.setdefault("ROS_DISTRO", "kilted")
    # Discovery stays on this machine unless a lab configures otherwise (real robot: set it to SUBNET).
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # Camera images (0.6-0.9 MB) exceed Fast DDS's default 0.5 MB shared-memory segment and would travel as UDP
    # fragments that are lost under load (benchmarks/camera_rate.md); a 16 MB segment keeps them in shared memory.
    if env.get("RMW_IMPLEMENTATION") == "rmw_fastrtps_cpp":
        from manipllm_ros.camera.dds import fastdds_profile

        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile()))
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["_ROS_WHEELS_BOOTSTRAP_COMPLETE"] = "1"
    env[GUARD] = str(prefix or "")
    return env


def ensure_ros_env(argv: Sequence[str] | None = None) -> None:
    """Re-execute this Python process once with `ros_env()`; a no-op when already done."""
    if os.environ.get(GUARD) is not None:
        return
    args = list(sys.orig_argv if argv is None else argv)
    os.execve(sys.executable, [sys.executable, *args[1:]], ros_env())
